"""Coarse mesh levels and sampling matrices."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from trimesh.triangles import closest_point

from pipeline.mesh_sampling import barycentric_matrix, build_mesh_levels


@pytest.fixture(scope="module")
def template(synth_data):
    with np.load(synth_data / "body_models" / "smplh" / "neutral" / "model.npz") as z:
        return z["v_template"], z["f"].astype(np.int64)


@pytest.fixture(scope="module")
def levels(template):
    return build_mesh_levels(*template, levels=2, factor=4)


def test_levels_shrink_by_about_four(levels, template):
    sizes = levels.sizes
    assert sizes[0] == len(template[0]) and len(sizes) == 3
    for a, b in zip(sizes, sizes[1:]):
        assert 0.2 < b / a < 0.3
    for v, f in zip(levels.vertices, levels.faces):
        assert f.min() >= 0 and f.max() < len(v)
        assert len(np.unique(f)) == len(v)  # no unreferenced vertices
    # closed surfaces stay closed (best effort at the smallest level of this small mesh)
    assert trimesh.Trimesh(levels.vertices[1], levels.faces[1], process=False).is_watertight


def test_matrices_reproduce_the_coarse_levels(levels):
    for l in range(2):
        D, U = levels.down[l], levels.up[l]
        Vf, Vc = levels.vertices[l], levels.vertices[l + 1]
        assert D.shape == (len(Vc), len(Vf)) and U.shape == (len(Vf), len(Vc))
        for M in (D, U):
            np.testing.assert_allclose(np.asarray(M.sum(axis=1)).ravel(), 1.0, atol=1e-5)
            assert M.min() >= 0 and M.getnnz(axis=1).max() <= 3
        np.testing.assert_allclose(D @ Vf, Vc, atol=1e-5)
        # up-sampling lands on the coarse surface: well within a coarse edge of the fine mesh
        edge = trimesh.Trimesh(Vc, levels.faces[l + 1], process=False).edges_unique_length.mean()
        err = np.linalg.norm(U @ Vc - Vf, axis=1)
        assert err.mean() < 0.1 * edge and err.max() < 0.6 * edge
        # down(up(x)) ~ x for coarse-level signals
        roundtrip = np.linalg.norm(D @ (U @ Vc) - Vc, axis=1)
        assert roundtrip.mean() < 0.08 * edge


def test_barycentric_matrix_matches_brute_force_closest_point(template):
    v, f = template
    rng = np.random.default_rng(0)
    pts = v[rng.choice(len(v), 40, replace=False)] + rng.normal(0, 0.01, (40, 3))
    M = barycentric_matrix(pts, v, f)
    tri = v[f]
    for i, p in enumerate(pts):
        cp = closest_point(tri, np.repeat(p[None], len(tri), axis=0))
        best = np.linalg.norm(cp - p, axis=1).min()
        got = np.linalg.norm(M[i] @ v - p)
        assert got <= best + 1e-4


def test_deterministic(template, levels):
    again = build_mesh_levels(*template, levels=2, factor=4)
    for a, b in zip(levels.down + levels.up, again.down + again.up):
        assert (a != b).nnz == 0

"""Coarse mesh levels and sampling matrices for the trainer (METRO's 6890 -> 1723 -> 431).

Level ``l+1`` is a quadric-decimated copy of level ``l`` with about ``1/factor`` of its
vertices, snapped back onto level ``l``'s surface:

* ``down[l]`` (V_{l+1}, V_l): row i = barycentric weights of coarse vertex i's closest point
  on the fine surface, so ``down[l] @ V_l == V_{l+1}`` exactly (rows sum to 1).
* ``up[l]`` (V_l, V_{l+1}): row j = barycentric weights of fine vertex j's closest point on
  the coarse surface, so ``up[l] @ V_{l+1}`` approximates ``V_l`` (rows sum to 1).

Everything is deterministic and returned as ``scipy.sparse.csr_matrix`` (float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree


@dataclass
class MeshLevels:
    """``vertices[0]``/``faces[0]`` are the input; ``down[l]``/``up[l]`` link levels l, l+1."""

    vertices: list[np.ndarray]
    faces: list[np.ndarray]
    down: list[sp.csr_matrix]
    up: list[sp.csr_matrix]

    @property
    def sizes(self) -> list[int]:
        return [len(v) for v in self.vertices]


def _closest_point_barycentric(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """For each point: (face id, barycentric weights (3,)) of its closest point on the mesh.

    Candidate faces are the ``k`` nearest by centroid plus all faces of the nearest vertex.
    """
    from trimesh.triangles import closest_point, points_to_barycentric  # heavy: trimesh

    tri = vertices[faces]
    k = min(k, len(faces))
    _, cand = cKDTree(tri.mean(axis=1)).query(points, k=k)
    cand = np.atleast_2d(cand).reshape(len(points), k)
    # faces around the nearest vertex guarantee the true closest face is a candidate
    # in all but degenerate cases (only vertices some face uses: a model may carry others)
    used = np.unique(faces)
    _, j = cKDTree(vertices[used]).query(points)
    nv = used[j]
    vf = [[] for _ in range(len(vertices))]
    for fi, f in enumerate(faces):
        for v in f:
            vf[v].append(fi)
    width = max(len(x) for x in vf)
    ring = np.array([(vf[v] + [vf[v][0]] * width)[:width] for v in nv])
    cand = np.concatenate([cand, ring], axis=1)
    n, m = cand.shape
    q = np.repeat(points, m, axis=0)
    cp = closest_point(tri[cand.ravel()], q)
    d = np.linalg.norm(cp - q, axis=1).reshape(n, m)
    best = np.argmin(d, axis=1)
    face = cand[np.arange(n), best]
    cpb = cp.reshape(n, m, 3)[np.arange(n), best]
    bary = points_to_barycentric(tri[face], cpb)
    bary = np.clip(bary, 0.0, 1.0)
    bary /= bary.sum(axis=1, keepdims=True)
    return face, bary


def barycentric_matrix(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray
) -> sp.csr_matrix:
    """Sparse (P, V) matrix mapping mesh vertices to the closest surface points of ``points``."""
    face, bary = _closest_point_barycentric(points, vertices, faces)
    rows = np.repeat(np.arange(len(points)), 3)
    M = sp.csr_matrix(
        (bary.ravel(), (rows, faces[face].ravel())), shape=(len(points), len(vertices))
    )
    M.sum_duplicates()
    M.eliminate_zeros()
    return M.astype(np.float32)


def _closed_manifold(faces: np.ndarray) -> bool:
    """Every edge shared by exactly two faces, no duplicate or degenerate faces."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    degenerate = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    )
    dup = len(np.unique(np.sort(faces, axis=1), axis=0)) != len(faces)
    return bool(np.all(counts == 2) and not degenerate.any() and not dup)


def decimate(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric edge-collapse decimation to about ``target`` vertices (deterministic).

    A closed manifold input gives a closed manifold output: collapse aggressiveness settings
    are tried in a fixed order until one keeps the surface closed."""
    import fast_simplification  # heavy: fast_simplification

    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    reduction = float(np.clip(1.0 - target / len(vertices), 0.0, 0.99))
    closed = _closed_manifold(faces)
    first = None
    for k in range(8):  # slightly smaller reductions if no setting keeps the surface closed
        for agg in (5, 3, 7, 9):
            r = reduction * (1.0 - 0.01 * k)
            v, f = fast_simplification.simplify(vertices, faces, target_reduction=r, agg=agg)
            f = np.asarray(f, np.int64)
            first = first or (v, f)
            if not closed or _closed_manifold(f):
                break
        else:
            continue
        break
    else:
        v, f = first  # best effort: matrices stay valid, coarse faces may be non-manifold
    used = np.unique(f)
    remap = -np.ones(len(v), np.int64)
    remap[used] = np.arange(len(used))
    return v[used], remap[f]


def build_mesh_levels(
    vertices: np.ndarray, faces: np.ndarray, levels: int = 2, factor: int = 4
) -> MeshLevels:
    """``levels`` coarse levels, each with about ``1/factor`` of the previous vertex count."""
    V = [np.asarray(vertices, np.float64)]
    F = [np.asarray(faces, np.int64)]
    down, up = [], []
    for _ in range(levels):
        vc, fc = decimate(V[-1], F[-1], max(len(V[-1]) // factor, 4))
        D = barycentric_matrix(vc, V[-1], F[-1])
        vc = np.asarray(D.astype(np.float64) @ V[-1])  # snap onto the fine surface
        U = barycentric_matrix(V[-1], vc, fc)
        V.append(vc)
        F.append(fc)
        down.append(D.tocsr())
        up.append(U.tocsr())
    return MeshLevels(V, F, down, up)

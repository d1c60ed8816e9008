"""Mask rasterizers: CPU vs pyrender vs brute force; packing; keypoint self-occlusion."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import trimesh

from pipeline import masks as M

ENGINES = ["numpy"] + (["numba"] if M.HAVE_NUMBA else [])


def pinhole(vertices: np.ndarray, res: int, dist: float = 3.0, focal: float = 2.0):
    """Mesh placed `dist` m in front of a camera whose image spans the R x R mask."""
    z = vertices[:, 2] + dist
    f = focal * res / 2
    uv = np.stack([f * vertices[:, 0] / z, f * vertices[:, 1] / z], -1) + (res - 1) / 2
    return uv, z


def sample_meshes() -> list[trimesh.Trimesh]:
    rng = np.random.default_rng(3)
    out = [
        trimesh.creation.icosphere(subdivisions=3, radius=0.8),
        trimesh.creation.capsule(height=1.2, radius=0.35).apply_transform(
            trimesh.transformations.rotation_matrix(1.2, [1, 0, 0])
        ),
        trimesh.creation.torus(0.8, 0.25),
    ]
    for _ in range(2):
        box = trimesh.creation.box(extents=rng.uniform(0.7, 1.4, 3))
        box.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
        out.append(box)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def brute_force(uv: np.ndarray, z: np.ndarray, faces: np.ndarray, res: int):
    """Per pixel and triangle: 2x2 solve for the barycentrics, depth by ray-plane intersection."""
    mask = np.zeros((res, res), bool)
    depth = np.full((res, res), np.inf)
    pts3 = np.column_stack([uv * z[:, None], z])  # camera with identity intrinsics
    for f in faces:
        if np.any(z[f] <= 1e-3):
            continue
        a, b, c = uv[f]
        A = np.column_stack([b - a, c - a])
        if abs(np.linalg.det(A)) < 1e-12:
            continue
        p0, p1, p2 = pts3[f]
        n = np.cross(p1 - p0, p2 - p0)
        for i in range(res):
            for j in range(res):
                s, t = np.linalg.solve(A, np.array([j, i], float) - a)
                if s >= 0 and t >= 0 and s + t <= 1:
                    mask[i, j] = True
                    ray = np.array([j, i, 1.0])
                    depth[i, j] = min(depth[i, j], np.dot(n, p0) / np.dot(n, ray))
    return mask, depth


@pytest.mark.parametrize("engine", ENGINES)
def test_cpu_matches_brute_force(engine):
    rng = np.random.default_rng(11)
    res = 12
    nv = 9
    uv = rng.uniform(-3, res + 2, size=(2, nv, 2))
    z = rng.uniform(1.0, 4.0, size=(2, nv))
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 4, 8], [2, 3, 7], [1, 5, 6]])
    masks, depth = M.rasterize_cpu(uv, z, faces, res, want_depth=True, engine=engine)
    for b in range(2):
        ref_m, ref_d = brute_force(uv[b], z[b], faces, res)
        assert ref_m.sum() > 10
        np.testing.assert_array_equal(masks[b], ref_m)
        np.testing.assert_allclose(depth[b][ref_m], ref_d[ref_m], rtol=1e-5)
        assert np.all(np.isinf(depth[b][~ref_m]))


def test_engines_agree_and_near_plane_drops_triangles():
    mesh = trimesh.creation.icosphere(subdivisions=2)
    uv, z = pinhole(mesh.vertices, 40)
    z = z.copy()
    z[:5] = -0.2  # a few vertices behind the camera: their triangles are dropped
    out = [M.rasterize_cpu(uv[None], z[None], mesh.faces, 40, True, engine=e) for e in ENGINES]
    for m, d in out[1:]:
        np.testing.assert_array_equal(m, out[0][0])
        np.testing.assert_allclose(d, out[0][1], rtol=1e-6)
    kept = mesh.faces[~np.any(np.isin(mesh.faces, np.arange(5)), axis=1)]
    ref_m, ref_d = M.rasterize_cpu(uv[None], np.abs(z)[None], kept, 40, True)
    np.testing.assert_array_equal(out[0][0], ref_m)
    np.testing.assert_allclose(out[0][1], ref_d, rtol=1e-6)
    assert np.any(out[0][1] != M.rasterize_cpu(uv[None], np.abs(z)[None], mesh.faces, 40, True)[1])


@pytest.fixture(scope="module")
def pyrender_ok():
    try:
        M.pyrender_platform()
    except RuntimeError as exc:  # pragma: no cover - environment without any GL
        pytest.skip(str(exc))


@pytest.mark.parametrize("res", [56, 224])
def test_cpu_vs_pyrender_iou(res, pyrender_ok):
    meshes = sample_meshes()
    for mesh in meshes:
        uv, z = pinhole(mesh.vertices, res)
        a, da = M.render_masks(uv[None], z[None], mesh.faces, res, "cpu", return_depth=True)
        b, db = M.render_masks(uv[None], z[None], mesh.faces, res, "pyrender", return_depth=True)
        assert a.sum() > 0.03 * res * res
        assert iou(a[0], b[0]) >= 0.99, (mesh, res, iou(a[0], b[0]))
        both = a & b
        np.testing.assert_allclose(da[both], db[both], atol=2e-3)


def test_pyrender_batch_and_offset(pyrender_ok):
    ox, oy = M.sample_offset()
    assert -0.5 <= ox <= 0.5 and -0.5 <= oy <= 0.5
    # an axis-aligned rectangle: exactly the pixel centres inside it
    uv = np.array([[[10.2, 5.3], [20.7, 5.3], [20.7, 15.6], [10.2, 15.6]]])
    uv = np.concatenate([uv, uv + [3.0, 7.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    masks = M.render_masks(uv, np.full((2, 4), 2.0), faces, 32, "pyrender")
    expect = np.zeros((2, 32, 32), bool)
    expect[0, 6:16, 11:21] = True
    expect[1, 13:23, 14:24] = True
    np.testing.assert_array_equal(masks, expect)


def test_body_mesh_iou(synth_data, pyrender_ok):
    from pipeline.body_models import load_body_model

    model = load_body_model(synth_data / "body_models")
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.25, size=(2, 156))
    poses[:, :3] = [np.pi, 0, 0]  # y-up body -> y-down camera
    verts = model(poses=poses).vertices.astype(np.float64)
    for res in (56, 224):
        uv, z = zip(*(pinhole(v - v.mean(0), res, dist=3.0, focal=3.0) for v in verts))
        uv, z = np.stack(uv), np.stack(z)
        a = M.render_masks(uv, z, model.faces, res, "cpu")
        b = M.render_masks(uv, z, model.faces, res, "pyrender")
        for k in range(2):
            assert a[k].sum() > 0.04 * res * res
            assert iou(a[k], b[k]) >= 0.99


@pytest.mark.parametrize("res", [7, 56])
def test_pack_unpack_round_trip(res):
    rng = np.random.default_rng(res)
    masks = rng.random((3, 2, res, res)) > 0.5
    packed = M.pack_masks(masks)
    assert packed.dtype == np.uint8 and packed.shape == (3, 2, (res * res + 7) // 8)
    np.testing.assert_array_equal(M.unpack_masks(packed, res), masks)
    # bit order: first pixel is the most significant bit of byte 0
    one = np.zeros((res, res), bool)
    one[0, 0] = True
    assert M.pack_masks(one)[0] == 128
    with pytest.raises(ValueError, match="unpack_masks"):
        M.unpack_masks(packed[..., :-1], res)


def test_keypoint_occlusion_sphere_in_front():
    res = 64
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    uv, z = pinhole(sphere.vertices, res)  # sphere centre at depth 3 on the optical axis
    _, zbuf = M.render_masks(uv[None], z[None], sphere.faces, res, return_depth=True)
    c = (res - 1) / 2
    kp = np.array([[[c, c], [c, c], [c, c], [2.0, 2.0], [-5.0, c], [c + 3, c]]])
    kz = np.array([[4.0, 2.0, 2.52, 4.0, 4.0, 3.0]])
    occ = M.keypoint_occlusion(kp, kz, zbuf, tol=0.03)
    # behind the sphere / in front / on the front surface (2.5) within tol / empty pixel /
    # off the map / at the sphere's centre (0.5 m below the surface)
    np.testing.assert_array_equal(occ, [[True, False, False, False, False, True]])
    tol = np.array([0.03, 0.03, 0.03, 0.03, 0.03, 0.6])
    np.testing.assert_array_equal(M.keypoint_occlusion(kp, kz, zbuf, tol)[0, 5], False)
    assert M.COCO17_OCCLUSION_TOL.shape == (17,)
    assert M.keypoint_occlusion(kp, kz, zbuf)[0, 5]  # default 0.03 for K != 17


def test_bad_input_messages():
    with pytest.raises(ValueError, match="uv must be"):
        M.render_masks(np.zeros((5, 2)), np.zeros(5), np.zeros((1, 3), int), 8)
    with pytest.raises(ValueError, match="face indices"):
        M.render_masks(np.zeros((1, 3, 2)), np.ones((1, 3)), np.array([[0, 1, 3]]), 8)
    with pytest.raises(ValueError, match="backend"):
        M.render_masks(np.zeros((1, 3, 2)), np.ones((1, 3)), np.array([[0, 1, 2]]), 8, "gl")


def test_no_gl_platform_gives_one_line_error():
    code = (
        "import pipeline.masks as M\n"
        "M._PROBE = 'raise SystemExit(3)'\n"
        "try:\n    M.pyrender_platform()\n"
        "except RuntimeError as e:\n    print('ERR', e)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYOPENGL_PLATFORM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    line = out.stdout.strip()
    assert line.startswith("ERR") and "\n" not in line
    assert "egl" in line and "osmesa" in line and "backend='cpu'" in line


def test_preview_png(tmp_path):
    from pipeline.render_preview import procedural_figure, render_preview, render_views

    v, f, j = procedural_figure()
    assert 5000 < len(v) < 9000 and f.max() < len(v) and j.shape == (17, 3)
    d = render_views(None, views=4, res=56)
    assert d["heatmaps"].shape == (4, 17, 56, 56) and d["masks"].shape == (4, 56, 56)
    # every drawn keypoint of this figure lies on (or within a pixel of) its silhouette
    kp = np.rint(d["kp"]).astype(int).clip(1, 54)
    for view in range(4):
        near = [d["masks"][view, y - 1 : y + 2, x - 1 : x + 2].any() for x, y in kp[view]]
        assert all(near)
    out = render_preview(tmp_path / "render.png", None, views=4, res=56)
    assert out.stat().st_size > 10_000


def test_body_occlusion_front_and_back(synth_data):
    from pipeline.body_models import load_body_model

    bm = synth_data / "body_models"
    model = load_body_model(bm)
    pose = np.zeros((1, 156))
    pose[0, [16 * 3 + 2, 17 * 3 + 2]] = [-1.0, 1.0]  # arms down, away from the torso
    v = model(poses=pose).vertices[0].astype(np.float64)
    coco = np.load(bm / "smplh" / "joint_regressors.npz")["coco17"] @ v
    centre = v.mean(0)
    occ = {}
    for name, flip in (("front", np.array([-1.0, -1.0, -1.0])), ("back", np.array([1, -1, 1]))):
        # body faces +z; the camera looks along +z, so flipping x and z shows the front
        uv, z = pinhole((v - centre) * flip, 112, dist=3.0, focal=3.0)
        kp, kz = pinhole((coco - centre) * flip, 112, dist=3.0, focal=3.0)
        _, zb = M.render_masks(uv[None], z[None], model.faces, 112, return_depth=True)
        occ[name] = M.keypoint_occlusion(kp[None], kz[None], zb)[0]
    assert not occ["front"].any()
    assert occ["back"][:3].all()  # nose and eyes are behind the head
    assert not occ["back"][5:].any()  # shoulders ... ankles stay visible from behind


def test_degenerate_and_huge_coordinates():
    uv = np.array([[[1e30, 2.0], [5.0, 5.0], [2.0, 9.0], [np.nan, 1.0], [3.0, 3.0], [8.0, 8.0]]])
    z = np.full((1, 6), 2.0)
    faces = np.array([[0, 1, 2], [3, 4, 5], [1, 1, 2], [1, 2, 4]])
    for engine in ENGINES:
        m, d = M.rasterize_cpu(uv, z, faces, 12, True, engine=engine)
        ref, _ = M.rasterize_cpu(uv, z, faces[3:], 12, True, engine="numpy")
        assert m[0, 9:].any() and np.isfinite(d[m]).all()
        # the huge triangle covers a slab; the NaN and zero-area ones are skipped
        assert (m & ~ref).any() and np.array_equal(m | ref, m)

"""Mask rasterizer: CPU engines vs brute force and ray casting; packing; self-occlusion."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from pipeline import masks as M
from shards import masks as mask_codec

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


def ray_cast(uv: np.ndarray, z: np.ndarray, faces: np.ndarray, res: int):
    """Reference in 3D: a ray from the camera through every pixel centre, Moller-Trumbore against
    every triangle of the mesh rebuilt as (u z, v z, z) (identity intrinsics); depth = the nearest
    hit's t (the rays have unit z). Only a loose box of pixels per triangle is tried."""
    pts = np.column_stack([uv * z[:, None], z])
    mask = np.zeros((res, res), bool)
    depth = np.full((res, res), np.inf)
    for f in faces:
        if np.any(z[f] <= 1e-3):
            continue
        lo = np.clip(np.floor(uv[f].min(0)) - 1, 0, res - 1).astype(int)
        hi = np.clip(np.ceil(uv[f].max(0)) + 1, 0, res - 1).astype(int)
        jj, ii = (
            g.ravel() for g in np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        )
        d = np.column_stack([jj, ii, np.ones(jj.size)])
        p0, p1, p2 = pts[f]
        e1, e2 = p1 - p0, p2 - p0
        pv = np.cross(d, e2)
        det = pv @ e1
        q = np.cross(-p0, e1)
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b, t = (pv @ -p0) / det, (d @ q) / det, (q @ e2) / det
        hit = (det != 0) & (a >= 0) & (b >= 0) & (a + b <= 1) & (t > 0)
        mask[ii[hit], jj[hit]] = True
        np.minimum.at(depth, (ii[hit], jj[hit]), t[hit])
    return mask, depth


def assert_matches_ray_cast(uv, z, faces, res, label):
    """CPU masks and depth (every engine) against `ray_cast`, for each mesh of the batch."""
    refs = [ray_cast(uv[k], z[k], faces, res) for k in range(len(uv))]
    for engine in ENGINES:
        masks, depth = M.rasterize_cpu(uv, z, faces, res, want_depth=True, engine=engine)
        for k, (ref_m, ref_d) in enumerate(refs):
            assert ref_m.sum() > 0.03 * res * res, (label, k)
            # the sub-pixel offsets below keep pixel centres off the edges: no ties to break
            assert (masks[k] ^ ref_m).sum() == 0, (label, res, engine, k)
            np.testing.assert_allclose(depth[k][ref_m], ref_d[ref_m], rtol=1e-6)
            assert np.all(np.isinf(depth[k][~ref_m]))


@pytest.mark.parametrize("res", [56, 224])
def test_cpu_matches_ray_casting(res):
    for mesh in sample_meshes():
        uv, z = pinhole(mesh.vertices, res)
        assert_matches_ray_cast(uv[None] + [0.137, 0.291], z[None], mesh.faces, res, mesh)


def test_batch_and_edges():
    """A batch of rectangles: exactly the pixel centres inside them or on their edges, each
    mesh in its own mask and depth buffer; a mesh behind the camera leaves an empty mask."""
    rect = np.array([[10.0, 5.3], [20.7, 5.3], [20.7, 15.0], [10.0, 15.0]])
    uv = np.stack([rect, rect + [3.0, 7.0], rect])
    z = np.array([[2.0] * 4, [5.0] * 4, [-1.0] * 4])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    expect = np.zeros((3, 32, 32), bool)
    expect[0, 6:16, 10:21] = True  # rows 6..15 (y = 15 on the edge), columns 10..20 (x = 10)
    expect[1, 13:23, 13:24] = True
    for engine in ENGINES:
        masks, depth = M.rasterize_cpu(uv, z, faces, 32, want_depth=True, engine=engine)
        np.testing.assert_array_equal(masks, expect)
        np.testing.assert_array_equal(depth[0][expect[0]], 2.0)
        np.testing.assert_array_equal(depth[1][expect[1]], 5.0)
        assert np.all(np.isinf(depth[~expect]))
    for backend in M.BACKENDS:
        np.testing.assert_array_equal(M.render_masks(uv, z, faces, 32, backend), expect)
    for k in range(2):
        np.testing.assert_array_equal(brute_force(uv[k], z[k], faces, 32)[0], expect[k])


def test_body_mesh_matches_ray_casting(synth_data):
    from pipeline.body_models import load_body_model

    model = load_body_model(synth_data / "body_models")
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.25, size=(2, 156))
    poses[:, :3] = [np.pi, 0, 0]  # y-up body -> y-down camera
    verts = model(poses=poses).vertices.astype(np.float64)
    for res in (56, 224):
        uv, z = zip(*(pinhole(v - v.mean(0), res, dist=3.0, focal=3.0) for v in verts))
        uv, z = np.stack(uv) + [0.137, 0.291], np.stack(z)
        assert_matches_ray_cast(uv, z, np.asarray(model.faces), res, "body")


@pytest.mark.parametrize("res", [7, 56])
def test_pack_unpack_round_trip(res):
    rng = np.random.default_rng(res)
    masks = rng.random((3, 2, res, res)) > 0.5
    packed = mask_codec.encode(masks)
    assert packed.dtype == np.uint8 and packed.shape == (3, 2, (res * res + 7) // 8)
    np.testing.assert_array_equal(mask_codec.decode(packed, res), masks)
    # bit order: first pixel is the most significant bit of byte 0
    one = np.zeros((res, res), bool)
    one[0, 0] = True
    assert mask_codec.encode(one)[0] == 128
    with pytest.raises(ValueError, match="masks decode"):
        mask_codec.decode(packed[..., :-1], res)


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
    for name in ("gl", "pyrender"):
        with pytest.raises(ValueError, match="backend") as err:
            M.render_masks(np.zeros((1, 3, 2)), np.ones((1, 3)), np.array([[0, 1, 2]]), 8, name)
        msg = str(err.value)
        assert "\n" not in msg and repr(name) in msg and "removed" in msg and "'cpu'" in msg


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

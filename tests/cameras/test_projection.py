"""Projection against an independent per-point transcription of the published formula.

The reference works from the raw JSON (quaternion camera->world, centre in mm, focal length,
centre, radial [k1 k2 k3], tangential [p1 p2]) with plain Python floats, so it also checks the
conversion to R, t, K and dist.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cameras import make_rig, project
from cameras.data import load_h36m_s1, load_raw


def _qrot_inverse(q: list[float], v: list[float]) -> list[float]:
    """Rotate v by the inverse of quaternion q = (w, x, y, z) (normalised first): q* v q."""
    n = math.sqrt(sum(c * c for c in q))
    w, x, y, z = (c / n for c in q)
    x, y, z = -x, -y, -z  # conjugate
    # t = 2 * cross(q.xyz, v); v' = v + w t + cross(q.xyz, t)
    tx = 2 * (y * v[2] - z * v[1])
    ty = 2 * (z * v[0] - x * v[2])
    tz = 2 * (x * v[1] - y * v[0])
    return [
        v[0] + w * tx + (y * tz - z * ty),
        v[1] + w * ty + (z * tx - x * tz),
        v[2] + w * tz + (x * ty - y * tx),
    ]


def _reference(entry: dict, point: list[float], distort: bool) -> tuple[float, float, float]:
    """u, v, depth of one world point (metres) through one published camera, loop style."""
    c_mm = entry["translation"]
    rel = [point[i] - c_mm[i] / 1000.0 for i in range(3)]
    X, Y, Z = _qrot_inverse(entry["orientation"], rel)
    x, y = X / Z, Y / Z
    if distort:
        x, y = min(max(x, -1.0), 1.0), min(max(y, -1.0), 1.0)
        k1, k2, k3 = entry["radial_distortion"]
        p1, p2 = entry["tangential_distortion"]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        tan = p1 * x + p2 * y
        x, y = x * (radial + tan) + p1 * r2, y * (radial + tan) + p2 * r2
    fx, fy = entry["focal_length"]
    cx, cy = entry["center"]
    return fx * x + cx, fy * y + cy, Z


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    rng = np.random.default_rng(0)
    centre = make_rig(4).centre
    # a body-sized cloud around the volume centre plus a wider spread reaching image borders
    near = centre + rng.normal(0, 0.5, (200, 3)) * [1, 1, 2]
    wide = centre + rng.uniform(-3, 3, (200, 3))
    return np.concatenate([near, wide])


@pytest.mark.parametrize("distort", [True, False])
def test_matches_per_point_reference(points: np.ndarray, distort: bool) -> None:
    raw = load_raw()["cameras"]
    for cam, entry in zip(load_h36m_s1(), raw, strict=True):
        proj = cam.project(points, distort=distort)
        for i, p in enumerate(points):
            u, v, z = _reference(entry, p.tolist(), distort)
            assert proj.depth[i] == pytest.approx(z, abs=1e-9)
            if z > 0:
                assert proj.uv[i] == pytest.approx([u, v], abs=1e-6)


def test_distortion_is_barrel_and_grows_with_radius() -> None:
    cam = load_h36m_s1()[0]
    radii = np.array([0.0, 100.0, 200.0, 300.0, 450.0])
    pix = cam.K[:2, 2] + radii[:, None] * np.array([0.6, 0.8])
    rays = np.c_[pix, np.ones(len(pix))] @ np.linalg.inv(cam.K).T
    pts_world = (rays * 4.0 - cam.t) @ cam.R
    a = cam.project(pts_world, distort=True).uv
    b = cam.project(pts_world, distort=False).uv
    assert b == pytest.approx(pix)
    r_d = np.linalg.norm(a - cam.K[:2, 2], axis=-1)
    shift = r_d - radii
    assert abs(shift[0]) < 0.01  # nothing moves at the principal point
    assert np.all(np.diff(shift[1:]) < 0) and shift[-1] < -5  # k1 < 0: barrel, pulled inwards


def test_point_on_optical_axis_hits_principal_point() -> None:
    for cam in make_rig(8):
        p = cam.centre + 4.0 * cam.forward
        for distort in (True, False):
            proj = cam.project(p[None], distort=distort)
            assert proj.uv[0] == pytest.approx(cam.K[:2, 2], abs=1e-9)
            assert proj.depth[0] == pytest.approx(4.0)
            assert proj.visible[0]


def test_clamp_matches_videopose3d() -> None:
    cam = load_h36m_s1()[1]
    # camera-frame points with x/z = 3 and x/z = 1 project identically when distorting
    pts_cam = np.array([[3.0, 0.2, 1.0], [1.0, 0.2, 1.0]])
    pts_world = (pts_cam - cam.t) @ cam.R  # R^T (X - t)
    uv = cam.project(pts_world, distort=True).uv
    assert uv[0] == pytest.approx(uv[1])
    uv_lin = cam.project(pts_world, distort=False).uv
    assert uv_lin[0, 0] == pytest.approx(cam.K[0, 0] * 3 + cam.K[0, 2])


def test_visibility_depth_and_image_bounds() -> None:
    cam = load_h36m_s1()[0]
    w, h = cam.width, cam.height
    # build camera-frame points that land at chosen pinhole pixels
    pix = np.array([[-0.49, 10], [-0.51, 10], [w - 0.51, h - 0.51], [w - 0.49, 5], [5, h - 0.4]])
    Kinv = np.linalg.inv(cam.K)
    rays = np.c_[pix, np.ones(len(pix))] @ Kinv.T
    pts_cam = np.concatenate([rays * 3.0, [[0.0, 0.0, -2.0]]])  # last one behind the camera
    pts_world = (pts_cam - cam.t) @ cam.R
    proj = cam.project(pts_world, distort=False)
    assert proj.uv[:5] == pytest.approx(pix)
    assert proj.visible.tolist() == [True, False, True, False, False, False]
    assert proj.depth[-1] == pytest.approx(-2.0)


def test_batched_meshes_times_views(points: np.ndarray) -> None:
    rig = make_rig(8)
    meshes = points.reshape(4, 100, 3)
    proj = project(meshes[:, None], rig.R, rig.t, rig.K, rig.dist, True, rig.image_size)
    assert proj.uv.shape == (4, 8, 100, 2)
    assert proj.depth.shape == proj.visible.shape == (4, 8, 100)
    via_rig = rig.project(meshes)
    np.testing.assert_array_equal(via_rig.uv, proj.uv)
    cam_frame = rig.to_camera(meshes)
    assert cam_frame.shape == (4, 8, 100, 3)
    np.testing.assert_allclose(cam_frame[..., 2], proj.depth)
    pinhole = cam_frame[..., :2] / cam_frame[..., 2:] * rig.K[:, None, [0, 1], [0, 1]]
    np.testing.assert_allclose(
        pinhole + rig.K[:, None, :2, 2], rig.project(meshes, distort=False).uv, atol=1e-9
    )
    for m in range(4):
        for v, cam in enumerate(rig):
            one = cam.project(meshes[m])
            np.testing.assert_allclose(proj.uv[m, v], one.uv, atol=1e-9)
            np.testing.assert_array_equal(proj.visible[m, v], one.visible)


def test_bad_shapes_raise() -> None:
    cam = load_h36m_s1()[0]
    with pytest.raises(ValueError, match="K must be"):
        project(np.zeros((2, 3)), cam.R, cam.t, np.eye(2), cam.dist)
    with pytest.raises(ValueError, match="dist must"):
        project(np.ones((2, 3)), cam.R, cam.t, cam.K, np.zeros(4))

"""The Human3.6M S1 rig, the volume centre and the interpolated cameras."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from cameras import Camera, Rig, make_rig, volume_centre
from cameras.data import SUBJECT_IDS, load_h36m_s1, load_raw
from cameras.rig import TWO_PI, cylindrical


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def _quat_slerp(q0: np.ndarray, q1: np.ndarray, s: float) -> np.ndarray:
    """Textbook quaternion slerp on the shorter arc."""
    q0, q1 = q0 / np.linalg.norm(q0), q1 / np.linalg.norm(q1)
    d = float(q0 @ q1)
    if d < 0:
        q1, d = -q1, -d
    th = math.acos(min(1.0, d))
    return (math.sin((1 - s) * th) * q0 + math.sin(s * th) * q1) / math.sin(th)


def test_real_cameras_are_the_published_ones() -> None:
    cams = load_h36m_s1()
    assert [c.id for c in cams] == list(SUBJECT_IDS)
    raw = load_raw()
    assert "VideoPose3D" in raw["source"] and "Human3.6M" in raw["source"]
    for cam, entry in zip(cams, raw["cameras"], strict=True):
        assert cam.centre == pytest.approx(np.array(entry["translation"]) / 1000, abs=1e-9)
        assert cam.K[0, 0] == entry["focal_length"][0] and cam.K[1, 2] == entry["center"][1]
        k, p = entry["radial_distortion"], entry["tangential_distortion"]
        assert cam.dist.tolist() == [k[0], k[1], p[0], p[1], k[2]]
        assert (cam.width, cam.height) == (entry["res_w"], entry["res_h"])
        assert np.allclose(cam.R @ cam.R.T, np.eye(3)) and np.linalg.det(cam.R) == pytest.approx(1)


def test_real_cameras_look_at_volume_and_are_upright() -> None:
    rig = make_rig(4)
    for cam in rig:
        assert _angle_deg(cam.forward, rig.centre - cam.centre) < 5.0
        assert cam.R[1] @ [0, 0, 1] < -0.9  # image y (down) points to world -z
        assert 1.3 < cam.centre[2] < 1.8  # mounted at about 1.5 m


def test_volume_centre_is_least_squares_point_of_axes() -> None:
    cams = load_h36m_s1()

    def cost(x: np.ndarray) -> float:
        total = 0.0
        for c in cams:
            d = x - c.centre
            total += float(d @ d - (d @ c.forward) ** 2)
        return total

    ref = minimize(cost, np.zeros(3), method="Nelder-Mead", options=dict(xatol=1e-9, fatol=1e-14))
    assert volume_centre(cams) == pytest.approx(ref.x, abs=1e-5)
    assert 0.0 < ref.x[2] < 1.5  # above the floor, below the cameras


@pytest.mark.parametrize(
    "views, real", [(1, ["54138969"]), (2, ["54138969", "55011271"]), (4, list(SUBJECT_IDS))]
)
def test_small_rigs_take_real_cameras(views: int, real: list[str]) -> None:
    rig = make_rig(views)
    assert rig.ids == real and not rig.interpolated.any()


def test_eight_views_are_real_plus_midpoints() -> None:
    rig = make_rig(8)
    assert rig.ids[:4] == make_rig(4).ids
    assert rig.interpolated.tolist() == [False] * 4 + [True] * 4
    real = {c.id: c for c in rig[:4]}
    az = {i: cylindrical(c.centre, rig.centre)[0] for i, c in real.items()}
    # each real camera is the neighbour of exactly two interpolated ones
    pairs = [c.id.split("+") for c in rig[4:]]
    assert sorted(i for p in pairs for i in p) == sorted(list(SUBJECT_IDS) * 2)
    for cam, (ia, ib) in zip(rig[4:], pairs, strict=True):
        a, b = real[ia], real[ib]
        phi, r, h = cylindrical(cam.centre, rig.centre)
        span = (az[ib] - az[ia]) % TWO_PI
        off = (phi - az[ia]) % TWO_PI
        # azimuth halfway along the arc from a to b, and no other real camera on that arc
        assert 0 < off < span and off == pytest.approx(span / 2)
        assert all((az[k] - az[ia]) % TWO_PI >= span for k in real if k not in (ia, ib))
        ra, rb = (cylindrical(c.centre, rig.centre)[1] for c in (a, b))
        assert min(ra, rb) <= r <= max(ra, rb) and r == pytest.approx((ra + rb) / 2)
        assert h == pytest.approx((a.centre[2] + b.centre[2]) / 2)
        # aims at the volume centre
        assert _angle_deg(cam.forward, rig.centre - cam.centre) < 1.0
        assert cam.R[1] @ [0, 0, 1] < -0.9
        # intrinsics averaged
        assert cam.K == pytest.approx((a.K + b.K) / 2)
        assert cam.dist == pytest.approx((a.dist + b.dist) / 2)


def test_interpolated_rotation_is_slerp_plus_minimal_aim() -> None:
    rig = make_rig(8)
    real = {c.id: c for c in rig[:4]}
    for cam in rig[4:]:
        a, b = (real[i] for i in cam.id.split("+"))
        qa = Rotation.from_matrix(a.R).as_quat(scalar_first=True)
        qb = Rotation.from_matrix(b.R).as_quat(scalar_first=True)
        ref = Rotation.from_quat(_quat_slerp(qa, qb, 0.5), scalar_first=True).as_matrix()
        # the only change to the slerped rotation is turning its axis onto the centre:
        # geodesic distance == angle between the two optical axes, and a few degrees at most
        geo = np.degrees(Rotation.from_matrix(cam.R @ ref.T).magnitude())
        assert geo == pytest.approx(_angle_deg(ref[2], cam.forward), abs=1e-6)
        assert geo < 5.0
        # slerp halfway: equal geodesic distance to both ends (before the small correction)
        da = Rotation.from_matrix(ref @ a.R.T).magnitude()
        db = Rotation.from_matrix(ref @ b.R.T).magnitude()
        assert da == pytest.approx(db, rel=1e-6)


@pytest.mark.parametrize("views", [3, 5, 6, 12])
def test_other_counts_give_even_ring(views: int) -> None:
    rig = make_rig(views)
    assert len(rig) == views
    az = np.array([cylindrical(c.centre, rig.centre)[0] for c in rig])
    steps = np.diff(np.unwrap(az))
    assert steps == pytest.approx(np.full(views - 1, TWO_PI / views))
    assert rig[0].id == "54138969" and not rig[0].interpolated
    for cam in rig:
        assert _angle_deg(cam.forward, rig.centre - cam.centre) < (
            5.0 if not cam.interpolated else 1.0
        )


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_view_count(bad: object) -> None:
    with pytest.raises(ValueError, match="views"):
        make_rig(bad)  # type: ignore[arg-type]


def test_json_round_trip() -> None:
    rig = make_rig(8)
    again = Rig.from_json(json.dumps(json.loads(rig.to_json())))
    assert again.ids == rig.ids
    np.testing.assert_array_equal(again.R, rig.R)
    np.testing.assert_array_equal(again.t, rig.t)
    np.testing.assert_array_equal(again.dist, rig.dist)
    np.testing.assert_array_equal(again.centre, rig.centre)
    assert again.interpolated.tolist() == rig.interpolated.tolist()


def test_camera_validation() -> None:
    cam = load_h36m_s1()[0]
    d = cam.to_dict()
    with pytest.raises(ValueError, match="missing R"):
        Camera.from_dict({k: v for k, v in d.items() if k != "R"})
    with pytest.raises(ValueError, match="not a rotation"):
        Camera.from_dict({**d, "R": (2 * np.eye(3)).tolist()})


def test_bad_data_file(tmp_path) -> None:
    doc = load_raw()
    del doc["cameras"][2]["orientation"]
    path = tmp_path / "cams.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"cams\.json: camera 58860488 lacks 'orientation'"):
        load_h36m_s1(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"cams\.json: cannot read"):
        load_h36m_s1(path)

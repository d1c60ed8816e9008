"""All subjects' Human3.6M cameras: the data file, its conversion, and VideoPose3D's formulas."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cameras.data import load_h36m_s1
from cameras.h36m import CAMERA_IDS, DATA_FILE, h36m_subjects, load_h36m_cameras
from tests.cameras.vp3d_reference import project_pixels, world_to_camera

# spot values typed from VideoPose3D common/h36m_dataset.py (h36m_cameras_extrinsic_params)
PUBLISHED = {
    ("S9", 0): (
        [0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243],
        [2044.45849609375, 4935.1171875, 1481.2275390625],
    ),
    ("S11", 0): (
        [0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467],
        [2098.440185546875, 4926.5546875, 1500.278564453125],
    ),
}


def doc() -> dict:
    return json.loads(DATA_FILE.read_text())


def test_file_holds_the_published_subjects_and_values():
    d = doc()
    assert h36m_subjects() == ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]
    assert tuple(c["id"] for c in d["intrinsics"]) == CAMERA_IDS
    assert "VideoPose3D" in d["source"] and "Human3.6M" in d["source"]
    for (s, c), (q, t) in PUBLISHED.items():
        assert d["extrinsics"][s][c] == {"orientation": q, "translation": t}
    # S1 matches the rig's own file exactly (same source, copied verbatim)
    s1 = json.loads(DATA_FILE.with_name("h36m_s1.json").read_text())["cameras"]
    for i, cam in enumerate(s1):
        assert {k: cam[k] for k in d["intrinsics"][i]} == d["intrinsics"][i]
        assert [cam["orientation"], cam["translation"]] == list(d["extrinsics"]["S1"][i].values())


def test_s1_equals_the_rig_cameras():
    for a, b in zip(load_h36m_cameras("S1"), load_h36m_s1()):
        for k in ("R", "t", "K", "dist"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


def test_subjects_differ_and_centres_match_the_published_translation():
    d = doc()
    for s in h36m_subjects():
        for i, cam in enumerate(load_h36m_cameras(s)):
            assert cam.name == f"{s}-C{i + 1}" and cam.id == CAMERA_IDS[i]
            c_mm = np.array(d["extrinsics"][s][i]["translation"])
            np.testing.assert_allclose(cam.centre, c_mm / 1000.0, atol=1e-12)
    assert not np.allclose(load_h36m_cameras("S9")[0].R, load_h36m_cameras("S11")[0].R)


def test_unknown_subject_names_the_file():
    with pytest.raises(ValueError, match=r"h36m_cameras\.json: no cameras for subject 'S2'"):
        load_h36m_cameras("S2")


def test_camera_frame_and_projection_match_videopose3d_formulas():
    """A few frames of a body in S9's and S11's volume: X_cam and pixels, both ways."""
    rng = np.random.default_rng(3)
    d = doc()
    pts = np.array([0.0, 0.4, 0.9]) + rng.normal(scale=0.4, size=(5, 17, 3))  # world, metres
    for s in ("S9", "S11"):
        for i, cam in enumerate(load_h36m_cameras(s)):
            e = d["extrinsics"][s][i]
            ref_cam = world_to_camera(pts, e["orientation"], e["translation"])
            ours_cam = pts @ cam.R.T + cam.t
            # the published quaternions are float32-rounded, |q| = 1 +- 1e-7: VideoPose3D's
            # qrot scales by |q|^2, scipy normalises, hence micrometres, not exact equality
            np.testing.assert_allclose(ours_cam, ref_cam, atol=2e-6)
            ref_uv = project_pixels(ref_cam, d["intrinsics"][i])
            proj = cam.project(pts)
            assert proj.visible.all()  # the test bodies are in view (no clamping involved)
            np.testing.assert_allclose(proj.uv, ref_uv, atol=1e-3)
            # same formulas applied to our camera-frame points: equal to rounding
            np.testing.assert_allclose(
                proj.uv, project_pixels(ours_cam, d["intrinsics"][i]), atol=1e-9
            )

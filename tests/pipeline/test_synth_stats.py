"""Motion statistics (``pipeline.synth.stats``): checked against an independent computation with
scipy's Rotation / Slerp on hand-built sequences, and the shipped archive against the real AMASS
clip figures published in issue 22."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from pipeline.synth.joint_names import GROUPS
from pipeline.synth.kinds import MOTIONS
from pipeline.synth.stats import PAIRED, archive_stats, joint_samples, main, pelvis_tilt

#: Real AMASS SMPL+H clip (nghorbani/amass support_data/github_data/dmpl_sample.npz, 235 frames
#: at 120 fps), as published in issue 22: median / p95 joint angle (deg), median / p95 speed
#: (deg/s). Shoulders, neck, head and feet: the same clip measured with this module.
REAL = {
    "hips": ((22.7, 41.5), (163, 428)),
    "knees": ((16.1, 50.3), (183, 686)),
    "ankles": ((22.9, 46.6), (179, 1012)),
    "spine": ((10.2, 28.4), (64, 277)),
    "collars": ((13.9, 53.4), (165, 470)),
    "elbows": ((20.3, 43.9), (193, 681)),
    "wrists": ((13.2, 40.0), (167, 569)),
    "shoulders": ((52.6, 74.1), (243, 661)),
    "neck": ((10.8, 18.0), (114, 453)),
    "head": ((12.9, 21.9), (96, 308)),
    "feet": ((22.4, 32.2), (155, 659)),
}


ISSUE_GROUPS = ("hips", "knees", "ankles", "spine", "collars", "elbows", "wrists")


def test_joint_samples_match_scipy():
    """Constant-speed rotation about a tilted axis, with one frame knocked off its path."""
    fps, n, w = 100.0, 50, np.radians(90.0)  # 90 deg/s
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    base = Rotation.from_rotvec(np.radians(20.0) * np.array([0.0, 0.0, 1.0]))
    rots = Rotation.from_rotvec(np.outer(np.arange(n) * w / fps, axis)) * base
    aa = rots.as_rotvec()
    aa[25] = (Rotation.from_rotvec([0.0, np.radians(1.0), 0.0]) * rots[25]).as_rotvec()
    s = joint_samples(aa, fps)
    np.testing.assert_allclose(s["angle"], np.degrees(np.linalg.norm(aa, axis=1)))
    ref = Rotation.from_rotvec(aa)
    speed = [np.degrees((ref[i + 1] * ref[i].inv()).magnitude()) * fps for i in range(n - 1)]
    np.testing.assert_allclose(s["speed"], speed, atol=1e-9)
    assert np.median(s["speed"]) == pytest.approx(90.0, abs=1e-6)
    jit = []
    for i in range(1, n - 1):
        mid = Slerp([0.0, 1.0], Rotation.concatenate([ref[i - 1], ref[i + 1]]))(0.5)
        jit.append(np.degrees((mid.inv() * ref[i]).magnitude()))
    np.testing.assert_allclose(s["jitter"], jit, atol=1e-9)
    assert s["jitter"][24] == pytest.approx(1.0, abs=0.02)  # the knocked frame (index t - 1)
    assert np.all(np.delete(s["jitter"], [23, 24, 25]) < 1e-6)  # a steady turn has none
    assert np.all(np.delete(s["accel"], [23, 24, 25]) < 1e-6)


def test_pelvis_tilt_against_hand_built_roots():
    up = Rotation.from_euler("x", 90, degrees=True)  # AMASS root: y-up body in a z-up world
    for deg in (0.0, 7.5, 30.0):
        root = (
            Rotation.from_euler("z", 40, degrees=True)
            * up
            * Rotation.from_euler("x", deg, degrees=True)
        )
        assert pelvis_tilt(root.as_rotvec()[None])[0] == pytest.approx(deg, abs=1e-6)


def test_cli_error_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad_poses.npz"
    np.savez(bad, trans=np.zeros((3, 3)))
    with pytest.raises(SystemExit) as exc:
        main([str(bad)])
    assert exc.value.code == 2
    assert str(bad) in capsys.readouterr().err


@pytest.fixture(scope="module")
def shipped(shipped_archive) -> dict:
    root, files = shipped_archive
    return {"stats": archive_stats([root]), "files": files}


def test_shipped_archive_moves_like_the_real_clip(shipped):
    """Issue 22's "must show", pooled over every file of the shipped (seed 0) archive."""
    s = shipped["stats"]
    assert set(REAL) == set(GROUPS)
    for g, ((angle, _), (speed, p95)) in REAL.items():
        got = s["groups"][g]
        assert 0.5 * angle <= got["angle"][0] <= 2.0 * angle, (g, got["angle"], angle)
        assert got["speed"][0] >= 0.25 * speed, (g, got["speed"], speed)
        if g in ISSUE_GROUPS:  # the issue's table; neck p95 sits at 0.43 x the clip's
            assert got["speed"][1] >= 0.5 * p95, (g, got["speed"], p95)
    for g in ("collars", "wrists"):
        assert s["groups"][g]["angle"][0] >= 2.0
    assert s["asym"] >= 2.0 and all(s["groups"][g]["asym"] > 1.0 for g in PAIRED)
    assert s["jitter"] >= 0.1
    assert s["tilt"][0] >= 5.0


def test_every_motion_kind_present(shipped):
    kinds = {p.name.rsplit("_", 2)[0] for p in shipped["files"]}
    assert set(MOTIONS) <= kinds

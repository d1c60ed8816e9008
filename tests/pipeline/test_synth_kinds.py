"""The registry of motion kinds (``pipeline.synth.kinds``) and what the everyday and
range-of-motion kinds do: clips performed by a subject, planted and posed by forward kinematics
on the shipped body model (heights in metres over the floor, z-up)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline.synth import SHIPPED_BODY_MODELS, workout
from pipeline.synth.archive import track_to_amass
from pipeline.synth.joint_names import JOINT_INDEX as J
from pipeline.synth.kinds import FAMILY, MOTIONS
from pipeline.synth.skeleton import JOINT_LIMITS, body_skeleton, pose_to_euler, posed_joints
from pipeline.synth.style import perform, subject_style

FPS = 30.0
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def skeleton():
    return body_skeleton(SHIPPED_BODY_MODELS, "female", np.zeros(16))


def _clip(kind: str, seed: int, skeleton) -> tuple:
    """One take of ``kind``: its Track, AMASS poses and world joints (N, 22, 3)."""
    style = subject_style(np.random.default_rng([seed, 1]))
    tr = perform(kind, np.random.default_rng([seed, 2]), FPS, False, style)
    poses, trans = track_to_amass(tr, skeleton, np.zeros(2), 0.3 * seed)
    n = len(poses)
    rot = Rotation.from_rotvec(poses[:, :66].reshape(-1, 3)).as_matrix().reshape(n, 22, 3, 3)
    pos = posed_joints(rot, skeleton[0], skeleton[1]) + trans[:, None]
    return tr, poses, pos


def test_every_kind_has_a_known_family():
    assert set(FAMILY) == set(MOTIONS)
    assert set(FAMILY.values()) <= {"gait", "jump", "arms", "low", "floor", "whole"}
    for kind, (builder, (lo, hi)) in MOTIONS.items():
        assert callable(builder) and 0 < lo <= hi <= 10, kind


@pytest.mark.parametrize("kind", sorted(MOTIONS))
def test_kind_is_finite_and_within_joint_limits(kind, skeleton):
    for seed in SEEDS[:2]:
        tr, poses, pos = _clip(kind, seed, skeleton)
        for a in (tr.euler, tr.tilt, tr.heading, tr.lift, poses, pos):
            assert np.all(np.isfinite(a)), kind
        euler = pose_to_euler(poses)
        for j, lim in JOINT_LIMITS.items():
            e = euler[:, j]
            assert np.all(e >= lim[:, 0] - 1e-6) and np.all(e <= lim[:, 1] + 1e-6), (kind, j)


def test_takes_of_a_kind_differ(skeleton):
    for kind in ("stretch", "kneel", "rom", "swing", "workout"):
        builder, _ = MOTIONS[kind]
        a, b = (_clip(kind, s, skeleton)[1] for s in (0, 1))
        n = min(len(a), len(b))
        assert np.abs(a[:n, 3:66] - b[:n, 3:66]).mean() > 0.02, kind


def test_get_up_starts_lying_and_ends_standing(skeleton):
    for seed in SEEDS:
        _, _, pos = _clip("get_up", seed, skeleton)
        pelvis, head = pos[:, J["pelvis"], 2], pos[:, J["head"], 2]
        k = int(0.3 * FPS)
        assert pelvis[:k].mean() < 0.35 and head[:k].mean() < 0.45, (seed, pelvis[:k], head[:k])
        assert pelvis[-k:].mean() > 0.8 and head[-k:].mean() > 1.3, seed
        assert pos[..., 2].min() > -0.05, seed  # no joint sinks into the floor


def test_kneel_puts_a_knee_on_the_floor(skeleton):
    for seed in SEEDS:
        _, _, pos = _clip("kneel", seed, skeleton)
        knee = pos[:, [J["left_knee"], J["right_knee"]], 2].min(axis=1)
        assert knee.min() < 0.12, (seed, knee.min())
        assert knee.min() > -0.03, (seed, knee.min())
        assert knee[: int(0.3 * FPS)].min() > 0.35 and knee[-int(0.2 * FPS) :].min() > 0.35


def test_sit_floor_sits_low_and_gets_back_up(skeleton):
    for seed in SEEDS:
        _, _, pos = _clip("sit_floor", seed, skeleton)
        pelvis = pos[:, J["pelvis"], 2]
        assert pelvis.min() < 0.3 and pelvis[-int(0.2 * FPS) :].mean() > 0.8, seed


def test_stretch_raises_the_hands_over_the_head(skeleton):
    for seed in SEEDS:
        _, _, pos = _clip("stretch", seed, skeleton)
        wrists = pos[:, [J["left_wrist"], J["right_wrist"]], 2].min(axis=1)
        assert (wrists - pos[:, J["head"], 2]).max() > 0.1, seed


def _arm_elevation(pos: np.ndarray, side: str) -> np.ndarray:
    """Angle (deg) between the upper arm and the trunk's downward axis (0: hanging)."""
    arm = pos[:, J[f"{side}_elbow"]] - pos[:, J[f"{side}_shoulder"]]
    down = pos[:, J["pelvis"]] - pos[:, J["neck"]]
    cos = (arm * down).sum(-1) / np.linalg.norm(arm, axis=-1) / np.linalg.norm(down, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_rom_reaches_published_shoulder_range(skeleton):
    for seed in SEEDS:
        _, _, pos = _clip("rom", seed, skeleton)
        top = max(_arm_elevation(pos, s).max() for s in ("left", "right"))
        assert top > 150.0, (seed, top)
        feet = pos[:, [J["left_foot"], J["right_foot"], J["left_ankle"], J["right_ankle"]], 2]
        assert feet.min(axis=1).max() < 0.1  # a standing foot stays on the floor throughout


def test_pick_up_reaches_the_floor_and_the_shelf(skeleton):
    for seed in SEEDS:
        _, _, pos = _clip("pick_up", seed, skeleton)
        hands = pos[:, [J["left_wrist"], J["right_wrist"]], 2].mean(axis=1)
        assert hands.min() < 0.45 and (hands - pos[:, J["head"], 2]).max() > 0.1, seed


def _exercise(monkeypatch, skeleton, exercise, seed: int) -> np.ndarray:
    """World joints of one ``workout`` take made of ``exercise`` alone."""
    monkeypatch.setattr(workout, "_EXERCISES", (exercise,) * 4)
    return _clip("workout", seed, skeleton)[2]


def _elbow_flexion(pos: np.ndarray, side: str) -> np.ndarray:
    """Elbow flexion (deg): angle between the upper arm and the forearm (0: straight)."""
    upper = pos[:, J[f"{side}_elbow"]] - pos[:, J[f"{side}_shoulder"]]
    fore = pos[:, J[f"{side}_wrist"]] - pos[:, J[f"{side}_elbow"]]
    cos = (upper * fore).sum(-1) / np.linalg.norm(upper, axis=-1) / np.linalg.norm(fore, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _forward(pos: np.ndarray) -> np.ndarray:
    """(N, 3) horizontal unit vector the pelvis faces (left hip to right hip, turned 90 deg)."""
    across = pos[:, J["left_hip"]] - pos[:, J["right_hip"]]
    fwd = np.stack([across[:, 1], -across[:, 0], np.zeros(len(pos))], axis=1)
    return fwd / np.linalg.norm(fwd, axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["_twist", "_sumo_squat"])
def test_workout_holds_the_hands_before_the_chest(monkeypatch, skeleton, name):
    """Twists and sumo squats hold both hands before the chest, elbows bent 75-125 deg."""
    for seed in SEEDS:
        pos = _exercise(monkeypatch, skeleton, getattr(workout, name), seed)
        chest = pos[:, J["spine3"]]
        ahead = np.stack([((pos[:, J[f"{s}_wrist"]] - chest) * _forward(pos)).sum(-1)
                          for s in ("left", "right")], 1).min(1)  # fmt: skip
        height = pos[:, [J["left_wrist"], J["right_wrist"]], 2].min(1) - chest[:, 2]
        flex = np.minimum(_elbow_flexion(pos, "left"), _elbow_flexion(pos, "right"))
        held = (ahead > 0.1) & (height > -0.15) & (flex > 75) & (flex < 125)
        assert held.mean() > 0.2, (name, seed, held.mean())


def test_workout_wide_side_bend_raises_an_arm_over_a_wide_stance(monkeypatch, skeleton):
    for seed in SEEDS:
        pos = _exercise(monkeypatch, skeleton, workout._wide_side_bend, seed)
        hips = np.linalg.norm(pos[:, J["left_hip"]] - pos[:, J["right_hip"]], axis=1)
        feet = np.linalg.norm(pos[:, J["left_ankle"]] - pos[:, J["right_ankle"]], axis=1)
        over = pos[:, [J["left_wrist"], J["right_wrist"]], 2].max(1) - pos[:, J["head"], 2]
        assert ((feet > 4.0 * hips) & (over > 0.1)).any(), seed  # standing: 1.7-3.1 x


def test_workout_pogo_leaves_the_floor(monkeypatch, skeleton):
    for seed in SEEDS:
        pos = _exercise(monkeypatch, skeleton, workout._pogo, seed)
        low = pos[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]], 2]
        low = low.min(1)
        assert low.max() - np.median(low[: int(0.3 * FPS)]) > 0.03, seed

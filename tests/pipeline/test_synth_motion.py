"""Generated AMASS-format archive: layout, determinism, motion sanity (limits, smoothness, floor).

Joints in these tests come straight from the shipped body-model files through smplx
(``vertices2joints`` on the shaped template, then ``batch_rigid_transform``), not through the
generator's own skeleton reader.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rigid_transform, blend_shapes, vertices2joints

from pipeline.synth import SHIPPED_BODY_MODELS, skeleton
from pipeline.synth.archive import generate_archive
from pipeline.synth.skeleton import JOINT_LIMITS

#: SMPL-H kinematic tree (22 body joints, then 15 per hand), as the real model files store it.
SMPLH_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
SMPLH_PARENTS += [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]
SMPLH_PARENTS += [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50]

SMPLH_KEYS = {"trans", "gender", "mocap_framerate", "betas", "dmpls", "poses"}
SMPLX_KEYS = {
    "gender", "surface_model_type", "mocap_frame_rate", "mocap_time_length", "trans", "poses",
    "betas", "num_betas", "root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye",
}  # fmt: skip


@pytest.fixture(scope="module")
def full_archive(shipped_archive) -> tuple[Path, list[Path]]:
    return shipped_archive


def _smplh_poses(d) -> np.ndarray:
    if "root_orient" in d:
        return np.concatenate([d["root_orient"], d["pose_body"], d["pose_hand"]], axis=1)
    return d["poses"]


def _fps(d) -> float:
    return float(d["mocap_framerate"] if "mocap_framerate" in d else d["mocap_frame_rate"])


def _rest_joints(models: Path, gender: str, betas: np.ndarray) -> torch.Tensor:
    """(1, 52, 3) rest joints of a model file shaped by ``betas`` (smplx's own functions)."""
    with np.load(models / "smplh" / gender / "model.npz") as m:
        t = {k: torch.as_tensor(m[k], dtype=torch.float64) for k in ("v_template", "shapedirs")}
        jreg = torch.as_tensor(m["J_regressor"], dtype=torch.float64)
        assert m["kintree_table"][0, 1:].tolist() == SMPLH_PARENTS[1:]
    k = t["shapedirs"].shape[-1]
    b = torch.as_tensor(betas[None, :k], dtype=torch.float64)
    return vertices2joints(jreg, t["v_template"] + blend_shapes(b, t["shapedirs"]))


def _world_joints(poses: np.ndarray, trans: np.ndarray, rest: torch.Tensor) -> np.ndarray:
    """(N, 22, 3) posed body joints in the world with smplx's kinematic chain."""
    n = poses.shape[0]
    rot = Rotation.from_rotvec(poses[:, :66].reshape(-1, 3)).as_matrix().reshape(n, 22, 3, 3)
    posed, _ = batch_rigid_transform(
        torch.as_tensor(rot),
        rest[:, :22].expand(n, 22, 3).contiguous(),
        torch.as_tensor(SMPLH_PARENTS[:22]),
        dtype=torch.float64,
    )
    return posed.numpy() + trans[:, None]


@pytest.fixture(scope="module")
def clips(full_archive) -> list[dict]:
    """Every clip of the full archive with its world joints (the shipped body models)."""
    out = []
    for p in full_archive[1]:
        with np.load(p) as d:
            poses, trans, fps = _smplh_poses(d), d["trans"], _fps(d)
            gender, betas = str(d["gender"]), d["betas"]
        pos = _world_joints(poses, trans, _rest_joints(SHIPPED_BODY_MODELS, gender, betas))
        out.append({"path": p, "poses": poses, "trans": trans, "fps": fps, "pos": pos})
    return out


#: Kinds whose feet leave the floor or land hard (landings may dip a little).
AIRBORNE = ("jump", "jumping_jacks", "run", "skip", "hop", "high_knees", "workout")  # pogo hops
#: Kinds that lie, sit or kneel on the floor (not upright throughout).
ON_FLOOR = ("get_up", "sit_floor", "kneel")
#: Kinds that bring a knee up to hip height (kicks, knee to the chest, high knees, climbing).
KNEE_UP = ("kick", "rom", "climb", "high_knees")


def _kind(path: Path) -> str:
    return path.name.rsplit("_", 2)[0]


def test_archive_layout(full_archive):
    root, files = full_archive
    smplh = [p for p in files if p.name.endswith("_poses.npz")]
    smplx = [p for p in files if p.name.endswith("_stageii.npz")]
    assert smplx and len(smplh) >= 48
    subsets = {p.relative_to(root).parts[0] for p in smplh}
    subjects = {p.parent for p in smplh}
    assert len(subsets) >= 4 and len(subjects) == 10
    genders, betas, kinds, total = set(), {}, set(), 0.0
    for p in smplh:
        with np.load(p) as d:
            assert set(d.files) == SMPLH_KEYS
            n = d["poses"].shape[0]
            assert d["poses"].shape == (n, 156) and d["poses"].dtype == np.float64
            assert d["trans"].shape == (n, 3) and d["dmpls"].shape == (n, 8)
            assert d["betas"].shape == (16,)
            assert d["gender"].shape == () and d["gender"].dtype.kind == "U"  # np.array("male")
            fps = _fps(d)
            assert 60 <= fps <= 120
            total += n / fps
            assert 1.0 <= n / fps <= 8.0
            genders.add(str(d["gender"]))
            betas[p.parent] = d["betas"]
        kinds.add(_kind(p))
    assert genders == {"male", "female"}
    b = np.stack(list(betas.values()))
    assert len({row.tobytes() for row in b}) == 10  # distinct subjects
    assert 0.4 < b.std() < 1.8 and abs(b.mean()) < 0.6  # ~N(0, 1)
    assert len(kinds) >= 12
    assert 120 <= total <= 720  # a few minutes of motion (637 s of SMPL+H since the warm-up kind)
    for p in smplx:
        with np.load(p) as d:
            assert set(d.files) == SMPLX_KEYS
            assert str(d["surface_model_type"]) == "smplx"
            n = d["trans"].shape[0]
            assert d["poses"].shape == (n, 165) and d["pose_hand"].shape == (n, 90)
            np.testing.assert_array_equal(d["poses"][:, 3:66], d["pose_body"])
            np.testing.assert_array_equal(d["poses"][:, 66:69], d["pose_jaw"])
            np.testing.assert_array_equal(d["poses"][:, 75:], d["pose_hand"])


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.npz"))
    }


def test_determinism(tmp_path):
    a = generate_archive(tmp_path / "a", seed=5, small=True)
    generate_archive(tmp_path / "b", seed=5, small=True)
    generate_archive(tmp_path / "c", seed=6, small=True)
    assert 4 <= len(a) <= 12
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db  # byte-identical
    assert set(da) == set(dc) or da != dc
    changed = [k for k in da if k in dc and da[k] != dc[k]]
    assert changed, "another seed must change the motions"
    # regenerating over an existing archive leaves exactly the new run's files
    (tmp_path / "a" / "SynthCMU" / "s99").mkdir()
    np.savez(tmp_path / "a" / "SynthCMU" / "s99" / "old_poses.npz", poses=np.zeros((1, 156)))
    generate_archive(tmp_path / "a", seed=6, small=True)
    assert _digest(tmp_path / "a") == dc
    assert not (tmp_path / "a" / "SynthCMU" / "s99").exists()


def test_joint_limits_and_anatomy(full_archive):
    _, files = full_archive
    for p in files:
        with np.load(p) as d:
            poses = _smplh_poses(d)
        euler = skeleton.pose_to_euler(poses)
        # decomposition must reproduce the rotation (checks the Euler convention round trip)
        back = Rotation.from_euler(skeleton.EULER_SEQ, euler.reshape(-1, 3)[:, [1, 2, 0]])
        np.testing.assert_allclose(back.as_rotvec(), poses.reshape(-1, 3), atol=1e-6)
        for j, lim in JOINT_LIMITS.items():
            e = euler[:, j]
            assert np.all(e >= lim[:, 0] - 1e-6) and np.all(e <= lim[:, 1] + 1e-6), (p.name, j)
        aa = poses.reshape(-1, 52, 3)
        angle = np.linalg.norm(aa[:, 1:], axis=-1)
        # full shoulder flexion (~170-180 deg from the hanging arm) is up to ~178 deg from the
        # T-pose rest
        shoulders = [j - 1 for j in (16, 17)]
        assert np.delete(angle, shoulders, axis=1).max() < 2.7, p.name
        assert angle[:, shoulders].max() < 3.1, p.name
        # knees bend one way only (flexion is +x in the SMPL rest frame): no hyper-extension
        for j in (4, 5):
            assert np.all(aa[:, j, 0] > -0.06), p.name
        # elbows: left flexes about -y, right about +y. The Euler flexion stays in [0, 2.6]
        # (JOINT_LIMITS, above); the axis-angle's y may dip below 0 when the forearm also
        # twists, by at most ~6 deg here (elbows hyper-extend 5-10 deg in many adults)
        assert np.all(aa[:, 18, 1] < 0.1) and np.all(aa[:, 19, 1] > -0.1), p.name


def test_smooth_in_time(clips):
    for c in clips:
        p, poses, trans, fps, pos = c["path"], c["poses"], c["trans"], c["fps"], c["pos"]
        # bounded finite-difference accelerations (joints in m/s^2, trans, body joint angles);
        # mocap texture makes them rough: the real AMASS clip of issue 22 (dmpl_sample.npz,
        # 120 fps) reaches 419 m/s^2 (joints, shipped female model), 157 (trans), 2,507 rad/s^2
        acc = np.linalg.norm(np.diff(pos, 2, axis=0), axis=-1).max() * fps**2
        assert acc < 2500, (p.name, acc)
        tacc = np.linalg.norm(np.diff(trans, 2, axis=0), axis=-1).max() * fps**2
        assert tacc < 160, (p.name, tacc)
        ang_acc = np.abs(np.diff(poses[:, 3:66], 2, axis=0)).max() * fps**2
        assert ang_acc < 4000, (p.name, ang_acc)  # rad/s^2 (box punches reach ~3,300)
        # root orientation: rotation between consecutive frames stays small
        r = Rotation.from_rotvec(poses[:, :3])
        step = (r[1:] * r[:-1].inv()).magnitude().max() * fps
        assert step < 15.0, (p.name, step)  # rad/s (a throw's pelvis turns ~10 rad/s, as real)


def test_upright_z_up_and_feet_on_floor(clips):
    for c in clips:
        p, pos = c["path"], c["pos"]
        feet = pos[:, [7, 8, 10, 11], 2].min(axis=1)
        kind = _kind(p)
        airborne = kind in AIRBORNE
        # landings dip (a jump of the 15-clip archive by 3.4 cm)
        assert feet.min() > (-0.04 if airborne else 0.0), (p.name, feet.min())
        assert np.percentile(feet, 10) < 0.08, (p.name, feet)  # touches the floor
        if airborne:
            assert feet.max() < 0.6
        else:
            assert feet.max() < 0.12, (p.name, feet.max())
        if kind in ON_FLOOR:  # lying, sitting, kneeling: see tests/pipeline/test_synth_kinds.py
            continue
        # the head is above the pelvis, the pelvis above the knees: z-up world
        head, pelvis = pos[:, 15, 2], pos[:, 0, 2]
        # (a deep forward bend may bring the head down to pelvis height, as a real one does)
        deep = kind in ("bend", "floor_reach", "pick_up")  # pick_up: a stoop to the floor
        assert np.median(head - pelvis) > (0.3 if deep else 0.4), (p.name, head - pelvis)
        assert np.all(head > pelvis + (-0.3 if deep else 0.2)), p.name
        # a kick chambers the knee up to hip height; deep squats and landings bring the hips
        # to knee height
        slack = {"squat": 0.06, "sit": 0.06, "crouch": 0.06, "jump": 0.15, "lunge": 0.1,
                 "pick_up": 0.06, "side_lunge": 0.1, "hop": 0.15}.get(kind, 0.0)  # fmt: skip
        if kind not in KNEE_UP:
            assert np.all(pelvis > pos[:, [4, 5], 2].max(axis=1) - slack), p.name
        assert (0.35 if kind == "crouch" else 0.5) < np.median(pelvis) < 1.2  # crouch: low


def test_walk_moves_along_facing(full_archive):
    _, files = full_archive
    walks = [p for p in files if _kind(p) in ("walk", "run")]
    assert len(walks) >= 4
    for p in walks:
        with np.load(p) as d:
            poses, trans, fps = _smplh_poses(d), d["trans"], _fps(d)
        # facing = root rotation applied to SMPL's forward axis (+z in the rest frame)
        facing = Rotation.from_rotvec(poses[:, :3]).apply([0.0, 0.0, 1.0])
        # horizontal: the y-up -> z-up turn is there (runs lean forward up to ~27 deg)
        assert np.abs(facing[:, 2]).max() < 0.5
        half = len(trans) // 2
        disp = trans[-1, :2] - trans[half, :2]
        speed = np.linalg.norm(disp) / ((len(trans) - 1 - half) / fps)
        direction = disp / np.linalg.norm(disp)
        f = facing[half:, :2].mean(axis=0)
        assert direction @ (f / np.linalg.norm(f)) > 0.9, p.name
        lo, hi = (0.6, 2.0) if _kind(p) == "walk" else (1.8, 5.5)  # slow jog to fast run
        assert lo < speed < hi, (p.name, speed)


def test_feet_on_floor_with_generated_body_model(synth_data, tmp_path):
    """Planted with the embedded body model, its posed soles (smplx's LBS) touch z = 0."""
    from smplx.lbs import lbs

    models = Path(synth_data) / "body_models"
    files = generate_archive(tmp_path / "amass", seed=2, small=True, body_models=models)
    cache: dict[str, dict] = {}
    for p in files:
        with np.load(p) as d:
            poses, trans, betas = _smplh_poses(d), d["trans"], d["betas"]
            gender = str(d["gender"])
        if gender not in cache:
            with np.load(models / "smplh" / gender / "model.npz") as m:
                cache[gender] = {k: m[k] for k in m.files}
        m = cache[gender]
        idx = np.linspace(0, len(poses) - 1, 12).astype(int)
        k = min(m["shapedirs"].shape[-1], 16)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
        verts, joints = lbs(
            t(np.tile(betas[:k], (len(idx), 1))),
            t(poses[idx]),
            t(m["v_template"]),
            t(m["shapedirs"][..., :k]),
            t(m["posedirs"].reshape(-1, m["posedirs"].shape[-1]).T),
            t(m["J_regressor"]),
            torch.as_tensor(SMPLH_PARENTS),
            t(m["weights"]),
        )
        sole = verts.numpy()[..., 2].min(axis=1) + trans[idx, 2]
        feet = joints.numpy()[:, [7, 8, 10, 11], 2].min(axis=1) + trans[idx, 2]
        airborne = _kind(p) in AIRBORNE
        assert feet.min() > skeleton.FOOT_CLEARANCE - 0.035, (p.name, feet)
        assert feet.max() < skeleton.FOOT_CLEARANCE + (0.5 if airborne else 0.035), (p.name, feet)
        assert sole.min() > -0.06, (p.name, sole)
        assert (sole.min() if airborne else np.median(sole)) < 0.04, (p.name, sole)


def test_embedded_default_plants_with_sibling_body_models(synth_data, tmp_path):
    """``DIR/amass`` next to ``DIR/body_models`` is planted with those models (no wiring); with
    no sibling the shipped models plant it; other models give other heights."""
    import shutil

    root = Path(synth_data)
    explicit = tmp_path / "amass"
    generate_archive(explicit, seed=0, small=True, body_models=root / "body_models")
    assert _digest(root / "amass") == _digest(explicit)
    plain = tmp_path / "plain" / "amass"
    generate_archive(plain, seed=0, small=True)  # no sibling models: the shipped ones
    assert _digest(plain) == _digest(explicit)
    tall = tmp_path / "tall" / "body_models"
    shutil.copytree(root / "body_models", tall)
    for g in ("neutral", "male", "female"):
        path = tall / "smplh" / g / "model.npz"
        with np.load(path) as m:
            arrays = {k: m[k] for k in m.files}
        arrays["v_template"] = arrays["v_template"] * 1.1
        np.savez(path, **arrays)
    generate_archive(tall.parent / "amass", seed=0, small=True)
    with np.load(sorted((tall.parent / "amass").rglob("*_poses.npz"))[0]) as a:
        with np.load(sorted(explicit.rglob("*_poses.npz"))[0]) as b:
            np.testing.assert_array_equal(a["poses"], b["poses"])
            assert a["trans"][:, 2].mean() > b["trans"][:, 2].mean() + 0.05  # taller legs


def test_supporting_foot_does_not_slide(clips):
    """The lowest foot joint barely moves horizontally while the body travels (no skating).

    Velocities are taken over +-0.1 s, so the few-mm jitter of the mocap texture does not count
    as sliding; drift does.
    """
    for c in clips:
        kind = _kind(c["path"])
        if kind not in ("walk", "squat", "sit", "kick"):
            continue
        pos, fps = c["pos"], c["fps"]
        h = int(round(0.1 * fps))
        feet = pos[:, [7, 8, 10, 11], :2]
        low = pos[h:-h, [7, 8, 10, 11], 2].argmin(axis=1)
        vel = np.linalg.norm(feet[2 * h :] - feet[: -2 * h], axis=-1) / (2 * h / fps)
        foot = np.median(vel[np.arange(len(low)), low])
        trans = c["trans"][:, :2]
        body = np.median(np.linalg.norm(trans[2 * h :] - trans[: -2 * h], axis=-1)) / (2 * h / fps)
        if kind == "walk":
            # 0.12-0.22 x the body's speed on most takes; two walks of the 15-clip archive
            # reach 0.31 and 0.37 (known: their stance foot creeps forward)
            assert body > 0.6 and foot < 0.4 * body, (c["path"].name, foot, body)
        else:  # 0.06-0.15 m/s typical; one kick take of the 12-clip archive sits at 0.201
            assert foot < 0.25, (c["path"].name, foot)


def test_cli_preview_and_motion_sheet(synth_data, tmp_path):
    from PIL import Image

    from pipeline.synth.__main__ import main

    png = tmp_path / "preview.png"
    assert main(["--out", str(synth_data), "--preview", str(png)]) == 0
    w, h = Image.open(png).size
    assert w > 600 and h > 600
    sheet = tmp_path / "motions.png"  # `make figures`: the sheet of an existing archive
    n = len(list((synth_data / "amass").rglob("*_poses.npz")))
    assert main(["motions", "--out", str(synth_data / "amass"), "--png", str(sheet)]) == 0
    assert Image.open(sheet).size[1] > 200
    assert len(list((synth_data / "amass").rglob("*_poses.npz"))) == n  # nothing rewritten

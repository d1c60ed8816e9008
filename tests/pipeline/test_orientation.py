"""The build's orientation policy (``render.orientation``): ``keep`` leaves AMASS's own facing,
``range`` faces camera C1 (rig index 0) within +-deg and spreads; both keep every body in view
and pass ``shards verify``. ``uniform`` (the default) is the build of before (docs/build.md)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cameras.placement import heading_difference, hip_heading
from pipeline.amass import load_sequence
from pipeline.build import driver as B
from shards.topology import load_topology
from shards.verify import verify

ROOT = Path(__file__).resolve().parents[2]
DEG = 30.0
SMALL = ["--meshes", "48", "--unit-size", "24", "--views", "4", "--res", "16", "--masks", "0"]
R_HIP, L_HIP = 1, 4  # H36M-17


def _facing_reference(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Hips of a hand-built body facing heading ``yaw``: its left is ``up x forward``."""
    f = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    left = np.cross([0.0, 0.0, 1.0], f)
    centre = np.array([0.3, -2.0, 0.9])
    return centre + 0.1 * left + [0, 0, 0.02], centre - 0.1 * left


def test_hip_heading_of_hand_built_bodies():
    for yaw in np.linspace(-3.1, 3.1, 13):
        lh, rh = _facing_reference(yaw)
        assert abs(heading_difference(hip_heading(lh, rh), yaw)) < 1e-9
    lh, rh = _facing_reference(0.0)  # facing +x: left hip towards +y
    assert lh[1] > rh[1] and abs(hip_heading(lh, rh)) < 1e-12


@pytest.fixture(scope="module")
def builds(synth_data, tmp_path_factory) -> dict[str, Path]:
    """Small in-process builds with ``keep`` and ``range`` (+-30 degrees)."""
    out = {}
    for policy in ("keep", "range"):
        d = tmp_path_factory.mktemp(policy)
        args = ["--config", str(ROOT / "configs/build_default.yaml"), "--amass",
                str(Path(synth_data) / "amass"), "--body-models",
                str(Path(synth_data) / "body_models"), "--out", str(d), "--workers", "0",
                "--quiet", *SMALL, "--set", f"render.orientation={policy}",
                "--set", f"render.orientation_deg={DEG}"]  # fmt: skip
        assert B.main(args) == 0
        out[policy] = d
    return out


def _read(root: Path) -> dict[str, np.ndarray]:
    keys = ("sample_id", "source/frame", "body/placement", "joints3d/h36m17", "views/R",
            "views/t", "views/camera", "views/visible", "views/visible_h36m17")  # fmt: skip
    parts: dict[str, list] = {k: [] for k in (*keys, "source/path")}
    for p in sorted(root.glob("shard-*.h5")):
        with h5py.File(p, "r") as f:
            for k in keys:
                parts[k].append(f[k][()])
            parts["source/path"].append([s.decode() for s in f["source/path"][()]])
    return {k: np.concatenate(v) for k, v in parts.items()}


@pytest.mark.slow  # two small builds (~25 s)
def test_rest_body_hips_face_the_way_smpl_faces(synth_data, builds):
    """The body model at rest faces +z of its y-up frame (docs/ARCHITECTURE.md): turned by a
    known root rotation its hips must give that rotation's heading of +z."""
    topo = load_topology(builds["keep"])
    reg = np.asarray(topo.regressors["h36m17"])
    a = next(iter(topo.body.values()))
    for ang in (0.0, 1.0, 2.5, -2.0):
        rot = Rotation.from_euler("z", ang) * Rotation.from_euler("x", 90, degrees=True)
        v = np.asarray(a["v_template"], np.float64) @ rot.as_matrix().T
        j = reg @ v
        want = np.arctan2(*rot.apply([0.0, 0.0, 1.0])[[1, 0]])
        assert abs(heading_difference(hip_heading(j[L_HIP], j[R_HIP]), want)) < np.deg2rad(2)


def _lbs_hips(topo, seq, frame: int) -> np.ndarray:
    """H36M-17 joints of one source frame in AMASS's world, skinned with smplx.lbs."""
    from smplx.lbs import lbs

    a = topo.body[str(seq.gender)]
    t = {k: torch.from_numpy(np.asarray(a[k], np.float64)) for k in a if k != "parents"}
    par = torch.from_numpy(np.asarray(a["parents"], np.int64))
    pose = torch.from_numpy(np.asarray(seq.poses_for("smplh")[frame], np.float64))[None]
    betas = torch.from_numpy(np.asarray(seq.betas, np.float64))[None]
    v, _ = lbs(betas, pose, t["v_template"][None], t["shapedirs"], t["posedirs"],
               t["J_regressor"], par, t["weights"])  # fmt: skip
    v = v[0].numpy() + np.asarray(seq.trans[frame], np.float64)
    return np.asarray(topo.regressors["h36m17"]) @ v


@pytest.mark.slow  # two small builds (~25 s)
def test_keep_leaves_amass_facing(synth_data, builds):
    root = builds["keep"]
    man = json.loads((root / "manifest.json").read_text())
    assert man["config"]["render"]["orientation"] == "keep"
    assert verify(root).ok
    d = _read(root)
    # placement is a pure translation: no added yaw
    rot = d["body/placement"][:, :3, :3]
    np.testing.assert_allclose(rot, np.broadcast_to(np.eye(3), rot.shape), atol=1e-7)
    topo = load_topology(root)
    placed = hip_heading(d["joints3d/h36m17"][:, L_HIP], d["joints3d/h36m17"][:, R_HIP])
    amass = Path(synth_data) / "amass"
    for i in range(0, len(placed), 5):  # the source facing, straight from the sequence file
        seq = load_sequence(amass / d["source/path"][i], amass)
        j = _lbs_hips(topo, seq, int(d["source/frame"][i]))
        src = hip_heading(j[L_HIP], j[R_HIP])
        assert abs(heading_difference(placed[i], src)) < 1e-3, i
    assert d["views/visible"].all() and d["views/visible_h36m17"].all()


@pytest.mark.slow  # two small builds (~25 s)
def test_range_faces_camera_c1_within_deg_and_spreads(builds):
    root = builds["range"]
    man = json.loads((root / "manifest.json").read_text())
    assert man["config"]["render"]["orientation"] == "range"
    assert man["config"]["render"]["orientation_deg"] == DEG
    assert verify(root).ok
    d = _read(root)
    assert (d["views/camera"][:, 0] == 0).all()  # slot 0 is C1
    r, t = d["views/R"][:, 0].astype(np.float64), d["views/t"][:, 0].astype(np.float64)
    c1 = -np.einsum("mji,mj->mi", r, t)  # camera C1's centre, -R^T t
    pelvis = d["joints3d/h36m17"][:, 0].astype(np.float64)
    toward = np.arctan2(c1[:, 1] - pelvis[:, 1], c1[:, 0] - pelvis[:, 0])
    j = d["joints3d/h36m17"].astype(np.float64)
    off = np.rad2deg(heading_difference(hip_heading(j[:, L_HIP], j[:, R_HIP]), toward))
    assert np.abs(off).max() <= DEG + 0.05, off
    assert off.std() > DEG / 4 and off.max() - off.min() > DEG, off  # spread, not one angle
    assert d["views/visible"].all() and d["views/visible_h36m17"].all()


def test_placement_yaw_per_policy_on_hand_built_bodies():
    """Fast: the yaw of each policy from hand-built hips (no build)."""
    from cameras.rig import h36m_volume_centre, make_rig
    from pipeline.process import RenderConfig, placement_yaw

    rng = np.random.default_rng(4)
    facing = rng.uniform(-np.pi, np.pi, 200)
    h36m = np.zeros((200, 17, 3))
    for i, f in enumerate(facing):
        h36m[i, L_HIP], h36m[i, R_HIP] = _facing_reference(f)
    ids, c1 = np.arange(1000, 1200), make_rig(8)[0].centre
    # uniform: the draw of before, one generator per (seed, sample id)
    uni = placement_yaw(h36m, ids, 5, RenderConfig(), c1)
    old = [np.random.default_rng([5, int(i)]).uniform(0.0, 2.0 * np.pi) for i in ids]
    np.testing.assert_array_equal(uni, old)
    keep = RenderConfig(orientation="keep")
    assert (placement_yaw(h36m, ids, 5, keep, c1) == 0).all()
    rc = RenderConfig(orientation="range", orientation_deg=DEG)
    turned = facing + placement_yaw(h36m, ids, 5, rc, c1)
    to_c1 = c1[:2] - h36m_volume_centre()[:2]
    off = np.rad2deg(heading_difference(turned, np.arctan2(to_c1[1], to_c1[0])))
    assert np.abs(off).max() <= DEG and off.max() - off.min() > 1.8 * DEG

"""Zero-shot Human3.6M evaluation on files written in VideoPose3D's layout by this test.

The files are made here from known 3D poses and the published cameras with VideoPose3D's own
formulas (tests/cameras/vp3d_reference.py), independently of the reader; the expected errors
are recomputed with independent code (scipy's Kabsch alignment, typed-in joint subsets).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cameras.h36m import CAMERA_IDS, DATA_FILE
from shards.testing import make_fake_dataset
from tests.cameras.vp3d_reference import project_pixels, world_to_camera
from trainer.config import TINY_MODEL, load_config

REPO = Path(__file__).resolve().parents[2]
REMOVED = [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31]  # VideoPose3D's list
KEPT = [j for j in range(32) if j not in REMOVED]
H36M14 = [3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10]  # docs/ARCHITECTURE.md
# a standing body, H36M-17 order, metres, z-up, facing -y
BASE = np.array(
    [
        [0.0, 0.0, 0.95], [-0.12, 0.0, 0.92], [-0.13, 0.02, 0.5], [-0.13, 0.0, 0.08],
        [0.12, 0.0, 0.92], [0.13, 0.02, 0.5], [0.13, 0.0, 0.08], [0.0, 0.0, 1.2],
        [0.0, 0.0, 1.45], [0.0, -0.08, 1.58], [0.0, 0.0, 1.72], [0.18, 0.0, 1.42],
        [0.2, 0.0, 1.15], [0.22, -0.05, 0.9], [-0.18, 0.0, 1.42], [-0.2, 0.0, 1.15],
        [-0.22, -0.05, 0.9],
    ]
)  # fmt: skip
# sequence lengths: two takes of one action (grouped as 'Directions'), one other action
ACTIONS = {"S9": {"Directions 1": 9, "Directions": 6, "Walking": 11}, "S11": {"Walking": 8}}
STRIDE = 2
TINY = [
    *TINY_MODEL,
    "train.steps=2",
    "train.batch_size=16",
    "train.log_every=1",
    "train.ckpt_every=2",
    "train.num_workers=0",
    "eval.batch_size=5",  # smaller than a sequence: evaluation runs over several chunks
]


def poses32(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 32, 3) float32 world mocap: turning, jittered bodies in the capture volume; the 15
    joints VideoPose3D drops are NaN (any use of them would show)."""
    yaw = rng.uniform(-np.pi, np.pi, n)
    rot = Rotation.from_euler("z", yaw[:, None]).as_matrix()
    body = np.einsum("nij,kj->nki", rot, BASE) + rng.normal(scale=0.03, size=(n, 17, 3))
    body += np.r_[0.0, 0.4, 0.0] + np.c_[rng.uniform(-0.5, 0.5, (n, 2)), np.zeros(n)][:, None]
    out = np.full((n, 32, 3), np.nan)
    out[:, KEPT] = body
    return out.astype(np.float32)


def write_files(
    folder: Path, poses: dict, extra: int = 0, drop=None, cams: int = 4
) -> tuple[Path, Path]:
    """``data_3d_h36m.npz`` and ``data_2d_h36m_gt.npz`` as VideoPose3D's prepare script writes
    them; ``extra`` frames of junk appended to every 2D sequence (a longer detection file),
    ``drop`` = (subject,) or (subject, action) left out of the 2D file."""
    folder.mkdir(parents=True, exist_ok=True)
    cam = json.loads(DATA_FILE.read_text())
    p3, p2 = folder / "data_3d_h36m.npz", folder / "data_2d_h36m_gt.npz"
    np.savez_compressed(p3, positions_3d=poses)
    out: dict = {}
    for s, actions in poses.items():
        if drop == (s,):
            continue
        out[s] = {}
        for a, pos in actions.items():
            if drop == (s, a):
                continue
            views = []
            for i in range(cams):
                e = cam["extrinsics"][s][i]
                x = world_to_camera(pos[:, KEPT].astype(np.float64), **e)
                uv = project_pixels(x, cam["intrinsics"][i])
                junk = np.random.default_rng(i).uniform(-1e4, 1e4, (extra, 17, 2))
                views.append(np.concatenate([uv, junk]).astype(np.float32))
            out[s][a] = views
    meta = {"num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(p2, positions_2d=out, metadata=meta)
    return p3, p2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from trainer.train import train

    base = tmp_path_factory.mktemp("h36m")
    data = make_fake_dataset(
        base / "ds", n_meshes=40, views=2, res=32, nv=60, shards=3, seed=2, val_shards=1
    )
    cfg = load_config(REPO / "configs/demo.yaml", TINY)
    train(cfg, data, base / "run")
    rng = np.random.default_rng(0)
    poses = {s: {a: poses32(rng, n) for a, n in acts.items()} for s, acts in ACTIONS.items()}
    p3, p2 = write_files(base / "vp3d", poses)
    return {"base": base, "data": data, "run": base / "run", "poses": poses, "p3": p3, "p2": p2}


def run_eval(setup, p2=None, p3=None, **kw) -> dict:
    from trainer.h36m import evaluate_h36m

    return evaluate_h36m(
        setup["run"], setup["data"], p3 or setup["p3"], p2 or setup["p2"], stride=STRIDE, **kw
    )


def similarity_pa(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """PA-MPJPE per sample, metres: Kabsch rotation (scipy), then the least-squares scale."""
    out = []
    for p, g in zip(pred, gt):
        pc, gc = p - p.mean(0), g - g.mean(0)
        rot, _ = Rotation.align_vectors(gc, pc)
        rp = rot.apply(pc)
        s = (rp * gc).sum() / (pc**2).sum()
        out.append(np.linalg.norm(s * rp - gc, axis=1).mean())
    return np.array(out)


def test_matches_an_independent_recomputation(setup):
    from trainer.data import model_input
    from trainer.evaluate import load_model, mean_train_mesh
    from trainer.h36m import heatmaps_from_2d

    res = run_eval(setup)
    model, cfg, source, _ = load_model(setup["run"], setup["data"])
    reg = source.levels.h36m_regressor.astype(np.float64)
    mean_mesh = mean_train_mesh(source, 8192).astype(np.float64)
    cam = json.loads(DATA_FILE.read_text())
    kp2d = np.load(setup["p2"], allow_pickle=True)["positions_2d"].item()
    errs: dict = {}
    cams: dict = {}
    for s, actions in setup["poses"].items():
        for a, pos in actions.items():
            idx = np.arange(0, len(pos), STRIDE)
            for i in range(4):
                gt = world_to_camera(
                    pos[idx][:, KEPT].astype(np.float64), **cam["extrinsics"][s][i]
                )
                hm = heatmaps_from_2d(kp2d[s][a][i][idx], 32, 2.0 * 32 / 56)
                with torch.no_grad():
                    v = model(model_input({"heatmaps": torch.from_numpy(hm)}, "heatmaps"))
                base = np.broadcast_to(mean_mesh, (len(idx),) + mean_mesh.shape)
                for name, verts in (
                    ("model", v["vertices"][-1].double().numpy()),
                    ("mean_mesh", base),
                ):
                    pj = reg @ verts
                    pj = (pj - pj[:, :1])[:, H36M14]
                    gj = (gt - gt[:, :1])[:, H36M14]
                    e = errs.setdefault(a.split()[0], {}).setdefault(name, ([], []))
                    e[0].extend(1000 * np.linalg.norm(pj - gj, axis=-1).mean(-1))
                    e[1].extend(1000 * similarity_pa(pj, gj))
                    if name == "model":
                        c = cams.setdefault(i, ([], []))
                        c[0].extend(1000 * np.linalg.norm(pj - gj, axis=-1).mean(-1))
                        c[1].extend(1000 * similarity_pa(pj, gj))
    assert sorted(res["per_action"]) == sorted(errs) == ["Directions", "Walking"]
    n_all = sum(len(range(0, n, STRIDE)) for acts in ACTIONS.values() for n in acts.values())
    assert res["samples"] == 4 * n_all
    for a, by in errs.items():
        for name, (m, pa) in by.items():
            got = res["per_action"][a][name]
            assert got["mpjpe"] == pytest.approx(np.mean(m), rel=1e-5)
            assert got["pa_mpjpe"] == pytest.approx(np.mean(pa), rel=1e-5)
    allm = np.concatenate([errs[a]["model"][0] for a in errs])
    assert res["all"]["model"]["mpjpe"] == pytest.approx(allm.mean(), rel=1e-5)
    assert res["action_mean"]["model"]["mpjpe"] == pytest.approx(
        np.mean([np.mean(errs[a]["model"][0]) for a in errs]), rel=1e-5
    )
    assert list(res["per_camera"]) == list(CAMERA_IDS)
    for i, (m, pa) in cams.items():
        got = res["per_camera"][CAMERA_IDS[i]]
        assert got["samples"] == n_all
        assert got["model"]["mpjpe"] == pytest.approx(np.mean(m), rel=1e-5)
        assert got["model"]["pa_mpjpe"] == pytest.approx(np.mean(pa), rel=1e-5)
    assert res["regressor"] == "unknown"  # the fake dataset records none
    want = {"res": 32, "sigma": 2.0 * 32 / 56, "crop_scale": 1.2, "nose": True}
    assert res["protocol"]["heatmaps"] == want


def test_longer_detection_file_is_truncated_to_the_mocap(setup):
    _, p2 = write_files(setup["base"] / "long", setup["poses"], extra=7)
    np.testing.assert_equal(run_eval(setup, p2=p2)["per_action"], run_eval(setup)["per_action"])


def test_subject_selection(setup):
    res = run_eval(setup, subjects=["S11"])
    assert list(res["per_action"]) == ["Walking"] and res["samples"] == 4 * 4


def errors_of(setup, capsys, args: list[str]) -> str:
    from trainer.__main__ import main

    base = ["eval-h36m", "--ckpt", str(setup["run"]), "--data", str(setup["data"])]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_bad_inputs_give_one_line_errors_naming_the_file(setup, tmp_path, capsys):
    p3, p2 = str(setup["p3"]), str(setup["p2"])
    poses = setup["poses"]
    _, no_s11 = write_files(tmp_path / "a", poses, drop=("S11",))
    _, no_walk = write_files(tmp_path / "b", poses, drop=("S9", "Walking"))
    _, three = write_files(tmp_path / "c", poses, cams=3)
    err = errors_of(setup, capsys, ["--h36m-3d", p3, "--h36m-2d", str(no_s11)])
    assert f"{no_s11}: subject 'S11' missing" in err
    err = errors_of(setup, capsys, ["--h36m-3d", p3, "--h36m-2d", str(no_walk)])
    assert f"{no_walk}: action 'Walking' of subject 'S9' missing" in err
    err = errors_of(setup, capsys, ["--h36m-3d", p3, "--h36m-2d", str(three)])
    assert f"{three}: positions_2d['S9']['Directions 1'] must be a list of 4 cameras" in err
    # the 3D file given as the 2D one, and the other way round
    err = errors_of(setup, capsys, ["--h36m-3d", p3, "--h36m-2d", p3])
    assert f"{p3}: no 'positions_2d' array (has positions_3d)" in err
    err = errors_of(setup, capsys, ["--h36m-3d", p2, "--h36m-2d", p2])
    assert f"{p2}: no 'positions_3d' array" in err
    # 17-joint 3D poses (already reduced) are not VideoPose3D's 32-joint layout
    bad3 = tmp_path / "bad3.npz"
    np.savez(bad3, positions_3d={"S9": {"Walking": np.zeros((5, 17, 3), np.float32)}})
    err = errors_of(setup, capsys, ["--h36m-3d", str(bad3), "--h36m-2d", p2])
    assert f"{bad3}: positions_3d['S9']['Walking'] must be float (N, 32, 3)" in err
    # a 2D file shorter than the mocap
    short = {s: {a: v[:3] for a, v in acts.items()} for s, acts in poses.items()}
    _, p2short = write_files(tmp_path / "d", short)
    err = errors_of(setup, capsys, ["--h36m-3d", p3, "--h36m-2d", str(p2short)])
    assert str(p2short) in err and "fewer than the mocap's" in err
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    err = errors_of(setup, capsys, ["--h36m-3d", p3, "--h36m-2d", str(text)])
    assert str(text) in err
    err = errors_of(setup, capsys, ["--h36m-3d", p3, "--h36m-2d", p2, "--subjects", "S5"])
    assert f"{p3}: subject 'S5' missing" in err
    err = errors_of(setup, capsys, ["--h36m-3d", str(tmp_path / "nope.npz"), "--h36m-2d", p2])
    assert "nope.npz: no such file" in err


def test_regressor_provenance_is_read_from_the_topology(setup, tmp_path):
    from trainer.h36m import regressor_provenance

    shutil.copy(Path(setup["data"]) / "topology.h5", tmp_path / "topology.h5")
    shutil.copy(Path(setup["data"]) / "manifest.json", tmp_path / "manifest.json")
    assert regressor_provenance(tmp_path) == "unknown"
    man = json.loads((tmp_path / "manifest.json").read_text())
    man["provenance"] = {"regressors": {"h36m17": {"source": "approximated"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    assert regressor_provenance(tmp_path) == "source=approximated"  # the manifest's record
    with h5py.File(tmp_path / "topology.h5", "a") as f:
        f["joints/h36m17"].attrs["provenance_source"] = "file"
        f["joints/h36m17"].attrs["provenance_file"] = "J_regressor_h36m_correct.npy"
    got = regressor_provenance(tmp_path)  # the topology's record comes first
    assert got == "source=file, file=J_regressor_h36m_correct.npy"


def test_heatmap_channels_from_h36m17_keypoints():
    """Crop rule and Gaussians recomputed independently; eyes and ears stay empty."""
    from pipeline.joints import COCO17, H36M17
    from trainer.h36m import COCO_FROM_H36M17, heatmaps_from_2d

    words = {"L": "left", "R": "right"}
    for c, j in enumerate(COCO_FROM_H36M17):
        if j is None:
            assert COCO17[c].split("_")[1] in ("eye", "ear")
        else:
            side, _, part = H36M17[j].partition("_")
            want = f"{words[side]}_{part.lower()}" if part else side.lower()
            assert COCO17[c] == want
    rng = np.random.default_rng(5)
    kp = rng.uniform(200, 700, (3, 17, 2))
    res, sigma = 56, 2.0
    hm = heatmaps_from_2d(kp, res, sigma, crop_scale=1.2)
    assert hm.dtype == np.uint8 and hm.shape == (3, 17, res, res)
    assert not hm[:, 1:5].any()
    lo, hi = kp.min(1), kp.max(1)
    side = 1.2 * (hi - lo).max(-1)
    corner = (lo + hi) / 2 - side[:, None] / 2
    grid = np.arange(res)
    for c, j in enumerate(COCO_FROM_H36M17):
        if j is None:
            continue
        u = (kp[:, j] - corner) * res / side[:, None] - 0.5  # box edges -> [-0.5, res - 0.5]
        dx = grid[None, None, :] - u[:, None, None, 0]
        dy = grid[None, :, None] - u[:, None, None, 1]
        g = np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        ref = np.floor(255 * g + 0.5)
        assert np.abs(hm[:, c].astype(int) - ref).max() <= 1


def test_cli_runs_on_a_checkpoint(setup):
    cmd = [sys.executable, "-m", "trainer", "eval-h36m", "--ckpt", str(setup["run"])]
    cmd += ["--data", str(setup["data"]), "--h36m-3d", str(setup["p3"])]
    cmd += ["--h36m-2d", str(setup["p2"]), "--stride", str(STRIDE)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert time.perf_counter() - t0 < 120
    text = out.stdout
    for word in ("Directions", "Walking", "all samples", "mean of actions", "unknown", "88.3"):
        assert word in text, text


def test_no_nose_leaves_the_nose_channel_empty():
    from trainer.h36m import heatmaps_from_2d

    kp = np.random.default_rng(1).uniform(200, 700, (2, 17, 2))
    with_nose = heatmaps_from_2d(kp, 32, 2.0 * 32 / 56)
    without = heatmaps_from_2d(kp, 32, 2.0 * 32 / 56, nose=False)
    assert with_nose[:, 0].any() and not without[:, 0].any()
    np.testing.assert_array_equal(with_nose[:, 1:], without[:, 1:])


def test_trainer_h36m_does_not_import_pipeline():
    code = "import sys, trainer.h36m; print(sorted(m for m in sys.modules if 'pipeline' in m))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_standin_tool_writes_files_eval_h36m_reads(setup, tmp_path):
    from trainer.h36m import load_h36m_2d, load_h36m_3d
    from trainer.h36m_standin import write_standin

    p3, p2 = write_standin(Path(setup["data"]), tmp_path, split="val", extra=2)
    pos3, pos2 = load_h36m_3d(p3), load_h36m_2d(p2)
    n = sum(len(a) for acts in pos3.values() for a in acts.values())
    man = json.loads((Path(setup["data"]) / "manifest.json").read_text())
    assert n == sum(sh["meshes"] for sh in man["shards"] if sh["split"] == "val")
    assert sorted(pos3) == ["S11", "S9"]
    for s, acts in pos3.items():
        for a, pos in acts.items():
            assert np.isfinite(pos).all()
            assert all(len(v) == len(pos) + 2 for v in pos2[s][a])
    res = run_eval(setup, p2=p2, p3=p3)
    assert res["samples"] == 4 * sum(
        len(range(0, len(a), STRIDE)) for acts in pos3.values() for a in acts.values()
    )


def test_noise_px_is_seeded_and_of_the_asked_size(setup, monkeypatch):
    import trainer.h36m as H

    seen: list[np.ndarray] = []
    draw = H.heatmaps_from_2d

    def record(kp, *a, **kw):
        seen.append(np.array(kp))
        return draw(kp, *a, **kw)

    monkeypatch.setattr(H, "heatmaps_from_2d", record)
    clean = run_eval(setup)
    kp_clean = np.concatenate(seen)
    runs = {}
    for key, s, seed in (("a", 8.0, 1), ("b", 8.0, 1), ("c", 8.0, 2), ("d", 2.0, 1)):
        seen.clear()
        runs[key] = (run_eval(setup, noise_px=s, noise_seed=seed), np.concatenate(seen))
    (a, ka), (b, kb), kc, kd = runs["a"], runs["b"], runs["c"][1], runs["d"][1]
    np.testing.assert_array_equal(ka, kb)  # same seed, same noise, same figures
    assert a["all"] == b["all"] and a["protocol"]["noise_px"] == 8.0
    assert not np.array_equal(ka, kc) and a["all"] != clean["all"]
    noise = ka - kp_clean
    assert abs(noise.mean()) < 1.0 and abs(noise.std() / 8.0 - 1) < 0.1  # N(0, 8 px) per axis
    np.testing.assert_allclose(kd - kp_clean, noise / 4, rtol=1e-9, atol=1e-9)  # same draws, x 2/8
    assert clean["protocol"]["noise_px"] == 0.0
    with pytest.raises(ValueError, match="noise-px"):
        run_eval(setup, noise_px=-1)

"""DeepSpeed training on CPU from fake shards: exact resume, logs, evaluation vs references.

All fast tests share one module-scoped set of runs (each ``deepspeed.initialize`` costs seconds).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shards.reader import ShardDataset
from shards.testing import make_fake_dataset
from trainer.config import TINY_MODEL, load_config

REPO = Path(__file__).resolve().parents[2]
STEPS = 6

OVERRIDES = [
    *TINY_MODEL,
    "model.dropout=0.1",
    f"train.steps={STEPS}",
    "train.batch_size=16",
    "train.log_every=1",
    "train.ckpt_every=3",
    "train.num_workers=0",
    "train.lr=1e-3",
    "eval.batch_size=32",
]


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer_ds")
    # 3 train shards (36 meshes x 2 views = 72 samples: 4 batches/epoch) + 1 val shard
    return make_fake_dataset(
        root, n_meshes=48, views=2, res=32, nv=60, shards=4, seed=1, val_shards=1
    )


@pytest.fixture(scope="module")
def runs(fake_data, tmp_path_factory):
    """Straight 6-step run vs 3 steps + resume for 3; sample ids seen per step."""
    from trainer.train import train

    cfg = load_config(REPO / "configs/demo.yaml", OVERRIDES)
    base = tmp_path_factory.mktemp("runs")
    seen: dict[str, list] = {"straight": [], "resumed": []}

    def rec(key):
        return lambda step, batch: seen[key].append(
            (step, batch["sample_id"].tolist(), batch["view"].tolist())
        )

    from trainer import nosync

    clips = [0]
    real_clip = nosync._clip_fp32_gradients

    def counted_clip(engine):
        clips[0] += 1
        return real_clip(engine)

    with pytest.MonkeyPatch.context() as mp:  # the real engine's clipping, counted
        mp.setattr(nosync, "_clip_fp32_gradients", counted_clip)
        straight = train(cfg, fake_data, base / "straight", on_batch=rec("straight"))
    first = train(cfg, fake_data, base / "resumed", stop_at=3, on_batch=rec("resumed"))
    second = train(cfg, fake_data, base / "resumed", on_batch=rec("resumed"))
    return {
        "base": base,
        "cfg": cfg,
        "seen": seen,
        "straight": straight,
        "first": first,
        "second": second,
        "clip_calls": clips[0],
    }


def test_fp32_stage0_engine_clips_without_host_tensors(runs):
    """The real DeepSpeed engine (fp32, ZeRO stage 0, gradient_clipping 1.0) clips every step
    with trainer/nosync.py's clipping, not DeepSpeed's (test_gpu_fixes.py: same values, no
    host-built tensors)."""
    assert runs["cfg"]["train"]["zero_stage"] == 0
    assert runs["clip_calls"] == STEPS


def test_exact_resume_same_weights_and_data_order(runs):
    a = torch.load(runs["base"] / "straight/model.pt", weights_only=False)
    b = torch.load(runs["base"] / "resumed/model.pt", weights_only=False)
    assert a["step"] == b["step"] == STEPS
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert runs["seen"]["straight"] == runs["seen"]["resumed"]
    # the 6 steps cross an epoch boundary (4 batches per epoch), each epoch exactly once
    ids = [tuple(zip(s, v)) for _, s, v in runs["seen"]["straight"]]
    epoch0 = [p for batch in ids[:4] for p in batch]
    assert len(epoch0) == len(set(epoch0)) == 64  # 72 train samples, the partial batch dropped
    assert all(i < 36 for i, _ in epoch0)  # train split only
    assert set(ids[4]) <= set(epoch0) | {(i, v) for i in range(36) for v in range(2)}
    assert runs["first"]["step"] == 3 and runs["second"]["step"] == STEPS


def test_weights_change_and_schedule_follows_warmup_decay(runs):
    rows = list(csv.DictReader(open(runs["base"] / "straight/log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    lr = [float(r["lr"]) for r in rows]
    # DeepSpeed WarmupDecayLR: step s runs at iteration s-1; linear warmup over
    # max(2, round(0.1 * steps)) iterations (DeepSpeed's minimum is 2), then linear decay
    # reaching 0 at iteration `steps`
    peak, w = 1e-3, max(2, round(0.1 * STEPS))
    expected = [peak * (i / w if i < w else (STEPS - i) / (STEPS - w)) for i in range(STEPS)]
    np.testing.assert_allclose(lr, expected, rtol=1e-6, atol=1e-12)
    resumed = list(csv.DictReader(open(runs["base"] / "resumed/log.csv")))
    assert [r["total"] for r in resumed] == [r["total"] for r in rows]  # same losses, no dupes
    assert (runs["base"] / "straight/tensorboard").is_dir()


def _reference_metrics(root: Path, model_pt: Path, dtype: torch.dtype = torch.float32):
    """Independent evaluation: reader + plain numpy formulas (own Procrustes via SVD); with
    ``dtype=torch.bfloat16`` the weights and input cast as DeepSpeed's bf16 casts them."""
    from trainer.data import levels_from_topology
    from trainer.model import MeshRegressor

    blob = torch.load(model_pt, weights_only=False)
    levels, _ = levels_from_topology(root)
    model = MeshRegressor(blob["config"]["model"], levels, 17, 32)
    model.load_state_dict(blob["state_dict"])
    model = model.to(dtype).eval()
    reg = levels.h36m_regressor.astype(np.float64)
    sel = [3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10]

    train = [b for b in ShardDataset(root, "train", views="all", batch_size=1000, shuffle=False)]
    tv = np.concatenate([(b["vertices"] - b["joints3d"][:, :1]).numpy() for b in train], 0)
    mean_mesh = tv.astype(np.float64).mean(0)

    def pa(p, g):
        p0, g0 = p - p.mean(0), g - g.mean(0)
        u, s, vt = np.linalg.svd(p0.T @ g0)
        d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
        r = u @ d @ vt
        sc = np.trace(np.diag(s) @ d) / (p0**2).sum()
        return np.linalg.norm(sc * p0 @ r + g.mean(0) - g, axis=1).mean()

    out: dict = {"model": [], "mean_mesh": []}
    for b in ShardDataset(root, "val", views="all", batch_size=1000, shuffle=False):
        with torch.no_grad():
            pred = model(b["heatmaps"].to(dtype))["vertices"][-1].double().numpy()
        gv, gj = b["vertices"].double().numpy(), b["joints3d"].double().numpy()
        for i in range(len(gv)):
            out.setdefault(("view", int(b["view"][i])), [])
            for name, p in (("model", pred[i]), ("mean_mesh", mean_mesh)):
                pj = reg @ p
                pjc, gjc = (pj - pj[0])[sel], (gj[i] - gj[i][0])[sel]
                row = (
                    1000 * np.linalg.norm(pjc - gjc, axis=1).mean(),
                    1000 * pa(pjc, gjc),
                    1000 * np.linalg.norm((p - pj[0]) - (gv[i] - gj[i][0]), axis=1).mean(),
                )
                out[name].append(row)
                if name == "model":
                    out[("view", int(b["view"][i]))].append(row)
    return {k: np.mean(v, 0) for k, v in out.items()}


def test_evaluate_matches_independent_reference(runs, fake_data):
    from trainer.evaluate import evaluate

    res = evaluate(runs["base"] / "straight", fake_data)
    ref = _reference_metrics(fake_data, runs["base"] / "straight/model.pt")
    assert res["samples"] == 12 * 2
    for name in ("model", "mean_mesh"):
        got = [res[name][k] for k in ("mpjpe", "pa_mpjpe", "pve")]
        np.testing.assert_allclose(got, ref[name], rtol=1e-4)
    views = sorted(k[1] for k in ref if isinstance(k, tuple))
    assert [int(v) for v in res["per_view"]] == views == [0, 1]
    for v in views:
        r = res["per_view"][str(v)]
        assert r["samples"] == 12
        got = [r[k] for k in ("mpjpe", "pa_mpjpe", "pve")]
        np.testing.assert_allclose(got, ref[("view", v)], rtol=1e-4)
    assert abs(res["per_view"]["0"]["pve"] - res["per_view"]["1"]["pve"]) > 1e-6


def test_evaluate_in_bf16_is_the_bf16_cast_model(runs, fake_data):
    """`eval --precision bf16` runs the model as DeepSpeed's bf16 casts it (the metrics equal an
    independent bf16 evaluation and differ from the fp32 ones): what bf16 costs in mm."""
    from trainer.evaluate import evaluate, format_table

    run = runs["base"] / "straight"
    res = evaluate(run, fake_data, precision="bf16", device="cpu")
    ref = _reference_metrics(fake_data, run / "model.pt", torch.bfloat16)
    fp32 = evaluate(run, fake_data, device="cpu")
    for k, i in (("mpjpe", 0), ("pa_mpjpe", 1), ("pve", 2)):
        np.testing.assert_allclose(res["model"][k], ref["model"][i], rtol=1e-4)
        assert res["model"][k] != fp32["model"][k]
    assert res["mean_mesh"] == fp32["mean_mesh"]  # the baseline is the data's, not the model's
    assert res["precision"] == "bf16" and "bf16" in format_table(res)
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16', got 'fp16'"):
        evaluate(run, fake_data, precision="fp16")


def test_resume_refuses_a_checkpoint_of_other_data(runs, tmp_path):
    """A run folder trained on one dataset is not silently continued on another."""
    from trainer.checkpoint import StaleCheckpointError
    from trainer.train import train

    other = make_fake_dataset(
        tmp_path / "other", n_meshes=48, views=2, res=32, nv=60, shards=4, seed=2, val_shards=1
    )
    run = runs["base"] / "straight"
    with pytest.raises(StaleCheckpointError, match="trained with other data"):
        train(runs["cfg"], other, run)


def test_cli_eval_json_and_demo_figures(runs, fake_data, tmp_path):
    import json

    from trainer.__main__ import main, prediction_samples
    from trainer.figures import loss_curve, predictions_figure

    run = runs["base"] / "straight"
    env = dict(os.environ)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "eval",
            "--ckpt",
            str(run),
            "--data",
            str(fake_data),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout[r.stdout.index("{") :])
    assert set(res["model"]) == {"mpjpe", "pa_mpjpe", "pve"}
    samples, faces = prediction_samples(run, fake_data, n=3)
    png = predictions_figure(samples, faces, tmp_path / "p.png")
    png2 = loss_curve(run / "log.csv", tmp_path / "l.png")
    assert png.stat().st_size > 10_000 and png2.stat().st_size > 10_000
    assert main(["eval", "--ckpt", str(tmp_path / "nothing"), "--data", str(fake_data)]) == 2
    from trainer.evaluate import format_per_view

    table = format_per_view(res).splitlines()
    assert len(table) == 4 and table[1].startswith("0*") and table[2].startswith("1*")
    assert f"{res['per_view']['1']['pve']:10.1f}" in table[2]


@pytest.mark.slow
def test_two_processes_deepspeed_launcher_exact_resume(fake_data, tmp_path):
    """``deepspeed --num_accelerators 2`` on CPU: ranks split the data; resume is exact."""
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent))
    assert launcher, "deepspeed launcher missing"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)

    def launch(out: Path, *extra: str) -> None:
        cmd = [
            launcher,
            "--num_accelerators",
            "2",
            "--master_port",
            str(_free_port()),
            "--module",
            "trainer",
            "train",
            "--config",
            str(REPO / "configs/demo.yaml"),
            "--data",
            str(fake_data),
            "--out",
            str(out),
            *extra,
            "--set",
            *OVERRIDES,
            "train.num_workers=1",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    launch(tmp_path / "straight")
    launch(tmp_path / "resumed", "--stop-at", "3")
    launch(tmp_path / "resumed")
    tag = (tmp_path / "straight/checkpoints/latest").read_text().strip()
    client = torch.load(
        tmp_path / "straight/checkpoints" / tag / "mp_rank_00_model_states.pt", weights_only=False
    )
    assert len(client["positions"]) == 2
    # 6 steps of 8 samples per rank; a rank's stream holds 36 of the 72 samples (4 batches),
    # so both ranks are 2 batches into their second epoch
    assert client["positions"] == [(1, 16), (1, 16)]
    a = torch.load(tmp_path / "straight/model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "resumed/model.pt", weights_only=False)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = list(csv.DictReader(open(tmp_path / "straight/log.csv")))
    assert len(rows) == 6 and all(np.isfinite(float(x["total"])) for x in rows)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_checkpoint_client_state_carries_every_rngs_stream(runs, monkeypatch):
    from trainer import checkpoint as tr

    # a CPU run's checkpoint: per-rank CPU RNG, restored by resume (exactness tested above)
    tag = (runs["base"] / "resumed/checkpoints/latest").read_text().strip()
    blob = torch.load(
        runs["base"] / f"resumed/checkpoints/{tag}/mp_rank_00_model_states.pt",
        weights_only=False,
    )
    assert len(blob["rng"]) == 1 and set(blob["rng"][0]) == {"cpu"}
    # the GPU code path (no GPU here): the device's generator is saved and restored per rank
    fake = torch.arange(16, dtype=torch.uint8)
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: fake.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device=None: restored.append(s))
    gen = torch.Generator().manual_seed(5)
    client = tr.client_state({}, 7, (0, 32), gen, torch.device("cuda", 0), world=1)
    assert torch.equal(client["rng"][0]["cuda"], fake)
    assert torch.equal(client["rng"][0]["cpu"], torch.get_rng_state())
    assert torch.equal(client["mhm_rng"][0], gen.get_state())
    tr.set_rng_state(client["rng"][0], torch.device("cuda", 0), Path("ckpt"))
    assert len(restored) == 1 and torch.equal(restored[0], fake)
    with pytest.raises(ValueError, match="ckpt: saved without a CUDA RNG state"):
        tr.set_rng_state({"cpu": torch.get_rng_state()}, torch.device("cuda", 0), Path("ckpt"))


@pytest.mark.parametrize("rank", [0, 1])
def test_restart_if_stale_starts_a_stale_run_afresh_once(tmp_path, rank):
    from trainer.checkpoint import CKPT_DIR, StaleCheckpointError, restart_if_stale

    (tmp_path / CKPT_DIR / "step00000001").mkdir(parents=True)
    calls, said = [], []

    def fit(resume: bool) -> str:
        calls.append(resume)
        if resume:
            raise StaleCheckpointError("trained with other data")
        return "trained"

    assert restart_if_stale(fit, tmp_path, rank, said.append) == "trained"
    assert calls == [True, False] and said == ["trained with other data"]
    assert (tmp_path / CKPT_DIR).exists() == (rank != 0)  # rank 0 deletes, the others wait
    calls.clear()
    assert restart_if_stale(fit, tmp_path, rank, said.append, resume=False) == "trained"
    assert calls == [False] and len(said) == 1  # --restart: no checkpoint is read at all


def _random_view_run(data: Path, out: Path, resume: bool) -> list[list[tuple[int, int]]]:
    """(sample id, view) of each batch of a 4-step run with one random view of [0, 1] per
    mesh (straight, or stopped after 3 steps and resumed)."""
    from trainer.train import train

    over = [o for o in OVERRIDES if not o.startswith("train.steps")]
    sets = [*over, "train.steps=4", "data.views=[0,1]", "data.view_choice=random"]
    cfg = load_config(REPO / "configs/demo.yaml", sets)
    seen: list = []

    def rec(step, b):
        seen.append(list(zip(b["sample_id"].tolist(), b["view"].tolist())))

    if resume:
        train(cfg, data, out / "resumed", stop_at=3, on_batch=rec)
    train(cfg, data, out / ("resumed" if resume else "straight"), on_batch=rec)
    return seen


def test_random_view_policy_trains(fake_data, tmp_path):
    seen = _random_view_run(fake_data, tmp_path, resume=False)
    # 36 train meshes x 1 view: 2 full batches of 16 per epoch; the 4 steps are 2 epochs
    epochs = [seen[0] + seen[1], seen[2] + seen[3]]
    for pairs in epochs:
        assert len({s for s, _ in pairs}) == len(pairs) == 32  # no mesh twice in an epoch
        assert {v for _, v in pairs} == {0, 1}  # the listed views, both drawn
        assert all(s < 36 for s, _ in pairs)
    assert epochs[0] != epochs[1]


@pytest.mark.slow
def test_random_view_policy_resumes_exactly(fake_data, tmp_path):
    resumed = _random_view_run(fake_data, tmp_path, resume=True)
    assert resumed == _random_view_run(fake_data, tmp_path, resume=False)


def test_eval_on_another_build_keeps_the_training_baseline(runs, fake_data, tmp_path):
    """The demo's in-kind eval (issue 30): a build with no train split is scored against the
    mean mesh of the data the model trained on (``baseline_data``); the model's figures are
    those of the eval data alone."""
    from trainer.evaluate import evaluate, format_open_world

    other = make_fake_dataset(
        tmp_path / "other", n_meshes=48, views=2, res=32, nv=60, shards=4, seed=2, val_shards=1
    )
    run = runs["base"] / "straight"
    own = evaluate(run, other, split="val", device="cpu")
    cross = evaluate(run, other, split="val", device="cpu", baseline_data=fake_data)
    same = evaluate(run, fake_data, split="val", device="cpu", baseline_data=fake_data)
    assert cross["model"] == own["model"]
    assert cross["mean_mesh"]["pve"] != own["mean_mesh"]["pve"]
    assert same == evaluate(run, fake_data, split="val", device="cpu")
    text = format_open_world([("a", cross), ("ref", same)])
    ratio = cross["model"]["mpjpe"] / same["model"]["mpjpe"]
    assert text.splitlines()[1].endswith(f"{ratio:6.2f}x") and text.endswith("  1.00x")

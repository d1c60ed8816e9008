"""Evaluation on the val split: MPJPE, PA-MPJPE (H36M-14) and PVE in mm, model vs mean mesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from trainer.checkpoint import MODEL_FILE
from trainer.data import DataSource, model_input
from trainer.metrics import mesh_metrics
from trainer.model import MeshRegressor

METRICS = ("mpjpe", "pa_mpjpe", "pve")


def load_model(ckpt: str | Path, data: str | Path) -> tuple[MeshRegressor, dict, DataSource, int]:
    """Model (eval mode, CPU) from a run folder or its model.pt, with its config and data."""
    path = Path(ckpt)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model (run `python -m trainer train` first)")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    cfg = blob["config"]
    source = DataSource(data, cfg)
    model = MeshRegressor(cfg["model"], source.levels, source.in_channels, source.res)
    missing = model.load_state_dict(blob["state_dict"], strict=False)
    if missing.missing_keys or missing.unexpected_keys:
        raise ValueError(f"{path}: checkpoint does not match the model/topology ({missing})")
    return model.eval(), cfg, source, int(blob.get("step", 0))


def mean_train_mesh(
    source: DataSource, max_samples: int | None = None, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Mean pelvis-centred camera-frame mesh over the train split (the trivial baseline);
    the meshes are skinned on ``device``."""
    total, n = None, 0
    for batch in source.eval_loader(source.train_split, 256, max_samples, device):
        v = (batch["vertices"].cpu() - batch["joints3d"][:, :1]).double()
        total = v.sum(0) if total is None else total + v.sum(0)
        n += v.shape[0]
    if n == 0:
        raise ValueError(f"{source.root}: train split is empty; cannot form the mean-mesh baseline")
    return (total / n).float().numpy()


#: ``evaluate(precision=...)``: the dtype the weights and the input are cast to
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


@torch.no_grad()
def evaluate(
    ckpt: str | Path,
    data: str | Path,
    split: str | None = None,
    batch_size: int | None = None,
    max_samples: int | None = None,
    baseline_samples: int | None = 8192,
    device: str | torch.device | None = None,
    baseline_data: str | Path | None = None,
    precision: str = "fp32",
) -> dict:
    """Metrics of the trained model and of the mean-training-mesh baseline on ``split``.

    The baseline's mesh is the mean over the train split of ``baseline_data`` (default
    ``data``): the shards the model trained on, when ``data`` is another build's eval set.

    The model and the skinning of the ground truth run on ``device`` (default: the GPU when
    there is one, as in training); the metrics are float64 numpy on the CPU. ``precision``:
    ``fp32``, or ``bf16``: the weights and the input cast with ``.bfloat16()`` as DeepSpeed's
    bf16 casts them (what bf16 costs in millimetres, against the same call in fp32).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    dtype = PRECISIONS[precision]
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, cfg, source, step = load_model(ckpt, data)
    model = model.to(device=device, dtype=dtype)
    split = split or cfg["data"]["val_split"]
    batch_size = batch_size or int(cfg["eval"]["batch_size"])
    max_samples = max_samples if max_samples is not None else cfg["eval"]["max_samples"]
    reg = source.levels.h36m_regressor.astype(np.float64)
    base_source = source if baseline_data is None else DataSource(baseline_data, cfg)
    mean_mesh = mean_train_mesh(base_source, baseline_samples, device).astype(np.float64)
    sums = {"model": dict.fromkeys(METRICS, 0.0), "mean_mesh": dict.fromkeys(METRICS, 0.0)}
    per_view: dict[int, dict[str, float]] = {}  # camera -> model metric sums and "samples"
    n = 0
    for batch in tqdm(source.eval_loader(split, batch_size, max_samples, device), desc="eval"):
        x = model_input(batch, cfg["model"]["input"]).to(device=device, dtype=dtype)
        pred = model(x)["vertices"][-1].double().cpu().numpy()
        gt_v = batch["vertices"].double().cpu().numpy()
        gt_j = batch["joints3d"].double().numpy()
        base = np.broadcast_to(mean_mesh, gt_v.shape)
        for name, p in (("model", pred), ("mean_mesh", base)):
            m = mesh_metrics(p, gt_v, gt_j, reg)
            for k in METRICS:
                sums[name][k] += float(m[k].sum())
            if name == "model":
                _add_per_view(per_view, batch["view"].numpy(), m)
        n += gt_v.shape[0]
    if n == 0:
        raise ValueError(f"{source.root}: split {split!r} yielded no samples")
    res = {name: {k: v / n for k, v in d.items()} for name, d in sums.items()}
    res.update(
        split=split,
        samples=n,
        precision=precision,
        step=step,
        pa_mpjpe_reduction=1.0 - res["model"]["pa_mpjpe"] / res["mean_mesh"]["pa_mpjpe"],
        trained_views=cfg["data"].get("views"),
        per_view={
            str(v): {k: d[k] / d["samples"] for k in METRICS} | {"samples": int(d["samples"])}
            for v, d in sorted(per_view.items())
        },
    )
    return res


def _add_per_view(acc: dict[int, dict[str, float]], views: np.ndarray, m: dict) -> None:
    """Add per-sample metrics ``m`` to the per-camera sums in ``acc``."""
    for v in np.unique(views):
        sel = views == v
        d = acc.setdefault(int(v), dict.fromkeys(METRICS, 0.0) | {"samples": 0.0})
        for k in METRICS:
            d[k] += float(np.asarray(m[k])[sel].sum())
        d["samples"] += float(sel.sum())


def format_table(res: dict) -> str:
    """Model and mean-mesh baseline side by side, in millimetres."""
    lines = [
        f"{res['split']} split, {res['samples']} samples, step {res['step']}"
        + (", bf16 weights and input" if res.get("precision") == "bf16" else "")
        + " (mm)",
        f"{'':14s}{'MPJPE':>10s}{'PA-MPJPE':>10s}{'PVE':>10s}",
    ]
    for name, label in (("model", "model"), ("mean_mesh", "mean mesh")):
        r = res[name]
        lines.append(f"{label:14s}{r['mpjpe']:10.1f}{r['pa_mpjpe']:10.1f}{r['pve']:10.1f}")
    red = 100 * res["pa_mpjpe_reduction"]
    where = "below" if red >= 0 else "above"
    lines.append(f"model PA-MPJPE {abs(red):.1f}% {where} the mean-mesh baseline")
    return "\n".join(lines)


def format_open_world(rows: list[tuple[str, dict]]) -> str:
    """The model on several eval sets, one row each (mm), with each MPJPE over the last row's
    (the in-kind reference when the demo has one)."""
    ref = rows[-1][1]["model"]["mpjpe"]
    lines = [f"{'':44s}{'samples':>8s}{'MPJPE':>8s}{'PA-MPJPE':>10s}{'PVE':>8s}{'ratio':>7s}"]
    for label, res in rows:
        m = res["model"]
        lines.append(
            f"{label:44s}{res['samples']:8d}{m['mpjpe']:8.1f}{m['pa_mpjpe']:10.1f}"
            f"{m['pve']:8.1f}{m['mpjpe'] / ref:6.2f}x"
        )
    return "\n".join(lines)


def format_per_view(res: dict) -> str:
    """The model's metrics per camera of the split (views it was trained on marked *)."""
    trained = res.get("trained_views")
    lines = [f"{'view':<8s}{'samples':>8s}{'MPJPE':>10s}{'PA-MPJPE':>10s}{'PVE':>10s}"]
    for v, r in res["per_view"].items():
        mark = "*" if trained in (None, "all") or int(v) in trained else " "
        cells = "".join(f"{r[k]:10.1f}" for k in METRICS)
        lines.append(f"{v + mark:<8s}{r['samples']:8d}{cells}")
    lines.append("* = a view the model was trained on")
    return "\n".join(lines)

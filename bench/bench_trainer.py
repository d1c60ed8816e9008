"""Trainer benchmarks: training throughput of the demo and paper models streaming from shards.

Figures: samples/s of a full training step (reader -> forward -> losses -> backward -> Adam) and
the share of step time spent waiting for data, for ``configs/demo.yaml`` on CPU and, when a GPU
is present, ``configs/paper.yaml`` in bf16 (the closing-note figure). Plain torch loop, no
DeepSpeed init (its optimizer step is the same Adam); data from a fake dataset with a
431-vertex coarse level, or from ``out/shards`` when it exists.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from shards.testing import make_fake_dataset
from trainer.config import load_config
from trainer.data import DataSource, model_input
from trainer.losses import mesh_losses
from trainer.model import MeshRegressor, masked_heatmap_modeling

REPO = Path(__file__).resolve().parent.parent


def measure(cfg: dict, data: Path, steps: int, device: str, bf16: bool = False) -> dict:
    """Steady-state samples/s and data-wait share over ``steps`` training steps."""
    src = DataSource(data, cfg)
    model = MeshRegressor(cfg["model"], src.levels, src.in_channels, src.res).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    reg = torch.from_numpy(src.levels.h36m_regressor).to(device)
    down = [d.to(device) for d in src.down_tensors()]
    bs = int(cfg["train"]["batch_size"])
    it = src.train_iter(0, 1, bs, device=device)
    wait = total = 0.0
    for i in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        batch = {k: v.to(device, non_blocking=True) for k, v in next(it).items()}
        t1 = time.perf_counter()
        x = masked_heatmap_modeling(model_input(batch, "heatmaps"), 0.3)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        out = {
            "joints": out["joints"].float(),
            "cam": out["cam"].float(),
            "vertices": [v.float() for v in out["vertices"]],
        }
        loss, _ = mesh_losses(out, batch, reg, down, cfg["loss"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            wait += t1 - t0
            total += time.perf_counter() - t0
    return {"samples_per_s": steps * bs / total, "data_wait_share": wait / total}


def run() -> dict:
    shards = REPO / "out/shards"
    with tempfile.TemporaryDirectory() as tmp:
        if (shards / "manifest.json").exists():
            data = shards
        else:
            data = make_fake_dataset(Path(tmp), n_meshes=256, views=4, res=56, nv=1724, shards=2)
        torch.set_num_threads(1)
        demo = load_config(REPO / "configs/demo.yaml", ["train.num_workers=1"])
        res = {f"demo_cpu_1thread_{k}": v for k, v in measure(demo, data, 10, "cpu").items()}
        res["demo_batch"] = int(demo["train"]["batch_size"])
        res["data"] = "out/shards" if data == shards else "fake (Nv=1724)"
        if torch.cuda.is_available():
            torch.set_num_threads(8)
            paper = load_config(REPO / "configs/paper.yaml", ["train.num_workers=6"])
            r = measure(paper, data, 30, "cuda", bf16=True)
            res.update({f"paper_gpu_bf16_{k}": v for k, v in r.items()})
            res["paper_batch"] = int(paper["train"]["batch_size"])
    return res


if __name__ == "__main__":
    print(run())

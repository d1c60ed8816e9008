"""Convergence benchmark: what the trainer learns per sample, beside a 2D->3D lifting baseline.

For each sample budget the demo model (``configs/demo.yaml``, steps = budget / batch, its own
warm-up and decay) is trained with the product's DeepSpeed loop (``trainer.train``) on the
demo shards and evaluated on the val split (``trainer.evaluate``). The baseline is a tool of
this benchmark, not part of the product: Martinez et al. 2017's lifting network (COCO-17
keypoints in crop coordinates in, pelvis-centred H36M-17 joints out; Linear 1024, two residual
blocks of two Linear-BatchNorm-ReLU-Dropout layers) trained with Adam on *the same stream of
samples* (same reader, seed and order), L1 on the joints. It has no mesh: its "PVE" is that of
the training sample whose joints are nearest its prediction (lifting + retrieval), its PVE-
equivalent. Writes ``bench/convergence.json`` and ``bench/convergence.png``.

    python bench/convergence.py [--data out/shards] [--budgets 12800 48000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cameras.plotting import save_figure  # noqa: E402
from trainer.config import load_config  # noqa: E402
from trainer.data import DataSource  # noqa: E402
from trainer.metrics import H36M_TO_14, mpjpe, pa_mpjpe  # noqa: E402


class Lifter(nn.Module):
    """Martinez et al. 2017: 2D keypoints -> 3D joints, two residual blocks of ``width``."""

    def __init__(self, n_in: int, n_out: int, width: int = 1024, dropout: float = 0.5):
        super().__init__()

        def layer() -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)
            )

        self.inp = nn.Sequential(
            nn.Linear(n_in, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)
        )
        self.blocks = nn.ModuleList(nn.Sequential(layer(), layer()) for _ in range(2))
        self.out = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for blk in self.blocks:
            h = h + blk(h)
        return self.out(h)


def lifter_input(batch: dict) -> torch.Tensor:
    """COCO-17 (x, y) in normalised crop coordinates, zeroed where not visible."""
    kp = batch["kp2d"]
    return (kp[..., :2] * kp[..., 2:]).flatten(1)


def centred(j: torch.Tensor) -> torch.Tensor:
    return j - j[:, :1]


def train_lifter(cfg: dict, data: Path, samples: int) -> tuple[Lifter, float]:
    """The baseline on the trainer's own stream (``DataSource.train_iter``, same seed)."""
    src = DataSource(data, cfg)
    t = cfg["train"]
    bs = int(t["batch_size"])
    steps = samples // bs
    torch.manual_seed(int(t["seed"]))
    model = Lifter(34, 51)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    warm = max(1, round(0.1 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / (steps - warm))
    )
    it = src.train_iter(0, 1, bs)
    t0 = time.perf_counter()
    model.train()
    for _ in range(steps):
        b = next(it)
        pred = model(lifter_input(b)).view(-1, 17, 3)
        loss = (pred - centred(b["joints3d"])).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval(), time.perf_counter() - t0


@torch.no_grad()
def eval_lifter(model: Lifter, cfg: dict, data: Path) -> dict:
    """Val MPJPE / PA-MPJPE (H36M-14) and the retrieval PVE-equivalent, in mm."""
    src = DataSource(data, cfg)
    # retrieval bank: pelvis-centred joints and float16 meshes of training samples
    bank_j, bank_v = [], []
    for b in src.eval_loader(src.train_split, 256, max_samples=4096):
        pelvis = b["joints3d"][:, :1]
        bank_j.append((b["joints3d"] - pelvis).flatten(1))
        bank_v.append((b["vertices"] - pelvis).half())
    bank_j, bank_v = torch.cat(bank_j), torch.cat(bank_v)
    err = {"mpjpe": [], "pa_mpjpe": [], "pve": []}
    for b in src.eval_loader(src.val_split, 256):
        pred = model(lifter_input(b)).view(-1, 17, 3)
        gt = centred(b["joints3d"])
        p14, g14 = pred[:, H36M_TO_14].double().numpy(), gt[:, H36M_TO_14].double().numpy()
        err["mpjpe"].append(1000 * mpjpe(p14, g14))
        err["pa_mpjpe"].append(1000 * pa_mpjpe(p14, g14))
        nn_idx = torch.cdist(pred.flatten(1), bank_j).argmin(1)
        gt_v = b["vertices"] - b["joints3d"][:, :1]
        err["pve"].append(1000 * (bank_v[nn_idx].float() - gt_v).norm(dim=-1).mean(-1).numpy())
    return {k: float(np.concatenate(v).mean()) for k, v in err.items()}


def train_model(cfg: dict, data: Path, out: Path) -> tuple[dict, float]:
    from trainer.evaluate import evaluate
    from trainer.train import train

    t0 = time.perf_counter()
    train(cfg, data, out, resume=False)
    wall = time.perf_counter() - t0
    res = evaluate(out, data)
    return res["model"] | {"mean_mesh_pa_mpjpe": res["mean_mesh"]["pa_mpjpe"]}, wall


def figure(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    x = [r["samples"] for r in rows]
    for ax, key, label in ((axes[0], "pa_mpjpe", "PA-MPJPE"), (axes[1], "pve", "PVE")):
        ax.plot(x, [r["model"][key] for r in rows], "o-", label="MPT demo model (mesh)")
        name = "lifting baseline" + (" (retrieval PVE)" if key == "pve" else "")
        ax.plot(x, [r["lifting"][key] for r in rows], "s--", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("training samples")
        ax.set_ylabel(f"val {label} (mm)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("What the trainer learns per sample (demo shards, val split)")
    save_figure(fig, png, layout=False)  # constrained layout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / "out/shards")
    ap.add_argument("--config", type=Path, default=REPO / "configs/demo.yaml")
    ap.add_argument("--budgets", type=int, nargs="+", default=[12800, 48000])
    ap.add_argument("--out", type=Path, default=REPO / "bench/convergence.json")
    ap.add_argument("--set", nargs="*", default=[], help="overrides for the model's config")
    args = ap.parse_args()
    if not (args.data / "manifest.json").exists():
        print(f"{args.data}: no manifest.json (run `make shards` first)", file=sys.stderr)
        return 2
    rows = []
    for budget in args.budgets:
        cfg = load_config(args.config, args.set)
        steps = budget // int(cfg["train"]["batch_size"])
        cfg = load_config(args.config, [*args.set, f"train.steps={steps}"])
        cfg["train"]["ckpt_every"] = steps  # checkpoint once, at the end
        with tempfile.TemporaryDirectory() as tmp:
            model, wall = train_model(cfg, args.data, Path(tmp) / "run")
        torch.set_num_threads(2)
        lifter, lwall = train_lifter(cfg, args.data, budget)
        lift = eval_lifter(lifter, cfg, args.data)
        row = {
            "samples": steps * int(cfg["train"]["batch_size"]),
            "model": {k: round(float(v), 1) for k, v in model.items()},
            "model_train_s": round(wall),
            "lifting": {k: round(v, 1) for k, v in lift.items()},
            "lifting_train_s": round(lwall),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    head = ("samples", "model PA-MPJPE", "PVE", "lifting PA-MPJPE", "PVE*")
    print("\n{:>8} | {:>14} {:>6} | {:>16} {:>6}".format(*head))
    for r in rows:
        m, b = r["model"], r["lifting"]
        vals = (r["samples"], m["pa_mpjpe"], m["pve"], b["pa_mpjpe"], b["pve"])
        print("{:8d} | {:14.1f} {:6.1f} | {:16.1f} {:6.1f}".format(*vals))
    print("(val split, mm; PVE* = PVE of the training mesh nearest the lifted joints)")
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "config": str(args.config), "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    figure(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

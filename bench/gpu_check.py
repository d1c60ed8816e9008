"""GPU check: the paper model for a few hundred steps in bf16 from shards, then an exact resume.

One command a person with a GPU runs once (``make gpu-check``). It trains ``--config``
(``configs/paper.yaml``) for ``--steps`` steps streaming from the shard folder ``--data`` with the
product's loop (``python -m trainer train``, under the DeepSpeed launcher with ``--gpus N``),
then trains the same run again stopped at half way and resumed from that checkpoint, and prints:

- samples/s (steady state: log windows after the first), and the share of the step the host
  spent waiting for data (``data_wait`` in log.csv);
- peak GPU memory (torch's allocator, rank 0);
- MFU: FLOPs per sample (forward + backward, torch's FlopCounterMode: ``trainer params``)
  x samples/s / (peak FLOP/s per GPU x GPUs); the peak comes from a small table of known GPUs
  (dense bf16) or ``--peak-tflops``;
- whether the resumed run's logged losses and final weights equal the uninterrupted run's
  bit for bit.

``--tiny`` runs the whole check on the CPU in a minute (a fake shard set, a small model, fp32
unless ``--precision bf16``): CI runs it so that the check keeps working.

    python bench/gpu_check.py --data out/shards [--config configs/paper.yaml] [--steps 200]
        [--gpus N] [--peak-tflops T] [--out out/gpu_check] [--set key=value ...]
    python bench/gpu_check.py --tiny
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trainer.config import TINY_MODEL  # noqa: E402

#: dense bf16 peak FLOP/s per GPU (vendor data sheets, SXM parts, no sparsity), by name fragment
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "A10G": 70.0,
    "L40S": 362.0,
    "L4": 121.0,
    "V100": 125.0,  # fp16 tensor cores: V100 has no bf16
    "RTX 4090": 165.0,
}
#: --tiny: a model that trains in seconds on the CPU (on top of --config)
TINY = [
    *TINY_MODEL,
    "train.batch_size=16",
    "train.num_workers=0",
]


def peak_flops(name: str, override: float | None) -> float | None:
    """Peak FLOP/s of one device: ``override`` (TFLOP/s), else the table by name, else None."""
    if override:
        return override * 1e12
    for key, tflops in PEAK_TFLOPS.items():
        if key.lower() in name.lower():
            return tflops * 1e12
    return None


def trainer_cmd(gpus: int) -> list[str]:
    """``python -m trainer`` or, for several devices, the DeepSpeed launcher around it."""
    if gpus <= 1:
        return [sys.executable, "-m", "trainer"]
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or "deepspeed"
    import torch

    flag = "--num_gpus" if torch.cuda.is_available() else "--num_accelerators"
    return [launcher, flag, str(gpus), "--module", "trainer"]


def run_train(args, overrides: list[str], out: Path, *extra: str) -> float:
    """One ``trainer train`` invocation; returns its wall time."""
    cmd = [*trainer_cmd(args.gpus), "train", "--config", str(args.config), "--data", str(args.data)]
    cmd += ["--out", str(out), *extra, "--set", *overrides]
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)  # each run picks its own rendezvous (a caller's may be in use)
    r = subprocess.run(cmd, cwd=REPO, env=env)
    if r.returncode:
        raise SystemExit(f"gpu-check: training failed ({' '.join(cmd)})")
    return time.perf_counter() - t0


def read_log(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def same_weights(a: Path, b: Path) -> bool:
    import torch

    sa = torch.load(a / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
    sb = torch.load(b / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def flops_per_sample(args, overrides: list[str]) -> int:
    from trainer.config import load_config
    from trainer.data import DataSource
    from trainer.flops import training_flops_per_sample
    from trainer.model import MeshRegressor

    cfg = load_config(args.config, overrides)
    src = DataSource(args.data, cfg)
    model = MeshRegressor(cfg["model"], src.levels, src.in_channels, src.res)
    return training_flops_per_sample(model, (src.in_channels, src.res, src.res))


def check(args) -> dict:
    """Both runs, then the figures."""
    import torch

    half = args.steps // 2
    log_every = max(1, args.steps // 20)
    overrides = [
        *(TINY if args.tiny else []),
        "train.epochs=null",
        f"train.steps={args.steps}",
        f"train.log_every={log_every}",
        f"train.ckpt_every={half}",
        "train.keep_last=1",
        f"train.precision={args.precision}",
        *args.set,
    ]
    straight, resumed = args.out / "straight", args.out / "resumed"
    for d in (straight, resumed):
        shutil.rmtree(d, ignore_errors=True)
    wall = run_train(args, overrides, straight)
    run_train(args, overrides, resumed, "--stop-at", str(half))
    run_train(args, overrides, resumed)
    rows, rows_r = read_log(straight), read_log(resumed)
    steady = rows[1:] or rows  # the first window holds start-up (compilation, allocator)
    sps = sum(float(r["samples_per_s"]) for r in steady) / len(steady)
    wait = sum(float(r["data_wait"]) for r in steady) / len(steady)
    mem = max((float(r.get("peak_mem_gb") or 0) for r in rows), default=0.0)
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    flops = flops_per_sample(args, overrides)
    peak = peak_flops(device, args.peak_tflops)
    gpus = max(1, args.gpus)
    mfu = flops * sps / (peak * gpus) if peak else None
    losses_equal = [r["total"] for r in rows] == [r["total"] for r in rows_r]
    return {
        "device": device,
        "devices": gpus,
        "config": str(args.config),
        "data": str(args.data),
        "steps": args.steps,
        "precision": args.precision,
        "samples_per_s": sps,
        "data_wait_share": wait,
        "peak_gpu_memory_gb": mem if cuda else None,
        "flops_per_sample": flops,
        "peak_flops_per_device": peak,
        "mfu": mfu,
        "resume_losses_bit_identical": losses_equal,
        "resume_weights_bit_identical": same_weights(straight, resumed),
        "wall_s_uninterrupted": wall,
    }


def report(res: dict) -> str:
    mfu = f"{100 * res['mfu']:.1f} %" if res["mfu"] is not None else "n/a (--peak-tflops)"
    mem = res["peak_gpu_memory_gb"]
    yes = {True: "yes", False: "NO"}
    return "\n".join(
        [
            f"gpu-check: {res['config']} on {res['devices']} x {res['device']}, {res['steps']}"
            f" steps, {res['precision']}",
            f"  samples/s                 {res['samples_per_s']:.1f}",
            f"  data wait, share of step  {100 * res['data_wait_share']:.1f} %",
            f"  peak GPU memory           {f'{mem:.1f} GiB' if mem is not None else 'n/a (CPU)'}",
            f"  FLOPs per sample (f+b)    {res['flops_per_sample'] / 1e9:.2f} GFLOP",
            f"  MFU                       {mfu}",
            f"  resumed losses identical  {yes[res['resume_losses_bit_identical']]}",
            f"  resumed weights identical {yes[res['resume_weights_bit_identical']]}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=None, help="shard folder (make gpu-check: out/shards)"
    )
    ap.add_argument("--config", type=Path, default=REPO / "configs/paper.yaml")
    ap.add_argument("--steps", type=int, default=None, help="steps (200; --tiny: 8)")
    ap.add_argument("--gpus", type=int, default=1, help="devices, through the DeepSpeed launcher")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak per device, TFLOP/s")
    ap.add_argument("--out", type=Path, default=REPO / "out/gpu_check")
    ap.add_argument("--tiny", action="store_true", help="CPU-sized: fake shards, small model")
    ap.add_argument("--set", nargs="*", default=[], help="more trainer overrides")
    args = ap.parse_args(argv)
    args.steps = args.steps or (8 if args.tiny else 200)
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the resume stops half way)")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        if not args.tiny:
            ap.error("give --data SHARDS (make gpu-check builds out/shards) or --tiny")
        from shards.testing import make_fake_dataset

        args.data = args.out / "fake_shards"
        if not (args.data / "manifest.json").exists():
            make_fake_dataset(args.data, n_meshes=48, views=2, res=32, nv=60, shards=4, seed=1)
    if not (args.data / "manifest.json").exists():
        print(f"{args.data}: no manifest.json (not a shard folder?)", file=sys.stderr)
        return 2
    res = check(args)
    print(report(res))
    (args.out / "gpu_check.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out / 'gpu_check.json'}")
    ok = res["resume_losses_bit_identical"] and res["resume_weights_bit_identical"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""GPU check: the paper model for a few hundred steps in bf16 from shards, then an exact resume.

One command a person with a GPU runs once (``make gpu-check``). It trains ``--config``
(``configs/paper.yaml``) for ``--steps`` steps streaming from the shard folder ``--data`` with the
product's loop (``python -m trainer train``, under the DeepSpeed launcher with ``--gpus N``):
once as configured, once with ``train.deterministic=true``, and that deterministic run again
stopped at half way and resumed from its checkpoint; then a short probe run in this process
(one device, the same per-device batch). It prints:

- samples/s: samples over time, both summed over the log windows after the first (start-up),
  with and without determinism (its cost), and the share of the step the host spent waiting
  for data (``data_wait`` in log.csv);
- host-device synchronisations per step (goal 0), counted by the probe over every step after
  its first log window but the log steps: on a GPU ``torch.cuda.set_sync_debug_mode("warn")``'s
  warnings, on the CPU (``--tiny``) calls that would read a device tensor back;
- kernel launches per step (CUDA launch calls in one profiled step; on the CPU: aten ops);
- peak memory allocated and reserved (torch's allocator, the probe);
- MFU: FLOPs per sample (forward + backward, torch's FlopCounterMode: ``trainer params``)
  x samples/s / (peak FLOP/s per GPU x GPUs); the peak from the GPU's name (dense bf16, no
  sparsity: :data:`PEAK_TFLOPS`) or ``--peak-tflops``; an unknown GPU is said so;
- whether the resumed run's logged losses and final weights equal the uninterrupted run's bit
  for bit under ``train.deterministic``, and how far the logged losses move without it.

``--tiny`` runs the whole check on the CPU in a minute (a fake shard set, a small model, fp32
unless ``--precision bf16``): CI runs it so that the check keeps working. Without ``--tiny`` a
host without a GPU is refused in one line.

    python bench/gpu_check.py --data out/shards [--config configs/paper.yaml] [--steps 200]
        [--gpus N] [--peak-tflops T] [--out out/gpu_check] [--set key=value ...]
    python bench/gpu_check.py --tiny
"""

from __future__ import annotations

import argparse
import collections
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

#: dense bf16 peak TFLOP/s per GPU (vendor data sheets, no sparsity) by a fragment of torch's
#: device name, first match wins (so "H100 PCIe" before "H100": "NVIDIA H100 80GB HBM3" is SXM)
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),
    ("A100", 312.0),
    ("A10G", 70.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("V100", 125.0),  # fp16 tensor cores: V100 has no bf16
    ("RTX 4090", 165.0),
)
#: the probe's log interval and steps: counted windows are steps PROBE_LOG .. PROBE_STEPS - 2
PROBE_LOG, PROBE_STEPS = 4, 12
#: Tensor methods that read a device tensor back to the host (the CPU probe counts them)
READ_BACKS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "nonzero")
#: host-only library code the CPU probe ignores: the DataLoader's worker seeds, and torch's Adam
#: reading its step count (a CPU tensor unless the optimizer is fused or capturable)
HOST_ONLY = ("torch/utils/data/", "torch/optim/")
#: what a launcher or an earlier run in the caller's process set: each run picks its own
RENDEZVOUS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: names of the CUDA launch calls in a profile (kernels and graphs)
LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
            "cudaGraphLaunch")  # fmt: skip
NO_GPU = (
    "gpu-check measures a GPU and this host has none (torch sees no CUDA device); the CPU "
    "smoke test is: python bench/gpu_check.py --tiny"
)
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
    for key, tflops in PEAK_TFLOPS:
        if key.lower() in name.lower():
            return tflops * 1e12
    return None


def steady_rate(rows: list[dict], batch: int) -> tuple[float, float]:
    """(samples/s, data-wait share) over the log windows after the first: total samples over
    total time (each window's time from its steps, batch and rate), wait weighted by time."""
    steps = [int(r["step"]) for r in rows]
    windows = [(s - p, r) for p, s, r in zip([0, *steps], steps, rows)][1:] or [(steps[0], rows[0])]
    samples = [n * batch for n, _ in windows]
    times = [x / float(r["samples_per_s"]) for x, (_, r) in zip(samples, windows)]
    wait = sum(t * float(r["data_wait"]) for t, (_, r) in zip(times, windows))
    return sum(samples) / sum(times), wait / sum(times)


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
    for k in RENDEZVOUS:
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


class ReadBackSpy:
    """On the CPU (no device to synchronise with): counts calls that read a tensor back to the
    host (:data:`READ_BACKS`) outside host-only library code (:data:`HOST_ONLY`)."""

    def __init__(self):
        import torch

        self.count, self.active, self._saved = 0, False, {}
        self.sites: collections.Counter = collections.Counter()
        for name in READ_BACKS:
            self._saved[name] = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._wrap(self._saved[name]))

    def _wrap(self, fn):
        def counted(*a, **k):
            if self.active:
                import traceback

                frames = traceback.extract_stack(limit=4)[:-1]
                if not any(h in f.filename for f in frames for h in HOST_ONLY):
                    self.count += 1
                    self.sites[f"{frames[-1].filename}:{frames[-1].lineno}"] += 1
            return fn(*a, **k)

        return counted

    def close(self) -> None:
        import torch

        for name, fn in self._saved.items():
            setattr(torch.Tensor, name, fn)


def probe(args, overrides: list[str]) -> dict:
    """A short run in this process on one device (the per-device batch of ``--gpus``): syncs
    per step over the quiet steps after the first log window, launches (CPU: aten ops) in one
    of them, peak memory allocated and reserved."""
    import warnings

    import torch

    from trainer.config import load_config
    from trainer.train import train

    probe_set = [f"train.steps={PROBE_STEPS}", f"train.log_every={PROBE_LOG}"]
    cfg = load_config(args.config, [*overrides, *probe_set, "train.ckpt_every=100000"])
    cfg["train"]["batch_size"] //= max(1, args.gpus)
    cuda = torch.cuda.is_available()
    quiet = [s for s in range(PROBE_LOG, PROBE_STEPS - 1) if (s + 1) % PROBE_LOG]
    profiled = quiet[1] if len(quiet) > 1 else quiet[0]
    spy = None if cuda else ReadBackSpy()
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] * cuda)
    prof = torch.profiler.profile(activities=acts)
    state = {"syncs": 0, "mark": 0, "counting": False, "profiling": False}
    sites = spy.sites if spy is not None else collections.Counter()
    caught: list = []

    def on_batch(step: int, batch: dict) -> None:
        # the window of step s: its work, the next step's log (none here) and next batch
        if state["counting"]:
            new = [m for m in caught[state["mark"] :] if "synchroniz" in str(m.message)]
            state["syncs"] += len(new) if cuda else spy.count
            sites.update(f"{m.filename}:{m.lineno}" for m in new)
        if state["profiling"]:
            prof.stop()
            state["profiling"] = False
        state["counting"] = step in quiet
        if cuda:
            torch.cuda.set_sync_debug_mode("warn" if step in quiet else "default")
            state["mark"] = len(caught)
        else:
            spy.count, spy.active = 0, step in quiet
        if step == profiled:
            prof.start()
            state["profiling"] = True

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for k in RENDEZVOUS:
        os.environ.pop(k, None)  # one process of its own (a caller's rendezvous may be in use)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            caught = w
            train(cfg, args.data, args.out / "probe", resume=False, on_batch=on_batch)
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
        else:
            spy.close()
    events = prof.events() or []
    if cuda:
        launches = sum(1 for e in events if e.name in LAUNCHES)
    else:
        launches = sum(1 for e in events if e.name.startswith("aten::"))
    return {
        "syncs_per_step": state["syncs"] / len(quiet),
        "sync_sites": dict(sites.most_common(5)),
        "steps_counted": len(quiet),
        "launches_per_step": launches,
        "launch_kind": "CUDA kernel launches" if cuda else "CPU aten ops",
        "peak_memory_allocated_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "peak_memory_reserved_gb": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
    }


def check(args) -> dict:
    """The runs, the probe, then the figures."""
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
    straight, det, resumed = (args.out / n for n in ("straight", "deterministic", "resumed"))
    for d in (straight, det, resumed, args.out / "probe"):
        shutil.rmtree(d, ignore_errors=True)
    exact = [*overrides, "train.deterministic=true"]
    wall = run_train(args, overrides, straight)
    run_train(args, exact, det)
    run_train(args, exact, resumed, "--stop-at", str(half))
    run_train(args, exact, resumed)
    rows, rows_d, rows_r = read_log(straight), read_log(det), read_log(resumed)
    from trainer.config import load_config

    batch = int(load_config(args.config, overrides)["train"]["batch_size"])
    sps, wait = steady_rate(rows, batch)
    sps_det, _ = steady_rate(rows_d, batch)
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    flops = flops_per_sample(args, overrides)
    peak = peak_flops(device, args.peak_tflops)
    gpus = max(1, args.gpus)
    mfu = flops * sps / (peak * gpus) if peak else None
    loss_diff = max(abs(float(a["total"]) - float(b["total"])) for a, b in zip(rows, rows_d))
    return {
        "device": device,
        "devices": gpus,
        "config": str(args.config),
        "data": str(args.data),
        "steps": args.steps,
        "precision": args.precision,
        "samples_per_s": sps,
        "samples_per_s_deterministic": sps_det,
        "data_wait_share": wait,
        **probe(args, overrides),
        "flops_per_sample": flops,
        "peak_flops_per_device": peak,
        "peak_flops_source": (
            "--peak-tflops" if args.peak_tflops else "table" if peak else "unknown device"
        ),
        "mfu": mfu,
        "resume_losses_bit_identical": [r["total"] for r in rows_d] == [r["total"] for r in rows_r],
        "resume_weights_bit_identical": same_weights(det, resumed),
        "max_loss_difference_without_determinism": loss_diff,
        "wall_s_uninterrupted": wall,
    }


def report(res: dict) -> str:
    if res["mfu"] is not None:
        mfu = f"{100 * res['mfu']:.1f} % (peak: {res['peak_flops_source']})"
    else:
        mfu = "n/a: unknown peak for this device, give --peak-tflops"
    gb = res["peak_memory_allocated_gb"], res["peak_memory_reserved_gb"]
    mem = f"{gb[0]:.1f} / {gb[1]:.1f} GiB" if gb[0] is not None else "n/a (CPU)"
    yes = {True: "yes", False: "NO"}
    cost = 1 - res["samples_per_s_deterministic"] / res["samples_per_s"]
    syncs = f"{res['syncs_per_step']:g} (goal 0; {res['steps_counted']} steps counted)"
    if res["sync_sites"]:
        syncs += "; at " + ", ".join(f"{k} x{v}" for k, v in res["sync_sites"].items())
    return "\n".join(
        [
            f"gpu-check: {res['config']} on {res['devices']} x {res['device']}, {res['steps']}"
            f" steps, {res['precision']}",
            f"  samples/s                 {res['samples_per_s']:.1f}",
            f"  samples/s, deterministic  {res['samples_per_s_deterministic']:.1f}"
            f" (determinism costs {100 * cost:.0f} %)",
            f"  data wait, share of step  {100 * res['data_wait_share']:.1f} %",
            f"  syncs per step            {syncs}",
            f"  launches per step         {res['launches_per_step']} ({res['launch_kind']})",
            f"  peak memory alloc / rsrv  {mem}",
            f"  FLOPs per sample (f+b)    {res['flops_per_sample'] / 1e9:.2f} GFLOP",
            f"  MFU                       {mfu}",
            f"  exact resume (train.deterministic): losses"
            f" {yes[res['resume_losses_bit_identical']]}, weights"
            f" {yes[res['resume_weights_bit_identical']]}",
            f"  loss difference without determinism  "
            f"{res['max_loss_difference_without_determinism']:.3g} (max over log steps)",
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
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            print(NO_GPU, file=sys.stderr)
            return 2
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

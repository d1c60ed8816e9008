"""Running the plan: train and evaluate every run not finished yet, resumably.

A run's folder (``OUT/runs/<name>``) holds its checkpoints while it trains and its
``result.json`` once trained and evaluated (written last, atomically): a finished run is never
redone, a killed one resumes from its checkpoint, one evaluated under other settings is only
evaluated again. With :class:`H36M` files also zero-shot on Human3.6M (``trainer eval-h36m``).
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from shards.atomic import write_atomic
from trainer import distributed as dist
from trainer.ablate.plan import Plan, Run
from trainer.checkpoint import CKPT_DIR, MODEL_FILE, restart_if_stale
from trainer.evaluate import evaluate
from trainer.train import train

RESULT_FILE = "result.json"
RUNS_DIR = "runs"
METRICS = ("mpjpe", "pa_mpjpe")


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (a killed write leaves no half file)."""
    write_atomic(path, json.dumps(obj, indent=2, default=str))


def ranks(plan: Plan) -> tuple[int, int]:
    """(rank, world size): (0, 1) for one process; under a launcher the process group is
    started here (with the first run's ``train.dist_timeout_s``) for rank 0's decisions."""
    if dist.detect().world == 1 or not plan.runs:
        return 0, 1
    r = dist.start(float(next(iter(plan.runs.values())).cfg["train"]["dist_timeout_s"]))
    return r.rank, r.world


def finished(run_dir: Path, key: str) -> dict | None:
    """The run's result if it is finished and its model is still there."""
    res = read_result(run_dir, key)
    return res if res is not None and (run_dir / MODEL_FILE).exists() else None


def read_result(run_dir: Path, key: str) -> dict | None:
    """The finished result of the run ``key`` in ``run_dir``, or None."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return res if res.get("key") == key and "val" in res else None


def eval_key(run: Run) -> str:
    """What a finished run's evaluation depends on (results with another key are re-evaluated;
    ``per_view``: results carry the per-camera breakdown)."""
    return json.dumps(
        {"split": run.cfg["data"]["val_split"], "max": run.eval_samples, "per_view": 1}
    )


# ---------------------------------------------------------------- Human3.6M zero-shot hook


@dataclass
class H36M:
    """Files (and options) for ``python -m trainer eval-h36m`` (trainer/h36m.py)."""

    file_3d: Path
    file_2d: Path
    stride: int | None = None
    noise_px: float = 10.0  # also evaluated with this much 2D noise (0: clean only)

    def key(self) -> str:
        parts = [self.stride, self.noise_px]
        for f in (self.file_3d, self.file_2d):
            st = f.stat()
            parts += [str(f.resolve()), st.st_size, st.st_mtime_ns]
        return json.dumps(parts)


def h36m_overall(res: dict) -> dict[str, float]:
    """The model's MPJPE / PA-MPJPE over all frames from ``evaluate_h36m``'s result."""
    for key in ("all", "overall"):
        c = (res.get(key) or {}).get("model")
        if isinstance(c, dict) and all(isinstance(c.get(m), int | float) for m in METRICS):
            return {m: float(c[m]) for m in METRICS}
    raise ValueError("eval-h36m result has no all.model.mpjpe / pa_mpjpe")


def h36m_applies(run: Run) -> bool:
    """eval-h36m renders heatmaps from 2D keypoints: it cannot feed a masks model."""
    return run.cfg["model"]["input"] == "heatmaps"


def eval_h36m(run_dir: Path, data: Path, h36m: H36M) -> dict:
    """``trainer.h36m.evaluate_h36m`` on a finished run: its result + the overall figures."""
    from trainer.h36m import evaluate_h36m

    kw = {} if h36m.stride is None else {"stride": h36m.stride}
    res = evaluate_h36m(run_dir, data, h36m.file_3d, h36m.file_2d, **kw)
    out = {"key": h36m.key(), "overall": h36m_overall(res), "raw": res}
    if h36m.noise_px > 0:  # imperfect 2D: seeded Gaussian noise on the keypoints (seed 0)
        noisy = evaluate_h36m(
            run_dir, data, h36m.file_3d, h36m.file_2d, noise_px=h36m.noise_px, **kw
        )
        out |= {"noise_px": float(h36m.noise_px), "noisy": h36m_overall(noisy)}
    return out


# ---------------------------------------------------------------- running


def execute(
    plan: Plan,
    out: str | Path,
    h36m: H36M | None = None,
    keep_checkpoints: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Train and evaluate every run of ``plan`` that has no finished result; all results by key.

    A run folder holds its config's identity in its name; its ``result.json`` is written last
    (atomically), so a run killed before it resumes from its checkpoint on the next invocation.
    Checkpoints of a finished run are removed unless ``keep_checkpoints`` (``model.pt`` stays).
    Under a launcher every rank trains; rank 0 decides what to do, evaluates and writes (the
    other ranks' results are empty).
    """
    rank, world = ranks(plan)
    log = log if rank == 0 else (lambda _: None)
    root = Path(out) / RUNS_DIR
    results: dict[str, dict] = {}
    todo = len(plan.runs)
    for i, run in enumerate(plan.runs.values(), 1):
        run_dir = root / run.name
        res = dist.on_rank0(partial(finished, run_dir, run.key), rank, world)
        what = f"[{i}/{todo}] {run.name}"
        if res is None or res.get("eval_key") != eval_key(run):
            t0 = time.perf_counter()
            steps = run.cfg["train"]["steps"]
            if res is None:
                log(f"{what}: training {steps} steps x {run.cfg['train']['batch_size']}")
                summary = restart_if_stale(
                    partial(train, run.cfg, run.data, run_dir),
                    run_dir,
                    rank,
                    lambda err, what=what: log(f"{what}: {err}; starting it afresh"),
                )
                summary["wall_s"] = time.perf_counter() - t0
                if rank:  # evaluation, results and clean-up on rank 0
                    continue
            else:
                log(f"{what}: evaluating again (evaluation settings changed)")
                summary = res["train"]
            t1 = time.perf_counter()
            n_eval = sys.maxsize if run.eval_samples is None else int(run.eval_samples)
            val = evaluate(
                run_dir, run.data, split=run.cfg["data"]["val_split"], max_samples=n_eval
            )
            res = {
                "key": run.key,
                "eval_key": eval_key(run),
                "name": run.name,
                "data": str(run.data),
                "config": run.cfg,
                "train": summary,
                "val": val,
                "eval_s": time.perf_counter() - t1,
            }
            write_json(run_dir / RESULT_FILE, res)
            log(
                f"{what}: val MPJPE {val['model']['mpjpe']:.1f}, PA-MPJPE "
                f"{val['model']['pa_mpjpe']:.1f} mm ({time.perf_counter() - t0:.0f} s)"
            )
        else:
            log(f"{what}: done before, kept")
        if (
            h36m is not None
            and h36m_applies(run)
            and (res.get("h36m") or {}).get("key") != h36m.key()
        ):
            log(f"{what}: Human3.6M zero-shot evaluation")
            res["h36m"] = eval_h36m(run_dir, run.data, h36m)
            write_json(run_dir / RESULT_FILE, res)
        if not keep_checkpoints and (run_dir / MODEL_FILE).exists():
            shutil.rmtree(run_dir / CKPT_DIR, ignore_errors=True)
        results[run.key] = res
        gc.collect()  # drop the finished engine and its loader workers before the next run
    return results

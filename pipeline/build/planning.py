"""The build's plan stage: the sampling plan of a listing (:func:`make`, loading and thinning
in a local process pool on large archives) and its files in the output folder (:func:`save`).
The plan itself is :mod:`pipeline.plan`."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from pipeline.amass import load_sequence
from pipeline.build.config import PreflightError
from pipeline.plan import Plan, PlanConfig, SeqEntry, make_plan, plot_plan

PARALLEL_PLAN_MIN_SEQUENCES = 256  # below this a process pool costs more than it saves


class BodyPoseLoader:
    """Picklable ``rel path -> (frames, 63)`` body poses of an AMASS sequence."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __call__(self, rel: str) -> np.ndarray:
        return np.asarray(load_sequence(self.root / rel, self.root).pose_body)


def make(
    amass: Path, entries: list[SeqEntry], pcfg: PlanConfig, skips: list[dict], *,
    processes: int, progress: bool,
) -> Plan:  # fmt: skip
    """The sampling plan; loading and thinning run in a pool of ``processes`` local processes
    when thinning is on and the archive is large. A plan that cannot be made is a
    :class:`PreflightError` naming the archive."""
    loader = BodyPoseLoader(amass)
    n = processes
    try:
        if pcfg.min_pose_dist <= 0 or n < 2 or len(entries) < PARALLEL_PLAN_MIN_SEQUENCES:
            return make_plan(entries, pcfg, loader, skips, progress=progress)

        with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as ex:
            map_fn = partial(ex.map, chunksize=4)
            return make_plan(entries, pcfg, loader, skips, progress=progress, map_fn=map_fn)
    except ValueError as e:
        raise PreflightError(f"{amass}: {e}") from e


def plan_processes(workers: int, address: str | None) -> int:
    """Local processes for planning: ``--workers``, or on a cluster the driver's cores (<= 16)."""
    return workers if not address else min(os.cpu_count() or 1, 16)


def save(out: Path, plan: Plan, cfg: dict) -> str:
    """Write the plan (refusing a folder that holds another one), its picture and the config;
    return the plan digest."""
    digest = plan.digest()
    if (out / "plan.json").exists():
        old = json.loads((out / "plan.json").read_text()).get("digest")
        if old != digest:
            raise PreflightError(
                f"{out}: holds a different plan ({old} != {digest}); use a new --out"
            )
    plan.save(out)
    plot_plan(plan, out / "plan.png")
    (out / "build_config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    return digest

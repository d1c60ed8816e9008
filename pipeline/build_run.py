"""The build's run stage: resume what is done, compute the other units in this process or as
Ray tasks (a private local instance, or a cluster through ``--address`` / ``RAY_ADDRESS``)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from pipeline.build_config import UnitFailed
from pipeline.plan import Plan
from pipeline.units import FAULT_ENV, clean_partial, load_done, make_jobs, run_unit, warm_up


def run_units(
    plan: Plan, cfg: dict, digest: str, paths: dict[str, Path], *,
    workers: int, address: str | None, quiet: bool,
) -> tuple[dict, list[dict], float]:  # fmt: skip
    """Resume: drop partial files, keep units whose shard matches its record, run the rest
    (in this process or as Ray tasks). Returns ({unit: record} of every unit, the records
    computed now, seconds spent computing them)."""
    from tqdm import tqdm

    out = paths["out"]
    removed = clean_partial(out)
    done = load_done(out, plan, digest, cfg["build"]["store_vertices"])
    todo = [u for u in range(len(plan.units)) if u not in done]
    jobs = make_jobs(plan, todo, paths, cfg, digest)
    print(
        f"plan {digest}: {plan.size} meshes in {len(plan.units)} units "
        f"({', '.join(f'{k} {v}' for k, v in plan.stats['splits'].items())}); "
        f"{len(done)} units done, {len(todo)} to run"
        + (f"; removed {removed} partial files" if removed else ""),
        flush=True,
    )
    bar = tqdm(
        total=plan.size,
        initial=sum(r["planned"] for r in done.values()),
        unit="mesh",
        desc="build",
        smoothing=0.1,
        disable=quiet,
    )
    try:
        if not jobs:  # everything already done: just (re)write topology and manifest
            recs, t_units = [], 0.0
        elif workers == 0 and not address:
            recs, t_units = run_local(jobs, bar)
        else:
            recs, t_units = run_ray(jobs, bar, workers, address, cfg["build"]["max_retries"])
    finally:
        bar.close()
    return {**done, **{r["unit"]: r for r in recs}}, recs, t_units


def run_local(jobs: list[dict], bar) -> tuple[list[dict], float]:
    """Run units in this process; return their records and the seconds spent."""
    t0 = time.perf_counter()
    recs = []
    for job in jobs:
        rec = run_unit(job)
        bar.update(rec["planned"])
        recs.append(rec)
    return recs, time.perf_counter() - t0


def run_ray(
    jobs: list[dict], bar, workers: int, address: str | None, retries: int
) -> tuple[list[dict], float]:
    """Run units as Ray tasks (local instance or cluster); return the records and the seconds
    from the first submission to the last result (Ray and worker start-up excluded: one
    warm-up task per CPU loads models and kernels first)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    tmp = None
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        tmp = tempfile.mkdtemp(prefix="ray-mpt-build-", dir="/tmp")
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            _temp_dir=tmp,
            log_to_driver=True,
            runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k == FAULT_ENV}},
        )
    try:
        task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(run_unit)
        cpus = max(1, int(ray.cluster_resources().get("CPU", workers or 1)))
        window = 2 * cpus
        if jobs:
            warm = ray.remote(num_cpus=1)(warm_up)
            ray.get([warm.remote(jobs[0]) for _ in range(min(cpus, len(jobs)))])
        t0 = time.perf_counter()
        pending, recs, it = [], [], iter(jobs)
        for job in it:
            pending.append(task.remote(job))
            if len(pending) >= window:
                break
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                rec = ray.get(ready[0])
            except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError) as e:
                msg = str(e).strip().splitlines()[-1]
                raise UnitFailed(f"a unit failed after {retries} retries ({msg})") from e
            recs.append(rec)
            bar.update(rec["planned"])
            nxt = next(it, None)
            if nxt is not None:
                pending.append(task.remote(nxt))
        return recs, time.perf_counter() - t0
    finally:
        ray.shutdown()
        if tmp is not None:  # local instance: its session folder (logs went to the driver)
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

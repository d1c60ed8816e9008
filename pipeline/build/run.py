"""The build's run stage: resume what is done, compute the other units in this process or as
Ray tasks (a private local instance, or a cluster through ``--address`` / ``RAY_ADDRESS``).

With Ray, every node first proves it sees the driver's world (:mod:`pipeline.build.nodes`), and
every Ray failure (a task that kept raising, a dead worker or node, Ray's out-of-memory killer, a
lost result ...) becomes one :class:`~pipeline.build.config.UnitFailed` line; finished units
stay, a rerun resumes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm import tqdm

from pipeline.build import nodes
from pipeline.build.config import NodeMismatch, PreflightError, UnitFailed
from pipeline.build.units import (
    FAULT_ENV,
    UNITS_DIR,
    clean_partial,
    load_done,
    make_jobs,
    run_unit,
    warm_up,
)
from pipeline.plan import Plan

#: units in flight per cluster CPU (re-read as units complete, so joining nodes get work)
IN_FLIGHT_PER_CPU = 2


def run_units(
    plan: Plan, cfg: dict, digest: str, paths: dict[str, Path], expect: dict | None, *,
    workers: int, address: str | None, quiet: bool,
) -> tuple[dict, list[dict], float]:  # fmt: skip
    """Resume: drop partial files, keep units whose shard matches its record, run the rest
    (in this process, or as Ray tasks on nodes that match ``expect``). Returns ({unit: record}
    of every unit, the records computed now, seconds spent computing them)."""
    out = paths["out"]
    removed = clean_partial(out)
    (out / UNITS_DIR).mkdir(exist_ok=True)  # here, never on a worker (its folder must exist)
    done = load_done(out, plan, digest, cfg["build"]["store_vertices"])
    todo = [u for u in range(len(plan.units)) if u not in done]
    use_ray = bool(workers or address)
    sizes = nodes.motion_sizes(paths["amass"], plan.sequences) if use_ray and todo else None
    jobs = make_jobs(plan, todo, paths, cfg, digest, expect if use_ray else None, sizes)
    print(
        f"plan {digest}: {plan.size} meshes in {len(plan.units)} units "
        f"({', '.join(f'{k} {v}' for k, v in plan.stats['splits'].items())}); "
        f"{len(done)} units done, {len(todo)} to run"
        + (f"; removed {len(removed)} partial files" if removed else ""),
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
        elif not use_ray:
            recs, t_units = run_local(jobs, bar)
        else:
            retries = cfg["build"]["max_retries"]
            recs, t_units = run_ray(jobs, bar, workers, address, retries, expect)
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
    jobs: list[dict], bar, workers: int, address: str | None, retries: int, expect: dict | None
) -> tuple[list[dict], float]:
    """Run units as Ray tasks (local instance or cluster); return the records and the seconds
    from the first submission to the last result (Ray and worker start-up excluded: one
    warm-up task per CPU loads models and kernels first)."""
    import ray  # heavy: ray

    tmp = _init_ray(ray, workers, address)
    unit_of: dict = {}
    try:
        if expect is not None:
            nodes.check_cluster(ray, expect)
        task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(run_unit)
        warm = ray.remote(num_cpus=1)(warm_up)
        ray.get([warm.remote(jobs[0]) for _ in range(min(_cpus(ray), len(jobs)))])
        t0 = time.perf_counter()
        recs: list[dict] = []

        def submit(job: dict):
            ref = task.remote(job)
            unit_of[ref] = job["unit"]
            return ref

        def done(ref) -> None:
            try:
                rec = ray.get(ref)
            except ray.exceptions.RayError as e:
                raise UnitFailed(ray_failure(e, unit_of[ref], retries)) from None
            if "refused" in rec:  # a node that joined later and sees another world
                raise NodeMismatch(f"{nodes.label_of(ray, rec['node_id'])}: {rec['refused']}")
            recs.append(rec)
            bar.update(rec["planned"])

        def wait_one(pending: list):
            return ray.wait(pending, num_returns=1)[0][0]

        keep_in_flight(jobs, submit, wait_one, done, lambda: _cpus(ray))
        return recs, time.perf_counter() - t0
    except ray.exceptions.RayError as e:  # the node checks or the warm-up
        raise UnitFailed(ray_failure(e, None, retries)) from None
    finally:
        ray.shutdown()
        if tmp is not None:  # local instance: its session folder (logs went to the driver)
            shutil.rmtree(tmp, ignore_errors=True)


def _init_ray(ray, workers: int, address: str | None) -> str | None:
    """Start a private local instance (returns its temp folder) or attach to a cluster; the
    fault-injection variable travels to every worker either way."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    env = {"env_vars": {k: v for k, v in os.environ.items() if k == FAULT_ENV}}
    if address:
        try:
            ray.init(address=address, log_to_driver=True, runtime_env=env)
        except (ConnectionError, RuntimeError, ValueError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PreflightError(f"Ray cluster at {address}: cannot connect ({msg})") from None
        return None
    tmp = tempfile.mkdtemp(prefix="ray-mpt-build-", dir="/tmp")
    ray.init(num_cpus=workers, include_dashboard=False, _temp_dir=tmp, log_to_driver=True,
             runtime_env=env)  # fmt: skip
    return tmp


def _cpus(ray) -> int:
    """The cluster's CPUs now (nodes join and leave)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def keep_in_flight(
    jobs: Iterable[dict],
    submit: Callable[[dict], object],
    wait_one: Callable[[list], object],
    done: Callable[[object], None],
    cpus: Callable[[], int],
) -> int:
    """Submit ``jobs`` so that :data:`IN_FLIGHT_PER_CPU` x ``cpus()`` are in flight, re-reading
    ``cpus()`` whenever a unit completes (a node that joins gets work at once); ``done(ref)``
    takes each finished one. Returns the most units that were in flight at once."""
    it, pending, most = iter(jobs), [], 0

    def top_up() -> None:
        nonlocal most
        want = IN_FLIGHT_PER_CPU * max(1, cpus())
        while len(pending) < want and (job := next(it, None)) is not None:
            pending.append(submit(job))
        most = max(most, len(pending))

    top_up()
    while pending:
        ref = wait_one(pending)
        pending.remove(ref)
        done(ref)
        top_up()
    return most


def ray_failure(e: Exception, unit: int | None, retries: int) -> str:
    """One line for a Ray failure: what happened to which unit, in words per failure kind."""
    import ray.exceptions as X  # heavy: ray

    who = "a unit" if unit is None else f"unit {unit}"
    kinds = [
        (X.OutOfMemoryError, "was killed by Ray's out-of-memory monitor (give tasks more "
         "memory: fewer CPUs per node or a smaller plan.unit_size)"),
        (X.NodeDiedError, "lost its node (the node died or left the cluster)"),
        (X.WorkerCrashedError, "lost its worker process (it crashed or was killed)"),
        (X.OwnerDiedError, "lost its result: the process that owned it died"),
        (X.ObjectLostError, "lost its result (object lost)"),
        (X.RayActorError, "lost an actor"),
        (X.TaskCancelledError, "was cancelled"),
    ]  # fmt: skip
    first = str(e).strip().splitlines()
    if isinstance(e, X.RayTaskError):  # raised inside the task: its exception's last line
        what = f"raised {first[-1] if first else type(e).__name__}"
    else:
        what = next((w for k, w in kinds if isinstance(e, k)), None)
        what = what or f"failed in Ray ({type(e).__name__}: {first[0] if first else ''})"
    return f"{who} {what}; gave up after {retries} retries"

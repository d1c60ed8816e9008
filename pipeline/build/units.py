"""Work units: what a worker (Ray task or the driver itself) runs, and the records that make a
build resumable.

A unit is a job dict (:func:`make_jobs`: the plan's samples of one unit plus everything a
worker needs, paths absolute); :func:`run_unit` computes it with :func:`pipeline.process.
process_unit`, writes ``shard-<unit>.h5`` and then ``units/unit-NNNNNN.json``. A rerun trusts a
unit whose record and shard checksum match (:func:`load_done`).

This module, not ``__main__``, holds the functions Ray ships to workers, so they are pickled by
reference and share one per-process :class:`~pipeline.process.Context` (built once per worker).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from pipeline.build.nodes import check_here, check_motion, node_path
from pipeline.plan import Plan
from pipeline.process import Context, RenderConfig, process_unit
from shards.atomic import write_atomic
from shards.heatmaps import encode
from shards.schema import GENDERS, SCHEMA_VERSION, SHARD_PATTERN
from shards.writer import ShardWriter, file_checksum, write_shard

UNITS_DIR = "units"
FAULT_ENV = "MPT_BUILD_FAULT"  # testing hook: "<unit>[:<flag file>]" -> os._exit mid-shard

_CTX: dict[tuple, Context] = {}
_CONTEXTS_BUILT = [0]  # how many Contexts this process built (one per worker and build)


def shard_name(unit: int) -> str:
    return SHARD_PATTERN.format(unit)


def unit_record_path(out: Path, unit: int) -> Path:
    return out / UNITS_DIR / f"unit-{unit:06d}.json"


def make_jobs(
    plan: Plan, units: list[int], paths: dict[str, Path], cfg: dict, digest: str,
    expect: dict | None = None, sizes: dict[str, int | None] | None = None,
) -> list[dict]:  # fmt: skip
    """One job per unit; ``paths``: ``out``, ``amass``, ``body_models`` (absolute).
    ``expect`` (:func:`pipeline.build.nodes.expectation`) and the motion files' ``sizes``: what the
    node running the unit must see first (None: no check, the driver runs the units)."""
    jobs = []
    for u in units:
        a, b = (int(x) for x in plan.units[u])
        jobs.append(
            {
                "unit": u,
                "out": str(paths["out"]),
                "amass": str(paths["amass"]),
                "body_models": str(paths["body_models"]),
                "render": cfg["render"],
                "compression": cfg["build"]["compression"],
                "store_vertices": bool(cfg["build"]["store_vertices"]),
                "model_type": cfg["build"]["model_type"],
                "seed": int(cfg["plan"]["seed"]),
                "split": plan.unit_split(u),
                "plan_digest": digest,
                "paths": [plan.sequences[s] for s in plan.seq[a:b]],
                "frames": plan.frame[a:b].tolist(),
                "ids": list(range(a, b)),
                "expect": expect,
                "sizes": None
                if sizes is None
                else {
                    p: sizes[p] for p in dict.fromkeys(plan.sequences[s] for s in plan.seq[a:b])
                },  # fmt: skip
            }
        )
    return jobs


def _context(job: dict) -> Context:
    """The worker's cached Context for a job's inputs and settings."""
    key = (job["amass"], job["body_models"], job["model_type"], json.dumps(job["render"]))
    if key not in _CTX:
        _CTX.clear()
        _CONTEXTS_BUILT[0] += 1
        _CTX[key] = Context(
            node_path(job["amass"]),
            node_path(job["body_models"]),
            RenderConfig(**job["render"]),
            model_type=job["model_type"],
        )
    return _CTX[key]


def warm_up(job: dict) -> int:
    """Load what every unit needs (body models of all genders, regressors, compiled kernels)
    so start-up is not counted as unit time; returns the worker's pid."""
    import torch  # heavy: torch

    torch.set_num_threads(1)

    ctx = _context(job)
    for g in GENDERS:
        try:
            ctx.skinner(ctx.model_type, g)
        except ValueError:  # a gender the archive does not use may be absent
            pass
    ctx.regressors(ctx.model_type)
    encode(np.zeros((1, 17, 2)), None, ctx.render.res)
    time.sleep(0.2)  # keep this worker busy so the next warm-up lands on another one
    return os.getpid()


def run_unit(job: dict) -> dict:
    """Compute and write one unit; return (and persist) its record. A node that does not see
    the driver's world (``job["expect"]``, ``job["sizes"]``) computes nothing and returns
    ``{"unit", "refused": one line, "node_id"}`` instead."""
    import torch  # heavy: torch

    torch.set_num_threads(1)

    u = job["unit"]
    refused = (job.get("expect") and check_here(job["expect"])) or (
        job.get("sizes") and check_motion(job["amass"], job["sizes"])
    )
    if refused:
        return {"unit": u, "refused": refused, "node_id": _node_id()}
    out = node_path(job["out"])
    for p in out.glob(f"{shard_name(u)}.tmp-*"):  # an earlier attempt's partial shard
        p.unlink(missing_ok=True)
    ctx = _context(job)
    t0, c0 = time.perf_counter(), time.process_time()
    store = bool(job.get("store_vertices", False))
    res = process_unit(
        ctx,
        job["paths"],
        np.asarray(job["frames"]),
        np.asarray(job["ids"]),
        job["seed"],
        store_vertices=store,
    )
    shard = None
    path = out / shard_name(u)
    nv = ctx.model(ctx.model_type, "neutral").num_vertices
    attrs = {"unit": u, "plan": job["plan_digest"], "Nv": nv}
    if res.arrays is not None:
        if _fault_now(u):
            w = ShardWriter(path, split=job["split"], attrs=attrs)
            w.append({k: v[:1] for k, v in res.arrays.items()})
            os._exit(17)  # simulated crash mid-shard: leaves a partial temp file
        info = write_shard(
            path, res.arrays, split=job["split"], compression_kind=job["compression"], attrs=attrs
        )
        shard = info.to_dict()
    record = {
        "unit": u,
        "plan": job["plan_digest"],
        "schema_version": SCHEMA_VERSION,
        "store_vertices": store,
        "split": job["split"],
        "planned": len(job["ids"]),
        "shard": shard,
        "skips": res.skips,
        "seconds": round(time.perf_counter() - t0, 4),
        "cpu_seconds": round(time.process_time() - c0, 4),
        "worker": {"pid": os.getpid(), "node": _node_id(), "contexts_built": _CONTEXTS_BUILT[0]},
    }
    write_atomic(unit_record_path(out, u), json.dumps(record) + "\n")  # units/: the driver's
    return record


def _node_id() -> str:
    """This Ray node's id ("" outside Ray)."""
    import ray  # heavy: ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def _fault_now(unit: int) -> bool:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return False
    target, _, flag = spec.partition(":")
    if int(target) != unit:
        return False
    if flag:  # fail once: the flag file marks that the crash already happened
        if Path(flag).exists():
            return False
        Path(flag).write_text("crashed\n")
    return True


def load_done(out: Path, plan: Plan, digest: str, store_vertices: bool = False) -> dict[int, dict]:
    """Unit records whose shard is present and matches its recorded checksum, written by this
    schema version with the same ``store_vertices`` (others are computed again)."""
    done = {}
    for u in range(len(plan.units)):
        rp = unit_record_path(out, u)
        if not rp.exists():
            continue
        try:
            rec = json.loads(rp.read_text())
        except json.JSONDecodeError:
            continue
        if rec.get("plan") != digest or rec.get("schema_version") != SCHEMA_VERSION:
            continue
        if bool(rec.get("store_vertices", False)) != bool(store_vertices):
            continue
        sh = rec.get("shard")
        if sh is not None:
            p = out / sh["name"]
            if not p.exists() or p.stat().st_size != sh["bytes"]:
                continue
            if file_checksum(p) != sh["checksum"]:
                continue
        done[u] = rec
    return done


def clean_partial(out: Path) -> list[str]:
    """Delete temporary files left by killed writers; return their names."""
    gone = []
    for p in sorted(out.glob("*.tmp-*")) + sorted((out / UNITS_DIR).glob("*.tmp-*")):
        p.unlink(missing_ok=True)
        gone.append(p.relative_to(out).as_posix())
    return gone

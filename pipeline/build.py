"""Build driver: AMASS archive + body models -> sampling plan -> Ray tasks -> shards + manifest.

    python -m pipeline.build --config configs/build_default.yaml --amass data/amass \\
        --body-models data/body_models --out out/shards --views 8 --res 56 --masks 0 --workers 2

Settings: typed defaults (:class:`BuildConfig`; ``configs/build_default.yaml`` sets nothing),
then ``--config``, then the flags ``--meshes`` ... ``--masks``, then ``--set a.b=value`` in order;
``--print-config`` prints the result. An unknown or mistyped key is a one-line error.

Local Ray with ``--workers N`` (``0`` runs units in this process, no Ray); a cluster through
``--address`` or ``RAY_ADDRESS`` (the output folder must be on a filesystem every node sees).

Resumable: the plan is saved in the output folder; each finished unit leaves its shard
(``shard-NNNNNN.h5``, named by unit index) and a record ``units/unit-NNNNNN.json`` with the
shard's checksum and the unit's skips. A rerun of the same command skips units whose record and
shard checksum match, deletes partial ``*.tmp-*`` files, computes the rest and writes the
topology and ``manifest.json``. Planned = written + skipped is checked before the manifest is
written. Bad inputs (missing folders, missing or unloadable body models, an unwritable output)
stop the build before any work starts with one line naming the path and the reason (exit 2).
Likely mistakes that do not stop it (subset names matching no folder, a root one level off,
unusual frame rates, an approximated H36M regressor) are ``warning:`` lines on stderr and
``notes`` in the manifest. ``--dry-run`` prints what a build would use instead
(:mod:`pipeline.doctor`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from pipeline.body_models import MODEL_TYPES
from pipeline.plan import SPLITS, Plan, PlanConfig, SeqEntry, make_plan, plot_plan
from pipeline.process import Context, RenderConfig, process_unit
from pipeline.subsets import check_listing, summary_lines
from shards.atomic import write_atomic
from shards.config import ConfigError, Field, Section, load
from shards.schema import GENDERS, SCHEMA_VERSION
from shards.writer import COMPRESSIONS

UNITS_DIR = "units"
PARALLEL_PLAN_MIN_SEQUENCES = 256  # below this a process pool costs more than it saves
FAULT_ENV = "MPT_BUILD_FAULT"  # testing hook: "<unit>[:<flag file>]" -> os._exit mid-shard


class PreflightError(Exception):
    """Bad input detected before any work started; the message is one line."""


class UnitFailed(Exception):
    """A work unit kept failing; finished units are kept, a rerun resumes."""


# ---------------------------------------------------------------------------------------------
# configuration


class BuildOptions(Section):
    """How the build runs (the ``build`` section of a build config)."""

    model_type: Literal[MODEL_TYPES] = "smplh"  # body-model family; others' sequences skipped
    max_retries: int = Field(3, ge=0)  # Ray task retries (worker crash or exception)
    #: shard compression (``shards.writer.COMPRESSIONS``); blosc-lz4hc:1 writes as fast as
    #: blosc-lz4 and is 17% smaller (shards/SCHEMA.md)
    compression: Literal[COMPRESSIONS] = "blosc-lz4hc:1"
    #: also store float16 ``mesh/vertices`` (schema 1's 41 KB per mesh); schema 2 recomputes
    #: them from the body parameters with the skinning arrays topology.h5 carries
    store_vertices: bool = False


class BuildConfig(Section):
    """A build config: sampling plan, per-view rendering, how the build runs. The defaults
    are what ``make shards`` builds on the embedded default."""

    plan: PlanConfig = PlanConfig()
    render: RenderConfig = RenderConfig()
    build: BuildOptions = BuildOptions()


#: CLI flags that set one config value each (``--meshes 300`` = ``--set plan.meshes=300``).
FLAG_KEYS = {
    "meshes": "plan.meshes",
    "seed": "plan.seed",
    "unit_size": "plan.unit_size",
    "views": "render.views",
    "res": "render.res",
    "masks": "render.masks",
}


def load_config(
    path: Path | None, flags: dict | None = None, overrides: list[str] | None = None
) -> dict:
    """The build config as a plain dict: defaults, the YAML file at ``path``, the CLI
    ``flags`` (:data:`FLAG_KEYS`, ``None`` = not given), then ``--set`` ``overrides``."""
    sets = [f"{key}={flags[f]}" for f, key in FLAG_KEYS.items() if (flags or {}).get(f) is not None]
    sets += list(overrides or ())
    try:
        return load(BuildConfig, path, sets).model_dump()
    except ConfigError as e:
        raise PreflightError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# inputs


def scan_archive(
    root: Path, model_type: str, scanned: tuple[list, list] | None = None
) -> tuple[list[SeqEntry], list[dict], dict[str, tuple[str, str]]]:
    """List readable sequences of ``model_type`` and record the other files as skips.

    ``scanned``: the ``amass.scan(root, on_error="skip")`` result when already at hand.
    Returns (entries, skips, {relative path: (model_type, gender)}).
    """
    from pipeline import amass

    infos, bad = scanned if scanned is not None else amass.scan(root, on_error="skip")
    entries, kinds = [], {}
    skips = [{"input": b.path, "reason": b.reason, "samples": 0} for b in bad]
    for info in infos:
        if info.model_type != model_type:
            reason = f"{info.model_type} sequence; this build poses {model_type} body models"
            skips.append({"input": info.path, "reason": reason, "samples": 0})
            continue
        entries.append(SeqEntry(info.path, info.subset, int(info.frames), float(info.fps)))
        kinds[info.path] = (info.model_type, str(info.gender))
    return entries, skips, kinds


def preflight_paths(amass_root: Path, body_models: Path, out: Path) -> None:
    """Folders exist and the output is writable (one clear line otherwise)."""
    if not amass_root.is_dir():
        raise PreflightError(f"{amass_root}: AMASS folder not found")
    if not body_models.is_dir():
        raise PreflightError(f"{body_models}: body-model folder not found")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PreflightError(f"{out}: output folder not writable ({e.strerror or e})") from e


def preflight_models(body_models: Path, needed: set[tuple[str, str]]) -> None:
    """Every (model_type, gender) the plan needs loads (plus the neutral model for topology)."""
    from pipeline.body_models import load_body_model

    for model_type, gender in sorted(needed | {(next(iter(needed))[0], "neutral")}):
        try:
            load_body_model(body_models, model_type=model_type, gender=gender)
        except Exception as e:  # noqa: BLE001 - any failure is reported as one line
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise PreflightError(
                f"{body_models}: {model_type} {gender} body model unusable ({msg})"
            ) from e


# ---------------------------------------------------------------------------------------------
# one unit (runs in a Ray task or in-process)

_CTX: dict[tuple, Context] = {}


def shard_name(unit: int) -> str:
    from shards.schema import SHARD_PATTERN

    return SHARD_PATTERN.format(unit)


def unit_record_path(out: Path, unit: int) -> Path:
    return out / UNITS_DIR / f"unit-{unit:06d}.json"


def _context(job: dict) -> Context:
    """The worker's cached Context for a job's inputs and settings."""
    key = (job["amass"], job["body_models"], job["model_type"], json.dumps(job["render"]))
    if key not in _CTX:
        _CTX.clear()
        _CTX[key] = Context(
            Path(job["amass"]),
            Path(job["body_models"]),
            RenderConfig(**job["render"]),
            model_type=job["model_type"],
        )
    return _CTX[key]


def warm_up(job: dict) -> int:
    """Load what every unit needs (body models of all genders, regressors, compiled kernels)
    so start-up is not counted as unit time; returns the worker's pid."""
    import torch

    torch.set_num_threads(1)
    from pipeline.heatmaps import encode

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
    """Compute and write one unit; return (and persist) its record."""
    import torch

    torch.set_num_threads(1)
    from shards.writer import ShardWriter, write_shard

    out = Path(job["out"])
    ctx = _context(job)
    u = job["unit"]
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
    }
    rp = unit_record_path(out, u)
    rp.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(rp, json.dumps(record) + "\n")
    return record


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
    from shards.writer import file_checksum

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


def clean_partial(out: Path) -> int:
    """Delete temporary files left by killed writers; return how many."""
    n = 0
    for p in list(out.glob("*.tmp-*")) + list((out / UNITS_DIR).glob("*.tmp-*")):
        p.unlink(missing_ok=True)
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# driver


def make_jobs(plan: Plan, units: list[int], args, cfg: dict, digest: str) -> list[dict]:
    jobs = []
    for u in units:
        a, b = (int(x) for x in plan.units[u])
        jobs.append(
            {
                "unit": u,
                "out": str(args.out.resolve()),
                "amass": str(args.amass.resolve()),
                "body_models": str(args.body_models.resolve()),
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
            }
        )
    return jobs


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


def build_topology(body_models: Path, render: RenderConfig, model_type: str, genders=("neutral",)):
    """Template (neutral model), faces, joint regressors and names, D/U matrices, rig, and the
    skinning arrays of the body model for each of ``genders`` (what the reader's
    ``shards.body`` recomputes vertices from)."""
    from cameras.rig import make_rig
    from pipeline import joints, mesh_sampling
    from pipeline.body_models import load_body_model
    from shards.topology import Topology

    model = load_body_model(body_models, model_type=model_type, gender="neutral")
    template = np.asarray(model.v_template, np.float32)
    faces = np.asarray(model.faces, np.int32)
    kr = joints.KeypointRegressor.from_body_models(
        body_models, model_type, model.num_vertices, model.num_joints
    )
    coco, h36m = kr.vertex_regressors(model.j_regressor)
    names = {"coco17": list(joints.COCO17), "h36m17": list(joints.H36M17)}
    levels = mesh_sampling.build_mesh_levels(template, faces, levels=2, factor=4)
    sampling = {}
    for i, (d, u) in enumerate(zip(levels.down, levels.up)):
        sampling[f"down_{i}"], sampling[f"up_{i}"] = d, u
    rig = make_rig(views=render.views)
    rig_map = {
        "R": rig.R,
        "t": rig.t,
        "K": rig.K,
        "dist": rig.dist,
        "size": rig.image_size,
        "interpolated": rig.interpolated,
        "centre": np.broadcast_to(rig.centre, (len(rig), 3)),
    }
    return Topology(
        template=template,
        faces=faces,
        joint_names=names,
        regressors={"coco17": coco, "h36m17": h36m},
        sampling=sampling,
        rig=rig_map,
        rig_names=[c.name for c in rig],
        attrs={"model_type": model_type, "source": str(body_models)},
        provenance=kr.provenance,
        body={
            g: load_body_model(body_models, model_type=model_type, gender=g).skinning_arrays()
            for g in sorted(set(genders), key=GENDERS.index)
        },
        body_attrs={"model_type": model_type, "num_betas": int(model.num_betas)},
    )


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def h36m_warning(provenance: dict, body_models: Path) -> str | None:
    """The loud line for a build whose H36M-17 regressor is approximated (else None)."""
    from pipeline.joints import APPROXIMATED, H36M_REGRESSOR_NAMES

    if provenance.get("h36m17", {}).get("source") != APPROXIMATED:
        return None
    return (
        f"H36M-17 IS APPROXIMATED from the body model's joints (a few cm off Human3.6M's): no "
        f"{' or '.join(H36M_REGRESSOR_NAMES)} of this topology in {body_models} (searched its "
        f"root, smplh/, smpl/, smplx/ and any folder two levels down); put METRO's "
        f"J_regressor_h36m_correct.npy there for the real regressor"
    )


def prepare(args, cfg: dict) -> tuple[Plan, object, list[dict]]:
    """Preflight and plan: the listing, the sampling plan, the body models it needs and the
    topology (joint regressors validated against the model), all before any work. Returns
    (plan, topology, notes); a bad input is a :class:`PreflightError`."""
    preflight_paths(args.amass, args.body_models, args.out)
    model_type = cfg["build"]["model_type"]
    entries, scan_skips, kinds = scan_archive(args.amass, model_type)
    if not entries:
        first = (
            f"; first: {scan_skips[0]['input']}: {scan_skips[0]['reason']}" if scan_skips else ""
        )
        raise PreflightError(
            f"{args.amass}: no usable {model_type} AMASS sequences "
            f"(*_poses.npz, *_stageii.npz; {len(scan_skips)} files skipped{first})"
        )
    pcfg = PlanConfig(**cfg["plan"])
    notes = check_listing(entries, pcfg.splits, str(args.amass), [s["input"] for s in scan_skips])
    for line in summary_lines(notes):
        warn(line)
    try:
        plan = _plan(entries, pcfg, args, scan_skips)
    except ValueError as e:
        raise PreflightError(f"{args.amass}: {e}") from e
    needed = {kinds[plan.sequences[s]] for s in np.unique(plan.seq)}
    preflight_models(args.body_models, needed)
    try:  # also validates the joint regressors against the model before any work
        topology = build_topology(
            args.body_models,
            RenderConfig(**cfg["render"]),
            model_type,
            genders={g for _, g in needed},
        )
    except (OSError, ValueError) as e:
        msg = str(e).splitlines()[0]
        raise PreflightError(f"{args.body_models}: unusable topology/regressors ({msg})") from e
    approx = h36m_warning(topology.provenance, args.body_models)
    if approx:
        warn(approx)
        notes.append(
            {"kind": "h36m_approximated", "input": str(args.body_models), "reason": approx}
        )
    return plan, topology, notes


def save_plan(out: Path, plan: Plan, cfg: dict) -> str:
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


def run_units(args, plan: Plan, cfg: dict, digest: str) -> tuple[dict, list[dict], float]:
    """Resume: drop partial files, keep units whose shard matches its record, run the rest
    (in this process or as Ray tasks). Returns ({unit: record} of every unit, the records
    computed now, seconds spent computing them)."""
    from tqdm import tqdm

    removed = clean_partial(args.out)
    done = load_done(args.out, plan, digest, cfg["build"]["store_vertices"])
    todo = [u for u in range(len(plan.units)) if u not in done]
    jobs = make_jobs(plan, todo, args, cfg, digest)
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
        disable=args.quiet,
    )
    try:
        if not jobs:  # everything already done: just (re)write topology and manifest
            recs, t_units = [], 0.0
        elif args.workers == 0 and not args.address:
            recs, t_units = run_local(jobs, bar)
        else:
            addr = args.address or os.environ.get("RAY_ADDRESS")
            recs, t_units = run_ray(jobs, bar, args.workers, addr, cfg["build"]["max_retries"])
    finally:
        bar.close()
    return {**done, **{r["unit"]: r for r in recs}}, recs, t_units


def finish(args, plan: Plan, topology, records: dict, cfg: dict, digest: str, notes: list):
    """Check planned = written + skipped, write the topology and the manifest (last), verify
    the folder. Returns (shard records, sample skips)."""
    from shards.manifest import write_manifest
    from shards.topology import write_topology
    from shards.verify import verify
    from shards.writer import ShardInfo

    shards = [ShardInfo(**records[u]["shard"]) for u in sorted(records) if records[u]["shard"]]
    sample_skips = [s for u in sorted(records) for s in records[u]["skips"]]
    written = sum(s.meshes for s in shards)
    if written + len(sample_skips) != plan.size:
        raise RuntimeError(
            f"{args.out}: planned {plan.size} != written {written} + skipped {len(sample_skips)}"
        )
    if not shards:
        raise RuntimeError(f"{args.out}: every planned sample was skipped; see the unit records")
    write_topology(args.out, topology)
    config = {
        **cfg,
        "plan_digest": digest,
        "amass": str(args.amass),
        "body_models": str(args.body_models),
        "planned": plan.size,
        "written": written,
        "skipped_samples": len(sample_skips),
        "plan_stats": plan.stats,
    }
    write_manifest(
        args.out,
        shards,
        dims=_dims(args.out / shards[0].name),
        config=config,
        skipped=list(plan.skips) + sample_skips,
        notes=notes,
        provenance={"regressors": topology.provenance},
    )
    rep = verify(args.out, checksums=False)  # checksums were taken from the written files
    if not rep.ok:
        raise RuntimeError("; ".join(rep.lines()[:5]))
    return shards, sample_skips


def build(args) -> dict:
    """Run the whole build; return figures (counts and timings)."""
    t0 = time.perf_counter()
    cfg = load_config(args.config, vars(args), args.set)
    plan, topology, notes = prepare(args, cfg)
    digest = save_plan(args.out, plan, cfg)
    records, recs, t_units = run_units(args, plan, cfg, digest)
    shards, sample_skips = finish(args, plan, topology, records, cfg, digest, notes)
    written = sum(s.meshes for s in shards)
    dt = time.perf_counter() - t0
    print(
        f"wrote {len(shards)} shards, {written} meshes ({len(sample_skips)} samples and "
        f"{len(plan.skips)} files skipped) to {args.out} in {dt:.1f} s",
        flush=True,
    )
    return {
        "planned": plan.size,
        "written": written,
        "skipped": len(sample_skips),
        "units_run": len(recs),
        "units_resumed": len(records) - len(recs),
        "meshes_computed": sum(r["planned"] for r in recs),
        "seconds_total": dt,
        "seconds_units": t_units,
        "unit_core_seconds": sum(r["seconds"] for r in recs),
        "unit_cpu_seconds": sum(r.get("cpu_seconds", 0.0) for r in recs),
    }


def _plan(entries: list[SeqEntry], pcfg: PlanConfig, args, skips: list[dict]) -> Plan:
    """The sampling plan; loading and thinning run in a local process pool of ``--workers``
    processes when thinning is on (on a cluster: the driver's cores, up to 16)."""
    loader = BodyPoseLoader(args.amass)
    n = args.workers if not args.address else min(os.cpu_count() or 1, 16)
    if pcfg.min_pose_dist <= 0 or n < 2 or len(entries) < PARALLEL_PLAN_MIN_SEQUENCES:
        return make_plan(entries, pcfg, loader, skips, progress=not args.quiet)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as ex:
        map_fn = partial(ex.map, chunksize=4)
        return make_plan(entries, pcfg, loader, skips, progress=not args.quiet, map_fn=map_fn)


def _dims(shard: Path) -> dict[str, int]:
    import h5py

    with h5py.File(shard, "r") as f:
        return {k: int(f.attrs[k]) for k in ("V", "R", "K", "J", "Nv", "P", "B", "masks")}


class BodyPoseLoader:
    """Picklable ``rel path -> (frames, 63)`` body poses of an AMASS sequence."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __call__(self, rel: str) -> np.ndarray:
        from pipeline.amass import load_sequence

        return np.asarray(load_sequence(self.root / rel, self.root).pose_body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.build", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--config", type=Path, default=None, help="build config YAML")
    ap.add_argument("--amass", type=Path, help="AMASS root (<Subset>/...)")
    ap.add_argument("--body-models", type=Path, help="body-model folder")
    ap.add_argument("--out", type=Path, help="output shard folder")
    ap.add_argument("--views", type=int, default=None)
    ap.add_argument("--res", type=int, default=None)
    ap.add_argument("--masks", type=int, choices=(0, 1), default=None)
    ap.add_argument("--meshes", type=int, default=None, help="target number of meshes")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--unit-size", type=int, default=None, help="meshes per work unit / shard")
    ap.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides after --config and the flags above, e.g. plan.fps=20",
    )
    ap.add_argument("--workers", type=int, default=2, help="local Ray workers (0: no Ray)")
    ap.add_argument("--address", default=None, help="Ray cluster address (or RAY_ADDRESS)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the build would use, split and skip (headers only; no Ray, no output)",
    )
    ap.add_argument(
        "--print-config",
        action="store_true",
        help="print the config this command would build with (YAML) and exit",
    )
    args = ap.parse_args(argv)
    missing = [f"--{k.replace('_', '-')}" for k in ("amass", "body_models", "out")]
    missing = [m for m in missing if getattr(args, m[2:].replace("-", "_")) is None]
    if missing and not args.print_config:
        ap.error(f"the following arguments are required: {', '.join(missing)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_config:
        try:
            cfg = load_config(args.config, vars(args), args.set)
        except PreflightError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None), end="")
        return 0
    if args.dry_run:
        from pipeline.doctor import dry_run

        return dry_run(args)
    try:
        build(args)
        return 0
    except PreflightError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except UnitFailed as e:
        print(
            f"error: {e}; finished units are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["SPLITS", "BuildConfig", "build", "load_config", "main", "run_unit", "PreflightError"]

"""Build driver: AMASS archive + body models -> sampling plan -> Ray tasks -> shards + manifest.

    python -m pipeline.build --config configs/build_default.yaml --amass data/amass \\
        --body-models data/body_models --out out/shards --views 8 --res 56 --masks 0 --workers 2

Settings: typed defaults (:class:`~pipeline.build.config.BuildConfig`;
``configs/build_default.yaml`` sets nothing), then ``--config``, then the flags ``--meshes`` ...
``--masks``, then ``--set a.b=value`` in order; ``--print-config`` prints the result. An unknown
or mistyped key is a one-line error.

Local Ray with ``--workers N`` (``0`` runs units in this process, no Ray); a cluster through
``--address`` or ``RAY_ADDRESS`` (the output folder must be on a filesystem every node sees).

:func:`build` reads top to bottom, one stage per module:

1. config (:mod:`pipeline.build.config`) and preflight (:mod:`pipeline.build.preflight`): bad inputs
   stop the build before any work with one line naming the path and the reason (exit 2);
   likely mistakes are ``warning:`` lines and manifest ``notes``;
2. the sampling plan (:mod:`pipeline.build.planning`), saved in the output folder;
3. the units (:mod:`pipeline.build.run`, a unit itself in :mod:`pipeline.build.units`): with Ray,
   every node first proves it sees the driver's output folder and inputs
   (:mod:`pipeline.build.nodes`); resumable, finished units (shard + ``units/unit-NNNNNN.json``
   record) are kept;
4. finish (:mod:`pipeline.build.finish`): planned = written + skipped, topology, manifest,
   verify.

Every failure is one ``error:`` line with the exit code of its kind
(:mod:`pipeline.build.config`; docs/build.md, "Exit codes"): 1 a unit or Ray failed (rerun to
resume), 2 preflight, 3 a node differs from the driver, 4 the final checks.

``--dry-run`` prints what a build would use instead (:mod:`pipeline.build.doctor`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from pipeline.build import nodes, planning, preflight
from pipeline.build.config import BuildConfig, BuildError, PreflightError, load_config
from pipeline.build.doctor import dry_run
from pipeline.build.finish import finish
from pipeline.build.preflight import scan_archive
from pipeline.build.run import run_units
from pipeline.build.units import FAULT_ENV, run_unit, unit_record_path
from pipeline.plan import SPLITS, PlanConfig
from shards.manifest import planned_line


def build(args: argparse.Namespace) -> dict:
    """Run the whole build; return figures (counts and timings)."""
    t0 = time.perf_counter()
    cfg = load_config(args.config, vars(args), args.set)
    model_type, pcfg = cfg["build"]["model_type"], PlanConfig(**cfg["plan"])
    address = args.address or os.environ.get("RAY_ADDRESS")
    paths = {k: getattr(args, k).resolve() for k in ("out", "amass", "body_models")}
    out, amass, body_models = paths["out"], paths["amass"], paths["body_models"]

    # 1. preflight: folders, archive listing (the plan needs it), body models and regressors
    preflight.check_paths(amass, body_models, out)
    listing = preflight.list_archive(amass, model_type, pcfg)
    # 2. the sampling plan
    plan = planning.make(
        amass, listing.entries, pcfg, listing.skips,
        processes=planning.plan_processes(args.workers, address), progress=not args.quiet,
    )  # fmt: skip
    needed = {listing.kinds[plan.sequences[s]] for s in np.unique(plan.seq)}
    topology, model_notes = preflight.check_models(body_models, cfg, needed)
    digest = planning.save(out, plan, cfg)
    # 3. the units: every node sees this world (a token in `out`, the inputs' sha256), then
    #    resume what is done and compute the rest
    genders = {g for _, g in needed}
    expect = nodes.expectation(out, body_models, cfg, genders, topology)
    try:
        records, recs, t_units = run_units(
            plan, cfg, digest, paths, expect,
            workers=args.workers, address=address, quiet=args.quiet,
        )  # fmt: skip
    finally:
        (out / nodes.TOKEN_NAME).unlink(missing_ok=True)
    # 4. finish: accounting, topology, manifest, verify
    shards, sample_skips = finish(
        paths, plan, topology, records, cfg, digest, listing.notes + model_notes
    )
    written = sum(s.meshes for s in shards)
    dt = time.perf_counter() - t0
    print(
        f"wrote {len(shards)} shards, {written} meshes ({len(sample_skips)} samples and "
        f"{len(plan.skips)} files skipped) to {args.out} in {dt:.1f} s",
        flush=True,
    )
    short = planned_line(plan.stats, pcfg.meshes)
    if short:
        print(short, flush=True)
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
        return dry_run(args)
    try:
        build(args)
        return 0
    except BuildError as e:
        tail = "; finished units are kept, rerun the same command to resume"
        print(f"error: {e}{tail if e.exit_code == 1 else ''}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # e.g. a full disk while an in-process unit writes its shard
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}; finished units are kept, rerun the same "
              "command to resume", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "FAULT_ENV",
    "SPLITS",
    "BuildConfig",
    "PreflightError",
    "build",
    "load_config",
    "main",
    "parse_args",
    "run_unit",
    "scan_archive",
    "unit_record_path",
]

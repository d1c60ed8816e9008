"""``python -m pipeline.build --dry-run``: what a build with these arguments would use.

Prints, before any work (file headers only: no poses loaded, no plan, no Ray, nothing written):
the subsets found and their split (and why), sequences and hours per split, the body-model files
and whether they load, where each joint regressor comes from, what would be skipped and why,
and the warnings a build would print. Exit code 0 when a build would start, 2 when its
preflight would stop it (the reason is printed as an ``error:`` line).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import amass
from pipeline.body_models import load_body_model, model_file
from pipeline.build.config import PreflightError, load_config
from pipeline.build.preflight import h36m_warning, scan_archive
from pipeline.joints import KeypointRegressor, find_h36m_regressor, rel_path
from pipeline.plan import SPLITS, PlanConfig, central_mask, resample_indices
from pipeline.subsets import check_listing, split_reason, summary_lines


def _fps_list(rates: list[float]) -> str:
    return ", ".join(f"{r:g}" for r in sorted(set(rates))) or "-"


def _candidates(frames: int, fps: float, cfg: PlanConfig) -> int:
    idx = resample_indices(frames, fps, cfg.fps)
    return int(central_mask(idx, frames, cfg.central).sum())


def _table(rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
        ]
        out.append("  " + "  ".join(cells).rstrip())
    return out


@dataclass
class _Report:
    """What the dry run prints: report lines, the errors that would stop a build, warnings."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def report(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(report lines, error lines) of a dry run with build arguments ``args``."""
    r = _Report(["dry run: headers only; nothing is computed or written, Ray is not started"])
    try:
        cfg = load_config(args.config, vars(args), args.set)
    except PreflightError as e:
        return r.lines, [str(e)]
    pcfg = PlanConfig(**cfg["plan"])
    mt = cfg["build"]["model_type"]
    r.lines.append(
        f"config      {args.config or 'defaults'}: model_type {mt}, target {pcfg.meshes} meshes, "
        f"{pcfg.fps:g} fps, central {pcfg.central:g}, min_pose_dist {pcfg.min_pose_dist:g}, "
        f"views {cfg['render']['views']}, res {cfg['render']['res']}"
    )
    root = Path(args.amass)
    infos, entries, skips, kinds = _archive(r, root, mt)
    if infos:
        _subsets_and_splits(r, root, mt, pcfg, infos, entries, skips)
    _body_models(r, Path(args.body_models), mt, kinds)
    _skipped(r, skips, pcfg)
    _output(r, Path(args.out))
    return r.lines, r.errors


def _archive(r: _Report, root: Path, mt: str) -> tuple[list, list, list, dict]:
    """Scan the archive's headers: (infos, usable entries, skipped files, kinds)."""
    entries, skips, kinds = [], [], {}
    infos: list = []
    if not root.is_dir():
        r.errors.append(f"{root}: AMASS folder not found")
        return infos, entries, skips, kinds
    infos, bad = amass.scan(root, on_error="skip")
    entries, skips, kinds = scan_archive(root, mt, (infos, bad))
    fam = Counter(i.model_type for i in infos)
    how = Counter(f"{i.model_type} by {i.model_type_from}" for i in infos)
    counts = [f"{n} {k}" for k, n in sorted(fam.items())] + [f"{len(bad)} unreadable"]
    family = ", ".join(f"{n} {k}" for k, n in sorted(how.items()))
    r.lines.append(
        f"amass       {root}: {len(infos) + len(bad)} sequence files, {', '.join(counts)}"
        + (f" (family from: {family})" if family else "")
    )
    if not entries:
        first = f"; first: {skips[0]['input']}: {skips[0]['reason']}" if skips else ""
        r.errors.append(
            f"{root}: no usable {mt} AMASS sequences (*_poses.npz, *_stageii.npz; "
            f"{len(skips)} files skipped{first})"
        )
    return infos, entries, skips, kinds


def _subsets_and_splits(
    r: _Report, root: Path, mt: str, pcfg: PlanConfig, infos: list, entries: list, skips: list
) -> None:
    """A row per subset (its split and why), a row per split, the subset-listing warnings."""
    by_sub: dict[str, list] = defaultdict(list)
    for e in entries:
        by_sub[e.subset].append(e)
    other = Counter(i.subset for i in infos if i.model_type != mt)
    other_fam = {i.subset: i.model_type for i in infos if i.model_type != mt}
    rows = [["subset", "split", "sequences", "hours", "fps", "split because"]]
    for sub in sorted({i.subset for i in infos}):
        es = by_sub.get(sub, [])
        if not es:
            why = f"{other[sub]} {other_fam[sub]} files, skipped (the build poses {mt})"
            rows.append([sub, "-", "0", "-", "-", why])
            continue
        why = split_reason(sub, pcfg.splits)
        if other[sub]:
            why += f"; {other[sub]} {other_fam[sub]} files skipped"
        rows.append([sub, pcfg.split_of(sub), str(len(es)),
                     f"{sum(e.duration for e in es) / 3600:.3f}",
                     _fps_list([e.fps for e in es]), why])  # fmt: skip
    r.lines.append(
        f"subsets     {len(rows) - 1} (split by the config's lists; folder names of both "
        "AMASS releases match)"
    )
    r.lines += _table(rows, right={2, 3})
    rows = [["split", "subsets", "sequences", "hours", f"frames at {pcfg.fps:g} fps"]]
    for split in SPLITS:
        es = [e for e in entries if pcfg.split_of(e.subset) == split]
        subs = sorted({e.subset for e in es})
        rows.append([split, str(len(subs)), str(len(es)),
                     f"{sum(e.duration for e in es) / 3600:.3f}",
                     str(sum(_candidates(e.frames, e.fps, pcfg) for e in es))])  # fmt: skip
    r.lines.append(
        f"splits      (frames: central {pcfg.central:g} of each sequence, before keep_rate "
        "and pose thinning)"
    )
    r.lines += _table(rows, right={1, 2, 3, 4})
    r.warnings += summary_lines(
        check_listing(entries, pcfg.splits, str(root), [s["input"] for s in skips])
    )


def _body_models(r: _Report, bm: Path, mt: str, kinds: dict) -> None:
    """Whether each needed gender's model file loads, then where each regressor comes from."""
    genders = sorted({g for _, g in kinds.values()} | {"neutral"})
    r.lines.append(f"body models {bm} ({mt}; genders the archive uses, plus neutral for topology)")
    neutral = None
    if not bm.is_dir():
        r.errors.append(f"{bm}: body-model folder not found")
    else:
        for g in genders:
            path = model_file(bm, mt, g)
            try:
                m = load_body_model(bm, model_type=mt, gender=g)
                state = f"ok: {m.num_vertices} vertices, {m.num_joints} joints, {m.num_betas} betas"
                neutral = m if g == "neutral" else neutral
            except Exception as e:  # noqa: BLE001 - reported as one line
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                state = f"UNUSABLE ({msg})"
                if g == "neutral" or any(kg == g for _, kg in kinds.values()):
                    r.errors.append(f"{bm}: {mt} {g} body model unusable ({msg})")
            r.lines.append(f"  {g:<8} {rel_path(path, bm)}  {state}")
    if neutral is not None:
        _regressors(r, bm, mt, neutral)


def _regressors(r: _Report, bm: Path, mt: str, neutral) -> None:
    """Each joint set's source, the regressor files found but not used, the H36M warning."""
    try:
        kr = KeypointRegressor.from_body_models(bm, mt, neutral.num_vertices, neutral.num_joints)
        search = find_h36m_regressor(bm, mt, neutral.num_vertices)
    except ValueError as e:
        r.errors.append(f"{bm}: unusable topology/regressors ({str(e).splitlines()[0]})")
        return
    r.lines.append("regressors")
    for name, p in kr.provenance.items():
        where = "  ".join(p[k] for k in ("file", "sha256", "detail") if p.get(k))
        r.lines.append(f"  {name:<8} {p['source']}  {where}".rstrip())
    used = {p.get("file") for p in kr.provenance.values()}
    for rel, why in search.ignored:
        r.lines.append(f"  not used: {rel} ({why})")
    if search.path is not None and rel_path(search.path, bm) not in used:
        r.lines.append(
            f"  not used: {rel_path(search.path, bm)} (the shipped joint_regressors.npz "
            "defines both joint sets of this generated model)"
        )
    approx = h36m_warning(kr.provenance, bm)
    if approx:
        r.warnings.append(approx)


def _skipped(r: _Report, skips: list, pcfg: PlanConfig) -> None:
    """Skipped input files grouped by reason, most frequent first."""
    r.lines.append(f"skipped     {len(skips)} file(s)" + (" by reason:" if skips else ""))
    reasons: dict[str, list[str]] = defaultdict(list)
    for s in skips:
        reasons[s["reason"]].append(s["input"])
    for reason, paths in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        ex = ", ".join(paths[:2]) + (f", +{len(paths) - 2} more" if len(paths) > 2 else "")
        r.lines.append(f"  {len(paths):>5} x {reason}  ({ex})")
    if pcfg.min_pose_dist > 0:
        r.lines.append(
            "  (files whose poses fail to load are found only when the build loads them for "
            "pose thinning)"
        )


def _output(r: _Report, out: Path) -> None:
    """What the output folder holds, then the warnings a build would print."""
    if (out / "plan.json").exists():
        state = "holds a plan: a build resumes it if the plan matches, else stops"
    elif out.exists():
        state = "exists, no plan yet"
    else:
        state = "absent, would be created"
    r.lines.append(f"out         {out}: {state}")
    r.lines.append(f"warnings    {len(r.warnings)}")
    r.lines += [f"  {w}" for w in r.warnings]


def dry_run(args: argparse.Namespace) -> int:
    """Print the dry-run report; 0 when a build would start, 2 when preflight would stop it."""
    lines, errors = report(args)
    print("\n".join(lines), flush=True)
    for e in errors:
        print(f"error: {e}")
    verdict = "a build would stop at preflight" if errors else "a build would start"
    print(f"dry run: {verdict}")
    return 2 if errors else 0

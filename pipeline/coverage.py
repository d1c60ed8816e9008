"""Pose coverage: how close each frame of one split comes to the nearest frame of another.

    python -m pipeline.coverage --amass data/amass --body-models data/body_models \\
        --query test val --reference train [--query-amass clip.npz] [--json OUT] [--png OUT]

Frames are what a build would use: the archive listed, split by the build config's
``plan.splits`` and sampled as the plan samples candidates (resampled to ``plan.fps``, central
``plan.central``, ``plan.keep_rate``, pose thinning ``plan.min_pose_dist``; the build's meshes
are a subsample of these), posed with the build's body models and skinning
(:mod:`pipeline.process`) and reduced to H36M-17 joints with the build's vertex regressor.

Distance: PA-MPJPE as the trainer computes it (``trainer/metrics.py``): the reference frame is
aligned onto the query frame by the similarity transform (rotation, uniform scale,
translation) minimising the squared joint error, then the per-joint Euclidean distances are
averaged. Scale is included, as in the project's PA-MPJPE, so a tall and a short body in one
pose count as close. For each query frame the nearest reference frame under that distance is
found exactly (:func:`nearest_pa`); the figures are the median and p90 of that distance over the
query frames, and per joint the median and p90 of the joint's distance at the nearest frame.

``--group subset|subject|motion`` adds, per query, the median and p90 of each AMASS subset,
subject or motion (file name less its take number), farthest first: which data is least
covered.

``--stride N`` keeps every N-th candidate frame of each side. Thinning the reference makes every
distance an over-estimate; ``--max-frames N`` thins only the query (evenly spaced), which keeps
each distance exact.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cameras.plotting import save_figure
from pipeline.amass import AmassFileError, scan_file
from pipeline.body_models import BodyModelError
from pipeline.build.config import PreflightError, load_config
from pipeline.build.planning import BodyPoseLoader
from pipeline.build.preflight import scan_archive
from pipeline.joints import H36M17
from pipeline.plan import SPLITS, PlanConfig, SeqEntry, make_plan, sequence_candidates
from pipeline.process import Context, RenderConfig, body_params, pose_bodies

#: rounding margin (metres) taken off the pruning bound so float error never drops a neighbour
BOUND_MARGIN = 1e-6


# --------------------------------------------------------------------------------------------
# Procrustes and the exact nearest neighbour
# --------------------------------------------------------------------------------------------


def similarity_procrustes(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Align each pred (B, J, 3) onto gt (B, J, 3) with the rotation, uniform scale and
    translation minimising the squared error (Umeyama; the definition of
    ``trainer.metrics.similarity_procrustes``, which ``pipeline`` may not import)."""
    mu_p, mu_g = pred.mean(1, keepdims=True), gt.mean(1, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = np.einsum("bji,bjk->bik", p, g)
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(np.einsum("bij,bjk->bik", u, vt)))
    fix = np.ones_like(s)
    fix[:, -1] = d
    rot = np.einsum("bij,bj,bjk->bik", u, fix, vt)
    var = (p**2).sum((1, 2))
    scale = (s * fix).sum(1) / np.maximum(var, 1e-12)
    return scale[:, None, None] * np.einsum("bji,bik->bjk", p, rot) + mu_g


def pa_joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(B, J) per-joint distance after aligning each pred onto its gt; mean over J = PA-MPJPE."""
    return np.linalg.norm(similarity_procrustes(pred, gt) - gt, axis=-1)


@dataclass
class Nearest:
    """The nearest reference frame of every query frame (metres)."""

    index: np.ndarray  # (Q,) reference index
    dist: np.ndarray  # (Q,) PA-MPJPE to it
    per_joint: np.ndarray  # (Q, J) per-joint distance at it
    evaluated: int = 0  # exact alignments computed (Q x R without pruning)


def _bounds(qc: np.ndarray, rc: np.ndarray, rflat: np.ndarray, rn2, rho_r):
    """For query frames ``qc`` (B, J, 3) and reference frames ``rc`` (R, J, 3), both centred:
    (lower bound on PA-MPJPE, its squared-error optimum) for every pair, (B, R) each.

    With the optimal similarity (scale ``s``) the centroids coincide, so each joint's error is
    at least ``l_j = |rho_q_j - s rho_r_j|`` (distances to the centroid), and the errors' squares
    sum to the closed-form optimum ``S``. The smallest sum of errors with ``e_j >= l_j`` and
    ``sum e_j^2 = S`` puts all slack on one joint (the sum is concave along any arc), the one
    with the largest ``l_j``: ``sum l - l_max + sqrt(S - sum l^2 + l_max^2)``.
    """
    b, j = qc.shape[:2]
    qflat = qc.transpose(1, 0, 2).reshape(j, b * 3)
    cov = (rflat @ qflat).reshape(-1, 3, b, 3).transpose(2, 0, 1, 3)  # (B, R, 3, 3) = R^T Q
    sv = np.linalg.svd(cov, compute_uv=False)
    sign = np.where(np.linalg.det(cov) < 0, -1.0, 1.0)
    tr = sv[..., 0] + sv[..., 1] + sign * sv[..., 2]
    rn2 = np.maximum(rn2, 1e-12)
    scale = tr / rn2[None]
    sse = np.maximum((qc**2).sum((1, 2))[:, None] - tr**2 / rn2[None], 0.0)
    rho_q = np.linalg.norm(qc, axis=-1)  # (B, J)
    lo = np.abs(rho_q[:, None, :] - scale[..., None] * rho_r[None])  # (B, R, J)
    l1, l2, lmax = lo.sum(-1), (lo**2).sum(-1), lo.max(-1)
    bound = (l1 - lmax + np.sqrt(np.maximum(sse - l2 + lmax**2, 0.0))) / j
    return bound - BOUND_MARGIN, sse


def nearest_pa(
    query: np.ndarray,
    ref: np.ndarray,
    *,
    seeds: int = 4,
    memory: float = 2e8,
    progress: bool = False,
) -> Nearest:
    """Exact nearest reference frame (PA-MPJPE) of every query frame.

    ``query`` (Q, J, 3), ``ref`` (R, J, 3). Per chunk of queries, every pair gets a lower bound
    and the closed-form optimal squared error (:func:`_bounds`, one 3x3 SVD per pair); the
    ``seeds`` pairs of least squared error are aligned exactly, which gives a distance to beat,
    and then every pair whose bound is below it. Pairs left out cannot be nearer, so the
    result equals a brute-force search. ``memory``: bytes per chunk of the (B, R, J) arrays.
    """
    query = np.asarray(query, np.float64)
    ref = np.asarray(ref, np.float64)
    if query.ndim != 3 or ref.ndim != 3 or query.shape[1:] != ref.shape[1:]:
        raise ValueError(f"joint arrays do not match: query {query.shape}, reference {ref.shape}")
    if len(ref) == 0 or len(query) == 0:
        raise ValueError("no frames to compare (empty query or reference)")
    nq, j = query.shape[:2]
    nr = len(ref)
    qc = query - query.mean(1, keepdims=True)
    rc = ref - ref.mean(1, keepdims=True)
    rflat = rc.transpose(0, 2, 1).reshape(nr * 3, j)
    rn2 = (rc**2).sum((1, 2))
    rho_r = np.linalg.norm(rc, axis=-1)
    seeds = min(seeds, nr)
    chunk = int(max(1, min(nq, memory // (nr * (j + 12) * 8))))
    index = np.zeros(nq, np.int64)
    dist = np.zeros(nq)
    per_joint = np.zeros((nq, j))
    evaluated = 0
    bar = tqdm(total=nq, desc="nearest PA", unit="frame", disable=not progress, leave=False)
    for a in range(0, nq, chunk):
        b = min(nq, a + chunk)
        bound, sse = _bounds(qc[a:b], rc, rflat, rn2, rho_r)
        first = np.argpartition(sse, seeds - 1, axis=1)[:, :seeds]  # (B, seeds)
        rows = np.repeat(np.arange(b - a), seeds)
        seed_err = pa_joint_errors(ref[first.ravel()], query[a + rows])
        best = seed_err.mean(1).reshape(-1, seeds).min(1)
        bound[np.arange(b - a)[:, None], first] = np.inf  # aligned already
        qi, ri = np.nonzero(bound < best[:, None])
        err = np.concatenate(
            [seed_err]
            + [
                pa_joint_errors(ref[ri[s : s + 65536]], query[a + qi[s : s + 65536]])
                for s in range(0, len(qi), 65536)
            ]
        )
        qi = np.concatenate([rows, qi])
        ri = np.concatenate([first.ravel(), ri])
        evaluated += len(qi)
        d = err.mean(1)
        order = np.lexsort((ri, d, qi))  # per query: least distance, then least index
        head = order[np.r_[True, qi[order][1:] != qi[order][:-1]]]
        index[a + qi[head]] = ri[head]
        dist[a + qi[head]] = d[head]
        per_joint[a + qi[head]] = err[head]
        bar.update(b - a)
    bar.close()
    return Nearest(index, dist, per_joint, evaluated)


def _mm(x: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of distances ``x`` (metres) in millimetres, to 0.1 mm."""
    return round(float(np.percentile(x, q)) * 1000.0, 1)


def summarize(near: Nearest, joints: tuple[str, ...] = H36M17) -> dict:
    """Median and p90 (mm) of the nearest distance, overall and per joint at the nearest frame."""
    return {
        "frames": int(len(near.dist)),
        "median_mm": _mm(near.dist, 50),
        "p90_mm": _mm(near.dist, 90),
        "per_joint": {
            n: {"median_mm": _mm(near.per_joint[:, k], 50), "p90_mm": _mm(near.per_joint[:, k], 90)}
            for k, n in enumerate(joints)
        },
    }


# --------------------------------------------------------------------------------------------
# Frames: archive listing, split, candidates, posing (the build's code)
# --------------------------------------------------------------------------------------------


class CoverageError(ValueError):
    """Unusable input; ``str(err)`` is one line naming the path and the reason."""


@dataclass
class FrameSet:
    """H36M-17 joints (N, 17, 3) of frames and where each comes from."""

    name: str
    joints: np.ndarray
    paths: list[str] = field(default_factory=list)  # per frame, relative to ``root``
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    root: str = ""


def _entries(root: Path, model_type: str):
    """(root for loading, the build's listing of usable sequences) of a folder or one file."""

    if root.is_file():
        try:
            info = scan_file(root, root.parent)
        except AmassFileError as e:
            raise CoverageError(str(e)) from None
        if info.model_type != model_type:
            raise CoverageError(f"{root}: {info.model_type} sequence; the build poses {model_type}")
        return root.parent, [SeqEntry(info.path, info.subset, int(info.frames), float(info.fps))]
    if not root.is_dir():
        raise CoverageError(f"{root}: AMASS folder or file not found")
    entries, skips, _ = scan_archive(root, model_type)
    if not entries:
        first = f"; first: {skips[0]['input']}: {skips[0]['reason']}" if skips else ""
        raise CoverageError(f"{root}: no usable {model_type} AMASS sequences{first}")
    return root, entries


def candidate_frames(
    root: Path,
    cfg: dict,
    split: str | None,
    stride: int = 1,
    planned: bool = False,
    progress: bool = False,
) -> tuple[Path, list[str], np.ndarray]:
    """(load root, path per frame, frame per frame): the plan's candidate frames of ``split``
    (None: every sequence) of an archive folder or one file, every ``stride``-th kept.
    ``planned``: only the frames the build's plan samples (``plan.meshes`` over the archive)."""

    pcfg = PlanConfig(**cfg["plan"])
    root, entries = _entries(Path(root), cfg["build"]["model_type"])
    loader = BodyPoseLoader(root)
    if planned:
        plan = make_plan(entries, pcfg, loader, progress=progress)
        rows = (
            np.arange(plan.size)
            if split is None
            else np.flatnonzero(plan.split == (SPLITS.index(split) if split in SPLITS else -1))
        )
        if rows.size == 0:
            raise CoverageError(f"{root}: the build's plan samples no {split} frame")
        rows = rows[:: max(1, int(stride))]
        return root, [plan.sequences[plan.seq[i]] for i in rows], plan.frame[rows].astype(np.int64)
    if split is not None:
        entries = [e for e in entries if pcfg.split_of(e.subset) == split]
        if not entries:
            raise CoverageError(
                f"{root}: split {split} has no sequences (plan.splits: "
                f"{json.dumps(pcfg.splits)}; every other subset is train)"
            )
    paths, frames = [], []
    bar = tqdm(sorted(entries, key=lambda e: e.path), desc=f"frames {split or root.name}",
               unit="seq", disable=not progress, leave=False)  # fmt: skip
    for e in bar:
        idx = sequence_candidates(e, pcfg, loader)
        if isinstance(idx, str):
            print(f"warning: {idx} (left out)", file=sys.stderr)
            continue
        paths += [e.path] * len(idx)
        frames.append(np.asarray(idx, np.int64))
    fr = np.concatenate(frames) if frames else np.zeros(0, np.int64)
    keep = np.arange(0, len(fr), max(1, int(stride)))
    if keep.size == 0:
        raise CoverageError(f"{root}: {split or 'the archive'} has no candidate frames")
    return root, [paths[i] for i in keep], fr[keep]


def pose_joints(
    root: Path,
    body_models: Path,
    cfg: dict,
    paths: list[str],
    frames: np.ndarray,
    zero_betas: bool = False,
    chunk: int = 256,
    progress: bool = False,
    desc: str = "pose",
) -> tuple[np.ndarray, np.ndarray]:
    """(H36M-17 joints (M, 17, 3) float64, kept positions) of the frames, posed as the build
    poses them (``pipeline.process``: skinning, the shipped vertex regressor) before placement
    (a rigid move, which Procrustes removes). ``zero_betas``: mean shape (a foreign archive's
    betas belong to another model's shape space)."""

    model_type = cfg["build"]["model_type"]
    ctx = Context(Path(root), Path(body_models), RenderConfig(**cfg["render"]), model_type)
    out, kept = [], []
    bar = tqdm(total=len(frames), desc=desc, unit="frame", disable=not progress, leave=False)
    for a in range(0, len(frames), chunk):
        ids = np.arange(a, min(len(frames), a + chunk))
        idx, pose, trans, betas, genders, skips = body_params(
            ctx, paths[a : ids[-1] + 1], np.asarray(frames[ids]), ids
        )
        for s in skips:
            print(f"warning: {s.get('input', '')} frame {s.get('frame', '')}: "
                  f"{s.get('reason', '')} (left out)", file=sys.stderr)  # fmt: skip
        if idx.size:
            if zero_betas:
                betas = np.zeros_like(betas)
            try:
                _, _, h36m = pose_bodies(ctx, pose, betas, trans, genders, model_type)
            except (BodyModelError, ValueError) as e:
                raise CoverageError(f"{body_models}: {e}") from None
            out.append(np.asarray(h36m, np.float64))
            kept.append(ids[idx])
        bar.update(len(ids))
    bar.close()
    if not out:
        raise CoverageError(f"{root}: no frame could be posed")
    return np.concatenate(out), np.concatenate(kept)


def load_frames(
    name: str,
    root: Path,
    body_models: Path,
    cfg: dict,
    split: str | None,
    stride: int = 1,
    max_frames: int | None = None,
    zero_betas: bool = False,
    progress: bool = False,
    planned: bool = False,
) -> FrameSet:
    """A split's (or a whole folder's / file's) candidate frames, posed, as a :class:`FrameSet`."""
    root, paths, frames = candidate_frames(root, cfg, split, stride, planned, progress)
    if max_frames is not None and len(frames) > max_frames:
        keep = np.unique(np.linspace(0, len(frames) - 1, max_frames).round().astype(int))
        paths, frames = [paths[i] for i in keep], frames[keep]
    joints, kept = pose_joints(
        root, body_models, cfg, paths, frames, zero_betas, progress=progress, desc=name
    )
    return FrameSet(name, joints, [paths[i] for i in kept], frames[kept], str(root))


# --------------------------------------------------------------------------------------------
# Report: table, figure, command line
# --------------------------------------------------------------------------------------------


#: ``--group`` keys: a frame's AMASS subset (dataset), subject, or motion (the file name less
#: its take number and AMASS suffix: ``box_03_poses.npz`` -> ``box``)
GROUPS = ("subset", "subject", "motion")


def group_of(path: str, by: str) -> str:
    """The ``by`` group (:data:`GROUPS`) of a frame from ``path`` (relative to its root)."""
    parts = Path(path).parts
    if by == "subset":
        return parts[0] if len(parts) > 1 else "."
    if by == "subject":
        return "/".join(parts[:-1]) or "."
    if by == "motion":
        stem = re.sub(r"(_poses|_stageii)?\.npz$", "", parts[-1])
        return re.sub(r"_?\d+$", "", stem) or stem
    raise CoverageError(f"--group {by}: not one of {', '.join(GROUPS)}")


def coverage(
    query: FrameSet, ref: FrameSet, progress: bool = False, worst: int = 10, group: str = ""
) -> dict:
    """Summary of ``query`` against ``ref`` plus the ``worst`` query frames and their nearest;
    with ``group`` (:data:`GROUPS`) also frames, median and p90 per group, farthest first."""
    near = nearest_pa(query.joints, ref.joints, progress=progress)
    out = {"query": query.name, "reference": ref.name, **summarize(near)}
    if group:
        keys = np.array([group_of(p, group) for p in query.paths])
        rows = {k: near.dist[keys == k] for k in np.unique(keys)}
        out["groups"] = {
            str(k): {"frames": int(d.size), "median_mm": _mm(d, 50), "p90_mm": _mm(d, 90)}
            for k, d in sorted(rows.items(), key=lambda kv: -np.median(kv[1]))
        }
    out["reference_frames"] = int(len(ref.joints))
    out["exact_alignments"] = int(near.evaluated)
    out["pruned_share"] = round(1.0 - near.evaluated / (len(query.joints) * len(ref.joints)), 4)
    out["worst"] = [
        {
            "query": f"{query.paths[i]}:{int(query.frames[i])}",
            "nearest": f"{ref.paths[near.index[i]]}:{int(ref.frames[near.index[i]])}",
            "mm": round(float(near.dist[i]) * 1000.0, 1),
        }
        for i in np.argsort(-near.dist)[:worst]
    ]
    return out


def table(results: list[dict], ratio_to: str | None = None) -> str:
    """Markdown table: one column per query; median / p90 overall, the ratio of each median to
    the ``ratio_to`` query's (default: the first column's), then median / p90 per joint (mm)."""
    named = [r for r in results if r["query"] == ratio_to]
    if ratio_to is not None and not named:
        raise CoverageError(
            f"--ratio-to {ratio_to}: no such query ({[r['query'] for r in results]})"
        )
    base_r = named[0] if named else results[0]
    base = base_r["median_mm"]

    def row(label: str, cells) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        row("", (f"{r['query']} vs {r['reference']}" for r in results)),
        "|" + " --- |" * (len(results) + 1),
        row(
            "frames (query / reference)",
            (f"{r['frames']} / {r['reference_frames']}" for r in results),
        ),
        row(
            "**nearest PA-MPJPE, median / p90**",
            (f"**{r['median_mm']} / {r['p90_mm']}**" for r in results),
        ),
        row(
            f"median / {base_r['query']}'s median",
            (f"{r['median_mm'] / base:.2f}x" for r in results),
        ),
    ]
    for n in results[0]["per_joint"]:
        pj = [r["per_joint"][n] for r in results]
        lines.append(row(n, (f"{j['median_mm']} / {j['p90_mm']}" for j in pj)))
    return "\n".join(lines)


def group_table(result: dict) -> str:
    """Markdown table of one query's groups (``coverage(..., group=...)``), farthest first."""
    lines = [f"| {result['query']} vs {result['reference']}: group | frames | median / p90 |",
             "| --- | --- | --- |"]  # fmt: skip
    for k, g in result["groups"].items():
        lines.append(f"| {k} | {g['frames']} | {g['median_mm']} / {g['p90_mm']} |")
    return "\n".join(lines)


def plot(results: list[dict], png: Path) -> Path:
    """Per-joint median (solid) and p90 (light) bars, one colour per query."""
    import matplotlib  # heavy; only for --png

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results[0]["per_joint"])
    x = np.arange(len(names) + 1)
    w = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(13, 4.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, r in enumerate(results):
        c = colours[k % len(colours)]
        med = [r["median_mm"]] + [r["per_joint"][n]["median_mm"] for n in names]
        p90 = [r["p90_mm"]] + [r["per_joint"][n]["p90_mm"] for n in names]
        xs = x - 0.4 + w * (k + 0.5)
        ax.bar(xs, p90, w * 0.9, color=c, alpha=0.35)
        ax.bar(xs, med, w * 0.9, color=c,
               label=f"{r['query']} vs {r['reference']} ({r['frames']} frames): "
                     f"median {r['median_mm']} mm, p90 {r['p90_mm']} mm")  # fmt: skip
    ax.set_xticks(x, ["MEAN\n(PA-MPJPE)"] + names, rotation=35, ha="right")
    ax.axvline(0.5, color="#999999", lw=0.8)
    ax.set_ylabel("distance to the nearest reference frame (mm)")
    ax.set_title("Pose coverage: per query frame the nearest reference frame under similarity "
                 "Procrustes (H36M-17); solid median, light p90")  # fmt: skip
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, png)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.coverage",
        description="Pose coverage: per query frame, the PA-aligned H36M-17 distance to the "
        "nearest reference frame (median, p90, per joint).",
    )
    p.add_argument("--amass", type=Path, default=Path("data/amass"), help="AMASS archive root")
    p.add_argument("--body-models", type=Path, default=Path("data/body_models"))
    p.add_argument("--config", type=Path, default=None, help="build config (splits, sampling)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--query", nargs="*", default=["val"], help="query split(s) of --amass")
    more = "more queries: an AMASS-format folder or one .npz file (all of it, every split)"
    p.add_argument("--query-amass", nargs="*", type=Path, default=[], metavar="PATH", help=more)
    zb = "pose --query-amass frames with zero betas (a foreign archive's shape space)"
    p.add_argument("--zero-betas", action="store_true", help=zb)
    p.add_argument("--reference", default="train", help="reference split of --amass")
    pl = "splits of --amass: only the frames the build's plan samples (plan.meshes)"
    p.add_argument("--planned", action="store_true", help=pl)
    p.add_argument("--stride", type=int, default=1, help="keep every N-th candidate frame")
    p.add_argument("--max-frames", type=int, default=None, help="at most N query frames")
    rt = "the query whose median the others are divided by (default: the first)"
    p.add_argument("--ratio-to", default=None, metavar="QUERY", help=rt)
    gr = "also per query: median and p90 per AMASS subset, subject or motion, farthest first"
    p.add_argument("--group", choices=GROUPS, default="", help=gr)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--png", type=Path, default=None, help="per-joint bars")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    a = p.parse_args(argv)

    t0 = time.perf_counter()
    try:
        if a.stride < 1 or (a.max_frames is not None and a.max_frames < 1):
            raise CoverageError("--stride and --max-frames must be at least 1")
        if not a.query and not a.query_amass:
            raise CoverageError("nothing to measure: give --query and/or --query-amass")
        if not Path(a.body_models).is_dir():
            raise CoverageError(f"{a.body_models}: body-model folder not found")
        cfg = load_config(a.config, None, a.set)
        kw = dict(body_models=a.body_models, cfg=cfg, stride=a.stride, progress=not a.quiet)
        ref = load_frames(a.reference, a.amass, split=a.reference, planned=a.planned, **kw)
        results = []
        queries = [(q, a.amass, q, False, a.planned) for q in a.query]
        queries += [(Path(q).name, q, None, a.zero_betas, False) for q in a.query_amass]
        for name, root, split, zb, pl in queries:
            qs = load_frames(
                name, root, split=split, max_frames=a.max_frames, zero_betas=zb, planned=pl, **kw
            )
            results.append(coverage(qs, ref, progress=not a.quiet, group=a.group))
        text = table(results, a.ratio_to)
        if a.group:
            text += "".join("\n\n" + group_table(r) for r in results)
    except (CoverageError, PreflightError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = round(time.perf_counter() - t0, 1)
    print(text)
    pruned = ", ".join(f"{r['pruned_share']:.1%}" for r in results)
    print(f"({seconds} s; exact nearest neighbours; pairs pruned by the bound: {pruned})")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"amass": str(a.amass), "config": str(a.config or "defaults"), "stride": a.stride,
                "max_frames": a.max_frames, "planned": a.planned, "zero_betas": a.zero_betas,
                "seconds": seconds}  # fmt: skip
        a.json.write_text(json.dumps({**meta, "results": results}, indent=1) + "\n")
    if a.png:
        print(f"wrote {plot(results, a.png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

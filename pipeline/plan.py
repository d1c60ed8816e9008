"""Sampling plan: which (sequence, frame) pairs become meshes, in which split and work unit.

The plan is a pure function of (archive listing, config, seed):

1. every sequence is resampled to ``fps`` (nearest source frame for each target time),
2. only the central ``central`` fraction of each sequence is kept (AMASS-prep style),
3. an optional random ``keep_rate`` drops candidates (seeded per sequence),
4. pose-diversity thinning drops a frame whose body pose is within ``min_pose_dist`` (mean
   per-joint axis-angle distance, radians) of a frame already kept in the same sequence,
5. the target count ``meshes`` is spread over subsets in proportion to their duration (a subset
   with too few candidates gives its excess to the others) and each subset is subsampled
   uniformly without replacement to its quota.

Samples are ordered by split (train, val, test), then sequence path, then frame; ``sample_id``
is the position in that order. Work units are consecutive chunks of ``unit_size`` samples that
never cross a split, so every shard holds one split. Every random draw is seeded from the plan
seed and a stable hash of the sequence path, never from the order of work.
"""

from __future__ import annotations

import copy
import hashlib
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from cameras.plotting import save_figure
from pipeline.subsets import split_of
from shards.atomic import atomic_path, write_atomic
from shards.config import Field, Number, Section

SPLITS = ("train", "val", "test")

#: AMASS's recommended split (Mahmood et al. 2019); every other subset is train. Written in the
#: first release's folder names (kept so existing plans keep their digest); folders of either
#: release match them (``pipeline.subsets``: ``MPI_HDM05`` = ``HDM05``, ``SSM_synced`` = ``SSM``).
AMASS_SPLITS = {
    "val": ["HumanEva", "MPI_HDM05", "SFU", "MPI_mosh"],
    "test": ["Transitions_mocap", "SSM_synced"],
}

#: The default split: AMASS's (so real AMASS needs no config) plus the embedded default's own:
#: train SynthCMU + SynthKIT (6 subjects), val SynthBML, test SynthHDM.
DEFAULT_SPLITS = {
    "val": [*AMASS_SPLITS["val"], "SynthBML"],
    "test": [*AMASS_SPLITS["test"], "SynthHDM"],
}


class PlanConfig(Section):
    """Sampling settings (the ``plan`` section of a build config). The numbers stay as written
    (``Number``: 30 is not 30.0) because the plan digest hashes this section's JSON."""

    meshes: int = Field(2000, gt=0)  # target count, spread over subsets by duration
    fps: Number = Field(30, gt=0)  # resample every sequence to this rate first
    central: Number = Field(0.8, gt=0, le=1)  # keep the central 80% of each sequence (AMASS prep)
    keep_rate: Number = Field(1.0, gt=0, le=1)  # random keep-rate after that (1.0: keep all)
    #: pose-diversity thinning: mean per-joint axis-angle distance, radians (0: off)
    min_pose_dist: Number = Field(0.005, ge=0)
    unit_size: int = Field(256, gt=0)  # meshes per work unit = per shard (never cross a split)
    seed: int = 0
    #: subsets per split; every other subset is train. Subset names of both AMASS releases
    #: match each other (``pipeline/subsets.py``); ``--dry-run`` prints every subset's split.
    splits: dict[Literal["val", "test"], list[str]] = Field(
        default_factory=lambda: copy.deepcopy(DEFAULT_SPLITS)
    )

    def split_of(self, subset: str) -> str:
        """Split name for an AMASS subset folder (default train); names of both AMASS releases
        match each other (``pipeline.subsets.split_of``)."""
        return split_of(subset, self.splits)


@dataclass
class SeqEntry:
    """One readable sequence of the archive listing."""

    path: str  # relative to the AMASS root, posix separators
    subset: str
    frames: int
    fps: float

    @property
    def duration(self) -> float:
        return self.frames / self.fps


@dataclass
class Plan:
    """The sampling plan; arrays are indexed by sample_id."""

    config: dict
    sequences: list[str]  # relative paths, sorted
    seq: np.ndarray  # (S,) int32 index into sequences
    frame: np.ndarray  # (S,) int32 source frame
    split: np.ndarray  # (S,) int8 index into SPLITS
    units: np.ndarray  # (U, 2) int64 [start, stop) sample ranges
    skips: list[dict] = field(default_factory=list)  # files skipped while planning
    stats: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.seq.shape[0])

    def central_bounds(self, frames: int) -> tuple[int, int]:
        """[lo, hi) frame range of the central part this plan keeps."""
        lo = int(np.floor(frames * (1.0 - self.config["central"]) / 2.0 + 1e-9))
        return lo, frames - lo

    @property
    def sample_id(self) -> np.ndarray:
        return np.arange(self.size, dtype=np.int64)

    def unit_split(self, u: int) -> str:
        return SPLITS[int(self.split[self.units[u, 0]])]

    def digest(self) -> str:
        """Hash of the plan content (config, listing, samples)."""
        h = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        h.update("\n".join(self.sequences).encode())
        for a in (self.seq, self.frame, self.split, self.units):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def save(self, out: Path) -> None:
        """Write ``plan.npz`` (arrays) and ``plan.json`` (listing, config, stats) atomically."""
        out = Path(out)
        with atomic_path(out / "plan.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, seq=self.seq, frame=self.frame, split=self.split, units=self.units)
        meta = {
            "digest": self.digest(),
            "config": self.config,
            "sequences": self.sequences,
            "skips": self.skips,
            "stats": self.stats,
        }
        write_atomic(out / "plan.json", json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, out: Path) -> Plan:
        out = Path(out)
        meta = json.loads((out / "plan.json").read_text())
        with np.load(out / "plan.npz") as z:
            arrays = {k: z[k] for k in ("seq", "frame", "split", "units")}
        plan = cls(
            meta["config"], meta["sequences"], skips=meta["skips"], stats=meta["stats"], **arrays
        )
        if plan.digest() != meta["digest"]:
            raise ValueError(f"{out / 'plan.npz'}: does not match plan.json (digest mismatch)")
        return plan


def stable_seed(*parts: int | str) -> int:
    """A 32-bit seed from ints and strings that is the same on every machine and run."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode())


def resample_indices(frames: int, src_fps: float, fps: float) -> np.ndarray:
    """Source frame nearest to each target time k / fps (k = 0, 1, ...) inside the sequence."""
    if frames <= 0:
        return np.zeros(0, np.int64)
    if fps >= src_fps:
        return np.arange(frames, dtype=np.int64)
    n = int(np.floor((frames - 1) / src_fps * fps + 1e-9)) + 1
    idx = np.rint(np.arange(n) * (src_fps / fps)).astype(np.int64)
    return np.unique(np.clip(idx, 0, frames - 1))


def central_mask(idx: np.ndarray, frames: int, central: float) -> np.ndarray:
    """True for indices inside the central ``central`` fraction of ``frames``."""
    lo = int(np.floor(frames * (1.0 - central) / 2.0 + 1e-9))
    hi = frames - lo
    return (idx >= lo) & (idx < hi)


def thin_by_pose(body_pose: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy diversity thinning: indices (into body_pose) of the frames kept, in order.

    A frame is dropped when its mean per-joint axis-angle distance to any frame already kept
    is below ``threshold``. ``body_pose`` is (N, J*3); non-finite frames are always kept (the
    build records them as skips with a reason).
    """
    n = body_pose.shape[0]
    if threshold <= 0 or n == 0:
        return np.arange(n)
    p = body_pose.reshape(n, -1, 3).astype(np.float64)
    kept = np.empty((n,) + p.shape[1:], np.float64)
    out: list[int] = []
    k = 0
    for i in range(n):
        if k and np.isfinite(p[i]).all():
            d = np.linalg.norm(kept[:k] - p[i], axis=-1).mean(axis=-1)
            if d.min() < threshold:
                continue
        kept[k] = p[i]
        k += 1
        out.append(i)
    return np.asarray(out, dtype=np.int64)


def allocate(target: int, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Split ``target`` over groups by ``weights`` (largest remainder), capped by ``capacity``;
    excess from capped groups is redistributed the same way over the others."""
    quota = np.zeros(len(weights), np.int64)
    open_ = capacity > 0
    left = min(int(target), int(capacity.sum()))
    while left > 0 and open_.any():
        w = np.where(open_, weights, 0.0)
        w = w / w.sum() if w.sum() > 0 else open_ / open_.sum()
        raw = w * left
        add = np.floor(raw).astype(np.int64)
        rem = left - int(add.sum())
        order = np.lexsort((np.arange(len(w)), -(raw - add)))  # stable largest remainder
        add[order[:rem]] += 1
        add = np.minimum(add, capacity - quota)
        quota += add
        left -= int(add.sum())
        open_ = quota < capacity
    return quota


def sequence_candidates(
    e: SeqEntry, cfg: PlanConfig, load_body_pose: Callable[[str], np.ndarray] | None = None
) -> np.ndarray | str:
    """Candidate frames of one sequence (steps 1-4 of the module docstring), or the one-line
    reason why its poses could not be loaded for thinning. Pure: safe to run in any process."""
    idx = resample_indices(e.frames, e.fps, cfg.fps)
    idx = idx[central_mask(idx, e.frames, cfg.central)]
    if cfg.keep_rate < 1.0 and idx.size:
        rng = np.random.default_rng(stable_seed(cfg.seed, "keep", e.path))
        idx = idx[rng.random(idx.size) < cfg.keep_rate]
    if cfg.min_pose_dist > 0 and idx.size > 1:
        if load_body_pose is None:
            raise ValueError("min_pose_dist > 0 needs load_body_pose")
        try:
            body_pose = load_body_pose(e.path)
        except ValueError as err:  # unusable file: recorded by the caller
            return str(err)
        idx = idx[thin_by_pose(body_pose[idx], cfg.min_pose_dist)]
    return idx


def _all_candidates(listing, cfg, load_body_pose, skips: list, progress: bool, map_fn):
    """Every sequence's candidate frames (:func:`sequence_candidates`, spread with
    ``map_fn``); a sequence whose poses fail to load is appended to ``skips``. Returns (the
    usable sequences, their candidate frames)."""
    cand: list[np.ndarray] = []
    usable: list[SeqEntry] = []
    results = map_fn(partial(sequence_candidates, cfg=cfg, load_body_pose=load_body_pose), listing)
    bar = tqdm(zip(listing, results), total=len(listing), desc="plan", unit="seq",
               disable=not progress, leave=False)  # fmt: skip
    for e, idx in bar:
        if isinstance(idx, str):
            skips.append({"input": e.path, "reason": idx, "samples": 0})
            continue
        cand.append(idx)
        usable.append(e)
    return usable, cand


def _draw(cand: list[np.ndarray], subsets: list[str], sub_of, quota, seed: int):
    """Each subset's quota drawn uniformly without replacement from its candidates (seeded
    by subset name). Returns (sequence index, frame) per sample, subset by subset."""
    seq_l, frame_l = [], []
    for k, name in enumerate(subsets):
        members = np.flatnonzero(sub_of == k)
        seq_k = np.concatenate([np.full(cand[i].size, i, np.int64) for i in members])
        fr_k = np.concatenate([cand[i] for i in members])
        rng = np.random.default_rng(stable_seed(seed, "subset", name))
        pick = np.sort(rng.choice(seq_k.size, size=int(quota[k]), replace=False))
        seq_l.append(seq_k[pick])
        frame_l.append(fr_k[pick])
    return np.concatenate(seq_l), np.concatenate(frame_l)


def _units(split: np.ndarray, unit_size: int) -> np.ndarray:
    """(U, 2) [start, stop) ranges of ``unit_size`` consecutive samples that never cross a
    split (samples sorted by split)."""
    units = []
    for s in range(len(SPLITS)):
        where = np.flatnonzero(split == s)
        if where.size:
            lo, hi = int(where[0]), int(where[-1]) + 1
            units += [(a, min(a + unit_size, hi)) for a in range(lo, hi, unit_size)]
    return np.asarray(units, np.int64).reshape(-1, 2)


def make_plan(
    listing: Sequence[SeqEntry],
    cfg: PlanConfig,
    load_body_pose: Callable[[str], np.ndarray] | None = None,
    skips: Sequence[dict] = (),
    progress: bool = False,
    map_fn: Callable = map,
) -> Plan:
    """Build the plan from a listing of readable sequences.

    ``load_body_pose(path) -> (frames, 63)`` is needed only when ``cfg.min_pose_dist > 0``.
    ``skips`` are files that could not be listed (recorded in the plan with 0 samples); a
    file whose poses fail to load (``ValueError``) during thinning is added to them.
    ``map_fn(func, iterable)`` (ordered, e.g. a process pool's ``map``) spreads the
    per-sequence work; the result does not depend on it.
    """
    listing = sorted(listing, key=lambda e: e.path)
    if not listing:
        raise ValueError("no readable sequences in the archive listing")
    if cfg.min_pose_dist > 0 and load_body_pose is None:
        raise ValueError("min_pose_dist > 0 needs load_body_pose")
    skips = list(skips)
    listing, cand = _all_candidates(listing, cfg, load_body_pose, skips, progress, map_fn)
    if not listing:
        raise ValueError("no usable sequences in the archive listing")

    subsets = sorted({e.subset for e in listing})
    sub_of = np.array([subsets.index(e.subset) for e in listing])
    dur = np.array(
        [sum(e.duration for e, s in zip(listing, sub_of) if s == k) for k in range(len(subsets))]
    )
    cap = np.array(
        [sum(c.size for c, s in zip(cand, sub_of) if s == k) for k in range(len(subsets))]
    )
    quota = allocate(cfg.meshes, dur, cap)

    seq, frame = _draw(cand, subsets, sub_of, quota, cfg.seed)
    split_idx = {n: SPLITS.index(cfg.split_of(n)) for n in subsets}
    split = np.array([split_idx[listing[i].subset] for i in seq], np.int8)
    order = np.lexsort((frame, seq, split))  # by split, then sequence path, then frame
    seq, frame, split = seq[order].astype(np.int32), frame[order].astype(np.int32), split[order]

    units = _units(split, cfg.unit_size)
    stats = {
        "subsets": {
            n: {
                "split": cfg.split_of(n),
                "duration_s": round(float(dur[k]), 3),
                "candidates": int(cap[k]),
                "planned": int(quota[k]),
            }
            for k, n in enumerate(subsets)
        },
        "planned": int(seq.size),
        "splits": {n: int((split == i).sum()) for i, n in enumerate(SPLITS)},
        "shortfall": int(max(0, cfg.meshes - seq.size)),
        "sequence_frames": [int(e.frames) for e in listing],
        "sequence_fps": [float(e.fps) for e in listing],
    }
    return Plan(
        config=cfg.model_dump(),
        sequences=[e.path for e in listing],
        seq=seq,
        frame=frame,
        split=split,
        units=units,
        skips=skips,
        stats=stats,
    )


def plot_plan(plan: Plan, png: Path, max_sequences: int = 8) -> Path:
    """Figure of the plan: per-subset duration, candidates and planned meshes (coloured by
    split), and a timeline of planned frames for a few sequences."""
    import matplotlib  # heavy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

    colours = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}
    subs = plan.stats["subsets"]
    names = list(subs)
    fig, (ax0, ax1) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.6]}, constrained_layout=True
    )
    x = np.arange(len(names))
    ax0.bar(x - 0.2, [subs[n]["candidates"] for n in names], 0.4, color="#BBBBBB")
    ax0.bar(x + 0.2, [subs[n]["planned"] for n in names], 0.4,
            color=[colours[subs[n]["split"]] for n in names])  # fmt: skip
    for i, n in enumerate(names):
        label = f"{subs[n]['split']}\n{subs[n]['duration_s'] / 60:.1f} min"
        ax0.annotate(label, (i + 0.2, subs[n]["planned"]), ha="center", va="bottom", fontsize=8)
    from matplotlib.patches import Patch  # heavy: matplotlib

    handles = [Patch(color="#BBBBBB", label="candidates (fps, central, keep-rate, thinning)")]
    handles += [Patch(color=c, label=f"planned, {k}") for k, c in colours.items()]
    ax0.legend(handles=handles, fontsize=8, loc="upper left", ncols=2)
    top = max([subs[n]["candidates"] for n in names] + [1])
    ax0.set_ylim(0, top * 1.35)
    ax0.set_xticks(
        x, names, rotation=30 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center"
    )
    ax0.set_ylabel("meshes")
    ax0.set_title(f"{plan.size} meshes planned (target {plan.config['meshes']})")

    frames = plan.stats.get("sequence_frames", [])
    fps = plan.stats.get("sequence_fps", [])
    pick = np.linspace(0, len(plan.sequences) - 1, min(max_sequences, len(plan.sequences)))
    for row, s in enumerate(np.unique(pick.astype(int))):
        if not frames:  # plan written before frame counts were recorded
            break
        t_end = frames[s] / fps[s]
        ax1.plot([0, t_end], [row, row], color="#DDDDDD", lw=6, solid_capstyle="butt")
        c = plan.central_bounds(frames[s])
        ax1.plot([c[0] / fps[s], c[1] / fps[s]], [row, row], color="#AAAAAA", lw=6,
                 solid_capstyle="butt")  # fmt: skip
        sel = plan.seq == s
        if sel.any():
            sp = SPLITS[int(plan.split[sel][0])]
            ax1.plot(plan.frame[sel] / fps[s], np.full(sel.sum(), row), "|", ms=11,
                     color=colours[sp])  # fmt: skip
        ax1.text(0, row + 0.3, plan.sequences[s], fontsize=7)
    ax1.set_yticks([])
    ax1.set_xlabel(
        "time in sequence (s); light: whole sequence, grey: central part, ticks: planned"
    )
    ax1.set_title(f"planned frames of {len(np.unique(pick.astype(int)))} sequences")
    ax1.set_ylim(-0.7, len(np.unique(pick.astype(int))) - 0.2)
    return save_figure(fig, png, layout=False)

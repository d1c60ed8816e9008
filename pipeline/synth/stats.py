"""How a motion archive moves: joint-angle statistics of AMASS-format sequences (real or generated).

``python -m pipeline.synth stats ARCHIVE_OR_FILES... [--ref REAL_FILES...]`` prints, pooled over
every frame of every sequence (``*_poses.npz`` SMPL+H or ``*_stageii.npz`` SMPL-X; the first 66
pose values are the root and the 21 body joints in both layouts), per joint group:

- angle: norm of the joint's axis-angle (deg), median / p95;
- speed: angle of the rotation between consecutive frames times the file's frame rate (deg/s);
- acceleration: change of that angular velocity (rotation vector of ``R[t+1] R[t]^-1``) between
  consecutive frame pairs, times the frame rate (deg/s^2);
- jitter: angle between frame t and the slerp midpoint of frames t - 1 and t + 1 (deg);
- asymmetry (left/right groups): ``| angle(left) - angle(right) |`` in the same frame (deg);

and for the whole body: pelvis tilt (angle between the root's up axis, the rest frame's +y, and
the world's +z), root turning rate (the root's angular speed, deg/s), and the mean pairwise pose
distance inside a sequence (mean over frame pairs of the mean geodesic angle over the 21 body
joints; sequences longer than ``MAX_PAIR_FRAMES`` are subsampled evenly), averaged over files.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from smplx.joint_names import SMPLH_JOINT_NAMES

from pipeline.synth.joint_names import GROUPS

#: Groups with a left and a right joint (asymmetry).
PAIRED = tuple(g for g, names in GROUPS.items() if len(names) == 2)
_INDEX = {name: i for i, name in enumerate(SMPLH_JOINT_NAMES[:22])}
#: Frames at most used for the pairwise pose distance of one sequence (O(N^2) pairs).
MAX_PAIR_FRAMES = 600
_SUFFIXES = ("_poses.npz", "_stageii.npz")


def read_motion(path: Path) -> tuple[np.ndarray, float]:
    """``(N, 22, 3)`` root + body axis-angles and the frame rate of an AMASS-format file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as d:
            if "poses" not in d.files:
                raise ValueError(f"{path}: no 'poses' array (not an AMASS motion file)")
            poses = np.asarray(d["poses"], dtype=np.float64)
            key = "mocap_framerate" if "mocap_framerate" in d.files else "mocap_frame_rate"
            if key not in d.files:
                raise ValueError(f"{path}: no mocap_framerate / mocap_frame_rate")
            fps = float(d[key])
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable npz file ({exc})") from exc
    if poses.ndim != 2 or poses.shape[1] < 66 or poses.shape[0] < 3:
        raise ValueError(f"{path}: poses of shape {poses.shape}, need (N >= 3, >= 66)")
    if not fps > 0:
        raise ValueError(f"{path}: frame rate {fps} is not positive")
    return poses[:, :66].reshape(-1, 22, 3), fps


def motion_files(paths: Iterable[Path]) -> list[Path]:
    """Motion files named by ``paths`` (files, or folders searched for ``*_poses.npz`` /
    ``*_stageii.npz``), sorted per argument."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.npz") if f.name.endswith(_SUFFIXES))
            if not found:
                raise ValueError(f"{p}: no *_poses.npz or *_stageii.npz files under it")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    return out


def _rotations(aa: np.ndarray) -> Rotation:
    """Rotation object over (N, 3) axis-angles."""
    return Rotation.from_rotvec(aa)


def joint_samples(aa: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Per-frame samples (degrees) of one joint's (N, 3) axis-angle track: ``angle`` (N,),
    ``speed`` (N-1,), ``accel`` (N-2,), ``jitter`` (N-2,)."""
    r = _rotations(aa)
    step = (r[1:] * r[:-1].inv()).as_rotvec()  # rotation from frame t to t+1 (parent frame)
    half = Rotation.from_rotvec(0.5 * (r[:-2].inv() * r[2:]).as_rotvec())
    mid = r[:-2] * half  # slerp(R[t-1], R[t+1], 1/2)
    return {
        "angle": np.degrees(np.linalg.norm(aa, axis=-1)),
        "speed": np.degrees(np.linalg.norm(step, axis=-1)) * fps,
        "accel": np.degrees(np.linalg.norm(np.diff(step, axis=0), axis=-1)) * fps**2,
        "jitter": np.degrees((mid.inv() * r[1:-1]).magnitude()),
    }


def pelvis_tilt(root: np.ndarray) -> np.ndarray:
    """(N,) angle (deg) between the root's up axis (rest +y) and the world's +z (AMASS z-up)."""
    up = _rotations(root).as_matrix()[:, :, 1]
    return np.degrees(np.arccos(np.clip(up[:, 2], -1.0, 1.0)))


def pose_distance(body: np.ndarray) -> float:
    """Mean over frame pairs of the mean geodesic angle (deg) over joints of (N, J, 3) poses."""
    n = body.shape[0]
    if n > MAX_PAIR_FRAMES:
        body = body[np.linspace(0, n - 1, MAX_PAIR_FRAMES).round().astype(int)]
        n = MAX_PAIR_FRAMES
    iu = np.triu_indices(n, 1)
    total = np.zeros(len(iu[0]))
    for j in range(body.shape[1]):
        q = _rotations(body[:, j]).as_quat()
        total += 2.0 * np.arccos(np.clip(np.abs(q @ q.T), 0.0, 1.0))[iu]
    return float(np.degrees(total.mean() / body.shape[1]))


@dataclass
class MotionStats:
    """Pooled per-frame samples of one or more sequences."""

    files: int = 0
    frames: int = 0
    seconds: float = 0.0
    groups: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    asym: dict[str, list[np.ndarray]] = field(default_factory=dict)
    tilt: list[np.ndarray] = field(default_factory=list)
    turn: list[np.ndarray] = field(default_factory=list)
    pose_dist: list[float] = field(default_factory=list)

    def add(self, motion: np.ndarray, fps: float) -> None:
        """Add one sequence: (N, 22, 3) root + body axis-angles at ``fps``."""
        self.files += 1
        self.frames += motion.shape[0]
        self.seconds += motion.shape[0] / fps
        for g, names in GROUPS.items():
            per = [joint_samples(motion[:, _INDEX[n]], fps) for n in names]
            slot = self.groups.setdefault(g, {})
            for key in per[0]:
                slot.setdefault(key, []).extend(p[key] for p in per)
            if len(per) == 2:
                self.asym.setdefault(g, []).append(np.abs(per[0]["angle"] - per[1]["angle"]))
        self.tilt.append(pelvis_tilt(motion[:, 0]))
        self.turn.append(joint_samples(motion[:, 0], fps)["speed"])
        self.pose_dist.append(pose_distance(motion[:, 1:]))

    def pooled(self, group: str, key: str) -> np.ndarray:
        """All samples of ``key`` (angle, speed, accel, jitter) of one group."""
        return np.concatenate(self.groups[group][key])

    def summary(self) -> dict:
        """Medians / p95s: ``{"groups": {g: {angle, speed, accel, jitter: (med, p95),
        asym: med}}, "jitter", "accel", "asym": pooled medians, "tilt", "turn": (med, p95),
        "pose_dist": mean over files, files, frames, seconds}``."""
        if not self.files:
            raise ValueError("no sequences to summarise")

        def mp(x: np.ndarray) -> tuple[float, float]:
            return float(np.median(x)), float(np.percentile(x, 95))

        groups = {}
        for g in GROUPS:
            groups[g] = {k: mp(self.pooled(g, k)) for k in ("angle", "speed", "accel", "jitter")}
            if g in self.asym:
                groups[g]["asym"] = float(np.median(np.concatenate(self.asym[g])))
        every = [np.concatenate([self.pooled(g, k) for g in GROUPS]) for k in ("jitter", "accel")]
        return {
            "groups": groups,
            "jitter": float(np.median(every[0])),
            "accel": float(np.median(every[1])),
            "asym": float(np.median(np.concatenate([a for g in PAIRED for a in self.asym[g]]))),
            "tilt": mp(np.concatenate(self.tilt)),
            "turn": mp(np.concatenate(self.turn)),
            "pose_dist": float(np.mean(self.pose_dist)),
            "files": self.files,
            "frames": self.frames,
            "seconds": self.seconds,
        }


def archive_stats(paths: Sequence[Path]) -> dict:
    """:meth:`MotionStats.summary` pooled over the motion files of ``paths`` (files/folders)."""
    stats = MotionStats()
    for f in motion_files(paths):
        stats.add(*read_motion(f))
    return stats.summary()


def format_table(s: dict, ref: dict | None = None, names: tuple[str, str] = ("archive", "ref")):
    """Markdown table of a :func:`archive_stats` summary (``ref`` side by side when given)."""
    a, b = names

    def cell(key: str, g: str, digits: int = 1) -> str:
        def fmt(x: dict) -> str:
            med, p95 = x["groups"][g][key]
            return f"{med:.{digits}f} / {p95:.{digits}f}"

        return fmt(s) if ref is None else f"{fmt(s)} ({b} {fmt(ref)})"

    def one(x: dict, g: str, key: str, digits: int) -> str:
        v = x["groups"][g].get(key)
        if v is None:
            return "-"
        v = v[0] if isinstance(v, tuple) else v
        return f"{v:.{digits}f}"

    def pair(g: str, key: str, digits: int) -> str:
        if ref is None:
            return one(s, g, key, digits)
        return f"{one(s, g, key, digits)} ({one(ref, g, key, digits)})"

    head = (
        "| group | angle med / p95 (deg) | speed med / p95 (deg/s) | accel med (deg/s^2) "
        "| jitter med (deg) | L/R asym med (deg) |"
    )
    lines = [head, "| --- | --- | --- | --- | --- | --- |"]
    for g in GROUPS:
        lines.append(
            f"| {g} | {cell('angle', g)} | {cell('speed', g, 0)} | {pair(g, 'accel', 0)} "
            f"| {pair(g, 'jitter', 2)} | {pair(g, 'asym', 1)} |"
        )

    def row(label: str, f) -> str:
        return f"| {label} | {f(s)}" + ("" if ref is None else f" | {f(ref)}") + " |"

    first = f"| | {a} |" + ("" if ref is None else f" {b} |")
    lines += ["", first, "| --- | --- |" + ("" if ref is None else " --- |")]
    lines += [
        row("files / frames / seconds", lambda x: f"{x['files']} / {x['frames']} / "
            f"{x['seconds']:.0f}"),
        row("jitter med, all joints (deg)", lambda x: f"{x['jitter']:.3f}"),
        row("accel med, all joints (deg/s^2)", lambda x: f"{x['accel']:.0f}"),
        row("L/R asymmetry med, all pairs (deg)", lambda x: f"{x['asym']:.1f}"),
        row("pelvis tilt med / p95 (deg)", lambda x: f"{x['tilt'][0]:.1f} / {x['tilt'][1]:.1f}"),
        row("root turning med / p95 (deg/s)", lambda x: f"{x['turn'][0]:.0f} / {x['turn'][1]:.0f}"),
        row("pairwise pose distance (deg)", lambda x: f"{x['pose_dist']:.1f}"),
    ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.synth stats PATH... [--ref PATH...]``."""
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.synth stats",
        description="Joint-angle statistics of AMASS-format motion files (pooled).",
    )
    ap.add_argument("paths", type=Path, nargs="+", help="archive folders or motion files")
    ap.add_argument("--ref", type=Path, nargs="+", default=None, help="reference files/folders")
    args = ap.parse_args(argv)
    try:
        s = archive_stats(args.paths)
        ref = archive_stats(args.ref) if args.ref else None
    except ValueError as exc:
        ap.exit(2, f"error: {exc}\n")
    print(format_table(s, ref))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

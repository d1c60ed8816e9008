"""Generated AMASS-format motion archive (the embedded default for licensed AMASS data):
clips of :mod:`pipeline.synth.moves` in a subject's :mod:`pipeline.synth.style`, turned into
AMASS arrays and written in AMASS's layout.

``generate_archive(out_dir)`` writes ``out_dir/<Subset>/<Subject>/<motion>_poses.npz`` files in
AMASS's SMPL+H G layout (``poses`` (N, 156) axis-angle in SMPL-H joint order, ``trans``,
``betas`` (16,), ``dmpls`` (N, 8), ``gender``, ``mocap_framerate``), one subject folder
``shape.npz`` as AMASS ships, and a few ``<motion>_stageii.npz`` files in AMASS's SMPL-X layout.

Motions are procedural: per-joint Euler angles (``R = Rx @ Rz @ Ry`` in the parent's rest frame,
SMPL rest frame y-up facing +z) built from smooth periodic curves and smoothstep keyframes,
kept inside ``JOINT_LIMITS``. The root orientation carries AMASS's y-up -> z-up turn (+90 deg
about x) and the heading. ``trans`` comes from a forward-kinematics pass over the body's rest
skeleton: its height puts the lowest foot joint at ``FOOT_CLEARANCE`` above z = 0 (jumps add a
smooth lift on top), and horizontally the body moves so the supporting foot does not slide (walks
and turns progress from the legs' own stepping; runs, jumps and side-steps add set velocities).

Everything is a pure function of ``seed``; the npz files are written with fixed zip timestamps
so equal seeds give byte-identical archives.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from pipeline.plan import DEFAULT_SPLITS
from pipeline.subsets import split_of
from pipeline.synth.kinds import FAMILY, MOTIONS, ROM_KIND, WORKOUT_KIND, split_kinds
from pipeline.synth.moves import Track
from pipeline.synth.skeleton import (
    EULER_SEQ,
    FOOT_CLEARANCE,
    JOINT_LIMITS,
    body_skeleton,
    default_body_models,
    posed_joints,
)
from pipeline.synth.skeleton import FOOT_JOINTS as _FOOT_JOINTS
from pipeline.synth.style import Style, perform, subject_style
from shards.atomic import atomic_path

# --------------------------------------------------------------------------------------------
# Track -> AMASS arrays
# --------------------------------------------------------------------------------------------

_YUP_TO_ZUP = Rotation.from_euler("x", np.pi / 2)


def _softmin(z: np.ndarray, tau: float = 0.01) -> np.ndarray:
    """Smooth minimum over the last axis (differentiable stand-in for min)."""
    m = z.min(axis=-1, keepdims=True)
    return (m - tau * np.log(np.exp(-(z - m) / tau).sum(axis=-1, keepdims=True)))[..., 0]


def _soft_limit(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """``x`` kept inside [lo, hi]: unchanged up to ``margin`` rad from a limit, then eased into
    it exponentially (C1: a motion that runs into a limit slows down instead of stopping in one
    frame, which a hard clip does, with a spike of angular acceleration)."""
    m = np.minimum(margin, 0.25 * (hi - lo))
    a, b = lo + m, hi - m
    m = np.maximum(m, 1e-9)
    over = hi - m * np.exp(-(np.maximum(x, b) - b) / m)
    under = lo + m * np.exp(-(a - np.minimum(x, a)) / m)
    return np.where(x > b, over, np.where(x < a, under, x))


def _clip_to_limits(euler: np.ndarray) -> np.ndarray:
    out = euler.copy()
    for j, lim in JOINT_LIMITS.items():
        out[:, j] = _soft_limit(out[:, j], lim[:, 0], lim[:, 1])
    return out


def _support_velocity(tr: Track, pos: np.ndarray, fps: float) -> np.ndarray:
    """(N, 2) horizontal body velocity that keeps the supporting foot still.

    Support comes from ``tr.contact`` (gaits; in flight the velocity of the last and next
    stance is interpolated) or, without it, from a softmax over the lowest foot joints.
    """
    feet = pos[:, _FOOT_JOINTS]  # left ankle, right ankle, left toe, right toe
    foot_vel = np.gradient(feet[..., :2], tr.t, axis=0)
    if tr.contact is None:
        z = feet[..., 2]
        w = np.exp(-(z - z.min(axis=1, keepdims=True)) / 0.015)
        w /= w.sum(axis=1, keepdims=True)
        support = -(w[..., None] * foot_vel).sum(axis=1)
    else:
        per_foot = 0.5 * (foot_vel[:, [0, 1]] + foot_vel[:, [2, 3]])  # (N, 2 feet, 2)
        total = tr.contact.sum(axis=1)
        w = tr.contact / np.maximum(total, 1e-9)[:, None]
        support = -(w[..., None] * per_foot).sum(axis=1)
        on = total > 0.5
        if on.any() and not on.all():
            for k in range(2):
                support[~on, k] = np.interp(tr.t[~on], tr.t[on], support[on, k])
    return gaussian_filter1d(support, sigma=0.03 * fps, axis=0, mode="nearest")


def track_to_amass(
    tr: Track, skeleton: tuple[np.ndarray, np.ndarray], start_xy: np.ndarray, heading0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a Track into AMASS ``poses`` (N, 156) and ``trans`` (N, 3) (z-up world), planted
    with ``skeleton`` = (rest joints, parents) of the body model (:func:`body_skeleton`)."""
    joints, parents = skeleton
    n = tr.t.size
    fps = 1.0 / (tr.t[1] - tr.t[0]) if n > 1 else 60.0
    euler = _clip_to_limits(tr.euler)
    local = Rotation.from_euler(EULER_SEQ, euler.reshape(-1, 3)[:, [1, 2, 0]])
    poses = local.as_rotvec().reshape(n, 52, 3)
    heading = heading0 + tr.heading
    tilt = Rotation.from_euler(EULER_SEQ, tr.tilt[:, [1, 2, 0]])
    root = Rotation.from_euler("z", heading[:, None]) * _YUP_TO_ZUP * tilt
    poses[:, 0] = root.as_rotvec()
    rotmats = local.as_matrix().reshape(n, 52, 3, 3)
    rotmats[:, 0] = root.as_matrix()
    pos = posed_joints(rotmats[:, :22], joints, parents)
    lowest = _softmin(pos[:, _FOOT_JOINTS, 2])
    dt = np.diff(tr.t, prepend=tr.t[0])
    fwd = np.stack([np.sin(heading), -np.cos(heading)], axis=1)
    left = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    vel = tr.forward[:, None] * fwd + tr.lateral[:, None] * left
    if tr.lock and n > 2:
        vel = vel + _support_velocity(tr, pos, fps)
    xy = start_xy + np.cumsum(vel * dt[:, None], axis=0) - joints[0, :2]
    # Light smoothing (sigma 40 ms) of the planted height removes kinks when support switches feet.
    z = gaussian_filter1d(FOOT_CLEARANCE - lowest, sigma=0.04 * fps, mode="nearest") + tr.lift
    trans = np.concatenate([xy, z[:, None]], axis=1)
    return poses.reshape(n, 156), trans


# --------------------------------------------------------------------------------------------
# Archive layout
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectSpec:
    subset: str
    name: str
    gender: str
    rom: bool = False  # opens with a range-of-motion take (train subjects only)


#: The archive's subjects. Their subsets' splits come from the build's default split lists
#: (``pipeline.plan.DEFAULT_SPLITS``: val SynthBML, test SynthHDM, the rest train), read by
#: the build's own code (``pipeline.subsets.split_of``); each subject performs only the kinds of
#: its split (:func:`pipeline.synth.kinds.split_kinds`), so val and test hold out whole kinds.
_SUBJECTS = (
    SubjectSpec("SynthCMU", "s01", "male", rom=True),  # a lab that records range-of-motion
    SubjectSpec("SynthCMU", "s02", "female", rom=True),  # takes, as AMASS's PosePrior
    SubjectSpec("SynthCMU", "s03", "male", rom=True),
    SubjectSpec("SynthKIT", "k101", "female"),
    SubjectSpec("SynthKIT", "k102", "male"),
    SubjectSpec("SynthKIT", "k103", "female"),
    SubjectSpec("SynthBML", "rub01", "male"),
    SubjectSpec("SynthBML", "rub02", "female"),
    SubjectSpec("SynthHDM", "h01", "female"),
    SubjectSpec("SynthHDM", "h02", "male"),
)
_SMPLX_SUBJECT = SubjectSpec("SynthMoSh", "x01", "neutral")
#: Subjects outside every split of the main archive performing train kinds (``amass_inkind/``):
#: the in-kind reference for held-out-kind figures (new people, choreographies train knows).
INKIND_SUBSET = "SynthInKind"
_INKIND_SUBJECTS = (
    SubjectSpec(INKIND_SUBSET, "i01", "female"),
    SubjectSpec(INKIND_SUBSET, "i02", "male"),
)
_FPS_CHOICES = (60.0, 100.0, 120.0)
#: clips per subject: train subjects cover the many train kinds (each at least 3 times),
#: val/test subjects their few held-out kinds (each 3-4 times)
_CLIPS = {"train": 14, "val": 8, "test": 8}
#: Mocap archives are dominated by locomotion (AMASS's CMU, KIT and BMLmovi above all), so each
#: train subject adds one take of a train gait or jump kind to its 14 (without it the pooled
#: ankle speed p95 falls to 0.49 x issue 22's real clip, under its 0.5 x floor).
_LOCOMOTION = [k for k in split_kinds("train") if FAMILY[k] in ("gait", "jump")]
#: Each train subject closes with this many warm-up takes (``workout``, as the exercise takes
#: of CMU, KIT and BMLmovi), appended so that no other take changes.
_WORKOUTS = 2


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed-equivalent writer with fixed zip timestamps (byte-reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
    ):
        for key, arr in arrays.items():
            buf = BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _subject_betas(rng: np.random.Generator) -> np.ndarray:
    """16 shape coefficients ~ N(0, 1), stature kept within +/-2 sd."""
    betas = rng.normal(0.0, 1.0, 16)
    betas[0] = np.clip(betas[0], -2.0, 2.0)
    return betas


def _motion_arrays(
    kind: str, rng: np.random.Generator, skeleton: tuple, fps: float, small: bool, style: Style
) -> tuple[np.ndarray, np.ndarray]:
    tr = perform(kind, rng, fps, small, style)
    start = rng.uniform(-0.5, 0.5, 2)
    heading0 = rng.uniform(-np.pi, np.pi)
    return track_to_amass(tr, skeleton, start, heading0)


def _dmpls(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    t = np.arange(n)[:, None] / fps
    f = rng.uniform(0.5, 2.0, 8)
    return 0.3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, 8)) * rng.uniform(0.2, 1, 8)


def subject_split(subset: str) -> str:
    """The split the build's default config puts ``subset`` in (the build's own code)."""
    return split_of(subset, DEFAULT_SPLITS)


def clip_kinds(split: str, start: int, count: int, rom: bool = False) -> list[str]:
    """``count`` kinds for one subject of ``split``: a range-of-motion take first with ``rom``
    (when the library has one), then the split's other kinds walked on from position
    ``start``; subjects continue where the previous one stopped, so the kinds are spread
    evenly over the subjects."""
    kinds = [k for k in split_kinds(split) if k not in (ROM_KIND, WORKOUT_KIND)]
    lead = [ROM_KIND] if rom and ROM_KIND in MOTIONS else []
    n = count - len(lead)
    return (lead + [kinds[(start + k) % len(kinds)] for k in range(n)])[:count]


def _write_subject(
    out_dir: Path, subj: SubjectSpec, si: int, kinds: list[str], seed: int, stream: int,
    small: bool, body_models: Path, bar: tqdm,
) -> list[Path]:  # fmt: skip
    """One subject folder: ``shape.npz`` and one ``<kind>_<k>_poses.npz`` per kind."""
    srng = np.random.default_rng([seed, stream, si])
    betas = _subject_betas(srng)
    skeleton = body_skeleton(body_models, subj.gender, betas)
    style = subject_style(srng)
    sdir = out_dir / subj.subset / subj.name
    _write_npz(sdir / "shape.npz", {"gender": np.array(subj.gender), "betas": betas})
    written = []
    for k, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, stream + 1, si, k])
        fps = float(_FPS_CHOICES[int(rng.integers(len(_FPS_CHOICES)))])
        poses, trans = _motion_arrays(kind, rng, skeleton, fps, small, style)
        path = sdir / f"{kind}_{k + 1:02d}_poses.npz"
        _write_npz(
            path,
            {
                "trans": trans,
                "gender": np.array(subj.gender),
                "mocap_framerate": np.array(fps),
                "betas": betas,
                "dmpls": _dmpls(rng, poses.shape[0], fps),
                "poses": poses,
            },
        )
        written.append(path)
        bar.update()
    return written


def generate_archive(
    out_dir: Path, seed: int = 0, small: bool = False, body_models: Path | None = None
) -> list[Path]:
    """Write the AMASS-format archive under ``out_dir``; return the sequence files written.

    Default: 4 SMPL+H subsets, 10 subjects (both genders), about 11 minutes of motion at
    60/100/120 fps, plus one SMPL-X subset (``*_stageii.npz``). Train subjects perform 15 clips
    of the train kinds (one more of them locomotion) and close with 2 warm-up takes
    (``workout``), val and test subjects 8 clips of their split's held-out kinds
    (:mod:`pipeline.synth.kinds`). ``small`` writes 1 subject per subset with 2 clips of ~1.4 s
    (for tests).

    Feet are planted with the shaped skeleton of ``body_models`` (a body-model folder holding
    ``smplh/<gender>/model.npz``), by default :func:`default_body_models`.
    """
    out_dir = Path(out_dir)
    body_models = default_body_models(out_dir) if body_models is None else Path(body_models)
    subjects = _SUBJECTS[:7:3] if small else _SUBJECTS
    plan, pos = [], {}
    for si, subj in enumerate(subjects):
        split = subject_split(subj.subset)
        kinds = clip_kinds(split, pos.get(split, 0), 2 if small else _CLIPS[split], subj.rom)
        pos[split] = pos.get(split, 0) + len(kinds) - subj.rom
        if split == "train" and not small:  # one more locomotion take (see _LOCOMOTION)
            kinds.append(_LOCOMOTION[si % len(_LOCOMOTION)])
            kinds += [WORKOUT_KIND] * _WORKOUTS
        plan.append((si, subj, kinds))
    written: list[Path] = []
    bar = tqdm(total=sum(len(k) for *_, k in plan), desc="motion archive", unit="clip",
               disable=small, leave=False)  # fmt: skip
    for si, subj, kinds in plan:
        written += _write_subject(out_dir, subj, si, kinds, seed, 1, small, body_models, bar)
    bar.close()
    written += _write_smplx_subject(out_dir, seed, small, body_models)
    _remove_stale(out_dir, written, {s.subset for s in (*_SUBJECTS, _SMPLX_SUBJECT)})
    return written


def generate_inkind(
    out_dir: Path, seed: int = 0, small: bool = False, body_models: Path | None = None
) -> list[Path]:
    """Write the in-kind reference archive under ``out_dir`` (``SynthInKind/<subject>/``):
    two subjects in none of the main archive's splits, performing train kinds (14 clips each;
    ``small``: 2 short clips). Held-out-kind figures read beside figures on these clips."""
    out_dir = Path(out_dir)
    body_models = default_body_models(out_dir) if body_models is None else Path(body_models)
    subjects = _INKIND_SUBJECTS[:1] if small else _INKIND_SUBJECTS
    count = 2 if small else _CLIPS["train"]
    bar = tqdm(total=len(subjects) * count, desc="in-kind archive", unit="clip",
               disable=small, leave=False)  # fmt: skip
    written: list[Path] = []
    for si, subj in enumerate(subjects):
        kinds = clip_kinds("train", count * (si + 1), count)
        written += _write_subject(out_dir, subj, si, kinds, seed, 5, small, body_models, bar)
    bar.close()
    _remove_stale(out_dir, written, {INKIND_SUBSET})
    return written


def _remove_stale(out_dir: Path, written: list[Path], subsets: set[str]) -> None:
    """Delete npz files of an earlier run (other seed/size) from the generator's ``subsets``."""
    keep = {p.resolve() for p in written}
    keep |= {(p.parent / n).resolve() for p in written for n in ("shape.npz", "neutral_stagei.npz")}
    for subset in sorted(subsets):
        sdir = out_dir / subset
        if not sdir.is_dir():
            continue
        for f in sdir.rglob("*.npz"):
            if f.resolve() not in keep:
                f.unlink()
        for d in sorted(sdir.rglob("*"), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


def _write_smplx_subject(out_dir: Path, seed: int, small: bool, body_models: Path) -> list[Path]:
    """SMPL-X layout (``*_stageii.npz``) as AMASS's SMPL-X release ships it."""
    subj = _SMPLX_SUBJECT
    srng = np.random.default_rng([seed, 3])
    betas = _subject_betas(srng)
    skeleton = body_skeleton(body_models, subj.gender, betas)  # SMPL+H stands in for SMPL-X
    style = subject_style(srng)
    sdir = out_dir / subj.subset / subj.name
    _write_npz(sdir / "neutral_stagei.npz", {"gender": np.array(subj.gender), "betas": betas})
    written = []
    for k, kind in enumerate(("walk", "wave") if not small else ("wave",)):
        rng = np.random.default_rng([seed, 4, k])
        fps = 120.0
        poses, trans = _motion_arrays(kind, rng, skeleton, fps, small, style)
        n = poses.shape[0]
        t = np.arange(n) / fps
        jaw = np.zeros((n, 3))
        jaw[:, 0] = 0.08 + 0.06 * np.sin(2 * np.pi * 0.7 * t)  # mouth opening (about x)
        eye = np.zeros((n, 6))
        gaze = 0.15 * np.sin(2 * np.pi * 0.3 * t)
        eye[:, 1] = eye[:, 4] = gaze
        full = np.concatenate([poses[:, :66], jaw, eye, poses[:, 66:]], axis=1)  # (N, 165)
        path = sdir / f"{kind}_{k + 1:02d}_stageii.npz"
        _write_npz(
            path,
            {
                "gender": np.array(subj.gender),
                "surface_model_type": np.array("smplx"),
                "mocap_frame_rate": np.array(fps),
                "mocap_time_length": np.array(n / fps),
                "trans": trans,
                "poses": full,
                "betas": betas,
                "num_betas": np.array(16),
                "root_orient": poses[:, :3],
                "pose_body": poses[:, 3:66],
                "pose_hand": poses[:, 66:],
                "pose_jaw": jaw,
                "pose_eye": eye,
            },
        )
        written.append(path)
    return written

"""AMASS archive reader: discovery, cheap scanning, validated loading, frame access.

Two on-disk layouts are read into one ``Sequence``:

* SMPL+H G (``*_poses.npz``): ``poses`` (N, 156), ``trans`` (N, 3), ``betas``, ``dmpls``,
  ``gender``, ``mocap_framerate``.
* SMPL-X (``*_stageii.npz``, or any file carrying ``root_orient``/``pose_body``): ``root_orient``
  (N, 3), ``pose_body`` (N, 63), ``pose_hand`` (N, 90), ``pose_jaw`` (N, 3), ``pose_eye`` (N, 6),
  ``trans``, ``betas``, ``gender``, ``mocap_frame_rate``, ``surface_model_type``; files without
  the split keys fall back to ``poses`` (N, 165) in SMPL-X joint order.

The family a file is posed with is the one its ``surface_model_type`` names ('smplx', or
'smplh' for SMPL+H stage-ii files: ``root_orient``/``pose_body``/``pose_hand``, no jaw or eyes);
only files that do not say are classified by their keys (``poses`` width 156 or 165, SMPL-X
pose parts) and name (``*_stageii.npz``). Other stated types are bad files.

Poses always come out in the SMPL+H 156 layout (root 3 + 21 body joints x 3 + 2 x 15 hand joints
x 3); SMPL-X jaw/eye rotations are kept on the side. Subject shape files (``shape.npz``,
``*_stagei.npz``) are not sequences and are never listed.

Bad files raise ``AmassFileError`` (one line: ``"<path>: <reason>"``) or, with
``on_error="skip"``, are returned as ``Skip(path, reason)`` records.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from shards.schema import GENDERS

#: Number of shape coefficients every Sequence carries (AMASS's extended SMPL+H: 16).
NUM_BETAS = 16
#: Width of the SMPL+H pose vector (52 joints x 3).
SMPLH_POSE_DIM = 156
#: Width of AMASS's full SMPL-X pose vector (55 joints x 3).
SMPLX_POSE_DIM = 165
SEQUENCE_PATTERNS = ("*_poses.npz", "*_stageii.npz")

OnError = Literal["raise", "skip"]


class AmassFileError(ValueError):
    """A motion file that cannot be used; ``str(err)`` is ``"<path>: <reason>"`` on one line."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


@dataclass(frozen=True)
class Skip:
    """A file left out, with the reason (what ``AmassFileError`` would have said)."""

    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class SequenceInfo:
    """What ``scan`` learns about a sequence without reading its pose arrays."""

    path: str  # relative to the archive root, posix separators
    subset: str
    subject: str
    n_frames: int
    fps: float
    gender: str
    model_type: str  # 'smplh' | 'smplx'
    model_type_from: str = ""  # 'surface_model_type' or the heuristic that decided model_type

    @property
    def frames(self) -> int:
        """Alias of ``n_frames`` (the plan's name for it)."""
        return self.n_frames

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


@dataclass
class Sequence:
    """One motion sequence, poses in the SMPL+H 156 layout (float64 axis-angle)."""

    path: str  # relative to the archive root, posix separators
    subset: str
    subject: str
    poses: np.ndarray  # (N, 156)
    trans: np.ndarray  # (N, 3) metres, z-up world
    betas: np.ndarray  # (16,)
    gender: str
    fps: float
    model_type: str  # 'smplh' | 'smplx'
    jaw_pose: np.ndarray | None = None  # (N, 3), SMPL-X only
    eye_pose: np.ndarray | None = None  # (N, 6) left then right eye, SMPL-X only
    dmpls: np.ndarray | None = None  # (N, 8), SMPL+H G only
    notes: list[str] = field(default_factory=list)  # harmless fixes made while reading

    @property
    def n_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    @property
    def root_orient(self) -> np.ndarray:
        return self.poses[:, :3]

    @property
    def pose_body(self) -> np.ndarray:
        """(N, 63) the 21 body joints after the root."""
        return self.poses[:, 3:66]

    @property
    def pose_hand(self) -> np.ndarray:
        """(N, 90) left then right hand, 15 joints each."""
        return self.poses[:, 66:156]

    def poses_for(self, model_type: str) -> np.ndarray:
        """Poses in the layout ``BodyModel.forward`` takes for ``model_type``.

        ``smplh``: (N, 156) as stored. ``smplx``: (N, 165) root, body, jaw, left eye, right
        eye, hands (jaw/eyes from the file, zero for SMPL+H files). ``smpl``: (N, 72) root,
        body and zero hand roots (SMPL's hands are single joints; the fingers are dropped).
        """
        n = self.n_frames
        if model_type == "smplh":
            return self.poses
        if model_type == "smplx":
            jaw = self.jaw_pose if self.jaw_pose is not None else np.zeros((n, 3))
            eyes = self.eye_pose if self.eye_pose is not None else np.zeros((n, 6))
            return np.concatenate([self.poses[:, :66], jaw, eyes, self.pose_hand], axis=1)
        if model_type == "smpl":
            return np.concatenate([self.poses[:, :66], np.zeros((n, 6))], axis=1)
        raise ValueError(f"{self.path}: unknown body-model type {model_type!r}")

    def frames(self, idx: Iterable[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Frames ``idx`` as a batch: ``poses`` (K, 156), ``trans`` (K, 3), ``betas`` (K, 16)
        (broadcast), plus ``jaw_pose``/``eye_pose`` when the sequence has them."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self.n_frames or idx.max() >= self.n_frames):
            raise IndexError(
                f"{self.path}: frame index out of range [0, {self.n_frames}): "
                f"min {idx.min()}, max {idx.max()}"
            )
        out = {
            "poses": self.poses[idx],
            "trans": self.trans[idx],
            "betas": np.broadcast_to(self.betas, (idx.size, NUM_BETAS)).copy(),
        }
        if self.jaw_pose is not None:
            out["jaw_pose"] = self.jaw_pose[idx]
        if self.eye_pose is not None:
            out["eye_pose"] = self.eye_pose[idx]
        return out


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


def discover(root: Path | str) -> list[Path]:
    """All sequence files under ``root`` (recursive, sorted): ``*_poses.npz``, ``*_stageii.npz``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: AMASS root is not a directory")
    found = {p for pat in SEQUENCE_PATTERNS for p in root.rglob(pat) if p.is_file()}
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _where(path: Path, root: Path | None) -> tuple[str, str, str]:
    """(relative posix path, subset, subject) of a file.

    Relative to ``root`` when given (subset = top folder, subject = the file's folder), by the
    path as listed (a linked subset folder or file keeps the name it has under the root), else
    with links resolved; without a root (or outside it) AMASS's ``<Subset>/<Subject>/<file>``
    depth is assumed.
    """
    rel = None
    if root is not None:
        for a, b in ((Path(os.path.abspath(path)), Path(os.path.abspath(root))),
                     (path.resolve(), Path(root).resolve())):  # fmt: skip
            try:
                rel = a.relative_to(b)
                break
            except ValueError:
                rel = None
    if rel is None:
        rel = Path(*path.resolve().parts[-3:])
    parts = rel.parts
    subset = parts[0] if len(parts) > 1 else ""
    subject = parts[-2] if len(parts) > 2 else ""
    return rel.as_posix(), subset, subject


# --------------------------------------------------------------------------------------------
# Low-level npz access with one-line errors
# --------------------------------------------------------------------------------------------


class _Npz:
    """An opened npz archive that reads member headers and arrays with clear errors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise AmassFileError(path, f"cannot open: {e.strerror or e}") from None
        if len(magic) == 0:
            raise AmassFileError(path, "empty file")
        if magic != b"PK\x03\x04":
            raise AmassFileError(path, "not an npz archive (no zip signature)")
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise AmassFileError(path, f"truncated or corrupt npz archive ({e})") from None
        self.members = {
            n[:-4]: n for n in self.zf.namelist() if n.endswith(".npy") and "/" not in n[:-4]
        }

    def close(self) -> None:
        self.zf.close()

    def __enter__(self) -> _Npz:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def has(self, key: str) -> bool:
        return key in self.members

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of member ``key`` from its .npy header only."""
        try:
            with self.zf.open(self.members[key]) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        except KeyError:
            raise AmassFileError(self.path, f"missing key '{key}'") from None
        except Exception as e:  # zlib/zip/format errors all mean a damaged member
            raise AmassFileError(self.path, f"corrupt array '{key}' ({e})") from None
        return tuple(shape), dtype

    def array(self, key: str) -> np.ndarray:
        if key not in self.members:
            raise AmassFileError(self.path, f"missing key '{key}'")
        if self.header(key)[1].hasobject:
            raise AmassFileError(
                self.path, f"'{key}' holds pickled Python objects (not loaded; save plain arrays)"
            )
        try:
            with self.zf.open(self.members[key]) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except Exception as e:
            raise AmassFileError(self.path, f"corrupt array '{key}' ({e})") from None


def _gender(npz: _Npz) -> str:
    arr = npz.array("gender")
    if arr.size != 1:
        raise AmassFileError(npz.path, f"gender must be a single string, got shape {arr.shape}")
    val = arr.reshape(-1)[0]
    if isinstance(val, bytes):
        val = val.decode("utf-8", "replace")
    g = str(val).strip().lower()
    if g not in GENDERS:
        raise AmassFileError(npz.path, f"unknown gender '{g}' (expected one of {GENDERS})")
    return g


def _fps(npz: _Npz) -> float:
    for key in ("mocap_framerate", "mocap_frame_rate"):
        if npz.has(key):
            arr = npz.array(key)
            try:
                fps = float(arr.reshape(-1)[0]) if arr.size == 1 else float("nan")
            except (TypeError, ValueError):
                fps = float("nan")
            if not np.isfinite(fps) or fps <= 0:
                raise AmassFileError(
                    npz.path, f"{key} must be a positive number, got {arr.tolist()!r}"
                )
            return fps
    raise AmassFileError(npz.path, "missing key 'mocap_framerate' (or 'mocap_frame_rate')")


#: ``surface_model_type`` values (prefix, lower case) -> the family a file is posed with
SURFACE_MODEL_TYPES = (("smplx", "smplx"), ("smplh", "smplh"), ("smpl+h", "smplh"))


def _layout(npz: _Npz) -> tuple[str, str]:
    """(family, how it was decided): 'smplx' or 'smplh', from ``surface_model_type`` when the
    file states it (SMPL+H stage-ii files say 'smplh'), else from its keys and name."""
    if npz.has("surface_model_type"):
        try:
            kind = str(npz.array("surface_model_type").reshape(-1)[0]).strip().lower()
        except (AmassFileError, IndexError):
            kind = ""
        if kind:
            for prefix, family in SURFACE_MODEL_TYPES:
                if kind.startswith(prefix):
                    return family, "surface_model_type"
            raise AmassFileError(
                npz.path, f"surface_model_type '{kind}' is not read (only smplh and smplx)"
            )
    if npz.has("poses"):
        try:
            shape = npz.header("poses")[0]
        except AmassFileError:
            shape = ()
        if len(shape) == 2 and shape[1] in (SMPLH_POSE_DIM, SMPLX_POSE_DIM):
            return ("smplh" if shape[1] == SMPLH_POSE_DIM else "smplx"), "poses width"
    if npz.has("root_orient") and npz.has("pose_body"):
        return "smplx", "SMPL-X keys"
    if npz.path.name.endswith("_stageii.npz"):
        return "smplx", "file name"
    return "smplh", "default"


# (key, width) of the pose parts of each layout, in SMPL+H order.
_SMPLX_PARTS = (("root_orient", 3), ("pose_body", 63), ("pose_hand", 90))


def _pose_frames(npz: _Npz, layout: str) -> int:
    """Number of frames implied by the pose arrays' headers; checks their widths."""

    def width(key: str, want: int, what: str) -> int:
        shape, dtype = npz.header(key)
        if len(shape) != 2 or shape[1] != want:
            raise AmassFileError(
                npz.path, f"'{key}' has shape {shape}, expected (N, {want}) ({what})"
            )
        if not np.issubdtype(dtype, np.floating):
            raise AmassFileError(npz.path, f"'{key}' has dtype {dtype}, expected float")
        return shape[0]

    if layout == "smplh" and (npz.has("poses") or not npz.has("root_orient")):
        return width("poses", SMPLH_POSE_DIM, "SMPL+H: 52 joints x 3")
    if npz.has("root_orient"):  # stage-ii pose parts (SMPL-X, or SMPL+H without 'poses')
        counts = {key: width(key, w, f"SMPL-X {key}") for key, w in _SMPLX_PARTS}
        if len(set(counts.values())) != 1:
            raise AmassFileError(npz.path, f"pose parts disagree on frame count {counts}")
        return next(iter(counts.values()))
    return width("poses", SMPLX_POSE_DIM, "SMPL-X: 55 joints x 3")


def _check_trans(npz: _Npz, n: int) -> None:
    shape, _ = npz.header("trans")
    if shape != (n, 3):
        raise AmassFileError(npz.path, f"'trans' has shape {shape}, expected ({n}, 3)")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def scan_file(path: Path | str, root: Path | str | None = None) -> SequenceInfo:
    """Validate a file's structure from its headers and small keys; poses are not read."""
    path = Path(path)
    rel, subset, subject = _where(path, Path(root) if root is not None else None)
    with _Npz(path) as npz:
        layout, decided = _layout(npz)
        n = _pose_frames(npz, layout)
        if n == 0:
            raise AmassFileError(path, "zero frames")
        _check_trans(npz, n)
        if not npz.has("betas"):
            raise AmassFileError(path, "missing key 'betas'")
        return SequenceInfo(rel, subset, subject, n, _fps(npz), _gender(npz), layout, decided)


def _betas(npz: _Npz, notes: list[str]) -> np.ndarray:
    b = np.asarray(npz.array("betas"), dtype=np.float64)
    if b.ndim == 2 and b.shape[0] >= 1:
        notes.append(f"betas given per frame {b.shape}; using the first row")
        b = b[0]
    if b.ndim != 1 or b.size == 0:
        raise AmassFileError(npz.path, f"'betas' has shape {b.shape}, expected (K,)")
    if b.size < NUM_BETAS:
        notes.append(f"betas padded from {b.size} to {NUM_BETAS} with zeros")
        b = np.concatenate([b, np.zeros(NUM_BETAS - b.size)])
    elif b.size > NUM_BETAS:
        notes.append(f"betas truncated from {b.size} to {NUM_BETAS}")
        b = b[:NUM_BETAS]
    if not np.all(np.isfinite(b)):
        raise AmassFileError(npz.path, "'betas' contains NaN or Inf")
    return b


def _finite(path: Path, key: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(a.shape[0], -1).any(axis=1))
        raise AmassFileError(
            path, f"'{key}' contains NaN or Inf ({rows.size} frames, first at frame {rows[0]})"
        )
    return a


def load_sequence(path: Path | str, root: Path | str | None = None) -> Sequence:
    """Read and validate one sequence file (either layout); raises ``AmassFileError``."""
    path = Path(path)
    info = scan_file(path, root)
    notes: list[str] = []
    jaw = eye = dmpls = None
    with _Npz(path) as npz:
        if info.model_type == "smplh" and (npz.has("poses") or not npz.has("root_orient")):
            poses = _finite(path, "poses", npz.array("poses"))
            if npz.has("dmpls"):
                dmpls = np.asarray(npz.array("dmpls"), dtype=np.float64)
        elif npz.has("root_orient"):
            parts = [_finite(path, k, npz.array(k)) for k, _ in _SMPLX_PARTS]
            poses = np.concatenate(parts, axis=1)
            if info.model_type == "smplh":  # SMPL+H stage-ii: no jaw or eyes
                notes.append("SMPL+H pose parts joined from root_orient, pose_body, pose_hand")
            else:
                if npz.has("pose_jaw"):
                    jaw = _finite(path, "pose_jaw", npz.array("pose_jaw"))
                if npz.has("pose_eye"):
                    eye = _finite(path, "pose_eye", npz.array("pose_eye"))
        else:
            full = _finite(path, "poses", npz.array("poses"))
            poses = np.concatenate([full[:, :66], full[:, 75:165]], axis=1)
            jaw, eye = full[:, 66:69], full[:, 69:75]
            notes.append("SMPL-X pose parts split from 'poses' (N, 165)")
        for key, extra in (("pose_jaw", jaw), ("pose_eye", eye)):
            if extra is not None and extra.shape[0] != info.n_frames:
                raise AmassFileError(path, f"'{key}' has {extra.shape[0]} frames, expected "
                                     f"{info.n_frames}")  # fmt: skip
        trans = _finite(path, "trans", npz.array("trans"))
        betas = _betas(npz, notes)
    if dmpls is not None and dmpls.shape[0] != info.n_frames:
        notes.append(f"dmpls dropped: {dmpls.shape[0]} frames for {info.n_frames} poses")
        dmpls = None
    return Sequence(
        path=info.path,
        subset=info.subset,
        subject=info.subject,
        poses=np.ascontiguousarray(poses),
        trans=np.ascontiguousarray(trans),
        betas=betas,
        gender=info.gender,
        fps=info.fps,
        model_type=info.model_type,
        jaw_pose=jaw,
        eye_pose=eye,
        dmpls=dmpls,
        notes=notes,
    )


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _progress(items: list, desc: str, enabled: bool):
    if not enabled:
        return items

    return tqdm(items, desc=desc, unit="file", leave=False)


def scan(
    root: Path | str,
    on_error: OnError = "raise",
    files: Seq[Path] | None = None,
    progress: bool = False,
) -> tuple[list[SequenceInfo], list[Skip]]:
    """List the archive's sequences (sorted by relative path) from headers only.

    Returns ``(infos, skips)``; ``skips`` is empty unless ``on_error="skip"``. NaN/Inf are only
    detected by ``load_sequence``/``load_archive``. ``progress`` shows a tqdm bar.
    """
    _check_on_error(on_error)
    root = Path(root)
    infos: list[SequenceInfo] = []
    skips: list[Skip] = []
    paths = list(files) if files is not None else discover(root)
    for p in _progress(paths, "scan AMASS", progress):
        try:
            infos.append(scan_file(p, root))
        except AmassFileError as e:
            if on_error == "raise":
                raise
            skips.append(Skip(_where(Path(p), root)[0], e.reason))
    return infos, skips


def load_archive(
    root: Path | str, on_error: OnError = "raise", progress: bool = False
) -> tuple[list[Sequence], list[Skip]]:
    """Load every sequence under ``root`` (fully validated). Returns ``(sequences, skips)``."""
    _check_on_error(on_error)
    root = Path(root)
    seqs: list[Sequence] = []
    skips: list[Skip] = []
    for p in _progress(discover(root), "load AMASS", progress):
        try:
            seqs.append(load_sequence(p, root))
        except AmassFileError as e:
            if on_error == "raise":
                raise
            skips.append(Skip(_where(p, root)[0], e.reason))
    return seqs, skips


def read_frames(
    root: Path | str, rel_path: str, idx: Iterable[int] | np.ndarray
) -> dict[str, np.ndarray]:
    """Load ``root / rel_path`` and return ``Sequence.frames(idx)`` plus its gender and fps."""
    seq = load_sequence(Path(root) / rel_path, root)
    out: dict = seq.frames(idx)
    out["gender"] = seq.gender
    out["fps"] = seq.fps
    return out

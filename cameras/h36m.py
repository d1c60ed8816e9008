"""Every Human3.6M subject's published cameras (``h36m_cameras.json``), as :class:`Camera`.

The 4 cameras (ids 54138969, 55011271, 58860488, 60457274, in that order, as in VideoPose3D's
files) keep their intrinsics across subjects; their extrinsics were calibrated per subject,
so a subject's 3D joints are put in a camera's frame with that subject's own extrinsics. The
numbers are stored exactly as published (see the file's ``source``) and converted as
:func:`cameras.data.convert` does for S1: ``R`` world -> camera from the camera-to-world
quaternion ``(w, x, y, z)``, ``t = -R @ C`` with the centre ``C`` in metres.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .camera import Camera
from .data import convert

DATA_FILE = Path(__file__).with_name("h36m_cameras.json")
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")


@lru_cache(maxsize=4)
def _doc(path: str) -> dict:
    return _read(Path(path))


def _read(path: Path) -> dict:
    """The JSON document, checked for the 4 cameras in order and 4 extrinsics per subject."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read camera parameters ({e})") from None
    intr = doc.get("intrinsics") if isinstance(doc, dict) else None
    ext = doc.get("extrinsics") if isinstance(doc, dict) else None
    if not isinstance(intr, list) or not isinstance(ext, dict):
        raise ValueError(f"{path}: expected an object with 'intrinsics' (list) and 'extrinsics'")
    ids = tuple(str(c.get("id")) for c in intr)
    if ids != CAMERA_IDS:
        raise ValueError(f"{path}: cameras must be {', '.join(CAMERA_IDS)} in order, got {ids}")
    for subject, cams in ext.items():
        if not isinstance(cams, list) or len(cams) != len(CAMERA_IDS):
            raise ValueError(f"{path}: subject {subject} needs {len(CAMERA_IDS)} extrinsics")
    return doc


def h36m_subjects(path: Path | str = DATA_FILE) -> list[str]:
    """Subjects with published extrinsics (S1, S5, S6, S7, S8, S9, S11)."""
    return list(_doc(str(path))["extrinsics"])


def load_h36m_cameras(subject: str, path: Path | str = DATA_FILE) -> list[Camera]:
    """The 4 cameras of ``subject`` in published order, named ``<subject>-C1`` .. ``-C4``."""
    doc = _doc(str(path))
    ext = doc["extrinsics"]
    if subject not in ext:
        raise ValueError(f"{path}: no cameras for subject {subject!r} (have {', '.join(ext)})")
    return [
        convert({**i, **e}, f"{subject}-C{k + 1}", Path(path))
        for k, (i, e) in enumerate(zip(doc["intrinsics"], ext[subject]))
    ]


__all__ = ["CAMERA_IDS", "DATA_FILE", "h36m_subjects", "load_h36m_cameras"]

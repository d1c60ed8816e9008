"""The published Human3.6M subject S1 camera parameters (``h36m_s1.json``) and their conversion.

The JSON keeps the numbers exactly as published (see its ``source`` field): intrinsics in
pixels, the orientation quaternion ``(w, x, y, z)`` rotating camera-frame vectors into the
z-up world, and the camera centre in millimetres. :func:`load_h36m_s1` turns them into this
package's convention: ``R`` world -> camera, ``t = -R @ C`` in metres, ``K`` 3x3 and
``dist = [k1, k2, p1, p2, k3]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .camera import Camera

DATA_FILE = Path(__file__).with_name("h36m_s1.json")
SUBJECT_IDS = ("54138969", "55011271", "58860488", "60457274")


def _vec(entry: dict, key: str, n: int, path: Path) -> np.ndarray:
    try:
        v = np.asarray(entry[key], dtype=np.float64)
    except KeyError:
        raise ValueError(f"{path}: camera {entry.get('id', '?')} lacks '{key}'") from None
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise ValueError(
            f"{path}: camera {entry.get('id', '?')} '{key}' must be {n} finite numbers"
        )
    return v


def convert(entry: dict, name: str, path: Path = DATA_FILE) -> Camera:
    """Convert one published camera entry (VideoPose3D layout) to a :class:`Camera`."""
    f = _vec(entry, "focal_length", 2, path)
    c = _vec(entry, "center", 2, path)
    k = _vec(entry, "radial_distortion", 3, path)
    p = _vec(entry, "tangential_distortion", 2, path)
    q = _vec(entry, "orientation", 4, path)
    centre = _vec(entry, "translation", 3, path) / 1000.0
    if abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise ValueError(
            f"{path}: camera {entry.get('id', '?')} orientation is not a unit quaternion"
        )
    cam_to_world = Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix()  # scipy wants (x, y, z, w)
    R = cam_to_world.T
    K = np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])
    dist = np.array([k[0], k[1], p[0], p[1], k[2]])
    return Camera(
        id=str(entry["id"]),
        name=name,
        interpolated=False,
        K=K,
        dist=dist,
        R=R,
        t=-R @ centre,
        width=int(entry["res_w"]),
        height=int(entry["res_h"]),
    )


def load_raw(path: Path | str = DATA_FILE) -> dict:
    """The JSON document as published (description, source, subject, cameras)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read camera parameters ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cameras"), list):
        raise ValueError(f"{path}: expected an object with a 'cameras' list")
    return doc


def load_h36m_s1(path: Path | str = DATA_FILE) -> list[Camera]:
    """The 4 S1 cameras in published order (ids 54138969, 55011271, 58860488, 60457274),
    named ``S1-C1`` .. ``S1-C4``."""
    path = Path(path)
    doc = load_raw(path)
    subject = str(doc.get("subject", "S1"))
    cams = [convert(e, f"{subject}-C{i + 1}", path) for i, e in enumerate(doc["cameras"])]
    if not cams:
        raise ValueError(f"{path}: no cameras")
    return cams

"""The camera rig: Human3.6M S1's 4 cameras plus cameras interpolated between them.

The capture volume's centre is the point nearest (least squares) to the real cameras' optical
axes; its vertical axis (world z, floor at z = 0) is the axis about which azimuth, radius and
height of a camera centre are measured.

An interpolated camera at fraction ``s`` between neighbouring real cameras ``a`` and ``b``
(neighbours in azimuth, going counter-clockwise from ``a`` to ``b`` seen from above):

* centre: azimuth ``phi_a + s * ccw_angle(a, b)``, radius and height linear in ``s``;
* rotation: ``Slerp(R_a, R_b)(s)`` (scipy), then turned by the smallest rotation that points its
  optical axis exactly at the volume centre (a few degrees at most; roll is kept);
* intrinsics ``K``, ``dist`` and the image size linear in ``s`` (averaged at ``s = 0.5``).

``make_rig(views)``: 1 -> [C1], 2 -> [C1, C2], 4 -> the 4 real cameras, 8 -> the real cameras
followed by the 4 midpoints (``s = 0.5``) of neighbouring pairs, so ``make_rig(8)[:4]`` is
``make_rig(4)``. Any other ``views`` gives an even ring: azimuths ``phi_C1 + 2 pi k / views``,
each interpolated between the real cameras around it (``k = 0`` is C1 itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from .camera import Camera
from .data import load_h36m_s1, load_raw
from .projection import Projection, project, world_to_camera

TWO_PI = 2.0 * np.pi


def volume_centre(cameras: Sequence[Camera]) -> np.ndarray:
    """The point with the least summed squared distance to the cameras' optical axes, (3,)."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for cam in cameras:
        P = np.eye(3) - np.outer(cam.forward, cam.forward)
        A += P
        b += P @ cam.centre
    if np.linalg.cond(A) > 1e8:
        raise ValueError("volume_centre: optical axes are (nearly) parallel; centre is undefined")
    return np.linalg.solve(A, b)


@lru_cache(maxsize=1)
def _h36m_centre() -> tuple[float, float, float]:
    return tuple(volume_centre(load_h36m_s1()).tolist())


def h36m_volume_centre() -> np.ndarray:
    """The capture-volume centre of Human3.6M S1's cameras (3,), metres (cached)."""
    return np.array(_h36m_centre())


def cylindrical(point: np.ndarray, centre: np.ndarray) -> tuple[float, float, float]:
    """``(azimuth, radius, height)`` of a world point about the vertical axis through
    ``centre``; azimuth in ``(-pi, pi]`` measured from +x towards +y, height is world z."""
    d = np.asarray(point, dtype=np.float64) - centre
    return float(np.arctan2(d[1], d[0])), float(np.hypot(d[0], d[1])), float(point[2])


def aim_at(R: np.ndarray, position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Turn rotation ``R`` (world -> camera) by the smallest world rotation that makes its
    optical axis point from ``position`` to ``target``."""
    f = R[2]
    d = np.asarray(target, dtype=np.float64) - position
    d = d / np.linalg.norm(d)
    axis = np.cross(f, d)
    angle = np.arctan2(np.linalg.norm(axis), float(f @ d))
    if angle < 1e-12:
        return R.copy()
    G = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
    return R @ G.T


def _short(name: str) -> str:
    return name.rsplit("-", 1)[-1]


def interpolate(a: Camera, b: Camera, s: float, centre: np.ndarray) -> Camera:
    """The camera at fraction ``s`` in [0, 1] from ``a`` to ``b`` (counter-clockwise arc about
    ``centre``'s vertical axis), aimed at ``centre``; see the module docstring."""
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"interpolate: s must be in [0, 1], got {s}")
    phi_a, r_a, h_a = cylindrical(a.centre, centre)
    phi_b, r_b, h_b = cylindrical(b.centre, centre)
    phi = phi_a + s * ((phi_b - phi_a) % TWO_PI)
    r = (1 - s) * r_a + s * r_b
    position = np.array(
        [centre[0] + r * np.cos(phi), centre[1] + r * np.sin(phi), (1 - s) * h_a + s * h_b]
    )
    slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a.R, b.R])))
    R = aim_at(slerp([s]).as_matrix()[0], position, centre)
    mid = abs(s - 0.5) < 1e-12
    return Camera(
        id=f"{a.id}+{b.id}" + ("" if mid else f"@{s:.3f}"),
        name=f"{a.name}/{_short(b.name)}" + ("" if mid else f"@{s:.2f}"),
        interpolated=True,
        K=(1 - s) * a.K + s * b.K,
        dist=(1 - s) * a.dist + s * b.dist,
        R=R,
        t=-R @ position,
        width=int(round((1 - s) * a.width + s * b.width)),
        height=int(round((1 - s) * a.height + s * b.height)),
    )


@dataclass(frozen=True, eq=False)
class Rig:
    """An ordered set of cameras around a capture volume centred at ``centre`` (3,)."""

    cameras: tuple[Camera, ...]
    centre: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[Camera]:
        return iter(self.cameras)

    def __getitem__(self, i: int) -> Camera:
        return self.cameras[i]

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.cameras]

    @property
    def R(self) -> np.ndarray:
        """(V, 3, 3) world -> camera rotations."""
        return np.stack([c.R for c in self.cameras])

    @property
    def t(self) -> np.ndarray:
        """(V, 3) translations, metres."""
        return np.stack([c.t for c in self.cameras])

    @property
    def K(self) -> np.ndarray:
        """(V, 3, 3) intrinsics."""
        return np.stack([c.K for c in self.cameras])

    @property
    def dist(self) -> np.ndarray:
        """(V, 5) distortion ``[k1, k2, p1, p2, k3]``."""
        return np.stack([c.dist for c in self.cameras])

    @property
    def image_size(self) -> np.ndarray:
        """(V, 2) int ``(width, height)``."""
        return np.array([[c.width, c.height] for c in self.cameras], dtype=np.int64)

    @property
    def interpolated(self) -> np.ndarray:
        """(V,) bool."""
        return np.array([c.interpolated for c in self.cameras], dtype=bool)

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """``(..., N, 3)`` world points in every camera's frame: ``(..., V, N, 3)``, metres."""
        pts = np.asarray(points_world, dtype=np.float64)[..., None, :, :]
        return world_to_camera(pts, self.R, self.t)

    def project(self, points_world: np.ndarray, distort: bool = True) -> Projection:
        """Project ``(..., N, 3)`` world points into every camera: outputs ``(..., V, N, ...)``."""
        pts = np.asarray(points_world, dtype=np.float64)[..., None, :, :]
        return project(pts, self.R, self.t, self.K, self.dist, distort, self.image_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (what ``python -m cameras rig --json`` prints)."""
        return {
            "convention": "X_cam = R @ X_world + t; metres; world z-up, floor z=0; "
            "camera x right, y down, z forward; dist = [k1, k2, p1, p2, k3] applied with the "
            "Human3.6M/VideoPose3D model; pixel centres at integer coordinates",
            "source": self.source,
            "centre": self.centre.tolist(),
            "cameras": [c.to_dict() for c in self.cameras],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rig:
        """Inverse of :meth:`to_dict`."""
        if "cameras" not in d or "centre" not in d:
            raise ValueError("rig description needs 'cameras' and 'centre'")
        centre = np.asarray(d["centre"], dtype=np.float64)
        if centre.shape != (3,):
            raise ValueError(f"rig centre must have 3 values, got {centre.shape}")
        cams = tuple(Camera.from_dict(c) for c in d["cameras"])
        return cls(cams, centre, str(d.get("source", "")))

    @classmethod
    def from_json(cls, text: str) -> Rig:
        return cls.from_dict(json.loads(text))


def _neighbour_pairs(real: Sequence[Camera], centre: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive (counter-clockwise) pairs of real cameras by azimuth, starting at real[0]."""
    az = np.array([cylindrical(c.centre, centre)[0] for c in real])
    order = list(np.argsort((az - az[0]) % TWO_PI, kind="stable"))
    return [(int(order[i]), int(order[(i + 1) % len(order)])) for i in range(len(order))]


def ring(real: Sequence[Camera], centre: np.ndarray, views: int) -> list[Camera]:
    """``views`` cameras at evenly spaced azimuths starting at ``real[0]``'s, each interpolated
    between the real cameras bracketing it (a real camera is used where it sits exactly)."""
    if len(real) < 2:
        raise ValueError("ring: need at least 2 real cameras to interpolate between")
    az = [cylindrical(c.centre, centre)[0] for c in real]
    pairs = _neighbour_pairs(real, centre)
    out = []
    for k in range(views):
        phi = az[0] + TWO_PI * k / views
        for i, j in pairs:
            span = (az[j] - az[i]) % TWO_PI
            off = (phi - az[i]) % TWO_PI
            if off < span or span == 0.0:
                break
        s = off / span
        out.append(real[i] if s < 1e-9 else interpolate(real[i], real[j], s, centre))
    return out


def make_rig(views: int = 8, cameras: Sequence[Camera] | None = None) -> Rig:
    """The rig with ``views`` cameras built from ``cameras`` (default: Human3.6M S1's 4)."""
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 1:
        raise ValueError(f"views must be an integer >= 1, got {views!r}")
    source = ""
    if cameras is None:
        cameras = load_h36m_s1()
        source = load_raw()["source"]
    real = list(cameras)
    centre = volume_centre(real)
    n = len(real)
    if views == n:
        cams = real
    elif views < n and views <= 2:
        cams = real[:views]
    elif views == 2 * n:
        mids = [
            interpolate(real[i], real[j], 0.5, centre) for i, j in _neighbour_pairs(real, centre)
        ]
        cams = real + mids
    else:
        cams = ring(real, centre, int(views))
    return Rig(tuple(cams), centre, source)

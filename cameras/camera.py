"""The :class:`Camera` record: intrinsics, distortion and world -> camera extrinsics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .projection import Projection, project


@dataclass(frozen=True, eq=False)
class Camera:
    """One camera. ``X_cam = R @ X_world + t`` (metres, OpenCV axes: x right, y down, z forward);
    ``K`` 3x3 pixels; ``dist = [k1, k2, p1, p2, k3]``; image ``width x height`` pixels."""

    id: str
    name: str
    interpolated: bool
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        for key, shape in (("K", (3, 3)), ("dist", (5,)), ("R", (3, 3)), ("t", (3,))):
            value = np.asarray(getattr(self, key), dtype=np.float64)
            if value.shape != shape or not np.all(np.isfinite(value)):
                raise ValueError(f"camera {self.id}: {key} must be finite with shape {shape}")
            value.setflags(write=False)
            object.__setattr__(self, key, value)
        if abs(np.linalg.det(self.R) - 1.0) > 1e-6:
            raise ValueError(f"camera {self.id}: R is not a rotation (det {np.linalg.det(self.R)})")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera {self.id}: image size must be positive")

    @property
    def centre(self) -> np.ndarray:
        """Optical centre in world coordinates, ``-R^T t``."""
        return -self.R.T @ self.t

    @property
    def forward(self) -> np.ndarray:
        """Unit viewing direction (the camera's +z axis) in world coordinates."""
        return self.R[2].copy()

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return (self.width, self.height)

    def project(self, points_world: np.ndarray, distort: bool = True) -> Projection:
        """Project ``(..., N, 3)`` world points; see :func:`cameras.projection.project`."""
        return project(
            points_world, self.R, self.t, self.K, self.dist, distort, (self.width, self.height)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (lists of floats)."""
        return {
            "id": self.id,
            "name": self.name,
            "interpolated": bool(self.interpolated),
            "K": self.K.tolist(),
            "dist": self.dist.tolist(),
            "R": self.R.tolist(),
            "t": self.t.tolist(),
            "width": int(self.width),
            "height": int(self.height),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Camera:
        """Inverse of :meth:`to_dict`."""
        missing = [k for k in ("id", "K", "dist", "R", "t", "width", "height") if k not in d]
        if missing:
            raise ValueError(f"camera {d.get('id', '?')}: missing {', '.join(missing)}")
        return cls(
            id=str(d["id"]),
            name=str(d.get("name", d["id"])),
            interpolated=bool(d.get("interpolated", False)),
            K=np.asarray(d["K"], dtype=np.float64),
            dist=np.asarray(d["dist"], dtype=np.float64),
            R=np.asarray(d["R"], dtype=np.float64),
            t=np.asarray(d["t"], dtype=np.float64),
            width=int(d["width"]),
            height=int(d["height"]),
        )

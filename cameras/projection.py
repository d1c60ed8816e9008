"""Pinhole projection with the Human3.6M lens distortion, batched over leading dimensions.

Conventions (docs/ARCHITECTURE.md): ``X_cam = R @ X_world + t``; the camera looks along +z with
x right and y down; ``K`` is 3x3; ``dist = [k1, k2, p1, p2, k3]`` (OpenCV order); pixel centres
sit at integer coordinates, so an image of ``width x height`` pixels covers
``[-0.5, width - 0.5] x [-0.5, height - 0.5]``.

Distortion model (the one VideoPose3D's ``project_to_2d`` uses for Human3.6M, which is *not*
OpenCV's tangential term). With normalised coordinates ``x = X/Z, y = Y/Z``:

1. clamp ``x`` and ``y`` to ``[-1, 1]`` (the polynomial is only meaningful near the image;
   |x| <= 1 is far outside every Human3.6M image, so in-image points are never clamped);
2. ``r2 = x^2 + y^2``, ``radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3``, ``tan = p1 x + p2 y``;
3. ``x_d = x (radial + tan) + p1 r2`` and ``y_d = y (radial + tan) + p2 r2``;
4. ``[u, v] = K[:2, :2] @ [x_d, y_d] + K[:2, 2]``.

Without distortion, steps 1-3 are skipped (plain pinhole, no clamp).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Points closer than this (metres, along the optical axis) count as behind the camera.
NEAR = 1e-3


class Projection(NamedTuple):
    """Result of :func:`project`: ``uv (..., N, 2)`` pixels, ``depth (..., N)`` metres along the
    optical axis, ``visible (..., N)`` bool: in front of the camera and inside the image."""

    uv: np.ndarray
    depth: np.ndarray
    visible: np.ndarray


def world_to_camera(points: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``R @ X + t`` for points ``(..., N, 3)``, ``R (..., 3, 3)``, ``t (..., 3)`` (broadcast)."""
    points = np.asarray(points, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    return points @ np.swapaxes(R, -1, -2) + t[..., None, :]


def distort_normalized(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Apply the Human3.6M/VideoPose3D distortion to normalised coordinates.

    ``xy (..., N, 2)``, ``dist (..., 5) = [k1, k2, p1, p2, k3]`` (leading dims broadcast with
    those of ``xy`` before ``N``); returns ``(..., N, 2)``.
    Includes the clamp of ``x, y`` to ``[-1, 1]`` (see the module docstring).
    """
    dist = np.asarray(dist, dtype=np.float64)
    if dist.shape[-1] != 5:
        raise ValueError(f"dist must end in 5 values [k1, k2, p1, p2, k3], got {dist.shape}")
    k1, k2, p1, p2, k3 = (dist[..., i, None] for i in range(5))
    xy = np.clip(xy, -1.0, 1.0)
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    scale = radial + p1 * x + p2 * y
    return np.stack([x * scale + p1 * r2, y * scale + p2 * r2], axis=-1)


def project(
    points_world: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    K: np.ndarray,
    dist: np.ndarray | None = None,
    distort: bool = True,
    image_size: np.ndarray | tuple[int, int] | None = None,
    near: float = NEAR,
) -> Projection:
    """Project world points through one camera or a stack of cameras.

    Shapes broadcast over leading dimensions: ``points_world (..., N, 3)``, ``R (..., 3, 3)``,
    ``t (..., 3)``, ``K (..., 3, 3)``, ``dist (..., 5)``, ``image_size (..., 2) = (width,
    height)``. For meshes ``(M, N, 3)`` and a rig of ``V`` cameras pass
    ``points[:, None]`` and ``R (V, 3, 3)`` etc. to get ``(M, V, N, ...)``.

    ``distort=False`` (or ``dist=None``) gives the plain pinhole projection. ``visible`` is
    ``depth > near`` and, when ``image_size`` is given, ``uv`` inside
    ``[-0.5, w - 0.5] x [-0.5, h - 0.5]``. Points behind the camera get finite but meaningless
    ``uv``.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"K must be (..., 3, 3), got {K.shape}")
    X = world_to_camera(points_world, R, t)
    depth = X[..., 2]
    front = depth > near
    z = np.where(front, depth, near)
    xy = X[..., :2] / z[..., None]
    if distort and dist is not None:
        xy = distort_normalized(xy, dist)
    A = K[..., None, :2, :2]  # (..., 1, 2, 2) broadcasts against (..., N)
    c = K[..., None, :2, 2]
    uv = (A @ xy[..., None])[..., 0] + c
    visible = front
    if image_size is not None:
        size = np.asarray(image_size, dtype=np.float64)[..., None, :]
        inside = (uv >= -0.5) & (uv <= size - 0.5)
        visible = visible & inside[..., 0] & inside[..., 1]
    return Projection(uv, depth, visible)

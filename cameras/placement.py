"""Placing AMASS bodies (z-up world, arbitrary ``trans``) inside the capture volume.

For each mesh: ``p' = Rz(yaw) @ (p - [root_x, root_y, 0]) + [c_x + j_x, c_y + j_y, -z_min]``,
i.e. the root (pelvis) is moved over the volume centre ``c`` (plus an optional uniform jitter
``j`` in ``[-jitter, jitter]`` metres per axis), the body is turned about the vertical axis
through its root by a yaw (drawn uniformly in ``[0, 2 pi)`` unless given: the build's
``render.orientation`` picks it, ``pipeline/process.py``), and its lowest vertex lands on the
floor ``z = 0``. The result is a 4x4 homogeneous transform per mesh, to store and invert.

A body's facing is read from its hips (:func:`hip_heading`): the horizontal direction
perpendicular to the right-to-left hip axis, on the side the body's front is (z up).
"""

from __future__ import annotations

import numpy as np


def yaw_matrix(yaw: np.ndarray) -> np.ndarray:
    """Rotations about world z, ``(..., 3, 3)`` for angles ``(...)`` in radians."""
    yaw = np.asarray(yaw, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros_like(yaw), np.ones_like(yaw)
    return np.stack(
        [np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2
    )


def hip_heading(left_hip: np.ndarray, right_hip: np.ndarray) -> np.ndarray:
    """Heading (radians, ``atan2(y, x)`` in the world's xy plane, z up) a body faces, from its
    hip joints ``(..., 3)``: ``(L - R) x z`` projected on the floor, i.e. the right-to-left
    hip axis turned 90 degrees clockwise seen from above (a body facing +x has its left hip
    towards +y). Undefined (any angle) when the hips are vertically above each other."""
    d = np.asarray(left_hip, np.float64) - np.asarray(right_hip, np.float64)
    return np.arctan2(-d[..., 0], d[..., 1])


def heading_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` wrapped into ``[-pi, pi)`` (radians)."""
    return (np.asarray(a, np.float64) - b + np.pi) % (2.0 * np.pi) - np.pi


def placement_transform(
    vertices: np.ndarray,
    rng: np.random.Generator,
    jitter: float = 0.0,
    root: np.ndarray | None = None,
    centre: np.ndarray | None = None,
    yaw: np.ndarray | None = None,
) -> np.ndarray:
    """4x4 transforms placing meshes in the capture volume (see the module docstring).

    ``vertices (M, V, 3)`` or ``(V, 3)`` world z-up (any points whose lowest z is the body's
    lowest point, e.g. all vertices); ``root (M, 3)`` pelvis positions (default: the vertices'
    mean); ``centre (3,)`` volume centre (default: Human3.6M S1's, from :mod:`cameras.rig`);
    ``yaw (M,)`` to override the random draw. Returns ``(M, 4, 4)`` (``(4, 4)`` for one mesh).
    Draws, in this order, ``yaw = rng.uniform(0, 2 pi, M)`` then, if ``jitter > 0``,
    ``rng.uniform(-jitter, jitter, (M, 2))``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    single = v.ndim == 2
    if single:
        v = v[None]
    if v.ndim != 3 or v.shape[-1] != 3 or v.shape[1] == 0:
        raise ValueError(f"vertices must be (M, V, 3) or (V, 3), got {np.shape(vertices)}")
    m = v.shape[0]
    r = v.mean(axis=1) if root is None else np.asarray(root, dtype=np.float64).reshape(m, 3)
    if centre is None:
        from .rig import h36m_volume_centre

        centre = h36m_volume_centre()
    centre = np.asarray(centre, dtype=np.float64)
    if yaw is None:
        yaw = rng.uniform(0.0, 2.0 * np.pi, size=m)
    yaw = np.broadcast_to(np.asarray(yaw, dtype=np.float64), (m,))
    offset = np.zeros((m, 2))
    if jitter > 0:
        offset = rng.uniform(-jitter, jitter, size=(m, 2))
    Rz = yaw_matrix(yaw)
    T = np.zeros((m, 4, 4))
    T[:, :3, :3] = Rz
    T[:, 3, 3] = 1.0
    root_xy = np.concatenate([r[:, :2], np.zeros((m, 1))], axis=1)
    T[:, :3, 3] = -np.einsum("mij,mj->mi", Rz, root_xy)
    T[:, :2, 3] += centre[:2] + offset
    T[:, 2, 3] = -v[:, :, 2].min(axis=1)  # yaw keeps z, so this puts the lowest vertex at 0
    return T[0] if single else T


def apply_transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``T (..., 4, 4)`` applied to ``points (..., N, 3)`` (broadcast)."""
    T = np.asarray(T, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return points @ np.swapaxes(T[..., :3, :3], -1, -2) + T[..., None, :3, 3]


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms ``(..., 4, 4)``."""
    T = np.asarray(T, dtype=np.float64)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -(Rt @ T[..., :3, 3, None])[..., 0]
    out[..., 3, 3] = 1.0
    return out

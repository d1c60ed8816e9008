"""VideoPose3D's Human3.6M camera formulas, re-written here independently of ``cameras/``.

From facebookresearch/VideoPose3D ``common/quaternion.py`` (qrot, qinverse), ``common/camera.py``
(world_to_camera, project_to_2d, normalize_screen_coordinates, image_coordinates) and
``common/h36m_dataset.py`` (the normalised intrinsics, translation mm -> m), in numpy float64.
"""

from __future__ import annotations

import numpy as np


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate v (..., 3) by unit quaternion q (4,) = (w, x, y, z)."""
    qvec = np.broadcast_to(q[1:], v.shape)
    uv = np.cross(qvec, v)
    uuv = np.cross(qvec, uv)
    return v + 2 * (q[0] * uv + uuv)


def qinverse(q: np.ndarray) -> np.ndarray:
    return np.concatenate([q[:1], -q[1:]])


def world_to_camera(x: np.ndarray, orientation, translation) -> np.ndarray:
    """VideoPose3D: qrot(qinverse(R), X - t), t = translation / 1000 (metres)."""
    q = np.asarray(orientation, np.float64)
    t = np.asarray(translation, np.float64) / 1000.0  # mm -> m
    return qrot(qinverse(q), x - t)


def normalized_intrinsics(intr: dict) -> np.ndarray:
    """The 9-vector VideoPose3D builds: f/w*2, normalised centre, k1..k3, p1, p2."""
    w, h = intr["res_w"], intr["res_h"]
    f = np.asarray(intr["focal_length"], np.float64) / w * 2
    c = np.asarray(intr["center"], np.float64) / w * 2 - [1, h / w]
    return np.concatenate(
        [f, c, np.asarray(intr["radial_distortion"]), np.asarray(intr["tangential_distortion"])]
    )


def project_to_2d(x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Camera-space points (..., 3) -> normalised screen coordinates (..., 2)."""
    f, c, k, p = params[:2], params[2:4], params[4:7], params[7:]
    xx = np.clip(x[..., :2] / x[..., 2:], -1, 1)
    r2 = np.sum(xx[..., :2] ** 2, axis=-1, keepdims=True)
    radial = 1 + np.sum(k * np.concatenate([r2, r2**2, r2**3], axis=-1), axis=-1, keepdims=True)
    tan = np.sum(p * xx, axis=-1, keepdims=True)
    xxx = xx * (radial + tan) + p * r2
    return f * xxx + c


def image_coordinates(x: np.ndarray, w: int, h: int) -> np.ndarray:
    return (x + [1, h / w]) * w / 2


def project_pixels(x_cam: np.ndarray, intr: dict) -> np.ndarray:
    """VideoPose3D's chain for ``data_2d_h36m_gt.npz``: project, then back to pixels."""
    return image_coordinates(
        project_to_2d(x_cam, normalized_intrinsics(intr)), intr["res_w"], intr["res_h"]
    )

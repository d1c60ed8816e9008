"""Square crop boxes around projected points and the affine maps into crops and heatmaps.

Pixel convention (docs/ARCHITECTURE.md): pixel centres sit at integer coordinates, so an image
of ``n`` pixels spans ``[-0.5, n - 0.5]``; the same holds for the full image, the 224 crop and
the ``R x R`` heatmap. A box ``(cx, cy, side)`` maps its edges ``[cx - side/2, cx + side/2]``
onto ``[-0.5, res - 0.5]``:

    u_crop = (res / side) * (u - cx + side / 2) - 0.5

so the box centre lands on ``(res - 1) / 2``. Going from a crop of ``a`` pixels to one of ``b``
pixels is ``u_b = (b / a) * (u_a + 0.5) - 0.5``, and ``resize_affine(224, R) o
crop_affine(box, 224) == crop_affine(box, R)``. Normalised crop coordinates (the shards'
``joints2d``/``kp2d``) map the box edges onto ``[-1, 1]``: ``x_n = 2 (u - cx) / side``, which
equals ``(2 u_crop + 1) / res - 1`` at any ``res`` (``align_corners=False``).

Affines are ``(..., 2, 3)`` arrays ``A`` with ``x' = A[:, :2] @ x + A[:, 2]``.
"""

from __future__ import annotations

import numpy as np

CROP_RES = 224
HEATMAP_RES = (56, 112, 224)
SCALE = 1.2


def crop_box(
    uv: np.ndarray, valid: np.ndarray | None = None, scale: float = SCALE, min_side: float = 1.0
) -> np.ndarray:
    """Square boxes ``(..., 3) = (cx, cy, side)`` around points ``uv (..., N, 2)``.

    Centre: the middle of the valid points' bounding box; side: ``scale`` times its larger
    extent (at least ``min_side`` pixels). ``valid (..., N)`` bool selects points (default all);
    rows without a valid point get NaN.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim < 2 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be (..., N, 2), got {uv.shape}")
    if valid is None:
        valid = np.ones(uv.shape[:-1], dtype=bool)
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), uv.shape[:-1])
    m = valid[..., None]
    lo = np.where(m, uv, np.inf).min(axis=-2)
    hi = np.where(m, uv, -np.inf).max(axis=-2)
    any_valid = valid.any(axis=-1)
    with np.errstate(invalid="ignore"):
        centre = 0.5 * (lo + hi)
        side = np.maximum(scale * (hi - lo).max(axis=-1), min_side)
    box = np.concatenate([centre, side[..., None]], axis=-1)
    box[~any_valid] = np.nan
    return box


def _box(box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    box = np.asarray(box, dtype=np.float64)
    if box.shape[-1] != 3:
        raise ValueError(f"box must be (..., 3) = (cx, cy, side), got {box.shape}")
    return box[..., 0], box[..., 1], box[..., 2]


def _affine(scale: np.ndarray, tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    scale, tx, ty = np.broadcast_arrays(scale, tx, ty)
    A = np.zeros(scale.shape + (2, 3))
    A[..., 0, 0] = scale
    A[..., 1, 1] = scale
    A[..., 0, 2] = tx
    A[..., 1, 2] = ty
    return A


def crop_affine(box: np.ndarray, res: int = CROP_RES) -> np.ndarray:
    """``(..., 2, 3)`` image pixels -> pixels of a ``res x res`` crop of ``box (..., 3)``."""
    cx, cy, side = _box(box)
    a = res / side
    return _affine(a, a * (side / 2 - cx) - 0.5, a * (side / 2 - cy) - 0.5)


def normalized_affine(box: np.ndarray) -> np.ndarray:
    """``(..., 2, 3)`` image pixels -> normalised crop coordinates (box edges at -1 and +1)."""
    cx, cy, side = _box(box)
    a = 2.0 / side
    return _affine(a, -a * cx, -a * cy)


def resize_affine(src_res: int, dst_res: int) -> np.ndarray:
    """``(2, 3)`` pixels of a ``src_res`` crop -> pixels of a ``dst_res`` crop of the same box."""
    a = dst_res / src_res
    return _affine(np.float64(a), np.float64(0.5 * a - 0.5), np.float64(0.5 * a - 0.5))


def compose_affine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A o B`` (apply ``B`` first), batched."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    lin = A[..., :2, :2] @ B[..., :2, :2]
    off = (A[..., :2, :2] @ B[..., :2, 2:3])[..., 0] + A[..., :2, 2]
    return np.concatenate([lin, off[..., None]], axis=-1)


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of ``(..., 2, 3)`` affines."""
    A = np.asarray(A, dtype=np.float64)
    inv = np.linalg.inv(A[..., :2, :2])
    return np.concatenate([inv, -(inv @ A[..., :2, 2:3])], axis=-1)


def apply_affine(A: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """``A (..., 2, 3)`` applied to ``uv (..., N, 2)`` (broadcast)."""
    A = np.asarray(A, dtype=np.float64)
    uv = np.asarray(uv, dtype=np.float64)
    return uv @ np.swapaxes(A[..., :2, :2], -1, -2) + A[..., None, :2, 2]


def crop_intrinsics(K: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Intrinsics ``(..., 3, 3)`` of a pinhole camera that renders the crop directly:
    ``[A; 0 0 1] @ K``. Lens distortion is not representable in ``K`` (pinhole only)."""
    K = np.asarray(K, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    A3 = np.zeros(np.broadcast_shapes(A.shape[:-2], K.shape[:-2]) + (3, 3))
    A3[..., :2, :] = A
    A3[..., 2, 2] = 1.0
    return A3 @ K

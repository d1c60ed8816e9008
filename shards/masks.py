"""Silhouette masks: the dataset format's codec, an encode/decode pair like
:mod:`shards.heatmaps`.

``views/masks`` holds each R x R mask bit-packed: ``np.packbits`` of the row-major R*R pixels in
numpy's big-endian bit order, ``ceil(R*R / 8)`` bytes per mask (:func:`packed_size`). The build
encodes (:mod:`pipeline.process` through :class:`shards.writer.ShardWriter`); the reader, the
montage and the tests decode.
"""

from __future__ import annotations

import numpy as np


def packed_size(res: int) -> int:
    """Bytes of one packed R x R mask."""
    return (res * res + 7) // 8


def encode(masks: np.ndarray) -> np.ndarray:
    """(..., R, R) bool (or 0/1) -> (..., ceil(R*R/8)) uint8, row-major pixels, big-endian bits."""
    m = np.asarray(masks)
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"masks encode: expected (..., R, R), got shape {m.shape}")
    return np.packbits(m.reshape(*m.shape[:-2], -1).astype(bool), axis=-1)


def decode(packed: np.ndarray, res: int) -> np.ndarray:
    """Inverse of :func:`encode`: (..., ceil(R*R/8)) uint8 -> (..., R, R) bool."""
    p = np.asarray(packed)
    nbytes = packed_size(res)
    if p.dtype != np.uint8 or p.ndim < 1 or p.shape[-1] != nbytes:
        raise ValueError(
            f"masks decode: expected (..., {nbytes}) uint8 for res={res}, got {p.shape} {p.dtype}"
        )
    bits = np.unpackbits(p, axis=-1, count=res * res)
    return bits.reshape(*p.shape[:-1], res, res).astype(bool)

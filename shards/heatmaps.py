"""COCO-17 Gaussian heatmaps: the dataset format's codec, an encode/decode pair in the spirit
of mmpose's codecs.

The shards own this codec (``views/heatmaps`` are its uint8 output), so everything that makes
heatmaps the way the shards hold them imports it from here: the build and evaluations that
render heatmaps from outside 2D keypoints (``trainer.h36m``). :func:`dataset_codec` reads the
resolution and sigma a dataset was built with from its manifest.

`encode` draws one Gaussian per keypoint, `exp(-((j - x)^2 + (i - y)^2) / (2 sigma^2))`, with
peak 1 at the keypoint's sub-pixel position (x, y) in heatmap pixels (pixel (i, j) is centred at
x=j, y=i, see docs/ARCHITECTURE.md). Rules:

- sigma defaults to 2 px at R=56 and scales with R (`default_sigma`).
- A keypoint is drawn when it is valid (flag set, finite coordinates) and its centre lies at most
  3 sigma (Euclidean) outside the crop square [-0.5, R-0.5]^2; the part of the Gaussian inside the
  crop is kept (clipped at the border). Otherwise its channel is all zeros. The returned weight is
  1.0 for a drawn channel and 0.0 otherwise.
- Only a window around each keypoint is computed, as the outer product of two 1-D profiles (exact,
  since a channel holds one keypoint). The window radius is the smallest one outside which every
  value rounds to 0 in uint8 (value < 0.5/255, radius ~ 3.53 sigma): a plain 3-sigma window would
  cut the Gaussian at 0.011 (~2.8/255) and differ from the full-grid definition.
- uint8 quantisation is `floor(255 * value + 0.5)` (round half up), so the uint8 result equals
  the rounded full-grid Gaussian up to floating-point ties (at most 1/255). float16 output holds
  the same values, truncated below 0.5/255 outside the window.
- Each keypoint is computed independently in float64, so the output is byte-identical across runs
  and batch sizes. A compiled kernel (numba) is used when available, else a vectorised numpy path
  (window written into a buffer with one spare row/column as a sink for off-crop indices).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

try:  # optional accelerator; the numpy path gives the same bytes
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
    HAVE_NUMBA = False

#: Gaussian value below which a uint8 heatmap rounds to 0.
CUTOFF = 0.5 / 255.0
#: A keypoint further than this many sigmas outside the crop gets no heatmap.
OUTSIDE_SIGMAS = 3.0


def default_sigma(res: int) -> float:
    """Sigma in heatmap pixels: 2 px at R=56, scaled by R/56."""
    return 2.0 * res / 56.0


def dataset_codec(dims: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[int, float]:
    """``(res, sigma)`` a dataset's heatmaps were drawn with, from its manifest.

    ``res`` is ``dims["R"]``; sigma is the build config's ``render.sigma`` when set, else
    :func:`default_sigma` of ``res`` (what the build uses when it is null or absent).
    """
    if "R" not in dims:
        raise ValueError("manifest dims lack 'R' (heatmap resolution)")
    res = int(dims["R"])
    render = config.get("render") if isinstance(config, Mapping) else None
    sigma = render.get("sigma") if isinstance(render, Mapping) else None
    return res, default_sigma(res) if sigma is None else float(sigma)


def window_radius(sigma: float) -> int:
    """Smallest radius r such that pixels beyond |j - round(x)| > r have value < CUTOFF."""
    reach = sigma * math.sqrt(-2.0 * math.log(CUTOFF))  # distance where the Gaussian hits CUTOFF
    return max(1, math.ceil(reach - 0.5))


def drawable(kp: np.ndarray, valid: np.ndarray | None, res: int, sigma: float) -> np.ndarray:
    """Boolean (..., K): valid, finite, and centre within 3 sigma of the crop square."""
    kp = np.asarray(kp, dtype=np.float64)
    ok = np.all(np.isfinite(kp), axis=-1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    lo, hi = -0.5, res - 0.5
    with np.errstate(invalid="ignore"):
        out = np.maximum(np.maximum(lo - kp, kp - hi), 0.0)  # per-axis distance outside the crop
        dist = np.sqrt(np.sum(out * out, axis=-1))
        ok &= dist <= OUTSIDE_SIGMAS * sigma
    return ok


def _check(kp: np.ndarray, valid: np.ndarray | None, res: int) -> tuple[np.ndarray, np.ndarray]:
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim < 2 or kp.shape[-1] != 2:
        raise ValueError(f"heatmaps.encode: kp must be (..., K, 2), got shape {kp.shape}")
    if valid is None:
        valid = np.ones(kp.shape[:-1], dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != kp.shape[:-1]:
        raise ValueError(
            f"heatmaps.encode: valid must be {kp.shape[:-1]} (kp without the last axis), "
            f"got {valid.shape}"
        )
    if int(res) < 2:
        raise ValueError(f"heatmaps.encode: res must be >= 2, got {res}")
    return kp, valid


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _splat_numba(kx, ky, draw, res, sigma, radius, quantise, out):  # pragma: no cover
        inv = 1.0 / (2.0 * sigma * sigma)
        w = 2 * radius + 1
        gx = np.empty(w, dtype=np.float64)
        gy = np.empty(w, dtype=np.float64)
        for n in range(kx.shape[0]):
            if not draw[n]:
                continue
            x = kx[n]
            y = ky[n]
            cx = int(math.floor(x + 0.5))
            cy = int(math.floor(y + 0.5))
            x0 = max(cx - radius, 0)
            x1 = min(cx + radius, res - 1)
            y0 = max(cy - radius, 0)
            y1 = min(cy + radius, res - 1)
            if x0 > x1 or y0 > y1:
                continue
            for j in range(x0, x1 + 1):
                d = j - x
                gx[j - x0] = math.exp(-d * d * inv)
            for i in range(y0, y1 + 1):
                d = i - y
                gy[i - y0] = math.exp(-d * d * inv)
            for i in range(y0, y1 + 1):
                g = gy[i - y0]
                for j in range(x0, x1 + 1):
                    v = g * gx[j - x0]
                    if quantise:
                        out[n, i, j] = math.floor(v * 255.0 + 0.5)
                    else:
                        out[n, i, j] = v


def _splat_numpy(
    kx: np.ndarray, ky: np.ndarray, draw: np.ndarray, res: int, sigma: float, radius: int, dtype
) -> np.ndarray:
    """Vectorised windows; off-crop window cells are routed to a sink row/column (index res)."""
    n = kx.shape[0]
    buf = np.zeros((n, res + 1, res + 1), dtype=dtype)
    idx = np.flatnonzero(draw)
    if idx.size:
        inv = 1.0 / (2.0 * sigma * sigma)
        off = np.arange(-radius, radius + 1)
        x, y = kx[idx], ky[idx]
        cols = np.floor(x + 0.5).astype(np.int64)[:, None] + off  # (n', W)
        rows = np.floor(y + 0.5).astype(np.int64)[:, None] + off
        gx = np.exp(-((cols - x[:, None]) ** 2) * inv)
        gy = np.exp(-((rows - y[:, None]) ** 2) * inv)
        cols = np.where((cols >= 0) & (cols < res), cols, res)
        rows = np.where((rows >= 0) & (rows < res), rows, res)
        val = gy[:, :, None] * gx[:, None, :]
        if dtype == np.uint8:
            val = np.floor(val * 255.0 + 0.5)
        flat = (idx[:, None, None] * (res + 1) + rows[:, :, None]) * (res + 1) + cols[:, None, :]
        buf.reshape(-1)[flat.reshape(-1)] = val.reshape(-1)
    return np.ascontiguousarray(buf[:, :res, :res])


def encode(
    kp: np.ndarray,
    valid: np.ndarray | None,
    res: int,
    sigma: float | None = None,
    dtype=np.uint8,
    engine: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmaps for keypoints in heatmap pixel coordinates.

    Args:
        kp: (..., K, 2) keypoints (x, y) in heatmap pixels (pixel centres at integers).
        valid: (..., K) bool, False for keypoints behind the camera or flagged; None = all valid.
        res: heatmap side R.
        sigma: Gaussian sigma in heatmap pixels; default `default_sigma(res)`.
        dtype: np.uint8 (0..255, default) or np.float16 / np.float32 (0..1).
        engine: "auto" (numba when installed), "numba" or "numpy"; all give identical bytes.

    Returns:
        heatmaps (..., K, R, R) of `dtype` and weights (..., K) float32 (1 = drawn, 0 = none).
    """
    kp, valid = _check(kp, valid, res)
    res = int(res)
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float16, np.float32):
        raise ValueError(f"heatmaps.encode: dtype must be uint8, float16 or float32, got {dtype}")
    sigma = default_sigma(res) if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"heatmaps.encode: sigma must be > 0, got {sigma}")
    if engine == "auto":
        engine = "numba" if HAVE_NUMBA else "numpy"
    if engine == "numba" and not HAVE_NUMBA:
        raise RuntimeError("heatmaps.encode: engine='numba' requested but numba is not installed")
    if engine not in ("numba", "numpy"):
        raise ValueError(f"heatmaps.encode: engine must be auto, numba or numpy, got {engine!r}")

    lead = kp.shape[:-1]
    draw = drawable(kp, valid, res, sigma)
    flat = kp.reshape(-1, 2)
    kx = np.ascontiguousarray(flat[:, 0])
    ky = np.ascontiguousarray(flat[:, 1])
    dflat = np.ascontiguousarray(draw.reshape(-1))
    radius = window_radius(sigma)
    work = np.uint8 if dtype == np.uint8 else np.float32
    if engine == "numba":
        out = np.zeros((kx.shape[0], res, res), dtype=work)
        _splat_numba(kx, ky, dflat, res, sigma, radius, dtype == np.uint8, out)
    else:
        out = _splat_numpy(kx, ky, dflat, res, sigma, radius, work)
    if out.dtype != dtype:
        out = out.astype(dtype)
    return out.reshape(*lead, res, res), draw.astype(np.float32)


def decode(heatmaps: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints and scores from heatmaps, with sub-pixel refinement.

    The peak is the arg-max pixel; each axis is refined by fitting a parabola to the log of the
    heatmap at the peak and +-s pixels (s = max(1, round(sigma / 2)), shrunk near the border),
    which is exact for a Gaussian. Refinement is skipped on an axis at the map's edge.

    Args:
        heatmaps: (..., K, R, R) uint8 (0..255) or float (0..1).
        sigma: the encoding sigma (sets the stencil); default `default_sigma(R)`.

    Returns:
        kp (..., K, 2) float32 (x, y) in heatmap pixels and score (..., K) float32 = peak value in
        [0, 1]; an all-zero channel gives its arg-max (0, 0) with score 0.
    """
    hm = np.asarray(heatmaps)
    if hm.ndim < 3 or hm.shape[-1] != hm.shape[-2]:
        raise ValueError(f"heatmaps.decode: expected (..., K, R, R), got shape {hm.shape}")
    res = hm.shape[-1]
    scale = 255.0 if hm.dtype == np.uint8 else 1.0
    sigma = default_sigma(res) if sigma is None else float(sigma)
    step = max(1, int(round(sigma / 2.0)))
    lead = hm.shape[:-2]
    flat = hm.reshape(-1, res * res)
    am = np.argmax(flat, axis=1)
    rows = np.arange(flat.shape[0])
    peak = flat[rows, am].astype(np.float64) / scale
    py, px = np.divmod(am, res)

    def refine(c: np.ndarray, stride: int) -> np.ndarray:
        st = np.minimum(np.minimum(step, c), res - 1 - c)  # shrink the stencil at the border
        ok = (st >= 1) & (peak > 0)
        st = np.maximum(st, 1)
        lo = np.where(ok, am - st * stride, am)
        hi = np.where(ok, am + st * stride, am)
        eps = 1e-6
        l0 = np.log(np.maximum(peak, eps))
        lm = np.log(np.maximum(flat[rows, lo].astype(np.float64) / scale, eps))
        lp = np.log(np.maximum(flat[rows, hi].astype(np.float64) / scale, eps))
        den = lm - 2.0 * l0 + lp
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(ok & (den < 0), st * (lm - lp) / (2.0 * den), 0.0)
        return c + np.clip(off, -st, st)

    x = refine(px, 1)
    y = refine(py, res)
    kp = np.stack([x, y], axis=-1).astype(np.float32).reshape(*lead, 2)
    return kp, peak.astype(np.float32).reshape(lead)

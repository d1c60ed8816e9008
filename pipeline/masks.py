"""Binary silhouettes (and depth buffers) of posed meshes in the R x R crop.

Input geometry is already projected: `uv` (B, Nv, 2) are the vertices in mask pixels (pixel
centres at integers, docs/ARCHITECTURE.md), lens distortion included, and `depth` (B, Nv) their z
in the camera frame (metres). Triangles are straight in image space between the projected
vertices. A pixel is covered when its centre lies inside (or on the edge of) a triangle; the depth
buffer holds the perspective-correct depth (1/z interpolated linearly in image space) of the
nearest covering triangle, +inf where empty. Triangles with a vertex at z <= `znear` are dropped
by every backend. No back-face culling.

Backends:
- "cpu": a rasterizer without OpenGL: a compiled (numba) scan over each triangle's pixel box when
  numba is installed, else a vectorised numpy version (identical masks).
- "auto": the same as "cpu" (kept so configs and callers that name it keep working).

Masks are stored bit-packed by the format's codec (:mod:`shards.masks`). `keypoint_occlusion`
tests keypoints against the depth buffer.
"""

from __future__ import annotations

import numpy as np

try:
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
    HAVE_NUMBA = False

BACKENDS = ("auto", "cpu")

#: Per-keypoint depth tolerance (metres) for COCO-17 self-occlusion. An internal joint sits below
#: the surface that faces the camera (measured on the generated SMPL+H body, front and back: hips
#: up to 0.13 m, shoulders 0.07, knees 0.07, elbows and ankles 0.05, wrists 0.04, ears 0.03), so
#: its tolerance is a little more than that depth; face keypoints are surface points.
COCO17_OCCLUSION_TOL = np.array(
    [0.03, 0.03, 0.03, 0.05, 0.05, 0.10, 0.10, 0.07, 0.07, 0.055, 0.055, 0.16, 0.16, 0.09, 0.09,
     0.07, 0.07],
    dtype=np.float32,
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# input checks


def _check(uv, depth, faces, res) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    uv = np.asarray(uv, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    faces = np.asarray(faces)
    if uv.ndim != 3 or uv.shape[-1] != 2:
        raise ValueError(f"masks: uv must be (B, Nv, 2), got shape {uv.shape}")
    if depth.shape != uv.shape[:2]:
        raise ValueError(f"masks: depth must be {uv.shape[:2]} (B, Nv), got {depth.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"masks: faces must be (F, 3) integers, got {faces.shape} {faces.dtype}")
    if faces.size and (faces.min() < 0 or faces.max() >= uv.shape[1]):
        raise ValueError(f"masks: face indices outside [0, {uv.shape[1]})")
    res = int(res)
    if res < 1:
        raise ValueError(f"masks: res must be >= 1, got {res}")
    return uv, depth, np.ascontiguousarray(faces, dtype=np.int64), res


# --------------------------------------------------------------------------------------------
# CPU rasterizer

if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _raster_numba(uv, depth, faces, res, znear, want_depth, mask, zbuf):  # pragma: no cover
        for b in range(uv.shape[0]):
            for f in range(faces.shape[0]):
                a, c1, c2 = faces[f, 0], faces[f, 1], faces[f, 2]
                z0, z1, z2 = depth[b, a], depth[b, c1], depth[b, c2]
                if not (z0 > znear and z1 > znear and z2 > znear):
                    continue
                x0, y0 = uv[b, a, 0], uv[b, a, 1]
                x1, y1 = uv[b, c1, 0], uv[b, c1, 1]
                x2, y2 = uv[b, c2, 0], uv[b, c2, 1]
                area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
                if not (area != 0.0 and np.isfinite(area)):
                    continue
                # clamp in floating point before converting (huge coordinates stay safe)
                xa = int(max(np.ceil(min(x0, x1, x2)), 0.0))
                xb = int(min(np.floor(max(x0, x1, x2)), res - 1.0))
                ya = int(max(np.ceil(min(y0, y1, y2)), 0.0))
                yb = int(min(np.floor(max(y0, y1, y2)), res - 1.0))
                inv = 1.0 / area
                for i in range(ya, yb + 1):
                    for j in range(xa, xb + 1):
                        w0 = ((x1 - j) * (y2 - i) - (x2 - j) * (y1 - i)) * inv
                        w1 = ((x2 - j) * (y0 - i) - (x0 - j) * (y2 - i)) * inv
                        w2 = 1.0 - w0 - w1
                        if w0 >= 0.0 and w1 >= 0.0 and w2 >= 0.0:
                            mask[b, i, j] = True
                            if want_depth:
                                d = 1.0 / (w0 / z0 + w1 / z1 + w2 / z2)
                                if d < zbuf[b, i, j]:
                                    zbuf[b, i, j] = d


def _raster_numpy(uv, depth, faces, res, znear, want_depth):
    """Vectorised: expand every triangle's pixel box into candidates, keep those inside."""
    bsz = uv.shape[0]
    mask = np.zeros((bsz, res, res), dtype=bool)
    zbuf = np.full((bsz, res, res), np.inf, dtype=np.float64) if want_depth else None
    tri = uv[:, faces]  # (B, F, 3, 2)
    tz = depth[:, faces]  # (B, F, 3)
    x, y = tri[..., 0], tri[..., 1]
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (
        y[..., 1] - y[..., 0]
    )
    xa = np.maximum(np.ceil(x.min(-1)), 0)
    xb = np.minimum(np.floor(x.max(-1)), res - 1)
    ya = np.maximum(np.ceil(y.min(-1)), 0)
    yb = np.minimum(np.floor(y.max(-1)), res - 1)
    keep = np.all(tz > znear, -1) & (area != 0) & np.isfinite(area) & (xa <= xb) & (ya <= yb)
    bi, fi = np.nonzero(keep)
    if bi.size == 0:
        return mask, zbuf
    xa, xb, ya, yb = (v[bi, fi].astype(np.int64) for v in (xa, xb, ya, yb))
    nx = xb - xa + 1
    cnt = nx * (yb - ya + 1)
    t = np.repeat(np.arange(bi.size), cnt)
    local = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    py = ya[t] + local // nx[t]
    px = xa[t] + local % nx[t]
    b, f = bi[t], fi[t]
    x0, x1, x2 = x[b, f, 0], x[b, f, 1], x[b, f, 2]
    y0, y1, y2 = y[b, f, 0], y[b, f, 1], y[b, f, 2]
    inv = 1.0 / area[b, f]
    w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) * inv
    w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) * inv
    w2 = 1.0 - w0 - w1
    hit = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    lin = (b * res + py) * res + px
    mask.reshape(-1)[lin[hit]] = True
    if want_depth:
        z = tz[b, f]
        d = 1.0 / (w0 / z[:, 0] + w1 / z[:, 1] + w2 / z[:, 2])
        np.minimum.at(zbuf.reshape(-1), lin[hit], d[hit])
    return mask, zbuf


def rasterize_cpu(uv, depth, faces, res, want_depth=False, znear=1e-3, engine="auto"):
    """CPU rasterizer; returns (masks (B,R,R) bool, depth (B,R,R) float32 or None)."""
    uv, depth, faces, res = _check(uv, depth, faces, res)
    if engine == "auto":
        engine = "numba" if HAVE_NUMBA else "numpy"
    if engine == "numba":
        if not HAVE_NUMBA:
            raise RuntimeError("masks: engine='numba' requested but numba is not installed")
        mask = np.zeros((uv.shape[0], res, res), dtype=bool)
        zbuf = np.full((uv.shape[0], res, res), np.inf)
        _raster_numba(uv, depth, faces, res, float(znear), bool(want_depth), mask, zbuf)
    elif engine == "numpy":
        mask, zbuf = _raster_numpy(uv, depth, faces, res, float(znear), bool(want_depth))
    else:
        raise ValueError(f"masks: engine must be auto, numba or numpy, got {engine!r}")
    return mask, (zbuf.astype(np.float32) if want_depth else None)


# --------------------------------------------------------------------------------------------
# public API


def render_masks(
    uv: np.ndarray,
    depth: np.ndarray,
    faces: np.ndarray,
    res: int,
    backend: str = "auto",
    return_depth: bool = False,
    znear: float = 1e-3,
):
    """Silhouettes of B posed meshes sharing `faces`.

    Args:
        uv: (B, Nv, 2) vertices projected into mask pixels (x, y), distortion included.
        depth: (B, Nv) vertex z in the camera frame (metres).
        faces: (F, 3) vertex indices.
        res: mask side R.
        backend: "auto" or "cpu" (the same rasterizer).
        return_depth: also return the depth buffer.
        znear: triangles with a vertex at z <= znear are dropped.

    Returns:
        masks (B, R, R) bool, or (masks, depth (B, R, R) float32, +inf where empty).
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"masks: backend {backend!r} is not available (the pyrender backend was removed); "
            "use backend='cpu'"
        )
    mask, zbuf = rasterize_cpu(uv, depth, faces, res, return_depth, znear)
    return (mask, zbuf) if return_depth else mask


def keypoint_occlusion(
    kp: np.ndarray, kp_depth: np.ndarray, depth_buffer: np.ndarray, tol=None
) -> np.ndarray:
    """Whether each keypoint is hidden by the body (self-occlusion).

    A keypoint is occluded when the depth buffer at its (rounded) pixel is nearer than its own
    depth by more than `tol` metres. Keypoints off the map, on an empty pixel, or with a
    non-finite position are not occluded (they are handled by the heatmap weights instead).

    Args:
        kp: (B, K, 2) keypoints in mask pixels; kp_depth: (B, K) their camera-frame z.
        depth_buffer: (B, R, R) from `render_masks(..., return_depth=True)`.
        tol: scalar or (K,) metres; internal joints need about their depth below the surface.
            Default: COCO17_OCCLUSION_TOL when K == 17, else 0.03.

    Returns:
        (B, K) bool, True = occluded by the body.
    """
    kp = np.asarray(kp, dtype=np.float64)
    kz = np.asarray(kp_depth, dtype=np.float64)
    zb = np.asarray(depth_buffer)
    if kp.ndim != 3 or kp.shape[-1] != 2 or kz.shape != kp.shape[:2]:
        raise ValueError(
            f"keypoint_occlusion: kp (B,K,2) and depth (B,K), got {kp.shape} {kz.shape}"
        )
    if zb.ndim != 3 or zb.shape[0] != kp.shape[0] or zb.shape[1] != zb.shape[2]:
        raise ValueError(f"keypoint_occlusion: depth_buffer must be (B, R, R), got {zb.shape}")
    res = zb.shape[-1]
    if tol is None:
        tol = COCO17_OCCLUSION_TOL if kp.shape[1] == 17 else 0.03
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), kz.shape)
    with np.errstate(invalid="ignore"):
        ij = np.floor(kp + 0.5)
        inside = np.all(np.isfinite(ij) & (ij >= 0) & (ij <= res - 1), axis=-1)
    ij = np.where(inside[..., None], ij, 0).astype(np.int64)
    b = np.arange(kp.shape[0])[:, None]
    surf = zb[b, ij[..., 1], ij[..., 0]].astype(np.float64)
    with np.errstate(invalid="ignore"):
        return inside & np.isfinite(surf) & (surf < kz - tol)

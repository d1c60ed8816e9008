"""Rendering throughput per core: COCO-17 heatmaps (windowed kernel vs a naive full-grid loop) and
silhouettes of the CPU rasterizer (numba and numpy engines). The process is pinned to one core
while it measures.

Targets (issue 4): >= 20,000 views/s/core for 17x56x56 uint8 heatmaps and >= 20x the naive loop;
>= 500 masks/s/core at 56x56.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
from timing import best_time

from pipeline import masks as M
from shards import heatmaps as H

K = 17
ROOT = Path(__file__).resolve().parent.parent


def naive_heatmaps(kp: np.ndarray, valid: np.ndarray, res: int, sigma: float) -> np.ndarray:
    """Reference speed: one full-grid exp per keypoint in a Python loop."""
    out = np.zeros(kp.shape[:-1] + (res, res), np.uint8)
    g = np.arange(res, dtype=np.float64)
    for v in range(kp.shape[0]):
        for k in range(kp.shape[1]):
            if valid[v, k]:
                x, y = kp[v, k]
                val = np.exp(-((g[None, :] - x) ** 2 + (g[:, None] - y) ** 2) / (2 * sigma**2))
                out[v, k] = np.floor(val * 255 + 0.5)
    return out


def _mesh() -> tuple[np.ndarray, np.ndarray, str]:
    """A posed body from data/body_models when built, else the ~7k-vertex procedural figure."""
    bm = ROOT / "data" / "body_models"
    if (bm / "smplh" / "neutral" / "model.npz").is_file():
        try:
            from pipeline.body_models import load_body_model

            model = load_body_model(bm)
            pose = np.zeros((1, 156))
            pose[0, 3:66] = np.random.default_rng(0).normal(0, 0.2, 63)
            v = model(poses=pose).vertices[0].astype(np.float64)
            return v, np.asarray(model.faces), f"data/body_models SMPL+H ({len(v)} vertices)"
        except Exception:  # noqa: BLE001 - fall back to the procedural figure
            pass
    from pipeline.render_preview import procedural_figure

    v, f, _ = procedural_figure()
    return v, f, f"procedural figure ({len(v)} vertices)"


def _views(verts: np.ndarray, n: int, res: int) -> tuple[np.ndarray, np.ndarray]:
    """n yaw-rotated copies (y-up body) seen by a pinhole whose crop fits the body."""
    v = verts - verts.mean(0)
    yaw = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = c * v[:, 0] + s * v[:, 2]
    z = -s * v[:, 0] + c * v[:, 2] + 4.0
    y = -v[:, 1][None].repeat(n, 0)  # camera y points down
    f = 0.8 * res * 4.0 / (2 * np.abs(v[:, 1]).max())
    uv = np.stack([f * x / z, f * y / z], -1) + (res - 1) / 2
    return uv, z


def run() -> dict:
    old = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if old:
        os.sched_setaffinity(0, {min(old)})
    try:
        return _run()
    finally:
        if old:
            os.sched_setaffinity(0, old)


def _run() -> dict:
    rng = np.random.default_rng(0)
    out: dict = {}
    for res, n in {56: 256, 112: 64, 224: 16}.items():
        kp = rng.uniform(0, res, size=(n, K, 2))
        valid = rng.random((n, K)) > 0.05
        H.encode(kp, valid, res)  # warm-up / JIT
        t = best_time(partial(H.encode, kp, valid, res), repeat=5)
        out[f"heatmaps_{res}_views_per_s_core"] = round(n / t)
        if res == 56:
            tn = best_time(partial(H.encode, kp, valid, res, engine="numpy"))
            out["heatmaps_56_numpy_engine_views_per_s_core"] = round(n / tn)
            m = 32
            tl = best_time(partial(naive_heatmaps, kp[:m], valid[:m], res, H.default_sigma(res)))
            out["heatmaps_56_naive_loop_views_per_s_core"] = round(m / tl)
            out["heatmaps_56_speedup_vs_naive"] = round((n / t) / (m / tl), 1)
    out["heatmaps_engine"] = "numba" if H.HAVE_NUMBA else "numpy"

    verts, faces, label = _mesh()
    out["mask_mesh"] = f"{label}, {len(faces)} faces"
    for res in (56, 224):
        for backend, n in {"cpu": 64, "cpu_numpy": 16}.items():
            uv, z = _views(verts, n, res)
            if backend == "cpu_numpy":
                fn = partial(M.rasterize_cpu, uv, z, faces, res, engine="numpy")
            else:
                fn = partial(M.render_masks, uv, z, faces, res, backend)
            first = fn()  # warm-up (JIT)
            out[f"masks_{res}_{backend}_per_s_core"] = round(n / best_time(fn))
            if backend == "cpu":
                out[f"masks_{res}_coverage"] = round(float(first.mean()), 3)
    out["masks_auto_backend"] = "cpu (numba)" if M.HAVE_NUMBA else "cpu (numpy)"
    return out


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:<48} {v}")

"""Figures: loss curve from the CSV log; predicted vs ground-truth meshes over their heatmaps."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from cameras.plotting import save_figure  # noqa: E402


def loss_curve(log_csv: str | Path, png: str | Path) -> Path:
    """Plot the logged loss terms and learning rate against the step."""
    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{log_csv}: empty training log")
    step = np.array([float(r["step"]) for r in rows])
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(7, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for key, style in (
        ("total", "k-"),
        ("vertices", "C0-"),
        ("joints3d", "C1-"),
        ("joints2d", "C2-"),
    ):
        if key in rows[0]:
            ax.plot(
                step,
                [float(r[key]) for r in rows],
                style,
                lw=1.5 if key == "total" else 1,
                label=key,
            )
    ax.set_yscale("log")
    ax.set_ylabel("loss (L1; m for 3D, crop units for 2D)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title("training loss")
    ax_lr.plot(step, [float(r["lr"]) for r in rows], "C3-")
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    return save_figure(fig, png)


def fit_weak_perspective(j3d: np.ndarray, j2d: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Least-squares (s, tx, ty) with s * X[:, :2] + t ~ x over visible joints."""
    w = vis.astype(bool)
    if w.sum() < 2:
        w = np.ones_like(w)
    x3, x2 = j3d[w, :2], j2d[w]
    a = np.zeros((2 * len(x3), 3))
    a[0::2, 0], a[0::2, 1] = x3[:, 0], 1
    a[1::2, 0], a[1::2, 2] = x3[:, 1], 1
    return np.linalg.lstsq(a, x2.reshape(-1), rcond=None)[0]


def draw_mesh(ax, verts2d: np.ndarray, depth: np.ndarray, faces: np.ndarray, color) -> None:
    """Painter's-algorithm flat-shaded mesh on ``ax`` (image y down)."""
    tri = verts2d[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    facing = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    shade = 0.45 + 0.55 * np.clip(np.abs(facing) / (np.abs(facing).max() + 1e-12), 0, 1) ** 0.3
    order = np.argsort(-depth[faces].mean(1))
    base = np.asarray(matplotlib.colors.to_rgb(color))
    cols = np.concatenate([base[None] * shade[order, None], np.full((len(order), 1), 0.55)], 1)
    ax.add_collection(PolyCollection(tri[order], facecolors=cols, edgecolors="none"))


def predictions_figure(samples: list[dict], faces: np.ndarray, png: str | Path) -> Path:
    """Columns = samples; rows = predicted mesh / ground-truth mesh over the input heatmaps.

    Each sample dict holds ``heatmaps`` (K,R,R), ``pred_vertices`` and ``gt_vertices``
    (pelvis-centred, metres), ``pred_cam`` (s,tx,ty), ``gt_joints3d`` (pelvis-centred) and
    ``joints2d`` (17,3). The ground truth is drawn with the weak-perspective camera fitted to
    its own joints (the crop's true camera is perspective), the prediction with its own camera.
    """
    n = len(samples)
    fig, axes = plt.subplots(2, n, figsize=(2.3 * n, 5.0), squeeze=False)
    for i, s in enumerate(samples):
        bg = s["heatmaps"].max(0)
        gt_cam = fit_weak_perspective(s["gt_joints3d"], s["joints2d"][:, :2], s["joints2d"][:, 2])
        for row, (key, cam, color, title) in enumerate(
            (
                ("pred_vertices", s["pred_cam"], "tab:orange", "predicted"),
                ("gt_vertices", gt_cam, "tab:cyan", "ground truth"),
            )
        ):
            ax = axes[row, i]
            ax.imshow(bg, cmap="gray", extent=(-1, 1, 1, -1), vmin=0, vmax=1)
            v = s[key]
            v2 = cam[0] * v[:, :2] + cam[1:]
            draw_mesh(ax, v2, v[:, 2], faces, color)
            ax.set_xlim(-1, 1)
            ax.set_ylim(1, -1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(title, fontsize=11)
            if row == 0 and "title" in s:
                ax.set_title(s["title"], fontsize=8)
    fig.suptitle("meshes over their input heatmaps (val split)", fontsize=11)
    return save_figure(fig, png)

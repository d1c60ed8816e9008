"""Top-down drawing of a rig in the style of the MPT supplementary's Figure 1: real cameras in
black, interpolated ones in green, the subject at the volume centre, viewing directions and
horizontal fields of view. matplotlib is imported lazily (headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plotting import save_figure
from .rig import Rig

REAL_COLOUR = "black"
INTERP_COLOUR = "#1a9641"


def _camera_glyph(ax, pos: np.ndarray, fwd: np.ndarray, right: np.ndarray, colour: str) -> None:
    """A small camera body (rectangle) with a lens trapezoid pointing along ``fwd`` (2D)."""
    from matplotlib.patches import Polygon

    L, W = 0.42, 0.30  # body length and width, metres
    back = pos - fwd * L * 0.5
    front = pos + fwd * L * 0.5
    body = [
        back - right * W / 2,
        back + right * W / 2,
        front + right * W / 2,
        front - right * W / 2,
    ]
    lens = [
        front - right * W * 0.25,
        front + right * W * 0.25,
        front + fwd * 0.18 + right * W * 0.4,
        front + fwd * 0.18 - right * W * 0.4,
    ]
    ax.add_patch(Polygon(body, closed=True, fc=colour, ec=colour, zorder=4))
    ax.add_patch(Polygon(lens, closed=True, fc=colour, ec=colour, zorder=4))


def _subject(ax, centre: np.ndarray) -> None:
    """Top-down silhouette of a standing person (shoulders ellipse, head disc) at ``centre``."""
    from matplotlib.patches import Circle, Ellipse

    x, y = centre[:2]
    ax.add_patch(Ellipse((x, y), 0.48, 0.24, fc="#c9a27e", ec="#6b4f36", lw=1.2, zorder=5))
    ax.add_patch(Circle((x, y), 0.11, fc="#e8c39e", ec="#6b4f36", lw=1.2, zorder=6))
    ax.annotate(
        "subject",
        (x, y),
        xytext=(0, -22),
        textcoords="offset points",
        ha="center",
        fontsize=8,
        color="#6b4f36",
        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8),
        zorder=8,
    )


def plot_rig(rig: Rig, out: Path | str | None = None, title: str | None = None):
    """Draw ``rig`` seen from above (world x right, y up); save a PNG to ``out`` if given.

    Returns the matplotlib figure.
    """
    import matplotlib

    if out is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon

    centre = rig.centre
    fig, ax = plt.subplots(figsize=(7.5, 7.5), dpi=150)
    radius = max(np.linalg.norm((c.centre - centre)[:2]) for c in rig)
    lim = radius + 1.8
    for cam in rig:
        colour = INTERP_COLOUR if cam.interpolated else REAL_COLOUR
        pos = cam.centre[:2]
        fwd = cam.forward[:2] / np.linalg.norm(cam.forward[:2])
        right = cam.R[0, :2] / np.linalg.norm(cam.R[0, :2])
        dist = np.linalg.norm(centre[:2] - pos)
        # horizontal field of view as a short wedge in front of the camera
        half = np.arctan2(cam.width / 2, cam.K[0, 0])
        edges = [pos + (np.cos(half) * fwd + sgn * np.sin(half) * right) * 1.3 for sgn in (-1, 1)]
        ax.add_patch(
            Polygon([pos, *edges], closed=True, fc=colour, ec=colour, lw=0.6, alpha=0.12, zorder=1)
        )
        ax.annotate(
            "",
            xy=pos + fwd * (dist - 0.75),
            xytext=pos + fwd * 0.3,
            arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.2, ls="--", alpha=0.75),
            zorder=3,
        )
        _camera_glyph(ax, pos, fwd, right, colour)
        out_dir = (pos - centre[:2]) / dist
        label_at = pos + out_dir * 0.45
        ax.text(
            *label_at,
            f"{cam.name}\n{cam.id.split('@')[0] if not cam.interpolated else ''}".strip(),
            ha="left" if out_dir[0] > 0.5 else "right" if out_dir[0] < -0.5 else "center",
            va="bottom" if out_dir[1] > 0.5 else "top" if out_dir[1] < -0.5 else "center",
            fontsize=8,
            color=colour,
            zorder=6,
        )
    _subject(ax, centre)
    ax.plot(*centre[:2], "+", color="#b2182b", ms=10, mew=1.5, zorder=7)
    ax.set_xlim(centre[0] - lim, centre[0] + lim)
    ax.set_ylim(centre[1] - lim, centre[1] + lim)
    ax.set_aspect("equal")
    ax.grid(True, color="#dddddd", lw=0.6)
    ax.set_xlabel("world x (m)")
    ax.set_ylabel("world y (m)")
    n_real = int((~rig.interpolated).sum())
    n_interp = len(rig) - n_real
    ax.set_title(
        title or f"Virtual cameras, top-down view ({n_real} real + {n_interp} interpolated)"
    )
    handles = [
        Line2D([], [], marker="s", ls="", color=REAL_COLOUR, label="Human3.6M S1 camera"),
        Line2D([], [], marker="s", ls="", color=INTERP_COLOUR, label="interpolated camera"),
        Line2D([], [], marker="+", ls="", color="#b2182b", mew=1.5, label="volume centre"),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    if out is not None:
        save_figure(fig, out, dpi="figure", layout=False)
    return fig

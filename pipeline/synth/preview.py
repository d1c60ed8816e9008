"""Preview montage of generated bodies: motions x frames x shapes, front and side views.

Rendering is matplotlib only: faces are projected orthographically, sorted back to front
and filled with Lambert shading from a fixed light direction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cameras.plotting import save_figure

# rotation taking the body model's y-up rest frame to the z-up world (as AMASS roots do)
_Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def draw_mesh(
    ax,
    vertices: np.ndarray,
    faces: np.ndarray,
    azimuth_deg: float = 0.0,
    color=(0.62, 0.72, 0.86),
    light=(0.4, -0.8, 0.6),
) -> None:
    """Draw a z-up world mesh on ``ax`` seen horizontally from azimuth ``azimuth_deg``.

    Azimuth 0 looks along +y (the camera stands at -y); 90 looks along -x.
    """
    from matplotlib.collections import PolyCollection

    a = np.deg2rad(azimuth_deg)
    right = np.array([np.cos(a), np.sin(a), 0.0])
    fwd = np.array([-np.sin(a), np.cos(a), 0.0])  # viewing direction
    up = np.array([0.0, 0.0, 1.0])
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    visible = n @ fwd < 0
    tri, n = tri[visible], n[visible]
    depth = tri.mean(axis=1) @ fwd
    order = np.argsort(-depth)
    tri, n = tri[order], n[order]
    L = np.asarray(light, float)
    L = L[0] * right + L[1] * fwd + L[2] * up
    L /= np.linalg.norm(L)
    shade = 0.25 + 0.75 * np.clip(n @ L, 0.0, 1.0)
    rgb = np.clip(np.asarray(color)[None, :] * shade[:, None] + 0.08 * shade[:, None] ** 8, 0, 1)
    xy = np.stack([tri @ right, tri @ up], axis=-1)
    ax.add_collection(PolyCollection(xy, facecolors=rgb, edgecolors="none", antialiased=False))


def montage(
    panels: list[list[tuple[np.ndarray, np.ndarray, float, str]]],
    out: Path,
    row_labels: list[str] | None = None,
) -> Path:
    """Save a grid of mesh panels; ``panels[r][c] = (vertices_zup, faces, azimuth, title)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 3.4 * rows), squeeze=False)
    for r, row in enumerate(panels):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_axis_off()
            if c >= len(row):
                continue
            v, f, az, title = row[c]
            draw_mesh(ax, v, f, az)
            a = np.deg2rad(az)
            h = v @ np.array([np.cos(a), np.sin(a), 0.0])
            cx, cz = 0.5 * (h.min() + h.max()), v[:, 2].min()
            ax.set_xlim(cx - 0.75, cx + 0.75)
            ax.set_ylim(cz - 0.1, cz + 2.1)
            ax.set_aspect("equal")
            ax.axhline(cz, color="0.6", lw=0.6)
            ax.set_title(title, fontsize=7)
        if row_labels:
            axes[r][0].text(
                -0.05,
                0.5,
                row_labels[r],
                transform=axes[r][0].transAxes,
                rotation=90,
                va="center",
                ha="right",
                fontsize=8,
            )
    return save_figure(fig, out)


def _fallback_sequences(n: int = 60) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """A simple walk and arm-raise in AMASS layout (used when no archive is present)."""
    t = np.linspace(0, 2 * np.pi, n)
    out = []
    for name, kind in (("walk", 0), ("raise arms", 1)):
        P = np.zeros((n, 156))
        P[:, 0] = np.pi / 2  # y-up rest frame -> z-up world
        if kind == 0:
            P[:, 3 * 1] = -0.5 * np.sin(t)
            P[:, 3 * 2] = 0.5 * np.sin(t)
            P[:, 3 * 4] = 0.6 * np.maximum(np.sin(t), 0)
            P[:, 3 * 5] = 0.6 * np.maximum(-np.sin(t), 0)
            P[:, 3 * 16 + 2], P[:, 3 * 17 + 2] = -1.2, 1.2  # arms down
            P[:, 3 * 16 + 1] = 0.4 * np.sin(t)  # and swinging
            P[:, 3 * 17 + 1] = 0.4 * np.sin(t)
        else:
            P[:, 3 * 16 + 2] = 1.2 * np.sin(t / 2)
            P[:, 3 * 17 + 2] = -1.2 * np.sin(t / 2)
            P[:, 3 * 18 + 1] = -0.8 * np.sin(t / 2)
        out.append((name, P, np.zeros((n, 3))))
    return out


def _front_azimuth(root_orient: np.ndarray) -> float:
    """Azimuth (degrees, as in :func:`draw_mesh`) that sees the body's front: the rest
    frame faces +z, the root rotation turns that into the world facing direction."""
    from scipy.spatial.transform import Rotation

    fx, fy, _ = Rotation.from_rotvec(root_orient).apply([0.0, 0.0, 1.0])
    return float(np.degrees(np.arctan2(fx, -fy)))


def write_preview(root: Path, png: Path, seed: int = 0, max_motions: int = 4) -> Path:
    """Montage of the generated bodies under ``root`` (body_models/, amass/).

    One row per motion (4 frames front, 2 side; each row its own gender and betas) and a
    last row of shape variations (betas at +/-2.5) in the rest pose.
    """
    from pipeline.body_models import load_body_model

    root = Path(root)
    bm_root = root / "body_models"
    seqs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]] = []
    amass = root / "amass"
    if amass.is_dir():
        from pipeline.amass import load_sequence

        files = sorted(amass.rglob("*_poses.npz")) + sorted(amass.rglob("*_stageii.npz"))
        rng = np.random.default_rng(seed)
        pick = rng.permutation(len(files))[:max_motions]
        for i in sorted(pick):
            s = load_sequence(files[i], amass)
            seqs.append((Path(s.path).stem, s.poses, s.trans, s.betas, s.gender))
    if not seqs:
        genders = ("male", "female")
        seqs = [
            (n, p, tr, np.zeros(16), genders[k % 2])
            for k, (n, p, tr) in enumerate(_fallback_sequences())
        ]
    panels, labels = [], []
    for name, poses, trans, betas, gender in seqs:
        model = load_body_model(bm_root, "smplh", gender)
        idx = np.linspace(0, len(poses) - 1, 4).round().astype(int)
        out = model.forward(poses[idx], betas, trans[idx] - trans[idx[:1]] * [1, 1, 0])
        az = _front_azimuth(poses[idx[0], :3])
        row = [(out.vertices[k], model.faces, az, f"frame {f}") for k, f in enumerate(idx)]
        row += [(out.vertices[k], model.faces, az + 90, f"frame {idx[k]} side") for k in (1, 3)]
        panels.append(row)
        labels.append(f"{name} ({gender})")
    model = load_body_model(bm_root, "smplh", "neutral")
    rest = np.zeros((1, 156))
    rest[0, 0] = np.pi / 2
    rest[0, 3 * 16 + 2], rest[0, 3 * 17 + 2] = -1.1, 1.1  # arms down a bit (A-pose)
    row = []
    for b, val in ((0, 2.5), (0, -2.5), (1, 2.5), (2, 2.5), (3, -2.5), (5, 2.5)):
        betas = np.zeros(16)
        betas[b] = val
        v = model.forward(rest, betas).vertices[0]
        row.append((v, model.faces, 0.0 if b != 5 else 90.0, f"beta{b + 1}={val:+}"))
    panels.append(row)
    labels.append("shapes (neutral)")
    return montage(panels, png, labels)

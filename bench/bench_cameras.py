"""Camera geometry throughput: placement, projection (meshes x views x vertices) and crops."""

from __future__ import annotations

import numpy as np
from timing import best_time

from cameras import (
    apply_affine,
    apply_transform,
    crop_affine,
    crop_box,
    make_rig,
    placement_transform,
)

MESHES, VERTS, VIEWS = 64, 6890, 8


def run() -> dict:
    rng = np.random.default_rng(0)
    verts = rng.uniform(-1, 1, (MESHES, VERTS, 3)) * [0.3, 0.15, 0.9] + [0, 0, 0.9]
    rig = make_rig(VIEWS)
    T = placement_transform(verts, rng, jitter=0.2)
    placed = apply_transform(T, verts)
    proj = rig.project(placed)
    box = crop_box(proj.uv, proj.visible)
    n_points = MESHES * VIEWS * VERTS
    t_place = best_time(lambda: apply_transform(placement_transform(verts, rng, 0.2), verts))
    t_dist = best_time(lambda: rig.project(placed, distort=True))
    t_lin = best_time(lambda: rig.project(placed, distort=False))
    t_crop = best_time(
        lambda: apply_affine(crop_affine(crop_box(proj.uv, proj.visible), 56), proj.uv)
    )
    return {
        "batch": f"{MESHES} meshes x {VIEWS} views x {VERTS} vertices",
        "placement_meshes_per_s": round(MESHES / t_place),
        "project_distorted_Mpoints_per_s": round(n_points / t_dist / 1e6, 2),
        "project_pinhole_Mpoints_per_s": round(n_points / t_lin / 1e6, 2),
        "crop_box_affine_Mpoints_per_s": round(n_points / t_crop / 1e6, 2),
        "visible_fraction": round(float(proj.visible.mean()), 4),
        "median_box_side_px": round(float(np.median(box[..., 2])), 1),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:<40} {v}")

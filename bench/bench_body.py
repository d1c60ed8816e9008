"""Body models: copying the shipped SMPL+H models, posing them, coarse mesh levels."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from timing import best_time

from pipeline.body_models import load_body_model
from pipeline.joints import KeypointRegressor
from pipeline.mesh_sampling import build_mesh_levels
from pipeline.synth import write_bodies


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_body_") as tmp:
        t0 = time.perf_counter()
        write_bodies(Path(tmp))
        t_gen = time.perf_counter() - t0
        root = Path(tmp) / "body_models"
        t0 = time.perf_counter()
        bm = load_body_model(root, "smplh", "male")
        t_load = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        n = 512
        poses, betas = rng.normal(0, 0.3, (n, 156)), rng.normal(0, 1, (n, 16))
        t_fwd = best_time(lambda: bm.forward(poses, betas, chunk=256), repeat=2)
        out = bm.forward(poses[:256], betas[:256])
        reg = KeypointRegressor.from_body_models(root, "smplh", bm.num_vertices)
        t_reg = best_time(lambda: (reg.coco17(out.vertices), reg.h36m17(out.vertices)))
        template, faces = bm.v_template, bm.faces
        t_lvl = best_time(lambda: build_mesh_levels(template, faces), repeat=1)
        sizes = build_mesh_levels(template, faces).sizes
    return {
        "vertices": int(bm.num_vertices),
        "copy_3_genders_s": round(t_gen, 2),
        "load_model_s": round(t_load, 2),
        "forward_meshes_per_s": round(n / t_fwd, 1),
        "keypoints_meshes_per_s": round(256 / t_reg, 1),
        "mesh_levels": "->".join(map(str, sizes)),
        "mesh_levels_s": round(t_lvl, 2),
    }


if __name__ == "__main__":
    print(run())

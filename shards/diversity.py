"""Batch diversity: how far apart the poses inside a training batch are, against uniform draws.

A reader that keeps consecutive meshes of a motion together (for fast reads) can hand the
trainer batches of one second of one motion. ``batch_diversity`` measures that: the mean
pairwise pose distance inside the batches a stream yields, over the same figure for batches
of the same size drawn uniformly from all the samples those batches hold (an epoch holds the
whole split). 1.0 is as diverse as uniform draws; a batch of one mesh is 0.

Poses are the meshes' H36M-17 joints (``joints3d/h36m17``, looked up by ``sample_id`` with
``split_poses``), pelvis-centred and turned about the world's up axis (z) so that the hips
line up with +x: articulation, not where the body faces (the views of one mesh are one pose).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from shards.manifest import load_manifest


def mean_pairwise_distance(joints: np.ndarray) -> float:
    """Mean over sample pairs of the mean per-joint distance between pelvis-centred poses.

    ``joints``: (B, J, 3), joint 0 the pelvis (H36M-17 order), in the frame the model sees.
    """
    j = np.asarray(joints, np.float64)
    j = j - j[:, :1]
    b = len(j)
    if b < 2:
        raise ValueError("pose distance needs at least 2 samples")
    d = np.linalg.norm(j[:, None] - j[None], axis=-1).mean(-1)  # (B, B)
    return float(d[np.triu_indices(b, 1)].mean())


def batch_diversity(batches: Iterable[np.ndarray], seed: int = 0) -> dict[str, float]:
    """Diversity of ``batches`` (each (B, J, 3) joints) against uniform batches of equal size.

    The uniform reference draws as many batches of the same sizes, without replacement inside
    a batch, from the pool of every sample in ``batches``.
    """
    batches = [np.asarray(b) for b in batches if len(b) >= 2]
    if not batches:
        raise ValueError("batch diversity needs at least one batch of 2 or more samples")
    pool = np.concatenate(batches)
    rng = np.random.default_rng(seed)
    inside = np.mean([mean_pairwise_distance(b) for b in batches])
    uniform = np.mean(
        [
            mean_pairwise_distance(pool[rng.choice(len(pool), len(b), replace=False)])
            for b in batches
        ]
    )
    return {"batch": float(inside), "uniform": float(uniform), "ratio": float(inside / uniform)}


def canonical_poses(joints: np.ndarray) -> np.ndarray:
    """(N, 17, 3) z-up H36M-17 joints -> pelvis at the origin, R_Hip -> L_Hip along +x."""
    j = np.asarray(joints, np.float64)
    j = j - j[:, :1]
    hip = j[:, 4] - j[:, 1]  # L_Hip - R_Hip
    a = -np.arctan2(hip[:, 1], hip[:, 0])
    c, s = np.cos(a), np.sin(a)
    rot = np.zeros((len(j), 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    return np.einsum("nij,nkj->nki", rot, j)


def split_poses(root: str | Path, split: str) -> dict[int, np.ndarray]:
    """``sample_id -> (17, 3)`` canonical poses (``canonical_poses``) of the meshes of ``split``."""
    root = Path(root)
    out: dict[int, np.ndarray] = {}
    for info in load_manifest(root).split_shards(split):
        with h5py.File(root / info.name, "r") as f:
            ids = f["sample_id"][:]
            joints = f["joints3d/h36m17"][:]
        out.update(zip(ids.tolist(), canonical_poses(joints)))
    return out


def stream_diversity(batch_ids: Iterable[np.ndarray], poses: dict[int, np.ndarray]) -> dict:
    """``batch_diversity`` of batches given as sample ids (e.g. ``batch["sample_id"]``)."""
    return batch_diversity([np.stack([poses[int(i)] for i in ids]) for ids in batch_ids])

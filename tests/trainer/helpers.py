"""Small synthetic mesh topology for trainer unit tests (no shards needed)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from trainer.model import MeshLevels


def toy_levels(nv: int = 96, sizes: tuple[int, ...] = (24, 6), seed: int = 0) -> MeshLevels:
    """Random template with averaging D (rows sum to 1) and nearest-parent U matrices."""
    rng = np.random.default_rng(seed)
    template = rng.normal(size=(nv, 3)).astype(np.float32) * 0.3
    down, up, n = [], [], nv
    for m in sizes:
        groups = np.arange(n) % m
        d = sp.csr_matrix(
            (np.ones(n) / np.bincount(groups)[groups], (groups, np.arange(n))), (m, n)
        )
        u = sp.csr_matrix((np.ones(n), (np.arange(n), groups)), (n, m))
        down.append(d)
        up.append(u)
        n = m
    reg = rng.random((17, nv)).astype(np.float32)
    reg /= reg.sum(1, keepdims=True)
    faces = rng.integers(0, nv, size=(50, 3))
    return MeshLevels(template, faces, reg, down, up)

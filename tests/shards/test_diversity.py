import itertools

import numpy as np
import pytest

from shards.diversity import batch_diversity, mean_pairwise_distance, split_poses, stream_diversity
from shards.reader import ShardDataset
from shards.testing import make_fake_dataset


def test_mean_pairwise_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    j = rng.normal(size=(7, 17, 3))
    ref = []
    for a, b in itertools.combinations(range(7), 2):
        pa, pb = j[a] - j[a, 0], j[b] - j[b, 0]
        ref.append(np.mean([np.linalg.norm(pa[k] - pb[k]) for k in range(17)]))
    assert mean_pairwise_distance(j) == pytest.approx(np.mean(ref), rel=1e-12)
    # translation does not count: poses are pelvis-centred
    assert mean_pairwise_distance(j + rng.normal(size=(7, 1, 3))) == pytest.approx(np.mean(ref))
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_distance(j[:1])


def test_uniform_reference_and_extremes():
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(400, 17, 3))
    same = [np.repeat(pool[i : i + 1], 16, 0) for i in range(25)]  # one pose per batch
    d = batch_diversity(same)
    assert d["batch"] == 0.0 and d["uniform"] > 0 and d["ratio"] == 0.0
    mixed = [pool[i::25] for i in range(25)]  # batches already uniform-like
    assert batch_diversity(mixed)["ratio"] == pytest.approx(1.0, abs=0.05)


@pytest.fixture(scope="module")
def motion_ds(tmp_path_factory):
    """Shards whose consecutive meshes come from 64-frame 'motions', as a build writes them."""
    root = tmp_path_factory.mktemp("motion_ds")
    return make_fake_dataset(root, n_meshes=768, views=8, res=16, nv=40, shards=3, motion=64)


def epoch_diversity(root, batch_size=16, **kw) -> float:
    kw.setdefault("with_vertices", False)
    ds = ShardDataset(root, "train", views="all", batch_size=batch_size, drop_last=True, **kw)
    return stream_diversity([b["sample_id"].numpy() for b in ds], split_poses(root, "train"))[
        "ratio"
    ]


def test_reader_blocks_and_buffer_set_batch_diversity(motion_ds):
    contiguous = epoch_diversity(motion_ds, shuffle=False)
    old = epoch_diversity(motion_ds, block=64, shuffle_buffer=1024)  # the former defaults
    new = epoch_diversity(motion_ds)  # reader defaults
    assert contiguous < 0.2
    assert old < 0.8
    assert new > 0.95

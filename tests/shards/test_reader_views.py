"""The random view policy: one view per mesh per epoch, drawn from the listed views, the same
whatever the rank/worker split, and resumable exactly mid-epoch."""

from collections import Counter

import h5py
import numpy as np
import pytest

from shards.manifest import load_manifest
from shards.reader import ShardDataset, loader

POOL = [0, 1, 3]  # not contiguous: a slot/index mix-up shows as view 2


def _pairs(batches) -> list[tuple[int, int]]:
    out = []
    for b in batches:
        out += list(zip(b["sample_id"].tolist(), b["view"].tolist()))
    return out


def _cameras(root, split="train") -> dict[int, np.ndarray]:
    """sample id -> camera index of each view slot, read straight from the shards."""
    out = {}
    for s in load_manifest(root).split_shards(split):
        with h5py.File(root / s.name) as f:
            for sid, cams in zip(f["sample_id"][()], f["views/camera"][()]):
                out[int(sid)] = cams
    return out


def _epoch(root, world, streams, epoch=0, consumed=0, **kw) -> list[tuple[int, int]]:
    """Every (rank, stream) of one epoch; ``streams`` DataLoader workers per rank (0 = the
    main process: one stream)."""
    got = []
    for rank in range(world):
        ds = ShardDataset(root, rank=rank, world_size=world, with_vertices=False, **kw)
        ds.set_epoch(epoch, consumed)
        n = max(1, streams)
        for w in range(n):
            got += _pairs(ds.iter_stream(w, n))
    return got


KW = dict(views=POOL, view_choice="random", batch_size=5, seed=7, shuffle_buffer=16, block=8)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("streams", [0, 1, 2])
def test_each_mesh_once_with_a_listed_view_for_any_split(fake_ds, world, streams):
    cams = _cameras(fake_ds)
    got = _epoch(fake_ds, world, streams, **KW)
    assert Counter(s for s, _ in got) == Counter(list(cams)), "a mesh missing or seen twice"
    for sid, view in got:
        assert view in cams[sid][POOL], f"mesh {sid}: view {view} not among slots {POOL}"
    # the draw belongs to the epoch, not to the split: every split sees the same pairs
    assert sorted(got) == sorted(_epoch(fake_ds, 1, 0, **KW))


def test_views_spread_change_per_epoch_and_follow_the_seed(fake_ds):
    cams = _cameras(fake_ds)
    slot = {sid: {int(c): k for k, c in enumerate(cs)} for sid, cs in cams.items()}

    def draws(epoch, seed=7):
        got = _epoch(fake_ds, 1, 0, epoch=epoch, **(KW | {"seed": seed}))
        return dict((s, slot[s][v]) for s, v in got)

    a = draws(0)
    assert Counter(a.values()).keys() == set(POOL), "some listed view never drawn"
    assert a == draws(0)
    assert a != draws(1) and a != draws(0, seed=8)
    assert len(ShardDataset(fake_ds, **KW)) == len(cams)  # one sample per mesh per epoch


def test_random_among_all_equals_the_old_random_policy(fake_ds):
    """``views="random"`` (the reader's old policy) is ``view_choice="random"`` over all."""
    kw = {k: v for k, v in KW.items() if k != "views"}
    old = _epoch(fake_ds, 2, 1, epoch=3, **(kw | {"view_choice": "each", "views": "random"}))
    assert old == _epoch(fake_ds, 2, 1, epoch=3, **(kw | {"views": "all"}))
    assert old == _epoch(fake_ds, 2, 1, epoch=3, **(kw | {"views": [0, 1, 2, 3]}))


@pytest.mark.parametrize("world,streams", [(1, 0), (2, 2), (3, 1)])
def test_resume_mid_epoch_sees_exactly_the_rest(fake_ds, world, streams):
    full = _epoch(fake_ds, world, streams, epoch=2, **KW)
    n, bs = max(1, streams), KW["batch_size"]
    seen = []
    for rank in range(world):  # 3 loader steps per rank, batches round-robin over workers
        ds = ShardDataset(fake_ds, rank=rank, world_size=world, with_vertices=False, **KW)
        ds.set_epoch(2)
        its = [ds.iter_stream(w, n) for w in range(n)]
        for k in range(3):
            seen += _pairs([next(its[k % n])])
    assert len(seen) == 3 * bs * world
    rest = _epoch(fake_ds, world, streams, epoch=2, consumed=len(seen), **KW)
    assert len(seen) + len(rest) == len(full)
    assert sorted(seen + rest) == sorted(full)


def test_resume_through_real_dataloader_workers(fake_ds):
    kw = dict(KW, batch_size=6, num_workers=2, drop_last=False, with_vertices=False)
    full = _pairs(loader(fake_ds, **kw))
    seen = []
    for i, b in enumerate(loader(fake_ds, **kw)):
        seen += _pairs([b])
        if i == 3:
            break
    dl = loader(fake_ds, **kw)
    dl.dataset.set_epoch(0, consumed=len(seen))
    rest = _pairs(dl)
    assert sorted(seen + rest) == sorted(full)
    assert len(full) == len({s for s, _ in full}) == len(_cameras(fake_ds))


def test_bad_view_choice_is_named(fake_ds):
    with pytest.raises(ValueError, match="view_choice must be 'each' or 'random'"):
        ShardDataset(fake_ds, views="all", view_choice="one")
    with pytest.raises(ValueError, match=r"view slots \[0, 4\] out of range for V=4"):
        ShardDataset(fake_ds, views=[0, 4], view_choice="random")

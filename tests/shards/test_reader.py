"""Streaming reader: tensor contract, geometry against an independent projection, exactly-once
coverage for many world sizes / worker counts, per-epoch shuffling and resume."""

from collections import Counter

import h5py
import numpy as np
import pytest
import torch

from shards.manifest import load_manifest
from shards.reader import ShardDataset, ShardError, loader, rr_consumption
from shards.schema import GENDERS
from shards.testing import apply_affine, project
from shards.topology import load_topology


def _pairs(batches):
    out = []
    for b in batches:
        out += list(zip(b["sample_id"].tolist(), b["view"].tolist()))
    return out


def _expected(root, split, views):
    man = load_manifest(root)
    pairs = []
    for s in man.split_shards(split):
        with h5py.File(root / s.name) as f:
            ids, cams = f["sample_id"][()], f["views/camera"][()]
        for i, sid in enumerate(ids):
            sel = range(cams.shape[1]) if views == "all" else views
            pairs += [(int(sid), int(cams[i, v])) for v in sel]
    return pairs


def _lbs_reference(body, r):
    """Posed vertices (with translation) from smplx.lbs in float64, for one stored mesh."""
    from smplx.lbs import lbs

    a = body[GENDERS[int(r["body/gender"])]]
    t = {k: torch.from_numpy(np.asarray(a[k], np.float64)) for k in a if k != "parents"}
    par = torch.from_numpy(np.asarray(a["parents"], np.int64))
    pose = torch.from_numpy(r["body/pose"].astype(np.float64))[None]
    betas = torch.from_numpy(r["body/betas"].astype(np.float64))[None]
    v, _ = lbs(betas, pose, t["v_template"][None], t["shapedirs"], t["posedirs"],
               t["J_regressor"], par, t["weights"])  # fmt: skip
    return v[0].numpy() + r["body/trans"].astype(np.float64)


def _stream(ds, worker, nworkers):
    return ds.iter_stream(worker, nworkers)


def test_contract_shapes_and_dtypes(fake_ds):
    b = next(iter(ShardDataset(fake_ds, batch_size=8, views="all")))
    assert b["heatmaps"].shape == (8, 17, 32, 32) and b["heatmaps"].dtype == torch.float32
    assert b["masks"].shape == (8, 1, 32, 32) and set(b["masks"].unique().tolist()) <= {0.0, 1.0}
    assert b["vertices"].shape == (8, 60, 3)
    for k in ("joints3d", "joints2d", "kp2d"):
        assert b[k].shape == (8, 17, 3) and b[k].dtype == torch.float32
    assert b["sample_id"].dtype == torch.int64 and b["view"].dtype == torch.int64
    one = next(iter(ShardDataset(fake_ds, views="random")))
    assert one["heatmaps"].shape == (17, 32, 32) and one["sample_id"].shape == ()


def test_geometry_matches_independent_projection(fake_ds):
    """Camera-frame joints projected with K/dist then cropped must equal joints2d/kp2d."""
    root = fake_ds
    man = load_manifest(root)
    raw = {}
    for s in man.split_shards("train"):
        with h5py.File(root / s.name) as f:
            for i, sid in enumerate(f["sample_id"][()]):
                raw[int(sid)] = {
                    k: f[k][i]
                    for k in (
                        "views/K",
                        "views/dist",
                        "views/crop",
                        "views/camera",
                        "joints3d/coco17",
                        "body/pose",
                        "body/betas",
                        "body/trans",
                        "body/gender",
                        "body/placement",
                        "views/R",
                        "views/t",
                        "views/masks",
                        "views/occluded",
                    )
                }
    body = load_topology(root).body
    ds = ShardDataset(root, batch_size=16, views="all", seed=5)
    n = 0
    for b in ds:
        for i in range(len(b["sample_id"])):
            r = raw[int(b["sample_id"][i])]
            v = int(np.flatnonzero(r["views/camera"] == int(b["view"][i]))[0])
            kk, dd, crop = r["views/K"][v], r["views/dist"][v], r["views/crop"][v]
            j3 = b["joints3d"][i].numpy().astype(np.float64)
            px = project(j3[None], kk[None].astype(np.float64), dd[None].astype(np.float64))[0]
            norm = 2 * (apply_affine(crop.astype(np.float64), px) + 0.5) / 224 - 1
            np.testing.assert_allclose(b["joints2d"][i, :, :2].numpy(), norm, atol=2e-4)
            # COCO joints: stored world joints -> camera frame with R, t (numpy reference)
            jc = r["joints3d/coco17"] @ r["views/R"][v].T + r["views/t"][v]
            px = project(
                jc[None].astype(np.float64),
                kk[None].astype(np.float64),
                dd[None].astype(np.float64),
            )[0]
            norm = 2 * (apply_affine(crop.astype(np.float64), px) + 0.5) / 224 - 1
            np.testing.assert_allclose(b["kp2d"][i, :, :2].numpy(), norm, atol=2e-4)
            # vertices: smplx's own LBS (float64) on the carried arrays, placed, to the camera
            vw = _lbs_reference(body, r) @ r["body/placement"][:3, :3].T.astype(np.float64)
            vw += r["body/placement"][:3, 3]
            vc = vw @ r["views/R"][v].T.astype(np.float64) + r["views/t"][v]
            np.testing.assert_allclose(b["vertices"][i].numpy(), vc, atol=1e-5)
            mask = np.unpackbits(r["views/masks"][v], count=32 * 32).reshape(1, 32, 32)
            np.testing.assert_array_equal(b["masks"][i].numpy(), mask)
            np.testing.assert_array_equal(b["occluded"][i].numpy(), r["views/occluded"][v] > 0)
            # heatmap peak sits at the keypoint, in heatmap pixels
            hm = b["heatmaps"][i].numpy()
            vis = b["kp2d"][i, :, 2].numpy() > 0
            peak = np.array(np.unravel_index(hm.reshape(17, -1).argmax(1), (32, 32)))[::-1].T
            want = (b["kp2d"][i, :, :2].numpy() + 1) / 2 * 32 - 0.5
            assert np.all(np.abs(peak - want)[vis] <= 0.51)
            n += 1
    assert n == len(_expected(root, "train", "all"))


@pytest.mark.parametrize("views", ["random", "all", [0, 2]])
# includes more workers than shards (4) and more streams than meshes (9 x 11 = 99 > 68)
@pytest.mark.parametrize("world,nworkers", [(1, 1), (2, 1), (3, 2), (2, 3), (4, 7), (9, 11)])
def test_exactly_once(fake_ds, views, world, nworkers):
    got = []
    for rank in range(world):
        ds = ShardDataset(
            fake_ds,
            views=views,
            batch_size=5,
            rank=rank,
            world_size=world,
            seed=11,
            shuffle_buffer=16,
            block=8,
            with_vertices=False,
        )
        for w in range(nworkers):
            got += _pairs(_stream(ds, w, nworkers))
    assert len(got) == len(set(got)), "a sample was yielded twice"
    if views == "random":
        ids = Counter(s for s, _ in got)
        assert sorted(ids) == sorted({s for s, _ in _expected(fake_ds, "train", "all")}) and set(
            ids.values()
        ) == {1}
    else:
        assert sorted(got) == sorted(_expected(fake_ds, "train", views))


def test_exactly_once_real_dataloader_workers(fake_ds):
    got = []
    for rank in range(2):
        dl = loader(fake_ds, batch_size=7, num_workers=2, views="all", rank=rank, world_size=2)
        got += _pairs(dl)
    assert sorted(got) == sorted(_expected(fake_ds, "train", "all"))
    val = _pairs(loader(fake_ds, "val", batch_size=4, views="all"))
    assert sorted(val) == sorted(_expected(fake_ds, "val", "all"))


def test_shuffle_differs_per_epoch_and_is_deterministic(fake_ds):
    def order(epoch, seed=0):
        ds = ShardDataset(fake_ds, views="random", batch_size=10, seed=seed)
        ds.set_epoch(epoch)
        return _pairs(ds)

    a, b = order(0), order(1)
    assert a == order(0)
    assert a != b and sorted(s for s, _ in a) == sorted(s for s, _ in b)
    assert a != order(0, seed=1)


def test_resume_covers_the_rest_exactly_once(fake_ds):
    world, nworkers, bs, steps = 2, 2, 6, 5
    seen = []
    for rank in range(world):
        ds = ShardDataset(fake_ds, views="all", batch_size=bs, rank=rank, world_size=world, seed=2)
        ds.set_epoch(3)
        its = [_stream(ds, w, nworkers) for w in range(nworkers)]
        for k in range(steps):  # DataLoader order: round-robin over workers
            seen += _pairs([next(its[k % nworkers])])
    consumed = steps * bs * world
    assert len(seen) == consumed
    rest = []
    for rank in range(world):
        ds = ShardDataset(fake_ds, views="all", batch_size=bs, rank=rank, world_size=world, seed=2)
        ds.set_epoch(3, consumed=consumed)
        for w in range(nworkers):
            rest += _pairs(_stream(ds, w, nworkers))
    allp = seen + rest
    assert len(allp) == len(set(allp))
    assert sorted(allp) == sorted(_expected(fake_ds, "train", "all"))


def test_rr_consumption_matches_round_robin_simulation():
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = rng.integers(0, 40, rng.integers(1, 5)).tolist()
        batch, consumed = int(rng.integers(1, 7)), int(rng.integers(0, 150))
        taken, left, rem = [0] * len(lengths), consumed, list(lengths)
        while left > 0 and any(rem):
            for w in range(len(lengths)):
                step = min(batch, rem[w], left)
                taken[w] += step
                rem[w] -= step
                left -= step
        assert rr_consumption(lengths, batch, consumed) == taken


def test_corrupt_shard_stops_with_file_name_or_is_skipped(fake_ds, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(fake_ds, root)
    bad = root / "shard-000001.h5"
    data = bytearray(bad.read_bytes())
    bad.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ShardError, match="shard-000001.h5"):
        list(ShardDataset(root, batch_size=8, views="all"))
    with pytest.warns(UserWarning, match="shard-000001.h5"):
        got = _pairs(ShardDataset(root, batch_size=8, views="all", skip_bad=True))
    n_bad = load_manifest(root).shards[1].meshes
    assert len(got) == len(set(got)) == len(_expected(fake_ds, "train", "all")) - n_bad * 4


@pytest.mark.parametrize("drop_last", [True, False])
def test_resume_with_real_dataloader_matches_uninterrupted_epoch(fake_ds, drop_last):
    kw = dict(batch_size=10, num_workers=2, views="all", seed=4, drop_last=drop_last)
    full = _pairs(loader(fake_ds, **kw))
    dl = loader(fake_ds, **kw)
    dl.dataset.set_epoch(0)
    seen = []
    for i, b in enumerate(dl):
        seen += _pairs([b])
        if i == 6:
            break
    dl2 = loader(fake_ds, **kw)
    dl2.dataset.set_epoch(0, consumed=len(seen))
    rest = _pairs(dl2)
    assert len(seen + rest) == len(set(seen + rest))
    assert sorted(seen + rest) == sorted(full)
    if not drop_last:
        assert sorted(full) == sorted(_expected(fake_ds, "train", "all"))


def test_bad_arguments_are_named(fake_ds):
    with pytest.raises(ValueError, match="no shards in split 'nope'"):
        ShardDataset(fake_ds, "nope")
    with pytest.raises(ValueError, match=r"view slots \[0, 4\] out of range for V=4"):
        ShardDataset(fake_ds, views=[0, 4])
    with pytest.raises(ValueError, match="views must be"):
        ShardDataset(fake_ds, views="some")


def test_uint8_heatmaps_option_matches_float(fake_ds):
    a = next(iter(ShardDataset(fake_ds, batch_size=6, views="all", shuffle=False)))
    b = next(
        iter(ShardDataset(fake_ds, batch_size=6, views="all", shuffle=False, uint8_heatmaps=True))
    )
    assert b["heatmaps"].dtype == torch.uint8
    torch.testing.assert_close(b["heatmaps"].float() / 255, a["heatmaps"])
    assert torch.equal(a["sample_id"], b["sample_id"]) and torch.equal(a["vertices"], b["vertices"])


def test_worker_batches_equal_in_process_batches(fake_ds):
    """loader() packs a worker's small tensors into two (pack_batch) and unpacks them in the
    main process: same keys, dtypes, shapes and values as the in-process stream."""
    kw = dict(batch_size=6, views="all", shuffle=False, uint8_heatmaps=True)
    a = list(loader(fake_ds, num_workers=0, **kw))
    b = list(loader(fake_ds, num_workers=1, **kw))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert sorted(x) == sorted(y) and "_packed" not in y
        for k in x:
            assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, k
            # vertices are skinned in each process (thread counts differ: float32 rounding)
            tol = 1e-5 if k == "vertices" else 0
            torch.testing.assert_close(x[k], y[k], rtol=0, atol=tol)


def test_loader_draws_its_seed_when_iterated_not_at_the_first_batch(fake_ds):
    """iter(loader) draws the DataLoader's seed from torch's RNG right away (as a plain
    DataLoader does), so the trainer can fence that draw and resume exactly; taking batches
    in process draws nothing."""
    dl = loader(fake_ds, batch_size=4, num_workers=0, views="all")
    torch.manual_seed(0)
    it = iter(dl)
    after_iter = torch.get_rng_state()
    next(it)
    assert torch.equal(after_iter, torch.get_rng_state())
    torch.manual_seed(0)
    iter(torch.utils.data.DataLoader(dl.dataset, batch_size=None))
    assert torch.equal(after_iter, torch.get_rng_state())

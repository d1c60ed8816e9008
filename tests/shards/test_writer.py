"""Writer / topology / manifest round trips against the arrays that went in."""

import json

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from shards.manifest import config_hash, load_manifest, manifest_identity, write_manifest
from shards.schema import FIELDS, N_JOINTS, SCHEMA_VERSION
from shards.testing import make_fake_arrays, make_rig
from shards.topology import Topology, load_topology, write_topology
from shards.writer import ShardWriter, file_checksum, write_shard


def _arrays(n=10, views=3, res=24, nv=40, masks=True, seed=0, start=0):
    rng = np.random.default_rng(seed)
    tmpl = rng.normal(size=(nv, 3)).astype(np.float32) * 0.3 + np.r_[0, 0, 0.9].astype(np.float32)
    regs = {k: np.full((N_JOINTS, nv), 1 / nv, np.float32) for k in ("coco17", "h36m17")}
    regs["coco17"] = rng.dirichlet(np.ones(nv), N_JOINTS).astype(np.float32)
    rig, _ = make_rig(4)
    ids = np.arange(start, start + n)
    return make_fake_arrays(ids, tmpl, regs, rig, views, res, masks, rng, store_vertices=True)


def test_shard_round_trip(tmp_path):
    arr = _arrays()
    info = write_shard(tmp_path / "shard-000000.h5", arr, split="val")
    path = tmp_path / "shard-000000.h5"
    assert [p.name for p in tmp_path.iterdir()] == ["shard-000000.h5"]  # no temp left
    assert info.meshes == 10 and (info.sample_id_first, info.sample_id_last) == (0, 9)
    assert info.bytes == path.stat().st_size and info.checksum == file_checksum(path)
    assert info.split == "val"
    with h5py.File(path) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION and f.attrs["meshes"] == 10
        assert (f.attrs["V"], f.attrs["R"], f.attrs["Nv"]) == (3, 24, 40)
        for spec in FIELDS:
            got = f[spec.name][()]
            want = arr[spec.name]
            if spec.name == "views/masks":
                got = np.unpackbits(got, axis=-1, count=24 * 24).reshape(want.shape).astype(bool)
            if spec.name == "source/path":
                got = got.astype(str)
            np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=spec.name)
        assert f["views/heatmaps"].chunks == (1, 1, 17, 24, 24)


def test_incremental_writer_and_abort(tmp_path):
    a, b = _arrays(n=5, seed=1), _arrays(n=7, seed=2, start=5)
    with ShardWriter(tmp_path / "s.h5", compression_kind="gzip") as w:
        w.append(a)
        w.append(b)
    assert w.info.meshes == 12
    with h5py.File(tmp_path / "s.h5") as f:
        np.testing.assert_array_equal(f["sample_id"][()], np.arange(12))
        np.testing.assert_array_equal(f["views/heatmaps"][5:], b["views/heatmaps"])
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "t.h5") as w:
            w.append(a)
            raise RuntimeError("boom")
    assert not any(p.name.startswith("t.h5") for p in tmp_path.iterdir())
    bad = dict(a)
    bad["views/heatmaps"] = bad["views/heatmaps"][:, :2]
    with ShardWriter(tmp_path / "u.h5") as w:
        w.append(a)
        with pytest.raises(ValueError, match="u.h5.*views/heatmaps"):
            w.append(bad)
        w.abort()


def test_topology_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    down = sp.random(10, 40, density=0.2, random_state=1, dtype=np.float32).tocsr()
    rig, names = make_rig(8)
    topo = Topology(
        template=rng.normal(size=(40, 3)).astype(np.float32),
        faces=rng.integers(0, 40, (70, 3)).astype(np.int32),
        joint_names={"h36m17": [f"j{i}" for i in range(17)]},
        regressors={"h36m17": rng.uniform(size=(17, 40)).astype(np.float32)},
        sampling={"down_0": down},
        rig=rig,
        rig_names=names,
    )
    write_topology(tmp_path, topo)
    got = load_topology(tmp_path)
    np.testing.assert_array_equal(got.template, topo.template)
    np.testing.assert_array_equal(got.faces, topo.faces)
    assert got.joint_names == topo.joint_names and got.rig_names == names
    np.testing.assert_array_equal(got.regressors["h36m17"], topo.regressors["h36m17"])
    np.testing.assert_array_equal(got.sampling["down_0"].toarray(), down.toarray())
    for k in rig:
        np.testing.assert_array_equal(got.rig[k], rig[k])


def test_manifest_round_trip_and_config_hash(tmp_path):
    infos = [
        write_shard(tmp_path / f"shard-00000{i}.h5", _arrays(n=4, start=4 * i)) for i in range(3)
    ]
    cfg = {"b": 1, "a": {"x": [1, 2]}}
    write_manifest(
        tmp_path,
        infos,
        dims={"V": 3, "R": 24},
        config=cfg,
        skipped=[{"input": "x.npz", "reason": "bad"}],
        splits={"shard-000002.h5": "val"},
    )
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    man = load_manifest(tmp_path)
    assert man.splits == {
        "train": ["shard-000000.h5", "shard-000001.h5"],
        "val": ["shard-000002.h5"],
    }
    assert man.meshes == 12 and man.skipped == [{"input": "x.npz", "reason": "bad"}]
    assert man.config_hash == config_hash({"a": {"x": [1, 2]}, "b": 1}) != config_hash({"b": 2})
    assert man.shards[1].checksum == file_checksum(tmp_path / "shard-000001.h5")
    doc = json.loads((tmp_path / "manifest.json").read_text())
    assert doc["shards"][0]["bytes"] == (tmp_path / "shard-000000.h5").stat().st_size
    assert man.identity == manifest_identity(doc)


def test_manifest_identity_ignores_the_created_stamp_only(tmp_path):
    """A rebuilt but identical dataset (another stamp, other bytes) keeps its identity."""
    infos = [write_shard(tmp_path / "shard-000000.h5", _arrays(n=4, start=0))]
    write_manifest(tmp_path, infos, dims={"V": 3, "R": 24})
    first = load_manifest(tmp_path).identity
    doc = json.loads((tmp_path / "manifest.json").read_text())
    doc["created"] = "2099-01-01T00:00:00Z"
    (tmp_path / "manifest.json").write_text(json.dumps(doc, indent=4))  # other bytes too
    assert load_manifest(tmp_path).identity == first
    doc["shards"][0]["checksum"] = "sha256:" + "0" * 64  # other shard content
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    assert load_manifest(tmp_path).identity != first


def test_schema_md_lists_every_field_with_its_dtype():
    from pathlib import Path

    import shards

    text = (Path(shards.__file__).parent / "SCHEMA.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[2].strip()
        for line in text.splitlines()
        if line.startswith("| `")
    }
    for spec in FIELDS:
        assert spec.name in rows, f"{spec.name} missing from SCHEMA.md"
        want = "utf-8 str" if spec.dtype == "str" else spec.dtype
        assert rows[spec.name] == want, spec.name


def test_extra_fields_are_allowed_and_round_trip(tmp_path):
    a, b = _arrays(n=4, seed=1), _arrays(n=3, seed=2, start=4)
    for arr, n in ((a, 4), (b, 3)):
        arr["views/depth"] = np.random.default_rng(n).uniform(size=(n, 3)).astype(np.float32)
        arr["meta/tag"] = np.array([f"t{i}" for i in range(n)])
    with ShardWriter(tmp_path / "x.h5") as w:
        w.append(a)
        w.append(b)
    with h5py.File(tmp_path / "x.h5") as f:
        np.testing.assert_array_equal(
            f["views/depth"][()], np.concatenate([a["views/depth"], b["views/depth"]])
        )
        assert f["views/depth"].chunks == (1, 1) and f["views/depth"].attrs["scope"] == "view"
        assert f["meta/tag"][()].astype(str).tolist() == ["t0", "t1", "t2", "t3", "t0", "t1", "t2"]
    c = _arrays(n=2, seed=3)
    c["views/depth"] = np.zeros((2, 3, 2), np.float32)
    c["meta/tag"] = np.array(["a", "b"])
    with ShardWriter(tmp_path / "y.h5") as w:
        w.append(a)
        with pytest.raises(ValueError, match="'views/depth' has shape"):
            w.append(c)
        w.abort()

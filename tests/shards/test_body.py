"""shards.body skinning against smplx's own lbs (float64), topology round trip of the body
arrays, and the one-line refusal of an older (schema 1) dataset."""

import json

import h5py
import numpy as np
import pytest
import torch
from smplx.lbs import lbs

from shards.body import BodySkinner, rodrigues
from shards.reader import ShardDataset, ShardError
from shards.schema import GENDERS
from shards.testing import make_fake_body, make_fake_dataset
from shards.topology import Topology, load_topology, write_topology
from shards.verify import verify


def _reference(arrays, pose, betas):
    t = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in arrays.items()}
    par = t.pop("parents").long()
    v, _ = lbs(torch.from_numpy(betas).double(), torch.from_numpy(pose).double(),
               t["v_template"][None], t["shapedirs"], t["posedirs"], t["J_regressor"], par,
               t["weights"])  # fmt: skip
    return v.numpy()


def _skin_random(sk, rng, n):
    """``n`` random bodies (pose, 16 betas, gender) skinned by ``sk``: (vertices, inputs...)."""
    pose = rng.normal(scale=0.6, size=(n, 156)).astype(np.float32)
    betas = rng.normal(size=(n, 16)).astype(np.float32)
    gender = rng.integers(0, 3, n)
    with torch.no_grad():
        got = sk(torch.from_numpy(pose), torch.from_numpy(betas), torch.from_numpy(gender))
    return got, pose, betas, gender


def test_skinning_matches_smplx_lbs_per_gender():
    rng = np.random.default_rng(0)
    tmpl = rng.normal(size=(80, 3)).astype(np.float32) * 0.3
    body = make_fake_body(tmpl, rng)
    sk = BodySkinner(body)
    n = 24
    got, pose, betas, gender = _skin_random(sk, rng, n)
    assert got.dtype == torch.float32 and got.shape == (n, 80, 3)
    for code, name in enumerate(GENDERS):
        sel = gender == code
        want = _reference(body[name], pose[sel], betas[sel])
        np.testing.assert_allclose(got[sel].numpy(), want, atol=1e-5)
    # fewer stored betas than the model has are zero-padded, more are cut
    with torch.no_grad():
        short = sk(torch.from_numpy(pose[:2]), torch.from_numpy(betas[:2, :5]), torch.zeros(2))
    b5 = np.zeros((2, 16), np.float32)
    b5[:, :5] = betas[:2, :5]
    np.testing.assert_allclose(short.numpy(), _reference(body["neutral"], pose[:2], b5), atol=1e-5)
    with pytest.raises(ValueError, match="no female arrays"):
        BodySkinner({"male": body["male"]})(torch.zeros(1, 156), torch.zeros(1, 16), [2])


def test_rodrigues_is_a_rotation_by_the_angle():
    aa = torch.tensor([[0.0, 0.0, np.pi / 2], [0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    r = rodrigues(aa)
    np.testing.assert_allclose(r[0].numpy(), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(r[1].numpy(), np.eye(3), atol=1e-6)
    np.testing.assert_allclose((r[2] @ r[2].T).numpy(), np.eye(3), atol=1e-6)
    np.testing.assert_allclose((r[2] @ aa[2]).numpy(), aa[2].numpy(), atol=1e-5)  # the axis


def test_topology_carries_the_body_arrays(tmp_path):
    rng = np.random.default_rng(1)
    body = make_fake_body(rng.normal(size=(30, 3)).astype(np.float32), rng, ("male",))
    topo = Topology(template=body["male"]["v_template"], faces=np.zeros((1, 3), np.int32),
                    body=body, body_attrs={"model_type": "smplh", "num_betas": 16})  # fmt: skip
    write_topology(tmp_path, topo)
    back = load_topology(tmp_path)
    assert list(back.body) == ["male"] and back.body_attrs["model_type"] == "smplh"
    for k, v in body["male"].items():
        np.testing.assert_array_equal(back.body["male"][k], v)
    assert BodySkinner.from_topology(tmp_path).num_vertices == 30


@pytest.fixture
def small(tmp_path):
    return make_fake_dataset(tmp_path / "d", n_meshes=12, views=2, res=16, nv=30, shards=2)


def test_an_older_dataset_is_refused_in_one_line_naming_the_file(small):
    man = json.loads((small / "manifest.json").read_text())
    man["schema_version"] = 1
    (small / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ShardError) as e:
        ShardDataset(small)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(small / "manifest.json"))
    assert "schema version 1" in msg and "rebuild" in msg
    assert any("schema version 1" in line for line in verify(small).lines())
    man["schema_version"] = 2  # a shard file of schema 1 under a current manifest
    (small / "manifest.json").write_text(json.dumps(man))
    with h5py.File(small / "shard-000001.h5", "r+") as f:
        f.attrs["schema_version"] = 1
    with pytest.raises(ShardError) as e:
        list(ShardDataset(small, batch_size=4, views="all", shuffle=False))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(small / "shard-000001.h5"))
    assert "schema version 1" in msg


def test_verify_needs_the_body_arrays_of_every_gender_used(small):
    assert verify(small, checksums=False).ok
    with h5py.File(small / "topology.h5", "r+") as f:
        del f["body/female"]
    rep = verify(small, checksums=False)
    assert not rep.ok and any("no body/female arrays" in line for line in rep.lines())


def test_stored_vertices_read_as_stored(tmp_path):
    """A dataset built with store_vertices (schema 1's payload) is read from the file: the
    same vertices as recomputed, up to float16 storage."""
    kw = dict(n_meshes=10, views=2, res=16, nv=40, shards=1, seed=4)
    a = make_fake_dataset(tmp_path / "a", **kw)
    b = make_fake_dataset(tmp_path / "b", store_vertices=True, **kw)
    with h5py.File(b / "shard-000000.h5") as f:
        assert f["mesh/vertices"].dtype == np.float16
    ra = next(iter(ShardDataset(a, batch_size=20, views="all", shuffle=False)))
    rb = next(iter(ShardDataset(b, batch_size=20, views="all", shuffle=False)))
    np.testing.assert_array_equal(ra["sample_id"], rb["sample_id"])
    err = (ra["vertices"] - rb["vertices"]).abs().max().item()
    assert 0 < err < 2e-3  # float16 at a few metres


def test_one_pass_skinning_with_per_gender_weights_and_sparse_correctives():
    """Genders with their own skinning weights and pose correctives on different supports,
    mixed in one batch, each against smplx's lbs."""
    rng = np.random.default_rng(3)
    tmpl = rng.normal(size=(70, 3)).astype(np.float32) * 0.3
    body = make_fake_body(tmpl, rng)
    body["female"]["weights"] = np.roll(body["female"]["weights"], 5, axis=1)
    body["male"]["posedirs"][:, :90] = 0  # correctives on part of the vertices only
    body["neutral"]["posedirs"][:27] = 0  # ... and of the joints only
    sk = BodySkinner(body)
    assert not sk.shared_weights
    n = 30
    got, pose, betas, gender = _skin_random(sk, rng, n)
    for code, name in enumerate(GENDERS):
        sel = gender == code
        assert sel.any()
        want = _reference(body[name], pose[sel], betas[sel])
        np.testing.assert_allclose(got[sel].numpy(), want, atol=1e-5)

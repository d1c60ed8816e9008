"""Body-model layer vs direct smplx calls and closed-form references."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
import smplx
import torch
from smplx.utils import Struct

from pipeline.body_models import BodyModelError, load_body_model, load_smpl_pkl


def _npz(synth_data, gender="neutral"):
    path = synth_data / "body_models" / "smplh" / gender / "model.npz"
    with np.load(path) as z:
        return path, {k: z[k] for k in z.files}


def _amass_frames(synth_data, n=6):
    """Frames of a generated AMASS SMPL+H file (or random poses if none was generated)."""
    files = (
        sorted((synth_data / "amass").rglob("*_poses.npz"))
        if (synth_data / "amass").is_dir()
        else []
    )
    if files:
        with np.load(files[0]) as z:
            idx = np.linspace(0, len(z["poses"]) - 1, n).astype(int)
            return z["poses"][idx], z["trans"][idx], z["betas"][:16], str(z["gender"])
    rng = np.random.default_rng(0)
    return rng.normal(0, 0.3, (n, 156)), rng.normal(0, 0.5, (n, 3)), rng.normal(0, 1, 16), "neutral"


def _direct_smplh(path, monkeypatch, gender):
    """smplx.SMPLH built straight from the file, with all 16 betas and filled hand PCA keys."""
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    for s in "lr":
        data[f"hands_components{s}"] = np.eye(45)
        data[f"hands_mean{s}"] = np.zeros(45)
    monkeypatch.setattr(smplx.SMPLH, "SHAPE_SPACE_DIM", 16)
    dummy_ids = {k: 0 for k in smplx.vertex_ids.vertex_ids["smplh"]}
    return smplx.SMPLH(
        model_path=str(path),
        ext="npz",
        use_pca=False,
        flat_hand_mean=True,
        num_betas=16,
        gender=gender,
        data_struct=Struct(**data),
        vertex_ids=dummy_ids,
    )


def test_amass_pose_matches_direct_smplx_call(synth_data, monkeypatch):
    poses, trans, betas, gender = _amass_frames(synth_data)
    gender = gender if gender in ("male", "female", "neutral") else "neutral"
    path, _ = _npz(synth_data, gender)
    out = load_body_model(synth_data / "body_models", "smplh", gender).forward(
        poses, betas, trans, chunk=4
    )
    ref = _direct_smplh(path, monkeypatch, gender)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        r = ref(
            betas=t(np.tile(betas, (len(poses), 1))),
            global_orient=t(poses[:, :3]),
            body_pose=t(poses[:, 3:66]),
            left_hand_pose=t(poses[:, 66:111]),
            right_hand_pose=t(poses[:, 111:156]),
            transl=t(trans),
        )
    assert out.vertices.dtype == np.float32 and out.vertices.shape == r.vertices.shape
    np.testing.assert_allclose(out.vertices, r.vertices.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.joints, r.joints[:, :52].numpy(), atol=1e-5)


@pytest.mark.parametrize("gender", ["neutral", "male", "female"])
def test_shards_skinning_matches_direct_smplx_call(synth_data, monkeypatch, gender):
    """What the reader recomputes vertices with (shards.body on the arrays topology.h5
    carries, float32) against smplx.SMPLH built straight from the file: well under 1 mm, also
    for large random poses and shapes."""
    from shards.body import BodySkinner

    poses, trans, betas, _ = _amass_frames(synth_data)
    rng = np.random.default_rng(3)
    poses = np.concatenate([poses, rng.normal(0, 0.8, (6, 156))]).astype(np.float32)
    betas = np.concatenate([np.tile(betas, (6, 1)), rng.normal(0, 2, (6, 16))]).astype(np.float32)
    trans = np.concatenate([trans, rng.normal(0, 1, (6, 3))]).astype(np.float32)
    path, _ = _npz(synth_data, gender)
    arrays = load_body_model(synth_data / "body_models", "smplh", gender).skinning_arrays()
    sk = BodySkinner({gender: arrays})
    code = ("neutral", "male", "female").index(gender)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    ref = _direct_smplh(path, monkeypatch, gender)
    with torch.no_grad():
        got = sk(t(poses), t(betas), torch.full((len(poses),), code)).numpy() + trans[:, None]
        r = ref(betas=t(betas), global_orient=t(poses[:, :3]), body_pose=t(poses[:, 3:66]),
                left_hand_pose=t(poses[:, 66:111]), right_hand_pose=t(poses[:, 111:156]),
                transl=t(trans)).vertices.numpy()  # fmt: skip
    assert got.dtype == np.float32
    assert np.abs(got - r).max() < 1e-4  # metres: 0.1 mm


def test_all_16_betas_are_used(synth_data):
    path, m = _npz(synth_data)
    bm = load_body_model(synth_data / "body_models", "smplh", "neutral")
    assert bm.num_betas == 16
    betas = np.zeros((3, 16))
    betas[1, 10:] = 1.5  # betas 11-16 only
    betas[2] = np.linspace(-2, 2, 16)
    trans = np.array([[0, 0, 0], [0.1, 0.2, 0.3], [0, 0, 0]])
    out = bm.forward(np.zeros((3, 156)), betas, trans)
    # zero pose: LBS is the identity, so vertices = v_template + shapedirs @ betas + trans
    ref = m["v_template"][None] + np.einsum("vcb,nb->nvc", m["shapedirs"], betas) + trans[:, None]
    np.testing.assert_allclose(out.vertices, ref, atol=2e-5)
    # betas 11-16 move the surface (by millimetres on this model): not truncated to 10
    assert np.abs(out.vertices[1] - out.vertices[0] - trans[1]).max() > 2e-3


def _smpl_dict_from_smplh(m: dict) -> dict:
    """An SMPL-format model (24 joints, 10 betas) made from the SMPL+H one: each hand's
    finger weights and regressor rows merge into SMPL's hand joint (first finger root)."""
    W = np.zeros((len(m["weights"]), 24))
    W[:, :22] = m["weights"][:, :22]
    W[:, 22] = m["weights"][:, 22:37].sum(axis=1)
    W[:, 23] = m["weights"][:, 37:52].sum(axis=1)
    parents = np.append(m["kintree_table"][0, :22], [20, 21])
    return {
        "v_template": m["v_template"],
        "f": m["f"],
        "J_regressor": sp.csc_matrix(m["J_regressor"][list(range(22)) + [22, 37]]),
        "kintree_table": np.stack([parents, np.arange(24)]),
        "weights": W,
        "posedirs": np.zeros((len(W), 3, 207)),
        "shapedirs": m["shapedirs"][:, :, :10],
    }


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A stand-in ``chumpy.ch.Ch`` class so pickles reference chumpy like the real files."""

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)

        def __getstate__(self):
            return {"x": self.x, "dterms": []}

    mod = types.ModuleType("chumpy.ch")
    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    mod.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", mod)
    return Ch


def test_smpl_pkl_without_chumpy_and_npz_match_smplh(synth_data, tmp_path, fake_chumpy):
    _, m = _npz(synth_data)
    smpl = _smpl_dict_from_smplh(m)
    root = tmp_path / "bm"
    (root / "smpl").mkdir(parents=True)
    pkl = dict(
        smpl, v_template=fake_chumpy(smpl["v_template"]), shapedirs=fake_chumpy(smpl["shapedirs"])
    )
    with open(root / "smpl" / "SMPL_NEUTRAL.pkl", "wb") as fh:
        pickle.dump(pkl, fh, protocol=2)
    npz = dict(smpl, J_regressor=smpl["J_regressor"].toarray())
    np.savez(root / "smpl" / "SMPL_MALE.npz", **npz)
    sys.modules.pop("chumpy.ch")  # reading must not need chumpy
    sys.modules.pop("chumpy")
    loaded = load_smpl_pkl(root / "smpl" / "SMPL_NEUTRAL.pkl")
    np.testing.assert_array_equal(loaded["v_template"], smpl["v_template"])

    rng = np.random.default_rng(1)
    body = rng.normal(0, 0.3, (4, 66))
    betas = rng.normal(0, 1, 10)
    ref = load_body_model(synth_data / "body_models", "smplh").forward(body, betas)
    for gender in ("neutral", "male"):
        bm = load_body_model(root, "smpl", gender)
        assert bm.num_betas == 10 and bm.num_joints == 24
        poses = np.concatenate([body, np.zeros((4, 6))], axis=1)  # SMPL hand joints at rest
        out = bm.forward(poses, betas)
        np.testing.assert_allclose(out.vertices, ref.vertices, atol=1e-5)
        np.testing.assert_allclose(out.joints[:, :22], ref.joints[:, :22], atol=1e-5)


def test_missing_and_invalid_files_give_one_line_errors(tmp_path, synth_data):
    with pytest.raises(BodyModelError, match=r"smplh/male/model.npz: body model file not found"):
        load_body_model(tmp_path, "smplh", "male")
    bad = tmp_path / "smplh" / "female" / "model.npz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a zip")
    with pytest.raises(BodyModelError, match="not a readable .npz") as e:
        load_body_model(tmp_path, "smplh", "female")
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    np.savez(tmp_path / "smplh" / "female" / "model.npz", v_template=np.zeros((3, 3)))
    with pytest.raises(BodyModelError, match="missing f, J_regressor"):
        load_body_model(tmp_path, "smplh", "female")
    with pytest.raises(BodyModelError, match="unknown gender"):
        load_body_model(synth_data / "body_models", "smplh", "other")


def test_cached_and_gender_spelling(synth_data):
    root = synth_data / "body_models"
    a = load_body_model(root, "smplh", "male")
    assert load_body_model(root, "smplh", b"Male") is a
    assert a.faces.shape[1] == 3 and a.faces.dtype == np.int64


def _smplx_dict_from_smplh(m: dict, num_vertices: int = 10475) -> dict:
    """An SMPL-X-format model made from the SMPL+H one: jaw/eye joints inserted after the
    body (driving no vertex), 300 shape + 100 expression directions, and the template
    padded with unreferenced vertices up to SMPL-X's vertex count (smplx's extra joints
    index that topology)."""
    V0 = len(m["v_template"])
    pad = num_vertices - V0
    idx = list(range(22)) + [15, 15, 15] + list(range(22, 52))  # smplx joint -> smplh joint
    to_x = {j: j if j < 22 else j + 3 for j in range(52)}
    parents = [-1] + [to_x[int(p)] for p in m["kintree_table"][0, 1:22]] + [15, 15, 15]
    parents += [to_x[int(p)] for p in m["kintree_table"][0, 22:]]
    W = np.zeros((num_vertices, 55))
    W[:V0, :22] = m["weights"][:, :22]
    W[:V0, 25:] = m["weights"][:, 22:]
    W[V0:, 0] = 1.0
    JR = np.zeros((55, num_vertices))
    JR[:, :V0] = m["J_regressor"][idx]
    S = np.zeros((num_vertices, 3, 400))
    S[:V0, :, :16] = m["shapedirs"]
    return {
        "v_template": np.concatenate([m["v_template"], np.repeat(m["v_template"][:1], pad, 0)]),
        "f": m["f"],
        "J_regressor": JR,
        "kintree_table": np.stack([np.array(parents, np.int64), np.arange(55)]),
        "weights": W,
        "posedirs": np.zeros((num_vertices, 3, 486)),
        "shapedirs": S,
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
        "lmk_faces_idx": np.zeros(51, np.int64),
        "lmk_bary_coords": np.full((51, 3), 1 / 3),
    }


def test_smplx_layout_matches_smplh(synth_data, tmp_path):
    _, m = _npz(synth_data, "female")
    root = tmp_path / "bm"
    (root / "smplx").mkdir(parents=True)
    np.savez(root / "smplx" / "SMPLX_FEMALE.npz", **_smplx_dict_from_smplh(m))
    bm = load_body_model(root, "smplx", "female")
    assert bm.num_betas == 16 and bm.num_joints == 55
    rng = np.random.default_rng(2)
    p = rng.normal(0, 0.3, (3, 156))
    betas, trans = rng.normal(0, 1, 16), rng.normal(0, 0.3, (3, 3))
    ref = load_body_model(synth_data / "body_models", "smplh", "female").forward(p, betas, trans)
    px = np.concatenate([p[:, :66], np.zeros((3, 9)), p[:, 66:]], axis=1)  # + jaw, eyes
    out = bm.forward(px, betas, trans)
    V0 = len(m["v_template"])
    np.testing.assert_allclose(out.vertices[:, :V0], ref.vertices, atol=1e-5)
    np.testing.assert_allclose(out.joints[:, :22], ref.joints[:, :22], atol=1e-5)
    np.testing.assert_allclose(out.joints[:, 25:], ref.joints[:, 22:], atol=1e-5)

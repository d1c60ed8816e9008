"""Joint names/orders and keypoint regressors."""

from __future__ import annotations

import numpy as np
from smplx.vertex_ids import vertex_ids

from pipeline import joints as J
from pipeline.body_models import load_body_model


def _swap_lr(name: str) -> str:
    for a, b in (("left", "right"), ("L_", "R_")):
        if name.startswith(a):
            return b + name[len(a) :]
        if name.startswith(b):
            return a + name[len(b) :]
        name = name.replace(f"_{a}", f"_{b}") if f"_{a}" in name else name
    return name


def test_joint_sets_match_architecture():
    assert len(J.COCO17) == 17 and len(J.H36M17) == 17 and len(J.SMPLH52) == 52
    assert J.COCO17[0] == "nose" and J.COCO17[16] == "right_ankle"
    assert J.H36M17[0] == "Pelvis" and J.H36M17[J.H36M_PELVIS] == "Pelvis"
    assert J.H36M14_FROM_17 == (3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10)
    assert J.H36M14[0] == "R_Ankle" and J.H36M14[-1] == "Head"
    assert len(J.SMPL24) == 24 and J.SMPL24[:22] == J.SMPLH52[:22]
    assert [J.SMPLH52[i] for i in J.SMPL24_FROM_SMPLH[22:]] == ["left_index1", "right_index1"]
    # smplx's own joint-name list agrees with ours for SMPL+H (body + both hands)
    from smplx.joint_names import JOINT_NAMES

    smplh_names = JOINT_NAMES[:22] + JOINT_NAMES[25:55]
    assert tuple(smplh_names) == J.SMPLH52


def test_flip_permutations_swap_left_and_right():
    for names, flip in ((J.COCO17, J.COCO17_FLIP), (J.H36M17, J.H36M17_FLIP)):
        assert sorted(flip) == list(range(17))
        for i, j in enumerate(flip):
            assert names[j] == _swap_lr(names[i]), (names[i], names[j])


def test_generated_model_regressor_tracks_posed_body(synth_data):
    root = synth_data / "body_models"
    bm = load_body_model(root, "smplh", "male")
    reg = J.KeypointRegressor.from_body_models(root, "smplh", bm.num_vertices)
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.4, (5, 156))
    out = bm.forward(poses, rng.normal(0, 1, 16))
    coco, h36m = reg.coco17(out.vertices, out.joints), reg.h36m17(out.vertices, out.joints)
    assert coco.shape == (5, 17, 3) and h36m.shape == (5, 17, 3)
    # limb keypoints are regressed from vertex rings: on the joint at rest, and following the
    # posed joint (the rings deform under LBS: up to ~5 cm at the shoulders for these random
    # collar + shoulder rotations of 0.4 rad s.d.)
    rest = bm.forward(np.zeros((1, 156)), np.zeros(16))
    rest_coco = reg.coco17(rest.vertices, rest.joints)
    for k, name in enumerate(J.COCO17[5:], start=5):
        j = J.SMPLH52.index(name)
        assert np.linalg.norm(rest_coco[0, k] - rest.joints[0, j]) < 0.015, name
        err = np.linalg.norm(coco[:, k] - out.joints[:, j], axis=1)
        assert err.max() < 0.06, name
    mid_hips = 0.5 * (out.joints[:, 1] + out.joints[:, 2])
    assert np.linalg.norm(h36m[:, 0] - mid_hips, axis=1).max() < 0.03
    # face points stay on the head: within 15 cm of the head joint
    assert np.linalg.norm(coco[:, :5] - out.joints[:, 15:16], axis=2).max() < 0.15


def test_smpl_topology_regressor_uses_smplx_vertex_ids_and_user_h36m(tmp_path):
    V, NJ = 6890, 52
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(2, V, 3)).astype(np.float32)
    jts = rng.normal(size=(2, NJ, 3)).astype(np.float32)
    reg = J.KeypointRegressor.from_body_models(tmp_path, "smplh", V)
    coco = reg.coco17(verts, jts)
    ids = vertex_ids["smplh"]
    np.testing.assert_allclose(coco[:, 0], verts[:, ids["nose"]])
    np.testing.assert_allclose(coco[:, 1], verts[:, ids["leye"]])
    np.testing.assert_allclose(coco[:, 4], verts[:, ids["rear"]])
    np.testing.assert_allclose(coco[:, 9], jts[:, 20])  # left wrist
    np.testing.assert_allclose(coco[:, 16], jts[:, 8])  # right ankle
    h = reg.h36m17(verts, jts)
    np.testing.assert_allclose(h[:, 0], 0.5 * (jts[:, 1] + jts[:, 2]), atol=1e-6)
    np.testing.assert_allclose(h[:, 1], jts[:, 2])  # R_Hip
    # with a user-supplied H36M regressor, H36M-17 comes from it
    R = rng.random((17, V)).astype(np.float32)
    R /= R.sum(axis=1, keepdims=True)
    np.save(tmp_path / "J_regressor_h36m.npy", R)
    reg = J.KeypointRegressor.from_body_models(tmp_path, "smplh", V)
    np.testing.assert_allclose(
        reg.h36m17(verts, jts), np.einsum("kv,nvc->nkc", R, verts), rtol=1e-5, atol=1e-5
    )


def test_vertex_regressors_fold_joint_terms(synth_data):
    V, NJ = 6890, 52
    rng = np.random.default_rng(1)
    JR = rng.random((NJ, V))
    JR /= JR.sum(axis=1, keepdims=True)
    reg = J.KeypointRegressor.for_smpl_topology(V, NJ)
    v = rng.normal(size=(1, V, 3))
    coco_v, h36m_v = reg.vertex_regressors(JR)
    np.testing.assert_allclose(coco_v.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(h36m_v.sum(axis=1), 1.0, atol=1e-5)
    joints = np.einsum("jv,nvc->njc", JR, v)
    np.testing.assert_allclose(
        np.einsum("kv,nvc->nkc", h36m_v, v), reg.h36m17(v, joints), atol=1e-4
    )

"""Procedural SMPL+H-format body models: file format, surface, skinning, regressors, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from pipeline.body_models import load_body_model
from pipeline.joints import COCO17, H36M17, SMPLH52
from pipeline.synth import body

# The real AMASS "extended SMPL+H" model.npz content (V = 6890 there).
REAL_KEYS = {
    "v_template": ("V", 3),
    "f": ("F", 3),
    "J_regressor": (52, "V"),
    "kintree_table": (2, 52),
    "weights": ("V", 52),
    "posedirs": ("V", 3, 459),
    "shapedirs": ("V", 3, 16),
    "J": (52, 3),
}

# SMPL-H kinematic tree written out by joint name (SMPL body + MANO-style finger chains).
BODY_PARENTS = {
    "left_hip": "pelvis", "right_hip": "pelvis", "spine1": "pelvis",
    "left_knee": "left_hip", "right_knee": "right_hip", "spine2": "spine1",
    "left_ankle": "left_knee", "right_ankle": "right_knee", "spine3": "spine2",
    "left_foot": "left_ankle", "right_foot": "right_ankle", "neck": "spine3",
    "left_collar": "spine3", "right_collar": "spine3", "head": "neck",
    "left_shoulder": "left_collar", "right_shoulder": "right_collar",
    "left_elbow": "left_shoulder", "right_elbow": "right_shoulder",
    "left_wrist": "left_elbow", "right_wrist": "right_elbow",
}  # fmt: skip


def _model(synth_data, gender="neutral"):
    with np.load(synth_data / "body_models" / "smplh" / gender / "model.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("gender", body.GENDERS)
def test_model_npz_has_exactly_the_real_keys_and_shapes(synth_data, gender):
    m = _model(synth_data, gender)
    assert set(m) == set(REAL_KEYS)
    V, F = m["v_template"].shape[0], m["f"].shape[0]
    for key, shape in REAL_KEYS.items():
        want = tuple({"V": V, "F": F}.get(s, s) for s in shape)
        assert m[key].shape == want, key
    for key in ("v_template", "J_regressor", "weights", "posedirs", "shapedirs", "J"):
        assert m[key].dtype == np.float64, key
    assert m["f"].dtype == np.uint32 and m["kintree_table"].dtype == np.int64
    assert not np.any(m["posedirs"])  # documented: no pose correctives


def test_kintree_is_smplh(synth_data):
    kt = _model(synth_data)["kintree_table"]
    assert kt[0, 0] == 4294967295 and list(kt[1]) == list(range(52))
    parent = {SMPLH52[j]: SMPLH52[kt[0, j]] for j in range(1, 52)}
    for child, par in BODY_PARENTS.items():
        assert parent[child] == par
    for side in ("left", "right"):
        for finger in ("index", "middle", "pinky", "ring", "thumb"):
            assert parent[f"{side}_{finger}1"] == f"{side}_wrist"
            assert parent[f"{side}_{finger}2"] == f"{side}_{finger}1"
            assert parent[f"{side}_{finger}3"] == f"{side}_{finger}2"


@pytest.mark.parametrize("gender", body.GENDERS)
def test_surface_is_closed_manifold_and_human_sized(synth_data, gender):
    m = _model(synth_data, gender)
    mesh = trimesh.Trimesh(m["v_template"], m["f"].astype(np.int64), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.euler_number == 2  # a sphere-like closed surface (no handles)
    v = m["v_template"]
    height = np.ptp(v[:, 1])
    span = np.ptp(v[:, 0])
    assert 1.5 < height < 1.95 and 0.9 < span / height < 1.1  # T-pose: arm span ~ height
    assert np.ptp(v[:, 2]) < 0.45  # thin along the facing axis
    assert np.linalg.norm(m["J"][0]) < 0.3  # pelvis near the origin
    assert 0.045 < mesh.volume < 0.11  # 45-110 litres


def test_genders_share_topology_and_differ_in_proportions(synth_data):
    n, ma, fe = (_model(synth_data, g) for g in ("neutral", "male", "female"))
    assert np.array_equal(n["f"], ma["f"]) and np.array_equal(n["f"], fe["f"])
    h = {k: np.ptp(m["v_template"][:, 1]) for k, m in (("n", n), ("m", ma), ("f", fe))}
    assert h["m"] > h["n"] > h["f"]
    sh = lambda m: np.linalg.norm(m["J"][16] - m["J"][17])  # noqa: E731
    hip = lambda m: np.linalg.norm(m["J"][1] - m["J"][2])  # noqa: E731
    assert hip(fe) / sh(fe) > hip(ma) / sh(ma)


def test_skinning_weights_rows_sum_to_one_and_every_joint_drives_vertices(synth_data):
    W = _model(synth_data)["weights"]
    assert np.all(W >= 0)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(W.max(axis=0) > 0.3), np.where(W.max(axis=0) <= 0.3)
    # smooth: most vertices have more than one influence near joints, none has > 12
    assert 0.1 < np.mean((W > 0.05).sum(axis=1) > 1) < 0.95


def test_joint_regressor_reproduces_designed_joints(synth_data):
    for gender in body.GENDERS:
        m = _model(synth_data, gender)
        JR = m["J_regressor"]
        assert np.all(JR >= 0)
        np.testing.assert_allclose(JR.sum(axis=1), 1.0, atol=1e-9)
        np.testing.assert_allclose(JR @ m["v_template"], m["J"], atol=1e-12)
        np.testing.assert_allclose(m["J"], body.rest_skeleton(gender), atol=2e-3)
        count = (JR > 0).sum(axis=1)  # a ring of vertices, not one vertex
        assert np.all(count >= 3) and np.median(count) >= 8


def test_rest_frame_convention(synth_data):
    J = _model(synth_data)["J"]
    assert J[15, 1] > J[0, 1] > J[7, 1]  # y-up: head above pelvis above ankles
    assert J[16, 0] > 0 > J[17, 0]  # person's left is +x ...
    assert J[10, 2] > J[7, 2]  # ... so the body faces +z (toes ahead of ankles)


def test_shape_directions_are_meaningful(synth_data):
    m = _model(synth_data)
    S, v = m["shapedirs"], m["v_template"]
    mag = np.linalg.norm(S, axis=1).max(axis=0)  # per beta, max displacement per unit
    assert np.all(mag > 0.005) and np.all(mag < 0.1), mag
    h = lambda b, x: np.ptp((v + x * S[:, :, b])[:, 1])  # noqa: E731
    assert h(0, 2.0) > h(0, 0.0) + 0.08  # stature
    assert h(2, 2.0) > h(2, 0.0) + 0.04  # leg length
    vol = lambda x: trimesh.Trimesh(v + x * S[:, :, 1], m["f"].astype(int)).volume  # noqa: E731
    assert vol(2.0) > 1.2 * vol(0.0)  # girth
    # distinct directions: no two betas (nearly) parallel
    flat = S.reshape(-1, 16)
    cos = (flat.T @ flat) / np.outer(np.linalg.norm(flat, axis=0), np.linalg.norm(flat, axis=0))
    assert np.max(np.abs(cos - np.eye(16))) < 0.95


def _face_normals(v, f):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_shapes_within_two_sigma_keep_the_surface_clean(synth_data):
    m = _model(synth_data)
    v, f, S = m["v_template"], m["f"].astype(np.int64), m["shapedirs"]
    n0 = _face_normals(v, f)
    for b in range(16):
        for x in (-2.0, 2.0):
            turned = np.sum(n0 * _face_normals(v + x * S[:, :, b], f), axis=1) < 0.5
            assert turned.mean() < 0.005, (b, x, turned.sum())  # < 0.5% faces turn > 60 deg


def test_finger_joints_bend_fingers_only(synth_data):
    bm = load_body_model(synth_data / "body_models", "smplh", "neutral")
    poses = np.zeros((2, 156))
    poses[1, 3 * SMPLH52.index("left_index1") + 2] = -1.2  # curl the left index finger
    v = bm.forward(poses).vertices
    moved = np.linalg.norm(v[1] - v[0], axis=1) > 1e-3
    J = _model(synth_data)["J"]
    assert moved.sum() > 10
    assert np.all(v[0][moved][:, 0] > J[20, 0] - 0.01)  # only the left hand moves


def test_keypoint_regressor_rows(synth_data):
    with np.load(synth_data / "body_models" / "smplh" / "joint_regressors.npz") as z:
        coco, h36m = z["coco17"], z["h36m17"]
    m = _model(synth_data)
    V = len(m["v_template"])
    for R in (coco, h36m):
        assert R.shape == (17, V) and R.dtype == np.float32
        np.testing.assert_allclose(R.sum(axis=1), 1.0, atol=1e-5)
        assert np.all(R >= 0)
    kc, kh = coco @ m["v_template"], h36m @ m["v_template"]
    c = {n: kc[i] for i, n in enumerate(COCO17)}
    h = {n: kh[i] for i, n in enumerate(H36M17)}
    J = m["J"]
    head_top = m["v_template"][:, 1].max()
    assert c["nose"][2] > c["left_eye"][2] > J[15, 2]  # nose sticks out in front
    assert c["left_eye"][0] > 0.01 and c["right_eye"][0] < -0.01
    assert c["left_ear"][0] > c["left_eye"][0] and c["right_ear"][0] < c["right_eye"][0]
    assert J[15, 1] < c["left_eye"][1] < head_top
    np.testing.assert_allclose(c["left_wrist"], J[20], atol=1e-5)
    np.testing.assert_allclose(h["Pelvis"], 0.5 * (J[1] + J[2]), atol=1e-5)
    assert h["Pelvis"][1] < h["Torso"][1] < h["Neck"][1] < h["Nose"][1] < h["Head"][1]
    assert h["Head"][1] < head_top


def test_generation_is_deterministic(synth_data):
    a = body.build_bodies(voxel=0.007, target_vertices=3000)["female"].npz
    b = _model(synth_data, "female")
    for key in b:
        np.testing.assert_array_equal(a[key], b[key])


def test_cli_preview(synth_data, tmp_path):
    from PIL import Image

    from pipeline.synth.__main__ import main

    png = tmp_path / "preview.png"
    assert main(["--out", str(synth_data), "--preview", str(png)]) == 0
    w, h = Image.open(png).size
    assert w > 600 and h > 600

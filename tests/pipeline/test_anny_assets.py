"""The shipped Anny-derived SMPL+H models (pipeline/assets/anny): format, smplx, geometry.

No anny import: these read the exported files only, and check them against smplx itself,
trimesh and independent anatomical facts of SMPL's rest convention.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2] / "pipeline" / "assets" / "anny"
SMPLH = ROOT / "smplh"
GENDERS = ("neutral", "male", "female")
REAL_KEYS = {
    "v_template": lambda V: (V, 3),
    "f": None,
    "J_regressor": lambda V: (52, V),
    "kintree_table": lambda V: (2, 52),
    "weights": lambda V: (V, 52),
    "posedirs": lambda V: (V, 3, 459),
    "shapedirs": lambda V: (V, 3, 16),
    "J": lambda V: (52, 3),
}
SMPLH_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
SMPLH_PARENTS += [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]
SMPLH_PARENTS += [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50]


@pytest.fixture(scope="module")
def models() -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for g in GENDERS:
        with np.load(SMPLH / g / "model.npz") as z:
            out[g] = {k: z[k] for k in z.files}
    return out


def _smplh16(path: Path):
    """Plain smplx.SMPLH with its 10-beta cap raised to the file's 16 (the SHAPE_SPACE_DIM trap)."""
    import smplx

    class SMPLH16(smplx.SMPLH):
        SHAPE_SPACE_DIM = 16

    return SMPLH16(model_path=str(path), ext="npz", use_pca=False, num_betas=16)


def test_real_keys_shapes_and_size(models):
    total = sum(p.stat().st_size for p in SMPLH.rglob("*.npz"))
    assert total < 15e6, f"shipped exports are {total / 1e6:.1f} MB"
    faces = models["neutral"]["f"]
    for g, m in models.items():
        V = m["v_template"].shape[0]
        assert 6788 <= V <= 7100, f"{g}: {V} vertices (smplx's SMPL-H vertex ids need >= 6788)"
        for key, shape in REAL_KEYS.items():
            assert key in m, f"{g}: missing {key}"
            if shape is not None:
                assert m[key].shape == shape(V), f"{g}: {key} {m[key].shape}"
        assert m["f"].ndim == 2 and m["f"].shape[1] == 3 and m["f"].max() == V - 1
        np.testing.assert_array_equal(m["f"], faces)  # one topology for all genders
        parents = m["kintree_table"][0].astype(np.int64)
        parents[0] = -1
        assert parents.tolist() == SMPLH_PARENTS
        assert not np.any(m["posedirs"])


@pytest.mark.parametrize("gender", GENDERS)
def test_plain_smplx_loads_and_reproduces_template(models, gender):
    import smplx
    import torch

    path = SMPLH / gender / "model.npz"
    layer = smplx.SMPLH(model_path=str(path), ext="npz", use_pca=False)
    with torch.no_grad():
        out = layer()
    m = models[gender]
    np.testing.assert_allclose(out.vertices[0].numpy(), m["v_template"], atol=1e-5)
    np.testing.assert_allclose(out.joints[0, :52].numpy(), m["J"], atol=1e-5)


def test_all_16_betas_matter(models):
    import torch

    path = SMPLH / "neutral" / "model.npz"
    layer = _smplh16(path)
    m = models["neutral"]
    for k in range(10, 16):
        betas = torch.zeros(1, 16)
        betas[0, k] = 2.0
        with torch.no_grad():
            v = layer(betas=betas).vertices[0].numpy().astype(np.float64)
        expected = m["v_template"] + 2.0 * m["shapedirs"][..., k]
        np.testing.assert_allclose(v, expected, atol=2e-5)
        moved = np.linalg.norm(v - m["v_template"], axis=1).max()
        assert moved > 5e-4, f"beta {k + 1} moves the mesh by only {moved * 1000:.2f} mm"


def test_closed_manifold_surface(models):
    import trimesh

    m = models["neutral"]
    f = m["f"].astype(np.int64)
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2), "every edge must be shared by exactly two faces"
    mesh = trimesh.Trimesh(m["v_template"], f, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0.03  # outward normals, human-sized (~65 litres)


@pytest.mark.parametrize("gender", GENDERS)
def test_weights_and_joint_regressor(models, gender):
    m = models[gender]
    W, JR = m["weights"], m["J_regressor"]
    assert W.min() >= 0 and np.allclose(W.sum(1), 1.0, atol=1e-6)
    assert JR.min() >= 0 and np.allclose(JR.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(JR @ m["v_template"], m["J"], atol=1e-9)
    # every joint drives some skin, and each vertex follows the bone it lies on: its main
    # joint's segment to a child joint is near (limbs and fingers: within their thickness)
    assert np.all(W.max(0) > 0.2)
    v, J, own = m["v_template"], m["J"], W.argmax(1)
    parents = np.array(SMPLH_PARENTS)
    for j in range(52):
        pts = v[own == j]
        assert len(pts), f"no vertex mainly follows joint {j}"
        ends = [J[c] for c in np.nonzero(parents == j)[0]] or [J[j]]
        d = np.full(len(pts), np.inf)
        for b in ends:
            ab = b - J[j]
            t = np.clip((pts - J[j]) @ ab / max(ab @ ab, 1e-12), 0, 1)
            d = np.minimum(d, np.linalg.norm(pts - J[j] - t[:, None] * ab, axis=1))
        limb = j in (4, 5, 7, 8, 10, 11) or j >= 18
        assert d.max() < (0.09 if limb else 0.3), f"joint {j}: skin {d.max():.3f} m off its bone"


@pytest.mark.parametrize("gender", GENDERS)
def test_rest_pose_follows_smpl_convention(models, gender):
    J = models[gender]["J"]
    v = models[gender]["v_template"]
    n = {
        k: i
        for i, k in enumerate(
            ["pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle"]
            + ["r_ankle", "spine3", "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head"]
            + ["l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist"]
        )
    }
    assert np.linalg.norm(J[0]) < 0.05  # pelvis near the origin
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.45 < height < 1.95
    # y-up chain
    for a, b in [("pelvis", "spine1"), ("spine1", "spine2"), ("spine2", "spine3")]:
        assert J[n[b], 1] > J[n[a], 1]
    assert J[n["head"], 1] > J[n["neck"], 1] > J[n["spine3"], 1]
    for s in ("l", "r"):
        assert J[n[f"{s}_hip"], 1] > J[n[f"{s}_knee"], 1] > J[n[f"{s}_ankle"], 1]
    # left = +x, T-pose: arms straight out along x at shoulder height
    for s, sign in (("l", 1), ("r", -1)):
        xs = [J[n[f"{s}_{j}"], 0] * sign for j in ("shoulder", "elbow", "wrist")]
        assert 0 < xs[0] < xs[1] < xs[2]
        arm = J[n[f"{s}_wrist"]] - J[n[f"{s}_shoulder"]]
        assert abs(arm[0]) / np.linalg.norm(arm) > 0.98
        assert J[n[f"{s}_hip"], 0] * sign > 0
    # facing +z: the feet point forward from the ankles
    assert J[n["l_foot"], 2] > J[n["l_ankle"], 2] + 0.05


def test_keypoint_regressors(models):
    with np.load(SMPLH / "joint_regressors.npz") as z:
        coco, h36m = z["coco17"], z["h36m17"]
    v = models["neutral"]["v_template"]
    J = models["neutral"]["J"]
    for reg in (coco, h36m):
        assert reg.shape == (17, v.shape[0]) and reg.dtype == np.float32
        assert reg.min() >= 0 and np.allclose(reg.sum(1), 1.0, atol=1e-5)
    kp = coco.astype(np.float64) @ v
    nose, leye, reye, lear, rear = kp[:5]
    head = J[15]
    assert nose[2] > head[2] + 0.05  # nose in front of the head joint
    assert nose[1] < leye[1] and nose[1] < reye[1]  # eyes above the nose
    assert leye[0] > 0.01 and reye[0] < -0.01 and lear[0] > leye[0] and rear[0] < reye[0]
    assert abs(np.linalg.norm(leye - reye) - 0.063) < 0.02  # interpupillary-like distance
    # body points are the model joints (one file for all genders: within 1.5 cm of each one's)
    body_joints = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]
    for g, m in models.items():
        d = np.linalg.norm(
            coco[5:].astype(np.float64) @ m["v_template"] - m["J"][body_joints], axis=1
        )
        assert d.max() < 0.015, f"{g}: COCO body points {d.max() * 1000:.1f} mm off the joints"
    k3 = h36m.astype(np.float64) @ v
    assert k3[10, 1] > kp[0, 1] + 0.05  # H36M head (top) above the nose
    assert np.linalg.norm(k3[0] - J[0]) < 0.015  # H36M pelvis = model pelvis


def test_shape_space_and_genders(models):
    heights = {g: np.ptp(m["v_template"][:, 1]) for g, m in models.items()}
    assert heights["male"] > heights["neutral"] > heights["female"]
    sd = models["neutral"]["shapedirs"]
    # first direction is the largest and mostly stature
    mags = np.linalg.norm(sd, axis=1).max(0)
    assert np.argmax(mags) == 0 and np.all(np.diff(mags[:3]) < 0.02)
    v = models["neutral"]["v_template"]
    tall = v + 2 * sd[..., 0]
    short = v - 2 * sd[..., 0]
    assert np.ptp(tall[:, 1]) - np.ptp(short[:, 1]) > 0.2  # beta 1 = stature, ~10 cm per sd
    for g in ("male", "female"):  # same sign convention for every gender
        m = models[g]
        assert np.ptp((m["v_template"] + m["shapedirs"][..., 0])[:, 1]) > np.ptp(
            m["v_template"][:, 1]
        )


def test_posed_body_stays_smooth(models):
    """Bent elbows, knees, hips, shoulder and spine (shaped body): no edge stretches or tears."""
    import torch

    layer = _smplh16(SMPLH / "neutral" / "model.npz")
    body = torch.zeros(1, 63)
    for j, aa in {
        18: (0, -1.6, 0),  # left elbow (joint 18 -> body index 17)
        19: (0, 1.6, 0),
        4: (1.5, 0, 0),  # left knee
        5: (1.5, 0, 0),
        1: (-0.8, 0, 0),  # left hip flexion
        16: (0, 0, -0.9),  # left shoulder down
        6: (0.3, 0.4, 0),  # spine2
    }.items():
        body[0, (j - 1) * 3 : j * 3] = torch.tensor(aa)
    betas = torch.zeros(1, 16)
    betas[0, :3] = torch.tensor([1.5, -1.0, 1.0])
    with torch.no_grad():
        out = layer(betas=betas, body_pose=body)
        rest = layer(betas=betas)
    f = models["neutral"]["f"].astype(np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    vp = out.vertices[0].numpy().astype(np.float64)
    vr = rest.vertices[0].numpy().astype(np.float64)
    lp = np.linalg.norm(vp[e[:, 0]] - vp[e[:, 1]], axis=1)
    lr = np.linalg.norm(vr[e[:, 0]] - vr[e[:, 1]], axis=1)
    # creases may fold (LBS compresses the inside of a bend) but nothing stretches or tears
    # (skin over a bent knee does lengthen: ~9 cm edges there grow by up to ~4 cm)
    assert (lp - lr).max() < 0.06, f"an edge stretched by {(lp - lr).max() * 100:.1f} cm"

    # no patch of skin is blown up: faces whose area more than doubles (only over the kneecaps
    # and elbow tips, ~0.2% here) stay under 0.5% of the skin
    def areas(x):
        return 0.5 * np.linalg.norm(
            np.cross(x[f[:, 1]] - x[f[:, 0]], x[f[:, 2]] - x[f[:, 0]]), axis=1
        )

    ap, ar = areas(vp), areas(vr)
    assert ar[ap > 2.0 * ar].sum() < 0.005 * ar.sum()
    # the bent elbow really moved the left hand
    assert np.linalg.norm(out.joints[0, 20] - rest.joints[0, 20]) > 0.15


def test_project_loader_reads_the_assets():
    from pipeline.body_models import load_body_model

    body = load_body_model(ROOT, "smplh", "female")
    out = body(poses=np.zeros((2, 156)), betas=np.zeros(16))
    assert out.vertices.shape == (2, body.num_vertices, 3)
    assert body.num_betas == 16


# ------------------------------------------------------------------ converter (no anny needed)


def _toy_rig():
    """A symmetric A-posed toy rig with anny's bone names (arms hang 45 deg, hands forward)."""
    labels, parents, heads = ["root"], [-1], [np.zeros(3)]

    def add(name, parent, pos):
        labels.append(name)
        parents.append(labels.index(parent))
        heads.append(np.asarray(pos, dtype=float))

    for s, sx in (("L", 1.0), ("R", -1.0)):
        add(f"clavicle.{s}", "root", (0.02 * sx, 0.0, 0.5))
        add(f"upperarm01.{s}", f"clavicle.{s}", (0.17 * sx, 0.0, 0.47))
        add(f"lowerarm01.{s}", f"upperarm01.{s}", (0.35 * sx, 0.0, 0.29))
        add(f"wrist.{s}", f"lowerarm01.{s}", (0.45 * sx, -0.12, 0.17))
        for n in (1, 2, 3, 4, 5):
            base = np.array([0.49 * sx, -0.16 - 0.01 * n, 0.14 - 0.01 * n])
            add(f"finger{n}-1.{s}", f"wrist.{s}", base)
            add(f"finger{n}-2.{s}", f"finger{n}-1.{s}", base + (0.0, -0.03, -0.02))
            add(f"finger{n}-3.{s}", f"finger{n}-2.{s}", base + (0.0, -0.05, -0.04))
    return labels, np.array(parents), np.stack(heads)


def test_converter_tpose_straightens_arms_rigidly():
    from tools.anny_export import convert as C

    labels, parents, heads = _toy_rig()
    R, P = C.tpose_bones(heads, labels, parents)
    idx = {n: i for i, n in enumerate(labels)}
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    for b in range(1, len(labels)):  # every bone keeps its length
        p = parents[b]
        np.testing.assert_allclose(
            np.linalg.norm(P[b] - P[p]), np.linalg.norm(heads[b] - heads[p]), atol=1e-9
        )
    for s, sx in (("L", 1.0), ("R", -1.0)):
        for a, b in (("upperarm01", "lowerarm01"), ("lowerarm01", "wrist"), ("wrist", "finger3-1")):
            d = P[idx[f"{b}.{s}"]] - P[idx[f"{a}.{s}"]]
            np.testing.assert_allclose(d / np.linalg.norm(d), [sx, 0, 0], atol=1e-9)
        np.testing.assert_allclose(P[idx[f"upperarm01.{s}"]], heads[idx[f"upperarm01.{s}"]])
    # skinning a vertex fully bound to the forearm moves it with the forearm's head
    w = np.zeros((1, len(labels)))
    w[0, idx["lowerarm01.L"]] = 1.0
    v = heads[idx["lowerarm01.L"]][None] + [[0.0, 0.03, 0.0]]
    out = C.skin(v, w, heads, R, P)
    np.testing.assert_allclose(np.linalg.norm(out[0] - P[idx["lowerarm01.L"]]), 0.03, atol=1e-9)


def test_converter_bone_owner_merges_onto_nearest_mapped_ancestor():
    from tools.anny_export import convert as C

    names = ["root", "spine05", "spine04", "spine03", "spine02", "spine01", "neck01", "neck02"]
    names += ["head", "eye.L", "clavicle.L", "shoulder01.L", "upperarm01.L", "upperarm02.L"]
    names += ["lowerarm01.L", "lowerarm02.L", "wrist.L", "metacarpal2.L", "finger2-1.L"]
    names += ["pelvis.L", "upperleg01.L", "upperleg02.L", "foot.L", "toe1-1.L", "toe1-2.L"]
    par = {"spine05": "root", "spine04": "spine05", "spine03": "spine04", "spine02": "spine03"}
    par |= {"spine01": "spine02", "neck01": "spine01", "neck02": "neck01", "head": "neck02"}
    par |= {"eye.L": "head", "clavicle.L": "spine01", "shoulder01.L": "clavicle.L"}
    par |= {"upperarm01.L": "shoulder01.L", "upperarm02.L": "upperarm01.L"}
    par |= {"lowerarm01.L": "upperarm02.L", "lowerarm02.L": "lowerarm01.L"}
    par |= {"wrist.L": "lowerarm02.L", "metacarpal2.L": "wrist.L", "finger2-1.L": "metacarpal2.L"}
    par |= {"pelvis.L": "root", "upperleg01.L": "pelvis.L", "upperleg02.L": "upperleg01.L"}
    par |= {"foot.L": "upperleg02.L", "toe1-1.L": "foot.L", "toe1-2.L": "toe1-1.L"}
    parents = np.array([-1] + [names.index(par[n]) for n in names[1:]])
    owner = dict(zip(names, (C.SMPLH_JOINT_NAMES[j] for j in C.bone_owner(names, parents))))
    expected = {
        "root": "pelvis", "spine05": "pelvis", "spine04": "pelvis", "spine03": "spine1",
        "spine02": "spine2", "spine01": "spine3", "neck02": "neck", "eye.L": "head",
        "shoulder01.L": "left_collar", "upperarm02.L": "left_shoulder",
        "lowerarm02.L": "left_elbow", "metacarpal2.L": "left_wrist", "finger2-1.L": "left_index1",
        "pelvis.L": "pelvis", "upperleg02.L": "left_hip", "foot.L": "left_ankle",
        "toe1-2.L": "left_foot",
    }  # fmt: skip
    assert {k: owner[k] for k in expected} == expected


def test_converter_shape_space_gives_unit_variance_betas():
    from tools.anny_export import convert as C

    rng = np.random.default_rng(0)
    mean = rng.normal(size=(50, 3))
    basis = np.linalg.qr(rng.normal(size=(150, 3)))[0].T.reshape(3, 50, 3)
    coef = rng.normal(size=(4000, 3)) * [0.05, 0.02, 0.01]
    samples = mean + np.einsum("nk,kvc->nvc", coef, basis)
    m, dirs = C.shape_space(samples, n=3)
    np.testing.assert_allclose(m, samples.mean(0), atol=1e-12)
    betas = np.linalg.lstsq(dirs.reshape(-1, 3), (samples - m).reshape(len(samples), -1).T,
                            rcond=None)[0]  # fmt: skip
    np.testing.assert_allclose(betas.std(1, ddof=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(dirs.reshape(-1, 3), axis=0), [0.05, 0.02, 0.01],
                               rtol=0.05)  # fmt: skip


def test_synth_cli_defaults_to_the_anny_bodies(tmp_path):
    from pipeline.synth.__main__ import main

    assert main(["--out", str(tmp_path), "--small"]) == 0
    for g in GENDERS:
        written = tmp_path / "body_models" / "smplh" / g / "model.npz"
        assert written.read_bytes() == (SMPLH / g / "model.npz").read_bytes()
    assert (tmp_path / "body_models" / "smplh" / "joint_regressors.npz").is_file()


def test_figure_render_is_a_shaded_silhouette():
    """tools.anny_export.figure's OpenGL-free shader: a sphere covers the pixels the CPU
    rasterizer covers through the same pinhole, on white, lit from the upper right."""
    import trimesh

    from pipeline.masks import render_masks
    from tools.anny_export.figure import _render

    res = 64
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    v = np.asarray(sphere.vertices) + [0.0, 0.0, 3.0]
    K = np.array([[80.0, 0.0, 31.5], [0.0, 80.0, 31.5], [0.0, 0.0, 1.0]])
    img = _render(v, sphere.faces, K, res)
    assert img.shape == (res, res, 3) and img.dtype == np.uint8
    uv = v @ K.T
    mask = render_masks((uv[:, :2] / uv[:, 2:])[None], v[None, :, 2], sphere.faces, res)[0]
    drawn = img.min(-1) < 250  # any coverage, the anti-aliased rim included
    assert mask.sum() > 400 and not (mask & ~drawn).any()
    rim = drawn & ~mask  # one pixel wide, as many on each side (a 1/4 px shift breaks this)
    assert rim.sum() < 0.2 * mask.sum()
    assert abs(int(rim[:, :32].sum()) - int(rim[:, 32:].sum())) <= 4
    assert abs(int(rim[:32].sum()) - int(rim[32:].sum())) <= 4
    assert np.all(img[~drawn] == 255)
    grey = img.astype(float).mean(-1)
    upper_right = grey[:32, 32:][mask[:32, 32:]].mean()
    lower_left = grey[32:, :32][mask[32:, :32]].mean()
    assert upper_right > lower_left + 20  # the key light
    assert grey[mask].std() > 15  # shaded, not a flat fill

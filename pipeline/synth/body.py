"""Procedural SMPL+H-format body models (licence-free stand-in for AMASS's SMPL+H files).

Each gender is written to ``DIR/smplh/<gender>/model.npz`` with exactly the keys, shapes and
dtypes of AMASS's "extended SMPL+H" files, so the same loader reads generated and real models:

==============  ============  =========================================================
key             shape         content
==============  ============  =========================================================
v_template      (V, 3) f64    rest T-pose, y-up, metres, facing +z, pelvis near origin
f               (F, 3) u32    closed, manifold triangle surface
J_regressor     (52, V) f64   non-negative rows summing to 1 (rings of vertices)
kintree_table   (2, 52) i64   SMPL-H parents (root parent 4294967295) and joint ids
weights         (V, 52) f64   skinning weights, rows sum to 1
posedirs        (V, 3, 459)   all zero: this model has no pose-corrective blend shapes
shapedirs       (V, 3, 16)    16 shape directions, displacement per unit beta
J               (52, 3) f64   ``J_regressor @ v_template``
==============  ============  =========================================================

The surface is the zero level set of a smooth union of round cones and ellipsoids placed
along the SMPL-H skeleton (separate fingers), extracted with marching cubes and decimated
with quadric edge collapse. Skinning weights come from which primitive a vertex belongs to,
diffused along the surface so joints bend smoothly. Generation is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from shards.schema import GENDERS

NUM_JOINTS = 52
NUM_BETAS = 16
ROOT_PARENT = 4294967295  # how SMPL-family files store the root's parent (uint32 -1)

#: SMPL-H parents (22 body joints, then 15 per hand: index, middle, pinky, ring, thumb).
SMPLH_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    + [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]
    + [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50],
    dtype=np.int64,
)

#: Names of the 16 shape directions, in beta order.
SHAPE_NAMES = (
    "stature",
    "girth",
    "leg_length",
    "shoulder_width",
    "hip_width",
    "belly",
    "arm_length",
    "head_size",
    "torso_length",
    "chest_depth",
    "neck_length",
    "hand_size",
    "foot_size",
    "arm_thickness",
    "thigh_thickness",
    "buttocks",
)

# Per-gender proportions: overall scale, shoulder / hip width factors, limb girth, breasts.
_GENDER_PARAMS = {
    "neutral": dict(scale=1.0, shoulder=1.0, hip=1.0, girth=1.0, chest=1.0, breasts=0.0),
    "male": dict(scale=1.05, shoulder=1.1, hip=0.94, girth=1.07, chest=1.06, breasts=0.0),
    "female": dict(scale=0.95, shoulder=0.9, hip=1.1, girth=0.95, chest=0.95, breasts=1.0),
}

# Finger layout of the LEFT hand relative to the wrist (x along the fingers, palm faces -y).
# name -> (base offset, direction, segment lengths incl. tip, radii at the 4 points)
_FINGERS = {
    "index": ((0.092, 0.004, 0.027), (1.0, 0.0, 0.10), (0.036, 0.025, 0.022), 0.0092),
    "middle": ((0.097, 0.004, 0.003), (1.0, 0.0, 0.0), (0.040, 0.028, 0.024), 0.0095),
    "pinky": ((0.082, 0.000, -0.042), (1.0, 0.0, -0.20), (0.027, 0.020, 0.019), 0.0080),
    "ring": ((0.093, 0.002, -0.020), (1.0, 0.0, -0.10), (0.037, 0.026, 0.023), 0.0090),
}
_FINGER_ORDER = ("index", "middle", "pinky", "ring", "thumb")
_BLEND = {"torso": 0.03, "body": 0.014, "hand": 0.0025, "__union__": 0.012}


@dataclass
class _Prim:
    """One implicit primitive: a round cone (a, b, ra, rb) or an ellipsoid (a=centre, radii)."""

    kind: str
    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    owner: int
    group: str


def _cone(a, b, ra, rb, owner, group="body") -> _Prim:
    return _Prim("cone", np.asarray(a, float), np.asarray(b, float), ra, rb, owner, group)


def _ell(c, radii, owner, group="body") -> _Prim:
    return _Prim("ell", np.asarray(c, float), np.asarray(radii, float), 0.0, 0.0, owner, group)


def _prim_sdf(p: _Prim, x: np.ndarray) -> np.ndarray:
    """Approximate signed distance of points ``x`` (..., 3) to primitive ``p``."""
    if p.kind == "cone":
        ba = p.b - p.a
        t = np.clip(((x - p.a) @ ba) / (ba @ ba), 0.0, 1.0)
        closest = p.a + t[..., None] * ba
        return np.linalg.norm(x - closest, axis=-1) - (p.ra + t * (p.rb - p.ra))
    q = (x - p.a) / p.b
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / p.b, axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def _prim_bounds(p: _Prim) -> tuple[np.ndarray, np.ndarray]:
    if p.kind == "cone":
        r = max(p.ra, p.rb)
        return np.minimum(p.a, p.b) - r, np.maximum(p.a, p.b) + r
    return p.a - p.b, p.a + p.b


def rest_skeleton(gender: str = "neutral") -> np.ndarray:
    """Designed rest joint locations (52, 3) of ``gender`` (before regression from vertices)."""
    g = _GENDER_PARAMS[gender]
    sh, hp = g["shoulder"], g["hip"]
    J = np.zeros((NUM_JOINTS, 3))
    body_left = {
        0: (0.0, -0.22, 0.02),
        1: (0.075 * hp, -0.31, 0.01),
        3: (0.0, -0.11, 0.0),
        4: (0.10 * hp, -0.70, 0.01),
        6: (0.0, 0.02, 0.02),
        7: (0.09 * hp, -1.09, -0.035),
        9: (0.0, 0.08, 0.025),
        10: (0.105 * hp, -1.155, 0.085),
        12: (0.0, 0.29, -0.01),
        13: (0.07 * sh, 0.20, 0.0),
        15: (0.0, 0.38, 0.035),
        16: (0.17 * sh, 0.225, -0.01),
        18: (0.17 * sh + 0.26, 0.215, -0.03),
        20: (0.17 * sh + 0.505, 0.215, -0.03),
    }
    mirror = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21}
    for j, pos in body_left.items():
        J[j] = pos
        if j in mirror:
            J[mirror[j]] = (-pos[0], pos[1], pos[2])
    for side, wrist, first in ((1.0, 20, 22), (-1.0, 21, 37)):
        for fi, name in enumerate(_FINGER_ORDER):
            pts = _finger_points(J[wrist], name, side)
            J[first + 3 * fi : first + 3 * fi + 3] = pts[:3]
    return J * g["scale"]


def _finger_points(wrist: np.ndarray, name: str, side: float) -> np.ndarray:
    """Joint 1, 2, 3 and the tip (4, 3) of one finger of the hand whose wrist is ``wrist``."""
    if name == "thumb":
        offs = np.array([(0.022, -0.012, 0.028), (0.048, -0.018, 0.050), (0.070, -0.021, 0.066)])
        tip = offs[2] + np.array([0.019, -0.002, 0.012])
        pts = np.vstack([offs, tip])
    else:
        base, direction, lengths, _ = _FINGERS[name]
        d = np.asarray(direction) / np.linalg.norm(direction)
        pts = [np.asarray(base)]
        for seg in lengths:
            pts.append(pts[-1] + seg * d)
        pts = np.array(pts)
    pts[:, 0] *= side
    return wrist + pts


def _primitives(J: np.ndarray, gender: str) -> list[_Prim]:
    """Round cones and ellipsoids along the skeleton ``J`` (already scaled)."""
    g = _GENDER_PARAMS[gender]
    s, gi, hp, sh, ch = g["scale"], g["girth"], g["hip"], g["shoulder"], g["chest"]
    P: list[_Prim] = []
    # torso, neck, head
    P.append(
        _ell(np.array([0, -0.27, 0.0]) * s, np.array([0.15 * hp, 0.12, 0.105]) * s, 0, "torso")
    )
    P.append(
        _ell(np.array([0, -0.12, 0.02]) * s, np.array([0.13, 0.14, 0.10]) * s * gi, 3, "torso")
    )
    P.append(
        _ell(np.array([0, 0.02, 0.03]) * s, np.array([0.14 * ch, 0.13, 0.105 * ch]) * s, 6, "torso")
    )
    P.append(
        _ell(np.array([0, 0.15, 0.015]) * s, np.array([0.15 * sh, 0.12, 0.10 * ch]) * s, 9, "torso")
    )
    P.append(
        _cone(
            np.array([0, 0.25, -0.01]) * s, np.array([0, 0.42, 0.0]) * s, 0.058 * s, 0.054 * s, 12
        )
    )
    P.append(_ell(np.array([0, 0.475, 0.02]) * s, np.array([0.076, 0.105, 0.092]) * s, 15))
    P.append(_ell(np.array([0, 0.42, 0.045]) * s, np.array([0.058, 0.05, 0.062]) * s, 15))
    P.append(
        _cone(
            np.array([0, 0.475, 0.10]) * s,
            np.array([0, 0.448, 0.128]) * s,
            0.012 * s,
            0.009 * s,
            15,
        )
    )
    for side, collar, shoulder, hip, knee, ankle, foot in (
        (1.0, 13, 16, 1, 4, 7, 10),
        (-1.0, 14, 17, 2, 5, 8, 11),
    ):
        m = np.array([side, 1.0, 1.0])
        P.append(
            _ell(np.array([0.077, 0.465, 0.01]) * s * m, np.array([0.012, 0.027, 0.017]) * s, 15)
        )
        P.append(
            _cone(
                np.array([0.03 * side, 0.215, -0.01]) * s, J[shoulder], 0.062 * s, 0.052 * s, collar
            )
        )
        if g["breasts"] > 0:
            P.append(
                _ell(
                    np.array([0.06, 0.125, 0.075]) * s * m,
                    np.array([0.055, 0.05, 0.045]) * s,
                    9,
                    "torso",
                )
            )
        P.append(
            _ell(
                np.array([0.07 * hp, -0.33, -0.045]) * s * m,
                np.array([0.08, 0.085, 0.07]) * s * gi,
                0,
                "torso",
            )
        )
        # legs and feet
        P.append(
            _cone(
                J[hip] + np.array([0.0, 0.03, 0.0]) * s,
                J[knee],
                0.085 * s * gi,
                0.055 * s * gi,
                hip,
            )
        )
        P.append(_cone(J[knee], J[ankle], 0.052 * s * gi, 0.035 * s, knee))
        calf = J[knee] + 0.3 * (J[ankle] - J[knee]) + np.array([0, 0, -0.018]) * s
        P.append(_ell(calf, np.array([0.05, 0.10, 0.05]) * s * gi, knee))
        heel = J[ankle] + np.array([0.0, -0.05, -0.05]) * s
        P.append(_cone(heel, J[foot] + np.array([0, -0.008, 0]) * s, 0.036 * s, 0.033 * s, ankle))
        P.append(
            _ell(
                J[ankle] + np.array([0.01 * side, -0.045, 0.05]) * s,
                np.array([0.045, 0.038, 0.09]) * s,
                ankle,
            )
        )
        P.append(
            _cone(
                J[foot],
                J[foot] + np.array([0.004 * side, -0.012, 0.065]) * s,
                0.03 * s,
                0.022 * s,
                foot,
            )
        )
        # arms
        elbow, wrist = shoulder + 2, shoulder + 4
        P.append(_cone(J[shoulder], J[elbow], 0.054 * s * gi, 0.04 * s * gi, shoulder))
        P.append(
            _ell(
                J[shoulder] + (J[elbow] - J[shoulder]) * 0.12,
                np.array([0.075, 0.058, 0.058]) * s * gi,
                shoulder,
            )
        )
        P.append(_cone(J[elbow], J[wrist], 0.042 * s * gi, 0.029 * s, elbow))
        # hand: palm and five 3-segment fingers
        P.append(
            _ell(
                J[wrist] + np.array([0.048 * side, 0.0, -0.006]) * s,
                np.array([0.052, 0.016, 0.046]) * s,
                wrist,
                "hand",
            )
        )
        first = 22 if side > 0 else 37
        for fi, name in enumerate(_FINGER_ORDER):
            pts = _finger_points(J[wrist] / s, name, side) * s
            r0 = (0.0115 if name == "thumb" else _FINGERS[name][3]) * s
            radii = [r0, 0.93 * r0, 0.86 * r0, 0.78 * r0]
            for k in range(3):
                P.append(
                    _cone(pts[k], pts[k + 1], radii[k], radii[k + 1], first + 3 * fi + k, "hand")
                )
    return P


def _smooth_field(
    prims: list[_Prim], grid: tuple[np.ndarray, ...], blend: dict[str, float]
) -> np.ndarray:
    """Signed distance of the smooth union: exp-sum per group, then groups blended together."""
    xs, ys, zs = grid
    shape = (len(xs), len(ys), len(zs))
    out = None
    for group, r in blend.items():
        if group == "__union__":
            continue
        acc = np.zeros(shape, dtype=np.float64)
        for p in prims:
            if p.group != group:
                continue
            lo, hi = _prim_bounds(p)
            lo, hi = lo - 6 * r - 0.01, hi + 6 * r + 0.01
            sl = [
                slice(np.searchsorted(a, l), np.searchsorted(a, h))
                for a, l, h in zip((xs, ys, zs), lo, hi)
            ]
            X, Y, Z = np.meshgrid(xs[sl[0]], ys[sl[1]], zs[sl[2]], indexing="ij")
            d = _prim_sdf(p, np.stack([X, Y, Z], axis=-1))
            acc[sl[0], sl[1], sl[2]] += np.exp(-d / r)
        field = -r * np.log(np.maximum(acc, 1e-30))
        field = np.minimum(field, 1.0)
        out = field if out is None else _smooth_union(out, field, blend["__union__"])
    return out


def _smooth_union(a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    """Smooth minimum of two signed-distance fields (log-sum-exp with radius ``r``)."""
    lo = np.minimum(a, b)
    return lo - r * np.log1p(np.exp(-np.abs(a - b) / r))


def _surface(
    prims: list[_Prim], voxel: float, target_vertices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on the implicit field, then quadric decimation to ~``target_vertices``."""
    import trimesh
    from skimage.measure import marching_cubes

    from pipeline.mesh_sampling import decimate

    lo = np.min([_prim_bounds(p)[0] for p in prims], axis=0) - 0.04
    hi = np.max([_prim_bounds(p)[1] for p in prims], axis=0) + 0.04
    grid = tuple(np.arange(l, h + voxel, voxel) for l, h in zip(lo, hi))
    field = _smooth_field(prims, grid, _BLEND)
    verts, faces, _, _ = marching_cubes(field.astype(np.float32), 0.0, spacing=(voxel,) * 3)
    verts = verts + lo
    mesh = trimesh.Trimesh(verts, faces[:, ::-1], process=True)
    parts = mesh.split(only_watertight=False)
    mesh = max(parts, key=lambda m: len(m.vertices))
    v, f = decimate(mesh.vertices, mesh.faces, target_vertices)
    out = trimesh.Trimesh(v, f, process=True)
    out.remove_unreferenced_vertices()
    if out.volume < 0:
        out.invert()
    return np.asarray(out.vertices, dtype=np.float64), np.asarray(out.faces, dtype=np.int64)


def _vertex_adjacency(faces: np.ndarray, n: int) -> sp.csr_matrix:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).astype(np.float64)
    deg = np.asarray(A.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(deg, 1)) @ A


def _skinning_weights(
    v: np.ndarray, faces: np.ndarray, prims: list[_Prim], iters: int = 12
) -> np.ndarray:
    """Hard assignment to the deepest primitive's joint, diffused along the surface."""
    d = np.stack([_prim_sdf(p, v) for p in prims], axis=1)
    owner = np.array([p.owner for p in prims])[np.argmin(d, axis=1)]
    W = np.zeros((len(v), NUM_JOINTS))
    W[np.arange(len(v)), owner] = 1.0
    M = _vertex_adjacency(faces, len(v))
    # fingers are short and finely meshed: blend them over fewer rings than the body
    hand_vertex = (owner >= 22) & (d.min(axis=1) > -0.05)
    W_hand = None
    for it in range(iters):
        W = 0.5 * W + 0.5 * (M @ W)
        if it == 2:
            W_hand = W.copy()
    W[hand_vertex] = W_hand[hand_vertex]
    W[W < 1e-4] = 0.0
    return W / W.sum(axis=1, keepdims=True)


def _closest_convex_weights(P: np.ndarray, target: np.ndarray, w0: np.ndarray) -> np.ndarray:
    """Weights ``w >= 0`` with ``sum(w) = 1`` and ``w @ P = target`` near the prior ``w0``.

    Minimum-norm correction of ``w0`` onto the affine constraints; vertices that come out
    negative are dropped and the correction repeated (active set)."""
    active = np.ones(len(P), bool)
    w = np.zeros(len(P))
    for _ in range(len(P)):
        A = np.vstack([P[active].T, np.ones(active.sum())])  # (4, n)
        b = np.append(target, 1.0)
        x0 = w0[active]
        corr = A.T @ np.linalg.lstsq(A @ A.T, b - A @ x0, rcond=None)[0]
        x = x0 + corr
        if np.all(x >= 0) or active.sum() <= 4:
            break
        idx = np.where(active)[0]
        active[idx[x < 0]] = False
    w[active] = np.clip(x, 0.0, None)
    return w / w.sum()


def _joint_regressor(v: np.ndarray, J: np.ndarray) -> np.ndarray:
    """Non-negative rows (52, V) summing to 1 whose vertex average reproduces each joint."""
    tree = cKDTree(v)
    R = np.zeros((NUM_JOINTS, len(v)))
    for j in range(NUM_JOINTS):
        d0 = tree.query(J[j])[0]
        for grow in (1.4, 2.0, 3.0, 5.0):
            radius = d0 * grow + 0.004
            idx = np.array(tree.query_ball_point(J[j], radius))
            if len(idx) < 8:
                idx = tree.query(J[j], k=8)[1]
            dist = np.linalg.norm(v[idx] - J[j], axis=1)
            w0 = np.exp(-((dist / radius) ** 2))
            w = _closest_convex_weights(v[idx], J[j], w0 / w0.sum())
            if np.linalg.norm(w @ v[idx] - J[j]) < 5e-4:
                break
        R[j, idx] = w
    return R


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _shape_dirs(v: np.ndarray, W: np.ndarray, J: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """16 shape directions (V, 3, 16): displacement of each vertex per unit beta.

    Each is an analytic field (scaling, radial offsets from the bones, regional bulges),
    smoothed along the surface so region boundaries leave no seams."""
    V = len(v)
    S = np.zeros((V, 3, NUM_BETAS))
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    sgn = np.where(x >= 0, 1.0, -1.0)
    # radial offset of each vertex from its bones (joint -> child segment), weight-blended
    child = {p: c for c, p in reversed(list(enumerate(SMPLH_PARENTS))) if p >= 0}
    child[0], child[9], child[20], child[21] = 3, 12, 25, 40
    radial = np.zeros_like(v)
    for j in range(NUM_JOINTS):
        a = J[j]
        b = J[child[j]] if j in child else J[j] + (J[j] - J[SMPLH_PARENTS[j]]) * 0.6
        ba = b - a
        t = np.clip(((v - a) @ ba) / (ba @ ba), 0, 1)
        radial += W[:, j : j + 1] * (v - (a + t[:, None] * ba))
    # outward normal scaled by the distance to the bones: "thicker" without folds where
    # neighbouring vertices belong to differently oriented bones
    import trimesh

    normals = np.asarray(trimesh.Trimesh(v, faces, process=False).vertex_normals)
    thick = np.linalg.norm(radial, axis=1)
    M = _vertex_adjacency(faces, V)
    for _ in range(10):
        thick = 0.5 * thick + 0.5 * (M @ thick)
    radial = normals * thick[:, None]
    group = lambda js: W[:, js].sum(axis=1)  # noqa: E731
    legs = group([1, 2, 4, 5, 7, 8, 10, 11])
    arms = group([16, 17, 18, 19] + list(range(20, 52)))
    hands = group(list(range(20, 52)))
    torso = group([0, 3, 6, 9, 13, 14])
    head = group([15])
    feet = group([7, 8, 10, 11])
    hip_y, sh_x, neck_y = J[1, 1], abs(J[16, 0]), J[12, 1]
    foot_y = v[:, 1].min()
    # 0 stature: uniform scale about the floor-centre point
    S[:, :, 0] = 0.035 * (v - np.array([0.0, foot_y, 0.0]))
    # 1 girth / weight: thicker everywhere around the bones, more on the trunk
    S[:, :, 1] = (0.07 + 0.05 * torso[:, None]) * radial
    # 2 leg length: stretch below the hips (body above keeps its place)
    S[:, 1, 2] = 0.07 * np.minimum(y - hip_y, 0.0)
    # 3 shoulder width: arms and shoulders move outwards
    S[:, 0, 3] = 0.022 * sgn * _smoothstep((np.abs(x) - 0.04) / (sh_x - 0.04)) * (y > hip_y + 0.2)
    # 4 hip width
    hip_zone = _smoothstep((J[3, 1] - y) / 0.15) * (1.0 - arms)
    S[:, 0, 4] = 0.02 * sgn * _smoothstep(np.abs(x) / 0.12) * hip_zone
    # 5 belly: forward bulge of the lower front torso
    bel = np.exp(-(((y - J[3, 1]) / 0.12) ** 2 + (x / 0.13) ** 2)) * _smoothstep(z / 0.08)
    S[:, 2, 5] = 0.035 * bel
    S[:, 1, 5] = -0.005 * bel
    # 6 arm length: stretch beyond the shoulders
    S[:, 0, 6] = 0.07 * sgn * np.maximum(np.abs(x) - sh_x, 0.0) * (y > hip_y + 0.2)
    # 7 head size: scale the head about its centre
    hc = np.array([0.0, J[15, 1] + 0.08, 0.03])
    S[:, :, 7] = 0.08 * head[:, None] * (v - hc)
    # 8 torso length: everything above the waist moves up
    S[:, 1, 8] = 0.03 * _smoothstep((y - J[3, 1]) / 0.25) * (1 - legs)
    # 9 chest depth
    chest = np.exp(-(((y - J[9, 1] - 0.04) / 0.1) ** 2)) * _smoothstep(z / 0.06) * (1 - arms)
    S[:, 2, 9] = 0.025 * chest
    # 10 neck length: head and neck move up
    S[:, 1, 10] = 0.015 * _smoothstep((y - neck_y + 0.03) / 0.08) * (1 - arms)
    # 11 hand size: scale hands about the wrists
    wr = np.where(x[:, None] >= 0, J[20], J[21])
    S[:, :, 11] = 0.1 * hands[:, None] * (v - wr)
    # 12 foot size: scale feet about the ankles (heel stays roughly grounded)
    an = np.where(x[:, None] >= 0, J[7], J[8])
    S[:, :, 12] = 0.1 * feet[:, None] * (v - an) * np.array([1.0, 0.0, 1.0])
    # 13 arm thickness
    S[:, :, 13] = 0.12 * (arms * (1 - hands))[:, None] * radial
    # 14 thigh thickness
    S[:, :, 14] = 0.12 * group([1, 2])[:, None] * radial
    # 15 buttocks
    but = np.exp(-(((y - J[1, 1] + 0.02) / 0.1) ** 2)) * _smoothstep(-z / 0.06)
    S[:, 2, 15] = -0.025 * but
    # smooth the region-based fields along the surface (not the pure scalings: smoothing
    # a linear field bends it at small features such as fingertips)
    regional = [1, 3, 4, 5, 8, 9, 10, 13, 14, 15]
    part = S[:, :, regional].reshape(V, -1)
    for _ in range(8):
        part = 0.5 * part + 0.5 * (M @ part)
    S[:, :, regional] = part.reshape(V, 3, len(regional))
    return S


def _keypoint_rows(v: np.ndarray, JR: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 and H36M-17 regressor rows (17, V) each, float32, rows summing to 1."""
    tree = cKDTree(v)
    head = W[:, 15] > 0.5

    def patch(target: np.ndarray, radius: float, mask: np.ndarray | None = None) -> np.ndarray:
        cand = np.where(mask)[0] if mask is not None else np.arange(len(v))
        c = cand[np.argmin(np.linalg.norm(v[cand] - target, axis=1))]
        idx = np.array(tree.query_ball_point(v[c], radius))
        w = np.exp(-((np.linalg.norm(v[idx] - v[c], axis=1) / radius) ** 2) * 2)
        row = np.zeros(len(v))
        row[idx] = w / w.sum()
        return row

    hv = v[head]
    top = hv[:, 1].max()
    front = hv[:, 2].max()
    nose = patch(hv[np.argmax(hv[:, 2])], 0.012, head)
    eye_y = top - 0.085
    eyes = [patch(np.array([s * 0.032, eye_y, front]), 0.01, head) for s in (1.0, -1.0)]
    ear_y = top - 0.11
    ears = [patch(np.array([s * 0.2, ear_y, 0.01]), 0.012, head) for s in (1.0, -1.0)]
    crown = patch(np.array([0.0, top, 0.02]), 0.03, head)
    coco = np.stack(
        [nose, eyes[0], eyes[1], ears[0], ears[1]]
        + [JR[j] for j in (16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)]
    )
    h36m = np.stack(
        [
            0.5 * (JR[1] + JR[2]),
            JR[2], JR[5], JR[8], JR[1], JR[4], JR[7],
            0.5 * (JR[3] + JR[6]),
            0.5 * JR[12] + 0.25 * (JR[16] + JR[17]),
            nose,
            0.6 * crown + 0.4 * JR[15],
            JR[16], JR[18], JR[20], JR[17], JR[19], JR[21],
        ]
    )  # fmt: skip
    return coco.astype(np.float32), h36m.astype(np.float32)


def _field_at(prims: list[_Prim], x: np.ndarray) -> np.ndarray:
    """The smooth-union field of :func:`_smooth_field` evaluated at points ``x`` (N, 3)."""
    out = None
    for group in ("torso", "body", "hand"):
        r = _BLEND[group]
        d = np.stack([_prim_sdf(p, x) for p in prims if p.group == group], axis=1)
        m = d.min(axis=1)
        field = m - r * np.log(np.exp(-(d - m[:, None]) / r).sum(axis=1))
        out = field if out is None else _smooth_union(out, field, _BLEND["__union__"])
    return out


def _fit_to_gender(
    v: np.ndarray, faces: np.ndarray, W: np.ndarray, J_src: np.ndarray, gender: str
) -> np.ndarray:
    """Move the neutral mesh's vertices onto ``gender``'s surface, keeping the topology.

    Vertices first follow their joints (weight-blended translation after the global scale),
    then alternate Newton steps along the field gradient onto the target surface with
    tangential Laplacian relaxation (keeps triangles evenly spread over new bulges)."""
    J_dst = rest_skeleton(gender)
    scale = _GENDER_PARAMS[gender]["scale"]
    x = v * scale + W @ (J_dst - J_src * scale)
    prims = _primitives(J_dst, gender)
    M = _vertex_adjacency(faces, len(v))
    eps = 1e-4

    def project(x: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(steps):
            f = _field_at(prims, x)
            g = np.stack([(_field_at(prims, x + eps * e) - f) / eps for e in np.eye(3)], axis=1)
            g2 = np.maximum((g * g).sum(axis=1, keepdims=True), 1e-6)
            x = x - np.clip(f[:, None] * g / g2, -0.02, 0.02)
        return x, g / np.sqrt(g2)

    x, n = project(x, 6)
    # hands are finely meshed and thin: relaxing them drags vertices off the finger joints
    nearest = np.argmin(np.stack([_prim_sdf(p, x) for p in prims], axis=1), axis=1)
    body = np.array([p.group != "hand" for p in prims])[nearest][:, None]
    for _ in range(6):
        lap = M @ x - x
        x = x + 0.5 * body * (lap - n * (lap * n).sum(axis=1, keepdims=True))
        x, n = project(x, 3)
    return x


@dataclass
class BodyModelArrays:
    """Arrays of one generated gender (the npz content plus the keypoint regressors)."""

    npz: dict[str, np.ndarray]
    coco17: np.ndarray
    h36m17: np.ndarray


def build_bodies(voxel: float = 0.005, target_vertices: int = 6500) -> dict[str, BodyModelArrays]:
    """Generate the SMPL+H-format arrays of all genders (deterministic, one shared topology).

    The neutral body is meshed; male and female are the same mesh fitted to their own
    implicit surfaces, so vertex ids (and the keypoint regressors) mean the same on all.
    """
    from tqdm import tqdm

    bar = tqdm(total=1 + len(GENDERS), desc="body models", unit="step", leave=False)
    J_n = rest_skeleton("neutral")
    prims = _primitives(J_n, "neutral")
    v_n, f = _surface(prims, voxel, target_vertices)
    # even out the decimated triangles (tangential relaxation, staying on the surface)
    v_n = _fit_to_gender(v_n, f, np.zeros((len(v_n), NUM_JOINTS)), J_n, "neutral")
    W = _skinning_weights(v_n, f, prims)
    bar.update()
    kintree = np.stack(
        [np.where(SMPLH_PARENTS < 0, ROOT_PARENT, SMPLH_PARENTS), np.arange(NUM_JOINTS)]
    )
    coco = h36m = None
    out = {}
    for gender in GENDERS:
        v = v_n if gender == "neutral" else _fit_to_gender(v_n, f, W, J_n, gender)
        JR = _joint_regressor(v, rest_skeleton(gender))
        J = JR @ v
        if coco is None:
            coco, h36m = _keypoint_rows(v, JR, W)
        npz = {
            "v_template": v.astype(np.float64),
            "f": f.astype(np.uint32),
            "J_regressor": JR.astype(np.float64),
            "kintree_table": kintree.astype(np.int64),
            "weights": W.astype(np.float64),
            "posedirs": np.zeros((len(v), 3, 9 * (NUM_JOINTS - 1)), dtype=np.float64),
            "shapedirs": _shape_dirs(v, W, J, f).astype(np.float64),
            "J": J.astype(np.float64),
        }
        out[gender] = BodyModelArrays(npz, coco, h36m)
        bar.update()
    bar.close()
    return out


_README = """Procedural SMPL+H-format body models (generated by `python -m pipeline.synth`).

{genders}/model.npz use the keys, shapes and dtypes of AMASS's "extended SMPL+H" files
(v_template, f, J_regressor, kintree_table, weights, posedirs, shapedirs (16 betas), J) and are
read by the same code as the real models. The surface is a smooth union of capsules and
ellipsoids along the SMPL-H skeleton; posedirs are all zero (no pose correctives).
Vertex count and topology differ from SMPL's 6890 vertices, so SMPL vertex ids do not apply:
joint_regressors.npz holds coco17 (17,V) and h36m17 (17,V) rows for these meshes (one
topology shared by all genders).
"""

_LICENSE = """These files are generated procedurally by this project and contain no data
derived from SMPL, SMPL+H, SMPL-X or AMASS. They are released under the project's MIT licence.
"""


def write_body_models(
    out_dir: Path, voxel: float = 0.005, target_vertices: int = 6500
) -> list[Path]:
    """Write ``out_dir/smplh/{neutral,male,female}/model.npz``, regressors, README, LICENSE."""
    root = Path(out_dir) / "smplh"
    written = []
    bodies = build_bodies(voxel, target_vertices)
    for gender, arr in bodies.items():
        path = root / gender / "model.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arr.npz)
        written.append(path)
    neutral = bodies["neutral"]
    np.savez(root / "joint_regressors.npz", coco17=neutral.coco17, h36m17=neutral.h36m17)
    (root / "README.txt").write_text(_README.format(genders="{" + ",".join(GENDERS) + "}"))
    (root / "LICENSE.txt").write_text(_LICENSE)
    return written + [root / "joint_regressors.npz"]

"""Schema-valid random datasets for tests and benchmarks (no body model, no pipeline).

Random but consistent: a blob-shaped body model (52-joint SMPL+H-like tree, random skinning
arrays, carried in topology.h5 as a build carries the real one) posed from random parameters
by ``shards.body`` and placed in a z-up world, joints from random convex regressors, a made-up
ring of OpenCV cameras with VideoPose3D-style distortion, crops
around the projected mesh, Gaussian heatmaps at the projected COCO joints, silhouettes from the
projected vertices.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cameras.crop import CROP_RES
from shards.manifest import write_manifest
from shards.schema import N_JOINTS, SHARD_PATTERN
from shards.topology import Topology, write_topology
from shards.writer import DEFAULT_COMPRESSION, ShardWriter


def project(x_cam: np.ndarray, k: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., N, 3) -> distorted image pixels (..., N, 2).

    ``k`` (..., 3, 3), ``dist`` (..., 5) = k1 k2 p1 p2 k3 with VideoPose3D's model.
    """
    xy = x_cam[..., :2] / x_cam[..., 2:3]
    r2 = (xy**2).sum(-1, keepdims=True)
    k1, k2, p1, p2, k3 = (dist[..., i, None, None] for i in range(5))
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    p = np.concatenate([p1, p2], -1)
    tan = (p * xy).sum(-1, keepdims=True)
    xyd = xy * (radial + tan) + p * r2
    f = np.stack([k[..., 0, 0], k[..., 1, 1]], -1)[..., None, :]
    c = np.stack([k[..., 0, 2], k[..., 1, 2]], -1)[..., None, :]
    return xyd * f + c


def look_at(center: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV extrinsics (R, t) of a camera at ``center`` looking at ``target`` (world z-up)."""
    fwd = target - center
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rot = np.stack([right, down, fwd])
    return rot, -rot @ center


def make_rig(n_cams: int, radius: float = 5.0) -> tuple[dict[str, np.ndarray], list[str]]:
    """A ring of ``n_cams`` 1000x1000 cameras at 1.5 m height looking at (0, 0, 0.9)."""
    rs, ts = [], []
    for i in range(n_cams):
        a = 2 * np.pi * i / n_cams + 0.3
        r, t = look_at(np.array([radius * np.cos(a), radius * np.sin(a), 1.5]), np.r_[0, 0, 0.9])
        rs.append(r)
        ts.append(t)
    kmat = np.array([[1150.0, 0, 500], [0, 1150.0, 500], [0, 0, 1]])
    dist = np.array([-0.2, 0.2, 1e-3, -1e-3, -0.01])
    rig = {
        "R": np.stack(rs).astype(np.float32),
        "t": np.stack(ts).astype(np.float32),
        "K": np.repeat(kmat[None], n_cams, 0).astype(np.float32),
        "dist": np.repeat(dist[None], n_cams, 0).astype(np.float32),
        "size": np.repeat(np.array([[1000, 1000]]), n_cams, 0).astype(np.int32),
    }
    return rig, [f"cam{i}" for i in range(n_cams)]


def crop_affine(box: np.ndarray, res: int = CROP_RES) -> np.ndarray:
    """(..., 3) boxes (cx, cy, side) -> (..., 2, 3) affine image px -> crop px (centre rule)."""
    cx, cy, side = box[..., 0], box[..., 1], box[..., 2]
    s = res / side
    a = np.zeros(box.shape[:-1] + (2, 3))
    a[..., 0, 0] = s
    a[..., 1, 1] = s
    a[..., 0, 2] = -s * (cx - side / 2) - 0.5
    a[..., 1, 2] = -s * (cy - side / 2) - 0.5
    return a


def apply_affine(a: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(..., 2, 3) affine applied to (..., N, 2) points."""
    return pts @ np.swapaxes(a[..., :2], -1, -2) + a[..., None, :, 2]


def gaussian_heatmaps(pts_crop: np.ndarray, visible: np.ndarray, res: int) -> np.ndarray:
    """(..., K, 2) crop px (224) -> (..., K, res, res) uint8 Gaussians, sigma 2*res/56."""
    h = (pts_crop + 0.5) * res / CROP_RES - 0.5
    sigma = 2.0 * res / 56
    g = np.arange(res, dtype=np.float32)
    gx = np.exp(-((g - h[..., 0, None]) ** 2) / (2 * sigma**2)).astype(np.float32)
    gy = np.exp(-((g - h[..., 1, None]) ** 2) / (2 * sigma**2)).astype(np.float32)
    gx *= 255 * np.asarray(visible, np.float32)[..., None]
    hm = gy[..., :, None] * gx[..., None, :]
    hm += 0.5  # round half up (values are >= 0)
    return hm.astype(np.uint8)


def _blob_template(nv: int, rng: np.random.Generator) -> np.ndarray:
    u = rng.normal(size=(nv, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return (u * np.array([0.25, 0.15, 0.85]) + np.array([0, 0, 0.9])).astype(np.float32)


FAKE_JOINTS, FAKE_BETAS, FAKE_POSE = 52, 16, 156  # the SMPL+H layout


def make_fake_body(
    template: np.ndarray, rng: np.random.Generator, genders=("neutral", "male", "female")
) -> dict[str, dict[str, np.ndarray]]:
    """Skinning arrays (``shards.body.BODY_ARRAYS``) of a 52-joint body over ``template``:
    joints at soft patches around random vertices, a random tree, weights falling off with
    the distance to the joints, small random shape and pose directions; genders differ in
    their shape directions and a slight scale."""
    nv = len(template)
    nj = FAKE_JOINTS
    anchor = template[rng.choice(nv, nj, replace=nv < nj)]
    d2 = ((anchor[:, None] - template[None]) ** 2).sum(-1)  # (J, Nv)
    jreg = np.exp(-d2 / (2 * 0.05**2))
    jreg /= jreg.sum(1, keepdims=True)
    parents = np.r_[0, [rng.integers(0, i) for i in range(1, nj)]].astype(np.int32)
    w = np.exp(-d2.T / (2 * 0.15**2)) + 1e-6
    w /= w.sum(1, keepdims=True)
    out = {}
    for i, g in enumerate(genders):
        out[g] = {
            "v_template": (template * (1.0 + 0.03 * i)).astype(np.float32),
            "shapedirs": rng.normal(scale=0.01, size=(nv, 3, FAKE_BETAS)).astype(np.float32),
            "posedirs": rng.normal(scale=0.002, size=(9 * (nj - 1), 3 * nv)).astype(np.float32),
            "J_regressor": jreg.astype(np.float32),
            "weights": w.astype(np.float32),
            "parents": parents,
        }
    return out


def _pose_vertices(body: dict, pose: np.ndarray, betas: np.ndarray, gender: np.ndarray):
    import torch

    from shards.body import BodySkinner

    sk = BodySkinner(body)
    with torch.no_grad():
        v = sk(torch.from_numpy(pose), torch.from_numpy(betas), torch.from_numpy(gender))
    return v.numpy().astype(np.float64)


def make_fake_arrays(
    sample_ids: np.ndarray,
    template: np.ndarray,
    regs: dict[str, np.ndarray],
    rig: dict[str, np.ndarray],
    views: int,
    res: int,
    masks: bool,
    rng: np.random.Generator,
    motion: int = 0,
    body: dict | None = None,
    store_vertices: bool = False,
) -> dict[str, np.ndarray]:
    """Field arrays for meshes ``sample_ids`` (schema names, ready for ``ShardWriter``).

    ``motion > 0`` makes consecutive ids ``motion``-long "sequences" whose pose changes slowly
    (as a build's shards hold consecutive frames of a motion); else every mesh is independent.
    ``body``: the skinning arrays (``make_fake_body``; made from ``template`` when None);
    ``store_vertices`` adds ``mesh/vertices`` (float16), as schema 1 always did.
    """
    m, nv = len(sample_ids), len(template)
    if body is None:
        body = make_fake_body(template, np.random.default_rng(12345))
    ang = rng.uniform(-np.pi, np.pi, m)
    ids = np.asarray(sample_ids)
    phase = (ids // max(motion, 1)) * 2.39996 + (ids % max(motion, 1)) * 0.02  # golden angle
    c, s = np.cos(ang), np.sin(ang)
    place = np.zeros((m, 4, 4), np.float32)
    place[:, 0, 0], place[:, 0, 1], place[:, 1, 0], place[:, 1, 1] = c, -s, s, c
    place[:, 2, 2] = place[:, 3, 3] = 1
    place[:, :2, 3] = rng.uniform(-0.5, 0.5, (m, 2))
    if motion > 0:  # a smooth change of every joint angle with the frame, phase per motion
        offs = np.random.default_rng(7).uniform(0, 2 * np.pi, FAKE_POSE)
        slow = phase - 0.5 * (ids % motion) * 0.02  # half the frame rate of the phase
        pose = 0.4 * np.sin(slow[:, None] + offs[None]) + rng.normal(scale=0.01, size=(m, 156))
    else:
        pose = rng.normal(scale=0.2, size=(m, FAKE_POSE))
    pose = pose.astype(np.float32)
    betas = rng.normal(size=(m, FAKE_BETAS)).astype(np.float32)
    gender = rng.integers(0, len(body), m).astype(np.uint8)
    codes = {g: i for i, g in enumerate(("neutral", "male", "female"))}
    gender = np.array([codes[list(body)[g]] for g in gender], np.uint8)
    trans = rng.normal(scale=0.05, size=(m, 3)).astype(np.float32)
    posed = _pose_vertices(body, pose, betas, gender) + trans[:, None].astype(np.float64)
    verts = posed @ np.swapaxes(place[:, :3, :3], 1, 2) + place[:, None, :3, 3]
    if store_vertices:
        verts = verts.astype(np.float16).astype(np.float32)  # what the file will hold
    j_coco = regs["coco17"] @ verts  # (J, Nv) @ (m, Nv, 3) -> (m, J, 3)
    j_h36m = regs["h36m17"] @ verts
    cam = np.broadcast_to(np.arange(views) % len(rig["R"]), (m, views))
    rot, tr, kk, dd = (rig[k][cam].astype(np.float64) for k in ("R", "t", "K", "dist"))

    def to_img(x):  # (m, n, 3) world -> (m, V, n, 2)
        xc = np.einsum("mvij,mnj->mvni", rot, x) + tr[:, :, None, :]
        return project(xc, kk, dd)

    v_img = to_img(verts[:, :: max(1, nv // 1000)])  # a subset is enough for box and mask
    lo, hi = v_img.min(2), v_img.max(2)
    box = np.concatenate([(lo + hi) / 2, 1.2 * (hi - lo).max(-1, keepdims=True)], -1)
    aff = crop_affine(box)
    kp = to_img(j_coco)
    kp_h = to_img(j_h36m)
    kp_c = apply_affine(aff, kp)
    vis = ((kp_c > -0.5) & (kp_c < CROP_RES - 0.5)).all(-1)
    vis_h = ((apply_affine(aff, kp_h) > -0.5) & (apply_affine(aff, kp_h) < CROP_RES - 0.5)).all(-1)
    out = {
        "sample_id": np.asarray(sample_ids, np.int64),
        "source/path": np.array([f"Fake/S{i % 7}/motion{i % 3}_poses.npz" for i in sample_ids]),
        "source/frame": (np.asarray(sample_ids) * 3).astype(np.int32),
        "body/pose": pose,
        "body/betas": betas,
        "body/trans": trans,
        "body/gender": gender,
        "body/placement": place,
        "joints3d/coco17": j_coco.astype(np.float32),
        "joints3d/h36m17": j_h36m.astype(np.float32),
        "views/camera": cam.astype(np.int16),
        "views/R": rot.astype(np.float32),
        "views/t": tr.astype(np.float32),
        "views/K": kk.astype(np.float32),
        "views/dist": dd.astype(np.float32),
        "views/kp2d": kp.astype(np.float32),
        "views/kp2d_h36m17": kp_h.astype(np.float32),
        "views/visible": vis.astype(np.uint8),
        "views/visible_h36m17": vis_h.astype(np.uint8),
        "views/crop": aff.astype(np.float32),
        "views/heatmaps": gaussian_heatmaps(kp_c, vis, res),
    }
    if store_vertices:
        out["mesh/vertices"] = verts.astype(np.float16)
    if masks:
        pix = np.floor((apply_affine(aff, v_img) + 0.5) * res / CROP_RES).astype(int)
        pix = np.clip(pix, 0, res - 1)
        mk = np.zeros((m, views, res, res), bool)
        mi, vi = np.meshgrid(np.arange(m), np.arange(views), indexing="ij")
        mk[mi[..., None], vi[..., None], pix[..., 1], pix[..., 0]] = True
        grown = mk.copy()  # close the gaps between projected vertices
        grown[..., 1:, :] |= mk[..., :-1, :]
        grown[..., :-1, :] |= mk[..., 1:, :]
        grown[..., :, 1:] |= mk[..., :, :-1]
        grown[..., :, :-1] |= mk[..., :, 1:]
        mk = grown
        out["views/masks"] = mk
        # builds with masks also flag self-occluded keypoints; any pattern will do here
        out["views/occluded"] = (rng.random((m, views, N_JOINTS)) < 0.2).astype(np.uint8)
    return out


def make_fake_dataset(
    root: str | os.PathLike,
    n_meshes: int = 64,
    views: int = 4,
    res: int = 56,
    nv: int = 431,
    masks: bool = False,
    shards: int = 2,
    seed: int = 0,
    *,
    val_shards: int = 0,
    compression_kind: str = DEFAULT_COMPRESSION,
    n_cams: int | None = None,
    motion: int = 0,
    store_vertices: bool = False,
) -> Path:
    """Write a complete random dataset (shards, topology.h5, manifest.json) under ``root``.

    Meshes are split as evenly as possible over ``shards`` files; the last ``val_shards`` shards
    form split ``"val"``, the rest ``"train"``. Sample ids are 0..n_meshes-1. ``motion``: see
    ``make_fake_arrays``; ``store_vertices``: also store ``mesh/vertices`` (schema 1's
    payload, for comparisons). Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    template = _blob_template(nv, rng)
    body = make_fake_body(template, rng)
    regs = {}
    for name in ("coco17", "h36m17"):  # local regressors: a soft patch around an anchor vertex
        anchor = template[rng.choice(nv, N_JOINTS, replace=nv < N_JOINTS)]
        d2 = ((anchor[:, None] - template[None]) ** 2).sum(-1)
        w = np.exp(-d2 / (2 * 0.08**2))
        regs[name] = (w / w.sum(1, keepdims=True)).astype(np.float32)
    rig, names = make_rig(n_cams or max(views, 4))
    faces = rng.integers(0, nv, size=(2 * nv, 3)).astype(np.int32)
    n_coarse = max(nv // 4, 1)
    down = np.zeros((n_coarse, nv), np.float32)
    down[np.arange(n_coarse), np.arange(n_coarse) * (nv // n_coarse)] = 1
    import scipy.sparse as sp

    write_topology(
        root,
        Topology(
            template=template,
            faces=faces,
            joint_names={k: [f"{k}_{i}" for i in range(N_JOINTS)] for k in regs},
            regressors=regs,
            sampling={"down_0": sp.csr_matrix(down), "up_0": sp.csr_matrix(down.T)},
            rig=rig,
            rig_names=names,
            body=body,
            body_attrs={"model_type": "fake", "num_betas": FAKE_BETAS},
        ),
    )
    bounds = np.linspace(0, n_meshes, shards + 1).round().astype(int)
    infos = []
    for i in range(shards):
        ids = np.arange(bounds[i], bounds[i + 1])
        split = "val" if i >= shards - val_shards else "train"
        w = ShardWriter(
            root / SHARD_PATTERN.format(i),
            compression_kind=compression_kind,
            split=split,
            attrs={"Nv": nv},
        )
        for a in range(0, len(ids), 256):
            w.append(
                make_fake_arrays(
                    ids[a : a + 256],
                    template,
                    regs,
                    rig,
                    views,
                    res,
                    masks,
                    rng,
                    motion,
                    body=body,
                    store_vertices=store_vertices,
                )
            )
        infos.append(w.close())
    dims = {"V": views, "R": res, "K": N_JOINTS, "J": N_JOINTS, "Nv": nv, "P": 156, "B": 16}
    dims["masks"] = int(masks)
    write_manifest(
        root,
        infos,
        dims=dims,
        config={"fake": True, "seed": seed, "n_meshes": n_meshes, "views": views, "res": res},
        skipped=[{"input": "Fake/S0/broken_poses.npz", "reason": "example skip"}],
    )
    return root

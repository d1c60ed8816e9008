"""Batched compute of one work unit: planned frames -> the field arrays of one shard.

frames -> body-model forward (chunked, per gender) -> COCO-17 / H36M-17 joints -> placement
(a yaw per ``render.orientation``, feet on the floor, root over the volume centre) ->
projection into every view (with lens distortion) -> crops -> heatmaps -> optional masks.

Orientation (``render.orientation``), the yaw about the vertical through the root:
``uniform`` draws it in ``[0, 2 pi)`` from ``default_rng([seed, sample_id])``; ``keep`` adds
none (AMASS's own root orientation; placement is then a translation); ``range`` turns the
body's facing (from its hips, ``cameras.placement.hip_heading``) toward camera C1 (the rig's
first camera, index 0: Human3.6M S1's 54138969) plus ``U(-deg, deg)`` (``render.orientation_deg``)
from the same generator.

Crop: a square box around the projected **COCO-17 and H36M-17 joints** (34 points, including
head top and pelvis), side = ``crop_scale`` (1.2) x their largest extent. Keypoints are what a
top-down pose network's detector box follows at test time, and 34 points cost nothing to
project, whereas 6890 vertices per view would dominate the unit's time.

Every random draw derives from (seed, sample_id), so a sample's content does not depend on
which unit, worker or attempt computes it. A sample whose pose, shape or translation is not
finite, or whose source file fails to load, is skipped with a one-line reason.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import model_validator

from cameras.crop import CROP_RES, apply_affine, crop_affine, crop_box
from cameras.placement import hip_heading, placement_transform
from cameras.projection import project
from cameras.rig import h36m_volume_centre, make_rig
from pipeline.amass import AmassFileError, load_sequence
from pipeline.body_models import load_body_model
from pipeline.joints import KeypointRegressor
from pipeline.masks import keypoint_occlusion, render_masks
from shards import masks as mask_codec
from shards.config import Field, Section
from shards.heatmaps import encode
from shards.schema import GENDERS


class RenderConfig(Section):
    """Per-view output settings (the ``render`` section of a build config)."""

    views: int = Field(8, ge=1)  # 4 Human3.6M S1 cameras + 4 interpolated
    res: int = Field(56, ge=4)  # heatmap / mask side R
    masks: bool = False
    sigma: float | None = None  # Gaussian sigma in heatmap px (None: 2 px at R=56, scaled with R)
    crop_scale: float = 1.2  # crop side = 1.2 x extent of the projected COCO-17 + H36M-17 joints
    body_chunk: int = Field(64, ge=1)  # body-model forward batch (64 is fastest on one core)
    #: per-keypoint self-occlusion flags (``views/occluded``); None: when masks are on
    occlusion: bool | None = None
    #: yaw added to each mesh: ``uniform`` in [0, 2 pi), ``keep`` AMASS's own orientation,
    #: ``range`` facing camera C1 (index 0) +- ``orientation_deg`` (module docstring)
    orientation: Literal["uniform", "keep", "range"] = "uniform"
    orientation_deg: float = Field(45.0, ge=0.0, le=180.0)  # ``range``'s half-width, degrees

    @model_validator(mode="before")
    @classmethod
    def _occlusion_follows_masks(cls, d):
        if isinstance(d, dict) and d.get("occlusion") is None:
            d = {**d, "occlusion": d.get("masks", False)}
        return d


@dataclass
class UnitResult:
    """What one unit produces: shard arrays (None when every sample was skipped) and skips."""

    arrays: dict[str, np.ndarray] | None
    skips: list[dict] = field(default_factory=list)


class Context:
    """Per-worker state: body models, regressors, rig and a small cache of loaded sequences."""

    def __init__(
        self,
        amass_root: Path,
        body_models: Path,
        render: RenderConfig,
        model_type: str = "smplh",
        cache: int = 32,
    ):
        self.amass_root = Path(amass_root)
        self.body_models_dir = Path(body_models)
        self.render = render
        self.model_type = model_type
        self._faces: np.ndarray | None = None
        self.rig = make_rig(views=render.views)
        self._models: dict[tuple[str, str], object] = {}
        self._seqs: OrderedDict[str, object] = OrderedDict()
        self._cache = cache

    def sequence(self, rel: str):
        """Load (and cache) one AMASS sequence; raises AmassFileError with a one-line reason."""
        if rel in self._seqs:
            self._seqs.move_to_end(rel)
            return self._seqs[rel]
        seq = load_sequence(self.amass_root / rel, self.amass_root)
        self._seqs[rel] = seq
        if len(self._seqs) > self._cache:
            self._seqs.popitem(last=False)
        return seq

    def model(self, model_type: str, gender: str):
        """Cached body model (pipeline.body_models)."""
        key = (model_type, gender)
        if key not in self._models:
            self._models[key] = load_body_model(
                self.body_models_dir, model_type=model_type, gender=gender
            )
        return self._models[key]

    def regressors(self, model_type: str):
        """Stacked COCO-17 + H36M-17 vertex regressor (34, Nv), sparse CSR: the same pure vertex
        regressors topology.h5 ships, so shard joints equal what the trainer regresses from the
        ground-truth mesh."""
        key = ("regressors", model_type)
        if key not in self._models:
            model = self.model(model_type, "neutral")
            kr = KeypointRegressor.from_body_models(
                self.body_models_dir, model_type, model.num_vertices, model.num_joints
            )
            dense = np.concatenate(kr.vertex_regressors(model.j_regressor)).astype(np.float32)
            self._models[key] = sp.csr_matrix(dense)
        return self._models[key]

    def skinner(self, model_type: str, gender: str):
        """Cached ``shards.body`` skinning of one gendered model: the same float32 blend
        skinning the reader recomputes vertices with (and ~2x faster than the smplx layer)."""
        key = ("skinner", model_type, gender)
        if key not in self._models:
            from shards.body import BodySkinner  # heavy: torch

            arrays = self.model(model_type, gender).skinning_arrays()
            self._models[key] = BodySkinner({gender: arrays}, model_type).genders[gender]
        return self._models[key]

    @property
    def faces(self) -> np.ndarray:
        if self._faces is None:
            self._faces = np.asarray(self.model(self.model_type, "neutral").faces)
        return self._faces


def process_unit(
    ctx: Context,
    paths: list[str],
    frames: np.ndarray,
    sample_ids: np.ndarray,
    seed: int,
    store_vertices: bool = False,
) -> UnitResult:
    """Compute the shard arrays of one unit (samples in plan order).

    Vertices are not stored (schema 2: the reader recomputes them from ``body/*`` with the
    skinning arrays topology.h5 carries) unless ``store_vertices`` (float16, schema 1's way).

    Visibility flags: a joint is visible (1) when it is in front of the camera, inside the
    image and inside the crop's R x R grid; self-occlusion is not tested. Heatmaps are drawn
    for every joint in front of the camera (also just outside the crop, see heatmaps.encode).
    """
    idx, pose, trans, betas, genders, skips = body_params(ctx, paths, frames, sample_ids)
    if idx.size == 0:
        return UnitResult(None, skips)
    ids = np.asarray(sample_ids, np.int64)[idx]

    verts, coco, h36m = pose_bodies(ctx, pose, betas, trans, genders, ctx.model_type)
    placement = _place(verts, h36m, ids, seed, ctx.render, ctx.rig[0].centre)
    verts, coco, h36m = (_apply(placement, x) for x in (verts, coco, h36m))
    views, extra = _views(ctx, verts, coco, h36m)
    out = {
        "sample_id": ids,
        "source/path": np.array([paths[i] for i in idx], dtype=object),
        "source/frame": np.asarray(frames, np.int32)[idx],
        "body/pose": pose,
        "body/betas": betas,
        "body/trans": trans,
        "body/gender": genders,
        "body/placement": placement.astype(np.float32),
        "joints3d/coco17": coco.astype(np.float32),
        "joints3d/h36m17": h36m.astype(np.float32),
        **views,
    }
    if store_vertices:
        out["mesh/vertices"] = verts.astype(np.float16)
    r = ctx.render
    if r.masks or r.occlusion:
        masks, occluded = _silhouettes(ctx, verts, *extra)
        if r.masks:
            out["views/masks"] = masks
        if r.occlusion:
            out["views/occluded"] = occluded
    return UnitResult(out, skips)


def body_params(ctx: Context, paths: list[str], frames: np.ndarray, sample_ids: np.ndarray):
    """Load each planned frame's pose, translation, shape and gender. Returns (kept sample
    positions, pose, trans, betas, gender codes of the kept samples, skips): a sample whose
    file fails to load, whose frame is past the end or whose values are not finite is skipped
    with its reason."""
    m_all = len(sample_ids)
    skips: list[dict] = []
    keep = np.ones(m_all, bool)
    pose = trans = betas = None
    genders = np.zeros(m_all, np.uint8)
    for rel in dict.fromkeys(paths):  # unique, in first-seen order
        sel = np.flatnonzero(np.asarray(paths) == rel)
        try:
            seq = ctx.sequence(rel)
        except AmassFileError as e:
            keep[sel] = False
            skips += [_skip(sample_ids[i], rel, frames[i], str(e)) for i in sel]
            continue
        poses = seq.poses_for(ctx.model_type)  # the layout of the body-model family posed
        n = poses.shape[0]
        fr = frames[sel]
        bad = fr >= n
        if pose is None:
            pose = np.zeros((m_all, poses.shape[1]), np.float32)
            trans = np.zeros((m_all, 3), np.float32)
            betas = np.zeros((m_all, np.asarray(seq.betas).shape[-1]), np.float32)
        frc = np.minimum(fr, n - 1)
        pose[sel] = poses[frc]
        trans[sel] = seq.trans[frc]
        betas[sel] = np.asarray(seq.betas, np.float32)
        genders[sel] = GENDERS.index(str(seq.gender))
        finite = np.isfinite(pose[sel]).all(1) & np.isfinite(trans[sel]).all(1)
        finite &= np.isfinite(betas[sel]).all(1)
        for j, i in enumerate(sel):
            if bad[j]:
                keep[i] = False
                skips.append(_skip(sample_ids[i], rel, fr[j], f"frame {fr[j]} >= {n} frames"))
            elif not finite[j]:
                keep[i] = False
                skips.append(_skip(sample_ids[i], rel, fr[j], "non-finite pose/trans/betas"))
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return idx, None, None, None, None, skips
    assert pose is not None and trans is not None and betas is not None
    return idx, pose[idx], trans[idx], betas[idx], genders[idx], skips


def _views(ctx: Context, verts: np.ndarray, coco: np.ndarray, h36m: np.ndarray):
    """Every view of placed bodies: cameras, projected keypoints, crops, visibility and
    heatmaps (the ``views/*`` fields but masks). Returns (fields, the arguments
    :func:`_silhouettes` needs after the vertices)."""
    r = ctx.render
    cams = ctx.rig
    m = verts.shape[0]
    Rs, ts, Ks, ds, size = cams.R, cams.t, cams.K, cams.dist, cams.image_size
    pts = np.concatenate([coco, h36m], axis=1)[:, None]  # (M, 1, 34, 3)
    proj = project(pts, Rs, ts, Ks, ds, distort=True, image_size=size)
    uv = proj.uv  # (M, V, 34, 2)
    box = crop_box(uv, proj.visible, scale=r.crop_scale)
    crop224 = crop_affine(box, CROP_RES)  # (M, V, 2, 3)
    crop_r = crop_affine(box, r.res)
    kp_hm = apply_affine(crop_r, uv[:, :, :17])
    vis = proj.visible[:, :, :17]
    hm, _ = encode(kp_hm, vis, r.res, sigma=r.sigma, dtype=np.uint8)
    vis_c = vis & _inside(kp_hm, r.res)
    vis_h = proj.visible[:, :, 17:] & _inside(apply_affine(crop_r, uv[:, :, 17:]), r.res)
    V = len(cams)
    fields = {
        "views/camera": np.broadcast_to(np.arange(V, dtype=np.int16), (m, V)),
        "views/R": np.broadcast_to(Rs.astype(np.float32), (m, V, 3, 3)),
        "views/t": np.broadcast_to(ts.astype(np.float32), (m, V, 3)),
        "views/K": np.broadcast_to(Ks.astype(np.float32), (m, V, 3, 3)),
        "views/dist": np.broadcast_to(ds.astype(np.float32), (m, V, 5)),
        "views/kp2d": uv[:, :, :17].astype(np.float32),
        "views/kp2d_h36m17": uv[:, :, 17:].astype(np.float32),
        "views/visible": vis_c.astype(np.uint8),
        "views/visible_h36m17": vis_h.astype(np.uint8),
        "views/crop": crop224.astype(np.float32),
        "views/heatmaps": hm,
    }
    return fields, (Rs, ts, Ks, ds, crop_r, kp_hm, proj.depth)


def _skip(sample_id, path: str, frame, reason: str) -> dict:
    """A skipped sample as the manifest lists it (``input`` relative to the archive root)."""
    return {"input": path, "sample_id": int(sample_id), "frame": int(frame), "reason": reason}


def _inside(kp: np.ndarray, res: int) -> np.ndarray:
    return ((kp >= -0.5) & (kp <= res - 0.5)).all(-1)


def _apply(T: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply (M, 4, 4) transforms to (M, N, 3) float32 points (one batched GEMM)."""
    import torch  # heavy: torch

    R = torch.from_numpy(np.ascontiguousarray(T[:, :3, :3].transpose(0, 2, 1), np.float32))
    t = torch.from_numpy(np.ascontiguousarray(T[:, None, :3, 3], np.float32))
    return torch.baddbmm(t, torch.from_numpy(np.ascontiguousarray(x, np.float32)), R).numpy()


def pose_bodies(
    ctx: Context,
    pose: np.ndarray,
    betas: np.ndarray,
    trans: np.ndarray,
    genders: np.ndarray,
    model_type: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posed vertices (M, Nv, 3) and COCO-17 / H36M-17 joints (M, 17, 3), AMASS world frame."""
    import torch  # heavy: torch

    verts = None
    chunk = ctx.render.body_chunk
    for g in np.unique(genders):
        sel = np.flatnonzero(genders == g)
        skin = ctx.skinner(model_type, GENDERS[int(g)])
        if verts is None:
            verts = np.empty((len(pose), skin.v_template.shape[0], 3), np.float32)
        with torch.no_grad():
            for a in range(0, len(sel), chunk):
                s = sel[a : a + chunk]
                v = skin(torch.from_numpy(pose[s]), torch.from_numpy(betas[s])).numpy()
                verts[s] = v + trans[s, None]
    assert verts is not None
    reg = ctx.regressors(model_type)
    m, nv = verts.shape[:2]
    # (34, Nv) sparse @ (Nv, M*3): one sparse product for every mesh and both joint sets
    j = (reg @ verts.transpose(1, 0, 2).reshape(nv, m * 3)).reshape(-1, m, 3).transpose(1, 0, 2)
    j = np.ascontiguousarray(j, dtype=np.float32)
    return verts, j[:, :17], j[:, 17:]


def placement_yaw(
    h36m: np.ndarray, ids: np.ndarray, seed: int, render: RenderConfig, camera: np.ndarray
) -> np.ndarray:
    """(M,) yaw of each mesh under ``render.orientation`` (module docstring); random draws
    come from ``default_rng([seed, id_i])``. ``h36m`` (M, 17, 3) unplaced H36M-17 joints
    (R_Hip 1, L_Hip 4), ``camera`` (3,) the centre of the camera to face (``range``)."""
    if render.orientation == "keep":
        return np.zeros(len(ids))
    if render.orientation == "uniform":
        draw = [np.random.default_rng([seed, int(i)]).uniform(0.0, 2.0 * np.pi) for i in ids]
        return np.array(draw)
    to_cam = np.asarray(camera, np.float64)[:2] - h36m_volume_centre()[:2]  # from the placed root
    toward = np.arctan2(to_cam[1], to_cam[0])
    half = np.deg2rad(render.orientation_deg)
    spread = np.array([np.random.default_rng([seed, int(i)]).uniform(-half, half) for i in ids])
    return toward - hip_heading(h36m[:, 4], h36m[:, 1]) + spread


def _place(
    verts: np.ndarray,
    h36m: np.ndarray,
    ids: np.ndarray,
    seed: int,
    render: RenderConfig,
    camera: np.ndarray,
) -> np.ndarray:
    """(M, 4, 4) placements: root over the volume centre, lowest vertex on the floor, turned
    by :func:`placement_yaw`."""
    yaw = placement_yaw(h36m, ids, seed, render, camera)
    lowest = verts[np.arange(len(verts)), verts[:, :, 2].argmin(axis=1)][:, None]  # yaw keeps z
    return placement_transform(lowest, np.random.default_rng(0), root=h36m[:, 0], yaw=yaw)


def _silhouettes(
    ctx: Context,
    verts: np.ndarray,
    Rs: np.ndarray,
    ts: np.ndarray,
    Ks: np.ndarray,
    ds: np.ndarray,
    crop_r: np.ndarray,
    kp: np.ndarray,
    kp_depth: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(M, V, MB) bit-packed silhouettes of the placed meshes in each view's R x R crop, and
    (M, V, 17) uint8 self-occlusion flags of the COCO keypoints ``kp`` (crop px at R) from the
    same depth buffer."""
    r = ctx.render
    proj = project(verts[:, None], Rs, ts, Ks, ds, distort=True)  # (M, V, Nv, ...)
    uv = apply_affine(crop_r, proj.uv)
    m, v = uv.shape[:2]
    masks, depth = render_masks(
        uv.reshape(m * v, -1, 2), proj.depth.reshape(m * v, -1), ctx.faces, r.res,
        return_depth=True,
    )  # fmt: skip
    k = kp.shape[2]
    occ = keypoint_occlusion(kp.reshape(m * v, k, 2), kp_depth[:, :, :k].reshape(m * v, k), depth)
    packed = mask_codec.encode(masks.reshape(m, v, r.res, r.res))
    return packed, occ.reshape(m, v, k).astype(np.uint8)

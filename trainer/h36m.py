"""Zero-shot evaluation on Human3.6M from 2D keypoints (the seed's Table 2 protocol).

Inputs are VideoPose3D's files (docs/h36m.md): ``data_3d_h36m.npz`` (``positions_3d`` =
{subject: {action: (N, 32, 3)}}, world frame, metres) and a 2D file (``positions_2d`` =
{subject: {action: [4 x (N', 17, 2)]}}, image pixels, H36M-17 order, cameras in the order of
:data:`cameras.h36m.CAMERA_IDS`; ``N' >= N``, truncated to ``N`` as VideoPose3D does).

Per subject, action, camera and every ``stride``-th frame:

1. the 17 kept mocap joints go into the camera's frame with the subject's own extrinsics;
2. the 2D keypoints are cropped with the build's rule (:func:`cameras.crop.crop_box`, scale
   from the dataset's build config) and drawn as COCO-17 heatmaps with the shards' codec
   (:mod:`shards.heatmaps`, resolution and sigma from the dataset's manifest); each COCO
   channel comes from one H36M-17 joint (:data:`COCO_FROM_H36M17`), eyes and ears stay empty;
3. the model's full mesh gives H36M-17 joints through the dataset's regressor; MPJPE and
   PA-MPJPE on H36M-14, both sides pelvis-centred (as :func:`trainer.metrics.mesh_metrics`).

The baseline predicts the mean pelvis-centred camera-frame training mesh of the checkpoint's
shards for every frame (:func:`trainer.evaluate.mean_train_mesh`, as ``trainer eval`` does).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cameras.camera import Camera
from cameras.crop import SCALE, apply_affine, crop_affine, crop_box
from cameras.h36m import CAMERA_IDS, load_h36m_cameras
from cameras.projection import world_to_camera
from shards.heatmaps import dataset_codec, encode
from shards.manifest import load_manifest
from shards.topology import joint_provenance
from trainer.data import model_input
from trainer.evaluate import load_model, mean_train_mesh
from trainer.metrics import H36M_TO_14, mpjpe, pa_mpjpe

#: H36M-17 = the 32-joint mocap skeleton less joints 4, 5, 9, 10, 11, 16, 20-24, 28-31.
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
#: COCO-17 channel -> H36M-17 joint drawn in it (None: left empty). Same side names on both
#: sides (the subject's left); COCO's nose takes H36M's 'Nose' (mocap joint 14, METRO's name).
COCO_FROM_H36M17: tuple[int | None, ...] = (
    9,  # nose <- Nose
    None,  # left_eye: no H36M joint
    None,  # right_eye
    None,  # left_ear
    None,  # right_ear
    11,  # left_shoulder <- L_Shoulder
    14,  # right_shoulder <- R_Shoulder
    12,  # left_elbow <- L_Elbow
    15,  # right_elbow <- R_Elbow
    13,  # left_wrist <- L_Wrist
    16,  # right_wrist <- R_Wrist
    4,  # left_hip <- L_Hip
    1,  # right_hip <- R_Hip
    5,  # left_knee <- L_Knee
    2,  # right_knee <- R_Knee
    6,  # left_ankle <- L_Ankle
    3,  # right_ankle <- R_Ankle
)
DEFAULT_SUBJECTS = ("S9", "S11")
DEFAULT_STRIDE = 5  # 10 fps of the 50 fps capture
PAPER_TABLE2 = {1: (92.5, 61.7), 2: (89.5, 61.4), 4: (89.0, 58.4), 8: (88.3, 58.2)}
METRICS = ("mpjpe", "pa_mpjpe")


def _load_npz_dict(path: Path, key: str) -> tuple[dict, object]:
    """``np.load(path, allow_pickle=True)[key].item()`` with one-line errors, and the
    ``metadata`` entry's ``.item()`` (None when absent or not a pickled object)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:  # VideoPose3D's files hold pickled dicts: only open files you trust
        npz = np.load(path, allow_pickle=True)
    except Exception as e:  # numpy raises OSError, ValueError, UnpicklingError, EOFError ...
        raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__})") from None
    if not hasattr(npz, "files"):
        raise ValueError(f"{path}: not an .npz archive (VideoPose3D layout expected)")
    if key not in npz.files:
        raise ValueError(f"{path}: no '{key}' array (has {', '.join(npz.files) or 'nothing'})")
    with npz:
        try:
            data = npz[key].item()
        except ValueError:
            data = None
        try:
            meta = npz["metadata"].item() if "metadata" in npz.files else None
        except ValueError:
            meta = None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: '{key}' must hold a {{subject: {{action: ...}}}} dict")
    return data, meta


def load_h36m_3d(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``positions_3d`` of ``data_3d_h36m.npz``: {subject: {action: (N, 32, 3) float}}."""
    path = Path(path)
    data, _ = _load_npz_dict(path, "positions_3d")
    for subject, actions in data.items():
        for action, pos in actions.items():
            a = np.asarray(pos)
            if a.ndim != 3 or a.shape[1:] != (32, 3) or not np.issubdtype(a.dtype, np.floating):
                raise ValueError(
                    f"{path}: positions_3d[{subject!r}][{action!r}] must be float (N, 32, 3), "
                    f"got {a.dtype} {a.shape}"
                )
    return data


def load_h36m_2d(path: str | Path) -> dict[str, dict[str, list[np.ndarray]]]:
    """``positions_2d`` of a VideoPose3D 2D file: {subject: {action: [4 x (N, 17, 2)]}}."""
    path = Path(path)
    data, meta = _load_npz_dict(path, "positions_2d")
    n = meta.get("num_joints") if isinstance(meta, dict) else None
    if n is not None and n != 17:
        raise ValueError(f"{path}: metadata says {n} joints, H36M-17 expected")
    for subject, actions in data.items():
        for action, views in actions.items():
            where = f"positions_2d[{subject!r}][{action!r}]"
            if not isinstance(views, (list, tuple)) or len(views) != len(CAMERA_IDS):
                raise ValueError(f"{path}: {where} must be a list of {len(CAMERA_IDS)} cameras")
            for c, kp in enumerate(views):
                a = np.asarray(kp)
                if a.ndim != 3 or a.shape[1] != 17 or a.shape[2] < 2:
                    raise ValueError(
                        f"{path}: {where}[{c}] must be (N, 17, 2) pixels, got {a.shape}"
                    )
    return data


def camera_frame_joints(positions: np.ndarray, cam: Camera) -> np.ndarray:
    """(F, 32, 3) world mocap (metres) -> (F, 17, 3) H36M-17 joints in ``cam``'s frame."""
    return world_to_camera(np.asarray(positions, np.float64)[:, H36M32_TO_17], cam.R, cam.t)


def coco_from_h36m17(kp17: np.ndarray, nose: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(F, 17, 2) H36M-17 keypoints -> COCO-17 keypoints (F, 17, 2) and valid (F, 17) bool.

    Channels without an H36M joint (eyes, ears; the nose too with ``nose=False``) get NaN and
    valid False; a non-finite input keypoint is invalid too.
    """
    kp17 = np.asarray(kp17, np.float64)
    out = np.full(kp17.shape[:-2] + (len(COCO_FROM_H36M17), 2), np.nan)
    for c, j in enumerate(COCO_FROM_H36M17):
        if j is not None and (nose or c != 0):
            out[..., c, :] = kp17[..., j, :]
    return out, np.isfinite(out).all(-1)


def heatmaps_from_2d(
    kp17: np.ndarray, res: int, sigma: float, crop_scale: float = SCALE, nose: bool = True
) -> np.ndarray:
    """(F, 17, 2) image-pixel H36M-17 keypoints -> (F, 17, res, res) uint8 COCO-17 heatmaps.

    The crop box is the build's: square, centred on the keypoints' bounding box, side
    ``crop_scale`` x its larger extent (the build boxes COCO-17 + H36M-17 joints; here the
    H36M-17 keypoints, which include the head top, are all there is).
    """
    kp17 = np.asarray(kp17, np.float64)
    box = crop_box(kp17, np.isfinite(kp17).all(-1), scale=crop_scale)
    coco, valid = coco_from_h36m17(kp17, nose)
    kp_hm = apply_affine(crop_affine(box, res), coco)
    hm, _ = encode(kp_hm, valid & np.isfinite(kp_hm).all(-1), res, sigma=sigma, dtype=np.uint8)
    return hm


def joint_errors(
    pred_vertices: np.ndarray, gt_joints17: np.ndarray, regressor: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-sample MPJPE and PA-MPJPE (mm) on H36M-14, pelvis-centred, joints regressed from
    the predicted mesh with the H36M-17 regressor (mesh_metrics without the PVE)."""
    pred = np.einsum("jv,bvc->bjc", regressor, pred_vertices)
    pj = (pred - pred[:, :1])[:, H36M_TO_14]
    gj = (gt_joints17 - gt_joints17[:, :1])[:, H36M_TO_14]
    return {"mpjpe": 1000.0 * mpjpe(pj, gj), "pa_mpjpe": 1000.0 * pa_mpjpe(pj, gj)}


def _describe(prov: object) -> str | None:
    """``"source=..., file=..., sha256=..."`` of a provenance record; None when unrecorded."""
    if not isinstance(prov, dict) or all(str(v) == "unknown" for v in prov.values()):
        return None
    keys = sorted(prov, key=lambda k: (k != "source", k))
    return ", ".join(f"{k}={prov[k]}" for k in keys)


def regressor_provenance(root: str | Path) -> str:
    """Which H36M-17 regressor the dataset used, as it records it, else ``"unknown"``.

    Reads the ``provenance_*`` attributes of topology.h5's ``joints/h36m17``
    (:func:`shards.topology.joint_provenance`), then the manifest's
    ``provenance.regressors.h36m17``; datasets built before either was written say nothing.
    """
    try:
        found = _describe(joint_provenance(root).get("h36m17"))
        if found:
            return found
        regs = (load_manifest(root).provenance or {}).get("regressors", {})
        found = _describe(regs.get("h36m17") if isinstance(regs, dict) else None)
    except (OSError, ValueError, AttributeError):
        found = None
    return found or "unknown"


def _action_group(action: str) -> str:
    """VideoPose3D's action name without the take suffix ('Directions 1' -> 'Directions')."""
    return action.split(" ")[0]


def _chunks(n: int, size: int) -> Iterable[slice]:
    for a in range(0, n, size):
        yield slice(a, min(a + size, n))


def _load_checked(p3: Path, p2: Path, subjects: list[str]) -> tuple[dict, dict]:
    """Both VideoPose3D files, every requested subject and each of its actions in both."""
    pos3d, pos2d = load_h36m_3d(p3), load_h36m_2d(p2)
    for s in subjects:
        for path, d in ((p3, pos3d), (p2, pos2d)):
            if s not in d:
                raise ValueError(f"{path}: subject {s!r} missing (has {', '.join(d)})")
        for action in pos3d[s]:
            if action not in pos2d[s]:
                raise ValueError(f"{p2}: action {action!r} of subject {s!r} missing")
    return pos3d, pos2d


@dataclass
class _Scorer:
    """The model, its input codec and baseline: scores (keypoints, ground truth) batches."""

    model: torch.nn.Module
    kind: str
    device: torch.device
    res: int
    sigma: float
    crop_scale: float
    nose: bool
    reg: np.ndarray
    mean_mesh: np.ndarray
    batch_size: int

    def score(self, kp: np.ndarray, gt: np.ndarray, cam_of: np.ndarray, group: dict, per_cam):
        """Add per-sample errors of model and baseline to ``group``, the model's per camera."""
        for sl in _chunks(len(kp), self.batch_size):
            hm = heatmaps_from_2d(kp[sl], self.res, self.sigma, self.crop_scale, self.nose)
            x = model_input({"heatmaps": torch.from_numpy(hm).to(self.device)}, self.kind)
            pred = self.model(x)["vertices"][-1].double().cpu().numpy()
            base = np.broadcast_to(self.mean_mesh, pred.shape)
            for name, p in (("model", pred), ("mean_mesh", base)):
                for k, v in joint_errors(p, gt[sl], self.reg).items():
                    group[name].setdefault(k, []).append(v)
                    if name == "model":
                        for c in np.unique(cam_of[sl]):
                            sel = cam_of[sl] == c
                            per_cam[CAMERA_IDS[c]].setdefault(k, []).append(v[sel])


@torch.no_grad()
def evaluate_h36m(
    ckpt: str | Path,
    data: str | Path,
    h36m_3d: str | Path,
    h36m_2d: str | Path,
    subjects: Iterable[str] = DEFAULT_SUBJECTS,
    stride: int = DEFAULT_STRIDE,
    batch_size: int | None = None,
    baseline_samples: int | None = 8192,
    nose: bool = True,
    noise_px: float = 0.0,
    noise_seed: int = 0,
) -> dict:
    """MPJPE / PA-MPJPE (mm) of the model and the mean-mesh baseline per action and overall.

    ``noise_px`` > 0 adds zero-mean Gaussian noise of that standard deviation (image pixels,
    each axis) to every 2D keypoint before cropping and drawing, from
    ``numpy.random.default_rng(noise_seed)`` in the evaluation's fixed order (subjects as given,
    actions sorted, cameras in order): same seed, same numbers.
    """
    if int(stride) < 1:
        raise ValueError(f"--stride must be >= 1, got {stride}")
    if not float(noise_px) >= 0:
        raise ValueError(f"--noise-px must be >= 0, got {noise_px}")
    noise = np.random.default_rng(int(noise_seed)) if noise_px > 0 else None
    stride = int(stride)
    subjects = list(subjects)
    if not subjects:
        raise ValueError("--subjects: no subject given")
    t0 = time.perf_counter()
    p3, p2 = Path(h36m_3d), Path(h36m_2d)
    pos3d, pos2d = _load_checked(p3, p2, subjects)
    cams = {s: load_h36m_cameras(s) for s in subjects}

    model, cfg, source, step = load_model(ckpt, data)
    kind = cfg["model"]["input"]
    if kind != "heatmaps":
        raise ValueError(
            f"{ckpt}: model.input={kind!r}; 2D keypoints only make heatmaps (masks unavailable)"
        )
    man = source.manifest
    res, sigma = dataset_codec(man.dims, man.config)
    render = man.config.get("render") if isinstance(man.config.get("render"), dict) else {}
    crop_scale = float(render.get("crop_scale") or SCALE)
    if source.num_keypoints != len(COCO_FROM_H36M17):
        raise ValueError(f"{source.root}: {source.num_keypoints} heatmap channels, COCO-17 needed")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    scorer = _Scorer(
        model.to(device), kind, device, res, sigma, crop_scale, nose,
        source.levels.h36m_regressor.astype(np.float64),
        mean_train_mesh(source, baseline_samples).astype(np.float64),
        batch_size or int(cfg["eval"]["batch_size"]),
    )  # fmt: skip

    errs: dict[str, dict[str, dict[str, list[np.ndarray]]]] = {}
    per_cam: dict[str, dict[str, list[np.ndarray]]] = {c: {} for c in CAMERA_IDS}  # model only
    for s in subjects:
        for action in sorted(pos3d[s]):
            pos = np.asarray(pos3d[s][action])
            n = pos.shape[0]
            idx = np.arange(0, n, stride)
            group = errs.setdefault(_action_group(action), {"model": {}, "mean_mesh": {}})
            kps, gts = [], []
            for c, cam in enumerate(cams[s]):
                kp = np.asarray(pos2d[s][action][c])[..., :2]
                if kp.shape[0] < n:
                    raise ValueError(
                        f"{p2}: positions_2d[{s!r}][{action!r}][{c}] has {kp.shape[0]} frames, "
                        f"fewer than the mocap's {n} in {p3}"
                    )
                kp = kp[:n][idx]  # detections may be longer than the mocap: truncate
                if noise is not None:
                    kp = kp + noise.normal(0.0, float(noise_px), kp.shape)
                kps.append(kp)
                gts.append(camera_frame_joints(pos[idx], cam))
            cam_of = np.repeat(np.arange(len(CAMERA_IDS)), len(idx))
            # the 4 cameras, one batch stream
            scorer.score(np.concatenate(kps), np.concatenate(gts), cam_of, group, per_cam)
    if not errs:
        raise ValueError(f"{p3}: no actions for subjects {', '.join(subjects)}")
    views = cfg["data"]["views"]
    return {
        "protocol": {
            "subjects": subjects,
            "cameras": list(CAMERA_IDS),
            "stride": stride,
            "joints": "H36M-14 (H36M-17 indices " + str(list(H36M_TO_14)) + "), pelvis-centred",
            "heatmaps": {"res": res, "sigma": sigma, "crop_scale": crop_scale, "nose": nose},
            "noise_px": float(noise_px),
            "noise_seed": int(noise_seed),
            "h36m_3d": str(p3),
            "h36m_2d": str(p2),
        },
        "checkpoint": {"path": str(ckpt), "step": step, "data": str(source.root)},
        "train_views": "all" if views is None else views,
        "train_view_choice": cfg["data"].get("view_choice", "each"),
        "regressor": regressor_provenance(source.root),
        "baseline": "mean pelvis-centred camera-frame train-split mesh of the checkpoint's shards",
        **_summaries(errs, per_cam),
        "paper_table2": {str(k): {"mpjpe": m, "pa_mpjpe": p} for k, (m, p) in PAPER_TABLE2.items()},
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _summaries(errs: dict, per_cam: dict) -> dict:
    """Means of the per-sample errors: per action, per camera, over all samples, and the mean
    of the per-action means."""

    def summary(d: dict[str, list[np.ndarray]]) -> dict[str, float]:
        return {k: float(np.concatenate(d[k]).mean()) for k in METRICS}

    per_action = {
        a: {
            "samples": int(sum(len(v) for v in g["model"]["mpjpe"])),
            **{name: summary(g[name]) for name in ("model", "mean_mesh")},
        }
        for a, g in sorted(errs.items())
    }
    names = ("model", "mean_mesh")
    return {
        "samples": int(sum(r["samples"] for r in per_action.values())),
        "per_action": per_action,
        "per_camera": {
            c: {"samples": int(sum(len(v) for v in d["mpjpe"])), "model": summary(d)}
            for c, d in per_cam.items()
            if d
        },
        "all": {
            name: {
                k: float(np.concatenate([v for g in errs.values() for v in g[name][k]]).mean())
                for k in METRICS
            }
            for name in names
        },
        "action_mean": {
            name: {k: float(np.mean([r[name][k] for r in per_action.values()])) for k in METRICS}
            for name in names
        },
    }


def format_h36m_table(res: dict) -> str:
    """Per-action and overall MPJPE / PA-MPJPE of model and baseline, with the paper's row."""
    pr = res["protocol"]
    lines = [
        f"Human3.6M zero-shot from {Path(pr['h36m_2d']).name}: subjects "
        f"{','.join(pr['subjects'])}, 4 cameras, frame stride {pr['stride']}, "
        f"{res['samples']} samples, checkpoint step {res['checkpoint']['step']}"
        + (
            f", 2D noise {pr['noise_px']:g} px (seed {pr['noise_seed']})"
            if pr.get("noise_px")
            else ""
        ),
        f"mm, {pr['joints']}",
        f"H36M-17 regressor of the dataset: {res['regressor']}",
        f"{'':18s}{'samples':>8s}{'model':>10s}{'':10s}{'mean mesh':>12s}",
        f"{'action':18s}{'':8s}{'MPJPE':>10s}{'PA-MPJPE':>10s}{'MPJPE':>12s}{'PA-MPJPE':>10s}",
    ]

    def row(label: str, n: str, r: dict) -> str:
        m, b = r["model"], r["mean_mesh"]
        return (
            f"{label:18s}{n:>8s}{m['mpjpe']:10.1f}{m['pa_mpjpe']:10.1f}"
            f"{b['mpjpe']:12.1f}{b['pa_mpjpe']:10.1f}"
        )

    for a, r in res["per_action"].items():
        lines.append(row(a, str(r["samples"]), r))
    lines.append(row("all samples", str(res["samples"]), res["all"]))
    lines.append(row("mean of actions", "", res["action_mean"]))
    cams = ", ".join(
        f"{c} {r['model']['mpjpe']:.1f}/{r['model']['pa_mpjpe']:.1f}"
        for c, r in res.get("per_camera", {}).items()
    )
    lines.append(f"model per camera (MPJPE/PA-MPJPE): {cams}")
    paper = ", ".join(
        f"{k} view{'s' if k != '1' else ''} {v['mpjpe']}/{v['pa_mpjpe']}"
        for k, v in res["paper_table2"].items()
    )
    how = " (one at random per mesh)" if res.get("train_view_choice") == "random" else ""
    lines.append(
        f"seed Table 2 (MPJPE/PA-MPJPE): {paper}; this model trained on views"
        f" {res['train_views']}{how}"
    )
    return "\n".join(lines)

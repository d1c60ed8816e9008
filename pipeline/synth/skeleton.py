"""The body's skeleton for the motion generator: the body model's own rest joints and
kinematic tree (posed with smplx's chain), the joint limits the motions stay inside, and the
Euler convention they are written in (``R = Rx @ Rz @ Ry`` in the parent's rest frame, SMPL rest
frame y-up facing +z)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rigid_transform

from pipeline.synth import SHIPPED_BODY_MODELS
from pipeline.synth.joint_names import FINGERS as _FINGERS
from pipeline.synth.joint_names import JOINT_INDEX as _J
from shards.schema import GENDERS

# --------------------------------------------------------------------------------------------
# Skeleton: the body model's own (rest joints, kinematic tree), posed with smplx
# --------------------------------------------------------------------------------------------


def default_body_models(out_dir: Path) -> Path:
    """Body models that plant an archive written to ``out_dir``: the sibling ``body_models``
    folder when it holds every gender (the embedded-default layout), else the shipped ones."""
    sibling = Path(out_dir).parent / "body_models"
    if all((sibling / "smplh" / g / "model.npz").is_file() for g in GENDERS):
        return sibling
    return SHIPPED_BODY_MODELS


def body_skeleton(
    body_models: Path, gender: str, betas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rest joints (52, 3) of ``body_models/smplh/<gender>/model.npz`` shaped by ``betas``, and
    its kinematic-tree parents (52,) with -1 at the root.

    Reads the AMASS SMPL+H model format directly: ``J_regressor @ (v_template + shapedirs @ b)``.
    """
    path = Path(body_models) / "smplh" / gender / "model.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SMPL+H model file not found (needed to plant feet)")
    with np.load(path, allow_pickle=False) as m:
        v, sd, jr, tree = m["v_template"], m["shapedirs"], m["J_regressor"], m["kintree_table"]
    k = min(sd.shape[-1], len(betas))
    verts = v + sd[..., :k] @ np.asarray(betas[:k], dtype=np.float64)
    parents = tree[0].astype(np.int64)
    parents[0] = -1  # stored as uint32 -1
    return np.asarray(jr @ verts, dtype=np.float64), parents


def posed_joints(rotmats: np.ndarray, rest: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """(N, J, 3) joints posed by local rotations (N, J, 3, 3) with smplx's kinematic chain
    (the root turns about its rest position; no translation added)."""
    n, nj = rotmats.shape[:2]
    joints = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(rest[:nj], (n, nj, 3))))
    posed, _ = batch_rigid_transform(
        torch.from_numpy(np.ascontiguousarray(rotmats)), joints,
        torch.from_numpy(parents[:nj]), dtype=torch.float64,
    )  # fmt: skip
    return posed.numpy()


# --------------------------------------------------------------------------------------------
# Joint limits (Euler x, y, z in radians, R = Rx @ Rz @ Ry in the parent rest frame)
# --------------------------------------------------------------------------------------------

#: scipy extrinsic sequence giving R = Rx @ Rz @ Ry from angles ordered (y, z, x); the middle
#: angle (z) stays inside (-pi/2, pi/2), so large knee (x) and elbow (y) flexions decompose
#: uniquely.
EULER_SEQ = "yzx"


def _lr(name: str, left: list[tuple[float, float]]) -> dict[int, np.ndarray]:
    """Limits for a left/right pair: the right side mirrors y and z (x-reflection)."""
    lo = np.array(left, dtype=float)
    right = lo.copy()
    right[1:] = -lo[1:, ::-1]
    return {_J[f"left_{name}"]: lo, _J[f"right_{name}"]: right}


def _build_limits() -> dict[int, np.ndarray]:
    lim: dict[int, np.ndarray] = {}
    lim.update(_lr("hip", [(-2.1, 0.6), (-0.7, 0.7), (-0.5, 0.9)]))
    lim.update(_lr("knee", [(0.0, 2.6), (-0.3, 0.3), (-0.2, 0.2)]))
    lim.update(_lr("ankle", [(-0.9, 0.8), (-0.4, 0.4), (-0.4, 0.4)]))
    lim.update(_lr("foot", [(-0.6, 0.6), (-0.3, 0.3), (-0.3, 0.3)]))
    lim.update(_lr("collar", [(-0.4, 0.4), (-0.4, 0.4), (-0.4, 0.5)]))
    lim.update(_lr("shoulder", [(-1.8, 1.8), (-1.3, 1.3), (-1.5, 1.5)]))
    lim.update(_lr("elbow", [(-0.8, 0.8), (-2.6, 0.0), (-0.3, 0.3)]))
    lim.update(_lr("wrist", [(-1.0, 1.0), (-0.8, 0.8), (-1.0, 1.0)]))
    for s in ("spine1", "spine2", "spine3"):
        lim[_J[s]] = np.array([(-0.5, 0.9), (-0.5, 0.5), (-0.4, 0.4)])
    lim[_J["neck"]] = np.array([(-0.6, 0.7), (-0.8, 0.8), (-0.5, 0.5)])
    lim[_J["head"]] = np.array([(-0.5, 0.6), (-0.7, 0.7), (-0.4, 0.4)])
    for f in _FINGERS:
        for k in (1, 2, 3):
            if f == "thumb":
                left = [(-0.8, 0.8), (-0.8, 0.8), (-0.8, 0.8)]
            else:
                left = [(-0.3, 0.3), (-0.3, 0.3), (-1.5, 0.2)]
            lim.update(_lr(f"{f}{k}", left))
    return lim


#: Per-joint (3, 2) [low, high] Euler limits for joints 1..51 (x, y, z rows).
JOINT_LIMITS: dict[int, np.ndarray] = _build_limits()

#: Target height of the lowest foot joint (ankle or toe base) above the floor, metres.
FOOT_CLEARANCE = 0.05
#: Pose indices of the ankle and toe-base joints (the lowest foot joints).
FOOT_JOINTS = (_J["left_ankle"], _J["right_ankle"], _J["left_foot"], _J["right_foot"])


def pose_to_euler(poses: np.ndarray) -> np.ndarray:
    """(N, 156) axis-angle poses -> (N, 52, 3) Euler (x, y, z) with R = Rx @ Rz @ Ry."""
    n = poses.shape[0]
    yzx = Rotation.from_rotvec(poses.reshape(-1, 3)).as_euler(EULER_SEQ)
    return yzx[:, [2, 0, 1]].reshape(n, 52, 3)

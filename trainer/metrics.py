"""Evaluation metrics (inputs in metres, outputs in millimetres): MPJPE, PA-MPJPE, PVE."""

from __future__ import annotations

import numpy as np

from shards.schema import H36M14_FROM_17

# H36M-17 -> H36M-14 evaluation subset (docs/ARCHITECTURE.md), as a list for fancy indexing
H36M_TO_14 = list(H36M14_FROM_17)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint position error per sample; (B, J, 3) x2 -> (B,) in the input unit."""
    return np.linalg.norm(pred - gt, axis=-1).mean(-1)


def similarity_procrustes(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Align each pred (B, J, 3) to gt with the best rotation, uniform scale and translation.

    Umeyama's closed form: centre both, SVD of the cross-covariance, reflection-corrected.
    """
    mu_p, mu_g = pred.mean(1, keepdims=True), gt.mean(1, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = np.einsum("bji,bjk->bik", p, g)  # (B, 3, 3) = P^T G
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(np.einsum("bij,bjk->bik", u, vt)))
    fix = np.ones_like(s)
    fix[:, -1] = d
    rot = np.einsum("bij,bj,bjk->bik", u, fix, vt)  # p @ rot ~ g
    var = (p**2).sum((1, 2))
    scale = (s * fix).sum(1) / np.maximum(var, 1e-12)
    return scale[:, None, None] * np.einsum("bji,bik->bjk", p, rot) + mu_g


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after similarity Procrustes alignment, per sample."""
    return mpjpe(similarity_procrustes(pred, gt), gt)


def pve(pred_vertices: np.ndarray, gt_vertices: np.ndarray) -> np.ndarray:
    """Per-vertex error per sample (same as MPJPE over vertices)."""
    return mpjpe(pred_vertices, gt_vertices)


def mesh_metrics(
    pred_vertices: np.ndarray,
    gt_vertices: np.ndarray,
    gt_joints17: np.ndarray,
    regressor: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-sample MPJPE, PA-MPJPE (H36M-14) and PVE in mm, the field's protocol.

    Predicted joints are regressed from the predicted mesh with the H36M-17 regressor; both
    sides are centred on their own pelvis (H36M-17 index 0), meshes included.
    """
    pred_j17 = np.einsum("jv,bvc->bjc", regressor, pred_vertices)
    pred_pelvis = pred_j17[:, :1]
    gt_pelvis = gt_joints17[:, :1]
    pj = (pred_j17 - pred_pelvis)[:, H36M_TO_14]
    gj = (gt_joints17 - gt_pelvis)[:, H36M_TO_14]
    return {
        "mpjpe": 1000.0 * mpjpe(pj, gj),
        "pa_mpjpe": 1000.0 * pa_mpjpe(pj, gj),
        "pve": 1000.0 * pve(pred_vertices - pred_pelvis, gt_vertices - gt_pelvis),
    }

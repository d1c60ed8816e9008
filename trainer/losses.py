"""Training losses: multi-level vertex L1, pelvis-centred 3D joints, 2D reprojection."""

from __future__ import annotations

import torch


def weak_perspective(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project (B, N, 3) with cam (B, 3) = (s, tx, ty): x = s * X[..., :2] + t."""
    return cam[:, None, :1] * points[..., :2] + cam[:, None, 1:]


def regress(regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """(J, Nv) x (B, Nv, 3) -> (B, J, 3)."""
    return torch.einsum("jv,bvc->bjc", regressor.to(vertices.dtype), vertices)


def downsample_levels(vertices: torch.Tensor, down: list[torch.Tensor]) -> list[torch.Tensor]:
    """GT meshes at every level, coarsest first, full mesh last (D applied repeatedly)."""
    levels = [vertices]
    for d in down:
        levels.append(torch.einsum("nm,bmc->bnc", d.to(vertices.dtype), levels[-1]))
    return levels[::-1]


def mesh_losses(
    out: dict,
    batch: dict,
    regressor: torch.Tensor,
    down: list[torch.Tensor],
    weights: dict,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the losses and the individual terms (detached) for logging.

    GT 3D quantities are centred on the GT pelvis (H36M-17 index 0); predictions on the pelvis
    regressed from the predicted full mesh (the transformer's joints on their own joint 0).
    """
    gt_j3d = batch["joints3d"].to(out["cam"].dtype)
    gt_pelvis = gt_j3d[:, :1]
    gt_levels = downsample_levels(batch["vertices"].to(gt_j3d.dtype) - gt_pelvis, down)
    pred_levels = out["vertices"]
    pred_reg = regress(regressor, pred_levels[-1])
    pred_pelvis = pred_reg[:, :1]

    lw = list(weights.get("vertex_levels", [1.0]))
    lw = lw + [lw[-1]] * (len(pred_levels) - len(lw))
    l_vert = sum(
        w * (p - pred_pelvis - g).abs().mean() for w, p, g in zip(lw, pred_levels, gt_levels)
    ) / sum(lw[: len(pred_levels)])

    gt_j = gt_j3d - gt_pelvis
    trans_j = out["joints"] - out["joints"][:, :1]
    reg_j = pred_reg - pred_pelvis
    l_j3d = 0.5 * ((trans_j - gt_j).abs().mean() + (reg_j - gt_j).abs().mean())

    vis = batch["joints2d"][..., 2:].to(gt_j.dtype)
    target = batch["joints2d"][..., :2].to(gt_j.dtype)
    denom = vis.sum().clamp(min=1.0) * 2
    l_j2d = 0.0
    for j in (reg_j, trans_j):
        l_j2d = l_j2d + ((weak_perspective(j, out["cam"]) - target).abs() * vis).sum() / denom
    l_j2d = 0.5 * l_j2d

    total = weights["vertices"] * l_vert + weights["joints3d"] * l_j3d + weights["joints2d"] * l_j2d
    parts = {"vertices": l_vert, "joints3d": l_j3d, "joints2d": l_j2d, "total": total}
    return total, {k: v.detach() for k, v in parts.items()}

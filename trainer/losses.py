"""Training losses (METRO's forms): multi-level vertices, pelvis-centred 3D joints, 2D reprojection.

Each term has a weight and a form (``l1`` or ``mse``, mean over elements as torch's losses
reduce). METRO (``run_metro_bodymesh.py``) uses 3D joints MSE x 1000, vertices L1 x 100 over
the mesh levels (1/3 each), 2D MSE x 100, each joint term summed over the transformer's own
joints and the joints regressed from its full mesh; ``configs/paper.yaml`` sets exactly that.
"""

from __future__ import annotations

import torch

FORMS = ("l1", "mse")


def weak_perspective(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project (B, N, 3) with cam (B, 3) = (s, tx, ty): x = s * X[..., :2] + t."""
    return cam[:, None, :1] * points[..., :2] + cam[:, None, 1:]


def regress(regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """(J, Nv) x (B, Nv, 3) -> (B, J, 3)."""
    return torch.einsum("jv,bvc->bjc", regressor.to(vertices.dtype), vertices)


def apply_vertex_matrix(m: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """(N, M) dense or sparse x (B, M, 3) -> (B, N, 3)."""
    if m.is_sparse:
        b, n_in, c = vertices.shape
        flat = vertices.transpose(0, 1).reshape(n_in, b * c)  # (M, B*3)
        out = torch.sparse.mm(m.to(vertices.dtype), flat)
        return out.reshape(-1, b, c).transpose(0, 1)
    return torch.einsum("nm,bmc->bnc", m.to(vertices.dtype), vertices)


def downsample_levels(vertices: torch.Tensor, down: list[torch.Tensor]) -> list[torch.Tensor]:
    """GT meshes at every level, coarsest first, full mesh last (D applied repeatedly)."""
    levels = [vertices]
    for d in down:
        levels.append(apply_vertex_matrix(d, levels[-1]))
    return levels[::-1]


def elementwise(diff: torch.Tensor, form: str) -> torch.Tensor:
    """|d| or d^2, elementwise."""
    if form == "l1":
        return diff.abs()
    if form == "mse":
        return diff * diff
    raise ValueError(f"loss form must be one of {FORMS}, got {form!r}")


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
    ``weights``: ``vertices``, ``joints3d``, ``joints2d`` (weights), ``*_form`` (``l1``/``mse``)
    and ``vertex_levels`` (coarse -> full; padded with the last).
    """
    gt_j3d = batch["joints3d"].to(out["cam"].dtype)
    gt_pelvis = gt_j3d[:, :1]
    gt_levels = downsample_levels(batch["vertices"].to(gt_j3d.dtype) - gt_pelvis, down)
    pred_levels = out["vertices"]
    pred_reg = regress(regressor, pred_levels[-1])
    pred_pelvis = pred_reg[:, :1]

    lw = list(weights.get("vertex_levels", [1.0]))
    lw = lw + [lw[-1]] * (len(pred_levels) - len(lw))
    vform = weights["vertices_form"]
    l_vert = sum(
        w * elementwise(p - pred_pelvis - g, vform).mean()
        for w, p, g in zip(lw, pred_levels, gt_levels)
    )

    gt_j = gt_j3d - gt_pelvis
    preds = (out["joints"] - out["joints"][:, :1], pred_reg - pred_pelvis)
    jform = weights["joints3d_form"]
    l_j3d = sum(elementwise(j - gt_j, jform).mean() for j in preds)

    vis = batch["joints2d"][..., 2:].to(gt_j.dtype)
    target = batch["joints2d"][..., :2].to(gt_j.dtype)
    pform = weights["joints2d_form"]
    l_j2d = sum(
        (elementwise(weak_perspective(j, out["cam"]) - target, pform) * vis).mean() for j in preds
    )

    total = weights["vertices"] * l_vert + weights["joints3d"] * l_j3d + weights["joints2d"] * l_j2d
    parts = {"vertices": l_vert, "joints3d": l_j3d, "joints2d": l_j2d, "total": total}
    return total, {k: v.detach() for k, v in parts.items()}

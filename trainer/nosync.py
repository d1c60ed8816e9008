"""A DeepSpeed step that never makes the host wait for the device (DeepSpeed 0.19.8).

With bf16 at ZeRO stage >= 1, the overflow check off (``bf16.check_grad_overflow: false``, bf16
has fp32's range) and the throughput timer off, one host read of the gradient norm is left:
``DeepSpeedZeroOptimizer.unscale_and_clip_grads`` asks ``is_invalid_grad_norm(norm)`` (a
``bool()`` of a device tensor) before clipping. :func:`sync_free_clipping` gives the engine's
optimizer the same clipping written with ``torch.where``: an invalid norm (inf, NaN or
DeepSpeed's -1 sentinel) still clips as an infinite norm, on the device.
"""

from __future__ import annotations

import types

import torch


def _unscale_and_clip_grads(self, grad_groups_flat, total_norm) -> None:
    """DeepSpeed's ``unscale_and_clip_grads`` without the host-side validity check."""
    if self.clip_grad == 0.0 and self.loss_scale == 1.0:
        return
    combined_scale = self.loss_scale
    if self.clip_grad > 0.0:
        norm = torch.as_tensor(total_norm, dtype=torch.float, device=self.device)
        bad = ~torch.isfinite(norm) | (norm < 0)
        norm = torch.where(bad, torch.full_like(norm, float("inf")), norm)
        clip = ((norm / self.loss_scale) + 1e-6) / self.clip_grad
        combined_scale = torch.clamp(clip, min=1.0) * self.loss_scale
    for grad in grad_groups_flat:
        for g in grad if isinstance(grad, list) else [grad]:
            g.data.mul_(1.0 / combined_scale)


def sync_free_clipping(engine) -> bool:
    """Give ``engine``'s ZeRO optimizer the sync-free clipping; False if it has none (fp32 at
    stage 0 clips with torch's ``clip_grad_norm_``, which does not read the norm back)."""
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    opt = engine.optimizer
    if not isinstance(opt, DeepSpeedZeroOptimizer):
        return False
    opt.unscale_and_clip_grads = types.MethodType(_unscale_and_clip_grads, opt)
    return True

"""A DeepSpeed step that never makes the host wait for the device (DeepSpeed 0.19.8).

With bf16 at ZeRO stage >= 1, the overflow check off (``bf16.check_grad_overflow: false``, bf16
has fp32's range) and the throughput timer off, one host read of the gradient norm is left:
``DeepSpeedZeroOptimizer.unscale_and_clip_grads`` asks ``is_invalid_grad_norm(norm)`` (a
``bool()`` of a device tensor) before clipping. :func:`sync_free_clipping` gives the engine's
optimizer the same clipping written with ``torch.where``: an invalid norm (inf, NaN or
DeepSpeed's -1 sentinel) still clips as an infinite norm, on the device.

The norm itself (``get_grad_norm_direct``) is DeepSpeed's loop of one ``vector_norm`` per
parameter (each cast to float64: ~3 launches a parameter, ~400 a step for paper.yaml) ending in
``mask_nan_or_inf_with_val_inplace``, which builds its -1 from the host (a blocking copy);
:func:`sync_free_clipping` also gives the optimizer that norm as one ``torch._foreach_norm``
(float64 accumulation, a few launches) with the sentinel written by ``torch.where``.

fp32 at ZeRO stage 0 has no ZeRO optimizer: the engine clips with DeepSpeed's
``clip_grad_norm_``, which builds two tensors from the host every step;
:func:`sync_free_clipping` gives it the same arithmetic without them
(:func:`_clip_fp32_gradients`). fp32 at ZeRO stage >= 1 keeps one read-back a step:
``DeepSpeedZeroOptimizer.step`` skips a step whose gradient norm is not finite, as fp32 and
fp16 do (bf16 with the overflow check off does not), and asks ``is_invalid_grad_norm`` to
decide (``stage_1_and_2.py:3042``); skipping a step is the host's decision, so it stays
(``bench/gpu_check.py --tiny --precision fp32`` counts it at paper.yaml's stage 1).

:func:`refuse_waiting_config` refuses, before DeepSpeed starts, the DeepSpeed JSON that would
take another optimizer: bf16 with ``data_types.grad_accum_dtype: fp32`` at ZeRO stage 1 runs
``BF16_Optimizer``, which reads the norm back every step (``bf16_optimizer.py:402``).
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


def _grad_norm_direct(self, gradients, params, norm_type=2):
    """DeepSpeed's ``get_grad_norm_direct`` for the 2-norm: one ``_foreach_norm`` (float64)
    over the gradients this rank counts, all-reduced; inf / NaN -> -1 on the device."""
    from deepspeed import comm as ds_dist
    from deepspeed.runtime.constants import PIPE_REPLICATED
    from deepspeed.runtime.utils import is_model_parallel_parameter

    if float(norm_type) != 2.0:
        return type(self).get_grad_norm_direct(self, gradients, params, norm_type)
    grads = [
        g
        for g, p in zip((g for g in gradients if not getattr(g, "_zero_padding", False)), params)
        if not (hasattr(p, PIPE_REPLICATED) and p.ds_pipe_replicated)
        and (is_model_parallel_parameter(p) or self.model_parallel_rank == 0)
    ]
    if grads:
        norms = torch._foreach_norm(grads, 2, dtype=torch.float64)
        total = torch.stack(norms).square().sum().float()
    else:
        total = torch.zeros((), dtype=torch.float32, device=self.device)
    ds_dist.all_reduce(total, op=ds_dist.ReduceOp.SUM, group=self.dp_process_group)
    self._model_parallel_all_reduce(tensor=total, op=ds_dist.ReduceOp.SUM)
    total = total.sqrt()
    return torch.where(torch.isfinite(total), total, torch.full_like(total, -1.0))


def refuse_waiting_config(ds_cfg: dict) -> None:
    """A one-line ValueError for a DeepSpeed config whose optimizer waits for the device at
    every step (bf16 + ``data_types.grad_accum_dtype: fp32`` at ZeRO stage 1)."""
    bf16 = ds_cfg.get("bf16", {}).get("enabled", False)
    accum = str(ds_cfg.get("data_types", {}).get("grad_accum_dtype", "")).lower()
    stage = int(ds_cfg.get("zero_optimization", {}).get("stage", 0))
    if bf16 and accum in ("fp32", "float32", "float") and stage == 1:
        raise ValueError(
            "train.deepspeed_config: data_types.grad_accum_dtype=fp32 with bf16 at ZeRO stage 1 "
            "runs DeepSpeed's BF16_Optimizer, which waits for the GPU at every step; remove it "
            "(bf16's ZeRO optimizer keeps fp32 master weights and gradients already)"
        )


def _clip_fp32_gradients(self) -> None:
    """DeepSpeed's fp32 clipping at ZeRO stage 0 (``engine.clip_fp32_gradients``: its
    ``runtime.utils.clip_grad_norm_`` for the 2-norm without model parallelism), the same
    arithmetic in the same order (one rank: bit for bit on the CPU) but with the per-parameter
    norms as one ``_foreach_norm`` and no tensor built from the host: DeepSpeed builds two a
    step (``torch.tensor([max_norm], device=...)``, ``torch.tensor([1.0], ...)``), copies that
    wait for the queued work on a GPU. Like DeepSpeed it averages the norm over the
    data-parallel ranks (identical at stage 0, where the gradients are already all-reduced)."""
    from deepspeed import comm as ds_dist
    from deepspeed.utils import groups

    params = [p for p in self.module.parameters() if p.grad is not None]
    norms = torch._foreach_norm([p.grad for p in params], 2)  # DeepSpeed's .float(): fp32 already
    total = torch.stack(norms).pow(2).sum().float().pow(0.5)
    pg = groups._get_data_parallel_group()
    total = total * 1.0 / float(ds_dist.get_world_size(group=pg))
    ds_dist.all_reduce(total, group=pg)
    coef = torch.full((), float(self.gradient_clipping()), device=total.device) / (total + 1e-6)
    torch._foreach_mul_([p.grad for p in params], torch.clamp(coef, max=1.0))


def sync_free_clipping(engine) -> bool:
    """Give ``engine`` clipping that never makes the host wait: its ZeRO optimizer the
    sync-free clipping and the foreach gradient norm, or, fp32 at ZeRO stage 0 (no ZeRO
    optimizer), :func:`_clip_fp32_gradients`; False if neither applies (fp16)."""
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    opt = engine.optimizer
    if isinstance(opt, DeepSpeedZeroOptimizer):
        opt.unscale_and_clip_grads = types.MethodType(_unscale_and_clip_grads, opt)
        opt.get_grad_norm_direct = types.MethodType(_grad_norm_direct, opt)
        return True
    if not (engine.fp16_enabled() or engine.bfloat16_enabled() or engine.zero_optimization()):
        engine.clip_fp32_gradients = types.MethodType(_clip_fp32_gradients, engine)
        return True
    return False

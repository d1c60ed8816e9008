"""FLOPs per training sample, counted by torch (``torch.utils.flop_counter.FlopCounterMode``).

The count is of the model's forward and backward (matmuls, convolutions, attention: what the
counter knows; elementwise work is not counted, as MFU conventions go) on a small batch of
zeros, divided by the batch size. The losses and the optimizer are left out (a few MFLOP).
Attention runs on PyTorch's math kernel while counting: with dropout 0 the CPU picks its flash
kernel, which the counter does not know (it missed ~8 % of paper.yaml's FLOPs).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def _leaves(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in _leaves(o)]


def training_flops_per_sample(
    model: nn.Module, sample_shape: tuple[int, ...], batch: int = 2
) -> int:
    """Forward + backward FLOPs of ``model`` per sample of shape ``sample_shape`` (an input
    that needs no gradient, as in training), in train mode, counted on the CPU."""
    was_training = model.training
    model.train()
    x = torch.zeros(batch, *sample_shape)
    try:
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            out = model(x)
            sum(t.float().sum() for t in _leaves(out)).backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return counter.get_total_flops() // batch

"""How the trainer sets up its device: deterministic kernels (``train.deterministic``) and
``torch.compile``'s mode (``train.compile``).

- :func:`set_deterministic`: ``torch.use_deterministic_algorithms`` (warning, not failing, on an
  op without a deterministic kernel: ``make gpu-check``'s exact-resume verdict shows whether
  the run still differs), cuDNN's deterministic algorithms without autotuning, and
  ``CUBLAS_WORKSPACE_CONFIG`` (read when cuBLAS starts: call this before any CUDA work). Off,
  it turns all of them back (a process that trains twice gets what each run asks for).
- :func:`compile_kwargs`: ``engine.compile``'s arguments for ``train.compile``: ``true`` is
  torch's default mode, ``"reduce-overhead"`` captures CUDA graphs (one launch per graph
  instead of one per kernel: for small per-GPU batches, where the step is launch-bound).
"""

from __future__ import annotations

import os

import torch

#: cuBLAS's deterministic workspace setting (CUDA docs, "Results reproducibility")
CUBLAS_WORKSPACE = ":4096:8"


def set_deterministic(on: bool) -> None:
    """Deterministic kernels for this process on or off (see the module docstring)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(bool(on), warn_only=True)
    torch.backends.cudnn.deterministic = bool(on)
    torch.backends.cudnn.benchmark = False


def compile_kwargs(setting: bool | str) -> dict | None:
    """``engine.compile(**...)`` for ``train.compile``; None when it is off."""
    if setting is False or setting is None:
        return None
    mode = "default" if setting is True else str(setting)
    return {"compile_kwargs": {"mode": mode}}

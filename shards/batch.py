"""A batch's wire format between loader workers, host and device: the small per-sample
tensors packed into one float32 and one int64 tensor beside the big ones (heatmaps, masks,
vertices), so a worker sends three shared-memory tensors instead of a dozen and a batch
crosses to a GPU in three pinned copies (``pack_batch`` / ``packed_to`` / ``unpack_batch``)."""

from __future__ import annotations

import math

import torch
from torch.utils.data import get_worker_info

PACK_KEY = "_packed"
_BIG = ("heatmaps", "masks", "vertices")


def pack_batch(batch: dict[str, torch.Tensor]) -> dict:
    """The small per-sample tensors of a batch packed into one float32 and one int64 tensor
    (in shared memory when made in a DataLoader worker): a worker sends every tensor through its
    own shared-memory segment, and a dozen small ones cost more than the heatmaps; and a batch
    crosses to a GPU in three pinned copies instead of a dozen. ``unpack_batch`` undoes it."""
    floats, ints, spec = [], [], []
    for k, v in batch.items():
        if k in _BIG:
            continue
        kind = "f" if v.dtype == torch.float32 else "i"
        flat = v.reshape(len(v), -1)
        (floats if kind == "f" else ints).append(flat if kind == "f" else flat.to(torch.int64))
        spec.append((k, kind, tuple(v.shape[1:]), str(v.dtype).removeprefix("torch.")))
    out = {k: v for k, v in batch.items() if k in _BIG}
    shared = get_worker_info() is not None
    f = torch.cat(floats, 1) if floats else torch.empty(len(next(iter(batch.values()))), 0)
    i = torch.cat(ints, 1) if ints else torch.empty(len(f), 0, dtype=torch.int64)
    out["_f"], out["_i"] = (f.share_memory_(), i.share_memory_()) if shared else (f, i)
    out[PACK_KEY] = spec
    return out


def packed_to(batch: dict, device: str | torch.device) -> dict:
    """A batch (packed or not) on ``device``: each tensor in one non-blocking copy (from pinned
    memory, when the loader pins). A packed batch crosses as its two packed tensors and the
    big ones (three copies, four with masks); ``unpack_batch`` then unpacks it there."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}  # fmt: skip


def unpack_batch(batch: dict) -> dict[str, torch.Tensor]:
    """Inverse of ``pack_batch`` (views into the two packed tensors, on their device; bools
    are copied)."""
    if PACK_KEY not in batch:
        return batch
    f, i = batch["_f"], batch["_i"]
    out = {k: v for k, v in batch.items() if k in _BIG}
    pos = {"f": 0, "i": 0}
    for k, kind, shape, dtype in batch[PACK_KEY]:
        src = f if kind == "f" else i
        n = math.prod(shape)
        v = src[:, pos[kind] : pos[kind] + n].reshape((len(src),) + tuple(shape))
        pos[kind] += n
        out[k] = v if dtype in ("float32", "int64") else v.to(getattr(torch, dtype))
    return {k: out[k] for k in [s[0] for s in batch[PACK_KEY]] + [k for k in batch if k in _BIG]}

"""Checkpoints of a training run: what they carry, which one to resume, and when to refuse it.

A checkpoint is DeepSpeed's (model, optimizer, scheduler) plus this module's client state
(every rank's data position, masking RNG and torch RNG streams) and, beside it, ``trainer.json``
(identity, step, rank count), checked before DeepSpeed reads anything. The identity is the
dataset and the model: a run folder trained on other data or another model is refused
(:class:`StaleCheckpointError`); :func:`restart_if_stale` starts such a run afresh.
``model.pt`` in the run folder is a plain fp32 state dict + config for evaluation.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from shards.atomic import atomic_path, write_atomic
from shards.manifest import Manifest
from trainer import distributed as dist

T = TypeVar("T")
CKPT_DIR = "checkpoints"
MODEL_FILE = "model.pt"


class StaleCheckpointError(ValueError):
    """The checkpoint in a run folder was trained on other data or another model."""


def run_identity(cfg: dict, manifest: Manifest) -> dict:
    """What a checkpoint must share with the run resuming it: the dataset (its manifest less
    the ``created`` stamp, :func:`shards.manifest.manifest_identity`) and the model."""
    blob = json.dumps([cfg["model"], cfg["data"]], sort_keys=True, default=str).encode()
    return {"data": manifest.identity, "model": "sha256:" + hashlib.sha256(blob).hexdigest()}


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This rank's RNG streams that training draws from: torch's CPU generator and, on a GPU,
    the device's generator (dropout draws from it there)."""
    device = torch.device(device)
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict | torch.Tensor, device: torch.device, where: Path) -> None:
    """Restore ``rng_state``'s streams (a bare tensor is an older checkpoint's CPU state)."""
    if isinstance(state, torch.Tensor):
        state = {"cpu": state}
    device = torch.device(device)
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda":
        if "cuda" not in state:
            raise ValueError(f"{where}: saved without a CUDA RNG state; cannot resume exactly")
        torch.cuda.set_rng_state(state["cuda"], device)


def client_state(
    identity: dict, step: int, position: tuple, mhm_gen: torch.Generator, device, world: int
) -> dict:
    """What a checkpoint carries besides DeepSpeed's own state: every rank's data position,
    masking RNG and torch RNG streams (CPU and, on GPUs, CUDA), in rank order."""
    return {
        "identity": identity,
        "step": step,
        "positions": dist.gather(position, world),
        "mhm_rng": dist.gather(mhm_gen.get_state(), world),
        "rng": dist.gather(rng_state(device), world),
    }


def latest_tag(ckpt_dir: Path) -> str | None:
    f = ckpt_dir / "latest"
    return f.read_text().strip() if f.exists() else None


def prune_checkpoints(ckpt_dir: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` step tags (never ``latest``'s); return the deleted."""
    tags = sorted(p.name for p in ckpt_dir.glob("step*") if p.is_dir())
    drop = [tag for tag in tags[:-keep] if tag != latest_tag(ckpt_dir)]
    for tag in drop:
        shutil.rmtree(ckpt_dir / tag, ignore_errors=True)
    return drop


def check_identity(ckpt_dir: Path, saved: dict, identity: dict) -> None:
    """Refuse a checkpoint trained on another dataset or model than this run's."""
    for key, value in saved.items():
        if value != identity[key]:
            raise StaleCheckpointError(
                f"{ckpt_dir}: trained with other {key} ({value[:15]} vs {identity[key][:15]});"
                " use --restart or another --out"
            )


#: beside DeepSpeed's files in a checkpoint's folder: what resuming checks before loading it
CKPT_META = "trainer.json"


def write_checkpoint_meta(ckpt_dir: Path, tag: str, identity: dict, step: int, world: int):
    """Rank 0, before DeepSpeed saves ``tag``: identity, step and rank count of the checkpoint."""
    (ckpt_dir / tag).mkdir(parents=True, exist_ok=True)
    meta = {"identity": identity, "step": step, "world": world}
    write_atomic(ckpt_dir / tag / CKPT_META, json.dumps(meta))


def resume_tag(ckpt_dir: Path, identity: dict, world: int) -> str | None:
    """The checkpoint to resume from (``latest``), checked against this run before DeepSpeed
    reads it: same dataset and model, same rank count (ZeRO's optimizer partitions and every
    rank's data position belong to the count that saved them). Rank 0 calls it."""
    tag = latest_tag(ckpt_dir)
    meta_file = ckpt_dir / str(tag) / CKPT_META
    if tag is None or not meta_file.exists():  # a checkpoint from before: checked after loading
        return tag
    meta = json.loads(meta_file.read_text())
    check_identity(ckpt_dir, meta["identity"], identity)
    if int(meta["world"]) != world:
        raise ValueError(
            f"{ckpt_dir / tag}: saved by {meta['world']} ranks, this run has {world}; resume "
            f"with {meta['world']} ranks, or start afresh (--restart or another --out)"
        )
    return tag


def save_model_file(engine, cfg: dict, out: Path, step: int, tag: str, rank: int) -> None:
    """Plain fp32 state dict + config for evaluation without DeepSpeed (rank 0 writes)."""
    if int(cfg["train"]["zero_stage"]) >= 3:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        torch.distributed.barrier()
        if rank != 0:
            return
        state = get_fp32_state_dict_from_zero_checkpoint(str(out / CKPT_DIR), tag)
    else:
        state = engine.module.state_dict()
        if engine.bfloat16_enabled():  # the optimizer's fp32 master weights, not bf16 copies
            from deepspeed.utils import safe_get_full_fp32_param

            for name, p in engine.module.named_parameters():  # a collective: every rank
                full = safe_get_full_fp32_param(p)
                state[name] = state[name] if full is None else full
        if rank != 0:
            return
    state = {k: v.detach().float().cpu() for k, v in state.items()}
    with atomic_path(out / MODEL_FILE) as tmp:
        torch.save({"config": cfg, "state_dict": state, "step": step}, tmp)


def resume_from(
    engine,
    ckpt_dir: Path,
    identity: dict,
    rank: int,
    world: int,
    mhm_gen: torch.Generator,
    tag: str | None = None,
) -> tuple[int, tuple[int, int]]:
    """Load checkpoint ``tag`` (default: the latest) of ``ckpt_dir`` into ``engine`` (model,
    optimizer, scheduler), check it was trained on this dataset and model with this many
    ranks, restore this rank's RNG streams; return (step, this rank's data position)."""
    _, client = engine.load_checkpoint(str(ckpt_dir), tag=tag)
    check_identity(ckpt_dir, client.get("identity", {}), identity)
    if len(client["positions"]) != world:
        raise ValueError(
            f"{ckpt_dir}: saved with {len(client['positions'])} ranks, resuming with {world}"
        )
    mhm_gen.set_state(client["mhm_rng"][rank])
    rng = client["rng"][rank] if "rng" in client else client["torch_rng"]
    set_rng_state(rng, engine.device, ckpt_dir)
    return int(client["step"]), tuple(client["positions"][rank])


def restart_if_stale(
    fit: Callable[..., T], out: Path, rank: int, say: Callable[[str], None], resume: bool = True
) -> T:
    """``fit(resume=resume)`` (a training run in the folder ``out``); if ``out`` holds a
    checkpoint of other data or another model, ``say`` why, delete its checkpoints (rank 0)
    and ``fit(resume=False)``: the run starts afresh."""
    try:
        return fit(resume=resume)
    except StaleCheckpointError as err:
        say(str(err))
        if rank == 0:
            shutil.rmtree(Path(out) / CKPT_DIR, ignore_errors=True)
        return fit(resume=False)

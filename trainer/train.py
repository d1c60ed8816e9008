"""Training loop: shards -> MeshRegressor under a DeepSpeed engine, with exact resume.

Readable on purpose (nanoGPT-style): build data and model, wrap them in DeepSpeed, loop over
steps, log to CSV + TensorBoard (:mod:`trainer.logger`), checkpoint (model, optimizer,
scheduler, data position, RNG: :mod:`trainer.checkpoint`).
Works as one plain process (no launcher), under ``deepspeed``/``torchrun`` on CPU and on GPUs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from shards.heatmaps import dataset_codec
from trainer import distributed as dist
from trainer.augment import make_augmenter
from trainer.checkpoint import (
    CKPT_DIR,
    client_state,
    prune_checkpoints,
    resume_from,
    resume_tag,
    run_identity,
    save_model_file,
    write_checkpoint_meta,
)
from trainer.data import DataSource, model_input
from trainer.device import compile_kwargs, set_deterministic
from trainer.logger import LOG_FILE, Logger, truncate_log
from trainer.losses import mesh_losses
from trainer.model import MeshRegressor, masked_heatmap_modeling
from trainer.nosync import refuse_waiting_config, sync_free_clipping

REPO = Path(__file__).resolve().parent.parent


def resolve(path: str | Path) -> Path:
    """A config-relative path: as given if it exists, else relative to the repository."""
    p = Path(path)
    return p if p.exists() or p.is_absolute() else REPO / p


#: DeepSpeed keys the trainer fills from its own config (``train.*`` and the device); the
#: DeepSpeed JSON must not set them (dotted: nested keys).
TRAINER_OWNED_DS_KEYS = (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "optimizer.params.lr",
    "scheduler",
    "bf16",
    "fp16",
    "amp",
    "zero_optimization.stage",
)


def use_bf16(cfg: dict, cuda: bool) -> bool:
    """``train.precision``: bf16, fp32, or auto (bf16 on CUDA, fp32 on the CPU)."""
    p = cfg["train"].get("precision", "auto")
    return p == "bf16" or (p == "auto" and cuda)


def train_steps(cfg: dict, source: DataSource) -> int:
    """``train.steps``, or ``train.epochs`` x the train split's samples (meshes x views used,
    one view per mesh with ``data.view_choice: random``, from the manifest) /
    ``train.batch_size``."""
    t = cfg["train"]
    if t.get("steps") is not None:
        return int(t["steps"])
    views = cfg["data"]["views"]
    per_mesh = int(source.manifest.dims["V"]) if views in (None, "all") else len(views)
    if cfg["data"].get("view_choice", "each") == "random":
        per_mesh = 1
    meshes = sum(s.meshes for s in source.manifest.split_shards(source.train_split))
    steps = int(float(t["epochs"]) * meshes * per_mesh) // int(t["batch_size"])
    if steps < 1:
        raise ValueError(
            f"{source.root}: train.epochs={t['epochs']} of {meshes * per_mesh} samples is"
            f" not one batch of {t['batch_size']}"
        )
    return steps


def deepspeed_config(cfg: dict, world_size: int, cuda: bool, steps: int | None = None) -> dict:
    """The DeepSpeed config: what DeepSpeed owns from the JSON at ``train.deepspeed_config``
    (gradient clipping, optimizer type and its betas/eps/weight decay, ...), plus the batch
    sizes, lr schedule over ``steps`` (default ``train.steps``), precision and ZeRO stage from
    ``cfg`` and the device (torch's fused Adam on CUDA). A JSON that sets one of the trainer's
    keys (:data:`TRAINER_OWNED_DS_KEYS`) is refused, naming the key."""
    t = cfg["train"]
    path = resolve(t["deepspeed_config"])
    try:
        ds = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read DeepSpeed config ({e})") from None
    if not isinstance(ds, dict) or not isinstance(ds.get("optimizer", {}).get("params"), dict):
        raise ValueError(f"{path}: DeepSpeed config needs an optimizer with params")
    for key in TRAINER_OWNED_DS_KEYS:
        *parents, last = key.split(".")
        node = ds
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            raise ValueError(
                f"{path}: {key} is set by the trainer (train.* in the trainer config); remove it"
            )
    batch = int(t["batch_size"])
    if batch % world_size:
        raise ValueError(f"train.batch_size {batch} is not divisible by world size {world_size}")
    steps = t["steps"] if steps is None else steps
    if steps is None:
        raise ValueError("train.epochs: the step count comes from the dataset (train_steps)")
    steps = int(steps)
    ds["train_batch_size"] = batch
    ds["train_micro_batch_size_per_gpu"] = batch // world_size
    ds["gradient_accumulation_steps"] = 1
    ds["optimizer"]["params"]["lr"] = float(t["lr"])
    ds["scheduler"] = {
        "type": "WarmupDecayLR",
        "params": {
            "warmup_min_lr": 0.0,
            "warmup_max_lr": float(t["lr"]),
            "warmup_num_steps": max(1, int(round(float(t["warmup_frac"]) * steps))),
            "total_num_steps": steps,
            "warmup_type": "linear",
        },
    }
    opt = ds["optimizer"]
    adam = str(opt.get("type", "")).lower() in ("adam", "adamw")
    if cuda and adam and opt["params"].get("torch_adam"):
        opt["params"].setdefault("fused", True)  # torch's fused Adam: one kernel for all
    bf16 = use_bf16(cfg, cuda)
    # bf16 has fp32's range: no overflow check (it reads the gradient norm back every step)
    ds["bf16"] = {"enabled": True, "check_grad_overflow": False} if bf16 else {"enabled": False}
    # DeepSpeed's bf16 at stage 0 is its fp16 optimizer (a host check of every gradient): bf16
    # runs on the ZeRO optimizer, stage 1 at least (the same update; on 1 rank, no partitions)
    stage = max(int(t["zero_stage"]), 1 if bf16 else 0)
    ds.setdefault("zero_optimization", {})["stage"] = stage
    # no throughput timer: it synchronises the device at every step
    ds.setdefault("timers", {}).setdefault("throughput", {"enabled": False})
    return ds


def optimisation_step(
    engine,
    batch: dict[str, torch.Tensor],
    cfg: dict,
    dtype: torch.dtype,
    mhm_gen: torch.Generator,
    regressor: torch.Tensor,
    down: list[torch.Tensor],
) -> dict[str, torch.Tensor]:
    """One step on a batch already on the device: masked heatmap modeling on the heatmap
    channels, forward in ``dtype``, METRO's losses in fp32, backward, optimizer and scheduler
    step. Returns the loss parts (``total`` included)."""
    x = model_input(batch, cfg["model"]["input"])
    if cfg["model"]["input"] != "masks":
        k = batch["heatmaps"].shape[1]
        x[:, :k] = masked_heatmap_modeling(x[:, :k], float(cfg["train"]["mhm_ratio"]), mhm_gen)
    out = engine(x.to(dtype))
    out = {
        "joints": out["joints"].float(),
        "vertices": [v.float() for v in out["vertices"]],
        "cam": out["cam"].float(),
    }
    loss, parts = mesh_losses(out, batch, regressor, down, cfg["loss"])
    engine.backward(loss)
    engine.step()
    return parts


def mean_over_ranks(parts: dict[str, torch.Tensor], world: int) -> dict[str, float]:
    """The loss parts as floats, averaged over ranks (a collective: every rank calls it)."""
    names = sorted(parts)
    vals = torch.stack([parts[k].float() for k in names])  # on the engine's device
    if world > 1:
        torch.distributed.all_reduce(vals)
        vals /= world
    return {k: float(v) for k, v in zip(names, vals.cpu())}


def train(
    cfg: dict,
    data: str | Path,
    out: str | Path,
    resume: bool = True,
    stop_at: int | None = None,
    on_batch: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train for ``cfg['train']['steps']`` steps; resume from ``out/checkpoints`` if present.

    ``stop_at`` ends this invocation early at that step (after checkpointing it), as a
    preemption would; ``on_batch(step, batch)`` sees every batch (tests record data order).
    Returns a summary dict (final step, last losses, samples/s, data-wait share).
    """
    source = DataSource(data, cfg)  # fails fast on a bad data folder, before DeepSpeed starts
    import deepspeed
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = cfg["train"]
    set_deterministic(bool(t["deterministic"]))  # before CUDA starts (cuBLAS reads its setting)
    # rank and world from the launcher, MPI or SLURM; every collective times out
    ranks = dist.start(float(t["dist_timeout_s"]))
    rank, world = ranks.rank, ranks.world
    dist.own_run_folder(out, rank, world)  # one run per run folder, shared by all its ranks
    threads, _ = dist.choose_threads(t.get("threads"), int(t["num_workers"]), world)
    torch.set_num_threads(threads)
    ckpt_dir = out / CKPT_DIR
    identity = run_identity(cfg, source.manifest)
    # rank 0 decides what to resume from, checked before DeepSpeed starts
    tag = dist.on_rank0(lambda: resume_tag(ckpt_dir, identity, world) if resume else None,
                        rank, world)  # fmt: skip
    dist.seed_everything(int(t["seed"]))  # the same initial weights on every rank
    cuda = torch.cuda.is_available()

    steps = train_steps(cfg, source)  # train.steps, or from train.epochs and the manifest
    model = MeshRegressor(cfg["model"], source.levels, source.in_channels, source.res)
    if rank:  # then every rank its own dropout stream (rank 0 goes on with the config's seed)
        dist.seed_everything(int(t["seed"]), rank)
    ds_cfg = deepspeed_config(cfg, world, cuda, steps)
    refuse_waiting_config(ds_cfg)  # an optimizer that waits for the GPU every step
    engine, _, _, scheduler = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=ds_cfg
    )
    sync_free_clipping(engine)  # no host read of the gradient norm (trainer/nosync.py)
    if (compiled := compile_kwargs(t.get("compile"))) is not None:
        engine.compile(**compiled)
    device = engine.device
    dtype = torch.bfloat16 if ds_cfg["bf16"]["enabled"] else torch.float32
    regressor = torch.from_numpy(source.levels.h36m_regressor).float().to(device)
    down = [d.to(device) for d in source.down_tensors()]
    # the masking RNG lives on the device: the mask is drawn there, nothing crosses per step
    mhm_gen = torch.Generator(device=device).manual_seed(int(t["seed"]) * 1000 + rank)
    # detector-like input (train.augment): seeded per (seed, rank, step), so resume is exact
    augment = make_augmenter(
        cfg, dataset_codec(source.manifest.dims, source.manifest.config)[1], rank
    )

    step, position = 0, (0, 0)
    if tag:
        step, position = resume_from(engine, ckpt_dir, identity, rank, world, mhm_gen, tag)
    if rank == 0:  # a resumed run re-logs the steps after its checkpoint; a fresh one all
        truncate_log(out / LOG_FILE, step)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(cfg, indent=2))

    end = steps if stop_at is None else min(steps, int(stop_at))
    micro = ds_cfg["train_micro_batch_size_per_gpu"]
    pos_box = [position]
    loader = source.train_iter(rank, world, micro, position, pos_box, device=device)
    loader = dist.first_batch_agreed(loader, world)  # a rank without data stops every rank
    logger = Logger(out, rank == 0)
    bar = tqdm(total=steps, initial=step, disable=rank != 0, desc="train", dynamic_ncols=True)
    # The host never waits for the device between log steps: a log step reads the losses
    # back (that waits), so the wall time from one log step to the next is the device's time
    # for those steps; data_wait is the host's time in next(loader) over that wall time.
    window = {"wait": 0.0, "n": 0, "start": time.perf_counter()}
    last: dict = {}
    engine.train()
    while step < end:
        t0 = time.perf_counter()
        batch = next(loader)
        window["wait"] += time.perf_counter() - t0
        if on_batch is not None:
            on_batch(step, batch)
        if augment is not None:
            batch = augment(batch, step)
        parts = optimisation_step(engine, batch, cfg, dtype, mhm_gen, regressor, down)
        step += 1
        window["n"] += 1
        bar.update(1)
        if step % int(t["log_every"]) == 0 or step == steps:
            lr = scheduler.get_last_lr()[0] if scheduler is not None else float(t["lr"])
            last = mean_over_ranks(parts, world)  # waits for the device
            wall = max(time.perf_counter() - window["start"], 1e-9)
            last.update(
                lr=lr,
                samples_per_s=window["n"] * micro * world / wall,
                data_wait=window["wait"] / wall,
            )
            if cuda:  # the allocator's own count: no device sync
                last["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
            logger.log(step, last)
            bar.set_postfix(loss=f"{last['total']:.4f}", lr=f"{lr:.2e}")
            window = {"wait": 0.0, "n": 0, "start": time.perf_counter()}
        if step % int(t["ckpt_every"]) == 0 or step == end:
            t0 = time.perf_counter()
            tag = f"step{step:08d}"
            client = client_state(identity, step, pos_box[0], mhm_gen, device, world)
            if rank == 0:
                write_checkpoint_meta(ckpt_dir, tag, identity, step, world)
            engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state=client)
            save_model_file(engine, cfg, out, step, tag, rank)
            if rank == 0 and t.get("keep_last"):
                prune_checkpoints(ckpt_dir, int(t["keep_last"]))
            window["start"] += time.perf_counter() - t0  # checkpointing is not step time
    bar.close()
    logger.close()
    dist.barrier(world)  # rank 0's model.pt is written when train() returns on any rank
    if rank == 0:
        dist.release_run_folder(out)
    return {"step": step, **last, "threads": torch.get_num_threads()}

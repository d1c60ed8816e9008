"""Training loop: shards -> MeshRegressor under a DeepSpeed engine, with exact resume.

Readable on purpose (nanoGPT-style): build data and model, wrap them in DeepSpeed, loop over
steps, log to CSV + TensorBoard, checkpoint (model, optimizer, scheduler, data position, RNG).
Works as one plain process (no launcher), under ``deepspeed``/``torchrun`` on CPU and on GPUs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from shards.atomic import atomic_path, write_atomic
from shards.heatmaps import dataset_codec
from trainer import distributed as dist
from trainer.augment import make_augmenter
from trainer.data import DataSource, model_input
from trainer.device import compile_kwargs, set_deterministic
from trainer.losses import mesh_losses
from trainer.model import MeshRegressor, masked_heatmap_modeling
from trainer.nosync import refuse_waiting_config, sync_free_clipping

REPO = Path(__file__).resolve().parent.parent
CKPT_DIR = "checkpoints"
MODEL_FILE = "model.pt"
LOG_FILE = "log.csv"


free_port = dist.free_port


def ensure_dist_env() -> None:
    """Export rank and world size (launcher, MPI, SLURM or a single process) for
    torch.distributed (:mod:`trainer.distributed`)."""
    dist.export(dist.detect())


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
    from the manifest) / ``train.batch_size``."""
    t = cfg["train"]
    if t.get("steps") is not None:
        return int(t["steps"])
    views = cfg["data"]["views"]
    per_mesh = int(source.manifest.dims["V"]) if views in (None, "all") else len(views)
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


def gather(obj, world: int) -> list:
    """The object of every rank, in rank order."""
    if world == 1:
        return [obj]
    out = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


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
        "positions": gather(position, world),
        "mhm_rng": gather(mhm_gen.get_state(), world),
        "rng": gather(rng_state(device), world),
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


class Logger:
    """CSV + TensorBoard on rank 0."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled = enabled
        self.path = out / LOG_FILE
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))

    def log(self, step: int, row: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step, **row}
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        for k, v in row.items():
            if k != "step":
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def truncate_log(path: Path, step: int) -> None:
    """Drop CSV rows after ``step`` (a resumed run re-logs them)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    keep = [r for r in rows if int(r["step"]) <= step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)


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


class StaleCheckpointError(ValueError):
    """The checkpoint in a run folder was trained on other data or another model."""


def run_identity(cfg: dict, data: str | Path) -> dict:
    """What a checkpoint must share with the run resuming it: the dataset and the model."""
    manifest = (Path(data) / "manifest.json").read_bytes()
    blob = json.dumps([cfg["model"], cfg["data"]], sort_keys=True, default=str).encode()
    return {
        "data": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "model": "sha256:" + hashlib.sha256(blob).hexdigest(),
    }


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
    identity = run_identity(cfg, data)
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
    if compile_kwargs(t.get("compile")) is not None:
        engine.compile(**compile_kwargs(t["compile"]))
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

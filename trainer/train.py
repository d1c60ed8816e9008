"""Training loop: shards -> MeshRegressor under a DeepSpeed engine, with exact resume.

Readable on purpose (nanoGPT-style): build data and model, wrap them in DeepSpeed, loop over
steps, log to CSV + TensorBoard, checkpoint (model, optimizer, scheduler, data position, RNG).
Works as one plain process (no launcher), under ``deepspeed``/``torchrun`` on CPU and on GPUs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import torch

from shards.atomic import atomic_path
from shards.heatmaps import dataset_codec
from trainer.augment import make_augmenter
from trainer.data import DataSource, model_input
from trainer.losses import mesh_losses
from trainer.model import MeshRegressor, masked_heatmap_modeling

REPO = Path(__file__).resolve().parent.parent
CKPT_DIR = "checkpoints"
MODEL_FILE = "model.pt"
LOG_FILE = "log.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_dist_env() -> None:
    """Single process without a launcher: set the variables torch.distributed expects."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))


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


def deepspeed_config(cfg: dict, world_size: int, cuda: bool) -> dict:
    """The DeepSpeed config: what DeepSpeed owns from the JSON at ``train.deepspeed_config``
    (gradient clipping, optimizer type and its betas/eps/weight decay, ...), plus the batch
    sizes, lr schedule, precision and ZeRO stage from ``cfg`` and the device. A JSON that sets
    one of the trainer's keys (:data:`TRAINER_OWNED_DS_KEYS`) is refused, naming the key."""
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
    steps = int(t["steps"])
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
    ds["bf16"] = {"enabled": bool(cuda)}
    ds.setdefault("zero_optimization", {})["stage"] = int(t["zero_stage"])
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
        if rank != 0:
            return
        state = engine.module.state_dict()
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
    engine, ckpt_dir: Path, identity: dict, rank: int, world: int, mhm_gen: torch.Generator
) -> tuple[int, tuple[int, int]]:
    """Load the latest checkpoint of ``ckpt_dir`` into ``engine`` (model, optimizer,
    scheduler), check it was trained on this dataset and model with this many ranks, restore
    this rank's RNG streams; return (step, this rank's data position)."""
    _, client = engine.load_checkpoint(str(ckpt_dir))
    for key, value in client.get("identity", {}).items():
        if value != identity[key]:
            raise StaleCheckpointError(
                f"{ckpt_dir}: trained with other {key} ({value[:15]} vs {identity[key][:15]});"
                " use --restart or another --out"
            )
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

    ensure_dist_env()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = cfg["train"]
    torch.manual_seed(int(t["seed"]))
    threads = t.get("threads")
    if threads is None:  # leave the DataLoader workers a core each
        threads = max(1, (os.cpu_count() or 1) - int(t["num_workers"]))
    torch.set_num_threads(int(threads))
    deepspeed.init_distributed(dist_backend=None, verbose=False)
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    cuda = torch.cuda.is_available()

    model = MeshRegressor(cfg["model"], source.levels, source.in_channels, source.res)
    ds_cfg = deepspeed_config(cfg, world, cuda)
    engine, _, _, scheduler = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=ds_cfg
    )
    device = engine.device
    dtype = torch.bfloat16 if ds_cfg["bf16"]["enabled"] else torch.float32
    regressor = torch.from_numpy(source.levels.h36m_regressor).float().to(device)
    down = [d.to(device) for d in source.down_tensors()]
    mhm_gen = torch.Generator().manual_seed(int(t["seed"]) * 1000 + rank)
    # detector-like input (train.augment): seeded per (seed, rank, step), so resume is exact
    augment = make_augmenter(
        cfg, dataset_codec(source.manifest.dims, source.manifest.config)[1], rank
    )

    ckpt_dir = out / CKPT_DIR
    step, position = 0, (0, 0)
    identity = run_identity(cfg, data)
    if resume and latest_tag(ckpt_dir):
        step, position = resume_from(engine, ckpt_dir, identity, rank, world, mhm_gen)
    if rank == 0:  # a resumed run re-logs the steps after its checkpoint; a fresh one all
        truncate_log(out / LOG_FILE, step)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(cfg, indent=2))

    steps = int(t["steps"])
    end = steps if stop_at is None else min(steps, int(stop_at))
    micro = ds_cfg["train_micro_batch_size_per_gpu"]
    pos_box = [position]
    loader = source.train_iter(rank, world, micro, position, pos_box, device=device)
    logger = Logger(out, rank == 0)
    bar = tqdm(total=steps, initial=step, disable=rank != 0, desc="train", dynamic_ncols=True)
    window = {"wait": 0.0, "time": 0.0, "n": 0}
    last: dict = {}
    engine.train()
    while step < end:
        t0 = time.perf_counter()
        batch = next(loader)
        t1 = time.perf_counter()
        if on_batch is not None:
            on_batch(step, batch)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if augment is not None:
            batch = augment(batch, step)
        parts = optimisation_step(engine, batch, cfg, dtype, mhm_gen, regressor, down)
        if cuda:
            torch.cuda.synchronize()
        step += 1
        window["wait"] += t1 - t0
        window["time"] += time.perf_counter() - t0
        window["n"] += 1
        bar.update(1)
        if step % int(t["log_every"]) == 0 or step == steps:
            lr = scheduler.get_last_lr()[0] if scheduler is not None else float(t["lr"])
            last = mean_over_ranks(parts, world)
            last.update(
                lr=lr,
                samples_per_s=window["n"] * micro * world / max(window["time"], 1e-9),
                data_wait=window["wait"] / max(window["time"], 1e-9),
            )
            logger.log(step, last)
            bar.set_postfix(loss=f"{last['total']:.4f}", lr=f"{lr:.2e}")
            window = {"wait": 0.0, "time": 0.0, "n": 0}
        if step % int(t["ckpt_every"]) == 0 or step == end:
            tag = f"step{step:08d}"
            client = client_state(identity, step, pos_box[0], mhm_gen, device, world)
            engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state=client)
            save_model_file(engine, cfg, out, step, tag, rank)
    bar.close()
    logger.close()
    return {"step": step, **last}

"""Trainer configuration: typed sections with their defaults, a YAML file, dotted overrides.

``load_config("configs/demo.yaml", ["train.steps=5"])`` returns a plain dict
(``cfg["train"]["steps"]``) that is saved with checkpoints. The models below are the one place
for every default; an unknown or mistyped key in the file or an override is a one-line
``ValueError`` naming the file or the override and the key (:mod:`shards.config`). The
DeepSpeed JSON (``train.deepspeed_config``) holds only what DeepSpeed owns; batch, lr schedule,
precision and ZeRO stage come from here (``trainer.train.deepspeed_config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from shards.config import ConfigError, Section, load

Form = Literal["l1", "mse"]
Prob = Annotated[float, Field(ge=0.0, le=1.0)]


class ModelConfig(Section):
    input: Literal["heatmaps", "masks", "both"] = "heatmaps"  # Table 4 ablation: masks, both
    enc_channels: list[int] = [32, 64, 128]  # one stride-2 stage per entry after a stride-2 stem
    feat_dim: int = 256  # global feature / grid-token width
    pool: Literal["flatten", "mean"] = "flatten"  # global feature from the flattened last map
    keypoints: bool = True  # soft-argmax (x, y, peak) of every input channel into the feature
    norm: Literal["group", "batch"] = "group"  # encoder: GroupNorm (rank-count free) or BatchNorm
    upsample: Literal["dense", "sparse"] = "dense"  # learned coarse -> full: Linear or U's sparsity
    grid_tokens: bool = True  # append the encoder's grid as extra tokens (Graphormer-style)
    hidden: list[int] = [256, 128, 64]  # hidden size of each transformer block
    block_out: list[int] = [128, 64]  # output width of blocks 1..n-1 (the last block outputs 3)
    layers: int = 4  # transformer layers per block
    heads: int = 4
    intermediate: list[int] = [512, 256, 128]  # feed-forward size per block (paper: 3072 each)
    dropout: float = 0.1


class LossConfig(Section):  # METRO's weights and forms (trainer/losses.py)
    vertices: float = 100.0  # at each mesh level
    vertices_form: Form = "l1"
    joints3d: float = 1000.0  # transformer joints + joints regressed from the mesh, summed
    joints3d_form: Form = "mse"
    joints2d: float = 100.0  # weak-perspective reprojection vs crop-normalised keypoints
    joints2d_form: Form = "mse"
    vertex_levels: list[float] = [0.33, 0.33, 0.33]  # coarse -> full (padded with the last)


class JitterAug(Section):  # per-joint keypoint error (trainer/augment.py, docs/trainer.md)
    p: Prob = 0.0  # probability per sample
    scale: float = 1.0  # x the per-joint detector error (augment.JOINT_ERROR_PX, image px)
    df: int = 4  # Student-t degrees of freedom (heavy tails); 0 = Gaussian


class MissAug(Section):  # missed joints: channel zeroed
    p: Prob = 0.0  # probability per sample
    rate: Prob = 0.1  # probability per joint in a chosen sample


class SwapAug(Section):  # left/right confusion of one limb pair (two channels exchanged)
    p: Prob = 0.0  # probability per sample


class PeakAug(Section):  # a spurious second peak at the left/right partner joint
    p: Prob = 0.0  # probability per sample
    height: float = 0.6  # its height ~ U(height / 2, height) (the true peak is 1)


class SigmaAug(Section):  # blob width per joint
    p: Prob = 0.0  # probability per sample
    spread: float = 0.25  # sigma x U(1 - spread, 1 + spread) per joint


class HeightAug(Section):  # peak height (confidence) per joint
    p: Prob = 0.0  # probability per sample
    low: float = 0.5  # height ~ U(low, 1) per joint


class CropAug(Section):  # the detector's box is never the ground-truth box
    p: Prob = 0.0  # probability per sample
    shift: float = 0.03  # centre moved by U(-shift, shift) x the box side, per axis
    scale: float = 0.05  # side x U(1 - scale, 1 + scale)


class AugmentConfig(Section):
    """Detector-realistic input augmentation, each with a probability and a size; all off
    (p = 0) unless a config asks (trainer/augment.py)."""

    jitter: JitterAug = JitterAug()
    miss: MissAug = MissAug()
    swap: SwapAug = SwapAug()
    peak: PeakAug = PeakAug()
    sigma: SigmaAug = SigmaAug()
    height: HeightAug = HeightAug()
    crop: CropAug = CropAug()


class TrainConfig(Section):
    steps: int | None = None  # optimizer steps (1000 when neither steps nor epochs is set)
    epochs: float | None = None  # or: passes over the train split (steps from the manifest)
    batch_size: int = 32  # global batch (all ranks)
    lr: float = 2.0e-4
    warmup_frac: float = 0.1
    zero_stage: Literal[0, 1, 2, 3] = 0
    mhm_ratio: float = 0.3  # Masked Heatmap Modeling: zero up to this fraction of channels
    augment: AugmentConfig = AugmentConfig()  # detector-like heatmaps (off by default)
    log_every: int = 10
    ckpt_every: int = 500
    seed: int = 0
    num_workers: int = 1
    prefetch_factor: int | None = None  # batches each loader worker keeps ready (None: 2)
    threads: int | None = None  # torch threads per rank; None: OMP_NUM_THREADS, else from cores
    dist_timeout_s: float = 600.0  # several ranks: a collective waiting longer ends the job
    deepspeed_config: str = "configs/deepspeed.json"  # what DeepSpeed owns (clipping, Adam)
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = False  # torch.compile
    # the model (true: mode "default"; "reduce-overhead": CUDA graphs, for small per-GPU batches)
    deterministic: bool = False  # deterministic kernels (bit-exact reruns and resumes on GPUs)
    keep_last: int | None = None  # keep only the newest N checkpoints (None: all)

    @model_validator(mode="after")
    def _steps_or_epochs(self):
        if self.steps is not None and self.epochs is not None:
            raise ValueError("set train.steps or train.epochs, not both")
        if self.steps is None and self.epochs is None:
            self.steps = 1000
        if self.prefetch_factor is not None and self.prefetch_factor < 1:
            raise ValueError("train.prefetch_factor must be at least 1 (or null: torch's 2)")
        if self.keep_last is not None and self.keep_last < 1:
            raise ValueError("train.keep_last must be at least 1 (or null: keep all)")
        return self


class DataConfig(Section):
    """Training data. The view policy is two keys: ``views`` says which views may be used
    (null or ``all``: every view of the shards; a list of view indices) and ``view_choice``
    how: ``each`` makes every listed view of a mesh a sample, ``random`` draws one of them per
    mesh per epoch (seeded by ``train.seed``, resumable exactly). ``views: random`` is short for
    ``views: all`` + ``view_choice: random`` and is stored that way."""

    views: Any = None  # null / "all", "random", or a list of view indices (e.g. [0, 1, 2, 3])
    view_choice: Literal["each", "random"] = "each"  # each listed view, or one at random
    train_split: str = "train"
    block: int | None = None  # reader: meshes kept together when shuffling (None: its default)
    shuffle_buffer: int | None = None  # reader: samples per shuffled read window (None: default)
    val_split: str = "val"

    @field_validator("views", mode="before")
    @classmethod
    def _views(cls, v):
        if v is None or v in ("all", "random"):
            return v
        if (
            isinstance(v, list)
            and v
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)
            and len(set(v)) == len(v)
        ):
            return v
        raise ValueError(
            "must be null, 'all', 'random' or a non-empty list of distinct view indices"
        )

    @model_validator(mode="after")
    def _random_shorthand(self):
        if self.views == "random":
            if "view_choice" in self.model_fields_set and self.view_choice != "random":
                raise ValueError(
                    f"data.views 'random' means data.view_choice 'random', not "
                    f"{self.view_choice!r} (use data.views: all, or a list, with view_choice)"
                )
            self.views, self.view_choice = "all", "random"
        return self


class EvalConfig(Section):
    batch_size: int = 64
    max_samples: int | None = None


class TrainerConfig(Section):
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    eval: EvalConfig = EvalConfig()


#: Every default, as the plain dict ``load_config(None)`` returns.
DEFAULTS: dict[str, Any] = TrainerConfig().model_dump()


#: ``--set`` overrides for a model that trains in seconds on a CPU (on top of any config): smoke
#: runs (``bench/gpu_check.py --tiny``) and run-level tests.
TINY_MODEL = [
    "model.enc_channels=[8,16]",
    "model.feat_dim=32",
    "model.hidden=[32,16,16]",
    "model.block_out=[16,16]",
    "model.intermediate=[64,32,32]",
    "model.layers=1",
]


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults, updated by the YAML file at ``path``, then by dotted ``overrides``."""
    return load(TrainerConfig, path, overrides or ()).model_dump()


__all__ = ["ConfigError", "DEFAULTS", "TINY_MODEL", "TrainerConfig", "load_config"]

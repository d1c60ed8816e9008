"""Trainer configuration: YAML files with defaults and dotted command-line overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {
    "model": {
        "input": "heatmaps",  # heatmaps | masks | both (Table 4 ablation)
        "enc_channels": [32, 64, 128],  # one stride-2 stage per entry after a stride-2 stem
        "feat_dim": 256,  # global feature / grid-token width
        "pool": "flatten",  # global feature from the flattened last map (or "mean": pooled)
        "keypoints": True,  # soft-argmax (x, y, peak) of every input channel into the feature
        "upsample": "dense",  # learned coarse -> full: dense Linear (METRO) or "sparse" (U's)
        "grid_tokens": True,  # append the encoder's grid as extra tokens (Graphormer-style)
        "hidden": [256, 128, 64],  # hidden size of each transformer block
        "block_out": [128, 64],  # output width of blocks 1..n-1 (the last block outputs 3)
        "layers": 4,  # transformer layers per block
        "heads": 4,
        "intermediate": [512, 256, 128],  # feed-forward size per block (paper: 3072 each)
        "dropout": 0.1,
    },
    "loss": {  # METRO's weights and forms (trainer/losses.py)
        "vertices": 100.0,  # at each mesh level
        "vertices_form": "l1",
        "joints3d": 1000.0,  # transformer joints + joints regressed from the mesh, summed
        "joints3d_form": "mse",
        "joints2d": 100.0,  # weak-perspective reprojection vs crop-normalised keypoints
        "joints2d_form": "mse",
        "vertex_levels": [0.33, 0.33, 0.33],  # coarse -> full weights (padded with the last)
    },
    "train": {
        "steps": 1000,
        "batch_size": 32,  # global batch (all ranks)
        "lr": 2.0e-4,
        "warmup_frac": 0.1,
        "zero_stage": 0,
        "mhm_ratio": 0.3,  # Masked Heatmap Modeling: zero up to this fraction of channels
        "log_every": 10,
        "ckpt_every": 500,
        "seed": 0,
        "num_workers": 1,
        "threads": None,  # torch threads; None = cores minus DataLoader workers
        "deepspeed_config": "configs/deepspeed.json",
    },
    "data": {
        "views": None,  # view policy: None = all views in the shards, or a list of indices
        "train_split": "train",
        "block": None,  # reader: meshes kept together when shuffling (None: reader's default)
        "shuffle_buffer": None,  # reader: samples per shuffled read window (None: default)
        "val_split": "val",
    },
    "eval": {"batch_size": 64, "max_samples": None},
}


def deep_update(base: dict, new: dict) -> dict:
    """Recursively merge ``new`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(cfg: dict, item: str) -> None:
    """Apply one ``a.b.c=value`` override in place; ``value`` is parsed as YAML."""
    if "=" not in item:
        raise ValueError(f"override {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = cfg
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise ValueError(f"override {item!r}: unknown section {p!r}")
        node = node[p]
    if parts[-1] not in node:
        raise ValueError(f"override {item!r}: unknown key {key!r}")
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults, updated by the YAML file at ``path``, then by dotted ``overrides``."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"{path}: cannot read config ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: config must be a mapping")
        unknown = set(data) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"{path}: unknown sections {sorted(unknown)}")
        cfg = deep_update(cfg, data)
    for item in overrides or []:
        apply_override(cfg, item)
    return cfg

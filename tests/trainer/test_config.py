"""Trainer config: typed sections, one-line errors naming the file or override and the key,
and a DeepSpeed JSON that holds only what DeepSpeed owns."""

import json
from pathlib import Path

import pytest
import yaml

from trainer.config import DEFAULTS, load_config
from trainer.train import deepspeed_config

REPO = Path(__file__).resolve().parents[2]


def _one_line_error(path, overrides=None) -> str:
    with pytest.raises(ValueError) as e:
        load_config(path, overrides)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize(
    "text, want",
    [
        ("train: {stpes: 5}\n", "unknown key 'train.stpes' (did you mean 'steps'?)"),
        ("modle: {}\n", "unknown key 'modle' (did you mean 'model'?)"),
        ("model: {hidden: [64, x, 16]}\n", "model.hidden[1]: Input should be a valid integer"),
        ("model: {pool: max}\n", "model.pool: Input should be 'flatten' or 'mean'"),
        ("loss: {joints3d_form: l2}\n", "loss.joints3d_form: Input should be 'l1' or 'mse'"),
        ("data: {views: [0, one]}\n", "data.views: must be null, 'all', 'random' or a non-"),
        ("data: {views: some}\n", "data.views: must be null, 'all', 'random' or a non-empty"),
        ("data: {views: []}\n", "data.views: must be null, 'all', 'random' or a non-empty"),
        ("data: {views: [0, 0]}\n", "data.views: must be null, 'all', 'random' or a non-empty"),
        ("data: {view_choice: one}\n", "data.view_choice: Input should be 'each' or 'random'"),
        (
            "data: {views: random, view_choice: each}\n",
            "data: data.views 'random' means data.view_choice 'random', not 'each'",
        ),
        ("train: 5\n", "train: Input should be a valid dictionary"),
        ("- a\n", "a config must be a mapping"),
    ],
)
def test_file_errors_name_the_file_and_key(tmp_path, text, want):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert _one_line_error(bad).startswith(f"{bad}: {want}")


@pytest.mark.parametrize(
    "item, want",
    [
        ("train.stpes=5", "unknown key 'train.stpes' (did you mean 'steps'?)"),
        ("trian.steps=5", "unknown key 'trian'"),
        ("train.steps=five", "train.steps: Input should be a valid integer"),
        ("train.steps.x=1", "'train.steps' is a value, not a section"),
        ("train.steps", "expected key.path=value"),
    ],
)
def test_override_errors_name_the_override_and_key(item, want):
    msg = _one_line_error(REPO / "configs/demo.yaml", ["train.steps=7", item])
    assert msg == f"override {item!r}: {want}" or msg.startswith(f"override {item!r}: {want}")


@pytest.mark.parametrize(
    "sets, views, choice",
    [
        ([], None, "each"),
        (["data.views=all"], "all", "each"),
        (["data.views=[0,1]"], [0, 1], "each"),
        (["data.views=random"], "all", "random"),  # shorthand, stored as the two keys
        (["data.views=[0,1,2,3]", "data.view_choice=random"], [0, 1, 2, 3], "random"),
        (["data.view_choice=random"], None, "random"),
        (["data.views=random", "data.view_choice=random"], "all", "random"),
    ],
)
def test_view_policy_forms(sets, views, choice):
    cfg = load_config(None, sets)
    assert (cfg["data"]["views"], cfg["data"]["view_choice"]) == (views, choice)
    # what a checkpoint stores loads back to itself
    again = load_config(None, [f"data.{k}={json.dumps(v)}" for k, v in cfg["data"].items()])
    assert again["data"] == cfg["data"]


def test_file_then_overrides_in_order():
    demo = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    cfg = load_config(REPO / "configs/demo.yaml", ["train.steps=7", "train.steps=9"])
    assert cfg["train"]["steps"] == 9
    for section, values in demo.items():  # every value the file gives, the rest defaults
        for key, default in DEFAULTS[section].items():
            want = values.get(key, default) if key != "steps" else 9
            assert cfg[section][key] == want, (section, key)
    assert json.loads(json.dumps(cfg)) == cfg  # plain, JSON-serialisable
    assert load_config(None, ["loss.vertices=1"])["loss"]["vertices"] == 1.0


DS_DEMO_CPU_2 = {  # configs/deepspeed.json + demo.yaml's train section at 800 steps, 2 CPU ranks
    "gradient_clipping": 1.0,
    "steps_per_print": 1000000,
    "wall_clock_breakdown": False,
    "optimizer": {
        "type": "Adam",
        "params": {
            "betas": [0.9, 0.999],
            "eps": 1e-8,
            "weight_decay": 0.0,
            "torch_adam": True,
            "lr": 1e-3,
        },
    },
    "train_batch_size": 16,
    "train_micro_batch_size_per_gpu": 8,
    "gradient_accumulation_steps": 1,
    "scheduler": {
        "type": "WarmupDecayLR",
        "params": {
            "warmup_min_lr": 0.0,
            "warmup_max_lr": 1e-3,
            "warmup_num_steps": 80,
            "total_num_steps": 800,
            "warmup_type": "linear",
        },
    },
    "bf16": {"enabled": False},
    "zero_optimization": {"stage": 0},
    "timers": {"throughput": {"enabled": False}},
}


def test_deepspeed_config_fills_what_the_trainer_owns():
    cfg = load_config(REPO / "configs/demo.yaml", ["train.steps=800"])
    assert deepspeed_config(cfg, 2, cuda=False) == DS_DEMO_CPU_2
    paper = deepspeed_config(load_config(REPO / "configs/paper.yaml"), 4, cuda=True, steps=1000)
    assert paper["bf16"] == {"enabled": True, "check_grad_overflow": False}
    assert paper["zero_optimization"] == {"stage": 1}
    assert paper["train_micro_batch_size_per_gpu"] == 64
    assert paper["scheduler"]["params"]["total_num_steps"] == 1000
    assert paper["optimizer"]["params"]["fused"] is True  # torch's fused Adam on CUDA
    # bf16 forced on the CPU: DeepSpeed's bf16 runs on the ZeRO optimizer (stage >= 1)
    demo_bf16 = load_config(REPO / "configs/demo.yaml", ["train.precision=bf16"])
    forced = deepspeed_config(demo_bf16, 1, cuda=False)
    assert forced["bf16"]["enabled"] and forced["zero_optimization"]["stage"] == 1
    assert "fused" not in forced["optimizer"]["params"]  # plain torch Adam on the CPU


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"train_batch_size": 64}, "train_batch_size"),
        ({"scheduler": {"type": "WarmupLR"}}, "scheduler"),
        ({"fp16": {"enabled": True}}, "fp16"),
        ({"zero_optimization": {"stage": 2}}, "zero_optimization.stage"),
        ({"optimizer": {"type": "Adam", "params": {"lr": 0.1}}}, "optimizer.params.lr"),
    ],
)
def test_deepspeed_json_must_not_set_trainer_keys(tmp_path, patch, key):
    ds = {**json.loads((REPO / "configs/deepspeed.json").read_text()), **patch}
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(ds))
    cfg = load_config(REPO / "configs/demo.yaml", [f"train.deepspeed_config={path}"])
    with pytest.raises(ValueError, match=f"^{path}: {key} is set by the trainer"):
        deepspeed_config(cfg, 1, cuda=False)


def test_deepspeed_json_keeps_its_own_zero_keys(tmp_path):
    ds = json.loads((REPO / "configs/deepspeed.json").read_text())
    ds["zero_optimization"] = {"offload_optimizer": {"device": "cpu"}}
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(ds))
    cfg = load_config(REPO / "configs/paper.yaml", [f"train.deepspeed_config={path}"])
    zero = deepspeed_config(cfg, 1, cuda=False, steps=10)["zero_optimization"]
    assert zero == {"offload_optimizer": {"device": "cpu"}, "stage": 1}


def test_cli_typo_is_one_error_line(tmp_path, capsys):
    from trainer.__main__ import main

    bad = tmp_path / "typo.yaml"
    bad.write_text("train: {stpes: 5}\n")
    assert main(["params", "--config", str(bad)]) != 0
    err = capsys.readouterr().err
    assert err == f"error: {bad}: unknown key 'train.stpes' (did you mean 'steps'?)\n"
    assert main(["params", "--config", str(REPO / "configs/paper.yaml"), "--set", "modl.x=1"])
    want = "error: override 'modl.x=1': unknown key 'modl' (did you mean 'model'?)\n"
    assert capsys.readouterr().err == want

"""Data source (input kinds, topology levels), config overrides and the params CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shards.manifest import load_manifest
from shards.testing import make_fake_dataset
from shards.topology import load_topology
from trainer.config import load_config
from trainer.data import DataSource, model_input

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def masked_data(tmp_path_factory):
    return make_fake_dataset(
        tmp_path_factory.mktemp("masked"),
        n_meshes=12,
        views=2,
        res=32,
        nv=40,
        masks=True,
        shards=2,
        val_shards=1,
    )


@pytest.mark.parametrize("kind,channels", [("heatmaps", 17), ("masks", 1), ("both", 18)])
def test_input_kinds(masked_data, kind, channels):
    cfg = load_config(REPO / "configs/demo.yaml", [f"model.input={kind}"])
    src = DataSource(masked_data, cfg)
    assert src.in_channels == channels
    batch = next(src.train_iter(0, 1, 4))
    x = model_input(batch, kind)
    assert x.shape == (4, channels, 32, 32)
    # training batches carry heatmaps as stored (uint8); the model sees them in [0, 1]
    assert batch["heatmaps"].dtype == torch.uint8 and x.dtype == torch.float32
    hm = batch["heatmaps"].float() / 255.0
    if kind == "heatmaps":
        torch.testing.assert_close(x, hm, rtol=0, atol=1e-7)
    if kind == "both":
        torch.testing.assert_close(x[:, :17], hm, rtol=0, atol=1e-7)
        assert torch.equal(x[:, 17:], batch["masks"])


def test_levels_from_topology_and_missing_masks(masked_data, tmp_path):
    cfg = load_config(REPO / "configs/demo.yaml")
    src = DataSource(masked_data, cfg)
    topo = load_topology(masked_data)
    assert src.levels.sizes == [40, 10]
    np.testing.assert_array_equal(
        src.down_tensors()[0].to_dense().numpy(), topo.sampling["down_0"].toarray()
    )
    plain = make_fake_dataset(tmp_path / "plain", n_meshes=4, views=1, res=16, nv=20, shards=1)
    with pytest.raises(ValueError, match="needs masks"):
        DataSource(plain, load_config(None, ["model.input=masks"]))
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        DataSource(tmp_path / "nowhere", cfg)


def calls_to(monkeypatch, fn) -> list:
    """Record every call of ``fn`` from any module that imported it."""
    calls: list = []

    def spy(*args, **kwargs):
        calls.append(args)
        return fn(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, fn.__name__, None) is fn:
            monkeypatch.setattr(mod, fn.__name__, spy)
    return calls


def test_data_source_reads_manifest_and_topology_once(masked_data, monkeypatch):
    """What train() and evaluate() open: the manifest and topology.h5 once, handed on to the
    model's mesh levels, the body skinning and every shard reader."""
    manifests = calls_to(monkeypatch, load_manifest)
    topologies = calls_to(monkeypatch, load_topology)
    src = DataSource(masked_data, load_config(REPO / "configs/demo.yaml"))
    next(src.train_iter(0, 1, 4))
    next(src.eval_loader(src.val_split, 4))
    assert len(manifests) == 1 and len(topologies) == 1


def test_config_overrides(tmp_path):
    cfg = load_config(REPO / "configs/demo.yaml", ["train.steps=7", "model.hidden=[8, 4, 4]"])
    assert cfg["train"]["steps"] == 7 and cfg["model"]["hidden"] == [8, 4, 4]
    with pytest.raises(ValueError, match="unknown key"):
        load_config(None, ["train.stepz=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: {}\n")
    with pytest.raises(ValueError, match="bad.yaml: unknown key .modle."):
        load_config(bad)


def test_params_cli_paper(capsys):
    from trainer.__main__ import main
    from trainer.model import bert_layer_params

    assert main(["params", "--config", str(REPO / "configs/paper.yaml")]) == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-2].startswith("("):
            rows[" ".join(parts[:-3])] = int(parts[-3].replace(",", ""))
    names = [
        "encoder",
        "transformer block 1",
        "transformer block 2",
        "transformer block 3",
        "upsampling",
        "camera head",
    ]
    assert sum(rows[n] for n in names) == rows["total"]
    # SMPL levels: learned upsampling 431 -> 1723 -> 6890 (weights + biases)
    assert rows["upsampling"] == 431 * 1723 + 1723 + 1723 * 6890 + 6890
    # block 1 by hand: 2051 -> 1024 in-projection, 4 BERT layers (intermediate 3072), 1024 -> 512
    n_tok = 17 + 431 + 16  # joints, coarse vertices, 4x4 grid at R=56 with 4 stride-2 stages
    ref = 2051 * 1024 + 1024 + n_tok * 1024 + 4 * bert_layer_params(1024, 3072) + 1024 * 512 + 512
    ref += 2051 * 512 + 512  # METRO's linear residual 2051 -> 512
    assert rows["transformer block 1"] == ref
    assert "101.5M" in out and "102M" in out  # METRO (1024, 256, 128) with its unused tables


def test_view_policy_from_config(masked_data):
    cfg = load_config(REPO / "configs/demo.yaml", ["data.views=[1]"])
    batch = next(DataSource(masked_data, cfg).train_iter(0, 1, 4))
    assert batch["view"].tolist() == [1, 1, 1, 1]


def test_fit_weak_perspective_recovers_camera():
    from trainer.figures import fit_weak_perspective

    rng = np.random.default_rng(0)
    j3d = rng.normal(size=(17, 3))
    cam = np.array([0.9, 0.1, -0.2])
    j2d = cam[0] * j3d[:, :2] + cam[1:]
    vis = np.ones(17)
    vis[:3] = 0
    j2d[:3] += 5.0  # invisible joints are ignored
    np.testing.assert_allclose(fit_weak_perspective(j3d, j2d, vis), cam, atol=1e-12)

import numpy as np
import torch

from tests.trainer.helpers import toy_levels
from trainer.config import DEFAULTS, load_config
from trainer.losses import downsample_levels, mesh_losses, weak_perspective
from trainer.model import (
    MeshRegressor,
    bert_layer_params,
    masked_heatmap_modeling,
    metro_block_params,
    param_breakdown,
)


def small_cfg():
    m = dict(DEFAULTS["model"])
    m.update(
        enc_channels=[8, 16],
        feat_dim=32,
        hidden=[32, 16],
        block_out=[16],
        intermediate=[64, 32],
        layers=2,
        heads=4,
        dropout=0.0,
    )
    return m


def test_forward_shapes_and_upsampling_init():
    lv = toy_levels()
    model = MeshRegressor(small_cfg(), lv, in_channels=17, res=32).eval()
    out = model(torch.rand(2, 17, 32, 32))
    assert out["joints"].shape == (2, 17, 3)
    assert [v.shape[1] for v in out["vertices"]] == [6, 24, 96]
    assert out["cam"].shape == (2, 3)
    # upsampling starts as the topology's U: coarse -> full equals U0 @ U1 @ coarse
    coarse = out["vertices"][0]
    u = lv.up[0].toarray() @ lv.up[1].toarray()
    ref = torch.einsum("nm,bmc->bnc", torch.from_numpy(u).float(), coarse)
    torch.testing.assert_close(out["vertices"][-1], ref)
    # queries are the regressed template joints and the D-downsampled template
    q = model.queries.numpy()
    np.testing.assert_allclose(q[:17], lv.h36m_regressor @ lv.template, rtol=1e-5, atol=1e-6)
    d = lv.down[1].toarray() @ lv.down[0].toarray()
    np.testing.assert_allclose(q[17:], d @ lv.template, rtol=1e-5, atol=1e-6)


def test_input_kinds_and_param_breakdown():
    lv = toy_levels()
    model = MeshRegressor(small_cfg(), lv, in_channels=18, res=32)
    rows = dict(param_breakdown(model))
    assert rows["total"] == sum(p.numel() for p in model.parameters())
    parts = sum(v for k, v in rows.items() if k != "total")
    assert parts == rows["total"]  # no parameter outside the named parts
    # one block computed by hand: in-proj, position table, layers, out-proj
    blk = model.blocks[1]
    n_tok = blk.pos.shape[0]
    ref = 16 * 16 + 16 + n_tok * 16 + 2 * bert_layer_params(16, 32) + 16 * 3 + 3
    assert rows["transformer block 2"] == ref


def test_bert_layer_params_match_torch():
    layer = torch.nn.TransformerEncoderLayer(64, 4, 3072, batch_first=True)
    assert bert_layer_params(64, 3072) == sum(p.numel() for p in layer.parameters())


def test_metro_reference_unused_tables():
    b = metro_block_params(2051, 1024, 512)
    assert b["unused"] == 30522 * 1024 + 2 * 1024 + 2 * 1024 + 1024 * 1024 + 1024


def test_mhm_zeroes_whole_channels_up_to_ratio():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(512, 17, 4, 4) + 0.1
    y = masked_heatmap_modeling(x, 0.3, g)
    zero = (y.flatten(2).abs().sum(-1) == 0).float()
    kept = (y == x).flatten(2).all(-1).float()
    assert torch.equal(zero + kept, torch.ones_like(zero))  # channels dropped entirely or kept
    frac = zero.mean().item()
    assert 0.10 < frac < 0.20  # E[ratio] = 0.15
    assert torch.equal(masked_heatmap_modeling(x, 0.0), x)


def test_losses_zero_at_ground_truth_and_positive_otherwise():
    lv = toy_levels()
    reg = torch.from_numpy(lv.h36m_regressor)
    down = [torch.from_numpy(d.toarray()).float() for d in lv.down]
    v = torch.randn(2, 96, 3) + torch.tensor([0.0, 0.0, 5.0])
    j = torch.einsum("jv,bvc->bjc", reg, v)
    cam = torch.tensor([[1.2, 0.1, -0.2], [0.8, 0.0, 0.3]])
    j2d = torch.cat([weak_perspective(j - j[:, :1], cam), torch.ones(2, 17, 1)], -1)
    batch = {"vertices": v, "joints3d": j, "joints2d": j2d}
    levels = downsample_levels(v, down)
    out = {"joints": j + 1.0, "vertices": [lv_ + 2.0 for lv_ in levels], "cam": cam}
    w = load_config()["loss"]
    total, parts = mesh_losses(out, batch, reg, down, w)
    assert total.item() < 1e-5, parts
    out["vertices"][-1] = out["vertices"][-1] * 1.1
    total2, parts2 = mesh_losses(out, batch, reg, down, w)
    assert parts2["vertices"] > 1e-3 and parts2["joints3d"] > 1e-3 and parts2["joints2d"] > 1e-3

from pathlib import Path

import numpy as np
import torch

from tests.trainer.helpers import toy_levels
from trainer.config import DEFAULTS, load_config
from trainer.losses import downsample_levels, mesh_losses, weak_perspective
from trainer.model import (
    EncoderLayer,
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
    ref += 16 * 3 + 3  # METRO's linear residual of the block's input
    assert rows["transformer block 2"] == ref


def test_blocks_add_a_linear_residual_of_their_input():
    lv = toy_levels()
    model = MeshRegressor(small_cfg(), lv, in_channels=17, res=32).eval()
    blk = model.blocks[0]
    x = torch.randn(2, blk.pos.shape[0], blk.inp.in_features)
    with torch.no_grad():
        full = blk(x)
        ref = blk.residual(x)
        blk.out.weight.zero_()
        blk.out.bias.zero_()
        only_residual = blk(x)
    torch.testing.assert_close(only_residual, ref)  # the transformer path silenced
    assert not torch.allclose(full, ref)  # ... and it contributes when on
    manual = x @ blk.residual.weight.T + blk.residual.bias
    torch.testing.assert_close(only_residual, manual)


def test_soft_argmax_recovers_a_full_grid_gaussian():
    from trainer.model import soft_argmax

    r, sigma = 56, 2.0
    jj, ii = np.meshgrid(np.arange(r), np.arange(r))  # column, row of each pixel centre
    pts = np.array([[20.3, 31.7], [40.0, 12.25], [27.5, 27.5]])  # (x, y) in heatmap pixels
    hm = np.stack([np.exp(-((jj - x) ** 2 + (ii - y) ** 2) / (2 * sigma**2)) for x, y in pts])
    hm = np.concatenate([hm, np.zeros((1, r, r))])  # an empty (masked) channel
    out = soft_argmax(torch.from_numpy(hm[None]).float())[0].numpy()
    expect = (2 * pts + 1) / r - 1  # pixel-centre rule: centre of column j at (2j + 1)/R - 1
    np.testing.assert_allclose(out[:3, :2], expect, atol=1e-4)
    np.testing.assert_allclose(out[:3, 2], hm[:3].max((1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(out[3], 0.0)


def test_sparse_upsampling_starts_as_u_and_learns():
    lv = toy_levels()
    cfg = small_cfg() | {"upsample": "sparse"}
    model = MeshRegressor(cfg, lv, in_channels=17, res=32)
    coarse = torch.randn(2, 6, 3)
    u = lv.up[0].toarray() @ lv.up[1].toarray()
    ref = torch.einsum("nm,bmc->bnc", torch.from_numpy(u).float(), coarse)
    torch.testing.assert_close(model.upsample(coarse)[-1], ref)
    n_params = sum(p.numel() for p in model.upsample.parameters())
    assert n_params == sum(lin.weight.numel() + lin.bias.numel() for lin in model.upsample.linears)
    assert n_params < (96 * 24 + 24 * 6)  # only U's support is learned
    model.upsample(coarse)[-1].pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.upsample.parameters())


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
    assert max(v.item() for v in parts.values()) < 1e-4, parts
    out["vertices"][-1] = out["vertices"][-1] * 1.1
    total2, parts2 = mesh_losses(out, batch, reg, down, w)
    assert min(parts2[k].item() for k in ("vertices", "joints3d", "joints2d")) > 1e-5, parts2


def test_paper_losses_follow_metros_published_forms():
    """configs/paper.yaml: 1000 x 3D MSE + 100 x vertex L1 (1/3 per level) + 100 x 2D MSE,
    joint terms summed over the transformer's joints and those regressed from its mesh."""
    lv = toy_levels()
    reg = torch.from_numpy(lv.h36m_regressor)
    down = [torch.from_numpy(d.toarray()).float() for d in lv.down]
    g = torch.Generator().manual_seed(0)
    v = torch.randn(3, 96, 3, generator=g) + torch.tensor([0.0, 0.0, 4.0])
    j = torch.einsum("jv,bvc->bjc", reg, v)
    j2d = torch.rand(3, 17, 3, generator=g)
    j2d[..., 2] = (j2d[..., 2] > 0.3).float()
    batch = {"vertices": v, "joints3d": j, "joints2d": j2d}
    pred_v = [torch.randn(3, n, 3, generator=g) for n in (6, 24, 96)]
    out = {"joints": torch.randn(3, 17, 3, generator=g), "vertices": pred_v,
           "cam": torch.rand(3, 3, generator=g)}  # fmt: skip
    w = load_config(Path(__file__).parents[2] / "configs/paper.yaml")["loss"]
    total, parts = mesh_losses(out, batch, reg, down, w)

    # by hand, as in METRO's run_metro_bodymesh.py
    gt_p = j[:, :1]
    gt_levels = [v - gt_p]
    for d in down:
        gt_levels.append(torch.einsum("nm,bmc->bnc", d, gt_levels[-1]))
    gt_levels = gt_levels[::-1]
    pr = torch.einsum("jv,bvc->bjc", reg, pred_v[-1])
    pp = pr[:, :1]
    l_v = sum(0.33 * (p - pp - q).abs().mean() for p, q in zip(pred_v, gt_levels))
    gt_j = j - gt_p
    mine = (out["joints"] - out["joints"][:, :1], pr - pp)
    l_3d = sum(((a - gt_j) ** 2).mean() for a in mine)
    proj = [out["cam"][:, None, :1] * a[..., :2] + out["cam"][:, None, 1:] for a in mine]
    l_2d = sum((j2d[..., 2:] * (p - j2d[..., :2]) ** 2).mean() for p in proj)
    torch.testing.assert_close(parts["vertices"], l_v)
    torch.testing.assert_close(parts["joints3d"], l_3d)
    torch.testing.assert_close(parts["joints2d"], l_2d)
    torch.testing.assert_close(total, 100 * l_v + 1000 * l_3d + 100 * l_2d)


def test_encoder_norms_run_with_bf16_weights_and_fp32_buffers():
    """DeepSpeed's bf16 casts parameters, not buffers: BatchNorm's running statistics stay fp32
    (plain nn.BatchNorm2d then fails: 'expected scalar type BFloat16 but found Float'). Both
    encoder norms run so, and batch norm matches its fp32 self to bf16 precision."""
    import pytest

    lv = toy_levels()
    x = torch.rand(4, 17, 32, 32)
    for norm in ("group", "batch"):
        cfg = small_cfg() | {"norm": norm}
        torch.manual_seed(0)
        model = MeshRegressor(cfg, lv, in_channels=17, res=32)
        ref = model(x)["joints"]
        for p in model.parameters():  # as deepspeed's bf16 does
            p.data = p.data.bfloat16()
        got = model(x.bfloat16())["joints"]
        assert got.dtype == torch.float32  # coordinates leave the model in fp32 (issue 27)
        torch.testing.assert_close(got.float(), ref, atol=0.15, rtol=0.1)
    plain = torch.nn.BatchNorm2d(4)
    for p in plain.parameters():
        p.data = p.data.bfloat16()
    with pytest.raises(RuntimeError, match="expected scalar type"):
        plain(torch.rand(2, 4, 3, 3).bfloat16())
    with pytest.raises(ValueError, match="model.norm must be one of"):
        MeshRegressor(small_cfg() | {"norm": "layer"}, lv, in_channels=17, res=32)


def test_encoder_layer_is_torchs_in_fp32_and_keeps_an_fp32_stream_in_bf16():
    """EncoderLayer is nn.TransformerEncoderLayer bit for bit in fp32 (training, dropout on, same
    seed; and in eval). With bf16 weights (DeepSpeed's cast) it returns float32, and 4 layers
    stay much closer to the same weights run in fp32 than torch's layer does in bf16, whose
    residual stream and LayerNorms round to bf16 at every step (measured 4x closer)."""
    import copy

    kw = dict(activation="gelu", batch_first=True, layer_norm_eps=1e-12)
    torch.manual_seed(0)
    mine = torch.nn.Sequential(*(EncoderLayer(64, 4, 128, 0.1, **kw) for _ in range(4)))
    ref = torch.nn.Sequential(
        *(torch.nn.TransformerEncoderLayer(64, 4, 128, 0.1, **kw) for _ in range(4))
    )
    ref.load_state_dict(mine.state_dict())
    x = torch.randn(8, 50, 64)
    for mode in (True, False):
        mine.train(mode), ref.train(mode)
        torch.manual_seed(1)
        a = mine(x)
        torch.manual_seed(1)
        assert torch.equal(a, ref(x)), mode
    mine.eval(), ref.eval()
    with torch.no_grad():
        mine_bf16, ref_bf16 = copy.deepcopy(mine).bfloat16(), copy.deepcopy(ref).bfloat16()
        exact = copy.deepcopy(mine_bf16).float()(x)  # the same bf16-valued weights, in fp32
        got = mine_bf16(x)
        torchs = ref_bf16(x.bfloat16())
    assert got.dtype == torch.float32 and torchs.dtype == torch.bfloat16
    err, err_torch = (float((y.float() - exact).abs().mean()) for y in (got, torchs))
    assert 0 < err < 0.5 * err_torch, (err, err_torch)

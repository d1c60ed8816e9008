"""MPT mesh-regression model: heatmap encoder -> METRO-style transformer -> learned upsampling.

Layout (supplementary F of the MPT paper, METRO/Graphormer without graph convolutions):

- ``HeatmapEncoder``: a small CNN over the K x R x R heatmaps (or masks, or both as channels);
  returns a global feature (B, F) and a grid of tokens (B, G, F). The global feature keeps
  *where* things are: the final feature map is flattened (``pool: flatten``; ``mean`` pools it
  away) and, with ``keypoints: true``, each input channel's soft-argmax (x, y) and peak feed it
  too (integral regression, Sun et al. 2018), the very coordinates a 2D->3D lifter reads.
- ``TransformerBlock``: linear in-projection + learned position embedding, ``layers`` post-LN
  BERT-style encoder layers (GELU), linear out-projection to the next block's width, plus a
  linear residual of the block's input (METRO's ``cls_head(h) + residual(x)``).
- Queries: the H36M-17 joints and the coarse-template vertices; each query token is its template
  xyz concatenated with the global feature. Grid tokens (zeros for xyz) are appended as context.
- ``Upsampler``: one learned map per mesh level (coarse -> full) along the vertex axis,
  initialised from the topology's upsampling matrices U: a dense ``Linear`` (METRO's,
  ``upsample: dense``) or learned weights on U's own sparsity pattern (``upsample: sparse``,
  3 coarse neighbours per vertex; ~1000x fewer parameters, for CPU-sized models).
- Camera head: weak perspective (s, tx, ty) from the global feature.

Where millimetres are made the model computes in fp32 whatever its weights' dtype (DeepSpeed's
bf16 casts the whole module with ``.bfloat16()``; between 0.5 and 1 m a bf16 step is 3.9 mm):
the soft-argmax and the keypoint MLP over it, the global feature, the template queries, each
transformer layer's residual stream and LayerNorms (:class:`EncoderLayer`; only the attention
and feed-forward matmuls run in bf16), every block's output projection and residual, the whole
last block (:func:`run_fp32`: the smallest), the upsampler and the camera head
(:class:`FP32Linear`); joints, vertices and camera leave it in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def as_dense(m) -> np.ndarray:
    """Dense float32 array from a numpy array or scipy sparse matrix."""
    if hasattr(m, "toarray"):
        m = m.toarray()
    return np.asarray(m, dtype=np.float32)


@dataclass
class MeshLevels:
    """Mesh topology the model needs: template, faces, regressor and level matrices.

    ``down[i]`` maps level i to level i+1 (level 0 = full mesh, sizes shrinking);
    ``up[i]`` maps level i+1 back to level i.
    """

    template: np.ndarray  # (Nv, 3) rest-pose template vertices
    faces: np.ndarray  # (F, 3) int
    h36m_regressor: np.ndarray  # (17, Nv)
    down: list  # [(N1, Nv), (N2, N1), ...]
    up: list  # [(Nv, N1), (N1, N2), ...]

    @property
    def sizes(self) -> list[int]:
        """Vertex count per level, full mesh first."""
        return [int(self.template.shape[0])] + [int(as_dense(d).shape[0]) for d in self.down]

    def coarse_template(self) -> np.ndarray:
        """Template downsampled to the coarsest level with the D matrices."""
        v = np.asarray(self.template, dtype=np.float32)
        for d in self.down:
            v = as_dense(d) @ v
        return v


def input_channels(kind: str, num_keypoints: int = 17) -> int:
    """Channel count for the ``model.input`` setting."""
    table = {"heatmaps": num_keypoints, "masks": 1, "both": num_keypoints + 1}
    if kind not in table:
        raise ValueError(f"model.input must be one of {sorted(table)}, got {kind!r}")
    return table[kind]


NORMS = ("group", "batch")


def norm_groups(channels: int) -> int:
    """GroupNorm's group count: at most 32 groups, at least 4 channels each (dividing evenly)."""
    return math.gcd(channels, max(1, min(32, channels // 4)))


class FP32BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm computed in fp32 whatever the weights' dtype: DeepSpeed's bf16 casts the
    parameters but not the running statistics (fp32 buffers), which plain BatchNorm refuses."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        y = nn.functional.batch_norm(
            x.float(),
            self.running_mean,
            self.running_var,
            self.weight.float(),
            self.bias.float(),
            self.training or not self.track_running_stats,
            self.momentum,
            self.eps,
        )
        return y.to(x.dtype)


class FP32Linear(nn.Linear):
    """``nn.Linear`` computed in fp32 (input, weight and bias upcast; float32 out) whatever the
    parameters' dtype: bf16 weights keep their values, the products and sums lose nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float()
        return nn.functional.linear(x.float(), self.weight.float(), bias)


def fp32_layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` computed in fp32 (weight and bias upcast), float32 out."""
    w = None if norm.weight is None else norm.weight.float()
    b = None if norm.bias is None else norm.bias.float()
    return nn.functional.layer_norm(x.float(), norm.normalized_shape, w, b, norm.eps)


class EncoderLayer(nn.TransformerEncoderLayer):
    """Post-LN BERT layer (``nn.TransformerEncoderLayer``'s parameters and, in fp32, its exact
    training arithmetic) whose residual stream and LayerNorms stay fp32 whatever the weights'
    dtype: only the attention and the feed-forward run in the weights' dtype (bf16 under
    DeepSpeed), and their outputs join the stream in fp32 (Megatron's fp32 residual). Takes and
    returns (B, T, hidden) float32; in fp32 every cast is a no-op."""

    def forward(self, h: torch.Tensor, *_, **__) -> torch.Tensor:  # noqa: D102
        dt = self.linear1.weight.dtype
        x = h.to(dt)
        a = self.self_attn(x, x, x, need_weights=False)[0]
        h = fp32_layer_norm(self.norm1, h + self.dropout1(a).float())
        x = h.to(dt)
        f = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return fp32_layer_norm(self.norm2, h + self.dropout2(f).float())


def run_fp32(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` computed in fp32 whatever its parameters' dtype (bf16 weights upcast for
    the call, gradients flow back to them); a plain call when they are fp32 already."""
    params = dict(module.named_parameters())
    if all(p.dtype == torch.float32 for p in params.values()):
        return module(x.float())
    state = {n: p.float() for n, p in params.items()}
    state |= {n: b.float() if b.is_floating_point() else b for n, b in module.named_buffers()}
    return torch.func.functional_call(module, state, (x.float(),))


def conv_bn(cin: int, cout: int, stride: int, norm: str = "group") -> nn.Sequential:
    """3x3 conv, normalisation, ReLU. ``norm="group"``: GroupNorm (no running statistics, the
    same at any rank count); ``"batch"``: BatchNorm (per-rank batch statistics, fp32 running
    buffers; computed in fp32 under bf16 weights)."""
    if norm not in NORMS:
        raise ValueError(f"model.norm must be one of {NORMS}, got {norm!r}")
    layer = nn.GroupNorm(norm_groups(cout), cout) if norm == "group" else FP32BatchNorm2d(cout)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), layer, nn.ReLU(True))


def soft_argmax(x: torch.Tensor) -> torch.Tensor:
    """Per channel of (B, C, R, R) non-negative maps: (x, y, peak) -> (B, C, 3), in float32.

    (x, y) is the mass-weighted mean position in normalised crop coordinates (pixel-centre
    rule: column j sits at (2j + 1) / R - 1), 0 for an empty channel; peak is the maximum.
    """
    b, c, h, w = x.shape
    x = x.float().clamp(min=0)
    gx = (2 * torch.arange(w, dtype=x.dtype, device=x.device) + 1) / w - 1
    gy = (2 * torch.arange(h, dtype=x.dtype, device=x.device) + 1) / h - 1
    mass = x.sum((2, 3))
    inv = 1.0 / mass.clamp(min=1e-6)
    mx = (x.sum(2) * gx).sum(-1) * inv
    my = (x.sum(3) * gy).sum(-1) * inv
    return torch.stack([mx, my, x.amax((2, 3))], -1)


class HeatmapEncoder(nn.Module):
    """CNN over heatmaps/masks: stride-2 stem, then one stride-2 stage per extra channel entry.

    Global feature: ``global_fc`` over the flattened (``pool="flatten"``) or mean-pooled
    (``pool="mean"``) last feature map, plus an MLP over the inputs' soft-argmax keypoints
    when ``keypoints`` is set.
    """

    def __init__(
        self,
        in_channels: int,
        channels: list[int],
        feat_dim: int,
        res: int,
        pool: str = "flatten",
        keypoints: bool = True,
        norm: str = "group",
    ):
        super().__init__()
        if pool not in ("flatten", "mean"):
            raise ValueError(f"model.pool must be 'flatten' or 'mean', got {pool!r}")
        c0 = channels[0]
        layers = [conv_bn(in_channels, c0, 2, norm), conv_bn(c0, c0, 1, norm)]
        for cin, cout in zip(channels[:-1], channels[1:]):
            layers += [conv_bn(cin, cout, 2, norm), conv_bn(cout, cout, 1, norm)]
        self.body = nn.Sequential(*layers)
        self.pool = pool
        g = self.grid_side(res, len(channels))
        flat = channels[-1] * (g * g if pool == "flatten" else 1)
        self.global_fc = FP32Linear(flat, feat_dim)  # per sample, not per token: fp32 is cheap
        self.grid_proj = nn.Conv2d(channels[-1], feat_dim, 1)
        self.keypoint_mlp = (  # the coordinates a lifter reads, kept in fp32 (bf16: ~8 mm steps)
            nn.Sequential(
                FP32Linear(3 * in_channels, feat_dim),
                nn.ReLU(inplace=True),
                FP32Linear(feat_dim, feat_dim),
            )
            if keypoints
            else None
        )

    @staticmethod
    def grid_side(res: int, stages: int) -> int:
        """Side of the last feature map: each stage halves (3x3, stride 2, padding 1)."""
        for _ in range(stages):
            res = (res - 1) // 2 + 1
        return res

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        pooled = f.flatten(1) if self.pool == "flatten" else f.mean(dim=(2, 3))
        glob = self.global_fc(pooled)
        if self.keypoint_mlp is not None:
            glob = glob + self.keypoint_mlp(soft_argmax(x).flatten(1))
        grid = self.grid_proj(f).flatten(2).transpose(1, 2)
        return glob, grid


class TransformerBlock(nn.Module):
    """In-projection, ``layers`` post-LN BERT layers, out-projection + linear input residual."""

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        layers: int,
        heads: int,
        intermediate: int,
        num_tokens: int,
        dropout: float,
    ):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        self.inp = nn.Linear(in_dim, hidden)
        self.pos = nn.Parameter(torch.randn(num_tokens, hidden) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(
                hidden,
                heads,
                intermediate,
                dropout,
                activation="gelu",
                batch_first=True,
                norm_first=False,
                layer_norm_eps=1e-12,
            )
            for _ in range(layers)
        )
        # the coordinate stream (template xyz -> residuals -> vertices) in fp32
        self.out = FP32Linear(hidden, out_dim)
        self.residual = FP32Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, in) -> (B, T, out) in float32 (the stream in fp32, the layers' matmuls in the
        weights' dtype)."""
        h = self.drop(self.inp(x.to(self.inp.weight.dtype)).float() + self.pos.float())
        for layer in self.layers:
            h = layer(h)
        return self.out(h) + self.residual(x)


class SparseLinear(nn.Module):
    """``y[:, i] = sum_k w[i, k] x[:, idx[i, k]] + b[i]`` along the vertex axis: learned weights
    on a fixed support (the nonzeros of a sparse matrix, padded with zero weights)."""

    def __init__(self, m):
        super().__init__()
        d = as_dense(m)
        k = max(1, int((d != 0).sum(1).max()))
        idx = np.zeros((d.shape[0], k), np.int64)
        w = np.zeros((d.shape[0], k), np.float32)
        for i, row in enumerate(d):
            nz = np.flatnonzero(row)
            idx[i, : nz.size], w[i, : nz.size] = nz, row[nz]
        self.register_buffer("index", torch.from_numpy(idx))
        self.weight = nn.Parameter(torch.from_numpy(w))
        self.bias = nn.Parameter(torch.zeros(d.shape[0]))
        self.in_features = d.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N_in, C) -> (B, N_out, C)."""
        g = x[:, self.index]  # (B, N_out, k, C)
        g = g.float()  # coordinates: in fp32 whatever the weights' dtype
        return (g * self.weight[None, :, :, None].float()).sum(2) + self.bias.float()[:, None]


class Upsampler(nn.Module):
    """Learned upsampling coarse -> full along the vertex axis, initialised from U.

    ``kind="dense"``: one ``nn.Linear`` per level (METRO); ``"sparse"``: ``SparseLinear`` on
    U's sparsity pattern.
    """

    def __init__(self, up: list, kind: str = "dense"):
        super().__init__()
        if kind not in ("dense", "sparse"):
            raise ValueError(f"model.upsample must be 'dense' or 'sparse', got {kind!r}")
        self.kind = kind
        # apply coarsest first: up[-1] (N_{n-1} x N_n), ..., up[0] (Nv x N1)
        self.linears = nn.ModuleList()
        for u in reversed(up):
            if kind == "sparse":
                self.linears.append(SparseLinear(u))
                continue
            u = torch.from_numpy(as_dense(u))
            lin = FP32Linear(u.shape[1], u.shape[0])
            with torch.no_grad():
                lin.weight.copy_(u)
                lin.bias.zero_()
            self.linears.append(lin)

    def forward(self, coarse: torch.Tensor) -> list[torch.Tensor]:
        """(B, Nc, 3) -> list of (B, N_level, 3) in float32, coarsest first, full mesh last."""
        coarse = coarse.float()
        out = [coarse]
        v = coarse
        for lin in self.linears:
            if self.kind == "sparse":
                v = lin(v)
            else:
                v = lin(v.transpose(1, 2)).transpose(1, 2)
            out.append(v)
        return out


class MeshRegressor(nn.Module):
    """Heatmaps -> (H36M-17 joints, mesh at every level, weak-perspective camera)."""

    def __init__(self, cfg: dict, levels: MeshLevels, in_channels: int, res: int):
        super().__init__()
        m = cfg
        feat = int(m["feat_dim"])
        self.encoder = HeatmapEncoder(
            in_channels,
            list(m["enc_channels"]),
            feat,
            res,
            pool=str(m["pool"]),
            keypoints=bool(m["keypoints"]),
            norm=str(m.get("norm", "batch")),
        )
        n_grid = HeatmapEncoder.grid_side(res, len(m["enc_channels"])) ** 2
        self.use_grid = bool(m["grid_tokens"])
        joints_t = as_dense(levels.h36m_regressor) @ np.asarray(levels.template, np.float32)
        queries = np.concatenate([joints_t, levels.coarse_template()], 0)
        self.register_buffer("queries", torch.from_numpy(queries.astype(np.float32)))
        self.num_joints = joints_t.shape[0]
        n_tokens = queries.shape[0] + (n_grid if self.use_grid else 0)
        hidden = list(m["hidden"])
        inter = m["intermediate"]
        inter = list(inter) if isinstance(inter, list | tuple) else [int(inter)] * len(hidden)
        outs = list(m["block_out"]) + [3]
        if not (len(hidden) == len(inter) == len(outs)):
            raise ValueError(
                "model.hidden, model.intermediate and model.block_out+[3] differ in length"
            )
        ins = [feat + 3] + outs[:-1]
        self.blocks = nn.ModuleList(
            TransformerBlock(
                i, h, o, int(m["layers"]), int(m["heads"]), it, n_tokens, float(m["dropout"])
            )
            for i, h, o, it in zip(ins, hidden, outs, inter)
        )
        self.upsample = Upsampler(levels.up, str(m["upsample"]))
        self.cam_head = FP32Linear(feat, 3)
        with torch.no_grad():
            self.cam_head.weight.mul_(0.01)
            self.cam_head.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))

    def _apply(self, fn, recurse=True):
        """As ``nn.Module._apply``, but the template queries keep float32 (``.bfloat16()``,
        as DeepSpeed's bf16 does, would round them to 2-4 mm); only their device follows."""
        q = self.queries
        super()._apply(fn, recurse)
        self.queries = q.to(self.queries.device)
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """x: (B, C, R, R). Returns joints (B,17,3), vertices [coarse..full], cam (B,3), all
        float32."""
        glob, grid = self.encoder(x)
        b = x.shape[0]
        q = self.queries.unsqueeze(0).expand(b, -1, -1)  # float32: template xyz
        tokens = torch.cat([q, glob.float().unsqueeze(1).expand(-1, q.shape[1], -1)], dim=2)
        if self.use_grid:
            zeros = tokens.new_zeros(b, grid.shape[1], 3)
            tokens = torch.cat([tokens, torch.cat([zeros, grid.float()], dim=2)], dim=1)
        h = tokens
        for blk in self.blocks[:-1]:
            h = blk(h)
        h = run_fp32(self.blocks[-1], h)  # the last block makes the coordinates: fp32
        joints = h[:, : self.num_joints]
        coarse = h[:, self.num_joints : q.shape[1]]
        return {"joints": joints, "vertices": self.upsample(coarse), "cam": self.cam_head(glob)}


def masked_heatmap_modeling(
    heatmaps: torch.Tensor, max_ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero a random fraction (uniform in [0, max_ratio] per sample) of keypoint channels.

    The mask is drawn on ``generator``'s device (the heatmaps' without one): the trainer's
    generator lives on its device, so nothing crosses between host and device.
    """
    if max_ratio <= 0:
        return heatmaps
    b, k = heatmaps.shape[:2]
    dev = generator.device if generator is not None else heatmaps.device
    ratio = torch.rand(b, 1, generator=generator, device=dev) * max_ratio
    keep = torch.rand(b, k, generator=generator, device=dev) >= ratio
    if keep.device != heatmaps.device:
        keep = keep.to(heatmaps.device)
    return heatmaps * keep.to(heatmaps.dtype)[:, :, None, None]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def param_breakdown(model: MeshRegressor) -> list[tuple[str, int]]:
    """Parameter count by part: encoder, each transformer block, upsampling, camera head."""
    rows = [("encoder", count(model.encoder))]
    rows += [(f"transformer block {i + 1}", count(b)) for i, b in enumerate(model.blocks)]
    rows += [("upsampling", count(model.upsample)), ("camera head", count(model.cam_head))]
    rows.append(("total", count(model)))
    return rows


def bert_layer_params(hidden: int, intermediate: int) -> int:
    """One BERT layer: QKV + output projection, two LayerNorms, feed-forward."""
    attn = 4 * (hidden * hidden + hidden)
    ffn = hidden * intermediate + intermediate + intermediate * hidden + hidden
    return attn + ffn + 2 * 2 * hidden


def metro_block_params(
    img_dim: int,
    hidden: int,
    out_dim: int,
    layers: int = 4,
    intermediate: int = 3072,
    vocab: int = 30522,
    max_positions: int = 512,
    type_vocab: int = 2,
) -> dict[str, int]:
    """Parameters of one METRO block (metro/modeling/bert/modeling_metro.py), computed from shapes.

    Used in the forward pass: image-feature embedding (img_dim -> hidden), position table,
    the encoder layers, cls head (hidden -> out) and residual (img_dim -> out). Never used:
    BERT's word-embedding table (vocab x hidden), token-type table, embedding LayerNorm, pooler.
    """
    used = (
        img_dim * hidden
        + hidden
        + max_positions * hidden
        + layers * bert_layer_params(hidden, intermediate)
        + hidden * out_dim
        + out_dim
        + img_dim * out_dim
        + out_dim
    )
    unused = vocab * hidden + type_vocab * hidden + 2 * hidden + hidden * hidden + hidden
    return {"used": used, "unused": unused}

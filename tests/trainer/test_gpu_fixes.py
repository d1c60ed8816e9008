"""Issue 27, the GPU path as a GPU runs it, proven on the CPU with spies where CUDA cannot run:
one device per rank, deterministic kernels, no host-built tensors per step, batches that cross
packed, persistent loader workers, the foreach gradient norm, gpu-check's own figures and its
refusal on a host without a GPU. (DeepSpeed-run checks: tests/trainer/test_gpu_path.py.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shards.testing import make_fake_dataset
from trainer import distributed as dist
from trainer.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))


class HostToDevice:
    """Counts tensors built from host data with an explicit device (``torch.tensor(...,
    device=)``, ``torch.as_tensor(list, device=)``) and blocking ``.to(device)`` copies: on a
    GPU each is a host-to-device copy that waits for the queued work."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        real_tensor, real_as, real_to = torch.tensor, torch.as_tensor, torch.Tensor.to

        def tensor(data, *a, **k):
            if k.get("device") is not None:
                self.calls.append("torch.tensor")
            return real_tensor(data, *a, **k)

        def as_tensor(data, *a, **k):
            if k.get("device") is not None and not isinstance(data, torch.Tensor):
                self.calls.append("torch.as_tensor")
            return real_as(data, *a, **k)

        def to(t, *a, **k):
            dev = k.get("device") is not None or (
                a and isinstance(a[0], torch.device | str | torch.Tensor)
            )
            if dev and not k.get("non_blocking"):
                self.calls.append("Tensor.to")
            return real_to(t, *a, **k)

        monkeypatch.setattr(torch, "tensor", tensor)
        monkeypatch.setattr(torch, "as_tensor", as_tensor)
        monkeypatch.setattr(torch.Tensor, "to", to)


# ---------------------------------------------------------------- 1. one device per rank


def test_start_sets_the_rank_gpu_before_the_process_group_opens(monkeypatch):
    """torch's object collectives use the current device: ``distributed.start`` makes it
    cuda:LOCAL_RANK before the process group (and so any collective) exists."""
    import deepspeed

    events: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: events.append(("set_device", d)))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(deepspeed, "init_distributed", lambda **k: events.append("group"))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a: 5)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a: 8)
    monkeypatch.setattr(dist, "groups_inherit_timeout", lambda t: None)
    env = {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "5",
        "MASTER_ADDR": "h",
        "MASTER_PORT": "1",
    }
    assert dist.start(60, env).local_rank == 5
    assert events == [("set_device", 5), "group"]
    events.clear()
    env.update(RANK="1", WORLD_SIZE="2", LOCAL_RANK="9")  # more local ranks than GPUs
    with pytest.raises(ValueError, match="local rank 9 but this host has 8 GPUs"):
        dist.start(60, env)
    assert events == []


# ---------------------------------------------------------------- 2. deterministic kernels


def test_deterministic_switch_and_config(monkeypatch):
    from trainer.device import set_deterministic

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cfg = load_config(None, ["train.deterministic=true"])
    assert load_config(None)["train"]["deterministic"] is False
    try:
        set_deterministic(cfg["train"]["deterministic"])
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
    with pytest.raises(ConfigError, match="train.deterministic"):
        load_config(None, ["train.deterministic=maybe"])


# ---------------------------------------------------------------- 3. host-built tensors


def test_augmentation_builds_nothing_from_the_host_per_step(monkeypatch):
    """A step of the demo's augmentation makes no host-to-device copy (its constant tables are
    made once per device); the spy sees a planted one."""
    from trainer.augment import Augmenter

    aug = load_config(REPO / "configs/demo.yaml")["train"]["augment"]
    aug = {k: {**v, "p": 1.0} for k, v in aug.items()}  # every augmentation fires
    g = torch.Generator().manual_seed(0)
    b, k, r = 6, 17, 16
    batch = {
        "heatmaps": (torch.rand(b, k, r, r, generator=g) * 255).to(torch.uint8),
        "kp2d": torch.rand(b, k, 3, generator=g) * 1.6 - 0.8,
        "crop_side": torch.full((b,), 300.0),
        "joints2d": torch.rand(b, 17, 3, generator=g),
    }
    augment = Augmenter(aug, 2.0, seed=0)
    augment(batch, 0)  # the first step may make the tables
    spy = HostToDevice(monkeypatch)
    out = augment(batch, 1)
    assert spy.calls == []
    assert not torch.equal(out["heatmaps"], batch["heatmaps"])  # it did augment
    torch.tensor(1.0, device=out["heatmaps"].device)  # planted
    assert spy.calls == ["torch.tensor"]


def test_bf16_with_fp32_gradient_accumulation_is_refused_in_one_line(tmp_path):
    """DeepSpeed's BF16_Optimizer (bf16 + data_types.grad_accum_dtype fp32 at ZeRO stage 1)
    waits for the device at every step: refused before DeepSpeed starts."""
    import json

    from trainer.nosync import refuse_waiting_config
    from trainer.train import deepspeed_config

    ds = json.loads((REPO / "configs/deepspeed.json").read_text())
    ds["data_types"] = {"grad_accum_dtype": "fp32"}
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(ds))
    cfg = load_config(None, [f"train.deepspeed_config={path}", "train.steps=10"])
    ds_cfg = deepspeed_config(cfg, 1, cuda=True)
    with pytest.raises(ValueError, match="grad_accum_dtype=fp32 with bf16") as e:
        refuse_waiting_config(ds_cfg)
    assert "\n" not in str(e.value)
    refuse_waiting_config(deepspeed_config(cfg, 1, cuda=False))  # fp32: DeepSpeed's own path
    cfg = load_config(None, ["train.steps=10"])
    refuse_waiting_config(deepspeed_config(cfg, 1, cuda=True))  # the default bf16 config


# ---------------------------------------------------------------- 4, 5. batches and workers


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_fixes_ds")
    return make_fake_dataset(root, n_meshes=24, views=2, res=16, nv=60, shards=3, seed=2)


def test_packed_batch_unpacks_on_the_device_as_on_the_host(small_ds):
    """A packed batch crosses as three contiguous tensors and unpacks there to the same
    tensors the host would unpack."""
    from shards.batch import packed_to, unpack_batch
    from shards.reader import loader

    kw = dict(batch_size=4, views="all", shuffle=False, uint8_heatmaps=True, with_vertices=False)
    packed = next(iter(loader(small_ds, num_workers=0, unpack=False, **kw)))
    host = next(iter(loader(small_ds, num_workers=0, **kw)))
    tensors = [k for k, v in packed.items() if isinstance(v, torch.Tensor)]
    assert sorted(tensors) == ["_f", "_i", "heatmaps"]
    assert all(packed[k].is_contiguous() for k in tensors)
    got = unpack_batch(packed_to(packed, "cpu"))
    assert sorted(got) == sorted(host)
    for k in host:
        assert got[k].dtype == host[k].dtype and torch.equal(got[k], host[k]), k


def test_a_training_batch_crosses_in_three_copies(small_ds):
    """``train_iter`` moves each batch as its packed tensors and heatmaps (three contiguous
    copies; "meta" stands for the GPU) and yields it unpacked, every tensor on the device."""
    from trainer.config import TINY_MODEL
    from trainer.data import DataSource

    cfg = load_config(REPO / "configs/demo.yaml", [*TINY_MODEL, "train.num_workers=0"])
    it = DataSource(small_ds, cfg).train_iter(0, 1, 4, device="meta")
    next(it)  # the first batch also moves the skinning model (once)
    crossed, real_to = [], torch.Tensor.to

    def to(t, *a, **k):
        out = real_to(t, *a, **k)
        if out.device != t.device:
            crossed.append((t.dtype, t.is_contiguous()))
        return out

    torch.Tensor.to = to
    try:
        batch = next(it)
    finally:
        torch.Tensor.to = real_to
    assert sorted(str(d) for d, _ in crossed) == ["torch.float32", "torch.int64", "torch.uint8"]
    assert all(c for _, c in crossed)
    assert {v.device.type for v in batch.values()} == {"meta"} and "vertices" in batch


def test_loader_workers_persist_and_follow_the_epoch(small_ds):
    """Workers are forked once (the same processes every epoch) and still read each epoch's
    shuffle and resume offset, set in the main process (shared memory)."""
    from shards.reader import loader

    kw = dict(batch_size=4, views="all", shuffle=True, seed=3, uint8_heatmaps=True)

    def ids(dl, epoch, consumed=0):
        dl.dataset.set_epoch(epoch, consumed)
        return [b["sample_id"].tolist() for b in dl]

    ref = loader(small_ds, num_workers=0, **kw)
    want = [ids(ref, 0), ids(ref, 1), ids(ref, 1, 8)]
    dl = loader(small_ds, num_workers=1, prefetch_factor=3, **kw)
    got, pids = [], []
    for epoch, consumed in [(0, 0), (1, 0), (1, 8)]:
        got.append(ids(dl, epoch, consumed))
        pids.append([w.pid for w in dl._iterator._workers])
    assert got == want and want[0] != want[1]
    assert pids[0] == pids[1] == pids[2]  # persistent: not re-forked per epoch
    assert dl.prefetch_factor == 3
    assert load_config(None, ["train.prefetch_factor=4"])["train"]["prefetch_factor"] == 4
    with pytest.raises(ConfigError, match="train.prefetch_factor must be at least 1"):
        load_config(None, ["train.prefetch_factor=0"])


# ---------------------------------------------------------------- 6. launches


def _aten_ops(fn) -> int:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def test_gradient_norm_is_one_foreach_not_a_loop_per_parameter():
    """The sync-free ZeRO norm: DeepSpeed's value (2-norm; inf -> -1), in a number of ops that
    does not grow with the parameter count (DeepSpeed's loop: ~3 per parameter)."""
    import types

    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    from trainer.nosync import _grad_norm_direct

    opt = types.SimpleNamespace(
        model_parallel_rank=0, dp_process_group=None, device=torch.device("cpu"),
        _model_parallel_all_reduce=lambda tensor, op: None,
    )  # fmt: skip
    import deepspeed.comm as ds_comm

    real_reduce = ds_comm.all_reduce
    ds_comm.all_reduce = lambda *a, **k: None  # one rank: nothing to reduce
    try:
        counts = {}
        for n in (8, 32):
            g = torch.Generator().manual_seed(n)
            grads = [torch.randn(5 + i, generator=g).bfloat16() for i in range(n)]
            params = [torch.nn.Parameter(torch.zeros(1)) for _ in grads]
            want = DeepSpeedZeroOptimizer.get_grad_norm_direct(opt, grads, params)
            got = _grad_norm_direct(opt, grads, params)
            torch.testing.assert_close(got, want.float(), rtol=1e-6, atol=0)
            counts[n] = (
                _aten_ops(lambda: _grad_norm_direct(opt, grads, params)),  # noqa: B023
                _aten_ops(lambda: DeepSpeedZeroOptimizer.get_grad_norm_direct(opt, grads, params)),  # noqa: B023, E501
            )
        grads[3][0] = float("inf")
        assert float(_grad_norm_direct(opt, grads, params)) == -1.0
    finally:
        ds_comm.all_reduce = real_reduce
    assert counts[8][0] == counts[32][0] < counts[8][1] < counts[32][1], counts


def test_compile_mode_reaches_torch_compile():
    """train.compile: true is torch's default mode; "reduce-overhead" captures CUDA graphs."""
    from trainer.device import compile_kwargs

    assert compile_kwargs(False) is None
    assert compile_kwargs(True) == {"compile_kwargs": {"mode": "default"}}
    cfg = load_config(None, ["train.compile=reduce-overhead"])
    assert compile_kwargs(cfg["train"]["compile"]) == {
        "compile_kwargs": {"mode": "reduce-overhead"}
    }
    with pytest.raises(ConfigError, match="train.compile"):
        load_config(None, ["train.compile=fast"])


# ---------------------------------------------------------------- 8. gpu-check's figures


def test_gpu_check_peak_from_the_gpu_name_and_rate_as_total_over_total():
    import gpu_check

    tf = {n: gpu_check.peak_flops(n, None) for n in (
        "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H200", "NVIDIA A100-SXM4-80GB",
        "NVIDIA Mystery 9000")}  # fmt: skip
    assert tf == {"NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100 PCIe": 756e12,
                  "NVIDIA H200": 989e12, "NVIDIA A100-SXM4-80GB": 312e12,
                  "NVIDIA Mystery 9000": None}  # fmt: skip
    assert gpu_check.peak_flops("NVIDIA Mystery 9000", 100.0) == 100e12
    # windows of 4, 4 and 2 steps at batch 8; the first (start-up) is left out
    rows = [
        {"step": "4", "samples_per_s": "10", "data_wait": "0.5"},
        {"step": "8", "samples_per_s": "32", "data_wait": "0.0"},
        {"step": "10", "samples_per_s": "4", "data_wait": "0.5"},
    ]
    sps, wait = gpu_check.steady_rate(rows, 8)
    times = [32 / 32, 16 / 4]  # seconds of the two steady windows
    assert sps == pytest.approx(48 / sum(times))  # not the mean of 32 and 4
    assert wait == pytest.approx(0.5 * times[1] / sum(times))


def test_flops_count_attention_without_dropout():
    """Dropout changes no FLOPs: with dropout 0 the CPU's flash attention kernel (which the
    counter misses) is not used while counting."""
    from tests.trainer.helpers import toy_levels
    from trainer.flops import training_flops_per_sample
    from trainer.model import MeshRegressor

    levels = toy_levels()
    counts = []
    for p in (0.0, 0.1):
        cfg = load_config(None, ["model.dropout=" + str(p), "model.enc_channels=[8,16]",
                                 "model.feat_dim=32", "model.layers=1"])["model"]  # fmt: skip
        torch.manual_seed(0)
        model = MeshRegressor(cfg, levels, 17, 32)
        counts.append(training_flops_per_sample(model, (17, 32, 32)))
    assert counts[0] == counts[1]


# ---------------------------------------------------------------- 9. no GPU, one line


def test_gpu_check_without_a_gpu_says_so_in_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    import gpu_check

    assert gpu_check.main(["--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tiny" in err[0] and "GPU" in err[0]


def test_make_gpu_check_without_a_gpu_says_so_in_one_line():
    if shutil.which("nvidia-smi") or torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    r = subprocess.run(["make", "-s", "gpu-check"], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env=env)  # fmt: skip
    assert r.returncode != 0
    ours = [x for x in (r.stdout + r.stderr).splitlines() if not x.startswith("make")]
    assert len(ours) == 1 and "bench/gpu_check.py --tiny" in ours[0], r.stdout + r.stderr


def test_fp32_stage0_clipping_is_deepspeeds_without_host_tensors(monkeypatch):
    """fp32 at ZeRO stage 0 (no ZeRO optimizer): the engine's clipping scales the gradients
    exactly as DeepSpeed's ``clip_grad_norm_`` does (one rank, bit for bit; clipped and left
    alone) without DeepSpeed's two host-built tensors a step, in a number of ops that does not
    grow with the parameter count."""
    import types

    import deepspeed.runtime.utils as ds_utils

    from trainer.nosync import _clip_fp32_gradients, sync_free_clipping

    monkeypatch.setattr(ds_utils.dist, "all_reduce", lambda *a, **k: None)  # one rank
    monkeypatch.setattr(ds_utils.dist, "get_world_size", lambda *a, **k: 1)
    monkeypatch.setattr(ds_utils.groups, "_get_data_parallel_group", lambda: None)

    def engine(n: int, scale: float, max_norm: float) -> types.SimpleNamespace:
        """A stand-in fp32 stage-0 engine over ``n`` layers with seeded gradients."""
        g = torch.Generator().manual_seed(n)
        module = torch.nn.ModuleList(torch.nn.Linear(3 + i % 4, 2) for i in range(n))
        for p in module.parameters():
            p.grad = scale * torch.randn(p.shape, generator=g)
        module[0].bias.grad = None  # a parameter without a gradient: left out by both
        eng = types.SimpleNamespace(module=module, optimizer=torch.optim.SGD(module.parameters()),
                                    gradient_clipping=lambda: max_norm)  # fmt: skip
        eng.fp16_enabled = eng.bfloat16_enabled = eng.zero_optimization = lambda: False
        return eng

    def grads(eng) -> list:
        return [p.grad for p in eng.module.parameters()]

    for scale, max_norm in ((1.0, 0.5), (1e-3, 1.0)):  # clipped, then left alone
        ours, theirs, before = (engine(8, scale, max_norm) for _ in range(3))
        assert sync_free_clipping(ours)
        assert ours.clip_fp32_gradients.__func__ is _clip_fp32_gradients
        with pytest.MonkeyPatch.context() as mp:
            spy = HostToDevice(mp)  # its Tensor.to: here only onto the gradients' own device
            ours.clip_fp32_gradients()
            assert [c for c in spy.calls if c != "Tensor.to"] == []
            ds_utils.clip_grad_norm_(theirs.module.parameters(), max_norm)
            built = [c for c in spy.calls if c != "Tensor.to"]
            assert built == ["torch.tensor", "torch.tensor"]  # DeepSpeed's, caught
        for a, b, c in zip(grads(ours), grads(theirs), grads(before), strict=True):
            assert (a is None) == (b is None) == (c is None)
            if a is not None:
                assert torch.equal(a, b)
                assert torch.equal(a, c) == (scale != 1.0)
    small, large = engine(8, 1.0, 0.5), engine(32, 1.0, 0.5)
    assert _aten_ops(lambda: _clip_fp32_gradients(small)) == _aten_ops(
        lambda: _clip_fp32_gradients(large)
    )

"""Detector-like heatmap augmentation (trainer/augment.py) against independent recomputations:
the build's numpy codec, the full-grid Gaussian formula and the codec's decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shards.heatmaps import decode as np_decode
from shards.heatmaps import encode as np_encode
from trainer import augment as A
from trainer.config import DEFAULTS, load_config

R, SIGMA, K = 56, 2.0, 17


def keypoints(b: int, seed: int = 0, lo: float = 8.0, hi: float = 47.0) -> np.ndarray:
    """(b, K, 2) heatmap-pixel keypoints on a 1/64 grid (exact through every conversion)."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(lo, hi, (b, K, 2)) * 64) / 64


def batch(b: int = 6, seed: int = 0, side: float = 448.0) -> dict[str, torch.Tensor]:
    """A batch as the reader gives it: stored uint8 heatmaps drawn by the build's codec, the
    keypoints in normalised crop coordinates, the box side and an H36M-17 2D target."""
    kp = keypoints(b, seed)
    valid = np.ones((b, K), bool)
    valid[0, 3] = False  # one channel the build did not draw
    hm, _ = np_encode(kp, valid, R, SIGMA)
    norm = (2 * kp + 1) / R - 1
    kp2d = np.concatenate([norm, valid[..., None]], -1)
    j2 = np.concatenate([norm[:, :17], np.ones((b, 17, 1))], -1)
    return {
        "heatmaps": torch.from_numpy(hm),
        "kp2d": torch.from_numpy(kp2d).float(),
        "crop_side": torch.full((b,), side),
        "joints2d": torch.from_numpy(j2).float(),
        "_kp": torch.from_numpy(kp),
    }


def full_grid(x: float, y: float, sigma: float, h: float = 1.0) -> np.ndarray:
    """The codec's definition written out: rounded Gaussian over the whole R x R grid."""
    j, i = np.meshgrid(np.arange(R), np.arange(R))
    g = h * np.exp(-((j - x) ** 2 + (i - y) ** 2) / (2 * sigma**2))
    return np.floor(255 * g + 0.5).astype(np.uint8)


def run(b: dict, pert: A.Perturbation) -> tuple[np.ndarray, np.ndarray]:
    hm, j2 = A.apply(b["heatmaps"], b["kp2d"], b["crop_side"], pert, SIGMA, b["joints2d"])
    return hm.numpy(), j2.numpy()


@pytest.mark.parametrize("res,sigma", [(56, 2.0), (32, 2 * 32 / 56), (112, 4.0), (56, 0.7)])
def test_torch_codec_gives_the_builds_bytes(res, sigma):
    rng = np.random.default_rng(res)
    kp = rng.uniform(-4 * sigma - 2, res + 4 * sigma + 2, (40, K, 2))  # in, near and off crop
    kp[0, 0] = np.nan
    valid = rng.random((40, K)) > 0.1
    ref, w = np_encode(kp, valid, res, sigma)
    got, w2 = A.encode(torch.from_numpy(kp), torch.from_numpy(valid), res, sigma)
    assert got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), ref)
    np.testing.assert_array_equal(w2.numpy(), w)


def test_per_joint_sigma_and_height_follow_the_formula():
    kp = keypoints(2, 1)
    sig = np.random.default_rng(2).uniform(1.2, 3.5, (2, K))
    h = np.random.default_rng(3).uniform(0.4, 1.0, (2, K))
    got, _ = A.encode(
        torch.from_numpy(kp), torch.ones(2, K, dtype=torch.bool), R, torch.from_numpy(sig),
        torch.from_numpy(h),
    )  # fmt: skip
    for n in range(2):
        for k in range(K):
            ref = full_grid(kp[n, k, 0], kp[n, k, 1], sig[n, k], h[n, k]).astype(int)
            assert np.abs(got[n, k].numpy().astype(int) - ref).max() <= 1  # float ties only
            assert got[n, k].max() == np.floor(255 * h[n, k] * np.exp(
                -np.min((np.arange(R) - kp[n, k, 0]) ** 2) / (2 * sig[n, k] ** 2)
                - np.min((np.arange(R) - kp[n, k, 1]) ** 2) / (2 * sig[n, k] ** 2)) + 0.5
            )  # fmt: skip


def test_identity_and_probability_zero_give_the_stored_heatmaps_bit_for_bit():
    b = batch()
    hm, j2 = run(b, A.Perturbation.identity(6, K))
    np.testing.assert_array_equal(hm, b["heatmaps"].numpy())
    np.testing.assert_array_equal(j2, b["joints2d"].numpy())
    # every p = 0 (the defaults): no augmenter at all, and sampling draws the identity
    assert A.make_augmenter(load_config(None), SIGMA, 0) is None
    pert = A.sample(DEFAULTS["train"]["augment"], 6, K, torch.Generator().manual_seed(0))
    assert not pert.redrawn().any()
    # with p in (0, 1) the samples not picked keep their stored bytes
    aug = load_config(None, ["train.augment.jitter.p=0.5"])["train"]["augment"]
    pert = A.sample(aug, 6, K, torch.Generator().manual_seed(4))
    picked = pert.redrawn().numpy()
    assert picked.any() and not picked.all()
    hm, _ = run(b, pert)
    np.testing.assert_array_equal(hm[~picked], b["heatmaps"].numpy()[~picked])
    assert (hm[picked] != b["heatmaps"].numpy()[picked]).any()


def test_jitter_moves_each_peak_by_its_offset():
    b = batch(side=448.0)  # 448 image px over R=56: 8 image px per heatmap pixel
    pert = A.Perturbation.identity(6, K)
    off = np.random.default_rng(5).normal(0, 6.0, (6, K, 2))
    pert.jitter_px = torch.from_numpy(off)
    hm, j2 = run(b, pert)
    moved = b["_kp"].numpy() + off * R / 448.0
    valid = np.ones((6, K), bool)
    valid[0, 3] = False
    ref, _ = np_encode(moved, valid, R, SIGMA)
    assert np.abs(hm.astype(int) - ref.astype(int)).max() <= 1  # ties of 1/255 at most
    assert (hm != ref).mean() < 1e-4
    peaks, _ = np_decode(hm, SIGMA)
    inside = valid & (moved > 3).all(-1) & (moved < R - 4).all(-1)
    np.testing.assert_allclose(peaks[inside], moved[inside], atol=0.05)
    np.testing.assert_array_equal(j2, b["joints2d"].numpy())  # the 2D target stays the truth


def test_swap_exchanges_the_two_channels():
    b = batch()
    pert = A.Perturbation.identity(6, K)
    pert.swap[2] = 3  # LIMB_PAIRS[3] = wrists (9, 10)
    hm, _ = run(b, pert)
    stored = b["heatmaps"].numpy()
    a, c = A.LIMB_PAIRS[3]
    np.testing.assert_array_equal(hm[2, a], stored[2, c])
    np.testing.assert_array_equal(hm[2, c], stored[2, a])
    rest = [k for k in range(K) if k not in (a, c)]
    np.testing.assert_array_equal(hm[2, rest], stored[2, rest])
    np.testing.assert_array_equal(np.delete(hm, 2, 0), np.delete(stored, 2, 0))


def test_missed_joint_channel_is_zero_and_the_others_unchanged():
    b = batch()
    pert = A.Perturbation.identity(6, K)
    pert.miss[1, 9] = True
    pert.miss[1, 15] = True
    hm, _ = run(b, pert)
    stored = b["heatmaps"].numpy()
    assert not hm[1, 9].any() and not hm[1, 15].any() and stored[1, 9].any()
    keep = [k for k in range(K) if k not in (9, 15)]
    np.testing.assert_array_equal(hm[1, keep], stored[1, keep])


def test_second_peak_sits_at_the_partner_joint_with_its_height():
    b = batch()
    pert = A.Perturbation.identity(6, K)
    pert.peak[4] = 13  # left knee gets a second peak at the right knee
    pert.peak_height[4] = 0.5
    hm, _ = run(b, pert)
    kp = b["_kp"].numpy()[4]
    expect = np.maximum(full_grid(*kp[13], SIGMA), full_grid(*kp[14], SIGMA, 0.5))
    assert np.abs(hm[4, 13].astype(int) - expect.astype(int)).max() <= 1
    x, y = np.round(kp[14]).astype(int)
    assert abs(int(hm[4, 13, y, x]) - int(full_grid(*kp[14], SIGMA, 0.5)[y, x])) <= 1
    assert hm[4, 13, y, x] > 0.3 * 255 and b["heatmaps"][4, 13, y, x] < 10
    others = [k for k in range(K) if k != 13]
    np.testing.assert_array_equal(hm[4, others], b["heatmaps"].numpy()[4, others])


def test_sigma_and_height_change_the_blob_as_the_formula_says():
    b = batch()
    kp = b["_kp"].numpy()
    pert = A.Perturbation.identity(6, K)
    pert.sigma[0, 5] = 1.5
    pert.height[0, 7] = 0.6
    hm, _ = run(b, pert)
    for k, sig, h in ((5, 3.0, 1.0), (7, 2.0, 0.6)):
        ref = full_grid(*kp[0, k], sig, h)
        assert np.abs(hm[0, k].astype(int) - ref.astype(int)).max() <= 1


def test_crop_shift_and_scale_move_every_peak_and_the_2d_target_together():
    b = batch()
    pert = A.Perturbation.identity(6, K)
    pert.crop_shift[3] = torch.tensor([0.04, -0.02], dtype=torch.float64)
    pert.crop_scale[3] = 1.1
    hm, j2 = run(b, pert)
    norm = b["kp2d"].numpy()[3, :, :2].astype(np.float64)
    new = (norm - 2 * np.array([0.04, -0.02])) / 1.1  # box centre + shift*side, side x 1.1
    expect = ((new + 1) * R - 1) / 2
    peaks, _ = np_decode(hm[3], SIGMA)
    np.testing.assert_allclose(peaks, expect, atol=0.05)
    np.testing.assert_allclose(j2[3, :, :2], new[:17], atol=1e-6)
    np.testing.assert_array_equal(np.delete(j2, 3, 0), np.delete(b["joints2d"].numpy(), 3, 0))


def test_sampling_is_seeded_and_the_jitter_has_the_configured_size():
    aug = load_config(None, ["train.augment.jitter.p=1", "train.augment.jitter.scale=2"])["train"][
        "augment"
    ]
    a = A.sample(aug, 4000, K, torch.Generator().manual_seed(7))
    b = A.sample(aug, 4000, K, torch.Generator().manual_seed(7))
    c = A.sample(aug, 4000, K, torch.Generator().manual_seed(8))
    assert torch.equal(a.jitter_px, b.jitter_px) and not torch.equal(a.jitter_px, c.jitter_px)
    z = a.jitter_px.numpy() / (2 * np.asarray(A.JOINT_ERROR_PX))[:, None]
    assert abs(z.std() - 1) < 0.05  # unit variance per axis x per-joint std x scale
    kurt = ((z - z.mean()) ** 4).mean() / z.var() ** 2
    assert kurt > 4  # Student-t (df 4): heavier tails than a Gaussian's 3
    gauss = load_config(None, ["train.augment.jitter.p=1", "train.augment.jitter.df=0"])
    g = A.sample(gauss["train"]["augment"], 4000, K, torch.Generator().manual_seed(7))
    zg = g.jitter_px.numpy() / np.asarray(A.JOINT_ERROR_PX)[:, None]
    assert abs(zg.std() - 1) < 0.05 and abs(((zg**4).mean() / zg.var() ** 2) - 3) < 0.3


def test_augmenter_same_step_same_augmentation_other_step_other():
    cfg = load_config(None, [f"train.augment.{n}.p=0.5" for n in DEFAULTS["train"]["augment"]])
    b = batch(8)
    first = A.make_augmenter(cfg, SIGMA, rank=0)
    again = A.make_augmenter(cfg, SIGMA, rank=0)  # as after a resume: a new object
    x, y = first(b, 11), again(b, 11)
    assert torch.equal(x["heatmaps"], y["heatmaps"]) and torch.equal(x["joints2d"], y["joints2d"])
    assert not torch.equal(x["heatmaps"], first(b, 12)["heatmaps"])
    other_rank = A.make_augmenter(cfg, SIGMA, rank=1)
    assert not torch.equal(x["heatmaps"], other_rank(b, 11)["heatmaps"])
    assert torch.equal(x["_kp"], b["_kp"])  # other fields pass through


def test_probabilities_outside_0_1_are_one_line_config_errors():
    with pytest.raises(ValueError, match=r"train\.augment\.jitter\.p"):
        load_config(None, ["train.augment.jitter.p=1.5"])
    with pytest.raises(ValueError, match="unknown key"):
        load_config(None, ["train.augment.jiter.p=0.5"])


@pytest.mark.slow
def test_trainer_resume_augments_each_step_as_the_uninterrupted_run(tmp_path, monkeypatch):
    """3 steps + resume for 3 = 6 straight steps: the same augmented input at every step and
    the same weights bit for bit; the input differs from the stored heatmaps."""
    from pathlib import Path

    import trainer.train as T
    from shards.testing import make_fake_dataset
    from trainer.config import TINY_MODEL

    repo = Path(__file__).resolve().parents[2]
    data = make_fake_dataset(tmp_path / "ds", n_meshes=24, views=2, res=32, nv=60, shards=2)
    every = [f"train.augment.{n}.p=0.7" for n in DEFAULTS["train"]["augment"]]
    cfg = load_config(
        repo / "configs/demo.yaml",
        [*TINY_MODEL, *every, "train.steps=6", "train.batch_size=8", "train.ckpt_every=3",
         "train.num_workers=0", "train.log_every=1"],
    )  # fmt: skip
    seen: dict[str, list] = {"straight": [], "resumed": []}
    stored: list = []
    step_fn = T.optimisation_step
    key = ["straight"]

    def record(engine, batch, *a, **kw):
        seen[key[0]].append(batch["heatmaps"].clone())
        return step_fn(engine, batch, *a, **kw)

    monkeypatch.setattr(T, "optimisation_step", record)
    T.train(cfg, data, tmp_path / "straight", on_batch=lambda s, b: stored.append(b["heatmaps"]))
    key[0] = "resumed"
    T.train(cfg, data, tmp_path / "resumed", stop_at=3)
    T.train(cfg, data, tmp_path / "resumed")
    assert len(seen["straight"]) == len(seen["resumed"]) == 6
    for x, y in zip(seen["straight"], seen["resumed"]):
        assert torch.equal(x, y)
    assert any(not torch.equal(x, s) for x, s in zip(seen["straight"], stored))
    a = torch.load(tmp_path / "straight/model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "resumed/model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)

"""Heatmap codec against a full-grid Gaussian reference."""

from __future__ import annotations

import numpy as np
import pytest

from shards import heatmaps as H

ENGINES = ["numpy"] + (["numba"] if H.HAVE_NUMBA else [])


def full_grid(kp: np.ndarray, valid: np.ndarray, res: int, sigma: float) -> np.ndarray:
    """exp over the whole R x R grid for every keypoint; zero when invalid or > 3 sigma out."""
    g = np.arange(res, dtype=np.float64)
    x = kp[..., 0, None, None]
    y = kp[..., 1, None, None]
    val = np.exp(-((g[None, :] - x) ** 2 + (g[:, None] - y) ** 2) / (2 * sigma**2))
    # Euclidean distance from the centre to the crop square [-0.5, R-0.5]^2, written out.
    dx = np.clip(-0.5 - kp[..., 0], 0, None) + np.clip(kp[..., 0] - (res - 0.5), 0, None)
    dy = np.clip(-0.5 - kp[..., 1], 0, None) + np.clip(kp[..., 1] - (res - 0.5), 0, None)
    keep = valid & (np.hypot(dx, dy) <= 3 * sigma)
    return np.where(keep[..., None, None], val, 0.0)


def quantise(v: np.ndarray) -> np.ndarray:
    return np.floor(v * 255 + 0.5)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("res", [56, 112, 224])
def test_matches_full_grid(res, engine):
    rng = np.random.default_rng(res)
    sigma = H.default_sigma(res)
    kp = rng.uniform(-4 * sigma, res + 4 * sigma, size=(6, 17, 2))
    valid = rng.random((6, 17)) > 0.15
    hm, w = H.encode(kp, valid, res, engine=engine)
    ref = full_grid(kp, valid, res, sigma)
    assert hm.shape == (6, 17, res, res) and hm.dtype == np.uint8
    assert np.abs(hm.astype(np.int64) - quantise(ref)).max() <= 1
    np.testing.assert_array_equal(w, (ref.max(axis=(-1, -2)) > 0).astype(np.float32))
    # float output: the same Gaussian, truncated only below half a uint8 step
    hf, _ = H.encode(kp, valid, res, dtype=np.float32, engine=engine)
    assert np.abs(hf - ref).max() <= H.CUTOFF + 1e-6
    h16, _ = H.encode(kp, valid, res, dtype=np.float16, engine=engine)
    assert h16.dtype == np.float16 and np.abs(h16 - ref).max() <= H.CUTOFF + 1e-3


def test_peak_is_one_at_integer_keypoint():
    hm, w = H.encode(np.array([[20.0, 31.0]]), None, 56)
    assert hm[0, 31, 20] == 255 and w[0] == 1
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (31, 20)


def test_window_radius_is_minimal():
    for sigma in (1.0, 2.0, 3.3, 4.0, 8.0):
        r = H.window_radius(sigma)
        # worst case: keypoint half a pixel off the window centre
        assert np.exp(-((r + 0.5) ** 2) / (2 * sigma**2)) <= H.CUTOFF
        assert np.exp(-((r - 0.5) ** 2) / (2 * sigma**2)) > H.CUTOFF


@pytest.mark.parametrize("engine", ENGINES)
def test_border_clipping_and_outside(engine):
    res, sigma = 56, H.default_sigma(56)
    d = 3 * sigma
    kp = np.array(
        [
            [-1.3, 20.0],  # just left of the crop: partial Gaussian
            [res - 0.2, res + 1.7],  # past the bottom-right corner
            [-0.5 - d + 0.05, 30.0],  # just under 3 sigma out: drawn
            [-0.5 - d - 0.05, 30.0],  # just over 3 sigma out: nothing
            [res - 0.5 + 0.8 * d, res - 0.5 + 0.8 * d],  # corner, Euclidean > 3 sigma: nothing
            [0.0, 0.0],
        ]
    )
    hm, w = H.encode(kp, None, res, engine=engine)
    ref = quantise(full_grid(kp, np.ones(len(kp), bool), res, sigma))
    assert np.abs(hm.astype(np.int64) - ref).max() <= 1
    np.testing.assert_array_equal(w, [1, 1, 1, 0, 0, 1])
    assert 0 < hm[0].max() < 255 and hm[0, 20, 0] == ref[0, 20, 0]
    assert hm[2].max() > 0  # a few grey pixels along the left edge
    assert not hm[3].any() and not hm[4].any()


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_and_nonfinite_give_zeros(engine):
    kp = np.array([[10.0, 10.0], [np.nan, 5.0], [30.0, np.inf], [40.0, 40.0]])
    valid = np.array([False, True, True, True])
    hm, w = H.encode(kp, valid, 56, engine=engine)
    np.testing.assert_array_equal(w, [0, 0, 0, 1])
    assert not hm[:3].any() and hm[3].max() == 255


def test_batch_size_invariance_and_engines_agree():
    rng = np.random.default_rng(7)
    kp = rng.uniform(-8, 64, size=(5, 8, 17, 2))
    valid = rng.random((5, 8, 17)) > 0.1
    full, w = H.encode(kp, valid, 56)
    again, _ = H.encode(kp, valid, 56)
    assert full.tobytes() == again.tobytes()
    for m in range(5):
        one, wm = H.encode(kp[m], valid[m], 56)
        assert one.tobytes() == full[m].tobytes() and np.array_equal(wm, w[m])
    chunks = [H.encode(kp[:, i : i + 3], valid[:, i : i + 3], 56)[0] for i in range(0, 8, 3)]
    assert np.concatenate(chunks, axis=1).tobytes() == full.tobytes()
    for engine in ENGINES:
        other, _ = H.encode(kp, valid, 56, engine=engine)
        assert other.tobytes() == full.tobytes()


@pytest.mark.parametrize("res", [56, 112, 224])
def test_decode_inverts_encode(res):
    rng = np.random.default_rng(res + 1)
    sigma = H.default_sigma(res)
    margin = max(1, round(sigma / 2)) + 1
    kp = rng.uniform(margin, res - 1 - margin, size=(40, 17, 2))
    hm, _ = H.encode(kp, None, res)
    dec, score = H.decode(hm)
    assert dec.shape == kp.shape and score.shape == kp.shape[:-1]
    assert np.abs(dec - kp).max() < 0.1
    assert score.min() > 0.8
    dec_f, _ = H.decode(H.encode(kp, None, res, dtype=np.float32)[0])
    assert np.abs(dec_f - kp).max() < 0.02


def test_decode_empty_channel_scores_zero():
    hm, _ = H.encode(np.array([[10.0, 10.0], [-50.0, 0.0]]), None, 56)
    _, score = H.decode(hm)
    assert score[0] == 1.0 and score[1] == 0.0


def test_bad_input_messages():
    with pytest.raises(ValueError, match="kp must be"):
        H.encode(np.zeros((17, 3)), None, 56)
    with pytest.raises(ValueError, match="valid must be"):
        H.encode(np.zeros((2, 17, 2)), np.ones((17,), bool), 56)
    with pytest.raises(ValueError, match="dtype"):
        H.encode(np.zeros((17, 2)), None, 56, dtype=np.int32)
    with pytest.raises(ValueError, match="expected"):
        H.decode(np.zeros((17, 56, 40)))

"""Crop boxes and the image -> crop -> heatmap affine maps under the integer pixel-centre rule."""

from __future__ import annotations

import numpy as np
import pytest

from cameras import (
    apply_affine,
    compose_affine,
    crop_affine,
    crop_box,
    crop_intrinsics,
    invert_affine,
    make_rig,
    normalized_affine,
    project,
    resize_affine,
)


def test_crop_box_against_loop() -> None:
    rng = np.random.default_rng(0)
    uv = rng.uniform(0, 1000, (3, 4, 30, 2))
    valid = rng.random((3, 4, 30)) > 0.3
    box = crop_box(uv, valid, scale=1.2)
    assert box.shape == (3, 4, 3)
    for i in range(3):
        for j in range(4):
            pts = uv[i, j][valid[i, j]]
            lo, hi = pts.min(0), pts.max(0)
            assert box[i, j, :2] == pytest.approx((lo + hi) / 2)
            assert box[i, j, 2] == pytest.approx(1.2 * max(hi - lo))
    # all points inside the box; invalid ones are ignored
    full = crop_box(uv, None, scale=1.0)
    inside = np.abs(uv - full[..., None, :2]) <= full[..., None, 2:] / 2 + 1e-9
    assert inside.all()


def test_crop_box_edge_cases() -> None:
    uv = np.array([[[10.0, 20.0], [30.0, 20.0]], [[5.0, 5.0], [6.0, 6.0]]])
    valid = np.array([[True, False], [False, False]])
    box = crop_box(uv, valid, min_side=4.0)
    assert box[0].tolist() == [10.0, 20.0, 4.0]  # one point: minimum side
    assert np.isnan(box[1]).all()  # nothing valid
    with pytest.raises(ValueError, match="uv must be"):
        crop_box(np.zeros((5, 3)))


@pytest.mark.parametrize("res", [56, 112, 224])
def test_box_edges_and_centre(res: int) -> None:
    box = np.array([[400.0, 300.0, 250.0], [12.5, -7.0, 33.0]])
    A = crop_affine(box, res)
    for b, a in zip(box, A, strict=True):
        cx, cy, s = b
        pts = np.array([[cx, cy], [cx - s / 2, cy - s / 2], [cx + s / 2, cy + s / 2]])
        out = apply_affine(a, pts)
        assert out[0] == pytest.approx([(res - 1) / 2] * 2)
        assert out[1] == pytest.approx([-0.5, -0.5])
        assert out[2] == pytest.approx([res - 0.5, res - 0.5])


@pytest.mark.parametrize("res", [56, 112, 224])
def test_resize_from_224_matches_direct_crop(res: int) -> None:
    rng = np.random.default_rng(1)
    box = np.c_[rng.uniform(100, 900, (5, 2)), rng.uniform(50, 600, 5)]
    direct = crop_affine(box, res)
    via = compose_affine(resize_affine(224, res), crop_affine(box, 224))
    np.testing.assert_allclose(via, direct, atol=1e-12)
    # pixel (i, j) of the R grid covers exactly (224/R)^2 pixels of the 224 grid
    edge = apply_affine(resize_affine(224, res), np.array([[-0.5, 223.5]]))
    assert edge[0] == pytest.approx([-0.5, res - 0.5])


def test_normalized_coordinates() -> None:
    box = np.array([300.0, 200.0, 120.0])
    uv = np.array([[240.0, 140.0], [300.0, 200.0], [360.0, 260.0], [310.0, 190.0]])
    n = apply_affine(normalized_affine(box), uv)
    assert n[:3] == pytest.approx(np.array([[-1, -1], [0, 0], [1, 1]]))
    for res in (56, 224):  # align_corners=False relation to crop pixels
        c = apply_affine(crop_affine(box, res), uv)
        assert n == pytest.approx((2 * c + 1) / res - 1)


def test_invert_and_apply_batched() -> None:
    rng = np.random.default_rng(2)
    box = np.concatenate([rng.uniform(0, 1000, (4, 8, 2)), rng.uniform(50, 500, (4, 8, 1))], -1)
    A = crop_affine(box, 224)
    uv = rng.uniform(0, 1000, (4, 8, 17, 2))
    out = apply_affine(A, uv)
    assert out.shape == uv.shape
    np.testing.assert_allclose(apply_affine(invert_affine(A), out), uv, atol=1e-9)
    # element-wise reference
    ref = np.einsum("mvij,mvnj->mvni", A[..., :2], uv) + A[..., None, :, 2]
    np.testing.assert_allclose(out, ref)


def test_crop_intrinsics_render_the_crop() -> None:
    rig = make_rig(8)
    rng = np.random.default_rng(3)
    pts = rig.centre * [1, 1, 0] + rng.normal(0, 0.3, (50, 3)) + [0, 0, 1.0]
    proj = rig.project(pts, distort=False)
    box = crop_box(proj.uv, proj.visible)
    A = crop_affine(box, 224)
    K2 = crop_intrinsics(rig.K, A)
    direct = project(pts, rig.R, rig.t, K2, None, distort=False)
    np.testing.assert_allclose(direct.uv, apply_affine(A, proj.uv), atol=1e-9)
    assert (direct.uv >= -0.5).all() and (direct.uv <= 223.5).all()

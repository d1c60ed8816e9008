"""Placing bodies in the capture volume: round trips, floor contact, root over the centre."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cameras import (
    apply_transform,
    h36m_volume_centre,
    invert_transform,
    make_rig,
    placement_transform,
)


def _bodies(rng: np.random.Generator, m: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Random upright point clouds (1.8 m tall, z-up) at arbitrary AMASS-like positions."""
    base = rng.uniform(-1, 1, (300, 3)) * [0.3, 0.15, 0.9] + [0, 0, 0.9]
    verts, roots = [], []
    for _ in range(m):
        lean = Rotation.from_euler("xyz", [*rng.normal(0, 0.1, 2), rng.uniform(0, 6.3)])
        trans = rng.uniform(-20, 20, 3)
        verts.append(lean.apply(base) + trans)
        roots.append(lean.apply([0, 0, 0.9]) + trans)
    return np.stack(verts), np.stack(roots)


def test_round_trip_and_rigidity() -> None:
    rng = np.random.default_rng(1)
    verts, roots = _bodies(rng)
    T = placement_transform(verts, np.random.default_rng(7), jitter=0.3, root=roots)
    assert T.shape == (6, 4, 4)
    placed = apply_transform(T, verts)
    back = apply_transform(invert_transform(T), placed)
    np.testing.assert_allclose(back, verts, atol=1e-9)
    np.testing.assert_allclose(
        invert_transform(T) @ T, np.broadcast_to(np.eye(4), T.shape), atol=1e-12
    )
    # rigid: pairwise distances unchanged; rotation only about z
    for a, b in zip(verts, placed, strict=True):
        np.testing.assert_allclose(
            np.linalg.norm(b[1:] - b[0], axis=1), np.linalg.norm(a[1:] - a[0], axis=1)
        )
    np.testing.assert_allclose(T[:, 2, :3], np.broadcast_to([0, 0, 1], (6, 3)), atol=1e-12)


def test_floor_root_yaw_and_jitter() -> None:
    rng = np.random.default_rng(2)
    verts, roots = _bodies(rng)
    centre = h36m_volume_centre()
    jitter = 0.25
    T = placement_transform(verts, np.random.default_rng(11), jitter=jitter, root=roots)
    placed = apply_transform(T, verts)
    placed_root = apply_transform(T, roots[:, None])[:, 0]
    np.testing.assert_allclose(placed.min(axis=1)[:, 2], 0.0, atol=1e-12)
    # the same seed drawn independently: yaw then jitter, in that order
    ref = np.random.default_rng(11)
    yaw = ref.uniform(0, 2 * np.pi, 6)
    offset = ref.uniform(-jitter, jitter, (6, 2))
    np.testing.assert_allclose(placed_root[:, :2], centre[:2] + offset, atol=1e-12)
    np.testing.assert_allclose(np.arctan2(T[:, 1, 0], T[:, 0, 0]) % (2 * np.pi), yaw, atol=1e-12)
    # the yaw turns about the root's vertical axis: root height is only shifted with the floor
    np.testing.assert_allclose(placed_root[:, 2], roots[:, 2] - verts[:, :, 2].min(axis=1))


def test_no_jitter_default_root_and_single_mesh() -> None:
    rng = np.random.default_rng(3)
    verts, _ = _bodies(rng, 1)
    T = placement_transform(verts[0], np.random.default_rng(0), yaw=0.0)
    assert T.shape == (4, 4)
    np.testing.assert_allclose(T[:3, :3], np.eye(3), atol=1e-15)
    placed = apply_transform(T, verts[0])
    np.testing.assert_allclose(placed.mean(axis=0)[:2], h36m_volume_centre()[:2], atol=1e-12)


def test_different_seeds_differ_and_same_seed_repeats() -> None:
    verts, roots = _bodies(np.random.default_rng(4))
    a = placement_transform(verts, np.random.default_rng(5), root=roots)
    b = placement_transform(verts, np.random.default_rng(5), root=roots)
    c = placement_transform(verts, np.random.default_rng(6), root=roots)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_placed_body_is_seen_by_every_camera() -> None:
    verts, roots = _bodies(np.random.default_rng(8), 20)
    T = placement_transform(verts, np.random.default_rng(9), jitter=0.3, root=roots)
    proj = make_rig(8).project(apply_transform(T, verts))
    assert proj.visible.all()
    assert (proj.depth > 3.5).all()


def test_bad_vertices() -> None:
    with pytest.raises(ValueError, match="vertices must be"):
        placement_transform(np.zeros((4, 2)), np.random.default_rng(0))

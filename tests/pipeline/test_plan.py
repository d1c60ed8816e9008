"""Sampling plan: strategies against brute-force references, determinism, splits, units."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.plan import (
    SPLITS,
    Plan,
    PlanConfig,
    SeqEntry,
    allocate,
    central_mask,
    make_plan,
    resample_indices,
    stable_seed,
    thin_by_pose,
)


def _listing() -> list[SeqEntry]:
    rng = np.random.default_rng(3)
    out = []
    for subset, n in (("CMU", 6), ("HumanEva", 2), ("SSM_synced", 2), ("BMLrub", 4)):
        for i in range(n):
            fps = float(rng.choice([60.0, 120.0, 100.0]))
            out.append(
                SeqEntry(f"{subset}/s{i}/m{i}_poses.npz", subset, int(rng.integers(200, 900)), fps)
            )
    return out


def test_resample_matches_nearest_time():
    for frames, src, fps in ((500, 120.0, 30.0), (333, 100.0, 30.0), (77, 59.94, 20.0)):
        idx = resample_indices(frames, src, fps)
        t_src = np.arange(frames) / src
        t_tgt = np.arange(0, t_src[-1] + 1e-9, 1.0 / fps)
        ref = np.unique(np.abs(t_src[None, :] - t_tgt[:, None]).argmin(axis=1))
        np.testing.assert_array_equal(idx, ref)
    np.testing.assert_array_equal(resample_indices(10, 30.0, 60.0), np.arange(10))


def test_central_fraction():
    idx = np.arange(1000)
    m = central_mask(idx, 1000, 0.8)
    assert m.sum() == 800 and idx[m][0] == 100 and idx[m][-1] == 899


def test_thinning_matches_bruteforce_and_threshold():
    rng = np.random.default_rng(0)
    pose = np.cumsum(rng.normal(0, 0.02, (300, 63)), axis=0)
    thr = 0.08
    keep = thin_by_pose(pose, thr)
    p = pose.reshape(300, 21, 3)

    def dist(a, b):
        return np.linalg.norm(p[a] - p[b], axis=-1).mean()

    # independent greedy reference
    ref = []
    for i in range(300):
        if all(dist(i, j) >= thr for j in ref):
            ref.append(i)
    np.testing.assert_array_equal(keep, ref)
    # every dropped frame is close to a kept one; kept frames are pairwise far apart
    dropped = np.setdiff1d(np.arange(300), keep)
    assert all(min(dist(i, j) for j in keep) < thr for i in dropped)
    assert all(dist(a, b) >= thr for a in keep for b in keep if a < b)
    assert 1 < len(keep) < 300


def test_allocate_by_weight_with_caps():
    q = allocate(100, np.array([1.0, 1.0, 2.0]), np.array([1000, 1000, 1000]))
    np.testing.assert_array_equal(q, [25, 25, 50])
    q = allocate(100, np.array([1.0, 1.0, 2.0]), np.array([1000, 1000, 10]))
    assert q.sum() == 100 and q[2] == 10 and abs(q[0] - q[1]) <= 1
    assert allocate(100, np.ones(2), np.array([3, 4])).tolist() == [3, 4]


def test_plan_contract_and_determinism(tmp_path):
    cfg = PlanConfig(
        meshes=700, fps=30, central=0.8, keep_rate=0.9, min_pose_dist=0, unit_size=64, seed=5
    )
    listing = _listing()
    plan = make_plan(listing, cfg)
    assert plan.size == 700
    # deterministic and independent of listing order
    plan2 = make_plan(list(reversed(listing)), cfg)
    assert plan.digest() == plan2.digest()
    assert make_plan(listing, PlanConfig(**{**cfg.__dict__, "seed": 6})).digest() != plan.digest()
    # no duplicate (sequence, frame); frames inside the central 80%
    pairs = set(zip(plan.seq.tolist(), plan.frame.tolist()))
    assert len(pairs) == plan.size
    by_path = {e.path: e for e in listing}
    for s, f in pairs:
        e = by_path[plan.sequences[s]]
        assert central_mask(np.array([f]), e.frames, 0.8)[0]
    # AMASS split by subset
    for s, sp in zip(plan.seq, plan.split):
        subset = plan.sequences[s].split("/")[0]
        want = "val" if subset == "HumanEva" else "test" if subset == "SSM_synced" else "train"
        assert SPLITS[sp] == want
    # split-major order; units tile the samples and never cross a split
    assert np.all(np.diff(plan.split) >= 0)
    u = plan.units
    assert u[0, 0] == 0 and u[-1, 1] == plan.size and np.all(u[1:, 0] == u[:-1, 1])
    assert np.all(u[:, 1] - u[:, 0] <= 64)
    for a, b in u:
        assert len(set(plan.split[a:b].tolist())) == 1
    # spread over subsets by duration
    st = plan.stats["subsets"]
    dur = {k: v["duration_s"] for k, v in st.items()}
    tot = sum(dur.values())
    for k, v in st.items():
        assert abs(v["planned"] - 700 * dur[k] / tot) <= 1
    # round trip
    plan.save(tmp_path)
    back = Plan.load(tmp_path)
    assert back.digest() == plan.digest() and back.stats == plan.stats


def test_plan_shortfall_and_bad_config():
    plan = make_plan(_listing(), PlanConfig(meshes=10**7, fps=10, min_pose_dist=0))
    assert plan.stats["shortfall"] == 10**7 - plan.size > 0
    with pytest.raises(ValueError, match="mesh"):
        PlanConfig.model_validate({"mesh": 3})
    with pytest.raises(ValueError, match="no readable"):
        make_plan([], PlanConfig(min_pose_dist=0))


def test_unloadable_file_during_thinning_is_skipped_not_planned():
    listing = _listing()
    bad = listing[3].path
    rng = np.random.default_rng(1)
    poses = {e.path: np.cumsum(rng.normal(0, 0.02, (e.frames, 63)), axis=0) for e in listing}

    def load(path: str) -> np.ndarray:
        if path == bad:
            raise ValueError(f"{path}: 'poses' contains NaN or Inf")
        return poses[path]

    plan = make_plan(listing, PlanConfig(meshes=500, min_pose_dist=0.05), load)
    assert bad not in plan.sequences and plan.size == 500
    assert plan.skips == [
        {"input": bad, "reason": f"{bad}: 'poses' contains NaN or Inf", "samples": 0}
    ]
    # thinning really dropped frames: fewer candidates than without it
    plain = make_plan(listing, PlanConfig(meshes=10**6, min_pose_dist=0))
    thinned = make_plan(listing, PlanConfig(meshes=10**6, min_pose_dist=0.05), load)
    assert thinned.size < plain.size


def _smooth_poses(path: str) -> np.ndarray:
    """Picklable loader for the process-pool test: a random walk seeded by the path."""
    rng = np.random.default_rng(stable_seed(path))
    return np.cumsum(rng.normal(0, 0.02, (2000, 63)), axis=0)


def test_plan_is_the_same_with_a_process_pool():
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    cfg = PlanConfig(meshes=400, min_pose_dist=0.05, keep_rate=0.8)
    serial = make_plan(_listing(), cfg, _smooth_poses)
    with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
        pooled = make_plan(_listing(), cfg, _smooth_poses, map_fn=ex.map)
    assert pooled.digest() == serial.digest() and pooled.size == 400

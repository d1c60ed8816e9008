"""Pose coverage (``pipeline.coverage``): the pruned nearest-neighbour search against a
brute-force double loop built on scipy, its bound against exact distances, and the command on
the small embedded archive (posing checked against the smplx layer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from pipeline.coverage import (
    BOUND_MARGIN,
    FrameSet,
    _bounds,
    candidate_frames,
    coverage,
    group_of,
    main,
    nearest_pa,
    pose_joints,
    similarity_procrustes,
)


def _pa_scipy(ref: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Per-joint distances (J,) after aligning ``ref`` onto ``query``: proper rotation from
    scipy's Kabsch (``Rotation.align_vectors``), then the least-squares scale and translation."""
    qc, rc = query - query.mean(0), ref - ref.mean(0)
    rot, _ = Rotation.align_vectors(qc, rc)
    rr = rot.apply(rc)
    scale = (qc * rr).sum() / (rr**2).sum()
    return np.linalg.norm(scale * rr - qc, axis=1)


def _world(seed: int, n_ref: int = 150, n_query: int = 30):
    """Skeleton-like joint sets: one base pose plus per-frame deformations of mixed size, and
    queries of which half are a reference under a random similarity plus 1 mm noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(17, 3)) * 0.3
    ref = base + rng.normal(size=(n_ref, 17, 3)) * rng.uniform(0.01, 0.15, (n_ref, 1, 1))
    query = base + rng.normal(size=(n_query, 17, 3)) * rng.uniform(0.01, 0.15, (n_query, 1, 1))
    planted = rng.choice(n_ref, n_query // 2, replace=False)
    for k, r in enumerate(planted):
        rot = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
        query[k] = rng.uniform(0.7, 1.4) * ref[r] @ rot.T + rng.normal(size=3)
        query[k] += rng.normal(size=(17, 3)) * 0.001
    return ref, query, planted


def test_similarity_procrustes_matches_scipy():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(8, 17, 3))
    rot = Rotation.random(8, random_state=2).as_matrix()
    pred = 0.8 * np.einsum("bjk,bik->bji", gt, rot) + rng.normal(size=(8, 1, 3))
    pred += rng.normal(size=pred.shape) * 0.05
    ours = similarity_procrustes(pred, gt)
    for b in range(8):
        p, g = pred[b] - pred[b].mean(0), gt[b] - gt[b].mean(0)
        r, s = orthogonal_procrustes(p, g)  # p @ r ~ g; s = trace of the optimum
        want = s / (p**2).sum() * p @ r + gt[b].mean(0)
        np.testing.assert_allclose(ours[b], want, atol=1e-10)
        np.testing.assert_allclose(np.linalg.norm(ours[b] - gt[b], axis=1),
                                   _pa_scipy(pred[b], gt[b]), atol=1e-10)  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_equals_brute_force(seed):
    ref, query, planted = _world(seed)
    brute = np.array([[_pa_scipy(r, q).mean() for r in ref] for q in query])
    near = nearest_pa(query, ref, seeds=1, memory=2e5)  # one seed, small chunks
    np.testing.assert_array_equal(near.index, brute.argmin(1))
    np.testing.assert_allclose(near.dist, brute.min(1), atol=1e-10)
    for k, q in enumerate(query):
        np.testing.assert_allclose(near.per_joint[k], _pa_scipy(ref[near.index[k]], q), atol=1e-10)
    # planted near-duplicates are found, about 1 mm away, whatever their rotation and scale
    np.testing.assert_array_equal(near.index[: len(planted)], planted)
    assert near.dist[: len(planted)].max() < 0.003
    assert near.evaluated < len(query) * len(ref)  # the bound pruned something


def test_groups_are_the_brute_force_nearest_split_by_file():
    """``coverage(..., group=)``: per motion, subject and subset the median and p90 of the
    brute-force nearest distances of that group's frames, farthest group first."""
    ref, query, _ = _world(3)
    brute = np.array([[_pa_scipy(r, q).mean() for r in ref] for q in query]).min(1)
    names = ["A/s1/box_01_poses.npz", "A/s1/box_02_poses.npz", "A/s2/skip_01_poses.npz",
             "B/x1/lunge_stageii.npz", "B/x1/lunge_03_stageii.npz"]  # fmt: skip
    paths = [names[k % len(names)] for k in range(len(query))]
    q = FrameSet("q", query, paths, np.arange(len(query)))
    r = FrameSet("r", ref, ["R/r/a_poses.npz"] * len(ref), np.arange(len(ref)))
    assert [group_of(n, "motion") for n in names] == ["box", "box", "skip", "lunge", "lunge"]
    assert group_of(names[2], "subject") == "A/s2" and group_of(names[3], "subset") == "B"
    for by in ("motion", "subject", "subset"):
        res = coverage(q, r, group=by)
        keys = np.array([group_of(p, by) for p in paths])
        want = {k: (int((keys == k).sum()), round(float(np.median(brute[keys == k])) * 1000, 1),
                    round(float(np.percentile(brute[keys == k], 90)) * 1000, 1))
                for k in set(keys)}  # fmt: skip
        got = {k: (g["frames"], g["median_mm"], g["p90_mm"]) for k, g in res["groups"].items()}
        assert got == want
        meds = [g["median_mm"] for g in res["groups"].values()]
        assert meds == sorted(meds, reverse=True)


def test_bound_never_exceeds_the_exact_distance():
    ref, query, _ = _world(3)
    qc = query - query.mean(1, keepdims=True)
    rc = ref - ref.mean(1, keepdims=True)
    rflat = rc.transpose(0, 2, 1).reshape(-1, 17)
    bound, sse = _bounds(qc, rc, rflat, (rc**2).sum((1, 2)), np.linalg.norm(rc, axis=-1))
    exact = np.array([[_pa_scipy(r, q) for r in ref] for q in query])  # (Q, R, J)
    assert np.all(bound <= exact.mean(-1))
    np.testing.assert_allclose(sse, (exact**2).sum(-1), rtol=1e-8, atol=1e-12)
    # and it is not vacuous: on most pairs within a factor 2 of the distance
    assert np.median((bound + BOUND_MARGIN) / exact.mean(-1)) > 0.5


def test_poses_as_the_build(synth_data):
    """The command's joints equal the smplx layer's vertices through the shipped regressor."""
    from pipeline.body_models import load_body_model
    from pipeline.build.config import load_config
    from pipeline.joints import KeypointRegressor

    cfg = load_config(None)
    root, paths, frames = candidate_frames(synth_data / "amass", cfg, "val", stride=7)
    joints, kept = pose_joints(root, synth_data / "body_models", cfg, paths, frames)
    assert len(kept) == len(frames) > 2
    from pipeline.amass import load_sequence

    bm = synth_data / "body_models"
    reg = KeypointRegressor.from_body_models(bm, "smplh")
    for k in (0, len(frames) - 1):
        seq = load_sequence(root / paths[k], root)
        model = load_body_model(bm, "smplh", seq.gender)
        out = model(seq.poses[[frames[k]]], seq.betas, seq.trans[[frames[k]]])
        want = reg.h36m17(out.vertices, out.joints)[0]
        np.testing.assert_allclose(joints[k], want, atol=2e-4)


def test_command_on_small_archive(synth_data, tmp_path, capsys):
    args = ["--amass", str(synth_data / "amass"), "--body-models", str(synth_data / "body_models")]
    out = tmp_path / "cov.json"
    clip = next((synth_data / "amass" / "SynthBML").rglob("*_poses.npz"))
    png = tmp_path / "cov.png"
    more = ["--query-amass", str(clip), "--stride", "2", "--json", str(out), "--png", str(png)]
    assert main(args + ["--query", "val", "train", *more, "--group", "motion", "--quiet"]) == 0
    res = json.loads(out.read_text())["results"]
    assert sum(g["frames"] for g in res[0]["groups"].values()) == res[0]["frames"]
    val, train, one = res
    assert val["frames"] > 0 and val["reference_frames"] > val["frames"] / 2
    assert 1.0 < val["median_mm"] <= val["p90_mm"] < 500.0
    assert list(val["per_joint"]) == list(__import__("pipeline.joints").joints.H36M17)
    # a split against itself: every frame's nearest frame is itself
    assert train["median_mm"] == train["p90_mm"] == 0.0
    # one val clip is a subset of the val frames: its figures come from the same distances
    assert 0 < one["frames"] < val["frames"]
    assert png.stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "val vs train" in table and "| L_Wrist |" in table
    assert "| val vs train: group | frames | median / p90 |" in table
    # --planned: the frames a 60-mesh build samples, a subset of the candidates
    pl = ["--planned", "--set", "plan.meshes=60", "--json", str(out), "--quiet"]
    assert main(args + ["--query", "val", *pl]) == 0
    (small,) = json.loads(out.read_text())["results"]
    from pipeline.build.planning import BodyPoseLoader
    from pipeline.build.preflight import scan_archive
    from pipeline.plan import PlanConfig, make_plan

    entries, _, _ = scan_archive(synth_data / "amass", "smplh")
    plan = make_plan(entries, PlanConfig(meshes=60), BodyPoseLoader(synth_data / "amass"))
    assert small["reference_frames"] == (plan.split == 0).sum() > 0
    assert small["frames"] == (plan.split == 1).sum() > 0


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--query", "test"], "split test has no sequences"),  # the small archive has no test
        (["--amass", "/nonexistent/amass"], "/nonexistent/amass: AMASS folder or file not found"),
        (["--body-models", "/nonexistent/bm"], "/nonexistent/bm: body-model folder not found"),
    ],
)
def test_bad_input_is_one_line(synth_data, capsys, extra, says):
    args = ["--amass", str(synth_data / "amass"), "--body-models", str(synth_data / "body_models")]
    assert main(args + extra + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err

"""Build driver: determinism across worker counts and resume, accounting, preflight errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.build import driver as B
from shards.verify import verify

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--meshes", "72", "--unit-size", "16", "--views", "8", "--res", "56", "--masks", "0"]


@pytest.fixture(scope="module")
def inputs(synth_data):
    """(amass root, body-model dir) of the small embedded default."""
    return Path(synth_data) / "amass", Path(synth_data) / "body_models"


def _args(amass: Path, models: Path, out: Path, workers: int, extra=()) -> list[str]:
    return [
        "--config",
        str(ROOT / "configs" / "build_default.yaml"),
        "--amass",
        str(amass),
        "--body-models",
        str(models),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--quiet",
        *SMALL,
        *extra,
    ]


def _datasets(folder: Path) -> dict[str, dict[str, bytes]]:
    """{shard name: {dataset path: raw bytes}} for every shard in a folder."""
    out = {}
    for p in sorted(folder.glob("shard-*.h5")):
        d: dict[str, bytes] = {}

        def visit(name, obj, d=d):
            if isinstance(obj, h5py.Dataset):
                a = obj[()]
                d[name] = (
                    repr(a.tolist()).encode()
                    if a.dtype == object
                    else a.tobytes() + str(a.shape).encode()
                )

        with h5py.File(p, "r") as f:
            f.visititems(visit)
        out[p.name] = d
    return out


def _assert_same(a: Path, b: Path) -> None:
    da, db = _datasets(a), _datasets(b)
    assert sorted(da) == sorted(db) and da
    for name in da:
        assert sorted(da[name]) == sorted(db[name]), name
        for k in da[name]:
            assert da[name][k] == db[name][k], f"{name}:{k} differs"


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """An uninterrupted in-process build (no Ray)."""
    out = tmp_path_factory.mktemp("ref")
    assert B.main(_args(*inputs, out, 0)) == 0
    return out


def test_reference_build_contract(reference):
    man = json.loads((reference / "manifest.json").read_text())
    plan = json.loads((reference / "plan.json").read_text())
    planned = plan["stats"]["planned"]
    assert planned == 72
    assert verify(reference).ok
    assert man["meshes"] + man["config"]["skipped_samples"] == planned
    # every shard holds one split and the sample ids of its unit, contiguous
    with np.load(reference / "plan.npz") as z:
        units, split = z["units"], z["split"]
    names = {s["name"]: s for s in man["shards"]}
    for u, (a, b) in enumerate(units):
        info = names[f"shard-{u:06d}.h5"]
        with h5py.File(reference / info["name"], "r") as f:
            ids = f["sample_id"][()]
            np.testing.assert_array_equal(ids, np.arange(a, b))
            assert f["views/heatmaps"].shape == (b - a, 8, 17, 56, 56)
        assert len(set(split[a:b].tolist())) == 1
    assert (reference / "topology.h5").exists() and (reference / "plan.png").stat().st_size > 0
    assert not list(reference.glob("*.tmp-*"))


@pytest.mark.slow
def test_ray_1_and_2_workers_identical_with_retry_and_resume(inputs, reference, tmp_path):
    """Real Ray path. 1 worker: unit 1 always dies mid-shard -> the build stops with one line
    after its retries; the rerun resumes, and there the last unit dies once and Ray's retry
    finishes it.
    2 workers: a plain build. Every dataset of every shard is byte-identical in both and equal
    to the in-process reference."""
    one, two = tmp_path / "w1", tmp_path / "w2"
    cmd = [sys.executable, "-m", "pipeline.build", *_args(*inputs, one, 1)]
    cmd += ["--set", "build.max_retries=1"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    # generous timeouts: alone each build takes ~30 s, but a loaded 2-core machine once took
    # >300 s for the retry run (Ray start + a worker restart + the unit again)
    r = subprocess.run(
        cmd, env={**env, B.FAULT_ENV: "1"}, cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 1, r.stderr[-2000:]
    err = [x for x in r.stderr.splitlines() if x.startswith("error")]
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "unit 1 lost its worker process" in err[0] and "after 1 retries" in err[0], err
    assert "rerun" in err[0]
    assert not (one / "manifest.json").exists()
    last = len(np.load(one / "plan.npz")["units"]) - 1
    assert not (one / f"shard-{last:06d}.h5").exists()
    flag = tmp_path / "crashed-once"
    r = subprocess.run(
        cmd, env={**env, B.FAULT_ENV: f"{last}:{flag}"}, cwd=ROOT, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert flag.exists()  # the last unit crashed once and was retried
    # its crashed attempt's partial shard is gone (before, shard-N.h5.tmp-PID stayed)
    assert not list(one.rglob("*.tmp-*"))
    # one Context per worker process: warm-up and units share it (before, `python -m`
    # pickled them by value from __main__, each with its own)
    recs = [json.loads(p.read_text()) for p in (one / "units").glob("unit-*.json")]
    assert recs and all(rec["worker"]["contexts_built"] == 1 for rec in recs)
    assert "units done" in r.stdout and not r.stdout.split("plan ")[1].startswith("0 units")
    assert B.main(_args(*inputs, two, 2)) == 0
    _assert_same(one, reference)
    _assert_same(two, reference)
    assert verify(one).ok and verify(two).ok


def test_kill_mid_shard_and_resume(inputs, reference, tmp_path):
    """A build whose process dies while writing unit 2's shard leaves a partial file; rerunning
    the same command skips finished units, ignores the partial file and matches the reference."""
    out = tmp_path / "killed"
    env = {**os.environ, B.FAULT_ENV: "2"}
    cmd = [sys.executable, "-m", "pipeline.build", *_args(*inputs, out, 0)]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 17, r.stderr[-2000:]
    assert list(out.glob("shard-000002.h5.tmp-*"))  # killed mid-shard
    assert not (out / "manifest.json").exists()
    done_before = sorted(p.name for p in out.glob("shard-*.h5"))
    assert done_before == ["shard-000000.h5", "shard-000001.h5"]
    mtimes = {n: (out / n).stat().st_mtime_ns for n in done_before}
    n_units = len(np.load(out / "plan.npz")["units"])
    assert n_units > 3
    stats = B.build(B.parse_args(_args(*inputs, out, 0)))
    assert stats["units_resumed"] == 2 and stats["units_run"] == n_units - 2
    assert {n: (out / n).stat().st_mtime_ns for n in done_before} == mtimes
    assert not list(out.glob("*.tmp-*"))
    _assert_same(out, reference)
    # a corrupted shard is not trusted on the next rerun
    with open(out / "shard-000001.h5", "r+b") as f:
        f.seek(-7, 2)
        f.write(b"garbage")
    stats = B.build(B.parse_args(_args(*inputs, out, 0)))
    assert stats["units_run"] == 1 and stats["units_resumed"] == n_units - 1
    _assert_same(out, reference)
    # a rerun of a finished build computes nothing, even with Ray requested
    stats = B.build(B.parse_args(_args(*inputs, out, 2)))
    assert stats["units_run"] == 0 and stats["units_resumed"] == n_units
    assert verify(out).ok
    # a unit finished by schema-1 code (its record has no schema_version) is computed again
    rp = B.unit_record_path(out, 3)
    rec = json.loads(rp.read_text())
    assert rec.pop("schema_version") == 2
    rp.write_text(json.dumps(rec) + "\n")
    stats = B.build(B.parse_args(_args(*inputs, out, 0)))
    assert stats["units_run"] == 1 and stats["units_resumed"] == n_units - 1
    _assert_same(out, reference)


def test_bad_inputs_are_skipped_and_counted(inputs, tmp_path):
    """A corrupt file and a file with NaN frames mixed into the archive. Without pose thinning
    the plan reads headers only, so the NaN file's samples are planned and then skipped by the
    unit with the loader's reason: planned = written + skipped, id by id."""
    amass, models = inputs
    bad = tmp_path / "amass"
    shutil.copytree(amass, bad)
    files = sorted(p for p in bad.rglob("*_poses.npz"))
    # a corrupt file (listed as skipped with its reason) ...
    (files[0].parent / "broken_poses.npz").write_bytes(b"PK\x03\x04 not really a zip")
    # ... and a readable file whose frames hold NaNs (its planned samples are skipped)
    victim = files[-1]
    with np.load(victim) as z:
        d = {k: z[k] for k in z.files}
    d["poses"][:, 5] = np.nan
    np.savez(victim, **d)
    out = tmp_path / "out"
    assert B.main([*_args(bad, models, out, 0), "--set", "plan.min_pose_dist=0.0"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    planned = json.loads((out / "plan.json").read_text())["stats"]["planned"]
    sample_skips = [s for s in man["skipped"] if "sample_id" in s]
    assert man["meshes"] + len(sample_skips) == planned
    assert sample_skips and all("NaN" in s["reason"] for s in sample_skips)
    rel_victim = victim.relative_to(bad).as_posix()
    assert {s["input"] for s in sample_skips} == {rel_victim}
    broken = [s for s in man["skipped"] if s["input"].endswith("broken_poses.npz")]
    assert len(broken) == 1 and broken[0]["reason"]
    # the skipped ids are exactly the ids missing from the shards
    ids = []
    for p in sorted(out.glob("shard-*.h5")):
        with h5py.File(p, "r") as f:
            ids.append(f["sample_id"][()])
    written = set(np.concatenate(ids).tolist())
    skipped = {s["sample_id"] for s in sample_skips}
    assert written.isdisjoint(skipped) and written | skipped == set(range(planned))


def _error_lines(capsys) -> list[str]:
    """stderr lines other than the build's warnings (e.g. this small archive has no test
    subset, which the build warns about)."""
    lines = capsys.readouterr().err.strip().splitlines()
    return [x for x in lines if not x.startswith("warning: ")]


def test_missing_body_model_is_one_clear_line(inputs, tmp_path, capsys):
    amass, models = inputs
    broken = tmp_path / "models"
    shutil.copytree(models, broken)
    victims = list((broken / "smplh").glob("*/model.npz"))
    assert victims
    for v in victims:
        if v.parent.name != "neutral":
            v.unlink()
    out = tmp_path / "out"
    assert B.main(_args(amass, broken, out, 0)) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and str(broken) in err[0] and "body model" in err[0], err
    assert not list(out.glob("shard-*"))  # stopped before any work

    # a corrupt model file
    for v in victims:
        if v.parent.name != "neutral":
            v.write_bytes(b"PK\x03\x04 truncated")
    assert B.main(_args(amass, broken, out, 0)) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "model.npz" in err[0] and "body model" in err[0], err

    # joint regressors that do not fit the model
    shutil.rmtree(broken)
    shutil.copytree(models, broken)
    regs = broken / "smplh" / "joint_regressors.npz"
    with np.load(regs) as z:
        np.savez(regs, **{k: z[k][:, :-5] for k in z.files})
    assert B.main(_args(amass, broken, out, 0)) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "joint_regressors.npz" in err[0], err
    assert not list(out.glob("shard-*"))

    assert B.main(_args(tmp_path / "nowhere", models, out, 0)) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "nowhere" in err[0] and "not found" in err[0]


def test_changed_config_into_same_folder_refuses(inputs, reference, tmp_path, capsys):
    out = tmp_path / "o"
    shutil.copytree(reference, out)
    assert B.main(_args(*inputs, out, 0, ["--seed", "99"])) == 2
    assert "different plan" in capsys.readouterr().err


def _read(path: Path, names: list[str], rows=slice(None)) -> dict[str, np.ndarray]:
    import hdf5plugin  # noqa: F401  (registers the Blosc filter)

    with h5py.File(path, "r") as f:
        return {n: f[n][rows] for n in names}


def test_shard_content_matches_independent_recomputation(inputs, reference):
    """Per sample, from the stored inputs only: body forward one frame at a time, the stored
    placement (yaw drawn from default_rng([seed, sample_id])), topology regressors, projection
    through the stored camera, and full-grid Gaussians reproduce the batched unit's output."""
    from cameras.crop import apply_affine, resize_affine
    from cameras.placement import yaw_matrix
    from cameras.projection import project
    from pipeline.body_models import load_body_model
    from shards.reader import ShardDataset
    from shards.schema import GENDERS
    from shards.topology import load_topology

    amass, models = inputs
    topo = load_topology(reference)
    names = [
        "sample_id", "body/pose", "body/betas", "body/trans", "body/gender", "body/placement",
        "joints3d/coco17", "joints3d/h36m17", "views/R", "views/t", "views/K",
        "views/dist", "views/kp2d", "views/kp2d_h36m17", "views/crop", "views/heatmaps",
    ]  # fmt: skip
    d = _read(reference / "shard-000001.h5", names, slice(0, 4))
    with h5py.File(reference / "shard-000001.h5", "r") as f:
        assert "mesh/vertices" not in f  # schema 2: recomputed from body/* by the reader
    man = json.loads((reference / "manifest.json").read_text())
    split = next(s["split"] for s in man["shards"] if s["name"] == "shard-000001.h5")
    seen = {}  # (sample id, camera) -> the reader's camera-frame vertices (CPU skinning)
    for b in ShardDataset(reference, split, views="all", batch_size=64, shuffle=False):
        for j in range(len(b["sample_id"])):
            key = (int(b["sample_id"][j]), int(b["view"][j]))
            if key[0] in d["sample_id"]:
                seen[key] = b["vertices"][j].numpy()
    yy, xx = np.mgrid[0:56, 0:56]
    for i in range(4):
        model = load_body_model(models, "smplh", GENDERS[d["body/gender"][i]])
        o = model.forward(d["body/pose"][i][None], d["body/betas"][i], d["body/trans"][i][None])
        T = d["body/placement"][i].astype(np.float64)
        yaw = np.random.default_rng([0, int(d["sample_id"][i])]).uniform(0, 2 * np.pi)
        np.testing.assert_allclose(T[:3, :3], yaw_matrix(yaw), atol=1e-6)
        v = o.vertices[0] @ T[:3, :3].T + T[:3, 3]
        assert abs(v[:, 2].min()) < 1e-5  # feet on the floor
        for c in range(8):  # what the trainer sees: within 0.1 mm of the pipeline's mesh
            cam = v @ d["views/R"][i, c].T.astype(np.float64) + d["views/t"][i, c]
            np.testing.assert_allclose(seen[(int(d["sample_id"][i]), c)], cam, atol=1e-4)
        h36m = topo.regressors["h36m17"] @ v
        np.testing.assert_allclose(d["joints3d/h36m17"][i], h36m, atol=1e-4)
        np.testing.assert_allclose(
            d["joints3d/coco17"][i], topo.regressors["coco17"] @ v, atol=1e-4
        )
        for c in range(8):
            args = (
                d["views/R"][i, c],
                d["views/t"][i, c],
                d["views/K"][i, c],
                d["views/dist"][i, c],
            )
            np.testing.assert_allclose(
                d["views/kp2d_h36m17"][i, c], project(h36m, *args).uv, atol=1e-2
            )
            uv = d["views/kp2d"][i, c].astype(np.float64)
            kp = apply_affine(resize_affine(224, 56), apply_affine(d["views/crop"][i, c], uv))
            for k in range(17):
                g = np.exp(-((xx - kp[k, 0]) ** 2 + (yy - kp[k, 1]) ** 2) / (2 * 2.0**2))
                ref = np.floor(255 * g + 0.5)
                assert np.abs(d["views/heatmaps"][i, c, k].astype(int) - ref).max() <= 1


def test_masks_match_rasterized_stored_geometry(inputs, tmp_path):
    """--masks 1: silhouettes equal a rasterization of the mesh (recomputed from the stored body
    parameters) through the stored camera and crop, up to edge pixels."""
    from cameras.crop import apply_affine, resize_affine
    from cameras.projection import project
    from pipeline.masks import render_masks
    from shards import masks as mask_codec
    from shards.topology import load_topology

    out = tmp_path / "masks"
    args = _args(*inputs, out, 0)
    args[args.index("--masks") + 1] = "1"
    args[args.index("--meshes") + 1] = "12"
    assert B.main(args) == 0
    faces = load_topology(out).faces
    names = ["views/R", "views/t", "views/K", "views/dist", "views/crop"]
    body = ["body/pose", "body/betas", "body/gender", "body/trans", "body/placement"]
    d = _read(out / "shard-000000.h5", names + body + ["views/masks"])
    masks = mask_codec.decode(d["views/masks"], 56)
    A = resize_affine(224, 56)
    import torch

    from shards.body import BodySkinner

    with torch.no_grad():
        posed = (
            BodySkinner.from_topology(out)(*(torch.from_numpy(d[k]) for k in body[:3])).numpy()
            + d["body/trans"][:, None]
        )
    place = d["body/placement"].astype(np.float64)
    for i in range(min(3, len(masks))):
        v = posed[i].astype(np.float64) @ place[i, :3, :3].T + place[i, :3, 3]
        for c in range(8):
            p = project(
                v, d["views/R"][i, c], d["views/t"][i, c], d["views/K"][i, c], d["views/dist"][i, c]
            )
            uv = apply_affine(A, apply_affine(d["views/crop"][i, c], p.uv))
            ref = render_masks(uv[None], p.depth[None], faces, 56)[0]
            inter = (ref & masks[i, c]).sum()
            union = (ref | masks[i, c]).sum()
            assert union > 100 and inter / union > 0.97
    # self-occlusion flags (written with masks) against ray casting on the stored mesh
    occ = _read(out / "shard-000000.h5", ["views/occluded", "joints3d/coco17"])
    agree, n_occ, n = 0, 0, 0
    for i in range(min(3, len(masks))):
        v = posed[i].astype(np.float64) @ place[i, :3, :3].T + place[i, :3, 3]
        for c in range(8):
            R, t = d["views/R"][i, c].astype(np.float64), d["views/t"][i, c].astype(np.float64)
            ref = _ray_cast_occlusion(v @ R.T + t, faces, occ["joints3d/coco17"][i] @ R.T + t)
            agree += int((ref == occ["views/occluded"][i, c].astype(bool)).sum())
            n_occ += int(ref.sum())
            n += ref.size
    assert n_occ > 0.1 * n and agree >= 0.9 * n, (agree, n_occ, n)


def _ray_cast_occlusion(v: np.ndarray, faces: np.ndarray, kp: np.ndarray) -> np.ndarray:
    """Camera-frame keypoints hidden by the mesh: the ray from the camera centre through each
    keypoint meets a triangle nearer (in z) than the keypoint by more than its tolerance
    (Moller-Trumbore over every triangle)."""
    from pipeline.masks import COCO17_OCCLUSION_TOL

    a, b, c = (v[faces[:, i]] for i in range(3))
    e1, e2 = b - a, c - a
    out = np.zeros(len(kp), bool)
    for k, p in enumerate(kp):
        d = p / np.linalg.norm(p)
        h = np.cross(d, e2)
        det = (e1 * h).sum(1)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        u = (-a * h).sum(1) * inv  # origin is the camera centre (0, 0, 0)
        q = np.cross(-a, e1)
        w = (d * q).sum(1) * inv
        dist = (e2 * q).sum(1) * inv
        hit = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (dist > 0)
        z = dist[hit] * d[2]
        out[k] = bool(hit.any() and z.min() < p[2] - COCO17_OCCLUSION_TOL[k])
    return out


def test_smplx_build_poses_like_a_direct_smplx_call(inputs, tmp_path):
    """A build of SMPL-X sequences (build.model_type: smplx) poses each frame exactly as
    ``smplx.SMPLX`` does with the file's root/body/jaw/eye/hand keys: the pose layout differs
    from SMPL+H's (jaw and eyes sit between body and hands), so a wrong layout would bend
    the hands and jaw."""
    import smplx
    import torch

    from tests.pipeline.test_body_models import _smplx_dict_from_smplh

    amass, models = inputs
    seqs = sorted(amass.rglob("*_stageii.npz"))
    assert seqs, "the small embedded default has an SMPL-X sequence"
    gender = str(np.load(seqs[0])["gender"])
    with np.load(models / "smplh" / gender / "model.npz") as m:
        smplx_model = _smplx_dict_from_smplh(dict(m))
        V0 = len(m["v_template"])  # the rest are unreferenced padding vertices
    bm = tmp_path / "bm"
    (bm / "smplx").mkdir(parents=True)
    model_file = bm / "smplx" / f"SMPLX_{gender.upper()}.npz"
    np.savez(model_file, **smplx_model)
    cfg_file = tmp_path / "build_smplx.yaml"
    cfg_file.write_text("build:\n  model_type: smplx\n")
    out = tmp_path / "out"
    args = _args(amass, bm, out, 0, ["--meshes", "8", "--unit-size", "8"])
    args[args.index("--config") + 1] = str(cfg_file)
    assert B.main(args) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["meshes"] > 0
    d = _read(out / "shard-000000.h5", ["source/path", "source/frame", "body/placement",
                                       "body/pose", "sample_id", "views/R", "views/t"])  # fmt: skip
    assert d["body/pose"].shape[1] == 165
    # vertices recomputed from the SMPL-X arrays topology.h5 carries, as the trainer gets them
    from shards.reader import ShardDataset

    split = man["shards"][0]["split"]
    got = {}
    for b in ShardDataset(out, split, views="all", batch_size=64, shuffle=False):
        for j in range(len(b["sample_id"])):
            got[(int(b["sample_id"][j]), int(b["view"][j]))] = b["vertices"][j].numpy()
    layer = smplx.SMPLX(str(model_file), ext="npz", num_betas=16, use_pca=False,
                        flat_hand_mean=True)  # fmt: skip
    for i in range(len(d["source/frame"])):
        rel = d["source/path"][i]
        rel = rel.decode() if isinstance(rel, bytes) else str(rel)
        with np.load(amass / rel) as z:
            f = int(d["source/frame"][i])
            keys = ("root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye", "trans")
            t = {k: torch.tensor(z[k][f : f + 1], dtype=torch.float32) for k in keys}
            betas = torch.tensor(z["betas"][None, :16], dtype=torch.float32)
        with torch.no_grad():
            v = layer(betas=betas, global_orient=t["root_orient"], body_pose=t["pose_body"],
                      jaw_pose=t["pose_jaw"], leye_pose=t["pose_eye"][:, :3],
                      reye_pose=t["pose_eye"][:, 3:], left_hand_pose=t["pose_hand"][:, :45],
                      right_hand_pose=t["pose_hand"][:, 45:], transl=t["trans"],
                      expression=torch.zeros(1, 10)).vertices[0].numpy()  # fmt: skip
        T = d["body/placement"][i].astype(np.float64)
        v = v @ T[:3, :3].T + T[:3, 3]
        for c in range(8):
            cam = v @ d["views/R"][i, c].T.astype(np.float64) + d["views/t"][i, c]
            mine = got[(int(d["sample_id"][i]), c)]
            np.testing.assert_allclose(mine[:V0], cam[:V0], atol=1e-4)  # < 0.1 mm

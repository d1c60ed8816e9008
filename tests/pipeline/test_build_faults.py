"""Issue 21's findings that need no cluster: finish()'s checks and Ray's failure kinds as one
line each (finding 3), the in-flight window following the cluster's CPUs (finding 4), and the
smaller ones (finding 5): absolute manifest paths, the shortfall printed, the dry run with no
readable file, a node refused before its first unit. The cluster itself:
``test_build_cluster.py``; a retried unit's partial file and the context built once per worker:
``test_build.py::test_ray_1_and_2_workers_identical_with_retry_and_resume``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.build import driver as B

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--views", "4", "--res", "32", "--masks", "0", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def inputs(synth_data):
    return Path(synth_data) / "amass", Path(synth_data) / "body_models"


def _one_file_archive(amass: Path, dst: Path) -> Path:
    """An archive of one sequence (the first SynthCMU file); returns that file."""
    src = sorted((amass / "SynthCMU").rglob("*_poses.npz"))[0]
    f = dst / src.relative_to(amass)
    f.parent.mkdir(parents=True)
    shutil.copy(src, f)
    return f


def _errors(text: str) -> list[str]:
    return [x for x in text.strip().splitlines() if not x.startswith("warning: ")]


def test_every_sample_skipped_is_one_line_and_no_manifest(inputs, tmp_path, capsys):
    """Finding 3: an archive whose only file has corrupt poses, with thinning off (the plan
    reads headers only): every unit skips every sample. Before, finish() raised a RuntimeError
    (traceback); now one line, exit 4, no manifest."""
    amass, models = inputs
    f = _one_file_archive(amass, tmp_path / "amass")
    with np.load(f) as z:
        d = {k: z[k] for k in z.files}
    d["poses"][:] = np.nan
    np.savez(f, **d)
    out = tmp_path / "out"
    argv = ["--amass", str(tmp_path / "amass"), "--body-models", str(models), "--out", str(out),
            "--meshes", "16", "--unit-size", "8", *SMALL,
            "--set", "plan.min_pose_dist=0"]  # fmt: skip
    assert B.main(argv) == 4
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and "every planned sample (16) was skipped" in err[0], err
    assert "NaN" in err[0] and str(out.resolve()) in err[0]
    assert not (out / "manifest.json").exists()


def test_accounting_and_verify_failures_are_one_line_and_no_manifest(inputs, tmp_path, capsys):
    """Finding 3: a unit record that does not add up (planned != written + skipped) and one
    whose shard range disagrees with the file (verify fails): each one line, exit 4, and the
    manifest of the earlier build is gone (a folder whose checks fail has none)."""
    amass, models = inputs
    out = tmp_path / "out"
    argv = ["--amass", str(amass), "--body-models", str(models), "--out", str(out),
            "--meshes", "24", "--unit-size", "8", *SMALL]  # fmt: skip
    assert B.main(argv) == 0
    rp = out / "units" / "unit-000000.json"
    good = rp.read_text()
    rec = json.loads(good)
    rec["skips"] = [{"input": "x", "sample_id": 10**6, "frame": 0, "reason": "made up"}]
    rp.write_text(json.dumps(rec))
    capsys.readouterr()
    assert B.main(argv) == 4
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and "planned 24 != written 24 + skipped 1" in err[0], err
    assert not (out / "manifest.json").exists()

    rec = json.loads(good)
    rec["shard"]["sample_id_first"] += 1
    rp.write_text(json.dumps(rec))
    assert B.main(argv) == 4
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and "shard-000000.h5" in err[0] and "no manifest" in err[0], err
    assert not (out / "manifest.json").exists()
    rp.write_text(good)
    assert B.main(argv) == 0 and (out / "manifest.json").exists()  # the rerun resumes


def test_every_ray_failure_kind_is_one_line():
    """Finding 3: before, only RayTaskError and WorkerCrashedError got a message; NodeDiedError,
    OutOfMemoryError, OwnerDiedError ... ended in a traceback. Each kind's line says what
    happened to which unit."""
    import ray.exceptions as X

    from pipeline.build.run import ray_failure

    cases = {
        X.NodeDiedError("node 1 died"): "lost its node",
        X.OutOfMemoryError(
            "Task was killed due to the node running low on memory.\nMemory on the node was 95%"
        ): "out-of-memory",  # fmt: skip
        X.WorkerCrashedError(): "lost its worker process",
        X.OwnerDiedError("ff" * 28, None, ""): "process that owned it died",
        X.ObjectLostError("ff" * 28, None, ""): "object lost",
        X.RayActorError(): "lost an actor",
        X.TaskCancelledError(): "cancelled",
        X.TaskUnschedulableError("no node fits"): "TaskUnschedulableError",
    }
    for e, words in cases.items():
        line = ray_failure(e, 7, 3)
        assert "\n" not in line and words in line and line.startswith("unit 7 "), line
        assert line.endswith("gave up after 3 retries")
    try:
        raise ValueError("poses broken")
    except ValueError as cause:
        e = X.RayTaskError("run_unit", "Traceback ...\nValueError: poses broken", cause)
    line = ray_failure(e.as_instanceof_cause(), 2, 1)
    assert line == "unit 2 raised ValueError: poses broken; gave up after 1 retries", line


def test_in_flight_window_follows_the_cluster():
    """Finding 4: the window was 2 x the CPUs seen at connect time, so a 1-CPU head joined by a
    4-CPU node never had more than 2 units in flight. Now the CPUs are re-read as units
    complete: once the node has joined, 2 x 5 units are in flight."""
    from pipeline.build.run import keep_in_flight

    jobs = [{"unit": u} for u in range(40)]
    cluster_cpus = [1]
    finished: list[int] = []
    in_flight: list[int] = []

    def wait_one(pending: list):
        in_flight.append(len(pending))
        return pending[0]

    def done(ref) -> None:
        finished.append(ref)
        if len(finished) == 1:
            cluster_cpus[0] = 5  # a 4-CPU node joins while the first unit runs

    most = keep_in_flight(jobs, lambda job: job["unit"], wait_one, done, lambda: cluster_cpus[0])
    assert in_flight[0] == 2 and most == 10 and max(in_flight) == 10
    assert sorted(finished) == list(range(40))


def test_manifest_paths_absolute_and_shortfall_printed(inputs, tmp_path, monkeypatch, capsys):
    """Finding 5: relative --amass/--body-models were recorded as typed; a target the archive
    cannot fill (one sequence, 2,000 meshes asked) was never reported although the docs said
    so. Now the manifest holds absolute paths and both the build and ``shards info`` print
    the shortfall."""
    from shards.__main__ import main as shards_main

    amass, models = inputs
    _one_file_archive(amass, tmp_path / "amass")
    shutil.copytree(models, tmp_path / "bm")
    monkeypatch.chdir(tmp_path)
    argv = ["--amass", "amass", "--body-models", "bm", "--out", "out", "--meshes", "2000",
            *SMALL, "--set", "plan.min_pose_dist=0"]  # fmt: skip
    assert B.main(argv) == 0
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["config"]["amass"] == str(tmp_path / "amass")
    assert man["config"]["body_models"] == str(tmp_path / "bm")
    planned = man["config"]["planned"]
    assert 0 < planned < 2000 and man["config"]["plan_stats"]["shortfall"] == 2000 - planned
    want = f"planned {planned} of the target 2000 meshes: shortfall {2000 - planned}"
    assert want in capsys.readouterr().out
    assert shards_main(["info", "out"]) == 0
    assert want in capsys.readouterr().out


def test_dry_run_with_no_readable_file(inputs, tmp_path, capsys):
    """Finding 5: a dry run over an archive with no readable file printed
    "1 sequence files, , 1 unreadable (family from: )"."""
    _, models = inputs
    bad = tmp_path / "amass" / "SynthCMU" / "s01" / "walk_01_poses.npz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    argv = ["--amass", str(tmp_path / "amass"), "--body-models", str(models), "--out",
            str(tmp_path / "out"), "--dry-run"]  # fmt: skip
    assert B.main(argv) == 2
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("amass"))
    assert line.endswith(": 1 sequence files, 1 unreadable"), line


def test_node_that_sees_another_world_is_refused_before_its_first_unit(inputs, tmp_path):
    """A node that joins after the start: its first unit checks the job's expectation (token,
    hashes) and the motion files' sizes, computes nothing and returns one line instead."""
    from pipeline.build.config import load_config
    from pipeline.build.nodes import TOKEN_NAME
    from pipeline.build.units import make_jobs, run_unit
    from pipeline.plan import Plan

    amass, models = inputs
    out = tmp_path / "out"
    argv = ["--amass", str(amass), "--body-models", str(models), "--out", str(out),
            "--meshes", "8", "--unit-size", "8", *SMALL]  # fmt: skip
    assert B.main(argv) == 0
    plan, cfg = Plan.load(out), load_config(None, {"views": 4, "res": 32, "meshes": 8})
    paths = {"out": out, "amass": amass, "body_models": models}
    (out / TOKEN_NAME).write_text("the driver's token\n")
    expect = {"out": str(out), "token": "another build's token", "body_models": str(models),
              "model_type": "smplh", "files": {}, "plan": None, "regressors": {}}  # fmt: skip
    sizes = {s: 1 for s in plan.sequences}
    before = sorted(p.name for p in out.iterdir())
    (job,) = make_jobs(plan, [0], paths, cfg, plan.digest(), expect, sizes)
    rec = run_unit(job)
    assert "another token" in rec["refused"] and str(out) in rec["refused"]
    expect["token"] = "the driver's token"
    expect["plan"] = "sha256:" + "0" * 64
    (job,) = make_jobs(plan, [0], paths, cfg, plan.digest(), expect, sizes)
    assert run_unit(job)["refused"] == f"{out / 'plan.npz'}: differs from the driver's"
    (job,) = make_jobs(plan, [0], paths, cfg, plan.digest(), None, sizes)
    rel = plan.sequences[plan.seq[0]]
    assert run_unit(job)["refused"].startswith(f"{amass / rel}: ")
    assert sorted(p.name for p in out.iterdir()) == before  # nothing computed or written


def test_no_module_imports_the_build_driver():
    """No import circle: the stages and the dry run (pipeline.build.doctor) never import the
    driver (doctor took PreflightError, load_config, scan_archive from it)."""
    import ast

    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        if path.relative_to(ROOT).as_posix() in ("pipeline/build/driver.py",
                                                 "pipeline/build/__main__.py"):  # fmt: skip
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in getattr(node, "names", [])] if isinstance(
                node, ast.Import) else []  # fmt: skip
            if isinstance(node, ast.ImportFrom) and node.module in ("pipeline", "pipeline.build"):
                names += [f"{node.module}.{a.name}" for a in node.names]
            assert "pipeline.build.driver" not in names, f"{path.name} imports the driver"

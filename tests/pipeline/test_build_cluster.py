"""A two-node Ray cluster on this host (``ray start --head --block`` and ``ray start --address
... --block``, each node with its own ``--temp-dir``, stopped by their own PIDs): a build through
``RAY_ADDRESS`` equals a local one byte for byte (with a unit crashing once on the cluster), and
a node that sees another body-model file or another output folder is refused by name before
any compute.

The head node (where the driver attaches) has no CPU and node B has one, so Ray can place a unit
(``num_cpus=1``) on node B only: every unit crosses to another node by construction. With a CPU
on both nodes Ray promises no spread (on a busy host one node took every unit).

One host has one filesystem, so node B is started with the ``MPT_BUILD_NODE_PATHS`` testing
hook (``pipeline.build.nodes``): under it, node B reads ``<tmp>/bm_b`` for ``<tmp>/bm_refused`` and
``<tmp>/out_b`` for ``<tmp>/out_refused``, as a node with its own disk would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
SMALL = ["--meshes", "48", "--unit-size", "8", "--views", "4", "--res", "32", "--masks", "0"]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return {**env, **extra}


def _stop(proc: subprocess.Popen) -> None:
    """Stop a ``ray start --block`` we started: SIGTERM to it (it stops its node's processes),
    then SIGKILL to its own process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


_NODES = """
import json, ray
ray.init(address="{addr}", log_to_driver=False)
print(json.dumps([[n["NodeID"], n["Resources"]] for n in ray.nodes() if n["Alive"]]))
"""


@pytest.fixture(scope="module")
def cluster(synth_data):
    """(address, tmp folder, node B's id, inputs) of a running two-node cluster."""
    tmp = Path(tempfile.mkdtemp(prefix="mpt-cluster-", dir="/tmp"))
    amass, models = Path(synth_data) / "amass", Path(synth_data) / "body_models"
    shutil.copytree(models, tmp / "bm_refused")  # what the driver (and node A) see
    shutil.copytree(models, tmp / "bm_b")  # what node B sees instead
    (tmp / "out_b").mkdir()
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    common = ["--block", "--disable-usage-stats"]
    head = subprocess.Popen(
        [RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
         "--temp-dir", str(tmp / "ray_a"), "--num-cpus", "0", *common],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    procs = [head]
    hook = f"{tmp}/bm_refused={tmp}/bm_b;{tmp}/out_refused={tmp}/out_b"
    try:
        time.sleep(8)  # the head's GCS must be up before a node joins
        node_b = subprocess.Popen(
            [RAY, "start", "--address", addr, "--temp-dir", str(tmp / "ray_b"),
             "--num-cpus", "1", "--resources", '{"node_b": 1}', *common],
            env=_env(MPT_BUILD_NODE_PATHS=hook), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        procs.append(node_b)
        nodes: list = []
        for _ in range(20):
            r = subprocess.run(
                [sys.executable, "-c", _NODES.format(addr=addr)], env=_env(),
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            nodes = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else []
            if len(nodes) == 2:
                break
            time.sleep(3)
        assert len(nodes) == 2, f"the two-node cluster did not come up: {nodes}"
        b_id = next(i for i, res in nodes if "node_b" in res)
        yield addr, tmp, b_id, (amass, models)
    finally:
        for p in reversed(procs):
            _stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def _build(amass, models, out, env, workers=2, extra=()) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.build", "--amass", str(amass), "--body-models",
           str(models), "--out", str(out), "--workers", str(workers), "--quiet", *SMALL,
           *extra]  # fmt: skip
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _errors(r: subprocess.CompletedProcess) -> list[str]:
    return [x for x in r.stderr.splitlines() if x.startswith("error")]


def test_cluster_build_equals_local_build(cluster, tmp_path):
    """Through RAY_ADDRESS, every unit runs on node B (the only node with a CPU, not the head the
    driver attached to), unit 2 crashes once mid-shard (the fault variable reaches the cluster's
    workers) and is retried; every shard and plan.npz equal a local in-process build's, byte for
    byte, and no temporary file is left."""
    addr, tmp, b_id, (amass, models) = cluster
    local, remote = tmp_path / "local", tmp / "out_cluster"
    assert _build(amass, models, local, _env(), workers=0).returncode == 0
    flag = tmp / "crashed-once"
    t0 = time.perf_counter()
    r = _build(amass, models, remote, _env(RAY_ADDRESS=addr, MPT_BUILD_FAULT=f"2:{flag}"))
    dt = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert flag.exists()  # unit 2 crashed once on the cluster and was retried
    names = sorted(p.name for p in local.glob("shard-*.h5")) + ["plan.npz"]
    assert len(names) > 3
    for n in names:
        assert (local / n).read_bytes() == (remote / n).read_bytes(), n
    assert not list(remote.rglob("*.tmp-*"))
    recs = [json.loads(p.read_text()) for p in sorted((remote / "units").glob("unit-*.json"))]
    assert len(recs) == len(names) - 1  # one record per shard
    assert {rec["worker"]["node"] for rec in recs} == {b_id}  # node B did every unit
    man = json.loads((remote / "manifest.json").read_text())
    assert man["config"]["amass"] == str(amass.resolve())
    print(f"cluster build: {man['meshes']} meshes in {dt:.1f} s (whole command)")


@pytest.mark.parametrize("change", ["regressor missing", "neutral model differs"])
def test_node_with_other_body_models_is_refused_by_name(cluster, change):
    """Finding 1: node B's body-model folder lacks smplh/joint_regressors.npz (or holds another
    neutral model). Before, its units silently fell back to approximated joints; now the build
    stops before any compute with one line naming node B and the file (exit 3)."""
    addr, tmp, b_id, (amass, _) = cluster
    shutil.rmtree(tmp / "bm_b")
    shutil.copytree(tmp / "bm_refused", tmp / "bm_b")
    if change == "regressor missing":
        rel = "smplh/joint_regressors.npz"
        (tmp / "bm_b" / rel).unlink()
    else:
        rel = "smplh/neutral/model.npz"
        with np.load(tmp / "bm_b" / rel) as z:
            d = {k: z[k] for k in z.files}
        d["v_template"] = d["v_template"] + 0.01
        np.savez(tmp / "bm_b" / rel, **d)
    out = tmp / f"out_bm_{change.split()[0]}"
    r = _build(amass, tmp / "bm_refused", out, _env(RAY_ADDRESS=addr))
    assert r.returncode == 3, r.stderr[-3000:]
    err = _errors(r)
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"id {b_id[:8]}" in err[0] and str(tmp / "bm_refused" / rel) in err[0], err
    assert not list(out.glob("shard-*")) and not (out / "manifest.json").exists()


def test_output_folder_not_shared_is_refused_before_compute(cluster):
    """Finding 2: node B does not see the driver's output folder (its path is another folder
    there). Before, its workers wrote shards into their own folder and the build failed at the
    very end with a traceback after writing a manifest; now it stops before any compute with one
    line naming node B and the folder (exit 3), and node B's folder stays empty."""
    addr, tmp, b_id, (amass, models) = cluster
    out = tmp / "out_refused"
    r = _build(amass, models, out, _env(RAY_ADDRESS=addr))
    assert r.returncode == 3, r.stderr[-3000:]
    err = _errors(r)
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"id {b_id[:8]}" in err[0] and str(out) in err[0] and "every node sees" in err[0], err
    assert not list(out.glob("shard-*")) and not (out / "manifest.json").exists()
    assert not list((tmp / "out_b").iterdir())

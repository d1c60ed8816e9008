"""Several ranks: rank/world from launcher, MPI and SLURM environments, threads per rank,
per-rank seeds, one run per run folder, collectives that time out, `demo` under a launcher.

The multi-process tests start 2 ranks on CPU (gloo) themselves, with the environment that
``mpirun`` / ``srun`` would give them, or through ``torchrun``; they share one tiny dataset.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from shards.testing import make_fake_dataset
from trainer import distributed as dist
from trainer.config import TINY_MODEL, load_config

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = [
    *TINY_MODEL,
    "model.dropout=0.1",
    "train.steps=4",
    "train.batch_size=16",
    "train.log_every=1",
    "train.ckpt_every=4",
    "train.num_workers=0",
    "train.lr=1e-3",
    "eval.batch_size=32",
]
#: what a launcher, mpirun or srun sets; cleared so that each test gives only its own
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "LOCAL_SIZE",
               "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS")  # fmt: skip


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist_ds")
    # 36 train meshes x 2 views = 72 samples, 12 val meshes
    return make_fake_dataset(
        root, n_meshes=48, views=2, res=32, nv=60, shards=4, seed=1, val_shards=1
    )


# ---------------------------------------------------------------- environments (no processes)


def test_detect_launcher_mpi_slurm_environments():
    assert dist.detect({}) == dist.Ranks(0, 1, 0, 1, "single")
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert dist.detect(torchrun) == dist.Ranks(3, 4, 1, 2, "launcher")
    ds = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_SIZE": "2"}  # deepspeed
    assert dist.detect(ds) == dist.Ranks(1, 2, 1, 2, "launcher")
    ompi = {"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8"}
    ompi |= {"OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    assert dist.detect(ompi) == dist.Ranks(5, 8, 1, 4, "mpi")
    pmi = {"PMI_RANK": "2", "PMI_SIZE": "3", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "1"}
    assert dist.detect(pmi) == dist.Ranks(2, 3, 0, 1, "mpi")
    # srun -n 7 over 3 nodes: 3, 3 and 1 tasks; this task is the last node's only one
    slurm = {"SLURM_PROCID": "6", "SLURM_NTASKS": "7", "SLURM_LOCALID": "0"}
    slurm |= {"SLURM_NODEID": "2", "SLURM_STEP_TASKS_PER_NODE": "3(x2),1"}
    assert dist.detect(slurm) == dist.Ranks(6, 7, 0, 1, "slurm")
    assert dist.detect({**slurm, "SLURM_NODEID": "1"}).local_world == 3
    # a launcher's variables win over the allocation's (torchrun inside srun)
    assert dist.detect({**slurm, **torchrun}).source == "launcher"
    with pytest.raises(ValueError, match=r"^environment: SLURM_PROCID='x' is not an integer$"):
        dist.detect({**slurm, "SLURM_PROCID": "x"})
    with pytest.raises(ValueError, match="rank 7 is not within world 7"):
        dist.detect({**slurm, "SLURM_PROCID": "7"})


def test_export_needs_a_rendezvous_for_several_ranks():
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}
    with pytest.raises(ValueError, match="rank 1 of 2 but MASTER_ADDR and MASTER_PORT unset"):
        dist.export(dist.detect(env), dict(env))
    env |= {"MASTER_ADDR": "node0", "MASTER_PORT": "29400", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
    dist.export(dist.detect(env), env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("1", "2", "1")
    single: dict[str, str] = {}
    dist.export(dist.detect(single), single)
    assert single["RANK"] == "0" and single["WORLD_SIZE"] == "1" and int(single["MASTER_PORT"])


def test_threads_per_rank_shares_the_node():
    # 16 CPUs, 2 workers per rank: 4 ranks leave (16 - 8) / 4 = 2 threads each
    assert dist.threads_per_rank(2, 4, 16) == 2
    assert dist.threads_per_rank(1, 1, 16) == 15  # one rank: all but its worker
    assert dist.threads_per_rank(4, 8, 16) == 1  # never below one
    assert dist.threads_per_rank(0, 2, 16, own_cpus=4) == 4  # ranks bound to 4 cores each
    cpus = len(os.sched_getaffinity(0))
    assert dist.choose_threads(3, 0, 1, {"OMP_NUM_THREADS": "5"}) == (3, "train.threads")
    assert dist.choose_threads(None, 0, 1, {"OMP_NUM_THREADS": "5"}) == (5, "OMP_NUM_THREADS")
    assert dist.choose_threads(None, 1, 1, {})[0] == max(1, cpus - 1)
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='0' is not a positive integer"):
        dist.choose_threads(None, 0, 1, {"OMP_NUM_THREADS": "0"})


def test_rank_seeds_differ_and_rank0_keeps_the_seed():
    dist.seed_everything(7, 0)
    a = torch.rand(8)
    torch.manual_seed(7)
    assert torch.equal(a, torch.rand(8))  # rank 0: the config's seed, as one process
    dist.seed_everything(7, 1)
    b = torch.rand(8)
    dist.seed_everything(8, 0)
    c = torch.rand(8)
    assert not torch.equal(a, b) and not torch.equal(b, c)  # nor another seed's rank 0
    assert len({dist.rank_seed(7, r) for r in range(64)}) == 64


def _hold_lock(out: Path) -> subprocess.Popen:
    code = (
        "import sys; from pathlib import Path; from trainer.distributed import _lock\n"
        f"_lock(Path({str(out)!r}), 'other-run', 2); print('held', flush=True); sys.stdin.read()"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO
    )
    assert p.stdout.readline().strip() == b"held"
    return p


def test_a_live_run_folder_is_refused_a_dead_ones_is_taken(fake_data, tmp_path):
    from trainer.train import train

    out = tmp_path / "run"
    out.mkdir()
    holder = _hold_lock(out)
    try:
        cfg = load_config(REPO / "configs/demo.yaml", OVERRIDES)
        with pytest.raises(dist.RunFolderBusy) as err:
            train(cfg, fake_data, out)
        msg = str(err.value)
        assert "\n" not in msg and f"pid {holder.pid}" in msg and "2 ranks" in msg
        assert not (out / "checkpoints").exists()  # refused before anything was written
    finally:
        holder.kill()
        holder.wait()
    dist._lock(out, "mine", 1)  # the holder died: its lock went with it
    try:
        assert json.loads((out / dist.LOCK_FILE).read_text())["run_id"] == "mine"
    finally:
        dist.release_run_folder(out)


# ---------------------------------------------------------------- 2 ranks


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env = {k: v for k, v in env.items() if not k.startswith(("OMPI_", "PMI_", "SLURM_"))}
    return {**env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra}


def _rank_env(style: str, rank: int, world: int, port: int) -> dict[str, str]:
    """What mpirun / srun give rank ``rank`` of ``world`` on one node, plus the rendezvous
    that the job script exports (docs/trainer.md)."""
    if style == "mpi":
        env = {
            "OMPI_COMM_WORLD_RANK": rank,
            "OMPI_COMM_WORLD_SIZE": world,
            "OMPI_COMM_WORLD_LOCAL_RANK": rank,
            "OMPI_COMM_WORLD_LOCAL_SIZE": world,
        }
    else:
        env = {
            "SLURM_PROCID": rank,
            "SLURM_NTASKS": world,
            "SLURM_LOCALID": rank,
            "SLURM_NODEID": 0,
            "SLURM_TASKS_PER_NODE": world,
        }
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    return _clean_env(**{k: str(v) for k, v in env.items()})


def _spawn(style: str, args: list[str], world: int = 2) -> list[subprocess.Popen]:
    port = dist.free_port()
    return [
        subprocess.Popen(
            [sys.executable, "-m", "trainer", *args],
            env=_rank_env(style, r, world, port),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]


def _train_args(data: Path, out: Path, *sets: str) -> list[str]:
    cfg = str(REPO / "configs/demo.yaml")
    return ["train", "--config", cfg, "--data", str(data), "--out", str(out), "--set",
            *OVERRIDES, *sets]  # fmt: skip


@pytest.fixture(scope="module")
def mpi_run(fake_data, tmp_path_factory):
    """2 processes started as ``mpirun -n 2`` would start them (no RANK/WORLD_SIZE)."""
    out = tmp_path_factory.mktemp("mpi") / "run"
    procs = _spawn("mpi", _train_args(fake_data, out))
    results = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, results):
        assert p.returncode == 0, o[-2000:] + e[-3000:]
    summaries = [json.loads(o.strip().splitlines()[-1]) for o, _ in results]
    tag = (out / "checkpoints/latest").read_text().strip()
    client = torch.load(
        out / "checkpoints" / tag / "mp_rank_00_model_states.pt", weights_only=False
    )
    return {"out": out, "summaries": summaries, "client": client}


@pytest.mark.slow
def test_mpi_launch_is_one_run_of_two_ranks(mpi_run):
    """Before: each process ran as rank 0 of 1 into the same folder (log.csv 2 of 4 rows)."""
    assert len(mpi_run["client"]["positions"]) == 2
    # 4 steps of 8 samples per rank, in its first epoch
    assert mpi_run["client"]["positions"] == [(0, 32), (0, 32)]
    rows = list(csv.DictReader(open(mpi_run["out"] / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    lock = json.loads((mpi_run["out"] / dist.LOCK_FILE).read_text())
    assert lock["world"] == 2


@pytest.mark.slow
def test_threads_per_rank_in_a_two_rank_run(mpi_run):
    """Before: every rank took all cores minus workers (2 ranks x 2 threads on 2 cores)."""
    cpus = len(os.sched_getaffinity(0))
    expected = max(1, cpus // 2)  # 2 local ranks, no DataLoader workers, OMP_NUM_THREADS unset
    assert [s["threads"] for s in mpi_run["summaries"]] == [expected, expected]


@pytest.mark.slow
def test_ranks_draw_different_dropout_masks(mpi_run):
    """Before: every rank seeded torch alike, so their generators stayed equal step for step."""
    rng = [s["cpu"] for s in mpi_run["client"]["rng"]]
    assert not torch.equal(rng[0], rng[1])
    masks = []
    with torch.random.fork_rng():
        for state in rng:  # the next dropout mask each rank would draw
            torch.set_rng_state(state)
            masks.append(torch.nn.functional.dropout(torch.ones(256), 0.5, training=True) > 0)
    assert not torch.equal(masks[0], masks[1])


@pytest.mark.slow
def test_resume_on_another_rank_count_refused_before_deepspeed(mpi_run, fake_data, monkeypatch):
    import deepspeed

    from trainer.train import train

    def untouched(*a, **k):
        raise AssertionError("DeepSpeed was started")

    monkeypatch.setattr(deepspeed, "initialize", untouched)
    cfg = load_config(REPO / "configs/demo.yaml", [*OVERRIDES, "train.steps=6"])
    with pytest.raises(ValueError, match=r"saved by 2 ranks, this run has 1; resume with 2"):
        train(cfg, fake_data, mpi_run["out"])


@pytest.mark.slow
def test_hung_rank_ends_the_job_within_the_timeout(fake_data, tmp_path):
    """srun-style ranks; rank 1 stopped mid-run: rank 0 leaves its all-reduce after
    train.dist_timeout_s with one line. Before: SLURM ranks ran as 2 separate runs."""
    timeout = 10
    out = tmp_path / "run"
    args = _train_args(fake_data, out, "train.steps=400", f"train.dist_timeout_s={timeout}")
    procs = _spawn("slurm", args)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and procs[0].poll() is None:
            log = out / "log.csv"
            if log.exists() and len(log.read_text().splitlines()) >= 3:  # header + 2 steps
                break
            time.sleep(0.2)
        assert procs[0].poll() is None, procs[0].communicate()
        os.kill(procs[1].pid, signal.SIGSTOP)
        stopped = time.monotonic()
        _, err = procs[0].communicate(timeout=timeout + 90)
        waited = time.monotonic() - stopped
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert procs[0].returncode == 3, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    assert errors[0].startswith("error: rank 0 of 2: a collective failed"), errors
    assert "Timed out" in errors[0] or "timed out" in errors[0]
    assert timeout - 1 <= waited <= timeout + 90
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) < 400


@pytest.mark.slow
def test_demo_under_torchrun_two_ranks(fake_data, tmp_path):
    """Before: rank 1 evaluated too, before rank 0 had written model.pt ("no trained model")."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun missing"
    out = tmp_path / "demo"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(dist.free_port()), "-m",
           "trainer", "demo", "--config", str(REPO / "configs/demo.yaml"), "--data",
           str(fake_data), "--out", str(out), "--set", *OVERRIDES]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=_clean_env(),
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "eval.json").read_text())
    assert res["samples"] == 12 * 2
    assert r.stdout.count("figures: ") == 1  # rank 0 only
    assert (out / "figures/predictions.png").stat().st_size > 10_000
    client = torch.load(
        out / "checkpoints/step00000004/mp_rank_00_model_states.pt", weights_only=False
    )
    assert len(client["positions"]) == 2


def _agree_worker(rank: int, port: int, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)

    def batches():
        if rank == 1:
            raise ValueError("rank 1 of 2: no full batch")
        yield "batch"

    outcome = {}
    try:
        next(dist.first_batch_agreed(batches(), 2))
    except ValueError as e:
        outcome["first"] = str(e)
    outcome["decided"] = dist.on_rank0(lambda: f"tag of rank {rank}", rank, 2)
    try:
        dist.on_rank0(lambda: (_ for _ in ()).throw(ValueError("stale")), rank, 2)
    except ValueError as e:
        outcome["error"] = str(e)
    (out / f"{rank}.json").write_text(json.dumps(outcome))
    torch.distributed.destroy_process_group()


def test_errors_and_decisions_reach_every_rank(tmp_path):
    """A data error on rank 1 and a decision or error of rank 0 arrive on both ranks."""
    import torch.multiprocessing as mp

    mp.spawn(_agree_worker, args=(dist.free_port(), tmp_path), nprocs=2, join=True)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"{rank}.json").read_text())
        assert got == {
            "first": "rank 1 of 2: no full batch",
            "decided": "tag of rank 0",
            "error": "stale",
        }

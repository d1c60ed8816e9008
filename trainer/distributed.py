"""Several ranks done right: who this process is, its threads and seeds, collectives that time out.

- :func:`detect` reads rank and world size from the launcher (``deepspeed``, ``torchrun``:
  ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``), Open MPI (``OMPI_COMM_WORLD_*``), MPICH / Intel MPI
  (``PMI_RANK``/``PMI_SIZE``) or SLURM (``SLURM_PROCID``/``SLURM_NTASKS``), in that order;
  :func:`start` exports what ``torch.distributed`` needs and opens the process group with a
  timeout (``train.dist_timeout_s``) that every collective inherits (gloo and NCCL honour it).
- :func:`threads_per_rank`: torch threads from the node's cores (CPU affinity), DataLoader
  workers and local ranks, unless ``train.threads`` or ``OMP_NUM_THREADS`` says otherwise.
- :func:`seed_everything`: torch / numpy / random per rank (rank 0 keeps the config's seed).
- :func:`on_rank0` / :func:`agree`: one decision or one error on every rank.
- :func:`own_run_folder`: one run per run folder (an exclusive lock held by rank 0, with the
  run id every rank checks, which also catches a run folder that is not shared by all ranks).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")
LOCK_FILE = "run.lock"


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job, as its environment tells it."""

    rank: int
    world: int
    local_rank: int
    local_world: int | None  # None: not told (counted from host names once the group is up)
    source: str  # "launcher", "mpi", "slurm" or "single"


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ValueError(f"environment: {key}={env[key]!r} is not an integer") from None


def _slurm_tasks_on_node(env: Mapping[str, str]) -> int | None:
    """Tasks of this step on this node from SLURM's ``2(x3),1`` lists and ``SLURM_NODEID``."""
    spec = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    if spec is None or "SLURM_NODEID" not in env:
        return None
    counts: list[int] = []
    for part in spec.split(","):
        n, _, rep = part.partition("(x")
        counts += [int(n)] * (int(rep.rstrip(")")) if rep else 1)
    node = _int(env, "SLURM_NODEID")
    return counts[node] if node < len(counts) else None


#: (rank, world size, local rank, local sizes in order of preference, source) per launcher
#: family, tried in this order; SLURM (a node-list format) is handled on its own
_LAUNCHER_KEYS = (
    ("RANK", "WORLD_SIZE", "LOCAL_RANK", ("LOCAL_WORLD_SIZE", "LOCAL_SIZE"), "launcher"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     ("OMPI_COMM_WORLD_LOCAL_SIZE",), "mpi"),
    ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", ("MPI_LOCALNRANKS",), "mpi"),
)  # fmt: skip


def detect(env: Mapping[str, str] | None = None) -> Ranks:
    """Rank, world size and local rank from the environment: launcher, MPI, SLURM, or none."""
    env = os.environ if env is None else env
    for rank, world, local_rank, local_size, source in _LAUNCHER_KEYS:
        if rank in env and world in env:
            local = next((env[k] for k in local_size if env.get(k)), None)
            r = Ranks(
                _int(env, rank),
                _int(env, world),
                int(env.get(local_rank, 0)),
                int(local) if local else None,
                source,
            )
            break
    else:
        if "SLURM_PROCID" not in env or "SLURM_NTASKS" not in env:
            return Ranks(0, 1, 0, 1, "single")
        r = Ranks(
            _int(env, "SLURM_PROCID"),
            _int(env, "SLURM_NTASKS"),
            int(env.get("SLURM_LOCALID", 0)),
            _slurm_tasks_on_node(env),
            "slurm",
        )
    if r.world < 1 or not 0 <= r.rank < r.world:
        raise ValueError(f"environment ({r.source}): rank {r.rank} is not within world {r.world}")
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export(r: Ranks, env: MutableMapping[str, str] | None = None) -> None:
    """Set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``LOCAL_WORLD_SIZE``) for
    ``torch.distributed``; a single process gets a local rendezvous. Several ranks need
    ``MASTER_ADDR``/``MASTER_PORT`` (rank 0's host and a free port there): the launchers set
    them; under MPI or SLURM the job script exports them, else a one-line error."""
    env = os.environ if env is None else env
    if r.world == 1 and r.source != "launcher":
        env.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        env.setdefault("MASTER_ADDR", "127.0.0.1")
        env.setdefault("MASTER_PORT", str(free_port()))
        return
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
    if missing:
        raise ValueError(
            f"environment ({r.source}): rank {r.rank} of {r.world} but {' and '.join(missing)} "
            "unset; export rank 0's host and a free port there (docs/trainer.md, several ranks)"
        )
    env.update(RANK=str(r.rank), WORLD_SIZE=str(r.world), LOCAL_RANK=str(r.local_rank))
    if r.local_world is not None:
        env["LOCAL_WORLD_SIZE"] = str(r.local_world)


def extensions_dir() -> Path:
    """A JIT build cache for DeepSpeed's ops keyed by Python, torch and DeepSpeed versions, so
    that two environments never rebuild each other's op (``TORCH_EXTENSIONS_DIR`` wins)."""
    from importlib.metadata import version

    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    key = f"{py}-torch{torch.__version__}-deepspeed{version('deepspeed')}".replace("+", "_")
    return Path.home() / ".cache" / "torch_extensions" / key


def groups_inherit_timeout(timeout: timedelta) -> None:
    """Make process groups created without a timeout take ``timeout``: torch gives such a group
    its backend's default (30 min on gloo, 10 on NCCL), not the world group's, and DeepSpeed
    makes its data-parallel group (every gradient all-reduce) that way."""
    new_group = torch.distributed.new_group
    new_group = getattr(new_group, "__wrapped__", new_group)

    @functools.wraps(new_group)
    def with_timeout(*args, **kwargs):
        if len(args) < 2 and kwargs.get("timeout") is None:
            kwargs["timeout"] = timeout
        return new_group(*args, **kwargs)

    torch.distributed.new_group = with_timeout


def start(timeout_s: float, env: MutableMapping[str, str] | None = None) -> Ranks:
    """Detect and export this process's rank, make its GPU (``LOCAL_RANK``) the current device,
    then open the process group (once per process) with ``timeout_s`` on every collective: a
    rank that hangs or never joins ends the job."""
    env = os.environ if env is None else env
    r = detect(env)
    if torch.cuda.is_available():
        # before any collective: torch's object collectives (and NCCL's communicator) use the
        # current device, which is cuda:0 on every rank until this (DeepSpeed sets it only in
        # deepspeed.initialize, after the trainer's first collectives)
        if r.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"environment ({r.source}): local rank {r.local_rank} but this host has "
                f"{torch.cuda.device_count()} GPUs; start at most one rank per GPU"
            )
        torch.cuda.set_device(r.local_rank)
    if not torch.distributed.is_initialized():
        export(r, env)
        env.setdefault("TORCH_EXTENSIONS_DIR", str(extensions_dir()))
        import deepspeed

        timeout = timedelta(seconds=float(timeout_s))
        deepspeed.init_distributed(dist_backend=None, verbose=False, timeout=timeout)
        groups_inherit_timeout(timeout)
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    if (rank, world) != (r.rank, r.world) and r.source != "single":
        raise ValueError(f"process group is rank {rank} of {world}, environment says {r}")
    return Ranks(rank, world, r.local_rank, r.local_world, r.source)


def collective_failure(err: BaseException) -> str | None:
    """A one-line account of a failed collective (timeout, lost peer), else None."""
    if not torch.distributed.is_initialized() or torch.distributed.get_world_size() == 1:
        return None
    text = str(err)
    dist_error = isinstance(err, getattr(torch.distributed, "DistError", ()))
    signs = ("Timed out", "timed out", "Connection closed", "Connection reset", "Broken pipe")
    if not dist_error and not (isinstance(err, RuntimeError) and any(s in text for s in signs)):
        return None
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    detail = text.strip().splitlines()[-1] if text.strip() else type(err).__name__
    return (
        f"rank {rank} of {world}: a collective failed, another rank hung or died "
        f"(train.dist_timeout_s bounds the wait): {detail}"
    )


def gather(obj: T, world: int) -> list[T]:
    """Every rank's object, in rank order (a collective)."""
    if world == 1:
        return [obj]
    out: list = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast(obj: T, world: int) -> T:
    """Rank 0's object on every rank (a collective)."""
    if world == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def on_rank0(fn: Callable[[], T], rank: int, world: int) -> T:
    """``fn()`` run by rank 0 only; its result, or the error it raised, on every rank."""
    outcome: tuple[bool, object] | None = None
    if rank == 0:
        try:
            outcome = (True, fn())
        except (ValueError, OSError) as e:
            outcome = (False, e)
    ok, value = broadcast(outcome, world)
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def agree(fn: Callable[[], T], world: int) -> T:
    """``fn()`` on every rank; if it raised a ValueError on any, the first such (by rank) is
    raised on all, so that no rank goes on into a collective the failed one never joins."""
    try:
        value, err = fn(), None
    except ValueError as e:
        value, err = None, e
    errors = [e for e in gather(err, world) if e is not None]
    if errors:
        raise errors[0]
    return value  # type: ignore[return-value]


def first_batch_agreed(batches: Iterator[T], world: int) -> Iterator[T]:
    """``batches`` whose first batch is drawn on every rank before any goes on: a rank without
    one (e.g. "no full batch") stops every rank with its one-line error."""
    first = agree(lambda: next(batches), world)
    yield first
    yield from batches


# ---------------------------------------------------------------- threads and seeds


def cpus() -> set[int]:
    """The CPUs this process may run on (its affinity), else all of them."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def node_share(world: int) -> tuple[int, int, int]:
    """(ranks on this host, CPUs the host's ranks may use together, this rank's CPUs), from
    every rank's host name and affinity (a collective)."""
    me = (socket.gethostname(), sorted(cpus()))
    everyone = gather(me, world)
    mine = [c for host, c in everyone if host == me[0]]
    return len(mine), len(set().union(*map(set, mine))), len(me[1])


def threads_per_rank(
    workers: int, local_ranks: int, node_cpus: int, own_cpus: int | None = None
) -> int:
    """(node CPUs - DataLoader workers x local ranks) / local ranks, at least 1 and at most
    the rank's own CPUs (a launcher that binds ranks to cores gives each its set)."""
    n = (node_cpus - workers * local_ranks) // max(1, local_ranks)
    return max(1, min(n, own_cpus if own_cpus is not None else n))


def choose_threads(
    configured: int | None, workers: int, world: int, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """Torch threads for this rank and why: ``train.threads`` if set, else an explicit
    ``OMP_NUM_THREADS`` (the user's or the launcher's), else :func:`threads_per_rank` from the
    host's CPUs. A collective when several ranks run (every rank calls it)."""
    env = os.environ if env is None else env
    local, node_cpus, own = node_share(world)  # every rank joins, whatever it then picks
    if configured is not None:
        return int(configured), "train.threads"
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp:
        if not omp.isdigit() or int(omp) < 1:
            raise ValueError(f"environment: OMP_NUM_THREADS={omp!r} is not a positive integer")
        return int(omp), "OMP_NUM_THREADS"
    return threads_per_rank(workers, local, node_cpus, own), (
        f"{node_cpus} CPUs, {local} local ranks x {workers} workers"
    )


def rank_seed(seed: int, rank: int) -> int:
    """Rank 0: ``seed``; rank r > 0: a 32-bit seed mixed from (seed, r) (torch's CPU generator
    keeps only the low 32 bits of a seed, so ``seed + r * 2**32`` would not do)."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) % 2**64, int(rank)]).generate_state(1)[0])


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed torch (CPU and every GPU), numpy's and Python's global generators for ``rank``."""
    s = rank_seed(seed, rank)
    torch.manual_seed(s)
    np.random.seed(s % 2**32)
    random.seed(s)


# ---------------------------------------------------------------- one run per run folder


class RunFolderBusy(ValueError):
    """Another live run holds the run folder."""


_held: dict[Path, int] = {}  # run folder -> open lock fd, in this process


def _lock(out: Path, run_id: str, world: int) -> None:
    """Take ``out/run.lock`` exclusively (flock: freed when the holder dies) and record the
    run in it; re-entrant within one process (in-process retries, tests)."""
    key = out.resolve()
    path = out / LOCK_FILE
    if key not in _held:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            try:
                h = json.loads(holder)
                holder = f"pid {h['pid']} on {h['host']}, {h['world']} ranks, since {h['started']}"
            except (ValueError, KeyError, TypeError):
                pass
            raise RunFolderBusy(
                f"{path}: the run folder is in use by another run ({holder}); give each run its "
                "own --out (two processes that should be one run: see docs/trainer.md, several "
                "ranks)"
            ) from None
        _held[key] = fd
    fd = _held[key]
    info = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "world": world,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    os.fsync(fd)


def release_run_folder(out: Path) -> None:
    """Give the run folder up (rank 0, at the end of a run)."""
    fd = _held.pop(Path(out).resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _sees_run(out: Path, run_id: str, rank: int, wait_s: float) -> None:
    """A rank other than 0 checks that it sees rank 0's lock (a shared run folder)."""
    path = out / LOCK_FILE
    deadline = time.monotonic() + wait_s
    found = None
    while True:
        try:
            found = json.loads(path.read_text()).get("run_id")
        except (OSError, ValueError):
            found = None
        if found == run_id or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if found != run_id:
        raise ValueError(
            f"{path}: rank {rank} sees {'another run' if found else 'no lock'} there, not rank "
            "0's; every rank needs the same run folder (a shared file system)"
        )


def own_run_folder(out: Path, rank: int, world: int, wait_s: float = 30.0) -> str:
    """Rank 0 takes the run folder for this run (refused in one line, on every rank, if a live
    run holds it); every other rank checks it sees the same folder. Returns the run id."""
    import uuid

    out = Path(out)
    run_id = on_rank0(lambda: uuid.uuid4().hex, rank, world)
    on_rank0(lambda: _lock(out, run_id, world), rank, world)
    agree(lambda: None if rank == 0 else _sees_run(out, run_id, rank, wait_s), world)
    return run_id

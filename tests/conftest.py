"""Shared fixtures.

Under ``pytest -n N`` (pytest-xdist, what ``make test`` runs) each worker is its own process.
Session fixtures that generate data build it once per run, by the first worker that asks, in a
folder every worker shares (a file lock guards it), and each worker's torch gets one thread so
that N workers do not oversubscribe the cores.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # before any test module imports torch; subprocesses (launchers, Ray) inherit it
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def once_per_run(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Any]) -> Any:
    """``make(folder)`` once per test run: per session without xdist, else once for all workers
    (its result is pickled beside the folder for the others)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(factory.mktemp(name))
    from filelock import FileLock

    shared = factory.getbasetemp().parent  # the run's folder, above each worker's own
    folder, result = shared / name, shared / f"{name}.pkl"
    with FileLock(str(shared / f"{name}.lock")):
        if not result.exists():
            folder.mkdir()
            result.write_bytes(pickle.dumps(make(folder)))
    return pickle.loads(result.read_bytes())


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """Small embedded default generated once per run.

    Layout: ``ROOT/body_models/smplh/{neutral,male,female}/model.npz`` (+ joint_regressors.npz)
    and ``ROOT/amass/...`` (small archive, seed 0). Read-only: copy before changing it.
    """
    from pipeline.synth import generate

    return once_per_run(tmp_path_factory, "synth", lambda d: generate(d, seed=0, small=True))


@pytest.fixture(scope="session")
def shipped_archive(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The full embedded motion archive as `make data` writes it (seed 0), generated once per
    run for the motion and statistics tests (read-only: copy before changing it)."""
    from pipeline.synth.archive import generate_archive

    return once_per_run(tmp_path_factory, "amass_full", lambda d: (d, generate_archive(d, seed=0)))

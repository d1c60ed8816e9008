"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """Small embedded default generated once per session.

    Layout: ``ROOT/body_models/smplh/{neutral,male,female}/model.npz`` (+ joint_regressors.npz)
    and, once pipeline.synth.archive exists, ``ROOT/amass/...`` (small archive, seed 0).
    """
    from pipeline.synth import generate

    return generate(tmp_path_factory.mktemp("synth"), seed=0, small=True)


@pytest.fixture(scope="session")
def shipped_archive(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The full embedded motion archive as `make data` writes it (seed 0), generated once per
    session for the motion and statistics tests (read-only: copy before changing it)."""
    from pipeline.synth.archive import generate_archive

    root = tmp_path_factory.mktemp("amass_full")
    return root, generate_archive(root, seed=0)

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

"""Embedded default: generated, licence-free assets in the real file formats.

- :mod:`pipeline.synth.body`: procedural SMPL+H-format body models
  (``DIR/body_models/smplh/{neutral,male,female}/model.npz`` + ``joint_regressors.npz``).
- :mod:`pipeline.synth.motion`: AMASS-format motion archive (``DIR/amass``).
- :mod:`pipeline.synth.preview`: montage PNG of posed generated bodies.

``python -m pipeline.synth --out DIR [--seed 0] [--small] [--body procedural|anny]
[--preview out.png]``; :func:`generate` is the same from Python.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ANNY_SMPLH = Path(__file__).resolve().parent.parent / "assets" / "anny" / "smplh"


def write_bodies(out: Path, body: str = "procedural", small: bool = False) -> list[Path]:
    """Write ``out/body_models/smplh/...`` from the procedural generator or the Anny assets.

    ``small`` meshes the procedural body on a coarser grid (faster; for tests).
    """
    dst = Path(out) / "body_models"
    if body == "anny":
        if not ANNY_SMPLH.is_dir():
            raise FileNotFoundError(f"{ANNY_SMPLH}: Anny SMPL+H assets are not installed")
        shutil.copytree(ANNY_SMPLH, dst / "smplh", dirs_exist_ok=True)
        return sorted((dst / "smplh").rglob("*.npz"))
    if body != "procedural":
        raise ValueError(f"unknown body source {body!r} (use 'procedural' or 'anny')")
    from pipeline.synth.body import write_body_models

    if small:
        return write_body_models(dst, voxel=0.007, target_vertices=3000)
    return write_body_models(dst)


def write_archive(out: Path, seed: int = 0, small: bool = False) -> list[Path]:
    """AMASS-format archive ``out/amass`` via :mod:`pipeline.synth.motion` (if present)."""
    try:
        from pipeline.synth.motion import generate_archive
    except ImportError:
        print("pipeline.synth.motion is not available yet: skipping the AMASS archive")
        return []
    return generate_archive(Path(out) / "amass", seed=seed, small=small)


def generate(out: Path, seed: int = 0, small: bool = False, body: str = "procedural") -> Path:
    """Write the embedded default (body models and motion archive) under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_bodies(out, body=body, small=small)
    write_archive(out, seed=seed, small=small)
    return out

"""Embedded default: licence-free assets in the real file formats.

- Body models: the shipped Anny-derived SMPL+H files (``pipeline/assets/anny/smplh``, see
  docs/anny.md), copied to ``DIR/body_models/smplh/{neutral,male,female}/model.npz`` +
  ``joint_regressors.npz``.
- a generated AMASS-format motion archive (``DIR/amass``): :mod:`pipeline.synth.archive` writes
  the clips of :mod:`pipeline.synth.moves` (choreographies, ``MOTIONS``) in a subject's
  :mod:`pipeline.synth.style`, posed on :mod:`pipeline.synth.skeleton` (joint names and groups:
  :mod:`pipeline.synth.joint_names`); val and test subjects perform only held-out kinds
  (:mod:`pipeline.synth.kinds`).
- ``DIR/amass_inkind``: two more subjects, in no split of ``DIR/amass``, performing train kinds
  (the in-kind reference that held-out-kind figures are read beside).
- :mod:`pipeline.synth.preview`: PNGs of the bodies over the motions, and of the motions.

``python -m pipeline.synth --out DIR [--seed 0] [--small] [--preview out.png]``;
:func:`generate` is the same from Python. ``python -m pipeline.synth motions ...`` writes (or
draws) the motion archive alone, ``... stats ...`` prints its statistics.
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: Body-model folder of the shipped Anny-derived SMPL+H models (holds ``smplh/``).
SHIPPED_BODY_MODELS = Path(__file__).resolve().parent.parent / "assets" / "anny"


def write_bodies(out: Path) -> list[Path]:
    """Copy the shipped SMPL+H-format body models to ``out/body_models/smplh/``."""
    src, dst = SHIPPED_BODY_MODELS / "smplh", Path(out) / "body_models" / "smplh"
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: the shipped SMPL+H body models are missing")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return sorted(dst.rglob("*.npz"))


def generate(out: Path, seed: int = 0, small: bool = False) -> Path:
    """Write the embedded default (body models, then the motion archive planted with them)
    under ``out``; ``small`` writes a few short clips (tests)."""
    # heavy (torch, smplx, scipy) and a real cycle: archive imports SHIPPED_BODY_MODELS from here
    from pipeline.synth.archive import generate_archive, generate_inkind

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_bodies(out)
    generate_archive(out / "amass", seed=seed, small=small)
    generate_inkind(out / "amass_inkind", seed=seed, small=small, body_models=out / "body_models")
    return out

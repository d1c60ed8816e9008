"""Build settings and the build's failures: :class:`BuildConfig` (typed defaults, then
``--config``, the flags, ``--set``), :func:`load_config`, and the exception per failure kind with
its exit code (docs/build.md, "Exit codes").

Imports nothing from the other build stages, so each of them (and ``pipeline.build.doctor``) can
import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pipeline.body_models import MODEL_TYPES
from pipeline.plan import PlanConfig
from pipeline.process import RenderConfig
from shards.config import ConfigError, Field, Section, load
from shards.writer import COMPRESSIONS


class BuildError(Exception):
    """A build failure reported as one ``error:`` line; ``exit_code`` is the process's."""

    exit_code = 1


class PreflightError(BuildError):
    """Bad input detected before any work started (exit 2)."""

    exit_code = 2


class UnitFailed(BuildError):
    """A work unit kept failing, or Ray lost it (exit 1); finished units are kept, a rerun
    resumes."""

    exit_code = 1


class NodeMismatch(BuildError):
    """A cluster node sees other inputs or another output folder than the driver (exit 3)."""

    exit_code = 3


class FinishError(BuildError):
    """The final checks failed (exit 4); no manifest is left in the folder."""

    exit_code = 4


class BuildOptions(Section):
    """How the build runs (the ``build`` section of a build config)."""

    model_type: Literal[MODEL_TYPES] = "smplh"  # body-model family; others' sequences skipped
    max_retries: int = Field(3, ge=0)  # Ray task retries (worker crash or exception)
    #: shard compression (``shards.writer.COMPRESSIONS``); blosc-lz4hc:1 writes as fast as
    #: blosc-lz4 and is 17% smaller (shards/SCHEMA.md)
    compression: Literal[COMPRESSIONS] = "blosc-lz4hc:1"
    #: also store float16 ``mesh/vertices`` (schema 1's 41 KB per mesh); schema 2 recomputes
    #: them from the body parameters with the skinning arrays topology.h5 carries
    store_vertices: bool = False


class BuildConfig(Section):
    """A build config: sampling plan, per-view rendering, how the build runs. The defaults
    are what ``make shards`` builds on the embedded default."""

    plan: PlanConfig = PlanConfig()
    render: RenderConfig = RenderConfig()
    build: BuildOptions = BuildOptions()


#: CLI flags that set one config value each (``--meshes 300`` = ``--set plan.meshes=300``).
FLAG_KEYS = {
    "meshes": "plan.meshes",
    "seed": "plan.seed",
    "unit_size": "plan.unit_size",
    "views": "render.views",
    "res": "render.res",
    "masks": "render.masks",
}


def load_config(
    path: Path | None, flags: dict | None = None, overrides: list[str] | None = None
) -> dict:
    """The build config as a plain dict: defaults, the YAML file at ``path``, the CLI
    ``flags`` (:data:`FLAG_KEYS`, ``None`` = not given), then ``--set`` ``overrides``."""
    sets = [f"{key}={flags[f]}" for f, key in FLAG_KEYS.items() if (flags or {}).get(f) is not None]
    sets += list(overrides or ())
    try:
        return load(BuildConfig, path, sets).model_dump()
    except ConfigError as e:
        raise PreflightError(str(e)) from None

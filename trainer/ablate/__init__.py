"""The supplementary's ablations (Tables 2, 3, 4) in one command, beside the paper's numbers.

``python -m trainer ablate --data DIR --data-hires DIR_HI --out OUT``:

- Table 2, number of pre-training views: ``data.views`` = ``[0]``, ``[0,1]``, ``[0,1,2,3]``,
  ``all`` on one 8-view build (the rig's views 0-3 are Human3.6M's cameras, 4-7 interpolated);
- Table 3, heatmap resolution: the same model on ``--data`` and on ``--data-hires`` (a build at a
  higher ``R``; the paper compares 112 with 224, a CPU compares e.g. 56 with 112);
- Table 4, input features: ``model.input`` = ``masks`` vs ``heatmaps`` on a build with masks.

Every run of every table trains on the same number of samples (``--samples``; steps = samples /
batch size), once per seed, and is evaluated on the val split (all views); with
``--h36m-3d/--h36m-2d`` also zero-shot on Human3.6M through ``python -m trainer eval-h36m``
when that command exists. A run is identified by its whole training config and the dataset's
manifest (less its ``created`` stamp): one run can serve several tables (8 views = heatmaps =
low resolution), a finished run is never redone, a killed one resumes from its checkpoint.
Writes ``OUT/ABLATIONS.md``, ``OUT/results.json`` and one PNG per table.

Three rooms: :mod:`~trainer.ablate.plan` (rows, runs, budgets), :mod:`~trainer.ablate.run`
(training and evaluation, resumable) and :mod:`~trainer.ablate.report` (statistics, verdicts,
Markdown, PNGs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trainer import distributed as dist
from trainer.ablate.plan import Plan, make_plan
from trainer.ablate.report import report
from trainer.ablate.run import H36M, execute


def ablate(
    data: str | Path,
    out: str | Path,
    data_hires: str | Path | None = None,
    command: str = "python -m trainer ablate",
    h36m: H36M | None = None,
    keep_checkpoints: bool = False,
    log: Callable[[str], None] = print,
    **plan_kw,
) -> tuple[Plan, dict[str, dict], Path]:
    """Plan, run what is not done yet, and write the report; (plan, results, ABLATIONS.md)."""
    plan = make_plan(data, data_hires, **plan_kw)
    Path(out).mkdir(parents=True, exist_ok=True)
    results = execute(plan, out, h36m=h36m, keep_checkpoints=keep_checkpoints, log=log)
    if dist.detect().rank:  # another rank of a launched job: rank 0 writes the report
        return plan, results, Path(out) / "ABLATIONS.md"
    return plan, results, report(plan, results, out, command)

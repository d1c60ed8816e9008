"""Planning the ablations: which runs each table's rows need, on equal sample budgets.

A table is rows (a label, the paper's row beside it, one run per seed); a row is a set of
config overrides on a dataset. A run is identified by its whole training config and the
dataset's identity (:func:`shards.manifest.manifest_identity`), so one run can serve several
tables (8 views = heatmaps = low resolution). :data:`SAMPLES` and :data:`SEEDS` are the
defaults of ``python -m trainer ablate`` and ``make ablations``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shards.manifest import load_manifest
from trainer.config import load_config

SAMPLES = 7680  # training samples per run (steps x batch size)
SEEDS = (0, 1, 2)  # every row: mean and s.d. over these seeds
QUICK_BATCHES = 4  # --quick: 4 batches per run, one seed, 64 evaluation samples
QUICK_EVAL_SAMPLES = 64
TABLES = {
    "2": ("views", "Table 2. Number of pre-training views", "Number of views"),
    "3": ("resolution", "Table 3. Resolution of the pose heatmaps", "Resolution"),
    "4": ("input", "Table 4. Input features", "Input features"),
}
VIEW_SETS = {"1": "[0]", "2": "[0,1]", "4": "[0,1,2,3]", "8": "all"}
#: Table 2's budget (``views_budget``): ``samples-each`` (every listed view of a mesh is a
#: sample; every row ``samples``), ``equal-samples`` (one random listed view per mesh per epoch,
#: ``data.view_choice=random``; every row ``samples``), ``equal-epochs`` (every listed view; a
#: row of N views trains N x ``samples``: equal epochs over (mesh, view) pairs, the seed's)
VIEWS_BUDGETS = ("samples-each", "equal-samples", "equal-epochs")


@dataclass
class Run:
    """One training run: a config on a dataset; shared by every table row that needs it."""

    key: str  # sha256 of the training config and the dataset's manifest
    name: str  # readable folder name: what varies, seed, key prefix
    cfg: dict
    data: Path
    eval_samples: int | None = None  # val samples to evaluate on (None: the whole split)

    @property
    def samples(self) -> int:
        return int(self.cfg["train"]["steps"]) * int(self.cfg["train"]["batch_size"])


@dataclass
class Row:
    """One row of a table: a label, the paper's row it stands beside, one run per seed."""

    label: str
    paper: str
    runs: list[str] = field(default_factory=list)  # run keys, one per seed


@dataclass
class Plan:
    """Every table's rows and the distinct runs behind them."""

    tables: dict[str, list[Row]]  # "views" | "resolution" | "input" -> rows
    runs: dict[str, Run]
    seeds: list[int]
    samples: int
    eval_samples: int | None
    notes: dict[str, str] = field(default_factory=dict)
    views_budget: str = "samples-each"  # Table 2's budget (:data:`VIEWS_BUDGETS`)


def run_key(cfg: dict, data: Path) -> str:
    """Identity of a training run: its config (evaluation settings aside) and its dataset
    (:func:`shards.manifest.manifest_identity`, as the checkpoints of ``train`` check it)."""
    train_cfg = {k: v for k, v in cfg.items() if k != "eval"}
    blob = json.dumps([train_cfg, load_manifest(data).identity], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def dims(data: Path) -> dict:
    """The dataset's dims (V, R, masks, ...) from its manifest."""
    return load_manifest(data).dims


def views_label(views, choice: str = "each") -> str:
    """``all`` or the view digits (``0123``), prefixed ``r`` for one random view per mesh."""
    label = "all" if views in (None, "all") else "".join(str(v) for v in views)
    return ("r" if choice == "random" else "") + label


def apply_budget(cfg: dict, samples: int) -> None:
    """Set ``train.steps`` so that steps x batch size is exactly ``samples``."""
    batch = int(cfg["train"]["batch_size"])
    if samples <= 0 or samples % batch:
        raise ValueError(
            f"--samples {samples} is not a positive multiple of train.batch_size {batch}"
        )
    cfg["train"]["steps"] = samples // batch


def row_samples(plan: Plan, table: str, row: Row) -> int:
    """Samples each run of ``row`` must train: ``plan.samples``, times the row's number of
    views for Table 2 under ``equal-epochs``."""
    if table == "views" and plan.views_budget == "equal-epochs":
        return plan.samples * int(row.label)
    return plan.samples


def check_equal_budgets(plan: Plan) -> None:
    """Every row of a table must train on the same number of samples (steps x batch size);
    under ``equal-epochs`` Table 2's rows on ``samples`` x their views."""
    for table, rows in plan.tables.items():
        if table == "views" and plan.views_budget == "equal-epochs":
            for row in rows:
                got = {plan.runs[k].samples for k in row.runs}
                if got != {row_samples(plan, table, row)}:
                    raise ValueError(
                        f"table 'views' row {row.label}: budgets {sorted(got)}, not"
                        f" {row_samples(plan, table, row)} (equal epochs over mesh-view pairs)"
                    )
            continue
        budgets = {plan.runs[k].samples for row in rows for k in row.runs}
        if len(budgets) > 1:
            raise ValueError(
                f"table {table!r}: unequal sample budgets {sorted(budgets)} "
                "(train.steps x train.batch_size must match across its rows)"
            )


def make_plan(
    data: str | Path,
    data_hires: str | Path | None = None,
    config: str | Path | None = "configs/demo.yaml",
    overrides: Sequence[str] = (),
    hires_overrides: Sequence[str] = (),
    tables: Sequence[str] = ("2", "3", "4"),
    seeds: Sequence[int] = SEEDS,
    samples: int = SAMPLES,
    eval_samples: int | None = None,
    views_budget: str = "samples-each",
) -> Plan:
    """The rows of the requested tables and their distinct runs (one per config x data x seed).

    ``overrides`` apply to every run, ``hires_overrides`` to the high-resolution row of Table 3
    only (e.g. an encoder with one more stride-2 stage); ``train.steps`` comes from ``samples``
    (Table 2: per ``views_budget``, :data:`VIEWS_BUDGETS`).
    """
    data = Path(data)
    if views_budget not in VIEWS_BUDGETS:
        raise ValueError(f"views budget {views_budget!r}: choose among {', '.join(VIEWS_BUDGETS)}")
    bad = sorted(set(tables) - set(TABLES))
    if bad:
        raise ValueError(f"unknown tables {bad}; choose among 2, 3, 4")
    if not seeds:
        raise ValueError("no seeds given")
    if any(o.split("=", 1)[0].strip() in ("train.steps", "train.seed") for o in overrides):
        raise ValueError("set the budget with --samples and the seeds with --seeds, not --set")
    d = dims(data)
    specs: dict[str, list[tuple[str, str, Path, list[str]]]] = {}  # table -> rows
    if "2" in tables:
        views = int(d["V"])
        if views < 8:
            raise ValueError(f"{data}: Table 2 needs an 8-view build, this one has {views} views")
        choice = "random" if views_budget == "equal-samples" else "each"
        specs["views"] = [
            (n, n, data, [f"data.views={v}", f"data.view_choice={choice}", "model.input=heatmaps"])
            for n, v in VIEW_SETS.items()
        ]
    if "3" in tables:
        if data_hires is None:
            raise ValueError("Table 3 needs --data-hires (a build at a higher R); or drop table 3")
        data_hires = Path(data_hires)
        lo, hi = int(d["R"]), int(dims(data_hires)["R"])
        if hi <= lo:
            raise ValueError(f"--data-hires {data_hires}: R={hi} is not above --data's R={lo}")
        base = ["data.views=all", "model.input=heatmaps"]
        specs["resolution"] = [
            (f"{lo} × {lo}", "112", data, base),
            (f"{hi} × {hi}", "224", data_hires, base + list(hires_overrides)),
        ]
    if "4" in tables:
        if not int(d.get("masks", 0)):
            raise ValueError(
                f"{data}: Table 4 needs masks; build it with --masks 1, or drop table 4"
            )
        specs["input"] = [
            ("Binary human mask", "masks", data, ["data.views=all", "model.input=masks"]),
            ("2D pose heatmaps", "heatmaps", data, ["data.views=all", "model.input=heatmaps"]),
        ]
    runs: dict[str, Run] = {}
    plan_tables: dict[str, list[Row]] = {}
    plan = Plan(plan_tables, runs, [int(s) for s in seeds], samples, eval_samples)
    plan.views_budget = views_budget
    for table, rows in specs.items():
        plan_tables[table] = []
        for label, paper, row_data, row_sets in rows:
            row = Row(label, paper)
            for seed in seeds:
                cfg = load_config(config, list(overrides) + row_sets)
                cfg["train"]["seed"] = int(seed)
                apply_budget(cfg, row_samples(plan, table, row))
                key = run_key(cfg, row_data)
                if key not in runs:
                    res = int(dims(row_data)["R"])
                    name = (
                        f"v{views_label(cfg['data']['views'], cfg['data']['view_choice'])}"
                        f"-{cfg['model']['input']}"
                        f"-r{res}-s{seed}-{key[:10]}"
                    )
                    runs[key] = Run(key, name, cfg, row_data, eval_samples)
                row.runs.append(key)
            plan_tables[table].append(row)
    if "views" in plan_tables and views_budget != "samples-each":
        plan.notes["views"] = f"views budget {views_budget}: " + (
            f"one random listed view per mesh per epoch, {samples} samples per row"
            if views_budget == "equal-samples"
            else f"{samples} samples per view (N views: N x {samples}), every listed view"
        )
    if "resolution" in plan_tables:
        plan.notes["resolution"] = f"CPU stand-in: {lo} vs {hi} for the paper's 112 vs 224; " + (
            f"high-resolution row also with {' '.join(hires_overrides)}"
            if hires_overrides
            else "same model config on both"
        )
    check_equal_budgets(plan)
    return plan

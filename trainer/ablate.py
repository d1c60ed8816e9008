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
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from cameras.plotting import save_figure
from shards.atomic import write_atomic
from shards.manifest import load_manifest
from trainer import distributed as dist
from trainer.checkpoint import CKPT_DIR, MODEL_FILE, restart_if_stale
from trainer.config import load_config
from trainer.evaluate import evaluate
from trainer.train import train

RESULT_FILE = "result.json"
RUNS_DIR = "runs"
METRICS = ("mpjpe", "pa_mpjpe")
METRIC_LABELS = {"mpjpe": "MPJPE ↓", "pa_mpjpe": "PA-MPJPE ↓"}
QUICK_BATCHES = 4  # --quick: 4 batches per run, one seed, 64 evaluation samples
QUICK_EVAL_SAMPLES = 64

# The supplementary's numbers (mm, Human3.6M). Table 2: the pre-trained model without
# fine-tuning; Tables 3 and 4: after fine-tuning on a mixture of 2D and 3D datasets.
PAPER: dict[str, dict[str, tuple[float, float]]] = {
    "views": {"1": (92.5, 61.7), "2": (89.5, 61.4), "4": (89.0, 58.4), "8": (88.3, 58.2)},
    "resolution": {"112": (46.5, 32.7), "224": (45.3, 31.7)},
    "input": {"masks": (55.6, 35.4), "heatmaps": (45.3, 31.7)},
}
TABLES = {
    "2": ("views", "Table 2. Number of pre-training views", "Number of views"),
    "3": ("resolution", "Table 3. Resolution of the pose heatmaps", "Resolution"),
    "4": ("input", "Table 4. Input features", "Input features"),
}
CLAIMS = {
    "views": "more views are better",
    "resolution": "a higher resolution is no worse (slightly better)",
    "input": "heatmaps beat binary masks",
}
VIEW_SETS = {"1": "[0]", "2": "[0,1]", "4": "[0,1,2,3]", "8": "all"}


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


def run_key(cfg: dict, data: Path) -> str:
    """Identity of a training run: its config (evaluation settings aside) and its dataset
    (:func:`shards.manifest.manifest_identity`, as the checkpoints of ``train`` check it)."""
    train_cfg = {k: v for k, v in cfg.items() if k != "eval"}
    blob = json.dumps([train_cfg, load_manifest(data).identity], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def dims(data: Path) -> dict:
    """The dataset's dims (V, R, masks, ...) from its manifest."""
    return load_manifest(data).dims


def views_label(views) -> str:
    return "all" if views in (None, "all") else "".join(str(v) for v in views)


def apply_budget(cfg: dict, samples: int) -> None:
    """Set ``train.steps`` so that steps x batch size is exactly ``samples``."""
    batch = int(cfg["train"]["batch_size"])
    if samples <= 0 or samples % batch:
        raise ValueError(
            f"--samples {samples} is not a positive multiple of train.batch_size {batch}"
        )
    cfg["train"]["steps"] = samples // batch


def check_equal_budgets(plan: Plan) -> None:
    """Every row of a table must train on the same number of samples (steps x batch size)."""
    for table, rows in plan.tables.items():
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
    seeds: Sequence[int] = (0,),
    samples: int = 7680,
    eval_samples: int | None = None,
) -> Plan:
    """The rows of the requested tables and their distinct runs (one per config x data x seed).

    ``overrides`` apply to every run, ``hires_overrides`` to the high-resolution row of Table 3
    only (e.g. an encoder with one more stride-2 stage); ``train.steps`` comes from ``samples``.
    """
    data = Path(data)
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
        specs["views"] = [
            (n, n, data, [f"data.views={v}", "model.input=heatmaps"]) for n, v in VIEW_SETS.items()
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
    for table, rows in specs.items():
        plan_tables[table] = []
        for label, paper, row_data, row_sets in rows:
            row = Row(label, paper)
            for seed in seeds:
                cfg = load_config(config, list(overrides) + row_sets)
                cfg["train"]["seed"] = int(seed)
                apply_budget(cfg, samples)
                key = run_key(cfg, row_data)
                if key not in runs:
                    res = int(dims(row_data)["R"])
                    name = (
                        f"v{views_label(cfg['data']['views'])}-{cfg['model']['input']}"
                        f"-r{res}-s{seed}-{key[:10]}"
                    )
                    runs[key] = Run(key, name, cfg, row_data, eval_samples)
                row.runs.append(key)
            plan_tables[table].append(row)
    plan = Plan(plan_tables, runs, [int(s) for s in seeds], samples, eval_samples)
    if "resolution" in plan_tables:
        plan.notes["resolution"] = f"CPU stand-in: {lo} vs {hi} for the paper's 112 vs 224; " + (
            f"high-resolution row also with {' '.join(hires_overrides)}"
            if hires_overrides
            else "same model config on both"
        )
    check_equal_budgets(plan)
    return plan


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (a killed write leaves no half file)."""
    write_atomic(path, json.dumps(obj, indent=2, default=str))


def ranks(plan: Plan) -> tuple[int, int]:
    """(rank, world size): (0, 1) for one process; under a launcher the process group is
    started here (with the first run's ``train.dist_timeout_s``) for rank 0's decisions."""
    if dist.detect().world == 1 or not plan.runs:
        return 0, 1
    r = dist.start(float(next(iter(plan.runs.values())).cfg["train"]["dist_timeout_s"]))
    return r.rank, r.world


def finished(run_dir: Path, key: str) -> dict | None:
    """The run's result if it is finished and its model is still there."""
    res = read_result(run_dir, key)
    return res if res is not None and (run_dir / MODEL_FILE).exists() else None


def read_result(run_dir: Path, key: str) -> dict | None:
    """The finished result of the run ``key`` in ``run_dir``, or None."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return res if res.get("key") == key and "val" in res else None


def eval_key(run: Run) -> str:
    """What a finished run's evaluation depends on (results with another key are re-evaluated;
    ``per_view``: results carry the per-camera breakdown)."""
    return json.dumps(
        {"split": run.cfg["data"]["val_split"], "max": run.eval_samples, "per_view": 1}
    )


# ---------------------------------------------------------------- Human3.6M zero-shot hook


@dataclass
class H36M:
    """Files (and options) for ``python -m trainer eval-h36m`` (trainer/h36m.py)."""

    file_3d: Path
    file_2d: Path
    stride: int | None = None
    noise_px: float = 10.0  # also evaluated with this much 2D noise (0: clean only)

    def key(self) -> str:
        parts = [self.stride, self.noise_px]
        for f in (self.file_3d, self.file_2d):
            st = f.stat()
            parts += [str(f.resolve()), st.st_size, st.st_mtime_ns]
        return json.dumps(parts)


def h36m_overall(res: dict) -> dict[str, float]:
    """The model's MPJPE / PA-MPJPE over all frames from ``evaluate_h36m``'s result."""
    for key in ("all", "overall"):
        c = (res.get(key) or {}).get("model")
        if isinstance(c, dict) and all(isinstance(c.get(m), int | float) for m in METRICS):
            return {m: float(c[m]) for m in METRICS}
    raise ValueError("eval-h36m result has no all.model.mpjpe / pa_mpjpe")


def h36m_applies(run: Run) -> bool:
    """eval-h36m renders heatmaps from 2D keypoints: it cannot feed a masks model."""
    return run.cfg["model"]["input"] == "heatmaps"


def eval_h36m(run_dir: Path, data: Path, h36m: H36M) -> dict:
    """``trainer.h36m.evaluate_h36m`` on a finished run: its result + the overall figures."""
    from trainer.h36m import evaluate_h36m

    kw = {} if h36m.stride is None else {"stride": h36m.stride}
    res = evaluate_h36m(run_dir, data, h36m.file_3d, h36m.file_2d, **kw)
    out = {"key": h36m.key(), "overall": h36m_overall(res), "raw": res}
    if h36m.noise_px > 0:  # imperfect 2D: seeded Gaussian noise on the keypoints (seed 0)
        noisy = evaluate_h36m(
            run_dir, data, h36m.file_3d, h36m.file_2d, noise_px=h36m.noise_px, **kw
        )
        out |= {"noise_px": float(h36m.noise_px), "noisy": h36m_overall(noisy)}
    return out


# ---------------------------------------------------------------- running


def execute(
    plan: Plan,
    out: str | Path,
    h36m: H36M | None = None,
    keep_checkpoints: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Train and evaluate every run of ``plan`` that has no finished result; all results by key.

    A run folder holds its config's identity in its name; its ``result.json`` is written last
    (atomically), so a run killed before it resumes from its checkpoint on the next invocation.
    Checkpoints of a finished run are removed unless ``keep_checkpoints`` (``model.pt`` stays).
    Under a launcher every rank trains; rank 0 decides what to do, evaluates and writes (the
    other ranks' results are empty).
    """
    rank, world = ranks(plan)
    log = log if rank == 0 else (lambda _: None)
    root = Path(out) / RUNS_DIR
    results: dict[str, dict] = {}
    todo = len(plan.runs)
    for i, run in enumerate(plan.runs.values(), 1):
        run_dir = root / run.name
        res = dist.on_rank0(partial(finished, run_dir, run.key), rank, world)
        what = f"[{i}/{todo}] {run.name}"
        if res is None or res.get("eval_key") != eval_key(run):
            t0 = time.perf_counter()
            steps = run.cfg["train"]["steps"]
            if res is None:
                log(f"{what}: training {steps} steps x {run.cfg['train']['batch_size']}")
                summary = restart_if_stale(
                    partial(train, run.cfg, run.data, run_dir),
                    run_dir,
                    rank,
                    lambda err, what=what: log(f"{what}: {err}; starting it afresh"),
                )
                summary["wall_s"] = time.perf_counter() - t0
                if rank:  # evaluation, results and clean-up on rank 0
                    continue
            else:
                log(f"{what}: evaluating again (evaluation settings changed)")
                summary = res["train"]
            t1 = time.perf_counter()
            n_eval = sys.maxsize if run.eval_samples is None else int(run.eval_samples)
            val = evaluate(
                run_dir, run.data, split=run.cfg["data"]["val_split"], max_samples=n_eval
            )
            res = {
                "key": run.key,
                "eval_key": eval_key(run),
                "name": run.name,
                "data": str(run.data),
                "config": run.cfg,
                "train": summary,
                "val": val,
                "eval_s": time.perf_counter() - t1,
            }
            write_json(run_dir / RESULT_FILE, res)
            log(
                f"{what}: val MPJPE {val['model']['mpjpe']:.1f}, PA-MPJPE "
                f"{val['model']['pa_mpjpe']:.1f} mm ({time.perf_counter() - t0:.0f} s)"
            )
        else:
            log(f"{what}: done before, kept")
        if (
            h36m is not None
            and h36m_applies(run)
            and (res.get("h36m") or {}).get("key") != h36m.key()
        ):
            log(f"{what}: Human3.6M zero-shot evaluation")
            res["h36m"] = eval_h36m(run_dir, run.data, h36m)
            write_json(run_dir / RESULT_FILE, res)
        if not keep_checkpoints and (run_dir / MODEL_FILE).exists():
            shutil.rmtree(run_dir / CKPT_DIR, ignore_errors=True)
        results[run.key] = res
        gc.collect()  # drop the finished engine and its loader workers before the next run
    return results


# ---------------------------------------------------------------- tables


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def summarize(plan: Plan, results: dict[str, dict]) -> dict[str, list[dict]]:
    """Per table and row: per-seed values, mean and s.d. of each metric (val, and H36M if any)."""
    out: dict[str, list[dict]] = {}
    for table, rows in plan.tables.items():
        out[table] = []
        for row in rows:
            res = [results[k] for k in row.runs]
            entry = {"label": row.label, "paper": row.paper, "runs": [r["name"] for r in res]}
            for source in ("val", "h36m", "h36m_noisy"):
                if source == "val":
                    vals = [r["val"]["model"] for r in res]
                elif source == "h36m" and all("h36m" in r for r in res):
                    vals = [r["h36m"]["overall"] for r in res]
                elif source == "h36m_noisy" and all("noisy" in r.get("h36m", {}) for r in res):
                    vals = [r["h36m"]["noisy"] for r in res]
                    entry["h36m_noise_px"] = res[0]["h36m"]["noise_px"]
                else:
                    continue
                for m in METRICS:
                    xs = [float(v[m]) for v in vals]
                    mean, sd = mean_sd(xs)
                    entry[f"{source}_{m}"] = {"values": xs, "mean": mean, "sd": sd}
            entry["mean_mesh"] = {m: res[0]["val"]["mean_mesh"][m] for m in METRICS}
            if table == "views" and all("per_view" in r["val"] for r in res):
                entry["cameras"] = _seen_unseen(res)
            out[table].append(entry)
    return out


def _seen_unseen(res: list[dict]) -> dict[str, dict]:
    """Per seed, each metric over the val samples of the cameras a run was trained on
    ("seen") and of the others ("unseen"); mean and s.d. over seeds (unseen absent for a run
    trained on every view)."""
    out: dict[str, dict] = {}
    for group in ("seen", "unseen"):
        for m in METRICS:
            xs = []
            for r in res:
                trained = r["config"]["data"].get("views")
                pv = r["val"]["per_view"]
                pick = [
                    v
                    for v in pv
                    if (trained in (None, "all") or int(v) in trained) == (group == "seen")
                ]
                n = sum(pv[v]["samples"] for v in pick)
                if n:
                    xs.append(sum(pv[v][m] * pv[v]["samples"] for v in pick) / n)
            if xs:
                mean, sd = mean_sd(xs)
                out[f"{group}_{m}"] = {"values": xs, "mean": mean, "sd": sd}
    return out


def _cameras_table(rows: list[dict]) -> list[str]:
    """Table 2's runs split by camera: on the views they were trained on and on the others."""
    if not all("cameras" in r for r in rows):
        return []
    cols = ["Number of views", "MPJPE, trained views", "MPJPE, other views"]
    cols += ["PA-MPJPE, trained views", "PA-MPJPE, other views"]
    lines = ["", "Per camera (val split, same runs):", "", "| " + " | ".join(cols) + " |"]
    lines.append("| " + " | ".join(["---"] * len(cols)) + " |")
    for r in rows:
        c = r["cameras"]
        cells = [r["label"]]
        for m in METRICS:
            cells += [fmt(c[f"{g}_{m}"]) if f"{g}_{m}" in c else "—" for g in ("seen", "unseen")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def fmt(cell: dict) -> str:
    return f"{cell['mean']:.1f}" if cell["sd"] is None else f"{cell['mean']:.1f} ± {cell['sd']:.1f}"


def compare(a: dict, b: dict) -> tuple[float, float | None]:
    """Mean of ``a`` minus mean of ``b`` and the standard error of that difference."""
    diff = a["mean"] - b["mean"]
    if a["sd"] is None or b["sd"] is None:
        return diff, None
    return diff, math.sqrt(a["sd"] ** 2 / len(a["values"]) + b["sd"] ** 2 / len(b["values"]))


def verdict(table: str, rows: list[dict], source: str = "val") -> str:
    """Whether the paper's direction holds here, per metric, judged against the seed spread.

    Table 2 compares 1 view with 8 (and reports whether the means fall monotonically), Table 3
    low with high resolution ("no worse" unless worse by more than 2 s.e.), Table 4 masks with
    heatmaps. ``diff`` is worse-expected minus better-expected row: positive = the paper's way.
    """
    worse, better = rows[0], rows[-1]
    parts = []
    for m in METRICS:
        k = f"{source}_{m}"
        diff, se = compare(worse[k], better[k])
        if se is None:
            call = "one seed, no spread to judge it against"
        elif table == "resolution":
            call = (
                "better beyond 2 s.e."
                if diff > 2 * se
                else (
                    "worse beyond 2 s.e.: does not hold"
                    if diff < -2 * se
                    else "within 2 s.e.: no worse, holds"
                )
            )
        elif diff > 2 * se:
            call = "holds, beyond 2 s.e."
        elif diff < -2 * se:
            call = "reversed, beyond 2 s.e."
        else:
            call = "within 2 s.e.: not resolved"
        spread = "" if se is None else f" (s.e. {se:.1f})"
        way = "lower" if diff >= 0 else "higher"
        parts.append(f"{METRIC_LABELS[m].rstrip(' ↓')} {abs(diff):.1f} mm {way}{spread}: {call}")
    pair = f"{better['label']} against {worse['label']}"
    text = f"Paper: {CLAIMS[table]}. Here, {pair}: " + "; ".join(parts) + "."
    if table == "views":
        for m in METRICS:
            means = [r[f"{source}_{m}"]["mean"] for r in rows]
            mono = all(x > y for x, y in zip(means, means[1:]))
            name = METRIC_LABELS[m].rstrip(" ↓")
            text += f" {name} means {'do' if mono else 'do not'} fall at every step."
    return text


def markdown(
    plan: Plan, summary: dict[str, list[dict]], command: str, figures: dict[str, str]
) -> str:
    """ABLATIONS.md: one table per ablation laid out as the paper's, its numbers beside."""
    any_run = next(iter(plan.runs.values()))
    t = any_run.cfg["train"]
    n = len(plan.seeds)
    spread = (
        f"mean ± s.d. over {n} seeds ({', '.join(map(str, plan.seeds))})"
        if n > 1
        else f"seed {plan.seeds[0]}"
    )
    ev = plan.eval_samples or "all"
    lines = [
        "# Ablations: the supplementary's Tables 2, 3 and 4",
        "",
        f"Made by `{command}`.",
        "",
        f"Every run trains on {plan.samples:,} samples ({t['steps']} steps x {t['batch_size']}), "
        f"{len(plan.runs)} distinct runs in all; figures are val-split MPJPE / PA-MPJPE in mm "
        f"(H36M-14 joints regressed from the predicted mesh, all views, {ev} samples), {spread}. "
        "The paper's columns are Human3.6M numbers (Table 2: pre-trained model, no fine-tuning; "
        "Tables 3 and 4: after fine-tuning on 2D + 3D datasets), beside ours for direction, not "
        "for scale.",
    ]
    for table, rows in summary.items():
        num = next(k for k, v in TABLES.items() if v[0] == table)
        _, title, head = TABLES[num]
        h36m = any("h36m_mpjpe" in r for r in rows)
        # Table 2 asks about unseen cameras and imperfect 2D: Human3.6M with noise too
        noisy = table == "views" and any("h36m_noisy_mpjpe" in r for r in rows)
        cols = [head, "MPJPE ↓", "PA-MPJPE ↓"]
        if h36m:
            cols += ["H36M MPJPE ↓", "H36M PA-MPJPE ↓"]
        if noisy:
            px = next(r["h36m_noise_px"] for r in rows if "h36m_noise_px" in r)
            cols += [f"H36M MPJPE, {px:g} px noise ↓", f"H36M PA-MPJPE, {px:g} px noise ↓"]
        cols += ["paper MPJPE ↓", "paper PA-MPJPE ↓"]
        lines += ["", f"## {title}", "", "| " + " | ".join(cols) + " |"]
        lines.append("| " + " | ".join(["---"] * len(cols)) + " |")
        for r in rows:
            p = PAPER[table][r["paper"]]
            cells = [r["label"], fmt(r["val_mpjpe"]), fmt(r["val_pa_mpjpe"])]
            if h36m:  # eval-h36m cannot feed a masks model
                cells += [fmt(r[k]) if k in r else "—" for k in ("h36m_mpjpe", "h36m_pa_mpjpe")]
            if noisy:
                keys = ("h36m_noisy_mpjpe", "h36m_noisy_pa_mpjpe")
                cells += [fmt(r[k]) if k in r else "—" for k in keys]
            tag = f" ({r['paper']} × {r['paper']})" if table == "resolution" else ""
            cells += [f"{p[0]:.1f}{tag}", f"{p[1]:.1f}{tag}"]
            lines.append("| " + " | ".join(cells) + " |")
        mm = rows[0]["mean_mesh"]
        lines += ["", verdict(table, rows)]
        if table == "views":
            lines += _cameras_table(rows)
        if "h36m_mpjpe" in rows[0] and "h36m_mpjpe" in rows[-1]:
            h_verdict = verdict(table, rows, "h36m").split(". ", 1)[1]
            lines += ["", "Human3.6M zero-shot: " + h_verdict]
        if table in plan.notes:
            lines += ["", plan.notes[table] + "."]
        lines += [
            "",
            f"Mean training mesh on the same split: MPJPE {mm['mpjpe']:.1f}, "
            f"PA-MPJPE {mm['pa_mpjpe']:.1f} mm.",
        ]
        if table in figures:
            lines += ["", f"![{title}]({figures[table]})"]
    return "\n".join(lines) + "\n"


def plot_table(table: str, rows: list[dict], png: Path) -> Path:
    """Per metric: mean ± s.d. over seeds, each seed's value, the paper's numbers (right axis)."""
    from trainer.figures import plt  # Agg backend

    num = next(k for k, v in TABLES.items() if v[0] == table)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    x = list(range(len(rows)))
    for ax, m in zip(axes, METRICS):
        cells = [r[f"val_{m}"] for r in rows]
        ax.errorbar(
            x,
            [c["mean"] for c in cells],
            yerr=[c["sd"] or 0.0 for c in cells],
            fmt="o-",
            color="C0",
            capsize=4,
            label="ours, val split: mean ± s.d.",
        )
        for i, c in enumerate(cells):
            ax.plot([i + 0.08] * len(c["values"]), c["values"], ".", color="0.4", ms=5)
        ax.plot([], [], ".", color="0.4", label="ours, each seed")
        paper = ax.twinx()
        vals = [PAPER[table][r["paper"]][METRICS.index(m)] for r in rows]
        paper.plot(x, vals, "D--", mfc="none", color="C3", ms=7)
        ax.plot([], [], "D--", mfc="none", color="C3", label="paper, Human3.6M (right axis)")
        paper.set_ylabel(f"paper {METRIC_LABELS[m]} (mm)", color="C3")
        paper.tick_params(axis="y", colors="C3")
        ax.set_xticks(x, [r["label"] for r in rows], fontsize=8)
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_ylabel(f"{METRIC_LABELS[m]} (mm)")
        ax.set_xlabel(TABLES[num][2])
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(TABLES[num][1])
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    return save_figure(fig, png, layout=False)


PNG_NAMES = {
    "views": "table2_views.png",
    "resolution": "table3_resolution.png",
    "input": "table4_input.png",
}


def report(plan: Plan, results: dict[str, dict], out: str | Path, command: str) -> Path:
    """Write ``OUT/ABLATIONS.md``, ``OUT/results.json`` and the PNGs; the Markdown's path."""
    out = Path(out)
    summary = summarize(plan, results)
    figures = {}
    for table, rows in summary.items():
        plot_table(table, rows, out / PNG_NAMES[table])
        figures[table] = PNG_NAMES[table]
    md = out / "ABLATIONS.md"
    md.write_text(markdown(plan, summary, command, figures))
    write_json(
        out / "results.json",
        {"command": command, "samples": plan.samples, "seeds": plan.seeds, "tables": summary},
    )
    return md


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

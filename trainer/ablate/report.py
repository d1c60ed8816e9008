"""Reporting the ablations: per row mean and s.d. over seeds, a verdict on the paper's
direction, ``ABLATIONS.md`` laid out as the paper's tables with its numbers beside, one PNG per
table and ``results.json``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from cameras.plotting import save_figure
from trainer.ablate.plan import TABLES, Plan
from trainer.ablate.run import METRICS, write_json

METRIC_LABELS = {"mpjpe": "MPJPE ↓", "pa_mpjpe": "PA-MPJPE ↓"}
# The supplementary's numbers (mm, Human3.6M). Table 2: the pre-trained model without
# fine-tuning; Tables 3 and 4: after fine-tuning on a mixture of 2D and 3D datasets.
PAPER: dict[str, dict[str, tuple[float, float]]] = {
    "views": {"1": (92.5, 61.7), "2": (89.5, 61.4), "4": (89.0, 58.4), "8": (88.3, 58.2)},
    "resolution": {"112": (46.5, 32.7), "224": (45.3, 31.7)},
    "input": {"masks": (55.6, 35.4), "heatmaps": (45.3, 31.7)},
}
CLAIMS = {
    "views": "more views are better",
    "resolution": "a higher resolution is no worse (slightly better)",
    "input": "heatmaps beat binary masks",
}


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


#: a verdict per table, by where the difference falls: (beyond +2 s.e., beyond -2 s.e.,
#: within); the difference is the worse-expected row minus the better-expected one
CALLS = {
    "resolution": (
        "better beyond 2 s.e.",
        "worse beyond 2 s.e.: does not hold",
        "within 2 s.e.: no worse, holds",
    ),
}
DEFAULT_CALLS = ("holds, beyond 2 s.e.", "reversed, beyond 2 s.e.", "within 2 s.e.: not resolved")


def metric_call(table: str, worse: dict, better: dict) -> str:
    """One metric's difference (worse-expected minus better-expected row, positive = the
    paper's way), its standard error and the call for ``table``."""
    diff, se = compare(worse, better)
    ahead, behind, within = CALLS.get(table, DEFAULT_CALLS)
    if se is None:
        call = "one seed, no spread to judge it against"
    else:
        call = ahead if diff > 2 * se else behind if diff < -2 * se else within
    spread = "" if se is None else f" (s.e. {se:.1f})"
    return f"{abs(diff):.1f} mm {'lower' if diff >= 0 else 'higher'}{spread}: {call}"


def verdict(table: str, rows: list[dict], source: str = "val") -> str:
    """Whether the paper's direction holds here, per metric, judged against the seed spread.

    Table 2 compares 1 view with 8 (and reports whether the means fall monotonically), Table 3
    low with high resolution ("no worse" unless worse by more than 2 s.e.), Table 4 masks with
    heatmaps.
    """
    worse, better = rows[0], rows[-1]
    parts = [
        f"{label(m)} {metric_call(table, worse[f'{source}_{m}'], better[f'{source}_{m}'])}"
        for m in METRICS
    ]
    pair = f"{better['label']} against {worse['label']}"
    text = f"Paper: {CLAIMS[table]}. Here, {pair}: " + "; ".join(parts) + "."
    if table == "views":
        for m in METRICS:
            means = [r[f"{source}_{m}"]["mean"] for r in rows]
            mono = all(x > y for x, y in zip(means, means[1:]))
            text += f" {label(m)} means {'do' if mono else 'do not'} fall at every step."
    return text


def label(metric: str) -> str:
    """The metric's name without its arrow: ``MPJPE``, ``PA-MPJPE``."""
    return METRIC_LABELS[metric].rstrip(" ↓")


def _intro(plan: Plan, command: str) -> list[str]:
    """ABLATIONS.md's title and what every run shares."""
    t = next(iter(plan.runs.values())).cfg["train"]
    n = len(plan.seeds)
    spread = (
        f"mean ± s.d. over {n} seeds ({', '.join(map(str, plan.seeds))})"
        if n > 1
        else f"seed {plan.seeds[0]}"
    )
    ev = plan.eval_samples or "all"
    return [
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


def _table(table: str, rows: list[dict]) -> list[str]:
    """One ablation's rows laid out as the paper's table, its numbers in the last columns."""
    head = next(v[2] for v in TABLES.values() if v[0] == table)
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
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join(["---"] * len(cols)) + " |"]
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
    return lines


def _section(plan: Plan, table: str, rows: list[dict], figure: str | None) -> list[str]:
    """One ablation's section: title, table, verdicts, notes, the mean-mesh baseline, figure."""
    title = next(v[1] for v in TABLES.values() if v[0] == table)
    lines = ["", f"## {title}", "", *_table(table, rows), "", verdict(table, rows)]
    if table == "views":
        lines += _cameras_table(rows)
    if "h36m_mpjpe" in rows[0] and "h36m_mpjpe" in rows[-1]:
        h_verdict = verdict(table, rows, "h36m").split(". ", 1)[1]
        lines += ["", "Human3.6M zero-shot: " + h_verdict]
    if table in plan.notes:
        lines += ["", plan.notes[table] + "."]
    mm = rows[0]["mean_mesh"]
    lines += [
        "",
        f"Mean training mesh on the same split: MPJPE {mm['mpjpe']:.1f}, "
        f"PA-MPJPE {mm['pa_mpjpe']:.1f} mm.",
    ]
    if figure is not None:
        lines += ["", f"![{title}]({figure})"]
    return lines


def markdown(
    plan: Plan, summary: dict[str, list[dict]], command: str, figures: dict[str, str]
) -> str:
    """ABLATIONS.md: one table per ablation laid out as the paper's, its numbers beside."""
    lines = _intro(plan, command)
    for table, rows in summary.items():
        lines += _section(plan, table, rows, figures.get(table))
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

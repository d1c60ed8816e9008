"""The ablation runner: plans (rows, shared runs, equal budgets), resumability, the report."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from shards.testing import make_fake_dataset
from trainer.ablate import plan as ablate_plan
from trainer.ablate import run as ablate
from trainer.ablate.plan import check_equal_budgets, make_plan
from trainer.ablate.report import PAPER, markdown, report, summarize, verdict
from trainer.ablate.run import RESULT_FILE, RUNS_DIR, execute, h36m_overall
from trainer.config import TINY_MODEL

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs/demo.yaml"
BATCH = 8
TINY = [  # a model that trains in a second on CPU
    *TINY_MODEL,
    f"train.batch_size={BATCH}",
    "train.log_every=1",
    "train.ckpt_every=1",
    "train.num_workers=0",
    "eval.batch_size=32",
]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """An 8-view build with masks at R=32 and the same meshes at R=48 (no masks)."""
    root = tmp_path_factory.mktemp("abl_data")
    kw = dict(n_meshes=24, views=8, nv=60, shards=3, seed=3, val_shards=1)
    lo = make_fake_dataset(root / "r32", res=32, masks=True, **kw)
    hi = make_fake_dataset(root / "r48", res=48, **kw)
    return lo, hi


def plan_kw(**kw) -> dict:
    base = dict(config=CONFIG, overrides=TINY, samples=2 * BATCH, eval_samples=32, seeds=[0])
    return {**base, **kw}


def test_plan_defaults_are_the_commands(monkeypatch):
    """One home for the defaults: `trainer ablate` leaves what it is not told to the plan."""
    from trainer.__main__ import main

    params = inspect.signature(make_plan).parameters
    assert params["samples"].default == ablate_plan.SAMPLES == 7680
    assert tuple(params["seeds"].default) == ablate_plan.SEEDS == (0, 1, 2)
    seen: dict = {}

    def spy(*args, **kw):
        seen.update(kw)
        raise ValueError("planned")  # stop before any work

    monkeypatch.setattr("trainer.ablate.make_plan", spy)
    assert main(["ablate", "--data", "D", "--out", "O"]) == 2
    assert seen and not {"samples", "seeds", "eval_samples"} & set(seen)


def test_plan_rows_views_and_shared_runs(datasets):
    lo, hi = datasets
    plan = make_plan(lo, hi, **plan_kw(seeds=[0, 1]))
    assert list(plan.tables) == ["views", "resolution", "input"]
    views = plan.tables["views"]
    assert [r.label for r in views] == ["1", "2", "4", "8"]
    got = [plan.runs[r.runs[0]].cfg["data"]["views"] for r in views]
    assert got == [[0], [0, 1], [0, 1, 2, 3], "all"]
    assert [r.label for r in plan.tables["resolution"]] == ["32 × 32", "48 × 48"]
    assert plan.runs[plan.tables["resolution"][1].runs[0]].data == hi
    masks, heat = plan.tables["input"]
    assert plan.runs[masks.runs[0]].cfg["model"]["input"] == "masks"
    # 8 views = low resolution = heatmaps: one run per seed serves all three tables
    for s in range(2):
        assert views[-1].runs[s] == plan.tables["resolution"][0].runs[s] == heat.runs[s]
    assert views[-1].runs[0] != views[-1].runs[1]  # seeds are distinct runs
    assert len(plan.runs) == 2 * (4 + 1 + 1)
    assert {r.cfg["train"]["seed"] for r in plan.runs.values()} == {0, 1}


def test_equal_sample_budgets_enforced(datasets):
    lo, hi = datasets
    # a row with another batch size gets proportionally more steps: the same samples
    plan = make_plan(lo, hi, tables=["3"], hires_overrides=["train.batch_size=4"], **plan_kw())
    lo_run, hi_run = (plan.runs[r.runs[0]] for r in plan.tables["resolution"])
    assert (lo_run.cfg["train"]["steps"], hi_run.cfg["train"]["steps"]) == (2, 4)
    assert lo_run.samples == hi_run.samples == 2 * BATCH
    hi_run.cfg["train"]["steps"] = 3  # a plan whose rows differ is refused
    with pytest.raises(ValueError, match="unequal sample budgets"):
        check_equal_budgets(plan)
    with pytest.raises(ValueError, match="not a positive multiple"):
        make_plan(lo, hi, **plan_kw(samples=BATCH + 1))
    with pytest.raises(ValueError, match="--samples"):
        make_plan(lo, hi, **plan_kw(overrides=TINY + ["train.steps=5"]))


def test_plan_refuses_data_that_cannot_serve_a_table(datasets, tmp_path):
    lo, hi = datasets
    two = make_fake_dataset(tmp_path / "v2", n_meshes=8, views=2, res=32, nv=60, val_shards=1)
    with pytest.raises(ValueError, match="8-view build"):
        make_plan(two, tables=["2"], **plan_kw())
    with pytest.raises(ValueError, match="needs masks"):
        make_plan(hi, tables=["4"], **plan_kw())
    with pytest.raises(ValueError, match="--data-hires"):
        make_plan(lo, tables=["3"], **plan_kw())
    with pytest.raises(ValueError, match="not above"):
        make_plan(hi, lo, tables=["3"], **plan_kw())
    with pytest.raises(FileNotFoundError, match="manifest"):
        make_plan(tmp_path, tables=["2"], **plan_kw())


def fake_results(plan, values, h36m_for=(), noisy_for=()) -> dict:
    """Results as execute() writes them; ``values[table][row] = [(mpjpe, pa), ...]`` by seed."""
    out = {}
    for table, rows in plan.tables.items():
        for row, seeds in zip(rows, values[table]):
            for key, (mp, pa) in zip(row.runs, seeds):
                res = out.setdefault(
                    key,
                    {
                        "name": plan.runs[key].name,
                        "val": {
                            "model": {"mpjpe": mp, "pa_mpjpe": pa},
                            "mean_mesh": {"mpjpe": 230.0, "pa_mpjpe": 205.0},
                        },
                    },
                )
                if row.paper in h36m_for:
                    res["h36m"] = {"overall": {"mpjpe": mp + 10, "pa_mpjpe": pa + 5}}
                if row.paper in noisy_for:
                    res["h36m"]["noisy"] = {"mpjpe": mp + 30, "pa_mpjpe": pa + 15}
                    res["h36m"]["noise_px"] = 10.0
    return out


def test_markdown_tables_laid_out_as_the_papers(datasets):
    lo, hi = datasets
    plan = make_plan(lo, hi, **plan_kw(seeds=[0, 1, 2]))
    shared = [(80.0, 60.0), (81.0, 61.0), (82.0, 59.0)]  # the 8-view / R=32 / heatmaps run
    values = {
        "views": [[(90.0, 70.0), (92.0, 71.0), (91.0, 69.0)]] * 3 + [shared],
        "resolution": [shared, [(79.0, 60.5), (80.0, 60.0), (81.0, 61.5)]],
        "input": [[(95.0, 75.0), (96.0, 76.0), (94.0, 74.0)], shared],
    }
    summary = summarize(plan, fake_results(plan, values, h36m_for=("1", "2", "4", "8")))
    md = markdown(plan, summary, "python -m trainer ablate --data X", {"views": "t2.png"})
    assert "Made by `python -m trainer ablate --data X`." in md
    sections = re.split(r"\n## ", md)[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "Table 2. Number of pre-training views",
        "Table 3. Resolution of the pose heatmaps",
        "Table 4. Input features",
    ]
    t2 = [ln for ln in sections[0].splitlines() if ln.startswith("|")]
    assert t2[0] == (
        "| Number of views | MPJPE ↓ | PA-MPJPE ↓ | H36M MPJPE ↓ | H36M PA-MPJPE ↓ "
        "| paper MPJPE ↓ | paper PA-MPJPE ↓ |"
    )
    assert t2[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    assert t2[2] == "| 1 | 91.0 ± 1.0 | 70.0 ± 1.0 | 101.0 ± 1.0 | 75.0 ± 1.0 | 92.5 | 61.7 |"
    assert t2[5].startswith("| 8 | 81.0 ± 1.0 | 60.0 ± 1.0 |")
    assert t2[5].endswith(f"| {PAPER['views']['8'][0]} | {PAPER['views']['8'][1]} |")
    assert len(t2) == 6 and all(ln.count("|") == 8 for ln in t2)
    assert "![Table 2. Number of pre-training views](t2.png)" in sections[0]
    assert "Human3.6M zero-shot:" in sections[0]
    t3 = [ln for ln in sections[1].splitlines() if ln.startswith("|")]
    assert t3[2].startswith("| 32 × 32 | 81.0 ± 1.0 |") and "46.5 (112 × 112)" in t3[2]
    assert t3[3].startswith("| 48 × 48 | 80.0 ± 1.0 |") and "45.3 (224 × 224)" in t3[3]
    t4 = [ln for ln in sections[2].splitlines() if ln.startswith("|")]
    # eval-h36m cannot feed a masks model: a dash there, and no H36M verdict for Table 4
    assert t4[2] == "| Binary human mask | 95.0 ± 1.0 | 75.0 ± 1.0 | — | — | 55.6 | 35.4 |"
    assert (
        t4[3]
        == "| 2D pose heatmaps | 81.0 ± 1.0 | 60.0 ± 1.0 | 91.0 ± 1.0 | 65.0 ± 1.0 | 45.3 | 31.7 |"
    )
    assert "Human3.6M zero-shot:" not in sections[2]
    assert "holds, beyond 2 s.e." in sections[2]  # masks 95 vs heatmaps 81 on val
    assert "Mean training mesh on the same split: MPJPE 230.0" in sections[2]


def test_verdicts_judge_the_direction_against_the_spread(datasets):
    lo, hi = datasets
    plan = make_plan(lo, hi, tables=["4"], **plan_kw(seeds=[0, 1, 2]))

    def text(masks, heat):
        res = fake_results(plan, {"input": [masks, heat]})
        return verdict("input", summarize(plan, res)["input"])

    heat = [(80.0, 60.0), (81.0, 61.0), (82.0, 59.0)]
    far = [(90.0, 70.0), (91.0, 71.0), (92.0, 69.0)]
    near = [(81.0, 60.5), (82.0, 60.0), (80.5, 61.0)]
    assert "MPJPE 10.0 mm lower (s.e. 0.8): holds, beyond 2 s.e." in text(far, heat)
    assert text(near, heat).count("within 2 s.e.: not resolved") == 2
    assert text(heat, far).count("reversed, beyond 2 s.e.") == 2
    one = make_plan(lo, hi, tables=["4"], **plan_kw(seeds=[0]))
    res = fake_results(one, {"input": [far[:1], heat[:1]]})
    assert "one seed, no spread" in verdict("input", summarize(one, res)["input"])


def test_table2_per_camera_split_into_trained_and_other_views(datasets):
    """Each run's per-camera val metrics are pooled (sample-weighted) over the views it trained
    on and over the others, then averaged over seeds: checked against a hand computation."""
    lo, hi = datasets
    plan = make_plan(lo, hi, tables=["2"], **plan_kw(seeds=[0, 1]))
    res = fake_results(plan, {"views": [[(60.0, 50.0), (62.0, 52.0)]] * 4})
    for key, r in res.items():
        seed = int(plan.runs[key].cfg["train"]["seed"])
        r["config"] = plan.runs[key].cfg
        r["val"]["per_view"] = {
            str(v): {"mpjpe": 50.0 + v + seed, "pa_mpjpe": 40.0 - v, "samples": 10 + v}
            for v in range(8)
        }
    rows = summarize(plan, res)["views"]
    assert [r["label"] for r in rows] == ["1", "2", "4", "8"]

    def pooled(views, seed, metric):
        val = [(50.0 + v + seed) if metric == "mpjpe" else (40.0 - v) for v in views]
        n = [10 + v for v in views]
        return sum(a * b for a, b in zip(val, n)) / sum(n)

    for r, k in zip(rows, (1, 2, 4, 8)):
        seen, other = list(range(k)), list(range(k, 8))
        for m in ("mpjpe", "pa_mpjpe"):
            want = [pooled(seen, s, m) for s in (0, 1)]
            np.testing.assert_allclose(r["cameras"][f"seen_{m}"]["values"], want)
            if other:
                want = np.mean([pooled(other, s, m) for s in (0, 1)])
                assert r["cameras"][f"unseen_{m}"]["mean"] == pytest.approx(want)
            else:
                assert f"unseen_{m}" not in r["cameras"]
    md = markdown(plan, {"views": rows}, "x", {})
    lines = md.split("Per camera (val split, same runs):", 1)[1].strip().splitlines()
    assert lines[0].startswith("| Number of views | MPJPE, trained views |")
    one = pooled([0], 0, "mpjpe"), pooled([0], 1, "mpjpe")
    assert lines[2].startswith(f"| 1 | {np.mean(one):.1f} ± {np.std(one, ddof=1):.1f} |")
    assert lines[5].startswith("| 8 |") and lines[5].count("—") == 2


def test_h36m_hook_matches_a_direct_eval_h36m(datasets, tmp_path):
    from tests.trainer.test_h36m import ACTIONS, poses32, write_files
    from trainer.h36m import evaluate_h36m

    assert h36m_overall({"all": {"model": {"mpjpe": 1.5, "pa_mpjpe": 2}}}) == {
        "mpjpe": 1.5,
        "pa_mpjpe": 2.0,
    }
    with pytest.raises(ValueError, match="no all.model"):
        h36m_overall({"per_action": {}})
    rng = np.random.default_rng(0)
    poses = {s: {a: poses32(rng, n) for a, n in acts.items()} for s, acts in ACTIONS.items()}
    p3, p2 = write_files(tmp_path / "vp3d", poses)
    lo, hi = datasets
    plan = make_plan(lo, hi, tables=["4"], **plan_kw(seeds=[0]))
    results = execute(plan, tmp_path / "out", h36m=ablate.H36M(p3, p2, stride=7))
    heat = next(r for r in plan.runs.values() if r.cfg["model"]["input"] == "heatmaps")
    masks = next(r for r in plan.runs.values() if r.cfg["model"]["input"] == "masks")
    direct = evaluate_h36m(tmp_path / "out" / RUNS_DIR / heat.name, heat.data, p3, p2, stride=7)
    assert results[heat.key]["h36m"]["overall"] == h36m_overall(direct)
    noisy = evaluate_h36m(
        tmp_path / "out" / RUNS_DIR / heat.name, heat.data, p3, p2, stride=7, noise_px=10.0
    )  # the hook's default: Table 2's imperfect-2D columns
    assert results[heat.key]["h36m"]["noisy"] == h36m_overall(noisy)
    assert results[heat.key]["h36m"]["noise_px"] == 10.0
    assert h36m_overall(noisy) != h36m_overall(direct)
    assert "h36m" not in results[masks.key]  # a masks model cannot read keypoint heatmaps


@pytest.fixture(scope="module")
def executed(datasets, tmp_path_factory):
    """Tables 3 and 4 (3 distinct runs) executed once, with every train() call recorded."""
    lo, hi = datasets
    out = tmp_path_factory.mktemp("abl_out")
    calls: list[tuple[str, list[int]]] = []
    real = ablate.train

    def spy(cfg, data, run_dir, **kw):
        steps: list[int] = []
        calls.append((Path(run_dir).name, steps))
        return real(cfg, data, run_dir, on_batch=lambda step, b: steps.append(step), **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(ablate, "train", spy)
    plan = make_plan(lo, hi, tables=["3", "4"], **plan_kw())
    results = execute(plan, out, log=lambda s: None)
    yield {"plan": plan, "out": out, "calls": calls, "results": results, "lo": lo, "hi": hi}
    mp.undo()


def test_each_distinct_run_trained_once_on_its_budget(executed):
    plan, calls, out = executed["plan"], executed["calls"], executed["out"]
    assert len(plan.runs) == 3
    assert sorted(name for name, _ in calls) == sorted(r.name for r in plan.runs.values())
    assert all(steps == [0, 1] for _, steps in calls)  # 16 samples = 2 steps of 8, from step 0
    for run in plan.runs.values():
        res = json.loads((out / RUNS_DIR / run.name / RESULT_FILE).read_text())
        assert res["key"] == run.key and res["val"]["samples"] == 32
        assert res["val"]["step"] == 2
        assert not (out / RUNS_DIR / run.name / "checkpoints").exists()  # model.pt kept
        assert (out / RUNS_DIR / run.name / "model.pt").exists()


def test_second_invocation_redoes_nothing_deleted_result_is_redone(executed):
    plan, calls, out = executed["plan"], executed["calls"], executed["out"]
    files = {r.name: out / RUNS_DIR / r.name / RESULT_FILE for r in plan.runs.values()}
    before = {n: f.stat().st_mtime_ns for n, f in files.items()}
    n_calls = len(calls)
    again = make_plan(executed["lo"], executed["hi"], tables=["3", "4"], **plan_kw())
    execute(again, out, log=lambda s: None)
    assert len(calls) == n_calls
    assert {n: f.stat().st_mtime_ns for n, f in files.items()} == before
    victim = plan.runs[plan.tables["input"][0].runs[0]].name  # the masks run
    files[victim].unlink()
    execute(again, out, log=lambda s: None)
    assert [name for name, _ in calls[n_calls:]] == [victim]
    assert files[victim].exists()
    assert all(files[n].stat().st_mtime_ns == t for n, t in before.items() if n != victim)
    # other evaluation settings: the same runs (no training), evaluated again
    n_calls = len(calls)
    fewer = make_plan(executed["lo"], executed["hi"], tables=["3", "4"], **plan_kw(eval_samples=16))
    assert set(fewer.runs) == set(plan.runs)
    results = execute(fewer, out, log=lambda s: None)
    assert len(calls) == n_calls
    assert {r["val"]["samples"] for r in results.values()} == {16}


def test_a_killed_run_resumes_from_its_checkpoint(executed, tmp_path):
    plan = make_plan(executed["lo"], executed["hi"], tables=["4"], **plan_kw(samples=4 * BATCH))
    masks_run = plan.runs[plan.tables["input"][0].runs[0]]
    ablate.train(masks_run.cfg, masks_run.data, tmp_path / RUNS_DIR / masks_run.name, stop_at=2)
    calls = executed["calls"]
    n_calls = len(calls)
    execute(plan, tmp_path, keep_checkpoints=True, log=lambda s: None)
    resumed = dict(calls[n_calls:])
    assert resumed[masks_run.name] == [2, 3]  # carried on after its step-2 checkpoint
    others = [name for name in resumed if name != masks_run.name]
    assert len(others) == 1 and resumed[others[0]] == [0, 1, 2, 3]
    assert (tmp_path / RUNS_DIR / masks_run.name / "checkpoints" / "latest").exists()


def test_rebuilt_data_keeps_its_identity_a_stale_checkpoint_restarts(executed, tmp_path):
    data = Path(shutil.copytree(executed["lo"], tmp_path / "data"))
    plan = make_plan(data, tables=["4"], **plan_kw())
    run = plan.runs[plan.tables["input"][0].runs[0]]
    run_dir = tmp_path / "out" / RUNS_DIR / run.name
    ablate.train(run.cfg, data, run_dir, stop_at=1)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["created"] = "2099-01-01T00:00:00Z"  # what a resumed build rewrites
    (data / "manifest.json").write_text(json.dumps(manifest))
    again = make_plan(data, tables=["4"], **plan_kw())
    assert set(again.runs) == set(plan.runs)  # same runs: finished ones would be kept
    calls = executed["calls"]
    n_calls = len(calls)
    execute(again, tmp_path / "out", keep_checkpoints=True, log=lambda s: None)
    # the same data for train() too: the killed run carries on from its checkpoint
    assert [steps for name, steps in calls[n_calls:] if name == run.name] == [[1]]
    # a checkpoint of other data in the run's folder is refused: the run starts afresh, once
    (run_dir / RESULT_FILE).unlink()
    meta = next((run_dir / "checkpoints").glob("step*/trainer.json"))
    saved = json.loads(meta.read_text())
    saved["identity"]["data"] = "sha256:" + "0" * 64
    for m in (run_dir / "checkpoints").glob("step*/trainer.json"):
        m.write_text(json.dumps(saved))
    n_calls = len(calls)
    execute(again, tmp_path / "out", log=lambda s: None)
    assert [steps for name, steps in calls[n_calls:] if name == run.name] == [[], [0, 1]]
    manifest["splits"]["val"] = manifest["splits"]["val"][:0]  # a real change: other runs
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert not set(make_plan(data, tables=["2"], **plan_kw()).runs) & set(plan.runs)


def test_report_writes_markdown_json_and_one_png_per_table(executed):
    plan, out = executed["plan"], executed["out"]
    md = report(plan, executed["results"], out, "python -m trainer ablate --tables 3,4")
    text = md.read_text()
    assert "## Table 3." in text and "## Table 4." in text and "## Table 2." not in text
    for png in ("table3_resolution.png", "table4_input.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in text
    saved = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in saved["tables"]["input"]] == [
        "Binary human mask",
        "2D pose heatmaps",
    ]


@pytest.mark.slow
def test_cli_quick_all_three_tables(datasets, tmp_path):
    from trainer.__main__ import main

    lo, hi = datasets
    args = ["ablate", "--config", str(CONFIG), "--data", str(lo), "--data-hires", str(hi)]
    args += ["--out", str(tmp_path), "--quick", "--set", *TINY]
    assert main(args) == 0
    text = (tmp_path / "ABLATIONS.md").read_text()
    assert all(f"## Table {n}." in text for n in (2, 3, 4))
    assert len(list((tmp_path / RUNS_DIR).iterdir())) == 6  # 4 + 1 + 1 distinct runs
    assert main(args[: -len(TINY) - 1] + ["--tables", "5"]) == 2  # one-line error


def test_table2_gains_human36m_columns_with_2d_noise(datasets):
    lo, hi = datasets
    plan = make_plan(lo, hi, **plan_kw(seeds=[0, 1, 2]))
    shared = [(80.0, 60.0), (81.0, 61.0), (82.0, 59.0)]
    values = {
        "views": [[(90.0, 70.0), (92.0, 71.0), (91.0, 69.0)]] * 3 + [shared],
        "resolution": [shared, [(79.0, 60.5), (80.0, 60.0), (81.0, 61.5)]],
        "input": [[(95.0, 75.0), (96.0, 76.0), (94.0, 74.0)], shared],
    }
    every = ("1", "2", "4", "8", "heatmaps", "112", "224")
    summary = summarize(plan, fake_results(plan, values, h36m_for=every, noisy_for=every))
    md = markdown(plan, summary, "x", {})
    sections = re.split(r"\n## ", md)[1:]
    t2 = [ln for ln in sections[0].splitlines() if ln.startswith("|")]
    assert t2[0] == (
        "| Number of views | MPJPE ↓ | PA-MPJPE ↓ | H36M MPJPE ↓ | H36M PA-MPJPE ↓ "
        "| H36M MPJPE, 10 px noise ↓ | H36M PA-MPJPE, 10 px noise ↓ "
        "| paper MPJPE ↓ | paper PA-MPJPE ↓ |"
    )
    assert t2[2] == (
        "| 1 | 91.0 ± 1.0 | 70.0 ± 1.0 | 101.0 ± 1.0 | 75.0 ± 1.0 | 121.0 ± 1.0 | 85.0 ± 1.0 "
        "| 92.5 | 61.7 |"
    )
    assert summary["views"][0]["h36m_noisy_mpjpe"]["values"] == [120.0, 122.0, 121.0]
    t3 = [ln for ln in sections[1].splitlines() if ln.startswith("|")]
    assert "noise" not in t3[0]  # only Table 2 asks about imperfect 2D


@pytest.mark.parametrize("budget", ["samples-each", "equal-samples", "equal-epochs"])
def test_table2_views_budgets(datasets, budget):
    """Samples per arm of Table 2 under each budget (plan only, nothing runs)."""
    lo, _ = datasets
    plan = make_plan(lo, tables=["2"], **plan_kw(seeds=[0, 1], views_budget=budget))
    assert plan.views_budget == budget
    per_mesh = {"1": 1, "2": 2, "4": 4, "8": 8}
    for row in plan.tables["views"]:
        for key in row.runs:
            run = plan.runs[key]
            n = per_mesh[row.label]
            want = 2 * BATCH * (n if budget == "equal-epochs" else 1)
            assert run.samples == want, (budget, row.label)
            choice = "random" if budget == "equal-samples" else "each"
            assert run.cfg["data"]["view_choice"] == choice
            assert run.name.startswith("vr") == (choice == "random")  # distinct folders
    if budget == "samples-each":  # the plan of before: same runs, no note
        assert "views" not in plan.notes
    else:
        assert budget in plan.notes["views"]
    check_equal_budgets(plan)  # the plan's own budgets pass its check


def test_views_budget_checked(datasets):
    lo, _ = datasets
    plan = make_plan(lo, tables=["2"], **plan_kw(views_budget="equal-epochs"))
    run = plan.runs[plan.tables["views"][2].runs[0]]
    run.cfg["train"]["steps"] = 2  # the 4-view row trained like the 1-view row
    with pytest.raises(ValueError, match="row 4: budgets"):
        check_equal_budgets(plan)
    with pytest.raises(ValueError, match="views budget 'epochs'"):
        make_plan(lo, tables=["2"], **plan_kw(views_budget="epochs"))

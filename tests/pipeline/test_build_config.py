"""Build config: one place for each default (a bare build = `make shards`), CLI flags and
`--set` after the file, one-line errors naming the file or override and the key."""

import json
from pathlib import Path

import pytest

from pipeline.build import driver as B

ROOT = Path(__file__).resolve().parents[2]

#: The values configs/build_default.yaml spelled out before the defaults moved into the typed
#: sections (independent reference). The plan section's JSON is what the plan digest hashes, so
#: it must stay byte-for-byte the same (fps 30, not 30.0).
SHIPPED_PLAN_JSON = (
    '{"central": 0.8, "fps": 30, "keep_rate": 1.0, "meshes": 2000, "min_pose_dist": 0.005, '
    '"seed": 0, "splits": {"test": ["Transitions_mocap", "SSM_synced", "SynthHDM"], '
    '"val": ["HumanEva", "MPI_HDM05", "SFU", "MPI_mosh", "SynthBML"]}, "unit_size": 256}'
)
# issue 28: render.orientation (uniform = the yaw of before) and its range half-width
SHIPPED_RENDER = {"views": 8, "res": 56, "masks": False, "sigma": None, "crop_scale": 1.2,
                  "body_chunk": 64, "occlusion": False, "orientation": "uniform",
                  "orientation_deg": 45.0}  # fmt: skip
# schema 2 (issue 15): blosc-lz4hc:1 (was blosc-lz4) and no stored vertices
SHIPPED_BUILD = {"model_type": "smplh", "max_retries": 3, "compression": "blosc-lz4hc:1",
                 "store_vertices": False}  # fmt: skip


@pytest.mark.parametrize("path", [None, ROOT / "configs/build_default.yaml"])
def test_bare_build_is_the_make_shards_build(path):
    cfg = B.load_config(path)
    assert json.dumps(cfg["plan"], sort_keys=True) == SHIPPED_PLAN_JSON
    assert cfg["render"] == SHIPPED_RENDER and cfg["build"] == SHIPPED_BUILD


def test_amass_config_differs_only_in_size_and_split():
    cfg = B.load_config(ROOT / "configs/build_amass.yaml")
    plan = json.loads(SHIPPED_PLAN_JSON)
    plan["meshes"] = 2000000
    plan["splits"] = {"val": ["HumanEva", "MPI_HDM05", "SFU", "MPI_mosh"],
                      "test": ["Transitions_mocap", "SSM_synced"]}  # fmt: skip
    assert cfg == {"plan": plan, "render": SHIPPED_RENDER, "build": SHIPPED_BUILD}


def test_flags_then_set_override_the_file(tmp_path):
    f = tmp_path / "b.yaml"
    f.write_text("plan: {meshes: 50, fps: 20}\nrender: {masks: true, sigma: 3}\n")
    cfg = B.load_config(f, {"meshes": 300, "masks": 0, "views": None}, ["plan.meshes=7"])
    assert cfg["plan"]["meshes"] == 7 and cfg["plan"]["fps"] == 20
    assert cfg["render"]["masks"] is False and cfg["render"]["occlusion"] is False
    assert cfg["render"]["sigma"] == 3.0 and cfg["render"]["views"] == 8
    masks = B.load_config(None, {"masks": 1})["render"]
    assert masks["occlusion"] is True  # occlusion flags follow masks unless set
    assert (
        B.load_config(None, None, ["render.masks=1", "render.occlusion=false"])["render"][
            "occlusion"
        ]
        is False
    )


@pytest.mark.parametrize(
    "text, want",
    [
        ("plan: {mehses: 5}\n", "unknown key 'plan.mehses' (did you mean 'meshes'?)"),
        ("rendr: {views: 4}\n", "unknown key 'rendr' (did you mean 'render'?)"),
        ("build: {model_typ: smplx}\n", "unknown key 'build.model_typ'"),
        ("plan: {central: 1.5}\n", "plan.central: Input should be less than or equal to 1"),
        ("plan: {splits: {vall: [SFU]}}\n", "plan.splits: Input should be 'val' or 'test'"),
        ("render: {res: big}\n", "render.res: Input should be a valid integer"),
        ("render: {orientation: left}\n", "render.orientation: Input should be 'uniform', 'kee"),
        ("render: {orientation_deg: 200}\n", "render.orientation_deg: Input should be less than"),
        ("build: {compression: lz5}\n", "build.compression: Input should be 'blosc-lz4'"),
        ("plan: [1, 2\n", "invalid YAML"),
    ],
)
def test_file_errors_name_the_file_and_key(tmp_path, text, want):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(B.PreflightError) as e:
        B.load_config(bad)
    assert str(e.value).startswith(f"{bad}: {want}") and "\n" not in str(e.value)


def test_cli_set_errors_are_one_line_and_stop_before_work(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--amass", str(tmp_path), "--body-models", str(tmp_path), "--out", str(out)]
    assert B.main([*base, "--set", "plan.fps=20", "plan.mehses=5"]) == 2
    err = capsys.readouterr().err
    want = "override 'plan.mehses=5': unknown key 'plan.mehses' (did you mean 'meshes'?)"
    assert err == f"error: {want}\n"
    assert not out.exists()
    assert B.main([*base, "--set", "render.views=0"]) == 2
    want = "override 'render.views=0': render.views: Input should be greater than or equal to 1"
    assert want in capsys.readouterr().err


def test_print_config(capsys):
    import yaml

    assert B.main(["--print-config", "--meshes", "12", "--set", "plan.fps=25"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg == B.load_config(None, {"meshes": 12}, ["plan.fps=25"])
    assert cfg["plan"]["meshes"] == 12 and cfg["plan"]["fps"] == 25


def test_print_config_shows_the_orientation(capsys):
    import yaml

    sets = ["--set", "render.orientation=range", "--set", "render.orientation_deg=30"]
    assert B.main(["--print-config", *sets]) == 0
    render = yaml.safe_load(capsys.readouterr().out)["render"]
    assert render["orientation"] == "range" and render["orientation_deg"] == 30.0

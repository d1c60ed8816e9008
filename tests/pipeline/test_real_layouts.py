"""The embedded default's files laid out under real AMASS subset names (both release naming
schemes), an archive root one level too high, SMPL+H stage-ii files, the dry run, and the
H36M regressor warning / provenance of a real build."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from pipeline import amass
from pipeline.amass import AmassFileError
from pipeline.build import driver as B
from pipeline.plan import PlanConfig, make_plan
from pipeline.subsets import check_listing

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CFG = ROOT / "configs" / "build_default.yaml"
AMASS_CFG = ROOT / "configs" / "build_amass.yaml"

#: real subset name -> embedded subset whose files it gets (Transitions reuses SynthCMU's)
OLD = {"CMU": "SynthCMU", "BioMotionLab_NTroje": "SynthKIT", "MPI_HDM05": "SynthBML",
       "Transitions_mocap": "SynthCMU", "MPI_mosh": "SynthMoSh"}  # fmt: skip
NEW = {"CMU": "SynthCMU", "BMLrub": "SynthKIT", "HDM05": "SynthBML",
       "Transitions": "SynthCMU", "MoSh": "SynthMoSh"}  # fmt: skip
#: AMASS's recommended split of those subsets (MoSh's files are SMPL-X: skipped by SMPL+H builds)
EXPECT = {"CMU": "train", "BioMotionLab_NTroje": "train", "BMLrub": "train", "MPI_HDM05": "val",
          "HDM05": "val", "Transitions_mocap": "test", "Transitions": "test"}  # fmt: skip
#: current name -> first-release name of the renamed subsets used here
SAME = {"HDM05": "MPI_HDM05", "Transitions": "Transitions_mocap", "MoSh": "MPI_mosh",
        "BMLrub": "BioMotionLab_NTroje"}  # fmt: skip
#: the rates the source captures were recorded at (Transitions: none documented)
USUAL_FPS = {"CMU": (120.0, 60.0), "BMLrub": (120.0,), "HDM05": (120.0,)}
SMALL = ["--meshes", "40", "--unit-size", "16", "--views", "2", "--res", "16", "--masks", "0"]


def link_archive(src: Path, dst: Path, mapping: dict[str, str]) -> Path:
    """``dst/<real>/<subject>/<file>`` symlinked to the embedded ``src/<synth>/...`` files."""
    for real, synth in mapping.items():
        for f in sorted((src / synth).rglob("*.npz")):
            to = dst / real / f.relative_to(src / synth)
            to.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f, to)
    return dst


def _args(amass_root: Path, models: Path, out: Path, cfg: Path = DEFAULT_CFG, extra=()):
    return ["--config", str(cfg), "--amass", str(amass_root), "--body-models", str(models),
            "--out", str(out), "--workers", "0", "--quiet", *SMALL, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def src(synth_data) -> Path:
    return Path(synth_data) / "amass"


@pytest.fixture(scope="module")
def models(synth_data) -> Path:
    return Path(synth_data) / "body_models"


@pytest.fixture(scope="module", params=["old", "new"])
def scheme(request, src, tmp_path_factory):
    mapping = OLD if request.param == "old" else NEW
    return mapping, link_archive(src, tmp_path_factory.mktemp(request.param) / "amass", mapping)


def _new_names_config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load(AMASS_CFG.read_text())
    cfg["plan"]["splits"] = {"val": ["HumanEva", "HDM05", "SFU", "MoSh"],
                             "test": ["Transitions", "SSM"]}  # fmt: skip
    cfg["plan"]["meshes"] = 40
    p = tmp_path / "new_names.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_either_naming_scheme_gets_the_recommended_split(scheme, src, tmp_path):
    mapping, root = scheme
    counts = []
    for cfg_file in (DEFAULT_CFG, AMASS_CFG, _new_names_config(tmp_path)):
        small = ["plan.meshes=40", "plan.min_pose_dist=0.0"]
        pcfg = PlanConfig(**B.load_config(cfg_file, overrides=small)["plan"])
        entries, skips, _ = B.scan_archive(root, "smplh")
        got = {e.subset: pcfg.split_of(e.subset) for e in entries}
        assert got == {k: v for k, v in EXPECT.items() if k in mapping}, cfg_file
        mosh = [k for k, v in mapping.items() if v == "SynthMoSh"][0]
        assert skips and all(s["input"].startswith(mosh + "/") for s in skips)
        notes = check_listing(entries, pcfg.splits, str(root), [s["input"] for s in skips])
        kinds = {n["kind"] for n in notes}
        assert not kinds & {"empty_split", "duplicate_subset", "root_too_high", "one_subset"}
        # the configured names without a folder, worked out by hand for this layout
        unmatched = {n["input"] for n in notes if n["kind"] == "unmatched_subset"}
        present = set(mapping) | {SAME.get(n, n) for n in mapping}
        present |= {k for k, v in SAME.items() if v in mapping}
        want = {n for s in ("val", "test") for n in pcfg.splits[s]} - present
        assert unmatched == want, cfg_file
        plan = make_plan(entries, pcfg)
        assert all(plan.stats["splits"][s] > 0 for s in ("train", "val", "test"))
        counts.append(plan.stats["splits"])
    assert counts[0] == counts[1] == counts[2]


def test_build_on_current_names_records_rates_and_provenance(src, models, tmp_path, capsys):
    root = link_archive(src, tmp_path / "amass", NEW)
    out = tmp_path / "out"
    assert B.main(_args(root, models, out)) == 0
    err = capsys.readouterr().err
    man = json.loads((out / "manifest.json").read_text())
    assert set(man["splits"]) == {"train", "val", "test"}
    for s in man["shards"]:  # every shard's samples come from subsets of its split
        with h5py.File(out / s["name"], "r") as f:
            subs = {p.decode().split("/")[0] for p in f["source/path"][()]}
        assert {EXPECT[x] for x in subs} == {s["split"]}
    # frame-rate notes: exactly the files whose declared rate is not the capture's (by hand)
    want = set()
    for f in root.rglob("*_poses.npz"):
        sub = f.relative_to(root).parts[0]
        with np.load(f) as z:
            fps = float(z["mocap_framerate"])
        if sub in USUAL_FPS and fps not in USUAL_FPS[sub]:
            want.add(f.relative_to(root).as_posix())
    assert want, "the embedded default's 60/100/120 fps mix gives some unusual rates"
    got = {n["input"] for n in man["notes"] if n["kind"] == "frame_rate"}
    assert got == want
    assert "declare an unusual frame rate" in err
    # regressor provenance: shipped file, its checksum, in the manifest and topology.h5
    gen = models / "smplh" / "joint_regressors.npz"
    sha = "sha256:" + hashlib.sha256(gen.read_bytes()).hexdigest()
    prov = {"source": "shipped joint_regressors.npz", "file": "smplh/joint_regressors.npz",
            "sha256": sha}  # fmt: skip
    assert man["provenance"]["regressors"] == {"coco17": prov, "h36m17": prov}
    with h5py.File(out / "topology.h5", "r") as f:
        assert f["joints/h36m17"].attrs["provenance_sha256"] == sha
    assert "H36M-17 IS APPROXIMATED" not in err


def test_archive_root_one_level_too_high(src, models, tmp_path, capsys):
    parent = tmp_path / "data"
    link_archive(src, parent / "amass", NEW)  # the archive is the parent's only subfolder
    out = tmp_path / "out"
    assert B.main(_args(parent, models, out, extra=["--dry-run"])) == 0
    text = capsys.readouterr().out
    assert f"looks one level too high (use {parent}/amass)" in text
    assert not out.exists()
    assert B.main(_args(parent, models, out)) == 0
    err = capsys.readouterr().err
    assert f"looks one level too high (use {parent}/amass)" in err
    man = json.loads((out / "manifest.json").read_text())
    kinds = [n["kind"] for n in man["notes"]]
    assert "root_too_high" in kinds and kinds.count("empty_split") == 2
    assert set(man["splits"]) == {"train"}  # what the warning is about


# ---------------------------------------------------------------------------------------------
# SMPL+H stage-ii files


def _as_smplh_stageii(g_file: Path, dst: Path, with_poses: bool) -> Path:
    """An SMPL+H G file rewritten in MoSh++'s stage-ii layout (surface_model_type 'smplh')."""
    with np.load(g_file) as z:
        p, d = z["poses"], {k: z[k] for k in ("trans", "betas", "gender")}
        fps = z["mocap_framerate"]
    d.update(surface_model_type=np.array("smplh"), mocap_frame_rate=fps,
             root_orient=p[:, :3], pose_body=p[:, 3:66], pose_hand=p[:, 66:])  # fmt: skip
    if with_poses:
        d["poses"] = p
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dst, **d)
    return dst


def _stageii_archive(src: Path, dst: Path) -> Path:
    for i, f in enumerate(sorted(src.rglob("*_poses.npz"))):
        rel = f.relative_to(src).as_posix().replace("_poses.npz", "_stageii.npz")
        _as_smplh_stageii(f, dst / rel, with_poses=bool(i % 2))
    for f in sorted(src.rglob("*_stageii.npz")):  # the SMPL-X subset, as is
        (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst / f.relative_to(src))
    return dst


def test_smplh_stageii_files_read_as_smplh(src, tmp_path):
    g = sorted(src.rglob("*_poses.npz"))[0]
    for with_poses in (False, True):
        f = _as_smplh_stageii(g, tmp_path / f"S/s/a{int(with_poses)}_stageii.npz", with_poses)
        info = amass.scan_file(f, tmp_path)
        assert (info.model_type, info.model_type_from) == ("smplh", "surface_model_type")
        seq = amass.load_sequence(f, tmp_path)
        with np.load(g) as z:
            np.testing.assert_array_equal(seq.poses, z["poses"])
            np.testing.assert_array_equal(seq.trans, z["trans"])
        assert seq.jaw_pose is None and seq.eye_pose is None
    # a stated type wins over keys and name; an unknown stated type is a bad file
    with np.load(g) as z:
        d = dict(z)
    np.savez(tmp_path / "S/s/c_stageii.npz", **d)  # says nothing: poses width 156 -> smplh
    info = amass.scan_file(tmp_path / "S/s/c_stageii.npz", tmp_path)
    assert (info.model_type, info.model_type_from) == ("smplh", "poses width")
    np.savez(tmp_path / "S/s/d_poses.npz", **d, surface_model_type=np.array("smpl"))
    with pytest.raises(AmassFileError, match="surface_model_type 'smpl' is not read"):
        amass.scan_file(tmp_path / "S/s/d_poses.npz", tmp_path)


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted(folder.glob("shard-*.h5")):
        with h5py.File(p, "r") as f:
            for k in ("joints3d/h36m17", "views/heatmaps", "body/pose", "body/placement"):
                if k in f:
                    out[f"{p.name}:{k}"] = f[k][()]
    return out


def test_smplh_stageii_build_equals_the_g_build(src, models, tmp_path):
    """The same motions as SMPL+H G files and as SMPL+H stage-ii files build the same meshes
    (before the fix the stage-ii files were classified SMPL-X by name and all skipped)."""
    g_out, s_out = tmp_path / "g", tmp_path / "s"
    s_root = _stageii_archive(src, tmp_path / "stageii")
    assert B.main(_args(src, models, g_out)) == 0
    assert B.main(_args(s_root, models, s_out)) == 0
    a, b = _arrays(g_out), _arrays(s_out)
    assert a and sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    man = json.loads((s_out / "manifest.json").read_text())
    assert all("smplx sequence" in s["reason"] for s in man["skipped"])  # only SynthMoSh


# ---------------------------------------------------------------------------------------------
# dry run


def test_dry_run_reports_without_working(src, models, tmp_path, capsys, monkeypatch):
    root = link_archive(src, tmp_path / "amass", NEW)
    out = tmp_path / "out"

    def no_work(*a, **k):
        raise AssertionError("the dry run started work")

    from pipeline.build import planning, run

    monkeypatch.setattr(run, "run_ray", no_work)
    monkeypatch.setattr(run, "run_local", no_work)
    monkeypatch.setattr(planning, "make_plan", no_work)
    assert B.main(_args(root, models, out, extra=["--dry-run"])) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 5 and cells[0] in NEW and cells[1] in ("train", "val", "test", "-"):
            rows[cells[0]] = cells
    assert set(rows) == set(NEW)
    for sub in NEW:  # sequences and hours per subset, counted from the files
        files = sorted((root / sub).rglob("*_poses.npz"))
        secs = 0.0
        for f in files:
            with np.load(f) as z:
                secs += z["poses"].shape[0] / float(z["mocap_framerate"])
        assert rows[sub][1] == (EXPECT.get(sub, "-") if files else "-")
        assert int(rows[sub][2]) == len(files)
        if files:
            assert float(rows[sub][3]) == pytest.approx(secs / 3600, abs=6e-4)
    assert "h36m17   shipped joint_regressors.npz  smplh/joint_regressors.npz  sha256:" in text
    assert "smplx sequence; this build poses smplh body models" in text
    assert "dry run: a build would start" in text
    # a missing body model: the same one-line reason as the build's preflight, exit 2
    bm = tmp_path / "bm"
    shutil.copytree(models, bm)
    (bm / "smplh" / "female" / "model.npz").unlink()
    gendered = {str(np.load(f)["gender"]) for f in root.rglob("*_poses.npz")}
    assert "female" in gendered
    assert B.main(_args(root, bm, out, extra=["--dry-run"])) == 2
    text = capsys.readouterr().out
    assert "error: " in text and "smplh female body model unusable" in text
    assert "dry run: a build would stop at preflight" in text


# ---------------------------------------------------------------------------------------------
# H36M regressor of a real-topology build


def test_build_warns_once_when_h36m_is_approximated_and_records_a_metro_file(src, tmp_path, capsys):
    """Anny's SMPL+H-format models without their joint_regressors.npz take the SMPL-topology
    path: no regressor file -> one loud warning and "approximated"; METRO's file name in
    smplh/ -> used, its rows are topology.h5's H36M regressor, name and checksum recorded."""
    bm = tmp_path / "bm"
    for g in ("neutral", "male", "female"):
        (bm / "smplh" / g).mkdir(parents=True)
        shutil.copy(ROOT / "pipeline/assets/anny/smplh" / g / "model.npz", bm / "smplh" / g)
    assert B.main(_args(src, bm, tmp_path / "a")) == 0
    err = capsys.readouterr().err
    assert err.count("H36M-17 IS APPROXIMATED") == 1
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["provenance"]["regressors"]["h36m17"]["source"] == "approximated"
    assert "h36m_approximated" in [n["kind"] for n in man["notes"]]

    with np.load(bm / "smplh" / "neutral" / "model.npz") as z:
        nv = z["v_template"].shape[0]
    R = np.random.default_rng(0).random((17, nv))
    R /= R.sum(axis=1, keepdims=True)
    f = bm / "smplh" / "J_regressor_h36m_correct.npy"
    np.save(f, R)
    assert B.main(_args(src, bm, tmp_path / "b")) == 0
    assert "H36M-17 IS APPROXIMATED" not in capsys.readouterr().err
    sha = "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert man["provenance"]["regressors"]["h36m17"] == {
        "source": "J_regressor_h36m_correct.npy",
        "file": "smplh/J_regressor_h36m_correct.npy",
        "sha256": sha,
    }
    with h5py.File(tmp_path / "b" / "topology.h5", "r") as t:
        np.testing.assert_allclose(t["joints/h36m17/regressor"][()], R, rtol=1e-6, atol=1e-7)
        assert t["joints/h36m17"].attrs["provenance_file"] == "smplh/J_regressor_h36m_correct.npy"

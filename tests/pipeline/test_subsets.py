"""AMASS subset names of both releases, split matching and the listing checks (unit level)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.plan import AMASS_SPLITS, PlanConfig
from pipeline.subsets import (
    AMASS_SUBSETS,
    check_listing,
    known_subset,
    split_of,
    subset_key,
    summary_lines,
)

ROOT = Path(__file__).resolve().parents[2]

#: first release -> current SMPL+H G / SMPL-X N folder names, as the issue lists them
RENAMES = {
    "MPI_HDM05": "HDM05",
    "MPI_mosh": "MoSh",
    "SSM_synced": "SSM",
    "Transitions_mocap": "Transitions",
    "BioMotionLab_NTroje": "BMLrub",
}
#: AMASS's recommended split (Mahmood et al. 2019) in the current names
RECOMMENDED = {"HumanEva": "val", "HDM05": "val", "SFU": "val", "MoSh": "val",
               "Transitions": "test", "SSM": "test", "CMU": "train", "BMLrub": "train",
               "KIT": "train"}  # fmt: skip


@dataclass
class E:
    path: str
    subset: str
    fps: float = 120.0


def test_both_names_of_a_subset_are_one_subset():
    for old, new in RENAMES.items():
        assert subset_key(old) == subset_key(new), (old, new)
        assert known_subset(old) is known_subset(new) is not None
        assert known_subset(old).name == new
    assert subset_key("CMU") != subset_key("KIT")
    assert known_subset("SynthHDM") is None and subset_key("SynthHDM") != subset_key("HDM05")
    names = [n for s in AMASS_SUBSETS for n in (s.name, *s.old)]
    assert len({subset_key(n) for n in names}) == len(AMASS_SUBSETS)  # no name in two rows


def test_recommended_split_in_either_scheme():
    cfg_old = PlanConfig(splits=AMASS_SPLITS)  # first-release names
    cfg_new = PlanConfig(splits={"val": ["HumanEva", "HDM05", "SFU", "MoSh"],
                                 "test": ["Transitions", "SSM"]})  # fmt: skip
    for new, split in RECOMMENDED.items():
        old = {v: k for k, v in RENAMES.items()}.get(new, new)
        for cfg in (cfg_old, cfg_new):
            assert cfg.split_of(new) == split, (new, cfg.splits)
            assert cfg.split_of(old) == split, (old, cfg.splits)
        assert known_subset(new).split == split
    assert cfg_old.split_of("SynthBML") == "train"
    shipped = PlanConfig().model_dump()  # the default = what configs/build_default.yaml builds
    assert split_of("SynthBML", shipped["splits"]) == "val"
    assert split_of("SynthHDM", shipped["splits"]) == "test"
    assert split_of("Transitions", shipped["splits"]) == "test"
    assert split_of("HDM05", shipped["splits"]) == "val"


def test_unmatched_and_duplicate_subsets():
    splits = {"val": ["HumanEva", "MPI_HDM05"], "test": ["Transitions_mocap"]}
    entries = [E("CMU/01/a_poses.npz", "CMU"), E("HDM05/bk/b_poses.npz", "HDM05"),
               E("MPI_HDM05/bk/b_poses.npz", "MPI_HDM05")]  # fmt: skip
    notes = check_listing(entries, splits, "/data/amass")
    kinds = sorted(n["kind"] for n in notes)
    assert kinds == ["duplicate_subset", "empty_split", "unmatched_subset", "unmatched_subset"]
    assert {n["input"] for n in notes if n["kind"] == "unmatched_subset"} == {
        "HumanEva",
        "Transitions_mocap",
    }
    assert [n["input"] for n in notes if n["kind"] == "empty_split"] == ["test"]
    assert (
        "HDM05 and MPI_HDM05" in next(n for n in notes if n["kind"] == "duplicate_subset")["reason"]
    )


def test_amass_names_absent_from_a_non_amass_archive_are_expected():
    # the embedded default's configs list AMASS's names beside its own: no noise for them
    splits = {"val": ["HumanEva", "SynthBML", "MyValSet"], "test": ["SSM_synced"]}
    entries = [E("SynthCMU/s1/a_poses.npz", "SynthCMU"), E("SynthBML/s2/b_poses.npz", "SynthBML")]
    unmatched = {
        n["input"] for n in check_listing(entries, splits) if n["kind"] == "unmatched_subset"
    }
    assert unmatched == {"MyValSet"}  # a name AMASS does not know is still reported
    # ... but once the archive is AMASS (any known subset present), missing ones are reported
    real = [*entries, E("CMU/01/c_poses.npz", "CMU")]
    unmatched = {n["input"] for n in check_listing(real, splits) if n["kind"] == "unmatched_subset"}
    assert unmatched == {"HumanEva", "MyValSet", "SSM_synced"}


def test_root_one_level_too_high_too_low_and_one_subset():
    splits = dict(AMASS_SPLITS)
    # --amass at the parent of the archive root: every file is <archive>/<Subset>/<Subject>/f
    high = [E(f"amass/{s}/01/a_poses.npz", "amass") for s in ("CMU", "HDM05", "SSM")]
    n = [x for x in check_listing(high, splits, "/data") if x["kind"] == "root_too_high"]
    assert len(n) == 1 and "/data/amass" in n[0]["reason"]
    # a parent holding two archives side by side: still too high (their subsets are known)
    two = [E("g/CMU/01/a_poses.npz", "g"), E("x/KIT/3/b_stageii.npz", "x")]
    assert any(x["kind"] == "root_too_high" for x in check_listing(two, splits, "/d"))
    # a real single-subset archive: one subset, not "too high"
    one = [E("CMU/01/a_poses.npz", "CMU"), E("CMU/02/b_poses.npz", "CMU")]
    kinds = [x["kind"] for x in check_listing(one, splits, "/a")]
    assert "one_subset" in kinds and "root_too_high" not in kinds
    # --amass at a subset folder: <Subject>/<file>, subjects read as subsets
    low = [E("01/a_poses.npz", "01"), E("02/b_poses.npz", "02")]
    assert any(x["kind"] == "root_too_low" for x in check_listing(low, splits, "/a/CMU"))
    # a nested subset (EyesJapanDataset/Eyes_Japan_Dataset/...) among others is fine
    ok = [E("EyesJapanDataset/Eyes_Japan_Dataset/s/a_poses.npz", "EyesJapanDataset"),
          E("CMU/01/a_poses.npz", "CMU"), E("HDM05/bk/a_poses.npz", "HDM05"),
          E("SSM/x/a_poses.npz", "SSM")]  # fmt: skip
    kinds = {x["kind"] for x in check_listing(ok, splits, "/a")}
    assert not kinds & {"root_too_high", "root_too_low", "one_subset", "empty_split"}


def test_frame_rate_notes_only_for_known_rates():
    entries = [
        E("CMU/01/a_poses.npz", "CMU", 120.0),
        E("CMU/01/b_poses.npz", "CMU", 60.0),  # CMU also captured at 60
        E("CMU/01/c_poses.npz", "CMU", 250.0),
        E("KIT/3/d_poses.npz", "KIT", 120.0),  # KIT is 100 Hz
        E("KIT/3/e_poses.npz", "KIT", 100.0),
        E("SynthKIT/k/f_poses.npz", "SynthKIT", 77.0),  # unknown subset: no expectation
    ]
    notes = [n for n in check_listing(entries, {}, "/a") if n["kind"] == "frame_rate"]
    assert [n["input"] for n in notes] == ["CMU/01/c_poses.npz", "KIT/3/d_poses.npz"]
    assert "declares 120 fps; KIT sequences are usually 100 fps" in notes[1]["reason"]
    lines = summary_lines(notes)
    assert len(lines) == 2 and lines[0].startswith("1 CMU sequence(s) declare an unusual")

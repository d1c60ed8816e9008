"""Issue 30's open splits, read from the shipped archive's files as the build reads them: the
build's listing (``pipeline.amass.scan``) and its split code (``PlanConfig.split_of``), the
motion kind from each file's AMASS-style name (``<kind>_<take>_poses.npz``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline.amass import scan
from pipeline.plan import PlanConfig
from pipeline.synth.archive import generate_inkind
from pipeline.synth.kinds import FAMILY, HELD_OUT, MOTIONS, WORKOUT_KIND


def _kind(path: str) -> str:
    return Path(path).name.rsplit("_", 2)[0]


def _kinds_by_split(root: Path) -> dict[str, Counter]:
    infos, skips = scan(root)
    assert not skips
    cfg = PlanConfig()
    out: dict[str, Counter] = {"train": Counter(), "val": Counter(), "test": Counter()}
    for info in infos:
        out[cfg.split_of(info.subset)][_kind(info.path)] += 1
    return out


@pytest.fixture(scope="module")
def by_split(shipped_archive) -> dict[str, Counter]:
    return _kinds_by_split(shipped_archive[0])


def test_val_and_test_hold_out_whole_kinds(by_split):
    train, val, test = (set(by_split[s]) for s in ("train", "val", "test"))
    assert val and test and train
    assert not train & val, train & val
    assert not train & test, train & test
    assert not val & test, val & test


def test_every_kind_is_performed_several_times(by_split):
    """Each kind of the library is in the archive, at least 3 takes (range of motion: one per
    train subject), so no kind rests on one subject."""
    seen = by_split["train"] + by_split["val"] + by_split["test"]
    assert set(MOTIONS) <= set(seen)
    assert min(seen.values()) >= 3, seen


def test_held_out_kinds_have_train_kinds_of_their_family(by_split):
    """The rule of :data:`HELD_OUT`: a held-out kind's family keeps at least two train kinds."""
    train = set(by_split["train"])
    for split in ("val", "test"):
        for kind in by_split[split]:
            mates = {k for k in train if FAMILY[k] == FAMILY[kind]}
            assert len(mates) >= 2, (split, kind, mates)
    assert {k for kinds in HELD_OUT.values() for k in kinds} == set(by_split["val"]) | set(
        by_split["test"]
    )


def test_inkind_reference_is_new_people_doing_train_kinds(shipped_archive, tmp_path):
    root, files = shipped_archive
    inkind = tmp_path / "amass_inkind"
    generate_inkind(inkind, seed=0)
    infos, _ = scan(inkind)
    assert len({i.subject for i in infos}) == 2
    train_kinds = set(_kinds_by_split(root)["train"])
    assert {_kind(i.path) for i in infos} <= train_kinds
    main_betas = [np.load(f)["betas"] for f in files if f.name.endswith("_poses.npz")]
    for info in infos:
        betas = np.load(inkind / info.path)["betas"]
        assert min(np.abs(betas - b).max() for b in main_betas) > 1e-3  # other bodies


def test_train_subjects_close_with_workout_takes(shipped_archive):
    """The warm-up kind is appended to each SMPL+H train subject's takes (the walk through the
    other kinds unchanged), and only train subjects perform it."""
    infos, _ = scan(shipped_archive[0])
    cfg = PlanConfig()
    takes: dict[str, list[tuple[int, str]]] = {}
    for info in infos:
        name = Path(info.path).name
        if name.endswith("_poses.npz"):
            takes.setdefault(info.subject, []).append((int(name.rsplit("_", 2)[1]), _kind(name)))
    splits = {i.subject: cfg.split_of(i.subset) for i in infos}
    for subject, kinds in takes.items():
        order = [k for _, k in sorted(kinds)]
        n = order.count(WORKOUT_KIND)
        if splits[subject] == "train":
            assert n == 2 and order[-2:] == [WORKOUT_KIND] * 2, (subject, order)
        else:
            assert n == 0, (subject, order)

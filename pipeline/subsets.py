"""AMASS subsets under both release naming schemes, their recommended split and usual frame
rates, and checks of an archive listing against a build config (no silent mistakes).

AMASS renamed several subset folders between its first SMPL+H release and the current SMPL+H G /
SMPL-X N downloads (``MPI_HDM05`` -> ``HDM05``, ``BioMotionLab_NTroje`` -> ``BMLrub``, ...). A
subset name in a config matches a folder of either scheme: names are compared by
:func:`subset_key` (the current name of a known subset, else the name itself, case, ``_`` and
``-`` ignored), so ``MPI_HDM05`` in ``plan.splits`` puts a folder ``HDM05`` into that split.

:func:`check_listing` returns notes (``{"kind", "input", "reason"}``) the build prints as
warnings and records in ``manifest.json``'s ``notes``: a configured subset with no folder, a
subset present under both names, an archive root one level too high (every sequence in one
subset) or too low (no subject level), an empty val/test split, and sequences whose declared
frame rate is not their subset's usual one (only reported; they are resampled as declared).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Protocol


@dataclass(frozen=True)
class AmassSubset:
    """One AMASS subset: ``name`` in the current downloads, ``old`` names of earlier releases,
    AMASS's recommended ``split`` and the ``fps`` its files usually declare (empty: unknown)."""

    name: str
    old: tuple[str, ...]
    split: str
    fps: tuple[float, ...] = ()


#: AMASS subsets. name (SMPL+H G / SMPL-X N) | earlier release | recommended split | usual fps
#: (rates only where the source capture's rate is documented; anything else only warns).
AMASS_SUBSETS: tuple[AmassSubset, ...] = (
    AmassSubset("ACCAD", (), "train", (120.0,)),
    AmassSubset("BMLhandball", (), "train"),
    AmassSubset("BMLmovi", (), "train", (120.0,)),
    AmassSubset("BMLrub", ("BioMotionLab_NTroje",), "train", (120.0,)),
    AmassSubset("CMU", (), "train", (120.0, 60.0)),
    AmassSubset("CNRS", (), "train"),
    AmassSubset("DanceDB", (), "train"),
    AmassSubset("DFaust", ("DFaust_67",), "train", (60.0,)),
    AmassSubset("EKUT", (), "train", (100.0,)),
    AmassSubset("EyesJapanDataset", ("Eyes_Japan_Dataset",), "train"),
    AmassSubset("GRAB", (), "train"),
    AmassSubset("HDM05", ("MPI_HDM05",), "val", (120.0,)),
    AmassSubset("HUMAN4D", (), "train"),
    AmassSubset("HumanEva", (), "val", (120.0,)),
    AmassSubset("KIT", (), "train", (100.0,)),
    AmassSubset("MoSh", ("MPI_mosh",), "val"),
    AmassSubset("PosePrior", ("MPI_Limits",), "train"),
    AmassSubset("SFU", (), "val", (120.0,)),
    AmassSubset("SOMA", (), "train"),
    AmassSubset("SSM", ("SSM_synced",), "test"),
    AmassSubset("TCDHands", ("TCD_handMocap",), "train"),
    AmassSubset("TotalCapture", (), "train", (60.0,)),
    AmassSubset("Transitions", ("Transitions_mocap",), "test"),
    AmassSubset("WEIZMANN", (), "train"),
)


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


_BY_KEY: dict[str, AmassSubset] = {_norm(n): s for s in AMASS_SUBSETS for n in (s.name, *s.old)}


def known_subset(name: str) -> AmassSubset | None:
    """The AMASS subset a folder or config name denotes (either scheme), or None."""
    return _BY_KEY.get(_norm(name))


@lru_cache(maxsize=4096)
def subset_key(name: str) -> str:
    """Comparison key: one key for both names of an AMASS subset, else the normalised name."""
    s = known_subset(name)
    return _norm(s.name if s else name)


def split_of(subset: str, splits: dict[str, list[str]]) -> str:
    """Split of a subset folder under a config's ``{"val": [...], "test": [...]}`` lists
    (either naming scheme on either side); every other subset is train."""
    key = subset_key(subset)
    for name in ("val", "test"):
        if any(subset_key(n) == key for n in splits.get(name, [])):
            return name
    return "train"


def split_reason(subset: str, splits: dict[str, list[str]]) -> str:
    """Why a subset lands in its split (for the dry run): the config entry that matched, and
    AMASS's recommended split when the config puts it elsewhere."""
    key = subset_key(subset)
    got = split_of(subset, splits)
    why = "not in the split lists -> train"
    for name in ("val", "test"):
        for n in splits.get(name, []):
            if subset_key(n) == key and got == name:
                why = f"{name} list: {n}" if n == subset else f"{name} list: {n} (same subset)"
                break
        if not why.endswith("train"):
            break
    known = known_subset(subset)
    if known is not None and known.split != got:
        why += f"; AMASS recommends {known.split}"
    return why


class _Entry(Protocol):
    path: str
    subset: str
    fps: float


def _note(kind: str, inp: str, reason: str) -> dict:
    return {"kind": kind, "input": inp, "reason": reason}


def check_listing(
    entries: Sequence[_Entry],
    splits: dict[str, list[str]],
    root: str = "AMASS root",
    skipped: Iterable[str] = (),
) -> list[dict]:
    """Notes on an archive listing (see the module docstring); empty when nothing looks off.

    ``entries`` are the sequences the build would use (``path`` relative to ``root``);
    ``skipped`` the relative paths of files it skips (their folders exist, so a configured
    subset whose files are all skipped is not reported as having no folder).
    """
    notes: list[dict] = []
    subsets = sorted({e.subset for e in entries})
    keys: dict[str, list[str]] = {}
    for s in subsets:
        keys.setdefault(subset_key(s), []).append(s)
    folders = set(keys) | {subset_key(PurePosixPath(p).parts[0]) for p in skipped if "/" in p}
    # AMASS names in a config are expected to be absent from an archive that holds no AMASS
    # subset at all (the embedded default, a private capture): report them for real archives
    real = any(known_subset(s) is not None for s in subsets)
    for name in ("val", "test"):
        for n in splits.get(name, []):
            if subset_key(n) not in folders and (real or known_subset(n) is None):
                notes.append(
                    _note(
                        "unmatched_subset", n, f"{name} subset {n} matches no folder under {root}"
                    )
                )
    for folders in keys.values():
        if len(folders) > 1:
            notes.append(
                _note(
                    "duplicate_subset",
                    ", ".join(folders),
                    f"folders {' and '.join(folders)} are one AMASS subset under two "
                    "release names; its sequences would be used twice",
                )
            )
    if entries:
        parts = [PurePosixPath(e.path).parts for e in entries]
        second = {q[1] for q in parts if len(q) >= 4}
        too_high = (
            min(len(q) for q in parts) >= 4
            and not any(known_subset(s) for s in subsets)
            and (len(subsets) == 1 or any(known_subset(s) for s in second))
        )
        if too_high:
            tops = " or ".join(f"{root}/{s}" for s in subsets)
            notes.append(
                _note(
                    "root_too_high",
                    root,
                    f"every sequence is one level deeper than <Subset>/<Subject>/<file> "
                    f"under {', '.join(f'{s}/' for s in subsets)}: the --amass root "
                    f"looks one level too high (use {tops})",
                )
            )
        elif len(subsets) == 1:
            notes.append(
                _note(
                    "one_subset",
                    subsets[0],
                    f"every sequence falls in one subset, {subsets[0]} (split "
                    f"{split_of(subsets[0], splits)}); the other splits are empty",
                )
            )
        elif max(len(q) for q in parts) == 2 and not any(known_subset(s) for s in subsets):
            notes.append(
                _note(
                    "root_too_low",
                    root,
                    f"sequences sit at <folder>/<file> with no subject level: {root} "
                    "looks like one subset's folder (one level too low); its subject "
                    "folders are read as subsets",
                )
            )
        used = {split_of(s, splits) for s in subsets}
        for name in ("val", "test"):
            if name not in used and splits.get(name):
                notes.append(
                    _note(
                        "empty_split",
                        name,
                        f"split {name} gets no sequences (none of "
                        f"{', '.join(splits[name])} is a subset folder of {root})",
                    )
                )
    notes += frame_rate_notes(entries)
    return notes


def frame_rate_notes(entries: Iterable[_Entry]) -> list[dict]:
    """One note per sequence whose declared rate is not its (known) subset's usual rate."""
    out = []
    for e in entries:
        known = known_subset(e.subset)
        if known is None or not known.fps:
            continue
        if not any(abs(float(e.fps) - f) <= 0.5 for f in known.fps):
            usual = " or ".join(f"{f:g}" for f in known.fps)
            out.append(
                _note(
                    "frame_rate",
                    e.path,
                    f"declares {float(e.fps):g} fps; {known.name} sequences are usually "
                    f"{usual} fps (kept, resampled as declared)",
                )
            )
    return out


def summary_lines(notes: Sequence[dict], limit: int = 3) -> list[str]:
    """Warning lines for notes: one per note, frame-rate notes grouped per subset."""
    lines = []
    rates: dict[str, list[dict]] = {}
    for n in notes:
        if n["kind"] == "frame_rate":
            rates.setdefault(n["input"].split("/")[0], []).append(n)
        elif n["kind"] != "unmatched_subset":
            lines.append(n["reason"])
    unmatched = [n for n in notes if n["kind"] == "unmatched_subset"]
    if unmatched:
        lines.append(
            f"{len(unmatched)} subset(s) named in the split lists match no folder: "
            + ", ".join(n["input"] for n in unmatched)
            + " (folder names of both AMASS releases are recognised)"
        )
    for sub, ns in rates.items():
        ex = "; ".join(f"{n['input']} {n['reason'].split(';')[0]}" for n in ns[:limit])
        more = f"; +{len(ns) - limit} more" if len(ns) > limit else ""
        lines.append(
            f"{len(ns)} {sub} sequence(s) declare an unusual frame rate ({ex}{more}); "
            "the manifest's notes list them"
        )
    return lines

"""manifest.json at the dataset root: shards, splits, build config + hash, skipped inputs,
notes (warnings about inputs that were used) and provenance (where the regressors came from)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shards.atomic import write_atomic
from shards.schema import FORMAT_NAME, MANIFEST_NAME, SCHEMA_VERSION, TOPOLOGY_NAME
from shards.writer import ShardInfo, file_checksum


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a build config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def manifest_identity(doc: Mapping[str, Any]) -> str:
    """The dataset's identity: sha256 of its manifest less the ``created`` stamp. The manifest
    lists every shard's and topology.h5's checksum, so a rebuilt but identical dataset (or a
    resumed build, which rewrites the stamp) keeps its identity; any other change does not."""
    blob = json.dumps({k: v for k, v in doc.items() if k != "created"}, sort_keys=True)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Manifest:
    """Parsed manifest.json."""

    root: Path
    shards: list[ShardInfo]
    dims: dict[str, int]
    config: dict = field(default_factory=dict)
    config_hash: str = ""
    skipped: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    topology: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    created: str = ""
    total_meshes: int | None = None  # the manifest's own "meshes" total, as written
    identity: str = ""  # manifest_identity of the file as read

    @property
    def splits(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for s in self.shards:
            out.setdefault(s.split, []).append(s.name)
        return out

    def split_shards(self, split: str) -> list[ShardInfo]:
        """Shards of one split, in manifest order; clear error for an unknown split."""
        out = [s for s in self.shards if s.split == split]
        if not out:
            raise ValueError(
                f"{self.root / MANIFEST_NAME}: no shards in split {split!r} "
                f"(splits: {sorted(self.splits)})"
            )
        return out

    @property
    def meshes(self) -> int:
        return sum(s.meshes for s in self.shards)


def planned_line(plan_stats: Mapping[str, Any], target: int) -> str | None:
    """``planned N of the target M meshes (shortfall K ...)`` when the archive offered fewer
    candidate frames than the build's target (a shortfall is reported, never padded), else
    None. ``plan_stats``: the plan's stats (``planned``, ``shortfall``)."""
    short = int(plan_stats.get("shortfall", 0) or 0)
    if short <= 0:
        return None
    planned = int(plan_stats.get("planned", target - short))
    return (
        f"planned {planned} of the target {target} meshes: shortfall {short} (the archive "
        "offers no more candidate frames at this fps, central and min_pose_dist)"
    )


def write_manifest(
    root: str | os.PathLike,
    shards: Iterable[ShardInfo],
    *,
    dims: Mapping[str, int],
    config: Mapping[str, Any] | None = None,
    skipped: Iterable[Mapping[str, str]] = (),
    splits: Mapping[str, str] | None = None,
    notes: Iterable[Mapping[str, str]] = (),
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``root/manifest.json`` atomically.

    ``dims`` are the dataset dimensions (``V``, ``R``, ``K``, ``J``, ``Nv``, ``masks`` ...);
    ``splits`` optionally overrides each shard's split (shard name -> split); ``skipped`` is a
    list of ``{"input": path, "reason": text}``; ``notes`` likewise for inputs that were used
    but look off (``{"kind", "input", "reason"}``); ``provenance`` e.g. ``{"regressors": {joint
    set: {"source", "file", "sha256"}}}``. Records topology.h5's checksum when present.
    """
    root = Path(root)
    infos = sorted(shards, key=lambda s: s.name)
    if splits:
        for s in infos:
            s.split = splits.get(s.name, s.split)
    config = dict(config or {})
    topo_path = root / TOPOLOGY_NAME
    topo = {}
    if topo_path.exists():
        topo = {
            "name": TOPOLOGY_NAME,
            "checksum": file_checksum(topo_path),
            "bytes": topo_path.stat().st_size,
        }
    doc = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dims": {k: int(v) for k, v in dims.items()},
        "meshes": sum(s.meshes for s in infos),
        "splits": {},
        "shards": [s.to_dict() for s in infos],
        "topology": topo,
        "config": config,
        "config_hash": config_hash(config),
        "skipped": [dict(s) for s in skipped],
        "notes": [dict(n) for n in notes],
        "provenance": dict(provenance or {}),
    }
    for s in infos:
        doc["splits"].setdefault(s.split, []).append(s.name)
    path = root / MANIFEST_NAME
    write_atomic(path, json.dumps(doc, indent=1, default=str) + "\n")
    return path


def load_manifest(root: str | os.PathLike) -> Manifest:
    """Read and sanity-check ``root/manifest.json``."""
    root = Path(root)
    path = root / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest missing (not a shard dataset?)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e
    if doc.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: format {doc.get('format')!r}, expected {FORMAT_NAME!r}")
    fields = set(ShardInfo.__dataclass_fields__)
    try:
        shards = [ShardInfo(**{k: v for k, v in s.items() if k in fields}) for s in doc["shards"]]
        return Manifest(
            root=root,
            shards=shards,
            dims=dict(doc["dims"]),
            config=doc.get("config", {}),
            config_hash=doc.get("config_hash", ""),
            skipped=doc.get("skipped", []),
            notes=doc.get("notes", []),
            provenance=doc.get("provenance", {}),
            topology=doc.get("topology", {}),
            schema_version=int(doc.get("schema_version", -1)),
            created=doc.get("created", ""),
            total_meshes=doc.get("meshes"),
            identity=manifest_identity(doc),
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: malformed manifest ({e})") from e

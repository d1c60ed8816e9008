"""Verify a shard dataset against its manifest and the schema; summarise it (``info``).

Errors (dataset not trustworthy): missing/malformed manifest, schema version mismatch, missing
shard or topology file, truncated file (size differs from the manifest), checksum mismatch,
unreadable HDF5, missing or mis-shaped/mis-typed field, mesh count or sample-id range that
disagrees with the manifest. Warnings: shard files the manifest does not list, leftover
temporary files.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc/Zstd filters)
import numpy as np
from tqdm import tqdm

from shards.manifest import Manifest, load_manifest, planned_line
from shards.schema import (
    BODY_ARRAYS,
    FORMAT_NAME,
    GENDERS,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    STR,
    TOPOLOGY_NAME,
    mask_bytes,
    required_fields,
    version_message,
)
from shards.writer import file_checksum

DIM_KEYS = ("V", "R", "K", "J", "Nv")


@dataclass
class Report:
    """Outcome of ``verify``: ``errors``/``warnings`` as (file, reason) pairs."""

    root: Path
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    #: body/gender codes of shards that store no vertices (their skinning arrays must be there)
    genders: set[int] = field(default_factory=set)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def bad_files(self) -> list[str]:
        return sorted({f for f, _ in self.errors})

    def lines(self) -> list[str]:
        out = [f"ERROR {f}: {r}" for f, r in self.errors]
        out += [f"WARNING {f}: {r}" for f, r in self.warnings]
        status = "OK" if self.ok else f"FAILED ({len(self.bad_files)} bad file(s))"
        out.append(f"{self.root}: {self.checked} shard(s) checked, {status}")
        return out


def _check_body(topo: Path, rep: Report, nv: int) -> None:
    """topology.h5 carries the skinning arrays of every gender the shards use."""
    try:
        with h5py.File(topo, "r") as f:
            for code in sorted(rep.genders):
                g = GENDERS[code] if code < len(GENDERS) else str(code)
                grp = f.get(f"body/{g}")
                if grp is None:
                    rep.errors.append((TOPOLOGY_NAME, f"no body/{g} arrays (shards use {g})"))
                    continue
                missing = [k for k in BODY_ARRAYS if k not in grp]
                if missing:
                    rep.errors.append((TOPOLOGY_NAME, f"body/{g} lacks {', '.join(missing)}"))
                elif nv and grp["v_template"].shape != (nv, 3):
                    shape = grp["v_template"].shape
                    rep.errors.append((TOPOLOGY_NAME, f"body/{g}/v_template {shape}, Nv={nv}"))
    except OSError as e:
        rep.errors.append((TOPOLOGY_NAME, f"unreadable ({str(e).splitlines()[0]})"))


def _check_shard(path: Path, info, man: Manifest, rep: Report, checksums: bool) -> None:
    name = path.name

    def err(reason: str) -> None:
        rep.errors.append((name, reason))

    if not path.exists():
        err("shard file missing")
        return
    size = path.stat().st_size
    if size != info.bytes:
        kind = "truncated" if size < info.bytes else "size differs"
        err(f"{kind}: {size} bytes, manifest says {info.bytes}")
    elif checksums:
        got = file_checksum(path, info.checksum.split(":", 1)[0])
        if got != info.checksum:
            err(f"checksum mismatch: {got[:24]}..., manifest says {info.checksum[:24]}...")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        err(f"not a readable HDF5 file ({str(e).splitlines()[0]})")
        return
    with f:
        a = f.attrs
        if a.get("format") != FORMAT_NAME:
            err(f"format {a.get('format')!r}, expected {FORMAT_NAME!r}")
            return
        if a.get("schema_version") != SCHEMA_VERSION:
            err(version_message(name, a.get("schema_version")).split(": ", 1)[1])
            return
        m = int(a.get("meshes", -1))
        if m != info.meshes:
            err(f"{m} meshes in the file, manifest says {info.meshes}")
        dims = {k: int(a[k]) for k in ("V", "R", "K", "J", "Nv", "P", "B") if k in a}
        for k in DIM_KEYS:
            if k in man.dims and dims.get(k) != int(man.dims[k]):
                err(f"dimension {k}={dims.get(k)}, manifest says {man.dims[k]}")
        dims["MB"] = mask_bytes(dims.get("R", 0))
        for spec in required_fields(bool(man.dims.get("masks", 0))):
            if spec.name not in f:
                err(f"missing field {spec.name!r}")
                continue
            ds = f[spec.name]
            try:
                want = spec.full_shape(m, dims)
            except KeyError as e:
                err(f"missing dimension attribute {e}")
                return
            if ds.shape != want:
                err(f"field {spec.name!r} has shape {ds.shape}, expected {want}")
            elif spec.dtype != STR and ds.dtype != np.dtype(spec.dtype):
                err(f"field {spec.name!r} has dtype {ds.dtype}, expected {spec.dtype}")
        if "sample_id" in f and f["sample_id"].shape == (m,) and m > 0:
            try:
                ids = f["sample_id"][()]
                if (int(ids.min()), int(ids.max())) != (info.sample_id_first, info.sample_id_last):
                    err(
                        f"sample ids {ids.min()}..{ids.max()}, manifest says "
                        f"{info.sample_id_first}..{info.sample_id_last}"
                    )
            except OSError as e:
                err(f"unreadable sample_id ({str(e).splitlines()[0]})")
        if "mesh/vertices" not in f and "body/gender" in f and m > 0:
            try:  # vertices are recomputed with the body model of each gender used
                rep.genders |= {int(g) for g in np.unique(f["body/gender"][()])}
            except OSError as e:
                err(f"unreadable body/gender ({str(e).splitlines()[0]})")


def verify(
    root: str | os.PathLike, *, checksums: bool = True, jobs: int = 4, progress: bool = False
) -> Report:
    """Check every file of a dataset; never raises for a bad dataset, reports instead.

    Shards are checked by ``jobs`` threads (hashing releases the GIL); ``progress`` shows a
    tqdm bar on stderr.
    """
    root = Path(root)
    rep = Report(root)
    try:
        man = load_manifest(root)
    except (FileNotFoundError, ValueError) as e:
        rep.errors.append((MANIFEST_NAME, str(e).split(": ", 1)[-1]))
        return rep
    if man.schema_version != SCHEMA_VERSION:
        msg = version_message(MANIFEST_NAME, man.schema_version).split(": ", 1)[1]
        rep.errors.append((MANIFEST_NAME, msg))
    topo = root / TOPOLOGY_NAME
    if not topo.exists():
        rep.errors.append((TOPOLOGY_NAME, "topology file missing"))
    elif man.topology.get("checksum") and checksums:
        if topo.stat().st_size != man.topology.get("bytes"):
            rep.errors.append((TOPOLOGY_NAME, "size differs from the manifest (truncated?)"))
        elif (
            file_checksum(topo, man.topology["checksum"].split(":", 1)[0])
            != man.topology["checksum"]
        ):
            rep.errors.append((TOPOLOGY_NAME, "checksum mismatch"))

    def one(info) -> tuple[list[tuple[str, str]], set[int]]:
        sub = Report(root)
        _check_shard(root / info.name, info, man, sub, checksums)
        return sub.errors, sub.genders

    with ThreadPoolExecutor(max(1, jobs)) as ex:
        it = ex.map(one, man.shards)
        for errs in tqdm(
            it, total=len(man.shards), desc="verify", unit="shard", disable=not progress
        ):
            rep.errors.extend(errs[0])
            rep.genders |= errs[1]
            rep.checked += 1
    if rep.genders and topo.exists():
        _check_body(topo, rep, int(man.dims.get("Nv", 0)))
    listed = {s.name for s in man.shards}
    if len(listed) != len(man.shards):
        rep.errors.append((MANIFEST_NAME, "a shard is listed twice"))
    ranges = sorted((s.sample_id_first, s.sample_id_last, s.name) for s in man.shards)
    for (_, last, a), (first, _, b) in zip(ranges, ranges[1:]):
        if first <= last:
            rep.errors.append((MANIFEST_NAME, f"sample-id ranges of {a} and {b} overlap"))
    total = sum(s.meshes for s in man.shards)
    if man.total_meshes is not None and man.total_meshes != total:
        rep.errors.append(
            (MANIFEST_NAME, f"total meshes {man.total_meshes}, shards add up to {total}")
        )
    for p in sorted(root.glob("shard-*.h5")):
        if p.name not in listed:
            rep.warnings.append((p.name, "shard file not listed in the manifest (ignored)"))
    for p in sorted(root.glob("*.tmp-*")):
        rep.warnings.append((p.name, "leftover temporary file (interrupted write?)"))
    return rep


def info(root: str | os.PathLike) -> dict:
    """Summary of a dataset: splits, counts, dims, sizes, config hash, skipped inputs."""
    root = Path(root)
    man = load_manifest(root)
    v = int(man.dims.get("V", 1))
    splits = {}
    for split, names in man.splits.items():
        meshes = sum(s.meshes for s in man.shards if s.split == split)
        splits[split] = {"shards": len(names), "meshes": meshes, "samples_all_views": meshes * v}
    total_bytes = sum(s.bytes for s in man.shards)
    hm_bytes = None
    first = root / man.shards[0].name if man.shards else None
    if first is not None and first.exists():
        try:
            with h5py.File(first, "r") as f:
                ds = f["views/heatmaps"]
                n_views = ds.shape[0] * ds.shape[1]
                hm_bytes = round(ds.id.get_storage_size() / max(n_views, 1), 1)
        except (OSError, KeyError):
            hm_bytes = None
    reasons: dict[str, int] = {}
    for s in man.skipped:
        reasons[s.get("reason", "?")] = reasons.get(s.get("reason", "?"), 0) + 1
    return {
        "root": str(root),
        "schema_version": man.schema_version,
        "created": man.created,
        "dims": man.dims,
        "meshes": man.meshes,
        "shards": len(man.shards),
        "splits": splits,
        "bytes": total_bytes,
        "bytes_per_mesh": round(total_bytes / max(man.meshes, 1), 1),
        "heatmap_bytes_per_view": hm_bytes,
        "config_hash": man.config_hash,
        "skipped": len(man.skipped),
        "skipped_reasons": reasons,
        "target": man.config.get("plan", {}).get("meshes"),
        "planned": man.config.get("planned"),
        "shortfall": man.config.get("plan_stats", {}).get("shortfall"),
    }


def format_info(d: dict) -> str:
    """Human-readable form of ``info``."""
    lines = [
        f"dataset   {d['root']}  (schema v{d['schema_version']}, created {d['created']})",
        "dims      " + "  ".join(f"{k}={v}" for k, v in d["dims"].items()),
        f"meshes    {d['meshes']} in {d['shards']} shard(s), {d['bytes'] / 2**20:.1f} MiB "
        f"({d['bytes_per_mesh']:.0f} B/mesh; heatmaps {d['heatmap_bytes_per_view']} B/view)",
    ]
    for split, s in d["splits"].items():
        lines.append(
            f"split     {split:<8} {s['shards']} shard(s)  {s['meshes']} meshes  "
            f"{s['samples_all_views']} (mesh, view) samples"
        )
    if d.get("planned") is not None and d.get("target") is not None:
        short = planned_line({"planned": d["planned"], "shortfall": d["shortfall"]}, d["target"])
        short = short or f"{d['planned']} of the target {d['target']} meshes"
        lines.append(f"plan      {short}")
    lines.append(f"config    {d['config_hash']}")
    lines.append(f"skipped   {d['skipped']} input(s)")
    for r, n in d["skipped_reasons"].items():
        lines.append(f"          {n} x {r}")
    return "\n".join(lines)

"""The build's finish stage: remove (and name) temporary files a retried unit left, check
planned = written + skipped, write ``topology.h5`` and ``manifest.json`` (last), verify the
folder. A failed check is a :class:`~pipeline.build.config.FinishError` line (exit 4) and
leaves no manifest."""

from __future__ import annotations

from pathlib import Path

import h5py

from pipeline.build.config import FinishError
from pipeline.build.units import clean_partial
from pipeline.plan import Plan
from shards.manifest import write_manifest
from shards.topology import write_topology
from shards.verify import verify
from shards.writer import ShardInfo


def finish(
    paths: dict[str, Path], plan: Plan, topology, records: dict, cfg: dict, digest: str,
    notes: list,
) -> tuple[list, list[dict]]:  # fmt: skip
    """Check the accounting, write the topology and the manifest, verify the folder
    (``paths``: ``out``, ``amass``, ``body_models``). Returns (shard records, sample skips)."""
    out = paths["out"]
    (out / "manifest.json").unlink(missing_ok=True)  # an earlier build's: written again last
    left = clean_partial(out)
    if left:
        names = ", ".join(left[:3]) + (f", +{len(left) - 3} more" if len(left) > 3 else "")
        print(f"removed {len(left)} leftover temporary file(s) ({names})", flush=True)
    shards = [ShardInfo(**records[u]["shard"]) for u in sorted(records) if records[u]["shard"]]
    sample_skips = [s for u in sorted(records) for s in records[u]["skips"]]
    written = sum(s.meshes for s in shards)
    if written + len(sample_skips) != plan.size:
        raise FinishError(
            f"{out}: planned {plan.size} != written {written} + skipped {len(sample_skips)}"
        )
    if not shards:
        first = sample_skips[0]["reason"] if sample_skips else "?"
        raise FinishError(
            f"{out}: every planned sample ({plan.size}) was skipped (first reason: {first}); "
            f"see {out / 'units'}"
        )
    write_topology(out, topology)
    write_manifest(
        out,
        shards,
        dims=_dims(out / shards[0].name),
        config={
            **cfg,
            "plan_digest": digest,
            "amass": str(paths["amass"]),
            "body_models": str(paths["body_models"]),
            "planned": plan.size,
            "written": written,
            "skipped_samples": len(sample_skips),
            "plan_stats": plan.stats,
        },
        skipped=list(plan.skips) + sample_skips,
        notes=notes,
        provenance={"regressors": topology.provenance},
    )
    rep = verify(out, checksums=False)  # checksums were taken from the written files
    if not rep.ok:
        (out / "manifest.json").unlink(missing_ok=True)
        f, why = rep.errors[0]
        more = f" (+{len(rep.errors) - 1} more)" if len(rep.errors) > 1 else ""
        raise FinishError(f"{f}: {why}{more}; the folder failed verification, no manifest")
    return shards, sample_skips


def _dims(shard: Path) -> dict[str, int]:
    with h5py.File(shard, "r") as f:
        return {k: int(f.attrs[k]) for k in ("V", "R", "K", "J", "Nv", "P", "B", "masks")}

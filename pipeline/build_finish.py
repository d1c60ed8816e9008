"""The build's finish stage: check planned = written + skipped, write ``topology.h5`` and
``manifest.json`` (last), verify the folder."""

from __future__ import annotations

from pathlib import Path

from pipeline.plan import Plan


def finish(
    paths: dict[str, Path], plan: Plan, topology, records: dict, cfg: dict, digest: str,
    notes: list,
) -> tuple[list, list[dict]]:  # fmt: skip
    """Check the accounting, write the topology and the manifest, verify the folder
    (``paths``: ``out``, ``amass``, ``body_models``). Returns (shard records, sample skips)."""
    from shards.manifest import write_manifest
    from shards.topology import write_topology
    from shards.verify import verify
    from shards.writer import ShardInfo

    out = paths["out"]
    shards = [ShardInfo(**records[u]["shard"]) for u in sorted(records) if records[u]["shard"]]
    sample_skips = [s for u in sorted(records) for s in records[u]["skips"]]
    written = sum(s.meshes for s in shards)
    if written + len(sample_skips) != plan.size:
        raise RuntimeError(
            f"{out}: planned {plan.size} != written {written} + skipped {len(sample_skips)}"
        )
    if not shards:
        raise RuntimeError(f"{out}: every planned sample was skipped; see the unit records")
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
        raise RuntimeError("; ".join(rep.lines()[:5]))
    return shards, sample_skips


def _dims(shard: Path) -> dict[str, int]:
    import h5py

    with h5py.File(shard, "r") as f:
        return {k: int(f.attrs[k]) for k in ("V", "R", "K", "J", "Nv", "P", "B", "masks")}

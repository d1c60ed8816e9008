"""Command line: ``python -m shards {info,verify,show} DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def provenance_info(root: Path) -> dict:
    """``regressors`` (joint set -> provenance, from topology.h5, else the manifest, else
    "unknown") and ``notes`` (the manifest's notes on inputs) of a dataset."""
    from shards.manifest import load_manifest
    from shards.schema import TOPOLOGY_NAME
    from shards.topology import UNKNOWN, joint_provenance

    man = load_manifest(root)
    regs = dict(man.provenance.get("regressors", {}))
    if (Path(root) / TOPOLOGY_NAME).exists():
        regs = {
            k: (v if v != UNKNOWN else regs.get(k, v)) for k, v in joint_provenance(root).items()
        }
    return {"regressors": regs, "notes": man.notes}


def format_provenance(d: dict) -> str:
    """Lines for ``provenance_info``: one per joint set, then the notes' count by kind."""
    lines = []
    for name, p in d["regressors"].items():
        where = "  ".join(p[k] for k in ("file", "sha256", "detail") if p.get(k))
        lines.append(f"regressor {name:<8} {p.get('source', 'unknown')}  {where}".rstrip())
    kinds: dict[str, int] = {}
    for n in d["notes"]:
        kinds[n.get("kind", "?")] = kinds.get(n.get("kind", "?"), 0) + 1
    lines.append(f"notes     {len(d['notes'])} on inputs (manifest.json 'notes')")
    lines += [f"          {n} x {k}" for k, n in kinds.items()]
    return "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shards", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info", help="summarise a dataset")
    p.add_argument("dir", type=Path)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("verify", help="check every file; exit 1 naming each bad file")
    p.add_argument("dir", type=Path)
    p.add_argument("--no-checksums", action="store_true", help="skip hashing file bytes")
    p.add_argument("--jobs", type=int, default=4, help="shards checked in parallel")
    p = sub.add_parser("show", help="montage PNG of a few samples and views")
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("montage.png"))
    p.add_argument("--split", default="train")
    p.add_argument("--meshes", type=int, default=4)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.cmd == "info":
        from shards.verify import format_info, info

        try:
            d = info(args.dir)
            d.update(provenance_info(args.dir))
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(json.dumps(d, indent=1) if args.json else format_info(d) + format_provenance(d))
        return 0
    if args.cmd == "verify":
        from shards.verify import verify

        rep = verify(args.dir, checksums=not args.no_checksums, jobs=args.jobs, progress=True)
        for line in rep.lines():
            print(
                line, file=sys.stdout if line.startswith(("WARNING", str(args.dir))) else sys.stderr
            )
        return 0 if rep.ok else 1
    from shards.show import show

    try:
        out = show(
            args.dir,
            args.out,
            split=args.split,
            meshes=args.meshes,
            views=args.views,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

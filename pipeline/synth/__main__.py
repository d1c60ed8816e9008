"""CLI: ``python -m pipeline.synth --out DIR [--seed 0] [--small] [--preview PNG]``;
``python -m pipeline.synth stats PATH... [--ref PATH...]`` prints motion statistics
(:mod:`pipeline.synth.stats`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.synth import generate


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["stats"]:
        from pipeline.synth.stats import main as stats_main

        return stats_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m pipeline.synth", description=__doc__)
    ap.add_argument("--out", type=Path, required=True, help="output root (body_models/, amass/)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the motion archive")
    ap.add_argument("--small", action="store_true", help="small, fast variant (tests)")
    ap.add_argument(
        "--preview",
        type=Path,
        default=None,
        help="only draw a preview montage PNG (generates the data if missing)",
    )
    args = ap.parse_args(argv)
    if args.preview is not None:
        from pipeline.synth.preview import write_preview

        if not (args.out / "body_models" / "smplh" / "neutral" / "model.npz").is_file():
            generate(args.out, seed=args.seed, small=args.small)
        print(f"wrote {write_preview(args.out, args.preview, seed=args.seed)}")
        return 0
    t0 = time.time()
    generate(args.out, seed=args.seed, small=args.small)
    print(f"embedded default written to {args.out} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

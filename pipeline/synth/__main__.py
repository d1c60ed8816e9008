"""CLI of the embedded default.

- ``python -m pipeline.synth --out DIR [--seed 0] [--small] [--preview PNG]``: body models and
  motion archive under DIR (:func:`pipeline.synth.generate`), or only a preview montage PNG;
- ``python -m pipeline.synth motions --out AMASS_DIR [--seed S] [--small] [--body-models DIR]
  [--png PNG]``: only the motion archive (:mod:`pipeline.synth.archive`), or only its
  stick-figure sheet (generating the archive if missing);
- ``python -m pipeline.synth stats PATH... [--ref PATH...]`` prints motion statistics
  (:mod:`pipeline.synth.stats`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.synth import generate
from pipeline.synth.stats import main as stats_main


def motions_main(argv: list[str]) -> int:
    """``python -m pipeline.synth motions --out DIR [--seed S] [--small] [--body-models DIR]
    [--png PNG]``: write the motion archive, or only draw its stick-figure sheet."""
    from pipeline.synth.archive import generate_archive  # heavy: torch, smplx (not for stats)
    from pipeline.synth.preview import plot_motions  # heavy: matplotlib

    ap = argparse.ArgumentParser(
        prog="python -m pipeline.synth motions", description=motions_main.__doc__
    )
    ap.add_argument("--out", type=Path, required=True, help="archive root to write (or read)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--body-models", type=Path, default=None, help="plant feet with these")
    ap.add_argument("--png", type=Path, default=None, help="only draw the stick-figure sheet")
    args = ap.parse_args(argv)
    if args.png is None or not any(args.out.rglob("*_poses.npz")):
        files = generate_archive(args.out, args.seed, args.small, args.body_models)
        print(f"wrote {len(files)} sequences under {args.out}")
    if args.png is not None:
        print(f"wrote {plot_motions(args.out, args.png, body_models=args.body_models)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["stats"]:
        return stats_main(argv[1:])
    if argv[:1] == ["motions"]:
        return motions_main(argv[1:])
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.synth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
        from pipeline.synth.preview import write_preview  # heavy: matplotlib, only here

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

"""Command line: ``python -m cameras rig --views 8 [--json]`` and
``python -m cameras plot --views 8 --out rig.png``."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .rig import Rig, make_rig


def _table(rig: Rig) -> str:
    rows = [
        f"capture volume centre (m): {np.array2string(rig.centre, precision=3)}",
        f"{'#':>2} {'name':<14} {'id':<20} {'interp':<6} {'fx':>8} {'fy':>8} {'cx':>7} {'cy':>7} "
        f"{'size':>9} {'centre (m)':>22}",
    ]
    for i, c in enumerate(rig):
        pos = " ".join(f"{v:6.2f}" for v in c.centre)
        rows.append(
            f"{i:>2} {c.name:<14} {c.id:<20} {'yes' if c.interpolated else 'no':<6} "
            f"{c.K[0, 0]:8.1f} {c.K[1, 1]:8.1f} {c.K[0, 2]:7.1f} {c.K[1, 2]:7.1f} "
            f"{c.width:>4}x{c.height:<4} {pos:>22}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cameras", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_rig = sub.add_parser("rig", help="print the camera rig")
    p_rig.add_argument("--views", type=int, default=8)
    p_rig.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_plot = sub.add_parser("plot", help="draw the rig top-down (PNG)")
    p_plot.add_argument("--views", type=int, default=8)
    p_plot.add_argument("--out", default="rig.png")
    args = ap.parse_args(argv)
    try:
        rig = make_rig(args.views)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.cmd == "rig":
        print(rig.to_json() if args.json else _table(rig))
    else:
        from .plot import plot_rig

        plot_rig(rig, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

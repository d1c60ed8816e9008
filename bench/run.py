"""Run every benchmark in bench/ and write the figures to one JSON file.

Each `bench/bench_<area>.py` exposes `run() -> dict` of named figures. Results are printed as
they come and saved (with the machine they ran on) to `--out`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    """Describe the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--only", nargs="*", help="area names, e.g. heatmaps shards build")
    args = ap.parse_args()
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    for path in sorted(HERE.glob("bench_*.py")):
        area = path.stem.removeprefix("bench_")
        if args.only and area not in args.only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(mod)
        print(f"== {area}", flush=True)
        t0 = time.perf_counter()
        figures = mod.run()
        figures["_seconds"] = round(time.perf_counter() - t0, 1)
        results[area] = figures
        for k, v in figures.items():
            print(f"   {k:<48} {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

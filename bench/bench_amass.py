"""AMASS input: generating the default archive, scanning it (headers only), loading it."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from timing import best_time

from pipeline import amass
from pipeline.synth.archive import generate_archive


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_amass_") as tmp:
        root = Path(tmp) / "amass"
        t0 = time.perf_counter()
        files = generate_archive(root, seed=0)
        t_gen = time.perf_counter() - t0
        infos, _ = amass.scan(root)
        frames = sum(i.n_frames for i in infos)
        motion_s = sum(i.duration for i in infos)
        t_scan = best_time(lambda: amass.scan(root))
        t_load = best_time(lambda: amass.load_archive(root), repeat=2)
        seq = amass.load_sequence(files[0], root)
        idx = np.random.default_rng(0).integers(0, seq.n_frames, 256)
        t_batch = best_time(lambda: seq.frames(idx), repeat=5)
        mib = sum(p.stat().st_size for p in root.rglob("*.npz")) / 2**20
    return {
        "sequences": len(infos),
        "frames": frames,
        "motion_minutes": round(motion_s / 60, 2),
        "archive_MiB": round(mib, 1),
        "generate_s": round(t_gen, 2),
        "scan_ms_per_file": round(1e3 * t_scan / len(infos), 3),
        "load_frames_per_s": round(frames / t_load),
        "frame_batch_256_us": round(1e6 * t_batch, 1),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:<24} {v}")

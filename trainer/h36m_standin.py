"""Stand-in Human3.6M files in VideoPose3D's layout, made from a shard split (not real data).

``python -m trainer.h36m_standin --data out/shards --out out/h36m_standin [--split test]``
writes ``data_3d_h36m.npz`` and ``data_2d_h36m_gt.npz`` for ``trainer eval-h36m``:

- every AMASS sequence of the split becomes an action (``"<Motion> <k>"``, frames in source
  order); sequences alternate between S9 and S11;
- its placed H36M-17 world joints (``joints3d/h36m17``, metres, z-up) become the 17 mocap
  joints VideoPose3D keeps; the 15 it drops copy a neighbouring kept joint (finite, as in
  real files);
- 2D keypoints are those joints projected with the subject's published cameras
  (``cameras.h36m``, Human3.6M distortion), ``--extra`` junk frames appended to each sequence
  as detection files may have.

docs/h36m.md evaluates the demo model on such files: the same bodies as ``trainer eval
--split test`` sees, through the Human3.6M path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc/Zstd filters)
import numpy as np

from cameras.h36m import load_h36m_cameras
from shards.manifest import load_manifest

KEPT = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
#: dropped mocap joint -> the kept mocap joint it copies (toes/sites -> foot, hand ends -> hand)
FILL = {4: 3, 5: 3, 9: 8, 10: 8, 11: 0, 16: 13, 20: 19, 21: 19, 22: 19, 23: 19, 24: 13}
FILL.update({28: 27, 29: 27, 30: 27, 31: 27})
SUBJECTS = ("S9", "S11")


def split_sequences(root: Path, split: str) -> dict[str, np.ndarray]:
    """{source path: (F, 17, 3) H36M-17 world joints in frame order} of one split."""
    seqs: dict[str, list] = {}
    for info in load_manifest(root).split_shards(split):  # a clear error for an unknown split
        with h5py.File(Path(root) / info.name, "r") as f:
            paths = f["source/path"][()]
            frames = f["source/frame"][()]
            joints = f["joints3d/h36m17"][()]
        for p, fr, j in zip(paths, frames, joints):
            key = p.decode() if isinstance(p, bytes) else str(p)
            seqs.setdefault(key, []).append((int(fr), j))
    return {
        k: np.stack([j for _, j in sorted(v, key=lambda t: t[0])]).astype(np.float64)
        for k, v in sorted(seqs.items())
    }


def write_standin(root: Path, out: Path, split: str = "test", extra: int = 3) -> tuple[Path, Path]:
    """Write the two files under ``out``; returns their paths."""
    p3d: dict[str, dict] = {s: {} for s in SUBJECTS}
    p2d: dict[str, dict] = {s: {} for s in SUBJECTS}
    cams = {s: load_h36m_cameras(s) for s in SUBJECTS}
    for k, (name, j17) in enumerate(split_sequences(root, split).items()):
        subject = SUBJECTS[k % len(SUBJECTS)]
        motion = Path(name).name.split("_")[0].capitalize()
        action = f"{motion} {k}"
        pos = np.zeros((len(j17), 32, 3))
        pos[:, list(KEPT)] = j17
        for d, src in FILL.items():
            pos[:, d] = pos[:, src]
        p3d[subject][action] = pos.astype(np.float32)
        junk = np.full((extra, 17, 2), 5000.0)
        p2d[subject][action] = [
            np.concatenate([cam.project(j17).uv, junk]).astype(np.float32) for cam in cams[subject]
        ]
    out.mkdir(parents=True, exist_ok=True)
    f3, f2 = out / "data_3d_h36m.npz", out / "data_2d_h36m_gt.npz"
    np.savez_compressed(f3, positions_3d=p3d)
    sym = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": sym}
    np.savez_compressed(f2, positions_2d=p2d, metadata=meta)
    return f3, f2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer.h36m_standin", description=__doc__)
    ap.add_argument("--data", required=True, help="shard folder")
    ap.add_argument("--out", required=True, help="folder for the two .npz files")
    ap.add_argument("--split", default="test")
    ap.add_argument("--extra", type=int, default=3, help="junk frames appended to 2D sequences")
    args = ap.parse_args(argv)
    try:
        f3, f2 = write_standin(Path(args.data), Path(args.out), args.split, args.extra)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {f3} and {f2}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

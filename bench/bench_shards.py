"""Shard benchmarks: streaming reader vs a map-style h5py Dataset (same run), schema 2 (body
parameters, vertices skinned on the trainer's device) against schema 1's payload (float16
``mesh/vertices`` read and moved by the reader), heatmap bytes per view on disk, compression
codecs on realistic heatmaps, checksum cost.

Reader figures are samples/s on one core (torch single-threaded; ``w0`` = in the main process,
``w1`` = one DataLoader worker), one random view per mesh, R=56, batches of 64, Nv=6890.
``reader_*`` read schema 2 as the trainer does (no vertices from the reader: ``DataSource``
skins them on its device; ``skinning_cpu_*`` is what that costs on one CPU thread, with dense
pose correctives like the real SMPL+H); ``v1_reader_*`` read the same samples with stored
float16 vertices turned into the camera frame by the reader (schema 1's way, same run).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from shards.manifest import load_manifest
from shards.reader import loader
from shards.testing import gaussian_heatmaps, make_fake_dataset
from shards.writer import compression

N_MESHES, VIEWS, RES, NV, BATCH = 1536, 4, 56, 6890, 64
MAP_SAMPLES = 1024


class MapStyle(Dataset):
    """Baseline: one (mesh, random view) sample per __getitem__, read through h5py."""

    def __init__(self, root: Path, seed: int = 0) -> None:
        man = load_manifest(root)
        self.paths = [root / s.name for s in man.shards]
        self.index = [(i, m) for i, s in enumerate(man.shards) for m in range(s.meshes)]
        self.view = np.random.default_rng(seed).integers(0, int(man.dims["V"]), len(self.index))
        self.files: dict[int, h5py.File] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        si, m = self.index[i]
        v = int(self.view[i])
        f = self.files.get(si)
        if f is None:  # opened lazily inside each worker
            f = self.files[si] = h5py.File(self.paths[si], "r")
        rot, t = f["views/R"][m, v], f["views/t"][m, v]
        crop = f["views/crop"][m, v]

        def norm(kp, vis):
            xy = kp @ crop[:, :2].T + crop[:, 2]
            return np.concatenate([2 * (xy + 0.5) / 224 - 1, vis[:, None]], 1).astype(np.float32)

        verts = f["mesh/vertices"][m].astype(np.float32)
        j3 = f["joints3d/h36m17"][m]
        return {
            "heatmaps": torch.from_numpy(f["views/heatmaps"][m, v].astype(np.float32) / 255),
            "vertices": torch.from_numpy(verts @ rot.T + t),
            "joints3d": torch.from_numpy(j3 @ rot.T + t),
            "joints2d": torch.from_numpy(
                norm(f["views/kp2d_h36m17"][m, v], f["views/visible_h36m17"][m, v])
            ),
            "kp2d": torch.from_numpy(norm(f["views/kp2d"][m, v], f["views/visible"][m, v])),
            "sample_id": torch.tensor(int(f["sample_id"][m])),
            "view": torch.tensor(int(f["views/camera"][m, v])),
        }


def _rate(dl, limit: int | None = None, epochs: int = 1) -> float:
    """Samples/s, timed from the first batch of each epoch (worker start-up excluded)."""
    n, secs = 0, 0.0
    for e in range(epochs):
        if hasattr(dl.dataset, "set_epoch"):
            dl.dataset.set_epoch(e)
        it = iter(dl)
        next(it)
        t0 = time.perf_counter()
        for b in it:
            n += len(b["sample_id"])
            if limit and n >= limit:
                break
        secs += time.perf_counter() - t0
    return n / secs


def _codecs() -> dict:
    """Bytes/view and decode time of realistic heatmaps (17 blobs, sigma 2, R=56)."""
    rng = np.random.default_rng(0)
    n = 256
    hm = gaussian_heatmaps(rng.uniform(4, 220, (n, 1, 17, 2)), np.ones((n, 1, 17)), RES)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for kind in (
            "gzip",
            "zstd",
            "zstd:1",
            "blosc-zstd",
            "blosc-lz4",
            "blosc-lz4hc",
            "blosc-lz4hc:1",
        ):
            p = Path(d) / f"{kind.replace(':', '_')}.h5"
            with h5py.File(p, "w") as f:
                f.create_dataset("h", data=hm, chunks=(1, 1, 17, RES, RES), **compression(kind))
            with h5py.File(p, "r") as f:
                ds = f["h"]
                size = ds.id.get_storage_size() / n
                t0 = time.perf_counter()
                for _ in range(3):
                    ds[()]
                us = (time.perf_counter() - t0) / (3 * n) * 1e6
            name = kind.replace(":", "_")
            out[f"codec_{name}_bytes_per_view"] = round(size)
            out[f"codec_{name}_decode_us_per_view"] = round(us, 1)
    return out


def _checksums(paths: list[Path]) -> dict:
    out = {}
    total = sum(p.stat().st_size for p in paths)
    for algo in ("blake2b", "sha256"):
        t0 = time.perf_counter()
        for p in paths:
            h = hashlib.new(algo)
            with open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        out[f"checksum_{algo}_MB_per_s"] = round(total / 1e6 / (time.perf_counter() - t0))
    return out


def _diversity(root: Path) -> dict:
    """Batch diversity (``shards.diversity``) of training streams over one epoch of ``root``'s
    train split, batches of 16, all views (the demo's setting), with the former reader
    defaults (blocks of 64 meshes) and today's, and the reader's rate for each."""
    from shards.diversity import split_poses, stream_diversity

    poses = split_poses(root, "train")
    out = {}
    for name, kw in (("block64", {"block": 64}), ("block8", {})):
        dl = loader(
            root, batch_size=16, views="all", uint8_heatmaps=True, drop_last=True,
            with_vertices=False, **kw,
        )  # fmt: skip
        t0 = time.perf_counter()
        ids = [b["sample_id"].numpy() for b in dl]
        rate = sum(len(i) for i in ids) / (time.perf_counter() - t0)
        d = stream_diversity(ids, poses)
        out[f"batch_diversity_{name}"] = round(d["ratio"], 3)
        out[f"reader_demo_stream_samples_per_s_{name}"] = round(rate)
    return out


def _skinning(root: Path) -> dict:
    """Samples/s of ``BodySkinner.camera_vertices`` on one CPU thread, batches of 64."""
    from shards.body import BodySkinner

    sk = BodySkinner.from_topology(root)
    dl = loader(root, batch_size=BATCH, views="random", with_vertices=False)
    batches = [b for _, b in zip(range(6), dl)]
    with torch.no_grad():
        sk.camera_vertices(batches[0])
        t0 = time.perf_counter()
        for b in batches:
            sk.camera_vertices(b)
    return {
        "skinning_cpu_1thread_samples_per_s": round(
            BATCH * len(batches) / (time.perf_counter() - t0)
        )
    }


def run() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    res: dict = {}
    try:
        with tempfile.TemporaryDirectory() as d:
            roots = {
                "": make_fake_dataset(Path(d) / "v2", N_MESHES, VIEWS, RES, NV, False, 3, seed=0),
                "v1_": make_fake_dataset(
                    Path(d) / "v1", N_MESHES, VIEWS, RES, NV, False, 3, seed=0, store_vertices=True
                ),
            }
            root = roots[""]
            man = load_manifest(root)
            n_views = N_MESHES * VIEWS
            hm_bytes = 0
            for s in man.shards:
                with h5py.File(root / s.name) as f:
                    hm_bytes += f["views/heatmaps"].id.get_storage_size()
            res["heatmap_bytes_per_view_R56"] = round(hm_bytes / n_views)
            for rep in range(2):  # interleaved, best of: the machine is shared
                for tag, r in roots.items():
                    # schema 2 as the trainer reads it (vertices skinned on its device)
                    kw = {"with_vertices": bool(tag)}
                    if rep == 0:
                        mb = load_manifest(r)
                        res[f"{tag}shard_bytes_per_mesh"] = round(
                            sum(s.bytes for s in mb.shards) / N_MESHES
                        )
                    figs = {}
                    for w in (0, 1):
                        dl = loader(
                            r, batch_size=BATCH, num_workers=w, views="random", seed=1, **kw
                        )
                        figs[f"{tag}reader_samples_per_s_w{w}"] = _rate(dl, epochs=2)
                        dl = loader(r, batch_size=BATCH, num_workers=w, uint8_heatmaps=True, **kw)
                        figs[f"{tag}reader_uint8_heatmaps_samples_per_s_w{w}"] = _rate(dl, epochs=2)
                    dl = loader(r, batch_size=BATCH, num_workers=0, views="all", **kw)
                    figs[f"{tag}reader_all_views_samples_per_s_w0"] = _rate(dl)
                    for k, v in figs.items():
                        res[k] = max(res.get(k, 0), round(v))
            res.update(_skinning(root))
            for w in (0, 1):
                ms = DataLoader(
                    MapStyle(roots["v1_"]), batch_size=BATCH, shuffle=True, num_workers=w
                )
                res[f"map_style_samples_per_s_w{w}"] = round(_rate(ms, MAP_SAMPLES))
                res[f"speedup_vs_map_style_w{w}"] = round(
                    res[f"v1_reader_samples_per_s_w{w}"] / res[f"map_style_samples_per_s_w{w}"], 1
                )
            res.update(_checksums([root / s.name for s in man.shards]))
        res.update(_codecs())
        demo = Path(__file__).resolve().parent.parent / "out/shards"
        if (demo / "manifest.json").exists():  # `make shards` output: real motion order
            res.update(_diversity(demo))
    finally:
        torch.set_num_threads(threads)
    res["targets"] = (
        "reader >= 10000/s/core, >= 8000/s through 1 worker (uint8), >= 10x map-style "
        "(same payload), heatmaps <= 4096 B/view"
    )
    return res


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:<44} {v}")

"""Streaming reader: a torch IterableDataset over a shard folder and split.

Epoch plan (a pure function of the manifest, ``seed``, ``epoch`` and the view policy):

1. Every shard of the split is cut into blocks of ``block`` consecutive meshes; the blocks are
   shuffled globally from ``(seed, epoch)`` and concatenated into one global mesh sequence.
2. The view policy turns each mesh into ``s`` samples: ``"all"`` (all V views) or a list of
   view slots, each of them a sample (``view_choice="each"``) or one of them drawn per mesh
   from ``(seed, epoch)`` (``view_choice="random"``, ``s = 1``); ``views="random"`` is one
   drawn from all V.
3. The mesh sequence is cut into ``T = world_size * num_workers`` contiguous, balanced streams
   (sizes differ by at most one mesh); stream ``g = rank * num_workers + worker`` belongs to
   that DataLoader worker of that rank. Each sample is therefore seen exactly once per epoch
   for any world size and worker count (a stream may be empty when T exceeds the meshes).
4. Each stream reads windows of ``ceil(shuffle_buffer / s)`` meshes (few h5py calls per
   window: one hyperslab read per field and contiguous run), permutes the window's samples
   (the bounded shuffle buffer) and emits batches.

Resume: ``set_epoch(epoch, consumed)`` with ``consumed`` = samples already yielded globally in
that epoch. It is split as the training loop consumed it: ranks in lockstep (rank ``r`` took
``consumed // W`` plus one if ``r < consumed % W``), and within a rank the DataLoader took
batches round-robin from its workers (worker 0 first, exhausted workers skipped). With the
dataset's own batching (``batch_size`` set, as ``loader()`` does) this reproduces exactly the
samples not yet seen; each stream skips its share without reading the skipped windows.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc/Zstd filters)
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from cameras.crop import CROP_RES
from shards import masks as mask_codec
from shards.batch import pack_batch, unpack_batch
from shards.manifest import Manifest, load_manifest
from shards.schema import FORMAT_NAME, SCHEMA_VERSION, version_message

#: small per-mesh fields, read whole once per opened shard and sliced in memory
MESH_FIELDS = (
    "sample_id",
    "joints3d/h36m17",
    "body/pose",
    "body/betas",
    "body/trans",
    "body/gender",
    "body/placement",
)
#: small per-view fields, likewise
VIEW_FIELDS = (
    "views/camera",
    "views/R",
    "views/t",
    "views/kp2d",
    "views/kp2d_h36m17",
    "views/visible",
    "views/crop",
)
OPTIONAL_VIEW_FIELDS = ("views/visible_h36m17", "views/occluded")
HEAVY_FIELDS = ("views/heatmaps", "views/masks")
STORED_VERTICES = "mesh/vertices"  # optional in schema 2 (build.store_vertices)


class ShardError(RuntimeError):
    """A shard file is unreadable or disagrees with the manifest (message names the file)."""


def dist_info(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): explicit arguments, else torch.distributed, else RANK/WORLD_SIZE."""
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in key])


def rr_consumption(lengths: Sequence[int], batch: int, consumed: int) -> list[int]:
    """Samples taken from each worker when a DataLoader round-robins batches of ``batch``.

    ``lengths`` are the workers' stream lengths in samples; returns per-worker counts summing
    to ``min(consumed, sum(lengths))``. Exhausted workers are skipped, as DataLoader does.
    """
    n = len(lengths)
    taken = [0] * n
    left = consumed
    full = [ln // batch for ln in lengths]
    rounds = min(left // (batch * n), min(full)) if n else 0
    for w in range(n):
        taken[w] = rounds * batch
    left -= rounds * batch * n
    while left > 0:
        progressed = False
        for w in range(n):
            if left <= 0:
                break
            step = min(batch, lengths[w] - taken[w], left)
            if step > 0:
                taken[w] += step
                left -= step
                progressed = True
        if not progressed:
            break
    return taken


class ShardDataset(IterableDataset):
    """Stream (mesh, view) samples of one split as trainer-ready tensors.

    Yields dicts following the sample contract of docs/ARCHITECTURE.md: per sample when
    ``batch_size`` is None, else batched dicts (leading batch axis) built with vectorised
    decoding, which is the fast path (use with ``DataLoader(batch_size=None)``, see
    ``loader``). ``views``: ``"random"``, ``"all"`` or a list of view slots (e.g. [0, 1, 2, 3]);
    ``view_choice="random"`` draws one of them per mesh and epoch (``"each"``: all of them).
    ``skip_bad``: warn and skip unreadable shards instead of stopping (exactly-once then only
    holds for the good shards). ``uint8_heatmaps``: yield heatmaps as stored (uint8, peak 255)
    instead of float32 in [0, 1], so workers move 4x fewer bytes; the trainer then divides by
    255 on its device. Every batch carries the body parameters (``pose``, ``betas``,
    ``gender``) and ``body_R``, ``body_t`` (posed body without translation -> camera frame), from
    which ``shards.body.BodySkinner.camera_vertices`` makes ``vertices`` on any device (what the
    trainer does). ``with_vertices`` (default) also yields ``vertices`` from the reader: stored
    ``mesh/vertices`` when the dataset has them, else recomputed here on the CPU (~1 ms per
    sample); ``with_vertices=False`` leaves them out. ``manifest``: the dataset's
    :class:`~shards.manifest.Manifest` when the caller has read it already (else read here).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        views: str | Sequence[int] = "random",
        view_choice: str = "each",
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        shuffle_buffer: int = 1024,
        block: int = 8,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        skip_bad: bool = False,
        with_vertices: bool = True,
        with_masks: bool | None = None,
        epoch: int = 0,
        consumed: int = 0,
        max_open_files: int = 64,
        uint8_heatmaps: bool = False,
        manifest: Manifest | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.manifest = load_manifest(self.root) if manifest is None else manifest
        if self.manifest.schema_version != SCHEMA_VERSION:
            raise ShardError(
                version_message(self.root / "manifest.json", self.manifest.schema_version)
            )
        self.split = split
        self.shards = self.manifest.split_shards(split)
        dims = self.manifest.dims
        self.V, self.R, self.K = int(dims["V"]), int(dims["R"]), int(dims["K"])
        self.has_masks = bool(dims.get("masks", 0))
        self.with_masks = self.has_masks if with_masks is None else bool(with_masks)
        if self.with_masks and not self.has_masks:
            raise ValueError(f"{self.root}: masks requested but the dataset has none")
        if view_choice not in ("each", "random"):
            raise ValueError(f"view_choice must be 'each' or 'random', got {view_choice!r}")
        if isinstance(views, str):
            if views not in ("random", "all"):
                raise ValueError(f"views must be 'random', 'all' or a list, got {views!r}")
            self.views: str | list[int] = views
            pool = list(range(self.V))
        else:
            pool = sorted(set(int(v) for v in views))
            if not pool or pool[0] < 0 or pool[-1] >= self.V:
                raise ValueError(f"view slots {list(views)} out of range for V={self.V}")
            self.views = pool
        #: the eligible view slots, and whether one of them is drawn per mesh and epoch
        self.view_pool = np.asarray(pool, np.int64)
        self.random_view = views == "random" or view_choice == "random"
        self.per_mesh = 1 if self.random_view else len(pool)
        self.batch_size = batch_size
        # read all views of a mesh in one slab when at least half of them are wanted
        self._slab_heavy = 2 * self.per_mesh >= self.V
        self.shuffle, self.seed = shuffle, seed
        self.shuffle_buffer, self.block = max(1, shuffle_buffer), max(1, block)
        self.drop_last = drop_last
        self.rank_arg, self.world_arg = rank, world_size
        self.skip_bad = skip_bad
        self.with_vertices = with_vertices
        self.max_open_files = max_open_files
        self.uint8_heatmaps = uint8_heatmaps
        self.epoch, self.consumed = epoch, consumed
        self._files: OrderedDict[int, h5py.File] = OrderedDict()
        self._small: dict[int, dict[str, np.ndarray]] = {}
        self._bad: set[int] = set()
        self._skinner = None  # shards.body.BodySkinner, loaded when vertices are computed here
        #: set by ``loader()``: batches leave a worker as 3-4 tensors (see ``pack_batch``)
        self.pack_in_workers = False
        #: set by ``loader()``: (epoch, consumed) in shared memory, read by persistent workers
        self.shared_position: torch.Tensor | None = None

    # ---- plan -------------------------------------------------------------------------
    def set_epoch(self, epoch: int, consumed: int = 0) -> None:
        """Select the epoch (reshuffles) and the number of samples already consumed in it
        (seen by persistent DataLoader workers through ``shared_position``)."""
        self.epoch, self.consumed = int(epoch), int(consumed)
        if self.shared_position is not None:
            self.shared_position.copy_(torch.tensor([self.epoch, self.consumed]))

    @property
    def num_meshes(self) -> int:
        return sum(s.meshes for s in self.shards)

    def __len__(self) -> int:
        """Samples per epoch over all ranks and workers."""
        return self.num_meshes * self.per_mesh

    def _mesh_sequence(self) -> tuple[np.ndarray, np.ndarray]:
        """Global (shard index, mesh index) sequence of this epoch."""
        units = [
            (si, b, min(b + self.block, s.meshes))
            for si, s in enumerate(self.shards)
            for b in range(0, s.meshes, self.block)
        ]
        if self.shuffle:
            order = _rng(self.seed, self.epoch, 1).permutation(len(units))
            units = [units[i] for i in order]
        shard = np.concatenate([np.full(b1 - b0, si, np.int32) for si, b0, b1 in units])
        mesh = np.concatenate([np.arange(b0, b1, dtype=np.int64) for _, b0, b1 in units])
        return shard, mesh

    def _view_slots(self, n: int) -> np.ndarray:
        """(n, s) views for the epoch's global mesh sequence."""
        pool = self.view_pool
        if self.random_view:  # one draw per position of the global sequence: any split agrees
            return pool[_rng(self.seed, self.epoch, 2).integers(0, len(pool), (n, 1))]
        return np.broadcast_to(pool, (n, len(pool)))

    def _streams(self, n: int, t: int) -> list[tuple[int, int]]:
        return [(g * n // t, (g + 1) * n // t) for g in range(t)]

    def _skip_for(self, rank: int, world: int, worker: int, nworkers: int) -> int:
        if self.consumed <= 0:
            return 0
        n = self.num_meshes
        spans = self._streams(n, world * nworkers)
        c_rank = self.consumed // world + (1 if rank < self.consumed % world else 0)
        lengths = [
            (spans[rank * nworkers + w][1] - spans[rank * nworkers + w][0]) * self.per_mesh
            for w in range(nworkers)
        ]
        bs = self.batch_size or 1
        if self.drop_last and self.batch_size:  # partial tail batches are never yielded
            lengths = [ln // bs * bs for ln in lengths]
        return rr_consumption(lengths, bs, c_rank)[worker]

    # ---- IO -----------------------------------------------------------------------------
    def _file(self, si: int) -> h5py.File:
        f = self._files.get(si)
        if f is not None:
            self._files.move_to_end(si)
            return f
        path = self.root / self.shards[si].name
        if not path.exists():
            raise ShardError(f"{path}: shard file missing")
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise ShardError(f"{path}: cannot open ({e})") from e
        fmt = f.attrs.get("format")
        ver = f.attrs.get("schema_version")
        m = f.attrs.get("meshes")
        if fmt != FORMAT_NAME:
            f.close()
            raise ShardError(f"{path}: format {fmt!r}, expected {FORMAT_NAME!r}")
        if ver != SCHEMA_VERSION:
            f.close()
            raise ShardError(version_message(path, ver))
        if m != self.shards[si].meshes:
            f.close()
            raise ShardError(f"{path}: {m} meshes, manifest says {self.shards[si].meshes}")
        try:  # the small fields, whole: one chunk read each, then runs slice them in memory
            small = {name: f[name][()] for name in self._small_fields(f)}
        except BaseException:
            f.close()
            raise
        self._files[si] = f
        self._small[si] = small
        while len(self._files) > self.max_open_files:
            old, fo = self._files.popitem(last=False)
            self._small.pop(old, None)
            fo.close()
        return f

    def _close_all(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._small.clear()

    def _small_fields(self, f: h5py.File) -> list[str]:
        return list(MESH_FIELDS) + list(VIEW_FIELDS) + [k for k in OPTIONAL_VIEW_FIELDS if k in f]

    @staticmethod
    def _read_pairs_into(ds: h5py.Dataset, m0: int, slots: np.ndarray, out: np.ndarray) -> None:
        """Rows ``(m0 + i, slots[i, k])`` of a per-view dataset into ``out[i, k]``.

        One chunk read per pair with a reused file space (a single union-of-hyperslabs
        selection is quadratic in HDF5).
        """
        n, s = slots.shape
        rest = tuple(ds.shape[2:])
        if out.shape != (n, s) + rest:
            raise ValueError(f"field {ds.name} has shape {ds.shape}, expected (.., .., {rest})")
        fspace = ds.id.get_space()
        mspace = h5py.h5s.create_simple((1, 1) + rest)
        zeros = (0,) * len(rest)
        count = (1, 1) + rest
        for i in range(n):
            for k in range(s):
                fspace.select_hyperslab((m0 + i, int(slots[i, k])) + zeros, count)
                ds.id.read(mspace, fspace, out[i, k])

    def _fields(self, f: h5py.File) -> tuple[list[str], list[str]]:
        """(heavy fields read from the file as [m0:m1], heavy fields read per (mesh, view)
        pair); the small fields come from the per-file cache."""
        slab = [STORED_VERTICES] if self.with_vertices and STORED_VERTICES in f else []
        heavy = ["views/heatmaps"] + (["views/masks"] if self.with_masks else [])
        if self._slab_heavy:
            return slab + heavy, []
        return slab, heavy

    def _read_window(
        self, shard: np.ndarray, mesh: np.ndarray, slots: np.ndarray
    ) -> dict[str, np.ndarray] | None:
        """Read the meshes of one window straight into preallocated arrays, one h5py call per
        field and contiguous run (plus one per (mesh, view) pair for heavy per-view fields when
        only some views are wanted)."""
        n, s = slots.shape
        cut = np.flatnonzero((np.diff(shard) != 0) | (np.diff(mesh) != 1)) + 1
        starts, ends = np.r_[0, cut], np.r_[cut, n]
        win: dict[str, np.ndarray] = {}
        keep = np.ones(n, bool)
        for a, b in zip(starts, ends):
            si = int(shard[a])
            if si in self._bad:
                keep[a:b] = False
                continue
            m0, m1 = int(mesh[a]), int(mesh[b - 1]) + 1
            try:
                f = self._file(si)
                small = self._small[si]
                slab, heavy = self._fields(f)
                if not win:
                    for name, arr in small.items():
                        win[name] = np.empty((n,) + arr.shape[1:], arr.dtype)
                    for name in slab:
                        ds = f[name]
                        win[name] = np.empty((n,) + ds.shape[1:], ds.dtype)
                    for name in heavy:
                        ds = f[name]
                        win[name] = np.empty((n, s) + ds.shape[2:], ds.dtype)
                for name, arr in small.items():
                    if name in win:
                        win[name][a:b] = arr[m0:m1]
                for name in slab:
                    if name in win:
                        f[name].read_direct(win[name], np.s_[m0:m1], np.s_[a:b])
                for name in heavy:
                    self._read_pairs_into(f[name], m0, slots[a:b], win[name][a:b])
            except (OSError, KeyError, ValueError, TypeError, ShardError) as e:
                path = self.root / self.shards[si].name
                msg = str(e) if str(e).startswith(str(path)) else f"{path}: unreadable ({e})"
                if not self.skip_bad:
                    raise ShardError(msg) from e
                warnings.warn(f"skipping bad shard {msg}", stacklevel=2)
                self._bad.add(si)
                keep[a:b] = False
                self._small.pop(si, None)
                f = self._files.pop(si, None)
                if f is not None:
                    f.close()
        if not keep.any():
            return None
        if not keep.all():
            win = {k: v[keep] for k, v in win.items()}
        win["_slots"] = slots[keep]
        return win

    # ---- decoding ---------------------------------------------------------------------------
    def _gather(self, win: dict[str, np.ndarray], j: np.ndarray, k: np.ndarray) -> dict:
        """Raw stored values of samples (window mesh ``j``, slot ``k``), batch-first."""
        view = win["_slots"][j, k]
        hk = view if self._slab_heavy else k
        raw = {
            "heatmaps": win["views/heatmaps"][j, hk],
            "R": win["views/R"][j, view],
            "t": win["views/t"][j, view],
            "joints3d": win["joints3d/h36m17"][j],
            "crop": win["views/crop"][j, view],
            "kp2d_h36m17": win["views/kp2d_h36m17"][j, view],
            "kp2d": win["views/kp2d"][j, view],
            "visible": win["views/visible"][j, view],
            "sample_id": win["sample_id"][j],
            "view": win["views/camera"][j, view],
        }
        for key in ("visible_h36m17", "occluded"):
            if f"views/{key}" in win:
                raw[key] = win[f"views/{key}"][j, view]
        for key in ("pose", "betas", "trans", "gender", "placement"):
            raw[key] = win[f"body/{key}"][j]
        if self.with_vertices and STORED_VERTICES in win:
            raw["vertices"] = win[STORED_VERTICES][j]
        if self.with_masks:
            raw["masks"] = win["views/masks"][j, hk]
        return raw

    @staticmethod
    def _empty(shape: tuple[int, ...], in_worker: bool) -> torch.Tensor:
        """float32 output buffer; in shared memory inside a DataLoader worker, so that sending
        the batch to the main process costs no extra copy (what default_collate does)."""
        t = torch.empty(shape, dtype=torch.float32)
        return t.share_memory_() if in_worker else t

    def _decode(self, raw: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Raw batch -> trainer tensors (sample contract of docs/ARCHITECTURE.md)."""
        shm = get_worker_info() is not None
        hm = torch.from_numpy(raw["heatmaps"])
        out: dict[str, torch.Tensor] = {}
        if self.uint8_heatmaps:  # 4x less to move between processes; divide by 255 on device
            out["heatmaps"] = hm.share_memory_() if shm else hm
        else:
            out["heatmaps"] = self._empty(tuple(hm.shape), shm)
            out["heatmaps"].copy_(hm).mul_(1.0 / 255.0)
        rot = torch.from_numpy(raw["R"])
        tr = torch.from_numpy(raw["t"])
        # body frame (posed, untranslated) -> camera: R (P_R (v + trans) + P_t) + t
        place = raw["placement"].astype(np.float64)
        r64 = raw["R"].astype(np.float64)
        body_r = r64 @ place[:, :3, :3]
        body_t = np.einsum("bij,bj->bi", body_r, raw["trans"].astype(np.float64))
        body_t += np.einsum("bij,bj->bi", r64, place[:, :3, 3]) + raw["t"]
        out["pose"] = torch.from_numpy(raw["pose"])
        out["betas"] = torch.from_numpy(raw["betas"])
        out["gender"] = torch.from_numpy(raw["gender"].astype(np.int64))
        out["body_R"] = torch.from_numpy(body_r.astype(np.float32))
        out["body_t"] = torch.from_numpy(body_t.astype(np.float32))
        if self.with_vertices and "vertices" not in raw:  # recompute here, on the CPU
            if self._skinner is None:
                from shards.body import BodySkinner

                self._skinner = BodySkinner.from_topology(self.root)
            with torch.no_grad():
                vt = self._skinner.camera_vertices(out)
            out["vertices"] = vt.share_memory_() if shm else vt
        elif self.with_vertices:
            v = torch.from_numpy(raw["vertices"]).to(torch.float32)
            b, nv = v.shape[:2]
            # R @ V^T as (B,3,3)x(B,3,Nv) is much faster than V @ R^T for small inner dims;
            # the result is a dense transposed view of shape (B, Nv, 3)
            vt = self._empty((b, 3, nv), shm)
            torch.baddbmm(tr[:, :, None], rot, v.transpose(1, 2), out=vt)
            out["vertices"] = vt.transpose(1, 2)
        j3 = torch.from_numpy(raw["joints3d"])
        out["joints3d"] = torch.baddbmm(tr[:, None, :], j3, rot.transpose(1, 2))
        crop = raw["crop"]

        def to_crop(kp: np.ndarray, vis: np.ndarray | None) -> torch.Tensor:
            xy = kp @ np.swapaxes(crop[:, :, :2], 1, 2) + crop[:, None, :, 2]
            xy = 2.0 * (xy + 0.5) / CROP_RES - 1.0
            if vis is None:
                vis = (np.abs(xy) <= 1.0).all(-1)
            return torch.from_numpy(
                np.concatenate([xy, vis[..., None].astype(np.float32)], -1).astype(np.float32)
            )

        out["joints2d"] = to_crop(raw["kp2d_h36m17"], raw.get("visible_h36m17"))
        out["kp2d"] = to_crop(raw["kp2d"], raw["visible"])
        # the crop box's side in image pixels (normalised crop units -> image px: side / 2)
        out["crop_side"] = torch.from_numpy((CROP_RES / crop[:, 0, 0]).astype(np.float32))
        if "occluded" in raw:
            out["occluded"] = torch.from_numpy(raw["occluded"].astype(bool))
        if self.with_masks:
            bits = mask_codec.decode(raw["masks"], self.R)
            out["masks"] = self._empty((len(bits), 1, self.R, self.R), shm)
            out["masks"].copy_(torch.from_numpy(bits.reshape(-1, 1, self.R, self.R)))
        out["sample_id"] = torch.from_numpy(raw["sample_id"].astype(np.int64))
        out["view"] = torch.from_numpy(raw["view"].astype(np.int64))
        return out

    # ---- iteration ----------------------------------------------------------------------
    def stream_bounds(self, rank: int, world: int, worker: int, nworkers: int) -> tuple[int, int]:
        """Mesh range [a, b) of the global sequence owned by (rank, worker)."""
        return self._streams(self.num_meshes, world * nworkers)[rank * nworkers + worker]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.shared_position is not None:  # a persistent worker: the main process's epoch
            self.epoch, self.consumed = (int(v) for v in self.shared_position.tolist())
        info = get_worker_info()
        worker, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.iter_stream(worker, nworkers)

    def iter_stream(self, worker: int, nworkers: int) -> Iterator[dict[str, torch.Tensor]]:
        """Samples of DataLoader worker ``worker`` of ``nworkers`` on this rank."""
        rank, world = dist_info(self.rank_arg, self.world_arg)
        shard, mesh = self._mesh_sequence()
        slots_all = self._view_slots(len(shard))
        a, b = self.stream_bounds(rank, world, worker, nworkers)
        skip = self._skip_for(rank, world, worker, nworkers)
        s = self.per_mesh
        wm = max(1, math.ceil(self.shuffle_buffer / s))
        bs = self.batch_size or 256
        g = rank * nworkers + worker
        pending: list[dict] = []
        pend_n = 0
        try:
            for wi, w0 in enumerate(range(a, b, wm)):
                w1 = min(w0 + wm, b)
                n_samples = (w1 - w0) * s
                if skip >= n_samples:
                    skip -= n_samples
                    continue
                win = self._read_window(shard[w0:w1], mesh[w0:w1], slots_all[w0:w1])
                if win is None:
                    continue
                n_mesh = len(win["sample_id"])
                order = np.arange(n_mesh * s)
                if self.shuffle:
                    order = _rng(self.seed, self.epoch, 3, g, wi).permutation(order)
                if skip:
                    order = order[skip:]
                    skip = 0
                pos = 0
                while pos < len(order):
                    need = bs - pend_n
                    take = order[pos : pos + need]
                    pos += len(take)
                    pending.append(self._gather(win, take // s, take % s))
                    pend_n += len(take)
                    if pend_n == bs:
                        yield from self._emit(pending)
                        pending, pend_n = [], 0
            if pending and not (self.drop_last and self.batch_size):
                yield from self._emit(pending)
        finally:
            self._close_all()

    def _emit(self, parts: list[dict]) -> Iterator[dict[str, torch.Tensor]]:
        raw = (
            parts[0]
            if len(parts) == 1
            else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        )
        batch = self._decode(raw)
        if self.batch_size:
            yield pack_batch(batch) if self.pack_in_workers else batch
        else:
            n = len(batch["sample_id"])
            for i in range(n):
                yield {k: v[i] for k, v in batch.items()}


class ShardLoader(DataLoader):
    """DataLoader whose workers send packed batches (``pack_batch``), unpacked here unless
    ``unpack`` is False (the trainer moves packed batches to its device and unpacks there)."""

    unpack = True

    def __iter__(self):
        # the DataLoader's iterator is made here, not lazily at the first batch: making it
        # draws a seed from torch's global RNG, which callers fence (exact resume)
        it = super().__iter__()
        return map(unpack_batch, it) if self.unpack else it


def loader(
    root: str | os.PathLike,
    split: str = "train",
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    unpack: bool = True,
    **dataset_kwargs,
) -> DataLoader:
    """DataLoader over ``ShardDataset(root, split, batch_size=batch_size, **dataset_kwargs)``.

    The dataset batches itself (``DataLoader(batch_size=None)``); call
    ``loader.dataset.set_epoch(epoch, consumed)`` before each epoch: workers are persistent
    (not re-forked per epoch) and read the epoch from shared memory when an epoch starts.
    ``prefetch_factor``: batches each worker keeps ready (torch's default 2); ``unpack=False``
    yields packed batches (``pack_batch``; ``packed_to`` a device, then ``unpack_batch``).
    """
    ds = ShardDataset(root, split, batch_size=batch_size, **dataset_kwargs)
    ds.pack_in_workers = True
    kw: dict = {}
    if num_workers > 0:
        ds.shared_position = torch.tensor([ds.epoch, ds.consumed]).share_memory_()
        kw["persistent_workers"] = True
        if prefetch_factor is not None:
            kw["prefetch_factor"] = prefetch_factor
    dl = ShardLoader(ds, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **kw)
    dl.unpack = unpack
    return dl

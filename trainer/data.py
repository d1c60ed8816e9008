"""Data for the trainer, only through ``shards``: topology -> mesh levels, streaming batches.

``DataSource(root, cfg)`` reads ``topology.h5`` and ``manifest.json`` of a shard folder and
hands out (a) the ``MeshLevels`` the model is built from (template, faces, H36M-17 regressor,
``sampling/down_i`` / ``up_i`` matrices), (b) an endless per-rank training stream that crosses
epochs and can restart from a data position, and (c) ordered evaluation loaders. Batches
carry ``vertices`` in the camera frame as before: schema-2 shards store body parameters
instead, and ``DataSource`` skins them with the body model topology.h5 carries
(``shards.body.BodySkinner``) on the device it is asked for (the trainer's), so vertices never
cross the DataLoader's process boundary.

Data position: each rank tracks ``(epoch, consumed)`` of *its own* stream. The shard reader
resumes from the global ``consumed`` of an epoch and gives rank ``r`` the share
``consumed // W + (r < consumed % W)``, so rank ``r`` restarts with ``consumed * W + r``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import torch

from shards.batch import packed_to, unpack_batch
from shards.body import BodySkinner
from shards.manifest import load_manifest
from shards.reader import STORED_VERTICES, ShardDataset, loader
from shards.topology import Topology, load_topology
from trainer.model import MeshLevels, as_dense, input_channels


def levels_from_topology(
    root: str | Path, topo: Topology | None = None
) -> tuple[MeshLevels, list[str]]:
    """MeshLevels from ``root/topology.h5`` (and the H36M-17 joint names)."""
    topo = load_topology(root) if topo is None else topo
    if "h36m17" not in topo.regressors:
        raise ValueError(f"{Path(root) / 'topology.h5'}: no h36m17 joint regressor")
    down, up, i = [], [], 0
    while f"down_{i}" in topo.sampling:
        if f"up_{i}" not in topo.sampling:
            raise ValueError(f"{Path(root) / 'topology.h5'}: sampling/down_{i} without up_{i}")
        down.append(topo.sampling[f"down_{i}"])
        up.append(topo.sampling[f"up_{i}"])
        i += 1
    if not down:
        raise ValueError(f"{Path(root) / 'topology.h5'}: no coarse-mesh sampling matrices")
    levels = MeshLevels(topo.template, topo.faces, topo.regressors["h36m17"], down, up)
    return levels, topo.joint_names.get("h36m17", [])


def model_input(batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    """The encoder's input channels: heatmaps, masks, or both concatenated.

    uint8 heatmaps (as stored, peak 255) are scaled to [0, 1] here, on the batch's device,
    exactly as the reader does for float32 output.
    """
    if batch["heatmaps"].dtype == torch.uint8:
        batch = {**batch, "heatmaps": batch["heatmaps"].float().mul_(1.0 / 255.0)}
    if kind == "heatmaps":
        return batch["heatmaps"]
    if kind == "masks":
        return batch["masks"]
    if kind == "both":
        return torch.cat([batch["heatmaps"], batch["masks"]], dim=1)
    raise ValueError(f"model.input must be heatmaps, masks or both, got {kind!r}")


class DataSource:
    """Topology, training stream and evaluation loaders of one shard folder."""

    def __init__(self, root: str | Path, cfg: dict):
        self.root = Path(root)
        if not (self.root / "manifest.json").exists():
            raise FileNotFoundError(f"{self.root}: no manifest.json (not a shard folder?)")
        self.cfg = cfg
        self.manifest = load_manifest(self.root)
        dims = self.manifest.dims
        self.res, self.num_keypoints = int(dims["R"]), int(dims["K"])
        self.kind = cfg["model"]["input"]
        self.in_channels = input_channels(self.kind, self.num_keypoints)
        self.masks = self.kind in ("masks", "both")
        if self.masks and not int(dims.get("masks", 0)):
            raise ValueError(
                f"{self.root}: model.input={self.kind!r} needs masks; shards have none"
            )
        topo = load_topology(self.root)
        self.levels, self.joint_names = levels_from_topology(self.root, topo)
        self.train_split = cfg["data"]["train_split"]
        self.val_split = cfg["data"]["val_split"]
        self.stored_vertices = self._stores_vertices()
        self._skinner: BodySkinner | None = None
        if not self.stored_vertices:  # fails fast on a dataset without its body model
            self._skinner = BodySkinner.from_topology(topo)

    def _stores_vertices(self) -> bool:
        """Whether the shards hold ``mesh/vertices`` (build.store_vertices) to read as is."""
        if not self.manifest.shards:
            return False
        with h5py.File(self.root / self.manifest.shards[0].name, "r") as f:
            return STORED_VERTICES in f

    def add_vertices(
        self, batch: dict[str, torch.Tensor], device: str | torch.device = "cpu"
    ) -> dict[str, torch.Tensor]:
        """``batch`` with camera-frame ``vertices`` (on ``device``) recomputed from its body
        parameters; unchanged when the reader already gave stored vertices."""
        if "vertices" in batch:
            return batch
        assert self._skinner is not None
        dev = torch.device(device)
        if self._skinner.device != dev:
            self._skinner = self._skinner.to(dev)
        with torch.no_grad():
            batch["vertices"] = self._skinner.camera_vertices(
                {k: batch[k].to(dev, non_blocking=True) for k in ("pose", "betas", "gender",
                                                                   "body_R", "body_t")}
            )  # fmt: skip
        return batch

    def down_tensors(self) -> list[torch.Tensor]:
        """Sparse D matrices (full -> coarser), for the multi-level GT meshes."""
        return [torch.from_numpy(as_dense(d)).to_sparse() for d in self.levels.down]

    def _views(self):
        v = self.cfg["data"]["views"]
        return "all" if v is None else v

    def train_iter(
        self,
        rank: int,
        world: int,
        batch_size: int,
        position: tuple[int, int] = (0, 0),
        positions_out: list | None = None,
        device: str | torch.device = "cpu",
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches for this rank, starting at ``position = (epoch, consumed)``, on
        ``device``: each batch crosses packed (three non-blocking copies from pinned memory on
        a GPU) and is unpacked there; ``vertices`` are made there.

        After each yielded batch, ``positions_out[0]`` holds this rank's position *after* it.
        Partial batches at the end of a stream are dropped.
        """
        t = self.cfg["train"]
        epoch, consumed = position
        d = self.cfg["data"]
        reader = {k: int(d[k]) for k in ("block", "shuffle_buffer") if d.get(k) is not None}
        dl = loader(
            self.root,
            self.train_split,
            batch_size=batch_size,
            num_workers=int(t["num_workers"]),
            views=self._views(),
            view_choice=self.cfg["data"].get("view_choice", "each"),
            shuffle=True,
            seed=int(t["seed"]),
            **reader,
            drop_last=True,
            rank=rank,
            world_size=world,
            with_masks=self.masks,
            with_vertices=self.stored_vertices,  # else skinned on the device, below
            uint8_heatmaps=True,  # 4x less to move from workers; model_input scales on device
            pin_memory=torch.cuda.is_available(),
            manifest=self.manifest,  # read once, here
            prefetch_factor=t.get("prefetch_factor"),
            unpack=False,  # packed to the device (3 copies), unpacked there
        )
        while True:
            dl.dataset.set_epoch(epoch, consumed * world + rank)
            got = 0
            # creating the iterator draws a seed from torch's global RNG; keep that RNG (which
            # drives dropout) independent of where epochs start, for exact resume
            rng = torch.get_rng_state()
            batches = iter(dl)
            torch.set_rng_state(rng)
            for packed in batches:
                batch = unpack_batch(packed_to(packed, device))
                consumed += int(batch["sample_id"].shape[0])
                got += 1
                if positions_out is not None:
                    positions_out[0] = (epoch, consumed)
                yield self.add_vertices(batch, device)
            if got == 0 and consumed == 0:
                raise ValueError(
                    f"{self.root}: split {self.train_split!r} gives rank {rank} of {world} "
                    f"no full batch of {batch_size}"
                )
            epoch, consumed = epoch + 1, 0
            if positions_out is not None:
                positions_out[0] = (epoch, consumed)

    def eval_loader(
        self,
        split: str,
        batch_size: int,
        max_samples: int | None = None,
        device: str | torch.device = "cpu",
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Ordered batches of ``split`` (all views), single process, up to ``max_samples``;
        ``vertices`` on ``device``."""
        ds = ShardDataset(
            self.root,
            split,
            views="all",
            batch_size=batch_size,
            shuffle=False,
            rank=0,
            world_size=1,
            with_masks=self.masks,
            with_vertices=self.stored_vertices,
            manifest=self.manifest,
        )
        n = 0
        for batch in ds:
            if max_samples is not None and n >= max_samples:
                return
            if max_samples is not None and n + len(batch["sample_id"]) > max_samples:
                batch = {k: v[: max_samples - n] for k, v in batch.items()}
            n += len(batch["sample_id"])
            yield self.add_vertices(batch, device)

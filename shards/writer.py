"""Atomic shard writer: HDF5 file per shard, compressed and chunked per (mesh, view) sample.

A shard is written to ``<name>.tmp-<host>-<pid>-<random>`` (``shards.atomic``), flushed,
fsync'ed, checksummed and renamed, so a reader never sees a half-written ``shard-NNNNNN.h5``.
Compression and chunking were chosen by measurement (see ``shards/SCHEMA.md``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from shards import masks as mask_codec
from shards.atomic import commit, temp_path
from shards.schema import (
    FIELD_BY_NAME,
    FIELDS,
    FORMAT_NAME,
    GENDERS,
    SCHEMA_VERSION,
    STR,
    FieldSpec,
    dims_from_arrays,
)

CHECKSUM_ALGO = "sha256"  # faster than blake2b here (SHA extensions), see bench
DEFAULT_COMPRESSION = "blosc-lz4hc"
#: the kinds a build config may name (``compression()`` takes any ``KIND:LEVEL``)
COMPRESSIONS = (
    "blosc-lz4",
    "blosc-lz4hc",
    "blosc-lz4hc:1",
    "blosc-zstd",
    "zstd",
    "zstd:1",
    "gzip",
    "none",
)
HEAVY_FIELDS = ("views/heatmaps", "views/masks")  # one chunk per (mesh, view)
VERTEX_CHUNK_MESHES = 1  # one mesh is read without decompressing others
SMALL_CHUNK_MESHES = 1024


def compression(kind: str = DEFAULT_COMPRESSION) -> Mapping[str, Any]:
    """h5py ``create_dataset`` keyword arguments for a compression ``kind``.

    Kinds: ``blosc-lz4hc`` (default, see SCHEMA.md), ``blosc-lz4``, ``blosc-zstd``, ``zstd``,
    ``gzip``, ``none``; ``KIND:LEVEL`` sets the level (default 5, gzip 4), e.g.
    ``blosc-lz4hc:1`` (the build default: writes as fast as ``blosc-lz4``, 17 % smaller).
    Blosc kinds byte-shuffle (a no-op on uint8 heatmaps).
    """
    name, _, level_s = kind.partition(":")
    try:
        level = int(level_s) if level_s else None
    except ValueError:
        raise ValueError(f"unknown compression {kind!r} (level must be an integer)") from None
    blosc = {"blosc-lz4": "lz4", "blosc-lz4hc": "lz4hc", "blosc-zstd": "zstd"}
    if name in blosc:
        return dict(
            hdf5plugin.Blosc(
                cname=blosc[name],
                clevel=5 if level is None else level,
                shuffle=hdf5plugin.Blosc.SHUFFLE,
            )
        )
    if name == "zstd":
        return dict(hdf5plugin.Zstd(clevel=5 if level is None else level))
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": level or 4, "shuffle": True}
    if name == "none" and level is None:
        return {}
    raise ValueError(f"unknown compression {kind!r}")


def file_checksum(path: str | os.PathLike, algo: str = CHECKSUM_ALGO) -> str:
    """``"<algo>:<hexdigest>"`` of a file's bytes."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


@dataclass
class ShardInfo:
    """What the manifest records about one written shard."""

    name: str
    meshes: int
    sample_id_first: int
    sample_id_last: int
    checksum: str
    bytes: int
    split: str = "train"

    def to_dict(self) -> dict:
        return asdict(self)


def _gender_codes(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "US":
        return np.array([GENDERS.index(str(v)) for v in values.astype(str)], dtype=np.uint8)
    if values.dtype == object:
        return np.array([GENDERS.index(str(v)) for v in values], dtype=np.uint8)
    return values.astype(np.uint8)


class ShardWriter:
    """Incrementally write one shard; ``close()`` makes it visible atomically.

    ``append(batch)`` takes a dict keyed by schema field names (``"views/heatmaps"``, ...),
    each with ``M_batch`` leading meshes. ``views/masks`` may be given unpacked as
    (M, V, R, R) bool; ``body/gender`` as strings. Use as a context manager or call
    ``close()``; an exception inside ``with`` removes the temporary file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        compression_kind: str = DEFAULT_COMPRESSION,
        split: str = "train",
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self.split = split
        self._comp = compression(compression_kind)
        self._comp_kind = compression_kind
        self._extra_attrs = dict(attrs or {})
        self._f: h5py.File | None = None
        self._dims: dict[str, int] | None = None
        self._masks = False
        self._m = 0
        self._ids: list[np.ndarray] = []
        self.info: ShardInfo | None = None
        self._aborted = False
        self._extra: dict[str, tuple[tuple[int, ...], str]] = {}

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self.info is None and not self._aborted:
                self.close()
        else:
            self.abort()

    def _create(self, batch: Mapping[str, np.ndarray]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        nv = self._extra_attrs.get("Nv")
        self._dims = dims_from_arrays(batch, None if nv is None else int(nv))
        self._masks = "views/masks" in batch
        self._f = h5py.File(self.tmp, "w", libver="latest")
        f = self._f
        for spec in FIELDS:
            if spec.name not in batch:
                if spec.required:
                    raise ValueError(f"{self.path}: batch lacks required field {spec.name!r}")
                continue
            shape0 = spec.full_shape(0, self._dims)
            maxshape = (None,) + shape0[1:]
            if spec.name in HEAVY_FIELDS:
                chunks = (1, 1) + shape0[2:]
            elif spec.name == "mesh/vertices":
                chunks = (VERTEX_CHUNK_MESHES,) + shape0[1:]
            else:
                chunks = (SMALL_CHUNK_MESHES,) + shape0[1:]
            dtype = h5py.string_dtype() if spec.dtype == STR else np.dtype(spec.dtype)
            comp = {} if spec.dtype == STR else self._comp
            ds = f.create_dataset(
                spec.name, shape=shape0, maxshape=maxshape, chunks=chunks, dtype=dtype, **comp
            )
            ds.attrs["scope"] = spec.scope
            if spec.doc:
                ds.attrs["doc"] = spec.doc
        f["body/gender"].attrs["codes"] = ",".join(GENDERS)
        for name in batch:
            if name not in FIELD_BY_NAME:
                self._create_extra(name, np.asarray(batch[name]))

    def _create_extra(self, name: str, arr: np.ndarray) -> None:
        """A field outside the schema (allowed): per view if under ``views/`` with a V axis,
        else per mesh; the shape after the leading axes is fixed by the first batch."""
        assert self._f is not None and self._dims is not None
        if arr.ndim == 0:
            raise ValueError(f"{self.path}: field {name!r} needs a leading mesh axis")
        is_str = arr.dtype.kind in "OUS"
        per_view = name.startswith("views/") and arr.ndim >= 2 and arr.shape[1] == self._dims["V"]
        lead = 2 if per_view else 1
        chunks = (1,) * lead + arr.shape[lead:] if per_view else (64,) + arr.shape[1:]
        dtype = h5py.string_dtype() if is_str else arr.dtype
        ds = self._f.create_dataset(
            name,
            shape=(0,) + arr.shape[1:],
            maxshape=(None,) + arr.shape[1:],
            chunks=chunks,
            dtype=dtype,
            **({} if is_str else self._comp),
        )
        ds.attrs["scope"] = "view" if per_view else "mesh"
        self._extra[name] = (arr.shape[1:], STR if is_str else arr.dtype.str)

    def append(self, batch: Mapping[str, np.ndarray]) -> None:
        """Append ``M_batch`` meshes (all fields must agree on that count)."""
        batch = dict(batch)
        if "views/masks" in batch and batch["views/masks"].ndim == 4:
            batch["views/masks"] = mask_codec.encode(batch["views/masks"])
        if "body/gender" in batch:
            batch["body/gender"] = _gender_codes(batch["body/gender"])
        if self._f is None:
            self._create(batch)
        assert self._f is not None and self._dims is not None
        n = len(batch["sample_id"])
        for spec in FIELDS:
            if spec.name in self._f and spec.name not in batch:
                raise ValueError(f"{self.path}: batch lacks field {spec.name!r}")
        for name in self._extra:
            if name not in batch:
                raise ValueError(f"{self.path}: batch lacks field {name!r}")
        for name, arr in batch.items():
            if name not in self._f:
                raise ValueError(f"{self.path}: field {name!r} missing from the first batch")
            spec = FIELD_BY_NAME.get(name)
            if spec is None:
                inner, dt = self._extra[name]
                spec = FieldSpec(name, "mesh", dt, tuple(int(d) for d in inner))
            want = spec.full_shape(n, self._dims)
            shape = np.shape(arr)
            if (spec.dtype == STR and shape[:1] != (n,)) or (spec.dtype != STR and shape != want):
                raise ValueError(f"{self.path}: field {name!r} has shape {shape}, want {want}")
        for name, arr in batch.items():
            spec = FIELD_BY_NAME.get(name)
            dtype = spec.dtype if spec is not None else self._extra[name][1]
            ds = self._f[name]
            ds.resize(self._m + n, axis=0)
            if dtype == STR:
                ds[self._m : self._m + n] = [str(x) for x in np.asarray(arr).reshape(-1)]
            else:
                ds[self._m : self._m + n] = np.asarray(arr).astype(dtype, copy=False)
        self._ids.append(np.asarray(batch["sample_id"], dtype=np.int64))
        self._m += n

    def close(self) -> ShardInfo:
        """Write attributes, flush, fsync, checksum and rename; return the manifest record."""
        if self._f is None:
            raise ValueError(f"{self.path}: no meshes were appended")
        f = self._f
        assert self._dims is not None
        attrs = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "meshes": self._m,
            "masks": int(self._masks),
            "compression": self._comp_kind,
            **{k: v for k, v in self._dims.items() if k != "MB"},
            **self._extra_attrs,
        }
        for k, v in attrs.items():
            f.attrs[k] = v
        f.flush()
        f.close()
        self._f = None
        checksum = file_checksum(self.tmp)
        size = self.tmp.stat().st_size
        commit(self.tmp, self.path)
        ids = np.concatenate(self._ids)
        self.info = ShardInfo(
            name=self.path.name,
            meshes=self._m,
            sample_id_first=int(ids.min()),
            sample_id_last=int(ids.max()),
            checksum=checksum,
            bytes=int(size),
            split=self.split,
        )
        return self.info

    def abort(self) -> None:
        """Drop the temporary file (nothing becomes visible)."""
        self._aborted = True
        if self._f is not None:
            self._f.close()
            self._f = None
        self.tmp.unlink(missing_ok=True)


def write_shard(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    *,
    split: str = "train",
    compression_kind: str = DEFAULT_COMPRESSION,
    attrs: Mapping[str, Any] | None = None,
) -> ShardInfo:
    """Write one whole shard from a dict of field arrays; return its manifest record."""
    w = ShardWriter(path, compression_kind=compression_kind, split=split, attrs=attrs)
    try:
        w.append(arrays)
    except BaseException:
        w.abort()
        raise
    return w.close()

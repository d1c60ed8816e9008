"""topology.h5: mesh topology and geometry that travel with the shards.

Holds the template mesh and faces, joint names and regressors, the coarse-mesh sampling
matrices (sparse, COO), the camera rig and (schema 2) the body model's skinning arrays per
gender (``body/<gender>/...``, see ``shards.body``), so training needs nothing but the shard
folder.
Each ``joints/<name>`` group records where its regressor came from as ``provenance_*``
attributes (``source``, and for files ``file`` and ``sha256``); files written before that
read back as ``{"source": "unknown"}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from shards.atomic import atomic_path
from shards.schema import BODY_ARRAYS, FORMAT_NAME, SCHEMA_VERSION, TOPOLOGY_NAME


@dataclass
class Topology:
    """Everything in topology.h5, as numpy / scipy objects.

    ``regressors[name]`` is (J, Nv) float32 with names ``joint_names[name]``; ``sampling[name]``
    a scipy sparse matrix (e.g. ``"down_0"`` (Nv1, Nv0), ``"up_0"`` (Nv0, Nv1)); ``rig`` a dict
    of per-camera arrays (``R`` (C,3,3), ``t`` (C,3), ``K`` (C,3,3), ``dist`` (C,5), ``size``
    (C,2) width/height, ...) plus ``names`` (list of str).
    """

    template: np.ndarray
    faces: np.ndarray
    joint_names: dict[str, list[str]] = field(default_factory=dict)
    regressors: dict[str, np.ndarray] = field(default_factory=dict)
    sampling: dict[str, sp.csr_matrix] = field(default_factory=dict)
    rig: dict[str, np.ndarray] = field(default_factory=dict)
    rig_names: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    #: per joint set: {"source": ..., "file": ..., "sha256": ...} (``UNKNOWN`` when not recorded)
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)
    #: per gender name: the skinning arrays of ``shards.body.BODY_ARRAYS`` (empty: none carried)
    body: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: attributes of the ``body`` group (``model_type``, ``num_betas``)
    body_attrs: dict = field(default_factory=dict)


#: provenance of a joint set in a topology file written before provenance was recorded
UNKNOWN = {"source": "unknown"}
_PROV = "provenance_"


def _read_provenance(group: h5py.Group) -> dict[str, str]:
    prov = {k[len(_PROV) :]: str(v) for k, v in group.attrs.items() if k.startswith(_PROV)}
    return prov or dict(UNKNOWN)


def joint_provenance(root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Provenance of each joint set in ``root/topology.h5`` (attributes only; cheap)."""
    path = Path(root)
    if path.is_dir():
        path = path / TOPOLOGY_NAME
    try:
        with h5py.File(path, "r") as f:
            return {name: _read_provenance(g) for name, g in f.get("joints", {}).items()}
    except OSError as e:
        raise ValueError(f"{path}: unreadable topology ({e})") from e


def write_topology(root: str | os.PathLike, topo: Topology) -> Path:
    """Write ``root/topology.h5`` atomically (temporary name, fsync, rename)."""
    path = Path(root) / TOPOLOGY_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["schema_version"] = SCHEMA_VERSION
        for k, v in topo.attrs.items():
            f.attrs[k] = v
        f["template/vertices"] = np.asarray(topo.template, np.float32)
        f["template/faces"] = np.asarray(topo.faces, np.int32)
        for name, reg in topo.regressors.items():
            g = f.create_group(f"joints/{name}")
            g["regressor"] = np.asarray(reg, np.float32)
            g["names"] = np.array(topo.joint_names.get(name, []), dtype=h5py.string_dtype())
            for k, v in topo.provenance.get(name, {}).items():
                g.attrs[_PROV + k] = str(v)
        for name, mat in topo.sampling.items():
            coo = sp.coo_matrix(mat)
            g = f.create_group(f"sampling/{name}")
            g["row"] = coo.row.astype(np.int32)
            g["col"] = coo.col.astype(np.int32)
            g["data"] = coo.data.astype(np.float32)
            g.attrs["shape"] = np.array(coo.shape, np.int64)
        if topo.body:
            body = f.create_group("body")
            for k, v in topo.body_attrs.items():
                body.attrs[k] = v
            for gender, arrays in topo.body.items():
                g = body.create_group(gender)
                for k in BODY_ARRAYS:
                    a = np.asarray(arrays[k], np.int32 if k == "parents" else np.float32)
                    g.create_dataset(k, data=a, compression="gzip", compression_opts=1,
                                     shuffle=True)  # fmt: skip
        rig = f.create_group("rig")
        for k, v in topo.rig.items():
            rig[k] = np.asarray(v)
        rig["names"] = np.array(list(topo.rig_names), dtype=h5py.string_dtype())
    return path


def load_topology(root: str | os.PathLike) -> Topology:
    """Read ``root/topology.h5`` (or a path to the file itself)."""
    path = Path(root)
    if path.is_dir():
        path = path / TOPOLOGY_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: topology file missing")
    try:
        with h5py.File(path, "r") as f:
            topo = Topology(
                template=f["template/vertices"][()],
                faces=f["template/faces"][()],
                attrs={k: f.attrs[k] for k in f.attrs},
            )
            for name, g in f.get("joints", {}).items():
                topo.regressors[name] = g["regressor"][()]
                topo.joint_names[name] = [s.decode() for s in g["names"][()]]
                topo.provenance[name] = _read_provenance(g)
            for name, g in f.get("sampling", {}).items():
                shape = tuple(int(s) for s in g.attrs["shape"])
                topo.sampling[name] = sp.csr_matrix(
                    (g["data"][()], (g["row"][()], g["col"][()])), shape=shape
                )
            body = f.get("body")
            if body is not None:
                topo.body_attrs = {k: body.attrs[k] for k in body.attrs}
                topo.body = {g: {k: ds[()] for k, ds in grp.items()} for g, grp in body.items()}
            rig = f.get("rig", {})
            for k in rig:
                if k == "names":
                    topo.rig_names = [s.decode() for s in rig[k][()]]
                else:
                    topo.rig[k] = rig[k][()]
    except (OSError, KeyError) as e:
        raise ValueError(f"{path}: unreadable topology ({e})") from e
    return topo


def rig_from_mapping(cams: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[dict, list[str]]:
    """Stack a ``{name: {"R", "t", "K", "dist", "size"}}`` mapping into rig arrays + names."""
    names = list(cams)
    keys = list(next(iter(cams.values())))
    return {k: np.stack([np.asarray(cams[n][k]) for n in names]) for k in keys}, names

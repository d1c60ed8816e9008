"""Shard schema: every field a shard file holds, its scope, dtype and symbolic shape.

Symbols in shapes: ``M`` meshes in the shard (always the first axis, implied), ``V`` views per
mesh (second axis of per-view fields, implied), ``Nv`` mesh vertices, ``K`` heatmap channels
(COCO-17), ``J`` joints (17), ``R`` heatmap/mask resolution, ``P`` pose parameters, ``B``
shape parameters, ``MB`` bytes of a bit-packed R x R mask (``ceil(R*R/8)``).
The human-readable version of this table is ``shards/SCHEMA.md``; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SCHEMA_VERSION = 2
FORMAT_NAME = "mpt-shards"
SHARD_PATTERN = "shard-{:06d}.h5"
MANIFEST_NAME = "manifest.json"
TOPOLOGY_NAME = "topology.h5"
N_JOINTS = 17
#: The body-model genders, everywhere (build, body models, AMASS reader, generator). Their order
#: is the code written into shards (``body/gender``): never reorder.
GENDERS = ("neutral", "male", "female")
#: H36M-14 evaluation joints as indices into the shards' H36M-17 (docs/ARCHITECTURE.md)
H36M14_FROM_17 = (3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10)
#: topology.h5 ``body/<gender>/`` arrays: what ``shards.body`` skins vertices with
BODY_ARRAYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "parents")


@dataclass(frozen=True)
class FieldSpec:
    """One dataset in a shard file.

    ``scope`` is ``"mesh"`` (shape ``(M, *shape)``) or ``"view"`` (shape ``(M, V, *shape)``);
    ``shape`` holds ints or symbol names resolved against the shard's dimensions.
    """

    name: str
    scope: str
    dtype: str
    shape: tuple[int | str, ...]
    required: bool = True
    doc: str = ""

    def full_shape(self, m: int, dims: Mapping[str, int]) -> tuple[int, ...]:
        """Concrete shape for a shard of ``m`` meshes with dimensions ``dims``."""
        inner = tuple(d if isinstance(d, int) else int(dims[d]) for d in self.shape)
        lead = (m,) if self.scope == "mesh" else (m, int(dims["V"]))
        return lead + inner


STR = "str"  # variable-length UTF-8 string

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("sample_id", "mesh", "int64", (), doc="global mesh id, unique in the dataset"),
    FieldSpec("source/path", "mesh", STR, (), doc="motion file, relative to the archive root"),
    FieldSpec("source/frame", "mesh", "int32", (), doc="frame index in that motion file"),
    FieldSpec("body/pose", "mesh", "float32", ("P",), doc="axis-angle pose parameters"),
    FieldSpec("body/betas", "mesh", "float32", ("B",), doc="shape parameters"),
    FieldSpec("body/trans", "mesh", "float32", (3,), doc="root translation, metres"),
    FieldSpec("body/gender", "mesh", "uint8", (), doc="index into GENDERS"),
    FieldSpec("body/placement", "mesh", "float32", (4, 4), doc="body -> placed world frame"),
    FieldSpec(
        "mesh/vertices",
        "mesh",
        "float16",
        ("Nv", 3),
        required=False,
        doc="placed world frame, metres; only with build.store_vertices (schema 1 always)",
    ),
    FieldSpec("joints3d/coco17", "mesh", "float32", ("J", 3), doc="placed world frame"),
    FieldSpec("joints3d/h36m17", "mesh", "float32", ("J", 3), doc="placed world frame"),
    FieldSpec("views/camera", "view", "int16", (), doc="index into the topology rig"),
    FieldSpec("views/R", "view", "float32", (3, 3), doc="X_cam = R @ X_world + t"),
    FieldSpec("views/t", "view", "float32", (3,), doc="metres"),
    FieldSpec("views/K", "view", "float32", (3, 3), doc="intrinsics, image pixels"),
    FieldSpec("views/dist", "view", "float32", (5,), doc="k1 k2 p1 p2 k3"),
    FieldSpec("views/kp2d", "view", "float32", ("J", 2), doc="COCO-17, image px, distorted"),
    FieldSpec("views/kp2d_h36m17", "view", "float32", ("J", 2), doc="H36M-17, image px"),
    FieldSpec("views/visible", "view", "uint8", ("J",), doc="COCO-17 visibility (0/1)"),
    FieldSpec(
        "views/visible_h36m17",
        "view",
        "uint8",
        ("J",),
        required=False,
        doc="H36M-17 visibility; when absent the reader uses 'inside the crop'",
    ),
    FieldSpec(
        "views/occluded",
        "view",
        "uint8",
        ("J",),
        required=False,
        doc="COCO-17 hidden by the body itself (depth test); with masks or render.occlusion",
    ),
    FieldSpec("views/crop", "view", "float32", (2, 3), doc="image px -> crop px (224) affine"),
    FieldSpec("views/heatmaps", "view", "uint8", ("K", "R", "R"), doc="COCO-17, peak 255"),
    FieldSpec(
        "views/masks",
        "view",
        "uint8",
        ("MB",),
        required=False,
        doc="silhouette, np.packbits of the row-major R x R mask (only when masks are on)",
    ),
)

FIELD_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}

# Shard-level attributes (root group of each shard file).
SHARD_ATTRS = ("format", "schema_version", "meshes", "V", "R", "K", "J", "Nv", "P", "B", "masks")


def version_message(path, version) -> str:
    """The one line readers and ``verify`` give for a dataset file of another schema version."""
    try:
        older = int(version) < SCHEMA_VERSION
    except (TypeError, ValueError):
        older = False
    hint = (
        "an older dataset (schema 1 stored mesh/vertices; schema 2 recomputes them from the "
        "stored body parameters): rebuild it with this version's `python -m pipeline.build`"
        if older
        else "rebuild it or read it with the matching version of this code"
    )
    return f"{path}: schema version {version}, this code reads {SCHEMA_VERSION}; {hint}"


def mask_bytes(res: int) -> int:
    """Bytes of one bit-packed R x R mask."""
    return (res * res + 7) // 8


def dims_from_arrays(arrays: Mapping[str, np.ndarray], nv: int | None = None) -> dict[str, int]:
    """Infer the shard dimensions (V, R, K, J, Nv, P, B) from a batch of field arrays; ``Nv``
    from ``mesh/vertices`` when present, else ``nv`` (the body model's vertex count)."""
    hm = arrays["views/heatmaps"]
    if "mesh/vertices" in arrays:
        nv = int(arrays["mesh/vertices"].shape[1])
    if nv is None:
        raise ValueError("shard dimensions: Nv needs mesh/vertices or the body model's count")
    dims = {
        "V": int(hm.shape[1]),
        "K": int(hm.shape[2]),
        "R": int(hm.shape[3]),
        "J": int(arrays["joints3d/h36m17"].shape[1]),
        "Nv": int(nv),
        "P": int(arrays["body/pose"].shape[1]),
        "B": int(arrays["body/betas"].shape[1]),
    }
    dims["MB"] = mask_bytes(dims["R"])
    return dims


def required_fields(masks: bool) -> list[FieldSpec]:
    """Fields a valid shard must hold (masks only when the dataset has them)."""
    out = [f for f in FIELDS if f.required]
    if masks:
        out.append(FIELD_BY_NAME["views/masks"])
    return out

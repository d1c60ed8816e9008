"""Joint sets: the single source of joint names and order, and keypoint regressors.

* ``COCO17``: heatmap channels (what a 2D pose network outputs).
* ``H36M17``: 3D targets in METRO/SPIN order (Pelvis first); ``H36M14_FROM_17`` picks the
  14 evaluation joints.
* ``SMPLH52``: the SMPL+H model joints; ``SMPL24`` = first 22 + left/right hand roots.

:class:`KeypointRegressor` turns posed vertices and model joints into COCO-17 and H36M-17:
each keypoint is ``A_v @ vertices + A_j @ joints`` with rows of ``[A_v | A_j]`` summing to 1.

* Generated models (procedural, Anny) ship ``smplh/joint_regressors.npz`` with vertex rows
  ``coco17`` and ``h36m17`` (17, V): used as is.
* Real SMPL-topology models: COCO-17 = smplx's face vertex ids (nose, eyes, ears) plus the
  model's shoulder/elbow/wrist/hip/knee/ankle joints; H36M-17 = METRO's
  ``J_regressor_h36m_correct.npy`` or ``J_regressor_h36m.npy`` (17, V) found in the body-model
  folder (:func:`find_h36m_regressor`, order ``H36M_SEARCH``), else an approximation from the
  model's joints: pelvis = hip midpoint, spine = mid spine1/spine2, thorax = half neck +
  quarter each shoulder, nose = the nose vertex, head = eye midpoint raised by 40% of the
  neck-to-eyes vector. The approximation is a few cm off Human3.6M's; builds warn about it.

``KeypointRegressor.provenance`` says where each joint set came from (``source``, and for files
``file`` relative to the body-model folder and its ``sha256``); it goes into topology.h5 and
the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.body_models import REAL_NUM_VERTICES
from shards.schema import H36M14_FROM_17
from shards.writer import file_checksum

COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
#: left/right swap permutation of COCO-17 (for horizontal flips)
COCO17_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

H36M17 = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck",
    "Nose", "Head", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)  # fmt: skip
H36M17_FLIP = (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13)
H36M14 = tuple(H36M17[i] for i in H36M14_FROM_17)
H36M_PELVIS = 0

SMPLH52 = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
) + tuple(
    f"{side}_{finger}{k}"
    for side in ("left", "right")
    for finger in ("index", "middle", "pinky", "ring", "thumb")
    for k in (1, 2, 3)
)  # fmt: skip
#: SMPL-24 = 22 body joints + left/right hand roots (SMPL's names), as SMPL+H joint indices
SMPL24_FROM_SMPLH = tuple(range(22)) + (22, 37)
SMPL24 = SMPLH52[:22] + ("left_hand", "right_hand")

_J = {n: i for i, n in enumerate(SMPLH52)}
# COCO body keypoints (5..16) -> SMPL joints
_COCO_BODY_JOINTS = tuple(
    _J[n]
    for n in (
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
        "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
        "right_ankle",
    )
)  # fmt: skip
_FACE = ("nose", "leye", "reye", "lear", "rear")


@dataclass
class KeypointRegressor:
    """Linear keypoint regressor: ``kp = A_v @ vertices + A_j @ joints`` per joint set.

    ``coco_v`` (17, V), ``coco_j`` (17, J), ``h36m_v`` (17, V), ``h36m_j`` (17, J), float32.
    """

    coco_v: np.ndarray
    coco_j: np.ndarray
    h36m_v: np.ndarray
    h36m_j: np.ndarray
    source: str = ""
    #: {"coco17": {...}, "h36m17": {...}}: ``source`` plus ``file``/``sha256`` for files
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)

    @staticmethod
    def _apply(Av: np.ndarray, Aj: np.ndarray, vertices, joints) -> np.ndarray:
        out = 0.0
        if np.any(Av):
            out = np.einsum("kv,nvc->nkc", Av, np.asarray(vertices, np.float32))
        if np.any(Aj):
            out = out + np.einsum(
                "kj,njc->nkc", Aj, np.asarray(joints, np.float32)[:, : Aj.shape[1]]
            )
        return np.asarray(out, np.float32)

    def coco17(self, vertices: np.ndarray, joints: np.ndarray | None = None) -> np.ndarray:
        """COCO-17 keypoints (N, 17, 3) from vertices (N, V, 3) and model joints (N, J, 3)."""
        return self._apply(self.coco_v, self.coco_j, vertices, joints)

    def h36m17(self, vertices: np.ndarray, joints: np.ndarray | None = None) -> np.ndarray:
        """H36M-17 joints (N, 17, 3) from vertices (N, V, 3) and model joints (N, J, 3)."""
        return self._apply(self.h36m_v, self.h36m_j, vertices, joints)

    def vertex_regressors(self, j_regressor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pure vertex regressors (coco17 (17, V), h36m17 (17, V)) for shards and the trainer:
        joint terms are folded in through the model's ``J_regressor`` (J, V)."""
        JR = np.asarray(j_regressor, np.float64)
        fold = lambda Av, Aj: (Av + Aj @ JR[: Aj.shape[1]]).astype(np.float32)  # noqa: E731
        return fold(self.coco_v, self.coco_j), fold(self.h36m_v, self.h36m_j)

    @classmethod
    def from_vertex_rows(
        cls, coco17: np.ndarray, h36m17: np.ndarray, num_joints: int = 52, source: str = ""
    ) -> KeypointRegressor:
        z = np.zeros((17, num_joints), np.float32)
        return cls(
            np.asarray(coco17, np.float32), z, np.asarray(h36m17, np.float32), z.copy(), source
        )

    @classmethod
    def for_smpl_topology(
        cls,
        num_vertices: int,
        num_joints: int,
        model_type: str = "smplh",
        h36m_regressor: np.ndarray | None = None,
    ) -> KeypointRegressor:
        """Regressor for real SMPL/SMPL+H/SMPL-X meshes (smplx face vertex ids)."""
        from smplx.vertex_ids import vertex_ids  # heavy: smplx (torch)

        ids = vertex_ids["smplx" if model_type == "smplx" else "smplh"]
        coco_v = np.zeros((17, num_vertices), np.float32)
        coco_j = np.zeros((17, num_joints), np.float32)
        for k, name in enumerate(_FACE):
            coco_v[k, ids[name]] = 1.0
        for k, j in enumerate(_COCO_BODY_JOINTS):
            coco_j[5 + k, j] = 1.0
        h_v = np.zeros((17, num_vertices), np.float32)
        h_j = np.zeros((17, num_joints), np.float32)
        coco_prov = {"source": COCO_SMPL_SOURCE}
        if h36m_regressor is not None:
            h_v = np.asarray(h36m_regressor, np.float32)
            if h_v.shape != (17, num_vertices):
                raise ValueError(
                    f"J_regressor_h36m has shape {h_v.shape}, want (17, {num_vertices})"
                )
            prov = {"coco17": coco_prov, "h36m17": {"source": "J_regressor_h36m (given)"}}
            return cls(coco_v, coco_j, h_v, h_j, "smpl-topology + J_regressor_h36m.npy", prov)
        rows = {
            0: {_J["left_hip"]: 0.5, _J["right_hip"]: 0.5},
            1: {_J["right_hip"]: 1.0}, 2: {_J["right_knee"]: 1.0}, 3: {_J["right_ankle"]: 1.0},
            4: {_J["left_hip"]: 1.0}, 5: {_J["left_knee"]: 1.0}, 6: {_J["left_ankle"]: 1.0},
            7: {_J["spine1"]: 0.5, _J["spine2"]: 0.5},
            8: {_J["neck"]: 0.5, _J["left_shoulder"]: 0.25, _J["right_shoulder"]: 0.25},
            11: {_J["left_shoulder"]: 1.0}, 12: {_J["left_elbow"]: 1.0},
            13: {_J["left_wrist"]: 1.0}, 14: {_J["right_shoulder"]: 1.0},
            15: {_J["right_elbow"]: 1.0}, 16: {_J["right_wrist"]: 1.0},
        }  # fmt: skip
        for k, row in rows.items():
            for j, w in row.items():
                h_j[k, j] = w
        h_v[9, ids["nose"]] = 1.0
        # head = eyes_mid + 0.4 (eyes_mid - neck) = 0.7 leye + 0.7 reye - 0.4 neck
        h_v[10, ids["leye"]] = h_v[10, ids["reye"]] = 0.7
        h_j[10, _J["neck"]] = -0.4
        prov = {"coco17": coco_prov, "h36m17": {"source": APPROXIMATED, "detail": APPROX_DETAIL}}
        return cls(coco_v, coco_j, h_v, h_j, "smpl-topology, approximate H36M from joints", prov)

    @classmethod
    def from_body_models(
        cls,
        root: Path,
        model_type: str = "smplh",
        num_vertices: int | None = None,
        num_joints: int = 52,
    ) -> KeypointRegressor:
        """Regressor for the models under the body-models root ``root`` (see module doc)."""
        root = Path(root)
        gen = root / model_type / "joint_regressors.npz"
        if gen.is_file():
            with np.load(gen) as z:
                if "coco17" not in z.files or "h36m17" not in z.files:
                    raise ValueError(f"{gen}: needs arrays 'coco17' and 'h36m17'")
                reg = cls.from_vertex_rows(z["coco17"], z["h36m17"], num_joints, str(gen))
            if num_vertices is not None and reg.coco_v.shape[1] != num_vertices:
                raise ValueError(
                    f"{gen}: rows have {reg.coco_v.shape[1]} vertices, model has {num_vertices}"
                )
            prov = {
                "source": SHIPPED,
                "file": rel_path(gen, root),
                "sha256": file_checksum(gen, "sha256"),
            }
            reg.provenance = {"coco17": dict(prov), "h36m17": dict(prov)}
            return reg
        if num_vertices is None:
            raise ValueError(f"{gen}: missing, and num_vertices not given for SMPL topology")
        found = find_h36m_regressor(root, model_type, num_vertices)
        reg = cls.for_smpl_topology(num_vertices, num_joints, model_type, found.array)
        if found.path is not None:
            reg.provenance["h36m17"] = {
                "source": found.path.name,
                "file": rel_path(found.path, root),
                "sha256": found.sha256,
            }
            reg.source = f"smpl-topology + {rel_path(found.path, root)}"
        return reg


#: provenance ``source`` values
SHIPPED = "shipped joint_regressors.npz"
APPROXIMATED = "approximated"
APPROX_DETAIL = "from the model's joints (hip midpoint, spine, neck, face vertices); a few cm off"
COCO_SMPL_SOURCE = "smplx face vertex ids + model joints"

#: H36M-17 regressor file names, preferred first (METRO ships the ``_correct`` one)
H36M_REGRESSOR_NAMES = ("J_regressor_h36m_correct.npy", "J_regressor_h36m.npy")


def h36m_search_dirs(model_type: str) -> tuple[str, ...]:
    """Folders of the body-model root searched, in order, for each name of
    ``H36M_REGRESSOR_NAMES`` (all folders for the first name before the second): the root,
    the build family's folder, the other SMPL-family folders, then any other folder up to two
    levels down (sorted)."""
    fams = (model_type, *(m for m in ("smplh", "smpl", "smplx") if m != model_type))
    return (".", *fams, "*", "*/*")


@dataclass
class H36MRegressorSearch:
    """Outcome of :func:`find_h36m_regressor`: the file used (or None), its array and sha256,
    and the other candidate files with why they were not used."""

    path: Path | None = None
    array: np.ndarray | None = None
    sha256: str = ""
    searched: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)


def rel_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (posix), or the whole path when it lies elsewhere."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def h36m_candidates(root: Path, model_type: str) -> list[Path]:
    """Existing H36M regressor files under ``root`` in search order (no duplicates)."""
    root = Path(root)
    out: list[Path] = []
    for name in H36M_REGRESSOR_NAMES:
        for d in h36m_search_dirs(model_type):
            if "*" in d:
                hits = sorted(root.glob(f"{d}/{name}"))
            else:
                hits = [root / d / name] if d != "." else [root / name]
            for p in hits:
                if p.is_file() and p.resolve() not in {q.resolve() for q in out}:
                    out.append(p)
    return out


def find_h36m_regressor(root: Path, model_type: str, num_vertices: int) -> H36MRegressorSearch:
    """The first H36M regressor file (17, ``num_vertices``) in search order.

    A (17, N) file for another real SMPL-family topology (e.g. METRO's 6890-vertex one next to
    SMPL-X models) is ignored with a reason; any other shape, or an unreadable or non-finite
    file, raises ``ValueError`` naming the file.
    """
    root = Path(root)
    res = H36MRegressorSearch(
        searched=[f"{d}/{n}" for n in H36M_REGRESSOR_NAMES for d in h36m_search_dirs(model_type)]
    )
    for p in h36m_candidates(root, model_type):
        rel = rel_path(p, root)
        if res.path is not None:
            res.ignored.append((rel, f"{rel_path(res.path, root)} comes first in the search order"))
            continue
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any failure means a bad file
            raise ValueError(f"{p}: not a readable .npy H36M regressor ({e})") from None
        if a.ndim == 2 and a.shape[0] == 17 and a.shape[1] != num_vertices:
            if a.shape[1] in REAL_NUM_VERTICES.values():
                res.ignored.append(
                    (rel, f"fits a {a.shape[1]}-vertex mesh; this model has {num_vertices}")
                )
                continue
        if a.shape != (17, num_vertices) or not np.issubdtype(a.dtype, np.floating):
            raise ValueError(
                f"{p}: H36M regressor has shape {a.shape} ({a.dtype}), "
                f"want (17, {num_vertices}) float"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{p}: H36M regressor contains NaN or Inf")
        res.path, res.array, res.sha256 = p, a, file_checksum(p, "sha256")
    return res

"""SMPL-family body models (SMPL, SMPL+H, SMPL-X) through smplx's own layers.

Folder layout (same as the real downloads, see docs/ARCHITECTURE.md)::

    ROOT/smplh/{neutral,male,female}/model.npz      AMASS "extended SMPL+H" (16 betas)
    ROOT/smplx/SMPLX_{NEUTRAL,MALE,FEMALE}.npz
    ROOT/smpl/SMPL_{NEUTRAL,MALE,FEMALE}.{pkl,npz}

``load_body_model(root, "smplh", "male")`` returns a cached :class:`BodyModel` whose
:meth:`BodyModel.forward` runs batched, chunked, float32 under ``torch.no_grad()`` and returns
numpy vertices (N, V, 3) and the model's own joints (N, J, 3) (no smplx extra vertex joints).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from shards.schema import GENDERS

MODEL_TYPES = ("smpl", "smplh", "smplx")
#: number of model joints (without smplx's extra vertex-based joints)
NUM_MODEL_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55}
#: vertex count of the real SMPL-family topologies (smplx vertex ids apply only to these)
REAL_NUM_VERTICES = {"smpl": 6890, "smplh": 6890, "smplx": 10475}


#: betas used when none is asked for (None: all of the file's; AMASS uses 16 for SMPL+H/SMPL-X)
DEFAULT_NUM_BETAS = {"smpl": 10, "smplh": None, "smplx": 16}


class BodyModelError(ValueError):
    """A body-model file is missing or invalid."""


class _ChumpyStub:
    """Stands in for chumpy objects while unpickling; keeps their array payload."""

    def __init__(self, *args, **kwargs) -> None:
        self.state = None

    def __setstate__(self, state) -> None:
        self.state = state

    def to_array(self) -> np.ndarray:
        st = self.state if isinstance(self.state, dict) else {}
        for key in ("x", "a", "_x"):
            if key in st:
                return np.asarray(st[key])
        raise BodyModelError("chumpy object without an array payload")


class _ChumpyFreeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.startswith("chumpy"):
            return _ChumpyStub
        return super().find_class(module, name)


def load_smpl_pkl(path: Path) -> dict:
    """Read an SMPL-family ``.pkl`` without chumpy; chumpy arrays become numpy arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = _ChumpyFreeUnpickler(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise BodyModelError(f"{path}: body model file not found") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise BodyModelError(f"{path}: not a readable SMPL pickle ({exc})") from None
    if not isinstance(data, dict):
        raise BodyModelError(f"{path}: not an SMPL model (pickle holds {type(data).__name__})")
    return {k: (v.to_array() if isinstance(v, _ChumpyStub) else v) for k, v in data.items()}


def model_file(root: Path, model_type: str = "smplh", gender: str = "neutral") -> Path:
    """Path of the ``model_type``/``gender`` file under the body-models root ``root``."""
    root = Path(root)
    if model_type not in MODEL_TYPES:
        raise BodyModelError(f"{root}: unknown model type {model_type!r} (use {MODEL_TYPES})")
    if gender not in GENDERS:
        raise BodyModelError(f"{root}: unknown gender {gender!r} (use {GENDERS})")
    if model_type == "smplh":
        return root / "smplh" / gender / "model.npz"
    if model_type == "smplx":
        return root / "smplx" / f"SMPLX_{gender.upper()}.npz"
    for ext in ("npz", "pkl"):
        p = root / "smpl" / f"SMPL_{gender.upper()}.{ext}"
        if p.exists():
            return p
    return root / "smpl" / f"SMPL_{gender.upper()}.pkl"


_REQUIRED = ("v_template", "f", "J_regressor", "kintree_table", "weights", "posedirs", "shapedirs")


def read_model_arrays(path: Path) -> dict:
    """All arrays of a model file (``.npz`` or chumpy-free ``.pkl``), checked for the keys
    every SMPL-family layer needs; hand PCA keys missing from AMASS SMPL+H files are filled."""
    path = Path(path)
    if not path.is_file():
        raise BodyModelError(f"{path}: body model file not found")
    if path.suffix == ".pkl":
        data = load_smpl_pkl(path)
    else:
        try:
            with np.load(path, allow_pickle=True) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001
            raise BodyModelError(f"{path}: not a readable .npz ({exc})") from None
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise BodyModelError(f"{path}: not an SMPL-family model (missing {', '.join(missing)})")
    for side in ("l", "r"):
        if f"hands_components{side}" not in data:
            data[f"hands_components{side}"] = np.eye(45)
        if f"hands_mean{side}" not in data:
            data[f"hands_mean{side}"] = np.zeros(45)
    if hasattr(data["J_regressor"], "toarray"):
        data["J_regressor"] = data["J_regressor"].toarray()
    return data


def _layer_class(model_type: str, num_betas: int):
    """smplx layer class whose SHAPE_SPACE_DIM lets ``num_betas`` through (smplx otherwise
    truncates any model with fewer than 300 shape directions to 10 betas)."""
    import smplx  # heavy: smplx (torch)

    base = {"smpl": smplx.SMPL, "smplh": smplx.SMPLH, "smplx": smplx.SMPLX}[model_type]
    return type(f"{base.__name__}Betas", (base,), {"SHAPE_SPACE_DIM": num_betas})


@dataclass
class BodyOutput:
    vertices: np.ndarray  # (N, V, 3) float32
    joints: np.ndarray  # (N, J, 3) float32, the model's own joints


class BodyModel:
    """One gendered SMPL-family model wrapped around smplx's layer."""

    def __init__(
        self,
        path: Path,
        model_type: str = "smplh",
        gender: str = "neutral",
        num_betas: int | None = None,
    ) -> None:
        import smplx  # heavy: smplx (torch)
        import torch  # heavy: torch
        from smplx.utils import Struct  # heavy: smplx (torch)

        self.path = Path(path)
        self.model_type = model_type
        self.gender = gender
        data = read_model_arrays(self.path)
        n_shape = int(data["shapedirs"].shape[-1])
        if model_type == "smplx":
            n_shape = min(n_shape, 300)  # the rest are expression directions
        self.num_betas = min(num_betas or DEFAULT_NUM_BETAS[model_type] or n_shape, n_shape)
        V = int(data["v_template"].shape[0])
        self.num_vertices = V
        vertex_ids = None
        if V != REAL_NUM_VERTICES[model_type]:
            # smplx's extra joints index SMPL's topology; point them at vertex 0 (dropped anyway)
            kind = "smplx" if model_type == "smplx" else "smplh"
            vertex_ids = {k: 0 for k in smplx.vertex_ids.vertex_ids[kind]}
        cls = _layer_class(model_type, self.num_betas if model_type != "smplx" else 300)
        kwargs = dict(
            data_struct=Struct(**data), num_betas=self.num_betas, gender=gender, dtype=torch.float32
        )
        if vertex_ids is not None:
            kwargs["vertex_ids"] = vertex_ids
        try:
            if model_type == "smpl":
                self.layer = cls(model_path=str(self.path), **kwargs)
            elif model_type == "smplh":
                self.layer = cls(
                    model_path=str(self.path),
                    ext="npz",
                    use_pca=False,
                    flat_hand_mean=True,
                    **kwargs,
                )
            else:
                self.layer = smplx.SMPLX(
                    model_path=str(self.path),
                    ext="npz",
                    use_pca=False,
                    flat_hand_mean=True,
                    num_expression_coeffs=10,
                    num_betas=self.num_betas,
                    gender=gender,
                    dtype=torch.float32,
                    **({"vertex_ids": vertex_ids} if vertex_ids else {}),
                )
        except Exception as exc:  # noqa: BLE001
            raise BodyModelError(f"{self.path}: smplx could not build the model ({exc})") from None
        self.layer.eval()
        self.faces = np.asarray(data["f"], dtype=np.int64)
        self.j_regressor = np.asarray(data["J_regressor"], dtype=np.float64)
        self.num_joints = NUM_MODEL_JOINTS[model_type]

    def skinning_arrays(self) -> dict[str, np.ndarray]:
        """The arrays linear blend skinning needs, as the smplx layer holds them (float32;
        ``shapedirs`` cut to ``num_betas``; SMPL-X's expression directions left out, a build
        poses zero expression): what ``shards.body`` recomputes vertices from."""
        lay = self.layer
        return {
            "v_template": lay.v_template.detach().cpu().numpy().astype(np.float32),
            "shapedirs": lay.shapedirs.detach().cpu().numpy().astype(np.float32),
            "posedirs": lay.posedirs.detach().cpu().numpy().astype(np.float32),
            "J_regressor": lay.J_regressor.detach().cpu().numpy().astype(np.float32),
            "weights": lay.lbs_weights.detach().cpu().numpy().astype(np.float32),
            "parents": lay.parents.detach().cpu().numpy().astype(np.int32),
        }

    @property
    def v_template(self) -> np.ndarray:
        return self.layer.v_template.detach().cpu().numpy()

    def forward(
        self,
        poses: np.ndarray | None = None,
        betas: np.ndarray | None = None,
        trans: np.ndarray | None = None,
        n: int | None = None,
        chunk: int = 1024,
    ) -> BodyOutput:
        """Pose the model.

        ``poses``: (N, P) axis-angle in the model's joint order: root (3) then body, hands
        (and for SMPL-X jaw, eyes) — AMASS's (N, 156) layout for SMPL+H, (N, 72) for SMPL,
        (N, 165) for SMPL-X (root, 21 body, jaw, leye, reye, 15+15 hand). Missing trailing
        entries are zero. ``betas``: (B,) or (N, B); ``trans``: (N, 3).
        """
        import torch  # heavy: torch

        N = n or (len(poses) if poses is not None else len(trans) if trans is not None else 1)
        nj = {"smpl": 24, "smplh": 52, "smplx": 55}[self.model_type]
        P = np.zeros((N, nj * 3), dtype=np.float32)
        if poses is not None:
            poses = np.asarray(poses, dtype=np.float32).reshape(N, -1)
            P[:, : min(poses.shape[1], nj * 3)] = poses[:, : nj * 3]
        B = np.zeros((N, self.num_betas), dtype=np.float32)
        if betas is not None:
            b = np.asarray(betas, dtype=np.float32)
            b = np.broadcast_to(b if b.ndim == 2 else b[None], (N, b.shape[-1]))
            B[:, : min(b.shape[1], self.num_betas)] = b[:, : self.num_betas]
        T = np.zeros((N, 3), np.float32) if trans is None else np.asarray(trans, np.float32)
        verts, joints = [], []
        with torch.no_grad():
            for s in range(0, N, chunk):
                e = min(N, s + chunk)
                t = lambda a, s=s, e=e: torch.from_numpy(np.ascontiguousarray(a[s:e]))  # noqa: E731
                p = t(P)
                kw = dict(betas=t(B), global_orient=p[:, :3], transl=t(T), return_verts=True)
                if self.model_type == "smpl":
                    kw["body_pose"] = p[:, 3:72]
                elif self.model_type == "smplh":
                    kw.update(
                        body_pose=p[:, 3:66],
                        left_hand_pose=p[:, 66:111],
                        right_hand_pose=p[:, 111:156],
                    )
                else:
                    kw.update(
                        body_pose=p[:, 3:66],
                        jaw_pose=p[:, 66:69],
                        leye_pose=p[:, 69:72],
                        reye_pose=p[:, 72:75],
                        left_hand_pose=p[:, 75:120],
                        right_hand_pose=p[:, 120:165],
                        expression=torch.zeros(e - s, 10),
                    )
                out = self.layer(**kw)
                verts.append(out.vertices.numpy())
                joints.append(out.joints[:, : self.num_joints].numpy())
        return BodyOutput(np.concatenate(verts), np.concatenate(joints))

    __call__ = forward


@lru_cache(maxsize=16)
def _cached(path: str, model_type: str, gender: str, num_betas: int | None) -> BodyModel:
    return BodyModel(Path(path), model_type, gender, num_betas)


def load_body_model(
    root: Path, model_type: str = "smplh", gender: str = "neutral", num_betas: int | None = None
) -> BodyModel:
    """Cached :class:`BodyModel` for ``model_type``/``gender`` under the body-models root.

    ``gender`` may be bytes or any case ("Male", b"female"); ``num_betas`` defaults to
    ``DEFAULT_NUM_BETAS`` (all the file's shape directions for SMPL+H: 16 for AMASS's).
    """
    if isinstance(gender, bytes):
        gender = gender.decode()
    gender = str(gender).lower()
    path = model_file(root, model_type, gender)
    if not path.is_file():
        raise BodyModelError(f"{path}: body model file not found")
    return _cached(str(path.resolve()), model_type, gender, num_betas)

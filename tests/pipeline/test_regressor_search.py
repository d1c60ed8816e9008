"""H36M-17 regressor files (METRO's J_regressor_h36m_correct.npy and J_regressor_h36m.npy):
where they are found, which one wins, what is refused, and the provenance recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipeline import joints as J

V, NJ = 6890, 52


def _reg(seed: int, v: int = V) -> np.ndarray:
    r = np.random.default_rng(seed).random((17, v))
    return r / r.sum(axis=1, keepdims=True)


def _put(root: Path, rel: str, a: np.ndarray) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, a)
    return p


def _sha(p: Path) -> str:
    return "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()


def _h36m(reg: J.KeypointRegressor, verts: np.ndarray) -> np.ndarray:
    return reg.h36m17(verts, np.zeros((len(verts), NJ, 3), np.float32))


@pytest.fixture
def verts() -> np.ndarray:
    return np.random.default_rng(9).normal(size=(2, V, 3)).astype(np.float32)


def test_plain_name_at_root_is_used_and_recorded(tmp_path, verts):
    R = _reg(0)
    p = _put(tmp_path, "J_regressor_h36m.npy", R)
    reg = J.KeypointRegressor.from_body_models(tmp_path, "smplh", V, NJ)
    np.testing.assert_allclose(_h36m(reg, verts), np.einsum("kv,nvc->nkc", R, verts), atol=1e-5)
    assert reg.provenance["h36m17"] == {
        "source": "J_regressor_h36m.npy",
        "file": "J_regressor_h36m.npy",
        "sha256": _sha(p),
    }
    assert reg.provenance["coco17"]["source"] == J.COCO_SMPL_SOURCE


def test_correct_name_is_preferred_wherever_it_is(tmp_path, verts):
    plain = _put(tmp_path, "J_regressor_h36m.npy", _reg(0))
    R = _reg(1)
    corr = _put(tmp_path, "smpl/J_regressor_h36m_correct.npy", R)
    search = J.find_h36m_regressor(tmp_path, "smplh", V)
    assert search.path == corr
    assert search.ignored == [("J_regressor_h36m.npy", f"{search.path.relative_to(tmp_path)} "
                               "comes first in the search order")]  # fmt: skip
    reg = J.KeypointRegressor.from_body_models(tmp_path, "smplh", V, NJ)
    np.testing.assert_allclose(_h36m(reg, verts), np.einsum("kv,nvc->nkc", R, verts), atol=1e-5)
    assert reg.provenance["h36m17"]["file"] == "smpl/J_regressor_h36m_correct.npy"
    assert reg.provenance["h36m17"]["sha256"] == _sha(corr) != _sha(plain)


@pytest.mark.parametrize(
    "places, want",
    [
        (["smplh/X", "X"], "X"),  # root first
        (["smpl/X", "smplh/X"], "smplh/X"),  # the build family's folder before the others
        (["smplx/X", "smpl/X"], "smpl/X"),
        (["metro/data/X", "smplx/X"], "smplx/X"),  # named folders before any other
        (["metro/data/X"], "metro/data/X"),  # two levels down is still found
    ],
)
def test_folder_search_order(tmp_path, places, want):
    for i, rel in enumerate(places):
        _put(tmp_path, rel.replace("X", "J_regressor_h36m_correct.npy"), _reg(i))
    search = J.find_h36m_regressor(tmp_path, "smplh", V)
    assert search.path == tmp_path / want.replace("X", "J_regressor_h36m_correct.npy")


def test_other_topology_is_ignored_bad_file_refused(tmp_path):
    _put(tmp_path, "J_regressor_h36m_correct.npy", _reg(0))  # SMPL topology, 6890
    VX = 10475  # SMPL-X
    reg = J.KeypointRegressor.from_body_models(tmp_path, "smplx", VX, 55)
    assert reg.provenance["h36m17"]["source"] == J.APPROXIMATED
    search = J.find_h36m_regressor(tmp_path, "smplx", VX)
    assert search.path is None and "6890-vertex" in search.ignored[0][1]
    bad = _put(tmp_path, "smplh/J_regressor_h36m.npy", _reg(0, 100))
    with pytest.raises(ValueError, match=str(bad)):
        J.find_h36m_regressor(tmp_path, "smplh", 300)
    (tmp_path / "J_regressor_h36m_correct.npy").unlink()
    (tmp_path / "smplh" / "J_regressor_h36m.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="not a readable .npy"):
        J.find_h36m_regressor(tmp_path, "smplh", V)


def test_no_file_means_approximated(tmp_path):
    reg = J.KeypointRegressor.from_body_models(tmp_path, "smplh", V, NJ)
    assert reg.provenance["h36m17"]["source"] == "approximated"
    assert J.find_h36m_regressor(tmp_path, "smplh", V).path is None


def test_shipped_regressors_provenance(synth_data):
    bm = Path(synth_data) / "body_models"
    gen = bm / "smplh" / "joint_regressors.npz"
    with np.load(gen) as z:
        nv = z["coco17"].shape[1]
    reg = J.KeypointRegressor.from_body_models(bm, "smplh", nv, NJ)
    for name in ("coco17", "h36m17"):
        assert reg.provenance[name] == {
            "source": "shipped joint_regressors.npz",
            "file": "smplh/joint_regressors.npz",
            "sha256": _sha(gen),
        }

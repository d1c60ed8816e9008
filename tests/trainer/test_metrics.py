import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from trainer.metrics import H36M_TO_14, mesh_metrics, mpjpe, pa_mpjpe, similarity_procrustes


def test_mpjpe_matches_loop():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 14, 3)), rng.normal(size=(4, 14, 3))
    ref = [
        np.mean([np.sqrt(((a[i, j] - b[i, j]) ** 2).sum()) for j in range(14)]) for i in range(4)
    ]
    np.testing.assert_allclose(mpjpe(a, b), ref, rtol=1e-12)


def test_procrustes_recovers_similarity_transform():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(5, 14, 3))
    rots = Rotation.random(5, random_state=2).as_matrix()
    pred = np.stack([2.5 * g @ r.T + rng.normal(size=3) for g, r in zip(gt, rots)])
    np.testing.assert_allclose(similarity_procrustes(pred, gt), gt, atol=1e-10)
    assert pa_mpjpe(pred, gt).max() < 1e-9


def test_procrustes_matches_scipy_orthogonal_procrustes():
    rng = np.random.default_rng(3)
    pred, gt = rng.normal(size=(6, 14, 3)), rng.normal(size=(6, 14, 3))
    ours = similarity_procrustes(pred, gt)
    for i in range(6):
        p = pred[i] - pred[i].mean(0)
        g = gt[i] - gt[i].mean(0)
        r, s = orthogonal_procrustes(p, g)
        if np.linalg.det(r) < 0:  # scipy allows reflections; a proper rotation flips one axis
            u, sv, vt = np.linalg.svd(p.T @ g)
            fix = np.diag([1, 1, -1])
            r, s = u @ fix @ vt, (sv * np.diag(fix)).sum()
        scale = s / (p**2).sum()
        np.testing.assert_allclose(ours[i], scale * p @ r + gt[i].mean(0), atol=1e-10)


def test_pa_mpjpe_matches_scipy_procrustes_disparity_when_scale_equal():
    # scipy.spatial.procrustes normalises both sets; for unit-Frobenius centred gt its
    # disparity equals the squared residual of our alignment.
    from scipy.spatial import procrustes

    rng = np.random.default_rng(4)
    gt = rng.normal(size=(14, 3))
    gt = gt - gt.mean(0)
    gt /= np.linalg.norm(gt)
    pred = gt @ Rotation.random(random_state=5).as_matrix().T * 3 + 0.05 * rng.normal(size=(14, 3))
    _, _, disparity = procrustes(gt, pred)
    ours = similarity_procrustes(pred[None], gt[None])[0]
    assert ((ours - gt) ** 2).sum() == pytest.approx(disparity, rel=1e-8)


def test_mesh_metrics_protocol():
    rng = np.random.default_rng(6)
    nv = 40
    reg = rng.random((17, nv))
    reg /= reg.sum(1, keepdims=True)
    gt_v = rng.normal(size=(3, nv, 3))
    gt_j = np.einsum("jv,bvc->bjc", reg, gt_v)
    shifted = gt_v + np.array([0.3, -1.0, 4.0])  # translation is removed by pelvis centring
    m = mesh_metrics(shifted, gt_v, gt_j, reg)
    for k in ("mpjpe", "pa_mpjpe", "pve"):
        assert m[k].max() < 1e-9
    pred = gt_v.copy()
    pred[:, :, 0] += 0.01 * np.arange(nv) / nv
    m = mesh_metrics(pred, gt_v, gt_j, reg)
    pj = np.einsum("jv,bvc->bjc", reg, pred)
    ref = 1000 * np.linalg.norm(
        (pj - pj[:, :1])[:, H36M_TO_14] - (gt_j - gt_j[:, :1])[:, H36M_TO_14], axis=-1
    ).mean(1)
    np.testing.assert_allclose(m["mpjpe"], ref)
    # the alignment minimises the squared error, so the RMS can only go down
    from trainer.metrics import similarity_procrustes as sim

    pj14 = (pj - pj[:, :1])[:, H36M_TO_14]
    gj14 = (gt_j - gt_j[:, :1])[:, H36M_TO_14]
    assert (((sim(pj14, gj14) - gj14) ** 2).sum((1, 2)) <= ((pj14 - gj14) ** 2).sum((1, 2))).all()

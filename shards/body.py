"""Mesh vertices from stored body parameters: SMPL-family linear blend skinning in torch.

Schema 2 shards store no vertices; ``topology.h5`` carries the body model's arrays (``body/``
group, one subgroup per gender the build used: ``v_template`` (Nv, 3), ``shapedirs``
(Nv, 3, B), ``posedirs`` (9 (J-1), 3 Nv), ``J_regressor`` (J, Nv), ``weights`` (Nv, J),
``parents`` (J,)) and the reader yields each sample's ``pose``, ``betas``, ``gender`` and the
rigid ``body_R``, ``body_t`` that take the unplaced posed body (translation excluded) to the
view's camera frame. :class:`BodySkinner` turns those into camera-frame vertices on whatever
device it lives on, in float32, with the same operations as ``smplx.lbs`` (SMPL+H and SMPL-X
alike: SMPL-X's expression is zero and hands are flat-mean in a build, so its vertices are the
same blend of the arrays). Imports torch and numpy only (and the schema's names).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from shards.schema import BODY_ARRAYS, GENDERS


def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    """(N, 3) axis-angle -> (N, 3, 3) rotations (smplx's batch_rodrigues formulation)."""
    angle = torch.norm(aa + 1e-8, dim=1, keepdim=True)
    d = aa / angle
    cos, sin = torch.cos(angle)[:, :, None], torch.sin(angle)[:, :, None]
    rx, ry, rz = d[:, 0], d[:, 1], d[:, 2]
    z = torch.zeros_like(rx)
    k = torch.stack([z, -rz, ry, rz, z, -rx, -ry, rx, z], 1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + sin * k + (1 - cos) * torch.bmm(k, k)


def _levels(parents: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Joints grouped by depth in the kinematic tree (root excluded): [(joints, parents)]."""
    depth = np.zeros(len(parents), int)
    for i in range(1, len(parents)):
        depth[i] = depth[parents[i]] + 1
    return [(np.flatnonzero(depth == d), parents[depth == d]) for d in range(1, depth.max() + 1)]


class _Gender(torch.nn.Module):
    """One gendered model. Per-vertex arrays are kept coordinate-major (x of every vertex,
    then y, then z) so that every step runs on contiguous (N, 3, Nv) tensors."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        f32 = {k: torch.as_tensor(np.asarray(arrays[k], np.float32)) for k in BODY_ARRAYS[:-1]}
        nv = f32["v_template"].shape[0]
        self.register_buffer("v_template", f32["v_template"])  # (Nv, 3)
        self.register_buffer("vt_cm", f32["v_template"].T.reshape(1, -1))  # (1, 3Nv)
        sd = f32["shapedirs"]  # (Nv, 3, B)
        self.register_buffer("shapedirs_cm", sd.permute(1, 0, 2).reshape(3 * nv, -1).T.clone())
        pd = f32["posedirs"]  # (9(J-1), 3Nv), columns vertex-major
        pd = pd.view(-1, nv, 3).permute(0, 2, 1).reshape(-1, 3 * nv)
        # pose blend shapes over their non-zero block only (exact: the rest adds 0); models
        # without pose correctives (all zero) skip the product
        rows, cols = pd.any(1).nonzero()[:, 0], pd.any(0).nonzero()[:, 0]
        self.pose_dense = len(rows) * len(cols) > 0.5 * pd.numel()
        if self.pose_dense:
            rows, cols = torch.arange(pd.shape[0]), torch.arange(pd.shape[1])
        self.register_buffer("pose_rows", rows)
        self.register_buffer("pose_cols", cols)
        self.register_buffer("posedirs_cm", pd if self.pose_dense else pd[rows][:, cols].clone())
        # J = J_regressor @ (v_template + shapedirs b): precompute both products
        jr = f32["J_regressor"]
        self.register_buffer("j_template", jr @ f32["v_template"])  # (J, 3)
        jsd = torch.einsum("jv,vcb->jcb", jr, sd)
        self.register_buffer("j_shapedirs", jsd.reshape(-1, jsd.shape[-1]).T.clone())  # (B, 3J)
        self.register_buffer("weights_t", f32["weights"].T.clone())  # (J, Nv)
        self.parents = np.asarray(arrays["parents"], np.int64).copy()
        self.parents[0] = -1
        self.levels = _levels(self.parents)
        self.num_betas = int(sd.shape[-1])

    def forward_cm(self, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """(N, 3J) axis-angle, (N, B) betas -> (N, 3, Nv) posed vertices, no translation."""
        n = pose.shape[0]
        nj, nv = self.weights_t.shape
        b = torch.zeros(n, self.num_betas, dtype=pose.dtype, device=pose.device)
        k = min(self.num_betas, betas.shape[1])
        b[:, :k] = betas[:, :k]
        p = torch.zeros(n, nj * 3, dtype=pose.dtype, device=pose.device)
        k = min(nj * 3, pose.shape[1])
        p[:, :k] = pose[:, :k]
        v = torch.addmm(self.vt_cm, b, self.shapedirs_cm)  # (N, 3Nv)
        joints = torch.addmm(self.j_template.reshape(1, -1), b, self.j_shapedirs).view(n, nj, 3)
        rot = rodrigues(p.view(-1, 3)).view(n, nj, 3, 3)
        eye = torch.eye(3, dtype=p.dtype, device=p.device)
        feat = (rot[:, 1:] - eye).reshape(n, -1)
        if self.pose_dense:
            v = torch.addmm(v, feat, self.posedirs_cm)
        elif len(self.pose_cols):
            v[:, self.pose_cols] += feat[:, self.pose_rows] @ self.posedirs_cm
        v = v.view(n, 3, nv)
        rel = joints.clone()
        rel[:, 1:] -= joints[:, self.parents[1:]]
        # world transforms of every joint, level by level down the tree
        g_rot = torch.empty_like(rot)
        g_t = torch.empty_like(joints)
        g_rot[:, 0], g_t[:, 0] = rot[:, 0], rel[:, 0]
        for idx, par in self.levels:
            pr = g_rot[:, par]
            g_rot[:, idx] = pr @ rot[:, idx]
            g_t[:, idx] = (pr @ rel[:, idx, :, None])[..., 0] + g_t[:, par]
        # relative to the rest pose: x -> G_R (x - J) + G_t
        a_t = g_t - (g_rot @ joints[..., None])[..., 0]
        a = torch.cat([g_rot, a_t[..., None]], -1)  # (N, J, 3, 4)
        # blend per vertex as one GEMM: (N * 12, J) @ (J, Nv)
        t = (a.permute(0, 2, 3, 1).reshape(n * 12, nj) @ self.weights_t).view(n, 3, 4, nv)
        out = t[:, :, 3].clone()
        for c in range(3):
            out.addcmul_(t[:, :, c], v[:, None, c])
        return out

    def forward(self, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """(N, Nv, 3) posed vertices (a transposed view of :meth:`forward_cm`)."""
        return self.forward_cm(pose, betas).transpose(1, 2)


class BodySkinner(torch.nn.Module):
    """The dataset's body model (every gender it carries) as one torch module.

    ``forward(pose, betas, gender)`` -> (N, Nv, 3) posed vertices without translation (the
    smplx layer's output minus ``transl``); ``camera_vertices(batch)`` -> the sample
    contract's ``vertices`` from a reader batch (``pose``, ``betas``, ``gender``, ``body_R``,
    ``body_t``), on this module's device. Arrays come from :meth:`from_topology`.
    """

    def __init__(
        self, genders: Mapping[str, Mapping[str, np.ndarray]], model_type: str = ""
    ) -> None:
        super().__init__()
        if not genders:
            raise ValueError("body model: no gender arrays")
        self.model_type = model_type
        self.genders = torch.nn.ModuleDict({g: _Gender(a) for g, a in genders.items()})
        nvs = {int(m.v_template.shape[0]) for m in self.genders.values()}
        if len(nvs) != 1:
            raise ValueError(f"body model: genders disagree on the vertex count {sorted(nvs)}")
        self.num_vertices = nvs.pop()

    @classmethod
    def from_topology(cls, topo) -> BodySkinner:
        """From a :class:`shards.topology.Topology` (or a dataset folder / topology path)."""
        if not hasattr(topo, "body"):
            from shards.topology import load_topology

            topo = load_topology(topo)
        if not topo.body:
            raise ValueError("topology.h5 carries no body model (body/ group)")
        return cls(topo.body, str(topo.body_attrs.get("model_type", "")))

    @property
    def device(self) -> torch.device:
        return next(iter(self.buffers())).device

    def forward(
        self, pose: torch.Tensor, betas: torch.Tensor, gender: torch.Tensor
    ) -> torch.Tensor:
        """(N, Nv, 3) posed vertices, a dense transposed view of (N, 3, Nv)."""
        return self.forward_cm(pose, betas, gender).transpose(1, 2)

    def forward_cm(
        self, pose: torch.Tensor, betas: torch.Tensor, gender: torch.Tensor
    ) -> torch.Tensor:
        """(N, 3, Nv) posed vertices (coordinate-major)."""
        dev = self.device
        pose = pose.to(dev, torch.float32)
        betas = betas.to(dev, torch.float32)
        gender = torch.as_tensor(gender).to(dev)
        out = torch.empty(len(pose), 3, self.num_vertices, device=dev)
        # full float32 matmuls (no TF32) on CUDA: skinning needs < 1 mm
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            codes = gender.unique().tolist()
            for code in codes:
                name = GENDERS[int(code)]
                if name not in self.genders:
                    raise ValueError(f"body model: dataset carries no {name} arrays")
                if len(codes) == 1:
                    return self.genders[name].forward_cm(pose, betas)
                sel = (gender == code).nonzero()[:, 0]
                out[sel] = self.genders[name].forward_cm(pose[sel], betas[sel])
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        return out

    def camera_vertices(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(N, Nv, 3) vertices in each sample's camera frame, metres: a dense transposed view
        of (N, 3, Nv) (``R @ V^T`` that way is the fast product, as the reader always did)."""
        v = self.forward_cm(batch["pose"], batch["betas"], batch["gender"])
        rot = batch["body_R"].to(v.device, torch.float32)
        t = batch["body_t"].to(v.device, torch.float32)
        return torch.baddbmm(t[:, :, None], rot, v).transpose(1, 2)

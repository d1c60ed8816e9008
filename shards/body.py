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

    Every gender is skinned in one pass, with no host-device synchronisation: the genders'
    arrays are stacked block-wise and each sample's coefficients are placed in its gender's
    block (a one-hot), so one product per stage serves a mixed batch; the kinematic tree's
    index tensors are buffers on the module's device. ``genders`` holds each gender as its
    own module (CPU, for the build).
    """

    def __init__(
        self, genders: Mapping[str, Mapping[str, np.ndarray]], model_type: str = ""
    ) -> None:
        super().__init__()
        if not genders:
            raise ValueError("body model: no gender arrays")
        self.model_type = model_type
        self.genders = {g: _Gender(a) for g, a in genders.items()}  # not moved by .to()
        models = list(self.genders.values())
        nvs = {int(m.v_template.shape[0]) for m in models}
        if len(nvs) != 1:
            raise ValueError(f"body model: genders disagree on the vertex count {sorted(nvs)}")
        self.num_vertices = nvs.pop()
        parents = models[0].parents
        if any(not np.array_equal(m.parents, parents) for m in models):
            raise ValueError("body model: genders disagree on the kinematic tree (parents)")
        if len({m.num_betas for m in models}) != 1:
            raise ValueError("body model: genders disagree on the number of betas")
        self.num_betas = models[0].num_betas
        self.names = list(self.genders)
        slot = [self.names.index(g) if g in self.names else -1 for g in GENDERS]
        self.register_buffer("slot", torch.tensor(slot, dtype=torch.int64))
        # [template; shapedirs] of every gender, rows matching coef = [one-hot, one-hot x betas]
        self.register_buffer(
            "base_cm",
            torch.cat([torch.cat([m.vt_cm for m in models])] + [m.shapedirs_cm for m in models]),
        )
        self.register_buffer(
            "joint_base",
            torch.cat(
                [torch.stack([m.j_template.reshape(-1) for m in models])]
                + [m.j_shapedirs for m in models]
            ),
        )
        # pose correctives of every gender on the union of their non-zero rows and columns
        full = [m.posedirs_cm if m.pose_dense else None for m in models]
        pds = []
        for m, f in zip(models, full):
            if f is None:
                f = torch.zeros(len(models[0].j_template) * 9 - 9, 3 * self.num_vertices)
                f[m.pose_rows[:, None], m.pose_cols] = m.posedirs_cm
            pds.append(f)
        rows = torch.stack([pd.any(1) for pd in pds]).any(0).nonzero()[:, 0]
        cols = torch.stack([pd.any(0) for pd in pds]).any(0).nonzero()[:, 0]
        self.register_buffer("pose_rows", rows)
        self.register_buffer("pose_cols", cols)
        self.register_buffer("posedirs_cm", torch.cat([pd[rows][:, cols] for pd in pds]))
        # skinning weights: one (J, Nv) when the genders share them, else stacked per gender
        w = [m.weights_t for m in models]
        self.shared_weights = all(torch.equal(x, w[0]) for x in w)
        self.register_buffer("weights_t", w[0] if self.shared_weights else torch.cat(w))
        self.register_buffer("parents", torch.as_tensor(parents[1:]).clone())
        self.depth = len(models[0].levels)
        for d, (idx, par) in enumerate(models[0].levels):
            self.register_buffer(f"tree_idx{d}", torch.as_tensor(idx))
            self.register_buffer(f"tree_par{d}", torch.as_tensor(par))

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
        return self.slot.device

    def forward(
        self, pose: torch.Tensor, betas: torch.Tensor, gender: torch.Tensor
    ) -> torch.Tensor:
        """(N, Nv, 3) posed vertices, a dense transposed view of (N, 3, Nv)."""
        return self.forward_cm(pose, betas, gender).transpose(1, 2)

    def _one_hot(self, gender: torch.Tensor) -> torch.Tensor:
        """(N, G) float one-hot of each sample's gender among the carried ones. A gender the
        model lacks fails: at once on the CPU (one line naming it), as a device-side assert
        on a GPU (checking it on the host would wait for the device)."""
        slot = self.slot[gender.long()]
        try:
            torch._assert_async((slot >= 0).all(), "body model: a sample's gender has no arrays")
        except RuntimeError:
            codes = sorted(set(gender[slot < 0].tolist()))
            names = ", ".join(GENDERS[int(c)] for c in codes)
            raise ValueError(f"body model: dataset carries no {names} arrays") from None
        g = len(self.names)
        return torch.nn.functional.one_hot(slot.clamp(min=0), g).to(torch.float32)

    def forward_cm(
        self, pose: torch.Tensor, betas: torch.Tensor, gender: torch.Tensor
    ) -> torch.Tensor:
        """(N, 3, Nv) posed vertices (coordinate-major), every gender in one pass."""
        dev = self.device
        n = len(pose)
        hot = self._one_hot(torch.as_tensor(gender).to(dev))  # (N, G)
        nj, nv = len(self.parents) + 1, self.num_vertices
        b = torch.zeros(n, self.num_betas, device=dev)
        k = min(self.num_betas, betas.shape[1])
        b[:, :k] = betas[:, :k].to(dev, torch.float32)
        p = torch.zeros(n, nj * 3, device=dev)
        k = min(nj * 3, pose.shape[1])
        p[:, :k] = pose[:, :k].to(dev, torch.float32)
        # full float32 matmuls (no TF32) on CUDA: skinning needs < 1 mm
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            coef = torch.cat([hot, (hot[:, :, None] * b[:, None]).reshape(n, -1)], 1)
            v = coef @ self.base_cm  # (N, 3Nv)
            joints = (coef @ self.joint_base).view(n, nj, 3)
            rot = rodrigues(p.view(-1, 3)).view(n, nj, 3, 3)
            eye = torch.eye(3, device=dev)
            feat = (rot[:, 1:] - eye).reshape(n, -1)[:, self.pose_rows]
            if len(self.pose_rows):
                pf = (hot[:, :, None] * feat[:, None]).reshape(n, -1)
                v.index_add_(1, self.pose_cols, pf @ self.posedirs_cm)
            v = v.view(n, 3, nv)
            rel = joints.clone()
            rel[:, 1:] -= joints[:, self.parents]
            # world transforms of every joint, level by level down the tree
            g_rot = torch.empty_like(rot)
            g_t = torch.empty_like(joints)
            g_rot[:, 0], g_t[:, 0] = rot[:, 0], rel[:, 0]
            for d in range(self.depth):
                idx, par = getattr(self, f"tree_idx{d}"), getattr(self, f"tree_par{d}")
                pr = g_rot[:, par]
                g_rot[:, idx] = pr @ rot[:, idx]
                g_t[:, idx] = (pr @ rel[:, idx, :, None])[..., 0] + g_t[:, par]
            # relative to the rest pose: x -> G_R (x - J) + G_t
            a_t = g_t - (g_rot @ joints[..., None])[..., 0]
            a = torch.cat([g_rot, a_t[..., None]], -1)  # (N, J, 3, 4)
            a = a.permute(0, 2, 3, 1).reshape(n * 12, nj)
            if not self.shared_weights:  # each sample's rows in its gender's block
                a = (hot.repeat_interleave(12, 0)[:, :, None] * a[:, None]).reshape(n * 12, -1)
            # blend per vertex as one GEMM: (N * 12, [G] J) @ ([G] J, Nv)
            t = (a @ self.weights_t).view(n, 3, 4, nv)
            out = t[:, :, 3].clone()
            for c in range(3):
                out.addcmul_(t[:, :, c], v[:, None, c])
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

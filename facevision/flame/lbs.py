"""FLAME's forward model: blend shapes, pose correctives and linear blend skinning (torch).

The standard SMPL/FLAME formulation (Loper et al. 2015, Li et al. 2017), written here because ``smplx`` is
licensed for non-commercial research only; ``tests/test_flame_lbs.py`` compares the two when smplx is installed.

Pose vector layout (FLAME, axis-angle radians): ``[global(3), neck(3), jaw(3), left eye(3), right eye(3)]``.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from facevision.flame.model import FlameModel

__all__ = ["torch_threads", "FlameTensors", "flame_tensors", "batch_rodrigues", "blend_shapes", "lbs", "flame_forward_torch"]


@dataclass
class FlameTensors:
    """A :class:`FlameModel` as torch tensors of one dtype (see FlameModel for shapes)."""

    v_template: torch.Tensor
    dirs: torch.Tensor  # (V,3,n_shape+n_expr)
    posedirs: torch.Tensor
    J_regressor: torch.Tensor
    weights: torch.Tensor
    parents: list[int]
    n_shape: int
    n_expr: int
    J_template: torch.Tensor  # (J,3) joints of the template
    J_dirs: torch.Tensor  # (J,3,n_shape+n_expr) joint offsets per coefficient (joints are linear in them)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's CPU thread count (FLAME fitting is many tiny ops: 1 thread is fastest)."""
    old = torch.get_num_threads()
    if n and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != old:
            torch.set_num_threads(old)


_TENSOR_CACHE: dict[tuple[str, torch.dtype], FlameTensors] = {}


def flame_tensors(model: FlameModel, dtype: torch.dtype = torch.float32) -> FlameTensors:
    """Torch copies of a model's arrays, cached per (model hash, dtype)."""
    key = (model.sha256, dtype)
    if key not in _TENSOR_CACHE:
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
        dirs = np.concatenate([model.shapedirs, model.exprdirs], axis=2)
        _TENSOR_CACHE[key] = FlameTensors(
            v_template=t(model.v_template), dirs=t(dirs), posedirs=t(model.posedirs), J_regressor=t(model.J_regressor),
            weights=t(model.weights), parents=[int(p) for p in model.parents], n_shape=model.n_shape,
            n_expr=model.n_expr, J_template=t(model.J_regressor @ model.v_template),
            J_dirs=t(np.einsum("jv,vck->jck", model.J_regressor, dirs)))
        if len(_TENSOR_CACHE) > 8:
            _TENSOR_CACHE.pop(next(iter(_TENSOR_CACHE)))
    return _TENSOR_CACHE[key]


def subset_tensors(ft: FlameTensors, vertex_ids: np.ndarray, n_shape: int | None = None,
                   n_expr: int | None = None) -> FlameTensors:
    """The model restricted to some vertices (joints still come from the whole shaped template) and
    optionally to the leading ``n_shape``/``n_expr`` components, so :func:`flame_forward_torch` poses
    only those vertices with those coefficients: used by the fitters for speed."""
    ids = torch.as_tensor(np.asarray(vertex_ids, dtype=np.int64))
    cols = (ids[:, None] * 3 + torch.arange(3)).reshape(-1)
    ks = ft.n_shape if n_shape is None else min(n_shape, ft.n_shape)
    ke = ft.n_expr if n_expr is None else min(n_expr, ft.n_expr)
    keep = torch.cat([torch.arange(ks), ft.n_shape + torch.arange(ke)])
    return FlameTensors(v_template=ft.v_template[ids], dirs=ft.dirs[ids][:, :, keep].contiguous(),
                        posedirs=ft.posedirs[:, cols].contiguous(), J_regressor=ft.J_regressor[:, ids],
                        weights=ft.weights[ids], parents=ft.parents, n_shape=ks, n_expr=ke,
                        J_template=ft.J_template, J_dirs=ft.J_dirs[:, :, keep].contiguous())


def batch_rodrigues(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) radians -> rotation matrices (..., 3, 3); smooth (and differentiable) at 0."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]  # (...,1,1)
    theta = torch.sqrt(theta2 + 1e-16)
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotvec.shape[:-1], 3, 3)
    small = theta < 1e-4
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / (theta2 + 1e-30))
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(skew)
    return eye + a * skew + b * (skew @ skew)


def blend_shapes(coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """(B,K) coefficients x (V,3,K) basis -> (B,V,3) offsets."""
    nv, _, k = dirs.shape
    return (coeffs @ dirs.reshape(nv * 3, k).T).reshape(coeffs.shape[0], nv, 3)


def _left_mm(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N,K) @ (B,K,C) -> (B,N,C) as one plain matrix product (much faster than broadcast bmm on CPU)."""
    b, k, c = x.shape
    return (m @ x.permute(1, 0, 2).reshape(k, b * c)).reshape(m.shape[0], b, c).permute(1, 0, 2)


def lbs(v_shaped: torch.Tensor, pose: torch.Tensor, posedirs: torch.Tensor, J_regressor: torch.Tensor,
        parents: list[int], weights: torch.Tensor, joints: torch.Tensor | None = None
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose shaped vertices: v_shaped (B,V,3) template plus shape/expression offsets; pose (B,3*J) axis-angle per
    joint, parents before children; posedirs (9*(J-1),V*3); J_regressor (J,V); weights (V,J); joints (B,J,3) rest
    joints if known (else regressed). Returns vertices (B,V,3) and posed joints (B,J,3)."""
    b, nv = v_shaped.shape[:2]
    nj = len(parents)
    if joints is None:
        joints = _left_mm(J_regressor, v_shaped)  # (B,J,3)
    rot = batch_rodrigues(pose.reshape(b, nj, 3))  # (B,J,3,3)
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    pose_feature = (rot[:, 1:] - eye).reshape(b, -1)
    v_posed = v_shaped + (pose_feature @ posedirs).reshape(b, nv, 3)
    # kinematic chain: world rotation and translation of every joint
    world_r: list[torch.Tensor] = []
    world_t: list[torch.Tensor] = []
    for j, p in enumerate(parents):
        if p < 0:
            world_r.append(rot[:, j])
            world_t.append(joints[:, j])
        else:
            world_r.append(world_r[p] @ rot[:, j])
            world_t.append(world_r[p] @ (joints[:, j] - joints[:, p])[..., None] + world_t[p][..., None])
            world_t[-1] = world_t[-1][..., 0]
    r = torch.stack(world_r, dim=1)  # (B,J,3,3)
    t = torch.stack(world_t, dim=1)  # (B,J,3)
    # transform relative to the rest pose: x -> R (x - J_rest) + t
    t_rel = t - (r @ joints[..., None])[..., 0]
    r_v = _left_mm(weights, r.reshape(b, nj, 9)).reshape(b, nv, 3, 3)
    t_v = _left_mm(weights, t_rel)
    verts = (r_v * v_posed[:, :, None, :]).sum(-1) + t_v
    return verts, t


def flame_forward_torch(ft: FlameTensors, shape: torch.Tensor, expr: torch.Tensor, pose: torch.Tensor
                        ) -> torch.Tensor:
    """FLAME vertices (B,V,3) in metres from shape (B,<=n_shape), expression (B,<=n_expr), pose (B,3*J); missing
    coefficients are zero."""
    ks, ke = shape.shape[1], expr.shape[1]
    coeffs = torch.cat([shape, expr], 1)
    if ks == ft.n_shape and ke == ft.n_expr:
        dirs, jdirs = ft.dirs, ft.J_dirs
    elif ke:
        dirs = torch.cat([ft.dirs[:, :, :ks], ft.dirs[:, :, ft.n_shape:ft.n_shape + ke]], 2)
        jdirs = torch.cat([ft.J_dirs[:, :, :ks], ft.J_dirs[:, :, ft.n_shape:ft.n_shape + ke]], 2)
    else:
        dirs, jdirs = ft.dirs[:, :, :ks], ft.J_dirs[:, :, :ks]
    joints = ft.J_template[None] + blend_shapes(coeffs, jdirs)
    verts, _ = lbs(ft.v_template[None] + blend_shapes(coeffs, dirs), pose, ft.posedirs, ft.J_regressor, ft.parents,
                   ft.weights, joints=joints)
    return verts

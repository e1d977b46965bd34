"""FLAME forward model: known properties of blend shapes and linear blend skinning."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facevision.flame.lbs import batch_rodrigues, flame_forward_torch, flame_tensors, subset_tensors
from facevision.flame.params import FlameParams, flame_forward
from support.flame_synthetic import make_synthetic_flame


@pytest.fixture(scope="module")
def model():
    return make_synthetic_flame(n_shape=10, n_expr=6, n_lat=30, n_lon=40)


def _params(model, **kw):
    p = FlameParams.zeros(model)
    for k, v in kw.items():
        setattr(p, k, np.asarray(v, dtype=np.float64))
    return p


def test_zero_parameters_give_the_template(model):
    np.testing.assert_allclose(flame_forward(model, FlameParams.zeros(model)), model.v_template, atol=1e-12)


def test_rodrigues_matches_scipy_and_is_smooth_at_zero():
    rv = np.random.default_rng(0).normal(size=(20, 3))
    rv[0] = 0.0
    rv[1] = 1e-7
    ours = batch_rodrigues(torch.as_tensor(rv)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(rv).as_matrix(), atol=1e-10)
    x = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    batch_rodrigues(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_jaw_rotation_moves_only_jaw_weighted_vertices(model):
    jaw = _params(model, jaw_pose=[0.35, 0, 0])
    d = np.linalg.norm(flame_forward(model, jaw) - model.v_template, axis=1)
    w = model.weights[:, 2]
    assert d.max() > 0.01  # the chin moves by centimetres
    assert d[w < 1e-6].max() < 1e-6  # vertices without jaw weight stay put
    assert np.corrcoef(d, w)[0, 1] > 0.9
    # opening the jaw moves the chin down
    chin = np.argmax(w * (model.v_template[:, 2] > 0) * -model.v_template[:, 1])
    assert flame_forward(model, jaw)[chin, 1] < model.v_template[chin, 1] - 0.005


def test_shape_and_expression_are_linear(model):
    rng = np.random.default_rng(1)
    b1, b2 = rng.normal(size=model.n_shape), rng.normal(size=model.n_shape)
    e1 = rng.normal(size=model.n_expr)
    t = model.v_template
    f = lambda b, e: flame_forward(model, _params(model, shape=b, expression=e)) - t  # noqa: E731
    z = np.zeros(model.n_expr)
    np.testing.assert_allclose(f(b1 + 2 * b2, z), f(b1, z) + 2 * f(b2, z), atol=1e-12)
    np.testing.assert_allclose(f(b1, e1), f(b1, z) + f(np.zeros(model.n_shape), e1), atol=1e-12)
    np.testing.assert_allclose(f(b1, z), np.einsum("vck,k->vc", model.shapedirs, b1), atol=1e-12)


def test_global_pose_is_a_rigid_rotation_about_the_root_joint(model):
    rv = np.array([0.2, -0.3, 0.1])
    shape = np.random.default_rng(2).normal(size=model.n_shape)
    rest = flame_forward(model, _params(model, shape=shape))
    posed = flame_forward(model, _params(model, shape=shape, global_pose=rv))
    j0 = model.J_regressor[0] @ rest
    expect = (rest - j0) @ Rotation.from_rotvec(rv).as_matrix().T + j0
    np.testing.assert_allclose(posed, expect, atol=1e-10)


def test_subset_forward_matches_full_forward(model):
    ft = flame_tensors(model, torch.float64)
    ids = np.arange(0, model.n_vertices, 7)
    rng = np.random.default_rng(3)
    s = torch.as_tensor(rng.normal(size=(1, 4)))
    e = torch.as_tensor(rng.normal(size=(1, 3)))
    pose = torch.as_tensor(rng.normal(size=(1, 15)) * 0.2)
    full = flame_forward_torch(ft, s, e, pose)[0].numpy()
    sub = flame_forward_torch(subset_tensors(ft, ids), s, e, pose)[0].numpy()
    np.testing.assert_allclose(sub, full[ids], atol=1e-12)
    few = flame_forward_torch(subset_tensors(ft, ids, n_shape=4, n_expr=3), s, e, pose)[0].numpy()
    np.testing.assert_allclose(few, full[ids], atol=1e-12)


def test_matches_smplx_reference_implementation_when_installed(model):
    """smplx is research-only licensed, so it is not a dependency; compare when someone has it."""
    lbs_mod = pytest.importorskip("smplx.lbs")
    rng = np.random.default_rng(4)
    betas = rng.normal(size=(2, model.n_shape + model.n_expr))
    pose = rng.normal(size=(2, 15)) * 0.3
    dirs = np.concatenate([model.shapedirs, model.exprdirs], 2)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    ref, _ = lbs_mod.lbs(t(betas), t(pose), t(model.v_template), t(dirs), t(model.posedirs), t(model.J_regressor),
                         torch.as_tensor(model.parents), t(model.weights), pose2rot=True)
    ft = flame_tensors(model, torch.float64)
    ours = flame_forward_torch(ft, t(betas[:, :model.n_shape]), t(betas[:, model.n_shape:]), t(pose))
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-10)

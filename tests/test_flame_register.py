"""Ground truth: render a posed synthetic FLAME-format head, mesh it, register, compare with the truth."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facevision.flame import (FlameParamsError, RegistrationError, edit_params, flame_forward, head_angles,
                              load_params, register, relate_reference_to_flame, save_fit)
from facevision.flame.correspondence import FlameCorrespondence, load_landmark_embedding
from facevision.flame.geometry import barycentric_points
from support.flame_synthetic import random_params, render_synthetic_face, synthetic_embedding, synthetic_setup
from meshing import mesh_from_maps


@pytest.fixture(scope="module")
def setup():
    return synthetic_setup()


@pytest.fixture(scope="module")
def relation(setup, tmp_path_factory):
    return relate_reference_to_flame(setup.model, setup.reference, cache=tmp_path_factory.mktemp("cache"))


def _head(p):
    return Rotation.from_rotvec(p.global_pose) * Rotation.from_rotvec(p.neck_pose)


def _fit(setup, relation, seed, corr_outliers=0.0, **render):
    truth = render_synthetic_face(setup, random_params(setup.model, seed), landmark_noise=1.0, seed=seed, **render)
    corr = truth.corr.copy()
    if corr_outliers:
        rng = np.random.default_rng(seed)
        bad = truth.mask & (rng.random(truth.mask.shape) < corr_outliers)
        corr[bad] = rng.random((bad.sum(), 3))
    mesh = mesh_from_maps(truth.depth, truth.mask, corr=corr)
    fit = register(mesh, corr, truth.landmarks68, setup.model, relation=relation)
    fv = setup.face_vertices
    err = np.linalg.norm(fit.vertices_px[fv] - truth.vertices_px[fv], axis=1)
    width = np.ptp(truth.vertices_px[fv, 0])
    rot_err = np.degrees((_head(truth.params).inv() * _head(fit.params)).magnitude())
    ge = np.einsum("vck,k->vc", setup.model.exprdirs, truth.params.expression)[fv].ravel()
    fe = np.einsum("vck,k->vc", setup.model.exprdirs, fit.params.expression)[fv].ravel()
    return truth, fit, {"err": err.mean() / width, "p90": np.percentile(err, 90) / width, "rot": rot_err,
                        "jaw": abs(np.degrees(fit.params.jaw_pose[0] - truth.params.jaw_pose[0])),
                        "expr_corr": np.corrcoef(ge, fe)[0, 1], "expr_gain": np.linalg.norm(fe) / np.linalg.norm(ge),
                        "scale": fit.params.scale / truth.params.scale}


def test_relation_maps_true_correspondences_to_the_right_flame_points(setup, relation):
    fv = np.where(setup.face_vertices)[0]
    tri, bary, dist = relation.lookup(setup.vertex_corr[fv], setup.model.faces)
    p = barycentric_points(setup.model.v_template, setup.model.faces, tri, bary)
    err = np.linalg.norm(p - setup.model.v_template[fv], axis=1)
    face_width = np.ptp(setup.model.v_template[fv, 0])
    assert err.mean() < 0.02 * face_width and np.percentile(err, 90) < 0.035 * face_width
    # landmarks land on the true landmark vertices
    lm = barycentric_points(setup.model.v_template, setup.model.faces, relation.landmark_tri, relation.landmark_bary)
    lm_err = np.linalg.norm(lm - setup.model.v_template[fv[setup.reference.ibug68]], axis=1)
    assert np.median(lm_err) < 0.03 * face_width


def test_relation_is_cached_on_disk(setup, relation, tmp_path, monkeypatch):
    relation.save(tmp_path / "r.npz")
    back = FlameCorrespondence.load(tmp_path / "r.npz")
    np.testing.assert_allclose(back.vertex_ref, relation.vertex_ref)
    assert back.model_sha256 == setup.model.sha256 and back.reference_sha256 == relation.reference_sha256


@pytest.mark.parametrize("seed", [1, 3])
def test_registration_recovers_surface_pose_expression_and_jaw(setup, relation, seed):
    _, fit, m = _fit(setup, relation, seed)
    assert m["err"] < 0.02 and m["p90"] < 0.035, m  # mean vertex error < 2 % of face width
    assert m["rot"] < 5.0, m  # head rotation within a few degrees
    assert m["jaw"] < 3.0, m
    assert m["expr_corr"] > 0.8 and 0.5 < m["expr_gain"] < 1.3, m  # the expression displacement is recovered
    assert abs(m["scale"] - 1) < 0.05, m
    assert fit.residual_mean_px < 0.6 and fit.residual_p90_px < 1.2
    assert fit.vertices.shape == setup.model.v_template.shape


def test_registration_is_robust_to_depth_noise_outliers_and_bad_correspondences(setup, relation):
    _, fit, m = _fit(setup, relation, 2, depth_noise=1.0, depth_outliers=0.05, corr_outliers=0.05)
    assert m["err"] < 0.025 and m["rot"] < 5.0 and m["jaw"] < 4.0 and m["expr_corr"] > 0.7, m


def test_registration_without_landmarks_or_vertex_corr_still_works(setup, relation):
    truth = render_synthetic_face(setup, random_params(setup.model, 4), seed=4)
    mesh = mesh_from_maps(truth.depth, truth.mask)  # no per-vertex corr: sampled from the map
    assert mesh.corr is None
    fit = register(mesh, truth.corr, None, setup.model, relation=relation)
    fv = setup.face_vertices
    err = np.linalg.norm(fit.vertices_px[fv] - truth.vertices_px[fv], axis=1).mean() / np.ptp(truth.vertices_px[fv, 0])
    assert err < 0.025


def test_too_few_correspondences_is_a_clear_error(setup, relation):
    truth = render_synthetic_face(setup, random_params(setup.model, 5), seed=5)
    mesh = mesh_from_maps(truth.depth, truth.mask, corr=np.zeros_like(truth.corr))
    with pytest.raises(RegistrationError, match="correspondence"):
        register(mesh, None, None, setup.model, relation=relation)


def test_save_fit_and_edit_round_trip(setup, relation, tmp_path):
    truth, fit, _ = _fit(setup, relation, 6)
    summary = save_fit(tmp_path / "flame.npz", fit, setup.model.sha256)
    assert {"residual_mean_px", "residual_p90_px", "residual_mean_mm", "head_angles_deg"} <= set(summary)
    obj = (tmp_path / "flame_mesh.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == setup.model.n_vertices
    assert sum(line.startswith("f ") for line in obj) == len(setup.model.faces)
    params, meta = load_params(tmp_path / "flame.npz", setup.model)
    assert meta["model_sha256"] == setup.model.sha256
    np.testing.assert_allclose(flame_forward(setup.model, params), fit.vertices, atol=1e-6)
    # edits: absolute head angles, jaw opening moves only the jaw region, expression coefficient set
    edited = edit_params(params, yaw=20.0, pitch=-5.0, roll=0.0)
    assert head_angles(edited) == pytest.approx({"yaw": 20.0, "pitch": -5.0, "roll": 0.0}, abs=1e-6)
    opened = edit_params(params, jaw=25.0, expression={0: 2.0})
    assert opened.expression[0] == 2.0 and np.degrees(opened.jaw_pose[0]) == pytest.approx(25.0)
    d = np.linalg.norm(flame_forward(setup.model, edit_params(params, jaw=25.0)) - fit.vertices, axis=1)
    assert d.max() > 0.005 and d[setup.model.weights[:, 2] < 1e-6].max() < 1e-6
    with pytest.raises(FlameParamsError, match="out of range"):
        edit_params(params, expression={999: 1.0})
    other = type(setup.model)(**{**setup.model.__dict__, "sha256": "0" * 64})
    with pytest.raises(FlameParamsError, match="different FLAME model"):
        load_params(tmp_path / "flame.npz", other)


def _relation_error(setup, rel):
    fv = np.where(setup.face_vertices)[0]
    tri, bary, _ = rel.lookup(setup.vertex_corr[fv], setup.model.faces)
    p = barycentric_points(setup.model.v_template, setup.model.faces, tri, bary)
    return np.linalg.norm(p - setup.model.v_template[fv], axis=1).mean() / np.ptp(setup.model.v_template[fv, 0])


def test_landmark_embedding_file_sharpens_the_relation(setup, relation, tmp_path):
    emb = synthetic_embedding(setup)
    path = tmp_path / "mediapipe_landmark_embedding.npz"
    np.savez(path, landmark_indices=emb.reference_indices, lmk_face_idx=emb.face_idx, lmk_b_coords=emb.bary)
    loaded = load_landmark_embedding(path)
    sharp = relate_reference_to_flame(setup.model, setup.reference, cache=False, embedding=loaded)
    assert _relation_error(setup, sharp) < 0.006 < _relation_error(setup, relation)
    np.savez(tmp_path / "bad.npz", something=np.zeros(3))
    with pytest.raises(ValueError, match="bad.npz"):
        load_landmark_embedding(tmp_path / "bad.npz")


def test_registration_and_relation_configs_refuse_bad_values() -> None:
    from facevision.flame import RegistrationConfig, RelationConfig

    with pytest.raises(ValueError, match=r"RegistrationConfig\.reassociate_every must be at least 1, got 0"):
        RegistrationConfig(reassociate_every=0)
    with pytest.raises(ValueError, match=r"RegistrationConfig\.max_points must be at least min_points \(50\), got 10"):
        RegistrationConfig(max_points=10)
    with pytest.raises(ValueError, match=r"RelationConfig\.icp_iterations must be at least 1, got 0"):
        RelationConfig(icp_iterations=0)

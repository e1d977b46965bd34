"""The linear face model and its fit, with ground truth: render the model with known coefficients and pose
through the project's rasterizer, read the maps with a perfect stand-in network, fit, and compare."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from facevision.face.face_model import load_face_model
from facevision.face.reference import load_reference
from facevision.fit.model_fit import FitConfig, fit_face_model, locate_uv
from support.face_model import S, render_face_model
from support.synthetic import known_rotation


def test_model_asset_is_consistent_and_symmetric():
    model = load_face_model()
    ref = load_reference()
    assert model.n_vertices == 468 and 1 <= model.n_id <= 60 and 1 <= model.n_exp <= 30
    mirrored = model.mean[model.mirror] * [-1, 1, 1]
    assert np.abs(mirrored - model.mean).max() < 1e-4  # built from shapes and their mirror images
    assert np.sqrt(((model.mean - ref.raw_vertices) ** 2).sum(1).mean()) < 0.05  # aligned to the reference frame
    assert np.all(np.diff(model.id_var_ratio) <= 1e-9)  # PCA order
    from data_prep.build_face_model import rigid_directions

    rigid = rigid_directions(model.mean)
    for basis in (model.id_basis, model.exp_basis):  # no mode moves the face rigidly
        assert np.abs(basis @ rigid).max() < 1e-3 * np.abs(basis).max() * np.sqrt(basis.shape[1])


def test_locate_uv_reproduces_the_query():
    ref = load_reference()
    rng = np.random.default_rng(0)
    tri = rng.integers(0, len(ref.triangles), 200)
    lam = rng.dirichlet([2, 2, 2], 200)
    uv = np.einsum("nc,ncd->nd", lam, ref.vertices[ref.triangles[tri], :2])
    found, bary = locate_uv(uv, ref)
    ok = found >= 0
    assert ok.mean() > 0.99
    back = np.einsum("nc,ncd->nd", bary[ok], ref.vertices[ref.triangles[found[ok]], :2])
    assert np.abs(back - uv[ok]).max() < 2e-4  # the point itself (to the lookup grid's edge tolerance)


@pytest.mark.parametrize("yaw,pitch,roll", [(0.0, 0.0, 0.0), (35.0, 10.0, -15.0), (-70.0, -5.0, 8.0)])
def test_fit_recovers_pose_shape_and_hidden_landmarks(yaw, pitch, roll):
    model = load_face_model()
    rng = np.random.default_rng(int(yaw) + 100)
    id_c, exp_c = rng.normal(0, 0.7, model.n_id), rng.normal(0, 0.7, model.n_exp)
    depth, corr, mask, lm, hidden = render_face_model(model, id_c, exp_c, yaw, pitch, roll)
    # exact maps: a weak prior and enough rounds to converge (15 identity modes leave a half-hidden face
    # less determined than the 5 of the first model did)
    fit = fit_face_model(depth, corr, mask, model, FitConfig(noise_px=0.3, iterations=12))
    assert fit.pose.yaw == pytest.approx(yaw, abs=2.0)
    assert fit.pose.pitch == pytest.approx(pitch, abs=2.0)
    assert fit.pose.roll == pytest.approx(roll, abs=2.0)
    err = np.linalg.norm(fit.landmarks68 - lm, axis=1)
    assert err.mean() < 1.25 and err.max() < 3.5  # crop px, for all 68 points
    if (hidden == 1).any():
        assert err[hidden == 1].mean() < 2.0  # points the face hides are placed too
    clear = hidden != 0  # points on a silhouette may go either way
    assert (fit.visible[clear] == (hidden[clear] < 0)).mean() >= 0.94  # at most ~3 of ~56 wrong
    truth = model.shape(id_c, exp_c)
    got = model.shape(fit.id_coeffs, fit.exp_coeffs)
    mean_err = np.sqrt(((model.mean - truth) ** 2).sum(1).mean())
    assert np.sqrt(((got - truth) ** 2).sum(1).mean()) < 0.6 * mean_err  # the shape, not just the mean


def test_outliers_in_the_maps_do_not_break_the_fit():
    model = load_face_model()
    rng = np.random.default_rng(7)
    id_c, exp_c = rng.normal(0, 0.7, model.n_id), rng.normal(0, 0.7, model.n_exp)
    depth, corr, mask, lm, _ = render_face_model(model, id_c, exp_c, 25.0, 5.0, 0.0)
    clean = fit_face_model(depth, corr, mask, model)
    bad = depth.copy()
    rows, cols = np.nonzero(mask)
    pick = rng.random(len(rows)) < 0.12
    bad[rows[pick], cols[pick]] += rng.uniform(15, 40, pick.sum())  # spikes
    noisy_corr = corr.copy()
    pick2 = rng.random(len(rows)) < 0.05
    noisy_corr[rows[pick2], cols[pick2], :2] = rng.uniform(0, 1, (pick2.sum(), 2))  # wrong correspondences
    fit = fit_face_model(bad, noisy_corr, mask, model)
    assert np.linalg.norm(fit.landmarks68 - lm, axis=1).mean() < 1.5
    assert abs(fit.pose.yaw - 25.0) < 3.0
    untrimmed = fit_face_model(bad, noisy_corr, mask, model, FitConfig(trim_factor=0.0, max_rms_frac=1.0))
    assert np.linalg.norm(untrimmed.landmarks68 - lm, axis=1).mean() > np.linalg.norm(fit.landmarks68 - lm, axis=1).mean()
    assert clean.rms_px < fit.rms_px


def test_fit_refuses_maps_without_a_face():
    with pytest.raises(ValueError, match="face model"):
        fit_face_model(np.zeros((S, S)), np.zeros((S, S, 3)), np.zeros((S, S), bool))


def _dataset_of_known_model(root) -> None:
    """40 people x 3 shapes drawn from the shipped model, posed and written as a dataset (6 people val)."""
    from data_prep.dataset_format import write_face_mesh

    true = load_face_model()
    rng = np.random.default_rng(3)
    samples = []
    for person in range(40):
        pid = rng.normal(0, 1, true.n_id)
        for k in range(3):
            shape = true.shape(pid, rng.normal(0, 1, true.n_exp))
            rot = known_rotation(rng.uniform(-20, 20), rng.uniform(-10, 10), rng.uniform(-10, 10))
            crop = (40.0 * shape @ rot.T + [64, 60, 0]) * [1, -1, 1]  # crop px, y down
            split = "val" if person >= 34 else "train"
            sid = f"p{person:02d}_{k}"
            write_face_mesh(root, sid, crop)
            samples.append({"id": sid, "identity": f"p{person:02d}", "split": split})
    (root / "manifest.json").write_text(json.dumps({"format": "facevision-dataset", "version": 1, "size": 128,
                                                    "samples": samples}))


def test_build_recovers_a_known_model(tmp_path):
    """A dataset of shapes drawn from a known model: the build finds its mean and enough modes."""
    from data_prep.build_face_model import FaceModelBuildConfig, build_face_model, save_face_model
    from facevision.face.face_model import load_face_model as load

    true = load_face_model()
    _dataset_of_known_model(tmp_path)
    model, card = build_face_model(tmp_path, FaceModelBuildConfig(id_grid=(2, 5, 10), exp_grid=(2, 5)))
    assert card["train_shapes"] == 34 * 3 and card["val_shapes"] == 6 * 3
    assert card["val_rms"] < 0.5 * card["val_rms_mean_only"]
    assert np.sqrt(((model.mean - true.mean) ** 2).sum(1).mean()) < 0.02
    path = save_face_model(tmp_path / "m.npz", model, card)
    again = load(path)
    assert again.n_id == model.n_id and np.allclose(again.mean, model.mean, atol=1e-6)


def test_build_command_keeps_the_mode_counts_asked_for(tmp_path, capsys):
    from facevision.face.face_model import load_face_model as load
    from facevision.cli import main

    _dataset_of_known_model(tmp_path)
    out = tmp_path / "m.npz"
    assert main(["prepare", "face-model", str(tmp_path), "-o", str(out), "--id-modes", "3", "--exp-modes", "2"]) == 0
    model = load(out)
    assert (model.n_id, model.n_exp) == (3, 2)
    assert main(["prepare", "face-model", str(tmp_path), "-o", str(out), "--id-modes", "0"]) == 2
    assert "mode counts must be >= 1" in capsys.readouterr().err


def test_shared_identity_over_several_photos_beats_single_photo_fits():
    from facevision.fit.model_fit import fit_shared_identity

    model = load_face_model()
    rng = np.random.default_rng(11)
    ident = rng.normal(0, 1.0, model.n_id)
    maps, singles = [], []
    for yaw, pitch in ((-40, 0), (-10, 8), (15, -5), (45, 3), (0, 0)):
        d, c, m, _, _ = render_face_model(model, ident, rng.normal(0, 1.0, model.n_exp), yaw, pitch, 0.0)
        d = np.where(m, d + rng.normal(0, 1.5, d.shape), 0.0)  # a noisy network
        maps.append((d, c, m))
        singles.append(fit_face_model(d, c, m, model).id_coeffs)
    shared, fits = fit_shared_identity(maps, model)
    assert len(fits) == 5 and all(np.array_equal(f.id_coeffs, shared) for f in fits)
    single_err = np.mean([np.linalg.norm(s - ident) for s in singles])
    assert np.linalg.norm(shared - ident) < 0.7 * single_err
    with pytest.raises(ValueError):
        fit_shared_identity([], model)


def test_maps_that_show_no_face_give_no_fit():
    """Random maps (what an untrained network gives): the fit refuses instead of returning wild landmarks."""
    rng = np.random.default_rng(5)
    depth = rng.uniform(1, 60, (S, S))
    corr = rng.uniform(0, 1, (S, S, 3))
    with pytest.raises(ValueError, match="implausible"):
        fit_face_model(depth, corr, np.ones((S, S), bool))


@pytest.mark.parametrize("field, value", [("iterations", 0), ("noise_px", -1.0), ("trim_factor", float("nan")),
                                          ("scale_range", (0.8, 0.05)), ("max_rms_frac", 0.0)])
def test_fit_config_refuses_a_bad_value_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^FitConfig\.{field} must .*got {re.escape(repr(value))}$"):
        FitConfig(**{field: value})


def test_face_model_build_config_refuses_bad_values() -> None:
    from data_prep.build_face_model import FaceModelBuildConfig

    with pytest.raises(ValueError, match=r"FaceModelBuildConfig\.exp_grid: mode counts must be >= 1, got \(3, 0\)"):
        FaceModelBuildConfig(exp_grid=(3, 0))
    with pytest.raises(ValueError, match=r"FaceModelBuildConfig\.limit must be at least 1 or None, got 0"):
        FaceModelBuildConfig(limit=0)

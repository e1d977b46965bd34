"""`facevision flame fit|edit|animate` on a predict-style output folder made from the synthetic model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facevision.face.crop import crop_to_original
from facevision.face.codecs import encode_corr, encode_depth
from facevision.common.fileio import atomic_write_json
from facevision.face.images import atomic_write_png
from facevision.cli import main
from facevision.flame.model import FLAME_MODEL_ENV
from support.flame_synthetic import (make_synthetic_flame_arrays, random_params, render_synthetic_face,
                                        save_synthetic_flame, save_synthetic_reference, synthetic_embedding,
                                        synthetic_setup)

CROP_BOX = [100, 40, 356, 296]  # 256 px square in the original photo -> 128 px crop


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """OUT/photo/face0/ as `facevision predict` writes it, plus the model and reference files."""
    root = tmp_path_factory.mktemp("flame_cli")
    arrays = make_synthetic_flame_arrays(n_shape=20, n_expr=10, n_lat=40, n_lon=52)
    setup = synthetic_setup(arrays)
    truth = render_synthetic_face(setup, random_params(setup.model, 7), seed=7)
    face = root / "out" / "photo" / "face0"
    atomic_write_png(face / "depth.png", encode_depth(truth.depth, truth.mask))
    atomic_write_png(face / "corr.png", encode_corr(truth.corr, truth.mask))
    atomic_write_png(face / "mask.png", truth.mask.astype(np.uint8) * 255)
    lm = crop_to_original(truth.landmarks68, CROP_BOX, 128)
    atomic_write_json(face / "result.json", {"crop_box": CROP_BOX, "landmarks68": lm.tolist(), "other": 1})
    model = save_synthetic_flame(root / "model.npz", arrays)
    emb = synthetic_embedding(setup)  # found next to the model, like FLAME's mediapipe_landmark_embedding.npz
    np.savez(root / "mediapipe_landmark_embedding.npz", landmark_indices=emb.reference_indices,
             lmk_face_idx=emb.face_idx, lmk_b_coords=emb.bary)
    ref = save_synthetic_reference(root / "reference.npz", setup.reference)
    return {"root": root, "face": face, "model": model, "ref": ref, "truth": truth, "setup": setup}


def test_fit_without_model_gives_one_clear_message(predicted, monkeypatch, capsys):
    monkeypatch.delenv(FLAME_MODEL_ENV, raising=False)
    assert main(["flame", "fit", str(predicted["face"])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "flame.is.tue.mpg.de" in err and FLAME_MODEL_ENV in err


def test_fit_edit_animate(predicted, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FACEVISION_CACHE_DIR", str(predicted["root"] / "cache"))
    monkeypatch.setenv(FLAME_MODEL_ENV, str(predicted["model"]))
    face = predicted["face"]
    rc = main(["flame", "fit", str(predicted["root"] / "out"), "--reference", str(predicted["ref"])])
    assert rc == 0, capsys.readouterr()
    result = json.loads((face / "result.json").read_text())
    assert result["other"] == 1 and result["crop_box"] == CROP_BOX  # predict's keys are kept
    flame = result["flame"]
    assert 0 < flame["residual_mean_px"] < flame["residual_p90_px"] < 2.0
    assert flame["residual_mean_mm"] > 0 and len(flame["model_sha256"]) == 64
    truth, setup = predicted["truth"], predicted["setup"]
    assert flame["scale_px_per_m"] == pytest.approx(truth.params.scale, rel=0.06)
    n_v = setup.model.n_vertices
    obj = (face / "flame_mesh.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == n_v
    assert {"shape", "expression", "jaw_pose", "model_sha256"} <= set(np.load(face / "flame.npz").files)
    assert len(list((predicted["root"] / "cache").glob("flame_relation_*.npz"))) == 1  # relation cached

    out = tmp_path / "edited.obj"
    assert main(["flame", "edit", str(face / "flame.npz"), "--jaw", "20", "--expression", "0=1.5", "--yaw", "15",
                 "-o", str(out), "--save-params", str(tmp_path / "edited.npz")]) == 0
    before = np.array([line.split()[1:] for line in obj if line.startswith("v ")], float)
    after = np.array([line.split()[1:] for line in out.read_text().splitlines() if line.startswith("v ")], float)
    assert after.shape == before.shape and np.abs(after - before).max() > 0.005
    edited = np.load(tmp_path / "edited.npz")
    assert np.degrees(edited["jaw_pose"][0]) == pytest.approx(20.0) and edited["expression"][0] == 1.5

    frames = tmp_path / "anim"
    assert main(["flame", "animate", str(face / "flame.npz"), "--frames", "5", "-o", str(frames)]) == 0
    files = sorted(frames.glob("frame_*.obj"))
    assert len(files) == 5
    first = np.array([ln.split()[1:] for ln in files[0].read_text().splitlines() if ln.startswith("v ")], float)
    last = np.array([ln.split()[1:] for ln in files[-1].read_text().splitlines() if ln.startswith("v ")], float)
    np.testing.assert_allclose(first, before, atol=2e-6)  # starts at the fit, ends with the jaw open
    jaw_w = setup.model.weights[:, 2]
    moved = np.linalg.norm(last - first, axis=1)
    assert moved[jaw_w > 0.5].mean() > 0.005 and moved[jaw_w < 1e-6].max() < 1e-5


def test_fit_reports_bad_folders_and_keeps_going(predicted, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FACEVISION_CACHE_DIR", str(predicted["root"] / "cache"))
    bad = tmp_path / "bad" / "face0"
    bad.mkdir(parents=True)
    (bad / "depth.png").write_bytes(b"not a png")
    (bad / "corr.png").write_bytes(b"not a png")
    rc = main(["flame", "fit", str(bad), str(predicted["face"]), "--flame-model", str(predicted["model"]),
               "--reference", str(predicted["ref"])])
    captured = capsys.readouterr()
    assert rc == 1 and "depth.png" in captured.err and "fitted 1/2 faces" in captured.out
    assert main(["flame", "fit", str(tmp_path / "empty_nothing"), "--flame-model", str(predicted["model"])]) == 2

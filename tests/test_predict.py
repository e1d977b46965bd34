"""Predictor API and per-face outputs: ground truth through a stand-in network that returns known maps."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facevision.face.crop import crop_to_original
from facevision.face.codecs import decode_corr, decode_depth
from facevision.face.images import read_png
from facevision.predict.outputs import FACE_FILES, MESH_FILES, write_face
from facevision.predict.predictor import CHECKPOINT_ENV, PredictConfig, Predictor, default_checkpoint
from support.synthetic import fixed_maps_model, render_reference

POSE = (12.0, -6.0, 8.0)
BOX = (40, 20, 296, 276)  # 256 px square in a 320 x 300 photo: crop scale 0.5


@pytest.fixture(scope="module")
def face():
    return render_reference(128, *POSE, scale=36.0)


@pytest.fixture(scope="module")
def oracle(face):
    return Predictor(fixed_maps_model(face.depth, face.corr, face.mask))


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (300, 320, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def result(oracle, photo):
    from facevision.face.crop import crop_image

    crop = crop_image(photo, BOX, 128)
    return oracle.predict_crops(crop[None], [BOX])[0]


def test_predict_crops_gives_ground_truth_maps_landmarks_and_pose(face, result):
    assert result.ok, result.error
    assert np.array_equal(result.mask, face.mask)
    assert np.allclose(result.depth_px, face.depth, atol=1e-3)
    assert np.abs(result.corr - face.corr).max() < 1e-5
    truth = crop_to_original(face.landmarks68, BOX, 128)
    err = np.linalg.norm(result.landmarks68 - truth, axis=1)
    assert np.median(err) < 0.5  # original px (crop px x 2)
    vis = result.landmarks68_visible
    assert vis.sum() > 40 and err[vis].max() < 2.0
    x0, y0, x1, y1 = BOX
    assert np.all((result.landmarks68 >= [x0 - 0.5, y0 - 0.5]) & (result.landmarks68 <= [x1 - 0.5, y1 - 0.5]))
    assert np.allclose([result.pose.yaw, result.pose.pitch, result.pose.roll], POSE, atol=1.5)
    assert set(result.timings) >= {"network", "fit", "mesh", "total"}


def test_mesh_matches_the_mask(face, result):
    mesh = result.mesh
    assert mesh is not None and mesh.n_faces > 1000
    rows, cols = mesh.pixels[:, 0], mesh.pixels[:, 1]
    inside = face.mask[np.clip(np.round(rows).astype(int), 0, 127), np.clip(np.round(cols).astype(int), 0, 127)]
    assert inside.mean() > 0.99  # vertices lie on the face
    # and they cover it: mesh bounding box = mask bounding box within 2 px
    mr, mc = np.nonzero(face.mask)
    assert abs(rows.min() - mr.min()) < 2 and abs(rows.max() - mr.max()) < 2
    assert abs(cols.min() - mc.min()) < 2 and abs(cols.max() - mc.max()) < 2


def test_no_mesh_config_skips_meshing(face):
    p = Predictor(fixed_maps_model(face.depth, face.corr, face.mask), PredictConfig(mesh=None))
    r = p.predict_crops(np.zeros((2, 128, 128, 3), np.uint8), [BOX, BOX])
    assert len(r) == 2 and r[1].mesh is None and r[1].pose is not None and "mesh" not in r[1].timings


def test_empty_prediction_is_a_face_error_not_a_crash(face):
    p = Predictor(fixed_maps_model(face.depth, face.corr, np.zeros_like(face.mask)))
    r = p.predict_crops(np.zeros((1, 128, 128, 3), np.uint8), [BOX])[0]
    assert not r.ok and "no usable face" in r.error and r.landmarks68 is None


def test_call_without_a_face_returns_nothing(oracle):
    assert oracle(np.full((120, 160, 3), 127, np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        oracle(np.zeros((10, 10), np.float32))


def test_write_face_files_are_complete_and_consistent(tmp_path, face, result, photo):
    data = write_face(tmp_path / "face0", result, photo, source="x.jpg")
    d = tmp_path / "face0"
    for name in FACE_FILES + MESH_FILES:
        assert (d / name).is_file(), name
    assert not list(d.glob(".*tmp*"))  # no temporary leftovers
    depth = decode_depth(read_png(d / "depth.png"))
    assert read_png(d / "depth.png").dtype == np.uint16
    assert np.abs(depth - result.depth_px).max() <= 0.5 / 256 + 1e-6
    assert np.array_equal(read_png(d / "mask.png") > 127, face.mask)
    assert np.abs(decode_corr(read_png(d / "corr.png")) - result.corr).max() < 1e-4
    assert np.array_equal(read_png(d / "crop.png"), result.crop)
    saved = json.loads((d / "result.json").read_text())
    assert saved == json.loads(json.dumps(data))
    for key in ("bbox", "crop_box", "landmarks68", "pose", "mesh", "timings_ms"):
        assert key in saved
    assert saved["crop_box"] == list(BOX)
    assert len(saved["landmarks68"]) == 68
    assert set(saved["pose"]) >= {"yaw", "pitch", "roll"}
    assert saved["mesh"]["vertices"] == result.mesh.n_vertices
    from meshing import load_mesh

    ply = load_mesh(d / "mesh.ply")
    assert ply.n_vertices == result.mesh.n_vertices and ply.n_faces == result.mesh.n_faces
    assert "mesh_0.png" in (d / "mesh.mtl").read_text()
    prev = read_png(d / "preview.png")
    assert prev.shape[1] > 5 * prev.shape[0]  # photo, crop, depth, corr + two renders in one row


def test_from_pretrained_and_batching_are_consistent(random_checkpoint):
    p = Predictor.from_pretrained(random_checkpoint, device="cpu")
    assert p.checkpoint == random_checkpoint and p.size == 128
    crops = np.random.default_rng(1).integers(0, 255, (3, 128, 128, 3), dtype=np.uint8)
    d1, c1, m1 = p.run_network(crops, batch_size=1)
    d3, c3, m3 = p.run_network(crops, batch_size=3)
    assert d1.shape == (3, 128, 128) and c1.shape == (3, 128, 128, 3) and m1.dtype == bool
    assert np.allclose(d1, d3, atol=1e-4) and np.allclose(c1, c3, atol=1e-4) and np.array_equal(m1, m3)
    assert np.all(d1[~m1] == 0) and np.all(c1[~m1] == 0)
    assert 0 < d1[m1].max() <= 128


def test_default_checkpoint_lookup(monkeypatch, tmp_path, random_checkpoint):
    monkeypatch.setenv(CHECKPOINT_ENV, str(random_checkpoint))
    assert default_checkpoint() == random_checkpoint
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path / "nope.safetensors"))
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        default_checkpoint()
    monkeypatch.delenv(CHECKPOINT_ENV)
    import facevision.predict.predictor as pp

    monkeypatch.setattr(pp, "checkpoint_candidates", lambda: [tmp_path / "a" / "x.safetensors"])
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "a")):
        default_checkpoint()


def test_top_level_export():
    import facevision

    assert facevision.Predictor is Predictor and facevision.__version__


def test_device_errors_are_clear():
    import torch

    from facevision.model.device import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_detect_keeps_the_largest_face_unless_all_faces(monkeypatch, oracle, tmp_path):
    import facevision.predict.predictor as pp
    from facevision.face.detect import FaceBox
    from PIL import Image

    small, big = FaceBox((10, 10, 40, 45), 0.99), FaceBox((100, 60, 190, 160), 0.80)
    monkeypatch.setattr(pp, "detect_faces", lambda image, config: [small, big])  # best score first
    image = np.full((220, 260, 3), 128, np.uint8)
    one = oracle(image)
    assert len(one) == 1 and one[0].bbox == big.box and one[0].score == pytest.approx(0.8)
    both = oracle(image, all_faces=True)
    assert [r.bbox for r in both] == [big.box, small.box] and [r.index for r in both] == [0, 1]
    assert all(r.ok for r in both)
    Image.fromarray(image).save(tmp_path / "p.png")
    assert oracle(tmp_path / "p.png")[0].bbox == big.box  # a path works too


def test_crop_size_comes_from_the_checkpoint(tmp_path):
    import torch

    from facevision.model.config import ModelConfig
    from facevision.model.generator import DualUnetGenerator
    from facevision.model.checkpoint import save_generator

    torch.manual_seed(0)
    ck = save_generator(tmp_path / "g96.safetensors", DualUnetGenerator(ModelConfig(image_size=96)))
    p = Predictor.from_pretrained(ck, device="cpu")
    assert p.size == 96 and p.config.crop.size == 96
    d, _, _ = p.run_network(np.zeros((1, 96, 96, 3), np.uint8))
    assert d.shape == (1, 96, 96)


def test_fit_outputs_fixed_topology_mesh_in_photo_pixels(tmp_path, result, photo):
    from facevision.face.face_model import load_face_model
    from meshing import load_mesh

    assert result.landmarks_source == "model_fit" and result.model_fit is not None
    assert result.landmarks68_visible.shape == (68,) and result.landmarks68_visible.mean() > 0.8  # a near-frontal face
    data = write_face(tmp_path / "face0", result, photo, source="x.jpg")
    assert {"model_fit", "landmarks68_visible", "landmarks68_3d"} <= set(data)
    assert set(data["model_fit"]) >= {"id_coeffs", "exp_coeffs", "scale_px", "rotation", "translation_px", "rms_px"}
    mesh = load_mesh(tmp_path / "face0" / "fit_mesh.obj")
    model = load_face_model()
    assert mesh.n_vertices == model.n_vertices and mesh.n_faces == len(model.triangles)
    # the file's vertex order is the model's: its landmark vertices sit on the landmarks, in photo px (Y up)
    lines = (tmp_path / "face0" / "fit_mesh.obj").read_text().splitlines()
    verts = np.array([[float(v) for v in ln.split()[1:4]] for ln in lines if ln.startswith("v ")])
    lm3 = np.asarray(data["landmarks68_3d"])
    got = verts[model.ibug68]
    assert np.abs(got[:, 0] - lm3[:, 0]).max() < 0.05
    assert np.abs((photo.shape[0] - 1 - got[:, 1]) - lm3[:, 1]).max() < 0.05
    assert np.abs(lm3[:, :2] - np.asarray(data["landmarks68"])).max() < 0.05


def _landmark_gaps(mesh_vertices: np.ndarray, landmarks: np.ndarray, height: int) -> np.ndarray:
    """XY distance from each landmark (x = column, y = row, y down) to the nearest vertex of a Y-up mesh."""
    from scipy.spatial import cKDTree

    target = np.column_stack([landmarks[:, 0], height - 1 - landmarks[:, 1]])
    return cKDTree(mesh_vertices[:, :2]).query(target)[0]


@pytest.mark.parametrize("angle", [0.0, 25.0])
def test_meshes_are_in_the_photo_frame_by_default(tmp_path, oracle, photo, angle):
    """Issue #13: mesh.ply / mesh.obj overlay the photo (X = column, Y = H - 1 - row, Z in photo px), also for a
    turned crop; --mesh-frame crop keeps the crop frame of FaceResult.mesh."""
    from facevision.face.crop import crop_image
    from facevision.predict.outputs import OutputConfig
    from meshing import load_mesh

    res = oracle.predict_crops(crop_image(photo, BOX, 128, angle)[None], [BOX], crop_angles=[angle])[0]
    assert res.ok and res.crop_angle == angle
    data = write_face(tmp_path / "p", res, photo)
    assert data["mesh"]["frame"] == "photo" and data["mesh"]["photo_height_px"] == photo.shape[0]
    ply = load_mesh(tmp_path / "p" / "mesh.ply")
    assert ply.n_vertices == res.mesh.n_vertices
    # the landmarks (photo px, mapped by another code path) lie on the mesh as their crop px lie on the crop
    # mesh, at twice the distance (a crop px is 2 photo px here)
    vis = res.landmarks68_visible
    in_photo = _landmark_gaps(ply.vertices, res.landmarks68, photo.shape[0])[vis]
    in_crop = _landmark_gaps(res.mesh.vertices, res.landmarks68_crop, 128)[vis]
    np.testing.assert_allclose(in_photo, 2 * in_crop, atol=0.02)
    assert np.median(in_photo) < 2.0
    # depth in photo px: the crop is scaled 0.5, so depth doubles
    np.testing.assert_allclose(ply.vertices[:, 2], 2 * res.mesh.vertices[:, 2], rtol=1e-4, atol=1e-3)
    obj = [ln.split()[1:4] for ln in (tmp_path / "p" / "mesh.obj").read_text().splitlines() if ln.startswith("v ")]
    np.testing.assert_allclose(np.array(obj, float), ply.vertices, atol=1e-3)
    data = write_face(tmp_path / "c", res, photo, output=OutputConfig(mesh_frame="crop"))
    assert data["mesh"]["frame"] == "crop"
    np.testing.assert_allclose(load_mesh(tmp_path / "c" / "mesh.ply").vertices, res.mesh.vertices, atol=1e-4)


def test_textures_are_cut_from_the_photo_at_the_texture_size(tmp_path, result, photo):
    """Issue #13: the OBJ texture is the same crop cut from the photo at up to OutputConfig.texture_size px (512),
    capped at the crop's own size in the photo (256 px here) and never below the network crop."""
    from facevision.face.crop import crop_image
    from facevision.predict.outputs import OutputConfig, texture_side

    data = write_face(tmp_path / "a", result, photo)
    tex = read_png(tmp_path / "a" / "mesh_0.png")
    assert tex.shape == (256, 256, 3) and data["mesh"]["texture_px"] == 256
    np.testing.assert_array_equal(tex, crop_image(photo, BOX, 256))
    fit_tex = read_png(tmp_path / "a" / "fit_texture.png")  # the fit's own texture: its fixed UV layout
    assert fit_tex.shape == (256, 256, 3) and data["fit_texture"]["size"] == 256
    assert not (tmp_path / "a" / "fit_mesh_0.png").exists() and "fit_texture.png" in (tmp_path / "a" /
                                                                                       "fit_mesh.mtl").read_text()
    write_face(tmp_path / "b", result, photo, output=OutputConfig(texture_size=200))
    assert read_png(tmp_path / "b" / "mesh_0.png").shape == (200, 200, 3)
    assert texture_side((0, 0, 1000, 1000), 128, 512) == 512 and texture_side((0, 0, 90, 90), 128, 512) == 128
    with pytest.raises(ValueError, match="mesh_frame"):
        OutputConfig(mesh_frame="world")


def test_python_api_keeps_stderr_clean(random_checkpoint):
    """Issue #13: MediaPipe/TFLite/absl start-up lines must not reach an API user's stderr (the CLI hid them)."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np\nfrom facevision import Predictor\n"
            f"p = Predictor.from_pretrained({str(random_checkpoint)!r}, device='cpu')\n"
            "print(len(p(np.full((200, 180, 3), 128, np.uint8))), len(p(np.zeros((90, 120, 3), np.uint8))))\n")
    env = {k: v for k, v in os.environ.items() if k != "GLOG_minloglevel"} | {"OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.split() == ["0", "0"], r.stderr
    assert r.stderr == "", r.stderr


def test_space_files_beside_a_checkpoint_of_another_space(tmp_path) -> None:
    """A checkpoint trained in another correspondence space names it in its metadata; predict then needs that
    space's reference and face model beside it, and says which files are missing."""
    import json
    from pathlib import Path

    from safetensors.numpy import save_file

    from facevision.predict.predictor import space_files

    def checkpoint(name: str, space: str | None) -> Path:
        path = tmp_path / name
        meta = {} if space is None else {"correspondence_space": json.dumps(space)}
        save_file({"w": np.zeros(2, np.float32)}, str(path), metadata=meta)
        return path

    assert space_files(checkpoint("old.safetensors", None)) is None
    assert space_files(checkpoint("v7.safetensors", "facevision-reference-v1")) is None
    other = checkpoint("v8.safetensors", "3ddfa-bfm4096-ncc")
    with pytest.raises(ValueError, match=r"3ddfa-bfm4096-ncc.*v8\.reference\.npz and .*v8\.face_model\.npz"):
        space_files(other)
    for suffix in (".reference.npz", ".face_model.npz"):
        (tmp_path / f"v8{suffix}").write_bytes(b"x")
    assert space_files(other) == (tmp_path / "v8.reference.npz", tmp_path / "v8.face_model.npz")

"""``--mesh-frame head`` (issue "Video, overlays and UV textures", item 6): meshes in the head's own frame, in
millimetres, pose removed. Ground truth: the face model rendered at a known pose into a (turned) crop of a photo;
in the head frame the fitted mesh must be the model's own shape (the fit's coefficients), tilted to the
camera-frontal view and scaled by the model's mm per unit, whatever the pose, the crop's turn and the photo's
reduction."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facevision.face.face_model import load_face_model
from facevision.maps.pose import REFERENCE_PITCH_DEG
from facevision.predict.mesh_frame import (BIOCULAR_WIDTH_MM, MESH_FRAMES, head_frame, mm_per_model_unit,
                                           photo_frame_mesh)
from facevision.predict.outputs import OutputConfig, write_face
from support.face_photo import crop_to_photo_px, face_photo, face_result
from support.synthetic import known_rotation

TILT = known_rotation(0.0, REFERENCE_PITCH_DEG, 0.0)  # the model frame as a camera-frontal view shows it


def _obj_vertices(path) -> np.ndarray:
    lines = path.read_text().splitlines()
    return np.array([[float(x) for x in ln.split()[1:4]] for ln in lines if ln.startswith("v ")])


def _mm_per_unit() -> float:
    model = load_face_model()
    return mm_per_model_unit(model.mean[model.ibug68])


def test_model_unit_is_tied_to_millimetres_by_the_biocular_width():
    model = load_face_model()
    mm = _mm_per_unit()
    lm = model.mean[model.ibug68] * mm
    assert np.linalg.norm(lm[36] - lm[45]) == pytest.approx(BIOCULAR_WIDTH_MM)
    assert 50.0 < mm < 55.0
    # the model's other proportions then fall where adult faces' do (anthropometric tables: nasion-chin
    # ~112-121 mm, mouth width ~50-54 mm, inner eye corners ~31-34 mm)
    assert 110 < np.linalg.norm(lm[27] - lm[8]) < 125
    assert 46 < np.linalg.norm(lm[48] - lm[54]) < 58
    assert 29 < np.linalg.norm(lm[39] - lm[42]) < 37


@pytest.mark.parametrize("pose,angle", [((0.0, 0.0, 0.0), 0.0), ((30.0, -12.0, 15.0), 20.0),
                                        ((-45.0, 8.0, -5.0), -30.0)])
def test_fit_mesh_in_the_head_frame_is_the_model_shape_in_mm(tmp_path, pose, angle):
    fp = face_photo(pose=pose, angle=angle, seed=7)
    res = face_result(fp)
    assert res.ok and res.model_fit is not None
    model = load_face_model()
    fit = res.model_fit
    data = write_face(tmp_path / "h", res, fp.photo, output=OutputConfig(mesh_frame="head"))
    assert data["mesh"]["frame"] == "head"
    got = _obj_vertices(tmp_path / "h" / "fit_mesh.obj")
    mm = _mm_per_unit()
    own = mm * model.shape(fit.id_coeffs, fit.exp_coeffs) @ TILT.T  # the fitted shape, pose and scale removed
    assert np.abs(got - own).max() < 0.01  # mm (the OBJ keeps 4 decimals)
    true = mm * model.shape(fp.id_c, fp.exp_c) @ TILT.T
    assert np.sqrt(((got - true) ** 2).sum(1).mean()) < 1.0  # mm: the fit is close to the rendered face
    # upright, facing +Z: nasion above the chin, the image-left eye corner (iBUG 36) at -X, the nose tip in front
    lm = got[model.ibug68]
    assert lm[27, 1] > lm[8, 1] + 100 and lm[36, 0] < -40 and lm[45, 0] > 40
    assert lm[30, 2] == pytest.approx(35.0, abs=3.0) and abs(lm[30, 0]) < 2.0


def test_head_frame_does_not_depend_on_the_photo_reduction(tmp_path):
    """A photo reduced before detection (``photo_scale``): photo-frame meshes grow back to original px, head-frame
    meshes stay in mm."""
    fp = face_photo(pose=(20.0, 5.0, -10.0), angle=15.0, seed=8)
    res = face_result(fp)
    a = write_face(tmp_path / "a", res, fp.photo, output=OutputConfig(mesh_frame="head"))
    b = write_face(tmp_path / "b", res, fp.photo, output=OutputConfig(mesh_frame="head"), photo_scale=(0.5, 0.5))
    for name in ("fit_mesh.obj", "mesh.obj"):
        np.testing.assert_allclose(_obj_vertices(tmp_path / "b" / name), _obj_vertices(tmp_path / "a" / name),
                                   atol=2e-3)
    assert b["mesh"]["head_frame"]["mm_per_px"] == pytest.approx(a["mesh"]["head_frame"]["mm_per_px"] / 2, rel=1e-5)


def test_head_frame_places_the_head_in_the_photo(tmp_path):
    """result.json's head_frame takes the photo-frame mesh to the head-frame one; its origin is the face model's
    origin where the photo shows it, its axes the head's (ground truth mapped by facevision.face.crop)."""
    from meshing import load_mesh

    fp = face_photo(pose=(25.0, -10.0, 12.0), angle=20.0, seed=9)
    res = face_result(fp)
    h = write_face(tmp_path / "h", res, fp.photo, output=OutputConfig(mesh_frame="head"))
    p = write_face(tmp_path / "p", res, fp.photo)
    hf = h["mesh"]["head_frame"]
    assert h["mesh"]["photo_height_px"] == fp.photo.shape[0] and json.loads(json.dumps(hf)) == hf
    origin, rot, mm_px = np.array(hf["origin_px"]), np.array(hf["rotation"]), hf["mm_per_px"]
    photo_v = load_mesh(tmp_path / "p" / "mesh.ply").vertices
    head_v = load_mesh(tmp_path / "h" / "mesh.ply").vertices
    np.testing.assert_allclose((photo_v - origin) @ rot * mm_px, head_v, atol=2e-3)
    np.testing.assert_allclose(head_frame(res, fp.photo.shape[0]).to_photo(head_v), photo_v, atol=2e-3)
    assert p["mesh"]["frame"] == "photo" and "head_frame" not in p["mesh"]
    # the origin: the model origin (crop frame ``centre``) mapped into the photo by facevision.face.crop, Y up
    truth = crop_to_photo_px(fp.centre[None], fp.box, fp.angle)[0]
    truth_photo = np.array([truth[0], fp.photo.shape[0] - 1 - truth[1]])
    assert np.linalg.norm(origin[:2] - truth_photo) < 0.5  # photo px (a crop px is 2 photo px here)
    assert mm_px == pytest.approx(_mm_per_unit() / (2.0 * fp.scale), rel=0.005)  # the rendered size
    # the head's axes: its X, Y, Z axes' tips, mapped the same way, give the directions in the photo
    tips = crop_to_photo_px(fp.centre + 30.0 * fp.head.T, fp.box, fp.angle)  # rows: tips of X, Y, Z (crop px)
    dirs = (tips - truth) * [1.0, -1.0, 1.0]
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    assert np.all(np.einsum("kd,dk->k", dirs, rot) > np.cos(np.radians(1.0)))  # within a degree
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-5)  # result.json keeps 6 decimals
    assert np.linalg.det(rot) == pytest.approx(1.0)  # a rotation: triangles keep their orientation


def test_head_frame_mesh_keeps_triangles_facing_the_viewer(tmp_path):
    from meshing.refine import vertex_normals

    fp = face_photo(pose=(-35.0, 10.0, 0.0), seed=10)
    res = face_result(fp)
    write_face(tmp_path / "h", res, fp.photo, output=OutputConfig(mesh_frame="head"))
    from meshing import load_mesh

    for name in ("fit_mesh.obj", "mesh.ply"):
        m = load_mesh(tmp_path / "h" / name)
        n = vertex_normals(m.vertices, m.faces).mean(0)
        assert n[2] > 0.5 * np.linalg.norm(n), name  # counter-clockwise seen from +Z, the face looks along +Z
    photo = photo_frame_mesh(res, fp.photo.shape[0])
    assert photo is not None and load_mesh(tmp_path / "h" / "mesh.ply").n_vertices == photo.n_vertices


def test_head_is_a_mesh_frame_of_the_command_line():
    from facevision.cli import build_parser

    assert MESH_FRAMES == ("photo", "crop", "head")
    args = build_parser().parse_args(["predict", "x.jpg", "-o", "out", "--mesh-frame", "head"])
    assert args.mesh_frame == "head" and OutputConfig(mesh_frame="head").mesh_frame == "head"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "x.jpg", "-o", "out", "--mesh-frame", "world"])

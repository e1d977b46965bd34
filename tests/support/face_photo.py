"""A photo with a known face in it (ground truth for overlays, fit textures and mesh frames).

The package's face model with known coefficients and head pose is placed in the crop frame of a crop box
(possibly turned) of a larger photo, exactly as :func:`support.face_model.render_face_model` places it:
``X = scale * R(yaw, pitch, roll) @ T @ p + centre`` (crop px, Y up, ``T`` the reference's tilt, rotations
built with scipy). The same vertices are mapped into the photo with :func:`facevision.face.crop.crop_to_original`
and rasterized there, each face pixel painted with its reference (u, v): R = 255 u, G = 255 v, B = 128, on a
grey background; marks (filled discs) can be painted at chosen vertices. The crop's maps are those a perfect
network would predict, and :func:`face_result` runs them through the real Predictor (a stand-in network
returning them), so everything after the network is the code under test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facevision.face.crop import crop_image, crop_to_original
from facevision.face.face_model import load_face_model
from facevision.face.rasterize import rasterize
from facevision.face.reference import load_reference
from facevision.maps.pose import REFERENCE_PITCH_DEG
from support.face_model import S, render_face_model
from support.synthetic import fixed_maps_model, known_rotation

__all__ = ["FacePhoto", "face_photo", "face_result", "crop_to_photo_px"]

BACKGROUND = 100


@dataclass
class FacePhoto:
    """photo (H, W, 3) uint8; box, angle: the crop (photo px, degrees); depth, corr, mask: the crop's maps;
    vertices (V, 3) crop mesh frame (crop px, Y up); vertices_px (V, 3) photo px (x = column, y = row, z = depth
    towards the viewer); head (3, 3): the head rotation in the crop frame (camera-frontal -> mesh frame);
    centre (3,): the model origin in the crop frame; scale: crop px per model unit; id_c, exp_c: coefficients;
    face (H, W) bool: photo pixels the face covers."""

    photo: np.ndarray
    box: tuple[int, int, int, int]
    angle: float
    depth: np.ndarray
    corr: np.ndarray
    mask: np.ndarray
    vertices: np.ndarray
    vertices_px: np.ndarray
    head: np.ndarray
    centre: np.ndarray
    scale: float
    id_c: np.ndarray
    exp_c: np.ndarray
    face: np.ndarray


def crop_to_photo_px(points: np.ndarray, box, angle: float) -> np.ndarray:
    """(N, 3) crop mesh-frame points (Y up) -> (N, 3) photo px (x = column, y = row, z), through facevision.face.crop."""
    p = np.asarray(points, np.float64)
    return crop_to_original(np.column_stack([p[:, 0], S - 1 - p[:, 1], p[:, 2]]), box, S, angle)


def face_photo(shape: tuple[int, int] = (300, 320), box: tuple[int, int, int, int] = (40, 20, 296, 276),
               angle: float = 0.0, pose: tuple[float, float, float] = (0.0, 0.0, 0.0), seed: int | None = None,
               scale: float = 38.0, centre: tuple[float, float, float] = (64.0, 62.0, 80.0),
               marks: dict[int, tuple[tuple[int, int, int], float]] | None = None) -> FacePhoto:
    """The face model (coefficients drawn with ``seed``, None = the mean face) at ``pose`` (yaw, pitch, roll
    degrees) in the crop ``box`` turned by ``angle`` of a ``shape`` (H, W) photo; ``marks``: vertex index ->
    (RGB colour, radius in photo px) of discs painted over the face at that vertex."""
    import cv2

    model = load_face_model()
    ref = load_reference()
    rng = np.random.default_rng(seed)
    id_c = rng.normal(0, 0.7, model.n_id) if seed is not None else np.zeros(model.n_id)
    exp_c = rng.normal(0, 0.5, model.n_exp) if seed is not None else np.zeros(model.n_exp)
    depth, corr, mask, _, _ = render_face_model(model, id_c, exp_c, *pose, scale=scale, centre=centre)
    rot = known_rotation(*pose) @ known_rotation(0.0, REFERENCE_PITCH_DEG, 0.0)
    verts = scale * model.shape(id_c, exp_c) @ rot.T + np.asarray(centre)
    px = crop_to_photo_px(verts, box, angle)
    h, w = shape
    _, uv, cover = rasterize(px, model.triangles, h, w, ref.vertices[:, :2])
    photo = np.full((h, w, 3), BACKGROUND, np.float64)
    photo[cover] = np.column_stack([255.0 * uv[cover], np.full(int(cover.sum()), 128.0)])
    photo = np.clip(np.round(photo), 0, 255).astype(np.uint8)
    for vertex, (colour, radius) in (marks or {}).items():
        x, y = px[vertex, :2]
        cv2.circle(photo, (int(round(x)), int(round(y))), int(round(radius)), tuple(int(c) for c in colour), -1)
    return FacePhoto(photo=photo, box=tuple(int(v) for v in box), angle=float(angle), depth=depth.astype(np.float32),
                     corr=corr.astype(np.float32), mask=mask, vertices=verts, vertices_px=px,
                     head=known_rotation(*pose), centre=np.asarray(centre, np.float64), scale=float(scale), id_c=id_c,
                     exp_c=exp_c, face=cover)


def face_result(fp: FacePhoto, photo: np.ndarray | None = None, config=None):
    """The real Predictor's FaceResult for ``fp`` (a stand-in network returning its maps), on ``photo`` (default
    ``fp.photo``; e.g. a reduced copy with the box scaled by the caller)."""
    from facevision.predict.predictor import Predictor

    predictor = Predictor(fixed_maps_model(fp.depth, fp.corr, fp.mask), config)
    image = fp.photo if photo is None else photo
    crop = crop_image(image, fp.box, S, fp.angle)
    return predictor.predict_crops(crop[None], [fp.box], crop_angles=[fp.angle])[0]

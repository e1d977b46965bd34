"""``overlay.jpg``: one picture per photo with every face's result drawn over the photo (OpenCV drawing).

The photo at its own resolution, or reduced (area averaging) so that its longer side is at most
``OverlayConfig.max_side`` (2048 px) when it is larger; all coordinates are scaled with it. Per face, in this
order (later ones on top):

* the fitted mesh (``result.model_fit``, the face model as fitted; the refined mesh ``result.mesh`` where the fit
  is missing), shaded by a headlight (Lambert) and alpha-blended over the face, z-buffered;
* the 68 landmarks: visible ones (``landmarks68_visible``) as filled dots, hidden ones as rings in another colour;
* the head pose as three axes from the head's origin (the face model's origin as fitted, :func:`head_pose_px`):
  X red, Y green, Z blue (towards the viewer of a frontal face), each ``axis_length`` face-model units long
  (1 unit ~ 52 mm, the RMS radius of the face), drawn in orthographic projection, so a frontal face's Z axis is
  short;
* the face number (``face<k>`` as the folder is named) above its detector box; a face that failed gets only its
  box and number, in grey.

Coordinates: the photo the faces were predicted on (``FaceResult``'s pixels: x = column, y = row, pixel
centres at integers).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facevision.common.checks import check_int, check_number
from facevision.face.rasterize import rasterize
from facevision.predict.mesh_frame import crop_to_image_vertices, head_pose_px
from meshing.refine import vertex_normals

__all__ = ["OverlayConfig", "overlay_scale", "face_mesh_px", "draw_mesh", "draw_landmarks", "draw_axes",
           "draw_overlay", "encode_jpeg", "write_overlay", "OVERLAY_NAME"]

OVERLAY_NAME = "overlay.jpg"
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class OverlayConfig:
    """max_side: longest side of the picture in px (larger photos are reduced; smaller ones keep their size);
    mesh_alpha: opacity of the mesh in [0, 1]; mesh_rgb: its colour when lit head-on; ambient: its shade where
    it faces away, in [0, 1]; visible_rgb / hidden_rgb: landmark colours; axis_rgb: X, Y, Z axis colours;
    axis_length: axis length in face-model units (the face's RMS radius, ~52 mm); mark_size: landmark radius
    and line width as a fraction of a face-model unit in the picture's px (at least 1 px);
    mesh_raster_px: the mesh is rasterized with its box's longer side at most this many px and enlarged (the
    shading is smooth; a face of any size costs alike); jpeg_quality: 1-100."""

    max_side: int = 2048
    mesh_alpha: float = 0.4
    mesh_rgb: RGB = (150, 200, 255)
    ambient: float = 0.3
    visible_rgb: RGB = (255, 230, 0)
    hidden_rgb: RGB = (255, 0, 255)
    axis_rgb: tuple[RGB, RGB, RGB] = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    failed_rgb: RGB = (160, 160, 160)
    axis_length: float = 1.0
    mark_size: float = 0.03
    mesh_raster_px: int = 256
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        check_int(self, "max_side", low=64, unit="px")
        for name in ("mesh_alpha", "ambient"):
            check_number(self, name, 0, 1)
        for name in ("axis_length", "mark_size"):
            check_number(self, name, low=0, low_open=True, finite=False)
        check_int(self, "mesh_raster_px", low=16)
        check_int(self, "jpeg_quality", 1, 100)
        colours = (self.mesh_rgb, self.visible_rgb, self.hidden_rgb, self.failed_rgb) + tuple(self.axis_rgb)
        if len(self.axis_rgb) != 3 or not all(len(c) == 3 and all(0 <= int(x) <= 255 for x in c) for c in colours):
            raise ValueError("OverlayConfig colours must be (R, G, B) in [0, 255], three of them for the axes")


def overlay_scale(shape: Sequence[int], max_side: int) -> float:
    """Picture px per photo px: 1 for a photo whose longer side is at most ``max_side``, else max_side / side."""
    return min(1.0, float(max_side) / float(max(shape[0], shape[1])))


def _to_picture(points: np.ndarray, k: float) -> np.ndarray:
    """Photo px (x, y[, z]) -> picture px of a photo resized by ``k`` (pixel centres kept at integers)."""
    p = np.array(points, dtype=np.float64, copy=True)
    p[..., :2] = (p[..., :2] + 0.5) * k - 0.5
    if p.shape[-1] > 2:
        p[..., 2:] *= k
    return p


def face_mesh_px(result) -> tuple[np.ndarray, np.ndarray] | None:
    """The mesh to draw for a face, in its photo's px (x = column, y = row, z = depth towards the viewer) and its
    triangles: the face-model fit's, else the refined mesh's; None when there is neither."""
    size = int(result.crop.shape[0])
    fit = result.model_fit
    if fit is not None:
        tri = fit.triangles
        if tri is None:
            from facevision.face.face_model import load_face_model

            tri = load_face_model().triangles
        return crop_to_image_vertices(fit.vertices, result.crop_box, size, result.crop_angle), np.asarray(tri)
    if result.mesh is not None:
        return (crop_to_image_vertices(result.mesh.vertices, result.crop_box, size, result.crop_angle),
                np.asarray(result.mesh.faces))
    return None


def draw_mesh(canvas: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, config: OverlayConfig) -> None:
    """Blend a shaded mesh (picture px: x = column, y = row, z towards the viewer) over ``canvas`` in place;
    only the mesh's bounding box is rasterized, at most ``config.mesh_raster_px`` px on its longer side."""
    h, w = canvas.shape[:2]
    v = np.asarray(vertices, np.float64)
    lo = np.floor(np.clip(v[:, :2].min(0), 0, [w - 1, h - 1])).astype(int)
    hi = np.ceil(np.clip(v[:, :2].max(0), 0, [w - 1, h - 1])).astype(int)
    if np.any(hi <= lo):
        return
    normals = vertex_normals(v * [1.0, -1.0, 1.0], triangles)  # y up: front faces point to +z
    shade = config.ambient + (1.0 - config.ambient) * np.clip(normals[:, 2], 0.0, 1.0)
    bh, bw = hi[1] - lo[1] + 1, hi[0] - lo[0] + 1
    k = min(1.0, config.mesh_raster_px / float(max(bh, bw)))
    rh, rw = max(1, int(round(bh * k))), max(1, int(round(bw * k)))
    local = np.column_stack([(v[:, 0] - lo[0] + 0.5) * rw / bw - 0.5, (v[:, 1] - lo[1] + 0.5) * rh / bh - 0.5,
                             v[:, 2] * k])
    _, val, cover = rasterize(local, triangles, rh, rw, shade[:, None])
    if not cover.any():
        return
    a = cover.astype(np.float32) * float(config.mesh_alpha)
    layers = np.dstack([a[..., None] * val[..., :1] * np.asarray(config.mesh_rgb, np.float32), a])  # premultiplied
    if (rh, rw) != (bh, bw):  # enlarge: smooth shading, soft (anti-aliased) rim
        layers = cv2.resize(layers, (bw, bh), interpolation=cv2.INTER_LINEAR)
    region = canvas[lo[1]:lo[1] + bh, lo[0]:lo[0] + bw]
    blended = region.astype(np.float32) * (1.0 - layers[..., 3:]) + layers[..., :3]
    region[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def _mark_px(px_per_unit: float, config: OverlayConfig) -> int:
    return max(1, int(round(config.mark_size * px_per_unit)))


def draw_landmarks(canvas: np.ndarray, points: np.ndarray, visible: np.ndarray | None, radius: int,
                   config: OverlayConfig) -> None:
    """Draw (68, 2) picture-px landmarks in place: visible ones filled (``visible_rgb``), hidden ones as rings
    (``hidden_rgb``); ``visible`` None = all visible."""
    vis = np.ones(len(points), bool) if visible is None else np.asarray(visible, bool)
    for (x, y), seen in zip(np.round(points).astype(int), vis):
        if seen:
            cv2.circle(canvas, (int(x), int(y)), radius, config.visible_rgb, -1, cv2.LINE_AA)
        else:
            cv2.circle(canvas, (int(x), int(y)), radius, config.hidden_rgb, max(1, radius // 2), cv2.LINE_AA)


def draw_axes(canvas: np.ndarray, origin: np.ndarray, axes: np.ndarray, length: float, width: int,
              config: OverlayConfig) -> None:
    """Draw the head's X, Y, Z axes in place from ``origin`` (picture px, x, y): ``axes`` (3, 3) columns are unit
    vectors in x right, y down, z towards the viewer; ``length`` in picture px (orthographic: x and y only).
    The axis pointing most towards the viewer is drawn last."""
    o = np.asarray(origin, np.float64)[:2]
    order = np.argsort(np.asarray(axes)[2])  # farthest first
    for k in order:
        end = o + length * np.asarray(axes)[:2, k]
        cv2.arrowedLine(canvas, tuple(int(round(c)) for c in o), tuple(int(round(c)) for c in end),
                        config.axis_rgb[k], width, cv2.LINE_AA, tipLength=0.12)


def _label(canvas: np.ndarray, text: str, at: np.ndarray, height_px: float, colour: RGB) -> None:
    scale = max(0.35, height_px / 22.0)
    thick = max(1, int(round(scale * 1.5)))
    x, y = int(round(at[0])), int(round(at[1])) - 3
    cv2.putText(canvas, text, (x, max(y, 12)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, (x, max(y, 12)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def draw_overlay(photo: np.ndarray, results: Sequence, config: OverlayConfig = OverlayConfig()) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo + its faces (``FaceResult`` list, in its px) -> the overlay picture, (h, w, 3)
    uint8 RGB, reduced to ``config.max_side`` on the longer side when larger (module docstring)."""
    k = overlay_scale(photo.shape, config.max_side)
    if k < 1.0:
        size = (max(1, round(photo.shape[1] * k)), max(1, round(photo.shape[0] * k)))
        canvas = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        k = size[0] / photo.shape[1]
    else:
        canvas = np.ascontiguousarray(photo).copy()
    label_px = max(12.0, 0.02 * max(canvas.shape[:2]))
    for j, res in enumerate(results):
        box = _to_picture(np.asarray(res.bbox, np.float64).reshape(2, 2), k)
        name = f"face{getattr(res, 'index', j)}"
        if res.error is not None:
            p0, p1 = np.round(box).astype(int)
            cv2.rectangle(canvas, tuple(int(c) for c in p0), tuple(int(c) for c in p1), config.failed_rgb, 1)
            _label(canvas, f"{name}: failed", box[0], label_px, config.failed_rgb)
            continue
        mesh = face_mesh_px(res)
        if mesh is not None:
            draw_mesh(canvas, _to_picture(mesh[0], k), mesh[1], config)
        px_per_unit = None
        if res.pose is not None:
            origin, axes, px_per_unit = head_pose_px(res)
            px_per_unit *= k
        unit = px_per_unit if px_per_unit else float(box[1, 0] - box[0, 0]) / 2.6  # a face is ~2.6 units wide
        mark = _mark_px(unit, config)
        if res.landmarks68 is not None:
            draw_landmarks(canvas, _to_picture(res.landmarks68, k), res.landmarks68_visible, mark + 1, config)
        if px_per_unit:
            draw_axes(canvas, _to_picture(origin, k), axes, config.axis_length * px_per_unit, mark, config)
        _label(canvas, name, box[0], label_px, (255, 255, 255))
    return canvas


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG file bytes (OpenCV; ValueError when encoding fails)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding of the overlay failed")
    return buf.tobytes()


def write_overlay(path: str | Path, photo: np.ndarray, results: Sequence,
                  config: OverlayConfig = OverlayConfig()) -> Path:
    """Draw :func:`draw_overlay` and write it to ``path`` as JPEG, atomically (complete or absent)."""
    from facevision.common.fileio import atomic_write_bytes

    return atomic_write_bytes(path, encode_jpeg(draw_overlay(photo, results, config), config.jpeg_quality))

"""Shaded renders of a mesh and the ``preview.png`` sheet (numpy z-buffer via ``facevision.face.rasterize``).

Renders are orthographic: the mesh (meshing frame, X right, Y up, Z towards the viewer) is turned
about the vertical axis through its centre by ``yaw_deg`` (positive = its front turns to the image
right), fitted into the tile with a margin, and shaded with a headlight (Lambert, grey).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facevision.common.checks import check_int, check_number
from facevision.face.rasterize import rasterize
from meshing.refine import vertex_normals

__all__ = ["RenderConfig", "render_mesh", "preview_sheet", "preview_labels", "view_angles", "face_panel", "panel_box",
           "annotate_photo"]


@dataclass(frozen=True)
class RenderConfig:
    """tile: side of each preview tile in px; views: yaw angles (degrees) of the two mesh renders, turned against
    the face's own yaw in the preview (:func:`view_angles`);
    ambient: shade of surfaces facing away from the light, in [0, 1]; margin: fraction of the tile left free;
    context: side of the preview's photo panel as a multiple of the crop box's side (centred on the crop box,
    so a crop turned by up to 45 degrees shows whole at 1.42)."""

    tile: int = 256
    views: tuple[float, ...] = (0.0, 60.0)
    ambient: float = 0.25
    margin: float = 0.08
    context: float = 1.5

    def __post_init__(self) -> None:
        check_int(self, "tile", low=16, unit="px")
        check_number(self, "ambient", 0, 1)
        check_number(self, "margin", 0, 0.5, high_open=True)
        check_number(self, "context", 1, 4)


def render_mesh(vertices: np.ndarray, faces: np.ndarray, size: int, yaw_deg: float = 0.0,
                config: RenderConfig = RenderConfig(), normals: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) mesh-frame vertices + (F, 3) faces -> (size, size, 3) uint8 grey shaded render on black.
    normals: the mesh's unit vertex normals (:func:`meshing.refine.vertex_normals`) if already known (several
    views of one mesh: computed once, turned with the mesh)."""
    v = np.asarray(vertices, dtype=np.float64)
    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    v = (v - v.mean(0)) @ rot.T
    n = vertex_normals(v, faces) if normals is None else np.asarray(normals, dtype=np.float64) @ rot.T
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    scale = (1.0 - 2 * config.margin) * size / max(float((hi - lo).max()), 1e-6)
    centre = 0.5 * (lo + hi)
    pix = np.stack([(v[:, 0] - centre[0]) * scale + (size - 1) / 2.0,
                    (size - 1) / 2.0 - (v[:, 1] - centre[1]) * scale, v[:, 2] * scale], 1)
    shade = config.ambient + (1.0 - config.ambient) * np.clip(n[:, 2], 0.0, 1.0)
    _, val, mask = rasterize(pix, faces, size, size, shade[:, None])
    grey = np.where(mask, np.clip(val[..., 0], 0.0, 1.0) * 255.0, 0.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _fit_tile(image: np.ndarray, size: int) -> np.ndarray:
    """Letterbox any (H, W, 3) uint8 image into a (size, size, 3) tile."""
    h, w = image.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, (nw, nh), interpolation=interp)
    tile = np.zeros((size, size, 3), np.uint8)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    tile[y0:y0 + nh, x0:x0 + nw] = small
    return tile


def annotate_photo(photo: np.ndarray, crop_box, landmarks68: np.ndarray | None, crop_angle: float = 0.0) -> np.ndarray:
    """Copy of the whole photo with the (possibly turned) crop square (green) and the 68 landmarks (red dots) drawn
    (the preview's first panel before it showed the face large: :func:`face_panel`)."""
    from facevision.face.crop import crop_to_original

    img = np.ascontiguousarray(photo.copy())
    t = max(1, round(max(img.shape[:2]) / 300))
    side = int(crop_box[2]) - int(crop_box[0])
    corners = np.array([[-0.5, -0.5], [side - 0.5, -0.5], [side - 0.5, side - 0.5], [-0.5, side - 0.5]])
    poly = crop_to_original(corners, crop_box, side, crop_angle)
    cv2.polylines(img, [np.round(poly).astype(np.int32)], True, (0, 255, 0), t)
    if landmarks68 is not None:
        for x, y in np.asarray(landmarks68):
            cv2.circle(img, (int(round(x)), int(round(y))), t + 1, (255, 0, 0), -1)
    return img


def panel_box(crop_box, context: float) -> tuple[int, int, int, int]:
    """The integer square (x0, y0, x1, y1), end exclusive, of ``context`` x the crop box's side around its centre
    (photo px); it may reach past the photo (cut with zero padding)."""
    x0, y0, x1, y1 = (float(v) for v in crop_box)
    side = max(1, int(round(context * (x1 - x0))))
    left, top = int(round(0.5 * (x0 + x1) - side / 2.0)), int(round(0.5 * (y0 + y1) - side / 2.0))
    return left, top, left + side, top + side


def face_panel(photo: np.ndarray, crop_box, size: int, crop_angle: float = 0.0, landmarks68: np.ndarray | None = None,
               visible: np.ndarray | None = None, context: float = 1.5) -> np.ndarray:
    """The photo around one face, (size, size, 3) uint8: the square :func:`panel_box` (``context`` x the crop
    box's side, centred on it) cut from ``photo`` (zero padding outside it), enlarged or reduced to ``size``, with
    the (possibly turned) crop square (green) and the 68 landmarks (photo px; visible ones red dots, hidden ones,
    where ``visible`` says so, blue rings) drawn at the panel's scale."""
    from facevision.face.crop import crop_image, crop_to_original, original_to_crop

    box = panel_box(crop_box, context)
    tile = np.ascontiguousarray(crop_image(photo, box, size))
    side = int(crop_box[2]) - int(crop_box[0])
    corners = np.array([[-0.5, -0.5], [side - 0.5, -0.5], [side - 0.5, side - 0.5], [-0.5, side - 0.5]])
    square = original_to_crop(crop_to_original(corners, crop_box, side, crop_angle), box, size)
    t = max(1, round(size / 200))
    cv2.polylines(tile, [np.round(square).astype(np.int32)], True, (0, 255, 0), t, cv2.LINE_AA)
    if landmarks68 is not None:
        pts = original_to_crop(np.asarray(landmarks68, np.float64), box, size)
        vis = np.ones(len(pts), bool) if visible is None else np.asarray(visible, bool)
        for (x, y), seen in zip(np.round(pts).astype(int), vis):
            if seen:
                cv2.circle(tile, (int(x), int(y)), t + 1, (255, 0, 0), -1, cv2.LINE_AA)
            else:
                cv2.circle(tile, (int(x), int(y)), t + 1, (0, 128, 255), 1, cv2.LINE_AA)
    return tile


def view_angles(config: RenderConfig = RenderConfig(), face_yaw_deg: float = 0.0) -> list[float]:
    """The preview's mesh views (degrees, :func:`render_mesh`'s sign): each of ``config.views`` turned the other
    way when the face already turns that way (``face_yaw_deg``, :mod:`facevision.maps.pose`'s sign, which is the
    render's), so a turned face's mesh is shown towards its hidden side, never from behind."""
    return [-v if v * float(face_yaw_deg) > 0 else float(v) for v in config.views]


def preview_labels(config: RenderConfig = RenderConfig(), mesh: bool = True, face_yaw_deg: float = 0.0) -> list[str]:
    """Panel names of :func:`preview_sheet`, left to right."""
    names = ["photo at the face, box, landmarks", "crop", "depth (near = red)", "corr. (u,v,w = R,G,B)"]
    if mesh:
        names += ["mesh, front" if yaw == 0 else f"mesh, {yaw:+g} deg" for yaw in view_angles(config, face_yaw_deg)]
    return names


def preview_sheet(photo: np.ndarray, crop: np.ndarray, depth_rgb: np.ndarray, corr_rgb: np.ndarray,
                  mesh=None, crop_box=None, landmarks68=None, config: RenderConfig = RenderConfig(),
                  crop_angle: float = 0.0, labels: bool = True, visible: np.ndarray | None = None,
                  face_yaw_deg: float = 0.0) -> np.ndarray:
    """One row of tiles: the photo around the face (:func:`face_panel`: ``config.context`` x the crop box, with the
    crop square and the landmarks, hidden ones (``visible`` False) as rings; without ``crop_box``, the whole photo
    letterboxed), crop, depth, correspondence, mesh renders per view (:func:`view_angles` of ``face_yaw_deg``,
    the face's yaw); with ``labels``, the panel names
    (:func:`preview_labels`) in a strip above them."""
    from facevision.maps.visualize import image_grid

    s = config.tile
    near = lambda im: cv2.resize(im, (s, s), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    first = (face_panel(photo, crop_box, s, crop_angle, landmarks68, visible, config.context) if crop_box is not None
             else _fit_tile(photo, s))
    tiles = [first, near(crop), near(depth_rgb), near(corr_rgb)]
    if mesh is not None:
        normals = vertex_normals(mesh.vertices, mesh.faces)
        tiles += [render_mesh(mesh.vertices, mesh.faces, s, yaw, config, normals)
                  for yaw in view_angles(config, face_yaw_deg)]
    names = preview_labels(config, mesh is not None, face_yaw_deg)
    return image_grid([tiles], labels=names if labels else None)

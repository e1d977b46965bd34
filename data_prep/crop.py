"""Square face crops: one set of functions used by both ``prepare`` and ``predict`` so crops match.

Coordinates: original-photo pixels, x right, y down, pixel centres at integer coordinates.
A crop box ``(x0, y0, x1, y1)`` is integer and exclusive at the end (it covers columns
x0..x1-1); it may extend past the photo, and the part outside is zero-padded. Crop pixel
``(i, j)`` (column, row) shows the photo point
``x = x0 + (i + 0.5) / s - 0.5``, ``y = y0 + (j + 0.5) / s - 0.5`` with ``s = size / (x1 - x0)``.

Upright crops: a crop may also be turned by ``angle`` degrees about the box centre, so that a tilted
face comes out with level eyes (:func:`upright_angle` reads the angle from the detector's eye
keypoints; :func:`face_crop` is the one rule ``prepare`` and ``predict`` share). ``angle`` is the
direction of the crop's x axis in the photo, measured from the photo's x axis towards its y axis,
i.e. clockwise as the viewer sees it (y points down). With ``c`` the box centre and ``m = (S - 1) / 2``
the crop centre: ``crop = s * R(-angle) (photo - c) + m``. ``angle = 0`` is the plain box crop above.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

__all__ = [
    "CropConfig",
    "square_crop_box",
    "crop_image",
    "crop_scale",
    "original_to_crop",
    "crop_to_original",
    "crop_matrix",
    "upright_angle",
    "face_crop",
]


@dataclass(frozen=True)
class CropConfig:
    """How a detector box becomes a square crop.

    size: output side in pixels.
    margin: side of the square = ``margin * max(box width, box height)``. MediaPipe's detector box
        spans roughly brows to mouth; the value is chosen so the whole labelled mesh (forehead to chin,
        ear to ear) fits with a little background on LFW (measured, see the README part).
    shift_y: the square's centre is moved by ``shift_y * box height`` (negative = up) from the box centre.

    upright: turn each crop so the detector's eye keypoints are level (:func:`upright_angle`);
        faces without keypoints are cropped unturned.
    max_angle: eye-line angles beyond this (degrees) are clipped to it.
    upright_full_ratio, upright_none_ratio: the eye keypoints of a turned-away face are unsure (one eye
        is hidden), so the turn is scaled by how frontal the face looks: eye distance / box width at or
        above ``upright_full_ratio`` turns fully, at or below ``upright_none_ratio`` not at all, linearly
        between. On LFW's near-frontal photos the ratio's median is 0.41 (274 photos); the two limits are
        0.41 x cos 30 deg and 0.41 x cos 60 deg, i.e. full turning up to about 30 deg of yaw, none beyond 60.
    """

    size: int = 128
    margin: float = 1.4
    shift_y: float = -0.05
    upright: bool = True
    max_angle: float = 90.0
    upright_full_ratio: float = 0.355
    upright_none_ratio: float = 0.205


def square_crop_box(box: Sequence[float], config: CropConfig = CropConfig()) -> tuple[int, int, int, int]:
    """Detector box (float x0, y0, x1, y1) -> integer square crop box in original pixels (may extend past the photo)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    if not (w > 0 and h > 0):
        raise ValueError(f"face box must have positive size, got {tuple(box)}")
    side = max(1, int(round(config.margin * max(w, h))))
    cx = 0.5 * (x0 + x1)
    cy = 0.5 * (y0 + y1) + config.shift_y * h
    bx0 = int(round(cx - side / 2.0))
    by0 = int(round(cy - side / 2.0))
    return (bx0, by0, bx0 + side, by0 + side)


def upright_angle(right_eye: Sequence[float], left_eye: Sequence[float]) -> float:
    """Angle (degrees, clockwise as seen) of the line from the subject's right eye (image left in a
    frontal photo) to the left eye: the crop ``angle`` that makes that line level."""
    dx, dy = float(left_eye[0]) - float(right_eye[0]), float(left_eye[1]) - float(right_eye[1])
    return float(np.degrees(np.arctan2(dy, dx)))


def face_crop(box: Sequence[float], keypoints: Sequence[Sequence[float]] | None,
              config: CropConfig = CropConfig()) -> tuple[tuple[int, int, int, int], float]:
    """Detector box + keypoints (MediaPipe order: right eye, left eye, ...) -> (crop box, crop angle).

    The one crop rule of ``prepare`` and ``predict``. The box is turned about its centre, so the square
    keeps its size and centre; angle is 0 without keypoints or with ``config.upright`` off, and shrinks
    towards 0 for turned-away faces (see :class:`CropConfig`).
    """
    crop_box = square_crop_box(box, config)
    angle = 0.0
    if config.upright and keypoints is not None and len(keypoints) >= 2:
        angle = float(np.clip(upright_angle(keypoints[0], keypoints[1]), -config.max_angle, config.max_angle))
        ratio = float(np.hypot(keypoints[1][0] - keypoints[0][0], keypoints[1][1] - keypoints[0][1])) / \
            max(float(box[2]) - float(box[0]), 1e-9)
        span = config.upright_full_ratio - config.upright_none_ratio
        angle *= float(np.clip((ratio - config.upright_none_ratio) / max(span, 1e-9), 0.0, 1.0))
    return crop_box, angle


def crop_matrix(crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """2 x 3 affine matrix, photo px -> crop px, of a (possibly turned) crop (see the module docstring)."""
    x0, y0, x1, y1 = (float(v) for v in crop_box)
    s = float(size) / (x1 - x0)
    c = np.array([0.5 * (x0 + x1) - 0.5, 0.5 * (y0 + y1) - 0.5])
    a = np.radians(angle)
    rot_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # R(-angle)
    m = np.empty((2, 3))
    m[:, :2] = s * rot_inv
    m[:, 2] = (size - 1) / 2.0 - s * rot_inv @ c
    return m


def crop_scale(crop_box: Sequence[int], size: int) -> float:
    """Crop pixels per original pixel."""
    return float(size) / float(crop_box[2] - crop_box[0])


def crop_image(image: np.ndarray, crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """Cut ``crop_box`` (turned by ``angle``) out of ``image`` (zero padding outside) as ``(size, size, C)``.

    Area averaging when shrinking, bilinear when enlarging; dtype is kept. A turned crop first cuts the
    axis-aligned square around the turned box at the output's pixel pitch (area averaging), then turns
    it bilinearly, so it is not aliased when shrinking.
    """
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if x1 - x0 != y1 - y0 or x1 <= x0:
        raise ValueError(f"crop box must be a non-empty square, got {tuple(crop_box)}")
    if angle != 0.0:
        return _turned_crop(image, (x0, y0, x1, y1), size, float(angle))
    image = np.asarray(image)
    h, w = image.shape[:2]
    side = x1 - x0
    out = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    if side == size:
        return out
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    res = cv2.resize(out, (size, size), interpolation=interp)
    if res.ndim < out.ndim:
        res = res[..., None]
    return res


def _turned_crop(image: np.ndarray, crop_box: tuple[int, int, int, int], size: int, angle: float) -> np.ndarray:
    x0, y0, x1, y1 = crop_box
    side = x1 - x0
    a = np.radians(angle)
    grow = abs(np.cos(a)) + abs(np.sin(a))
    big = int(np.ceil(size * grow / 2.0)) * 2 + 2  # even margin keeps the centres aligned
    half = (side * big / size) / 2.0
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    # outer square at the output pitch: side * big / size photo px -> big px (rounded to whole px)
    ox0, oy0 = int(round(cx - half)), int(round(cy - half))
    oside = max(1, int(round(2 * half)))
    outer = crop_image(image, (ox0, oy0, ox0 + oside, oy0 + oside), big)
    # photo -> outer px, then photo -> crop; so crop = M_crop @ inv(M_outer) @ outer
    m_outer = np.vstack([crop_matrix((ox0, oy0, ox0 + oside, oy0 + oside), big), [0, 0, 1]])
    m_crop = np.vstack([crop_matrix(crop_box, size, angle), [0, 0, 1]])
    m = (m_crop @ np.linalg.inv(m_outer))[:2]
    res = cv2.warpAffine(outer, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if res.ndim < outer.ndim:
        res = res[..., None]
    return res


def original_to_crop(points: np.ndarray, crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """Map (..., 2+) points (x, y[, z]) from original to crop pixels; a 3rd column (depth) is scaled only."""
    p = np.array(points, dtype=np.float64, copy=True)
    if angle != 0.0:
        m = crop_matrix(crop_box, size, angle)
        p[..., :2] = p[..., :2] @ m[:, :2].T + m[:, 2]
        if p.shape[-1] > 2:
            p[..., 2:] *= crop_scale(crop_box, size)
        return p
    s = crop_scale(crop_box, size)
    p[..., 0] = (p[..., 0] + 0.5 - crop_box[0]) * s - 0.5
    p[..., 1] = (p[..., 1] + 0.5 - crop_box[1]) * s - 0.5
    if p.shape[-1] > 2:
        p[..., 2:] *= s
    return p


def crop_to_original(points: np.ndarray, crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """Inverse of :func:`original_to_crop`."""
    p = np.array(points, dtype=np.float64, copy=True)
    if angle != 0.0:
        m = crop_matrix(crop_box, size, angle)
        p[..., :2] = (p[..., :2] - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
        if p.shape[-1] > 2:
            p[..., 2:] /= crop_scale(crop_box, size)
        return p
    s = crop_scale(crop_box, size)
    p[..., 0] = (p[..., 0] + 0.5) / s - 0.5 + crop_box[0]
    p[..., 1] = (p[..., 1] + 0.5) / s - 0.5 + crop_box[1]
    if p.shape[-1] > 2:
        p[..., 2:] /= s
    return p

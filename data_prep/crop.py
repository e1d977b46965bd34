"""Square face crops: one function pair used by both ``prepare`` and ``predict`` so crops match.

Coordinates: original-photo pixels, x right, y down, pixel centres at integer coordinates.
A crop box ``(x0, y0, x1, y1)`` is integer and exclusive at the end (it covers columns
x0..x1-1); it may extend past the photo, and the part outside is zero-padded. Crop pixel
``(i, j)`` (column, row) shows the photo point
``x = x0 + (i + 0.5) / s - 0.5``, ``y = y0 + (j + 0.5) / s - 0.5`` with ``s = size / (x1 - x0)``.
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
]


@dataclass(frozen=True)
class CropConfig:
    """How a detector box becomes a square crop.

    size: output side in pixels.
    margin: side of the square = ``margin * max(box width, box height)``. MediaPipe's detector box
        spans roughly brows to mouth; the value is chosen so the whole labelled mesh (forehead to chin,
        ear to ear) fits with a little background on LFW (measured, see the README part).
    shift_y: the square's centre is moved by ``shift_y * box height`` (negative = up) from the box centre.
    """

    size: int = 128
    margin: float = 1.4
    shift_y: float = -0.05


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


def crop_scale(crop_box: Sequence[int], size: int) -> float:
    """Crop pixels per original pixel."""
    return float(size) / float(crop_box[2] - crop_box[0])


def crop_image(image: np.ndarray, crop_box: Sequence[int], size: int) -> np.ndarray:
    """Cut ``crop_box`` out of ``image`` (zero padding outside) and resize to ``(size, size, C)``.

    Area averaging when shrinking, bilinear when enlarging; dtype is kept.
    """
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if x1 - x0 != y1 - y0 or x1 <= x0:
        raise ValueError(f"crop box must be a non-empty square, got {tuple(crop_box)}")
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


def original_to_crop(points: np.ndarray, crop_box: Sequence[int], size: int) -> np.ndarray:
    """Map (..., 2+) points (x, y[, z]) from original to crop pixels; a 3rd column (depth) is scaled only."""
    p = np.array(points, dtype=np.float64, copy=True)
    s = crop_scale(crop_box, size)
    p[..., 0] = (p[..., 0] + 0.5 - crop_box[0]) * s - 0.5
    p[..., 1] = (p[..., 1] + 0.5 - crop_box[1]) * s - 0.5
    if p.shape[-1] > 2:
        p[..., 2:] *= s
    return p


def crop_to_original(points: np.ndarray, crop_box: Sequence[int], size: int) -> np.ndarray:
    """Inverse of :func:`original_to_crop`."""
    p = np.array(points, dtype=np.float64, copy=True)
    s = crop_scale(crop_box, size)
    p[..., 0] = (p[..., 0] + 0.5) / s - 0.5 + crop_box[0]
    p[..., 1] = (p[..., 1] + 0.5) / s - 0.5 + crop_box[1]
    if p.shape[-1] > 2:
        p[..., 2:] /= s
    return p

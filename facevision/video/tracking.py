"""Following a face from frame to frame without the detector (3DDFA_V2's tracking): the next frame's crop comes
from this frame's 68 landmarks.

The detector's box and the landmarks' box differ by a fixed relation for one face (MediaPipe's box spans
brows to mouth, the landmarks jaw to brows), learnt on each detected frame (:func:`box_relation`) and applied
to the landmarks of the frame before (:func:`tracked_crop`), so tracked crops match detected ones, the crops the
network was trained on. The crop's turn is the landmarks' eye line over the full circle: the landmarks come from
the face-model fit, which knows which way up the face is, and their eye line is sure also on a profile.
Coordinates: photo px, x right, y down.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from facevision.face.crop import CropConfig, square_crop_box, upright_angle

__all__ = ["BoxRelation", "box_relation", "tracked_crop", "landmark_box"]

#: (dx, dy, w, h): the detector box's centre offset and size in units of the landmarks' box side
BoxRelation = tuple[float, float, float, float]


def landmark_box(landmarks68: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (2,) and side (the longer of width and height) of the (68, 2) landmarks' box, photo px."""
    lm = np.asarray(landmarks68, np.float64)[:, :2]
    lo, hi = lm.min(0), lm.max(0)
    return 0.5 * (lo + hi), float(max(hi - lo))


def box_relation(box: Sequence[float], landmarks68: np.ndarray) -> BoxRelation:
    """The detector box (x0, y0, x1, y1) of a face relative to its landmarks' box (see :data:`BoxRelation`)."""
    c, side = landmark_box(landmarks68)
    side = max(side, 1e-6)
    x0, y0, x1, y1 = (float(v) for v in box)
    return ((0.5 * (x0 + x1) - c[0]) / side, (0.5 * (y0 + y1) - c[1]) / side, (x1 - x0) / side, (y1 - y0) / side)


def tracked_crop(landmarks68: np.ndarray, relation: BoxRelation, config: CropConfig = CropConfig()
                 ) -> tuple[tuple[float, float, float, float], tuple[int, int, int, int], float]:
    """The previous frame's (68, 2) landmarks -> (detector-like box, integer crop box, crop angle in degrees)
    for this frame (:mod:`facevision.face.crop`'s conventions)."""
    c, side = landmark_box(landmarks68)
    dx, dy, w, h = relation
    cx, cy = c[0] + dx * side, c[1] + dy * side
    box = (cx - 0.5 * w * side, cy - 0.5 * h * side, cx + 0.5 * w * side, cy + 0.5 * h * side)
    lm = np.asarray(landmarks68, np.float64)
    angle = upright_angle(lm[36:42].mean(0), lm[42:48].mean(0)) if config.upright else 0.0
    return box, square_crop_box(box, config, int(np.round(angle / 90.0)) % 4), angle

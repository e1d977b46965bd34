"""Face detection on RGB photos (shared by ``prepare`` and ``predict``).

The detector is MediaPipe's short-range BlazeFace (``mp.solutions.face_detection``, bundled in the
``mediapipe`` wheel; why this one: docs/data_prep.md), created once per process and cached. It misses faces
under ~10 % of the photo's width: for ``predict``, :func:`find_faces` adds the full-range model and overlapping
tiles of large photos (:class:`SearchConfig`; docs/predict.md); ``prepare`` keeps the one pass of
:func:`detect_faces`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from types import ModuleType
from typing import Callable

import numpy as np

from facevision.common.checks import check_fraction, check_int, check_number
from facevision.common.fileio import native_stderr_silenced
from facevision.common.lazy_modules import import_deferring

__all__ = ["DetectConfig", "FaceBox", "detect_faces", "detect_faces_haar", "native_stderr_silenced", "import_mediapipe",
           "SearchConfig", "find_faces", "search_tiles"]


@dataclass(frozen=True)
class DetectConfig:
    """Face detector settings.

    min_score: confidence threshold in [0, 1] (applied by :func:`detect_faces`: MediaPipe ignores its own);
    model_selection: 0 = short-range model (faces within ~2 m), 1 = full-range; min_size_frac: boxes whose longer
    side is below this fraction of the image's shorter side are ignored."""

    min_score: float = 0.5
    model_selection: int = 0
    min_size_frac: float = 0.0

    def __post_init__(self) -> None:
        check_number(self, "min_score", 0, 1)


@dataclass(frozen=True)
class FaceBox:
    """A detected face: ``box = (x0, y0, x1, y1)`` in float pixels of the original image
    (x right, y down, pixel edges: a box covering pixels 0..W-1 is (0, 0, W, H)), a score in [0, 1], and
    ``keypoints``: (x, y) photo px in MediaPipe's order (subject's right eye, left eye, nose tip, mouth
    centre, right ear tragion, left ear tragion), empty when the detector gives none."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.box[0] + self.box[2]), 0.5 * (self.box[1] + self.box[3]))


MEDIAPIPE_UNUSED = ("matplotlib", "matplotlib.pyplot")  # mediapipe's plotting helper, never used here


def import_mediapipe() -> ModuleType:
    """``import mediapipe``, without matplotlib (which its drawing helpers import) until something uses it
    (:func:`facevision.common.lazy_modules.import_deferring`)."""
    return import_deferring("mediapipe", MEDIAPIPE_UNUSED)


@lru_cache(maxsize=4)
def _mediapipe_detector(min_score: float, model_selection: int):
    """The detector, created and run once on a blank image with native stderr silenced (its start-up lines
    come at creation and at the first detection)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    with native_stderr_silenced():
        mp = import_mediapipe()
        det = mp.solutions.face_detection.FaceDetection(model_selection=model_selection,
                                                        min_detection_confidence=min_score)
        det.process(np.zeros((64, 64, 3), np.uint8))
    return det


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image_rgb.shape} {image_rgb.dtype}")
    return np.ascontiguousarray(image_rgb)


def detect_faces(image_rgb: np.ndarray, config: DetectConfig = DetectConfig()) -> list[FaceBox]:
    """Detect faces in an (H, W, 3) uint8 RGB image; returns boxes sorted by score (best first)."""
    image_rgb = _check_image(image_rgb)
    h, w = image_rgb.shape[:2]
    det = _mediapipe_detector(float(config.min_score), int(config.model_selection))
    result = det.process(image_rgb)
    faces: list[FaceBox] = []
    for d in result.detections or []:
        score = float(d.score[0])
        if score < config.min_score:  # MediaPipe does not apply min_detection_confidence itself
            continue
        bb = d.location_data.relative_bounding_box
        x0, y0 = bb.xmin * w, bb.ymin * h
        x1, y1 = x0 + bb.width * w, y0 + bb.height * h
        if max(x1 - x0, y1 - y0) < config.min_size_frac * min(h, w):
            continue
        kps = tuple((float(k.x * w - 0.5), float(k.y * h - 0.5)) for k in d.location_data.relative_keypoints)
        faces.append(FaceBox(box=(float(x0), float(y0), float(x1), float(y1)), score=score, keypoints=kps))
    faces.sort(key=lambda f: -f.score)
    return faces


@dataclass(frozen=True)
class SearchConfig:
    """How :func:`find_faces` looks for the faces one short-range pass misses (small faces in large photos;
    measurements: docs/predict.md, "Finding faces").

    full_range: run the full-range model (``model_selection=1``) on the whole photo.
    tile_above: a photo whose longer side is above this (px) is also searched in overlapping square tiles.
    tile_size, tile_frac: a tile's side in px, ``max(tile_size, tile_frac * longer side)``; tile_step: tile spacing
    as a fraction of the side; tile_min_score: a tile's detections scoring below it are dropped; tile_margin: a
    tile's detection within this fraction of the side of an inner tile edge is dropped (a cut face).
    same_face: boxes sharing more than this fraction of the smaller one's area are one face (the whole-photo
    detection kept, then the higher score)."""

    full_range: bool = True
    tile_above: int = 960
    tile_size: int = 640
    tile_frac: float = 0.16
    tile_step: float = 0.5
    tile_min_score: float = 0.7
    tile_margin: float = 0.02
    same_face: float = 0.5

    def __post_init__(self) -> None:
        check_fraction(self, "tile_step", low_open=True)
        check_int(self, "tile_size", low=64, unit="px")


def _starts(length: int, side: int, step: int) -> list[int]:
    """Tile starts along one axis: every ``step`` px, the last tile ending at the photo's edge."""
    if length <= side:
        return [0]
    starts = list(range(0, length - side + 1, step))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def search_tiles(height: int, width: int, search: SearchConfig = SearchConfig()) -> list[tuple[int, int, int, int]]:
    """The tiles (x0, y0, x1, y1), px, end exclusive, that :func:`find_faces` searches in a photo of this size
    ([] when its longer side is at most ``search.tile_above``)."""
    longer = max(height, width)
    if longer <= search.tile_above:
        return []
    side = max(int(search.tile_size), int(round(search.tile_frac * longer)))
    step = max(1, int(round(side * search.tile_step)))
    return [(x, y, min(x + side, width), min(y + side, height))
            for y in _starts(height, side, step) for x in _starts(width, side, step)]


def _in_tile(face: FaceBox, tile: tuple[int, int, int, int], height: int, width: int, margin: float) -> FaceBox | None:
    """A face found in ``tile`` (tile px) -> photo px, or None when it reaches an edge of the tile inside the photo."""
    x0, y0, x1, y1 = tile
    m = margin * max(x1 - x0, y1 - y0)
    bx0, by0, bx1, by1 = face.box
    if (x0 > 0 and bx0 < m) or (y0 > 0 and by0 < m) or (x1 < width and bx1 > x1 - x0 - m) or \
            (y1 < height and by1 > y1 - y0 - m):
        return None
    return FaceBox(box=(bx0 + x0, by0 + y0, bx1 + x0, by1 + y0), score=face.score,
                   keypoints=tuple((kx + x0, ky + y0) for kx, ky in face.keypoints))


def _overlap(a: FaceBox, b: FaceBox) -> float:
    """Shared area of two boxes / the smaller box's area."""
    ix = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
    iy = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / max(min(a.width * a.height, b.width * b.height), 1e-9)


def _merged(kept: list[FaceBox], new: list[FaceBox], same_face: float) -> list[FaceBox]:
    """``kept`` plus each of ``new`` (best score first) that is not a face already kept."""
    kept = list(kept)
    for f in sorted(new, key=lambda f: -f.score):
        if all(_overlap(f, k) <= same_face for k in kept):
            kept.append(f)
    return kept


def find_faces(image_rgb: np.ndarray, config: DetectConfig = DetectConfig(),
               search: SearchConfig | None = SearchConfig(), thorough: bool = False,
               detector: Callable[[np.ndarray, DetectConfig], list[FaceBox]] | None = None) -> list[FaceBox]:
    """Faces in an (H, W, 3) uint8 RGB photo, best score first, looking harder than one pass (:class:`SearchConfig`).

    The first pass is ``detector(image, config)`` (default :func:`detect_faces`). Unless ``thorough``, the search
    stops at the first pass that finds a face; with it all passes run and their faces are merged: the full-range
    model, then, above ``search.tile_above``, tiles. ``search=None``: the first pass only. ``config.min_size_frac``
    applies to the photo's shorter side in every pass."""
    detect = detect_faces if detector is None else detector
    image_rgb = _check_image(image_rgb)
    faces = detect(image_rgb, config)
    if search is None or (faces and not thorough):
        return faces
    h, w = image_rgb.shape[:2]
    if search.full_range and config.model_selection != 1:
        faces = _merged(faces, detect(image_rgb, replace(config, model_selection=1)), search.same_face)
        if faces and not thorough:
            return faces
    tiles = search_tiles(h, w, search)
    if not tiles:
        return sorted(faces, key=lambda f: -f.score)
    in_tiles: list[FaceBox] = []
    tile_config = replace(config, min_size_frac=0.0)  # the same detector object as the first pass
    for tile in tiles:
        x0, y0, x1, y1 = tile
        for f in detect(image_rgb[y0:y1, x0:x1], tile_config):
            g = _in_tile(f, tile, h, w, search.tile_margin)
            if g is not None and g.score >= search.tile_min_score and \
                    max(g.width, g.height) >= config.min_size_frac * min(h, w):
                in_tiles.append(g)
    return sorted(_merged(faces, in_tiles, search.same_face), key=lambda f: -f.score)


@lru_cache(maxsize=1)
def _haar_cascade():
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"{path}: OpenCV Haar cascade could not be loaded")
    return cascade


def detect_faces_haar(image_rgb: np.ndarray, min_neighbors: int = 5, min_size: int = 30) -> list[FaceBox]:
    """OpenCV's bundled frontal-face Haar cascade (kept for the recall comparison; score is 1)."""
    import cv2

    image_rgb = _check_image(image_rgb)
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    rects = _haar_cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=min_neighbors,
                                             minSize=(min_size, min_size))
    return [FaceBox(box=(float(x), float(y), float(x + w), float(y + h)), score=1.0) for (x, y, w, h) in rects]

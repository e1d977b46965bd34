"""Face detection on RGB photos (shared by ``prepare`` and ``predict``).

The default detector is MediaPipe's short-range BlazeFace (``mp.solutions.face_detection``),
bundled in the ``mediapipe`` wheel: no download. It was chosen over OpenCV's bundled Haar
cascade by measured recall on LFW (see ``docs/data_prep.md`` and
``python tools/detector_recall.py``). Detector objects are created once per process and
cached, because creating them costs far more than one detection.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
import numpy as np

from meshing.fileio import native_stderr_silenced
from meshing.lazy_modules import import_deferring

__all__ = ["DetectConfig", "FaceBox", "detect_faces", "detect_faces_haar", "native_stderr_silenced", "import_mediapipe"]


@dataclass(frozen=True)
class DetectConfig:
    """Face detector settings.

    min_score: detection confidence threshold in [0, 1]: detections scoring below it are dropped. Applied by
        :func:`detect_faces` itself, because MediaPipe 0.10.21 ignores its own ``min_detection_confidence``.
    model_selection: 0 = short-range model (faces within ~2 m, e.g. LFW, portraits), 1 = full-range.
    min_size_frac: boxes whose longer side is below this fraction of the image's shorter side are
        ignored (tiny background faces are not "a second face" a label could be confused with).
    """

    min_score: float = 0.5
    model_selection: int = 0
    min_size_frac: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:  # also refuses NaN
            raise ValueError(f"DetectConfig.min_score must be a confidence in [0, 1], got {self.min_score}")


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
    (:func:`meshing.lazy_modules.import_deferring`; ~0.5 s of a one-photo run)."""
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

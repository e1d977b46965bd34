"""A Predictor whose detector is replaced: bright images hold one face at FACE_BOX, others none (MediaPipe's
detector does not fire on generated images; the per-face path then runs on known maps)."""
from __future__ import annotations

from facevision.face.detect import FaceBox
from facevision.predict.predictor import Predictor

FACE_BOX = (30.0, 40.0, 130.0, 150.0)


class StubDetector(Predictor):
    """Bright images have one face at FACE_BOX; others none."""

    def detect(self, image_rgb, all_faces=None):
        return [FaceBox(box=FACE_BOX, score=0.9)] if image_rgb.mean() > 100 else []

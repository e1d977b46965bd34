"""facevision.face.detect: the score threshold is ours (MediaPipe 0.10.21 ignores min_detection_confidence) and checked.

MediaPipe is replaced by a fake whose detections have known scores and boxes: the filter is tested without relying on
what the real detector scores.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import facevision.face.detect as detect
from facevision.face.detect import DetectConfig, detect_faces


def _detection(score: float, xmin: float) -> SimpleNamespace:
    """A MediaPipe-like detection: relative box (xmin, 0.1, 0.2 x 0.3), two keypoints."""
    box = SimpleNamespace(xmin=xmin, ymin=0.1, width=0.2, height=0.3)
    kps = [SimpleNamespace(x=xmin + 0.05, y=0.2), SimpleNamespace(x=xmin + 0.15, y=0.2)]
    return SimpleNamespace(score=[score], location_data=SimpleNamespace(relative_bounding_box=box,
                                                                        relative_keypoints=kps))


@pytest.fixture
def fake_detector(monkeypatch) -> list[tuple[float, int]]:
    """Every image holds four faces scoring 0.30, 0.55, 0.62 and 0.89 (whatever threshold the detector is given, as
    MediaPipe 0.10.21 does); returns the (min_score, model_selection) each detector was asked for."""
    asked: list[tuple[float, int]] = []
    result = SimpleNamespace(detections=[_detection(s, x) for s, x in ((0.55, 0.0), (0.89, 0.2), (0.30, 0.4),
                                                                        (0.62, 0.6))])

    def make(min_score: float, model_selection: int) -> SimpleNamespace:
        asked.append((min_score, model_selection))
        return SimpleNamespace(process=lambda image: result)

    monkeypatch.setattr(detect, "_mediapipe_detector", make)
    return asked


@pytest.mark.parametrize("min_score,kept", [(0.0, [0.89, 0.62, 0.55, 0.30]), (0.5, [0.89, 0.62, 0.55]),
                                            (0.6, [0.89, 0.62]), (0.8, [0.89]), (0.89, [0.89]), (1.0, [])])
def test_detections_below_min_score_are_dropped(fake_detector, min_score, kept):
    faces = detect_faces(np.zeros((100, 200, 3), np.uint8), DetectConfig(min_score=min_score))
    assert [f.score for f in faces] == pytest.approx(kept)
    assert fake_detector == [(min_score, 0)]


def test_kept_detections_keep_their_boxes_and_keypoints(fake_detector):
    faces = detect_faces(np.zeros((100, 200, 3), np.uint8), DetectConfig(min_score=0.8))
    assert len(faces) == 1
    assert faces[0].box == pytest.approx((40.0, 10.0, 80.0, 40.0))  # xmin 0.2 x 200 px, ymin 0.1 x 100 px
    assert np.allclose(faces[0].keypoints, [(49.5, 19.5), (69.5, 19.5)])  # pixel centres at integer coordinates


@pytest.mark.parametrize("bad", [-0.1, 1.5, 2.0, float("nan")])
def test_min_score_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="min_score"):
        DetectConfig(min_score=bad)

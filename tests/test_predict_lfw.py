"""``facevision predict`` on real LFW photos (needs $FACEVISION_LFW_ROOT; the nose test needs the shipped checkpoint)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facevision.face.crop import original_to_crop
from facevision.cli import main
from facevision.predict.predictor import checkpoint_candidates

PHOTOS = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Guiel/Aaron_Guiel_0001.jpg"]
NOSE_TIP_MEDIAPIPE = 4  # iBUG point 30


def _photos(lfw_root: Path) -> list[Path]:
    paths = [lfw_root / p for p in PHOTOS]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"LFW photos missing under {lfw_root}: {missing[0]}")
    return paths


def test_predict_real_photos_end_to_end(lfw_root, random_checkpoint, tmp_path, capsys):
    from PIL import Image

    photos = _photos(lfw_root)
    big = tmp_path / "big_photo.jpg"  # a very large photo: the crop box scales with it
    Image.open(photos[0]).resize((2000, 2000)).save(big)
    photos = photos + [big]
    out = tmp_path / "out"
    args = ["predict", *map(str, photos), "-o", str(out), "--checkpoint", str(random_checkpoint), "--no-mesh",
            "--batch-size", "2", "-q"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"ok": 4, "failed": 0, "skipped": 0}
    for p in photos:
        d = out / p.stem / "face0"
        res = json.loads((d / "result.json").read_text())
        x0, y0, x1, y1 = res["crop_box"]
        bx0, by0, bx1, by1 = res["bbox"]
        assert x0 <= bx0 < bx1 <= x1 and y0 <= by0 < by1 <= y1  # the crop contains the detection
        side = 2000 if p == big else 250  # LFW photos are 250 x 250, face near the centre
        assert 0.1 * side < bx0 < bx1 < 0.9 * side and 0.1 * side < by0 < by1 < 0.9 * side
        lm = np.array(res["landmarks68"])
        assert lm.shape == (68, 2) and np.all((lm >= [x0 - 0.5, y0 - 0.5]) & (lm <= [x1 - 0.5, y1 - 0.5]))
        assert {"detect", "crop", "network", "landmarks", "pose"} <= set(res["timings_ms"])
    capsys.readouterr()
    assert main(args) == 0
    assert json.loads((out / "summary.json").read_text())["counts"]["skipped"] == 4
    small, large = (json.loads((out / q.stem / "face0" / "result.json").read_text()) for q in (photos[0], big))
    assert np.allclose(np.array(large["crop_box"]) / 8, small["crop_box"], atol=3)  # same face, 8x the pixels


def test_shipped_checkpoint_depth_peaks_at_the_nose(lfw_root):
    from scipy.ndimage import gaussian_filter

    from facevision.face.images import read_photo
    from data_prep.landmarks import face_mesh_landmarks
    from facevision import Predictor

    ckpt = next((p for p in checkpoint_candidates() if p.is_file()), None)
    if ckpt is None:
        pytest.skip(f"shipped checkpoint not found at {checkpoint_candidates()[-1]} (not trained/committed yet)")
    p = Predictor.from_pretrained(ckpt, device="cpu")
    for path in _photos(lfw_root):
        image = read_photo(path)
        faces = p(image)
        assert len(faces) == 1 and faces[0].ok, path
        f = faces[0]
        mp = face_mesh_landmarks(image)
        assert mp, f"{path}: MediaPipe Face Mesh found no face"
        nose = original_to_crop(mp[0][NOSE_TIP_MEDIAPIPE, :2], f.crop_box, p.size)  # (x, y) crop px
        depth = gaussian_filter(f.depth_px, 1.0) * f.mask
        row, col = np.unravel_index(np.argmax(depth), depth.shape)
        assert np.hypot(col - nose[0], row - nose[1]) < 0.08 * p.size, (path, (col, row), nose)
        ours = original_to_crop(f.landmarks68[30], f.crop_box, p.size)
        assert np.hypot(*(ours - nose)) < 0.08 * p.size, (path, ours, nose)
        assert abs(f.pose.yaw) < 45 and abs(f.pose.roll) < 30  # LFW faces are roughly frontal and upright


def test_pose_of_labelled_lfw_faces_is_near_frontal(lfw_root):
    """MediaPipe-labelled maps of roughly frontal LFW photos: the pose reads near 0 after the reference tilt."""
    from facevision.face.images import read_photo
    from data_prep.label_mediapipe import label_photo
    from facevision.maps.pose import PoseConfig, pose_from_maps

    angles, raw_pitch = [], []
    for path in _photos(lfw_root):
        s = label_photo(read_photo(path)).sample
        p = pose_from_maps(s.depth, s.corr, s.mask)
        angles.append((p.yaw, p.pitch, p.roll))
        raw_pitch.append(pose_from_maps(s.depth, s.corr, s.mask, config=PoseConfig(reference_pitch_deg=0)).pitch)
    angles = np.array(angles)
    assert np.all(np.abs(angles[:, 0]) < 20) and np.all(np.abs(angles[:, 2]) < 10)
    assert abs(angles[:, 1].mean()) < 8 < abs(np.mean(raw_pitch))  # without the correction: tilted


@pytest.mark.lfw
@pytest.mark.parametrize("tilt", [-35.0, 30.0])
def test_upright_crop_follows_a_tilted_head(lfw_root, tilt):
    """Turn a real photo by a known angle: the crop turns with it (eyes level again), the landmarks land on the
    turned photo where the upright photo's landmarks go, and the roll changes by the tilt."""
    import cv2

    from facevision.face.images import read_photo
    from facevision.predict.predictor import PredictConfig, Predictor

    path = _photos(lfw_root)[0]
    photo = read_photo(path)
    h, w = photo.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), tilt, 1.0)  # counter-clockwise as seen for tilt > 0
    turned = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR)
    p = Predictor.from_pretrained(config=PredictConfig(mesh=None))
    a, b = p(photo)[0], p(turned)[0]
    assert b.crop_angle == pytest.approx(a.crop_angle - tilt, abs=6.0)  # BlazeFace eye keypoints are coarse
    moved = a.landmarks68 @ m[:, :2].T + m[:, 2]
    iod = np.linalg.norm(a.landmarks68[36:42].mean(0) - a.landmarks68[42:48].mean(0))
    assert np.median(np.linalg.norm(b.landmarks68 - moved, axis=1)) < 0.15 * iod
    assert b.pose.roll - a.pose.roll == pytest.approx(tilt, abs=5.0)
    assert abs(b.pose.yaw - a.pose.yaw) < 5.0 and abs(b.pose.pitch - a.pose.pitch) < 15.0

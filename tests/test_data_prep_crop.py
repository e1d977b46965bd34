"""Square crop boxes, zero padding and the point mapping between crop and photo pixels."""
from __future__ import annotations

import numpy as np
import pytest

from facevision.face.crop import (CropConfig, crop_image, crop_matrix, crop_to_original, face_crop, original_to_crop,
                                  square_crop_box, upright_angle)


def test_square_crop_box_is_square_and_centred():
    cfg = CropConfig(size=128, margin=1.4, shift_y=-0.05)
    box = square_crop_box((100.0, 80.0, 200.0, 180.0), cfg)
    assert all(isinstance(v, int) for v in box)
    assert box[2] - box[0] == box[3] - box[1] == 140
    assert (box[0] + box[2]) / 2 == pytest.approx(150, abs=1)
    assert (box[1] + box[3]) / 2 == pytest.approx(130 - 5, abs=1)
    with pytest.raises(ValueError):
        square_crop_box((5, 5, 5, 10), cfg)


def test_crop_pads_outside_with_zeros():
    img = np.full((50, 60, 3), 200, np.uint8)
    out = crop_image(img, (-10, -10, 30, 30), 40)
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    assert (out[:10] == 0).all() and (out[:, :10] == 0).all() and (out[10:, 10:] == 200).all()


@pytest.mark.parametrize("box,size", [((20, 10, 80, 70), 128), ((5, -20, 205, 180), 64), ((30, 30, 94, 94), 64)])
def test_point_mapping_matches_crop_pixels(box, size):
    img = np.zeros((160, 200, 3), np.uint8)
    # a smooth bump; its peak must land where original_to_crop says
    yy, xx = np.mgrid[:160, :200]
    px, py = 57.0, 44.0
    img[..., 0] = np.clip(255 * np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * 6.0 ** 2)), 0, 255).astype(np.uint8)
    crop = crop_image(img, box, size)
    cx, cy = original_to_crop(np.array([[px, py]]), box, size)[0]
    # intensity-weighted centroid of the bump in the crop
    w = crop[..., 0].astype(np.float64)
    cyy, cxx = np.mgrid[:size, :size]
    assert (w * cxx).sum() / w.sum() == pytest.approx(cx, abs=0.3)
    assert (w * cyy).sum() / w.sum() == pytest.approx(cy, abs=0.3)


def test_mapping_round_trip_and_depth_scaling():
    pts = np.random.default_rng(0).uniform(-50, 300, (20, 3))
    box = (13, -7, 213, 193)
    c = original_to_crop(pts, box, 128)
    assert c[:, 2] == pytest.approx(pts[:, 2] * 128 / 200)
    assert crop_to_original(c, box, 128) == pytest.approx(pts)


def test_crop_matrix_without_angle_is_the_box_mapping():
    box, size = (13, -7, 213, 193), 128
    pts = np.random.default_rng(1).uniform(-50, 300, (10, 2))
    m = crop_matrix(box, size)
    assert pts @ m[:, :2].T + m[:, 2] == pytest.approx(original_to_crop(pts, box, size))


@pytest.mark.parametrize("angle", [25.0, -60.0, 90.0])
def test_turned_crop_puts_points_where_the_mapping_says(angle):
    img = np.zeros((240, 260, 3), np.uint8)
    yy, xx = np.mgrid[:240, :260]
    box, size = (40, 30, 220, 210), 64
    rng = np.random.default_rng(int(angle) + 100)
    for px, py in rng.uniform(90, 170, (3, 2)):
        img[..., 0] = np.clip(255 * np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * 8.0 ** 2)), 0, 255).astype(np.uint8)
        crop = crop_image(img, box, size, angle)
        cx, cy = original_to_crop(np.array([[px, py]]), box, size, angle)[0]
        w = crop[..., 0].astype(np.float64)
        cyy, cxx = np.mgrid[:size, :size]
        assert (w * cxx).sum() / w.sum() == pytest.approx(cx, abs=0.3)
        assert (w * cyy).sum() / w.sum() == pytest.approx(cy, abs=0.3)
    pts = rng.uniform(-50, 300, (7, 3))
    assert crop_to_original(original_to_crop(pts, box, size, angle), box, size, angle) == pytest.approx(pts)


def test_upright_angle_levels_the_eyes():
    # subject's right eye on the image left, 20 deg clockwise tilt as seen (left eye lower)
    a = upright_angle((100.0, 100.0), (100.0 + 50 * np.cos(np.radians(20)), 100.0 + 50 * np.sin(np.radians(20))))
    assert a == pytest.approx(20.0)
    box, angle = face_crop((80.0, 70.0, 180.0, 170.0), [(100.0, 100.0), (147.0, 117.1)], CropConfig())
    eyes = original_to_crop(np.array([[100.0, 100.0], [147.0, 117.1]]), box, 128, angle)
    assert eyes[0, 1] == pytest.approx(eyes[1, 1], abs=1e-6) and eyes[1, 0] > eyes[0, 0]
    assert face_crop((80.0, 70.0, 180.0, 170.0), None, CropConfig())[1] == 0.0
    assert face_crop((80.0, 70.0, 180.0, 170.0), [(0, 0), (1, 1)], CropConfig(upright=False))[1] == 0.0


def test_upright_turn_fades_out_for_turned_away_faces():
    cfg = CropConfig()
    box = (100.0, 100.0, 200.0, 200.0)  # width 100
    tilt = np.radians(20.0)
    eyes = lambda d: [(130.0, 140.0), (130.0 + d * np.cos(tilt), 140.0 + d * np.sin(tilt))]  # noqa: E731
    assert face_crop(box, eyes(41.0), cfg)[1] == pytest.approx(20.0)  # frontal: eye distance 0.41 x width
    assert face_crop(box, eyes(15.0), cfg)[1] == 0.0  # profile: keypoints unsure, no turn
    half = 0.5 * (cfg.upright_full_ratio + cfg.upright_none_ratio) * 100
    assert face_crop(box, eyes(half), cfg)[1] == pytest.approx(10.0)


def test_crop_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match=r"CropConfig\.margin must be > 0, got 0"):
        CropConfig(margin=0)
    with pytest.raises(ValueError, match=r"upright_none_ratio 0\.4, upright_full_ratio 0\.3"):
        CropConfig(upright_none_ratio=0.4, upright_full_ratio=0.3)

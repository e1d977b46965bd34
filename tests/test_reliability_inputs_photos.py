"""Reliability II: large and unusual photos. JPEGs above Pillow's decompression-bomb limit are decoded reduced
(the limit applies to the size they decode to); other formats that large are refused in one line; 16-bit
photos are converted with integer arithmetic; the number of frames is reported. Memory: test_bench_memory.py."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from facevision.face.images import ImageReadError, read_photo, read_photo_scaled

LIMIT = 500_000  # PIL.Image.MAX_IMAGE_PIXELS in these tests: Pillow refuses images above 2 x LIMIT pixels


@pytest.fixture()
def small_bomb_limit(monkeypatch):
    """A 1,000,000-pixel decompression-bomb limit, so that a 1600 x 1200 photo stands for a 200-megapixel one."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT)


def _halves(w: int, h: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[:, w // 2:] = (40, 40, 200)
    return img


def test_jpeg_above_the_bomb_limit_is_decoded_reduced(tmp_path, small_bomb_limit):
    """A camera JPEG above the limit (as a 200-MP 16320 x 12240 one is above Pillow's 179 MP) is read under a pixel
    budget: decoded at 1/2 (libjpeg), so it never exists at full size, and the result is right."""
    path = tmp_path / "camera.jpg"
    Image.fromarray(_halves(1600, 1200)).save(path, quality=90)
    p = read_photo_scaled(path, max_pixels=300_000)
    h, w = p.image.shape[:2]
    assert h * w <= 300_000 and p.original_size == (1600, 1200) and abs(w / h - 4 / 3) < 0.01
    assert np.allclose(p.image[h // 2, w // 4], (200, 40, 40), atol=6)
    assert np.allclose(p.image[h // 2, 3 * w // 4], (40, 40, 200), atol=6)
    # at full size it would decode to 1.92 MP > 1 MP: refused in one line that says how to read it
    with pytest.raises(ImageReadError) as exc:
        read_photo(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: 1600 x 1200 JPEG is too large to decode") and "pixel limit" in msg
    assert "\n" not in msg and "bomb" not in msg[len(str(path)):]


def test_other_formats_above_the_bomb_limit_are_refused_in_one_line(tmp_path, small_bomb_limit):
    path = tmp_path / "scan.png"
    Image.fromarray(_halves(1600, 1200)).save(path)
    with pytest.raises(ImageReadError) as exc:
        read_photo_scaled(path, max_pixels=300_000)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: image is too large to decode (1,920,000 pixels > 1,000,000)"), msg
    assert "only JPEG" in msg and "\n" not in msg and "bomb" not in msg[len(str(path)):]


def test_16bit_photos_are_converted_exactly_in_strips(tmp_path, monkeypatch):
    """16-bit gray and colour with alpha, read a few rows at a time (tiny strips), reduced by a block factor: the
    same as rounding the float conversion of the whole image, then area-resampling it."""
    import facevision.face.images

    monkeypatch.setattr(facevision.face.images, "_STRIP_PIXELS", 100)  # 2 or 3 rows per strip
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 65536, (41, 37), dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_photo(tmp_path / "g16.png")[..., 0], np.round(gray / 257.0))

    rgba = rng.integers(0, 256, (40, 36, 4), dtype=np.uint16) * 257  # high byte = low byte: exact at 8 bits
    cv2.imwrite(str(tmp_path / "rgba16.png"), rgba[..., [2, 1, 0, 3]])
    want = np.floor(rgba[..., :3] / 257.0 * (rgba[..., 3:] / 65535.0) + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(read_photo(tmp_path / "rgba16.png"), want)
    small = read_photo_scaled(tmp_path / "rgba16.png", max_pixels=300).image  # 2 x 2 blocks, then area
    ref = cv2.resize(cv2.resize(want, (18, 20), interpolation=cv2.INTER_AREA), small.shape[1::-1],
                     interpolation=cv2.INTER_AREA)
    assert small.shape[0] * small.shape[1] <= 300 and np.abs(small.astype(int) - ref).max() <= 1


def test_frames_of_animations_and_multipage_files_are_counted(tmp_path):
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "pages.tiff", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "one.png")
    for name, n in (("anim.gif", 3), ("pages.tiff", 3), ("one.png", 1)):
        p = read_photo_scaled(tmp_path / name)
        assert p.frames == n and p.image[0, 0].tolist() == [255, 0, 0], name  # the first frame

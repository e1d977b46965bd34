"""Issue "Reliability II" item 6a, small faces: the short-range detector misses faces under ~10 % of the photo's
width; ``predict`` now looks again with the full-range model and in overlapping tiles of large photos
(``facevision.face.detect.find_faces``), only when the first pass finds nothing unless every face is wanted.

The tiling arithmetic runs on a stand-in detector that, like the short-range model, only sees squares of at least
10 % of its input (coordinates known exactly); the recall on real faces pastes LFW photos on generated canvases
(skipped without ``FACEVISION_LFW_ROOT``).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facevision.face.detect import DetectConfig, FaceBox, SearchConfig, detect_faces, find_faces, search_tiles
from facevision.face.images import read_photo
from facevision.predict.predictor import PredictConfig, Predictor
from support.synthetic import fixed_maps_model, render_reference


# ----------------------------------------------------------------------------- stand-in detector: exact geometry
class SquareDetector:
    """Finds white squares (value 255) of at least ``min_frac`` of the longer side of the image it is given, as
    the short-range model finds faces of at least ~10 % of the photo; counts its calls per model."""

    def __init__(self, min_frac: float = 0.1) -> None:
        self.min_frac = min_frac
        self.calls: list[tuple[int, tuple[int, int]]] = []

    def __call__(self, image: np.ndarray, config: DetectConfig) -> list[FaceBox]:
        self.calls.append((config.model_selection, image.shape[:2]))
        frac = self.min_frac * (0.6 if config.model_selection == 1 else 1.0)  # full range: smaller faces
        n, labels, stats, _ = cv2.connectedComponentsWithStats((image[..., 0] == 255).astype(np.uint8), 4)
        faces = []
        for x, y, w, h, _area in stats[1:]:
            if max(w, h) >= frac * max(image.shape[:2]):
                faces.append(FaceBox((float(x), float(y), float(x + w), float(y + h)), 0.9,
                                     ((x + 0.3 * w, y + 0.4 * h), (x + 0.7 * w, y + 0.4 * h))))
        return faces


def _canvas(h: int, w: int, squares: list[tuple[int, int, int]]) -> np.ndarray:
    img = np.full((h, w, 3), 90, np.uint8)
    for x, y, s in squares:
        img[y:y + s, x:x + s] = 255
    return img


def test_tiles_cover_the_photo_and_hold_every_face_up_to_half_a_tile_whole():
    search = SearchConfig()
    for h, w in [(3000, 4000), (1000, 1000), (1250, 1500), (7300, 5500), (961, 400)]:
        tiles = search_tiles(h, w, search)
        side = max(search.tile_size, round(search.tile_frac * max(h, w)))
        m = search.tile_margin * side
        covered = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in tiles:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and max(x1 - x0, y1 - y0) <= side
            covered[y0:y1, x0:x1] = True
        assert covered.all()
        rng = np.random.default_rng(h)
        for _ in range(300):  # any box up to half a tile (less the margins) lies whole, clear of cut edges, in a tile
            s = int(rng.integers(8, side // 2 - 2 * m))
            x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
            assert any((x0 == 0 or x - x0 >= m) and (y0 == 0 or y - y0 >= m) and (x1 == w or x1 - x - s >= m)
                       and (y1 == h or y1 - y - s >= m) and x0 <= x and y0 <= y and x + s <= x1 and y + s <= y1
                       for x0, y0, x1, y1 in tiles), (h, w, x, y, s)
    assert search_tiles(900, 960, search) == []  # not above tile_above: no tiles


def test_small_faces_are_found_in_tiles_in_photo_pixels():
    squares = [(100, 120, 150), (2000, 1500, 200), (3650, 2700, 120), (600, 2100, 220)]  # 3-5.5 % of 4000 px
    img = _canvas(3000, 4000, squares)
    assert SquareDetector()(img, DetectConfig()) == []  # the first pass alone finds none of them (before: "no face")
    det = SquareDetector()
    faces = find_faces(img, detector=det)
    got = sorted(tuple(round(v) for v in f.box) for f in faces)
    assert got == sorted((x, y, x + s, y + s) for x, y, s in squares)  # each once, in photo pixels
    for f in faces:  # keypoints moved with their box
        assert f.box[0] < f.keypoints[0][0] < f.keypoints[1][0] < f.box[2]
    assert [m for m, _ in det.calls[:2]] == [0, 1] and len(det.calls) > 2  # full range on the photo, then tiles
    assert sorted(tuple(f.box) for f in find_faces(img, detector=det, thorough=True)) == \
        sorted(tuple(f.box) for f in faces)


def test_a_photo_whose_face_the_first_pass_finds_costs_one_pass():
    img = _canvas(3000, 4000, [(1000, 800, 1200), (3800, 2800, 100)])
    det = SquareDetector()
    faces = find_faces(img, detector=det)
    assert len(det.calls) == 1 and [tuple(f.box) for f in faces] == [(1000.0, 800.0, 2200.0, 2000.0)]
    det.calls.clear()
    everything = find_faces(img, detector=det, thorough=True)  # every face wanted: all passes, merged
    assert len(det.calls) > 2 and len(everything) == 2  # the big face once, though tiles saw parts of it
    det.calls.clear()
    assert len(find_faces(img, search=None, detector=det, thorough=True)) == 1 and len(det.calls) == 1


def test_full_range_fallback_without_tiles_on_a_small_photo():
    img = _canvas(600, 800, [(300, 200, 60)])  # 7.5 % of 800: only the full-range stand-in sees it
    det = SquareDetector()
    faces = find_faces(img, detector=det)
    assert [tuple(f.box) for f in faces] == [(300.0, 200.0, 360.0, 260.0)]
    assert [m for m, _ in det.calls] == [0, 1]  # no tiles below tile_above


def test_predictor_counts_the_faces_it_leaves_out(monkeypatch):
    import facevision.predict.predictor as pp

    det = SquareDetector()
    monkeypatch.setattr(pp, "detect_faces", det)
    f = render_reference(128)
    p = Predictor(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(mesh=None))
    img = _canvas(1200, 1600, [(100, 100, 400), (900, 300, 300), (1300, 900, 200)])
    one = p.detect(img)
    assert [tuple(f.box) for f in one] == [(100.0, 100.0, 500.0, 500.0)] and one.found == 3
    every = p.detect(img, all_faces=True)
    assert len(every) == every.found == 3 and every[0].box == one[0].box  # largest first


# ----------------------------------------------------------------------------- real faces: LFW on canvases
def _people(root: Path, n: int, seed: int) -> list[np.ndarray]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    pick = np.random.default_rng(seed).choice(len(dirs), n, replace=False)
    return [read_photo(sorted(dirs[i].glob("*.jpg"))[0]) for i in pick]


def _tiled(root: Path, n: int, cols: int, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """``n`` LFW photos (250 px, their person at the centre) side by side: a group photo of small faces."""
    rows = -(-n // cols)
    img = np.full((rows * 250, cols * 250, 3), 128, np.uint8)
    centres = []
    for k, photo in enumerate(_people(root, n, seed)):
        r, c = divmod(k, cols)
        img[r * 250:(r + 1) * 250, c * 250:(c + 1) * 250] = photo
        centres.append((c * 250 + 125.0, r * 250 + 125.0))
    return img, centres


def _hits(faces, centres) -> int:
    """Centres (each LFW photo's person) inside a face box, each box used once."""
    used: set[int] = set()
    for cx, cy in centres:
        for i, f in enumerate(faces):
            if i not in used and f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3]:
                used.add(i)
                break
    return len(used)


@pytest.fixture(scope="module")
def lfw_predictor():
    f = render_reference(128)
    return Predictor(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(mesh=None))


def test_tiled_lfw_faces_are_found_with_all_faces(lfw_root, lfw_predictor):
    img, centres = _tiled(lfw_root, 30, 6)  # 1500 x 1250, faces ~7 % of the width: one pass found 1 of 30
    faces = lfw_predictor.detect(img, all_faces=True)
    assert _hits(faces, centres) >= 27 and faces.found == len(faces)
    img, centres = _tiled(lfw_root, 16, 4, seed=1)  # 1000 x 1000: one pass found 3 of 16
    assert _hits(lfw_predictor.detect(img, all_faces=True), centres) >= 14


def test_one_small_face_in_a_large_photo_is_found_by_default(lfw_root, lfw_predictor):
    rng = np.random.default_rng(0)
    canvas = cv2.GaussianBlur(np.clip(rng.normal(128, 20, (3000, 4000, 3)), 0, 255).astype(np.uint8), (0, 0), 3)
    for seed in (0, 1):
        photo = canvas.copy()
        person = cv2.resize(_people(lfw_root, 1, seed)[0], (340, 340), interpolation=cv2.INTER_AREA)  # face ~150 px
        photo[900:1240, 2500:2840] = person
        assert detect_faces(photo) == [] and detect_faces(photo, DetectConfig(model_selection=1)) == []
        faces = lfw_predictor.detect(photo)  # was: [] ("no face detected")
        assert len(faces) == 1 and faces.found == 1
        x0, y0, x1, y1 = faces[0].box
        assert x0 < 2670 < x1 and y0 < 1070 < y1 and 100 < x1 - x0 < 220

"""``python tools/overlay_figure.py PHOTO... -o FIGURE.jpg``: the README's overlay figure.

Each photo's ``overlay.jpg`` (:func:`facevision.predict.overlay.draw_overlay`: fitted mesh blended in, landmarks
visible / hidden, pose axes), made by the prediction pipeline itself, side by side at one height.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from facevision.face.images import atomic_write_png, read_photo
from facevision.predict.overlay import draw_overlay, encode_jpeg
from facevision.predict.predictor import Predictor
from facevision.common.fileio import atomic_write_bytes


def side_by_side(tiles: list[np.ndarray], axis: int = 1, gap: int = 4) -> np.ndarray:
    """Tiles of one height (axis 1) or one width (axis 0) joined with ``gap`` px of white between them."""
    shape = list(tiles[0].shape)
    shape[axis] = gap
    white = np.full(shape, 255, np.uint8)
    return np.concatenate([t for tile in tiles for t in (tile, white)][:-1], axis=axis)


def write_figure(path: str, figure: np.ndarray) -> None:
    """JPEG (quality 88) for a .jpg/.jpeg path, else PNG; written atomically."""
    if path.lower().endswith((".jpg", ".jpeg")):
        atomic_write_bytes(path, encode_jpeg(figure, 88))
    else:
        atomic_write_png(path, figure)


def overlay_figure(predictor: Predictor, photos: list[str], height: int = 250) -> np.ndarray:
    """The photos' overlays (every face each), each scaled to ``height`` px, side by side with 4 px gaps."""
    tiles = []
    for path in photos:
        image = read_photo(path)
        ov = draw_overlay(image, predictor(image, all_faces=True))
        tiles.append(cv2.resize(ov, (round(ov.shape[1] * height / ov.shape[0]), height), interpolation=cv2.INTER_AREA))
    return side_by_side(tiles)


def figure_args(doc: str) -> argparse.Namespace:
    """The README figure tools' command line, ``PHOTO... -o FIGURE``, described by the first paragraph of ``doc``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    return ap.parse_args()


def main() -> None:
    args = figure_args(__doc__)
    write_figure(args.output, overlay_figure(Predictor.from_pretrained(), args.photos))
    print(args.output)


if __name__ == "__main__":
    main()

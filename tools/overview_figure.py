"""``python tools/overview_figure.py PHOTO... -o FIGURE.png``: the README's overview figure.

One preview row per photo (photo with crop box and landmarks | crop | depth | correspondence |
shaded mesh from the front and turned 60 degrees), made by the prediction pipeline itself.
"""
from __future__ import annotations

import argparse

import numpy as np

from facevision.face.images import atomic_write_png, read_photo
from facevision.maps.visualize import corr_to_rgb, depth_to_rgb
from facevision.predict.predictor import Predictor
from facevision.predict.render import RenderConfig, preview_sheet


def overview_figure(predictor: Predictor, photos: list[str], tile: int = 160) -> np.ndarray:
    """Stack one preview row per photo (largest face each); photos without a face raise ValueError."""
    rows = []
    for k, path in enumerate(photos):
        image = read_photo(path)
        faces = predictor(image)
        if not faces or not faces[0].ok:
            raise ValueError(f"{path}: no usable face")
        f = faces[0]
        rows.append(preview_sheet(image, f.crop, depth_to_rgb(f.depth_px, f.mask), corr_to_rgb(f.corr, f.mask),
                                  f.mesh, f.crop_box, f.landmarks68, RenderConfig(tile=tile), f.crop_angle,
                                  labels=k == 0))  # panel names once, above the first row
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--tile", type=int, default=160)
    a = p.parse_args()
    figure = overview_figure(Predictor.from_pretrained(a.checkpoint), a.photos, a.tile)
    print(atomic_write_png(a.output, figure))


if __name__ == "__main__":
    main()

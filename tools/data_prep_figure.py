"""README figure: photos with their depth and correspondence labels.

``python tools/data_prep_figure.py DATASET -o docs/figures/data_prep_examples.jpg [--count 6]``
Each tile: crop | depth (gray, brighter = closer) | correspondence (u, v, w as R, G, B).
"""
from __future__ import annotations

import argparse
import random
import sys

import cv2
import numpy as np

from data_prep.dataset_format import read_manifest, read_sample
from facevision.common.fileio import atomic_write


def tile(sample) -> np.ndarray:
    d = sample.depth
    g = np.zeros(d.shape, np.uint8)
    if sample.mask.any():
        lo, hi = d[sample.mask].min(), d[sample.mask].max()
        g[sample.mask] = (40 + 215 * (d[sample.mask] - lo) / max(hi - lo, 1e-6)).astype(np.uint8)
    corr = (np.clip(sample.corr, 0, 1) * 255).astype(np.uint8)
    return np.hstack([sample.image, np.dstack([g] * 3), corr])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    m = read_manifest(args.dataset)
    samples = random.Random(args.seed).sample(m["samples"], args.count)
    tiles = [tile(read_sample(args.dataset, s["id"])) for s in samples]
    cols = 2
    rows = [np.hstack(tiles[i:i + cols] + [np.zeros_like(tiles[0])] * (cols - len(tiles[i:i + cols])))
            for i in range(0, len(tiles), cols)]
    fig = cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR)
    atomic_write(args.output, lambda p: cv2.imwrite(str(p), fig, [cv2.IMWRITE_JPEG_QUALITY, 90]))
    print(f"wrote {args.output}: {', '.join(s['id'] for s in samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

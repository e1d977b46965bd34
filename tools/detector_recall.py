"""Measure face-detector recall on LFW: ``python tools/detector_recall.py [--root R] [--count 500]``.

LFW's named person is the face at the image centre (deep-funneled 250x250 photos), so a detection
counts as a hit when its box contains the image centre. Also reports how often exactly one / more
than one face is found (what ``prepare`` keeps / drops) and the time per photo.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from facevision.face.detect import detect_faces, detect_faces_haar
from facevision.face.images import read_photo

DETECTORS = {"mediapipe": detect_faces, "opencv_haar": detect_faces_haar}


def measure(root: Path, count: int, seed: int = 0) -> dict:
    files = sorted(root.glob("*/*.jpg"))
    random.Random(seed).shuffle(files)
    files = files[:count]
    stats = {k: {"hit": 0, "one": 0, "many": 0, "none": 0, "seconds": 0.0} for k in DETECTORS}
    for f in files:
        img = read_photo(f)
        h, w = img.shape[:2]
        for name, fn in DETECTORS.items():
            t = time.perf_counter()
            faces = fn(img)
            stats[name]["seconds"] += time.perf_counter() - t
            s = stats[name]
            s["hit"] += any(b.box[0] <= w / 2 <= b.box[2] and b.box[1] <= h / 2 <= b.box[3] for b in faces)
            s["one" if len(faces) == 1 else "many" if faces else "none"] += 1
    n = len(files)
    return {"photos": n, "seed": seed, **{k: {"recall": s["hit"] / n, "exactly_one": s["one"] / n,
                                               "more_than_one": s["many"] / n, "none": s["none"] / n,
                                               "ms_per_photo": 1000 * s["seconds"] / n} for k, s in stats.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="LFW recall of MediaPipe vs OpenCV Haar face detection")
    ap.add_argument("--root", default="/work/shared/datasets/lfw/images_deepfunneled")
    ap.add_argument("--count", type=int, default=500)
    args = ap.parse_args(argv)
    print(json.dumps(measure(Path(args.root), args.count), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

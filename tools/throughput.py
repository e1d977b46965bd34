"""Throughput of ``facevision predict`` against the in-memory pipeline, measured in one run:
``python tools/throughput.py LFW_ROOT [--photos 200] [--out /tmp/fv_throughput] [-- PREDICT OPTIONS...]``.

1. In memory: the first ``--photos`` LFW photos (one per person, sorted) are read, then each goes through
   ``Predictor(image)`` (detect, crop, network, face-model fit, mesh; CPU, one network thread as the CLI
   uses with writers); the mean per photo is the reference time.
2. End to end: ``python -m facevision predict`` on a folder of links to the same photos, every default output,
   wall clock of the whole process (start-up included), then again on one photo (network cache warm).

Prints one JSON object: in-memory ms per photo, batch wall s, photos/s, ratio (wall / (N x in-memory)),
one-photo wall s, and the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lfw_root", type=Path, help="LFW images_deepfunneled folder (<Person>/<Person>_NNNN.jpg)")
    ap.add_argument("--photos", type=int, default=200, help="photos to run (default 200)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/fv_throughput"), help="work folder (emptied first)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)  # what follows "--" goes to predict, unparsed
    args = ap.parse_args(argv[:cut])
    args.predict_args = argv[cut + 1:]
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    shutil.rmtree(args.out, ignore_errors=True)
    photos_dir = args.out / "photos"
    photos_dir.mkdir(parents=True)
    from facevision.benchmark.throughput import first_photo_per_person  # imports numpy: after the thread setting

    photos = first_photo_per_person(args.lfw_root, args.photos)
    for p in photos:
        (photos_dir / p.name).symlink_to(p.resolve())
    load_before = os.getloadavg()[0]

    from facevision.face.images import read_photo
    from facevision.benchmark.throughput import in_memory_seconds_per_photo
    from facevision.predict.predictor import PredictConfig, Predictor

    predictor = Predictor.from_pretrained(device="cpu", config=PredictConfig(threads=1))
    if "torch" in sys.modules:  # a torch network (no ONNX Runtime): one thread too
        import torch

        torch.set_num_threads(1)
    images = [read_photo(p) for p in photos]
    in_memory = in_memory_seconds_per_photo(predictor, images)

    cmd = [sys.executable, "-m", "facevision", "predict", "-q", *args.predict_args]
    t = time.perf_counter()
    subprocess.run(cmd + [str(photos_dir), "-o", str(args.out / "batch")], check=True)
    wall = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(cmd + [str(photos_dir / photos[0].name), "-o", str(args.out / "one")], check=True)
    one = time.perf_counter() - t
    print(json.dumps({"photos": len(photos), "in_memory_ms_per_photo": round(in_memory * 1e3, 1),
                      "batch_wall_s": round(wall, 2), "photos_per_s": round(len(photos) / wall, 2),
                      "ratio_to_in_memory": round(wall / (len(photos) * in_memory), 2),
                      "one_photo_wall_s": round(one, 2), "load_before": load_before,
                      "load_after": os.getloadavg()[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

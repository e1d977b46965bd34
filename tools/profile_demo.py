"""Figure and timing for :mod:`data_prep.profile` (3D-profiled large-pose views).

``python tools/profile_demo.py figure -o docs/figures/profile_examples.png [DATASET]``
    a few samples (rows) and their rotated views (columns); each cell is image | depth over
    corr | mask. DATASET defaults to $FACEVISION_LFW_DATASET, else generated toy samples.
``python tools/profile_demo.py bench [DATASET] [--count 20 --views 4]``
    milliseconds per sample for the lift and per view for the render (single process).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from data_prep.dataset_format import Sample, read_manifest, read_sample
from facevision.common.fileio import atomic_write
from data_prep.profile import ProfileConfig, lift_surface, render_view
from data_prep.toy import toy_sample
from facevision.face.sizes import CROP_SIZE

LFW_DATASET_ENV = "FACEVISION_LFW_DATASET"
FIGURE_VIEWS = ((0.0, 0.0), (-75.0, 0.0), (-40.0, 15.0), (40.0, -15.0), (90.0, 0.0))


def load_samples(dataset: str | None, count: int, seed: int = 0) -> tuple[list[Sample], list[str]]:
    """``count`` samples (spread over the dataset) and their ids; toy samples when ``dataset`` is None."""
    if dataset is None:
        rng = np.random.default_rng(seed)
        return [toy_sample(CROP_SIZE, rng) for _ in range(count)], [f"toy_{i}" for i in range(count)]
    entries = read_manifest(dataset)["samples"]
    pick = np.random.default_rng(seed).choice(len(entries), size=min(count, len(entries)), replace=False)
    ids = [entries[i]["id"] for i in sorted(pick)]
    return [read_sample(dataset, i) for i in ids], ids


def _depth_gray(s: Sample) -> np.ndarray:
    g = np.zeros(s.depth.shape, np.uint8)
    if s.mask.any():
        d = s.depth[s.mask]
        g[s.mask] = (40 + 215 * (d - d.min()) / max(float(d.max() - d.min()), 1e-6)).astype(np.uint8)
    return np.dstack([g] * 3)


def cell(s: Sample, label: str) -> np.ndarray:
    """2x2 tile: image (with the angles written on it) | depth / corr | mask."""
    img = s.image.copy()
    cv2.putText(img, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1, cv2.LINE_AA)
    corr = (np.clip(s.corr, 0, 1) * 255).astype(np.uint8)
    mask = np.dstack([s.mask.astype(np.uint8) * 255] * 3)
    return np.vstack([np.hstack([img, _depth_gray(s)]), np.hstack([corr, mask])])


def figure(samples: list[Sample], views=FIGURE_VIEWS, cfg: ProfileConfig = ProfileConfig()) -> np.ndarray:
    """RGB figure: one row per sample, one 2x2 cell per (yaw, pitch) view, 4 px gaps."""
    rows = []
    for s in samples:
        surf = lift_surface(s, cfg)
        cells = [cell(render_view(surf, y, p, cfg), f"yaw {y:+.0f} pitch {p:+.0f}") for y, p in views]
        gap = np.full((cells[0].shape[0], 4, 3), 255, np.uint8)
        rows.append(np.hstack([c for pair in zip(cells, [gap] * len(cells)) for c in pair][:-1]))
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.vstack([r for pair in zip(rows, [gap] * len(rows)) for r in pair][:-1])


def bench(samples: list[Sample], views: int, cfg: ProfileConfig = ProfileConfig()) -> dict[str, float]:
    """Median milliseconds of the lift (per sample) and the render (per view), wall clock and CPU time.

    CPU time (``time.process_time``) is what a view costs; on a shared machine the wall clock also
    counts the time other processes hold the cores.
    """
    res: dict[str, list[float]] = {"lift": [], "render": [], "lift_cpu": [], "render_cpu": []}
    lift_surface(samples[0], cfg)  # warm-up (imports, caches)
    for i, s in enumerate(samples):
        t, c = time.perf_counter(), time.process_time()
        surf = lift_surface(s, cfg)
        res["lift"].append((time.perf_counter() - t) * 1e3)
        res["lift_cpu"].append((time.process_time() - c) * 1e3)
        rng = np.random.default_rng(i)
        for _ in range(views):
            yaw, pitch = rng.uniform(20, 90) * rng.choice([-1, 1]), rng.uniform(-30, 30)
            t, c = time.perf_counter(), time.process_time()
            render_view(surf, yaw, pitch, cfg)
            res["render"].append((time.perf_counter() - t) * 1e3)
            res["render_cpu"].append((time.process_time() - c) * 1e3)
    return {k: float(np.median(v)) for k, v in res.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("figure", help="example figure")
    f.add_argument("dataset", nargs="?", default=os.environ.get(LFW_DATASET_ENV))
    f.add_argument("-o", "--output", required=True)
    f.add_argument("--count", type=int, default=3)
    f.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("bench", help="time per view")
    b.add_argument("dataset", nargs="?", default=None)
    b.add_argument("--count", type=int, default=20)
    b.add_argument("--views", type=int, default=4)
    args = ap.parse_args(argv)
    samples, ids = load_samples(args.dataset, args.count, getattr(args, "seed", 0))
    if args.what == "figure":
        fig = cv2.cvtColor(figure(samples), cv2.COLOR_RGB2BGR)
        atomic_write(args.output, lambda p: cv2.imwrite(str(p), fig, [cv2.IMWRITE_PNG_COMPRESSION, 9]))
        print(f"wrote {args.output} ({Path(args.output).stat().st_size // 1024} KiB): {', '.join(ids)}")
    else:
        r = bench(samples, args.views)
        for kind, suffix in (("wall", ""), ("CPU", "_cpu")):
            lift, view = r["lift" + suffix], r["render" + suffix]
            print(f"{len(samples)} samples ({args.dataset or 'toy'}), {args.views} views each, {kind}: lift "
                  f"{lift:.1f} ms per sample, render {view:.1f} ms per view, "
                  f"{view + lift / args.views:.1f} ms per view in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())

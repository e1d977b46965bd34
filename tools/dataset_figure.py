"""A figure of a dataset's samples: one row each, crop | depth (brighter = closer) | correspondence | overlay.

    python tools/dataset_figure.py data/lfw128t_lp -o docs/figures/profile_3ddfa_examples.jpg --rows 4 --views-only

Samples are taken in manifest order (``--views-only``: only profiled views, ``*_lp<k>``), ``--rows`` per
column, ``--columns`` columns side by side. Writes a PNG, or a JPEG (quality 88) for a .jpg name.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.dataset_format import read_manifest, read_sample  # noqa: E402
from facevision.common.fileio import atomic_write_bytes  # noqa: E402


def row(root: Path, sid: str) -> np.ndarray:
    """(S, 4 S, 3) uint8: crop | depth | corr | overlay of one sample."""
    s = read_sample(root, sid)
    d = np.where(s.mask, s.depth / max(float(s.depth.max()), 1e-6), 0.0)
    depth = np.repeat((d * 255).astype(np.uint8)[..., None], 3, 2)
    corr = (s.corr * 255).astype(np.uint8)
    over = s.image.copy()
    over[s.mask] = (0.5 * over[s.mask] + 0.5 * corr[s.mask]).astype(np.uint8)
    return np.concatenate([s.image, depth, corr, over], 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--columns", type=int, default=2)
    ap.add_argument("--views-only", action="store_true", help="only profiled views (ids ending in _lp<k>)")
    ap.add_argument("--scale", type=float, default=1.0, help="resize factor of the figure")
    args = ap.parse_args(argv)
    ids = [s["id"] for s in read_manifest(args.dataset)["samples"] if not args.views_only or "profile_of" in s]
    ids = ids[: args.rows * args.columns]
    if len(ids) < args.rows * args.columns:
        print(f"{args.dataset}: only {len(ids)} samples", file=sys.stderr)
        return 2
    cols = [np.concatenate([row(args.dataset, i) for i in ids[c * args.rows:(c + 1) * args.rows]], 0)
            for c in range(args.columns)]
    fig = np.concatenate(cols, 1)
    if args.scale != 1.0:
        fig = cv2.resize(fig, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(args.output.suffix or ".png", fig[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        print(f"{args.output}: cannot encode a {args.output.suffix!r} image", file=sys.stderr)
        return 2
    atomic_write_bytes(args.output, buf.tobytes())
    print(f"{args.output}: {fig.shape[1]} x {fig.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

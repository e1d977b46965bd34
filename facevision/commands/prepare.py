"""``facevision prepare lfw ROOT -o DATASET``: build a labelled training set from LFW-style photos."""
from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "prepare", help="turn face photos into a labelled dataset (depth, correspondence, mask)",
        description="Turn face photos into a labelled facevision dataset.")
    sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    lfw = sub.add_parser(
        "lfw", help="an LFW-style tree ROOT/<Person>/<Person>_NNNN.jpg",
        description="Detect one face per photo, crop it square, label it (MediaPipe Face Mesh by default, "
                    "or imported 3DDFA_V2 renders) and write the dataset. Resumable: rerun the same command "
                    "to continue; finished and dropped photos are skipped.")
    lfw.add_argument("root", metavar="ROOT", help="folder of <Person>/<Person>_NNNN.jpg photos")
    lfw.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder to write")
    lfw.add_argument("--labeler", choices=("mediapipe", "3ddfa"), default="mediapipe",
                     help="label source (default: mediapipe, built in and offline)")
    lfw.add_argument("--labels-3ddfa", metavar="DIR", help="3DDFA_V2 outputs for --labeler 3ddfa")
    lfw.add_argument("--size", type=int, default=128, help="crop side in pixels (default 128)")
    lfw.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    lfw.add_argument("--limit", type=int, default=None, help="only the first N files (sorted), for a quick run")
    lfw.add_argument("--no-progress", action="store_true", help="no progress bar")
    lfw.set_defaults(func=run)
    toy = sub.add_parser(
        "toy", help="a generated toy dataset (shaded ellipsoids with exact labels), no photos needed",
        description="Write generated samples in the dataset format, to try `facevision train` end to end.")
    toy.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder to write")
    toy.add_argument("--count", type=int, default=32, help="number of samples (default 32; a quarter are val)")
    toy.add_argument("--size", type=int, default=128, help="crop side in pixels (default 128)")
    toy.add_argument("--seed", type=int, default=0)
    toy.set_defaults(func=run_toy)
    return p


def run_toy(args: argparse.Namespace) -> int:
    from data_prep.toy import make_toy_dataset

    try:
        manifest = make_toy_dataset(args.output, count=args.count, size=args.size, seed=args.seed)
    except ValueError as exc:
        print(f"facevision prepare: {exc}", file=sys.stderr)
        return 2
    print(f"dataset: {args.output}: {manifest['split_counts']}")
    return 0


def run(args: argparse.Namespace) -> int:
    from data_prep.prepare import PrepareConfig, format_summary, prepare_lfw

    if args.size < 16:
        print(f"facevision prepare: --size must be at least 16, got {args.size}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"facevision prepare: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    cfg = PrepareConfig(labeler=args.labeler, size=args.size, workers=args.workers, limit=args.limit,
                        labels_3ddfa=args.labels_3ddfa, progress=not args.no_progress)
    try:
        summary = prepare_lfw(args.root, args.output, cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"facevision prepare: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(f"dataset: {args.output} (summary.json, manifest.json, records.jsonl)")
    return 0

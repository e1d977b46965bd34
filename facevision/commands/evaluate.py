"""``facevision evaluate``: map and landmark errors of a checkpoint on a dataset split, with a mean-map baseline."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facevision.commands.errors import config_errors, fail, reports_errors

NAME = "evaluate"
PROG = f"facevision {NAME}"
# EvaluateConfig's fields as the command line names them (its ValueErrors name the field)
_FLAGS = {"split": "--split", "limit": "--limit", "baseline_limit": "--baseline-limit", "batch_size": "--batch-size"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="score a checkpoint on a dataset split (depth MAE, correspondence MAE, mask IoU, landmark NME)",
        description="Print a table of masked depth MAE (crop px), correspondence MAE, mask IoU and 68-landmark NME "
                    "(inter-ocular normalised) of the checkpoint against the labels, next to the same figures for a "
                    "baseline that always predicts the mean training maps (cached in DATASET/mean_maps_train.npz); "
                    "--json prints the full result as JSON instead.",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset folder (from `facevision prepare`)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to score (default test)")
    p.add_argument("--checkpoint", type=Path, help="generator .safetensors (default: the shipped checkpoint)")
    p.add_argument("--limit", type=int, help="score only the first N samples of the split")
    p.add_argument("--baseline-limit", type=int, help="mean maps from only the first N train samples")
    p.add_argument("--batch-size", type=int, default=32, help="network batch size (default 32)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON instead of the table")
    p.add_argument("-o", "--output", type=Path, help="also write the full JSON result to this file")
    p.set_defaults(func=run)
    return p


@reports_errors(PROG)
def run(args: argparse.Namespace) -> int:
    from data_prep.dataset_format import DatasetFormatError
    from facevision.common.fileio import atomic_write_json
    from facevision.evaluate import EvaluateConfig, evaluate, metrics_table
    from facevision.model.device import resolve_device
    from facevision.predict.predictor import default_checkpoint
    from facevision.model.checkpoint import CheckpointError, load_generator

    with config_errors(PROG, _FLAGS):
        cfg = EvaluateConfig(split=args.split, limit=args.limit, batch_size=args.batch_size,
                             baseline_limit=args.baseline_limit)
    try:
        device = resolve_device(args.device)
        ckpt = args.checkpoint or default_checkpoint()
        model = load_generator(ckpt, device)
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        return fail(PROG, exc)
    try:
        _check_same_space(ckpt, args.data)
        result = evaluate(args.data, model, cfg, device=device)
    except (DatasetFormatError, ValueError) as exc:
        return fail(PROG, exc, code=1)
    result = {"checkpoint": str(ckpt), **result}
    print(json.dumps(result, indent=2) if args.json else metrics_table(result))
    if args.output:
        atomic_write_json(args.output, result)
    return 0


def _check_same_space(checkpoint, data) -> None:
    """ValueError when the checkpoint names a correspondence space other than the dataset's (its maps would be
    scored against labels in another colour code)."""
    from data_prep.dataset_format import read_manifest
    from facevision.face.reference import CORRESPONDENCE_SPACE
    from facevision.model.checkpoint import read_generator_metadata

    ours = read_generator_metadata(checkpoint).get("correspondence_space", CORRESPONDENCE_SPACE)
    theirs = read_manifest(data).get("correspondence_space", CORRESPONDENCE_SPACE)
    if ours not in (theirs, "unknown"):
        raise ValueError(f"{checkpoint}: maps in correspondence space {ours!r}, but {data} is labelled in {theirs!r}")

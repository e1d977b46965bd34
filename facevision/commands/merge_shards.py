"""``facevision merge-shards OUT``: the summaries of ``predict --shard K/N`` runs -> ``OUT/summary.json``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facevision.commands.errors import fail

NAME = "merge-shards"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="merge the summary.shard-K-of-N.json files of `predict --shard` runs into OUT/summary.json",
        description="Read OUT/summary.shard-K-of-N.json for K = 1..N (the shards' folders copied into one OUT "
                    "when they ran on separate machines) and write OUT/summary.json: counts and faces summed, "
                    "every input listed once with its shard. Exit code 1 if a shard's summary is missing, "
                    "repeated or unreadable (the message names them), 0 otherwise.",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="output folder holding the shards' summaries")
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="N of the shard summaries to merge (default: the only N found in OUT)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from facevision.common.fileio import atomic_write_json
    from facevision.predict.outputs import SUMMARY_NAME
    from facevision.predict.shards import ShardMergeError, merge_shard_summaries

    try:
        merged = merge_shard_summaries(args.out, args.shards)
        atomic_write_json(args.out / SUMMARY_NAME, merged)
    except (ShardMergeError, OSError) as exc:
        return fail(f"facevision {NAME}", exc, code=1)
    c = merged["counts"]
    print(f"facevision {NAME}: {merged['shards']} shard(s): {c['ok']} ok, {c['failed']} failed, "
          f"{merged['faces']} face(s) -> {args.out / SUMMARY_NAME}", file=sys.stderr)
    return 0

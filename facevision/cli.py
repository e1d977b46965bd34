"""The ``facevision`` command line: one subcommand per module in :mod:`facevision.commands`.

Each command module exposes ``add_parser(subparsers) -> argparse.ArgumentParser`` and sets
``func`` (``args -> exit code``) as a default on its parser. Command modules import heavy
libraries (torch, open3d, mediapipe) inside their run functions so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from facevision import __version__

COMMANDS = ("predict", "merge-shards", "train", "evaluate", "benchmark", "fit-identity", "prepare", "mesh", "flame")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facevision",
        description="One photo of a face in: depth and correspondence maps, a refined 3D mesh and FLAME parameters out.",
    )
    parser.add_argument("--version", action="version", version=f"facevision {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"facevision.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code.

    ``argv=None`` means the program's own command line (``facevision ...``, ``python -m facevision ...``): then a
    command that sets ``fast_exit`` (``predict``: every output is written, flushed and closed when it returns)
    ends the process right away once stdout and stderr are flushed, skipping the interpreter's teardown of
    torch, Open3D and MediaPipe."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("facevision: interrupted", file=sys.stderr)
        code = 130
    if argv is None and getattr(args, "fast_exit", False):
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process with ``code`` without the interpreter's teardown (after flushing stdout and stderr)."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

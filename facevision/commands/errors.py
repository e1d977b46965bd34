"""How commands report a bad input: one line ``"<prog>: error: <message>"`` on stderr and exit code 2.

:func:`fail` prints that line; :func:`config_errors` turns a config's ValueError (naming the field) into it with
the field named as its flag; :func:`reports_errors` ends a command's ``run`` with it on a :class:`CommandError`;
:class:`DeprecatedFlag` keeps an old flag name one release. Imports nothing heavy (loaded while parsers are built).
"""
from __future__ import annotations

import argparse
import functools
import re
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

__all__ = ["CommandError", "fail", "config_errors", "reports_errors", "with_flags", "DeprecatedFlag"]


class CommandError(Exception):
    """A command cannot run: ``prog`` and the one-line ``message`` for :func:`fail`."""

    def __init__(self, prog: str, message: object) -> None:
        super().__init__(f"{prog}: error: {message}")
        self.prog, self.message = prog, str(message)


def fail(prog: str, message: object, code: int = 2) -> int:
    """Print ``"<prog>: error: <message>"`` on stderr; returns the exit code (2: nothing could run; commands
    pass 1 where an input was bad)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def with_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with configuration field names (``field`` or ``Config.field``) replaced by their flags."""
    for name, flag in flags.items():
        message = re.sub(rf"(?<![\w-])(?:[A-Z]\w*\.)?{re.escape(name)}(?![\w-])", flag, message)
    return message


@contextmanager
def config_errors(prog: str, flags: Mapping[str, str] | None = None,
                  catch: type[BaseException] | tuple[type[BaseException], ...] = ValueError) -> Iterator[None]:
    """Turn a ``catch`` exception (a config's ValueError) raised in the block into a :class:`CommandError`
    (fields named as ``flags`` says)."""
    try:
        yield
    except catch as exc:
        raise CommandError(prog, with_flags(str(exc), flags or {})) from None


def reports_errors(prog: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Decorator for a command's ``run``: a :class:`CommandError` becomes :func:`fail`'s line and exit code 2."""

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(run)
        def reporting(args: argparse.Namespace) -> int:
            try:
                return run(args)
            except CommandError as exc:
                return fail(exc.prog or prog, exc.message)

        return reporting

    return wrap


class DeprecatedFlag(argparse.Action):
    """An old flag kept as an alias for one release: ``p.add_argument("--old", dest="new", action=DeprecatedFlag,
    new="--new", type=...)``. Stores like the new flag and prints one line on stderr naming the new flag."""

    def __init__(self, option_strings, dest, new: str, prog: str = "facevision", **kwargs) -> None:
        kwargs.setdefault("help", f"deprecated alias of {new} (removed in the next release)")
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.prog = new, prog

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{self.prog}: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)

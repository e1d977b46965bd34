"""What ``facevision predict`` prints while a batch runs: one line per message (``facevision predict: <kind>:
<path>: <reason>`` on stderr, ``-v`` lines on stdout) and the progress bar, from any thread."""
from __future__ import annotations

import re
import sys
import threading
from typing import Any, TextIO

__all__ = ["PROG", "one_line", "say", "say_error", "warn", "note", "error", "fail", "ProgressBar", "NoBar",
           "progress_bar"]

PROG = "facevision predict"
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # escaped in the lines printed (one_line)


def one_line(text: str) -> str:
    """``text`` with control characters escaped as in a repr (a newline as ``\\n``, ESC as ``\\x1b``), so a file
    name holding them can neither split a message line nor drive the terminal."""
    return _CONTROL_CHARS.sub(lambda m: repr(m.group())[1:-1], text)


def say(line: str, file: TextIO) -> None:
    """One line, also from writer threads, without breaking the progress bar (tqdm.write clears and redraws it);
    control characters in it (from file names or messages) are escaped (:func:`one_line`)."""
    from tqdm import tqdm

    tqdm.write(one_line(line), file=file)
    file.flush()


def say_error(text: str) -> None:
    """``facevision predict: <text>`` on stderr (``text`` starts with its kind: ``error:``, ``note:``...)."""
    say(f"{PROG}: {text}", sys.stderr)


def warn(path: str, reason: str) -> None:
    say_error(f"warning: {path}: {reason}")


def note(path: str, what: str) -> None:
    say_error(f"note: {path}: {what}")


def error(path: str, reason: str) -> None:
    say_error(f"error: {path}: {reason}")


def fail(rec: dict[str, Any], reason: str) -> None:
    """Mark an input's record failed with ``reason`` and say so in one line naming the input."""
    rec.update(status="failed", reason=reason)
    error(rec["input"], reason)


class NoBar:
    """The progress bar when none is shown."""

    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> "NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


class ProgressBar:
    """One tqdm bar (photos, photos/s, ETA) on stderr, moved from any thread."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._lock = threading.Lock()
        self._bar = tqdm(total=total, unit="photo", desc=PROG, file=sys.stderr, disable=None,
                         dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int = 1) -> None:
        with self._lock:
            self._bar.update(n)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()


def progress_bar(shown: bool, total: int) -> ProgressBar | NoBar:
    """A bar over ``total`` photos when ``shown`` and there are any (tqdm shows it on a terminal only)."""
    return ProgressBar(total) if shown and total else NoBar()

"""One ``facevision predict`` run per OUT at a time (:class:`OutputFolderLock`): a second run is refused naming the
holder's process id; a lock left by a killed run is taken over."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from facevision.predict.console import warn
from facevision.predict.out_folder import OutputFolderError

try:
    import fcntl
except ImportError:  # Windows: no flock; OutputFolderLock does nothing there
    fcntl = None  # type: ignore[assignment]

__all__ = ["OutputFolderLock", "OutputFolderBusyError", "LOCK_NAME"]

LOCK_NAME = ".facevision-predict.lock"  # in OUT while a run writes there (hidden: never an input's folder name)
_SHARD_LOCKS = ".facevision-predict.shard-*.lock"


class OutputFolderBusyError(OutputFolderError):
    """Another run holds OUT's lock; the message names its process id and host."""


def _shard_lock_name(shard: tuple[int, int]) -> str:
    return f".facevision-predict.shard-{shard[0]}-of-{shard[1]}.lock"


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


def _flock(path: Path, shared: bool = False) -> int:
    """Open ``path`` (created if needed) and flock it without waiting: the open file, or BlockingIOError when
    another process holds it. A file its last holder removed meanwhile is not kept: the new one is locked."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            same = _same_file(fd, path)
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)


def _unlock(fd: int, path: Path) -> None:
    """Let go of a lock file; the last holder (it gets it exclusively at once) removes it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, path):
            os.unlink(path)
    except OSError:
        pass  # still held by another run of the same OUT (a shard): the last one removes it
    finally:
        os.close(fd)


def _holder(path: Path) -> dict[str, Any] | None:
    """Who wrote ``path`` (a lock file): ``{"pid", "host", "since"}``, or None when it names no one."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def _who(info: dict[str, Any]) -> str:
    return f"pid {info['pid']} on {info.get('host', '?')}" + (f", since {info['since']}" if info.get("since") else "")


class OutputFolderLock:
    """One ``facevision predict`` run per OUT at a time: ``fcntl.flock`` on ``OUT/.facevision-predict.lock``, which
    names its holder (pid, host, start) for the one line that refuses a second run (:class:`OutputFolderBusyError`).
    The kernel releases a flock when its holder ends, however it ends, so a lock file left by a killed run is
    stale by construction: the next run takes it over and says so. Shards (``shard=(K, N)``) share OUT: each
    holds that file shared and ``.facevision-predict.shard-K-of-N.lock`` exclusively, so shards of one
    collection run side by side, while a run without ``--shard`` and a repeated K/N are refused. :meth:`release`
    (or leaving the ``with`` block, also on an error or Ctrl-C) removes the file. Re-entrant in one thread (the
    command holds it while the model loads, then run_batch takes it again). Without ``fcntl`` (Windows) it does
    nothing. Writer processes forked while it is held share it; they end with the run."""

    _held: dict[tuple[Any, ...], list] = {}  # (real OUT, shard, thread) -> [count, [(fd, path), ...]]
    _guard = threading.Lock()

    def __init__(self, out: str | Path, shard: tuple[int, int] | None = None) -> None:
        self.out = Path(out)
        self.shard = None if shard is None else (int(shard[0]), int(shard[1]))
        self._key: tuple[Any, ...] | None = None

    def acquire(self) -> "OutputFolderLock":
        """Take the lock; :class:`OutputFolderBusyError` when another run holds it, :class:`OutputFolderError`
        when the lock file cannot be made."""
        if fcntl is None or self._key is not None:
            return self
        key = (os.path.realpath(self.out), self.shard, threading.get_ident())
        with self._guard:
            entry = self._held.get(key)
            if entry is None:
                entry = self._held[key] = [0, self._lock()]
            entry[0] += 1
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        key, self._key = self._key, None
        with self._guard:
            entry = self._held[key]
            entry[0] -= 1
            if entry[0] > 0:
                return
            del self._held[key]
        for fd, path in reversed(entry[1]):
            _unlock(fd, path)

    def __enter__(self) -> "OutputFolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _lock(self) -> list[tuple[int, Path]]:
        held: list[tuple[int, Path]] = []
        path = self.out / LOCK_NAME
        try:
            try:
                held.append((_flock(path, shared=self.shard is not None), path))
                if self.shard is not None:
                    path = self.out / _shard_lock_name(self.shard)
                    held.append((_flock(path), path))
            except BlockingIOError:
                who = self._busy(path)
                raise OutputFolderBusyError(f"{self.out}: in use by another facevision predict run ({who}); wait for "
                                            "it to end or choose another output folder") from None
            except OSError as exc:
                raise OutputFolderError(f"{path}: cannot lock the output folder ({exc.strerror or exc})") from None
            self._claim(held[-1][0], path)
        except BaseException:
            for fd, p in reversed(held):
                _unlock(fd, p)
            raise
        return held

    def _busy(self, path: Path) -> str:
        """Who holds ``path``: its holder, or for the shared main lock the --shard runs holding theirs."""
        holders = []
        if path.name == LOCK_NAME:
            for p in sorted(self.out.glob(_SHARD_LOCKS)):
                try:
                    _unlock(_flock(p), p)  # nobody holds it: left by a killed shard (removed now)
                except BlockingIOError:
                    holders += [h for h in [_holder(p)] if h]
                except OSError:
                    pass
        holders = holders or [h for h in [_holder(path)] if h]
        return "; ".join(_who(h) for h in holders) or "it has not written its process id yet"

    def _claim(self, fd: int, path: Path) -> None:
        """Write this run into the lock file it holds exclusively; say so when it names a run that is gone."""
        host = socket.gethostname()
        stale = _holder(path)
        if stale is not None and (stale["pid"], stale.get("host")) != (os.getpid(), host):
            warn(str(self.out), f"taking over the lock of {_who(stale)}, which is no longer running "
                                "(it ended without releasing it)")
        info = {"pid": os.getpid(), "host": host, "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)

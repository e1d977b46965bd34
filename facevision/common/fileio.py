"""Atomic file writing, the one implementation every package uses (standard library only).

A file is written to a temporary name in the target folder (``.<stem>.<pid>-<random>.tmp<suffix>``), checked,
flushed and renamed over the final name; a failed write leaves nothing under the final name and raises
:class:`OutputWriteError` naming the final file and the reason. :func:`atomic_folder` writes a whole folder the
same way (a temporary sibling folder that replaces the final one). :func:`remove_stale_temporaries` removes
what killed processes left. Also here: :func:`native_stderr_silenced`, for native libraries that print to
file descriptor 2.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["OutputWriteError", "write_error", "temp_prefix", "remove_stale_temporaries", "fsync_file", "atomic_write",
           "atomic_write_bytes", "png_complete", "native_stderr_silenced", "atomic_folder", "temp_folder",
           "replace_folder", "file_sha256"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class OutputWriteError(OSError):
    """An output could not be written completely (nothing is left under the final name); the message names the
    final file and the reason, ``errno`` is the OS error number when there was one."""


_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def write_error(path: str | os.PathLike, exc: BaseException | None = None, problem: str = "") -> OutputWriteError:
    """One-line :class:`OutputWriteError` for ``path``: from an OS error, or a ``problem`` found by a check."""
    code = getattr(exc, "errno", None)
    if code in _NO_SPACE:
        reason = "no space left on device (disk full)"
    elif isinstance(exc, OSError):
        reason = f"cannot write ({exc.strerror or exc})"
    else:
        reason = f"{problem or 'incomplete write'}; {_space_hint(Path(path).parent)}"
    err = OutputWriteError(f"{path}: {reason}")
    err.errno = code
    return err


def _space_hint(folder: Path) -> str:
    try:
        st = os.statvfs(folder)
        free = st.f_bavail * st.f_frsize
    except OSError:
        return "is the disk full?"
    if free < (1 << 20):
        return f"the disk is full ({free} bytes free)"
    return f"the writer failed (disk full? {free // (1 << 20)} MiB free)"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_prefix(path: Path) -> str:
    """Prefix of this process's temporary names for ``path``: ``.<stem>.<pid>-`` (see module docstring)."""
    return f".{path.stem}.{os.getpid()}-"


# .<stem>.<pid>-<8 random chars>.tmp[.suffix]; a name without the pid is always stale
_TEMP_NAME = re.compile(r"^\..*\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9]+)?$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**31  # exists but belongs to someone else / not a valid pid at all
    return True


def _stale_temporary(name: str) -> bool:
    m = _TEMP_NAME.match(name)
    if m is None:
        return False
    pid = m.group("pid")
    return pid is None or (int(pid) != os.getpid() and not _process_alive(int(pid)))


def remove_stale_temporaries(folder: str | os.PathLike, max_depth: int = 2) -> list[Path]:
    """Delete temporaries of our naming (files, and folders of :func:`atomic_folder` with all they hold) left by
    killed processes in ``folder`` and its subfolders down to ``max_depth`` levels (0: ``folder``'s own entries
    only; symlinks are not followed; live processes' temporaries are kept). Returns them."""
    root = Path(folder)
    removed: list[Path] = []
    if not root.is_dir() or root.is_symlink():
        return removed
    for here, dirs, files in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        for name in [d for d in dirs if _stale_temporary(d)] + [f for f in files if _stale_temporary(f)]:
            p = Path(here) / name
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p)
            except OSError:
                pass  # not ours to fight over: a later run tries again
        dirs[:] = [] if depth >= max_depth else [d for d in dirs if not _stale_temporary(d)]
    return removed


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read 1 MiB at a time)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_temp(path: Path) -> tuple[int, Path]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    return fd, Path(tmp)


def _commit(tmp: Path, path: Path, check: Callable[[Path], str | None] | None, allow_empty: bool) -> None:
    """Check the finished temporary, give it normal permissions and rename it to ``path``."""
    if not allow_empty and tmp.stat().st_size == 0:
        raise write_error(path, problem="the writer left an empty file")
    problem = check(tmp) if check is not None else None
    if problem:
        raise write_error(path, problem=problem)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
    os.replace(tmp, path)


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


@contextmanager
def _undone_on_failure(path: Path, undo) -> Iterator[None]:
    """Run ``undo()`` (remove a temporary) when the block fails or is interrupted, and re-raise; an OSError
    becomes a one-line :class:`OutputWriteError` naming ``path`` (the temporary files' and folders' one rule)."""
    try:
        yield
    except OutputWriteError:
        undo()
        raise
    except OSError as exc:
        undo()
        raise write_error(path, exc) from None
    except BaseException:
        undo()
        raise


@contextmanager
def _temporary(path: Path) -> Iterator[tuple[int, Path]]:
    """A new temporary beside ``path`` (open fd, its path), removed when the block fails; an OSError
    becomes a one-line :class:`OutputWriteError` naming ``path``."""
    fd, tmp = _new_temp(path)
    with _undone_on_failure(path, lambda: _discard(tmp)):
        yield fd, tmp


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any],
                 check: Callable[[Path], str | None] | None = None, allow_empty: bool = False) -> Path:
    """Call ``write(tmp_path)`` (a temporary beside ``path``, same suffix) and rename the result to ``path``.
    OutputWriteError, nothing left under ``path``, when ``write`` raises an OSError or returns ``False``, the file is
    empty (unless ``allow_empty``) or ``check(tmp_path)`` returns a problem."""
    path = Path(path)
    with _temporary(path) as (fd, tmp):
        os.close(fd)
        if write(tmp) is False:
            raise write_error(path, problem="the writer reported a failure")
        fsync_file(tmp)
        _commit(tmp, path, check, allow_empty)
    return path


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write returned no progress")
        view = view[n:]


def atomic_write_bytes(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (size checked after the flush)."""
    path = Path(path)
    with _temporary(path) as (fd, tmp):
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        size, expected = tmp.stat().st_size, memoryview(data).nbytes
        if size != expected:
            raise write_error(path, problem=f"only {size} of {expected} bytes were written")
        _commit(tmp, path, None, allow_empty=True)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def png_complete(path: str | os.PathLike) -> str | None:
    """Cheap completeness check of a PNG file (signature, IHDR, IEND trailer): None if fine, else the problem."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            size = os.fstat(fh.fileno()).st_size
            if size < len(PNG_SIGNATURE) + 25 + len(_PNG_END):
                return "empty or truncated PNG" if size else "empty file"
            fh.seek(size - len(_PNG_END))
            tail = fh.read(len(_PNG_END))
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return "not a PNG file (bad signature)"
    if tail != _PNG_END:
        return "truncated PNG (no end chunk)"
    return None


def temp_folder(path: str | os.PathLike) -> Path:
    """A new empty folder beside ``path``, named as this process's temporaries (``.<name>.<pid>-<random>.tmp``)."""
    path = Path(path)
    try:
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise write_error(path, exc) from None


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def replace_folder(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename the complete folder ``tmp`` (from :func:`temp_folder`) to ``path``, replacing the folder there.

    The old folder is first renamed to a temporary name (removed afterwards, or by
    :func:`remove_stale_temporaries` if this process is killed in between), so ``path`` holds the old folder
    or the new one, never files of both. A file or symlink at ``path`` is never replaced: OutputWriteError."""
    tmp, path = Path(tmp), Path(path)
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; give the folder normal permissions
    old: list[Path] = []
    try:
        for _ in range(3):  # another writer may put a folder there between the two renames: move it away too
            try:
                os.rename(tmp, path)  # path absent, or an empty folder
                return path
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or path.is_symlink() or not path.is_dir():
                    raise write_error(path, exc) from None
            trash = temp_folder(path)
            old.append(trash)
            try:
                os.rename(path, trash)  # onto the empty temporary folder
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise write_error(path, exc) from None
        raise write_error(path, problem="another process keeps putting a folder there")
    finally:
        for trash in old:
            _remove_tree(trash)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Write a folder as a whole: the block fills the new temporary folder yielded (beside ``path``); when it
    succeeds the folder replaces ``path`` (:func:`replace_folder`), when it fails (or is interrupted) it is
    removed and ``path`` is left as it was. Errors are :class:`OutputWriteError` naming ``path``."""
    path = Path(path)
    tmp = temp_folder(path)
    with _undone_on_failure(path, lambda: _remove_tree(tmp)):
        yield tmp
        replace_folder(tmp, path)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block: native code prints there what Python cannot catch
    (MediaPipe's TFLite/absl start-up lines; Open3D's PLY library, a line per failed field on a full disk),
    while the caller reports any failure itself in one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

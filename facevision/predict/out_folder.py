"""OUT and its folders: checking OUT, naming each input's folder ``OUT/<name>`` and telling whether a folder may
hold an input's files.

Folder names come from :func:`safe_stem` (never ``.``, ``..``, empty, hidden or with separators) and
:func:`output_names` (never one of the batch's own files, :data:`RESERVED_NAMES`; never a folder of another source
or one holding files predict does not write, :func:`foreign`). Every path written or removed must lie inside OUT
(:func:`inside`). An OUT so long that ``OUT/<name>`` or the files under it pass the file system's limits
(PATH_MAX) fails each input concerned (:func:`output_folder_problem`) before anything is read or written.
"""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path

from facevision.common.fileio import temp_prefix
from facevision.predict.outputs import IMAGE_RECORD, PHOTO_FILES, SUMMARY_NAME
from facevision.predict.report import REPORT_NAME
from facevision.predict.shards import SHARD_SUMMARY

__all__ = ["OutputFolderError", "check_output_folder", "safe_stem", "output_names", "output_folder_problem",
           "RESERVED_NAMES", "inside", "foreign"]

RESERVED_NAMES = frozenset({SUMMARY_NAME, REPORT_NAME})  # the batch's own files in OUT: never an input's folder
_NAME_BYTES = 200  # folder names are cut to this many UTF-8 bytes (file systems allow 255)
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
_FACE_DIR = re.compile(r"^face\d+$")
# below OUT/<name>: deeper than any path a face writes (face<k>/.fit_texture.<pid>-<8 chars>.tmp.png is ~47 bytes;
# the photo's temporary folder .<name>.<pid>-<8 chars>.tmp, beside OUT/<name>, is 22 bytes longer than it)
_DEEPEST = os.path.join("face000", "x" * 80)


class OutputFolderError(ValueError):
    """OUT cannot hold the batch's outputs (a file, cannot be created, not writable); the message names it."""


def check_output_folder(out: str | Path) -> Path:
    """Create OUT if needed and make sure a file can be written in it; raises :class:`OutputFolderError`."""
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise OutputFolderError(f"{out}: exists and is not a folder (choose another output folder)")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=temp_prefix(out / "probe"), suffix=".tmp", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputFolderError(f"{out}: output folder is not writable ({exc.strerror or exc})") from None
    return out


def safe_stem(path: Path) -> str:
    """Output folder name for an input: its stem with separators and control characters replaced by ``_``,
    leading dots and spaces dropped, cut to 200 bytes; never empty, ``.`` or ``..`` (``image`` instead)."""
    name = _UNSAFE_CHARS.sub("_", path.stem).strip().lstrip(".").strip()
    name = name.encode("utf-8", "surrogateescape")[:_NAME_BYTES].decode("utf-8", "ignore").strip()
    return name or "image"


def inside(root: Path, path: Path) -> bool:
    """True when ``path`` (symlinks resolved) lies strictly inside ``root``."""
    r, p = os.path.realpath(root), os.path.realpath(path)
    return p.startswith(r.rstrip(os.sep) + os.sep)


def _recorded_source(folder: Path) -> str | None:
    try:
        return json.loads((folder / IMAGE_RECORD).read_text()).get("source")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _usable(out: Path | None, name: str, source: str) -> bool:
    """``out/name`` may hold this source's results: absent, a real folder inside OUT of the same source, or one
    recording no source that holds only what predict writes (:func:`foreign`). A name whose path cannot even
    be looked up (too long) holds nothing: usable here, failed by run_batch."""
    if out is None:
        return True
    folder = out / name
    try:
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()) or not inside(out, folder):
            return False
    except OSError:  # ENAMETOOLONG and the like: output_folder_problem() names it for that input
        return True
    recorded = _recorded_source(folder)
    return recorded == source if recorded is not None else not foreign(folder)


def foreign(folder: Path) -> list[str]:
    """What ``folder`` (``OUT/<name>``) holds that predict does not write there (anything but image.json, the
    photo's files and face<k> folders), sorted: such a folder is never replaced by a photo's new folder. [] when absent."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [n for n in names if not (n == IMAGE_RECORD or n in PHOTO_FILES
                                     or (_FACE_DIR.match(n) and (folder / n).is_dir()
                                         and not (folder / n).is_symlink()))]


def output_folder_problem(out_dir: Path) -> str | None:
    """Why ``out_dir`` (``OUT/<name>``) cannot hold an input's files, or None: its path, or that of the deepest
    file a face writes under it, is too long for the file system (ENAMETOOLONG) or cannot be looked up."""
    for path in (out_dir, out_dir / _DEEPEST):
        try:
            os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return (f"output folder {out_dir}: its path ({len(os.fsencode(out_dir))} bytes, plus up to "
                        f"{len(_DEEPEST) + 1} for the files under it) is too long for the file system "
                        f"({exc.strerror}); use a shorter output folder or file name")
            return f"output folder {out_dir}: cannot be used ({exc.strerror or exc})"
    return None


def output_names(files: list[Path], out: str | Path | None = None) -> list[str]:
    """Output folder name per input: :func:`safe_stem`, with ``_2``, ``_3``... for stems repeated in this batch
    (input order), used in ``out`` by a different source file (so a rerun with other inputs never overwrites
    another photo's results) or by something that is not such a folder, and for the batch's own file names
    (:data:`RESERVED_NAMES`)."""
    taken: set[str] = set()
    names = []
    root = None if out is None else Path(out)
    for f in files:
        stem = safe_stem(f)
        source = str(f.resolve())
        n = 1
        while True:
            name = stem if n == 1 else f"{stem}_{n}"
            if name not in taken and name.lower() not in RESERVED_NAMES and not SHARD_SUMMARY.match(name.lower()) \
                    and _usable(root, name, source):
                break
            n += 1
        taken.add(name)
        names.append(name)
    return names

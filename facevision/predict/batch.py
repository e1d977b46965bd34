"""``facevision predict`` over many inputs: expand paths, batch faces through the network, write, report.

Each input gets a record ``{"input", "output", "status": "ok" | "failed", "reason", "faces", "skipped"}``;
a failure (unreadable file, no face, unusable prediction, unexpected error) is one line on stderr
naming the file and the reason, and the batch goes on. An input is finished when
``OUT/<name>/image.json`` says ``ok`` for the same source file, every face's result.json exists and every
output this run asks for is there (:func:`_finished`: a run with meshes redoes a photo of a ``--no-mesh``
run); finished inputs are skipped on a rerun unless ``overwrite``. Failed inputs are tried again. A photo
redone without ``overwrite`` gets the outputs asked for plus those its folder held, so a rerun loses none.

Reliability (issue #11): output folder names come from :func:`safe_stem` (never ``.``, ``..``, empty,
hidden or with separators; never one of the batch's own files ``summary.json`` / ``report.html``) and
every path written or removed is checked to lie inside OUT; OUT itself and anything under it is never
read as input; temporaries left in OUT by a killed run are removed on start; a write failure (disk
full) fails that input with one line naming the file, leaving none of its faces behind; photos above
``max_pixels`` are reduced before detection and their results mapped back to original pixels. An OUT so
long that ``OUT/<name>`` or the files under it pass the file system's limits (PATH_MAX) fails each input
concerned with one line before anything is read or written (:func:`output_folder_problem`); the rest of
the batch goes on.

Reliability II: one run per OUT at a time (:class:`OutputFolderLock`: a second is refused naming the
holder's pid, a lock left by a killed run is taken over); a photo's folder is written as a whole, into a
temporary sibling renamed into place (:func:`facevision.common.fileio.atomic_folder`), so no folder mixes two runs'
files and a killed run leaves no half folder, and a folder holding files predict did not write is never
replaced; ``summary.json`` is rebuilt from OUT at the end of every run, an interrupted one included
(Ctrl-C; SIGTERM where the command turns it into one): this run's records plus every photo finished in
OUT (:func:`facevision.predict.outputs.finished_photos`), each with the outputs it holds.

Faces left out: each ok record (and image.json) says how many faces the detector found (``faces_detected``) and
how many of them were not processed (``faces_skipped``: all but the largest, unless every face is asked for); one
stderr line per run sums them and names ``--all-faces``. image.json records ``all_faces``: a run asking for every
face redoes a photo finished by a run that kept only the largest. Listing the inputs (:func:`expand_inputs`):
folders holding predict's own outputs (:func:`output_marker`: an earlier OUT, a photo's folder) are not searched,
a folder given that is one fails in one line; links to folders met inside a folder, broken links and image files
of a format not read here are skipped with one line per kind and run; a file of several frames or pages (an
animated GIF, a multi-page TIFF) gets one line saying only the first is read.
"""
from __future__ import annotations

import errno
import glob
import json
import mimetypes
import os
import re
import socket
import stat
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facevision.face.images import ImageReadError, ScaledPhoto, read_photo_scaled
from facevision.common.fileio import OutputWriteError, atomic_write_json, remove_stale_temporaries, temp_prefix
from facevision.predict.outputs import (IMAGE_RECORD, MESH_FILE_OUTPUTS, MESH_OUTPUTS, PHOTO_FILES, SUMMARY_NAME,
                                       OutputConfig, face_dir_name, finished_photo, finished_photos, photo_outputs,
                                       present_outputs, read_image_record, write_face, write_photo_files,
                                       written_outputs)
from facevision.predict.predictor import PredictConfig, Postprocessor, Predictor
from facevision.predict.render import RenderConfig
from facevision.predict.report import REPORT_NAME
from facevision.predict.shards import SHARD_SUMMARY, merge_shard_summaries, shard_of, shard_summary_name
from facevision.predict.writer import WriterConfig, WriterPool, open_writer
from facevision.common.fileio import atomic_folder, native_stderr_silenced

try:
    import fcntl
except ImportError:  # Windows: no flock; OutputFolderLock does nothing there
    fcntl = None  # type: ignore[assignment]

__all__ = ["BatchConfig", "IMAGE_SUFFIXES", "OPTIONAL_SUFFIXES", "output_marker", "expand_inputs", "run_batch",
           "output_names", "safe_stem", "check_output_folder", "OutputFolderError", "DEFAULT_MAX_PIXELS", "RESERVED_NAMES",
           "output_folder_problem", "one_line", "OutputFolderLock", "OutputFolderBusyError", "LOCK_NAME"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif", ".pgm", ".ppm")
DEFAULT_MAX_PIXELS = 40_000_000  # larger photos are reduced to this many pixels before detection
RESERVED_NAMES = frozenset({SUMMARY_NAME, REPORT_NAME})  # the batch's own files in OUT: never an input's folder
_NAME_BYTES = 200  # folder names are cut to this many UTF-8 bytes (file systems allow 255)
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # escaped in the lines printed (one_line)
_FACE_DIR = re.compile(r"^face\d+$")
# below OUT/<name>: deeper than any path a face writes (face<k>/.fit_texture.<pid>-<8 chars>.tmp.png is ~47 bytes;
# the photo's temporary folder .<name>.<pid>-<8 chars>.tmp, beside OUT/<name>, is 22 bytes longer than it)
_DEEPEST = os.path.join("face000", "x" * 80)
LOCK_NAME = ".facevision-predict.lock"  # in OUT while a run writes there (hidden: never an input's folder name)
_SHARD_LOCKS = ".facevision-predict.shard-*.lock"


@dataclass
class BatchConfig:
    """overwrite: redo finished inputs; report: write OUT/report.html; flame_model: path of a FLAME model
    to register to each face (None = off); render: preview settings; output: mesh frame and texture size of
    the mesh files and which files are written (:class:`facevision.predict.outputs.OutputConfig`); log: one
    stdout line per input (``-v``); progress: one progress bar on stderr with photos/s and ETA (shown on a
    terminal only); max_pixels: photos with more pixels are reduced to this many before detection (bounds
    memory: a 13,000 x 13,000 photo would need several GB); results are mapped back to original pixels.
    None: off. writer: the processes (threads where fork is unavailable) that finish inputs (maps -> face-model
    fit, mesh -> files) while the next photos are detected and run (:class:`facevision.predict.writer.WriterConfig`;
    workers=0: one after another in the calling thread, as for a single input). shard: (K, N):
    only the K-th of N deterministic parts of the inputs (:mod:`facevision.predict.shards`); its summary is
    ``OUT/summary.shard-K-of-N.json``, merged into ``OUT/summary.json`` once all N are in OUT."""

    overwrite: bool = False
    report: bool = False
    flame_model: str | None = None
    render: RenderConfig = field(default_factory=RenderConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    log: bool = True
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    progress: bool = False
    writer: WriterConfig = field(default_factory=WriterConfig)
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.max_pixels is not None and int(self.max_pixels) < 1:
            raise ValueError(f"BatchConfig.max_pixels must be >= 0 (0 or None: never reduce), got {self.max_pixels!r}")
        if self.shard is not None and not (len(self.shard) == 2 and 1 <= self.shard[0] <= self.shard[1]):
            raise ValueError(f"BatchConfig.shard (K, N) needs 1 <= K <= N, got {self.shard!r}")


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
            _warn(str(self.out), f"taking over the lock of {_who(stale)}, which is no longer running "
                                 "(it ended without releasing it)")
        info = {"pid": os.getpid(), "host": host, "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)


def safe_stem(path: Path) -> str:
    """Output folder name for an input: its stem with separators and control characters replaced by ``_``,
    leading dots and spaces dropped, cut to 200 bytes; never empty, ``.`` or ``..`` (``image`` instead)."""
    name = _UNSAFE_CHARS.sub("_", path.stem).strip().lstrip(".").strip()
    name = name.encode("utf-8", "surrogateescape")[:_NAME_BYTES].decode("utf-8", "ignore").strip()
    return name or "image"


def _inside(root: Path, path: Path) -> bool:
    """True when ``path`` (symlinks resolved) lies strictly inside ``root``."""
    r, p = os.path.realpath(root), os.path.realpath(path)
    return p.startswith(r.rstrip(os.sep) + os.sep)


def _excluded(path: str | Path, exclude: str | None) -> bool:
    """True when ``path`` (resolved) is ``exclude`` (a resolved folder) or lies under it."""
    if exclude is None:
        return False
    p = os.path.realpath(path)
    return p == exclude or p.startswith(exclude.rstrip(os.sep) + os.sep)


def _failure(arg: str, reason: str) -> dict[str, Any]:
    return {"input": arg, "output": None, "status": "failed", "faces": [], "reason": reason}


def _path_kind(p: Path) -> str | None:
    """"file", "dir", "other" (device, pipe...), "denied" (a folder on the way cannot be entered) or None."""
    try:
        mode = p.stat().st_mode
    except PermissionError:
        return "denied"
    except (OSError, ValueError):
        return None
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


# read as photos too when this Pillow decodes them (built with the feature, or a plugin such as pillow-heif registered)
OPTIONAL_SUFFIXES = (".avif", ".heic", ".heif", ".jxl", ".jp2")
_PILLOW_FEATURES = {".avif": "avif", ".jp2": "jpg_2000"}
# not images by their MIME type on every system, but photos all the same (camera raw): named when skipped
_RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf",
                           ".pef", ".srw", ".raw", ".3fr", ".erf", ".kdc", ".mrw", ".x3f"})


@lru_cache(maxsize=None)
def _pillow_reads(suffix: str) -> bool:
    """True when this Pillow can decode files with ``suffix`` (one of :data:`OPTIONAL_SUFFIXES`)."""
    from PIL import Image, features

    Image.init()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.OPEN:
        return False
    feature = _PILLOW_FEATURES.get(suffix)
    try:
        return feature is None or bool(features.check(feature))
    except ValueError:  # a feature this Pillow does not know
        return False


def _readable_suffix(suffix: str) -> bool:
    suffix = suffix.lower()
    return suffix in IMAGE_SUFFIXES or (suffix in OPTIONAL_SUFFIXES and _pillow_reads(suffix))


def _image_like(name: str) -> bool:
    """True for a file name that says image (MIME type image/*, or a camera raw suffix)."""
    suffix = Path(name).suffix.lower()
    return suffix in _RAW_SUFFIXES or suffix in OPTIONAL_SUFFIXES or \
        (mimetypes.guess_type("x" + suffix)[0] or "").startswith("image/")


def _json_keys(path: Path) -> set[str]:
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(1 << 20) or b"null")  # predict's own files are far smaller
    except (OSError, ValueError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def output_marker(folder: str | Path, names: list[str] | None = None) -> str | None:
    """The file that makes ``folder`` one of predict's outputs, or None: OUT holds ``summary.json`` (or a shard's
    summary) or the lock file of a run, a photo's folder its ``image.json``. The JSON files must be predict's (a
    summary lists ``inputs`` and ``counts``, an image.json a ``source`` and ``faces``), so a folder of photos with
    some other file of that name is not taken for one. ``names``: the folder's entries when already listed."""
    folder = Path(folder)
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            return None
    present = set(names)
    if LOCK_NAME in present:
        return LOCK_NAME
    for name in sorted(present):
        if (name == SUMMARY_NAME or SHARD_SUMMARY.match(name)) and {"inputs", "counts"} <= _json_keys(folder / name):
            return name
    if IMAGE_RECORD in present and {"source", "faces"} <= _json_keys(folder / IMAGE_RECORD):
        return IMAGE_RECORD
    return None


@dataclass
class _Skipped:
    """What listing the inputs left out without failing an argument, said once per run (:meth:`notes`)."""

    outputs: list[str] = field(default_factory=list)  # folders holding predict's outputs (an earlier OUT)
    symlinked: list[str] = field(default_factory=list)  # symbolic links to folders met inside a folder (not followed)
    dangling: list[str] = field(default_factory=list)  # symbolic links to nothing
    unsupported: list[str] = field(default_factory=list)  # image files of a format this installation does not read
    _marks: dict[str, str | None] = field(default_factory=dict)

    def marked(self, folder: str) -> str | None:
        """:func:`output_marker` of ``folder``, cached."""
        if folder not in self._marks:
            self._marks[folder] = output_marker(folder)
        return self._marks[folder]

    def inside_output(self, path: str) -> str | None:
        """The nearest folder above ``path`` (a file) that holds predict's outputs, or None."""
        here = os.path.dirname(os.path.abspath(path))
        while True:
            if self.marked(here):
                return here
            up = os.path.dirname(here)
            if up == here:
                return None
            here = up

    def notes(self) -> list[str]:
        """One line per kind of thing skipped, with how many and an example."""
        lines = []
        if self.outputs:
            lines.append(f"skipped {len(self.outputs)} folder(s) holding facevision predict outputs (image.json, "
                         f"summary.json or a run's lock file), e.g. {self.outputs[0]}: outputs are not read as photos")
        if self.symlinked:
            lines.append(f"skipped {len(self.symlinked)} symbolic link(s) to folders, e.g. {self.symlinked[0]}: links "
                         "inside a folder are not followed (give the folder itself to include it)")
        if self.dangling:
            lines.append(f"skipped {len(self.dangling)} broken symbolic link(s) (pointing to nothing), e.g. "
                         f"{self.dangling[0]}")
        if self.unsupported:
            kinds = sorted({Path(u).suffix.lower() for u in self.unsupported})
            lines.append(f"skipped {len(self.unsupported)} image file(s) of a format that cannot be read here "
                         f"({', '.join(kinds[:6])}{', ...' if len(kinds) > 6 else ''}), e.g. {self.unsupported[0]}; "
                         "convert them to JPEG or PNG")
        return lines


def _image_files(folder: Path, exclude: str | None, failures: list[dict[str, Any]], skipped: _Skipped) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted), outside ``exclude`` and outside folders of predict's outputs;
    a subfolder that cannot be entered is a failure record (its photos would otherwise vanish silently); links to
    folders, broken links, folders of predict's outputs and image files of a format not read are counted in
    ``skipped``."""
    found: list[Path] = []

    def unreadable(err: OSError) -> None:
        failures.append(_failure(str(err.filename), f"cannot enter folder ({err.strerror}); its photos are skipped"))

    for here, dirs, names in os.walk(folder, onerror=unreadable):
        if Path(here) != folder and output_marker(here, names + dirs):
            skipped.outputs.append(here)
            dirs[:] = []
            continue
        kept = []
        for d in dirs:
            path = os.path.join(here, d)
            if _excluded(path, exclude):
                continue
            if os.path.islink(path):
                skipped.symlinked.append(path)
            else:
                kept.append(d)
        dirs[:] = kept
        for n in names:
            path = Path(here) / n
            if _readable_suffix(path.suffix):
                if path.is_file():
                    found.append(path)
                elif path.is_symlink() and not path.exists():
                    skipped.dangling.append(str(path))
            elif path.is_symlink() and not path.exists():
                if _image_like(n):
                    skipped.dangling.append(str(path))
            elif _image_like(n):
                skipped.unsupported.append(str(path))
    return sorted(found)


def _no_images_reason(folder: Path) -> str:
    if folder.suffix.lower() in IMAGE_SUFFIXES:
        return "is a folder, not an image file, and holds no images"
    return f"folder holds no images (looked for {', '.join(IMAGE_SUFFIXES)} in it and its subfolders)"


def _output_folder_reason(marker: str) -> str:
    what = "the folder of one photo of" if marker == IMAGE_RECORD else "an output folder of"
    return f"is {what} an earlier facevision predict run (it holds {marker}); outputs are not read as photos"


def expand_inputs(paths: list[str], exclude: str | Path | None = None, notes: list[str] | None = None
                  ) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files, folders (recursive, image suffixes only) and globs -> (unique files in order, failure records).

    Failures: arguments that match nothing or cannot be reached, folders without images, subfolders that
    cannot be entered, a folder given that holds predict's outputs (:func:`output_marker`). ``exclude`` (the output
    folder) and everything under it is never an input. Inside folders and globs, folders of predict's outputs (an
    earlier OUT, a photo's folder), links to folders, broken links and image files of a format not read (``.avif``
    where Pillow lacks it, camera raw) are skipped; ``notes``, when given, gets one line per kind saying how many.
    """
    files: list[Path] = []
    failures: list[dict[str, Any]] = []
    seen: set[Path] = set()
    excl = os.path.realpath(exclude) if exclude is not None else None
    skipped = _Skipped()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for arg in paths:
        p = Path(arg)
        kind = _path_kind(p)
        if kind in ("file", "dir") and _excluded(p, excl):
            failures.append(_failure(arg, f"lies in the output folder {exclude}; outputs are not read as photos"))
        elif kind == "file":
            add(p)
        elif kind == "dir" and skipped.marked(str(p)):
            failures.append(_failure(arg, _output_folder_reason(skipped.marked(str(p)))))
        elif kind == "dir":
            found = _image_files(p, excl, failures, skipped)
            if not found:
                failures.append(_failure(arg, _no_images_reason(p)))
            for f in found:
                add(f)
        elif kind == "other":
            failures.append(_failure(arg, "not a regular file (a device, pipe or socket)"))
        elif kind == "denied":
            failures.append(_failure(arg, "permission denied (a folder on its path cannot be entered)"))
        elif p.is_symlink() and glob.escape(arg) == arg:
            failures.append(_failure(arg, f"broken symbolic link (points to {os.readlink(p)}, which does not exist)"))
        else:
            everything = sorted(glob.glob(arg, recursive=True))
            matches = [m for m in everything if not _excluded(m, excl)]
            hits: list[Path] = []
            folders: list[Path] = []
            outputs: list[str] = []  # folders of predict's outputs and broken links the pattern met
            dangling: list[str] = []
            for m in matches:
                mp = Path(m)
                owner = m if mp.is_dir() and skipped.marked(m) else skipped.inside_output(m)
                if owner is not None:
                    if owner not in outputs and owner not in skipped.outputs:
                        outputs.append(owner)
                elif mp.is_dir():
                    folders.append(mp)
                elif mp.is_file():
                    hits.append(mp)
                elif mp.is_symlink():
                    dangling.append(m)
            for folder in folders:  # files first, then what the folders hold (the order of output names)
                hits += _image_files(folder, excl, failures, skipped)
            if hits:  # said in the run's notes; a pattern left with nothing says it in its own line instead
                skipped.outputs += outputs
                skipped.dangling += dangling
            else:
                failures.append(_failure(arg, "the pattern matches only files in the output folder" if everything and
                                         not matches else "the pattern matches only facevision predict outputs of "
                                         "an earlier run; outputs are not read as photos" if outputs and not folders
                                         and not dangling else "the pattern matches only broken symbolic links "
                                         "(pointing to nothing)" if dangling and not folders and not outputs else
                                         "the pattern matches only folders without images" if matches else
                                         "no such file or folder (or the pattern matches nothing)"))
            for h in hits:
                add(h)
    if notes is not None:
        notes.extend(skipped.notes())
    return files, failures


def _recorded_source(folder: Path) -> str | None:
    try:
        return json.loads((folder / IMAGE_RECORD).read_text()).get("source")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _usable(out: Path | None, name: str, source: str) -> bool:
    """``out/name`` may hold this source's results: absent, a real folder inside OUT of the same source, or one
    recording no source that holds only what predict writes (:func:`_foreign`). A name whose path cannot even
    be looked up (too long) holds nothing: usable here, failed by run_batch."""
    if out is None:
        return True
    folder = out / name
    try:
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()) or not _inside(out, folder):
            return False
    except OSError:  # ENAMETOOLONG and the like: output_folder_problem() names it for that input
        return True
    recorded = _recorded_source(folder)
    return recorded == source if recorded is not None else not _foreign(folder)


def _foreign(folder: Path) -> list[str]:
    """What ``folder`` (``OUT/<name>``) holds that predict does not write there (anything but image.json and
    face<k> folders), sorted: such a folder is never replaced by a photo's new folder. [] when absent."""
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


def _finished(out_dir: Path, source: Path, want: frozenset[str] | None = None, mesh: bool = True,
              all_faces: bool = False) -> dict[str, Any] | None:
    """``out_dir``'s image.json when it holds a finished photo (:func:`finished_photo`) of ``source`` with every
    output of ``want`` that a run making meshes (``mesh``) or not writes (:func:`_missing_outputs`), and, for a run
    asking for every face (``all_faces``), made by such a run (image.json's ``all_faces``: a photo of a run that
    kept only the largest face is redone, with the faces it left out), else None."""
    rec = finished_photo(out_dir)
    if rec is None or rec.get("source") != str(source.resolve()):
        return None
    if all_faces and rec.get("all_faces") is not True:
        return None
    if want is not None and _missing_outputs(out_dir, rec, want, mesh):
        return None
    return rec


def _missing_outputs(out_dir: Path, rec: dict[str, Any], want: frozenset[str], mesh: bool) -> set[str]:
    """The outputs of ``want`` a run making meshes or not (``mesh``; without, no mesh files are made) would write
    that the finished photo ``rec`` in ``out_dir`` lacks on disk, for any of its ok faces. Not missing: what
    the photo's own run asked for and could not make for a face (fit_mesh where the face-model fit failed; its
    image.json lists what was asked and each face's outputs). With meshes, the outputs that show the mesh are
    missing when the photo's run made none (its preview has no mesh)."""
    want = set(want) if mesh else set(want) - MESH_FILE_OUTPUTS
    if mesh and rec.get("mesh") is False and want & MESH_OUTPUTS:
        return want & MESH_OUTPUTS
    asked = rec.get("asked")
    missing: set[str] = set()
    for face in rec["faces"]:
        if face.get("status") != "ok":
            continue
        lacks = want - set(present_outputs(out_dir / face["dir"]))
        if isinstance(asked, list) and isinstance(face.get("outputs"), list):
            lacks -= set(asked) - set(face["outputs"])
        missing |= lacks
    return missing


def _held_outputs(out_dir: Path, source: Path) -> frozenset[str]:
    """The outputs ``out_dir`` holds for ``source`` (any ok face): a rerun without overwrite writes them again."""
    rec = finished_photo(out_dir)
    if rec is None or rec.get("source") != str(source.resolve()):
        return frozenset()
    return frozenset(o for f in rec["faces"] if f.get("status") == "ok" for o in present_outputs(out_dir / f["dir"]))


def _face_counts(rec: dict[str, Any]) -> dict[str, int]:
    """``{"faces_detected", "faces_skipped"}`` of a photo from its image.json (or a record alike): faces the detector
    found and those left out (found but not processed: only the largest is, without ``--all-faces``); {} for an
    image.json written before they were recorded."""
    found = rec.get("faces_detected")
    if not isinstance(found, int) or isinstance(found, bool) or not isinstance(rec.get("faces"), list):
        return {}
    return {"faces_detected": found, "faces_skipped": max(0, found - len(rec["faces"]))}


@dataclass
class _Pending:
    """One input read, detected and cropped, waiting for the network (in the calling process); ``key``: its
    record's index; ``outputs``: the outputs to write for it."""

    key: int
    path: Path
    out_dir: Path
    photo: ScaledPhoto
    crops: np.ndarray
    boxes: list
    faces: list
    timings: list
    angles: list
    refusals: list
    outputs: frozenset[str]
    found: int = 0
    all_faces: bool = False


@dataclass
class _WriteJob:
    """Everything needed to finish one input, as plain data (sent to a writer process as it is).

    Per face (F of them): crops (F, S, S, 3) uint8, depth (F, S, S) float32 crop px, corr (F, S, S, 3) float32,
    mask (F, S, S) bool (:mod:`facevision.common.conventions`), boxes: integer crop boxes and faces: detector boxes
    (photo px), angles: crop angles (degrees), refusals: why a face is refused (its way up cannot be told) or
    None, :class:`facevision.predict.predictor.FaceCrops`; timings: ms per stage so far; network_ms: the network's ms per face;
    outputs: the outputs to write (:data:`facevision.predict.outputs.OUTPUT_FILES` names); found: faces the detector
    found in the photo (more than ``faces`` when only the largest is processed); all_faces: every face was asked for.
    """

    path: Path
    out_dir: Path
    photo: ScaledPhoto
    crops: np.ndarray
    boxes: list
    faces: list
    timings: list
    angles: list
    refusals: list
    depth: np.ndarray
    corr: np.ndarray
    mask: np.ndarray
    network_ms: float
    outputs: frozenset[str]
    found: int = 0
    all_faces: bool = False


@dataclass
class _Outcome:
    """What finishing one input reports back to the calling process: its record's ``status``, ``faces`` and
    ``reason``; ``errors``: the reasons of its error lines, in order; ``done``: its ``-v`` line, if any."""

    status: str = "failed"
    faces: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    errors: list[str] = field(default_factory=list)
    done: str | None = None

    def fail(self, reason: str) -> None:
        self.status, self.reason = "failed", reason
        self.errors.append(reason)


@dataclass(frozen=True)
class _WriteSetup:
    """What a writer needs besides its jobs (picklable); calling it makes a writer's state once: its own
    :class:`Postprocessor` (face model, reference, mesh settings) and FLAME model."""

    predict: PredictConfig
    output: OutputConfig
    render: RenderConfig
    log: bool
    flame_model: str | None

    def __call__(self) -> "_WriteState":
        flame_fit, flame_off = _flame_setup(self.flame_model)
        if self.flame_model is not None and flame_fit is None:  # loaded in the calling process, not here: say so
            raise RuntimeError(f"{flame_off} (in a writer)")
        return _WriteState(Postprocessor(self.predict).postprocess, self, flame_fit)

    def preload(self) -> None:
        """Import what only the writers use (Open3D for smoothing and PLY, scipy.sparse, the fitted mesh) in the
        process the writer processes fork from: ~1 s of CPU once instead of once per worker. Imports only: no
        Open3D work, which would start threads before the fork."""
        from facevision.common.lazy_modules import import_open3d

        import_open3d()
        import scipy.sparse.csgraph  # noqa: F401

        import facevision.fit.fit_mesh  # noqa: F401
        import facevision.fit.texture  # noqa: F401
        import facevision.predict.mesh_frame  # noqa: F401
        import facevision.predict.overlay  # noqa: F401
        import meshing  # noqa: F401


@dataclass
class _WriteState:
    """A writer's state: postprocess(crop, depth, corr, mask, crop_box, bbox, score, ...) -> FaceResult, the
    settings, and fit_and_save(face_dir, result) of FLAME or None."""

    postprocess: Callable[..., Any]
    setup: _WriteSetup
    flame_fit: Callable | None


def _write_input(state: _WriteState, job: _WriteJob) -> _Outcome:
    """Maps of one input's faces -> results -> files; runs in a writer (process, thread or the calling thread)."""
    out = _Outcome()
    try:
        results = []
        for j in range(len(job.faces)):
            tm = dict(job.timings[j], network=job.network_ms)
            results.append(state.postprocess(job.crops[j], job.depth[j], job.corr[j], job.mask[j], job.boxes[j],
                                             job.faces[j].box, job.faces[j].score, index=j, timings=tm,
                                             crop_angle=float(job.angles[j]), refusal=job.refusals[j]))
    except Exception as exc:  # an unexpected failure fails this input, not the batch
        out.fail(f"prediction failed ({type(exc).__name__}: {exc})")
        return out
    try:
        _finish(job, results, state, out)  # handles write failures itself
    except Exception as exc:  # noqa: BLE001 - anything else still fails only this input
        out.fail(f"writing outputs failed ({type(exc).__name__}: {exc})")
    return out


def _flame_setup(model_path: str | None) -> tuple[Callable | None, str | None]:
    """Returns (fit_and_save(face_dir, result) -> summary, None) or (None, reason it is off)."""
    if not model_path:
        return None, None
    from facevision.flame import load_flame_model, register_and_save, resolve_model_path

    try:
        model = load_flame_model(resolve_model_path(model_path))
    except Exception as exc:  # FlameModelError and friends: the message names the file
        return None, f"FLAME model not usable: {exc}"

    def fit(face_dir: Path, result) -> dict[str, Any]:
        return register_and_save(face_dir, result.mesh, result.corr, result.landmarks68_crop, model)

    return fit, None


def _warm_up_quietly(predictor: Predictor) -> None:
    """Create the face detector with stderr (fd 2) sent to /dev/null: MediaPipe/TFLite print start-up
    banners from C++ there, which would drown the one-line-per-bad-input messages."""
    with native_stderr_silenced():
        try:
            predictor.detect(np.zeros((64, 64, 3), np.uint8))
        except Exception:
            pass  # a real problem shows up again, with its message, on the first input


def run_batch(predictor: Predictor, paths: list[str], out: str | Path, config: BatchConfig = BatchConfig()) -> dict[str, Any]:
    """Process every input; write per-face files, ``OUT/summary.json`` and (optionally) the report.

    Holds OUT's lock while it runs (:class:`OutputFolderLock`; :class:`OutputFolderBusyError` when another run
    holds it). Interrupted (KeyboardInterrupt: Ctrl-C, or SIGTERM turned into one by the command), it still
    writes the summary of what OUT holds, then re-raises. Returns the summary; ``summary["counts"]["failed"] > 0``
    means some input failed.
    """
    out = check_output_folder(out)
    with OutputFolderLock(out, config.shard):
        return _run_batch(predictor, paths, out, config)


def _run_batch(predictor: Predictor, paths: list[str], out: Path, config: BatchConfig) -> dict[str, Any]:
    remove_stale_temporaries(out, max_depth=2)  # left by a killed run: .<name>.<pid>-*.tmp* in OUT, OUT/<name>/...
    t_start = time.time()
    notes: list[str] = []
    files, records = expand_inputs(paths, exclude=out, notes=notes)
    for r in records:
        _err(r["input"], r["reason"])
    for line in notes:
        _print(f"facevision predict: note: {line}", sys.stderr)
    names = output_names(files, out)
    if config.shard is not None:
        k, n = config.shard
        keys = output_names(files)  # without OUT: the same on every machine, whatever OUT holds
        mine = [i for i, key in enumerate(keys) if shard_of(key, n) == k]
        files, names = [files[i] for i in mine], [names[i] for i in mine]
        if k != 1:
            records = []  # arguments that matched nothing are recorded by shard 1 only (reported by all)
    flame_fit, flame_off = _flame_setup(config.flame_model)
    if flame_off:
        _print(f"facevision predict: warning: {flame_off}; continuing without FLAME", sys.stderr)
    setup = _WriteSetup(predictor.config, config.output, config.render, config.log,
                        config.flame_model if flame_fit is not None else None)
    writer = config.writer
    if writer.resolved_kind == "process" and type(predictor).postprocess is not Predictor.postprocess:
        writer = replace(writer, kind="thread")  # a subclass's own postprocess runs where the predictor lives
    want, mesh = config.output.outputs, predictor.config.mesh is not None
    all_faces = bool(predictor.config.all_faces)
    pending: list[_Pending] = []
    n_pending = 0
    bar = _progress_bar(config, len(files))

    def finished(key: int, outcome: _Outcome) -> None:
        """A writer finished input ``key``: its record as the writer left it, its lines printed here."""
        rec = records[key]
        rec.update(status=outcome.status, faces=outcome.faces)
        if outcome.reason is None:
            rec.pop("reason", None)
        else:
            rec["reason"] = outcome.reason
        for reason in outcome.errors:
            _err(rec["input"], reason)
        if outcome.done:
            _print(outcome.done, sys.stdout)
        bar.update()

    def lost(key: int, reason: str) -> None:
        """A writer could not report on input ``key`` (its process died): its temporary folder goes; its folder
        in OUT is as whole as before (the old one, or the new one if it was renamed into place)."""
        remove_stale_temporaries(out, max_depth=0)
        rec = records[key]
        rec["faces"] = []
        _fail(rec, f"{reason}; its unfinished outputs were removed")
        bar.update()

    def flush(pool: WriterPool) -> None:
        nonlocal n_pending
        if not pending:
            return
        crops = np.concatenate([p.crops for p in pending])
        try:
            t = time.perf_counter()
            depth, corr, mask = predictor.run_network(crops)
            network_ms = (time.perf_counter() - t) * 1e3 / max(len(crops), 1)
        except Exception as exc:  # a network failure fails these inputs, not the batch
            for p in pending:
                _fail(records[p.key], f"prediction failed ({type(exc).__name__}: {exc})")
                bar.update()
            pending.clear()
            n_pending = 0
            return
        i = 0
        for p in pending:
            j = i + len(p.faces)
            pool.submit(p.key, _WriteJob(p.path, p.out_dir, p.photo, p.crops, p.boxes, p.faces, p.timings, p.angles,
                                         p.refusals, depth[i:j], corr[i:j], mask[i:j], network_ms, p.outputs,
                                         p.found, p.all_faces))
            i = j
        pending.clear()
        n_pending = 0

    here = _WriteState(predictor.postprocess, setup, flame_fit)  # for writing in this process (threads, one input)
    interrupted: BaseException | None = None
    try:
        with bar, open_writer(writer, _write_input, finished, lost, setup, here, tasks=len(files),
                              preload=setup.preload) as pool:
            if files:  # after the writer processes started: they set up while the detector does
                _warm_up_quietly(predictor)
            for path, name in zip(files, names):
                out_dir = out / name
                rec: dict[str, Any] = {"input": str(path), "output": name, "status": _PENDING, "faces": []}
                records.append(rec)
                if safe_stem(path).lower() in RESERVED_NAMES:
                    _warn(str(path), f"{safe_stem(path)} is one of the batch's own files; results go to {out_dir}")
                if not _inside(out, out_dir):  # output_names never picks such a name; checked before any write
                    _fail(rec, f"output folder {out_dir} would lie outside {out}")
                    bar.update()
                    continue
                problem = output_folder_problem(out_dir)  # e.g. OUT/<name>/... longer than PATH_MAX
                if problem:
                    _fail(rec, problem)
                    bar.update()
                    continue
                done = None if config.overwrite else _finished(out_dir, path, want, mesh, all_faces)
                if done is not None:
                    rec.update(status="ok", faces=done.get("faces", []), skipped=True, **_face_counts(done))
                    _log(config, f"{path}: already done -> {out_dir} (skipped; --overwrite redoes it)")
                    bar.update()
                    continue
                try:
                    photo = read_photo_scaled(path, config.max_pixels)
                    image = photo.image
                    if photo.frames > 1:
                        _note(str(path), f"holds {photo.frames} frames or pages; only the first is read")
                    t = time.perf_counter()
                    faces = predictor.detect(image)
                    t_det = (time.perf_counter() - t) * 1e3 / max(len(faces), 1)
                    found = max(int(getattr(faces, "found", len(faces))), len(faces))  # a plain list: all it holds
                    faces = list(faces)
                    if not faces:
                        _fail(rec, "no face detected")
                        bar.update()
                        continue
                    rec.update(_face_counts({"faces_detected": found, "faces": faces}))
                    t = time.perf_counter()
                    cut = predictor.crop_faces(image, faces)
                    t_crop = (time.perf_counter() - t) * 1e3 / len(faces)
                except ImageReadError as exc:
                    msg = str(exc)
                    _fail(rec, msg[len(str(path)) + 2:] if msg.startswith(str(path)) else msg)
                    bar.update()
                    continue
                except Exception as exc:
                    _fail(rec, f"{type(exc).__name__}: {exc}")
                    bar.update()
                    continue
                outputs = want if config.overwrite else want | _held_outputs(out_dir, path)  # a rerun loses none
                pending.append(_Pending(len(records) - 1, path, out_dir, photo, cut.crops, cut.boxes, faces,
                                        [{"detect": t_det, "crop": t_crop} for _ in faces], cut.angles,
                                        cut.refusals, outputs, found, all_faces))
                n_pending += len(faces)
                if n_pending >= predictor.config.batch_size:
                    flush(pool)
            flush(pool)
    except BaseException as exc:  # Ctrl-C, SIGTERM (the command raises it as one), or a bug: OUT's index first
        interrupted = exc
    summary = _write_summary(predictor, config, out, records, t_start, interrupted)
    if interrupted is not None:
        raise interrupted
    return summary


_PENDING = "pending"  # a record's status until its input is finished or failed (left so by an interrupted run)


def _indexed(out: Path, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """This run's records as OUT now holds them, and how many were never finished. An ok record gets the
    outputs its folder holds (:func:`facevision.predict.outputs.photo_outputs`) and fails when the folder is
    no longer finished; an unfinished one (an interrupted run) is listed when its folder was completed,
    else left out."""
    listed: list[dict[str, Any]] = []
    unfinished = 0
    for r in records:
        folder = out / r["output"] if r.get("output") else None
        if r["status"] == _PENDING:
            rec = _finished(folder, Path(r["input"])) if folder is not None else None
            if rec is None:
                unfinished += 1
                continue
            r.update(status="ok", faces=rec["faces"])
        if r["status"] == "ok":
            rec = finished_photo(folder) if folder is not None else None
            if rec is None:
                _fail(r, f"its outputs in {folder} are gone (removed while the batch ran?)")
                r.pop("skipped", None)
            else:
                r["outputs"] = photo_outputs(folder, r["faces"])
                r.update(_face_counts(rec))
        listed.append(r)
    return listed, unfinished


def _write_summary(predictor: Predictor, config: BatchConfig, out: Path, records: list[dict[str, Any]],
                   t_start: float, interrupted: BaseException | None) -> dict[str, Any]:
    """Build ``OUT/summary.json`` (or the shard's summary) from this run's records and what OUT holds
    (:func:`_indexed`; without ``--shard``, every other photo finished in OUT too, ``earlier_batch``) and write
    it; the report too, unless the run was interrupted. Returns the summary."""
    remove_stale_temporaries(out, max_depth=0)  # the temporary folders of writers stopped by an interruption
    records, unfinished = _indexed(out, records)
    counts = {"ok": sum(r["status"] == "ok" for r in records), "failed": sum(r["status"] == "failed" for r in records),
              "skipped": sum(bool(r.get("skipped")) for r in records)}
    summary = {
        "out": str(out),
        "checkpoint": None if predictor.checkpoint is None else str(predictor.checkpoint),
        "device": predictor.device,
        "crop_size": predictor.size,
        "mesh": predictor.config.mesh is not None,
        "outputs": sorted(config.output.outputs),
        "counts": counts,
        "faces": sum(len(r.get("faces", [])) for r in records if r["status"] == "ok"),
        "faces_skipped": sum(r.get("faces_skipped", 0) for r in records if r["status"] == "ok"),
        "elapsed_s": round(time.time() - t_start, 3),
        "max_pixels": config.max_pixels,
    }
    if interrupted is not None:
        summary.update(interrupted=True, unfinished=unfinished)
    if config.shard is not None:
        summary["shard"] = list(config.shard)
        summary["finished_in_out"] = counts["ok"]
        summary["inputs"] = records
    else:
        earlier = [dict(e, earlier_batch=True, **_face_counts(read_image_record(out / e["output"]) or {}))
                   for e in finished_photos(out, skip={r["output"] for r in records})]
        summary["finished_in_out"] = len(earlier) + counts["ok"]
        summary["inputs"] = earlier + records
    if config.report and interrupted is None:
        from facevision.predict.report import write_report

        try:
            summary["report"] = str(write_report(out, records))
        except Exception as exc:  # noqa: BLE001 - the summary is still written
            summary["report_error"] = str(exc)
            _err(str(out / REPORT_NAME), f"cannot write the report ({type(exc).__name__}: {exc})")
    name = SUMMARY_NAME if config.shard is None else shard_summary_name(*config.shard)
    try:
        atomic_write_json(out / name, summary)
    except OSError as exc:  # OutputWriteError: names the file and the reason (disk full...)
        summary["summary_error"] = str(exc)
        _print(f"facevision predict: error: {exc}", sys.stderr)
    if isinstance(interrupted, KeyboardInterrupt) and "summary_error" not in summary:
        _print(f"facevision predict: interrupted: {out / name} lists what {out} holds ({summary['finished_in_out']} "
               f"photo(s) finished; {unfinished} of this run's not)", sys.stderr)
    if config.shard is not None and "summary_error" not in summary and interrupted is None:
        _merge_if_complete(out, config.shard[1])
    _note_skipped_faces(records, out / name)
    return summary


def _note_skipped_faces(records: list[dict[str, Any]], summary_path: Path) -> None:
    """One stderr line for the run: how many faces the photos of this run hold beyond the one processed of each."""
    left = [r.get("faces_skipped", 0) for r in records if r["status"] == "ok" and r.get("faces_skipped", 0) > 0]
    if left:
        _print(f"facevision predict: note: {sum(left)} more face(s) found in {len(left)} photo(s) were left out: only "
               f"the largest face of a photo is processed (faces_skipped in {summary_path}); --all-faces processes "
               "them", sys.stderr)


def _merge_if_complete(out: Path, n: int) -> None:
    """Once every shard's summary of this N is in OUT, write their merge as OUT/summary.json."""
    from facevision.predict.shards import ShardMergeError

    try:
        merged = merge_shard_summaries(out, n)
    except ShardMergeError:
        return  # other shards still running (or elsewhere): `facevision merge-shards OUT` merges later
    try:
        atomic_write_json(out / SUMMARY_NAME, merged)
    except OSError as exc:
        _print(f"facevision predict: error: {exc}", sys.stderr)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


class _Bar:
    """One tqdm bar (photos, photos/s, ETA) on stderr, moved from any thread."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._lock = threading.Lock()
        self._bar = tqdm(total=total, unit="photo", desc="facevision predict", file=sys.stderr, disable=None,
                         dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int = 1) -> None:
        with self._lock:
            self._bar.update(n)

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()


def _progress_bar(config: BatchConfig, total: int) -> "_Bar | _NoBar":
    return _Bar(total) if config.progress and total else _NoBar()


def one_line(text: str) -> str:
    """``text`` with control characters escaped as in a repr (a newline as ``\\n``, ESC as ``\\x1b``), so a file
    name holding them can neither split a message line nor drive the terminal."""
    return _CONTROL_CHARS.sub(lambda m: repr(m.group())[1:-1], text)


def _print(line: str, file) -> None:
    """One line, also from writer threads, without breaking the progress bar (tqdm.write clears and redraws it);
    control characters in it (from file names or messages) are escaped (:func:`one_line`)."""
    from tqdm import tqdm

    tqdm.write(one_line(line), file=file)
    file.flush()


def _log(config: BatchConfig, line: str) -> None:
    if config.log:
        _print(line, sys.stdout)


def _warn(path: str, reason: str) -> None:
    _print(f"facevision predict: warning: {path}: {reason}", sys.stderr)


def _note(path: str, what: str) -> None:
    _print(f"facevision predict: note: {path}: {what}", sys.stderr)


def _err(path: str, reason: str) -> None:
    _print(f"facevision predict: error: {path}: {reason}", sys.stderr)


def _fail(rec: dict[str, Any], reason: str) -> None:
    rec.update(status="failed", reason=reason)
    _err(rec["input"], reason)


def _finish(job: _WriteJob, results: list, state: _WriteState, outcome: _Outcome) -> None:
    """Write one input's folder as a whole: its faces, then its image.json, into a temporary folder beside
    ``OUT/<name>`` that then replaces it (:func:`facevision.common.fileio.atomic_folder`; never one holding files predict
    did not write, :func:`_foreign`); set ``outcome`` (status, faces, reason, lines)."""
    setup = state.setup
    output = replace(setup.output, outputs=job.outputs)
    mesh = setup.predict.mesh is not None
    faces = []
    where: list[Path] = []  # the temporary folder: messages name the final one
    try:
        foreign = _foreign(job.out_dir)
        if foreign:
            raise OutputWriteError(f"{job.out_dir}: holds {', '.join(foreign[:3])}, which facevision predict did "
                                   "not write; the folder is left as it is (move it away to redo this photo)")
        with atomic_folder(job.out_dir) as folder:
            where.append(folder)
            face_files: list[list[str]] = []
            for k, res in enumerate(results):
                res.index = k
                face_dir = folder / face_dir_name(k)
                extra: dict[str, Any] = {}
                if state.flame_fit is not None and res.ok and res.mesh is not None:
                    try:
                        extra["flame"] = state.flame_fit(face_dir, res)
                    except Exception as exc:
                        extra["flame"] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                data = write_face(face_dir, res, job.photo.image, str(job.path), setup.render, extra,
                                  photo_scale=job.photo.scale, output=output)
                face_files.append(data["files"])
                faces.append({"dir": face_dir.name, "status": data["status"],
                              "outputs": written_outputs(data["files"]), **({"error": res.error} if res.error else {})})
            photo_files = write_photo_files(folder, results, job.photo.image, output)  # overlay.jpg, once per photo
            for face, files in zip(faces, face_files):  # a photo's files count for each of its ok faces
                if photo_files and face["status"] == "ok":
                    face["outputs"] = written_outputs(files + photo_files)
            ok = [f for f in faces if f["status"] == "ok"]
            asked = job.outputs if mesh else job.outputs - MESH_FILE_OUTPUTS
            image_record = {"source": str(job.path.resolve()), "input": str(job.path), "status": "ok" if ok else
                            "failed", "faces": faces, "image_size": list(job.photo.original_size),
                            "asked": sorted(asked), "mesh": mesh, "all_faces": job.all_faces,
                            "faces_detected": max(job.found, len(faces))}
            if job.photo.scale != (1.0, 1.0):
                image_record["processed_size"] = [int(job.photo.image.shape[1]), int(job.photo.image.shape[0])]
            atomic_write_json(folder / IMAGE_RECORD, image_record)
    except OSError as exc:  # OutputWriteError names the file and says "disk full" when it is
        outcome.fail(f"cannot write outputs: {_final_names(str(exc), where, job.out_dir)}")
        return
    except Exception as exc:
        outcome.fail(f"writing outputs failed ({type(exc).__name__}: {_final_names(str(exc), where, job.out_dir)})")
        return
    outcome.faces = faces
    if ok:
        outcome.status, outcome.reason = "ok", None
        if setup.log:
            outcome.done = f"{job.path}: {len(ok)} face(s) -> {job.out_dir}"
    else:
        outcome.fail(faces[0].get("error", "no usable face"))


def _final_names(message: str, temporary: list[Path], final: Path) -> str:
    """``message`` naming the files of a photo's final folder instead of its temporary one."""
    return message.replace(str(temporary[0]), str(final)) if temporary else message

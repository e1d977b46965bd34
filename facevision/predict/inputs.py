"""Listing ``facevision predict``'s inputs: files, folders (searched recursively) and glob patterns -> the photos
to read, in order, once each (:func:`expand_inputs`).

OUT and anything under it is never an input. Folders holding predict's own outputs (:func:`output_marker`: an
earlier OUT, a photo's folder) are not searched, and a folder given that is one fails in one line; links to
folders met inside a folder, broken links and image files of a format not read here are skipped with one line
per kind and run.
"""
from __future__ import annotations

import glob
import json
import mimetypes
import os
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from facevision.predict.lock import LOCK_NAME
from facevision.predict.outputs import IMAGE_RECORD, SUMMARY_NAME
from facevision.predict.shards import SHARD_SUMMARY

__all__ = ["IMAGE_SUFFIXES", "OPTIONAL_SUFFIXES", "output_marker", "expand_inputs"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif", ".pgm", ".ppm")


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


@dataclass
class _Listing:
    """What listing the inputs gathers: the files in order (once each), failure records and what was skipped.
    exclude: the output folder as given (named in messages); excluded: the same, resolved."""

    exclude: str | Path | None
    excluded: str | None = None
    files: list[Path] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: _Skipped = field(default_factory=_Skipped)
    seen: set[Path] = field(default_factory=set)

    def add(self, path: Path) -> None:
        key = path.resolve()
        if key not in self.seen:
            self.seen.add(key)
            self.files.append(path)

    def fail(self, arg: str, reason: str) -> None:
        self.failures.append(_failure(arg, reason))


def expand_inputs(paths: list[str], exclude: str | Path | None = None, notes: list[str] | None = None
                  ) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files, folders (recursive, image suffixes only) and globs -> (unique files in order, failure records).

    Failures: arguments that match nothing or cannot be reached, folders without images, subfolders that
    cannot be entered, a folder given that holds predict's outputs (:func:`output_marker`). ``exclude`` (the output
    folder) and everything under it is never an input. Inside folders and globs, folders of predict's outputs (an
    earlier OUT, a photo's folder), links to folders, broken links and image files of a format not read (``.avif``
    where Pillow lacks it, camera raw) are skipped; ``notes``, when given, gets one line per kind saying how many.
    """
    listing = _Listing(exclude, os.path.realpath(exclude) if exclude is not None else None)
    for arg in paths:
        _list_argument(listing, arg)
    if notes is not None:
        notes.extend(listing.skipped.notes())
    return listing.files, listing.failures


def _list_argument(listing: _Listing, arg: str) -> None:
    """Add what one command-line argument names to ``listing``, or its failure."""
    p = Path(arg)
    kind = _path_kind(p)
    if kind in ("file", "dir") and _excluded(p, listing.excluded):
        listing.fail(arg, f"lies in the output folder {listing.exclude}; outputs are not read as photos")
    elif kind == "file":
        listing.add(p)
    elif kind == "dir":
        _list_folder(listing, arg, p)
    elif kind == "other":
        listing.fail(arg, "not a regular file (a device, pipe or socket)")
    elif kind == "denied":
        listing.fail(arg, "permission denied (a folder on its path cannot be entered)")
    elif p.is_symlink() and glob.escape(arg) == arg:
        listing.fail(arg, f"broken symbolic link (points to {os.readlink(p)}, which does not exist)")
    else:
        _list_pattern(listing, arg)


def _list_folder(listing: _Listing, arg: str, folder: Path) -> None:
    """A folder given: its image files, or a failure (it holds predict's outputs, or no image)."""
    marker = listing.skipped.marked(str(folder))
    if marker:
        listing.fail(arg, _output_folder_reason(marker))
        return
    found = _image_files(folder, listing.excluded, listing.failures, listing.skipped)
    if not found:
        listing.fail(arg, _no_images_reason(folder))
    for f in found:
        listing.add(f)


@dataclass
class _Matches:
    """What a glob pattern matched outside OUT, sorted by kind."""

    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # folders of predict's outputs the pattern met
    dangling: list[str] = field(default_factory=list)  # broken links


def _list_pattern(listing: _Listing, arg: str) -> None:
    """A glob pattern (or a path that does not exist): the files it matches, then the image files of the folders
    it matches; a failure when that leaves nothing."""
    everything = sorted(glob.glob(arg, recursive=True))
    matches = [m for m in everything if not _excluded(m, listing.excluded)]
    met = _sort_matches(matches, listing.skipped)
    hits = list(met.files)
    for folder in met.folders:  # files first, then what the folders hold (the order of output names)
        hits += _image_files(folder, listing.excluded, listing.failures, listing.skipped)
    if hits:  # said in the run's notes; a pattern left with nothing says it in its own line instead
        listing.skipped.outputs += met.outputs
        listing.skipped.dangling += met.dangling
    else:
        listing.fail(arg, _pattern_reason(bool(everything), bool(matches), met))
    for h in hits:
        listing.add(h)


def _sort_matches(matches: list[str], skipped: _Skipped) -> _Matches:
    met = _Matches()
    for m in matches:
        mp = Path(m)
        owner = m if mp.is_dir() and skipped.marked(m) else skipped.inside_output(m)
        if owner is not None:
            if owner not in met.outputs and owner not in skipped.outputs:
                met.outputs.append(owner)
        elif mp.is_dir():
            met.folders.append(mp)
        elif mp.is_file():
            met.files.append(mp)
        elif mp.is_symlink():
            met.dangling.append(m)
    return met


def _pattern_reason(anything: bool, outside_out: bool, met: _Matches) -> str:
    """Why a pattern gave no photo: ``anything`` it matched, ``outside_out`` of it outside OUT, ``met``."""
    if anything and not outside_out:
        return "the pattern matches only files in the output folder"
    if met.outputs and not met.folders and not met.dangling:
        return "the pattern matches only facevision predict outputs of an earlier run; outputs are not read as photos"
    if met.dangling and not met.folders and not met.outputs:
        return "the pattern matches only broken symbolic links (pointing to nothing)"
    if outside_out:
        return "the pattern matches only folders without images"
    return "no such file or folder (or the pattern matches nothing)"

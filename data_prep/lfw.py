"""Listing an LFW-style tree ``<root>/<Person>/<Person>_NNNN.<ext>``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PhotoEntry", "list_lfw", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class PhotoEntry:
    """One input file: ``id`` = file stem (unique in LFW), ``identity`` = folder name, ``source`` = path relative to root."""

    id: str
    identity: str
    source: str


def list_lfw(root: str | Path, all_files: bool = True) -> list[PhotoEntry]:
    """Files one level below each person folder, sorted. With ``all_files`` every regular file is listed
    (non-images are then counted as unreadable); otherwise only known image extensions."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: LFW root folder does not exist")
    out = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(person.iterdir()):
            if not f.is_file() or f.name.startswith("."):
                continue
            if not all_files and f.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            out.append(PhotoEntry(id=f"{person.name}__{f.stem}" if not f.stem.startswith(person.name) else f.stem,
                                  identity=person.name, source=f"{person.name}/{f.name}"))
    seen: dict[str, int] = {}
    unique = []
    for e in out:  # same stem with two extensions: keep ids unique
        k = seen.get(e.id, 0)
        seen[e.id] = k + 1
        unique.append(e if k == 0 else PhotoEntry(id=f"{e.id}__{k}", identity=e.identity, source=e.source))
    return unique

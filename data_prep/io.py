"""Atomic file writing and robust image reading shared by every stage.

Every output of the project goes through these helpers so that a file appears
complete or not at all: data is written to a temporary name in the target folder
and then renamed over the final name (``os.replace`` is atomic on POSIX).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_png",
    "read_png",
    "ImageReadError",
    "read_photo",
]


class ImageReadError(ValueError):
    """An input image could not be read; the message names the file and the reason."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` atomically.

    The temporary file lives in the same folder (same file system) and keeps the
    final suffix so that libraries choosing a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def atomic_write_png(path: str | os.PathLike, image: np.ndarray, rgb: bool = True) -> Path:
    """Write an 8- or 16-bit PNG atomically.

    Args:
        image: ``(H, W)`` gray or ``(H, W, 3|4)`` colour, dtype uint8 or uint16.
        rgb: colour channels are in RGB(A) order (converted to OpenCV's BGR on write).
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"{path}: PNG data must be uint8 or uint16, got {image.dtype}")
    out = image
    if rgb and image.ndim == 3 and image.shape[2] == 3:
        out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif rgb and image.ndim == 3 and image.shape[2] == 4:
        out = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(out))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    return atomic_write_bytes(path, buf.tobytes())


def read_png(path: str | os.PathLike, rgb: bool = True) -> np.ndarray:
    """Read a PNG keeping its bit depth (uint8 or uint16); colour comes back as RGB.

    Raises:
        ImageReadError: the file is missing or not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"{path}: not a decodable image")
    if rgb and img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif rgb and img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """Read any photo as (H, W, 3) uint8 RGB, upright.

    Handles EXIF orientation, grayscale, palette, RGBA/LA (alpha dropped over black),
    16-bit and CMYK images through Pillow.

    Raises:
        ImageReadError: missing, empty, truncated or non-image file; the message names the file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
                gray = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA").convert("RGB")
            elif im.mode != "RGB":
                im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (unrecognized format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: unreadable image ({exc})") from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageReadError(f"{path}: image has no pixels")
    return np.ascontiguousarray(arr)

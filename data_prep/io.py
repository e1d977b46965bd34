"""Atomic writing of JSON and PNG, and robust image reading, shared by every stage.

Every output of the project is written atomically (complete or absent): the core (:func:`atomic_write`,
:func:`atomic_write_bytes`, :class:`OutputWriteError`, ...) is :mod:`meshing.fileio`'s, re-exported here.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from meshing.fileio import (PNG_SIGNATURE, OutputWriteError, atomic_write, atomic_write_bytes, fsync_file, png_complete,
                            remove_stale_temporaries, temp_prefix, write_error)

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_png",
    "read_png",
    "ImageReadError",
    "OutputWriteError",
    "ScaledPhoto",
    "read_photo",
    "read_photo_scaled",
    "remove_stale_temporaries",
    "temp_prefix",
    "write_error",
    "fsync_file",
    "png_complete",
    "read_npz_asset",
]


class ImageReadError(ValueError):
    """An input image could not be read; the message names the file and the reason."""


def read_npz_asset(path: Path, need: tuple[str, ...], what: str, hint: str) -> dict[str, np.ndarray]:
    """Arrays of a committed .npz asset (read without pickles); FileNotFoundError / ValueError naming the
    file and the missing keys. ``what`` names the asset, ``hint`` says how to build it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} asset missing ({hint})")
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    missing = [k for k in need if k not in data]
    if missing:
        raise ValueError(f"{path}: {what} asset lacks {missing}")
    return data


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


@dataclass(frozen=True)
class ScaledPhoto:
    """A photo as read for processing: ``image`` (h, w, 3) uint8 RGB, upright, possibly reduced from the
    upright photo's ``original_size`` (W, H) to respect a pixel limit."""

    image: np.ndarray
    original_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy) = image size / original size; divide image coordinates by them to get original pixels."""
        return self.image.shape[1] / self.original_size[0], self.image.shape[0] / self.original_size[1]


def _to_u8(values: np.ndarray) -> np.ndarray:
    """Integer samples -> uint8: 16-bit full scale (65535), or 0-255 when no value exceeds 255."""
    arr = values.astype(np.float64)
    hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
    return np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _over_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite uint8 RGB with (H, W) alpha in [0, 1] over black."""
    return np.clip(rgb.astype(np.float64) * alpha[..., None] + 0.5, 0, 255).astype(np.uint8)


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(25)
    return head[24] if len(head) == 25 and head[:8] == PNG_SIGNATURE else 0


def _read_png16_colour(path: Path) -> np.ndarray:
    """A 16-bit colour/alpha PNG as uint8 RGB (Pillow keeps only the high byte, so values <= 255 read black)."""
    img = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"{path}: unreadable image (16-bit PNG could not be decoded)")
    if img.ndim == 2:
        return np.repeat(_to_u8(img)[..., None], 3, axis=2)
    rgb = _to_u8(img[..., 2::-1])
    if img.shape[2] == 4:
        a = img[..., 3].astype(np.float64)
        return _over_black(rgb, a / (65535.0 if a.max(initial=0) > 255 else 255.0))
    return rgb


def _pil_to_rgb(im) -> np.ndarray:
    """Any Pillow image -> uint8 RGB; alpha is composited over black, 16/32-bit gray scaled (see _to_u8)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.repeat(_to_u8(np.asarray(im))[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"))
        return _over_black(rgba[..., :3], rgba[..., 3] / 255.0)
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)


# EXIF orientation -> the numpy operation that makes the image upright (as PIL.ImageOps.exif_transpose)
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1),
}


def _reduce(arr: np.ndarray, max_pixels: int | None) -> np.ndarray:
    h, w = arr.shape[:2]
    if not max_pixels or h * w <= max_pixels:
        return arr
    s = (max_pixels / (h * w)) ** 0.5
    size = (max(1, int(w * s)), max(1, int(h * s)))
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)


def read_photo_scaled(path: str | os.PathLike, max_pixels: int | None = None) -> ScaledPhoto:
    """Read any photo as upright uint8 RGB with at most ``max_pixels`` pixels (None: full size).

    Larger photos are reduced (JPEG: decoded at 1/2, 1/4 or 1/8 scale by libjpeg, so the full-size
    image never exists in memory; then area-resampled to the limit). ``ScaledPhoto.scale`` maps the
    returned image's coordinates back to the original photo's.

    Raises:
        ImageReadError: see :func:`read_photo`.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are bounded by max_pixels
            with Image.open(path) as im:
                w, h = im.size
                if max_pixels and w * h > max_pixels and im.format == "JPEG":
                    s = (max_pixels / (w * h)) ** 0.5
                    im.draft(im.mode, (max(1, int(w * s)), max(1, int(h * s))))
                im.load()
                orientation = im.getexif().get(0x0112, 1)
                if im.format == "PNG" and im.mode in ("RGB", "RGBA", "LA") and _png_bit_depth(path) == 16:
                    arr = _read_png16_colour(path)
                else:
                    arr = _pil_to_rgb(im)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large to decode ({exc})") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (unrecognized format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: unreadable image ({exc})") from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageReadError(f"{path}: image has no pixels")
    if orientation in _ORIENT:
        arr = _ORIENT[orientation](arr)
        w, h = (h, w) if orientation >= 5 else (w, h)
    return ScaledPhoto(np.ascontiguousarray(_reduce(arr, max_pixels)), (int(w), int(h)))


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """Read any photo as (H, W, 3) uint8 RGB, upright.

    Handles EXIF orientation, grayscale, palette, RGBA/LA (composited over black), 16-bit gray and
    colour (full scale 65535, or 255 when no value exceeds 255) and CMYK images.

    Raises:
        ImageReadError: missing, empty, truncated or non-image file; the message names the file.
    """
    return read_photo_scaled(path).image

"""Images in and out: robust photo reading (any size, EXIF orientation, 16-bit PNG), PNG read/write (atomic,
on :mod:`facevision.common.fileio`), and the package's small npz assets.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facevision.common.fileio import PNG_SIGNATURE, atomic_write_bytes

__all__ = ["atomic_write_png", "read_png", "ImageReadError", "ScaledPhoto", "read_photo", "read_photo_scaled",
           "read_npz_asset"]


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


def atomic_write_png(path: str | os.PathLike, image: np.ndarray, rgb: bool = True) -> Path:
    """Write an 8- or 16-bit PNG atomically: ``image`` (H, W) gray or (H, W, 3|4) colour, uint8 or uint16;
    ``rgb``: colour channels are in RGB(A) order."""
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
    """Read a PNG keeping its bit depth (uint8 or uint16), colour as RGB; ImageReadError when the file is missing or
    not a decodable image."""
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
    upright photo's ``original_size`` (W, H) to respect a pixel limit; ``frames``: how many frames or pages
    the file holds (an animated GIF, a multi-page TIFF: only the first is read)."""

    image: np.ndarray
    original_size: tuple[int, int]
    frames: int = 1

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy) = image size / original size; divide image coordinates by them to get original pixels."""
        return self.image.shape[1] / self.original_size[0], self.image.shape[0] / self.original_size[1]


_STRIP_PIXELS = 1 << 18  # photos are converted this many pixels at a time (temporaries of ~5 MB)
_JPEG_MAGIC = b"\xff\xd8\xff"


def _rgb8(px: np.ndarray, full: int = 255, alpha_full: int = 0) -> np.ndarray:
    """Integer samples, (h, w) gray or (h, w, C) gray+alpha / RGB / RGBA (alpha last when ``alpha_full``), ->
    (h, w, 3) uint8 RGB: colour rounded from full scale ``full`` to 255, alpha (full scale ``alpha_full``)
    composited over black. Integer arithmetic only (uint32 temporaries of the strip's size)."""
    if px.ndim == 2:
        px = px[..., None]
    colour = px[..., :-1] if alpha_full else px
    if full == 255 and colour.dtype == np.uint8:
        c = colour
    else:  # round(v * 255 / full), exactly: no value lies halfway
        c = (np.clip(colour, 0, full).astype(np.uint32) * 510 + full) // (2 * full)
    if alpha_full:
        a = np.minimum(px[..., -1:], alpha_full).astype(np.uint32)
        c = (2 * c.astype(np.uint32) * a + alpha_full) // (2 * alpha_full)  # round(c * a / alpha_full)
    c = c.astype(np.uint8, copy=False)
    return np.repeat(c, 3, axis=2) if c.shape[2] == 1 else c


def _in_strips(rows, size: tuple[int, int], factor: int, to_rgb) -> np.ndarray:
    """An image read ``rows(y0, y1)`` a strip at a time -> uint8 RGB (``to_rgb`` converts a strip), each
    ``factor`` x ``factor`` block area-averaged (factor 1: full size). Only the result and one strip exist."""
    w, h = size
    step = max(1, _STRIP_PIXELS // max(w, 1) // factor) * factor
    ow, oh = -(-w // factor), -(-h // factor)
    out = np.empty((oh, ow, 3), np.uint8)
    for y in range(0, h, step):
        rgb = to_rgb(rows(y, min(h, y + step)))
        if factor > 1:
            rgb = cv2.resize(rgb, (ow, -(-len(rgb) // factor)), interpolation=cv2.INTER_AREA).reshape(-1, ow, 3)
        out[y // factor:y // factor + len(rgb)] = rgb
    return out


def _png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) of a PNG's IHDR; (0, 0) for any other file."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    return (head[24], head[25]) if len(head) == 26 and head[:8] == PNG_SIGNATURE else (0, 0)


def _high_bytes_empty(im) -> bool:
    """A 16-bit colour PNG as Pillow decodes it (the high byte of each sample): True when its colour or its
    alpha is all zero, i.e. those samples are all <= 255 and must be read as 0-255 values instead."""
    bands = im.getextrema()
    if not isinstance(bands[0], tuple):
        bands = (bands,)
    alpha = im.mode in ("RGBA", "LA")
    colour = bands[:-1] if alpha else bands
    return max(hi for _, hi in colour) == 0 or (alpha and bands[-1][1] == 0)


def _png16_colour_rgb(path: Path, factor: int) -> np.ndarray:
    """A 16-bit colour PNG whose samples are all <= 255 (Pillow keeps only the high byte and would read it
    black): decoded whole at 16 bits by OpenCV, converted in strips (full scale 65535, or 255 when no value
    exceeds 255; colour and alpha each)."""
    img = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"{path}: unreadable image (16-bit PNG could not be decoded)")
    if img.ndim == 2:
        img = img[..., None]
    alpha = img.shape[2] == 4
    order = [2, 1, 0, 3] if alpha else [2, 1, 0] if img.shape[2] == 3 else [0]
    full = 65535 if img[..., :3].max(initial=0) > 255 else 255
    alpha_full = (65535 if img[..., 3].max(initial=0) > 255 else 255) if alpha else 0
    return _in_strips(lambda y0, y1: img[y0:y1][..., order], (img.shape[1], img.shape[0]), factor,
                      lambda px: _rgb8(px, full, alpha_full))


def _pil_rgb(im, factor: int) -> np.ndarray:
    """A Pillow image -> uint8 RGB, converted a strip at a time (see :func:`_in_strips`): alpha is
    composited over black, 16/32-bit gray scaled from 65535 (or 255 when no value exceeds 255)."""
    def rows(convert: str | None):
        def read(y0: int, y1: int) -> np.ndarray:
            strip = im.crop((0, y0, im.width, y1))
            return np.asarray(strip if convert is None or strip.mode == convert else strip.convert(convert))
        return read

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        full = 65535 if im.getextrema()[1] > 255 else 255
        return _in_strips(rows(None), im.size, factor, lambda px: _rgb8(px, full))
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        return _in_strips(rows("RGBA"), im.size, factor, lambda px: _rgb8(px, 255, 255))
    return _in_strips(rows("RGB"), im.size, factor, _rgb8)


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


def _block_factor(pixels: int, max_pixels: int | None) -> int:
    """The integer block size that brings ``pixels`` down to no fewer than ``max_pixels`` (1: none)."""
    return max(1, int((pixels / max_pixels) ** 0.5)) if max_pixels and pixels > max_pixels else 1


def _decode_limit() -> int | None:
    """Most pixels a photo may decode to: Pillow's decompression-bomb limit (2 x ``MAX_IMAGE_PIXELS``, read
    at call time), applied to the decoded size: a JPEG is decoded reduced, so only its reduced size counts."""
    from PIL import Image

    return None if Image.MAX_IMAGE_PIXELS is None else 2 * int(Image.MAX_IMAGE_PIXELS)


def _too_large(path: Path, what: str, pixels: int | None, limit: int | None, hint: str) -> ImageReadError:
    count = f"{pixels:,} pixels" if pixels else "too many pixels"
    return ImageReadError(f"{path}: {what} is too large to decode ({count} > {limit or 0:,}); {hint}")


def _open(path: Path):
    """The Pillow image of ``path``, not yet decoded. A JPEG is opened without Pillow's decompression-bomb
    check, which would refuse a 200-megapixel camera photo by its full size: it is decoded reduced, and
    :func:`read_photo_scaled` checks the size it decodes to."""
    from PIL import Image, JpegImagePlugin

    with open(path, "rb") as fh:
        magic = fh.read(3)
    return JpegImagePlugin.JpegImageFile(str(path)) if magic == _JPEG_MAGIC else Image.open(path)


def read_photo_scaled(path: str | os.PathLike, max_pixels: int | None = None) -> ScaledPhoto:
    """Read any photo as upright uint8 RGB with at most ``max_pixels`` pixels (None: full size).

    A JPEG is decoded reduced by libjpeg (its full-size image never exists in memory); other formats are decoded
    whole and converted a strip at a time, block-averaged by an integer factor; then the result is area-resampled
    to the limit. ``ScaledPhoto.scale`` maps its coordinates back to the original photo's. A photo that would decode
    to more than 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` is refused. Raises ImageReadError (see :func:`read_photo`)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    limit = _decode_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # decoded sizes are bounded here
            with _open(path) as im:
                w, h = im.size
                frames = int(getattr(im, "n_frames", 1) or 1)
                if im.format == "JPEG":
                    if max_pixels and w * h > max_pixels:
                        s = (max_pixels / (w * h)) ** 0.5
                        im.draft(im.mode, (max(1, int(w * s)), max(1, int(h * s))))
                    if limit and im.width * im.height > limit:
                        raise _too_large(path, f"{w} x {h} JPEG", im.width * im.height, limit,
                                         "read it with a pixel limit (predict's --max-pixels) to decode it reduced")
                orientation = im.getexif().get(0x0112, 1)
                factor = _block_factor(im.width * im.height, max_pixels)
                bits, colour_type = _png_header(path) if im.format == "PNG" else (0, 0)
                im.load()
                if bits == 16 and colour_type in (2, 4, 6) and _high_bytes_empty(im):
                    im.close()
                    arr = _png16_colour_rgb(path, factor)
                else:
                    arr = _pil_rgb(im, factor)
                im.close()  # frees the decoded image now (leaving ``with`` only closes the file)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(path, "image", int(found.group(1)) if found else None, limit,
                         "only JPEG photos are decoded reduced: downscale it or save it as JPEG") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (unrecognized format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: unreadable image ({exc})") from None
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageReadError(f"{path}: image has no pixels")
    if orientation in _ORIENT:
        arr = _ORIENT[orientation](arr)
        w, h = (h, w) if orientation >= 5 else (w, h)
    return ScaledPhoto(np.ascontiguousarray(_reduce(arr, max_pixels)), (int(w), int(h)), frames)


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """Read any photo as (H, W, 3) uint8 RGB, upright (EXIF orientation applied).

    Grayscale, palette, CMYK, alpha (composited over black) and 16-bit images (full scale 65535, or 255 when no value
    exceeds 255) are converted; of an animation or multi-page file, the first frame. Raises ImageReadError naming the
    file: missing, empty, truncated or non-image, or too large to decode (:func:`read_photo_scaled`)."""
    return read_photo_scaled(path).image

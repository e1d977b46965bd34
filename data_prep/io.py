"""Atomic file writing and robust image reading shared by every stage.

Every output of the project goes through these helpers so that a file appears
complete or not at all: data is written to a temporary name in the target folder
(``.<stem>.<pid>-<random>.tmp<suffix>``), checked (size, the writer's return value,
an optional read-back check), flushed to disk and then renamed over the final name
(``os.replace`` is atomic on POSIX). A failed write leaves nothing under the final name
and raises :class:`OutputWriteError` naming the final file and the reason ("disk full"
for ENOSPC). Temporaries left by a killed process are removed by
:func:`remove_stale_temporaries`.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

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


class OutputWriteError(OSError):
    """An output could not be written completely; the message names the final file and the reason.

    Nothing is left under the final name. ``errno`` is the OS error number when there was one.
    """


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


# .<stem>.<pid>-<8 random chars>.tmp[.suffix]; older versions wrote .<stem>.<8 random chars>.tmp[.suffix]
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
    """Delete temporaries of our naming left by killed processes in ``folder`` and its subfolders down to
    ``max_depth`` levels (symlinks are not followed; live processes' temporaries are kept). Returns them."""
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
def _temporary(path: Path) -> Iterator[tuple[int, Path]]:
    """A new temporary beside ``path`` (open fd, its path), removed when the block fails; an OSError
    becomes a one-line :class:`OutputWriteError` naming ``path``."""
    fd, tmp = _new_temp(path)
    try:
        yield fd, tmp
    except OutputWriteError:
        _discard(tmp)
        raise
    except OSError as exc:
        _discard(tmp)
        raise write_error(path, exc) from None
    except BaseException:
        _discard(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any],
                 check: Callable[[Path], str | None] | None = None, allow_empty: bool = False) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` atomically.

    The temporary file lives in the same folder (same file system) and keeps the final suffix so
    that libraries choosing a format by extension still work. The write fails (nothing is left under
    ``path``, :class:`OutputWriteError` is raised) when ``write`` raises an OSError or returns
    ``False``, the file is empty (unless ``allow_empty``) or ``check(tmp_path)`` returns a problem.
    """
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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def png_complete(path: str | os.PathLike) -> str | None:
    """Cheap completeness check of a PNG file (signature, IHDR, IEND trailer): None if fine, else the problem."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            size = os.fstat(fh.fileno()).st_size
            if size < len(_PNG_SIGNATURE) + 25 + len(_PNG_END):
                return "empty or truncated PNG" if size else "empty file"
            fh.seek(size - len(_PNG_END))
            tail = fh.read(len(_PNG_END))
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return "not a PNG file (bad signature)"
    if tail != _PNG_END:
        return "truncated PNG (no end chunk)"
    return None


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
    return head[24] if len(head) == 25 and head[:8] == _PNG_SIGNATURE else 0


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

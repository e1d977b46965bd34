"""Reading a video (any container and codec OpenCV decodes) or a folder of frames, one RGB frame at a time.

Frames are (H, W, 3) uint8 RGB, numbered from 0 in decoding order. A file whose later frames do not decode
(a cut download: its header promises more) ends at the last frame that decoded; :class:`VideoInfo` keeps the
header's count so the run can say how many it could not read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["VIDEO_SUFFIXES", "VideoReadError", "VideoInfo", "is_video", "open_frames"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


class VideoReadError(ValueError):
    """A video or frame folder that cannot be read; the message names the path and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    """path; fps: frames per second (the header's, else ``default_fps``); width, height: px; header_frames: the
    frame count the header states (0 = unknown; for a frame folder, its images)."""

    path: Path
    fps: float
    width: int
    height: int
    header_frames: int


def is_video(path: str | Path) -> bool:
    """True for a file whose suffix is one of :data:`VIDEO_SUFFIXES`."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def open_frames(path: str | Path, default_fps: float = 25.0) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """(info, frames) of a video file, or of a folder of images read in name order (``--sequence``).

    Raises VideoReadError when nothing can be read (missing file, not a video, no first frame)."""
    path = Path(path)
    if path.is_dir():
        return _folder_frames(path, default_fps)
    if not path.is_file():
        raise VideoReadError(f"{path}: file not found")
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoReadError(f"{path}: not a video OpenCV can decode")
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise VideoReadError(f"{path}: no frame decodes (corrupt or empty video)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    info = VideoInfo(path, fps if 0.0 < fps < 1000.0 else default_fps, first.shape[1], first.shape[0],
                     max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)))

    def frames() -> Iterator[np.ndarray]:
        try:
            yield _rgb(first)
            while True:
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                yield _rgb(frame)
        finally:
            cap.release()

    return info, frames()


def _rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or grey, or BGRA) frame -> RGB (cv2.cvtColor: faster than a reversed-stride numpy copy)."""
    import cv2

    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _folder_frames(folder: Path, fps: float) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    from facevision.face.images import ImageReadError, read_photo
    from facevision.predict.inputs import IMAGE_SUFFIXES

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VideoReadError(f"{folder}: no frames (looked for {', '.join(IMAGE_SUFFIXES)})")
    try:
        first = read_photo(files[0])
    except ImageReadError as exc:
        raise VideoReadError(str(exc)) from None
    info = VideoInfo(folder, fps, first.shape[1], first.shape[0], len(files))

    def frames() -> Iterator[np.ndarray]:
        yield first
        for f in files[1:]:
            try:
                image = read_photo(f)
            except ImageReadError:
                image = np.zeros_like(first)  # a frame that cannot be read is a blank one: the run says so
            yield image if image.shape == first.shape else np.zeros_like(first)

    return info, frames()

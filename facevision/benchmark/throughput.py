"""In-memory time per photo of the prediction pipeline: the yardstick ``facevision predict``'s wall time is
compared with (``tools/throughput.py``, ``tests/test_bench_batch.py``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["in_memory_seconds_per_photo", "first_photo_per_person"]


def first_photo_per_person(lfw_root: str | Path, n: int) -> list[Path]:
    """The first ``n`` people's first photo (both sorted by name) of an LFW tree ``<Person>/<Person>_NNNN.jpg``:
    the photo set of the throughput figures."""
    people = sorted(p for p in Path(lfw_root).iterdir() if p.is_dir())
    firsts = (sorted(p.glob("*.jpg")) for p in people)
    return [jpgs[0] for jpgs in firsts if jpgs][:n]


def in_memory_seconds_per_photo(predictor: Any, images: Sequence[np.ndarray]) -> float:
    """Mean seconds per photo of ``predictor(image)`` over ``images`` (RGB), after one warm-up call on the first."""
    if not images:
        raise ValueError("no photos to time")
    predictor(images[0])
    t = time.perf_counter()
    for image in images:
        predictor(image)
    return (time.perf_counter() - t) / len(images)

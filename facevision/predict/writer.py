"""Off the critical path: a bounded pool of threads that finishes inputs (maps -> mesh -> files) while the
calling thread reads, detects and runs the network on the next photos.

Jobs are plain callables that handle their own failures (``facevision.predict.batch`` turns any exception of
one input into that input's failure record); an exception that still escapes a job is kept and re-raised by
:meth:`WriterPool.close`, so nothing is lost silently. At most ``max_pending`` jobs are queued or running:
:meth:`WriterPool.submit` blocks while the pool is full, which bounds memory (each job holds a photo and its
maps). ``workers=0`` runs each job at once in the calling thread (the serial path, same files).

Threads, not processes: the heavy parts (PNG and zlib encoding, file writes and fsync, numpy, Open3D and
the network) release the GIL, and jobs need no pickling of photos and maps.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

__all__ = ["WriterConfig", "WriterPool", "default_workers"]


def default_workers() -> int:
    """Writer threads when not chosen: one per CPU core, at most four (the calling thread mostly waits on them:
    on 2 cores the network and detection take ~20 ms of a photo's ~100 ms of CPU work)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class WriterConfig:
    """workers: threads finishing inputs (0 = in the calling thread, one after another; None = one per CPU
    core, 1 to 4); max_pending: inputs queued or being finished at most (None = 2 per
    worker, at least 2)."""

    workers: int | None = None
    max_pending: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and int(self.workers) < 0:
            raise ValueError(f"WriterConfig.workers must be >= 0, got {self.workers!r}")
        if self.max_pending is not None and int(self.max_pending) < 1:
            raise ValueError(f"WriterConfig.max_pending must be >= 1, got {self.max_pending!r}")

    @property
    def n_workers(self) -> int:
        return default_workers() if self.workers is None else int(self.workers)


class WriterPool:
    """``submit(job)`` runs ``job()`` on a worker thread (bounded queue); ``close()`` waits for all of them.

    Use as a context manager. ``on_done`` (optional) is called in the worker after each job, e.g. to move a
    progress bar.
    """

    def __init__(self, config: WriterConfig = WriterConfig(), on_done: Callable[[], None] | None = None) -> None:
        self.workers = config.n_workers
        limit = config.max_pending if config.max_pending is not None else max(2, 2 * self.workers)
        self._slots = threading.BoundedSemaphore(limit)
        self._on_done = on_done
        self._errors: list[BaseException] = []
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="facevision-writer") \
            if self.workers > 0 else None

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised by close(); other jobs go on
            self._errors.append(exc)
        finally:
            self._slots.release()
            if self._on_done is not None:
                self._on_done()

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` (blocks while ``max_pending`` jobs are queued or running)."""
        self._slots.acquire()
        if self._executor is None:
            self._run(job)
            return
        self._executor.submit(self._run, job)

    def close(self) -> None:
        """Wait for every job; re-raise the first exception a job let escape (after all jobs finished)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._errors:
            raise self._errors[0]

    def __enter__(self) -> "WriterPool":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None and self._executor is not None:  # already failing: wait, keep the first error
            self._executor.shutdown(wait=True)
            self._executor = None
            return
        self.close()

"""Off the critical path: a bounded pool that finishes inputs (maps -> face-model fit, mesh -> files) while the
calling thread reads, detects and runs the network on the next photos.

A task is plain data (numpy arrays, paths, dataclasses: picklable). ``handle(state, task) -> result`` does the
work; ``state`` holds what every task needs (the postprocessing objects), made once per worker by ``setup()``.
Each task's outcome comes back to the calling process: ``on_result(key, result)``, or ``on_lost(key, reason)``
when the task raised or its worker died. Both callbacks run in the calling process (in a pool thread: keep them
short and thread-safe). At most ``max_pending`` tasks are queued or running: :meth:`WriterPool.submit` blocks
while the pool is full, which bounds memory (each task holds a photo and its maps).

Kinds (:class:`WriterConfig`):

* **process** (the default on Linux): worker processes forked from the calling process, so the modules it
  imported and the assets it loaded are shared and nothing is pickled at start (``preload`` imports the rest
  once before the fork; ``gc.freeze`` keeps the workers' garbage collector off the shared pages). Processes,
  not threads: finishing a face is CPU work, most of it numpy, text formatting, PNG encoding and Open3D with
  the GIL held, so writer threads share about one core. Tasks and results go through one pipe per worker,
  so the calling process knows which task each worker holds: a worker that dies (killed, out of memory) fails
  exactly that task, with its signal in the reason, and is replaced; the others go on. Workers never run torch
  (the postprocessing is numpy, scipy, OpenCV and Open3D); should a task use it anyway (FLAME registration) it
  runs on one thread. Workers ignore Ctrl-C (the calling process stops them), end on SIGTERM, keep freed memory
  for reuse (:func:`retain_freed_memory`) and end with the calling process, however it ends
  (:func:`_end_with_parent`).
* **thread**: worker threads in the calling process (no pickling; the GIL limits them to about one core). Where
  processes cannot be forked (not Linux), and for a Predictor subclass with its own ``postprocess``.
* ``workers=0``, or a batch of one input: each task runs at once in the calling thread (the serial path: no
  pool to start, same files).
"""
from __future__ import annotations

import collections
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any, Callable

from facevision.common.checks import check_choice, check_int, check_number

__all__ = ["WriterConfig", "WriterPool", "InlinePool", "ThreadPool", "ProcessPool", "open_writer", "default_workers",
           "WRITER_KINDS", "retain_freed_memory", "one_thread_per_library", "MALLOC_MMAP_THRESHOLD",
           "MALLOC_TRIM_THRESHOLD"]

WRITER_KINDS = ("auto", "process", "thread")
Handle = Callable[[Any, Any], Any]  # (state, task) -> result; a module-level function (picklable by name)
OnResult = Callable[[int, Any], None]
OnLost = Callable[[int, str], None]


LIBRARY_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_REAP_S = 5.0  # seconds to wait for a process that ended or was terminated to be reaped
_ABORT_STOP_S = 0.5  # stop_timeout_s when the pool is giving up


def one_thread_per_library(override: bool = True) -> None:
    """Ask OpenMP, OpenBLAS and MKL for one thread each (read when numpy and torch load, so call this before
    importing them); ``override=False`` keeps values the user set."""
    for var in LIBRARY_THREAD_VARS:
        if override:
            os.environ[var] = "1"
        else:
            os.environ.setdefault(var, "1")


MALLOC_MMAP_THRESHOLD = 32 << 20  # bytes: blocks below come from the heap, not from their own mmap (glibc's maximum)
MALLOC_TRIM_THRESHOLD = 256 << 20  # bytes: freed heap kept for reuse up to this much


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the system at once.

    By default every numpy temporary above 128 kB is its own mmap, returned on free: the next one page-faults
    its memory in again. The writer's rasterizer, PNG encoder and mesh code allocate such temporaries by the
    dozen per face, so this saves most of a writer's system CPU. Call it in a process of our own (a writer process, the command line), not in a
    library user's process. Returns False where it does not apply (not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold,
                                                                                  MALLOC_TRIM_THRESHOLD))


def fork_available() -> bool:
    """True where worker processes are started with ``fork`` (Linux): cheap to start, nothing pickled at start."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def default_workers(kind: str = "process") -> int:
    """Workers when not chosen. Processes: one per CPU core plus one, at most 8 (each writer also waits on its
    files' fsync, next to its CPU work; the calling process's reading, detection and network take far less per
    photo than a writer's). Threads: one per core, 1 to 4."""
    cores = os.cpu_count() or 1
    return max(1, min(8, cores + 1)) if kind == "process" else max(1, min(4, cores))


@dataclass(frozen=True)
class WriterConfig:
    """workers: processes or threads finishing inputs (0 = in the calling thread, one after another; None =
    :func:`default_workers`); max_pending: inputs queued or being finished at most (None = 2 per worker, at
    least 2); kind: "process", "thread" or "auto" (processes where ``fork`` is available, i.e. Linux; threads
    elsewhere, where a process would have to import everything again).

    Processes only: start_timeout_s: a new worker must finish its ``setup()`` and say so within this time, else
    it is ended and replaced (a process forked while another thread held a lock can hang before it runs
    anything); after two such in a row none is started, and with no worker ready every input left fails.
    stop_timeout_s: on close, how long a worker may take over its last input before it is terminated (0.5 s
    when the pool is giving up)."""

    workers: int | None = None
    max_pending: int | None = None
    kind: str = "auto"
    start_timeout_s: float = 120.0
    stop_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        check_int(self, "workers", low=0, optional=True)
        check_int(self, "max_pending", low=1, optional=True)
        check_choice(self, "kind", WRITER_KINDS)
        for name in ("start_timeout_s", "stop_timeout_s"):
            check_number(self, name, low=0, low_open=True, finite=False)

    @property
    def resolved_kind(self) -> str:
        """"process" or "thread"."""
        if self.kind == "auto":
            return "process" if fork_available() else "thread"
        return self.kind

    @property
    def n_workers(self) -> int:
        return default_workers(self.resolved_kind) if self.workers is None else int(self.workers)

    @property
    def limit(self) -> int:
        """Tasks queued or running at most."""
        return int(self.max_pending) if self.max_pending is not None else max(2, 2 * self.n_workers)


class WriterPool:
    """``submit(key, task)``; ``close()`` waits for every task (use as a context manager). Subclasses: where the
    tasks run. An exception raised by ``on_result`` / ``on_lost`` is kept and re-raised by :meth:`close`."""

    def __init__(self, handle: Handle, on_result: OnResult, on_lost: OnLost) -> None:
        self._handle = handle
        self._on_result = on_result
        self._on_lost = on_lost
        self._errors: list[BaseException] = []

    def _report(self, key: int, result: Any = None, lost: str | None = None) -> None:
        try:
            if lost is None:
                self._on_result(key, result)
            else:
                self._on_lost(key, lost)
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised by close(); other tasks go on
            self._errors.append(exc)

    def _run_here(self, state: Any, key: int, task: Any) -> None:
        """Run one task in this thread and report it."""
        try:
            result = self._handle(state, task)
        except Exception as exc:  # noqa: BLE001 - this task is lost, not the pool
            self._report(key, lost=f"{type(exc).__name__}: {exc}")
            return
        self._report(key, result)

    def submit(self, key: int, task: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Wait for every task; re-raise the first exception a callback let escape (after all tasks finished)."""
        self._shutdown(wait=True)
        if self._errors:
            raise self._errors[0]

    def _shutdown(self, wait: bool) -> None:
        pass

    def __enter__(self) -> "WriterPool":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:  # already failing: stop without waiting for queued tasks, keep the first error
            self._shutdown(wait=False)
            return
        self.close()


class InlinePool(WriterPool):
    """Each task runs at once in the calling thread (``workers=0``; also for a batch of one input)."""

    def __init__(self, state: Any, handle: Handle, on_result: OnResult, on_lost: OnLost) -> None:
        super().__init__(handle, on_result, on_lost)
        self._state = state

    def submit(self, key: int, task: Any) -> None:
        self._run_here(self._state, key, task)


class ThreadPool(WriterPool):
    """Tasks run on ``workers`` threads of this process, sharing ``state``."""

    def __init__(self, workers: int, limit: int, state: Any, handle: Handle, on_result: OnResult,
                 on_lost: OnLost) -> None:
        super().__init__(handle, on_result, on_lost)
        self._state = state
        self._slots = threading.BoundedSemaphore(limit)
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(workers, thread_name_prefix="facevision-writer")

    def _run(self, key: int, task: Any) -> None:
        try:
            self._run_here(self._state, key, task)
        except BaseException as exc:  # noqa: BLE001 - not an Exception (SystemExit, ...): fail it, re-raise in close()
            self._errors.append(exc)
            self._report(key, lost=f"{type(exc).__name__}: {exc}")
        finally:
            self._slots.release()

    def submit(self, key: int, task: Any) -> None:
        """Queue ``task`` (blocks while ``limit`` tasks are queued or running)."""
        self._slots.acquire()
        assert self._executor is not None, "submit after close"
        self._executor.submit(self._run, key, task)

    def _shutdown(self, wait: bool) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=not wait)
            self._executor = None


# ----------------------------------------------------------------------------- processes
def _death_reason(exitcode: int | None) -> str:
    """Why a worker process ended, in words."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"writer process was killed by {name}{hint}"
    return f"writer process exited unexpectedly (exit code {exitcode})"


_PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal a process gets when the thread that forked it ends


def _end_with_parent(parent_pid: int) -> None:
    """In a new worker process: end when the calling process ends, however it ends (killed, out of memory,
    Ctrl-C while stopping): SIGTERM from the kernel where prctl exists (Linux); gone already, end now."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _quiet_worker(parent_pid: int) -> None:
    """In a new worker process: end with the parent (:func:`_end_with_parent`), ignore Ctrl-C (the parent stops
    the workers), end at once on SIGTERM (whatever handler the parent set: ``predict`` turns SIGTERM into an
    interruption of its batch), one thread per library, freed memory kept for reuse (:func:`retain_freed_memory`)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _end_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    retain_freed_memory()
    one_thread_per_library()  # for libraries a task imports later
    torch = sys.modules.get("torch")
    if torch is not None:  # imported by the parent before the fork: never use its thread pool here
        torch.set_num_threads(1)


def _worker_main(conn: Connection, setup: Callable[[], Any], handle: Handle, parent_pid: int) -> None:
    """A worker process: ``state = setup()`` once, then ``("ready", None)``, then answer each task received with
    ``("ok", result)`` or ``("error", reason)``, until ``None``, the pipe breaks or the parent ends."""
    _quiet_worker(parent_pid)
    try:
        state, broken = setup(), None
    except Exception as exc:  # noqa: BLE001 - every task is answered with it
        state, broken = None, f"writer set-up failed ({type(exc).__name__}: {exc})"
    try:
        conn.send(("ready", None))
    except (EOFError, OSError):
        return
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if task is None:
            return
        if broken is not None:
            reply: tuple[str, Any] = ("error", broken)
        else:
            try:
                reply = ("ok", handle(state, task))
            except Exception as exc:  # noqa: BLE001 - this task is lost, not the worker
                reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - a result that cannot be pickled
            conn.send(("error", f"result not transferable ({type(exc).__name__}: {exc})"))


class _Worker:
    """One worker process, the parent's end of its pipe and the task it holds (key, or None when idle)."""

    def __init__(self, ctx: BaseContext, setup: Callable[[], Any], handle: Handle) -> None:
        parent_end, child_end = ctx.Pipe(duplex=True)
        try:
            self.process = ctx.Process(target=_worker_main, args=(child_end, setup, handle, os.getpid()),
                                       daemon=True, name="facevision-writer")
            with warnings.catch_warnings():  # Python >= 3.12 warns about fork in a threaded process; the worker
                warnings.simplefilter("ignore", DeprecationWarning)  # uses none of the parent's threads
                self.process.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self.conn = parent_end
        self.key: int | None = None
        self.dead = False
        self.ready = False  # it said its set-up is done; only then does it get tasks
        self.started = time.monotonic()


class ProcessPool(WriterPool):
    """Tasks run in ``workers`` processes, each with its own ``state = setup()`` (see the module docstring).

    One collector thread in the calling process hands queued tasks to idle workers, receives results and
    notices dead workers (their process sentinel); the callbacks run on it.
    """

    def __init__(self, workers: int, limit: int, setup: Callable[[], Any], handle: Handle, on_result: OnResult,
                 on_lost: OnLost, start_method: str | None = None,
                 start_timeout_s: float = WriterConfig.start_timeout_s,
                 stop_timeout_s: float = WriterConfig.stop_timeout_s) -> None:
        super().__init__(handle, on_result, on_lost)
        self._start_timeout_s, self._stop_timeout_s = float(start_timeout_s), float(stop_timeout_s)
        self._start_failures = 0  # workers in a row that ended before they said they were ready
        self._ctx = multiprocessing.get_context(start_method or ("fork" if fork_available() else "spawn"))
        self._setup = setup
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[int, Any]] = collections.deque()
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._closing = False
        self._abort = False
        self._stopped = "writer pool stopped"
        self._workers: list[_Worker] = []
        frozen_before = gc.get_freeze_count()
        gc.freeze()  # the parent's objects are left alone by the workers' garbage collector: their pages stay
        try:  # shared instead of being copied into every worker as the collector writes their headers
            for _ in range(max(1, workers)):
                self._workers.append(_Worker(self._ctx, setup, handle))
        except BaseException:
            self._abort = True
            self._stop_workers()
            self._wake_r.close()
            self._wake_w.close()
            raise
        finally:
            if not frozen_before:  # the caller's own frozen objects stay frozen
                gc.unfreeze()
        self._thread = threading.Thread(target=self._collect, name="facevision-writer-collector", daemon=True)
        self._thread.start()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (tests kill one)."""
        return [w.process.pid for w in self._workers if not w.dead]

    def submit(self, key: int, task: Any) -> None:
        """Queue ``task`` (blocks while ``limit`` tasks are queued or running)."""
        self._slots.acquire()
        with self._lock:
            if self._closing:
                raise RuntimeError("submit after close")
            stopped = self._abort
            if not stopped:
                self._queue.append((key, task))
        if stopped:  # the pool gave up (see _fail_everything): say so for this task too
            self._done(key, lost=self._stopped)
            return
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b".")
        except OSError:
            pass

    # -- collector thread
    def _collect(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:  # noqa: BLE001 - a bug here must not hang the batch: fail what is left
            self._errors.append(exc)
            self._fail_everything(f"writer pool failed ({type(exc).__name__}: {exc})")
        finally:
            self._stop_workers()

    def _step(self) -> bool:
        """Dispatch, wait for one event, handle it; False when finished."""
        self._dispatch()
        with self._lock:
            busy = [w for w in self._workers if w.key is not None]
            if self._abort or (self._closing and not self._queue and not busy):
                return False
        watched: dict[Any, tuple[str, _Worker | None]] = {self._wake_r: ("wake", None)}
        deadline = None
        for w in self._workers:
            watched[w.process.sentinel] = ("died", w)
            if w.key is not None or not w.ready:
                watched[w.conn] = ("reply", w)
            if not w.ready:
                due = w.started + self._start_timeout_s
                deadline = due if deadline is None else min(deadline, due)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        events = wait(list(watched), timeout=timeout)
        if not events:
            self._end_late_starters()
            return True
        for ready in events:
            what, w = watched[ready]
            if what == "wake":
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
            elif what == "reply" and w is not None and not w.dead:
                self._receive(w)
            elif what == "died" and w is not None and not w.dead:
                if w.key is not None and w.conn.poll():  # it answered before it ended
                    self._receive(w)
                if not w.dead:
                    self._bury(w)
        return True

    def _dispatch(self) -> None:
        """Hand queued tasks to idle workers that are ready."""
        for w in list(self._workers):
            with self._lock:
                if w.dead or not w.ready or w.key is not None or not self._queue or self._abort:
                    continue
                key, task = self._queue.popleft()
                w.key = key
            try:
                w.conn.send(task)
            except (OSError, EOFError):  # it died before receiving: the task goes to another worker
                with self._lock:
                    self._queue.appendleft((key, task))
                    w.key = None
                self._bury(w)
            except Exception as exc:  # noqa: BLE001 - the task cannot be pickled: lose it, keep the worker
                w.key = None
                self._done(key, lost=f"cannot hand the input to a writer process ({type(exc).__name__}: {exc})")

    def _receive(self, w: _Worker) -> None:
        try:
            status, payload = w.conn.recv()
        except (EOFError, OSError):
            self._bury(w)
            return
        if status == "ready":
            w.ready = True
            self._start_failures = 0
            return
        key, w.key = w.key, None
        if key is None:
            return
        if status == "ok":
            self._done(key, payload)
        else:
            self._done(key, lost=str(payload))

    def _done(self, key: int, result: Any = None, lost: str | None = None) -> None:
        self._report(key, result, lost)
        self._slots.release()

    def _end_late_starters(self) -> None:
        """End the workers whose set-up has not reported within ``start_timeout_s``."""
        now = time.monotonic()
        for w in list(self._workers):
            if not (w.ready or w.dead) and now >= w.started + self._start_timeout_s:
                w.process.terminate()
                self._bury(w, f"set-up gave no sign within {self._start_timeout_s:g} s")

    def _bury(self, w: _Worker, why: str = "") -> None:
        """A worker ended: fail its task (after the process is reaped, so its temporaries count as stale), start
        another one unless the pool is finishing with nothing left to do. After two workers in a row that ended
        before their set-up reported (hung or crashed) none is started: the ready ones carry on, and where none
        is left every input left fails with the reason."""
        w.dead = True
        w.process.join(timeout=_REAP_S)
        w.conn.close()
        key, w.key = w.key, None
        with self._lock:
            if w in self._workers:
                self._workers.remove(w)
            need = not self._abort and (bool(self._queue) or not self._closing)  # more tasks to come
        if key is not None:
            self._done(key, lost=f"{_death_reason(w.process.exitcode)} while finishing this input")
        if not w.ready:
            self._start_failures += 1
            if self._start_failures >= 2 and need:  # no more new workers: the ready ones carry on, if any
                with self._lock:
                    carry_on = any(x.ready for x in self._workers)
                if not carry_on:
                    reason = why or _death_reason(w.process.exitcode)
                    self._fail_everything(f"writer processes do not start ({reason}, twice in a row)")
                return
        if need:
            try:
                self._workers.append(_Worker(self._ctx, self._setup, self._handle))
            except OSError as exc:  # cannot start processes any more (fork refused): fail what is left
                self._fail_everything(f"cannot start a writer process ({exc.strerror or exc})")

    def _fail_everything(self, reason: str) -> None:
        """Give up: stop the workers first (none may still write an input reported lost), then fail every input
        queued or held."""
        with self._lock:
            self._abort = True
            self._stopped = reason
            left = [k for k, _ in self._queue] + [w.key for w in self._workers if w.key is not None]
            self._queue.clear()
            for w in self._workers:
                w.key = None
        self._stop_workers()
        for key in left:
            self._done(key, lost=reason)

    def _stop_workers(self) -> None:
        """Ask every worker to end, terminate the ones that do not, reap them all; a second call finds none."""
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            try:
                w.conn.send(None)
            except (OSError, EOFError):
                pass
        for w in workers:
            w.process.join(timeout=_ABORT_STOP_S if self._abort else self._stop_timeout_s)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(timeout=_REAP_S)
            w.dead = True
            w.conn.close()

    def _shutdown(self, wait: bool) -> None:
        with self._lock:
            self._closing = True
            if not wait:
                self._abort = True
        self._wake()
        self._thread.join()
        with self._lock:
            self._queue.clear()  # not empty only when stopped without waiting (the caller is failing anyway)
        self._wake_r.close()
        self._wake_w.close()


def open_writer(config: WriterConfig, handle: Handle, on_result: OnResult, on_lost: OnLost,
                setup: Callable[[], Any], state: Any = None, tasks: int | None = None,
                preload: Callable[[], None] | None = None) -> WriterPool:
    """The pool ``config`` asks for. ``setup()`` makes the workers' state (in each worker process; once in this
    process for threads and the inline path, unless ``state`` is given). ``tasks``: how many will be submitted,
    if known: with one or none, the tasks run in the calling thread (no pool to start). ``preload()``: run here
    before worker processes are forked (imports they need, then shared by all of them instead of repeated in
    each); it must not start threads (no Open3D or OpenMP work)."""
    n = config.n_workers
    if n == 0 or (tasks is not None and tasks <= 1):
        return InlinePool(setup() if state is None else state, handle, on_result, on_lost)
    if config.resolved_kind == "thread":
        return ThreadPool(n, config.limit, setup() if state is None else state, handle, on_result, on_lost)
    if preload is not None and fork_available():
        preload()
    try:
        return ProcessPool(n, config.limit, setup, handle, on_result, on_lost,
                           start_timeout_s=config.start_timeout_s, stop_timeout_s=config.stop_timeout_s)
    except OSError as exc:  # no processes to be had (a process limit): the same work on threads
        warnings.warn(f"cannot start writer processes ({exc.strerror or exc}); using threads", RuntimeWarning,
                      stacklevel=2)
        return ThreadPool(n, config.limit, setup() if state is None else state, handle, on_result, on_lost)

"""``facevision predict`` over many inputs (:func:`run_batch`): list the inputs, read each photo and cut its faces,
run the network on faces of several photos at once, hand each photo to the writers, then write the summary.

Each input gets a record ``{"input", "output", "status": "ok" | "failed", "reason", "faces", "skipped"}``; a failure
(unreadable file, no face, unusable prediction, unexpected error) is one line on stderr naming the file and the
reason, and the batch goes on. Inputs finished in OUT are skipped unless ``overwrite``
(:func:`facevision.predict.resume.finished_input`); failed ones are tried again. A photo redone without
``overwrite`` gets the outputs asked for plus those its folder held, so a rerun loses none. Photos above
``max_pixels`` are reduced before detection and their results mapped back to original pixels.

One run per OUT at a time (:class:`facevision.predict.lock.OutputFolderLock`); temporaries left in OUT by a killed
run are removed on start; ``summary.json`` is rebuilt from OUT at the end of every run, an interrupted one included
(Ctrl-C; SIGTERM where the command turns it into one): :mod:`facevision.predict.summary`.

Faces left out: each ok record (and image.json) says how many faces the detector found (``faces_detected``) and how
many of them were not processed (``faces_skipped``: all but the largest, unless every face is asked for); one stderr
line per run sums them and names ``--all-faces``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from facevision.common.fileio import native_stderr_silenced, remove_stale_temporaries
from facevision.face.images import ImageReadError, ScaledPhoto, read_photo_scaled
from facevision.predict.console import NoBar, ProgressBar, error, fail, note, progress_bar, say, say_error, warn
from facevision.predict.inputs import expand_inputs
from facevision.predict.jobs import Outcome, PhotoTask, WriteJob, WriteSetup, WriteState, flame_setup, write_input
from facevision.predict.lock import OutputFolderLock
from facevision.predict.out_folder import (RESERVED_NAMES, check_output_folder, inside, output_folder_problem,
                                           output_names, safe_stem)
from facevision.predict.outputs import OutputConfig
from facevision.predict.predictor import Predictor
from facevision.predict.records import FaceCrop, PreparedFaces
from facevision.predict.render import RenderConfig
from facevision.predict.resume import face_counts, finished_input, held_outputs
from facevision.predict.shards import shard_of
from facevision.predict.summary import PENDING, write_summary
from facevision.predict.writer import WriterConfig, WriterPool, open_writer

__all__ = ["BatchConfig", "DEFAULT_MAX_PIXELS", "run_batch"]

DEFAULT_MAX_PIXELS = 40_000_000  # larger photos are reduced to this many pixels before detection


@dataclass
class BatchConfig:
    """overwrite: redo finished inputs; report: write OUT/report.html; flame_model: path of a FLAME model
    to register to each face (None = off); render: preview settings; output: mesh frame and texture size of
    the mesh files and which files are written (:class:`facevision.predict.outputs.OutputConfig`); log: one
    stdout line per input (``-v``); progress: one progress bar on stderr with photos/s and ETA (shown on a
    terminal only); max_pixels: photos with more pixels are reduced to this many before detection (bounds
    memory); results are mapped back to original pixels. None: off. writer: the processes (threads where fork is
    unavailable) that finish inputs (maps -> face-model fit, mesh -> files) while the next photos are detected and
    run (:class:`facevision.predict.writer.WriterConfig`; workers=0: one after another in the calling thread, as for
    a single input). shard: (K, N): only the K-th of N deterministic parts of the inputs
    (:mod:`facevision.predict.shards`); its summary is ``OUT/summary.shard-K-of-N.json``, merged into
    ``OUT/summary.json`` once all N are in OUT."""

    overwrite: bool = False
    report: bool = False
    flame_model: str | None = None
    render: RenderConfig = field(default_factory=RenderConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    log: bool = True
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    progress: bool = False
    writer: WriterConfig = field(default_factory=WriterConfig)
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.max_pixels is not None and int(self.max_pixels) < 1:
            raise ValueError(f"BatchConfig.max_pixels must be >= 0 (0 or None: never reduce), got {self.max_pixels!r}")
        if self.shard is not None and not (len(self.shard) == 2 and 1 <= self.shard[0] <= self.shard[1]):
            raise ValueError(f"BatchConfig.shard (K, N) needs 1 <= K <= N, got {self.shard!r}")


def run_batch(predictor: Predictor, paths: list[str], out: str | Path, config: BatchConfig = BatchConfig()) -> dict[str, Any]:
    """Process every input; write per-face files, ``OUT/summary.json`` and (optionally) the report.

    Holds OUT's lock while it runs (:class:`facevision.predict.lock.OutputFolderLock`;
    :class:`facevision.predict.lock.OutputFolderBusyError` when another run holds it). Interrupted
    (KeyboardInterrupt: Ctrl-C, or SIGTERM turned into one by the command), it still writes the summary of what OUT
    holds, then re-raises. Returns the summary; ``summary["counts"]["failed"] > 0`` means some input failed.
    """
    out = check_output_folder(out)
    with OutputFolderLock(out, config.shard):
        return _run_batch(predictor, paths, out, config)


@dataclass
class _Waiting:
    """One input read and cut, its faces waiting for the network; ``key``: its record's index."""

    key: int
    task: PhotoTask
    crops: list[FaceCrop]


@dataclass
class _Run:
    """What one batch run shares between its steps and the writers' callbacks (:meth:`finished`, :meth:`lost`, run
    in a pool thread): the inputs' records (a writer's key is its record's index), the progress bar, the writer pool
    and the inputs waiting for the network."""

    predictor: Predictor
    config: BatchConfig
    out: Path
    records: list[dict[str, Any]]
    bar: ProgressBar | NoBar
    pool: WriterPool | None = None
    waiting: list[_Waiting] = field(default_factory=list)

    def fail(self, rec: dict[str, Any], reason: str) -> None:
        """An input failed before it reached a writer (or its writer was lost)."""
        fail(rec, reason)
        self.bar.update()

    def finished(self, key: int, outcome: Outcome) -> None:
        """A writer finished input ``key``: its record as the writer left it, its lines printed here."""
        rec = self.records[key]
        rec.update(status=outcome.status, faces=outcome.faces)
        if outcome.reason is None:
            rec.pop("reason", None)
        else:
            rec["reason"] = outcome.reason
        for reason in outcome.errors:
            error(rec["input"], reason)
        if outcome.done:
            say(outcome.done, sys.stdout)
        self.bar.update()

    def lost(self, key: int, reason: str) -> None:
        """A writer could not report on input ``key`` (its process died): its temporary folder goes; its folder
        in OUT is whole (the old one, or the new one if it was renamed into place)."""
        remove_stale_temporaries(self.out, max_depth=0)
        rec = self.records[key]
        rec["faces"] = []
        self.fail(rec, f"{reason}; its unfinished outputs were removed")


def _run_batch(predictor: Predictor, paths: list[str], out: Path, config: BatchConfig) -> dict[str, Any]:
    remove_stale_temporaries(out, max_depth=2)  # left by a killed run: .<name>.<pid>-*.tmp* in OUT, OUT/<name>/...
    t_start = time.time()
    files, names, records = _list_inputs(paths, out, config.shard)
    writer, setup, here = _writers(predictor, config)
    run = _Run(predictor, config, out, records, progress_bar(config.progress, len(files)))
    interrupted: BaseException | None = None
    try:
        with run.bar, open_writer(writer, write_input, run.finished, run.lost, setup, here, tasks=len(files),
                                  preload=setup.preload) as pool:
            run.pool = pool
            if files:  # after the writer processes started: they set up while the detector does
                _warm_up_quietly(predictor)
            for path, name in zip(files, names):
                _take(run, path, out / name)
            _flush(run)
    except BaseException as exc:  # Ctrl-C, SIGTERM (the command raises it as one), or a bug: OUT's index first
        interrupted = exc
    summary = write_summary(predictor, config, out, run.records, t_start, interrupted)
    if interrupted is not None:
        raise interrupted
    return summary


def _list_inputs(paths: list[str], out: Path, shard: tuple[int, int] | None
                 ) -> tuple[list[Path], list[str], list[dict[str, Any]]]:
    """The files to run (this shard's, with ``shard``), their folder names in OUT, and the failure records of the
    arguments (each said in one line; recorded by shard 1 only)."""
    notes: list[str] = []
    files, records = expand_inputs(paths, exclude=out, notes=notes)
    for r in records:
        error(r["input"], r["reason"])
    for line in notes:
        say_error(f"note: {line}")
    names = output_names(files, out)
    if shard is None:
        return files, names, records
    k, n = shard
    keys = output_names(files)  # without OUT: the same on every machine, whatever OUT holds
    mine = [i for i, key in enumerate(keys) if shard_of(key, n) == k]
    return [files[i] for i in mine], [names[i] for i in mine], records if k == 1 else []


def _writers(predictor: Predictor, config: BatchConfig) -> tuple[WriterConfig, WriteSetup, WriteState]:
    """The writer pool's settings, what each writer sets up, and the state for writing in this process."""
    flame_fit, flame_off = flame_setup(config.flame_model)
    if flame_off:
        say_error(f"warning: {flame_off}; continuing without FLAME")
    setup = WriteSetup(predictor.config, config.output, config.render, config.log,
                       config.flame_model if flame_fit is not None else None)
    writer = config.writer
    if writer.resolved_kind == "process" and type(predictor).postprocess is not Predictor.postprocess:
        writer = replace(writer, kind="thread")  # a subclass's own postprocess runs where the predictor lives
    return writer, setup, WriteState(predictor.postprocess, setup, flame_fit)


def _warm_up_quietly(predictor: Predictor) -> None:
    """Create the face detector with stderr (fd 2) sent to /dev/null: MediaPipe/TFLite print start-up
    banners from C++ there, which would drown the one-line-per-bad-input messages."""
    with native_stderr_silenced():
        try:
            predictor.detect(np.zeros((64, 64, 3), np.uint8))
        except Exception:
            pass  # a real problem shows up again, with its message, on the first input


def _take(run: _Run, path: Path, out_dir: Path) -> None:
    """One input: failed, skipped (finished in OUT), or read and cut and left waiting for the network, which runs
    once ``batch_size`` faces wait."""
    rec: dict[str, Any] = {"input": str(path), "output": out_dir.name, "status": PENDING, "faces": []}
    run.records.append(rec)
    problem = _folder_problem(run.out, path, out_dir)
    if problem:
        run.fail(rec, problem)
        return
    if _skip_finished(run, rec, path, out_dir):
        return
    prepared = _prepare(run, rec, path)
    if prepared is None:
        return
    photo, crops = prepared
    want = run.config.output.outputs
    outputs = want if run.config.overwrite else want | held_outputs(out_dir, path)  # a rerun loses none
    task = PhotoTask(path, out_dir, photo, outputs, crops.found, bool(run.predictor.config.all_faces))
    run.waiting.append(_Waiting(len(run.records) - 1, task, list(crops)))
    if sum(len(w.crops) for w in run.waiting) >= run.predictor.config.batch_size:
        _flush(run)


def _folder_problem(out: Path, path: Path, out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot take ``path``'s files (checked before anything is read or written), else None."""
    if safe_stem(path).lower() in RESERVED_NAMES:
        warn(str(path), f"{safe_stem(path)} is one of the batch's own files; results go to {out_dir}")
    if not inside(out, out_dir):  # output_names never picks such a name
        return f"output folder {out_dir} would lie outside {out}"
    return output_folder_problem(out_dir)  # e.g. OUT/<name>/... longer than PATH_MAX


def _skip_finished(run: _Run, rec: dict[str, Any], path: Path, out_dir: Path) -> bool:
    """True (and the record ok, skipped) when OUT holds ``path`` finished as this run would make it."""
    if run.config.overwrite:
        return False
    done = finished_input(out_dir, path, run.config.output.outputs, run.predictor.config.mesh is not None,
                          bool(run.predictor.config.all_faces))
    if done is None:
        return False
    rec.update(status="ok", faces=done.get("faces", []), skipped=True, **face_counts(done))
    if run.config.log:
        say(f"{path}: already done -> {out_dir} (skipped; --overwrite redoes it)", sys.stdout)
    run.bar.update()
    return True


def _prepare(run: _Run, rec: dict[str, Any], path: Path) -> tuple[ScaledPhoto, PreparedFaces] | None:
    """Read the photo and cut its faces (:meth:`Predictor.prepare`); None when that fails or finds no face (the
    record failed, the line said)."""
    try:
        photo = read_photo_scaled(path, run.config.max_pixels)
        if photo.frames > 1:
            note(str(path), f"holds {photo.frames} frames or pages; only the first is read")
        crops = run.predictor.prepare(photo.image)
    except ImageReadError as exc:
        msg = str(exc)
        run.fail(rec, msg[len(str(path)) + 2:] if msg.startswith(str(path)) else msg)
        return None
    except Exception as exc:
        run.fail(rec, f"{type(exc).__name__}: {exc}")
        return None
    if not crops:
        run.fail(rec, "no face detected")
        return None
    rec.update(face_counts({"faces_detected": crops.found, "faces": crops}))
    return photo, crops


def _flush(run: _Run) -> None:
    """Run the network on the faces of every input waiting (one batched call), then hand each input to the
    writers; a network failure fails those inputs, not the batch."""
    waiting, run.waiting = run.waiting, []
    if not waiting:
        return
    try:
        maps = run.predictor.run_network([c for w in waiting for c in w.crops])
    except Exception as exc:
        for w in waiting:
            run.fail(run.records[w.key], f"prediction failed ({type(exc).__name__}: {exc})")
        return
    start = 0
    for w in waiting:
        end = start + len(w.crops)
        run.pool.submit(w.key, WriteJob(w.task, tuple(zip(w.crops, maps[start:end]))))
        start = end

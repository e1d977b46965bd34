"""``facevision predict`` over many inputs: expand paths, batch faces through the network, write, report.

Each input gets a record ``{"input", "output", "status": "ok" | "failed", "reason", "faces", "skipped"}``;
a failure (unreadable file, no face, unusable prediction, unexpected error) is one line on stderr
naming the file and the reason, and the batch goes on. An input is finished when
``OUT/<name>/image.json`` says ``ok`` for the same source file and every face's result.json exists;
finished inputs are skipped on a rerun unless ``overwrite``. Failed inputs are tried again.

Reliability (issue #11): output folder names come from :func:`safe_stem` (never ``.``, ``..``, empty,
hidden or with separators; never one of the batch's own files ``summary.json`` / ``report.html``) and
every path written or removed is checked to lie inside OUT; OUT itself and anything under it is never
read as input; temporaries left in OUT by a killed run are removed on start; a write failure (disk
full) fails that input with one line naming the file, leaving none of its faces behind; photos above
``max_pixels`` are reduced before detection and their results mapped back to original pixels;
``summary.json`` keeps every input finished in OUT by earlier batches.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from data_prep.io import (ImageReadError, OutputWriteError, ScaledPhoto, atomic_write_json, read_photo_scaled,
                          remove_stale_temporaries, temp_prefix)
from facevision.predict.outputs import IMAGE_RECORD, SUMMARY_NAME, OutputConfig, face_dir_name, write_face
from facevision.predict.predictor import Predictor
from facevision.predict.render import RenderConfig
from facevision.predict.report import REPORT_NAME
from facevision.predict.shards import SHARD_SUMMARY, merge_shard_summaries, shard_of, shard_summary_name
from facevision.predict.writer import WriterConfig, WriterPool

__all__ = ["BatchConfig", "IMAGE_SUFFIXES", "expand_inputs", "run_batch", "output_names", "safe_stem",
           "check_output_folder", "OutputFolderError", "DEFAULT_MAX_PIXELS", "RESERVED_NAMES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif", ".pgm", ".ppm")
DEFAULT_MAX_PIXELS = 40_000_000  # larger photos are reduced to this many pixels before detection
RESERVED_NAMES = frozenset({SUMMARY_NAME, REPORT_NAME})  # the batch's own files in OUT: never an input's folder
_NAME_BYTES = 200  # folder names are cut to this many UTF-8 bytes (file systems allow 255)
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
_FACE_DIR = re.compile(r"^face\d+$")


@dataclass
class BatchConfig:
    """overwrite: redo finished inputs; report: write OUT/report.html; flame_model: path of a FLAME model
    to register to each face (None = off); render: preview settings; output: mesh frame and texture size of
    the mesh files and which files are written (:class:`facevision.predict.outputs.OutputConfig`); log: one
    stdout line per input (``-v``); progress: one progress bar on stderr with photos/s and ETA (shown on a
    terminal only); max_pixels: photos with more pixels are reduced to this many before detection (bounds
    memory: a 13,000 x 13,000 photo would need several GB); results are mapped back to original pixels.
    None: off. writer: threads that finish inputs (maps -> mesh -> files) while the next photos are detected
    and run (:class:`facevision.predict.writer.WriterConfig`; workers=0: one after another). shard: (K, N):
    only the K-th of N deterministic parts of the inputs (:mod:`facevision.predict.shards`); its summary is
    ``OUT/summary.shard-K-of-N.json``, merged into ``OUT/summary.json`` once all N are in OUT."""

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


class OutputFolderError(ValueError):
    """OUT cannot hold the batch's outputs (a file, cannot be created, not writable); the message names it."""


def check_output_folder(out: str | Path) -> Path:
    """Create OUT if needed and make sure a file can be written in it; raises :class:`OutputFolderError`."""
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise OutputFolderError(f"{out}: exists and is not a folder (choose another output folder)")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=temp_prefix(out / "probe"), suffix=".tmp", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputFolderError(f"{out}: output folder is not writable ({exc.strerror or exc})") from None
    return out


def safe_stem(path: Path) -> str:
    """Output folder name for an input: its stem with separators and control characters replaced by ``_``,
    leading dots and spaces dropped, cut to 200 bytes; never empty, ``.`` or ``..`` (``image`` instead)."""
    name = _UNSAFE_CHARS.sub("_", path.stem).strip().lstrip(".").strip()
    name = name.encode("utf-8", "surrogateescape")[:_NAME_BYTES].decode("utf-8", "ignore").strip()
    return name or "image"


def _inside(root: Path, path: Path) -> bool:
    """True when ``path`` (symlinks resolved) lies strictly inside ``root``."""
    r, p = os.path.realpath(root), os.path.realpath(path)
    return p.startswith(r.rstrip(os.sep) + os.sep)


def _excluded(path: str | Path, exclude: str | None) -> bool:
    """True when ``path`` (resolved) is ``exclude`` (a resolved folder) or lies under it."""
    if exclude is None:
        return False
    p = os.path.realpath(path)
    return p == exclude or p.startswith(exclude.rstrip(os.sep) + os.sep)


def _failure(arg: str, reason: str) -> dict[str, Any]:
    return {"input": arg, "output": None, "status": "failed", "faces": [], "reason": reason}


def _path_kind(p: Path) -> str | None:
    """"file", "dir", "other" (device, pipe...), "denied" (a folder on the way cannot be entered) or None."""
    try:
        mode = p.stat().st_mode
    except PermissionError:
        return "denied"
    except (OSError, ValueError):
        return None
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


def _image_files(folder: Path, exclude: str | None, failures: list[dict[str, Any]]) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted), outside ``exclude``; a subfolder that cannot be
    entered is a failure record (its photos would otherwise vanish silently)."""
    found: list[Path] = []

    def unreadable(err: OSError) -> None:
        failures.append(_failure(str(err.filename), f"cannot enter folder ({err.strerror}); its photos are skipped"))

    for here, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = [d for d in dirs if not _excluded(os.path.join(here, d), exclude)]
        found += [Path(here) / n for n in names
                  if Path(n).suffix.lower() in IMAGE_SUFFIXES and (Path(here) / n).is_file()]
    return sorted(found)


def _no_images_reason(folder: Path) -> str:
    if folder.suffix.lower() in IMAGE_SUFFIXES:
        return "is a folder, not an image file, and holds no images"
    return f"folder holds no images (looked for {', '.join(IMAGE_SUFFIXES)} in it and its subfolders)"


def expand_inputs(paths: list[str], exclude: str | Path | None = None
                  ) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files, folders (recursive, image suffixes only) and globs -> (unique files in order, failure records).

    Failures: arguments that match nothing or cannot be reached, folders without images, subfolders that
    cannot be entered. ``exclude`` (the output folder) and everything under it is never an input.
    """
    files: list[Path] = []
    failures: list[dict[str, Any]] = []
    seen: set[Path] = set()
    excl = os.path.realpath(exclude) if exclude is not None else None

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for arg in paths:
        p = Path(arg)
        kind = _path_kind(p)
        if kind in ("file", "dir") and _excluded(p, excl):
            failures.append(_failure(arg, f"lies in the output folder {exclude}; outputs are not read as photos"))
        elif kind == "file":
            add(p)
        elif kind == "dir":
            found = _image_files(p, excl, failures)
            if not found:
                failures.append(_failure(arg, _no_images_reason(p)))
            for f in found:
                add(f)
        elif kind == "other":
            failures.append(_failure(arg, "not a regular file (a device, pipe or socket)"))
        elif kind == "denied":
            failures.append(_failure(arg, "permission denied (a folder on its path cannot be entered)"))
        else:
            everything = sorted(glob.glob(arg, recursive=True))
            matches = [m for m in everything if not _excluded(m, excl)]
            hits = [Path(m) for m in matches if Path(m).is_file()]
            for m in matches:
                if Path(m).is_dir():
                    hits += _image_files(Path(m), excl, failures)
            if not hits:
                failures.append(_failure(arg, "the pattern matches only files in the output folder" if everything and
                                         not matches else "the pattern matches only folders without images" if
                                         matches else "no such file or folder (or the pattern matches nothing)"))
            for h in hits:
                add(h)
    return files, failures


def _recorded_source(folder: Path) -> str | None:
    try:
        return json.loads((folder / IMAGE_RECORD).read_text()).get("source")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _usable(out: Path | None, name: str, source: str) -> bool:
    """``out/name`` may hold this source's results: absent, or a real folder inside OUT of the same source."""
    if out is None:
        return True
    folder = out / name
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()) or not _inside(out, folder):
        return False
    return _recorded_source(folder) in (None, source)


def output_names(files: list[Path], out: str | Path | None = None) -> list[str]:
    """Output folder name per input: :func:`safe_stem`, with ``_2``, ``_3``... for stems repeated in this batch
    (input order), used in ``out`` by a different source file (so a rerun with other inputs never overwrites
    another photo's results) or by something that is not such a folder, and for the batch's own file names
    (:data:`RESERVED_NAMES`)."""
    taken: set[str] = set()
    names = []
    root = None if out is None else Path(out)
    for f in files:
        stem = safe_stem(f)
        source = str(f.resolve())
        n = 1
        while True:
            name = stem if n == 1 else f"{stem}_{n}"
            if name not in taken and name.lower() not in RESERVED_NAMES and not SHARD_SUMMARY.match(name.lower()) \
                    and _usable(root, name, source):
                break
            n += 1
        taken.add(name)
        names.append(name)
    return names


def _remove_faces(out: Path, out_dir: Path, record: bool = False) -> None:
    """Delete ``out_dir``'s face<k> folders (and its image.json if ``record``): only real folders inside OUT."""
    if not out_dir.is_dir() or out_dir.is_symlink() or not _inside(out, out_dir):
        return
    for old in out_dir.iterdir():
        if _FACE_DIR.match(old.name) and old.is_dir() and not old.is_symlink() and _inside(out, old):
            shutil.rmtree(old, ignore_errors=True)
    if record and (out_dir / IMAGE_RECORD).is_file():
        (out_dir / IMAGE_RECORD).unlink(missing_ok=True)


def _earlier_finished(out: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Inputs finished in OUT by earlier batches (listed in the previous summary.json) that this batch did not
    touch and whose outputs are still complete, so summary.json stays the index of everything in OUT."""
    try:
        previous = json.loads((out / SUMMARY_NAME).read_text()).get("inputs", [])
    except (OSError, ValueError, AttributeError):
        return []
    mine = {r.get("output") for r in records}
    kept: list[dict[str, Any]] = []
    for r in previous if isinstance(previous, list) else []:
        name = r.get("output") if isinstance(r, dict) else None
        if not isinstance(name, str) or name != Path(name).name or name in mine or r.get("status") != "ok":
            continue
        folder = out / name
        source = _recorded_source(folder)
        if source and _inside(out, folder) and _finished(folder, Path(source)) is not None:
            mine.add(name)
            kept.append({k: v for k, v in r.items() if k != "skipped"} | {"earlier_batch": True})
    return kept


def _finished(out_dir: Path, source: Path) -> dict[str, Any] | None:
    path = out_dir / IMAGE_RECORD
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if rec.get("status") != "ok" or rec.get("source") != str(source.resolve()):
        return None
    for face in rec.get("faces", []):
        if not (out_dir / face.get("dir", "?") / "result.json").is_file():
            return None
    return rec


@dataclass
class _Pending:
    record: dict[str, Any]
    path: Path
    out_dir: Path
    photo: ScaledPhoto
    crops: np.ndarray
    boxes: list
    faces: list
    timings: list
    angles: list


def _flame_setup(model_path: str | None) -> tuple[Callable | None, str | None]:
    """Returns (fit_and_save(face_dir, result) -> summary, None) or (None, reason it is off)."""
    if not model_path:
        return None, None
    from facevision.flame import load_flame_model, register_and_save, resolve_model_path

    try:
        model = load_flame_model(resolve_model_path(model_path))
    except Exception as exc:  # FlameModelError and friends: the message names the file
        return None, f"FLAME model not usable: {exc}"

    def fit(face_dir: Path, result) -> dict[str, Any]:
        return register_and_save(face_dir, result.mesh, result.corr, result.landmarks68_crop, model)

    return fit, None


def _warm_up_quietly(predictor: Predictor) -> None:
    """Create the face detector with stderr (fd 2) sent to /dev/null: MediaPipe/TFLite print start-up
    banners from C++ there, which would drown the one-line-per-bad-input messages."""
    import os

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                predictor.detect(np.zeros((64, 64, 3), np.uint8))
            except Exception:
                pass  # a real problem shows up again, with its message, on the first input
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_batch(predictor: Predictor, paths: list[str], out: str | Path, config: BatchConfig = BatchConfig()) -> dict[str, Any]:
    """Process every input; write per-face files, ``OUT/summary.json`` and (optionally) the report.

    Returns the summary; ``summary["counts"]["failed"] > 0`` means some input failed.
    """
    out = check_output_folder(out)
    remove_stale_temporaries(out, max_depth=2)  # left by a killed run: .<name>.<pid>-*.tmp* in OUT/<name>/face<k>/
    t_start = time.time()
    files, records = expand_inputs(paths, exclude=out)
    for r in records:
        _err(r["input"], r["reason"])
    names = output_names(files, out)
    if config.shard is not None:
        k, n = config.shard
        keys = output_names(files)  # without OUT: the same on every machine, whatever OUT holds
        mine = [i for i, key in enumerate(keys) if shard_of(key, n) == k]
        files, names = [files[i] for i in mine], [names[i] for i in mine]
        if k != 1:
            records = []  # arguments that matched nothing are recorded by shard 1 only (reported by all)
    if files:
        _warm_up_quietly(predictor)
    flame_fit, flame_off = _flame_setup(config.flame_model)
    if flame_off:
        print(f"facevision predict: warning: {flame_off}; continuing without FLAME", file=sys.stderr)
    pending: list[_Pending] = []
    n_pending = 0
    bar = _progress_bar(config, len(files))

    def finish_input(p: _Pending, depth: np.ndarray, corr: np.ndarray, mask: np.ndarray, network_ms: float) -> None:
        """Maps of one input's faces -> results -> files (runs on a writer thread)."""
        try:
            results = []
            for j in range(len(p.faces)):
                tm = dict(p.timings[j], network=network_ms)
                results.append(predictor.postprocess(p.crops[j], depth[j], corr[j], mask[j], p.boxes[j],
                                                     p.faces[j].box, p.faces[j].score, index=j, timings=tm,
                                                     crop_angle=float(p.angles[j])))
        except Exception as exc:  # an unexpected failure fails this input, not the batch
            _fail(p.record, f"prediction failed ({type(exc).__name__}: {exc})")
            return
        try:
            _finish(p, results, config, flame_fit)  # handles write failures itself
        except Exception as exc:  # noqa: BLE001 - anything else still fails only this input
            _fail(p.record, f"writing outputs failed ({type(exc).__name__}: {exc})")

    def flush(pool: WriterPool) -> None:
        nonlocal n_pending
        if not pending:
            return
        crops = np.concatenate([p.crops for p in pending])
        try:
            t = time.perf_counter()
            depth, corr, mask = predictor.run_network(crops)
            network_ms = (time.perf_counter() - t) * 1e3 / max(len(crops), 1)
        except Exception as exc:  # a network failure fails these inputs, not the batch
            for p in pending:
                _fail(p.record, f"prediction failed ({type(exc).__name__}: {exc})")
                bar.update()
            pending.clear()
            n_pending = 0
            return
        i = 0
        for p in pending:
            j = i + len(p.faces)
            pool.submit(lambda p=p, i=i, j=j: finish_input(p, depth[i:j], corr[i:j], mask[i:j], network_ms))
            i = j
        pending.clear()
        n_pending = 0

    with bar, WriterPool(config.writer, on_done=bar.update) as pool:
        for path, name in zip(files, names):
            out_dir = out / name
            rec: dict[str, Any] = {"input": str(path), "output": name, "status": "failed", "faces": []}
            records.append(rec)
            if safe_stem(path).lower() in RESERVED_NAMES:
                _warn(str(path), f"{safe_stem(path)} is one of the batch's own files; results go to {out_dir}")
            if not _inside(out, out_dir):  # output_names never picks such a name; checked before any write
                _fail(rec, f"output folder {out_dir} would lie outside {out}")
                bar.update()
                continue
            done = None if config.overwrite else _finished(out_dir, path)
            if done is not None:
                rec.update(status="ok", faces=done.get("faces", []), skipped=True)
                _log(config, f"{path}: already done -> {out_dir} (skipped; --overwrite redoes it)")
                bar.update()
                continue
            try:
                photo = read_photo_scaled(path, config.max_pixels)
                image = photo.image
                t = time.perf_counter()
                faces = predictor.detect(image)
                t_det = (time.perf_counter() - t) * 1e3 / max(len(faces), 1)
                if not faces:
                    _fail(rec, "no face detected")
                    bar.update()
                    continue
                t = time.perf_counter()
                crops, boxes, angles = predictor.crop_faces(image, faces)
                t_crop = (time.perf_counter() - t) * 1e3 / len(faces)
            except ImageReadError as exc:
                msg = str(exc)
                _fail(rec, msg[len(str(path)) + 2:] if msg.startswith(str(path)) else msg)
                bar.update()
                continue
            except Exception as exc:
                _fail(rec, f"{type(exc).__name__}: {exc}")
                bar.update()
                continue
            if config.overwrite:
                _remove_faces(out, out_dir)
            pending.append(_Pending(rec, path, out_dir, photo, crops, boxes, faces,
                                    [{"detect": t_det, "crop": t_crop} for _ in faces], angles))
            n_pending += len(faces)
            if n_pending >= predictor.config.batch_size:
                flush(pool)
        flush(pool)

    counts = {"ok": sum(r["status"] == "ok" for r in records), "failed": sum(r["status"] == "failed" for r in records),
              "skipped": sum(bool(r.get("skipped")) for r in records)}
    summary = {
        "out": str(out),
        "checkpoint": None if predictor.checkpoint is None else str(predictor.checkpoint),
        "device": predictor.device,
        "crop_size": predictor.size,
        "mesh": predictor.config.mesh is not None,
        "outputs": sorted(config.output.outputs),
        "counts": counts,
        "faces": sum(len(r.get("faces", [])) for r in records if r["status"] == "ok"),
        "elapsed_s": round(time.time() - t_start, 3),
        "max_pixels": config.max_pixels,
    }
    if config.shard is not None:
        summary["shard"] = list(config.shard)
        summary["finished_in_out"] = counts["ok"]
        summary["inputs"] = records
    else:
        earlier = _earlier_finished(out, records)
        summary["finished_in_out"] = len(earlier) + counts["ok"]
        summary["inputs"] = earlier + records
    if config.report:
        from facevision.predict.report import write_report

        try:
            summary["report"] = str(write_report(out, records))
        except Exception as exc:  # noqa: BLE001 - the summary is still written
            summary["report_error"] = str(exc)
            _err(str(out / REPORT_NAME), f"cannot write the report ({type(exc).__name__}: {exc})")
    name = SUMMARY_NAME if config.shard is None else shard_summary_name(*config.shard)
    try:
        atomic_write_json(out / name, summary)
    except OSError as exc:  # OutputWriteError: names the file and the reason (disk full...)
        summary["summary_error"] = str(exc)
        print(f"facevision predict: error: {exc}", file=sys.stderr, flush=True)
    if config.shard is not None and "summary_error" not in summary:
        _merge_if_complete(out, config.shard[1])
    return summary


def _merge_if_complete(out: Path, n: int) -> None:
    """Once every shard's summary of this N is in OUT, write their merge as OUT/summary.json."""
    from facevision.predict.shards import ShardMergeError

    try:
        merged = merge_shard_summaries(out, n)
    except ShardMergeError:
        return  # other shards still running (or elsewhere): `facevision merge-shards OUT` merges later
    try:
        atomic_write_json(out / SUMMARY_NAME, merged)
    except OSError as exc:
        print(f"facevision predict: error: {exc}", file=sys.stderr, flush=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


class _Bar:
    """One tqdm bar (photos, photos/s, ETA) on stderr, moved from any thread."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._lock = threading.Lock()
        self._bar = tqdm(total=total, unit="photo", desc="facevision predict", file=sys.stderr, disable=None,
                         dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int = 1) -> None:
        with self._lock:
            self._bar.update(n)

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()


def _progress_bar(config: BatchConfig, total: int) -> "_Bar | _NoBar":
    return _Bar(total) if config.progress and total else _NoBar()


def _print(line: str, file) -> None:
    """One line, also from writer threads, without breaking the progress bar (tqdm.write clears and redraws it)."""
    from tqdm import tqdm

    tqdm.write(line, file=file)
    file.flush()


def _log(config: BatchConfig, line: str) -> None:
    if config.log:
        _print(line, sys.stdout)


def _warn(path: str, reason: str) -> None:
    _print(f"facevision predict: warning: {path}: {reason}", sys.stderr)


def _err(path: str, reason: str) -> None:
    _print(f"facevision predict: error: {path}: {reason}", sys.stderr)


def _fail(rec: dict[str, Any], reason: str) -> None:
    rec.update(status="failed", reason=reason)
    _err(rec["input"], reason)


def _finish(p: _Pending, results: list, config: BatchConfig, flame_fit: Callable | None) -> None:
    """Write one input's faces and its image.json; set its record's status."""
    rec = p.record
    root = p.out_dir.parent
    faces = []
    try:
        for k, res in enumerate(results):
            res.index = k
            face_dir = p.out_dir / face_dir_name(k)
            if face_dir.is_symlink() or not _inside(root, face_dir):
                raise OutputWriteError(f"{face_dir}: refusing to write outside the output folder {root}")
            extra: dict[str, Any] = {}
            if flame_fit is not None and res.ok and res.mesh is not None:
                try:
                    extra["flame"] = flame_fit(face_dir, res)
                except Exception as exc:
                    extra["flame"] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            data = write_face(face_dir, res, p.photo.image, str(p.path), config.render, extra,
                              photo_scale=p.photo.scale, output=config.output)
            faces.append({"dir": face_dir.name, "status": data["status"], **({"error": res.error} if res.error else {})})
    except OSError as exc:  # OutputWriteError names the file and says "disk full" when it is
        _remove_faces(root, p.out_dir, record=True)
        _fail(rec, f"cannot write outputs: {exc}")
        return
    except Exception as exc:
        _remove_faces(root, p.out_dir, record=True)
        _fail(rec, f"writing outputs failed ({type(exc).__name__}: {exc})")
        return
    rec["faces"] = faces
    ok = [f for f in faces if f["status"] == "ok"]
    if ok:
        rec["status"] = "ok"
        rec.pop("reason", None)
    else:
        _fail(rec, faces[0].get("error", "no usable face"))
    image_record = {"source": str(p.path.resolve()), "input": str(p.path), "status": rec["status"], "faces": faces,
                    "image_size": list(p.photo.original_size)}
    if p.photo.scale != (1.0, 1.0):
        image_record["processed_size"] = [int(p.photo.image.shape[1]), int(p.photo.image.shape[0])]
    try:
        atomic_write_json(p.out_dir / IMAGE_RECORD, image_record)
    except OSError as exc:
        _remove_faces(root, p.out_dir, record=True)
        _fail(rec, f"cannot write outputs: {exc}")
        return
    if rec["status"] == "ok":
        _log(config, f"{p.path}: {len(ok)} face(s) -> {p.out_dir}")

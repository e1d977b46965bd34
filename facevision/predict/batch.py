"""``facevision predict`` over many inputs: expand paths, batch faces through the network, write, report.

Each input gets a record ``{"input", "output", "status": "ok" | "failed", "reason", "faces", "skipped"}``;
a failure (unreadable file, no face, unusable prediction, unexpected error) is one line on stderr
naming the file and the reason, and the batch goes on. An input is finished when
``OUT/<name>/image.json`` says ``ok`` for the same source file and every face's result.json exists;
finished inputs are skipped on a rerun unless ``overwrite``. Failed inputs are tried again.
"""
from __future__ import annotations

import glob
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from data_prep.io import ImageReadError, atomic_write_json, read_photo
from facevision.predict.outputs import IMAGE_RECORD, SUMMARY_NAME, face_dir_name, write_face
from facevision.predict.predictor import Predictor
from facevision.predict.render import RenderConfig

__all__ = ["BatchConfig", "IMAGE_SUFFIXES", "expand_inputs", "run_batch", "output_names"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif", ".pgm", ".ppm")


@dataclass
class BatchConfig:
    """overwrite: redo finished inputs; report: write OUT/report.html; flame_model: path of a FLAME model
    to register to each face (None = off); render: preview settings; log: stdout progress lines."""

    overwrite: bool = False
    report: bool = False
    flame_model: str | None = None
    render: RenderConfig = field(default_factory=RenderConfig)
    log: bool = True


def expand_inputs(paths: list[str]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Files, folders (recursive, image suffixes only) and globs -> (unique files in order, failure records
    for arguments that match nothing)."""
    files: list[Path] = []
    missing: list[dict[str, Any]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for arg in paths:
        p = Path(arg)
        if p.is_file():
            add(p)
        elif p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES):
                add(f)
        else:
            matches = sorted(glob.glob(arg, recursive=True))
            hits = [Path(m) for m in matches if Path(m).is_file()]
            for m in matches:
                if Path(m).is_dir():
                    hits += sorted(q for q in Path(m).rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not hits:
                missing.append({"input": arg, "output": None, "status": "failed", "faces": [],
                                "reason": "no such file or folder (or the pattern matches nothing)"})
            for h in hits:
                add(h)
    return files, missing


def _recorded_source(folder: Path) -> str | None:
    try:
        return json.loads((folder / IMAGE_RECORD).read_text()).get("source")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def output_names(files: list[Path], out: str | Path | None = None) -> list[str]:
    """Output folder name per input: the file stem, with ``_2``, ``_3``... for stems repeated in this batch
    (input order) or already used in ``out`` by a different source file (so a rerun with other inputs never
    overwrites another photo's results)."""
    taken: set[str] = set()
    names = []
    for f in files:
        stem = f.stem or "image"
        source = str(f.resolve())
        n = 1
        while True:
            name = stem if n == 1 else f"{stem}_{n}"
            other = None if out is None else _recorded_source(Path(out) / name)
            if name not in taken and other in (None, source):
                break
            n += 1
        taken.add(name)
        names.append(name)
    return names


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
    image: np.ndarray
    crops: np.ndarray
    boxes: list
    faces: list
    timings: list


def _flame_setup(model_path: str | None) -> tuple[Callable | None, str | None]:
    """Returns (fit_and_save(face_dir, result) -> summary, None) or (None, reason it is off)."""
    if not model_path:
        return None, None
    try:
        from facevision.flame import load_flame_model, register, resolve_model_path, save_fit
    except ImportError as exc:
        return None, f"FLAME registration unavailable ({exc})"
    try:
        model = load_flame_model(resolve_model_path(model_path))
    except Exception as exc:  # FlameModelError and friends: the message names the file
        return None, f"FLAME model not usable: {exc}"

    def fit(face_dir: Path, result) -> dict[str, Any]:
        f = register(result.mesh, result.corr, result.landmarks68_crop, model)
        return save_fit(face_dir / "flame.npz", f, model.sha256)

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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    files, records = expand_inputs(paths)
    for r in records:
        _err(r["input"], r["reason"])
    if files:
        _warm_up_quietly(predictor)
    flame_fit, flame_off = _flame_setup(config.flame_model)
    if flame_off:
        print(f"facevision predict: warning: {flame_off}; continuing without FLAME", file=sys.stderr)
    pending: list[_Pending] = []
    n_pending = 0

    def flush() -> None:
        nonlocal n_pending
        if not pending:
            return
        crops = np.concatenate([p.crops for p in pending])
        boxes = [b for p in pending for b in p.boxes]
        bboxes = [f.box for p in pending for f in p.faces]
        scores = [f.score for p in pending for f in p.faces]
        timings = [t for p in pending for t in p.timings]
        try:
            results = predictor.predict_crops(crops, boxes, bboxes, scores, timings)
        except Exception as exc:  # a network failure fails these inputs, not the batch
            for p in pending:
                _fail(p.record, f"prediction failed ({type(exc).__name__}: {exc})")
            pending.clear()
            n_pending = 0
            return
        i = 0
        for p in pending:
            mine = results[i:i + len(p.faces)]
            i += len(p.faces)
            _finish(p, mine, config, flame_fit)
        pending.clear()
        n_pending = 0

    for path, name in zip(files, output_names(files, out)):
        out_dir = out / name
        rec: dict[str, Any] = {"input": str(path), "output": name, "status": "failed", "faces": []}
        records.append(rec)
        done = None if config.overwrite else _finished(out_dir, path)
        if done is not None:
            rec.update(status="ok", faces=done.get("faces", []), skipped=True)
            _log(config, f"{path}: already done -> {out_dir} (skipped; --overwrite redoes it)")
            continue
        try:
            image = read_photo(path)
            t = time.perf_counter()
            faces = predictor.detect(image)
            t_det = (time.perf_counter() - t) * 1e3 / max(len(faces), 1)
            if not faces:
                _fail(rec, "no face detected")
                continue
            t = time.perf_counter()
            crops, boxes = predictor.crop_faces(image, faces)
            t_crop = (time.perf_counter() - t) * 1e3 / len(faces)
        except ImageReadError as exc:
            msg = str(exc)
            _fail(rec, msg[len(str(path)) + 2:] if msg.startswith(str(path)) else msg)
            continue
        except Exception as exc:
            _fail(rec, f"{type(exc).__name__}: {exc}")
            continue
        if config.overwrite and out_dir.is_dir():
            for old in out_dir.glob("face*"):
                shutil.rmtree(old, ignore_errors=True)
        pending.append(_Pending(rec, path, out_dir, image, crops, boxes, faces,
                                [{"detect": t_det, "crop": t_crop} for _ in faces]))
        n_pending += len(faces)
        if n_pending >= predictor.config.batch_size:
            flush()
    flush()

    counts = {"ok": sum(r["status"] == "ok" for r in records), "failed": sum(r["status"] == "failed" for r in records),
              "skipped": sum(bool(r.get("skipped")) for r in records)}
    summary = {
        "out": str(out),
        "checkpoint": None if predictor.checkpoint is None else str(predictor.checkpoint),
        "device": predictor.device,
        "crop_size": predictor.size,
        "mesh": predictor.config.mesh is not None,
        "counts": counts,
        "faces": sum(len(r.get("faces", [])) for r in records if r["status"] == "ok"),
        "elapsed_s": round(time.time() - t_start, 3),
        "inputs": records,
    }
    if config.report:
        from facevision.predict.report import write_report

        summary["report"] = str(write_report(out, records))
    atomic_write_json(out / SUMMARY_NAME, summary)
    return summary


def _log(config: BatchConfig, line: str) -> None:
    if config.log:
        print(line, flush=True)


def _err(path: str, reason: str) -> None:
    print(f"facevision predict: error: {path}: {reason}", file=sys.stderr, flush=True)


def _fail(rec: dict[str, Any], reason: str) -> None:
    rec.update(status="failed", reason=reason)
    _err(rec["input"], reason)


def _finish(p: _Pending, results: list, config: BatchConfig, flame_fit: Callable | None) -> None:
    """Write one input's faces and its image.json; set its record's status."""
    rec = p.record
    faces = []
    try:
        for k, res in enumerate(results):
            res.index = k
            face_dir = p.out_dir / face_dir_name(k)
            extra: dict[str, Any] = {}
            if flame_fit is not None and res.ok and res.mesh is not None:
                try:
                    extra["flame"] = flame_fit(face_dir, res)
                except Exception as exc:
                    extra["flame"] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            data = write_face(face_dir, res, p.image, str(p.path), config.render, extra)
            faces.append({"dir": face_dir.name, "status": data["status"], **({"error": res.error} if res.error else {})})
    except Exception as exc:
        _fail(rec, f"writing outputs failed ({type(exc).__name__}: {exc})")
        return
    rec["faces"] = faces
    ok = [f for f in faces if f["status"] == "ok"]
    if ok:
        rec["status"] = "ok"
        rec.pop("reason", None)
    else:
        _fail(rec, faces[0].get("error", "no usable face"))
    atomic_write_json(p.out_dir / IMAGE_RECORD, {"source": str(p.path.resolve()), "input": str(p.path),
                                                 "status": rec["status"], "faces": faces,
                                                 "image_size": [int(p.image.shape[1]), int(p.image.shape[0])]})
    if rec["status"] == "ok":
        _log(config, f"{p.path}: {len(ok)} face(s) -> {p.out_dir}")

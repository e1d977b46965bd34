"""``OUT/summary.json`` (or a shard's ``OUT/summary.shard-K-of-N.json``), rebuilt from OUT at the end of every run,
an interrupted one included: this run's records as OUT holds them plus, without ``--shard``, every other photo
finished in OUT (:func:`facevision.predict.outputs.finished_photos`), each with the outputs it holds; then the
report (``--report``) and, once every shard of N is in OUT, their merge."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facevision.common.fileio import atomic_write_json, remove_stale_temporaries
from facevision.predict.console import error, fail, say_error
from facevision.predict.outputs import SUMMARY_NAME, finished_photo, finished_photos, photo_outputs, read_image_record
from facevision.predict.report import REPORT_NAME
from facevision.predict.resume import face_counts, finished_input
from facevision.predict.shards import merge_shard_summaries, shard_summary_name

if TYPE_CHECKING:
    from facevision.predict.predictor import Predictor
    from facevision.predict.runner import BatchConfig

__all__ = ["PENDING", "write_summary"]

PENDING = "pending"  # a record's status until its input is finished or failed (left so by an interrupted run)


def write_summary(predictor: Predictor, config: BatchConfig, out: Path, records: list[dict[str, Any]],
                  t_start: float, interrupted: BaseException | None) -> dict[str, Any]:
    """Build ``OUT/summary.json`` (or the shard's summary) from this run's records and what OUT holds
    (:func:`_indexed`; without ``--shard``, every other photo finished in OUT too, ``earlier_batch``) and write
    it; the report too, unless the run was interrupted. ``t_start``: the run's start (``time.time()``).
    Returns the summary."""
    remove_stale_temporaries(out, max_depth=0)  # the temporary folders of writers stopped by an interruption
    records, unfinished = _indexed(out, records)
    summary = _summary_head(predictor, config, out, records, t_start)
    if interrupted is not None:
        summary.update(interrupted=True, unfinished=unfinished)
    _add_inputs(summary, config, out, records)
    if config.report and interrupted is None:
        _add_report(summary, out, records)
    name = SUMMARY_NAME if config.shard is None else shard_summary_name(*config.shard)
    try:
        atomic_write_json(out / name, summary)
    except OSError as exc:  # OutputWriteError: names the file and the reason (disk full...)
        summary["summary_error"] = str(exc)
        say_error(f"error: {exc}")
    if isinstance(interrupted, KeyboardInterrupt) and "summary_error" not in summary:
        say_error(f"interrupted: {out / name} lists what {out} holds ({summary['finished_in_out']} photo(s) "
                  f"finished; {unfinished} of this run's not)")
    if config.shard is not None and "summary_error" not in summary and interrupted is None:
        _merge_if_complete(out, config.shard[1])
    _note_skipped_faces(records, out / name)
    return summary


def _indexed(out: Path, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """This run's records as OUT now holds them, and how many were never finished. An ok record gets the
    outputs its folder holds (:func:`facevision.predict.outputs.photo_outputs`) and fails when the folder is
    no longer finished; an unfinished one (an interrupted run) is listed when its folder was completed,
    else left out."""
    listed: list[dict[str, Any]] = []
    unfinished = 0
    for r in records:
        folder = out / r["output"] if r.get("output") else None
        if r["status"] == PENDING:
            rec = finished_input(folder, Path(r["input"])) if folder is not None else None
            if rec is None:
                unfinished += 1
                continue
            r.update(status="ok", faces=rec["faces"])
        if r["status"] == "ok":
            rec = finished_photo(folder) if folder is not None else None
            if rec is None:
                fail(r, f"its outputs in {folder} are gone (removed while the batch ran?)")
                r.pop("skipped", None)
            else:
                r["outputs"] = photo_outputs(folder, r["faces"])
                r.update(face_counts(rec))
        listed.append(r)
    return listed, unfinished


def _summary_head(predictor: Predictor, config: BatchConfig, out: Path, records: list[dict[str, Any]],
                  t_start: float) -> dict[str, Any]:
    """The summary's settings and counts (``elapsed_s``: seconds since ``t_start``)."""
    ok = [r for r in records if r["status"] == "ok"]
    return {
        "out": str(out),
        "checkpoint": None if predictor.checkpoint is None else str(predictor.checkpoint),
        "device": predictor.device,
        "crop_size": predictor.size,
        "mesh": predictor.config.mesh is not None,
        "outputs": sorted(config.output.outputs),
        "counts": {"ok": len(ok), "failed": sum(r["status"] == "failed" for r in records),
                   "skipped": sum(bool(r.get("skipped")) for r in records)},
        "faces": sum(len(r.get("faces", [])) for r in ok),
        "faces_skipped": sum(r.get("faces_skipped", 0) for r in ok),
        "elapsed_s": round(time.time() - t_start, 3),
        "max_pixels": config.max_pixels,
    }


def _add_inputs(summary: dict[str, Any], config: BatchConfig, out: Path, records: list[dict[str, Any]]) -> None:
    """``inputs`` and ``finished_in_out``: a shard's own records; else every photo finished in OUT too."""
    ok = summary["counts"]["ok"]
    if config.shard is not None:
        summary["shard"] = list(config.shard)
        summary["finished_in_out"] = ok
        summary["inputs"] = records
        return
    earlier = [dict(e, earlier_batch=True, **face_counts(read_image_record(out / e["output"]) or {}))
               for e in finished_photos(out, skip={r["output"] for r in records})]
    summary["finished_in_out"] = len(earlier) + ok
    summary["inputs"] = earlier + records


def _add_report(summary: dict[str, Any], out: Path, records: list[dict[str, Any]]) -> None:
    """Write OUT/report.html: ``report`` (its path), or ``report_error`` and one line."""
    from facevision.predict.report import write_report

    try:
        summary["report"] = str(write_report(out, records))
    except Exception as exc:  # noqa: BLE001 - the summary is still written
        summary["report_error"] = str(exc)
        error(str(out / REPORT_NAME), f"cannot write the report ({type(exc).__name__}: {exc})")


def _note_skipped_faces(records: list[dict[str, Any]], summary_path: Path) -> None:
    """One stderr line for the run: how many faces the photos of this run hold beyond the one processed of each."""
    left = [r.get("faces_skipped", 0) for r in records if r["status"] == "ok" and r.get("faces_skipped", 0) > 0]
    if left:
        say_error(f"note: {sum(left)} more face(s) found in {len(left)} photo(s) were left out: only the largest "
                  f"face of a photo is processed (faces_skipped in {summary_path}); --all-faces processes them")


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
        say_error(f"error: {exc}")

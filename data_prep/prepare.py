"""``facevision prepare lfw``: photos -> labelled dataset (parallel, resumable, with a drop summary).

Resumability: every processed photo gets one JSON line in ``DATASET/records.jsonl`` (appended by the
main process as results arrive): ``{"id", "status": "kept" | "dropped", "reason", "message", "crop_box", ...}``.
A rerun skips photos recorded as dropped and photos recorded as kept whose four sample files are
complete (:func:`data_prep.dataset_format.sample_complete`); everything else is (re)done. A partly
written last line (crash) is ignored. The manifest and ``summary.json`` are rewritten at the end.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from data_prep.dataset_format import SPLITS, sample_complete, write_manifest
from data_prep.drops import DROP_REASONS, LABELER_FAILURE, UNREADABLE
from facevision.common.checks import check_choice, check_int
from facevision.common.fileio import atomic_write_json
from data_prep.lfw import PhotoEntry, list_lfw
from data_prep.split import SplitConfig, split_identities
from facevision.face.sizes import CROP_SIZE

__all__ = ["PrepareConfig", "prepare_lfw", "RECORDS_NAME", "SUMMARY_NAME"]

RECORDS_NAME = "records.jsonl"
SUMMARY_NAME = "summary.json"
LABELERS = ("mediapipe", "3ddfa-v2")


@dataclass
class PrepareConfig:
    """Options of one ``prepare`` run (see ``facevision prepare lfw --help``); checked when built.

    z_stretch: Face Mesh labels only: its z is multiplied by this (:class:`data_prep.landmarks.FaceMeshConfig`;
        written as ``depth_scale`` in summary.json).
    """

    labeler: str = "mediapipe"
    tddfa_dir: str | None = None
    passes: int = 2
    mirror_average: bool = False
    z_stretch: float = 1.0
    size: int = CROP_SIZE
    workers: int = 2
    limit: int | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        check_choice(self, "labeler", LABELERS)
        if self.labeler == "3ddfa-v2" and not self.tddfa_dir:
            raise ValueError("labeler 3ddfa-v2 needs tddfa_dir DIR (the 3DDFA_V2 regressor and face model)")
        check_int(self, "size", low=16)
        for name in ("workers", "passes"):
            check_int(self, name, low=1)
        check_int(self, "limit", low=0, optional=True)
        from data_prep.landmarks import FaceMeshConfig

        FaceMeshConfig(z_stretch=self.z_stretch)  # its bound, named: "FaceMeshConfig.z_stretch must be in (0, 10]"
        if self.labeler == "3ddfa-v2" and self.z_stretch != 1.0:
            raise ValueError(f"z_stretch stretches Face Mesh's depth; 3DDFA_V2's 3DMM faces are to scale "
                             f"(got {self.z_stretch!r} with labeler 3ddfa-v2)")


# ----------------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def _init_worker(root: str, out: str, cfg: PrepareConfig) -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    _WORKER.update(root=Path(root), out=Path(out), cfg=cfg)
    if cfg.labeler == "mediapipe":
        from facevision.face.crop import CropConfig
        from data_prep.label_mediapipe import LabelConfig
        from facevision.face.reference import load_reference

        from data_prep.landmarks import FaceMeshConfig

        _WORKER["label_config"] = LabelConfig(crop=CropConfig(size=cfg.size),
                                              mesh=FaceMeshConfig(mirror_average=cfg.mirror_average,
                                                                  z_stretch=cfg.z_stretch))
        _WORKER["reference"] = load_reference()
    else:
        from facevision.face.crop import CropConfig
        from data_prep.label_tddfa import TddfaConfig, TddfaLabeler

        tcfg = TddfaConfig(crop=CropConfig(size=cfg.size), passes=cfg.passes, mirror_average=cfg.mirror_average)
        # one torch thread per worker process; in the caller's own process (one worker) its setting is left alone
        _WORKER["tddfa"] = TddfaLabeler(cfg.tddfa_dir, tcfg, threads=1 if cfg.workers > 1 else None)


def _process(entry: PhotoEntry) -> dict[str, Any]:
    """Label one photo and write its sample; returns its record (never raises for a bad photo)."""
    from data_prep.dataset_format import write_face_mesh, write_sample
    from data_prep.drops import DropError
    from facevision.face.images import ImageReadError, read_photo

    root, out, cfg = _WORKER["root"], _WORKER["out"], _WORKER["cfg"]
    rec: dict[str, Any] = {"id": entry.id, "identity": entry.identity, "source": entry.source,
                           "labeler": cfg.labeler}
    try:
        image = read_photo(root / entry.source)
        if cfg.labeler == "mediapipe":
            from data_prep.label_mediapipe import label_photo

            res = label_photo(image, _WORKER["label_config"], _WORKER["reference"])
            sample, box = res.sample, res.crop_box
            rec["crop_angle"] = round(res.crop_angle, 3)
            write_face_mesh(out, entry.id, res.landmarks_crop)
        else:
            from data_prep.dataset_format import write_label_fit
            from data_prep.label_tddfa import label_photo_tddfa

            lab = label_photo_tddfa(image, _WORKER["tddfa"])
            sample, box = lab.sample, lab.crop_box
            rec["crop_angle"] = round(lab.crop_angle, 3)
            write_face_mesh(out, entry.id, lab.points_crop)
            write_label_fit(out, entry.id, params=lab.fit.params, roi=np.asarray(lab.fit.roi, np.float64),
                            landmarks=lab.landmarks_crop)
        write_sample(out, entry.id, sample)
        rec.update(status="kept", crop_box=[int(v) for v in box])
        if "detection_score" in sample.meta:
            rec["detection_score"] = round(float(sample.meta["detection_score"]), 4)
    except ImageReadError as exc:
        rec.update(status="dropped", reason=UNREADABLE, message=str(exc))
    except DropError as exc:
        rec.update(status="dropped", reason=exc.reason, message=str(exc))
    except Exception as exc:  # a labeler bug must not stop a 13k-photo run; it is counted and reported
        rec.update(status="dropped", reason=LABELER_FAILURE, message=f"{type(exc).__name__}: {exc}")
    return rec


# ----------------------------------------------------------------------------- main side
def read_records(out: Path) -> dict[str, dict[str, Any]]:
    """Last record per id from ``records.jsonl`` (unparseable lines are ignored)."""
    recs: dict[str, dict[str, Any]] = {}
    path = out / RECORDS_NAME
    if not path.is_file():
        return recs
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and "id" in r and r.get("status") in ("kept", "dropped"):
                recs[r["id"]] = r
    return recs


def _is_done(out: Path, rec: dict[str, Any] | None, entry: PhotoEntry) -> bool:
    if rec is None or rec.get("source") != entry.source:
        return False
    if rec["status"] == "dropped":
        return True
    return sample_complete(out, entry.id)


def _run_pool(todo: list[PhotoEntry], root: Path, out: Path, cfg: PrepareConfig) -> Iterator[dict[str, Any]]:
    wcfg = replace(cfg, progress=False)  # the workers get the config object (pickled), not a dict
    if cfg.workers <= 1:
        _init_worker(str(root), str(out), wcfg)
        for e in todo:
            yield _process(e)
        return
    ctx = mp.get_context("spawn")  # MediaPipe graphs are not fork-safe
    with ctx.Pool(cfg.workers, initializer=_init_worker, initargs=(str(root), str(out), wcfg)) as pool:
        yield from pool.imap_unordered(_process, todo, chunksize=8)


def _check_same_labeler(out: Path, labeler: str) -> None:
    """A dataset folder is resumed only with the labeler that began it (labels of two spaces never mix)."""
    before = {r.get("labeler", "mediapipe") for r in read_records(out).values()}
    if (out / SUMMARY_NAME).is_file():
        try:
            before.add(json.loads((out / SUMMARY_NAME).read_text()).get("labeler", "mediapipe"))
        except (OSError, ValueError, AttributeError):
            pass
    before.discard(labeler)
    if before:
        before = sorted(before)[0]
        raise ValueError(f"{out}: this dataset was labelled with {before!r}; it cannot be resumed with {labeler!r} "
                         "(use another output folder)")


def prepare_lfw(root: str | Path, out: str | Path, cfg: PrepareConfig = PrepareConfig()) -> dict[str, Any]:
    """Build (or resume) a dataset from an LFW-style tree; returns the summary (also saved as summary.json)."""
    if cfg.labeler == "3ddfa-v2":  # the config checked itself when built (PrepareConfig.__post_init__)
        from data_prep.tddfa_files import load_tddfa_files
        from data_prep.tddfa_net import load_regressor

        load_regressor(load_tddfa_files(cfg.tddfa_dir).weights)  # a bad folder fails here, named, before any worker
    root, out = Path(root), Path(out)
    _check_same_labeler(out, cfg.labeler)
    t0 = time.time()
    entries = list_lfw(root)
    split = split_identities(Counter(e.identity for e in entries), cfg.split)
    if cfg.limit is not None:
        entries = entries[: cfg.limit]
    out.mkdir(parents=True, exist_ok=True)
    if cfg.labeler == "3ddfa-v2":
        from facevision.face.reference import DATASET_REFERENCE_FILE
        from data_prep.tddfa_files import load_tddfa_files
        from data_prep.tddfa_reference import write_tddfa_reference

        write_tddfa_reference(out / DATASET_REFERENCE_FILE, load_tddfa_files(cfg.tddfa_dir))
    records = read_records(out)
    todo = [e for e in entries if not _is_done(out, records.get(e.id), e)]
    print(f"prepare: {len(entries)} files under {root}; {len(entries) - len(todo)} already done, {len(todo)} to "
          f"process with {cfg.workers} worker(s), labeler {cfg.labeler}", file=sys.stderr, flush=True)
    _label(todo, root, out, cfg, records)
    kept, dropped = _kept_and_dropped(entries, records, split)
    summary = _summary(root, cfg, entries, split, kept, dropped, len(todo), time.time() - t0)
    write_manifest(out, kept, size=cfg.size, label_source=cfg.labeler, correspondence_space=_space(cfg.labeler),
                   split_config=asdict(cfg.split), summary=summary)
    atomic_write_json(out / SUMMARY_NAME, summary)
    return summary


def _label(todo: list[PhotoEntry], root: Path, out: Path, cfg: PrepareConfig,
           records: dict[str, dict[str, Any]]) -> None:
    """Label ``todo`` with the worker pool; each record goes into ``records`` and is appended to records.jsonl."""
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="img", dynamic_ncols=True, mininterval=2.0, file=sys.stderr)
    with open(out / RECORDS_NAME, "a", encoding="utf-8") as log:
        for rec in _run_pool(todo, root, out, cfg):
            records[rec["id"]] = rec
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if bar is not None:
                bar.update(1)
                if rec["status"] == "dropped":
                    bar.set_postfix_str(f"last drop: {rec['reason']}", refresh=False)
    if bar is not None:
        bar.close()


def _kept_and_dropped(entries: list[PhotoEntry], records: dict[str, dict[str, Any]],
                      split: dict[str, str]) -> tuple[list[dict[str, Any]], Counter]:
    """Manifest entries of the kept photos (in listing order) and the drop count per reason."""
    kept, dropped = [], Counter()
    for e in entries:
        r = records.get(e.id)
        if r is None:
            continue
        if r["status"] == "dropped":
            dropped[r["reason"]] += 1
            continue
        kept.append({"id": e.id, "identity": e.identity, "split": split[e.identity], "source": e.source,
                     "crop_box": r.get("crop_box"), "crop_angle": r.get("crop_angle", 0.0)})
    return kept, dropped


def _space(labeler: str) -> str:
    """The correspondence space of a labeler's maps."""
    if labeler == "mediapipe":
        from facevision.face.reference import CORRESPONDENCE_SPACE

        return CORRESPONDENCE_SPACE
    from data_prep.label_tddfa import CORRESPONDENCE_SPACE

    return CORRESPONDENCE_SPACE


def _summary(root: Path, cfg: PrepareConfig, entries: list[PhotoEntry], split: dict[str, str],
             kept: list[dict[str, Any]], dropped: Counter, processed: int, elapsed: float) -> dict[str, Any]:
    """summary.json: settings, counts (listed, read, dropped per reason, kept per split) and wall time (s)."""
    kept_per_split = Counter(k["split"] for k in kept)
    photos_per_split = Counter(split[e.identity] for e in entries)
    return {
        "root": str(root),
        "labeler": cfg.labeler,
        "mirror_average": cfg.mirror_average,
        "depth_scale": cfg.z_stretch if cfg.labeler == "mediapipe" else None,  # the summary's name for z_stretch
        "passes": cfg.passes if cfg.labeler == "3ddfa-v2" else None,
        "size": cfg.size,
        "files_listed": len(entries),
        "images_read": len(entries) - dropped[UNREADABLE],
        "processed_this_run": processed,
        "resumed_from_previous_runs": len(entries) - processed,
        "dropped": {reason: dropped[reason] for reason in DROP_REASONS},
        "dropped_total": sum(dropped.values()),
        "kept": len(kept),
        "kept_per_split": {s: kept_per_split[s] for s in SPLITS},
        "photos_per_split_before_drops": {s: photos_per_split[s] for s in SPLITS},
        "identities_per_split": {s: sum(1 for v in set((e.identity, split[e.identity]) for e in entries) if v[1] == s)
                                 for s in SPLITS},
        "wall_time_s": round(elapsed, 1),
        "workers": cfg.workers,
    }


def format_summary(summary: dict[str, Any]) -> str:
    d, k = summary["dropped"], summary["kept_per_split"]
    lines = [
        f"files listed:   {summary['files_listed']}",
        f"images read:    {summary['images_read']}",
        f"dropped:        {summary['dropped_total']} (unreadable {d['unreadable']}, no face {d['no_face']}, "
        f"more than one face {d['multiple_faces']}, labeler failure {d['labeler_failure']})",
        f"kept:           {summary['kept']} (train {k['train']}, val {k['val']}, test {k['test']})",
        f"wall time:      {summary['wall_time_s']:.0f} s ({summary['processed_this_run']} processed this run, "
        f"{summary['resumed_from_previous_runs']} resumed)",
    ]
    return "\n".join(lines)

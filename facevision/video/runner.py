"""One video -> OUT/<clip>/: frames.jsonl (one line per frame), overlay.mp4 and video.json (the summary).

Per frame (3DDFA_V2's scheme): the detector on the first frame, then the crop from the previous frame's landmarks
(:mod:`facevision.video.tracking`); the detector runs again every ``redetect_every`` frames and at once when the
face is lost (no usable maps, a fit residual above ``max_rms_frac`` of the crop, the crop off the frame). Only
the largest face is followed. Landmarks (their centre and their shape about it apart), pose angles and the fit's
codes are smoothed (:mod:`facevision.video.smoothing`): causally by default, so the same settings run live;
``offline`` smooths the whole clip with zero lag after the last frame. The raw values are kept beside the
smoothed ones.

frames.jsonl, per frame: ``frame``, ``time_s``, ``status`` (``ok``, ``no face``, ``refused``, ``lost``),
``source`` (``detected`` or ``tracked``), ``crop_box``, ``crop_angle``, ``landmarks68`` and ``landmarks68_raw``
(photo px, x right, y down), ``visible``, ``pose`` and ``pose_raw`` (yaw, pitch, roll in degrees,
:mod:`facevision.maps.pose`), ``fit`` (``id_coeffs``, ``exp_coeffs``, smoothed; ``rms_px``) and ``ms``.
video.json also gives the clip's one identity code, fitted jointly over up to ``identity_frames`` frames spread
over the clip (:func:`facevision.fit.model_fit.fit_shared_identity`; per-frame codes vary with the view).
The clip's folder is written as a whole (a temporary folder renamed into place at the end).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from facevision.common.checks import check_choice, check_fraction, check_int
from facevision.face.crop import CropConfig, crop_image
from facevision.fit.model_fit import FitConfig
from facevision.predict.records import FaceCrop
from facevision.video.frames import VideoInfo, open_frames
from facevision.video.smoothing import OneEuroConfig, OneEuroFilter, jitter, savgol_smooth
from facevision.video.tracking import BoxRelation, box_relation, landmark_box, tracked_crop

__all__ = ["VideoConfig", "run_video", "draw_frame"]

Smoothing = Literal["causal", "offline", "none"]


@dataclass(frozen=True)
class VideoConfig:
    """redetect_every: frames between detector runs while tracking (0 = only when lost); max_rms_frac: a fit
    residual above this x the crop side counts as lost; smoothing: ``causal`` (One-Euro, live), ``offline``
    (Savitzky-Golay over ``offline_window`` frames, zero lag) or ``none``; landmarks, pose, codes: One-Euro
    settings for the landmarks' centre (face sizes per second), their shape about it (the same), angles
    (degrees) and fit codes (prior units); overlay: write
    overlay.mp4; max_frames: stop after this many frames (None = all); fourcc: the overlay's codec; fit: the
    face-model fit a video's predictor should use (fewer pixels and rounds than a photo's: faster, with the same
    landmark jitter); identity_frames: ok frames, evenly spread, whose
    maps give the clip's one identity code (:func:`facevision.fit.model_fit.fit_shared_identity`, in video.json;
    0 = none)."""

    redetect_every: int = 30
    max_rms_frac: float = 0.05
    smoothing: Smoothing = "causal"
    offline_window: int = 9
    landmarks: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=0.5, beta=4.0))
    shape: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=0.5, beta=0.3))
    pose: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=1.5, beta=0.05))
    codes: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=0.5, beta=0.5))
    overlay: bool = True
    max_frames: int | None = None
    fourcc: str = "mp4v"
    fit: FitConfig = field(default_factory=lambda: FitConfig(max_points=800, iterations=3))
    identity_frames: int = 20

    def __post_init__(self) -> None:
        check_int(self, "redetect_every", low=0)
        check_choice(self, "smoothing", get_args(Smoothing))
        check_fraction(self, "max_rms_frac", low_open=True, high_open=True)
        check_int(self, "max_frames", low=1, optional=True)
        check_int(self, "identity_frames", low=0)
        if len(self.fourcc) != 4:
            raise ValueError(f"VideoConfig.fourcc must be 4 characters, got {self.fourcc!r}")


@dataclass
class _Track:
    """What the next frame needs from this one: the raw landmarks, the box relation, the filters."""

    landmarks: np.ndarray | None = None
    relation: BoxRelation | None = None
    since_detect: int = 0
    filters: dict[str, OneEuroFilter] = field(default_factory=dict)


def _lost(res: Any, frame_shape: tuple[int, ...], config: VideoConfig) -> bool:
    """The face is no longer followed: no usable result, a poor fit, or its crop mostly off the frame."""
    if not res.ok or res.landmarks68 is None:
        return True
    fit = res.model_fit
    if fit is not None and fit.rms_px > config.max_rms_frac * fit.crop_size:
        return True
    h, w = frame_shape[:2]
    c, side = landmark_box(res.landmarks68)
    return not (-0.25 * side <= c[0] <= w + 0.25 * side and -0.25 * side <= c[1] <= h + 0.25 * side)


def _detect(predictor, frame: np.ndarray) -> tuple[Any, Any] | None:
    """(FaceBox, result) of the largest face the detector finds, or None."""
    faces = predictor.detect(frame)
    if not faces:
        return None
    return faces[0], predictor.predict_faces(frame, [faces[0]])[0]


def _tracked(predictor, frame: np.ndarray, track: _Track, crop: CropConfig) -> Any:
    """The result of the crop placed from the previous frame's landmarks (no detector)."""
    box, crop_box, angle = tracked_crop(track.landmarks, track.relation, crop)
    image = crop_image(frame, crop_box, predictor.size, angle)
    return predictor.predict_face_crops([FaceCrop(image, crop_box, angle, bbox=box)])[0]


def _step(predictor, frame: np.ndarray, track: _Track, config: VideoConfig) -> tuple[Any, str]:
    """One frame -> (result or None, source). Tracks when it can, detects when it must."""
    due = config.redetect_every and track.since_detect >= config.redetect_every
    if track.landmarks is not None and not due:
        res = _tracked(predictor, frame, track, predictor.config.crop)
        if not _lost(res, frame.shape, config):
            track.since_detect += 1
            return res, "tracked"
    found = _detect(predictor, frame)
    track.since_detect = 0
    if found is None:
        return None, "detected"
    face, res = found
    if res.ok and res.landmarks68 is not None:
        track.relation = box_relation(face.box, res.landmarks68)
    return res, "detected"


def _smooth(track: _Track, key: str, value: np.ndarray, rate: float, cfg: OneEuroConfig, unit: float = 1.0
            ) -> np.ndarray:
    f = track.filters.get(key)
    if f is None:
        f = track.filters[key] = OneEuroFilter(rate, cfg)
    return f.filter(value, unit)


def _round(a: Any, d: int = 3) -> list:
    return np.round(np.asarray(a, np.float64), d).tolist()


def _record(i: int, info: VideoInfo, res: Any, source: str, status: str, ms: float) -> dict[str, Any]:
    rec: dict[str, Any] = {"frame": i, "time_s": round(i / info.fps, 4), "status": status, "source": source,
                           "ms": round(ms, 2)}
    if res is None or status != "ok":
        if res is not None and res.error:
            rec["error"] = res.error
        return rec
    p = res.pose
    fit = res.model_fit
    rec.update(crop_box=list(res.crop_box), crop_angle=round(res.crop_angle, 3),
               landmarks68_raw=_round(res.landmarks68, 2),
               visible=None if res.landmarks68_visible is None else res.landmarks68_visible.astype(int).tolist(),
               pose_raw=_round([p.yaw, p.pitch, p.roll], 3),
               fit=None if fit is None else {"id_coeffs": _round(fit.id_coeffs, 4),
                                             "exp_coeffs": _round(fit.exp_coeffs, 4), "rms_px": round(fit.rms_px, 3)})
    return rec


def _apply_causal(rec: dict[str, Any], track: _Track, rate: float, config: VideoConfig) -> None:
    """Fill ``landmarks68`` / ``pose`` / smoothed codes of an ok record with the causal filters."""
    lm = np.asarray(rec["landmarks68_raw"])
    side = landmark_box(lm)[1]
    centre = lm.mean(0)  # the face's motion, filtered to follow fast; the shape about it, to be still
    centre_s = _smooth(track, "centre", centre, rate, config.landmarks, side)
    shape_s = _smooth(track, "shape", lm - centre, rate, config.shape, side)
    rec["landmarks68"] = _round(centre_s + shape_s, 2)
    pose = np.asarray(rec["pose_raw"], np.float64)
    f = track.filters.get("pose")
    if f is not None and f.last is not None:  # angles near +-180 (a face upside down) filtered without the jump
        pose = f.last + (pose - f.last + 180.0) % 360.0 - 180.0
    rec["pose"] = _round((_smooth(track, "pose", pose, rate, config.pose) + 180.0) % 360.0 - 180.0, 3)
    if rec.get("fit"):
        for k in ("id_coeffs", "exp_coeffs"):
            rec["fit"][k] = _round(_smooth(track, k, np.asarray(rec["fit"][k]), rate, config.codes), 4)


def _apply_offline(records: list[dict[str, Any]], window: int) -> None:
    """Zero-lag smoothing of every run of consecutive ok frames (a lost face starts a new run)."""
    runs: list[list[dict[str, Any]]] = []
    for r in records:
        if r["status"] != "ok":
            runs.append([])
            continue
        if not runs:
            runs.append([])
        runs[-1].append(r)
    for run in (r for r in runs if r):
        lm = savgol_smooth(np.array([r["landmarks68_raw"] for r in run]), window)
        pose = savgol_smooth(np.array([r["pose_raw"] for r in run]), window)
        for r, a, b in zip(run, lm, pose):
            r["landmarks68"], r["pose"] = _round(a, 2), _round(b, 3)
        if all(r.get("fit") for r in run):
            for k in ("id_coeffs", "exp_coeffs"):
                codes = savgol_smooth(np.array([r["fit"][k] for r in run]), window)
                for r, c in zip(run, codes):
                    r["fit"][k] = _round(c, 4)


def draw_frame(frame: np.ndarray, rec: dict[str, Any]) -> np.ndarray:
    """RGB frame with the record's landmarks and pose axes drawn as on a photo's overlay.jpg
    (:func:`facevision.predict.overlay.draw_landmarks` / :func:`~facevision.predict.overlay.draw_axes`, from the
    landmarks' centre, half the face's size long), the frame number and status."""
    import cv2

    from facevision.maps.pose import angles_to_rotation
    from facevision.predict.overlay import OverlayConfig, draw_axes, draw_landmarks

    out = frame.copy()
    if rec["status"] == "ok":
        cfg = OverlayConfig()
        lm = np.asarray(rec["landmarks68"])
        c, side = landmark_box(lm)
        r = max(1, int(round(side / 80)))
        draw_landmarks(out, lm, None if rec.get("visible") is None else np.asarray(rec["visible"], bool), r, cfg)
        axes = angles_to_rotation(*rec["pose"]) * np.array([[1.0], [-1.0], [1.0]])  # mesh frame y up -> image y down
        draw_axes(out, c, axes, 0.5 * side, r, cfg)
    text = f"{rec['frame']}  {rec['status']}" + (f"  ({rec['source']})" if rec["status"] == "ok" else "")
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def _bgr(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def _jitter_report(records: list[dict[str, Any]], window: int = 9) -> dict[str, Any]:
    """Landmark jitter (% of the face's size) raw vs smoothed over the longest run of ok frames."""
    best: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for r in records + [{"status": "end"}]:
        if r["status"] == "ok":
            run.append(r)
            continue
        best, run = (run if len(run) > len(best) else best), []
    if len(best) < window:
        return {"frames": len(best)}
    size = np.median([landmark_box(np.asarray(r["landmarks68_raw"]))[1] for r in best])
    raw = jitter(np.array([r["landmarks68_raw"] for r in best]), window) / size * 100
    smooth = jitter(np.array([r["landmarks68"] for r in best]), window) / size * 100
    return {"frames": len(best), "raw_pct": round(raw, 4), "smoothed_pct": round(smooth, 4),
            "ratio": round(smooth / max(raw, 1e-12), 4)}


def run_video(predictor, path: str | Path, out_dir: str | Path, config: VideoConfig = VideoConfig(),
              progress: bool = False, fps: float = 25.0) -> dict[str, Any]:
    """Process one video (or frame folder, at ``fps``) into ``out_dir`` (replaced as a whole at the end); the
    summary (also written as video.json).

    Raises :class:`facevision.video.frames.VideoReadError` when the video cannot be read at all."""
    from facevision.common.fileio import replace_folder, temp_folder

    info, frames = open_frames(path, fps)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_folder(out_dir)
    try:
        summary = _run(predictor, info, frames, tmp, config, progress)
        replace_folder(tmp, out_dir)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["output"] = str(out_dir)
    return summary


def _run(predictor, info: VideoInfo, frames, tmp: Path, config: VideoConfig, progress: bool) -> dict[str, Any]:
    """Every frame into ``tmp``: frames.jsonl, overlay.mp4 (``config.overlay``) and video.json; the summary."""
    track, records, t0 = _Track(), [], time.perf_counter()
    limit = info.header_frames if config.max_frames is None else min(config.max_frames, info.header_frames or
                                                                      config.max_frames)
    identity = _IdentityFrames(config.identity_frames, max(1, (limit or 100) // max(config.identity_frames, 1)))
    bar = _frame_bar(info, limit) if progress else None
    offline_overlay = config.overlay and config.smoothing == "offline"  # drawn after smoothing: a second decode
    writer = _overlay_writer(tmp / "overlay.mp4", info, config) if config.overlay else None
    try:
        for i, frame in enumerate(frames):
            if config.max_frames is not None and i >= config.max_frames:
                break
            records.append(_frame(predictor, i, frame, info, track, identity, config))
            if writer is not None and not offline_overlay:
                writer.write(_bgr(draw_frame(frame, records[-1])))
            if bar is not None:
                bar.update()
                bar.set_postfix(fps=f"{len(records) / max(time.perf_counter() - t0, 1e-9):.1f}")
        wall = time.perf_counter() - t0
        if config.smoothing == "offline":
            _apply_offline(records, config.offline_window)
            if writer is not None:  # the clip read again rather than held in memory
                for frame, rec in zip(open_frames(info.path, info.fps)[1], records):
                    writer.write(_bgr(draw_frame(frame, rec)))
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
    with open(tmp / "frames.jsonl", "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    summary = _summary(predictor, info, records, wall, identity.maps, config)
    (tmp / "video.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


@dataclass
class _IdentityFrames:
    """The maps (depth, corr, mask) of ok frames kept for the clip's one identity: every ``stride``-th frame, at most
    ``limit`` (0: none); a clip longer than its header said is thinned out by half."""

    limit: int
    stride: int
    maps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def offer(self, i: int, res: Any) -> None:
        """Frame ``i``'s ok result: kept when it falls on the stride and has a face-model fit."""
        if self.limit and i % self.stride == 0 and res.model_fit is not None:
            self.maps.append((res.depth_px, res.corr, res.mask))
            if len(self.maps) > self.limit:
                self.maps, self.stride = self.maps[::2], 2 * self.stride


def _frame(predictor, i: int, frame: np.ndarray, info: VideoInfo, track: _Track, identity: _IdentityFrames,
           config: VideoConfig) -> dict[str, Any]:
    """Frame ``i`` -> its record, smoothed as ``config`` says; the track and the identity frames follow it."""
    t = time.perf_counter()
    res, source = _step(predictor, frame, track, config)
    status = "no face" if res is None else ("ok" if res.ok and res.landmarks68 is not None else
                                            "refused" if res.refused else "lost")
    rec = _record(i, info, res, source, status, (time.perf_counter() - t) * 1e3)
    if status != "ok":
        track.landmarks = None
        for f in track.filters.values():
            f.reset()
        return rec
    track.landmarks = np.asarray(res.landmarks68)
    identity.offer(i, res)
    if config.smoothing == "causal":
        _apply_causal(rec, track, info.fps, config)
    elif config.smoothing == "none":
        rec["landmarks68"], rec["pose"] = rec["landmarks68_raw"], rec["pose_raw"]
    return rec


def _frame_bar(info: VideoInfo, limit: int | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=limit or None, desc=info.path.name, unit="frame")


def _summary(predictor, info: VideoInfo, records: list[dict[str, Any]], wall: float, identity_maps: list,
             config: VideoConfig) -> dict[str, Any]:
    """video.json: the clip, frame counts by status, speed (``wall``: s), jitter and the clip's identity."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {"input": str(info.path), "fps": info.fps, "width": info.width, "height": info.height,
            "header_frames": info.header_frames, "frames": len(records),
            "not_decoded": max(0, info.header_frames - len(records)) if config.max_frames is None else 0,
            "counts": counts, "detected": sum(r["source"] == "detected" for r in records),
            "smoothing": config.smoothing, "wall_s": round(wall, 3),
            "frames_per_s": round(len(records) / max(wall, 1e-9), 2), "jitter": _jitter_report(records),
            "identity": _shared_identity(predictor, identity_maps, config)}


def _shared_identity(predictor, maps: list, config: VideoConfig) -> dict[str, Any] | None:
    """One identity code for the clip from the kept frames' maps (pose and expression per frame), or None."""
    from facevision.fit.model_fit import fit_shared_identity

    if not maps or predictor.face_model is None:
        return None
    try:
        ident, fits = fit_shared_identity(maps, predictor.face_model, config.fit, predictor.reference)
    except ValueError:
        return None
    return {"id_coeffs": _round(ident, 4), "frames": len(maps),
            "rms_px": round(float(np.mean([f.rms_px for f in fits])), 3)}


def _overlay_writer(path: Path, info: VideoInfo, config: VideoConfig):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*config.fourcc), info.fps, (info.width, info.height))
    if not writer.isOpened():
        raise ValueError(f"{path}: OpenCV cannot write {config.fourcc!r} video here")
    return writer

"""The 3DDFA_V2 labeler: a photo -> the 62 3DMM parameters, the 4,096-point face, 68 landmarks, pose, and
dense depth / correspondence / mask labels in the project's crop.

Per face (:meth:`TddfaLabeler.fit_face`): a square roi (from a detector box by a box rule, or from the previous
pass's landmarks) is resized to 120 x 120 and regressed (:mod:`data_prep.tddfa_net`); parameters are
de-normalized (``out * std + mean``): ``P = params[:12].reshape(3, 4) = [s R | t]`` in the 120-px frame (y up),
``alpha = params[12:52]``, ``beta = params[52:62]``. Points ``V = P @ (X, 1)`` of the face model
(:class:`data_prep.tddfa_files.TddfaFiles`) go to photo px (x right, y down, z larger = closer, origin arbitrary)
by 3DDFA's crop rule and the roi.

Dense labels (:meth:`TddfaLabeler.label_face`): the 64 x 64 grid rendered into ``predict``'s crop; correspondence =
the ``3ddfa-bfm4096-ncc`` code of the mean shape; depth re-based so the farthest face pixel is ``DEPTH_BASE_PX``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facevision.common.checks import check_int, check_number
from facevision.face.crop import CropConfig, crop_image, face_crop, original_to_crop
from facevision.face.codecs import DEPTH_BASE_PX
from data_prep.dataset_format import Sample
from facevision.face.detect import DetectConfig, FaceBox
from data_prep.drops import LABELER_FAILURE, DropError
from facevision.face.ibug68 import IBUG68_MIRROR
from facevision.face.rasterize import rasterize
from data_prep.tddfa_files import TddfaFiles, load_tddfa_files
from facevision.face.grid import grid_mirror, grid_triangles

__all__ = ["TddfaConfig", "TddfaFit", "TddfaLabeler", "roi_from_box", "roi_from_landmarks", "pose_from_params",
           "LABEL_SOURCE", "CORRESPONDENCE_SPACE", "label_photo_tddfa", "render_grid_labels"]

LABEL_SOURCE = "3ddfa-v2"
CORRESPONDENCE_SPACE = "3ddfa-bfm4096-ncc"
_SIZE = 120


@dataclass(frozen=True)
class TddfaConfig:
    """Settings of the 3DDFA_V2 labeler.

    passes: regressor passes per face; pass 1 cuts the roi from the detector box (``box_scale`` x the mean of its
    width and height, centred ``box_shift`` x that mean below its centre: 3DDFA_V2's rule for its detector), later
    passes from the previous pass's 68 landmarks (sqrt(2) x their box's longer side).
    mirror_average: also fit the mirrored photo and average landmarks and grid points with it.
    max_outside_frac, min_mask_frac: drop (labeler failure) when more of the 68 landmarks fall outside the crop,
    or the rendered face covers less of it."""

    passes: int = 2
    box_scale: float = 1.58
    box_shift: float = 0.14
    mirror_average: bool = False
    detect: DetectConfig = field(default_factory=DetectConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    max_outside_frac: float = 0.02
    min_mask_frac: float = 0.1

    def __post_init__(self) -> None:
        check_int(self, "passes", low=1)
        check_number(self, "box_scale", low=0, low_open=True, finite=False)


@dataclass
class TddfaFit:
    """One face fitted by the regressor (photo px: x right, y down, z larger = closer).

    params: (62,) de-normalized parameters of the last pass (pose in ``roi``'s 120-px frame).
    roi: (x0, y0, x1, y1) integer square the last pass read. points: (4096, 3) grid points; landmarks:
    (68, 3) iBUG-68. rotation: (3, 3) head rotation (model frame -> view, both x right, y up, z towards the
    viewer; facevision's mesh frame). scale: photo px per model unit.
    """

    params: np.ndarray
    roi: tuple[int, int, int, int]
    points: np.ndarray
    landmarks: np.ndarray
    rotation: np.ndarray
    scale: float


def roi_from_box(box: Sequence[float], scale: float = 1.58, shift: float = 0.14) -> tuple[float, float, float, float]:
    """Detector box (x0, y0, x1, y1) -> square roi: side ``scale`` x mean(w, h), centre ``shift`` x mean below."""
    x0, y0, x1, y1 = (float(v) for v in box)
    m = 0.5 * ((x1 - x0) + (y1 - y0))
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1) + shift * m
    half = 0.5 * scale * m
    return (cx - half, cy - half, cx + half, cy + half)


def roi_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(68, 2+) photo px -> square roi of side sqrt(2) x the landmarks' box's longer side, around its centre."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    half = 0.5 * np.sqrt(2.0) * max(x1 - x0, y1 - y0)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return (cx - half, cy - half, cx + half, cy + half)


def _int_roi(roi: Sequence[float]) -> tuple[int, int, int, int]:
    x0, y0 = int(round(roi[0])), int(round(roi[1]))
    side = max(1, int(round(roi[2] - roi[0])))
    return (x0, y0, x0 + side, y0 + side)


def _roi_input(image: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """(3, 120, 120) float32 network input: roi cut with zero padding, bilinear resize, BGR, (p - 127.5) / 128."""
    x0, y0, x1, y1 = roi
    h, w = image.shape[:2]
    side = x1 - x0
    out = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    out = cv2.resize(out, (_SIZE, _SIZE), interpolation=cv2.INTER_LINEAR)
    return ((out[..., ::-1].astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)


def pose_from_params(params: np.ndarray) -> tuple[np.ndarray, float]:
    """(62,) parameters -> (rotation (3, 3), scale in 120-px crop px per model unit), as 3DDFA_V2's P2sRt."""
    p = np.asarray(params, np.float64)[:12].reshape(3, 4)
    r1, r2 = p[0, :3], p[1, :3]
    n1, n2 = np.linalg.norm(r1), np.linalg.norm(r2)
    r1, r2 = r1 / n1, r2 / n2
    return np.stack([r1, r2, np.cross(r1, r2)]), 0.5 * (n1 + n2)


def _to_photo(model_points: np.ndarray, params: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """Model-frame (N, 3) -> photo px (x right, y down, z larger = closer) through P and the roi."""
    p = np.asarray(params, np.float64)[:12].reshape(3, 4)
    v = model_points @ p[:, :3].T + p[:, 3]
    s = (roi[2] - roi[0]) / _SIZE
    out = np.empty_like(v)
    out[:, 0] = (v[:, 0] - 1.0) * s + roi[0]
    out[:, 1] = (_SIZE - v[:, 1]) * s + roi[1]
    out[:, 2] = (v[:, 2] - 1.0) * s
    return out


class TddfaLabeler:
    """The regressor and face model of one 3DDFA folder (``--tddfa-dir``), loaded once; torch on the CPU."""

    def __init__(self, folder: str | Path, config: TddfaConfig = TddfaConfig(), threads: int | None = None) -> None:
        import torch

        from data_prep.tddfa_net import load_regressor

        self.files: TddfaFiles = load_tddfa_files(folder)
        self.config = config
        self.net = load_regressor(self.files.weights)
        self._torch = torch
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.triangles = grid_triangles()
        self.grid_ncc = self.files.to_ncc(self.files.grid_mean)
        self._grid_mirror: np.ndarray | None = None

    # ------------------------------------------------------------------ regression
    def regress(self, image: np.ndarray, rois: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
        """(N, 62) de-normalized parameters for integer rois of one RGB photo."""
        x = np.stack([_roi_input(image, r) for r in rois])
        with self._torch.inference_mode():
            out = self.net(self._torch.from_numpy(x)).numpy().astype(np.float64)
        return out * self.files.param_std + self.files.param_mean

    def reconstruct(self, params: np.ndarray, roi: tuple[int, int, int, int]) -> TddfaFit:
        """Parameters of one roi -> :class:`TddfaFit` (grid points and landmarks in photo px)."""
        grid, lms = self.files.shape(params[12:52], params[52:62])
        rot, s = pose_from_params(params)
        return TddfaFit(params=np.asarray(params, np.float64), roi=roi, points=_to_photo(grid, params, roi),
                        landmarks=_to_photo(lms, params, roi), rotation=rot, scale=s * (roi[2] - roi[0]) / _SIZE)

    def fit_face(self, image: np.ndarray, box: Sequence[float]) -> TddfaFit:
        """Fit the face of a detector box (x0, y0, x1, y1 photo px) in ``config.passes`` passes (and its mirror)."""
        fit = self._fit(image, box)
        if not self.config.mirror_average:
            return fit
        w = image.shape[1]
        mbox = (w - box[2], box[1], w - box[0], box[3])
        twin = self._fit(np.ascontiguousarray(image[:, ::-1]), mbox)
        lms = twin.landmarks[IBUG68_MIRROR].copy()
        pts = twin.points[self.grid_mirror()].copy()
        for a in (lms, pts):
            a[:, 0] = w - 1 - a[:, 0]
        fit.landmarks = 0.5 * (fit.landmarks + lms)
        fit.points = 0.5 * (fit.points + pts)
        return fit

    def _fit(self, image: np.ndarray, box: Sequence[float]) -> TddfaFit:
        cfg = self.config
        roi = _int_roi(roi_from_box(box, cfg.box_scale, cfg.box_shift))
        fit = self.reconstruct(self.regress(image, [roi])[0], roi)
        for _ in range(int(cfg.passes) - 1):
            roi = _int_roi(roi_from_landmarks(fit.landmarks))
            fit = self.reconstruct(self.regress(image, [roi])[0], roi)
        return fit

    def grid_mirror(self) -> np.ndarray:
        """(4096,) index of each grid point's mirror image (:func:`data_prep.tddfa_files.grid_mirror` of the mean)."""
        if self._grid_mirror is None:
            self._grid_mirror = grid_mirror(self.files.grid_mean)
        return self._grid_mirror

    # ------------------------------------------------------------------ dense labels
    def label_face(self, image: np.ndarray, face: FaceBox) -> "TddfaLabel":
        """Fit one detected face and render its labels into the project's crop; DropError when unusable."""
        cfg = self.config
        fit = self.fit_face(image, face.box)
        box, angle = face_crop(face.box, face.keypoints, cfg.crop)
        size = cfg.crop.size
        lmc = original_to_crop(fit.landmarks, box, size, angle)
        outside = ((lmc[:, :2] < -0.5) | (lmc[:, :2] > size - 0.5)).any(1).mean()
        if outside > cfg.max_outside_frac:
            raise DropError(LABELER_FAILURE, f"{outside:.0%} of the 68 landmarks fall outside the crop")
        ptc = original_to_crop(fit.points, box, size, angle)
        depth, corr, mask = render_grid_labels(ptc, self.triangles, self.grid_ncc, size)
        if mask.mean() < cfg.min_mask_frac:
            raise DropError(LABELER_FAILURE, f"face mask covers only {mask.mean():.1%} of the crop")
        sample = Sample(image=crop_image(image, box, size, angle), depth=depth, corr=corr, mask=mask,
                        meta={"crop_box": list(box), "crop_angle": angle, "detection_score": face.score})
        return TddfaLabel(sample=sample, fit=fit, crop_box=box, crop_angle=angle, points_crop=ptc, landmarks_crop=lmc)


@dataclass
class TddfaLabel:
    """A labelled crop and the fit it came from (points and landmarks also in crop px)."""

    sample: Sample
    fit: TddfaFit
    crop_box: tuple[int, int, int, int]
    crop_angle: float
    points_crop: np.ndarray
    landmarks_crop: np.ndarray


def render_grid_labels(points_crop: np.ndarray, triangles: np.ndarray, ncc: np.ndarray,
                       size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(4096, 3) crop-px grid points (z larger = closer) -> depth (base DEPTH_BASE_PX), corr (the points' code), mask."""
    depth, corr, mask = rasterize(points_crop, triangles, size, size, ncc)
    if mask.any():
        zmin = depth[mask].min()
        depth = np.where(mask, depth - zmin + DEPTH_BASE_PX, 0.0).astype(np.float32)
    return depth, np.clip(corr, 0.0, 1.0).astype(np.float32), mask


def label_photo_tddfa(image: np.ndarray, labeler: TddfaLabeler) -> TddfaLabel:
    """Detect the one face of an RGB photo (DropError otherwise) and label it with ``labeler``."""
    from data_prep.label_mediapipe import detect_single_face

    return labeler.label_face(image, detect_single_face(image, labeler.config.detect))

"""Import depth and PNCC renders made by the user's own 3DDFA_V2 (``--labeler 3ddfa --labels-3ddfa DIR``).

Expected layout (what 3DDFA_V2's ``demo.py -o depth`` / ``-o pncc`` write, see the README part for the exact
options): for a photo ``<Person>/<stem>.jpg`` the folder DIR holds ``<stem>_depth.<ext>`` and
``<stem>_pncc.<ext>`` (flat, as 3DDFA_V2 writes them, or under ``DIR/<Person>/``); ``<ext>`` is png (preferred)
or jpg. Both are renders of the full photo's size on a BLACK background (``with_bg_flag=False``):

* depth: 3 equal channels, ``255 * (z - z_min) / (z_max - z_min)`` per face (larger = closer); 3DDFA_V2
  normalizes each face to [0, 1], so the absolute depth scale is restored as
  ``depth_range_ratio * face width`` (crop px), a ratio measured on the MediaPipe labels of LFW;
* pncc: Sim3DR writes the BFM NCC code (x right, y up, z towards the camera, each in [0, 1]) into the
  channels in order into an OpenCV BGR image, so the file's B, G, R channels hold (x, y, z) * 255.

The photo is detected and cropped exactly as for the built-in labeler (same detector, same drop rules,
same crop), and the maps are resampled into that crop with mask-normalized area averaging.
Correspondence space: ``3ddfa-bfm-pncc`` (not the facevision reference face).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.crop import CropConfig, crop_image, face_crop
from data_prep.dataset_format import DEPTH_BASE_PX, Sample
from data_prep.detect import DetectConfig
from data_prep.drops import LABELER_FAILURE, DropError
from data_prep.io import ImageReadError, read_png

__all__ = ["Import3DDFAConfig", "find_3ddfa_maps", "maps_from_3ddfa", "label_photo_3ddfa",
           "CORRESPONDENCE_SPACE_3DDFA"]

CORRESPONDENCE_SPACE_3DDFA = "3ddfa-bfm-pncc"
_EXTS = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Import3DDFAConfig:
    """threshold: 8-bit value above which a render pixel counts as face (JPEG noise stays below it).
    depth_range_ratio: face depth range / face width (both crop px), used to undo 3DDFA_V2's per-face
    [0, 1] depth normalization. min_mask_frac: fewer face pixels in the crop -> labeler failure."""

    detect: DetectConfig = field(default_factory=DetectConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    threshold: int = 8
    depth_range_ratio: float = 0.67
    min_mask_frac: float = 0.05


def find_3ddfa_maps(labels_dir: Path, identity: str, stem: str) -> tuple[Path, Path]:
    """Paths of ``<stem>_depth`` and ``<stem>_pncc`` (flat or under ``<identity>/``); DropError if missing."""
    found = {}
    for kind in ("depth", "pncc"):
        for folder in (labels_dir, labels_dir / identity):
            for ext in _EXTS:
                p = folder / f"{stem}_{kind}{ext}"
                if p.is_file():
                    found[kind] = p
                    break
            if kind in found:
                break
        if kind not in found:
            raise DropError(LABELER_FAILURE, f"{labels_dir}: no 3DDFA_V2 {kind} render for {stem} "
                                             f"(expected {stem}_{kind}.png or .jpg)")
    return found["depth"], found["pncc"]


def _read_render(path: Path) -> np.ndarray:
    try:
        img = read_png(path, rgb=False)  # keep the file's channel order (OpenCV BGR)
    except ImageReadError as exc:
        raise DropError(LABELER_FAILURE, str(exc)) from None
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3]


def maps_from_3ddfa(depth_bgr: np.ndarray, pncc_bgr: np.ndarray, crop_box, size: int,
                    config: Import3DDFAConfig = Import3DDFAConfig(), angle: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photo-sized 3DDFA_V2 renders (uint8, file channel order) -> crop depth (px), corr (x, y, z NCC), mask.

    The crop (``crop_box`` turned by ``angle``, :mod:`data_prep.crop`) resamples the mask-weighted maps and
    divides by the resampled mask, so no background value bleeds into the face."""
    if depth_bgr.shape[:2] != pncc_bgr.shape[:2]:
        raise DropError(LABELER_FAILURE, f"depth render {depth_bgr.shape[:2]} and PNCC render "
                                         f"{pncc_bgr.shape[:2]} differ in size")
    z = depth_bgr.astype(np.float32).mean(-1) / 255.0
    ncc = pncc_bgr.astype(np.float32) / 255.0  # B, G, R = x, y, z
    mask = (pncc_bgr.max(-1) > config.threshold) | (depth_bgr.max(-1) > config.threshold)
    m = mask.astype(np.float32)
    mc = crop_image(m, crop_box, size, angle)
    if mc.ndim == 3:
        mc = mc[..., 0]
    zc = crop_image(z * m, crop_box, size, angle)
    nc = crop_image(ncc * m[..., None], crop_box, size, angle)
    if zc.ndim == 3:
        zc = zc[..., 0]
    valid = mc > 0.5
    safe = np.maximum(mc, 1e-6)
    zc = np.where(valid, zc / safe, 0.0)
    corr = np.where(valid[..., None], np.clip(nc / safe[..., None], 0, 1), 0.0).astype(np.float32)
    depth = np.zeros((size, size), np.float32)
    if valid.any():
        width = valid.any(0).sum()
        zrel = zc[valid] - zc[valid].min()
        span = max(float(zrel.max()), 1e-6)
        depth[valid] = (DEPTH_BASE_PX + zrel / span * config.depth_range_ratio * width).astype(np.float32)
    return depth, corr, valid


def label_photo_3ddfa(image: np.ndarray, entry, labels_dir: Path, size: int,
                      config: Import3DDFAConfig | None = None) -> tuple[Sample, tuple[int, int, int, int]]:
    """Detect and crop ``image`` like the MediaPipe labeler, and take its labels from 3DDFA_V2 renders."""
    from data_prep.label_mediapipe import detect_single_face

    config = config or Import3DDFAConfig(crop=CropConfig(size=size))
    face = detect_single_face(image, config.detect)
    box, angle = face_crop(face.box, face.keypoints, config.crop)
    dpath, ppath = find_3ddfa_maps(Path(labels_dir), entry.identity, Path(entry.source).stem)
    depth_bgr, pncc_bgr = _read_render(dpath), _read_render(ppath)
    if depth_bgr.shape[:2] != image.shape[:2]:
        raise DropError(LABELER_FAILURE, f"{dpath}: render is {depth_bgr.shape[1]}x{depth_bgr.shape[0]}, "
                                         f"photo is {image.shape[1]}x{image.shape[0]} (renders must be photo-sized)")
    depth, corr, mask = maps_from_3ddfa(depth_bgr, pncc_bgr, box, size, config, angle)
    if mask.mean() < config.min_mask_frac:
        raise DropError(LABELER_FAILURE, f"{ppath}: the 3DDFA_V2 face covers only {mask.mean():.1%} of the crop")
    sample = Sample(image=crop_image(image, box, size, angle), depth=depth, corr=corr, mask=mask,
                    meta={"crop_box": list(box), "crop_angle": angle, "detection_score": face.score})
    return sample, box

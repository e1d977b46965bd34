"""Label-exact augmentation.

Photometric changes (albumentations) touch the RGB crop only. Geometric changes are one similarity
transform about the crop centre (in-plane rotation = head roll, scale, translation), drawn here and
applied with ``cv2.warpAffine`` to image (bilinear) and maps (nearest neighbour, so no background
value bleeds into the face). Labels stay exact: correspondence values are unchanged (they name
points of the reference face), depth is in crop pixels and so is multiplied by the scale, and then
re-based so the farthest visible face pixel sits ``DEPTH_BASE_PX`` above the zero plane, as in the
dataset format. A horizontal flip mirrors the maps and maps the correspondence's u channel to 1 - u
(the reference face is mirror symmetric about u = 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from facevision.common.checks import check_number


@dataclass
class AugmentConfig:
    """flip_p: horizontal flip probability. affine_p: probability of the similarity transform, whose roll
    is uniform in +-rotate_deg (degrees; real photos' rolls mostly lie within +-40), scale is log-uniform in
    [1/max_scale, max_scale] about the crop centre, and shift uniform in +-translate x size per axis.
    photometric_p: probability of colour / blur / noise / JPEG changes. Checked when built (ValueError naming
    the field)."""

    flip_p: float = 0.5
    rotate_deg: float = 40.0
    max_scale: float = 1.2
    translate: float = 0.06
    affine_p: float = 0.8
    photometric_p: float = 0.8

    def __post_init__(self) -> None:
        for name in ("flip_p", "affine_p", "photometric_p", "translate"):
            check_number(self, name, 0, 1)
        check_number(self, "rotate_deg", 0, 180, unit="degrees")
        check_number(self, "max_scale", low=1, finite=False)


def similarity_matrix(size: int, angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """2 x 3 matrix (crop px -> crop px, x = column, y = row) rotating by ``angle_deg`` counter-clockwise as
    the viewer sees it and scaling by ``scale`` about the crop centre, then shifting by ``shift`` px."""
    c = (size - 1) / 2.0
    m = cv2.getRotationMatrix2D((c, c), float(angle_deg), float(scale))
    m[:, 2] += shift
    return m


def warp_sample(image: np.ndarray, depth: np.ndarray, corr: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
                scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply a similarity ``matrix`` (scale factor ``scale``) to a sample, keeping the labels exact."""
    from facevision.face.codecs import DEPTH_BASE_PX

    size = image.shape[1], image.shape[0]
    warp = lambda a, interp: cv2.warpAffine(a, matrix, size, flags=interp, borderMode=cv2.BORDER_CONSTANT,  # noqa: E731
                                            borderValue=0)
    image = warp(image, cv2.INTER_LINEAR)
    mask = warp(mask.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    depth = warp(depth.astype(np.float32), cv2.INTER_NEAREST) * np.float32(scale)
    corr = warp(corr.astype(np.float32), cv2.INTER_NEAREST)
    mask &= depth > 0
    if mask.any():
        depth = depth - depth[mask].min() + DEPTH_BASE_PX
    depth = np.where(mask, depth, 0.0).astype(np.float32)
    corr = np.where(mask[..., None], corr, 0.0).astype(np.float32)
    return image, depth, corr, mask


def hflip_sample(image: np.ndarray, depth: np.ndarray, corr: np.ndarray, mask: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mirror a sample left-right; correspondence u -> 1 - u inside the mask (background stays 0)."""
    image, depth, corr, mask = (np.ascontiguousarray(a[:, ::-1]) for a in (image, depth, corr, mask))
    corr = corr.copy()
    corr[..., 0] = np.where(mask, 1.0 - corr[..., 0], 0.0)
    return image, depth, corr, mask


def _photometric() -> A.Compose:
    return A.Compose([
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=0.8),
        A.RandomGamma(gamma_limit=(80, 120), p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.01, 0.05))], p=0.3),
        A.ImageCompression(quality_range=(40, 95), p=0.3),
        A.ToGray(p=0.1),
    ])


class _Pipelines:
    """Built once per process (albumentations pipelines are reusable)."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        self.photometric = _photometric()


_CACHE: dict[int, _Pipelines] = {}


def augment_sample(image: np.ndarray, depth: np.ndarray, corr: np.ndarray, mask: np.ndarray,
                   cfg: AugmentConfig, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Augment one sample. image (S,S,3) uint8; depth (S,S) float32 px; corr (S,S,3) float32; mask (S,S) bool."""
    pipes = _CACHE.setdefault(id(cfg), _Pipelines(cfg))
    if rng.random() < cfg.flip_p:
        image, depth, corr, mask = hflip_sample(image, depth, corr, mask)
    if rng.random() < cfg.affine_p:
        size = image.shape[0]
        angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
        scale = float(np.exp(rng.uniform(-np.log(cfg.max_scale), np.log(cfg.max_scale))))
        shift = tuple(rng.uniform(-cfg.translate, cfg.translate, 2) * size)
        image, depth, corr, mask = warp_sample(image, depth, corr, mask, similarity_matrix(size, angle, scale, shift), scale)
    if rng.random() < cfg.photometric_p:
        image = pipes.photometric(image=image)["image"]
    depth = np.where(mask, depth, 0.0).astype(np.float32)
    corr = np.where(mask[..., None], corr, 0.0).astype(np.float32)
    return image, depth, corr, mask

"""Label-preserving augmentation with albumentations.

Photometric changes touch the RGB crop only. Geometric changes (in-plane rotation,
translation) are applied identically to image, depth, correspondence and mask with
nearest-neighbour sampling for the maps, so no background value bleeds into the face.
No scaling: depth is in crop pixels and would have to be rescaled with the image.
A horizontal flip mirrors the maps and maps the correspondence's u channel to 1 - u
(the reference face is mirror symmetric about u = 0.5), so labels stay true.
"""
from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np


@dataclass
class AugmentConfig:
    flip_p: float = 0.5
    rotate_deg: float = 10.0
    translate: float = 0.04
    affine_p: float = 0.7
    photometric_p: float = 0.8


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


def _geometric(cfg: AugmentConfig) -> A.Compose:
    return A.Compose(
        [A.Affine(translate_percent=(-cfg.translate, cfg.translate), rotate=(-cfg.rotate_deg, cfg.rotate_deg),
                  scale=1.0, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                  border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=cfg.affine_p)],
        additional_targets={"depth": "mask", "corr": "mask"},
    )


class _Pipelines:
    """Built once per process (albumentations pipelines are reusable)."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg
        self.photometric = _photometric()
        self.geometric = _geometric(cfg)


_CACHE: dict[int, _Pipelines] = {}


def augment_sample(image: np.ndarray, depth: np.ndarray, corr: np.ndarray, mask: np.ndarray,
                   cfg: AugmentConfig, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Augment one sample. image (S,S,3) uint8; depth (S,S) float32 px; corr (S,S,3) float32; mask (S,S) bool."""
    pipes = _CACHE.setdefault(id(cfg), _Pipelines(cfg))
    if rng.random() < cfg.flip_p:
        image, depth, corr, mask = hflip_sample(image, depth, corr, mask)
    out = pipes.geometric(image=image, mask=mask.astype(np.uint8), depth=depth.astype(np.float32),
                          corr=corr.astype(np.float32))
    image, mask, depth, corr = out["image"], out["mask"].astype(bool), out["depth"], out["corr"]
    if rng.random() < cfg.photometric_p:
        image = pipes.photometric(image=image)["image"]
    depth = np.where(mask, depth, 0.0).astype(np.float32)
    corr = np.where(mask[..., None], corr, 0.0).astype(np.float32)
    return image, depth, corr, mask

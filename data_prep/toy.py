"""A generated toy dataset in the facevision format: shaded ellipsoid "faces" with exact labels.

Used by tests and to try training without photos. Each sample is an ellipsoid cap seen from the front: depth =
its height towards the camera (crop px, plus DEPTH_BASE_PX), correspondence = the ellipsoid's normalized
coordinates (u right, v up, w towards the camera), mask = its silhouette, image = Lambertian shading under a
random light and albedo over a noisy background.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facevision.face.codecs import DEPTH_BASE_PX
from data_prep.dataset_format import Sample, write_manifest, write_sample
from facevision.face.sizes import CROP_SIZE


def toy_sample(size: int, rng: np.random.Generator) -> Sample:
    """One random ellipsoid sample of ``size`` x ``size`` pixels."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy = size / 2 + rng.uniform(-0.06, 0.06, 2) * size
    rx = rng.uniform(0.26, 0.34) * size
    ry = rx * rng.uniform(1.1, 1.35)
    rz = rx * rng.uniform(0.6, 0.9)
    x, y = (cols - cx) / rx, (rows - cy) / ry
    r2 = x**2 + y**2
    mask = r2 < 0.97
    h = np.sqrt(np.clip(1.0 - r2, 0.0, None))
    depth = np.where(mask, rz * h + DEPTH_BASE_PX, 0.0).astype(np.float32)
    # surface normal of the ellipsoid (image x right, y down, z towards the camera)
    n = np.stack([x / rx, y / ry, h / rz], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-9
    light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.3), 1.0])
    light /= np.linalg.norm(light)
    shade = np.clip(n @ light, 0.0, 1.0)
    albedo = rng.uniform(0.4, 0.9, 3)
    bg = rng.uniform(0.0, 1.0, 3) * 0.6
    img = np.where(mask[..., None], 0.15 + 0.85 * shade[..., None] * albedo, bg)
    img = img + rng.normal(0.0, 0.02, img.shape)
    image = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    corr = np.stack([0.5 + 0.5 * x, 0.5 - 0.5 * y, h], axis=-1)
    corr = np.where(mask[..., None], np.clip(corr, 0.0, 1.0), 0.0).astype(np.float32)
    return Sample(image=image, depth=depth, corr=corr, mask=mask)


def make_toy_dataset(root: str | Path, count: int = 32, size: int = CROP_SIZE, seed: int = 0,
                     val_fraction: float = 0.25) -> dict:
    """Write ``count`` toy samples (one identity each) and the manifest; returns the manifest."""
    if count < 2:
        raise ValueError(f"count must be at least 2 (one train and one val sample), got {count}")
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(count * val_fraction)))
    entries = []
    for i in range(count):
        sid = f"toy_{i:05d}"
        write_sample(root, sid, toy_sample(size, rng))
        split = "val" if i < n_val else "train"
        entries.append({"id": sid, "identity": sid, "split": split, "source": "generated",
                        "crop_box": [0, 0, size, size]})
    return write_manifest(root, entries, size=size, label_source="synthetic", correspondence_space="toy-ellipsoid")

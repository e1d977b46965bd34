"""Step 6: per-vertex colours, texture coordinates and correspondence sampled from the maps."""
from __future__ import annotations

import numpy as np

from meshing.lift import bilinear
from meshing.types import MeshingError

__all__ = ["sample_colors", "pixel_uvs", "sample_corr", "image_to_float"]


def image_to_float(image: np.ndarray) -> np.ndarray:
    """(H, W[, C]) uint8/uint16/float image -> (H, W, 3) float64 RGB in [0, 1]."""
    img = np.asarray(image)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    x = img.astype(np.float64) / scale
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] < 1 or x.size == 0:
        raise MeshingError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    if x.shape[2] < 3:
        x = np.repeat(x[..., :1], 3, axis=2)
    x = x[..., :3]
    if not np.all(np.isfinite(x)):
        raise MeshingError("image contains NaN or inf")
    return x


def sample_colors(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Bilinear RGB colour of the photo at each (row, col) pixel position: (N, 3) float32 in [0, 1]."""
    return np.clip(bilinear(image_to_float(image), np.asarray(pixels)), 0.0, 1.0).astype(np.float32)


def pixel_uvs(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Texture coordinates of (row, col) positions in an (H, W) image, OBJ/OpenGL convention:
    ``u = (col + 0.5) / W``, ``v = 1 - (row + 0.5) / H`` (origin at the bottom-left corner)."""
    h, w = int(shape[0]), int(shape[1])
    px = np.asarray(pixels, dtype=np.float64)
    return np.stack([(px[:, 1] + 0.5) / w, 1.0 - (px[:, 0] + 0.5) / h], axis=1).astype(np.float32)


def sample_corr(corr: np.ndarray, pixels: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Correspondence (u, v, w) at each vertex, (N, 3) float32; with ``mask`` the bilinear average uses
    foreground pixels only."""
    c = np.asarray(corr, dtype=np.float64)
    if c.ndim != 3 or c.shape[2] < 3:
        raise MeshingError(f"correspondence map must be (H, W, 3), got shape {c.shape}")
    c = np.nan_to_num(c[..., :3], nan=0.0, posinf=0.0, neginf=0.0)
    px = np.asarray(pixels)
    if mask is None:
        return bilinear(c, px).astype(np.float32)
    m = (np.asarray(mask) > 0).astype(np.float64)
    wsum = bilinear(m, px)
    csum = bilinear(c * m[..., None], px)
    out = csum / np.maximum(wsum, 1e-12)[:, None]
    nearest = c[np.clip(np.rint(px[:, 0]).astype(int), 0, c.shape[0] - 1),
                np.clip(np.rint(px[:, 1]).astype(int), 0, c.shape[1] - 1)]
    return np.where((wsum > 1e-9)[:, None], out, nearest).astype(np.float32)

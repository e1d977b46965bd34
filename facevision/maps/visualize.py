"""Viewable renderings of depth and correspondence maps (uint8 RGB arrays)."""
from __future__ import annotations

import cv2
import numpy as np


def depth_to_rgb(depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Depth (H, W), larger = closer -> (H, W, 3) uint8 turbo colours (near = red, far = blue), normalized per
    image over the masked pixels; background black."""
    depth = np.nan_to_num(np.asarray(depth, dtype=np.float32))
    m = depth > 0 if mask is None else np.asarray(mask, dtype=bool)
    out = np.zeros(depth.shape + (3,), np.uint8)
    if not m.any():
        return out
    lo, hi = float(depth[m].min()), float(depth[m].max())
    norm = np.clip((depth - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    colour = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    out[m] = colour[m]
    return out


def corr_to_rgb(corr: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Correspondence (H, W, 3) in [0, 1] -> uint8 RGB (u = red, v = green, w = blue), background black."""
    rgb = (np.clip(np.nan_to_num(corr), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if mask is not None:
        rgb[~np.asarray(mask, dtype=bool)] = 0
    return rgb


def label_strip(labels: list[str], width: int, pad: int = 2) -> np.ndarray:
    """(h, pad + n * (width + pad), 3) uint8 white strip with each label centred (black, ASCII) above a
    ``width``-px column; the font shrinks until the longest label fits its column."""
    height = max(14, int(round(width * 0.11)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = height / 30.0
    while scale > 0.2 and max(cv2.getTextSize(t, font, scale, 1)[0][0] for t in labels) > width - 4:
        scale *= 0.9
    strip = np.full((height, pad + len(labels) * (width + pad), 3), 255, np.uint8)
    for j, text in enumerate(labels):
        (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
        x = pad + j * (width + pad) + (width - tw) // 2
        cv2.putText(strip, text, (x, (height + th) // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def image_grid(rows: list[list[np.ndarray]], pad: int = 2, labels: list[str] | None = None) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 images into one image, rows x columns, with white padding;
    ``labels`` (one per column, ASCII) are written in a strip above the columns."""
    h, w = rows[0][0].shape[:2]
    ncols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = tile
    if labels:
        strip = label_strip(list(labels)[:ncols] + [""] * (ncols - len(labels)), w, pad)
        grid = np.vstack([strip, grid])
    return grid

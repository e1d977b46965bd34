"""The maps as PNG values: depth as uint16 ``round(z * DEPTH_PNG_UNITS_PER_PX)`` (1/256 crop px, up to 255.99 px),
measured from a plane ``DEPTH_BASE_PX`` behind the farthest face pixel so every face pixel has ``z > 0``;
correspondence as 16-bit RGB ``round(c * CORR_SCALE)``. The maps' conventions are those of
:mod:`facevision.common.conventions`. Used by the dataset format (:mod:`data_prep.dataset_format`) and by
predict's map files.
"""
from __future__ import annotations

import numpy as np

from facevision.common.conventions import check_depth_px

__all__ = ["DEPTH_PNG_UNITS_PER_PX", "DEPTH_BASE_PX", "CORR_SCALE", "encode_depth", "decode_depth", "encode_corr",
           "decode_corr"]

DEPTH_PNG_UNITS_PER_PX = 256.0  # depth.png quantisation: uint16 units per crop pixel (manifest key "depth_scale")
DEPTH_BASE_PX = 1.0
CORR_SCALE = 65535.0


def encode_depth(depth_px: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Relative depth in crop pixels (:mod:`facevision.common.conventions`) -> uint16 PNG values; background and NaN -> 0.

    Raises ValueError for negative depth (inside ``mask`` when given): it is not silently made background."""
    d = np.nan_to_num(np.asarray(depth_px, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if mask is not None:
        d = np.where(mask, d, 0.0)
    check_depth_px(d, "encode_depth")
    return np.clip(np.round(d * DEPTH_PNG_UNITS_PER_PX), 0, 65535).astype(np.uint16)


def decode_depth(values: np.ndarray) -> np.ndarray:
    """uint16 PNG values -> float32 relative depth in crop pixels (0 = background); 8-bit values are read as px."""
    values = np.asarray(values)
    if values.ndim == 3:
        values = values[..., 0]
    if values.dtype == np.uint8:
        return values.astype(np.float32)
    return (values.astype(np.float32) / DEPTH_PNG_UNITS_PER_PX).astype(np.float32)


def encode_corr(corr: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Correspondence in [0, 1] (H, W, 3) -> uint16 RGB PNG values; background -> 0."""
    c = np.clip(np.nan_to_num(np.asarray(corr, dtype=np.float64)), 0.0, 1.0)
    if mask is not None:
        c = np.where(mask[..., None], c, 0.0)
    return np.round(c * CORR_SCALE).astype(np.uint16)


def decode_corr(values: np.ndarray) -> np.ndarray:
    """uint8 or uint16 RGB PNG values -> float32 correspondence in [0, 1]."""
    values = np.asarray(values)
    scale = 255.0 if values.dtype == np.uint8 else CORR_SCALE
    return (values.astype(np.float32) / scale).astype(np.float32)

"""The map conventions of the whole project, stated once here, and the checks that enforce them.

Every stage shares these maps (data_prep writes them, the network predicts them, meshing and the fits read
them). One crop of S x S pixels (S = ``facevision.face.sizes.CROP_SIZE`` by default); rows go down, columns go
right; pixel centres at integer coordinates.

* **Depth** ``depth_px``: (H, W) float, the height of the face surface *towards the camera* in crop pixels:
  **larger = closer**, relative (measured from a plane behind the farthest face pixel), face pixels > 0,
  **background exactly 0**. Never negative. X, Y and Z share pixel units, so a lifted surface keeps its true
  proportions. (On disk: :mod:`data_prep.dataset_format`; network unit: :mod:`facevision.model.outputs`.)
* **Correspondence** ``corr``: (H, W, 3) float in **[0, 1]**: ``(u, v, w)`` = normalized coordinates of the
  reference-face point a pixel shows; ``u`` grows to the image right of a frontal face, ``v`` grows *upwards*
  (chin 0 -> forehead 1), ``w`` towards the camera (back 0 -> nose tip 1). The reference face is mirror
  symmetric about ``u = 0.5`` (a horizontal flip maps ``u -> 1 - u``). Background 0.
* **Mask**: (H, W) bool (or numbers, > 0 = face), the pixels the face covers.

The checks, in the style of kornia's ``KORNIA_CHECK_*``, are called where maps enter a stage (the dataset
reader, ``Predictor.postprocess``, ``meshing``, ``flame.register``). Each raises ``error`` (a ValueError
subclass, ValueError by default) with one line naming ``source`` (a file name where there is one) and what
is wrong. NaN and inf are left to the caller's own policy (e.g. ``MeshConfig.nonfinite``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["check_depth_px", "check_corr", "check_mask", "CORR_TOLERANCE"]

CORR_TOLERANCE = 1e-6  # float rounding allowed outside [0, 1]


def _numeric(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.number) or a.dtype == bool


def check_depth_px(depth: np.ndarray, source: str = "depth", error: type[ValueError] = ValueError) -> np.ndarray:
    """A depth map must be a non-empty numeric (H, W) array without negative values (larger = closer,
    0 = background). Returns it as an array."""
    d = np.asarray(depth)
    if d.ndim != 2 or d.size == 0:
        raise error(f"{source}: depth must be a non-empty (H, W) map, got shape {d.shape}")
    if not _numeric(d):
        raise error(f"{source}: depth must be numeric, got {d.dtype}")
    if d.dtype != bool and not np.issubdtype(d.dtype, np.unsignedinteger):
        with np.errstate(invalid="ignore"):
            neg = d < 0
        if neg.any():
            raise error(f"{source}: depth has {int(neg.sum())} negative value(s) (min {float(d[neg].min()):.4g}); "
                        "depth is larger = closer with 0 = background, never negative (facevision.common.conventions)")
    return d


def check_corr(corr: np.ndarray, shape: tuple[int, int] | None = None, source: str = "corr",
               error: type[ValueError] = ValueError) -> np.ndarray:
    """A correspondence map must be a numeric (H, W, 3) array (of ``shape`` when given) with values in [0, 1]."""
    c = np.asarray(corr)
    if c.ndim != 3 or c.shape[2] != 3 or c.size == 0:
        raise error(f"{source}: correspondence must be a non-empty (H, W, 3) map, got shape {c.shape}")
    if shape is not None and c.shape[:2] != tuple(shape):
        raise error(f"{source}: correspondence size {c.shape[:2]} differs from the depth map's {tuple(shape)}")
    if not _numeric(c):
        raise error(f"{source}: correspondence must be numeric, got {c.dtype}")
    if np.issubdtype(c.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            out = (c < -CORR_TOLERANCE) | (c > 1.0 + CORR_TOLERANCE)
        if out.any():
            raise error(f"{source}: {int(out.sum())} correspondence value(s) outside [0, 1] (e.g. "
                        f"{float(c[out][0]):.4g}); (u, v, w) are normalized coordinates (facevision.common.conventions)")
    elif c.max(initial=0) > 1 or c.min(initial=0) < 0:
        raise error(f"{source}: correspondence of type {c.dtype} must be decoded to [0, 1] floats first")
    return c


def check_mask(mask: np.ndarray, shape: tuple[int, int] | None = None, source: str = "mask",
               error: type[ValueError] = ValueError) -> np.ndarray:
    """A mask must be an (H, W) bool or numeric array (of ``shape`` when given) without NaN."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise error(f"{source}: mask must be a non-empty (H, W) map, got shape {m.shape}")
    if shape is not None and m.shape != tuple(shape):
        raise error(f"{source}: mask size {m.shape} differs from the depth map's {tuple(shape)}")
    if not _numeric(m):
        raise error(f"{source}: mask must be bool or numeric, got {m.dtype}")
    if np.issubdtype(m.dtype, np.floating) and np.isnan(m).any():
        raise error(f"{source}: mask has NaN values")
    return m

"""The face model's 64 x 64 grid of points (the 3DDFA face model's layout, also its fixed UV layout).

Grid order: point ``i * GRID + j`` is column ``i`` (left to right as seen) and row ``j`` (top to bottom); model
frame x right, y up, z towards the viewer.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GRID", "grid_triangles", "grid_mirror"]

GRID = 64


def grid_mirror(grid: np.ndarray) -> np.ndarray:
    """(N,) index of each model-frame point's mirror image: the nearest point to it mirrored in x = 0 (the
    grid is not exactly symmetric)."""
    from scipy.spatial import cKDTree

    g = np.asarray(grid, np.float64)
    return cKDTree(g).query(g * [-1.0, 1.0, 1.0])[1].astype(np.int64)


def grid_triangles(n: int = GRID) -> np.ndarray:
    """(2 (n-1)^2, 3) triangles of the n x n grid (point ``i * n + j``), counter-clockwise as seen (y up)."""
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
    a = (i * n + j).ravel()
    b, c, d = a + n, a + 1, a + n + 1  # b: right of a; c: below a; d: below-right
    return np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]).astype(np.int64)

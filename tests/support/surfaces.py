"""Analytic surfaces rendered into depth maps (ground truth for the meshing tests).

Depth maps follow the project convention: (H, W) float, pixel units, larger = closer,
0 = background. A surface point at pixel (row, col) with depth z is the mesh point
(X, Y, Z) = (col, H - 1 - row, z).
"""
from __future__ import annotations

import numpy as np


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    return rr, cc


def hemisphere(size: int = 128, radius: float = 40.0, base: float = 5.0):
    """Depth of a hemisphere of ``radius`` px centred in the map, ``base`` px above the back plane.

    Returns (depth, mask, centre_xyz) with the sphere centre in mesh coordinates.
    """
    rr, cc = grid(size, size)
    c = size // 2
    r2 = (rr - c) ** 2 + (cc - c) ** 2
    mask = r2 < radius ** 2
    depth = np.where(mask, base + np.sqrt(np.clip(radius ** 2 - r2, 0, None)), 0.0)
    return depth, mask, np.array([c, size - 1 - c, base], dtype=np.float64)


def sphere_error(vertices: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Distance of each vertex to the sphere surface."""
    return np.abs(np.linalg.norm(np.asarray(vertices, np.float64) - centre, axis=1) - radius)


def ellipsoid(size: int = 128, axes=(46.0, 56.0, 28.0), base: float = 4.0):
    """Front half of an ellipsoid with semi-axes (a_x, a_y, a_z) px: a face-like dome.

    Returns (depth, mask, centre_xyz, axes).
    """
    rr, cc = grid(size, size)
    c = size // 2
    ax, ay, az = axes
    e = ((cc - c) / ax) ** 2 + ((rr - c) / ay) ** 2
    mask = e < 1
    depth = np.where(mask, base + az * np.sqrt(np.clip(1 - e, 0, None)), 0.0)
    return depth, mask, np.array([c, size - 1 - c, base], dtype=np.float64), np.asarray(axes, np.float64)


def ellipsoid_error(vertices: np.ndarray, centre: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """First-order distance |f| / |grad f| to the ellipsoid f = sum((p / a)^2) - 1 = 0."""
    p = (np.asarray(vertices, np.float64) - centre) / axes
    f = (p ** 2).sum(axis=1) - 1.0
    grad = 2 * p / axes
    return np.abs(f) / np.linalg.norm(grad, axis=1)


def face_like(size: int = 128, coverage: float = 0.62, height: float = 30.0):
    """Elliptic face-sized dome (height/width = 1.3, clipped by the crop like a real face)
    whose mask covers ``coverage`` of the crop."""
    rr, cc = grid(size, size)
    c = (size - 1) / 2
    lo, hi = 1.0, float(size)
    for _ in range(40):  # bisection on the half-width
        a = 0.5 * (lo + hi)
        if ((((cc - c) / a) ** 2 + ((rr - c) / (1.3 * a)) ** 2) < 1).mean() < coverage:
            lo = a
        else:
            hi = a
    e = ((cc - c) / a) ** 2 + ((rr - c) / (1.3 * a)) ** 2
    mask = e < 1
    depth = np.where(mask, 1.0 + height * np.sqrt(np.clip(1 - e, 0, None)), 0.0)
    return depth, mask


# The helpers above are shared by tests/test_meshing*.py; these check the helpers themselves.

"""Vectorized numpy z-buffer rasterizer for triangle meshes in image space.

Convention: vertex x = column, y = row (pixel centres at integer coordinates), z = towards the
camera (larger = closer; the nearest surface wins). A pixel is covered by a triangle when its
centre lies inside the triangle (with a tiny tolerance so pixels exactly on a shared edge are never
lost). Per-vertex attributes are interpolated with the (screen-space, i.e. orthographic) barycentric
coordinates, which is exact for an orthographic projection, the one used by all labels here.

How it works, without a Python loop over triangles: every triangle's integer bounding box is
expanded into candidate pixels (``np.repeat`` + offsets), barycentric coordinates of all candidates
are computed at once, candidates outside are discarded, and the z-test keeps per pixel the candidate with
the largest z (the first of equal ones): a per-pixel maximum, then the first candidate reaching it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["rasterize"]

_EPS = 1e-7


def rasterize(vertices: np.ndarray, faces: np.ndarray, height: int, width: int,
              attributes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render depth, interpolated attributes and coverage of a triangle mesh.

    Args:
        vertices: (N, 3) x = column px, y = row px, z = towards the camera.
        faces: (F, 3) vertex indices (either winding; no back-face culling).
        height, width: output size in pixels.
        attributes: optional (N, C) per-vertex values.
    Returns:
        depth (H, W) float32: z of the visible surface, 0 outside the mask;
        attrs (H, W, C) float32: barycentric interpolation of ``attributes`` (C = 0 when None), 0 outside;
        mask (H, W) bool: pixels covered by any triangle.
    Raises:
        ValueError: arrays of the wrong shape.
    """
    v, f, attr = _checked_inputs(vertices, faces, attributes)
    n_ch = attr.shape[1]
    depth = np.zeros((height, width), np.float32)
    out_attr = np.zeros((height, width, n_ch), np.float32)
    mask = np.zeros((height, width), bool)
    if len(f) == 0:
        return depth, out_attr, mask
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    # signed double area; degenerate triangles are dropped
    area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p2[:, 0] - p0[:, 0]) * (p1[:, 1] - p0[:, 1])
    tri, px, py = _candidate_pixels(p0, p1, p2, area, height, width)
    inside, w0, w1, w2 = _inside(tri, px, py, p0, p1, p2, area)
    if not len(inside):
        return depth, out_attr, mask
    tri, pix = tri[inside], (py * width + px)[inside]
    z = w0 * p0[tri, 2] + w1 * p1[tri, 2] + w2 * p2[tri, 2]

    win = _nearest(pix, z, height * width)
    wp = pix[win]
    depth.reshape(-1)[wp] = z[win]
    mask.reshape(-1)[wp] = True
    if n_ch:
        fv = f[tri[win]]  # (K, 3)
        vals = np.einsum("kj,kjc->kc", np.stack([w0[win], w1[win], w2[win]], 1), attr[fv])
        out_attr.reshape(-1, n_ch)[wp] = vals
    return depth, out_attr, mask


def _checked_inputs(vertices: np.ndarray, faces: np.ndarray,
                    attributes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 (N, 3) vertices, int64 (F, 3) faces and float64 (N, C) attributes (C = 0 when None)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (N, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {f.shape}")
    attr = np.zeros((len(v), 0)) if attributes is None else np.asarray(attributes, dtype=np.float64)
    if attr.ndim == 1:
        attr = attr[:, None]
    if attr.shape[0] != len(v):
        raise ValueError(f"attributes must have one row per vertex ({len(v)}), got {attr.shape}")
    return v, f, attr


def _candidate_pixels(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, area: np.ndarray, height: int,
                      width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(triangle, x, y) of every pixel in each non-degenerate triangle's bounding box, clipped to the image."""
    # per-triangle extents (elementwise min/max of the three corners: much faster than .min(axis=1))
    xmin = np.minimum(np.minimum(p0[:, 0], p1[:, 0]), p2[:, 0])
    xmax = np.maximum(np.maximum(p0[:, 0], p1[:, 0]), p2[:, 0])
    ymin = np.minimum(np.minimum(p0[:, 1], p1[:, 1]), p2[:, 1])
    ymax = np.maximum(np.maximum(p0[:, 1], p1[:, 1]), p2[:, 1])
    bx0 = np.clip(np.ceil(xmin - 1e-6), 0, width - 1).astype(np.int64)
    bx1 = np.clip(np.floor(xmax + 1e-6), 0, width - 1).astype(np.int64)
    by0 = np.clip(np.ceil(ymin - 1e-6), 0, height - 1).astype(np.int64)
    by1 = np.clip(np.floor(ymax + 1e-6), 0, height - 1).astype(np.int64)
    keep = (np.abs(area) > 1e-12) & (xmax >= -1e-6) & (xmin <= width - 1 + 1e-6) \
        & (ymax >= -1e-6) & (ymin <= height - 1 + 1e-6)
    bw = np.where(keep, bx1 - bx0 + 1, 0).clip(min=0)
    bh = np.where(keep, by1 - by0 + 1, 0).clip(min=0)
    counts = bw * bh
    tri = np.repeat(np.arange(len(area)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum())) - starts[tri]
    return tri, bx0[tri] + local % bw[tri], by0[tri] + local // bw[tri]


def _inside(tri: np.ndarray, px: np.ndarray, py: np.ndarray, p0: np.ndarray, p1: np.ndarray, p2: np.ndarray,
            area: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The candidates whose pixel centre lies in their triangle (within ``_EPS``), and their barycentric
    weights w0, w1, w2 (of p0, p1, p2)."""
    a = area[tri]
    x0, y0 = p0[tri, 0], p0[tri, 1]
    x1, y1 = p1[tri, 0], p1[tri, 1]
    x2, y2 = p2[tri, 0], p2[tri, 1]
    w1 = ((px - x0) * (y2 - y0) - (x2 - x0) * (py - y0)) / a
    w2 = ((x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)) / a
    w0 = 1.0 - w1 - w2
    inside = np.flatnonzero((w0 >= -_EPS) & (w1 >= -_EPS) & (w2 >= -_EPS))
    return inside, w0[inside], w1[inside], w2[inside]


def _nearest(pix: np.ndarray, z: np.ndarray, n_pixels: int) -> np.ndarray:
    """Index of the winning candidate per covered pixel: the largest ``z``, the first candidate among equal ones
    (what a stable sort by (pixel, -z) keeps first, without sorting: the per-pixel maximum, then the first
    candidate reaching it)."""
    if not np.isfinite(z).all():  # NaN and infinities: the sort's order decides
        order = np.lexsort((-z, pix))
        first = np.ones(len(order), bool)
        first[1:] = pix[order][1:] != pix[order][:-1]
        return order[first]
    top = np.full(n_pixels, -np.inf)
    np.maximum.at(top, pix, z)
    reach = np.flatnonzero(z == top[pix])
    first = np.full(n_pixels, len(z))
    np.minimum.at(first, pix[reach], reach)
    return first[first < len(z)]

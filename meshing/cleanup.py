"""Steps 2 and 3: background removal and spike removal (+ largest component, compaction)."""
from __future__ import annotations

import numpy as np

from meshing.lift import bilinear
from meshing.types import MeshingError

__all__ = ["remove_background", "remove_spikes", "largest_component", "compact", "face_areas",
           "longest_edges", "boundary_vertices"]


def _check(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise MeshingError(f"vertices must be (N, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise MeshingError(f"faces must be (F, 3), got {f.shape}")
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise MeshingError(f"face indices out of range [0, {len(v)})")
    return v, f.astype(np.int64, copy=False)


def _edges(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge vectors p1 - p0, p2 - p1, p0 - p2 of each triangle (each (F, D))."""
    p = np.asarray(points, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    p0, p1, p2 = p[f[:, 0]], p[f[:, 1]], p[f[:, 2]]
    return p1 - p0, p2 - p1, p0 - p2


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """3D area of each triangle, (F,) float64."""
    v, f = _check(vertices, faces)
    a, b, _ = _edges(v, f)
    cx = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    cy = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    cz = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return 0.5 * np.sqrt(cx * cx + cy * cy + cz * cz)


def _edge_sq(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Squared edge lengths (F, 3) of each triangle for 2D or 3D points."""
    return np.stack([np.square(e).sum(axis=1) for e in _edges(points, faces)], axis=1)


def longest_edges(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Longest edge of each triangle for 2D or 3D ``points``, (F,) float64."""
    return np.sqrt(_edge_sq(points, faces).max(axis=1))


def remove_background(vertices: np.ndarray, faces: np.ndarray, pixels: np.ndarray | None = None,
                      mask: np.ndarray | None = None, *, edge_factor: float = 1.5,
                      max_edge: float | None = None) -> np.ndarray:
    """Drop triangles touching background; returns the kept faces (F', 3) int64.

    Dropped: a corner with ``Z <= 0`` or non-finite, a corner outside ``mask`` (bilinear foreground weight < 0.5
    at its (row, col) ``pixels``), or a longest 2D edge (in ``pixels``, else mesh X/Y) above ``max_edge`` (default
    ``edge_factor`` x the median 2D edge): such triangles bridge a background gap."""
    v, f = _check(vertices, faces)
    if len(f) == 0:
        return f.reshape(0, 3)
    z = v[:, 2]
    good_v = np.isfinite(v).all(axis=1) & (np.nan_to_num(z, nan=0.0) > 0)
    if mask is not None:
        if pixels is None:
            raise MeshingError("remove_background needs pixels to test vertices against a mask")
        m = np.asarray(mask)
        if m.ndim == 3:
            m = m[..., 0]
        good_v &= bilinear((m > 0).astype(np.float64), np.asarray(pixels)) >= 0.5 - 1e-9
    keep = good_v[f].all(axis=1)
    pts2d = np.asarray(pixels, dtype=np.float64) if pixels is not None else v[:, :2]
    e2 = _edge_sq(pts2d, f)
    if max_edge is None:
        max_edge = edge_factor * float(np.sqrt(np.median(e2)))
    keep &= e2.max(axis=1) <= max_edge * max_edge
    return f[keep]


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove unreferenced vertices: returns ``(vertices, faces, kept)`` where ``kept`` indexes the input."""
    v = np.asarray(vertices)
    f = np.asarray(faces, dtype=np.int64)
    used = np.zeros(len(v), dtype=bool)
    used[f.ravel()] = True
    kept = np.flatnonzero(used)
    remap = np.full(len(v), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    return v[kept], remap[f].reshape(-1, 3), kept


def largest_component(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Faces of the edge-connected component with the most faces, (F', 3)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return f.reshape(0, 3)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=False)
    face_label = labels[f[:, 0]]
    best = np.argmax(np.bincount(face_label))
    return f[face_label == best]


def remove_spikes(vertices: np.ndarray, faces: np.ndarray, *, edge_factor: float | None = 4.0,
                  area_factor: float | None = 10.0,
                  keep_largest: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop spike triangles, keep the largest component, remove unreferenced vertices.

    A spike's longest 3D edge exceeds ``edge_factor`` x the median longest edge, or its area ``area_factor`` x the
    median area (None disables a test); degenerate triangles go too. Returns ``(vertices, faces, kept)``, ``kept``
    indexing the input vertices (``pixels[kept]``). Raises MeshingError when no triangle survives."""
    v, f = _check(vertices, faces)
    if len(f) == 0:
        raise MeshingError("no triangles to clean (the mesh is empty)")
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    if edge_factor is not None and keep.any():
        longest2 = _edge_sq(v, f).max(axis=1)
        keep &= longest2 <= edge_factor ** 2 * float(np.median(longest2[keep]))
    if area_factor is not None and keep.any():
        area = face_areas(v, f)
        keep &= area <= area_factor * float(np.median(area[keep]))
    f = f[keep]
    if len(f) == 0:
        raise MeshingError("spike removal left no triangles")
    if keep_largest:
        f = largest_component(f, len(v))
    out_v, out_f, kept = compact(np.asarray(vertices), f)
    return out_v.astype(np.float32), out_f, kept


def boundary_vertices(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Bool (N,) mask of vertices on a boundary edge (an edge used by exactly one triangle)."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e.sort(axis=1)
    key = e[:, 0] * n_vertices + e[:, 1]
    uniq, counts = np.unique(key, return_counts=True)
    b = uniq[counts == 1]
    out = np.zeros(n_vertices, dtype=bool)
    out[b // n_vertices] = True
    out[b % n_vertices] = True
    return out

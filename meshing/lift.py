"""Step 1, lift: depth map -> vertices on a regular lattice + triangles.

Every foreground pixel (``mask`` and ``depth > 0``) becomes a vertex at
``(X, Y, Z) = (col, H - 1 - row, depth * z_scale)`` (see :mod:`meshing.types`).
With ``density != 1`` the map is first re-sampled on a regular lattice of step
``1 / sqrt(density)`` source pixels (bilinear, normalised by the foreground weight so
background zeros never leak into the depth); vertex positions stay in source pixels.
"""
from __future__ import annotations

import numpy as np

from facevision.common.conventions import check_depth_px
from meshing.types import NONFINITE_POLICIES, TRIANGULATIONS, MeshingError

__all__ = ["foreground", "resample", "lattice_step", "lift", "triangulate", "triangulate_grid", "orient_faces",
           "bilinear"]


def _as_depth(depth: np.ndarray) -> np.ndarray:
    d = np.asarray(depth)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise MeshingError(f"depth must be a 2D (H, W) map, got shape {d.shape}")
    if d.size == 0:
        raise MeshingError(f"depth map is empty (shape {d.shape})")
    if not (np.issubdtype(d.dtype, np.number) or d.dtype == bool):
        raise MeshingError(f"depth must be numeric, got {d.dtype}")
    check_depth_px(d, "depth", MeshingError)
    return d.astype(np.float64, copy=False)


def foreground(depth: np.ndarray, mask: np.ndarray | None = None, nonfinite: str = "error") -> np.ndarray:
    """Foreground pixels: ``depth > 0`` (finite) and, if given, ``mask`` (bool or > 0). MeshingError for a
    non-2D or empty depth, a mask of another size, or (``nonfinite="error"``) NaN/inf depth."""
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
    d = _as_depth(depth)
    finite = np.isfinite(d)
    if nonfinite == "error" and not finite.all():
        n = int((~finite).sum())
        raise MeshingError(f"depth has {n} NaN/inf value(s); clean it or use nonfinite='background'")
    fg = finite & (np.where(finite, d, 0.0) > 0)
    if mask is not None:
        m = np.asarray(mask)
        if m.ndim == 3 and m.shape[2] >= 1:
            m = m[..., 0]
        if m.shape != d.shape:
            raise MeshingError(f"mask size {m.shape} differs from depth size {d.shape}")
        fg &= m > 0
    return fg


def _interp_matrix(n_out: int, n_in: int):
    """Sparse (n_out, n_in) linear-interpolation matrix for lattice centres, and the positions."""
    from scipy.sparse import csr_matrix

    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    p = np.clip(pos, 0.0, n_in - 1.0)
    i0 = np.minimum(np.floor(p).astype(np.int64), max(n_in - 2, 0))
    w = p - i0
    i1 = np.minimum(i0 + 1, n_in - 1)
    rows = np.arange(n_out)
    m = csr_matrix((np.concatenate([1.0 - w, w]), (np.concatenate([rows, rows]), np.concatenate([i0, i1]))),
                   shape=(n_out, n_in))  # duplicate entries (n_in == 1) are summed
    return m, pos


def _lattice_shape(shape: tuple[int, int], density: float) -> tuple[int, int]:
    s = float(np.sqrt(density))
    return max(1, int(round(shape[0] * s))), max(1, int(round(shape[1] * s)))


def lattice_step(shape: tuple[int, int], density: float) -> tuple[float, float]:
    """(row, col) spacing in source pixels of the lattice :func:`resample` uses for ``density``."""
    h, w = _lattice_shape(shape, density)
    return shape[0] / h, shape[1] / w


def resample(depth: np.ndarray, fg: np.ndarray,
             density: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Re-sample depth on a lattice of ``density`` points per source pixel -> ``(z, valid, rows, cols)``: lattice
    depth and foreground (interpolated foreground weight >= 0.5), (h, w) each, and the source-pixel row (h,) and
    column (w,) of each lattice line. ``density == 1`` returns the map itself."""
    d = np.where(fg, _as_depth(depth), 0.0)
    h_in, w_in = d.shape
    if not (np.isfinite(density) and density > 0):
        raise MeshingError(f"density must be positive, got {density!r}")
    h, w = _lattice_shape((h_in, w_in), density)
    if (h, w) == (h_in, w_in):
        return d, fg.copy(), np.arange(h_in, dtype=np.float64), np.arange(w_in, dtype=np.float64)
    ry, rows = _interp_matrix(h, h_in)
    rx, cols = _interp_matrix(w, w_in)
    wsum = np.asarray((rx @ np.asarray(ry @ fg.astype(np.float64)).T).T)
    zsum = np.asarray((rx @ np.asarray(ry @ d).T).T)
    valid = wsum >= 0.5 - 1e-9
    z = np.where(valid, zsum / np.maximum(wsum, 1e-12), 0.0)
    valid &= z > 0
    return z, valid, rows, cols


def bilinear(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (H, W[, C]) at float (row, col) ``pixels`` (N, 2); edges clamp."""
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape[:2]
    r = np.clip(np.asarray(pixels[:, 0], dtype=np.float64), 0, h - 1)
    c = np.clip(np.asarray(pixels[:, 1], dtype=np.float64), 0, w - 1)
    r0 = np.minimum(np.floor(r).astype(np.int64), max(h - 2, 0))
    c0 = np.minimum(np.floor(c).astype(np.int64), max(w - 2, 0))
    r1 = np.minimum(r0 + 1, h - 1)
    c1 = np.minimum(c0 + 1, w - 1)
    fr = r - r0
    fc = c - c0
    if img.ndim == 3:
        fr = fr[:, None]
        fc = fc[:, None]
    top = img[r0, c0] * (1 - fc) + img[r0, c1] * fc
    bot = img[r1, c0] * (1 - fc) + img[r1, c1] * fc
    return top * (1 - fr) + bot * fr


def orient_faces(pixels: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Reorder each triangle counter-clockwise in mesh X/Y (X = col, Y = -row), i.e. normals to +Z."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return faces.reshape(0, 3)
    x = np.asarray(pixels[:, 1], dtype=np.float64)
    y = -np.asarray(pixels[:, 0], dtype=np.float64)
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    cross = (x[b] - x[a]) * (y[c] - y[a]) - (y[b] - y[a]) * (x[c] - x[a])
    out = faces.copy()
    flip = cross < 0
    out[flip, 1], out[flip, 2] = faces[flip, 2], faces[flip, 1]
    return out


def triangulate(pixels: np.ndarray) -> np.ndarray:
    """Delaunay triangulation (scipy.spatial) of scattered (row, col) points -> (F, 3) int64, CCW; MeshingError
    for fewer than 3 points or points that are all collinear."""
    from scipy.spatial import Delaunay, QhullError

    pts = np.asarray(pixels, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise MeshingError(f"points must be (N, 2), got {pts.shape}")
    if len(pts) < 3:
        raise MeshingError(f"need at least 3 foreground points to triangulate, got {len(pts)}")
    if not np.all(np.isfinite(pts)):
        raise MeshingError("points contain NaN or inf")
    try:
        tri = Delaunay(pts[:, ::-1])
    except QhullError as exc:
        raise MeshingError(f"cannot triangulate {len(pts)} points (all collinear or coincident): "
                           f"{str(exc).splitlines()[0]}") from None
    return orient_faces(pts, tri.simplices.astype(np.int64))


def triangulate_grid(valid: np.ndarray) -> np.ndarray:
    """Direct triangulation of a regular lattice: (F, 3) int64 indices, CCW seen from +Z.

    Vertices are the ``valid`` lattice points in row-major order. A cell with four valid corners gives
    two triangles (the same diagonal everywhere), a cell with three gives one: a Delaunay triangulation
    of the lattice (a cell's corners are co-circular) restricted to all-foreground triangles.
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.ndim != 2:
        raise MeshingError(f"lattice must be 2D, got shape {valid.shape}")
    idx = np.full(valid.shape, -1, dtype=np.int64)
    idx[valid] = np.arange(int(valid.sum()))
    if valid.shape[0] < 2 or valid.shape[1] < 2:
        return np.zeros((0, 3), dtype=np.int64)
    a, b = idx[:-1, :-1], idx[:-1, 1:]   # top-left, top-right
    c, d = idx[1:, :-1], idx[1:, 1:]     # bottom-left, bottom-right
    va, vb, vc, vd = a >= 0, b >= 0, c >= 0, d >= 0
    parts = []
    # Triangles (CCW in X = col, Y = -row): (a, c, b) and (b, c, d) for a full cell.
    parts.append(np.stack([a, c, b], -1)[va & vb & vc])
    parts.append(np.stack([b, c, d], -1)[vb & vc & vd])
    # Cells with one missing corner on the b-c diagonal: use the other diagonal.
    parts.append(np.stack([a, c, d], -1)[va & vc & vd & ~vb])
    parts.append(np.stack([a, d, b], -1)[va & vb & vd & ~vc])
    return np.concatenate(parts, axis=0).astype(np.int64)


def lift(depth: np.ndarray, mask: np.ndarray | None = None, *, density: float = 1.0,
         triangulation: str = "auto", z_scale: float = 1.0,
         nonfinite: str = "error") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lift a depth map (:mod:`facevision.common.conventions`) to a triangle mesh.

    depth: (H, W) in pixel units (any numeric dtype); mask: optional (H, W) foreground (bool or > 0), background is
    also ``depth <= 0``; density: vertices per foreground pixel; triangulation: "auto"/"grid" (lattice) or
    "delaunay" (scipy); z_scale multiplies depth; nonfinite: "error" or "background" for NaN/inf depth.
    Returns (vertices (N, 3) float32, faces (F, 3) int64, pixels (N, 2) float32 (row, col)).
    Raises MeshingError: no foreground, fewer than 3 points, no triangle, non-finite depth."""
    if triangulation not in TRIANGULATIONS:
        raise ValueError(f"triangulation must be one of {TRIANGULATIONS}, got {triangulation!r}")
    if not (np.isfinite(z_scale) and z_scale > 0):
        raise MeshingError(f"z_scale must be positive, got {z_scale!r}")
    fg = foreground(depth, mask, nonfinite)
    n_fg = int(fg.sum())
    if n_fg == 0:
        raise MeshingError("no foreground pixels (depth is all 0 / outside the mask)")
    d = np.where(fg, np.nan_to_num(_as_depth(depth), nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    z, valid, rows, cols = resample(d, fg, density)
    n = int(valid.sum())
    if n < 3:
        raise MeshingError(f"only {n} foreground point(s) at density {density:g} "
                           f"({n_fg} foreground pixel(s)); need at least 3 to make a triangle")
    h_src = depth.shape[0]
    rr, cc = np.nonzero(valid)
    pixels = np.stack([rows[rr], cols[cc]], axis=1)
    vertices = np.stack([pixels[:, 1], (h_src - 1) - pixels[:, 0], z[rr, cc] * z_scale], axis=1)
    if triangulation == "delaunay":
        faces = triangulate(pixels)
    else:
        faces = triangulate_grid(valid)
    if len(faces) == 0:
        raise MeshingError(f"the {n} foreground points form no triangle (a line or isolated pixels)")
    return vertices.astype(np.float32), faces, pixels.astype(np.float32)

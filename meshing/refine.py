"""Steps 4 and 5: Laplacian smoothing (Open3D) and detail filling from the photo."""
from __future__ import annotations

import numpy as np

from meshing.cleanup import boundary_vertices
from facevision.common.lazy_modules import import_open3d
from meshing.lift import bilinear
from meshing.types import FaceMesh, MeshingError

__all__ = ["smooth_laplacian", "fill_detail", "vertex_normals", "high_pass", "one_ring_mean", "to_gray",
           "vertex_adjacency", "graph_laplacian"]


def _validated(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checks that keep Open3D away from inputs it may crash or silently misbehave on."""
    v = np.asarray(vertices)
    f = np.asarray(faces)
    FaceMesh(vertices=v, faces=f, pixels=np.zeros((len(v), 2)) if v.ndim == 2 else v).validate()
    return v.astype(np.float64), f.astype(np.int64)


def smooth_laplacian(vertices: np.ndarray, faces: np.ndarray, iterations: int = 5, lam: float = 0.5,
                     pin_boundary: bool = False) -> np.ndarray:
    """Open3D Laplacian smoothing: each of ``iterations`` passes moves every vertex by ``lam`` (in [0, 1])
    towards the weighted centroid of its one-ring; ``pin_boundary`` keeps boundary vertices fixed.
    Returns (N, 3) float32 vertices; MeshingError for an empty, degenerate or non-finite mesh."""
    if int(iterations) < 0:
        raise MeshingError(f"iterations must be >= 0, got {iterations!r}")
    if not (0.0 <= lam <= 1.0):
        raise MeshingError(f"lambda must be in [0, 1], got {lam!r}")
    v, f = _validated(vertices, faces)
    if iterations == 0 or lam == 0:
        return v.astype(np.float32)
    o3d = import_open3d()

    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32)))
    if not pin_boundary:
        return np.asarray(mesh.filter_smooth_laplacian(int(iterations), float(lam)).vertices, dtype=np.float32)
    pinned = boundary_vertices(f, len(v))
    fixed = v[pinned]
    mesh.compute_adjacency_list()
    for _ in range(int(iterations)):
        mesh = mesh.filter_smooth_laplacian(1, float(lam))
        out = np.asarray(mesh.vertices)  # a view into the Open3D buffer
        out[pinned] = fixed
    return np.asarray(mesh.vertices, dtype=np.float32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals (N, 3) float64; zero for vertices without area."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    p = v[f]
    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])  # length = 2 x area
    n = np.zeros_like(v)
    for k in range(3):
        n[:, 0] += np.bincount(f[:, k], weights=fn[:, 0], minlength=len(v))
        n[:, 1] += np.bincount(f[:, k], weights=fn[:, 1], minlength=len(v))
        n[:, 2] += np.bincount(f[:, k], weights=fn[:, 2], minlength=len(v))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W[, C]) uint8/uint16/float image -> (H, W) float64 grey in [0, 1] (Rec. 601 luma)."""
    img = np.asarray(image)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    g = img.astype(np.float64) / scale
    if g.ndim == 3:
        if g.shape[2] >= 3:
            g = g[..., :3] @ np.array([0.299, 0.587, 0.114])
        else:
            g = g[..., 0]
    if g.ndim != 2 or g.size == 0:
        raise MeshingError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    if not np.all(np.isfinite(g)):
        raise MeshingError("image contains NaN or inf")
    return g


def high_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    """High-frequency detail: grey minus its Gaussian low-pass (sigma in pixels), (H, W) float64."""
    import cv2

    if not (np.isfinite(sigma) and sigma > 0):
        raise MeshingError(f"sigma must be positive, got {sigma!r}")
    g = to_gray(image)
    low = cv2.GaussianBlur(g, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT)
    return g - low


def vertex_adjacency(faces: np.ndarray, n_vertices: int):
    """(N, N) scipy CSR matrix, 1.0 where two vertices share an edge (symmetric, zero diagonal)."""
    from scipy.sparse import coo_matrix

    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = coo_matrix((np.ones(len(i)), (i, j)), shape=(n_vertices, n_vertices)).tocsr()
    adj.data[:] = 1.0  # duplicates (an edge shared by two triangles) count once
    return adj


def graph_laplacian(faces: np.ndarray, n_vertices: int):
    """(N, N) scipy CSR umbrella Laplacian ``degree - adjacency`` of the mesh's edge graph."""
    from scipy.sparse import diags

    adj = vertex_adjacency(faces, n_vertices)
    return (diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()


def one_ring_mean(values: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Mean of per-vertex ``values`` over each vertex and its one-ring neighbours, (N,) float64."""
    x = np.asarray(values, dtype=np.float64)
    adj = vertex_adjacency(faces, len(x))
    deg = np.asarray(adj.sum(axis=1)).ravel()
    return (adj @ x + x) / (deg + 1.0)


def fill_detail(vertices: np.ndarray, faces: np.ndarray, pixels: np.ndarray, image: np.ndarray,
                strength: float = 2.0, sigma: float = 2.0) -> np.ndarray:
    """Move each vertex along its normal by ``strength`` (px per unit grey) x the mean high-pass grey
    (``high_pass(image, sigma)``, grey in [0, 1]) over the vertex and its one-ring: brighter than the surroundings
    moves towards the viewer. ``image`` is the photo the (row, col) ``pixels`` refer to; strength 0 = unchanged."""
    v = np.asarray(vertices)
    if strength == 0:
        return v.astype(np.float32, copy=True)
    if not np.isfinite(strength):
        raise MeshingError(f"strength must be finite, got {strength!r}")
    v64, f = _validated(vertices, faces)
    px = np.asarray(pixels, dtype=np.float64)
    if px.shape != (len(v64), 2):
        raise MeshingError(f"pixels must be (N, 2) for {len(v64)} vertices, got {px.shape}")
    hf = bilinear(high_pass(image, sigma), px)
    step = strength * one_ring_mean(hf, f)
    return (v64 + step[:, None] * vertex_normals(v64, f)).astype(np.float32)

"""Small mesh-geometry helpers: closest points on triangles (Open3D), barycentric sampling, normals, OBJ."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["closest_points", "barycentric_points", "vertex_normals", "write_obj"]


def closest_points(vertices: np.ndarray, faces: np.ndarray, queries: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface point of a triangle mesh for each query (any units; float32 precision).

    Returns:
        points (Q,3), triangle index (Q,) into ``faces``, barycentric weights (Q,3) of that triangle.
    """
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)))
    ans = scene.compute_closest_points(o3d.core.Tensor(np.ascontiguousarray(queries, dtype=np.float32)))
    uv = ans["primitive_uvs"].numpy().astype(np.float64)
    bary = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1)
    return ans["points"].numpy().astype(np.float64), ans["primitive_ids"].numpy().astype(np.int64), bary


def barycentric_points(vertices: np.ndarray, faces: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Surface points ``sum_k bary[:, k] * vertices[faces[tri, k]]`` (numpy or torch vertices (V,3))."""
    corners = vertices[faces[tri]]  # (Q,3,3)
    return (corners * bary[:, :, None]).sum(1)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V,3) (outward for counter-clockwise triangles)."""
    v = np.asarray(vertices, dtype=np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, comment: str = "") -> Path:
    """Write a triangle mesh as Wavefront OBJ atomically (1-based indices, 6 decimals)."""
    from data_prep.io import atomic_write_bytes

    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    body = "\n".join(lines + [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, dtype=np.float64)]
                     + [f"f {a} {b} {c}" for a, b, c in np.asarray(faces, dtype=np.int64) + 1]) + "\n"
    return atomic_write_bytes(path, body.encode())

"""Small mesh-geometry helpers: closest points on triangles (Open3D), barycentric sampling, OBJ of a bare mesh.

Vertex normals: :func:`meshing.refine.vertex_normals`; similarity fit: :func:`facevision.common.geometry.similarity_fit`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facevision.common.lazy_modules import import_open3d

__all__ = ["closest_points", "barycentric_points", "write_obj"]


def closest_points(vertices: np.ndarray, faces: np.ndarray, queries: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface point of a triangle mesh for each query (any units; float32 precision): points (Q,3),
    triangle index (Q,) into ``faces``, barycentric weights (Q,3) in that triangle."""
    o3d = import_open3d()

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


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, comment: str = "") -> Path:
    """Write a bare triangle mesh (FLAME: metres) as Wavefront OBJ with 6 decimals, atomically, through the
    project's one OBJ writer (:func:`meshing.save_mesh`)."""
    from meshing import FaceMesh, save_mesh

    v = np.asarray(vertices, dtype=np.float64)
    mesh = FaceMesh(vertices=v, faces=np.asarray(faces, dtype=np.int64), pixels=np.full((len(v), 2), np.nan, np.float32))
    return save_mesh(path, mesh, comment=comment, decimals=6)

"""Data types of :mod:`meshing`: the configuration, the mesh container and the error class.

Mesh coordinates (every function of the package): X = column of the source map (right), Y = (H - 1) - row (up),
Z = depth (towards the viewer; larger = closer); right-handed, all in source-map pixels (Z times
``MeshConfig.z_scale``). Triangles are counter-clockwise seen from +Z (normals towards the viewer).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

from facevision.common.checks import check_choice, check_int, check_number

__all__ = ["MeshConfig", "FaceMesh", "MeshingError", "TRIANGULATIONS", "NONFINITE_POLICIES"]

TRIANGULATIONS = ("auto", "grid", "delaunay")
NONFINITE_POLICIES = ("error", "background")


class MeshingError(ValueError):
    """Input that cannot be meshed (empty, degenerate, non-finite, mismatched); the message says why."""


@dataclass
class MeshConfig:
    """Every switch and strength of :func:`meshing.mesh_from_maps` (docs/meshing.md: counts and timings).

    vertex_density: vertices per foreground pixel (re-sampled on a lattice of step ``1/sqrt(density)`` px);
    target_vertices: overrides it with ``target_vertices / foreground pixels``; triangulation: "auto"/"grid" (the
    map's lattice, a Delaunay triangulation of it) or "delaunay" (scipy on the pixel positions); z_scale multiplies
    depth; nonfinite: "error" (NaN/inf depth raises MeshingError) or "background" (read as 0).
    Steps, each can be switched off: background removal (triangles touching background, or whose longest 2D edge
    exceeds ``background_edge_factor`` x the lattice step); spike removal (longest 3D edge or area above the
    factors x the median) and ``keep_largest_component``; Open3D Laplacian smoothing (``smooth_iterations`` 0 = off,
    ``smooth_pin_boundary`` keeps the silhouette); detail filling: ``detail_strength`` px of normal displacement per
    unit of high-pass grey (in [0, 1]; 0 = off, also off without an image), ``detail_sigma`` Gaussian sigma in px."""

    vertex_density: float = 1.0
    target_vertices: Optional[int] = None
    triangulation: str = "auto"
    z_scale: float = 1.0
    nonfinite: str = "error"
    remove_background: bool = True
    background_edge_factor: float = 1.5
    remove_spikes: bool = True
    spike_edge_factor: float = 4.0
    spike_area_factor: float = 10.0
    keep_largest_component: bool = True
    smooth_iterations: int = 5
    smooth_lambda: float = 0.5
    smooth_pin_boundary: bool = False
    detail_strength: float = 2.0
    detail_sigma: float = 2.0

    def __post_init__(self) -> None:
        for name in ("vertex_density", "z_scale", "background_edge_factor", "spike_edge_factor", "spike_area_factor",
                     "detail_sigma"):
            check_number(self, name, low=0, low_open=True)
        check_int(self, "target_vertices", low=3, optional=True)
        check_choice(self, "triangulation", TRIANGULATIONS)
        check_choice(self, "nonfinite", NONFINITE_POLICIES)
        check_int(self, "smooth_iterations", low=0)
        check_number(self, "smooth_lambda", 0, 1)
        check_number(self, "detail_strength")


@dataclass
class FaceMesh:
    """A triangle mesh as plain numpy arrays.

    vertices (N, 3) float32, mesh coordinates (module docstring); faces (F, 3) int64, counter-clockwise seen from +Z;
    pixels (N, 2) float32 (row, col) in the source map (NaN when unknown); colors (N, 3) float32 RGB in [0, 1];
    uvs (N, 2) float32, OBJ convention ``u = (col + 0.5) / W``, ``v = 1 - (row + 0.5) / H``; corr (N, 3) float32
    (u, v, w) per vertex; source_shape (H, W). Optional ones are None when absent."""

    vertices: np.ndarray
    faces: np.ndarray
    pixels: np.ndarray
    colors: Optional[np.ndarray] = None
    uvs: Optional[np.ndarray] = None
    corr: Optional[np.ndarray] = None
    source_shape: Optional[tuple[int, int]] = field(default=None)

    @property
    def n_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def n_faces(self) -> int:
        return int(len(self.faces))

    def validate(self) -> "FaceMesh":
        """Check shapes, dtypes-compatibility, finiteness and index range; raise MeshingError if wrong."""
        v = np.asarray(self.vertices)
        f = np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3:
            raise MeshingError(f"vertices must be (N, 3), got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise MeshingError(f"faces must be (F, 3), got {f.shape}")
        if len(v) == 0 or len(f) == 0:
            raise MeshingError(f"empty mesh ({len(v)} vertices, {len(f)} faces)")
        if not np.issubdtype(f.dtype, np.integer):
            raise MeshingError(f"faces must be integers, got {f.dtype}")
        if f.min() < 0 or f.max() >= len(v):
            raise MeshingError(f"face indices out of range [0, {len(v)})")
        if not np.all(np.isfinite(v)):
            raise MeshingError("vertices contain NaN or inf")
        for f_ in fields(self):
            if f_.name in ("colors", "uvs", "corr", "pixels"):
                arr = getattr(self, f_.name)
                if arr is not None and len(arr) != len(v):
                    raise MeshingError(f"{f_.name} has {len(arr)} rows for {len(v)} vertices")
        return self

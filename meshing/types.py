"""Data types of :mod:`meshing`: the configuration, the mesh container and the error class.

Mesh coordinate system (used by every function of the package)::

    X = column of the source map            (to the image right)
    Y = (H - 1) - row of the source map     (up)
    Z = depth value                          (towards the viewer; larger = closer)

Right-handed, all three axes in the same units: pixels of the source map (times
``MeshConfig.z_scale`` for Z), so a depth map in pixel units lifts with its true
proportions. Triangles are ordered counter-clockwise seen from +Z, so face normals
point towards the viewer.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

__all__ = ["MeshConfig", "FaceMesh", "MeshingError", "TRIANGULATIONS", "NONFINITE_POLICIES"]

TRIANGULATIONS = ("auto", "grid", "delaunay")
NONFINITE_POLICIES = ("error", "background")


class MeshingError(ValueError):
    """Input that cannot be meshed (empty, degenerate, non-finite, mismatched); the message says why."""


@dataclass
class MeshConfig:
    """Every switch and strength of :func:`meshing.mesh_from_maps`.

    Sampling:
        vertex_density: vertices per foreground pixel of the source map (<1 sub-samples,
            >1 up-samples; the map is re-sampled on a regular lattice of step
            ``1/sqrt(density)`` px). The default 1.0 makes every foreground pixel a vertex, as
            in the paper: facevision's 128x128 crops (face = 32-50 % of the crop) give
            5.2k-8.2k vertices and 10k-16k faces, the paper's range.
        target_vertices: if set, overrides ``vertex_density`` with
            ``target_vertices / number of foreground pixels`` (use for other resolutions).
        triangulation: "auto" (default) = direct grid triangulation for the regular
            lattice of a map (itself a Delaunay triangulation of the lattice, ~50x faster
            than qhull on it); "delaunay" = scipy.spatial.Delaunay on the lifted pixel
            positions (the default of :func:`meshing.triangulate` for scattered points);
            "grid" = same as "auto".
        z_scale: multiplies depth values (e.g. to bring an 8-bit 0-255 depth map to pixel units).
        nonfinite: "error" (NaN/inf depth raises MeshingError) or "background" (treated as 0).
    Steps (each can be switched off):
        remove_background, background_edge_factor: drop triangles touching background or
            spanning a background gap (longest 2D edge > factor x the lattice step; a lattice
            triangle's longest edge, its diagonal, is <= sqrt(2) x the step).
        remove_spikes, spike_edge_factor, spike_area_factor: drop triangles whose longest 3D
            edge or 3D area exceeds factor x the median; ``keep_largest_component``.
        smooth_iterations, smooth_lambda, smooth_pin_boundary: Open3D Laplacian smoothing
            (0 iterations = off). Pinning keeps boundary vertices fixed so the silhouette does
            not shrink (about ``lambda`` px per pass on a straight edge) but costs one Open3D
            call per iteration (~3x slower), so it is off by default.
        detail_strength, detail_sigma: detail filling, px of normal displacement per unit of
            high-pass grey value (grey in [0, 1]); Gaussian sigma in source pixels;
            strength 0 = off (also off without an image).
    """

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
        def positive(name: str) -> None:
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"MeshConfig.{name} must be a positive finite number, got {value!r}")

        positive("vertex_density")
        positive("z_scale")
        positive("background_edge_factor")
        positive("spike_edge_factor")
        positive("spike_area_factor")
        positive("detail_sigma")
        if self.target_vertices is not None and int(self.target_vertices) < 3:
            raise ValueError(f"MeshConfig.target_vertices must be >= 3, got {self.target_vertices!r}")
        if self.triangulation not in TRIANGULATIONS:
            raise ValueError(f"MeshConfig.triangulation must be one of {TRIANGULATIONS}, got {self.triangulation!r}")
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"MeshConfig.nonfinite must be one of {NONFINITE_POLICIES}, got {self.nonfinite!r}")
        if int(self.smooth_iterations) < 0:
            raise ValueError(f"MeshConfig.smooth_iterations must be >= 0, got {self.smooth_iterations!r}")
        if not (0.0 <= self.smooth_lambda <= 1.0):
            raise ValueError(f"MeshConfig.smooth_lambda must be in [0, 1], got {self.smooth_lambda!r}")
        if not np.isfinite(self.detail_strength):
            raise ValueError(f"MeshConfig.detail_strength must be finite, got {self.detail_strength!r}")


@dataclass
class FaceMesh:
    """A triangle mesh as plain numpy arrays (no Open3D objects).

    vertices: (N, 3) float32, mesh coordinates (see module docstring), source-map pixel units.
    faces: (F, 3) int64 vertex indices, counter-clockwise seen from +Z.
    pixels: (N, 2) float32 (row, col) position of each vertex in the source map
        (NaN when unknown, e.g. after :func:`meshing.load_mesh`).
    colors: (N, 3) float32 RGB in [0, 1] sampled from the photo, or None.
    uvs: (N, 2) float32 texture coordinates into the source image, OBJ/OpenGL convention:
        u = (col + 0.5) / W, v = 1 - (row + 0.5) / H (origin bottom-left), or None.
    corr: (N, 3) float32 correspondence (u, v, w) sampled at each vertex, or None.
    source_shape: (H, W) of the source map, or None.
    """

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

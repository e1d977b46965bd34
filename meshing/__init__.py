"""meshing: depth (+ correspondence, image) maps -> refined triangle mesh. Plain numpy arrays in and out.

Pipeline (each step a public function, composable)::

    vertices, faces, pixels = lift(depth, mask, density=1.0)                       # 1
    faces = remove_background(vertices, faces, pixels, mask)                       # 2
    vertices, faces, kept = remove_spikes(vertices, faces); pixels = pixels[kept]  # 3
    vertices = smooth_laplacian(vertices, faces, iterations=5, lam=0.5)            # 4 (Open3D)
    vertices = fill_detail(vertices, faces, pixels, image, strength=2.0)           # 5
    colors, uvs = sample_colors(image, pixels), pixel_uvs(pixels, image.shape[:2]) # 6

or all at once: ``mesh_from_maps(depth, mask, image, corr, MeshConfig()) -> FaceMesh``;
``save_mesh(path, mesh, texture=image)`` writes PLY or textured OBJ (+ MTL + PNG).

Coordinates: right-handed, X = column, Y = H - 1 - row (up), Z = depth (towards the viewer),
all in source-map pixels (see :mod:`meshing.types`).
"""
from meshing.cleanup import (boundary_vertices, compact, face_areas, largest_component, longest_edges,
                             remove_background, remove_spikes)
from meshing.io import MeshIOError, load_mesh, save_mesh
from meshing.lift import bilinear, foreground, lattice_step, lift, orient_faces, resample, triangulate, triangulate_grid
from meshing.pipeline import check_maps, mesh_from_maps
from meshing.refine import fill_detail, high_pass, one_ring_mean, smooth_laplacian, to_gray, vertex_normals
from meshing.sample import image_to_float, pixel_uvs, sample_colors, sample_corr
from meshing.types import FaceMesh, MeshConfig, MeshingError

__all__ = [
    "MeshConfig", "FaceMesh", "MeshingError", "MeshIOError",
    "lift", "foreground", "resample", "lattice_step", "triangulate", "triangulate_grid", "orient_faces", "bilinear",
    "remove_background", "remove_spikes", "largest_component", "compact", "face_areas", "longest_edges",
    "boundary_vertices",
    "smooth_laplacian", "fill_detail", "vertex_normals", "high_pass", "one_ring_mean", "to_gray",
    "sample_colors", "pixel_uvs", "sample_corr", "image_to_float",
    "mesh_from_maps", "check_maps",
    "save_mesh", "load_mesh",
]

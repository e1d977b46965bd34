"""meshing: depth (+ mask, photo, correspondence) maps -> refined triangle mesh; plain numpy arrays in and out.

``mesh_from_maps(depth, mask, image, corr, MeshConfig()) -> FaceMesh`` runs the steps in order (lift, remove
background, remove spikes, smooth, fill detail, sample colours / uvs / corr), each also a public function;
``save_mesh(path, mesh, texture=image)`` writes PLY or textured OBJ. Coordinates: :mod:`meshing.types`.
Guide and measurements: docs/meshing.md.
"""
from meshing.cleanup import (boundary_vertices, compact, face_areas, largest_component, longest_edges,
                             remove_background, remove_spikes)
from meshing.io import MeshIOError, load_mesh, save_mesh
from meshing.lift import bilinear, foreground, lattice_step, lift, orient_faces, resample, triangulate, triangulate_grid
from meshing.pipeline import check_maps, finish_mesh, mesh_from_maps
from meshing.refine import (fill_detail, graph_laplacian, high_pass, one_ring_mean, smooth_laplacian, to_gray,
                            vertex_adjacency, vertex_normals)
from meshing.sample import image_to_float, pixel_uvs, sample_colors, sample_corr
from meshing.types import FaceMesh, MeshConfig, MeshingError

__all__ = [
    "MeshConfig", "FaceMesh", "MeshingError", "MeshIOError",
    "lift", "foreground", "resample", "lattice_step", "triangulate", "triangulate_grid", "orient_faces", "bilinear",
    "remove_background", "remove_spikes", "largest_component", "compact", "face_areas", "longest_edges",
    "boundary_vertices",
    "smooth_laplacian", "fill_detail", "vertex_normals", "high_pass", "one_ring_mean", "to_gray", "vertex_adjacency",
    "graph_laplacian",
    "sample_colors", "pixel_uvs", "sample_corr", "image_to_float",
    "mesh_from_maps", "finish_mesh", "check_maps",
    "save_mesh", "load_mesh",
]

"""The composed pipeline: maps -> refined :class:`~meshing.types.FaceMesh`."""
from __future__ import annotations

import numpy as np

from facevision.common.conventions import check_corr, check_depth_px, check_mask
from meshing.cleanup import compact, largest_component, remove_background, remove_spikes
from meshing.lift import foreground, lattice_step, lift
from meshing.refine import fill_detail, smooth_laplacian
from meshing.sample import pixel_uvs, sample_colors, sample_corr
from meshing.types import FaceMesh, MeshConfig, MeshingError

__all__ = ["mesh_from_maps", "finish_mesh", "check_maps"]


def check_maps(depth: np.ndarray, mask: np.ndarray | None = None, image: np.ndarray | None = None,
               corr: np.ndarray | None = None) -> tuple[int, int]:
    """Check that the maps share one (H, W) and follow :mod:`facevision.common.conventions` (depth >= 0, corr in
    [0, 1]); returns (H, W). Raises MeshingError naming the odd map."""
    d = np.asarray(depth)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[..., 0]
    if d.ndim != 2 or d.size == 0:
        raise MeshingError(f"depth must be a non-empty (H, W) map, got shape {d.shape}")
    shape = d.shape
    for name, arr in (("mask", mask), ("image", image), ("corr", corr)):
        if arr is None:
            continue
        a = np.asarray(arr)
        if a.ndim not in (2, 3) or a.shape[:2] != shape:
            raise MeshingError(f"{name} size {a.shape[:2]} differs from depth size {shape}")
    if corr is not None and (np.asarray(corr).ndim != 3 or np.asarray(corr).shape[2] < 3):
        raise MeshingError(f"corr must be (H, W, 3), got shape {np.asarray(corr).shape}")
    check_depth_px(d, "depth", MeshingError)
    if mask is not None:
        m = np.asarray(mask)
        check_mask(m[..., 0] if m.ndim == 3 else m, shape, "mask", MeshingError)
    if corr is not None:
        check_corr(np.asarray(corr)[..., :3], shape, "corr", MeshingError)
    return int(shape[0]), int(shape[1])


def mesh_from_maps(depth: np.ndarray, mask: np.ndarray | None = None, image: np.ndarray | None = None,
                   corr: np.ndarray | None = None, config: MeshConfig | None = None) -> FaceMesh:
    """Depth (+ mask, photo, correspondence) maps -> refined mesh, every step per ``config`` (default ``MeshConfig()``).

    depth: (H, W) pixel units (:mod:`facevision.common.conventions`); mask: (H, W) foreground (bool or > 0);
    image: (H, W, 3) photo (uint8 RGB or float in [0, 1]) for detail, colours and uvs; corr: (H, W, 3) in [0, 1],
    sampled per vertex into ``mesh.corr``. Raises MeshingError for empty, degenerate or non-finite input or maps of
    different sizes."""
    config = MeshConfig() if config is None else config
    shape = check_maps(depth, mask, image, corr)
    fg = foreground(depth, mask, config.nonfinite)
    n_fg = int(fg.sum())
    if n_fg == 0:
        raise MeshingError("no foreground pixels (depth is all 0 / outside the mask)")
    density = config.vertex_density
    if config.target_vertices is not None:
        density = float(config.target_vertices) / n_fg
    vertices, faces, pixels = lift(depth, fg, density=density, triangulation=config.triangulation,
                                   z_scale=config.z_scale, nonfinite="background")
    if config.remove_background:
        # a gap-bridging triangle has an edge longer than the lattice diagonal (<= 1.5 x the step)
        max_edge = config.background_edge_factor * max(lattice_step(shape, density))
        faces = remove_background(vertices, faces, pixels, fg, max_edge=max_edge)
        if len(faces) == 0:
            raise MeshingError("background removal left no triangles")
    if config.remove_spikes:
        vertices, faces, kept = remove_spikes(vertices, faces, edge_factor=config.spike_edge_factor,
                                              area_factor=config.spike_area_factor,
                                              keep_largest=config.keep_largest_component)
    else:
        if config.keep_largest_component:
            faces = largest_component(faces, len(vertices))
        vertices, faces, kept = compact(vertices, faces)
    pixels = pixels[kept]
    corr_v = sample_corr(corr, pixels, fg) if corr is not None else None
    return finish_mesh(vertices, faces, pixels, shape, image, config, corr=corr_v)


def finish_mesh(vertices: np.ndarray, faces: np.ndarray, pixels: np.ndarray, shape: tuple[int, int],
                image: np.ndarray | None = None, config: MeshConfig | None = None,
                detail_where: np.ndarray | None = None, corr: np.ndarray | None = None) -> FaceMesh:
    """The pipeline's last steps on a lifted, cleaned mesh: Laplacian smoothing, detail from ``image`` (only at
    the vertices where ``detail_where`` (N,) is True, default all), colours and uvs sampled at ``pixels`` (N, 2)
    (row, col) of the (H, W) = ``shape`` photo; ``corr`` (N, 3) goes into ``mesh.corr`` as it is."""
    config = MeshConfig() if config is None else config
    if config.smooth_iterations > 0 and config.smooth_lambda > 0:
        vertices = smooth_laplacian(vertices, faces, config.smooth_iterations, config.smooth_lambda,
                                    pin_boundary=config.smooth_pin_boundary)
    colors = None
    if image is not None:
        if config.detail_strength != 0:
            detailed = fill_detail(vertices, faces, pixels, image, config.detail_strength, config.detail_sigma)
            vertices = detailed if detail_where is None else np.where(np.asarray(detail_where, bool)[:, None],
                                                                      detailed, vertices)
        colors = sample_colors(image, pixels)
    mesh = FaceMesh(vertices=np.asarray(vertices, dtype=np.float32), faces=np.asarray(faces, dtype=np.int64),
                    pixels=np.asarray(pixels, dtype=np.float32), colors=colors, uvs=pixel_uvs(pixels, shape),
                    corr=None if corr is None else np.asarray(corr, dtype=np.float32), source_shape=shape)
    return mesh.validate()

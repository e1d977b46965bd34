"""The two frames of a predicted mesh: the crop's (where the maps live) and the photo's (where users overlay it).

* **crop frame** (``FaceResult.mesh``, :mod:`meshing`'s convention on the ``S`` x ``S`` crop):
  ``X`` = crop column, ``Y = S - 1 - crop row`` (up), ``Z`` = depth in crop px (towards the viewer).
* **photo frame** (``mesh.ply`` / ``mesh.obj`` of ``facevision predict`` by default, and ``fit_mesh.obj``):
  ``X`` = photo column, ``Y = H - 1 - photo row`` (up, ``H`` = the original photo's height),
  ``Z`` = depth in photo px (towards the viewer; relative: the zero plane is the crop's). A turned crop
  (``FaceResult.crop_angle``) is turned back, so the mesh lies on the face in the photo: its ``(X, H - 1 - Y)``
  are the photo pixels it covers, as 3DDFA_V2 and most face tools write vertices.

Both are right-handed with X, Y and Z in the same unit (true proportions); the map from one to the other is
a similarity (turn about Z, uniform scale, shift), so triangle orientation and texture coordinates are kept.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from data_prep.crop import crop_to_original

__all__ = ["MESH_FRAMES", "crop_to_photo_vertices", "mesh_to_photo", "photo_frame_mesh"]

MESH_FRAMES = ("photo", "crop")


def crop_to_photo_vertices(vertices: np.ndarray, crop_box: Sequence[int], size: int, crop_angle: float,
                           photo_height: int, photo_scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(N, 3) crop-frame vertices -> (N, 3) float32 photo-frame vertices (see the module docstring).

    crop_box, crop_angle: the face's crop (:mod:`data_prep.crop`) in the pixels of the photo it was cut from;
    photo_scale: (x, y) factor by which that photo was reduced from the original (``predict --max-pixels``);
    photo_height: the original photo's height in px.
    """
    v = np.asarray(vertices, dtype=np.float64)
    crop_px = np.column_stack([v[:, 0], size - 1 - v[:, 1], v[:, 2]])  # column, row, depth (crop px)
    photo = crop_to_original(crop_px, crop_box, size, crop_angle)  # depth scaled to photo px
    sx, sy = photo_scale
    x, y, z = photo[:, 0] / sx, photo[:, 1] / sy, photo[:, 2] / sx
    return np.column_stack([x, photo_height - 1 - y, z]).astype(np.float32)


def mesh_to_photo(mesh: Any, crop_box: Sequence[int], size: int, crop_angle: float, photo_height: int,
                  photo_scale: tuple[float, float] = (1.0, 1.0)) -> Any:
    """A crop-frame ``meshing.FaceMesh`` -> a copy in the photo frame (faces, uvs, colours, pixels unchanged)."""
    return replace(mesh, vertices=crop_to_photo_vertices(mesh.vertices, crop_box, size, crop_angle, photo_height,
                                                         photo_scale))


def photo_frame_mesh(result: Any, photo_height: int, photo_scale: tuple[float, float] = (1.0, 1.0)) -> Any:
    """``FaceResult.mesh`` in the photo frame: ``photo_frame_mesh(face, photo.shape[0])``; None without a mesh."""
    if result.mesh is None:
        return None
    return mesh_to_photo(result.mesh, result.crop_box, int(result.crop.shape[0]), result.crop_angle, photo_height,
                         photo_scale)

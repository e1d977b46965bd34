"""The fitted face model as a mesh of fixed topology (468 vertices in MediaPipe's order, the reference's
triangles), in photo pixels, so meshes of different photos match vertex by vertex.

Frame (meshing's convention applied to the photo): ``X`` = photo column, ``Y = H - 1 - row`` (up),
``Z`` = depth towards the viewer in photo px (relative: the fit's translation), right-handed. Texture
coordinates point into the face's crop (``crop.png``), OBJ convention (origin bottom-left).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from facevision.face.crop import crop_to_original
from facevision.fit.model_fit import ModelFit

__all__ = ["fit_mesh"]


def fit_mesh(fit: ModelFit, triangles: np.ndarray, crop_box: Sequence[int], size: int, crop_angle: float,
             photo_height: int, photo_scale: tuple[float, float] = (1.0, 1.0)):
    """:class:`ModelFit` (crop mesh frame) -> ``meshing.FaceMesh`` in the original photo's pixels.

    photo_scale: (x, y) factor by which the photo the crop came from was reduced from the original
    (``predict --max-pixels``); ``photo_height`` is the original photo's height.
    """
    from meshing.types import FaceMesh

    v = fit.vertices
    crop_px = np.column_stack([v[:, 0], size - 1 - v[:, 1], v[:, 2]])
    photo = crop_to_original(crop_px, crop_box, size, crop_angle)
    sx, sy = photo_scale
    x, y, z = photo[:, 0] / sx, photo[:, 1] / sy, photo[:, 2] / sx
    vertices = np.column_stack([x, photo_height - 1 - y, z]).astype(np.float32)
    uvs = np.column_stack([(crop_px[:, 0] + 0.5) / size, 1.0 - (crop_px[:, 1] + 0.5) / size]).astype(np.float32)
    pixels = np.column_stack([crop_px[:, 1], crop_px[:, 0]]).astype(np.float32)
    return FaceMesh(vertices=vertices, faces=np.asarray(triangles, np.int64), pixels=pixels, uvs=uvs,
                    source_shape=(size, size))

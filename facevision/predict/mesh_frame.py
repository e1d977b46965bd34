"""The frames of a predicted mesh: the crop's (where the maps live), the photo's (to overlay the photo) and the
head's (millimetres, pose removed: for 3D tools).

* **crop frame** (``FaceResult.mesh``, :mod:`meshing`'s convention on the ``S`` x ``S`` crop):
  ``X`` = crop column, ``Y = S - 1 - crop row`` (up), ``Z`` = depth in crop px (towards the viewer).
* **photo frame** (``mesh.ply`` / ``mesh.obj`` of ``facevision predict`` by default, and ``fit_mesh.obj``):
  ``X`` = photo column, ``Y = H - 1 - photo row`` (up, ``H`` = the original photo's height),
  ``Z`` = depth in photo px (towards the viewer; relative: the zero plane is the crop's). A turned crop
  (``FaceResult.crop_angle``) is turned back, so the mesh lies on the face in the photo: its ``(X, H - 1 - Y)``
  are the photo pixels it covers, as 3DDFA_V2 and most face tools write vertices.
* **head frame** (``--mesh-frame head``; for Blender, MeshLab and comparing faces): the head's own frame, in
  **millimetres**. Origin: the face model's origin as fitted (``pose.translation``, the centroid of the model's
  vertices; the nose tip of the mean face lies at (0, 0, 35) mm). Axes: the head's, its pose removed
  (``pose.rotation``, the camera-frontal head rotation of result.json): X to the image right of a frontal face
  (the subject's left), Y up, Z out of the face towards a viewer in front of it. So every face looks along +Z,
  upright, whatever its pose in the photo. ``p_head = R^T (p_photo - origin) * mm_per_px``, with R, origin and
  mm_per_px in result.json's ``mesh.head_frame`` (photo frame; :class:`HeadFrame`).

**Millimetres.** The fit's scale is photo px per face-model unit, and the face model's unit is the RMS radius of
its mean face (:mod:`facevision.face.face_model`), which has no physical size of its own (it is built from MediaPipe
shapes in image units). It is tied to millimetres by the mean face's biocular width (outer eye corners, iBUG 36
and 45) = :data:`BIOCULAR_WIDTH_MM`, 89 mm, the adult average of anthropometric tables (Farkas: ex-ex about 91 mm
in men, 87 mm in women). The package model's mean has 1.698 units there, so one unit is 52.4 mm; its other
proportions then come out as real faces' do: nasion to chin (iBUG 27-8) 120.5 mm, inner eye corners 34.5 mm,
mouth width 54 mm, jaw width at the ears (iBUG 0-16) 138 mm. A monocular fit cannot tell a small face from a far
one: every face gets the model's average size (its identity code still changes the shape), so head-frame sizes
are right to about +-5 % for a typical adult.

All three are right-handed with X, Y and Z in the same unit (true proportions); the maps between them are
similarities (turn, uniform scale, shift), so triangle orientation and texture coordinates are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from facevision.face.crop import crop_scale, crop_to_original

__all__ = ["MESH_FRAMES", "crop_to_photo_vertices", "mesh_to_photo", "photo_frame_mesh", "BIOCULAR_WIDTH_MM",
           "HeadFrame", "head_pose_px", "head_frame", "head_frame_mesh", "mm_per_model_unit", "crop_to_image_vertices"]

MESH_FRAMES = ("photo", "crop", "head")
#: Biocular width (outer eye corners, ex-ex) of an average adult face in mm: ties the face model's unit to mm.
BIOCULAR_WIDTH_MM = 89.0


def crop_to_photo_vertices(vertices: np.ndarray, crop_box: Sequence[int], size: int, crop_angle: float,
                           photo_height: int, photo_scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(N, 3) crop-frame vertices -> (N, 3) float32 photo-frame vertices (see the module docstring).

    crop_box, crop_angle: the face's crop (:mod:`facevision.face.crop`) in the pixels of the photo it was cut from;
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


def crop_to_image_vertices(vertices: np.ndarray, crop_box: Sequence[int], size: int, crop_angle: float) -> np.ndarray:
    """(N, 3) crop-frame vertices (Y up) -> (N, 3) float64 image coordinates of the photo they were cut from:
    x = column, y = row (down), z = depth in that photo's px (towards the viewer); for drawing and sampling."""
    v = np.asarray(vertices, dtype=np.float64)
    return crop_to_original(np.column_stack([v[:, 0], size - 1 - v[:, 1], v[:, 2]]), crop_box, size, crop_angle)


def mm_per_model_unit(landmarks68: np.ndarray) -> float:
    """Millimetres per face-model unit: :data:`BIOCULAR_WIDTH_MM` over the distance of the outer eye corners
    (iBUG 36 and 45) of (68, 3) landmarks in the model's own frame (e.g. its mean shape)."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return BIOCULAR_WIDTH_MM / float(np.linalg.norm(lm[36] - lm[45]))


@lru_cache(maxsize=1)
def _package_mm_per_unit() -> tuple[int, float]:
    """(vertex count, mm per unit) of the package's face model (its mean face)."""
    from facevision.face.face_model import load_face_model

    model = load_face_model()
    return model.n_vertices, mm_per_model_unit(model.mean[model.ibug68])


def _mm_per_unit(result: Any) -> float:
    """mm per face-model unit for ``result``: the package model's, unless the fit used a model of another
    topology (another correspondence space); then the fit's own shape, its pose removed, gives it."""
    n, mm = _package_mm_per_unit()
    fit = getattr(result, "model_fit", None)
    if fit is None or len(fit.vertices) == n:
        return mm
    own = (np.asarray(fit.landmarks68_3d, np.float64) - fit.translation) @ fit.rotation / fit.scale
    return mm_per_model_unit(own)


def head_pose_px(result: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """The head in the pixels of the photo ``result`` was predicted on: origin (3,) (x = column, y = row,
    z = depth in photo px; the face model's origin as fitted), axes (3, 3) whose columns are the head's X, Y, Z
    (unit vectors in x right, y DOWN, z towards the viewer: X to a frontal face's image right, Y up the face,
    Z out of it), and photo px per face-model unit. From ``result.pose`` (rotation in the photo's axes,
    translation and scale in crop px). ValueError without a pose."""
    pose = result.pose
    if pose is None:
        raise ValueError("no head pose for this face: no head frame")
    size = int(result.crop.shape[0])
    origin = crop_to_image_vertices(np.asarray(pose.translation, np.float64)[None], result.crop_box, size,
                                    result.crop_angle)[0]
    axes = np.diag([1.0, -1.0, 1.0]) @ np.asarray(pose.rotation, np.float64)
    return origin, axes, float(pose.scale) / crop_scale(result.crop_box, size)


@dataclass(frozen=True)
class HeadFrame:
    """The head frame of one face (module docstring) placed in the photo frame (original photo px, Y up):
    origin (3,), rotation (3, 3) whose columns are the head's X, Y, Z axes, mm_per_px, mm_per_unit (mm per
    face-model unit). ``p_head = (p_photo - origin) @ rotation * mm_per_px``."""

    origin: np.ndarray
    rotation: np.ndarray
    mm_per_px: float
    mm_per_unit: float

    def to_head(self, photo_vertices: np.ndarray) -> np.ndarray:
        """(N, 3) photo-frame vertices -> (N, 3) float32 head-frame vertices in mm."""
        v = np.asarray(photo_vertices, dtype=np.float64)
        return ((v - self.origin) @ self.rotation * self.mm_per_px).astype(np.float32)

    def to_photo(self, head_vertices: np.ndarray) -> np.ndarray:
        """(N, 3) head-frame vertices (mm) -> (N, 3) float64 photo-frame vertices (px)."""
        return np.asarray(head_vertices, dtype=np.float64) / self.mm_per_px @ self.rotation.T + self.origin

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (result.json's ``mesh.head_frame``)."""
        return {"origin_px": [round(float(x), 4) for x in self.origin],
                "rotation": [[round(float(x), 6) for x in row] for row in self.rotation],
                "mm_per_px": round(self.mm_per_px, 6), "mm_per_model_unit": round(self.mm_per_unit, 4),
                "biocular_width_mm": BIOCULAR_WIDTH_MM}


def head_frame(result: Any, photo_height: int, photo_scale: tuple[float, float] = (1.0, 1.0)) -> HeadFrame:
    """The :class:`HeadFrame` of ``result`` (a ``FaceResult`` with a pose) in the original photo's frame
    (``photo_height`` px high; ``photo_scale``: the factor the photo was reduced by before detection)."""
    origin_px, axes_px, px_per_unit = head_pose_px(result)
    sx, sy = photo_scale
    origin = np.array([origin_px[0] / sx, photo_height - 1 - origin_px[1] / sy, origin_px[2] / sx])
    rotation = np.diag([1.0, -1.0, 1.0]) @ axes_px  # y down -> Y up
    mm = _mm_per_unit(result)
    return HeadFrame(origin=origin, rotation=rotation, mm_per_px=mm * sx / px_per_unit, mm_per_unit=mm)


def head_frame_mesh(result: Any, photo_height: int, photo_scale: tuple[float, float] = (1.0, 1.0)) -> Any:
    """``FaceResult.mesh`` in the head frame (mm); None without a mesh."""
    mesh = photo_frame_mesh(result, photo_height, photo_scale)
    if mesh is None:
        return None
    return replace(mesh, vertices=head_frame(result, photo_height, photo_scale).to_head(mesh.vertices))

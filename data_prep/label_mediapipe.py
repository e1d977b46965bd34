"""Built-in offline labeler: MediaPipe Face Mesh -> depth, correspondence and mask in the crop.

For one photo: detect faces (exactly one is required), cut the square crop, run Face Mesh on the photo
and keep the mesh that lies in the detected box, map its 468 landmarks to crop pixels, and render with
:func:`facevision.face.rasterize.rasterize` over the reference triangulation:

* depth: landmark z (crop px, larger = closer), shifted so the farthest face pixel is ``DEPTH_BASE_PX``;
* correspondence: the reference face's (u, v, w) per vertex, interpolated barycentrically;
* mask: covered pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facevision.common.checks import check_fraction
from facevision.face.crop import CropConfig, crop_image, face_crop, original_to_crop
from facevision.face.codecs import DEPTH_BASE_PX
from data_prep.dataset_format import Sample
from facevision.face.detect import DetectConfig, FaceBox, detect_faces
from data_prep.drops import LABELER_FAILURE, MULTIPLE_FACES, NO_FACE, DropError
from data_prep.landmarks import FaceMeshConfig, face_mesh_landmarks
from facevision.face.rasterize import rasterize
from facevision.face.reference import ReferenceFace, load_reference

__all__ = ["LabelConfig", "LabelResult", "detect_single_face", "photo_landmarks", "render_labels", "label_photo"]

LABEL_SOURCE = "mediapipe"
CORRESPONDENCE_SPACE = "facevision-reference-v1"


@dataclass(frozen=True)
class LabelConfig:
    """Settings of the MediaPipe labeler.

    max_outside_frac: drop (labeler failure) when more than this fraction of landmarks falls outside the crop.
    min_mask_frac: drop when the face mask covers less than this fraction of the crop.
    Checked when built (ValueError naming the field).
    """

    detect: DetectConfig = field(default_factory=DetectConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    mesh: FaceMeshConfig = field(default_factory=FaceMeshConfig)
    max_outside_frac: float = 0.02
    min_mask_frac: float = 0.1

    def __post_init__(self) -> None:
        for name in ("max_outside_frac", "min_mask_frac"):
            check_fraction(self, name)


@dataclass
class LabelResult:
    """A labelled crop plus what produced it (landmarks in photo and crop pixels, crop box and angle
    (see :mod:`facevision.face.crop`), detection)."""

    sample: Sample
    crop_box: tuple[int, int, int, int]
    face: FaceBox
    landmarks_photo: np.ndarray
    landmarks_crop: np.ndarray
    crop_angle: float = 0.0


def detect_single_face(image: np.ndarray, config: DetectConfig = DetectConfig()) -> FaceBox:
    """The one face in a photo; DropError(no_face / multiple_faces) otherwise."""
    faces = detect_faces(image, config)
    if not faces:
        raise DropError(NO_FACE, "no face detected")
    if len(faces) > 1:
        raise DropError(MULTIPLE_FACES, f"{len(faces)} faces detected")
    return faces[0]


def photo_landmarks(image: np.ndarray, face: FaceBox, config: FaceMeshConfig = FaceMeshConfig()) -> np.ndarray:
    """468 landmarks (photo px, z larger = closer) of the Face Mesh lying in ``face``; DropError(labeler_failure) if none."""
    meshes = face_mesh_landmarks(image, config)
    x0, y0, x1, y1 = face.box
    best, best_d = None, np.inf
    cx, cy = face.center
    for lm in meshes:
        mx, my = lm[:, 0].mean(), lm[:, 1].mean()
        if not (x0 <= mx <= x1 and y0 <= my <= y1):
            continue
        d = np.hypot(mx - cx, my - cy)
        if d < best_d:
            best, best_d = lm, d
    if best is None:
        raise DropError(LABELER_FAILURE, "Face Mesh found no face inside the detected box"
                        if meshes else "Face Mesh found no face")
    return best


def render_labels(landmarks_crop: np.ndarray, size: int, reference: ReferenceFace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(468, 3) crop-pixel landmarks (z larger = closer) -> depth (relative, base DEPTH_BASE_PX), corr, mask."""
    depth, corr, mask = rasterize(landmarks_crop, reference.triangles, size, size, reference.vertices)
    if mask.any():
        zmin = depth[mask].min()
        depth = np.where(mask, depth - zmin + DEPTH_BASE_PX, 0.0).astype(np.float32)
    corr = np.clip(corr, 0.0, 1.0).astype(np.float32)
    return depth, corr, mask


def label_photo(image: np.ndarray, config: LabelConfig = LabelConfig(),
                reference: ReferenceFace | None = None) -> LabelResult:
    """Detect, crop and label one RGB photo. Raises DropError with the reason when it cannot be used."""
    reference = reference or load_reference()
    face = detect_single_face(image, config.detect)
    lm = photo_landmarks(image, face, config.mesh)
    box, angle = face_crop(face.box, face.keypoints, config.crop)
    size = config.crop.size
    lmc = original_to_crop(lm, box, size, angle)
    outside = ((lmc[:, :2] < -0.5) | (lmc[:, :2] > size - 0.5)).any(1).mean()
    if outside > config.max_outside_frac:
        raise DropError(LABELER_FAILURE, f"{outside:.0%} of the face mesh falls outside the crop")
    depth, corr, mask = render_labels(lmc, size, reference)
    if mask.mean() < config.min_mask_frac:
        raise DropError(LABELER_FAILURE, f"face mask covers only {mask.mean():.1%} of the crop")
    crop = crop_image(image, box, size, angle)
    sample = Sample(image=crop, depth=depth, corr=corr, mask=mask,
                    meta={"crop_box": list(box), "crop_angle": angle, "detection_score": face.score})
    return LabelResult(sample=sample, crop_box=box, face=face, landmarks_photo=lm, landmarks_crop=lmc, crop_angle=angle)

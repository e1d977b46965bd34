"""MediaPipe Face Mesh (legacy solution, static-image mode) -> 468 3D landmarks in photo pixels.

The model files ship inside the ``mediapipe`` wheel (face_landmark.tflite and the short-range
detector), so this runs offline. The mesh object is created once per process and cached.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from facevision.common.checks import check_int, check_number

__all__ = ["FaceMeshConfig", "NUM_LANDMARKS", "face_mesh_landmarks"]

NUM_LANDMARKS = 468


@dataclass(frozen=True)
class FaceMeshConfig:
    """Face Mesh settings. max_faces > 1 lets the caller pick the face that matches a detection.

    mirror_average: also run Face Mesh on the mirrored photo and average each face with its mirrored
        twin (vertices un-mirrored with the reference's left/right map): halves the left/right bias.
    z_stretch: Face Mesh's z is multiplied by this (about its origin; x and y are untouched); 1 = as Face
        Mesh gives it (why deeper: README, Benchmarks; ``tools/depth_scale_sfm.py``).
    """

    min_score: float = 0.5
    max_faces: int = 2
    mirror_average: bool = False
    z_stretch: float = 1.0

    def __post_init__(self) -> None:
        check_number(self, "min_score", 0, 1)
        check_int(self, "max_faces", low=1)
        check_number(self, "z_stretch", 0, 10, low_open=True)


@lru_cache(maxsize=4)
def _face_mesh(min_score: float, max_faces: int):
    from facevision.face.detect import import_mediapipe

    mp = import_mediapipe()

    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=max_faces, refine_landmarks=False,
        min_detection_confidence=min_score,
    )


def face_mesh_landmarks(image_rgb: np.ndarray, config: FaceMeshConfig = FaceMeshConfig()) -> list[np.ndarray]:
    """Run Face Mesh on an (H, W, 3) uint8 RGB photo -> one (468, 3) float64 array per face: x = column,
    y = row in photo px (pixel centres at integers), z in photo px relative to the face centre, larger = closer."""
    image_rgb = np.ascontiguousarray(image_rgb)
    faces = _run(image_rgb, config)
    if config.mirror_average and faces:
        mirrored = _run(np.ascontiguousarray(image_rgb[:, ::-1]), config)
        faces = [_average_with_mirror(f, mirrored, image_rgb.shape[1]) for f in faces]
    if config.z_stretch != 1.0:
        faces = [f * [1.0, 1.0, float(config.z_stretch)] for f in faces]
    return faces


def _average_with_mirror(face: np.ndarray, mirrored: list[np.ndarray], width: int) -> np.ndarray:
    """Average ``face`` with the mirrored run's face nearest to it (un-mirrored); unchanged without one."""
    from facevision.face.reference import load_reference

    if not mirrored:
        return face
    back = [m.copy() for m in mirrored]
    for m in back:
        m[:, 0] = width - 1 - m[:, 0]
    twin = min(back, key=lambda m: np.linalg.norm(m[:, :2].mean(0) - face[:, :2].mean(0)))
    twin = twin[load_reference().mirror]
    if np.linalg.norm(twin[:, :2].mean(0) - face[:, :2].mean(0)) > 0.2 * np.ptp(face[:, 0]):
        return face
    return 0.5 * (face + twin)


def _run(image_rgb: np.ndarray, config: FaceMeshConfig) -> list[np.ndarray]:
    h, w = image_rgb.shape[:2]
    result = _face_mesh(float(config.min_score), int(config.max_faces)).process(image_rgb)
    faces = []
    for lms in result.multi_face_landmarks or []:
        arr = np.array([(p.x, p.y, p.z) for p in lms.landmark[:NUM_LANDMARKS]], dtype=np.float64)
        out = np.empty_like(arr)
        out[:, 0] = arr[:, 0] * w - 0.5
        out[:, 1] = arr[:, 1] * h - 0.5
        out[:, 2] = -arr[:, 2] * w
        faces.append(out)
    return faces

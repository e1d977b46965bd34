"""The project's reference face ("facevision-reference-v1"): a canonical 468-vertex MediaPipe-topology face.

Stored as the small committed asset ``facevision/face/assets/reference_face.npz`` and built by
``python tools/build_reference.py`` (mean of similarity-aligned Face Mesh landmark sets over
train-split LFW photos, mirror-symmetrized). Correspondence maps store, per face pixel, the
reference vertex coordinates ``(u, v, w)`` in [0, 1]^3: u right, v UP, w towards the camera;
the face is mirror symmetric about u = 0.5 (``vertices[mirror[i]] == (1 - u, v, w)`` of vertex i).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["ReferenceFace", "load_reference", "dataset_reference", "REFERENCE_PATH", "CORRESPONDENCE_SPACE",
           "DATASET_REFERENCE_FILE", "FACE_MESH_FRONTAL_PITCH_DEG"]

REFERENCE_PATH = Path(__file__).with_name("assets") / "reference_face.npz"
CORRESPONDENCE_SPACE = "facevision-reference-v1"
#: Pitch (degrees) at which the Face Mesh reference's raw frame appears in a camera-frontal photo (the pitch of
#: the Procrustes mean it was built from; docs/predict.md). A 3DMM's frame is frontal (0); a reference file
#: records its own value (``frontal_pitch_deg``).
FACE_MESH_FRONTAL_PITCH_DEG = -16.0
#: A dataset whose maps are in another space keeps that space's reference face in this file at its root.
DATASET_REFERENCE_FILE = "reference.npz"


@dataclass(frozen=True)
class ReferenceFace:
    """Canonical face (other spaces' references, e.g. :mod:`data_prep.tddfa_reference`, have other vertex counts).

    vertices: (468, 3) float64 (u, v, w) in [0, 1]^3; triangles: (F, 3) int64, counter-clockwise in (u, v), no
    folds; normalization: ``uvw = (raw - offset) * scale`` per axis, ``raw`` = ``raw_vertices`` (x right, y up, z
    towards the camera, centred, unit RMS radius); ibug68: (68,) vertex indices in iBUG order; mirror: left/right
    vertex permutation; name: the correspondence space; frontal_pitch_deg: pitch of the raw frame in a
    camera-frontal view (:func:`facevision.maps.pose.reference_tilt`)."""

    vertices: np.ndarray
    triangles: np.ndarray
    normalization: dict
    ibug68: np.ndarray
    mirror: np.ndarray
    raw_vertices: np.ndarray
    name: str = CORRESPONDENCE_SPACE
    frontal_pitch_deg: float = FACE_MESH_FRONTAL_PITCH_DEG

    def to_uvw(self, raw: np.ndarray) -> np.ndarray:
        """Raw aligned coordinates -> normalized (u, v, w)."""
        return (np.asarray(raw) - self.normalization["offset"]) * self.normalization["scale"]

    def from_uvw(self, uvw: np.ndarray) -> np.ndarray:
        """Normalized (u, v, w) -> raw aligned coordinates."""
        return np.asarray(uvw) / self.normalization["scale"] + self.normalization["offset"]


def load_reference(path: str | Path | None = None) -> ReferenceFace:
    """Load the reference face asset (cached for the default path)."""
    return _load(str(path or REFERENCE_PATH))


@lru_cache(maxsize=4)
def _load(path: str) -> ReferenceFace:
    from facevision.face.images import read_npz_asset

    p = Path(path)
    data = read_npz_asset(p, ("vertices", "triangles", "ibug68", "mirror", "raw_vertices", "norm_offset", "norm_scale"),
                          "reference face", "build it with `python tools/build_reference.py`")
    arrays = {k: data[k] for k in ("vertices", "triangles", "ibug68", "mirror", "raw_vertices")}
    for a in arrays.values():
        a.setflags(write=False)
    return ReferenceFace(
        vertices=arrays["vertices"].astype(np.float64),
        triangles=arrays["triangles"].astype(np.int64),
        normalization={"offset": data["norm_offset"].astype(np.float64), "scale": data["norm_scale"].astype(np.float64),
                       "description": str(data.get("norm_description", ""))},
        ibug68=arrays["ibug68"].astype(np.int64),
        mirror=arrays["mirror"].astype(np.int64),
        raw_vertices=arrays["raw_vertices"].astype(np.float64),
        name=str(data["space"]) if "space" in data else CORRESPONDENCE_SPACE,
        frontal_pitch_deg=float(data["frontal_pitch_deg"]) if "frontal_pitch_deg" in data else FACE_MESH_FRONTAL_PITCH_DEG,
    )


def dataset_reference(root: str | Path, manifest: dict, required: bool = True) -> ReferenceFace | None:
    """The reference face of a dataset's correspondence space: ``root/reference.npz`` where the dataset has one,
    else the package's (space ``facevision-reference-v1``). ValueError naming the folder when the manifest's space
    and the reference's differ, or when no reference of the manifest's space exists (None then, unless
    ``required``: generated toy data has no face to read landmarks from)."""
    space = manifest.get("correspondence_space", CORRESPONDENCE_SPACE)
    path = Path(root) / DATASET_REFERENCE_FILE
    ref = load_reference(path) if path.is_file() else load_reference() if space == CORRESPONDENCE_SPACE else None
    if ref is None and not required:
        return None
    if ref is None:
        raise ValueError(f"{root}: maps in correspondence space {space!r} need {DATASET_REFERENCE_FILE} beside the "
                         "manifest (written by `facevision prepare`)")
    if ref.name != space:
        raise ValueError(f"{path}: reference face of space {ref.name!r}, but the manifest says {space!r}")
    return ref

"""The project's reference face ("facevision-reference-v1"): a canonical 468-vertex MediaPipe-topology face.

Stored as the small committed asset ``data_prep/assets/reference_face.npz`` and built by
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

__all__ = ["ReferenceFace", "load_reference", "REFERENCE_PATH", "CORRESPONDENCE_SPACE"]

REFERENCE_PATH = Path(__file__).with_name("assets") / "reference_face.npz"
CORRESPONDENCE_SPACE = "facevision-reference-v1"


@dataclass(frozen=True)
class ReferenceFace:
    """Canonical face.

    vertices: (468, 3) float64 (u, v, w) in [0, 1]^3.
    triangles: (F, 3) int64 vertex indices, counter-clockwise in (u, v) (v up), no folds or overlaps.
    normalization: ``uvw = (raw - offset) * scale`` per axis, with ``raw`` the aligned mean shape
        (``raw_vertices``: x right, y up, z towards the camera, centred, unit RMS radius).
    ibug68: (68,) indices of the iBUG-68 landmarks among the 468 vertices (0-based iBUG order).
    mirror: (468,) left/right vertex permutation.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    normalization: dict
    ibug68: np.ndarray
    mirror: np.ndarray
    raw_vertices: np.ndarray
    name: str = CORRESPONDENCE_SPACE

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
    from data_prep.io import read_npz_asset

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
    )

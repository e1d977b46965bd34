"""The project's linear face model ("facevision-face-model-v1"): mean + identity + expression modes.

Built by ``facevision prepare face-model`` (:mod:`data_prep.build_face_model`) from the Face Mesh
vertices ``prepare`` keeps; shipped as ``facevision/face/assets/face_model.npz`` (model card: docs/face_model.md).

Frame: the reference face's raw frame (:class:`facevision.face.reference.ReferenceFace`): x right, y up,
z towards the camera, centred, unit RMS radius; topology: MediaPipe's 468 vertices and the reference's
triangles. A shape is ``mean + id_basis^T @ id_coeffs + exp_basis^T @ exp_coeffs`` where each basis row is
a mode scaled by its standard deviation, so coefficients have unit prior variance.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["FaceModel", "load_face_model", "FACE_MODEL_PATH", "FACE_MODEL_NAME", "check_face_model"]

FACE_MODEL_PATH = Path(__file__).with_name("assets") / "face_model.npz"
FACE_MODEL_NAME = "facevision-face-model-v1"


@dataclass(frozen=True)
class FaceModel:
    """mean (V, 3); id_basis (Ki, V * 3) and exp_basis (Ke, V * 3): modes x standard deviation (raw units);
    id_var_ratio, exp_var_ratio: explained variance ratio per mode; triangles (F, 3); ibug68 (68,); mirror (V,)."""

    mean: np.ndarray
    id_basis: np.ndarray
    exp_basis: np.ndarray
    id_var_ratio: np.ndarray
    exp_var_ratio: np.ndarray
    triangles: np.ndarray
    ibug68: np.ndarray
    mirror: np.ndarray
    name: str = FACE_MODEL_NAME

    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_id(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def n_exp(self) -> int:
        return int(self.exp_basis.shape[0])

    @property
    def basis(self) -> np.ndarray:
        """(Ki + Ke, V * 3): identity modes, then expression modes."""
        return np.concatenate([self.id_basis, self.exp_basis], 0)

    def shape(self, id_coeffs: np.ndarray | None = None, exp_coeffs: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) vertices in the raw frame for the given coefficients (missing = 0)."""
        flat = self.mean.reshape(-1).copy()
        if id_coeffs is not None:
            flat += np.asarray(id_coeffs, np.float64) @ self.id_basis
        if exp_coeffs is not None:
            flat += np.asarray(exp_coeffs, np.float64) @ self.exp_basis
        return flat.reshape(-1, 3)


def check_face_model(model: FaceModel, source: str = "face model") -> None:
    """ValueError naming ``source`` when the arrays do not fit together."""
    v = model.mean.shape[0]
    if model.mean.shape != (v, 3):
        raise ValueError(f"{source}: mean must be (V, 3), got {model.mean.shape}")
    for name in ("id_basis", "exp_basis"):
        b = getattr(model, name)
        if b.ndim != 2 or b.shape[1] != 3 * v:
            raise ValueError(f"{source}: {name} must be (K, {3 * v}), got {b.shape}")
    if model.triangles.ndim != 2 or model.triangles.shape[1] != 3 or model.triangles.max(initial=0) >= v:
        raise ValueError(f"{source}: triangles must be (F, 3) indices below {v}")
    if model.ibug68.shape != (68,) or model.mirror.shape != (v,):
        raise ValueError(f"{source}: ibug68 must be (68,) and mirror ({v},)")


def load_face_model(path: str | Path | None = None) -> FaceModel:
    """Load the face model asset (cached for each path)."""
    return _load(str(path or FACE_MODEL_PATH))


@lru_cache(maxsize=4)
def _load(path: str) -> FaceModel:
    from facevision.face.images import read_npz_asset

    p = Path(path)
    need = ("mean", "id_basis", "exp_basis", "id_var_ratio", "exp_var_ratio", "triangles", "ibug68", "mirror")
    data = read_npz_asset(p, need, "face model", "build it with `facevision prepare face-model DATASET`")
    arrays = {k: data[k].astype(np.int64 if k in ("triangles", "ibug68", "mirror") else np.float64) for k in need}
    for a in arrays.values():
        a.setflags(write=False)
    model = FaceModel(**arrays)
    check_face_model(model, str(p))
    return model

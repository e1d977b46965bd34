"""Prediction: photos -> depth, correspondence, mesh, landmarks, pose (API: :class:`Predictor`).

Modules: predictor (in-memory pipeline), outputs (files per face), mesh_frame (crop and photo frames of a mesh),
batch (the CLI's loop), report (offline HTML), render (preview sheet), synthetic (ground-truth maps of the
reference face, a drawn face photo).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Predictor": "facevision.predict.predictor",
    "PredictConfig": "facevision.predict.predictor",
    "FaceResult": "facevision.predict.predictor",
    "default_checkpoint": "facevision.predict.predictor",
    "BatchConfig": "facevision.predict.batch",
    "run_batch": "facevision.predict.batch",
    "OutputConfig": "facevision.predict.outputs",
    "photo_frame_mesh": "facevision.predict.mesh_frame",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'facevision.predict' has no attribute {name!r}")

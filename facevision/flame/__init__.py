"""FLAME registration: fit the FLAME head model to a reconstruction and edit shape, expression and pose.

model.py (safe loading), params.py (forward model, edits, ``flame.npz``), correspondence.py (reference face ->
FLAME, cached), registration.py (:func:`register`), io.py (:func:`save_fit`, :func:`register_and_save`).
Frames and units: each module's docstring; guide: docs/flame.md.
"""
from __future__ import annotations

from facevision.flame.correspondence import (FlameCorrespondence, LandmarkEmbedding, RelationConfig,
                                             load_landmark_embedding, relate_reference_to_flame, relation_for)
from facevision.flame.model import (FLAME_DOWNLOAD, FLAME_HELP, FLAME_MODEL_ENV, FlameModel, FlameModelError, FlameModelMissingError,
                                    UnsafeModelFileError, load_flame_model, resolve_model_path)
from facevision.flame.params import (FlameParams, FlameParamsError, edit_params, flame_forward, head_angles,
                                     interpolate_params, load_params, save_params)
from facevision.flame.registration import FlameFit, RegistrationConfig, RegistrationError, register
from facevision.flame.io import register_and_save, save_fit

__all__ = [
    "FLAME_DOWNLOAD", "FLAME_HELP", "FLAME_MODEL_ENV", "FlameModel", "FlameModelError", "FlameModelMissingError", "UnsafeModelFileError",
    "load_flame_model", "resolve_model_path", "FlameParams", "FlameParamsError", "flame_forward", "edit_params",
    "head_angles", "interpolate_params", "load_params", "save_params", "FlameCorrespondence", "RelationConfig",
    "relate_reference_to_flame", "relation_for", "LandmarkEmbedding", "load_landmark_embedding", "FlameFit", "RegistrationConfig", "RegistrationError", "register", "save_fit", "register_and_save",
]

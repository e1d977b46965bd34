"""FLAME registration: fit the FLAME head model to a reconstruction and edit shape, expression and pose.

Plain functions (see each module for frames and units):

* :func:`load_flame_model` / :func:`resolve_model_path` (model.py): safe, chumpy-free loading.
* :func:`flame_forward`, :func:`edit_params`, :func:`save_params`, :func:`load_params` (params.py).
* :func:`relate_reference_to_flame` (correspondence.py): reference face -> FLAME mapping, cached.
* :func:`register` (registration.py): rigid + refinement fit of one face; :func:`save_fit` writes its files;
  :func:`register_and_save` does both (what ``predict --flame`` needs).
* a small FLAME-format model for tests lives in the tests (``tests/support/flame_synthetic.py``).
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

"""Names of the environment variables facevision reads, one spelling each.

Imports nothing: the command line reads these before numpy or torch load (thread variables must be set first).
"""
from __future__ import annotations

__all__ = ["FLAME_MODEL_ENV", "FLAME_EMBEDDING_ENV", "CHECKPOINT_ENV", "CACHE_ENV"]

FLAME_MODEL_ENV = "FACEVISION_FLAME_MODEL"  # the FLAME model file (.pkl/.npz) when --flame-model is not given
FLAME_EMBEDDING_ENV = "FACEVISION_FLAME_EMBEDDING"  # FLAME's landmark embedding when --flame-embedding is not given
CHECKPOINT_ENV = "FACEVISION_CHECKPOINT"  # the generator checkpoint when --checkpoint is not given
CACHE_ENV = "FACEVISION_CACHE_DIR"  # where derived files (ONNX export, FLAME relation) are kept

"""facevision: one photo of a face -> depth map, correspondence map, 3D mesh, FLAME parameters.

``from facevision import Predictor`` (loaded lazily, so ``import facevision`` stays light).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from facevision.predict.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'facevision' has no attribute {name!r}")

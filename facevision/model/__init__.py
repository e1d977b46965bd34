"""The network: a shared-encoder dual U-Net generator and two 70x70 PatchGAN discriminators.

Submodules load lazily so that importing the configuration does not import torch models.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelConfig": "facevision.model.config",
    "DualUnetGenerator": "facevision.model.generator",
    "GeneratorOutput": "facevision.model.generator",
    "PatchDiscriminator": "facevision.model.discriminator",
    "receptive_field": "facevision.model.discriminator",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'facevision.model' has no attribute {name!r}")

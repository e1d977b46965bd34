"""Checkpoints, written atomically and loaded safely.

* Training state (``last.pt``): ``torch.save`` of a dict of state dicts, counters and plain
  config dicts only; loaded with ``torch.load(weights_only=True)``.
* Generator weights for inference (``*.safetensors``): the generator's state dict with the
  model config as JSON in the safetensors metadata.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

from data_prep.io import atomic_write
from facevision.model import DualUnetGenerator, ModelConfig


class CheckpointError(ValueError):
    """A checkpoint is missing or unusable; the message names the file."""


def save_training_state(path: str | Path, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda p: torch.save(state, p))


def load_training_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no training checkpoint to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupted or unsafe pickle
        raise CheckpointError(f"{path}: cannot load training checkpoint safely ({exc})") from exc


def save_generator(path: str | Path, generator: DualUnetGenerator, metadata: dict[str, Any] | None = None) -> Path:
    """Write the generator's weights + config to a .safetensors file atomically."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in generator.state_dict().items()}
    meta = {"model_config": json.dumps(generator.config.to_dict()), "format": "facevision-generator-v1"}
    meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
    return atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))


def read_generator_metadata(path: str | Path) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    return {k: json.loads(v) if k != "format" else v for k, v in raw.items()}


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> DualUnetGenerator:
    """Build a generator from a .safetensors checkpoint (config from its metadata), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        meta = read_generator_metadata(path)
        config = ModelConfig.from_dict(meta["model_config"])
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: not a facevision generator checkpoint ({exc})") from exc
    model = DualUnetGenerator(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the model config ({exc})") from exc
    return model.to(device).eval()


def export_generator(training_state: str | Path, out: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the generator of a training checkpoint (``last.pt``) as an inference .safetensors file."""
    state = load_training_state(training_state)
    generator = DualUnetGenerator(ModelConfig.from_dict(state["model_config"]))
    generator.load_state_dict(state["generator"])
    meta = {"epoch": int(state["epoch"]), "step": int(state["step"]),
            "batch_in_epoch": int(state.get("batch_in_epoch", 0)), **(metadata or {})}
    return save_generator(out, generator, meta)

"""Training state (``last.pt``): ``torch.save`` of a dict of state dicts, counters and plain config dicts
only, written atomically and loaded with ``torch.load(weights_only=True)``; its ``model_config`` is checked
like a generator checkpoint's (:mod:`facevision.model.checkpoint`, where inference checkpoints live).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from facevision.common.fileio import atomic_write_bytes
from facevision.model.checkpoint import (CheckpointError, CheckpointLimits, build_model, check_file, checked_model_config,
                                         one_line, save_generator)


def save_training_state(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save`` the state to memory, then write it atomically (size checked, flushed, renamed)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getbuffer())


def load_training_state(path: str | Path, limits: CheckpointLimits = CheckpointLimits()) -> dict[str, Any]:
    """Load ``last.pt`` (weights only); its ``model_config`` is checked like a generator checkpoint's."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no training checkpoint to resume from")
    check_file(path, limits)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupted or unsafe pickle
        raise CheckpointError(f"{path}: cannot load training checkpoint safely ({one_line(exc)})") from None
    if not isinstance(state, dict) or not {"generator", "model_config", "epoch", "step"} <= set(state):
        raise CheckpointError(f"{path}: not a facevision training checkpoint (keys missing)")
    checked_model_config(state["model_config"], str(path), limits)
    return state


def export_generator(training_state: str | Path, out: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the generator of a training checkpoint (``last.pt``) as an inference .safetensors file."""
    state = load_training_state(training_state)
    config = checked_model_config(state["model_config"], str(training_state))
    generator = build_model(config, str(training_state))
    try:
        generator.load_state_dict(state["generator"])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{training_state}: generator weights do not match its model config ({one_line(exc)})") from None
    meta = {"epoch": int(state["epoch"]), "step": int(state["step"]),
            "batch_in_epoch": int(state.get("batch_in_epoch", 0)), **(metadata or {})}
    return save_generator(out, generator, meta)

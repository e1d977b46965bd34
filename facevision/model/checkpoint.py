"""Generator checkpoints for inference (``*.safetensors``): the state dict, with the model config as JSON in
the metadata; written atomically, loaded safely. Training state (``last.pt``) is :mod:`facevision.train.checkpoint`'s.

A checkpoint is not trusted: its ``model_config`` is checked (known encoders, :class:`CheckpointLimits`) before
any model is built, encoder weights are never downloaded (``encoder_weights=None``), and every tensor name and
shape is compared with a model built on the ``meta`` device before anything is loaded. Any problem is one
:class:`CheckpointError` line naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save

from facevision.common.fileio import atomic_write_bytes
from facevision.model.config import ModelConfig, input_multiple
from facevision.model.generator import DualUnetGenerator


class CheckpointError(ValueError):
    """A checkpoint is missing or unusable; the message names the file."""


@dataclass(frozen=True)
class CheckpointLimits:
    """Bounds on a checkpoint's ``model_config``: anything outside is refused before a model is built."""

    max_encoder_depth: int = 5
    max_decoder_blocks: int = 8
    max_decoder_channels: int = 2048
    max_disc_channels: int = 1024
    min_image_size: int = 32
    max_image_size: int = 4096
    max_file_bytes: int = 4 << 30


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), for one-line errors."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def known_encoder(name: str) -> bool:
    """True for an encoder segmentation-models-pytorch can build without code from the checkpoint:
    a name in smp's registry, or ``tu-<timm model>`` for a model timm knows."""
    from facevision._torchvision_compat import ensure_torchvision

    ensure_torchvision()
    import timm
    from segmentation_models_pytorch.encoders import encoders

    if name in encoders:
        return True
    return name.startswith("tu-") and timm.is_model(name[3:])


def _bounded_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def checked_model_config(raw: Any, source: str, limits: CheckpointLimits = CheckpointLimits()) -> ModelConfig:
    """A checkpoint's ``model_config`` dict -> :class:`ModelConfig` with ``encoder_weights=None``; CheckpointError when
    it is not a dict, names an encoder outside the allow-list, or holds a value out of bounds."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: model_config is not a JSON object (got {type(raw).__name__})")
    d = {**ModelConfig().to_dict(), **raw}
    problems = []
    name = d["encoder_name"]
    if not isinstance(name, str) or len(name) > 200 or not known_encoder(name):
        problems.append(f"encoder_name {str(name)[:80]!r} is not a known encoder")
    depth = d["encoder_depth"]
    if not _bounded_int(depth, 1, limits.max_encoder_depth):
        problems.append(f"encoder_depth {depth!r} not in 1..{limits.max_encoder_depth}")
        depth = limits.max_encoder_depth
    dec = d["decoder_channels"]
    if not (isinstance(dec, list) and depth <= len(dec) <= limits.max_decoder_blocks
            and all(_bounded_int(c, 1, limits.max_decoder_channels) for c in dec)):
        problems.append(f"decoder_channels {str(dec)[:80]} must be {depth}..{limits.max_decoder_blocks} "
                        f"integers in 1..{limits.max_decoder_channels}")
    if not _bounded_int(d["disc_channels"], 1, limits.max_disc_channels):
        problems.append(f"disc_channels {d['disc_channels']!r} not in 1..{limits.max_disc_channels}")
    size = d["image_size"]
    if not (_bounded_int(size, limits.min_image_size, limits.max_image_size) and size % input_multiple(depth) == 0):
        problems.append(f"image_size {size!r} must be a multiple of {input_multiple(depth)} in "
                        f"{limits.min_image_size}..{limits.max_image_size}")
    if problems:
        raise CheckpointError(f"{source}: refusing the checkpoint's model_config: " + "; ".join(problems))
    return replace(ModelConfig.from_dict(d), encoder_weights=None)


def build_model(config: ModelConfig, source: str, meta: bool = False) -> DualUnetGenerator:
    """The model of ``config``; ``meta``: on the meta device (shapes only, nothing allocated)."""
    try:
        if meta:
            with torch.device("meta"):
                return DualUnetGenerator(config)
        return DualUnetGenerator(config)
    except Exception as exc:  # noqa: BLE001 - an encoder that cannot be built with these settings
        raise CheckpointError(f"{source}: cannot build the model of the checkpoint ({one_line(exc)})") from None


def check_tensor_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: str) -> None:
    """Every tensor name and shape of the file must be the model's (and none missing)."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    if missing or extra or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
        parts += [f"{len(extra)} unexpected (e.g. {extra[0]})"] if extra else []
        parts += [f"{len(wrong)} of other shape (e.g. {wrong[0]}: {tuple(found[wrong[0]])} in the file, "
                  f"{tuple(expected[wrong[0]])} in the model)"] if wrong else []
        raise CheckpointError(f"{source}: weights do not match the model config: tensors " + ", ".join(parts))


def check_file(path: Path, limits: CheckpointLimits) -> None:
    """CheckpointError unless ``path`` is a file no larger than ``limits.max_file_bytes``."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise CheckpointError(f"{path}: {size} bytes is larger than any facevision checkpoint "
                              f"(limit {limits.max_file_bytes})")


def save_generator(path: str | Path, generator: DualUnetGenerator, metadata: dict[str, Any] | None = None) -> Path:
    """Write the generator's weights + config to a .safetensors file atomically."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in generator.state_dict().items()}
    meta = {"model_config": json.dumps(generator.config.to_dict()), "format": "facevision-generator-v1"}
    meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
    return atomic_write_bytes(path, save(state, metadata=meta))


def read_generator_metadata(path: str | Path) -> dict[str, Any]:
    """The checkpoint's metadata with JSON values decoded (raises CheckpointError on a bad file)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        return {k: json.loads(v) if k != "format" else v for k, v in raw.items()}
    except Exception as exc:  # noqa: BLE001 - not safetensors, bad JSON, too deeply nested JSON
        raise CheckpointError(f"{path}: not a facevision generator checkpoint ({one_line(exc)})") from None


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable safetensors file ({one_line(exc)})") from None


def load_generator(path: str | Path, device: str | torch.device = "cpu",
                   limits: CheckpointLimits = CheckpointLimits()) -> DualUnetGenerator:
    """Build a generator from a .safetensors checkpoint (config from its metadata, checked), in eval mode."""
    path = Path(path)
    check_file(path, limits)
    meta = read_generator_metadata(path)
    if "model_config" not in meta:
        raise CheckpointError(f"{path}: not a facevision generator checkpoint (no model_config in its metadata)")
    config = checked_model_config(meta["model_config"], str(path), limits)
    expected = {k: tuple(v.shape) for k, v in build_model(config, str(path), meta=True).state_dict().items()}
    check_tensor_shapes(expected, _tensor_shapes(path), str(path))
    model = build_model(config, str(path))
    try:
        state = load_file(str(path), device="cpu")
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - corrupt data section, dtype trouble
        raise CheckpointError(f"{path}: weights cannot be loaded ({one_line(exc)})") from None
    return model.to(device).eval()

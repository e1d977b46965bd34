"""Choosing the torch device the network runs on (predict, evaluate and training alike)."""
from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a GPU is usable, else "cpu"; "cpu" and "cuda[:N]" are returned as given.

    Raises:
        ValueError: another name, or cuda asked for where torch sees no GPU.
    """
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but no CUDA GPU is available to torch (use cpu or auto)")
    return device

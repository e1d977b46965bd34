"""Choosing the torch device the network runs on (predict, evaluate and training alike)."""
from __future__ import annotations

import os
import sys

__all__ = ["resolve_device", "gpu_driver_present"]

# device files a CUDA (NVIDIA) or ROCm (AMD, also "cuda" to torch) driver makes on Linux
_GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/proc/driver/nvidia/version")


def gpu_driver_present() -> bool:
    """False where torch certainly sees no CUDA GPU: Linux without NVIDIA's or ROCm's device files, or macOS.
    Lets "auto" answer "cpu" without importing torch. True elsewhere (ask torch)."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(os.path.exists(p) for p in _GPU_DEVICE_FILES)
    return True


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a GPU is usable, else "cpu" (without importing torch where no GPU driver exists);
    "cpu" and "cuda[:N]" are returned as given. ValueError for another name, or cuda where torch sees no GPU."""
    if device == "auto":
        if "torch" not in sys.modules and not gpu_driver_present():
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but no CUDA GPU is available to torch (use cpu or auto)")
    return device

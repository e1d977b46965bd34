"""Import torchvision even where its compiled ops cannot load.

PyPI's torchvision wheels for Linux are linked against CUDA builds of libtorch; with the
CPU build of torch (``torch==2.13.0+cpu``) its ``_C`` extension fails to load and
``import torchvision`` then raises ``RuntimeError: operator torchvision::nms does not
exist`` while registering fake kernels. timm (and so segmentation-models-pytorch)
imports torchvision's pure-Python parts only. :func:`ensure_torchvision` retries the
import with those fake-kernel registrations skipped, so torchvision's Python API loads
and only its compiled ops (NMS, RoIAlign...; facevision uses none) stay unavailable.
Where torchvision imports cleanly (a CUDA install) nothing is changed.
"""
from __future__ import annotations

import sys

import torch


def _drop_partial_import() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def ensure_torchvision() -> None:
    """Make ``import torchvision`` succeed (see module docstring)."""
    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError:
        _drop_partial_import()
    original = torch.library.register_fake

    def tolerant_register_fake(op, *args, **kwargs):
        decorator = original(op, *args, **kwargs)
        if not (isinstance(op, str) and op.startswith("torchvision::")):
            return decorator

        def apply(fn):
            try:
                return decorator(fn)
            except RuntimeError:  # the op was never defined: its compiled library did not load
                return fn

        return apply

    torch.library.register_fake = tolerant_register_fake
    try:
        import torchvision  # noqa: F401
    finally:
        torch.library.register_fake = original

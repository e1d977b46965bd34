"""Inference-only speed-up: TorchScript trace + freeze (folds batch norm into the convolutions; timings in
docs/predict.md, Performance).

The frozen module returns the same ``(depth, corr, mask_logits)`` tuple for any batch size of the
traced crop size; it cannot be trained or saved as a checkpoint (use the eager model for that).
"""
from __future__ import annotations

import warnings

import torch


def freeze_for_inference(model: torch.nn.Module, size: int, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Trace ``model`` on a (1, 3, size, size) input and freeze it; returns ``model`` itself if that fails
    or it is TorchScript already (e.g. loaded from :mod:`facevision.model.inference_cache`)."""
    if isinstance(model, torch.jit.ScriptModule):
        return model
    model = model.eval()
    example = torch.zeros(1, 3, size, size, device=device)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarning: the input-size check becomes a constant
            # check_trace=False: the check would re-run the model in eager mode; tests compare outputs
            frozen = torch.jit.freeze(torch.jit.trace(model, example, strict=False, check_trace=False))
            frozen(example)  # run once so the first real call is not the slow one
    except Exception:  # noqa: BLE001 - any tracing problem: keep the eager model
        return model
    return frozen

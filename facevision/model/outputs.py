"""The network's output units, stated once, and the one decoder of its outputs into maps.

The generator returns ``(depth, corr, mask_logits)``, each (B, C, S, S) for (B, 3, S, S) RGB crops in [0, 1]:
``depth`` is crop px / S (:func:`depth_to_network`, :func:`depth_from_network`); ``corr`` the correspondence
(u, v, w), channels first; a pixel is face where sigmoid(``mask_logits``) is above the mask threshold
(:func:`mask_logit_threshold`). The maps' conventions: :mod:`facevision.common.conventions`. Used by predict,
evaluate, training's validation and the dataset reader.

Mirror averaging (``PredictConfig.mirror_average``): the outputs for the mirrored crop, mirrored back
(:func:`unmirror_outputs`: columns reversed, u -> 1 - u), averaged with the crop's own (:func:`mirror_averaged`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

__all__ = ["depth_to_network", "depth_from_network", "mask_logit_threshold", "decode_outputs", "unmirror_outputs",
           "mirror_averaged"]


def depth_to_network(depth_px: Any, size: int) -> Any:
    """Depth in crop px (numpy or torch) -> the network's depth unit (crop px / S)."""
    return depth_px / size


def depth_from_network(depth: Any, size: int) -> Any:
    """The network's depth (crop px / S; numpy or torch) -> depth in crop px."""
    return depth * size


def mask_logit_threshold(mask_threshold: float) -> float:
    """The logit of a face-probability threshold in (0, 1): ``logit > this`` <=> ``sigmoid(logit) > p``."""
    p = float(mask_threshold)
    if not 0.0 < p < 1.0:
        raise ValueError(f"mask threshold must be in (0, 1), got {mask_threshold!r}")
    return math.log(p / (1.0 - p))


def decode_outputs(out: Sequence[Any], size: int, mask_threshold: float = 0.5, masked: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's ``(depth, corr, mask_logits)`` for a batch (torch tensors, or numpy arrays from
    :class:`facevision.model.onnx_network.OnnxNetwork`) -> numpy maps.

    Returns depth_px (B, S, S) float32 in crop px, corr (B, S, S, 3) float32, mask (B, S, S) bool.
    masked: depth and corr are 0 outside the mask (what predict returns); False keeps the raw values
    everywhere (what the metrics score over the *label* mask).
    """
    thr = mask_logit_threshold(mask_threshold)
    m = out[2] > thr
    depth, corr = depth_from_network(out[0], size), out[1]
    if masked:
        depth, corr = depth * m, corr * m
    if isinstance(depth, np.ndarray):
        return (depth[:, 0].astype(np.float32), np.ascontiguousarray(corr.transpose(0, 2, 3, 1), dtype=np.float32),
                m[:, 0])
    return (depth[:, 0].float().cpu().numpy(), corr.permute(0, 2, 3, 1).float().cpu().numpy(),
            m[:, 0].cpu().numpy())


def unmirror_outputs(out: Sequence[Any]) -> tuple[Any, Any, Any]:
    """The network's ``(depth, corr, mask_logits)`` (torch tensors or numpy arrays) for mirrored crops -> the
    same maps in the crops' own frame: columns reversed, and u -> 1 - u (the mirror image of reference point
    (u, v, w) is (1 - u, v, w)); depth and mask logits only change place."""
    if isinstance(out[0], np.ndarray):
        depth, corr, logits = (a[..., ::-1] for a in out)
        return depth, np.concatenate([1.0 - corr[:, :1], corr[:, 1:]], 1), logits
    import torch

    depth, corr, logits = (t.flip(-1) for t in out)
    return depth, torch.cat([1.0 - corr[:, :1], corr[:, 1:]], 1), logits


def mirror_averaged(model: Any, x: Any) -> tuple[Any, Any, Any]:
    """``model``'s raw outputs for (B, 3, S, S) crops ``x`` (a torch tensor, or a numpy array for a numpy
    network), averaged with its outputs for the mirrored crops mirrored back (one network call on 2B crops).
    Errors of the network that are not mirror symmetric (one side of the face drawn differently from the
    other) partly cancel; costs a second network pass."""
    b = x.shape[0]
    if isinstance(x, np.ndarray):
        out = model(np.concatenate([x, x[..., ::-1]]))
    else:
        import torch

        out = model(torch.cat([x, x.flip(-1)]))
    own = [t[:b] for t in out]
    back = unmirror_outputs([t[b:] for t in out])
    return tuple(0.5 * (a + m) for a, m in zip(own, back))

"""Evaluation metrics on batches of maps (all masked by the label's face mask)."""
from __future__ import annotations

import torch


def masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Sum of |pred - target| over masked pixels (channel-mean) and the masked pixel count."""
    err = (pred - target).abs().mean(dim=1, keepdim=True)
    return float((err * mask).sum()), float(mask.sum())


def mask_iou_counts(pred_mask: torch.Tensor, target_mask: torch.Tensor) -> tuple[float, float]:
    """Intersection and union pixel counts of two {0,1} masks."""
    p, t = pred_mask > 0.5, target_mask > 0.5
    return float((p & t).sum()), float((p | t).sum())


class MapMetrics:
    """Accumulates masked depth MAE (crop pixels), correspondence MAE and mask IoU over batches."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.depth_err = self.corr_err = self.pixels = self.inter = self.union = 0.0

    def update(self, depth: torch.Tensor, corr: torch.Tensor, mask_prob: torch.Tensor, batch: dict) -> None:
        m = batch["mask"]
        e, n = masked_mae(depth * self.size, batch["depth"] * self.size, m)
        self.depth_err += e
        self.pixels += n
        self.corr_err += masked_mae(corr, batch["corr"], m)[0]
        i, u = mask_iou_counts(mask_prob, m)
        self.inter += i
        self.union += u

    def result(self) -> dict[str, float]:
        n = max(self.pixels, 1.0)
        return {
            "depth_mae_px": self.depth_err / n,
            "corr_mae": self.corr_err / n,
            "mask_iou": self.inter / max(self.union, 1.0),
        }

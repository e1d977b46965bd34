"""Map metrics shared by training validation and ``facevision evaluate`` (masked by the label's face mask)."""
from __future__ import annotations

import numpy as np


class MapMetrics:
    """Accumulates masked depth MAE (crop px), correspondence MAE and mask IoU over samples.

    Arrays may carry any leading batch dimensions: depth (..., S, S) in crop px, corr (..., S, S, 3),
    masks (..., S, S) bool. Errors are summed over the *label* mask's pixels; IoU is pooled.
    """

    def __init__(self) -> None:
        self.depth_err = self.corr_err = self.pixels = self.inter = self.union = 0.0

    def add(self, depth: np.ndarray, corr: np.ndarray, mask: np.ndarray,
            label_depth: np.ndarray, label_corr: np.ndarray, label_mask: np.ndarray) -> None:
        m = np.asarray(label_mask, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        self.depth_err += float(np.abs(depth - label_depth)[m].sum())
        self.corr_err += float(np.abs(corr - label_corr).mean(-1)[m].sum())
        self.pixels += float(m.sum())
        self.inter += float((mask & m).sum())
        self.union += float((mask | m).sum())

    def result(self) -> dict[str, float]:
        n = max(self.pixels, 1.0)
        return {"depth_mae_px": self.depth_err / n, "corr_mae": self.corr_err / n,
                "mask_iou": self.inter / max(self.union, 1.0)}

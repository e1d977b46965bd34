"""Per-face records passed between the prediction stages: :class:`FaceCrop` (detect + crop) -> :class:`FaceMaps`
(network) -> :class:`facevision.predict.predictor.FaceResult` (postprocess).

Plain data (numpy arrays, tuples, dicts), so a face crosses to a writer process as it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

__all__ = ["FaceCrop", "FaceMaps", "PreparedFaces"]


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """One face cut from a photo.

    image: (S, S, 3) uint8 RGB crop. box: integer square (x0, y0, x1, y1) in photo px, end exclusive.
    angle: degrees the crop is turned about the box centre so the eyes are level (:mod:`facevision.face.crop`).
    refusal: why the face is not reconstructed (its way up cannot be told), else None.
    bbox: the detector's box (x0, y0, x1, y1) in photo px (None: ``box``); score: the detector's score (None for
    crops cut without a detector). timings: ms per face of the stages that made the crop (``detect``, ``crop``).
    """

    image: np.ndarray
    box: tuple[int, int, int, int]
    angle: float = 0.0
    refusal: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    score: float | None = None
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class FaceMaps:
    """The network's decoded maps of one crop (:mod:`facevision.common.conventions`): depth_px (S, S) float32 in crop
    px, 0 outside the mask; corr (S, S, 3) float32 (u, v, w) in [0, 1], 0 outside; mask (S, S) bool.
    network_ms: the network's time per face of the call that made them (None: not timed)."""

    depth_px: np.ndarray
    corr: np.ndarray
    mask: np.ndarray
    network_ms: float | None = None


class PreparedFaces(list):
    """The :class:`FaceCrop` list :meth:`facevision.predict.predictor.Predictor.prepare` returns (largest face
    first) and ``found``: how many faces the detector found, more than the list holds when only the largest is
    kept."""

    def __init__(self, crops: Sequence[FaceCrop] = (), found: int | None = None) -> None:
        super().__init__(crops)
        self.found = len(self) if found is None else max(int(found), len(self))

"""68 iBUG landmarks read from a correspondence map through the reference face.

For every iBUG-68 vertex of the reference face the ``k`` face pixels whose predicted ``(u, v, w)`` are nearest
to it are found with a k-d tree, in the reference's *raw* coordinates (``ReferenceFace.from_uvw``: isotropic,
unit RMS radius). Subpixel position: an affine model ``raw ~ A @ (x, y, 1)`` fitted to those pixels is solved
for the pixel where it equals the target; where that is ill-conditioned or lands far from the matches, the
inverse-distance weighted mean of the ``k`` pixels is used instead.

Coordinates: crop pixels, ``x`` = column (right), ``y`` = row (down), pixel centres at integers.
:func:`landmarks_to_original` maps them to original-photo pixels with ``facevision.face.crop``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facevision.common.checks import check_int, check_number
from facevision.face.crop import crop_to_original
from facevision.face.reference import ReferenceFace, load_reference

__all__ = ["LandmarkConfig", "Landmarks", "landmarks_from_corr", "landmarks_to_original"]


@dataclass(frozen=True)
class LandmarkConfig:
    """k: face pixels used per landmark (nearest in correspondence space); max_offset_px: the affine subpixel
    solution is used only within this distance (crop px) of the weighted mean of the ``k`` matches, else that mean;
    min_pixels: fewer face pixels -> ValueError."""

    k: int = 8
    max_offset_px: float = 1.5
    min_pixels: int = 16

    def __post_init__(self) -> None:
        check_int(self, "k", low=1)
        check_number(self, "max_offset_px", low=0)
        check_int(self, "min_pixels", low=1)


@dataclass
class Landmarks:
    """points: (68, 2) float64 (x = column, y = row) crop pixels, iBUG order.
    residual: (68,) distance (raw reference units, face RMS radius = 1) between each landmark's
        reference vertex and its nearest predicted correspondence: large = the point is not visible
        (occluded or outside the mask), so its position is a guess at the nearest visible point."""

    points: np.ndarray
    residual: np.ndarray


def landmarks_from_corr(corr: np.ndarray, mask: np.ndarray, reference: ReferenceFace | None = None,
                        config: LandmarkConfig = LandmarkConfig()) -> Landmarks:
    """(H, W, 3) correspondence in [0, 1] + (H, W) face mask -> 68 landmarks in crop pixels.
    ValueError when the mask has fewer than ``config.min_pixels`` pixels."""
    reference = reference or load_reference()
    corr = np.asarray(corr, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if corr.ndim != 3 or corr.shape[2] < 3 or corr.shape[:2] != mask.shape:
        raise ValueError(f"corr must be (H, W, 3) and mask (H, W) of the same size, got {corr.shape} and {mask.shape}")
    rows, cols = np.nonzero(mask)
    if len(rows) < config.min_pixels:
        raise ValueError(f"face mask has {len(rows)} pixels, fewer than {config.min_pixels}: no landmarks")
    raw = reference.from_uvw(corr[rows, cols, :3])
    targets = reference.raw_vertices[reference.ibug68]
    k = int(min(config.k, len(rows)))
    from scipy.spatial import cKDTree  # here: predict's default path (the face-model fit) never needs it

    tree = cKDTree(raw, balanced_tree=False, compact_nodes=False)  # faster to build, same answers
    dist, idx = tree.query(targets, k=k)
    dist = dist.reshape(len(targets), k)
    idx = idx.reshape(len(targets), k)
    pix = np.stack([cols[idx], rows[idx]], axis=-1).astype(np.float64)  # (68, k, 2) x, y
    w = 1.0 / (dist + 1e-6)
    w /= w.sum(1, keepdims=True)
    mean = (w[..., None] * pix).sum(1)
    points = mean.copy()
    if k >= 3:
        affine = _affine_solve(pix, raw[idx], targets)
        ok = np.isfinite(affine).all(1) & (np.linalg.norm(affine - mean, axis=1) <= config.max_offset_px)
        points[ok] = affine[ok]
    return Landmarks(points=points, residual=dist[:, 0].astype(np.float64))


def _affine_solve(pix: np.ndarray, values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per landmark: fit values ~ A (x, y, 1) on its k pixels, return (x, y) with A (x, y, 1) = target (lstsq).

    pix (L, k, 2), values (L, k, 3), targets (L, 3) -> (L, 2); NaN where ill-conditioned.
    """
    centre = pix.mean(1, keepdims=True)
    p = pix - centre
    design = np.concatenate([p, np.ones(p.shape[:2] + (1,))], axis=2)  # (L, k, 3)
    gram = np.einsum("lki,lkj->lij", design, design)
    rhs = np.einsum("lki,lkc->lic", design, values)  # (L, 3, 3): rows = (ax, ay, b) per channel
    out = np.full((len(pix), 2), np.nan)
    good = np.linalg.cond(gram) < 1e6
    if not good.any():
        return out
    coef = np.linalg.solve(gram[good], rhs[good])  # (G, 3, 3)
    jac = np.transpose(coef[:, :2, :], (0, 2, 1))  # (G, 3 channels, 2) d value / d (x, y)
    resid = targets[good] - coef[:, 2, :]  # (G, 3)
    jtj = np.einsum("gci,gcj->gij", jac, jac)
    ok = np.linalg.cond(jtj) < 1e6
    sol = np.full((int(good.sum()), 2), np.nan)
    if ok.any():
        sol[ok] = np.linalg.solve(jtj[ok], np.einsum("gci,gc->gi", jac[ok], resid[ok])[..., None])[..., 0]
    out[good] = sol + centre[good, 0]
    return out


def landmarks_to_original(points: np.ndarray, crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """(68, 2) crop pixels -> original-photo pixels (x right, y down), via ``facevision.face.crop.crop_to_original``."""
    return crop_to_original(np.asarray(points, dtype=np.float64), crop_box, size, angle)

"""Point-set geometry shared by every package: the one similarity (Umeyama) fit.

Plain numpy; any consistent units. (Mesh geometry: :func:`meshing.refine.vertex_normals`,
:mod:`meshing.cleanup`.)
"""
from __future__ import annotations

import numpy as np

__all__ = ["similarity_fit"]


def similarity_fit(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
                   allow_reflection: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s * src @ R.T + t`` (Umeyama 1991) for (N, D) point sets.

    weights: (N,) non-negative weights (any scale), None = all equal. R is a rotation (det +1) unless
    ``allow_reflection``. Returns (s, R (D, D), t (D,)), float64.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape != dst.shape or len(src) == 0:
        raise ValueError(f"similarity_fit needs two (N, D) point sets of one shape, got {src.shape} and {dst.shape}")
    if weights is None:
        mu_s, mu_d = src.mean(0), dst.mean(0)
        a, b = src - mu_s, dst - mu_d
        cov = b.T @ a / len(src)
        var = (a ** 2).sum() / len(src)
    else:
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum()
        mu_s, mu_d = w @ src, w @ dst
        a, b = src - mu_s, dst - mu_d
        cov = (b * w[:, None]).T @ a
        var = (w * (a * a).sum(1)).sum()
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(len(sig))
    if not allow_reflection and np.linalg.det(u @ vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / max(var, 1e-18))
    return scale, rot, mu_d - scale * rot @ mu_s

"""Left/right landmark pairs of MediaPipe's 468-point face mesh, derived from a (mean) face shape.

MediaPipe's topology is mirror symmetric. Given any roughly symmetric 468-point shape, the shape is
reflected, matched to itself with an optimal assignment (Hungarian), the reflection re-fitted with a
similarity transform, and matched again until the permutation is stable. The result is checked
against MediaPipe's own named left/right groups (eyes, brows, irises are not in the 468).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from facevision.common.geometry import similarity_fit

__all__ = ["mirror_permutation", "check_mirror_with_mediapipe"]


def mirror_permutation(shape: np.ndarray, iterations: int = 5) -> np.ndarray:
    """(N, 3) shape, roughly frontal (x = left-right axis) -> perm with shape[perm[i]] the mirror of point i."""
    pts = np.asarray(shape, dtype=np.float64)
    c = pts - pts.mean(0)
    refl = c * np.array([-1.0, 1.0, 1.0])
    perm = None
    for _ in range(iterations):
        cost = ((refl[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        _, new_perm = linear_sum_assignment(cost)
        if perm is not None and np.array_equal(new_perm, perm):
            break
        perm = new_perm
        s, r, t = similarity_fit(c * np.array([-1.0, 1.0, 1.0]), c[perm])
        refl = s * (c * np.array([-1.0, 1.0, 1.0])) @ r.T + t
    return perm.astype(np.int64)


def check_mirror_with_mediapipe(perm: np.ndarray) -> None:
    """Raise ValueError unless perm is an involution that swaps MediaPipe's left and right eye/brow contours."""
    from facevision.face.detect import import_mediapipe

    mp = import_mediapipe()

    fm = mp.solutions.face_mesh
    if not np.array_equal(perm[perm], np.arange(len(perm))):
        raise ValueError("mirror permutation is not an involution")
    for left, right in ((fm.FACEMESH_LEFT_EYE, fm.FACEMESH_RIGHT_EYE),
                        (fm.FACEMESH_LEFT_EYEBROW, fm.FACEMESH_RIGHT_EYEBROW)):
        lset = {i for e in left for i in e}
        rset = {i for e in right for i in e}
        if {int(perm[i]) for i in lset} != rset:
            raise ValueError("mirror permutation does not swap MediaPipe's left/right eye or brow contours")

"""iBUG-68 landmarks as MediaPipe Face Mesh vertex indices.

Source: the MediaPipe-468 -> 68-point correspondence list common in open-source face tools (e.g. LatentSync's
face alignment), written out by hand and checked on the reference face (``tests/test_data_prep_reference.py``:
left/right pairs map to mirrored vertices, contours run as in iBUG).
iBUG order (0-based): 0-16 jaw (image left -> right), 17-21 / 22-26 brows, 27-30 nose bridge,
31-35 nostrils, 36-41 / 42-47 eyes, 48-59 outer lips, 60-67 inner lips.
"""
from __future__ import annotations

import numpy as np

__all__ = ["IBUG68_FROM_MEDIAPIPE", "IBUG68_MIRROR", "IBUG68_GROUPS"]

IBUG68_FROM_MEDIAPIPE = np.array([
    # jaw 0-16
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    # brows 17-21, 22-26
    71, 63, 105, 66, 107,
    336, 296, 334, 293, 301,
    # nose bridge 27-30, nostrils 31-35
    168, 197, 5, 4,
    75, 97, 2, 326, 305,
    # eyes 36-41, 42-47
    33, 160, 158, 133, 153, 144,
    362, 385, 387, 263, 373, 380,
    # outer lips 48-59
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    # inner lips 60-67
    78, 82, 13, 312, 308, 317, 14, 87,
], dtype=np.int64)

# iBUG-68 point index of each point's mirror image (standard iBUG flip pairs).
IBUG68_MIRROR = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65],
    dtype=np.int64,
)
# The iBUG order's point groups (index ranges, end exclusive), for per-part error reports.
IBUG68_GROUPS: dict[str, tuple[int, int]] = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48),
                                             "mouth": (48, 68)}

assert len(IBUG68_FROM_MEDIAPIPE) == 68 and len(IBUG68_MIRROR) == 68

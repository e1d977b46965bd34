"""Checks of the synthetic surfaces in tests/support/surfaces.py (the shapes the meshing tests use)."""
from __future__ import annotations

import numpy as np

from support.surfaces import hemisphere, sphere_error, face_like


def test_hemisphere_points_lie_on_the_sphere():
    depth, mask, centre = hemisphere(64, 20.0, 3.0)
    rr, cc = np.nonzero(mask)
    pts = np.stack([cc, 63 - rr, depth[rr, cc]], axis=1)
    assert sphere_error(pts, centre, 20.0).max() < 1e-9


def test_face_like_coverage():
    for cov in (0.55, 0.70):
        _, mask = face_like(128, cov)
        assert abs(mask.mean() - cov) < 0.01

"""The committed reference face: ranges, symmetry, a fold-free non-overlapping triangulation, iBUG-68 indices."""
from __future__ import annotations

import numpy as np
import pytest

from facevision.face.ibug68 import IBUG68_MIRROR
from data_prep.mirror import check_mirror_with_mediapipe
from facevision.face.rasterize import rasterize
from facevision.face.reference import load_reference


@pytest.fixture(scope="module")
def ref():
    return load_reference()


def test_shapes_and_range(ref):
    assert ref.vertices.shape == (468, 3) and ref.triangles.shape[1] == 3
    assert ref.vertices.min() >= 0 and ref.vertices.max() <= 1
    assert np.allclose(ref.vertices.min(0), 0) and np.allclose(ref.vertices.max(0), 1)
    assert ref.ibug68.shape == (68,) and ref.ibug68.max() < 468
    assert np.allclose(ref.to_uvw(ref.raw_vertices), ref.vertices)
    assert np.allclose(ref.from_uvw(ref.vertices), ref.raw_vertices)


def test_axes_point_the_right_way(ref):
    v = ref.vertices
    assert v[10, 1] > v[152, 1]  # forehead (10) above chin (152): v up
    assert v[4, 2] > 0.95  # nose tip is nearest the camera
    assert v[263, 0] > v[33, 0]  # MediaPipe "left" eye corner (263) is at the image right of a frontal face


def test_mirror_symmetric_about_u_half(ref):
    v, m = ref.vertices, ref.mirror
    check_mirror_with_mediapipe(m)
    assert np.abs(v[m] - v * [-1, 1, 1] - [1, 0, 0]).max() < 1e-9
    fixed = m == np.arange(468)
    assert np.allclose(v[fixed, 0], 0.5)


def test_triangulation_has_no_folds_or_overlaps(ref):
    uv = ref.vertices[:, :2]
    p = uv[ref.triangles]
    area = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1])
    assert (area > 0).all()  # all counter-clockwise in (u, v): nothing folded
    # the triangles tile a simply connected region exactly once: the total triangle area equals the union's area
    n = 800
    pix = np.column_stack([uv * (n - 1), np.zeros(len(uv))])
    _, _, mask = rasterize(pix, ref.triangles, n, n)
    union = mask.sum() / (n - 1) ** 2
    assert area.sum() / 2 == pytest.approx(union, rel=0.01)
    from scipy.ndimage import binary_fill_holes

    assert not (binary_fill_holes(mask) & ~mask).any()  # eyes and mouth are covered
    # every vertex is used and every edge is shared by at most two triangles
    assert np.unique(ref.triangles).size == 468
    e = np.sort(ref.triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert counts.max() <= 2


def test_ibug68_positions(ref):
    ib = ref.vertices[ref.ibug68]
    # iBUG left/right pairs are mirror images on the symmetric reference
    mirrored = ib[IBUG68_MIRROR] * [-1, 1, 1] + [1, 0, 0]
    assert np.abs(mirrored - ib).max() < 1e-9
    # jaw goes from the image left to the image right through the chin (lowest point = 8)
    assert np.all(np.diff(ib[:17, 0]) > -0.02) and ib[0, 0] < 0.1 and ib[16, 0] > 0.9
    assert np.argmin(ib[:17, 1]) in (7, 8, 9) and ib[8, 0] == pytest.approx(0.5)
    # brows above eyes above nose tip above mouth above chin
    brows, eyes, nose, mouth = ib[17:27, 1].mean(), ib[36:48, 1].mean(), ib[30, 1], ib[48:68, 1].mean()
    assert brows > eyes > nose > mouth > ib[8, 1]
    assert ib[30, 2] == pytest.approx(ref.vertices[:, 2].max(), abs=0.05)  # iBUG 30 = nose tip
    # eye corners: 36 outer-left, 39 inner-left, 42 inner-right, 45 outer-right
    assert ib[36, 0] < ib[39, 0] < 0.5 < ib[42, 0] < ib[45, 0]
    assert ib[48, 0] < ib[51, 0] < ib[54, 0]  # mouth corners around the upper-lip top

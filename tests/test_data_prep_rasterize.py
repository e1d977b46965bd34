"""Rasterizer against analytic ground truth: planes, a sphere, occlusion, watertight tilings."""
from __future__ import annotations

import numpy as np
import pytest

from facevision.face.rasterize import rasterize


def _grid_mesh(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Regular grid vertices (row-major) and two triangles per cell."""
    gx, gy = np.meshgrid(xs, ys)
    nx, ny = len(xs), len(ys)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])
    return np.stack([gx.ravel(), gy.ravel()], 1), faces


def test_plane_depth_and_barycentric_attributes_are_exact():
    rng = np.random.default_rng(0)
    xy = np.array([[10.3, 5.7], [100.2, 9.9], [16.8, 110.1], [118.4, 121.6]])
    z = 0.3 * xy[:, 0] - 0.2 * xy[:, 1] + 40.0
    verts = np.column_stack([xy, z])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    attrs = np.column_stack([xy, rng.random(4)])
    depth, out, mask = rasterize(verts, faces, 128, 128, attrs)
    yy, xx = np.mgrid[:128, :128].astype(np.float64)
    # coverage equals the analytic quad (pixel centres inside the polygon)
    assert mask.sum() > 8000
    assert np.abs(depth[mask] - (0.3 * xx - 0.2 * yy + 40.0)[mask]).max() < 1e-3
    # attributes that are the vertex positions interpolate to the pixel position (barycentric exactness)
    assert np.abs(out[mask][:, 0] - xx[mask]).max() < 1e-3
    assert np.abs(out[mask][:, 1] - yy[mask]).max() < 1e-3
    assert np.all(depth[~mask] == 0) and np.all(out[~mask] == 0)


def test_plane_coverage_matches_point_in_triangle():
    verts = np.array([[3.5, 2.2, 1.0], [60.1, 10.4, 1.0], [20.7, 50.9, 1.0]])
    _, _, mask = rasterize(verts, np.array([[0, 1, 2]]), 64, 64)
    yy, xx = np.mgrid[:64, :64].astype(np.float64)
    p0, p1, p2 = verts[:, :2]

    def side(a, b):
        return (b[0] - a[0]) * (yy - a[1]) - (b[1] - a[1]) * (xx - a[0])

    s0, s1, s2 = side(p0, p1), side(p1, p2), side(p2, p0)
    inside = ((s0 >= 0) & (s1 >= 0) & (s2 >= 0)) | ((s0 <= 0) & (s1 <= 0) & (s2 <= 0))
    assert np.array_equal(mask, inside)


def test_sphere_depth_and_correspondence_within_a_pixel():
    size, r, c = 96, 40.0, np.array([47.3, 48.6])
    t = np.linspace(-1, 1, 81)
    xy, faces = _grid_mesh(c[0] + r * t, c[1] + r * t)
    d2 = ((xy - c) ** 2).sum(1)
    z = np.sqrt(np.clip(r * r - d2, 0, None))
    keep_v = d2 <= r * r
    keep_f = keep_v[faces].all(1)
    verts = np.column_stack([xy, z + 10.0])
    unit = np.column_stack([(xy - c) / r, z / r])  # per-vertex point on the unit sphere
    depth, corr, mask = rasterize(verts, faces[keep_f], size, size, unit)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    rr2 = (xx - c[0]) ** 2 + (yy - c[1]) ** 2
    inner = rr2 < (0.9 * r) ** 2
    assert mask[inner].all()
    assert not mask[rr2 > (r + 1) ** 2].any()
    truth = np.sqrt(np.clip(r * r - rr2, 0, None)) + 10.0
    assert np.abs(depth[inner] - truth[inner]).max() < 0.5
    # correspondence: the interpolated unit-sphere point must be the sphere point seen at that pixel
    assert np.abs(corr[inner][:, 0] * r - (xx - c[0])[inner]).max() < 0.05
    assert np.abs(corr[inner][:, 1] * r - (yy - c[1])[inner]).max() < 0.05
    assert np.abs(corr[inner][:, 2] * r + 10.0 - truth[inner]).max() < 0.5


def test_nearest_surface_wins_regardless_of_order():
    back = np.array([[0, 0, 1.0], [63, 0, 1.0], [0, 63, 1.0], [63, 63, 1.0]])
    front = back + np.array([0, 0, 5.0])
    front[:, :2] = front[:, :2] * 0.5 + 16
    verts = np.concatenate([back, front])
    faces = np.array([[0, 1, 2], [1, 3, 2], [4, 5, 6], [5, 7, 6]])
    attr = np.concatenate([np.zeros(4), np.ones(4)])
    for f in (faces, faces[::-1]):
        depth, a, mask = rasterize(verts, f, 64, 64, attr)
        assert depth[32, 32] == pytest.approx(6.0) and a[32, 32, 0] == pytest.approx(1.0)
        assert depth[5, 5] == pytest.approx(1.0) and a[5, 5, 0] == pytest.approx(0.0)
        assert mask.all()


def test_shared_edges_leave_no_cracks():
    rng = np.random.default_rng(1)
    xs = np.sort(np.concatenate([[0.0, 63.0], rng.uniform(1, 62, 9)]))
    ys = np.sort(np.concatenate([[0.0, 63.0], rng.uniform(1, 62, 7)]))
    xy, faces = _grid_mesh(xs, ys)
    xy = xy + np.where((xy > 0) & (xy < 63), rng.uniform(-0.4, 0.4, xy.shape), 0)
    _, _, mask = rasterize(np.column_stack([xy, np.ones(len(xy))]), faces, 64, 64)
    assert mask.all()


def test_outside_and_degenerate_triangles_are_ignored():
    verts = np.array([[-50, -50, 1], [-10, -50, 1], [-50, -10, 1], [5, 5, 1], [10, 10, 1], [15, 15, 1]], float)
    depth, attrs, mask = rasterize(verts, np.array([[0, 1, 2], [3, 4, 5]]), 32, 32)
    assert not mask.any() and attrs.shape == (32, 32, 0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        rasterize(np.zeros((3, 2)), np.array([[0, 1, 2]]), 8, 8)
    with pytest.raises(ValueError):
        rasterize(np.zeros((3, 3)), np.array([[0, 1, 2]]), 8, 8, np.zeros((2, 1)))


def _sorted_z_test(pix: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The z-test as a stable sort states it: by pixel, largest z first, the first candidate among equal ones."""
    order = np.lexsort((-z, pix))
    first = np.ones(len(order), bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    return order[first]


def _brute_force_z_test(pix: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Per covered pixel, in a loop: the first candidate with the largest z, NaN counting as smaller than every
    number (all NaN: the first candidate)."""
    won = []
    for p in np.unique(pix):
        idx = np.flatnonzero(pix == p)
        zz = np.where(np.isnan(z[idx]), -np.inf, z[idx])
        best = idx[zz == zz.max()]
        won.append(best[0] if not np.isnan(z[best[0]]) or np.isnan(z[idx]).all() else idx[~np.isnan(z[idx])][0])
    return np.array(won)


def test_z_test_keeps_what_a_stable_sort_keeps():
    """The per-pixel maximum (np.maximum.at) picks the same candidates as the sort, exact ties (the same triangle
    twice, coplanar neighbours, +0.0 against -0.0) and non-finite depths included."""
    from facevision.face.rasterize import _nearest

    rng = np.random.default_rng(3)
    for trial in range(20):
        n = 5000
        pix = rng.integers(0, 900, n)
        z = np.round(rng.normal(size=n), 1)  # many exact ties
        z[::97] = -0.0
        z[1::97] = 0.0
        if trial % 5 == 4:  # non-finite depths: +inf wins, NaN loses to any number (checked pixel by pixel)
            z[::211] = np.nan
            z[3::307] = np.inf
            np.testing.assert_array_equal(np.sort(_nearest(pix, z, 900)), np.sort(_brute_force_z_test(pix, z)))
        else:
            np.testing.assert_array_equal(np.sort(_nearest(pix, z, 900)), np.sort(_sorted_z_test(pix, z)))
    # whole renders: a mesh drawn twice over itself (every depth tied) keeps the first copy's attributes
    xy, faces = _grid_mesh(np.linspace(3, 60, 9), np.linspace(2, 58, 8))
    verts = np.column_stack([xy, 0.01 * xy[:, 0] ** 2])
    twice = np.concatenate([faces, faces])
    attr = np.concatenate([np.zeros(len(verts)), np.ones(len(verts))])[:, None]
    _, vals, cover = rasterize(np.concatenate([verts, verts]), np.concatenate([faces, faces + len(verts)]),
                               64, 64, attr)
    assert cover.sum() > 2500 and (vals[cover] == 0).all()
    d1, a1, m1 = rasterize(verts, twice, 64, 64, verts[:, :1])
    d2, a2, m2 = rasterize(verts, faces, 64, 64, verts[:, :1])
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(m1, m2)

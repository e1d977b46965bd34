"""Preview renders of a mesh (facevision.predict.render) against a surface with known shading: a hemisphere."""
from __future__ import annotations

import numpy as np

from facevision.predict.render import RenderConfig, render_mesh
from meshing.refine import vertex_normals


def _hemisphere(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Unit hemisphere facing +Z as a lattice over (x, y) in the unit disc: vertices (N, 3), faces (F, 3)."""
    xs = np.linspace(-1.0, 1.0, n)
    gx, gy = np.meshgrid(xs, xs)
    z = np.sqrt(np.clip(1.0 - gx ** 2 - gy ** 2, 0.0, None))
    v = np.stack([gx, gy, z], -1).reshape(-1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    f = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    inside = (gx ** 2 + gy ** 2).ravel()[f].max(1) < 1.0
    return v, f[inside]


def test_front_render_shades_by_the_angle_to_the_viewer():
    v, f = _hemisphere()
    cfg = RenderConfig(ambient=0.25)
    img = render_mesh(v, f, 128, 0.0, cfg)[..., 0].astype(float)
    c = 127 / 2
    assert img[int(c), int(c)] > 250  # facing the viewer: full light
    # at radius r of the disc the normal's z is sqrt(1 - r^2): grey = 255 * (ambient + (1 - ambient) * nz)
    half = (1 - 2 * cfg.margin) * 128 / 2  # the disc's radius in px
    col = int(round(c + 0.8 * half))
    expect = 255 * (cfg.ambient + (1 - cfg.ambient) * np.sqrt(1 - 0.8 ** 2))
    assert abs(img[int(c), col] - expect) < 12
    assert img[0, 0] == 0 and img[-1, -1] == 0  # background


def test_given_normals_turn_with_the_view():
    v, f = _hemisphere()
    normals = vertex_normals(v, f)
    for yaw in (0.0, 60.0):
        computed = render_mesh(v, f, 96, yaw).astype(int)
        given = render_mesh(v, f, 96, yaw, normals=normals).astype(int)
        assert np.abs(computed - given).max() <= 1
    turned = render_mesh(v, f, 96, 60.0).astype(int)
    assert np.abs(turned - render_mesh(v, f, 96, 0.0).astype(int)).max() > 50  # the view did change

"""Benchmarks of the meshing pipeline and of each step on a 128x128 face-sized map.

Measure with ``pytest tests/test_bench_meshing.py --benchmark-enable``; in CI they run once
(``--benchmark-disable``) as ordinary tests. Target: full pipeline < 30 ms per face (2-core CPU).
"""
from __future__ import annotations

import numpy as np
import pytest

import meshing
from meshing import MeshConfig
from support.surfaces import face_like

SIZE = 128


@pytest.fixture(scope="module")
def face():
    depth, mask = face_like(SIZE, 0.40, height=30.0)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    corr = np.where(mask[..., None], rng.random((SIZE, SIZE, 3)), 0.0).astype(np.float32)
    return depth.astype(np.float32), mask, image, corr


@pytest.fixture(scope="module")
def stages(face):
    depth, mask, image, corr = face
    v, f, px = meshing.lift(depth, mask, density=1.0)
    fb = meshing.remove_background(v, f, px, mask)
    v2, f2, kept = meshing.remove_spikes(v, fb)
    v3 = meshing.smooth_laplacian(v2, f2, 5, 0.5)
    return {"lift": (v, f, px), "background": fb, "spikes": (v2, f2, px[kept]), "smooth": v3}


def test_bench_full_pipeline(benchmark, face):
    depth, mask, image, corr = face
    mesh = benchmark(meshing.mesh_from_maps, depth, mask, image, corr, MeshConfig())
    assert 5000 <= mesh.n_vertices <= 8000 and 10000 <= mesh.n_faces <= 15000


def test_bench_full_pipeline_delaunay(benchmark, face):
    depth, mask, image, corr = face
    mesh = benchmark(meshing.mesh_from_maps, depth, mask, image, corr, MeshConfig(triangulation="delaunay"))
    assert 5000 <= mesh.n_vertices <= 8000


def test_bench_full_pipeline_pinned_boundary(benchmark, face):
    depth, mask, image, corr = face
    mesh = benchmark(meshing.mesh_from_maps, depth, mask, image, corr, MeshConfig(smooth_pin_boundary=True))
    assert mesh.n_faces > 0


def test_bench_lift_grid(benchmark, face):
    depth, mask, *_ = face
    v, f, px = benchmark(meshing.lift, depth, mask, density=1.0, triangulation="grid")
    assert len(f) > 1.9 * len(v)


def test_bench_lift_delaunay(benchmark, face):
    depth, mask, *_ = face
    v, f, px = benchmark(meshing.lift, depth, mask, density=1.0, triangulation="delaunay")
    assert len(f) > 1.9 * len(v)


def test_bench_triangulate_delaunay_only(benchmark, stages):
    _, f, px = stages["lift"]
    faces = benchmark(meshing.triangulate, px)  # qhull on the lattice points alone
    assert len(faces) >= len(f)


def test_bench_triangulate_grid_only(benchmark, face):
    depth, mask, *_ = face
    _, valid, _, _ = meshing.resample(depth, mask, 1.0)
    faces = benchmark(meshing.triangulate_grid, valid)
    assert len(faces) > 1.9 * valid.sum()


def test_bench_remove_background(benchmark, face, stages):
    v, f, px = stages["lift"]
    kept = benchmark(meshing.remove_background, v, f, px, face[1])
    assert len(kept) == len(f)  # the grid lift makes no background triangles


def test_bench_remove_spikes(benchmark, stages):
    v, f, _ = stages["lift"]
    v2, f2, kept = benchmark(meshing.remove_spikes, v, stages["background"])
    assert len(v2) > 0.95 * len(v)


def test_bench_smooth_laplacian(benchmark, stages):
    v2, f2, _ = stages["spikes"]
    out = benchmark(meshing.smooth_laplacian, v2, f2, 5, 0.5)
    assert out.shape == v2.shape


def test_bench_fill_detail(benchmark, face, stages):
    v2, f2, px2 = stages["spikes"]
    out = benchmark(meshing.fill_detail, stages["smooth"], f2, px2, face[2], 2.0, 2.0)
    assert out.shape == v2.shape


def test_bench_colors_uvs_corr(benchmark, face, stages):
    _, _, px2 = stages["spikes"]
    depth, mask, image, corr = face

    def sample():
        return (meshing.sample_colors(image, px2), meshing.pixel_uvs(px2, (SIZE, SIZE)),
                meshing.sample_corr(corr, px2, mask))

    colors, uvs, c = benchmark(sample)
    assert colors.shape == c.shape == (len(px2), 3)

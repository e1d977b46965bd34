"""Benchmarks of the labelling hot path (run with --benchmark-enable to measure)."""
from __future__ import annotations

import numpy as np
import pytest

from facevision.face.rasterize import rasterize
from facevision.face.reference import load_reference


def _face_in_crop(size=128):
    ref = load_reference()
    v = ref.vertices
    verts = np.column_stack([(0.2 + 0.6 * v[:, 0]) * size, (0.85 - 0.7 * v[:, 1]) * size, v[:, 2] * 0.35 * size])
    return verts, ref.triangles, v


def test_bench_rasterize_face_128(benchmark):
    verts, tris, attrs = _face_in_crop()
    depth, corr, mask = benchmark(rasterize, verts, tris, 128, 128, attrs)
    assert 0.2 < mask.mean() < 0.6


@pytest.mark.lfw
def test_bench_label_photo(benchmark, lfw_root):
    from facevision.face.images import read_photo
    from data_prep.label_mediapipe import label_photo

    img = read_photo(lfw_root / "Aaron_Eckhart/Aaron_Eckhart_0001.jpg")
    res = benchmark(label_photo, img)
    assert res.sample.mask.any()

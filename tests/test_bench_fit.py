"""Benchmark of the face-model fit on one 128x128 prediction (target <= 10 ms per face on the 2-core CPU).

Measure with ``pytest tests/test_bench_fit.py --benchmark-enable``; in CI it runs once as a test.
"""
from __future__ import annotations

import numpy as np

from facevision.face.face_model import load_face_model
from facevision.fit.model_fit import fit_face_model
from support.face_model import render_face_model


def test_bench_fit_face_model(benchmark):
    model = load_face_model()
    rng = np.random.default_rng(0)
    depth, corr, mask, lm, _ = render_face_model(model, rng.normal(0, 0.5, model.n_id), rng.normal(0, 0.5, model.n_exp),
                                       40.0, 5.0, -10.0)
    fit_face_model(depth, corr, mask, model)  # warm the (u, v) lookup cache
    fit = benchmark(fit_face_model, depth, corr, mask, model)
    assert np.linalg.norm(fit.landmarks68 - lm, axis=1).mean() < 1.0

"""Registration speed per face on CPU (both stages), with a FLAME-sized synthetic model.

Measure with ``pytest tests/test_bench_flame.py --benchmark-enable``. The model has FLAME's size
(~5k vertices, 300 shape + 100 expression components, 5 joints); the face is a 128 px crop meshed
by meshing (~4k vertices). The one-off reference -> FLAME relation is computed in the fixture
(it is cached per model file in real use).
"""
from __future__ import annotations

import numpy as np
import pytest

from facevision.flame import register, relate_reference_to_flame
from support.flame_synthetic import make_synthetic_flame_arrays, random_params, render_synthetic_face, synthetic_setup
from meshing import mesh_from_maps


@pytest.fixture(scope="module")
def case():
    setup = synthetic_setup(make_synthetic_flame_arrays(n_shape=300, n_expr=100, n_lat=72, n_lon=72))
    relation = relate_reference_to_flame(setup.model, setup.reference, cache=False)
    truth = render_synthetic_face(setup, random_params(setup.model, 1), landmark_noise=1.0, seed=1)
    mesh = mesh_from_maps(truth.depth, truth.mask, corr=truth.corr)
    register(mesh, truth.corr, truth.landmarks68, setup.model, relation=relation)  # warm-up (imports, tensors)
    return setup, relation, truth, mesh


def test_bench_register_per_face(benchmark, case):
    setup, relation, truth, mesh = case
    fit = benchmark.pedantic(register, args=(mesh, truth.corr, truth.landmarks68, setup.model),
                             kwargs={"relation": relation}, rounds=5, iterations=1)
    fv = setup.face_vertices
    err = np.linalg.norm(fit.vertices_px[fv] - truth.vertices_px[fv], axis=1).mean() / np.ptp(truth.vertices_px[fv, 0])
    assert err < 0.025  # the time is the benchmark's to measure (--benchmark-enable), not a test's to assert
    assert set(fit.timings) >= {"total"}

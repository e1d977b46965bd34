"""tools/depth_scale_sfm.py: orthographic structure from motion recovers a known depth factor."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from facevision.face.reference import load_reference


def _tool():
    path = Path(__file__).resolve().parents[1] / "tools" / "depth_scale_sfm.py"
    spec = importlib.util.spec_from_file_location("depth_scale_sfm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("k_true", [1.0, 1.3, 0.8])
def test_views_of_a_depth_scaled_face_give_back_its_depth_factor(k_true):
    tool = _tool()
    face = load_reference().vertices * 100.0  # a rigid 3D face, crop-px-like units
    views = tool.synthetic_views(face, k_true, 15, np.random.default_rng(0))
    w = np.concatenate([(v - v.mean(0)).T for v in views])
    shape = tool.metric_factorization(w)
    assert shape is not None
    k, residual = tool.depth_factor(shape, face)
    assert k == pytest.approx(k_true, rel=0.02)
    assert residual < 0.02


def test_a_flat_reconstruction_gives_no_depth_factor():
    tool = _tool()
    face = load_reference().vertices * 100.0
    k, _ = tool.depth_factor(np.column_stack([face[:, :2], np.zeros(len(face))]), face)
    assert k < 0.05  # a flat reconstruction says nothing of depth: k collapses, it does not invent one

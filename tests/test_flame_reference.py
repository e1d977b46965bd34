"""FLAME registration in facevision's real correspondence space (the MediaPipe-topology reference face).

The reference face itself is rendered under known poses (predict's synthetic maps) and registered with
the synthetic FLAME-format model: the relation step has to bridge two different face shapes, and the
fitted head rotations must follow the rendered poses in predict's angle convention.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facevision.face.reference import load_reference
from facevision.flame import register, relate_reference_to_flame
from support.flame_synthetic import make_synthetic_flame
from facevision.maps.pose import angles_to_rotation
from support.synthetic import render_reference
from meshing import mesh_from_maps


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    model = make_synthetic_flame()
    relation = relate_reference_to_flame(model, load_reference(), cache=tmp_path_factory.mktemp("cache"))
    out = {}
    for pose in [(0, 0, 0), (20, 10, 0), (-30, -10, 5), (10, 0, -10)]:
        face = render_reference(128, *pose)
        mesh = mesh_from_maps(face.depth, face.mask, corr=face.corr)
        out[pose] = register(mesh, face.corr, face.landmarks68, model, relation=relation)
    return out


def _head(fit):
    return (Rotation.from_rotvec(fit.params.global_pose) * Rotation.from_rotvec(fit.params.neck_pose)).as_matrix()


def test_real_reference_registers_closely_despite_different_face_shapes(fitted):
    fit = fitted[(0, 0, 0)]
    assert fit.residual_mean_px < 4.0 and fit.residual_p90_px < 8.0  # different face shapes, same anatomy


@pytest.mark.parametrize("pose", [(20, 10, 0), (-30, -10, 5), (10, 0, -10)])
def test_head_rotation_follows_the_rendered_pose(fitted, pose):
    frontal = _head(fitted[(0, 0, 0)])
    expect = angles_to_rotation(*pose) @ frontal
    err = np.degrees(Rotation.from_matrix(_head(fitted[pose]) @ expect.T).magnitude())
    assert err < 3.0
    assert fitted[pose].params.scale == pytest.approx(fitted[(0, 0, 0)].params.scale, rel=0.05)

"""Landmarks and pose from maps, against ground truth rendered from the reference face."""
from __future__ import annotations

import re

import numpy as np
import pytest

from facevision.face.crop import original_to_crop
from facevision.face.reference import load_reference
from facevision.maps.landmarks import LandmarkConfig, landmarks_from_corr, landmarks_to_original
from facevision.maps.pose import (PoseConfig, angles_to_rotation, pose_from_maps, reference_tilt,
                                  rotation_to_angles)
from support.synthetic import known_rotation, render_reference
from facevision.common.geometry import similarity_fit

VISIBLE_PX = 1.0  # residual (x face scale = crop px) below which the iBUG vertex itself is visible


@pytest.mark.parametrize("pose", [(0, 0, 0), (0, 0, 25), (-15, 8, -10)])
def test_landmarks_recover_rendered_vertices(pose):
    face = render_reference(128, *pose, scale=36.0, centre=(60.3, 66.7))
    lm = landmarks_from_corr(face.corr, face.mask)
    err = np.linalg.norm(lm.points - face.landmarks68, axis=1)
    vis = lm.residual * 36.0 < VISIBLE_PX
    assert vis.sum() >= 50  # most iBUG points are visible at these poses
    assert np.median(err) < 0.25
    assert err[vis].max() < 1.0  # every visible landmark within a pixel of its rendered vertex


def test_landmarks_flag_occluded_points_on_a_turned_face():
    face = render_reference(128, yaw=40)
    lm = landmarks_from_corr(face.corr, face.mask)
    err = np.linalg.norm(lm.points - face.landmarks68, axis=1)
    hidden = lm.residual * face.scale >= 2 * VISIBLE_PX
    assert hidden.sum() >= 5  # the far cheek's jaw points are behind the face
    assert err[hidden].mean() > err[~hidden].mean()


def test_landmarks_to_original_inverts_the_crop_mapping():
    face = render_reference(128)
    lm = landmarks_from_corr(face.corr, face.mask).points
    box = (37, -12, 293, 244)  # 256 px square partly outside a photo: scale 0.5
    orig = landmarks_to_original(lm, box, 128)
    assert np.allclose(original_to_crop(orig, box, 128), lm)
    assert np.allclose(orig[:, 0], (lm[:, 0] + 0.5) * 2 - 0.5 + 37)


def test_landmarks_need_a_mask():
    face = render_reference(64)
    with pytest.raises(ValueError, match="fewer than"):
        landmarks_from_corr(face.corr, np.zeros_like(face.mask), config=LandmarkConfig(min_pixels=16))


def test_angle_conventions():
    nose = np.array([0.0, 0.0, 1.0])
    assert (angles_to_rotation(30, 0, 0) @ nose)[0] > 0.4  # yaw > 0: nose to the image right (+X)
    assert (angles_to_rotation(0, 30, 0) @ nose)[1] > 0.4  # pitch > 0: nose up (+Y)
    right = angles_to_rotation(0, 0, 30) @ np.array([1.0, 0, 0])
    assert right[1] > 0.4  # roll > 0: counter-clockwise as seen by the viewer (X turns towards +Y)
    rng = np.random.default_rng(0)
    for _ in range(20):  # ground truth from scipy, not from angles_to_rotation itself
        a = rng.uniform([-80, -60, -90], [80, 60, 90])
        assert np.allclose(angles_to_rotation(*a), known_rotation(*a), atol=1e-12)
        assert np.allclose(rotation_to_angles(known_rotation(*a)), a, atol=1e-6)


@pytest.mark.parametrize("angles", [(25.0, -12.0, 8.0), (-40.0, 20.0, -15.0)])
def test_pose_of_a_point_set_turned_by_a_known_rotation(angles):
    """A point set turned, scaled and moved by a scipy rotation of known angles reads back those angles."""
    rng = np.random.default_rng(1)
    p = rng.normal(size=(200, 3))
    x = 40.0 * p @ known_rotation(*angles).T + [64.0, 60.0, 30.0]
    s, rot, t = similarity_fit(p, x)
    assert s == pytest.approx(40.0) and np.allclose(t, [64.0, 60.0, 30.0])
    assert np.allclose(rotation_to_angles(rot), angles, atol=1e-6)


def test_umeyama_exact_on_noise_free_points():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    rot = angles_to_rotation(20, -35, 70)
    dst = 3.5 * src @ rot.T + np.array([1.0, -2.0, 5.0])
    s, r, t = similarity_fit(src, dst)
    assert s == pytest.approx(3.5)
    assert np.allclose(r, rot)
    assert np.allclose(t, [1.0, -2.0, 5.0])


@pytest.mark.parametrize("pose", [(0, 0, 0), (25, 0, 0), (0, -20, 0), (0, 0, 30), (-30, 15, -20), (35, -10, 10)])
def test_pose_recovers_known_angles(pose):
    face = render_reference(128, *pose, scale=38.0)
    # predicted depth is relative (an unknown offset): add one to show it does not matter
    depth = np.where(face.mask, face.depth + 7.0, 0.0)
    p = pose_from_maps(depth, face.corr, face.mask)
    assert np.allclose([p.yaw, p.pitch, p.roll], pose, atol=1.0)
    assert p.scale == pytest.approx(38.0, rel=0.02)
    assert p.rms < 0.5


def test_pose_is_robust_to_noise_and_outliers():
    face = render_reference(128, 20, 10, -5)
    rng = np.random.default_rng(2)
    corr = face.corr + rng.normal(0, 0.01, face.corr.shape).astype(np.float32)
    depth = face.depth + rng.normal(0, 0.5, face.depth.shape).astype(np.float32)
    bad = rng.random(face.mask.shape) < 0.05
    corr[bad] = rng.random((int(bad.sum()), 3))
    p = pose_from_maps(np.where(face.mask, depth, 0), np.clip(corr, 0, 1), face.mask)
    assert np.allclose([p.yaw, p.pitch, p.roll], [20, 10, -5], atol=3.0)


def test_reference_tilt_is_removed_from_the_reported_angles():
    face = render_reference(96, 0, 0, 0)  # camera-frontal: the reference frame appears pitched by the tilt
    p = pose_from_maps(face.depth, face.corr, face.mask)
    assert np.allclose([p.yaw, p.pitch, p.roll], 0, atol=0.5)
    assert np.allclose(p.fit_rotation, reference_tilt(), atol=0.01)
    raw = pose_from_maps(face.depth, face.corr, face.mask, config=PoseConfig(reference_pitch_deg=0.0))
    assert raw.pitch == pytest.approx(load_reference().frontal_pitch_deg, abs=0.5)
    own = render_reference(96, 0, 0, 0, reference_pitch_deg=0.0)  # the reference in its own frame
    q = pose_from_maps(own.depth, own.corr, own.mask, config=PoseConfig(reference_pitch_deg=0.0))
    assert np.allclose([q.yaw, q.pitch, q.roll], 0, atol=0.5)


def test_photo_pose_turns_roll_back_by_the_crop_angle():
    from facevision.maps.pose import Pose, angles_to_rotation, photo_pose

    rot = angles_to_rotation(20.0, -10.0, 5.0)
    pose = Pose(yaw=20.0, pitch=-10.0, roll=5.0, rotation=rot, scale=1.0, translation=np.zeros(3), rms=0.0,
                fit_rotation=rot)
    # the crop was turned 30 deg clockwise (as seen) to level the eyes: in the photo the head rolls 30 deg clockwise more
    out = photo_pose(pose, 30.0)
    assert np.allclose(out.rotation, angles_to_rotation(0.0, 0.0, -30.0) @ rot)
    # a pure roll is recovered exactly
    flat = Pose(yaw=0.0, pitch=0.0, roll=5.0, rotation=angles_to_rotation(0, 0, 5.0), scale=1.0,
                translation=np.zeros(3), rms=0.0)
    assert photo_pose(flat, 30.0).roll == pytest.approx(-25.0)
    assert photo_pose(flat, 0.0) is flat


def test_pose_json_has_the_rotation_and_translation_of_the_api():
    """result.json's pose carries what the API's Pose has (issue #13): rotation, translation, fit rotation."""
    import json

    face = render_reference(128, 20.0, -10.0, 5.0)
    pose = pose_from_maps(face.depth, face.corr, face.mask)
    d = json.loads(json.dumps(pose.to_dict()))
    assert set(d) >= {"yaw", "pitch", "roll", "rotation", "translation_px", "scale_px", "fit_rotation", "rms_px"}
    np.testing.assert_allclose(d["rotation"], pose.rotation, atol=1e-6)
    np.testing.assert_allclose(d["rotation"], angles_to_rotation(d["yaw"], d["pitch"], d["roll"]), atol=1e-4)
    np.testing.assert_allclose(d["translation_px"], pose.translation, atol=1e-4)
    np.testing.assert_allclose(d["fit_rotation"], pose.fit_rotation, atol=1e-6)


def test_weighted_similarity_fit_ignores_zero_weight_outliers():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(60, 3))
    dst = 2.0 * src @ known_rotation(10.0, 5.0, -20.0).T + [1.0, 2.0, 3.0]
    dst[:10] += rng.normal(scale=5.0, size=(10, 3))  # outliers
    w = np.r_[np.zeros(10), np.ones(50)]
    s, rot, t = similarity_fit(src, dst, w)
    assert s == pytest.approx(2.0) and np.allclose(t, [1.0, 2.0, 3.0])
    assert np.allclose(rot, known_rotation(10.0, 5.0, -20.0))
    assert abs(similarity_fit(src, dst)[0] - 2.0) > 1e-3  # unweighted, the outliers do pull the fit


@pytest.mark.parametrize("config, field, value", [(LandmarkConfig, "k", 0), (LandmarkConfig, "max_offset_px", -0.5),
                                                  (LandmarkConfig, "min_pixels", 0), (PoseConfig, "min_pixels", 2),
                                                  (PoseConfig, "trim_factor", -1.0),
                                                  (PoseConfig, "reference_pitch_deg", float("inf"))])
def test_landmark_and_pose_configs_refuse_a_bad_value_naming_the_field(config, field, value):
    with pytest.raises(ValueError, match=rf"^{config.__name__}\.{field} must .*got {re.escape(repr(value))}$"):
        config(**{field: value})

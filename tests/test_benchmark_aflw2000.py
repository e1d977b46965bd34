"""AFLW2000-3D protocol on generated .mat files with known answers."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from facevision.face.images import atomic_write_png
from facevision.benchmark.aflw2000 import (AflwConfig, AflwPrediction, aflw_angles_to_ours, fallback_box, nearest_box,
                                           nme, read_annotation, run_benchmark, summarize, yaw_bin)

AFLW_ENV = "FACEVISION_AFLW2000_ROOT"


def _landmarks(rng: np.random.Generator, w: float = 100.0, h: float = 80.0) -> np.ndarray:
    lm = rng.uniform(0, 1, (68, 2)) * [w, h] + [50, 60]
    lm[0] = [50, 60]
    lm[1] = [50 + w, 60 + h]  # exact bounding box w x h
    return lm


def _write_photo(folder: Path, name: str, lm: np.ndarray, pitch: float, yaw: float, roll: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_png(folder / f"{name}.jpg.png", np.zeros((8, 8, 3), np.uint8))
    os.replace(folder / f"{name}.jpg.png", folder / f"{name}.jpg")  # PNG bytes behind .jpg: read_photo sniffs
    pt3d = np.vstack([lm.T, np.zeros((1, 68))])
    savemat(folder / f"{name}.mat", {"pt3d_68": pt3d, "Pose_Para": np.array([[pitch, yaw, roll, 0, 0, 0, 1e-3]])})
    return folder / f"{name}.jpg"


def test_nme_is_mean_distance_over_sqrt_box_area():
    lm = _landmarks(np.random.default_rng(0))
    assert nme(lm + [3.0, 4.0], lm) == pytest.approx(5.0 / math.sqrt(100 * 80))
    with pytest.raises(ValueError):
        nme(lm[:5], lm)


def test_yaw_bins_and_the_last_bin_takes_beyond_90():
    assert [yaw_bin(v) for v in (0, -29.9, 30, -59.9, 60, 90, -104.6)] == [0, 0, 1, 1, 2, 2, 2]


def test_angles_follow_facevision_signs():
    # 3DDFA: yaw > 0 turns the nose to the image left, roll > 0 is clockwise: both flip sign.
    yaw, pitch, roll = aflw_angles_to_ours(math.radians(10), math.radians(20), math.radians(30))
    assert (yaw, pitch, roll) == pytest.approx((-20.0, 10.0, -30.0))


def test_read_annotation_and_bad_file(tmp_path):
    lm = _landmarks(np.random.default_rng(1))
    photo = _write_photo(tmp_path, "image00001", lm, 0.1, 0.2, 0.3)
    ann = read_annotation(photo.with_suffix(".mat"))
    assert np.allclose(ann.landmarks, lm)
    assert ann.yaw == pytest.approx(-math.degrees(0.2))
    bad = tmp_path / "bad.mat"
    savemat(bad, {"pt3d_68": np.zeros((3, 5)), "Pose_Para": np.zeros((1, 7))})
    with pytest.raises(ValueError, match="bad.mat"):
        read_annotation(bad)


def test_summary_bins_mean3_and_pose_filter():
    recs = [
        {"yaw_gt": 10, "pitch_gt": 0, "roll_gt": 0, "nme": 0.02, "yaw": 12, "pitch": 1, "roll": -1},
        {"yaw_gt": -20, "pitch_gt": 0, "roll_gt": 0, "nme": 0.04, "yaw": -20, "pitch": 3, "roll": 1},
        {"yaw_gt": 45, "pitch_gt": 0, "roll_gt": 0, "nme": 0.06, "yaw": 40, "pitch": 0, "roll": 0},
        {"yaw_gt": -95, "pitch_gt": 0, "roll_gt": 0, "nme": 0.10, "yaw": -80, "pitch": 0, "roll": 0},
        {"yaw_gt": 70, "pitch_gt": -120, "roll_gt": 0, "nme": 0.12, "yaw": 0, "pitch": 0, "roll": 0},  # pose out of range
        {"yaw_gt": 5, "pitch_gt": 0, "roll_gt": 179, "nme": None, "yaw": None, "pitch": None, "roll": None},  # failed
    ]
    s = summarize(recs, AflwConfig())
    assert s["nme_bins"] == pytest.approx({"[0,30)": 3.0, "[30,60)": 6.0, "[60,90]": 11.0})
    assert s["nme_mean3"] == pytest.approx((3 + 6 + 11) / 3, abs=1e-3)
    assert s["nme_mean"] == pytest.approx((2 + 4 + 6 + 10 + 12) / 5, abs=1e-3)
    assert s["failed"] == 1 and s["pose_photos"] == 4
    assert s["pose_mae"]["yaw"] == pytest.approx((2 + 0 + 5 + 15) / 4)
    assert s["pose_mae"]["pitch"] == pytest.approx((1 + 3) / 4)
    assert s["pose_mae_mean"] == pytest.approx(np.mean([22 / 4, 1.0, 0.5]), abs=1e-2)


def test_pose_error_wraps_around_180():
    s = summarize([{"yaw_gt": 0, "pitch_gt": 0, "roll_gt": 95, "nme": 0.0, "yaw": 0, "pitch": 0, "roll": -175}])
    assert s["pose_mae"]["roll"] == pytest.approx(90.0)


def test_fallback_box_and_nearest_box():
    lm = np.array([[0.0, 0.0], [100.0, 50.0]])
    b = fallback_box(lm, AflwConfig(fallback_scale=1.0, fallback_shift=(0.0, 0.0)))
    assert b == pytest.approx((0.0, -25.0, 100.0, 75.0))
    assert nearest_box([(500, 500, 600, 600), (10, 0, 90, 50)], lm) == 1
    assert nearest_box([(0, 0, 60, 60), (20, 0, 90, 50)], lm) == 1  # both hold the centre (50, 25): nearest
    assert nearest_box([], lm) is None
    # another person's face beside this one is no detection of it: the fallback box stands in
    assert nearest_box([(110, 0, 200, 50), (-100, -100, 40, 20)], lm) is None


def test_run_benchmark_with_a_known_method(tmp_path):
    rng = np.random.default_rng(2)
    truth = {}
    for i, yaw in enumerate((0.1, 0.7, 1.3, -1.7)):  # bins 0, 1, 2, 2 (|yaw| 97 deg)
        lm = _landmarks(rng)
        truth[f"image{i:05d}.jpg"] = (lm, i + 1.0)
        _write_photo(tmp_path / "images", f"image{i:05d}", lm, 0.0, yaw, 0.0)

    def method(image, ann):
        shift = [k for k, (lm, _) in truth.items() if np.allclose(lm, ann.landmarks)][0]
        d = truth[shift][1]
        return AflwPrediction(landmarks=ann.landmarks + [d, 0.0], yaw=ann.yaw + d, pitch=ann.pitch, roll=ann.roll)

    s, recs = run_benchmark(tmp_path, method)
    norm = math.sqrt(100 * 80)
    assert s["nme_bins"]["[0,30)"] == pytest.approx(100 * 1 / norm, abs=1e-3)
    assert s["nme_bins"]["[60,90]"] == pytest.approx(100 * 3.5 / norm, abs=1e-3)
    assert s["pose_photos"] == 4 and s["pose_mae"]["yaw"] == pytest.approx(2.5, abs=1e-3)
    assert [r["photo"] for r in recs] == sorted(truth)


def test_part_errors_and_offsets_towards_the_turn(tmp_path):
    rng = np.random.default_rng(4)
    lm = _landmarks(rng)
    # AFLW yaw -0.2 rad is facevision's +11.5 deg (bin 0, nose to the image right); +0.8 rad is -45.8 deg (bin 1)
    _write_photo(tmp_path, "image00000", lm, 0.0, -0.2, 0.0)
    _write_photo(tmp_path, "image00001", lm, 0.0, 0.8, 0.0)

    def method(image, ann):
        out = ann.landmarks.copy()
        out[48:68] += [3.0, 2.0]  # the mouth only: 3 px to the image right, 2 px down
        return AflwPrediction(landmarks=out)

    s, recs = run_benchmark(tmp_path, method)
    norm = math.sqrt(100 * 80)
    for name, sign in (("[0,30)", 1.0), ("[30,60)", -1.0)):
        assert s["nme_groups"][name]["mouth"] == pytest.approx(100 * math.sqrt(13) / norm, abs=1e-3)
        assert s["offset_groups"][name]["mouth"] == pytest.approx([sign * 300 / norm, 200 / norm], abs=1e-3)
        for part in ("jaw", "brows", "nose", "eyes"):
            assert s["nme_groups"][name][part] == 0.0 and s["offset_groups"][name][part] == [0.0, 0.0]
    assert "[60,90]" not in s["nme_groups"]
    assert s["nme_bins"]["[0,30)"] == pytest.approx(100 * math.sqrt(13) / norm * 20 / 68, abs=1e-3)
    from facevision.commands.benchmark import format_table

    table = format_table(s)
    mouth = 100 * math.sqrt(13) / norm
    assert f"mouth {mouth:.2f} (+{300 / norm:.1f}, +{200 / norm:.1f})" in table
    assert f"mouth {mouth:.2f} (-{300 / norm:.1f}, +{200 / norm:.1f})" in table


def test_cli_json_on_generated_photos_uses_fallback_boxes(tmp_path, random_checkpoint):
    from facevision.cli import main

    rng = np.random.default_rng(3)
    for i in range(2):
        _write_photo(tmp_path, f"image{i:05d}", _landmarks(rng) + 40, 0.0, 0.2, 0.0)
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["benchmark", "aflw2000", str(tmp_path), "--checkpoint", str(random_checkpoint), "--json",
                   "--csv", str(tmp_path / "r.csv")])
    assert rc == 0
    out = json.loads(buf.getvalue())
    assert {"nme_mean3", "nme_bins", "pose_mae_mean"} <= set(out)
    assert out["photos"] == 2 and out["fallback_boxes"] == 2  # black photos: the detector finds nothing
    assert (tmp_path / "r.csv").read_text().count("\n") == 3


@pytest.mark.parametrize("field, value", [("limit", 0), ("passes", 0), ("pose_limit_deg", float("nan")),
                                          ("fallback_scale", -1.0), ("fallback_shift", (0.0,))])
def test_config_refuses_a_bad_value_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^AflwConfig\.{field} must .*got {re.escape(repr(value))}$"):
        AflwConfig(**{field: value})


@pytest.mark.parametrize("flag, must", [("--limit", "at least 1 or None"), ("--passes", "at least 1")])
def test_cli_names_the_flag_of_a_bad_value_before_loading_anything(tmp_path, capsys, flag, must):
    from facevision.cli import main

    assert main(["benchmark", "aflw2000", str(tmp_path / "nope"), flag, "0"]) == 2
    assert capsys.readouterr().err.strip() == f"facevision benchmark aflw2000: error: {flag} must be {must}, got 0"


def test_cli_passes_default_is_the_config_default():
    import argparse

    from facevision.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["benchmark"]
    p = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices["aflw2000"]
    passes = next(a for a in p._actions if a.dest == "passes")
    assert passes.default == AflwConfig.passes and f"(default {AflwConfig.passes})" in passes.help


def test_cli_missing_folder(tmp_path, capsys):
    from facevision.cli import main

    assert main(["benchmark", "aflw2000", str(tmp_path / "nope"), "--json"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_shared_aflw2000_first_photos_score_like_the_published_protocol():
    """Real photos (CI sets FACEVISION_AFLW2000_ROOT): the shipped network and the labeler on 30 photos."""
    root = os.environ.get(AFLW_ENV)
    if not root:
        pytest.skip(f"{AFLW_ENV} is not set: point it at an AFLW2000-3D folder to run the real-photo benchmark test")
    from facevision.benchmark.aflw2000 import labeler_method, network_method
    from facevision.predict.predictor import PredictConfig, Predictor

    cfg = AflwConfig(limit=30)
    net, _ = run_benchmark(root, network_method(Predictor.from_pretrained(config=PredictConfig(mesh=None)), cfg), cfg)
    lab, _ = run_benchmark(root, labeler_method(cfg), cfg)
    # near-frontal photos: both well below a mean-shape guess (~15 %) and far from perfect agreement
    assert 1.0 < net["nme_bins"]["[0,30)"] < 9.0
    assert 1.0 < lab["nme_bins"]["[0,30)"] < 6.0
    assert net["pose_mae_mean"] < 20.0


@pytest.mark.parametrize("pitch,yaw,roll", [(5.0, -10.0, 3.0), (-20.0, 80.0, 15.0), (30.0, -85.0, -40.0)])
def test_predicted_rotation_is_read_in_aflw_euler_order(pitch, yaw, roll):
    """A rotation built the way AFLW2000-3D builds it (R = Rx(pitch) Ry(yaw) Rz(roll), its own signs and its
    transposed elementary matrices) reads back as the annotation's angles after the sign change."""
    from facevision.benchmark.aflw2000 import angles_in_aflw_order

    p, y, r = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), np.sin(r), 0], [-np.sin(r), np.cos(r), 0], [0, 0, 1]])
    got = angles_in_aflw_order(rx @ ry @ rz)
    assert got == pytest.approx(aflw_angles_to_ours(p, y, r), abs=1e-9)


def test_facevision_angles_differ_from_aflw_order_at_large_yaw():
    from facevision.benchmark.aflw2000 import angles_in_aflw_order
    from facevision.maps.pose import angles_to_rotation

    assert angles_in_aflw_order(angles_to_rotation(10.0, 5.0, 3.0)) == pytest.approx((10.0, 5.0, 3.0), abs=1.5)
    far = angles_in_aflw_order(angles_to_rotation(75.0, 20.0, 10.0))
    assert abs(far[1] - 20.0) > 5.0  # the same rotation, other Euler angles: comparing raw angles would be wrong


def _strict_json(text: str) -> dict:
    """json.loads that refuses NaN / Infinity (which Python's json writes by default, and JSON does not allow)."""
    def refuse(name):
        raise ValueError(f"invalid JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _good_and_bad_folder(root: Path) -> None:
    """image00000: good (|yaw| 11 deg, bin 0 only); image00001: not a .mat file; image00002: wrong pt3d_68 shape;
    image00003: NaN in the annotation."""
    rng = np.random.default_rng(5)
    _write_photo(root, "image00000", _landmarks(rng), 0.0, 0.2, 0.0)
    _write_photo(root, "image00001", _landmarks(rng), 0.0, 0.2, 0.0)
    (root / "image00001.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated garbage \x00\x01\x02")
    _write_photo(root, "image00002", _landmarks(rng), 0.0, 0.2, 0.0)
    savemat(root / "image00002.mat", {"pt3d_68": np.zeros((3, 5)), "Pose_Para": np.zeros((1, 7))})
    lm = _landmarks(rng)
    lm[7] = np.nan
    _write_photo(root, "image00003", lm, 0.0, 0.2, 0.0)


def _exact(image, ann):
    return AflwPrediction(landmarks=ann.landmarks.copy(), yaw=ann.yaw, pitch=ann.pitch, roll=ann.roll)


def test_bad_mat_files_are_skipped_counted_and_named(tmp_path):
    _good_and_bad_folder(tmp_path)
    s, recs = run_benchmark(tmp_path, _exact)
    assert [r["photo"] for r in recs] == ["image00000.jpg"]
    assert s["photos"] == 1 and s["failed"] == 0 and s["nme_bins"]["[0,30)"] == 0.0
    assert s["bad_files"] == 3
    bad = {b["photo"]: b["error"] for b in s["bad_file_errors"]}
    assert sorted(bad) == ["image00001.jpg", "image00002.jpg", "image00003.jpg"]
    for name, error in bad.items():
        assert name.replace(".jpg", ".mat") in error
    assert "pt3d_68" in bad["image00002.jpg"] and "not finite" in bad["image00003.jpg"]


@pytest.mark.parametrize("landmarks", [np.full((68, 2), np.nan), np.full((68, 2), np.inf), np.zeros((5, 2))])
def test_unusable_landmarks_fail_that_photo_naming_it(tmp_path, landmarks):
    rng = np.random.default_rng(6)
    for i in range(2):
        _write_photo(tmp_path, f"image{i:05d}", _landmarks(rng), 0.0, 0.2, 0.0)

    calls = []

    def method(image, ann):  # the second photo (sorted by name) gets the unusable landmarks
        calls.append(1)
        return AflwPrediction(landmarks=landmarks if len(calls) == 2 else ann.landmarks.copy(), yaw=ann.yaw,
                              pitch=ann.pitch, roll=ann.roll)

    s, recs = run_benchmark(tmp_path, method)
    assert s["photos"] == 2 and s["failed"] == 1 and s["bad_files"] == 0
    assert recs[0]["nme"] == 0.0 and recs[1]["nme"] is None and "groups" not in recs[1]
    assert "image00001.jpg" in recs[1]["error"]
    assert math.isfinite(s["nme_mean"]) and s["pose_photos"] == 1


def test_non_finite_angles_fail_that_photo_naming_it(tmp_path):
    _write_photo(tmp_path, "image00000", _landmarks(np.random.default_rng(8)), 0.0, 0.2, 0.0)

    def method(image, ann):
        return AflwPrediction(landmarks=ann.landmarks.copy(), yaw=float("nan"), pitch=0.0, roll=0.0)

    s, recs = run_benchmark(tmp_path, method)
    assert s["failed"] == 1 and s["pose_photos"] == 0 and "image00000.jpg" in recs[0]["error"]
    assert "angles" in recs[0]["error"]


def test_method_value_error_fails_that_photo_and_the_run_goes_on(tmp_path):
    rng = np.random.default_rng(7)
    for i in range(2):
        _write_photo(tmp_path, f"image{i:05d}", _landmarks(rng), 0.0, 0.2, 0.0)
    calls = []

    def method(image, ann):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("crop is empty")
        return _exact(image, ann)

    s, recs = run_benchmark(tmp_path, method)
    assert s["failed"] == 1 and recs[1]["nme"] == 0.0
    assert "image00000.jpg" in recs[0]["error"] and "crop is empty" in recs[0]["error"]


def _run_cli(argv, monkeypatch, capsys):
    import facevision.benchmark.aflw2000 as aflw
    from facevision.cli import main

    monkeypatch.setattr(aflw, "labeler_method", lambda cfg, mirror_average=False: _exact)
    rc = main(["benchmark", "aflw2000", *argv, "--method", "labeler", "-q"])
    return rc, capsys.readouterr()


def test_cli_reports_bad_files_and_writes_valid_json(tmp_path, monkeypatch, capsys):
    _good_and_bad_folder(tmp_path)
    rc, io_ = _run_cli([str(tmp_path), "--json"], monkeypatch, capsys)
    assert rc == 0
    out = _strict_json(io_.out)  # empty yaw bins are null, not NaN
    assert out["nme_bins"] == {"[0,30)": 0.0, "[30,60)": None, "[60,90]": None}
    assert out["nme_mean3"] is None and out["photos"] == 1 and out["bad_files"] == 3
    assert [b["photo"] for b in out["bad_file_errors"]] == ["image00001.jpg", "image00002.jpg", "image00003.jpg"]
    for i in (1, 2, 3):  # stderr names each bad file once
        assert io_.err.count(f"image0000{i}.mat") == 1
    rc, io_ = _run_cli([str(tmp_path)], monkeypatch, capsys)
    assert rc == 0 and "3 bad files skipped" in io_.out.splitlines()[0]
    assert io_.err.count("image00002.mat") == 1


def test_json_safe_replaces_non_finite_numbers_with_null():
    from facevision.commands.benchmark import json_safe

    got = json_safe({"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf")}], "d": (2, None), "e": "nan",
                     "f": np.float64("nan"), "g": np.float32(0.5), "h": np.int64(3)})
    assert json.dumps(got, allow_nan=False) == ('{"a": null, "b": [1.5, null, {"c": null}], "d": [2, null], '
                                                '"e": "nan", "f": null, "g": 0.5, "h": 3}')


@pytest.mark.slow
def test_labeler_maps_read_out_reproduces_the_3ddfa_labeler(tmp_path, tddfa_dir):
    """The read-out's ceiling (--method labeler-maps): the 3DDFA_V2 labeler's own maps, rendered into predict's
    crop and read by predict's direct read-out, land where the labeler's landmarks do (real photos; needs the
    shared AFLW2000-3D half and 3DDFA folder)."""
    root, tddfa = os.environ.get(AFLW_ENV), tddfa_dir
    if not root:
        pytest.skip(f"{AFLW_ENV} is not set: point it at an AFLW2000-3D folder to run the 3DDFA_V2 read-out test")
    from data_prep.tddfa_files import load_tddfa_files
    from data_prep.tddfa_reference import write_tddfa_reference
    from facevision.benchmark.aflw2000 import labeler_maps_method, tddfa_labeler_method
    from facevision.predict.predictor import PredictConfig, Postprocessor

    ref = write_tddfa_reference(tmp_path / "reference.npz", load_tddfa_files(tddfa))
    post = Postprocessor(PredictConfig(mesh=None, fit=None, reference=str(ref)))
    cfg = AflwConfig(limit=20)
    maps, recs = run_benchmark(root, labeler_maps_method(tddfa, post, cfg), cfg)
    lab, _ = run_benchmark(root, tddfa_labeler_method(tddfa, cfg), cfg)
    assert maps["failed"] <= 1
    assert maps["nme_bins"]["[0,30)"] < 1.25 * lab["nme_bins"]["[0,30)"] < 6.0
    assert abs(maps["pose_mae_mean"] - lab["pose_mae_mean"]) < 2.0

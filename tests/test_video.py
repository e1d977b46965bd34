"""Video: smoothing, tracking and the whole run on a generated clip with a known path (a drawn face turning in
the image plane and moving, one black frame, the face leaving the frame and coming back), a corrupt file, the CLI;
the real clip (``FACEVISION_VIDEO``, 3DDFA's obama.mp4) when it is given."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from facevision.video.smoothing import OneEuroConfig, OneEuroFilter, jitter, savgol_smooth
from facevision.video.tracking import box_relation, tracked_crop

FPS = 25.0
N_FRAMES = 44
BLACK = 12  # a dropped frame
AWAY = range(28, 31)  # the face outside the frame


def true_roll(t: int) -> float:
    return 28.0 * np.sin(2 * np.pi * t / 32.0)


def true_centre(t: int) -> tuple[float, float]:
    return 150.0 + 2.5 * t, 170.0 + 20.0 * np.sin(2 * np.pi * t / 40.0)


def clip_frames():
    """(frames RGB, rolls): the drawn face (support.synthetic) turned by ``true_roll`` about its centre, which
    moves along ``true_centre`` on a 400 x 320 grey frame; frame BLACK is black, AWAY frames show no face."""
    import cv2

    from support.synthetic import drawn_face_photo

    face = drawn_face_photo(160)
    frames = []
    for t in range(N_FRAMES):
        frame = np.full((320, 400, 3), (70, 90, 110), np.uint8)
        if t == BLACK:
            frame[:] = 0
        elif t not in AWAY:
            cx, cy = true_centre(t)
            m = cv2.getRotationMatrix2D((79.5, 79.5), true_roll(t), 1.0)  # counter-clockwise as seen
            m[:, 2] += (cx - 79.5, cy - 79.5)
            frame = cv2.warpAffine(face, m, (400, 320), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=(70, 90, 110))
        frames.append(frame)
    return frames


def write_clip(path: Path, frames) -> Path:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, frames[0].shape[1::-1])
    assert w.isOpened()
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    return path


# smoothing


def test_one_euro_quiets_a_still_signal_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1.0, (200, 3))
    f = OneEuroFilter(FPS, OneEuroConfig(min_cutoff=1.0, beta=0.0))
    still = np.array([f.filter(x) for x in noise])
    assert still[50:].std() < 0.35 * noise[50:].std()
    # a fast ramp: with beta the cutoff rises with speed, so it lags less than without
    ramp = np.arange(100.0)[:, None] * 4.0
    lag = {}
    for beta in (0.0, 1.0):
        g = OneEuroFilter(FPS, OneEuroConfig(min_cutoff=1.0, beta=beta))
        out = np.array([g.filter(x) for x in ramp])
        lag[beta] = float((ramp - out)[50:].mean() / 4.0)  # in frames
    assert lag[1.0] < 0.5 < lag[0.0]
    g.reset()
    assert g.last is None and g.filter(np.array([7.0]))[0] == 7.0


def test_one_euro_speed_is_measured_in_the_given_unit():
    # the same motion of a face twice the size (in px) filters the same once speeds are in face sizes
    t = np.linspace(0, 2, 50)[:, None]
    small, large = 30 * np.sin(3 * t), 60 * np.sin(3 * t)
    a, b = (OneEuroFilter(FPS, OneEuroConfig(1.0, 1.0)) for _ in range(2))
    out_a = np.array([a.filter(x, 30.0) for x in small])
    out_b = np.array([b.filter(x, 60.0) for x in large])
    assert np.allclose(2 * out_a, out_b)


def test_savgol_has_no_lag_on_a_quadratic_and_jitter_measures_the_rest():
    t = np.arange(30.0)
    q = 0.3 * t ** 2 - 2 * t + 5
    assert np.allclose(savgol_smooth(q), q)
    assert jitter(q) < 1e-9
    wiggle = q + np.where(t % 2 == 0, 0.5, -0.5)
    assert jitter(wiggle) == pytest.approx(0.5, rel=0.15)  # the window fits part of the wiggle at the ends
    assert np.allclose(savgol_smooth(q[:4]), q[:4])  # too short a series comes back as it is


def test_config_checks_itself():
    from facevision.video.runner import VideoConfig

    with pytest.raises(ValueError, match="smoothing"):
        VideoConfig(smoothing="later")
    with pytest.raises(ValueError, match="redetect_every"):
        VideoConfig(redetect_every=-1)
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroConfig(min_cutoff=0.0)


# tracking


def test_tracked_crop_repeats_the_detected_box_and_levels_the_eyes():
    from support.synthetic import render_reference

    lm = render_reference(128, 0.0, 0.0, 0.0, scale=36.0).landmarks68 + [100.0, 50.0]
    box = (105.0, 70.0, 185.0, 160.0)
    rel = box_relation(box, lm)
    again, crop_box, angle = tracked_crop(lm, rel)
    assert np.allclose(again, box) and abs(angle) < 1.0
    # the same face turned by 30 deg counter-clockwise as seen: the crop turns with it
    c = lm.mean(0)
    a = np.radians(30.0)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # y down: counter-clockwise as seen
    _, _, angle = tracked_crop((lm - c) @ rot.T + c, rel)
    assert angle == pytest.approx(-30.0, abs=1.5)
    # upside down: the landmarks know it, so the crop turns by 180 deg (the keypoints' reading would not)
    _, _, angle = tracked_crop(2 * c - lm, rel)
    assert abs(abs(angle) - 180.0) < 1.5


# the whole run on a generated clip



@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "turning.mp4", clip_frames())


@pytest.fixture(scope="module")
def run(video_predictor, clip, tmp_path_factory):
    from facevision.video.runner import VideoConfig, run_video

    out = tmp_path_factory.mktemp("out") / "turning"
    summary = run_video(video_predictor, clip, out, VideoConfig(redetect_every=0))
    frames = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    return summary, frames, out


def test_generated_clip_follows_the_known_path(run):
    summary, frames, out = run
    assert summary["frames"] == N_FRAMES == len(frames)
    status = [f["status"] for f in frames]
    assert status[BLACK] == "no face" and all(status[t] == "no face" for t in AWAY)
    ok = [t for t in range(N_FRAMES) if status[t] == "ok"]
    assert len(ok) == N_FRAMES - 1 - len(AWAY)  # every frame with the face, also right after the gaps
    # tracked between detections: detected on the first frame and after each gap only
    assert sum(f["source"] == "detected" for f in frames if f["status"] == "ok") <= 3
    roll_err = [abs(frames[t]["pose_raw"][2] - true_roll(t)) for t in ok]
    assert np.median(roll_err) < 2.0 and max(roll_err) < 3.0, roll_err
    for t in ok:  # the landmarks sit on the face: their centre within 6 % of the face's size of the known one
        lm = np.asarray(frames[t]["landmarks68"])
        assert np.linalg.norm(lm.mean(0) - true_centre(t)) < 0.06 * 160, t
    assert (out / "overlay.mp4").stat().st_size > 10_000 and (out / "video.json").is_file()


def test_causal_smoothing_lags_at_most_a_frame_and_quiets_the_landmarks(run):
    _, frames, _ = run
    seg = [f for f in frames[BLACK + 1: AWAY.start] if f["status"] == "ok"]
    t = np.array([f["frame"] for f in seg])
    smooth = np.array([f["pose"][2] for f in seg])
    truth = np.array([true_roll(k) for k in t])
    # the lag that best aligns the smoothed roll with the truth, in frames (sub-frame by interpolation)
    shifts = np.linspace(-2, 3, 51)
    err = [np.abs(np.interp(t - s, t, truth)[4:-4] - smooth[4:-4]).mean() for s in shifts]
    assert shifts[int(np.argmin(err))] <= 1.0
    raw = np.array([f["landmarks68_raw"] for f in seg])
    sm = np.array([f["landmarks68"] for f in seg])
    assert jitter(sm) < jitter(raw)


def test_offline_smoothing_and_no_overlay(video_predictor, clip, tmp_path):
    from facevision.video.runner import VideoConfig, run_video

    s = run_video(video_predictor, clip, tmp_path / "c",
                  VideoConfig(smoothing="offline", overlay=False, max_frames=10))
    frames = [json.loads(line) for line in (tmp_path / "c" / "frames.jsonl").read_text().splitlines()]
    assert s["frames"] == 10 and not (tmp_path / "c" / "overlay.mp4").exists()
    raw = np.array([f["landmarks68_raw"] for f in frames])
    assert not np.allclose(raw, [f["landmarks68"] for f in frames])
    assert np.allclose(np.array([f["landmarks68"] for f in frames]), savgol_smooth(raw), atol=0.01)


def test_corrupt_and_missing_videos_are_one_clear_error(video_predictor, tmp_path):
    from facevision.video.frames import VideoReadError
    from facevision.video.runner import run_video

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(VideoReadError, match="broken.mp4"):
        run_video(video_predictor, bad, tmp_path / "out")
    with pytest.raises(VideoReadError, match="file not found"):
        run_video(video_predictor, tmp_path / "none.mp4", tmp_path / "out2")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_cli_runs_videos_and_photos_and_reports_a_bad_one(clip, tmp_path, capsys):
    from facevision.cli import main

    bad = tmp_path / "broken.mov"
    bad.write_bytes(b"not a video")
    out = tmp_path / "OUT"
    rc = main(["predict", str(clip), str(bad), "-o", str(out), "-q", "--smoothing", "none",
               "--redetect-every", "5"])
    err = capsys.readouterr().err
    assert rc == 1 and "broken.mov" in err and f"{N_FRAMES} frames" in err
    frames = [json.loads(line) for line in (out / "turning" / "frames.jsonl").read_text().splitlines()]
    assert frames[6]["landmarks68"] == frames[6]["landmarks68_raw"]  # smoothing none
    detected = [f["frame"] for f in frames if f["source"] == "detected" and f["status"] == "ok"]
    assert 0 in detected and 6 in detected  # the detector again every 5 tracked frames



def test_real_clip_decodes_what_it_can_and_smoothing_quiets_it(video_predictor, real_clip, tmp_path):
    from facevision.video.runner import VideoConfig, run_video

    s = run_video(video_predictor, real_clip, tmp_path / "real", VideoConfig(overlay=False))
    assert s["frames"] > 0 and s["counts"].get("ok", 0) == s["frames"]
    if s["header_frames"] > s["frames"]:
        assert s["not_decoded"] == s["header_frames"] - s["frames"]
    assert s["jitter"]["ratio"] <= 0.5  # smoothed landmark jitter at most half the raw one


def test_sequence_folder_reads_frames_in_name_order_and_a_bad_frame_is_blank(tmp_path, capsys):
    from PIL import Image

    from facevision.cli import main

    frames = clip_frames()[:8]
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"f{t:03d}.png")
    (folder / "f003.png").write_bytes(b"not a png")  # an unreadable frame: blank, marked, the run goes on
    out = tmp_path / "OUT"
    rc = main(["predict", str(folder), "--sequence", "--fps", "10", "-o", str(out), "-q", "--outputs", "maps"])
    assert rc == 0, capsys.readouterr().err
    recs = [json.loads(line) for line in (out / "frames" / "frames.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(8)) and recs[1]["time_s"] == pytest.approx(0.1)
    assert recs[3]["status"] == "no face" and all(r["status"] == "ok" for i, r in enumerate(recs) if i != 3)
    assert not (out / "frames" / "overlay.mp4").exists()  # --outputs without overlay


def test_the_clip_gets_one_identity_from_frames_spread_over_it(run, video_predictor):
    summary, frames, _ = run
    ident = summary["identity"]
    ok = [f["frame"] for f in frames if f["status"] == "ok"]
    assert ident is not None and 10 <= ident["frames"] <= 20  # VideoConfig.identity_frames, spread over the clip
    assert len(ident["id_coeffs"]) == video_predictor.face_model.n_id and np.all(np.isfinite(ident["id_coeffs"]))
    assert ident["rms_px"] < 0.05 * 128  # the shared code still fits every kept frame (the lost-face threshold)
    assert len(ok) > ident["frames"]

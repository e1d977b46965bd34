"""Benchmark of video runs (``pytest tests/test_bench_video.py --benchmark-enable``; in CI they run once as
ordinary tests): landmarks + pose + fit per frame of a real clip (``FACEVISION_VIDEO``, 3DDFA's obama.mp4,
1280 x 720), with and without the overlay video. Targets on the 2-core CPU: >= 25 frames/s without the overlay,
>= 12 with it; frames/s and the landmark jitter land in the benchmark's extra_info."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def real_clip():
    path = os.environ.get("FACEVISION_VIDEO")
    if not path or not Path(path).is_file():
        pytest.skip("FACEVISION_VIDEO is not set: point it at a real video (e.g. shared/datasets/video/obama.mp4)")
    return Path(path)


@pytest.fixture(scope="module")
def predictor():
    from facevision.predict.predictor import PredictConfig, Predictor
    from facevision.video.runner import VideoConfig

    return Predictor.from_pretrained(config=PredictConfig(mesh=None, fit=VideoConfig().fit))


@pytest.mark.parametrize("overlay", [False, True])
def test_bench_video(benchmark, predictor, real_clip, tmp_path, overlay):
    from facevision.video.runner import VideoConfig, run_video

    run_video(predictor, real_clip, tmp_path / "warm", VideoConfig(overlay=False, max_frames=2))  # first calls
    config = VideoConfig(overlay=overlay)
    s = benchmark.pedantic(run_video, (predictor, real_clip, tmp_path / "clip", config), rounds=1, iterations=1)
    benchmark.extra_info.update(frames=s["frames"], frames_per_s=s["frames_per_s"], jitter=s["jitter"])
    assert s["counts"].get("ok", 0) == s["frames"] > 0
    assert (tmp_path / "clip" / "overlay.mp4").is_file() == overlay

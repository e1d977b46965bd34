"""Benchmark of video runs (``pytest tests/test_bench_video.py --benchmark-enable``; in CI they run once as
ordinary tests): landmarks + pose + fit per frame of a real clip (``FACEVISION_VIDEO``, 3DDFA's obama.mp4,
1280 x 720), with and without the overlay video. Targets on the 2-core CPU: >= 25 frames/s without the overlay,
>= 12 with it; frames/s and the landmark jitter land in the benchmark's extra_info."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("overlay", [False, True])
def test_bench_video(benchmark, video_predictor, real_clip, tmp_path, overlay):
    from facevision.video.runner import VideoConfig, run_video

    run_video(video_predictor, real_clip, tmp_path / "warm", VideoConfig(overlay=False, max_frames=2))  # warm up
    config = VideoConfig(overlay=overlay)
    s = benchmark.pedantic(run_video, (video_predictor, real_clip, tmp_path / "clip", config), rounds=1,
                           iterations=1)
    benchmark.extra_info.update(frames=s["frames"], frames_per_s=s["frames_per_s"], jitter=s["jitter"])
    assert s["counts"].get("ok", 0) == s["frames"] > 0
    assert (tmp_path / "clip" / "overlay.mp4").is_file() == overlay

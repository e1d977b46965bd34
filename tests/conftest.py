"""Shared fixtures. Real-photo tests read LFW from $FACEVISION_LFW_ROOT and skip without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

LFW_ENV = "FACEVISION_LFW_ROOT"
TDDFA_ENV = "FACEVISION_TDDFA_DIR"
VIDEO_ENV = "FACEVISION_VIDEO"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that needs the real LFW photos (the ``lfw_root`` fixture, directly or through another
    fixture) carries the ``lfw`` marker, so ``-m "not lfw"`` leaves out exactly those."""
    for item in items:
        if "lfw_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lfw)


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """Folder of LFW photos laid out as <Person>/<Person>_NNNN.jpg (CI sets it to the shared copy)."""
    value = os.environ.get(LFW_ENV)
    if not value:
        pytest.skip(f"{LFW_ENV} is not set: point it at an LFW images_deepfunneled folder to run real-photo tests")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"{LFW_ENV}={value} is not a folder")
    return root


@pytest.fixture(scope="session")
def tddfa_dir() -> Path:
    """Folder of the 3DDFA / 3DDFA_V2 files (regressor and face model; CI sets it to the shared copy, which is
    never copied into the repository)."""
    value = os.environ.get(TDDFA_ENV)
    if not value:
        pytest.skip(f"{TDDFA_ENV} is not set: point it at a folder with the 3DDFA_V2 files (docs/data_prep.md) "
                    "to run the 3DDFA_V2 labeler tests")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"{TDDFA_ENV}={value} is not a folder")
    return root


@pytest.fixture(scope="session")
def real_clip() -> Path:
    """A real video file (CI sets it to the shared copy of 3DDFA's obama.mp4, never copied into the repository)."""
    value = os.environ.get(VIDEO_ENV)
    if not value or not Path(value).is_file():
        pytest.skip(f"{VIDEO_ENV} is not set to a file: point it at a real video (e.g. shared/datasets/video/obama.mp4)")
    return Path(value)


@pytest.fixture(scope="session")
def video_predictor():
    """The shipped checkpoint as a video run uses it (no mesh, the video fit)."""
    from facevision.predict.predictor import PredictConfig, Predictor
    from facevision.video.runner import VideoConfig

    return Predictor.from_pretrained(config=PredictConfig(mesh=None, fit=VideoConfig().fit))


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised generator whose mask head says 'face' everywhere: tests plumbing, not quality."""
    import torch

    from facevision.model.generator import DualUnetGenerator
    from facevision.model.checkpoint import save_generator

    torch.manual_seed(0)
    g = DualUnetGenerator()
    with torch.no_grad():
        g.mask_head[0].bias.fill_(5.0)
    return save_generator(tmp_path_factory.mktemp("ckpt") / "rand.safetensors", g)


@pytest.fixture(scope="session", autouse=True)
def _inference_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    """The inference-network cache (facevision.model.inference_cache) of the test session lives in a temporary
    folder, not in the user's ~/.cache (subprocesses inherit it)."""
    from facevision.model.inference_cache import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("inference_cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old

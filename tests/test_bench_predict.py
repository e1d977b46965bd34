"""Benchmarks of the per-face prediction path and each stage (128 x 128 crop, CPU, batch of one face).

Measure with ``pytest tests/test_bench_predict.py --benchmark-enable``; in CI they run once as ordinary
tests. Target on a 2-core CPU: whole per-face path (detect, crop, network, maps, landmarks, pose, mesh)
under 100 ms, under 30 ms without the mesh; writing files is measured separately.

The network is the real generator architecture with random weights (same cost as trained weights), run as
``predict`` runs it on a CPU (``onnx``: exported to ONNX, ONNX Runtime; the default) or as its fallback
(``torchscript``: the TorchScript-frozen copy);
the maps after it are a rendered reference face (realistic mask size, unlike random weights' output),
so landmarks, pose and meshing cost what they cost on a real face.
"""
from __future__ import annotations

import numpy as np
import pytest

from facevision.face.crop import crop_image
from facevision.maps.landmarks import landmarks_from_corr
from facevision.maps.pose import pose_from_maps
from facevision.predict.predictor import PredictConfig, Predictor
from support.synthetic import render_reference

S = 128
BOX = (40, 20, 296, 276)


@pytest.fixture(scope="module")
def face():
    return render_reference(S, 10, -5, 3)


@pytest.fixture(scope="module")
def generator():
    import torch

    from facevision.model.generator import DualUnetGenerator

    torch.manual_seed(0)
    return DualUnetGenerator().eval()


def _costly_fixed_maps(generator, face):
    """Runs the real network (for its cost) and returns the rendered face's maps."""
    from torch import nn

    from support.synthetic import fixed_maps_model

    fixed = fixed_maps_model(face.depth, face.corr, face.mask)

    class Costly(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.fixed = generator, fixed

        def forward(self, x):
            # the network's outputs feed the result (times 0), so a frozen TorchScript copy cannot drop it
            return tuple(f + 0.0 * n for f, n in zip(self.fixed(x), self.net(x)))

    return Costly()


RUNTIMES = ["onnx", "torchscript"]


def _predictor(model, config: PredictConfig, runtime: str) -> Predictor:
    """``model`` (torch) in a Predictor as ``predict`` runs it on a CPU: exported to ONNX, or TorchScript-frozen."""
    if runtime == "onnx":
        from facevision.model.onnx_network import OnnxNetwork, export_onnx

        return Predictor(OnnxNetwork(export_onnx(model, S), config.threads), config)
    return Predictor(model, config)


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(0).integers(0, 255, (300, 330, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def crop(photo):
    return crop_image(photo, BOX, S)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_bench_network(benchmark, generator, crop, runtime):
    p = _predictor(generator, PredictConfig(mesh=None), runtime)
    d, c, m = benchmark(p.run_network, crop[None])
    assert d.shape == (1, S, S)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("batch", [8])
def test_bench_network_batched_per_call(benchmark, generator, crop, batch, runtime):
    p = _predictor(generator, PredictConfig(mesh=None, batch_size=batch), runtime)
    crops = np.repeat(crop[None], batch, axis=0)
    d, _, _ = benchmark(p.run_network, crops)
    assert d.shape == (batch, S, S)


def test_bench_landmarks(benchmark, face):
    lm = benchmark(landmarks_from_corr, face.corr, face.mask)
    assert np.median(np.linalg.norm(lm.points - face.landmarks68, axis=1)) < 0.3


def test_bench_pose(benchmark, face):
    p = benchmark(pose_from_maps, face.depth, face.corr, face.mask)
    assert abs(p.yaw - 10) < 1 and abs(p.pitch + 5) < 1 and abs(p.roll - 3) < 1


def test_bench_crop(benchmark, photo):
    out = benchmark(crop_image, photo, BOX, S)
    assert out.shape == (S, S, 3)


def test_bench_detect(benchmark, lfw_root):
    from facevision.face.detect import detect_faces
    from facevision.face.images import read_photo

    path = lfw_root / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    image = read_photo(path)
    detect_faces(image)  # create the detector outside the timing
    faces = benchmark(detect_faces, image)
    assert len(faces) == 1


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("with_mesh", [False, True], ids=["no_mesh", "mesh"])
def test_bench_face_after_detection(benchmark, generator, face, crop, with_mesh, runtime):
    """crop -> network -> maps -> landmarks -> pose (-> mesh): everything but detect and crop."""
    from meshing import MeshConfig

    p = _predictor(_costly_fixed_maps(generator, face), PredictConfig(mesh=MeshConfig() if with_mesh else None),
                   runtime)
    res = benchmark(p.predict_crops, crop[None], [BOX])
    assert res[0].ok and (res[0].mesh is not None) == with_mesh


def test_bench_face_after_detection_mirror_average(benchmark, generator, face, crop):
    """The same without the mesh, with ``--mirror-average`` (the network on the crop and its mirror image)."""
    p = Predictor(_costly_fixed_maps(generator, face), PredictConfig(mesh=None, mirror_average=True))
    res = benchmark(p.predict_crops, crop[None], [BOX])
    assert res[0].ok and res[0].pose is not None


def test_bench_whole_path_on_a_photo(benchmark, lfw_root, generator, face):
    """Photo -> detect -> crop -> network -> maps -> landmarks -> pose -> mesh (the issue's per-face path)."""
    from facevision.face.images import read_photo

    path = lfw_root / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    image = read_photo(path)
    p = Predictor(_costly_fixed_maps(generator, face))
    p(image)
    res = benchmark(p, image)
    assert len(res) == 1 and res[0].mesh is not None


def test_bench_write(benchmark, tmp_path, generator, face, crop, photo):
    from facevision.predict.outputs import write_face

    p = Predictor(_costly_fixed_maps(generator, face))
    res = p.predict_crops(crop[None], [BOX])[0]
    data = benchmark(write_face, tmp_path / "face0", res, photo)
    assert data["status"] == "ok"

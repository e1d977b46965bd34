"""Mirror averaging of the network's maps (``PredictConfig.mirror_average``, ``--mirror-average``).

Ground truth: the reference face rendered at (yaw, pitch, roll) and at its mirror pose (-yaw, pitch, -roll).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facevision.model.outputs import depth_to_network, unmirror_outputs
from facevision.predict.predictor import PredictConfig, Predictor
from support.synthetic import fixed_maps_model, render_reference

S = 128
POSE = (20.0, -5.0, 8.0)
TILT_PX = 6.0  # the stand-in network's one-sided error: depth + TILT_PX * (column - centre) / (S / 2)


def _raw(face) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A synthetic face's maps as the network's raw outputs (batch of 1), as the stand-in network gives them."""
    return tuple(t.clone() for t in fixed_maps_model(face.depth, face.corr, face.mask)(torch.zeros(1, 3, S, S)))


@pytest.fixture(scope="module")
def faces():
    yaw, pitch, roll = POSE
    return render_reference(S, yaw, pitch, roll), render_reference(S, -yaw, pitch, -roll)


def test_unmirror_outputs_of_the_mirror_pose_give_the_face_itself(faces):
    face, mirrored = faces
    depth, corr, logits = unmirror_outputs(_raw(mirrored))
    mask = logits[0, 0].numpy() > 0
    both = mask & face.mask
    assert both.sum() > 0.98 * face.mask.sum()  # the same pixels, up to ties on the silhouette
    assert np.abs(depth[0, 0].numpy() * S - face.depth)[both].max() < 1e-3
    assert np.abs(corr[0].permute(1, 2, 0).numpy() - face.corr)[both].max() < 1e-4
    # and a second mirroring undoes the first
    again = unmirror_outputs(unmirror_outputs(_raw(face)))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(again, _raw(face)))


class OneSidedNet(torch.nn.Module):
    """A stand-in network that knows one crop and its mirror image: it returns the true maps of the face it
    is shown, with depth tilted towards one side of its input (an error that is not mirror symmetric)."""

    def __init__(self, crop: np.ndarray, faces) -> None:
        super().__init__()
        self.crop = torch.from_numpy(crop).permute(2, 0, 1).float() / 255.0
        self.maps = [_raw(f) for f in faces]
        cols = torch.arange(S, dtype=torch.float32)
        self.tilt = depth_to_network(TILT_PX * (cols - (S - 1) / 2.0) / (S / 2.0), S)

    def forward(self, x: torch.Tensor):
        outs = []
        for image in x:
            if torch.equal(image, self.crop):
                outs.append(self.maps[0])
            elif torch.equal(image, self.crop.flip(-1)):
                outs.append(self.maps[1])
            else:
                raise AssertionError("the stand-in network was shown an unknown crop")
        depth, corr, logits = (torch.cat(t) for t in zip(*outs))
        return depth + self.tilt * (logits > 0), corr, logits


def test_mirror_average_cancels_a_one_sided_error(faces):
    face, _ = faces
    crop = np.random.default_rng(0).integers(0, 255, (S, S, 3), dtype=np.uint8)
    box = [(0, 0, S, S)]
    plain = Predictor(OneSidedNet(crop, faces), PredictConfig(mesh=None, freeze=False)).predict_crops(crop[None], box)[0]
    averaged = Predictor(OneSidedNet(crop, faces), PredictConfig(mesh=None, freeze=False, mirror_average=True)
                         ).predict_crops(crop[None], box)[0]
    for res in (plain, averaged):
        assert res.ok, res.error
    inside = averaged.mask & face.mask
    assert inside.sum() > 0.98 * face.mask.sum()
    err_plain = np.abs(plain.depth_px - face.depth)[inside]
    err_avg = np.abs(averaged.depth_px - face.depth)[inside]
    assert err_plain.max() > 0.3 * TILT_PX  # the error is there without averaging ...
    assert err_avg.max() < 1e-3  # ... and gone with it
    assert np.abs(averaged.corr - face.corr)[inside].max() < 1e-4
    truth = np.array(POSE)
    pose = lambda r: np.array([r.pose.yaw, r.pose.pitch, r.pose.roll])  # noqa: E731
    assert np.abs(pose(averaged) - truth).max() < 1.5
    assert np.abs(pose(averaged) - truth).max() < np.abs(pose(plain) - truth).max()


def test_mirror_average_is_off_by_default():
    assert PredictConfig().mirror_average is False

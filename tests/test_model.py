"""Generator / discriminator shapes, ranges and the PatchGAN receptive field."""
from __future__ import annotations

import pytest
import torch

from facevision.model.config import ModelConfig
from facevision.model.discriminator import PatchDiscriminator, receptive_field
from facevision.model.generator import DualUnetGenerator
from facevision.model.discriminator import PATCH_LAYERS


@pytest.fixture(scope="module")
def generator() -> DualUnetGenerator:
    torch.manual_seed(0)
    return DualUnetGenerator(ModelConfig()).eval()


def test_generator_shapes_and_ranges(generator: DualUnetGenerator) -> None:
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        out = generator(x)
    assert out.depth.shape == (2, 1, 128, 128)
    assert out.corr.shape == (2, 3, 128, 128)
    assert out.mask_logits.shape == (2, 1, 128, 128)
    for t in (out.depth, out.corr):
        assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert torch.isfinite(out.mask_logits).all()


def test_decoders_are_separate_and_encoder_shared(generator: DualUnetGenerator) -> None:
    dec_d = {id(p) for p in generator.depth_decoder.parameters()}
    dec_c = {id(p) for p in generator.corr_decoder.parameters()}
    assert dec_d.isdisjoint(dec_c)
    # both heads depend on the shared encoder: its gradient receives contributions from each task
    x = torch.rand(1, 3, 64, 64)
    for pick in (lambda o: o.depth.sum(), lambda o: o.corr.sum()):
        generator.zero_grad()
        pick(generator(x)).backward()
        grads = [p.grad for p in generator.encoder.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    generator.zero_grad()


def test_generator_rejects_bad_size(generator: DualUnetGenerator) -> None:
    with pytest.raises(ValueError, match="divisible by 32"):
        generator(torch.rand(1, 3, 100, 100))


def test_receptive_field_from_layer_config_is_70() -> None:
    assert receptive_field(PATCH_LAYERS) == 70
    assert PatchDiscriminator(4).receptive_field == 70
    assert receptive_field([(3, 1)]) == 3 and receptive_field([(4, 2), (4, 2)]) == 10


def test_receptive_field_measured_by_gradient_is_70() -> None:
    """Back-propagate from one interior output patch: the input support must be 70x70.

    Instance norm mixes statistics of the whole map, so it is replaced by identity to measure
    the convolution stack's own receptive field.
    """
    torch.manual_seed(0)
    d = PatchDiscriminator(4, base_channels=8)
    for i, m in enumerate(d.net):
        if isinstance(m, torch.nn.InstanceNorm2d):
            d.net[i] = torch.nn.Identity()
    for m in d.modules():  # make every weight positive so no gradient cancels by chance
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.uniform_(m.weight, 0.01, 0.02)
    d.eval()
    img = torch.rand(1, 3, 160, 160, requires_grad=True)
    dep = torch.rand(1, 1, 160, 160)
    out = d(img, dep)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    support = img.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(support, as_tuple=True)
    assert int(rows.max() - rows.min() + 1) == 70
    assert int(cols.max() - cols.min() + 1) == 70


def test_discriminator_output_patches() -> None:
    d = PatchDiscriminator(6)
    out = d(torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128))
    assert out.shape == (2, 1, 14, 14)


def test_frozen_inference_model_matches_eager(generator: DualUnetGenerator) -> None:
    from facevision.model.inference import freeze_for_inference

    frozen = freeze_for_inference(generator, 64)
    assert isinstance(frozen, torch.jit.ScriptModule)
    x = torch.rand(3, 3, 64, 64)  # another batch size than the traced one
    with torch.no_grad():
        for a, b in zip(generator(x), frozen(x)):
            assert torch.allclose(a, b, atol=1e-3)


def test_freeze_falls_back_to_the_eager_model() -> None:
    from facevision.model.inference import freeze_for_inference

    class Untraceable(torch.nn.Module):
        def forward(self, x):
            return x.sum() if float(x.mean()) > 2 else None  # data-dependent Python and a None output

    m = Untraceable()
    assert freeze_for_inference(m, 32) is m

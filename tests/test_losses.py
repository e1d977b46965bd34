"""Loss functions: masking, kornia gradients, GAN formulations."""
from __future__ import annotations

import pytest
import torch

from facevision.train.losses import adversarial_loss, discriminator_loss, gradient_l1, masked_l1, task_loss


def test_masked_l1_ignores_background() -> None:
    target = torch.zeros(1, 1, 8, 8)
    pred = torch.zeros(1, 1, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1
    pred[..., 4:] = 5.0  # error only in the background
    assert float(masked_l1(pred, target, mask)) == 0.0
    pred[..., :4] = 0.5
    assert float(masked_l1(pred, target, mask)) == pytest.approx(0.5)


def test_gradient_l1_sees_slope_not_offset() -> None:
    ramp = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    mask = torch.ones(1, 1, 16, 16)
    assert float(gradient_l1(ramp + 0.3, ramp, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(gradient_l1(2 * ramp, ramp, mask)) > 1e-3


def test_gan_modes() -> None:
    logits = torch.full((1, 1, 4, 4), 3.0)
    assert float(adversarial_loss(logits, True, "lsgan")) == pytest.approx(4.0)
    assert float(adversarial_loss(logits, True, "vanilla")) < float(adversarial_loss(logits, False, "vanilla"))
    assert float(discriminator_loss(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "lsgan")) == 0.0
    with pytest.raises(ValueError, match="gan_mode"):
        adversarial_loss(logits, True, "wgan")


def test_task_loss_weights() -> None:
    pred, target, mask = torch.full((1, 1, 8, 8), 0.2), torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    out = task_loss(pred, target, mask, torch.ones(1, 1, 2, 2), l1_weight=10.0, grad_weight=0.0, adv_weight=1.0,
                    gan_mode="lsgan")
    assert float(out["total"]) == pytest.approx(10.0 * 0.2 + float(out["adv"]))

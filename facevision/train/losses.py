"""Generator and discriminator losses (kornia image gradients, masked L1, LSGAN / vanilla GAN)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import spatial_gradient


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over pixels where mask (B, 1, H, W) is 1, averaged over channels."""
    weight = mask.expand_as(pred)
    return (weight * (pred - target).abs()).sum() / weight.sum().clamp_min(1.0)


def erode_mask(mask: torch.Tensor, pixels: int = 1) -> torch.Tensor:
    """Binary erosion of a (B, 1, H, W) {0, 1} mask by a (2p+1)^2 square."""
    k = 2 * pixels + 1
    return 1.0 - F.max_pool2d(1.0 - mask, k, stride=1, padding=pixels)


def gradient_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 between Sobel image gradients (kornia) of pred and target.

    The mask is eroded by one pixel so the label's jump at the face border does not count.
    """
    gp = spatial_gradient(pred, mode="sobel")  # (B, C, 2, H, W)
    gt = spatial_gradient(target, mode="sobel")
    inner = erode_mask(mask).unsqueeze(2).expand_as(gp)
    return (inner * (gp - gt).abs()).sum() / inner.sum().clamp_min(1.0)


def adversarial_loss(logits: torch.Tensor, real: bool, gan_mode: str = "lsgan") -> torch.Tensor:
    """GAN loss of PatchGAN logits against an all-real or all-fake target."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if gan_mode == "lsgan":
        return F.mse_loss(logits, target)
    if gan_mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    raise ValueError(f"unknown gan_mode {gan_mode!r} (use 'lsgan' or 'vanilla')")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, gan_mode: str = "lsgan") -> torch.Tensor:
    """Standard discriminator loss: 0.5 * (loss(real, 1) + loss(fake, 0))."""
    return 0.5 * (adversarial_loss(real_logits, True, gan_mode) + adversarial_loss(fake_logits, False, gan_mode))


def task_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, fake_logits: torch.Tensor | None,
              l1_weight: float, grad_weight: float, adv_weight: float, gan_mode: str) -> dict[str, torch.Tensor]:
    """Paper Eq. 1 for one task: adversarial + l1_weight * L1 + grad_weight * gradient L1."""
    l1 = masked_l1(pred, target, mask)
    grad = gradient_l1(pred, target, mask)
    adv = adversarial_loss(fake_logits, True, gan_mode) if fake_logits is not None else pred.new_zeros(())
    return {"l1": l1, "grad": grad, "adv": adv, "total": adv_weight * adv + l1_weight * l1 + grad_weight * grad}

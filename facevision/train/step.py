"""One optimisation step of the generator and both discriminators."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F

from facevision.train.config import TrainConfig
from facevision.train.losses import discriminator_loss, task_loss


def gan_step(generator: torch.nn.Module, disc_depth: torch.nn.Module, disc_corr: torch.nn.Module,
             opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
             cfg: TrainConfig, autocast: Callable[[], ContextManager] = nullcontext,
             scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """Update both discriminators, then the generator; returns the step's losses as floats.

    Fake maps shown to the discriminators are the predictions times the predicted mask
    probability, so the discriminators also judge where the face ends; real maps are the
    labels (background 0).
    """
    scaler = scaler or torch.amp.GradScaler("cuda", enabled=False)
    img, mask = batch["image"], batch["mask"]
    with autocast():
        pred = generator(img)
        mask_prob = torch.sigmoid(pred.mask_logits)
        fake_d, fake_c = pred.depth * mask_prob, pred.corr * mask_prob
        loss_d = discriminator_loss(disc_depth(img, batch["depth"]), disc_depth(img, fake_d.detach()), cfg.gan_mode) \
            + discriminator_loss(disc_corr(img, batch["corr"]), disc_corr(img, fake_c.detach()), cfg.gan_mode)
    opt_d.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.step(opt_d)
    for d in (disc_depth, disc_corr):
        d.requires_grad_(False)
    try:
        with autocast():
            ld = task_loss(pred.depth.float(), batch["depth"], mask, disc_depth(img, fake_d),
                           cfg.l1_weight, cfg.grad_weight, cfg.adv_weight, cfg.gan_mode)
            lc = task_loss(pred.corr.float(), batch["corr"], mask, disc_corr(img, fake_c),
                           cfg.l1_weight, cfg.grad_weight, cfg.adv_weight, cfg.gan_mode)
            lm = F.binary_cross_entropy_with_logits(pred.mask_logits.float(), mask)
            loss_g = ld["total"] + lc["total"] + cfg.mask_weight * lm
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)
        scaler.update()
    finally:
        for d in (disc_depth, disc_corr):
            d.requires_grad_(True)
    return {"loss_g": float(loss_g.detach()), "loss_d": float(loss_d.detach()),
            "depth_l1": float(ld["l1"].detach()), "corr_l1": float(lc["l1"].detach()),
            "depth_grad": float(ld["grad"].detach()), "corr_grad": float(lc["grad"].detach()),
            "mask_bce": float(lm.detach())}

"""Training configuration (one dataclass)."""
from __future__ import annotations

from dataclasses import dataclass

from facevision.common.checks import check_choice, check_int, check_number
from facevision.config import DictConfig

GAN_MODES = ("lsgan", "vanilla")


@dataclass
class TrainConfig(DictConfig):
    """Optimisation and loss settings; checked when built (ValueError naming the field).

    Loss per task t in {depth, corr} (paper Eq. 1):
        L_G,t = adv_weight * L_adv,t + l1_weight * L1(pred, label) + grad_weight * L1(grad pred, grad label)
    with L1 terms averaged over the label's face mask (background carries no label), plus
    mask_weight * BCE(mask logits, label mask) for the face-mask head.
    gan_mode "lsgan" (least squares, default: non-saturating, smoother gradients and more stable
    with small batches) or "vanilla" (binary cross-entropy, as in the original GAN/pix2pix).
    l1_weight 100 follows pix2pix; maps are in [0, 1] so their L1 terms are ~1e-2.
    decay_epochs: as pix2pix, keep the learning rates constant, then decay them linearly to 0 over
    the last ``decay_epochs`` epochs (0 = constant). Computed from the global step, so resume-safe.
    lr, lr_disc: 0 freezes the weights (batch-norm statistics still move). epochs 0 only sets the run up.
    """

    epochs: int = 20
    batch_size: int = 16
    lr: float = 2e-4
    lr_disc: float = 2e-4
    decay_epochs: int = 0
    betas: tuple[float, float] = (0.5, 0.999)
    gan_mode: str = "lsgan"
    adv_weight: float = 1.0
    l1_weight: float = 100.0
    grad_weight: float = 50.0
    mask_weight: float = 10.0
    augment: bool = True
    num_workers: int = 2
    seed: int = 0
    vis_samples: int = 8
    max_steps_per_epoch: int | None = None
    amp: bool = True

    def __post_init__(self) -> None:
        check_int(self, "batch_size", low=1)
        for name in ("lr", "lr_disc", "adv_weight", "l1_weight", "grad_weight", "mask_weight"):
            check_number(self, name, low=0, finite=False)
        for name in ("epochs", "decay_epochs", "num_workers", "seed", "vis_samples"):
            check_int(self, name, low=0)
        if len(self.betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        check_choice(self, "gan_mode", GAN_MODES)
        check_int(self, "max_steps_per_epoch", low=1, optional=True)

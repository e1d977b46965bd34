"""``facevision train``: train the dual U-Net GAN on a facevision dataset."""
from __future__ import annotations

import argparse

from facevision.commands.errors import config_errors, fail, reports_errors
from facevision.model.config import ModelConfig
from facevision.train.config import TrainConfig

PROG = "facevision train"
_DEFAULTS = TrainConfig()
# TrainConfig's and ModelConfig's fields as the command line names them (their ValueErrors name the field)
_FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "lr_disc": "--lr-disc",
          "decay_epochs": "--decay-epochs", "gan_mode": "--gan-mode", "adv_weight": "--adv-weight",
          "l1_weight": "--l1-weight", "grad_weight": "--grad-weight", "mask_weight": "--mask-weight",
          "num_workers": "--workers", "seed": "--seed", "max_steps_per_epoch": "--max-steps-per-epoch",
          "encoder_name": "--encoder", "encoder_weights": "--encoder-weights"}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", help="train the depth + correspondence generator on a prepared dataset",
        description="Train the shared-encoder dual U-Net generator with two PatchGAN discriminators. "
                    "Multi-GPU: torchrun --nproc_per_node=N -m facevision train ...",
    )
    p.add_argument("--data", required=True, help="dataset folder written by `facevision prepare` (has manifest.json)")
    p.add_argument("--out", required=True,
                   help="run folder: checkpoints, log.csv, curves.png (losses and validation metrics per epoch), vis/ grids")
    p.add_argument("--epochs", type=int, default=_DEFAULTS.epochs, help="epochs to train (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size,
                   help="images per step (default %(default)s)")
    p.add_argument("--lr", type=float, default=_DEFAULTS.lr, help="generator learning rate, Adam (default %(default)s)")
    p.add_argument("--lr-disc", type=float, default=_DEFAULTS.lr_disc,
                   help="discriminator learning rate, Adam (default %(default)s)")
    p.add_argument("--decay-epochs", type=int, default=_DEFAULTS.decay_epochs,
                   help="decay the learning rates linearly to 0 over the last N epochs (default %(default)s: constant)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default %(default)s: a GPU if usable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("--init", type=str, default=None, metavar="CKPT",
                   help="start a new run from this generator .safetensors (fine-tuning; its architecture is used)")
    p.add_argument("--encoder", default=ModelConfig.encoder_name,
                   help="segmentation-models-pytorch encoder name (default %(default)s)")
    p.add_argument("--encoder-weights", default=None, help="e.g. imagenet, if present in your local cache (default: none)")
    p.add_argument("--gan-mode", choices=["lsgan", "vanilla"], default=_DEFAULTS.gan_mode,
                   help="adversarial loss: lsgan = least squares, vanilla = binary cross-entropy (default %(default)s)")
    p.add_argument("--l1-weight", type=float, default=_DEFAULTS.l1_weight,
                   help="lambda_1 of Eq. 1, weight of the masked L1 map loss (default %(default)s)")
    p.add_argument("--grad-weight", type=float, default=_DEFAULTS.grad_weight,
                   help="lambda_g of Eq. 1, weight of the masked L1 gradient loss (default %(default)s)")
    p.add_argument("--adv-weight", type=float, default=_DEFAULTS.adv_weight,
                   help="weight of the adversarial term of Eq. 1 (default %(default)s)")
    p.add_argument("--mask-weight", type=float, default=_DEFAULTS.mask_weight,
                   help="weight of the face-mask head's BCE loss (default %(default)s)")
    p.add_argument("--no-augment", action="store_true",
                   help="train without augmentation (default: augment: colour, blur, noise, JPEG, grayscale, "
                        "rotation, shift, flip)")
    p.add_argument("--workers", type=int, default=_DEFAULTS.num_workers,
                   help="data loader processes (default %(default)s)")
    p.add_argument("--max-steps-per-epoch", type=int, default=None,
                   help="cap batches per epoch, for quick runs (default: no cap)")
    p.add_argument("--save-every-steps", type=int, default=200,
                   help="also checkpoint mid-epoch every N steps (default %(default)s; 0 = off)")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA (default: bf16 on CUDA)")
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                   help="random seed of initialisation, shuffling and augmentation (default %(default)s)")
    p.set_defaults(func=run)
    return p


@reports_errors(PROG)
def run(args: argparse.Namespace) -> int:
    from data_prep.dataset_format import DatasetFormatError
    from facevision.model.checkpoint import CheckpointError
    from facevision.train.loop import RunFolderError, train

    with config_errors(PROG, _FLAGS):
        cfg = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_disc=args.lr_disc,
            decay_epochs=args.decay_epochs, gan_mode=args.gan_mode, adv_weight=args.adv_weight,
            l1_weight=args.l1_weight, grad_weight=args.grad_weight, mask_weight=args.mask_weight,
            augment=not args.no_augment, num_workers=args.workers, seed=args.seed,
            max_steps_per_epoch=args.max_steps_per_epoch, amp=not args.no_amp,
        )
        model_cfg = ModelConfig(encoder_name=args.encoder, encoder_weights=args.encoder_weights)
    try:
        if args.resume:
            _check_resume_space(args.out, args.data)
        train(args.data, args.out, cfg, model_cfg, device=args.device, resume=args.resume,
              save_every_steps=args.save_every_steps, init_generator=args.init)
    except (DatasetFormatError, RunFolderError, CheckpointError, ValueError) as exc:
        return fail(PROG, exc)
    except OSError as exc:  # facevision.face.images.OutputWriteError: a checkpoint or log could not be written (disk full...)
        return fail(PROG, exc, code=1)
    return 0


def _check_resume_space(out: str, data: str) -> None:
    """A resumed run keeps learning maps of the correspondence space it began with: DatasetFormatError naming both
    datasets when ``data`` is labelled in another space than the run's first dataset (``OUT/config.json``)."""
    import json
    from pathlib import Path

    from data_prep.dataset_format import check_same_space, read_manifest

    try:
        before = json.loads((Path(out) / "config.json").read_text()).get("data")
    except (OSError, ValueError, AttributeError):
        return  # no record of the run's data: the train loop reports a missing run itself
    if before and Path(before).resolve() != Path(data).resolve() and (Path(before) / "manifest.json").is_file():
        check_same_space({before: read_manifest(before), data: read_manifest(data)})

"""Model configuration (one dataclass for the generator and the discriminators)."""
from __future__ import annotations

from dataclasses import dataclass

from facevision.common.checks import check_int
from facevision.config import DictConfig
from facevision.face.sizes import CROP_SIZE

__all__ = ["ModelConfig", "input_multiple", "check_input_size"]


def input_multiple(encoder_depth: int) -> int:
    """The network's input side must be a multiple of this: the encoder halves it ``encoder_depth`` times."""
    return 2 ** int(encoder_depth)


def check_input_size(size: int, encoder_depth: int, what: str = "input size") -> None:
    """ValueError naming ``what`` unless ``size`` is a multiple of :func:`input_multiple` (the one rule, used by
    training, checkpoint loading and the generator)."""
    multiple = input_multiple(encoder_depth)
    if size % multiple:
        raise ValueError(f"{what} {size} must be divisible by {multiple} for the U-Net")


@dataclass
class ModelConfig(DictConfig):
    """Architecture of the generator and discriminators; checked when built (ValueError naming the field).

    encoder_name: any segmentation-models-pytorch encoder. Default: MobileNetV3-small (timm), chosen for
        CPU training speed.
    encoder_weights: None (random init; nothing is downloaded) or e.g. "imagenet" where the user
        has those weights in their local cache.
    encoder_depth: times the encoder halves its input (the input side must be a multiple of 2 ** depth).
    decoder_channels: channels of the U-Net decoder blocks (each decoder has its own; the first
        ``encoder_depth`` are used).
    disc_channels: width of the first PatchGAN layer (doubles per layer up to 8x). Default 16
        (16-32-64-128, receptive field still 70x70): pix2pix's 64 costs 16x the compute, while the
        maps judged here are smooth and simple.
    image_size: side in pixels of the square crops the generator is trained on (set from the
        dataset by ``facevision train``); predict crops photos to this size.
    """

    encoder_name: str = "tu-mobilenetv3_small_100"
    encoder_weights: str | None = None
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (64, 48, 32, 24, 16)
    disc_channels: int = 16
    image_size: int = CROP_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.encoder_name, str) or not self.encoder_name:
            raise ValueError(f"ModelConfig.encoder_name must be an encoder's name, got {self.encoder_name!r}")
        check_int(self, "encoder_depth", low=1)
        channels = tuple(self.decoder_channels)
        if len(channels) < int(self.encoder_depth) or not all(int(c) >= 1 for c in channels):
            raise ValueError(f"ModelConfig.decoder_channels must be at least {self.encoder_depth} (encoder_depth) "
                             f"positive channel counts, got {self.decoder_channels!r}")
        for name in ("disc_channels", "image_size"):
            check_int(self, name, low=1)
        check_input_size(self.image_size, self.encoder_depth, what="ModelConfig.image_size")

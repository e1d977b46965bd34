"""Dual-decoder U-Net generator (segmentation-models-pytorch parts): one shared encoder, a depth decoder and a
correspondence decoder, skip connections to both.

For an input crop (B, 3, S, S), RGB in [0, 1]: ``depth`` (B, 1, S, S) in [0, 1] (sigmoid; crop px / S),
``corr`` (B, 3, S, S) in [0, 1] (sigmoid), ``mask_logits`` (B, 1, S, S) from a head on the depth decoder.
Units and the one decoder of these outputs: :mod:`facevision.model.outputs`.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from facevision._torchvision_compat import ensure_torchvision
from facevision.model.config import ModelConfig, input_multiple

ensure_torchvision()
from segmentation_models_pytorch.base import SegmentationHead  # noqa: E402
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder  # noqa: E402
from segmentation_models_pytorch.encoders import get_encoder  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GeneratorOutput(NamedTuple):
    depth: torch.Tensor
    corr: torch.Tensor
    mask_logits: torch.Tensor


class DualUnetGenerator(nn.Module):
    """Shared encoder + two U-Net decoders (depth, correspondence) with skip connections."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.encoder = get_encoder(
            config.encoder_name, in_channels=3, depth=config.encoder_depth, weights=config.encoder_weights
        )
        channels = self.encoder.out_channels
        n_blocks = config.encoder_depth
        dec = tuple(config.decoder_channels)[:n_blocks]
        self.depth_decoder = UnetDecoder(encoder_channels=channels, decoder_channels=dec, n_blocks=n_blocks)
        self.corr_decoder = UnetDecoder(encoder_channels=channels, decoder_channels=dec, n_blocks=n_blocks)
        self.depth_head = SegmentationHead(dec[-1], 1, kernel_size=3)
        self.mask_head = SegmentationHead(dec[-1], 1, kernel_size=3)
        self.corr_head = SegmentationHead(dec[-1], 3, kernel_size=3)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> GeneratorOutput:
        """image: (B, 3, S, S) RGB in [0, 1], S divisible by 2**encoder_depth."""
        size = image.shape[-2:]
        stride = input_multiple(self.config.encoder_depth)
        if size[0] % stride or size[1] % stride:
            raise ValueError(f"input size {tuple(size)} must be divisible by {stride}")
        features = self.encoder((image - self.mean) / self.std)
        depth_feat = self.depth_decoder(features)
        corr_feat = self.corr_decoder(features)
        return GeneratorOutput(
            depth=torch.sigmoid(self.depth_head(depth_feat)),
            corr=torch.sigmoid(self.corr_head(corr_feat)),
            mask_logits=self.mask_head(depth_feat),
        )

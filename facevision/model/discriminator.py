"""PatchGAN discriminator (pix2pix's N-layer design) with a 70x70 receptive field.

Input: the RGB crop concatenated with one map (depth: 1 channel, correspondence: 3),
(B, 3 + C, S, S). Output: (B, 1, S/8 - 2, S/8 - 2) real/fake logits, one per 70x70 patch.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

# (kernel, stride) of each convolution, input to output. 3 stride-2 layers + 2 stride-1 layers -> 70.
PATCH_LAYERS: tuple[tuple[int, int], ...] = ((4, 2), (4, 2), (4, 2), (4, 1), (4, 1))


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """Receptive field (pixels) of a stack of (kernel, stride) convolutions."""
    rf = 1
    for kernel, stride in reversed(list(layers)):
        rf = (rf - 1) * stride + kernel
    return rf


class PatchDiscriminator(nn.Module):
    """Conv-InstanceNorm-LeakyReLU stack; instance norm keeps it independent of batch size."""

    def __init__(self, in_channels: int, base_channels: int = 64,
                 layers: Sequence[tuple[int, int]] = PATCH_LAYERS) -> None:
        super().__init__()
        self.layers = tuple(layers)
        blocks: list[nn.Module] = []
        ch_in = in_channels
        for i, (kernel, stride) in enumerate(self.layers):
            last = i == len(self.layers) - 1
            ch_out = 1 if last else base_channels * min(2**i, 8)
            blocks.append(nn.Conv2d(ch_in, ch_out, kernel, stride, padding=1, bias=last or i == 0))
            if not last:
                if i > 0:
                    blocks.append(nn.InstanceNorm2d(ch_out, affine=True))
                blocks.append(nn.LeakyReLU(0.2, inplace=True))
            ch_in = ch_out
        self.net = nn.Sequential(*blocks)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.layers)

    def forward(self, image: torch.Tensor, target_map: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, target_map], dim=1))

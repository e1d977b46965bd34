"""Benchmarks: generator inference per 128x128 image, and GAN training throughput on CPU.

Run with ``pytest tests/test_bench_model.py --benchmark-enable``; numbers go in the README.
"""
from __future__ import annotations

import torch

from facevision.model.config import ModelConfig
from facevision.model.discriminator import PatchDiscriminator
from facevision.model.generator import DualUnetGenerator
from facevision.train.config import TrainConfig
from facevision.train.step import gan_step


def test_bench_generator_inference_128(benchmark) -> None:
    torch.manual_seed(0)
    g = DualUnetGenerator(ModelConfig()).eval()
    x = torch.rand(1, 3, 128, 128)

    def infer():
        with torch.inference_mode():
            return g(x)

    out = benchmark(infer)
    assert out.depth.shape == (1, 1, 128, 128)


def test_bench_training_step_batch8(benchmark) -> None:
    """One GAN step (both discriminators + generator) on 8 images; images/s = 8 / mean time."""
    torch.manual_seed(0)
    mc = ModelConfig()
    g, dd, dc = DualUnetGenerator(mc), PatchDiscriminator(4, mc.disc_channels), PatchDiscriminator(6, mc.disc_channels)
    cfg = TrainConfig()
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr)
    opt_d = torch.optim.Adam(list(dd.parameters()) + list(dc.parameters()), lr=cfg.lr)
    batch = {"image": torch.rand(8, 3, 128, 128), "depth": torch.rand(8, 1, 128, 128),
             "corr": torch.rand(8, 3, 128, 128), "mask": (torch.rand(8, 1, 128, 128) > 0.4).float()}
    losses = benchmark.pedantic(gan_step, args=(g, dd, dc, opt_g, opt_d, batch, cfg), rounds=3, iterations=1,
                                warmup_rounds=1)
    assert all(v == v for v in losses.values())  # no NaN

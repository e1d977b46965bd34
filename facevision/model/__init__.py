"""The network: a shared-encoder dual U-Net generator and two 70x70 PatchGAN discriminators.

Modules: config (:class:`~facevision.model.config.ModelConfig`), generator
(:class:`~facevision.model.generator.DualUnetGenerator`), discriminator, outputs (the network's output units
and their one decoder), checkpoint (inference checkpoints: save, check, load), inference (frozen copy for CPU).
Import from the modules, so that reading a configuration does not import torch models.
"""

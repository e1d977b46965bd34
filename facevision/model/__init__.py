"""The network: a shared-encoder dual U-Net generator and two 70x70 PatchGAN discriminators, with its config,
output units (outputs.py), checkpoints and CPU inference copies. Import from the modules: this file loads nothing.
"""

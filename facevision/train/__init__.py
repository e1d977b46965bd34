"""Training: losses, the GAN loop, checkpoints and validation."""

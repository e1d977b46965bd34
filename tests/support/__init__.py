"""Test support: synthetic surfaces, faces and FLAME-format models with known ground truth (not shipped)."""

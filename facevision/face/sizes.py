"""The crop size, one constant for the whole project: datasets, the network's input and predict's crops.

Imports nothing, so the command line can read it while building its parsers. A dataset's manifest (``"size"``)
and a checkpoint (``image_size``) record their own.
"""
from __future__ import annotations

__all__ = ["CROP_SIZE"]

CROP_SIZE = 128  # S: side in pixels of the square face crop the maps are given in (facevision.common.conventions)

"""The crop size, one constant for the whole project: datasets, the network's input and predict's crops.

Imports nothing, so the command line can read it while building its parsers (before numpy loads; see
``facevision.commands.predict``). A dataset records its own size in its manifest (``"size"``); a checkpoint
records the network's (``image_size``); this is the default both start from.
"""
from __future__ import annotations

__all__ = ["CROP_SIZE"]

CROP_SIZE = 128  # S: side in pixels of the square face crop the maps are given in (facevision.common.conventions)

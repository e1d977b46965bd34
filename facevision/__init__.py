"""facevision: one photo of a face -> depth map, correspondence map, 3D mesh, FLAME parameters."""
from __future__ import annotations

__version__ = "0.1.0"

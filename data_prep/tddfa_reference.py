"""The reference face of the ``3ddfa-bfm4096-ncc`` correspondence space, in :mod:`facevision.face.reference`'s format.

Vertices: the 4,096 grid points of the 3DDFA mean, then its 68 iBUG landmarks (``ibug68`` = 4096 .. 4163; no
triangle uses them); ``vertices`` hold the labels' code (u, v, w), ``raw_vertices`` the mean centred, unit RMS
radius (x right, y up, z towards the viewer). ``prepare lfw --labeler 3ddfa-v2`` writes it as
``DATASET/reference.npz``. Derived from the Basel Face Model's mean: non-commercial research use.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from facevision.face.ibug68 import IBUG68_MIRROR
from facevision.face.grid import GRID, grid_mirror, grid_triangles
from data_prep.tddfa_files import TddfaFiles

__all__ = ["tddfa_reference_arrays", "write_tddfa_reference", "REFERENCE_FILE"]

REFERENCE_FILE = "reference.npz"


def tddfa_reference_arrays(files: TddfaFiles) -> dict[str, np.ndarray]:
    """The arrays of :class:`facevision.face.reference.ReferenceFace`'s npz for the ``3ddfa-bfm4096-ncc`` space."""
    from data_prep.label_tddfa import CORRESPONDENCE_SPACE

    pts = np.concatenate([files.grid_mean, files.lm_mean])
    c = files.grid_mean.mean(0)
    r = float(np.sqrt(((files.grid_mean - c) ** 2).sum(1).mean()))
    n = GRID * GRID
    return {
        "vertices": files.to_ncc(pts),
        "triangles": grid_triangles(),
        "ibug68": n + np.arange(68, dtype=np.int64),
        "mirror": np.concatenate([grid_mirror(files.grid_mean), n + IBUG68_MIRROR]),
        "raw_vertices": (pts - c) / r,
        "norm_offset": (files.ncc_min - c) / r,
        "norm_scale": r / (files.ncc_max - files.ncc_min),
        "norm_description": np.array(f"{CORRESPONDENCE_SPACE}: uvw = (raw - offset) * scale; raw = 4,096-point "
                                     "3DDFA mean, centred, unit RMS radius"),
        "space": np.array(CORRESPONDENCE_SPACE),
        "frontal_pitch_deg": np.array(0.0),  # the 3DMM's frame is the frontal pose of its parameters
    }


def write_tddfa_reference(path: str | Path, files: TddfaFiles) -> Path:
    """Write the reference npz atomically (no pickles)."""
    from facevision.common.fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **tddfa_reference_arrays(files))
    return atomic_write_bytes(path, buf.getvalue())

"""The reference face of the ``3ddfa-bfm4096-ncc`` correspondence space, in :mod:`facevision.face.reference`'s format.

Vertices: the 4,096 grid points of the 3DDFA face model's mean, then its 68 iBUG landmarks (``ibug68`` =
4096 .. 4163; they lie on the surface but are not grid points, so no triangle uses them). ``vertices`` hold
the code (u, v, w) the labels carry (:meth:`data_prep.tddfa_files.TddfaFiles.to_ncc`); ``raw_vertices`` the
mean in the reference frame (x right, y up, z towards the viewer, centred on the grid, unit RMS radius).

``prepare lfw --labeler 3ddfa-v2`` writes this file into the dataset (``DATASET/reference.npz``), so the
landmark read-out and the face-model build of such a dataset read it from there
(:func:`facevision.face.reference.load_reference` takes its path). It is derived from the Basel Face Model's mean
(non-commercial research use): it travels with the data and models made from these labels, under their terms.
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

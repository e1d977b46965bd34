"""Writing one face's FLAME outputs: ``flame.npz``, ``flame_mesh.obj`` and the result.json entry."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from facevision.flame.geometry import write_obj
from facevision.flame.params import head_angles, save_params
from facevision.flame.register import FlameFit

__all__ = ["save_fit", "fit_summary"]


def fit_summary(fit: FlameFit) -> dict[str, Any]:
    """The ``"flame"`` entry for result.json: residuals, scale, head angles, file names."""
    out = fit.summary()
    out["head_angles_deg"] = {k: round(v, 3) for k, v in head_angles(fit.params).items()}
    out["files"] = {"params": "flame.npz", "mesh": "flame_mesh.obj"}
    out["units"] = "flame_mesh.obj in metres (FLAME frame); residuals in crop px and mm"
    return out


def save_fit(path_npz: str | os.PathLike, fit: FlameFit, model_hash: str | None = None,
             mesh_name: str = "flame_mesh.obj") -> dict[str, Any]:
    """Write ``path_npz`` (all parameters, model sha256, residuals) and ``flame_mesh.obj`` next to it
    (FLAME topology: every template vertex, posed, metres). Returns the result.json summary."""
    path_npz = Path(path_npz)
    summary = fit_summary(fit)
    save_params(path_npz, fit.params, model_hash or fit.model_sha256, extra={"fit": summary})
    write_obj(path_npz.with_name(mesh_name), fit.vertices, fit.faces,
              comment=f"FLAME fit by facevision; metres, FLAME frame; model sha256 {fit.model_sha256}")
    return summary

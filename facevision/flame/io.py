"""Writing one face's FLAME outputs: ``flame.npz``, ``flame_mesh.obj`` and the result.json entry."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from facevision.flame.geometry import write_obj
from facevision.flame.params import head_angles, save_params
from facevision.flame.model import FlameModel
from facevision.flame.registration import FlameFit, RegistrationConfig, register

__all__ = ["save_fit", "fit_summary", "register_and_save"]


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
    summary["files"] = {"params": path_npz.name, "mesh": mesh_name}
    save_params(path_npz, fit.params, model_hash or fit.model_sha256, extra={"fit": summary})
    write_obj(path_npz.with_name(mesh_name), fit.vertices, fit.faces,
              comment=f"FLAME fit by facevision; metres, FLAME frame; model sha256 {fit.model_sha256}")
    return summary


def register_and_save(out_dir: str | os.PathLike, mesh: Any, corr_map: Any, landmarks68: Any, model: FlameModel,
                      config: RegistrationConfig = RegistrationConfig(), reference: Any = None) -> dict[str, Any]:
    """:func:`register` one face and write ``out_dir/flame.npz`` + ``out_dir/flame_mesh.obj``.

    Returns the summary to store as ``result.json["flame"]`` (residual mean/p90 in px and mm, scale,
    head angles, timings, model sha256). Raises RegistrationError (a ValueError) when the face cannot
    be registered.
    """
    fit = register(mesh, corr_map, landmarks68, model, config=config, reference=reference)
    return save_fit(Path(out_dir) / "flame.npz", fit, model.sha256)

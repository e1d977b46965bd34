"""FLAME parameters: the forward model in numpy, editing, and the ``flame.npz`` file.

* ``flame_forward(model, params)``: vertices in metres in FLAME's frame (X = subject's left = image right, Y up,
  Z towards the viewer), posed by the global rotation (about the root joint), neck, jaw and eyes
  (``flame_mesh.obj``).
* ``vertices_px = params.scale * vertices_m + params.translation_px``: the same in meshing's frame (X = column,
  Y = H - 1 - row, Z = depth towards the viewer, crop px).

Edits set absolute values in degrees: ``jaw`` opens the mouth (about X, positive = open); head yaw, pitch and
roll as in :mod:`facevision.maps.pose` (``R = Rz(roll) @ Ry(yaw) @ Rx(-pitch)``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from facevision.flame.lbs import flame_forward_torch, flame_tensors
from facevision.flame.model import FlameModel

__all__ = ["FlameParams", "FlameParamsError", "flame_forward", "edit_params", "head_angles", "save_params",
           "load_params", "interpolate_params", "PARAMS_VERSION"]

PARAMS_VERSION = 1


class FlameParamsError(ValueError):
    """A flame.npz file is missing, unreadable or does not match the model; the message names the file."""


@dataclass
class FlameParams:
    """All FLAME parameters of one face (axis-angle radians for poses).

    shape (n_shape,), expression (n_expr,): coefficients (FLAME units, ~N(0,1) for real FLAME);
    global_pose, neck_pose, jaw_pose (3,), eye_pose (6,) left then right;
    scale: crop pixels per metre; translation_px (3,): see the module docstring.
    """

    shape: np.ndarray
    expression: np.ndarray
    global_pose: np.ndarray = field(default_factory=lambda: np.zeros(3))
    neck_pose: np.ndarray = field(default_factory=lambda: np.zeros(3))
    jaw_pose: np.ndarray = field(default_factory=lambda: np.zeros(3))
    eye_pose: np.ndarray = field(default_factory=lambda: np.zeros(6))
    scale: float = 1.0
    translation_px: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def zeros(cls, model: FlameModel) -> "FlameParams":
        return cls(shape=np.zeros(model.n_shape), expression=np.zeros(model.n_expr))

    def pose_vector(self) -> np.ndarray:
        """FLAME's (15,) pose: global, neck, jaw, left eye, right eye."""
        return np.concatenate([self.global_pose, self.neck_pose, self.jaw_pose, self.eye_pose]).astype(np.float64)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"shape": np.asarray(self.shape, np.float64), "expression": np.asarray(self.expression, np.float64),
                "global_pose": np.asarray(self.global_pose, np.float64),
                "neck_pose": np.asarray(self.neck_pose, np.float64), "jaw_pose": np.asarray(self.jaw_pose, np.float64),
                "eye_pose": np.asarray(self.eye_pose, np.float64), "scale": np.float64(self.scale),
                "translation_px": np.asarray(self.translation_px, np.float64)}


def _padded(values: np.ndarray, n: int, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) > n:
        raise FlameParamsError(f"{what}: {len(values)} coefficients but the model has {n}")
    return np.pad(values, (0, n - len(values)))


def flame_forward(model: FlameModel, params: FlameParams, pixels: bool = False) -> np.ndarray:
    """Posed FLAME vertices (V,3): metres in FLAME's frame, or crop pixels with ``pixels=True``."""
    ft = flame_tensors(model, torch.float64)
    shape = torch.as_tensor(_padded(params.shape, model.n_shape, "shape"))[None]
    expr = torch.as_tensor(_padded(params.expression, model.n_expr, "expression"))[None]
    pose = torch.as_tensor(params.pose_vector()[: 3 * model.n_joints])[None]
    with torch.no_grad():
        v = flame_forward_torch(ft, shape, expr, pose)[0].numpy()
    if pixels:
        v = params.scale * v + np.asarray(params.translation_px, dtype=np.float64)
    return v


def head_angles(params: FlameParams) -> dict[str, float]:
    """The global rotation as yaw/pitch/roll degrees (see module docstring)."""
    from scipy.spatial.transform import Rotation

    from facevision.maps.pose import rotation_to_angles

    yaw, pitch, roll = rotation_to_angles(Rotation.from_rotvec(params.global_pose).as_matrix())
    return {"yaw": float(yaw), "pitch": float(pitch), "roll": float(roll)}


def edit_params(params: FlameParams, expression: Mapping[int, float] | None = None,
                shape: Mapping[int, float] | None = None, jaw: float | None = None, yaw: float | None = None,
                pitch: float | None = None, roll: float | None = None) -> FlameParams:
    """A copy of ``params`` with some values set (absolute): coefficient index -> value for shape and
    expression; jaw opening and head yaw/pitch/roll in degrees (see module docstring)."""
    from scipy.spatial.transform import Rotation

    out = replace(params, shape=np.array(params.shape, np.float64), expression=np.array(params.expression, np.float64),
                  global_pose=np.array(params.global_pose, np.float64), jaw_pose=np.array(params.jaw_pose, np.float64))
    for name, edits, arr in (("expression", expression, out.expression), ("shape", shape, out.shape)):
        for i, value in (edits or {}).items():
            if not 0 <= int(i) < len(arr):
                raise FlameParamsError(f"{name} index {i} out of range (0..{len(arr) - 1})")
            arr[int(i)] = float(value)
    if jaw is not None:
        out.jaw_pose = np.array([np.radians(jaw), 0.0, 0.0])
    if yaw is not None or pitch is not None or roll is not None:
        cur = head_angles(params)
        angles = [cur["yaw"] if yaw is None else yaw, cur["pitch"] if pitch is None else pitch,
                  cur["roll"] if roll is None else roll]
        from facevision.maps.pose import angles_to_rotation

        out.global_pose = Rotation.from_matrix(angles_to_rotation(*angles)).as_rotvec()
    return out


def interpolate_params(a: FlameParams, b: FlameParams, t: float) -> FlameParams:
    """Linear blend of all parameters (poses blended as axis-angle, fine for the small edits of animate)."""
    da, db = a.as_dict(), b.as_dict()
    mixed = {k: (1 - t) * da[k] + t * db[k] for k in da}
    mixed["scale"] = float(mixed["scale"])
    return FlameParams(**mixed)


def save_params(path: str | os.PathLike, params: FlameParams, model_sha256: str,
                extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``flame.npz`` atomically: every parameter, the model file's sha256 and JSON metadata."""
    from facevision.common.fileio import atomic_write

    meta = {"version": PARAMS_VERSION, "units": "flame_mesh in metres (FLAME frame); vertices_px = scale * v + "
            "translation_px in crop pixels (X=col, Y=H-1-row, Z towards viewer)", **(extra or {})}
    arrays = params.as_dict()
    atomic_write(path, lambda p: np.savez(p, **arrays, model_sha256=np.array(model_sha256),
                                          meta_json=np.array(json.dumps(meta))))
    return Path(path)


def load_params(path: str | os.PathLike, model: FlameModel | None = None, check_hash: bool = True
                ) -> tuple[FlameParams, dict[str, Any]]:
    """Read ``flame.npz`` -> (parameters, metadata: ``model_sha256`` and the stored JSON); with ``model``, check it
    was fitted with the same model file (sha256)."""
    path = Path(path)
    if not path.is_file():
        raise FlameParamsError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise FlameParamsError(f"{path}: not a readable flame.npz ({exc})") from None
    need = ("shape", "expression", "global_pose", "neck_pose", "jaw_pose", "eye_pose", "scale", "translation_px")
    missing = [k for k in need if k not in data]
    if missing:
        raise FlameParamsError(f"{path}: not a facevision flame.npz (missing {', '.join(missing)})")
    meta = json.loads(str(data["meta_json"])) if "meta_json" in data else {}
    meta["model_sha256"] = str(data.get("model_sha256", ""))
    params = FlameParams(shape=data["shape"].astype(np.float64), expression=data["expression"].astype(np.float64),
                         global_pose=data["global_pose"].astype(np.float64), neck_pose=data["neck_pose"].astype(np.float64),
                         jaw_pose=data["jaw_pose"].astype(np.float64), eye_pose=data["eye_pose"].astype(np.float64),
                         scale=float(data["scale"]), translation_px=data["translation_px"].astype(np.float64))
    if model is not None:
        if check_hash and meta["model_sha256"] and meta["model_sha256"] != model.sha256:
            raise FlameParamsError(f"{path}: fitted with a different FLAME model file (sha256 {meta['model_sha256'][:12]}... "
                                   f"vs {model.sha256[:12]}... of {model.source})")
        if len(params.shape) > model.n_shape or len(params.expression) > model.n_expr:
            raise FlameParamsError(f"{path}: has more shape/expression coefficients than {model.source}")
    return params, meta

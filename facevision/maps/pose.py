"""Head pose from predicted maps: a similarity fit of the reference face to the predicted surface.

Each face pixel pairs its point lifted from the depth map (meshing's frame: ``X`` = column, ``Y`` = ``H - 1 -
row`` (up), ``Z`` = depth towards the viewer, crop px) with the reference point its correspondence shows (raw
frame, ``ReferenceFace.from_uvw``: x right, y up, z towards the camera, unit RMS radius); Umeyama gives
``X ~ s R p + t``, refitted once without residuals above ``PoseConfig.trim_factor`` x the median.

Angles (degrees) describe ``R = Rz(roll) @ Ry(yaw) @ Rx(-pitch)`` relative to a camera-frontal view, in which the
reference's raw frame appears pitched by its ``frontal_pitch_deg`` (``REFERENCE_PITCH_DEG`` = -16 for the Face
Mesh reference; docs/predict.md): ``R = R_fit @ Rx(-REFERENCE_PITCH_DEG)^T``. yaw > 0: the face turns towards the
image right (nose to +X); pitch > 0: it tilts up; roll > 0: it turns counter-clockwise as the viewer sees it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facevision.face.reference import FACE_MESH_FRONTAL_PITCH_DEG, ReferenceFace, load_reference
from facevision.common.checks import check_int, check_number
from facevision.common.geometry import similarity_fit

__all__ = ["PoseConfig", "Pose", "photo_pose", "REFERENCE_PITCH_DEG", "reference_tilt", "pose_from_maps", "rotation_to_angles", "angles_to_rotation"]


REFERENCE_PITCH_DEG = FACE_MESH_FRONTAL_PITCH_DEG


@dataclass(frozen=True)
class PoseConfig:
    """max_points: face pixels used (evenly subsampled); trim_factor: outlier cut (x median residual),
    0 = no trimming; min_pixels: fewer -> ValueError; reference_pitch_deg: pitch of the reference frame in a
    camera-frontal view (see the module docstring; None = the reference's own ``frontal_pitch_deg``, 0 = report
    angles in the reference's own frame)."""

    max_points: int = 3000
    trim_factor: float = 3.0
    min_pixels: int = 16
    reference_pitch_deg: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_points", "min_pixels"):
            check_int(self, name, low=3)  # a similarity needs three points
        check_number(self, "trim_factor", low=0)
        check_number(self, "reference_pitch_deg", optional=True)


@dataclass
class Pose:
    """yaw, pitch, roll in degrees (conventions in the module docstring); rotation (3, 3): the head
    rotation they describe (camera-frontal -> mesh frame); fit_rotation (3, 3) maps the reference's raw
    frame to the mesh frame (``X ~ scale * fit_rotation @ p + translation``); scale: crop px per reference unit (RMS radius);
    translation (3,) crop px; rms: residual RMS in crop px."""

    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    rms: float
    fit_rotation: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``result.json["pose"]``): the angles (degrees), ``rotation`` (3 x 3, row-major, the head
        rotation, camera-frontal -> mesh frame, = ``angles_to_rotation(yaw, pitch, roll)``), ``scale_px``,
        ``translation_px`` (3, crop px, mesh frame of the crop: ``X ~ scale * fit_rotation @ p + translation``),
        ``fit_rotation`` (3 x 3, when known) and ``rms_px``."""
        mat = lambda m: [[round(float(v), 6) for v in row] for row in np.asarray(m)]  # noqa: E731
        out: dict[str, Any] = {"yaw": round(self.yaw, 3), "pitch": round(self.pitch, 3), "roll": round(self.roll, 3),
                               "rotation": mat(self.rotation), "scale_px": round(self.scale, 4),
                               "translation_px": [round(float(v), 4) for v in np.asarray(self.translation)],
                               "rms_px": round(self.rms, 4)}
        if self.fit_rotation is not None:
            out["fit_rotation"] = mat(self.fit_rotation)
        return out


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def angles_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Degrees -> (3, 3) rotation ``Rz(roll) @ Ry(yaw) @ Rx(-pitch)`` (see the module docstring)."""
    y, p, r = np.radians([yaw, pitch, roll])
    return _rz(r) @ _ry(y) @ _rx(-p)


def rotation_to_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """(3, 3) rotation -> (yaw, pitch, roll) degrees, the inverse of :func:`angles_to_rotation`."""
    rot = np.asarray(rot, dtype=np.float64)
    yaw = -np.arcsin(np.clip(rot[2, 0], -1.0, 1.0))
    pitch = -np.arctan2(rot[2, 1], rot[2, 2])
    roll = np.arctan2(rot[1, 0], rot[0, 0])
    return tuple(float(v) for v in np.degrees([yaw, pitch, roll]))


def reference_tilt(reference_pitch_deg: float = REFERENCE_PITCH_DEG) -> np.ndarray:
    """Rotation of the reference's raw frame as seen in a camera-frontal view (pitch only)."""
    return angles_to_rotation(0.0, reference_pitch_deg, 0.0)


def pose_from_maps(depth_px: np.ndarray, corr: np.ndarray, mask: np.ndarray, reference: ReferenceFace | None = None,
                   config: PoseConfig = PoseConfig()) -> Pose:
    """(H, W) depth_px, (H, W, 3) correspondence, (H, W) mask (:mod:`facevision.common.conventions`) -> :class:`Pose`.
    ValueError when there are fewer than ``config.min_pixels`` face pixels."""
    reference = reference or load_reference()
    mask = np.asarray(mask, dtype=bool) & (np.asarray(depth_px) > 0)
    rows, cols = np.nonzero(mask)
    if len(rows) < config.min_pixels:
        raise ValueError(f"face mask has {len(rows)} pixels, fewer than {config.min_pixels}: no pose")
    if len(rows) > config.max_points:
        keep = np.linspace(0, len(rows) - 1, config.max_points).astype(np.int64)
        rows, cols = rows[keep], cols[keep]
    h = mask.shape[0]
    dst = np.stack([cols, h - 1 - rows, np.asarray(depth_px, dtype=np.float64)[rows, cols]], 1).astype(np.float64)
    src = reference.from_uvw(np.asarray(corr, dtype=np.float64)[rows, cols, :3])
    s, rot, t = similarity_fit(src, dst)
    res = np.linalg.norm(dst - (s * src @ rot.T + t), axis=1)
    if config.trim_factor > 0:
        keep = res <= config.trim_factor * max(np.median(res), 1e-9)
        if 8 <= keep.sum() < len(res):
            s, rot, t = similarity_fit(src[keep], dst[keep])
            res = np.linalg.norm(dst[keep] - (s * src[keep] @ rot.T + t), axis=1)
    tilt = reference.frontal_pitch_deg if config.reference_pitch_deg is None else config.reference_pitch_deg
    head = rot @ reference_tilt(tilt).T
    yaw, pitch, roll = rotation_to_angles(head)
    return Pose(yaw=yaw, pitch=pitch, roll=roll, rotation=head, scale=float(s), translation=t,
                rms=float(np.sqrt(np.mean(res**2))), fit_rotation=rot)


def photo_pose(pose: Pose, crop_angle: float) -> Pose:
    """A pose read in a crop turned by ``crop_angle`` degrees (clockwise as seen, :mod:`facevision.face.crop`)
    -> the same head in the photo's frame: rotation, fit rotation and translation turned by
    ``Rz(-crop_angle)`` about the crop centre's Z axis, angles recomputed (roll changes by about
    ``-crop_angle``). Scale and residual are unchanged; translation stays in crop px."""
    if crop_angle == 0.0:
        return pose
    turn = angles_to_rotation(0.0, 0.0, -float(crop_angle))
    head = turn @ pose.rotation
    yaw, pitch, roll = rotation_to_angles(head)
    fit = None if pose.fit_rotation is None else turn @ pose.fit_rotation
    return Pose(yaw=yaw, pitch=pitch, roll=roll, rotation=head, scale=pose.scale, translation=pose.translation,
                rms=pose.rms, fit_rotation=fit)

"""Ground-truth maps of the reference face under a known similarity transform (tests, benchmarks, demos).

The reference face's raw vertices ``p`` (x right, y up, z towards the camera, unit RMS radius) are
placed in the mesh frame as ``X = scale * R(yaw, pitch, roll) @ T @ p + (cx, cy, 0)``, with ``T`` the
reference's tilt in a camera-frontal view (see :mod:`facevision.maps.pose` for the angles and ``T``:
pose 0 / 0 / 0 looks like a typical frontal LFW face), and rasterized orthographically: column = X,
row = ``H - 1 - Y``, depth = Z made relative the dataset way (``DEPTH_BASE_PX`` behind the farthest
face pixel). The correspondence map carries the reference ``(u, v, w)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facevision.face.codecs import DEPTH_BASE_PX
from facevision.face.rasterize import rasterize
from facevision.face.reference import ReferenceFace, load_reference
from facevision.maps.pose import REFERENCE_PITCH_DEG

__all__ = ["SyntheticFace", "known_rotation", "render_reference", "fixed_maps_model", "drawn_face_photo"]


@dataclass
class SyntheticFace:
    """depth (S, S) float32 crop px (larger = closer, 0 = background), corr (S, S, 3) float32,
    mask (S, S) bool, landmarks68 (68, 2) float64 (x = column, y = row) crop px of the iBUG vertices,
    rotation (3, 3) applied to the raw reference vertices, scale (crop px per reference unit)."""

    depth: np.ndarray
    corr: np.ndarray
    mask: np.ndarray
    landmarks68: np.ndarray
    rotation: np.ndarray
    scale: float


def known_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Ground-truth (3, 3) rotation for head angles in degrees, built with scipy, not with the code under test:
    ``R = Rz(roll) @ Ry(yaw) @ Rx(-pitch)`` about the mesh axes (the convention of :mod:`facevision.maps.pose`)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("ZYX", [roll, yaw, -pitch], degrees=True).as_matrix()


def render_reference(size: int = 128, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                     scale: float | None = None, centre: tuple[float, float] | None = None,
                     reference: ReferenceFace | None = None,
                     reference_pitch_deg: float = REFERENCE_PITCH_DEG) -> SyntheticFace:
    """Rasterize the reference face at ``size`` x ``size`` under the given pose (degrees).

    scale: crop px per raw reference unit (default ``0.3 * size``: the face fills about 2/3 of the crop).
    centre: (x = column, y = row) of the reference origin in crop pixels (default: the crop centre).
    """
    reference = reference or load_reference()
    scale = 0.3 * size if scale is None else float(scale)
    cx, cy = ((size - 1) / 2.0, (size - 1) / 2.0) if centre is None else centre
    rot = known_rotation(yaw, pitch, roll) @ known_rotation(0.0, reference_pitch_deg, 0.0)
    xyz = scale * reference.raw_vertices @ rot.T
    pix = np.stack([xyz[:, 0] + cx, cy - xyz[:, 1], xyz[:, 2]], 1)
    depth, corr, mask = rasterize(pix, reference.triangles, size, size, reference.vertices)
    if mask.any():
        depth = np.where(mask, depth - depth[mask].min() + DEPTH_BASE_PX, 0.0).astype(np.float32)
    corr = np.where(mask[..., None], np.clip(corr, 0.0, 1.0), 0.0).astype(np.float32)
    return SyntheticFace(depth=depth, corr=corr, mask=mask, landmarks68=pix[reference.ibug68, :2].copy(),
                         rotation=rot, scale=scale)


def fixed_maps_model(depth_px: np.ndarray, corr: np.ndarray, mask: np.ndarray):
    """A stand-in network (torch module) that returns the given maps for every input crop.

    Outputs follow :class:`facevision.model.generator.DualUnetGenerator`: depth / S, corr, mask logits (+-10).
    Lets the whole per-face path run on known maps (tests, demos) without a trained checkpoint.
    """
    import torch
    from torch import nn

    from facevision.model.outputs import depth_to_network

    size = int(depth_px.shape[0])

    class FixedMaps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("depth", torch.from_numpy(depth_to_network(np.asarray(depth_px, np.float32), size))[None, None])
            self.register_buffer("corr", torch.from_numpy(np.asarray(corr, np.float32)).permute(2, 0, 1)[None])
            self.register_buffer("logits", torch.from_numpy(np.where(mask, 10.0, -10.0).astype(np.float32))[None, None])

        def forward(self, x):
            b = x.shape[0]
            return (self.depth.expand(b, -1, -1, -1), self.corr.expand(b, -1, -1, -1), self.logits.expand(b, -1, -1, -1))

    return FixedMaps()


def drawn_face_photo(size: int = 256, yaw: float = 0.0) -> np.ndarray:
    """A drawn face "photo" that MediaPipe's detector finds (score ~0.9): the reference face shaded by a
    light from the upper left, skin-coloured on a blue-grey background, with eyes, brows, lips and
    nostrils painted at its iBUG-68 points. (size, size, 3) uint8 RGB. For tests and examples that need the
    real detector (README blocks, the CLI) without shipping a real photo; it is not a benchmark."""
    import cv2

    f = render_reference(size, yaw, 0.0, 0.0, scale=0.22 * size)
    gy, gx = np.gradient(f.depth.astype(np.float64))
    n = np.dstack([-gx, gy, np.ones_like(gx)])
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    light = np.clip(n @ np.array([0.3, 0.4, 0.87]), 0.0, 1.0)
    img = np.zeros((size, size, 3)) + np.array([70.0, 90.0, 110.0])
    img[f.mask] = (np.array([224.0, 172.0, 140.0]) * (0.35 + 0.65 * light[..., None]))[f.mask]
    lm = f.landmarks68
    for eye in (slice(36, 42), slice(42, 48)):
        c, r = lm[eye].mean(0), np.ptp(lm[eye][:, 0]) / 2
        cv2.ellipse(img, (int(c[0]), int(c[1])), (int(r), int(r * 0.45)), 0, 0, 360, (245, 245, 245), -1)
        cv2.circle(img, (int(c[0]), int(c[1])), int(r * 0.42), (60, 40, 30), -1)
    for brow in (slice(17, 22), slice(22, 27)):
        cv2.polylines(img, [np.round(lm[brow]).astype(np.int32)], False, (70, 45, 35), max(2, size // 60))
    cv2.fillPoly(img, [np.round(lm[48:60]).astype(np.int32)], (170, 80, 80))
    cv2.polylines(img, [np.round(lm[60:68]).astype(np.int32)], True, (110, 40, 40), max(1, size // 120))
    for k in (31, 35):
        cv2.circle(img, (int(lm[k][0]), int(lm[k][1])), max(2, size // 80), (120, 70, 60), -1)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 1.0), 0, 255).astype(np.uint8)

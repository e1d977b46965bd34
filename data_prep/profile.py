"""Large-pose training data by 3D profiling (the idea behind 300W-LP): rotate a labelled crop in 3D.

One :class:`~data_prep.dataset_format.Sample` is lifted to a single continuous surface over the whole
crop (one lattice vertex per pixel): face pixels take their depth label, every other pixel a smooth
invented depth (:func:`fill_surface`). The surface is rotated about a head centre behind the face and
re-rendered with :func:`facevision.face.rasterize.rasterize`, giving a new RGB crop and exact labels.

Conventions (those of :mod:`data_prep.dataset_format`): x = column (right), y = row (down),
z = depth towards the camera (larger = closer), all in crop pixels; orthographic projection.

* **yaw > 0** turns the face towards the image right (the nose moves to +x); rotation about the
  vertical image axis through the head centre. **pitch > 0** tilts the face up (the nose moves to
  -y, the chin comes forward). Pitch is applied first, in the head's frame, then yaw:
  ``R = R_yaw @ R_pitch``. Angles are added to whatever pose the source face has.
* **Labels** come only from triangles whose three vertices are face (mask) pixels, and only where
  that face surface is the nearest one in the full render, so self-occluded face parts drop out.
  Depth is re-based so the farthest visible face pixel is ``DEPTH_BASE_PX``; corr and depth are 0
  off the mask. Pixels no triangle covers are black.
* **Background**: by default only the head turns; the rest of the crop is anchored (300W-LP style):
  each vertex's image position blends between the turned and the source position with a weight
  that is 1 on the face and 0 on the crop border, while its depth follows the rigid motion (so the
  anchored background never comes in front of the head). The crop border stays put and the crop
  stays covered; the band between head and border is stretched.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from facevision.face.codecs import DEPTH_BASE_PX
from data_prep.dataset_format import (SAMPLE_FILES, SPLITS, Sample, read_manifest, read_sample, sample_complete,
                                      sample_dir, write_manifest, write_sample)
from facevision.common.checks import check_int, check_number
from facevision.common.fileio import atomic_write, atomic_write_json
from facevision.face.rasterize import rasterize

__all__ = [
    "ProfileConfig",
    "ProfileRunConfig",
    "ProfileError",
    "ProfileSurface",
    "head_geometry",
    "harmonic_fill",
    "fill_surface",
    "lattice_faces",
    "lift_surface",
    "FaceModelSurface",
    "align_face_model",
    "rotation_matrix",
    "render_view",
    "profile_sample",
    "view_angles",
    "view_id",
    "profile_dataset",
    "RUN_CONFIG_NAME",
]

RUN_CONFIG_NAME = "profile_run.json"
_FACE_TOL = 1e-4  # a pixel is a face label pixel when its interpolated face indicator is >= 1 - this


class ProfileError(ValueError):
    """A sample cannot be profiled (empty mask, nothing of the face left visible...)."""


@dataclass(frozen=True)
class ProfileConfig:
    """Geometry of the lifted head and of the re-rendered view. Lengths relative to the face's mask box.

    center_behind_rim: head centre depth = median depth of the mask's rim minus this x face width.
    center_dy: head centre row = face box centre + this x face height (negative = up: the skull
        reaches higher above the brows than below the chin).
    head_scale: (x, y) head ellipse radii = these x half the face box (the fill's dome, see
        :func:`fill_surface`); the default puts the top of the head a quarter face height above the mask.
    anchor_background: blend the rotation out beyond the head (300W-LP style) so the crop border stays
        put and the crop stays covered; False rotates the whole crop rigidly (uncovered pixels black).
    anchor_level: the weight with which a pixel turns with the head is the harmonic function that is
        1 on the face and 0 on the crop border, divided by this and smoothstepped (< 1: more turns rigidly).
    recenter: move the rotated face's box centre back onto the source face's box centre.
    rescale: scale the rotated surface so the face box keeps its height (clipped to max_rescale).
    open_mask_px: radius of a morphological opening of the label mask in rotated views; 0 = off. It
        only removes pixels: the source label's steep rim (a silhouette sampled once per pixel, so
        its depth jitters from row to row) turns into "comb teeth" when it faces the camera.
    min_face_pixels: fewer visible face pixels than this raises ProfileError.
    Checked when built (ValueError naming the field).
    """

    center_behind_rim: float = 0.05
    center_dy: float = -0.1
    head_scale: tuple[float, float] = (1.15, 1.3)
    anchor_background: bool = True
    anchor_level: float = 1.0
    recenter: bool = True
    rescale: bool = True
    max_rescale: float = 1.3
    open_mask_px: int = 2
    min_face_pixels: int = 50

    def __post_init__(self) -> None:
        if len(self.head_scale) != 2 or not all(float(v) > 0 for v in self.head_scale):
            raise ValueError(f"ProfileConfig.head_scale must be two radii factors > 0, got {self.head_scale!r}")
        check_number(self, "anchor_level", low=0, low_open=True, finite=False)
        check_number(self, "max_rescale", low=1, finite=False)
        for name in ("open_mask_px", "min_face_pixels"):
            check_int(self, name, low=0)


@dataclass
class ProfileSurface:
    """A sample lifted to one lattice mesh (one vertex per pixel, row-major).

    vertices: (S*S, 3) float64 (x col, y row, z depth px, larger = closer). faces: (F, 3) int64.
    attributes: (S*S, 7) float64: RGB (0..255), corr (u, v, w; 0 off the face), face indicator (1/0).
    weight: (S*S,) rotation weight in [0, 1] (1 on the face, 0 on the crop border where the background is anchored).
    center: (3,) head centre (x, y, z) the rotation turns about. size: crop side in pixels.
    model: the labeler's whole 3D face where the dataset keeps it (a 3DMM's points, :class:`FaceModelSurface`);
        the views' labels are then rendered from it, hidden parts included, instead of from the visible depth.
    """

    vertices: np.ndarray
    faces: np.ndarray
    attributes: np.ndarray
    weight: np.ndarray
    center: np.ndarray
    size: int
    model: "FaceModelSurface | None" = None

    @property
    def face(self) -> np.ndarray:
        """(S*S,) bool: vertices that are face (mask) pixels."""
        return self.attributes[:, 6] > 0.5


@dataclass
class FaceModelSurface:
    """A labeler's whole face in the crop: points (N, 3) crop px in the depth map's frame (z re-based like the
    sample's depth), triangles (F, 3), code (N, 3) correspondence per point (the dataset's space)."""

    points: np.ndarray
    triangles: np.ndarray
    code: np.ndarray


# ----------------------------------------------------------------------------- lifting
def _mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) inclusive pixel box of the mask; ProfileError if the mask is empty."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        raise ProfileError("the sample's mask is empty: nothing to rotate")
    return float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())


def _rim(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the crop edge counts as outside)."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def head_geometry(depth: np.ndarray, mask: np.ndarray,
                  cfg: ProfileConfig = ProfileConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Head centre (x col, y row, z depth; crop px) and head ellipse radii (rx, ry; px) from the face label.

    The centre sits under the face box centre, ``center_behind_rim`` face widths behind the rim's
    median depth (for MediaPipe labels the rim lies at the sides of the face, near the ears).
    """
    mask = np.asarray(mask, dtype=bool)
    x0, y0, x1, y1 = _mask_box(mask)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    zr = float(np.median(np.asarray(depth, dtype=np.float64)[_rim(mask)]))
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2 + cfg.center_dy * h, zr - cfg.center_behind_rim * w])
    radii = np.array([cfg.head_scale[0] * w / 2, cfg.head_scale[1] * h / 2])
    return center, radii


def harmonic_fill(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Solve Laplace's equation for the unknown pixels (4-neighbour stencil, one sparse direct solve).

    ``values``: (H, W) or (H, W, K) (K fields share the solve). ``known`` (H, W) pixels keep their
    values; pixels outside the image count as known zeros. Returns the filled float64 array.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    known = np.asarray(known, dtype=bool)
    v = np.asarray(values, dtype=np.float64)
    vals = np.where(known.reshape(known.shape + (1,) * (v.ndim - 2)), v, 0.0)
    flat = vals.reshape(known.size, -1)
    unk = ~known
    n = int(unk.sum())
    if n == 0:
        return vals
    hgt, wid = unk.shape
    idx = np.full(unk.shape, -1, dtype=np.int64)
    idx[unk] = np.arange(n)
    ur, uc = np.nonzero(unk)
    i = idx[ur, uc]
    rows, cols = [i], [i]
    data = [np.full(n, 4.0)]
    b = np.zeros((n, flat.shape[1]))
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        nr, nc = ur + dr, uc + dc
        inside = (nr >= 0) & (nr < hgt) & (nc >= 0) & (nc < wid)
        nr, nc, ii = nr[inside], nc[inside], i[inside]
        j = idx[nr, nc]
        un = j >= 0
        rows.append(ii[un])
        cols.append(j[un])
        data.append(-np.ones(int(un.sum())))
        np.add.at(b, ii[~un], flat[nr[~un] * wid + nc[~un]])
    a = sp.csc_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    x = spsolve(a, b)
    out = flat.copy()
    out[unk.ravel()] = x.reshape(n, -1)
    return out.reshape(vals.shape)


def _dome(shape: tuple[int, int], center: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalized ellipse radius rho (H, W) about the head centre and the dome profile sqrt(1 - rho^2)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    rho = np.hypot((cols - center[0]) / radii[0], (rows - center[1]) / radii[1])
    return rho, np.sqrt(np.clip(1.0 - rho**2, 0.0, None))


def fill_surface(depth: np.ndarray, mask: np.ndarray, center: np.ndarray, radii: np.ndarray,
                 anchor_level: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Depth (crop px, larger = closer) for every pixel, and the rotation weight (see ProfileConfig).

    Depth: the label on the mask, an invented head elsewhere: a head ellipsoid (radii ``rx, ry``
    about ``center``; its depth radius fitted to the face rim) standing on a background plane
    through the head centre, plus a harmonic correction that equals the label minus that model on
    the mask and 0 on the crop border, so the surface is continuous across the face boundary and
    smooth everywhere. Weight: the harmonic function that is 1 on the mask and 0 on the crop
    border, divided by ``anchor_level`` and smoothstepped (1 = turns with the head, 0 = stays).
    Both come from one sparse solve.
    """
    mask = np.asarray(mask, dtype=bool)
    d = np.asarray(depth, dtype=np.float64)
    _, prof = _dome(mask.shape, center, radii)
    rim = _rim(mask)
    s = prof[rim]
    rz = float(np.dot(d[rim] - center[2], s) / max(float(np.dot(s, s)), 1e-9))
    model = center[2] + max(rz, 0.0) * prof
    known = mask.copy()
    known[[0, -1], :] = True
    known[:, [0, -1]] = True
    fields = harmonic_fill(np.stack([np.where(mask, d - model, 0.0), mask.astype(np.float64)], -1), known)
    t = np.clip(fields[..., 1] / anchor_level, 0.0, 1.0)
    weight = np.where(mask, 1.0, t * t * (3.0 - 2.0 * t))
    return model + fields[..., 0], weight


def lattice_faces(mask: np.ndarray) -> np.ndarray:
    """(F, 3) triangles of the full pixel lattice (vertex = row * W + col), two per cell.

    Cells split along the TR-BL diagonal, except cells with three face corners whose missing one
    is on that diagonal: those split TL-BR, so they still hold one all-face triangle and the face
    region's edge follows the mask boundary diagonally instead of in stairs (as
    :func:`meshing.lift.triangulate_grid` does for a foreground-only lattice).
    """
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    flip = (m[:-1, :-1] & m[1:, 1:] & (m[:-1, 1:] ^ m[1:, :-1]))[..., None]
    t1 = np.where(flip, np.stack([a, c, d], -1), np.stack([a, c, b], -1))
    t2 = np.where(flip, np.stack([a, d, b], -1), np.stack([b, c, d], -1))
    return np.concatenate([t1.reshape(-1, 3), t2.reshape(-1, 3)])


def lift_surface(sample: Sample, cfg: ProfileConfig = ProfileConfig(),
                 center: np.ndarray | None = None, model: FaceModelSurface | None = None) -> ProfileSurface:
    """Lift a square sample to a :class:`ProfileSurface` (``center`` overrides the estimated head centre;
    ``model``: the labeler's whole face, see :func:`align_face_model`)."""
    mask = np.asarray(sample.mask, dtype=bool)
    size = mask.shape[0]
    if mask.shape != (size, size) or sample.depth.shape != mask.shape or sample.image.shape[:2] != mask.shape:
        raise ProfileError(f"expected square image/depth/mask of one size, got {sample.image.shape}, "
                           f"{sample.depth.shape}, {mask.shape}")
    est_center, radii = head_geometry(sample.depth, mask, cfg)
    center = est_center if center is None else np.asarray(center, dtype=np.float64)
    z, weight = fill_surface(sample.depth, mask, center, radii, cfg.anchor_level)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    vertices = np.stack([cols.ravel(), rows.ravel(), z.ravel()], axis=1)
    corr = np.where(mask[..., None], np.asarray(sample.corr, dtype=np.float64), 0.0)
    attributes = np.concatenate([np.asarray(sample.image, dtype=np.float64).reshape(-1, 3), corr.reshape(-1, 3),
                                 mask.reshape(-1, 1).astype(np.float64)], axis=1)
    if not cfg.anchor_background:
        weight = np.ones(mask.shape)
    return ProfileSurface(vertices=vertices, faces=lattice_faces(mask), attributes=attributes,
                          weight=weight.ravel(), center=center, size=size, model=model)


def align_face_model(sample: Sample, points: np.ndarray, triangles: np.ndarray, code: np.ndarray) -> FaceModelSurface:
    """The labeler's points (crop px, z larger = closer, any z origin) moved in z onto the sample's depth map
    (which is re-based, :data:`data_prep.dataset_format.DEPTH_BASE_PX`): the median offset over the face pixels
    both cover. ProfileError when they do not overlap (points that do not belong to this sample)."""
    pts = np.asarray(points, np.float64)
    s = sample.mask.shape[0]
    z, _, covered = rasterize(pts, triangles, s, s)
    both = covered & np.asarray(sample.mask, bool)
    if both.sum() < 0.5 * max(int(np.asarray(sample.mask).sum()), 1):
        raise ProfileError("the kept face-model points do not cover the sample's face mask")
    out = pts.copy()
    out[:, 2] += float(np.median(sample.depth[both] - z[both]))
    return FaceModelSurface(points=out, triangles=np.asarray(triangles, np.int64), code=np.asarray(code, np.float64))


# ----------------------------------------------------------------------------- rotating + rendering
def rotation_matrix(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) rotation in image coordinates (x right, y down, z towards the camera), ``R_yaw @ R_pitch``.

    yaw > 0 moves the nose (+z) towards +x; pitch > 0 moves it towards -y (up).
    """
    a, b = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    r_yaw = np.array([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cb, -sb], [0.0, sb, cb]])
    return r_yaw @ r_pitch


def _box_center(p: np.ndarray) -> np.ndarray:
    return (p[:, :2].min(0) + p[:, :2].max(0)) / 2


def _posed_vertices(surf: ProfileSurface, yaw: float, pitch: float,
                    cfg: ProfileConfig) -> tuple[np.ndarray, float, np.ndarray, np.ndarray | None]:
    """Vertices after rotation, recentring/rescaling and background anchoring; also scale, (dx, dy) and the
    model's points moved rigidly with the head (None without a model)."""
    v = surf.vertices
    mp = None if surf.model is None else surf.model.points
    if yaw == 0 and pitch == 0:
        return v, 1.0, np.zeros(2), mp
    c = surf.center
    rot = rotation_matrix(yaw, pitch)
    p = (v - c) @ rot.T + c
    if mp is not None:
        mp = (mp - c) @ rot.T + c
    face = surf.face
    scale, shift = 1.0, np.zeros(2)
    if cfg.rescale:
        h0 = np.ptp(v[face, 1])
        h1 = np.ptp(p[face, 1])
        scale = float(np.clip(h0 / max(h1, 1e-6), 1.0 / cfg.max_rescale, cfg.max_rescale))
    b0, b1 = _box_center(v[face]), _box_center(p[face])
    pivot = np.array([b1[0], b1[1], c[2]])
    if scale != 1.0:
        p = (p - pivot) * scale + pivot
        mp = None if mp is None else (mp - pivot) * scale + pivot
    if cfg.recenter:
        shift = b0 - b1
        p[:, :2] += shift
        if mp is not None:
            mp[:, :2] += shift
    if cfg.anchor_background:
        # image positions blend back to the source (the background stays put); depths keep the rigid
        # motion, so a half-moved background vertex never comes in front of the turned head
        p[:, :2] = v[:, :2] + surf.weight[:, None] * (p[:, :2] - v[:, :2])
    return p, scale, shift, mp


def render_view(surf: ProfileSurface, yaw: float, pitch: float, cfg: ProfileConfig = ProfileConfig()) -> Sample:
    """Rotate the lifted surface by ``yaw``/``pitch`` (degrees) and render a new sample.

    Image: interpolated colours, black where nothing is drawn. Labels: see the module docstring; with a
    face model (``surf.model``) they are its render instead: exact depth, correspondence and mask of the whole
    face turned with the head, parts hidden in the source photo included (their image pixels come from the
    lifted surface, as everywhere).
    ``meta`` holds yaw, pitch (degrees), scale and shift (dx, dy px) of the view.
    Raises ProfileError when fewer than ``cfg.min_face_pixels`` face pixels stay visible.
    """
    s = surf.size
    p, scale, shift, mp = _posed_vertices(surf, float(yaw), float(pitch), cfg)
    z, attrs, covered = rasterize(p, surf.faces, s, s, surf.attributes)
    image = np.clip(np.round(attrs[..., :3]), 0, 255).astype(np.uint8)
    meta = {"yaw": float(yaw), "pitch": float(pitch), "scale": scale, "shift": [float(shift[0]), float(shift[1])]}
    if mp is not None:
        depth, corr, mask = rasterize(mp, surf.model.triangles, s, s, surf.model.code)
        n = int(mask.sum())
        if n < cfg.min_face_pixels:
            raise ProfileError(f"yaw {yaw:g}, pitch {pitch:g}: only {n} face pixel(s) visible "
                               f"(need {cfg.min_face_pixels})")
        depth = np.where(mask, depth - float(depth[mask].min()) + DEPTH_BASE_PX, 0.0).astype(np.float32)
        corr = np.where(mask[..., None], np.clip(corr, 0.0, 1.0), 0.0).astype(np.float32)
        return Sample(image=image, depth=depth, corr=corr, mask=mask, meta=meta)
    ind = attrs[..., 6]
    mask = covered & (ind >= 1.0 - _FACE_TOL)
    if cfg.open_mask_px > 0 and (yaw != 0 or pitch != 0):
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * cfg.open_mask_px + 1,) * 2)
        mask &= cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k) > 0
    n = int(mask.sum())
    if n < cfg.min_face_pixels:
        raise ProfileError(f"yaw {yaw:g}, pitch {pitch:g}: only {n} face pixel(s) visible "
                           f"(need {cfg.min_face_pixels})")
    # renormalise over the face vertices: background vertices carry corr 0 and indicator 0
    corr = np.clip(attrs[..., 3:6] / np.maximum(ind, 1e-12)[..., None], 0.0, 1.0)
    corr = np.where(mask[..., None], corr, 0.0).astype(np.float32)
    zmin = float(z[mask].min())
    depth = np.where(mask, z - zmin + DEPTH_BASE_PX, 0.0).astype(np.float32)
    return Sample(image=image, depth=depth, corr=corr, mask=mask, meta=meta)


def profile_sample(sample: Sample, yaw: float, pitch: float, cfg: ProfileConfig = ProfileConfig(),
                   center: np.ndarray | None = None) -> Sample:
    """One rotated view of one sample (lift + render); for several views lift once and call render_view."""
    return render_view(lift_surface(sample, cfg, center), yaw, pitch, cfg)


# ----------------------------------------------------------------------------- datasets
@dataclass
class ProfileRunConfig:
    """Options of ``facevision prepare profile`` (angles in degrees).

    Each view draws |yaw| uniformly in [min_yaw, max_yaw] (signs alternate between a sample's views,
    starting at random) and pitch uniformly in [-max_pitch, max_pitch]; the draw depends only on
    seed, sample id and view number, so reruns and ``--views`` changes keep existing views valid.
    Checked when built (ValueError naming the field).
    """

    views: int = 4
    min_yaw: float = 20.0
    max_yaw: float = 90.0
    max_pitch: float = 30.0
    seed: int = 0
    workers: int = 2
    limit: int | None = None
    include_originals: bool = False
    progress: bool = True
    profile: ProfileConfig = field(default_factory=ProfileConfig)

    def __post_init__(self) -> None:
        check_int(self, "views", low=1)
        if not 0 <= self.min_yaw <= self.max_yaw <= 90:
            raise ValueError(f"ProfileRunConfig needs 0 <= min_yaw <= max_yaw <= 90, got min_yaw {self.min_yaw:g}, "
                             f"max_yaw {self.max_yaw:g}")
        check_number(self, "max_pitch", 0, 90)
        check_int(self, "workers", low=1)
        check_int(self, "seed", low=0)
        check_int(self, "limit", low=0, optional=True)


def view_id(sample_id: str, k: int) -> str:
    return f"{sample_id}_lp{k}"


def view_angles(sample_id: str, k: int, cfg: ProfileRunConfig) -> tuple[float, float]:
    """Deterministic (yaw, pitch) in degrees (0.01 deg steps) of view ``k`` of a sample."""
    key = zlib.crc32(sample_id.encode())
    sign0 = 1.0 if np.random.default_rng([cfg.seed, key]).random() < 0.5 else -1.0
    rng = np.random.default_rng([cfg.seed, key, k + 1])
    yaw = sign0 * (-1.0) ** k * rng.uniform(cfg.min_yaw, cfg.max_yaw)
    pitch = rng.uniform(-cfg.max_pitch, cfg.max_pitch)
    return round(float(yaw), 2), round(float(pitch), 2)


_WORKER: dict[str, Any] = {}


def _init_worker(src: str, out: str, cfg: ProfileRunConfig) -> None:
    _WORKER.update(src=Path(src), out=Path(out), cfg=cfg, model=_dataset_model(Path(src)))


def _dataset_model(src: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(triangles, code, points) of a dataset whose reference face has triangles over the points its samples keep
    (``face_mesh.npy``: the 3DDFA grid); None for datasets labelled from visible depth only (Face Mesh)."""
    from facevision.face.reference import DATASET_REFERENCE_FILE, load_reference

    if not (src / DATASET_REFERENCE_FILE).is_file():
        return None
    ref = load_reference(src / DATASET_REFERENCE_FILE)
    n = int(ref.triangles.max()) + 1
    return ref.triangles, ref.vertices[:n], n


def _sample_model(src: Path, sid: str, sample: Sample) -> FaceModelSurface | None:
    from data_prep.dataset_format import read_face_mesh

    if _WORKER.get("model") is None:
        return None
    tri, code, n = _WORKER["model"]
    pts = read_face_mesh(src, sid)
    if pts is None or pts.shape[0] < n:
        raise ProfileError(f"{sample_dir(src, sid)}: the dataset has a face model but this sample keeps no "
                           f"{n} face points")
    return align_face_model(sample, pts[:n], tri, code)


def _process(task: tuple[str, list[int]]) -> dict[str, Any]:
    """Write the missing views of one source sample; returns {"id", "written", "failed": {view_id: msg}}."""
    sid, ks = task
    src, out, cfg = _WORKER["src"], _WORKER["out"], _WORKER["cfg"]
    rec: dict[str, Any] = {"id": sid, "written": 0, "failed": {}}
    try:
        sample = read_sample(src, sid)
        surf = lift_surface(sample, cfg.profile, model=_sample_model(src, sid, sample))
    except Exception as exc:  # a bad sample must not stop the run; it is counted and reported
        rec["failed"] = {view_id(sid, k): f"{type(exc).__name__}: {exc}" for k in ks}
        return rec
    for k in ks:
        try:
            view = render_view(surf, *view_angles(sid, k, cfg), cfg.profile)
            write_sample(out, view_id(sid, k), view)
            rec["written"] += 1
        except Exception as exc:
            rec["failed"][view_id(sid, k)] = f"{type(exc).__name__}: {exc}"
    return rec


def _run_pool(tasks: list[tuple[str, list[int]]], src: Path, out: Path,
              cfg: ProfileRunConfig) -> Iterator[dict[str, Any]]:
    if cfg.workers <= 1 or len(tasks) <= 1:
        _init_worker(str(src), str(out), cfg)
        for t in tasks:
            yield _process(t)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(cfg.workers, initializer=_init_worker, initargs=(str(src), str(out), cfg)) as pool:
        yield from pool.imap_unordered(_process, tasks, chunksize=4)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (a copy where linking fails), appearing atomically."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}-link.tmp{dst.suffix}")  # facevision.face.images's temporary naming
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        atomic_write(dst, lambda p: shutil.copyfile(src, p))
        return
    os.replace(tmp, dst)


def _check_run_config(out: Path, src: Path, cfg: ProfileRunConfig) -> None:
    """Refuse to mix views made with other angle settings in one folder; record the settings otherwise."""
    settings = {"source": str(src.resolve()), "min_yaw": cfg.min_yaw, "max_yaw": cfg.max_yaw,
                "max_pitch": cfg.max_pitch, "seed": cfg.seed, "profile": asdict(cfg.profile)}
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as read back
    path = out / RUN_CONFIG_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None and old != settings:
            diff = sorted(k for k in settings if old.get(k) != settings[k])
            raise ValueError(f"{out}: holds views made with other settings ({', '.join(diff)} differ, see "
                             f"{RUN_CONFIG_NAME}); use a new output folder")
    atomic_write_json(path, settings)


def profile_dataset(src: str | Path, out: str | Path, cfg: ProfileRunConfig = ProfileRunConfig()) -> dict[str, Any]:
    """Write ``cfg.views`` rotated views of every source sample (all splits) as a new dataset; resumable.

    View ``k`` of sample ``ID`` is sample ``ID_lp<k>`` with the source entry's keys (identity, split,
    source, crop_box...) plus ``profile_of``, ``view``, ``yaw`` and ``pitch`` (degrees, added to the
    source pose).
    Views whose four files exist are skipped. Returns the summary (also stored in the manifest).
    """
    src, out = Path(src), Path(out)
    t0 = time.time()
    manifest = read_manifest(src)
    if src.resolve() == out.resolve():
        raise ValueError(f"{out}: the output must be a new folder, not the source dataset")
    entries = manifest["samples"] if cfg.limit is None else manifest["samples"][: cfg.limit]
    out.mkdir(parents=True, exist_ok=True)
    _check_run_config(out, src, cfg)
    tasks = []
    for e in entries:
        ks = [k for k in range(cfg.views) if not sample_complete(out, view_id(e["id"], k))]
        if ks:
            tasks.append((e["id"], ks))
    n_todo = sum(len(ks) for _, ks in tasks)
    print(f"profile: {len(entries)} source samples x {cfg.views} views; {len(entries) * cfg.views - n_todo} "
          f"already done, {n_todo} to render with {cfg.workers} worker(s)", file=sys.stderr, flush=True)
    failed = _render_views(tasks, src, out, cfg, n_todo)
    samples, originals = _profiled_entries(entries, src, out, cfg)
    summary = {
        "source": str(src),
        "source_samples": len(entries),
        "views_per_sample": cfg.views,
        "rendered_this_run": n_todo - len(failed),
        "failed": len(failed),
        "failures": dict(sorted(failed.items())[:50]),
        "views": len(samples) - originals,
        "originals": originals,
        "wall_time_s": round(time.time() - t0, 1),
        "workers": cfg.workers,
    }
    written = _write_profile_manifest(src, out, manifest, samples, cfg, summary)
    summary["split_counts"] = {s: written["split_counts"][s] for s in SPLITS}
    return summary


def _render_views(tasks: list[tuple[str, list[int]]], src: Path, out: Path, cfg: ProfileRunConfig,
                  n_todo: int) -> dict[str, str]:
    """Render and write the missing views with the worker pool; returns {view id: why it failed}."""
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=n_todo, unit="view", dynamic_ncols=True, mininterval=2.0, file=sys.stderr)
    failed: dict[str, str] = {}
    for rec in _run_pool(tasks, src, out, cfg):
        failed.update(rec["failed"])
        if bar is not None:
            bar.update(rec["written"] + len(rec["failed"]))
    if bar is not None:
        bar.close()
    return failed


def _profiled_entries(entries: list[dict[str, Any]], src: Path, out: Path,
                      cfg: ProfileRunConfig) -> tuple[list[dict[str, Any]], int]:
    """Manifest entries of the complete views (and of the source samples, linked in, with
    ``include_originals``); also the number of originals."""
    samples: list[dict[str, Any]] = []
    originals = 0
    for e in entries:
        if cfg.include_originals and sample_complete(src, e["id"]):
            if not sample_complete(out, e["id"]):
                for name in SAMPLE_FILES:  # mask last: a complete mask means a complete sample
                    _link_or_copy(sample_dir(src, e["id"]) / name, sample_dir(out, e["id"]) / name)
            samples.append(dict(e))
            originals += 1
        for k in range(cfg.views):
            vid = view_id(e["id"], k)
            if sample_complete(out, vid):
                yaw, pitch = view_angles(e["id"], k, cfg)
                samples.append({**e, "id": vid, "profile_of": e["id"], "view": k, "yaw": yaw, "pitch": pitch})
    return samples, originals


def _write_profile_manifest(src: Path, out: Path, manifest: dict[str, Any], samples: list[dict[str, Any]],
                            cfg: ProfileRunConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """The new dataset's manifest (the source's size, label source + "+profile", space; the profile settings),
    with the source's reference face linked in where it has one; returns the written manifest."""
    from facevision.face.reference import DATASET_REFERENCE_FILE

    settings = {"min_yaw": cfg.min_yaw, "max_yaw": cfg.max_yaw, "max_pitch": cfg.max_pitch, "seed": cfg.seed,
                "config": asdict(cfg.profile), "labels_from": "face model" if _dataset_model(src) else "visible depth"}
    if (src / DATASET_REFERENCE_FILE).is_file():  # the views' maps are in the source's space
        _link_or_copy(src / DATASET_REFERENCE_FILE, out / DATASET_REFERENCE_FILE)
    return write_manifest(out, samples, size=manifest["size"],
                          label_source=f"{manifest.get('label_source', 'unknown')}+profile",
                          correspondence_space=manifest.get("correspondence_space", "unknown"),
                          profile=settings, summary=summary)

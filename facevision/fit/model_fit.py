"""Fit the project's linear face model (:mod:`facevision.face.face_model`) to one prediction's maps.

Every face pixel gives a pair: its 3D point lifted from the depth map in the mesh frame of
:mod:`facevision.maps.pose` (``X`` = column, ``Y`` = ``S - 1 - row``, ``Z`` = depth, crop px), and the
model surface point its correspondence ``(u, v)`` shows (a triangle of the reference face's fold-free
``(u, v)`` layout and barycentric coordinates in it). The model point is linear in the coefficients ``c``
(identity then expression): ``P(c) = A0 + A c``. The fit alternates a similarity (Umeyama: ``X ~ s R P + t``)
with ridge least squares for ``c`` and trims pairs whose residual exceeds ``trim_factor`` x the median.
docs/face_model.md describes the fit and its measurements.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facevision.face.face_model import FaceModel, load_face_model
from facevision.face.reference import ReferenceFace, load_reference
from facevision.maps.pose import Pose, reference_tilt, rotation_to_angles
from facevision.common.checks import check_int, check_number
from facevision.common.geometry import similarity_fit
from facevision.face.sizes import CROP_SIZE

__all__ = ["FitConfig", "ModelFit", "fit_face_model", "fit_shared_identity", "uv_lookup", "locate_uv"]


@dataclass(frozen=True)
class FitConfig:
    """max_points: face pixels used (even subsample); iterations: similarity / coefficient rounds;
    trim_factor: pairs beyond this x the median residual are dropped (0 = keep all); noise_px: expected
    map noise in crop px (sets the prior's weight); prior_weight: extra factor on the prior;
    visible_tol: a landmark is visible when its depth is within this fraction of the scale (px per
    unit radius) of the z-buffer; min_pixels: fewer usable pixels -> ValueError; lookup_size: side of
    the (u, v) -> triangle lookup grid; scale_range, max_rms_frac, max_outside_frac: a fit is implausible
    (ValueError) when its scale (px per unit radius) leaves ``scale_range`` x S, its RMS residual exceeds
    ``max_rms_frac`` x S, or a landmark lies more than ``max_outside_frac`` x S outside the crop."""

    max_points: int = 1500
    iterations: int = 4
    trim_factor: float = 2.5
    noise_px: float = 5.0
    prior_weight: float = 1.0
    visible_tol: float = 0.06
    min_pixels: int = 30
    lookup_size: int = 512
    scale_range: tuple[float, float] = (0.05, 0.8)
    max_rms_frac: float = 0.1
    max_outside_frac: float = 0.5

    def __post_init__(self) -> None:
        for name, low in (("max_points", 3), ("iterations", 1), ("min_pixels", 3), ("lookup_size", 2)):
            check_int(self, name, low=low)
        for name in ("trim_factor", "noise_px", "prior_weight", "visible_tol", "max_outside_frac"):
            check_number(self, name, low=0)
        check_number(self, "max_rms_frac", low=0, low_open=True)
        if len(self.scale_range) != 2 or not 0.0 <= self.scale_range[0] < self.scale_range[1]:
            raise ValueError(f"FitConfig.scale_range must be (low, high) with 0 <= low < high, "
                             f"got {self.scale_range!r}")


@dataclass
class ModelFit:
    """id_coeffs (Ki,), exp_coeffs (Ke,): unit prior variance; scale (crop px per raw unit), rotation (3, 3)
    raw frame -> mesh frame, translation (3,) crop px; vertices (V, 3) fitted model in the mesh frame
    (crop px, Y up); landmarks68 (68, 2) crop px (x = column, y = row); landmarks68_3d (68, 3) mesh frame;
    visible (68,) bool; pose: :class:`facevision.maps.pose.Pose`; rms_px: residual RMS over kept pixels;
    n_pixels: pairs kept; crop_size: side S of the crop the maps came from; triangles (F, 3): the face model's
    triangles over ``vertices`` (its topology: 468 Face Mesh vertices or a 3DMM grid and its landmarks)."""

    id_coeffs: np.ndarray
    exp_coeffs: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    vertices: np.ndarray
    landmarks68: np.ndarray
    landmarks68_3d: np.ndarray
    visible: np.ndarray
    pose: Pose
    rms_px: float
    n_pixels: int
    crop_size: int = CROP_SIZE
    triangles: np.ndarray | None = None

    def to_dict(self) -> dict:
        """JSON-ready summary (``result.json``'s ``model_fit``)."""
        r = lambda a, d=4: [round(float(x), d) for x in np.ravel(a)]  # noqa: E731
        return {"id_coeffs": r(self.id_coeffs), "exp_coeffs": r(self.exp_coeffs), "scale_px": round(self.scale, 4),
                "rotation": [r(row, 6) for row in self.rotation], "translation_px": r(self.translation, 3),
                "rms_px": round(self.rms_px, 4), "pixels": self.n_pixels}


_LOOKUPS: dict[tuple[str, str, int], np.ndarray] = {}


def uv_lookup(reference: ReferenceFace, size: int = 512) -> np.ndarray:
    """(size, size) triangle index of ``reference``'s (u, v) layout at (u, v) (row = (1 - v) * (size - 1)),
    -1 outside; built once per reference layout (its name, (u, v) and triangles) and size."""
    import hashlib

    layout = hashlib.sha1(np.ascontiguousarray(reference.vertices[:, :2]).tobytes()
                          + np.ascontiguousarray(reference.triangles).tobytes()).hexdigest()
    key = (reference.name, layout, int(size))
    if key not in _LOOKUPS:
        from facevision.face.rasterize import rasterize

        tri = reference.triangles
        uv = reference.vertices[:, :2]
        # one vertex copy per triangle corner, attribute = the triangle's index: constant inside each triangle
        v = np.stack([uv[tri, 0] * (size - 1), (1.0 - uv[tri, 1]) * (size - 1), np.zeros(tri.shape)], -1).reshape(-1, 3)
        ids = np.repeat(np.arange(len(tri), dtype=np.float64), 3)[:, None] + 1.0
        _, attr, cover = rasterize(v, np.arange(len(v)).reshape(-1, 3), size, size, ids)
        grid = np.where(cover, np.round(attr[..., 0]).astype(np.int64) - 1, -1)
        grid.setflags(write=False)
        _LOOKUPS[key] = grid
    return _LOOKUPS[key]


def locate_uv(uv: np.ndarray, reference: ReferenceFace, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) correspondences (u, v) -> triangle index (N,) (-1 outside the face) and (N, 3) barycentric
    coordinates in that triangle of the reference's (u, v) layout (clipped to >= 0, summing to 1)."""
    grid = uv_lookup(reference, size)
    uv = np.asarray(uv, np.float64)
    col = np.clip(np.round(uv[:, 0] * (size - 1)), 0, size - 1).astype(np.int64)
    row = np.clip(np.round((1.0 - uv[:, 1]) * (size - 1)), 0, size - 1).astype(np.int64)
    tri = grid[row, col]
    ok = tri >= 0
    bary = np.zeros((len(uv), 3))
    if ok.any():
        corners = reference.vertices[reference.triangles[tri[ok]], :2]  # (n, 3, 2)
        a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
        v0, v1, v2 = b - a, c - a, uv[ok] - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        den = np.where(np.abs(den) < 1e-15, 1e-15, den)
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        lam = np.clip(np.stack([1.0 - l1 - l2, l1, l2], 1), 0.0, None)
        bary[ok] = lam / np.maximum(lam.sum(1, keepdims=True), 1e-12)
    return tri, bary


def _visible(vertices_mesh: np.ndarray, triangles: np.ndarray, points: np.ndarray, size: int, tol_px: float) -> np.ndarray:
    """(L,) bool: a (L, 3) mesh-frame point is visible when it lies in the crop and no triangle of the fitted
    mesh covering its (X, Y) lies more than ``tol_px`` in front of it (a z-buffer test at the points only)."""
    p0, p1, p2 = (vertices_mesh[triangles[:, i]] for i in range(3))  # (F, 3) each
    e1, e2 = p1[:, :2] - p0[:, :2], p2[:, :2] - p0[:, :2]
    den = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    good = np.abs(den) > 1e-12
    p0, e1, e2, den = p0[good], e1[good], e2[good], den[good]
    dz1, dz2 = p1[good, 2] - p0[:, 2], p2[good, 2] - p0[:, 2]
    q = points[:, None, :2] - p0[None, :, :2]  # (L, F, 2)
    l1 = (q[..., 0] * e2[:, 1] - e2[:, 0] * q[..., 1]) / den
    l2 = (e1[:, 0] * q[..., 1] - q[..., 0] * e1[:, 1]) / den
    inside = (l1 >= -1e-9) & (l2 >= -1e-9) & (l1 + l2 <= 1 + 1e-9)
    z = p0[:, 2] + l1 * dz1 + l2 * dz2
    occluded = (inside & (z > points[:, None, 2] + tol_px)).any(1)
    in_crop = (points[:, 0] >= -0.5) & (points[:, 0] <= size - 0.5) & (points[:, 1] >= -0.5) & (points[:, 1] <= size - 0.5)
    return in_crop & ~occluded


@dataclass
class _Pairs:
    """Face pixels of one prediction: x (N, 3) mesh frame; model point = a0 (N, 3) + a (N, 3, K) @ c."""

    x: np.ndarray
    a0: np.ndarray
    a: np.ndarray
    size: int
    tilt_deg: float = 0.0  # the reference's frontal pitch (poses are reported relative to a frontal view)


def _pairs(depth_px: np.ndarray, corr: np.ndarray, mask: np.ndarray, model: FaceModel, config: FitConfig,
           reference: ReferenceFace) -> _Pairs:
    depth_px = np.asarray(depth_px, np.float64)
    size = depth_px.shape[0]
    m = np.asarray(mask, bool) & (depth_px > 0)
    rows, cols = np.nonzero(m)
    if len(rows) > config.max_points:
        keep = np.linspace(0, len(rows) - 1, config.max_points).astype(np.int64)
        rows, cols = rows[keep], cols[keep]
    tri, bary = locate_uv(np.asarray(corr, np.float64)[rows, cols, :2], reference, config.lookup_size)
    ok = tri >= 0
    if ok.sum() < config.min_pixels:
        raise ValueError(f"only {int(ok.sum())} face pixels fall on the face model (need {config.min_pixels}): no fit")
    rows, cols, tri, bary = rows[ok], cols[ok], tri[ok], bary[ok]
    x = np.stack([cols, size - 1 - rows, depth_px[rows, cols]], 1).astype(np.float64)
    idx = model.triangles[tri]  # (N, 3)
    k = model.n_id + model.n_exp
    basis = model.basis.reshape(k, -1, 3)
    a0 = np.einsum("nc,ncd->nd", bary, model.mean[idx])
    a = np.einsum("nc,kncd->ndk", bary, basis[:, idx])  # (N, 3, K)
    return _Pairs(x=x, a0=a0, a=a, size=size, tilt_deg=float(reference.frontal_pitch_deg))


def _similarity(pr: _Pairs, coef: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    return similarity_fit((pr.a0 + pr.a @ coef)[w], pr.x[w])


def _normal_equations(pr: _Pairs, sim: tuple[float, np.ndarray, np.ndarray], w: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(K, K), (K,) of ||A c - (Y - A0)||^2 over kept pairs, Y = the pixels taken into the model frame."""
    s, rot, t = sim
    y = (pr.x - t) @ rot / s
    mat = pr.a[w].reshape(-1, pr.a.shape[2])
    rhs = (y - pr.a0)[w].reshape(-1)
    return mat.T @ mat, mat.T @ rhs


def _trim(pr: _Pairs, coef: np.ndarray, sim, config: FitConfig) -> tuple[np.ndarray, np.ndarray]:
    s, rot, t = sim
    res = np.linalg.norm(s * (pr.a0 + pr.a @ coef) @ rot.T + t - pr.x, axis=1)
    w = np.ones(len(res), bool)
    if config.trim_factor > 0:
        w = res <= config.trim_factor * max(float(np.median(res)), 1e-9)
        if w.sum() < config.min_pixels:
            w = np.ones(len(res), bool)
    return w, res


def _result(pr: _Pairs, coef: np.ndarray, sim, w: np.ndarray, res: np.ndarray, model: FaceModel,
            config: FitConfig) -> ModelFit:
    s, rot, t = sim
    rms = float(np.sqrt(np.mean(res[w] ** 2)))
    verts = s * model.shape(coef[: model.n_id], coef[model.n_id:]) @ rot.T + t
    lm3 = verts[model.ibug68]
    vis = _visible(verts, model.triangles, lm3, pr.size, config.visible_tol * s)
    head = rot @ reference_tilt(pr.tilt_deg).T
    yaw, pitch, roll = rotation_to_angles(head)
    pose = Pose(yaw=yaw, pitch=pitch, roll=roll, rotation=head, scale=float(s), translation=t, rms=rms,
                fit_rotation=rot)
    lm2 = np.stack([lm3[:, 0], pr.size - 1 - lm3[:, 1]], 1)
    return ModelFit(id_coeffs=coef[: model.n_id].copy(), exp_coeffs=coef[model.n_id:].copy(), scale=float(s),
                    rotation=rot, translation=t, vertices=verts, landmarks68=lm2, landmarks68_3d=lm3, visible=vis,
                    pose=pose, rms_px=rms, n_pixels=int(w.sum()), crop_size=int(pr.size), triangles=model.triangles)


def _prior(config: FitConfig, s: float) -> float:
    return config.prior_weight * (config.noise_px / max(s, 1e-9)) ** 2


def fit_face_model(depth_px: np.ndarray, corr: np.ndarray, mask: np.ndarray, model: FaceModel | None = None,
                   config: FitConfig = FitConfig(), reference: ReferenceFace | None = None) -> ModelFit:
    """(S, S) depth_px, (S, S, 3) correspondence, (S, S) mask (:mod:`facevision.common.conventions`) ->
    :class:`ModelFit`. ValueError when fewer than ``config.min_pixels`` face pixels fall on the model, or the fit is
    implausible (:class:`FitConfig`)."""
    model = model or load_face_model()
    reference = reference or load_reference()
    return _fit_pairs(_pairs(depth_px, corr, mask, model, config, reference), model, config)


def _fit_pairs(pr: _Pairs, model: FaceModel, config: FitConfig) -> ModelFit:
    """The single-photo fit of prepared pixel pairs (see :func:`fit_face_model`)."""
    k = model.n_id + model.n_exp
    coef = np.zeros(k)
    w = np.ones(len(pr.x), bool)
    for _ in range(config.iterations):
        sim = _similarity(pr, coef, w)
        ata, atb = _normal_equations(pr, sim, w)
        coef = np.linalg.solve(ata + _prior(config, sim[0]) * np.eye(k), atb)
        w, res = _trim(pr, coef, sim, config)
    return _check_plausible(_result(pr, coef, sim, w, res, model, config), config)


def _check_plausible(fit: ModelFit, config: FitConfig) -> ModelFit:
    """ValueError when the maps did not show a face the model can take (see :class:`FitConfig`)."""
    size = float(fit.crop_size)
    lo, hi = config.scale_range
    lm = fit.landmarks68
    out = config.max_outside_frac * size
    if not (lo * size <= fit.scale <= hi * size):
        raise ValueError(f"implausible face-model fit: scale {fit.scale:.1f} px per unit for a {size:.0f} px crop")
    if fit.rms_px > config.max_rms_frac * size:
        raise ValueError(f"implausible face-model fit: residual {fit.rms_px:.1f} px")
    if not np.all((lm >= -out) & (lm <= size + out)):
        raise ValueError("implausible face-model fit: landmarks far outside the crop")
    return fit


def fit_shared_identity(maps: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], model: FaceModel | None = None,
                        config: FitConfig = FitConfig(), reference: ReferenceFace | None = None
                        ) -> tuple[np.ndarray, list[ModelFit]]:
    """Several predictions of one person (``maps``: (depth_px, corr, mask) per photo) -> one shared identity code,
    with similarity and expression per photo: single-photo fits, then alternating per-photo similarities and one
    joint ridge solve. Returns (identity coefficients (Ki,), one :class:`ModelFit` per photo)."""
    model = model or load_face_model()
    reference = reference or load_reference()
    if not maps:
        raise ValueError("no photos to fit")
    prs = [_pairs(d, c, m, model, config, reference) for d, c, m in maps]
    ki, ke, j = model.n_id, model.n_exp, len(prs)
    fits = [_fit_pairs(pr, model, config) for pr in prs]
    ident = np.mean([f.id_coeffs for f in fits], 0)
    exps = [f.exp_coeffs for f in fits]
    ws = [np.ones(len(p.x), bool) for p in prs]
    for _ in range(config.iterations):
        n = ki + j * ke
        big, rhs = np.zeros((n, n)), np.zeros(n)
        sims = []
        for i, pr in enumerate(prs):
            coef = np.concatenate([ident, exps[i]])
            sim = _similarity(pr, coef, ws[i])
            sims.append(sim)
            ata, atb = _normal_equations(pr, sim, ws[i])
            lam = _prior(config, sim[0])
            e = slice(ki + i * ke, ki + (i + 1) * ke)
            big[:ki, :ki] += ata[:ki, :ki] + lam * np.eye(ki) / j
            big[:ki, e] += ata[:ki, ki:]
            big[e, :ki] += ata[ki:, :ki]
            big[e, e] += ata[ki:, ki:] + lam * np.eye(ke)
            rhs[:ki] += atb[:ki]
            rhs[e] += atb[ki:]
        sol = np.linalg.solve(big, rhs)
        ident = sol[:ki]
        exps = [sol[ki + i * ke: ki + (i + 1) * ke] for i in range(j)]
        for i, pr in enumerate(prs):
            ws[i], _ = _trim(pr, np.concatenate([ident, exps[i]]), sims[i], config)
    out = []
    for i, pr in enumerate(prs):
        coef = np.concatenate([ident, exps[i]])
        w, res = _trim(pr, coef, sims[i], config)
        out.append(_result(pr, coef, sims[i], w, res, model, config))
    return ident, out

"""Registering FLAME to one reconstruction: rigid stage, then shape/expression/pose refinement.

Inputs are what ``facevision predict`` produces per face: the refined mesh (meshing's frame, crop
pixels: X = column, Y = H-1-row, Z = depth towards the viewer), the correspondence map and the
iBUG-68 landmarks in crop pixels (x = column, y = row).

Stage 1 (rigid): every mesh vertex's correspondence value is mapped to a FLAME template surface
point (:mod:`facevision.flame.correspondence`); a trimmed, weighted Umeyama similarity
(rotation, translation, scale) aligns the template to the mesh, landmarks lifted onto the mesh
included.

Stage 2 (refinement, flame-head-tracker style): Adam with per-group learning rates on identity
shape, expression, jaw, neck, global rotation, log-scale and translation, minimizing robust
(Huber) point-to-point correspondence distances, point-to-plane distances to the current FLAME
face surface (closest points re-associated every few steps, far pairs trimmed), 2D landmark
distances (contour landmarks down-weighted), plus L2 priors on shape, expression, jaw and neck.

Scale and units: depth from one photo is relative, but meshing's X/Y are exact crop pixels and Z
shares their units, so the only free size is one isotropic factor. FLAME's shape prior keeps the
head near FLAME's average metric size; ``scale`` (crop pixels per metre) absorbs how large the
face is in the crop. The fitted mesh (``FlameFit.vertices``, ``flame_mesh.obj``) is in metres in
FLAME's frame; ``vertices_px = scale * vertices + translation_px`` overlays it on the reconstruction.
Residuals are reported in crop pixels and in millimetres (pixels / scale).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from facevision.common.checks import check_fraction, check_int, check_number
from facevision.flame.correspondence import FlameCorrespondence, relation_for
from facevision.flame.geometry import barycentric_points, closest_points
from facevision.flame.lbs import flame_forward_torch, flame_tensors, subset_tensors, torch_threads
from facevision.flame.model import FlameModel
from facevision.flame.params import FlameParams
from facevision.common.conventions import check_corr
from facevision.common.geometry import similarity_fit

__all__ = ["RegistrationConfig", "FlameFit", "RegistrationError", "register", "CONTOUR_LANDMARKS"]

CONTOUR_LANDMARKS = np.arange(17)


class RegistrationError(ValueError):
    """The inputs cannot be registered (too few valid correspondences, mismatched shapes, ...)."""


@dataclass
class RegistrationConfig:
    """Every knob of :func:`register`; checked when built (ValueError naming the field). Distances in stage 2
    are in units of the data's RMS radius (the face's root-mean-square distance from its centroid, ~0.4 x face
    width)."""

    max_points: int = 1200  # mesh vertices sampled for fitting
    min_points: int = 50
    max_corr_distance: float = 0.25  # reference raw units: correspondence values further from FLAME's face are dropped
    seed: int = 0
    # stage 1
    rigid_rounds: int = 4
    rigid_keep: float = 0.8  # fraction of pairs kept per trimmed round
    # stage 2
    iterations: int = 70
    reassociate_every: int = 10
    n_shape: int = 50  # leading identity components fitted (the rest stay 0)
    n_expr: int = 30
    fit_neck: bool = True
    lr_shape: float = 0.08
    lr_expr: float = 0.08
    lr_pose: float = 0.02  # jaw, neck (radians)
    lr_global: float = 0.01
    lr_scale: float = 0.01
    lr_trans: float = 0.01
    w_corr: float = 1.0
    w_p2s: float = 1.0
    w_landmarks: float = 0.5
    contour_weight: float = 0.2
    huber_delta: float = 0.03
    trim_factor: float = 3.0  # point-to-surface pairs beyond this x median distance are ignored
    prior_shape: float = 2e-5
    prior_expr: float = 1e-5
    prior_jaw: tuple[float, float, float] = (1e-3, 1e-2, 1e-2)  # opening (X) is free-er than sideways
    prior_neck: float = 1e-2
    threads: int = 1  # torch threads while fitting (tiny ops: more threads only add overhead)

    def __post_init__(self) -> None:
        for name in ("min_points", "rigid_rounds", "iterations", "reassociate_every", "threads"):
            check_int(self, name, low=1)
        if int(self.max_points) < int(self.min_points):
            raise ValueError(f"RegistrationConfig.max_points must be at least min_points ({self.min_points}), "
                             f"got {self.max_points!r}")
        for name in ("seed", "n_shape", "n_expr"):
            check_int(self, name, low=0)
        for name in ("max_corr_distance", "huber_delta", "trim_factor"):
            check_number(self, name, low=0, low_open=True, finite=False)
        check_fraction(self, "rigid_keep", low_open=True)
        for name in ("lr_shape", "lr_expr", "lr_pose", "lr_global", "lr_scale", "lr_trans", "w_corr", "w_p2s",
                     "w_landmarks", "contour_weight", "prior_shape", "prior_expr", "prior_neck"):
            check_number(self, name, low=0, finite=False)
        if len(self.prior_jaw) != 3 or not all(float(w) >= 0.0 for w in self.prior_jaw):
            raise ValueError(f"RegistrationConfig.prior_jaw must be three weights >= 0, got {self.prior_jaw!r}")


@dataclass
class FlameFit:
    """Result of :func:`register` (write it with :func:`facevision.flame.save_fit`).

    params: all FLAME parameters (see :class:`FlameParams` for frames/units).
    vertices: (V,3) posed FLAME vertices in metres (FLAME frame); vertices_px: the same in crop pixels.
    residual_mean_px / residual_p90_px: distances from the reconstruction's face vertices to the fitted
    FLAME surface (crop px); *_mm: the same in millimetres (px / scale * 1000).
    """

    params: FlameParams
    vertices: np.ndarray
    vertices_px: np.ndarray
    residual_mean_px: float
    residual_p90_px: float
    residual_mean_mm: float
    residual_p90_mm: float
    n_points: int
    model_sha256: str
    faces: np.ndarray  # (F,3) FLAME triangles (for writing flame_mesh.obj)
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers for result.json."""
        return {"residual_mean_px": round(self.residual_mean_px, 4), "residual_p90_px": round(self.residual_p90_px, 4),
                "residual_mean_mm": round(self.residual_mean_mm, 4), "residual_p90_mm": round(self.residual_p90_mm, 4),
                "scale_px_per_m": round(float(self.params.scale), 4), "n_points": self.n_points,
                "model_sha256": self.model_sha256, "seconds": {k: round(v, 4) for k, v in self.timings.items()}}


def _sample_corr(corr_map: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    h, w = corr_map.shape[:2]
    r = np.clip(np.round(pixels[:, 0]).astype(np.int64), 0, h - 1)
    c = np.clip(np.round(pixels[:, 1]).astype(np.int64), 0, w - 1)
    return corr_map[r, c, :3].astype(np.float64)


def _huber(r: torch.Tensor, delta: float) -> torch.Tensor:
    a = r.abs()
    return torch.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta))


def register(mesh: Any, corr_map: np.ndarray | None, landmarks68: np.ndarray | None, model: FlameModel,
             config: RegistrationConfig = RegistrationConfig(), reference: Any = None,
             relation: FlameCorrespondence | None = None) -> FlameFit:
    """Fit FLAME to one reconstruction.

    Args:
        mesh: meshing.FaceMesh (uses ``vertices`` (N,3) crop px, ``pixels`` (N,2) (row, col) and ``corr``
            (N,3) or None).
        corr_map: (H,W,3) correspondence (:mod:`facevision.common.conventions`: in [0,1], 0 = background;
            checked); sampled at ``mesh.pixels`` when ``mesh.corr`` is None; its height also converts landmark
            rows to Y. May be None when ``mesh.corr`` is set and no landmarks are given.
        landmarks68: (68,2) iBUG-68 landmarks in crop pixels (x = column, y = row), or None.
        model: the FLAME model (:func:`load_flame_model`).
        reference: the correspondence space's reference face (default: facevision.face.reference.load_reference()).
        relation: a precomputed :func:`relate_reference_to_flame` result; else :func:`relation_for` computes
            (and caches) it, using FLAME's mediapipe_landmark_embedding.npz when found next to the model
            file or named by $FACEVISION_FLAME_EMBEDDING.
    Raises:
        RegistrationError: too few usable correspondences or inconsistent inputs.
    """
    t0 = time.perf_counter()
    if corr_map is not None:
        check_corr(corr_map, source="register: corr_map", error=RegistrationError)
    if getattr(mesh, "corr", None) is not None:
        check_corr(np.asarray(mesh.corr)[None], source="register: mesh.corr", error=RegistrationError)
    if relation is None:
        relation = relation_for(model, reference)
    t_rel = time.perf_counter()
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    idx_all, idx, tri, bary = _fitting_pairs(_vertex_corr(mesh, corr_map, verts), verts, model, relation, config)
    pts = verts[idx]
    lm_xy, lm3d = _landmark_targets(landmarks68, mesh, corr_map, verts)
    s, r, t = _rigid_stage(model, relation, pts, tri, bary, lm3d, config)
    t_rigid = time.perf_counter()
    with torch_threads(config.threads):
        params, _ = _refine(model, relation, pts, tri, bary, lm_xy, s, r, t, config)
    t_refine = time.perf_counter()
    vm = _forward_np(model, params)
    vpx = params.scale * vm + params.translation_px
    mean_px, p90_px = _residuals(vpx, model, relation, verts[idx_all])
    t_end = time.perf_counter()
    return FlameFit(params=params, vertices=vm, vertices_px=vpx, residual_mean_px=mean_px, residual_p90_px=p90_px,
                    residual_mean_mm=mean_px / params.scale * 1000.0, residual_p90_mm=p90_px / params.scale * 1000.0,
                    n_points=int(len(pts)), model_sha256=model.sha256, faces=model.faces,
                    timings={"relation": t_rel - t0, "rigid": t_rigid - t_rel, "refine": t_refine - t_rigid,
                             "residuals": t_end - t_refine, "total": t_end - t0})


# ----------------------------------------------------------------------------- inputs
def _vertex_corr(mesh: Any, corr_map: np.ndarray | None, verts: np.ndarray) -> np.ndarray:
    """(N,3) correspondence per mesh vertex: ``mesh.corr``, else ``corr_map`` sampled at ``mesh.pixels`` (NaN
    where a vertex has no pixel)."""
    corr = getattr(mesh, "corr", None)
    if corr is None:
        if corr_map is None:
            raise RegistrationError("register: the mesh has no per-vertex correspondence and no corr_map was given")
        pixels = np.asarray(mesh.pixels, dtype=np.float64)
        corr = np.full(verts.shape, np.nan)
        known = np.isfinite(pixels).all(1)
        corr[known] = _sample_corr(np.asarray(corr_map), pixels[known])
    corr = np.asarray(corr, dtype=np.float64)
    if corr.shape != verts.shape:
        raise RegistrationError(f"register: corr {corr.shape} does not match vertices {verts.shape}")
    return corr


def _fitting_pairs(corr: np.ndarray, verts: np.ndarray, model: FlameModel, relation: FlameCorrespondence,
                   config: RegistrationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids of all vertices with a valid correspondence, ids of those fitted (at most ``max_points``, landing on
    FLAME's face region), their FLAME triangles (K,), barycentric weights (K,3))."""
    valid = np.isfinite(corr).all(1) & np.isfinite(verts).all(1) & (corr.max(1) > 0) & (corr.min(1) >= 0) \
        & (corr.max(1) <= 1)
    idx_all = np.where(valid)[0]
    if len(idx_all) < config.min_points:
        raise RegistrationError(f"register: only {len(idx_all)} mesh vertices have a correspondence "
                                f"(need {config.min_points})")
    rng = np.random.default_rng(config.seed)
    idx = idx_all if len(idx_all) <= config.max_points else np.sort(rng.choice(idx_all, config.max_points, replace=False))
    tri, bary, dist = relation.lookup(corr[idx], model.faces)
    ok = dist <= config.max_corr_distance
    idx, tri, bary = idx[ok], tri[ok], bary[ok]
    if len(idx) < config.min_points:
        raise RegistrationError(f"register: only {len(idx)} correspondences land on FLAME's face region")
    return idx_all, idx, tri, bary


def _landmark_targets(landmarks68: np.ndarray | None, mesh: Any, corr_map: np.ndarray | None,
                      verts: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The landmarks as 2D targets in mesh X/Y (68,2) and lifted onto the mesh (68,3; the nearest vertex within
    2 px, NaN where none) for the rigid stage; (None, None) without landmarks or when any is not finite."""
    if landmarks68 is None:
        return None, None
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise RegistrationError(f"register: landmarks68 must be (68, 2), got {lm.shape}")
    lm_xy = np.stack([lm[:, 0], _image_height(mesh, corr_map, verts) - 1 - lm[:, 1]], 1)
    pix = np.asarray(mesh.pixels, dtype=np.float64)
    known = np.where(np.isfinite(pix).all(1))[0]
    lm3d = np.full((68, 3), np.nan)
    if len(known):
        from scipy.spatial import cKDTree

        d, nn = cKDTree(pix[known, ::-1]).query(lm)
        lm3d = np.where((d < 2.0)[:, None], verts[known[nn]], np.nan)
    if not np.isfinite(lm_xy).all():
        return None, None
    return lm_xy, lm3d


def _image_height(mesh: Any, corr_map: np.ndarray | None, verts: np.ndarray) -> float:
    """Height H (px) of the crop the mesh comes from, for Y = H-1-row."""
    if corr_map is not None:
        return corr_map.shape[0]
    if getattr(mesh, "source_shape", None) is not None:
        return mesh.source_shape[0]
    pix = np.asarray(mesh.pixels, dtype=np.float64)
    return float(np.nanmedian(verts[:, 1] + pix[:, 0])) + 1.0  # Y = H-1-row


# ----------------------------------------------------------------------------- stage 1
def _rigid_stage(model: FlameModel, relation: FlameCorrespondence, pts: np.ndarray, tri: np.ndarray,
                 bary: np.ndarray, lm3d: np.ndarray | None, config: RegistrationConfig
                 ) -> tuple[float, np.ndarray, np.ndarray]:
    """Trimmed weighted Umeyama of the template (zero parameters) onto the mesh points and lifted landmarks
    (contour landmarks left out): (scale, rotation (3,3), translation (3,)), crop px per FLAME metre."""
    src = barycentric_points(model.v_template, model.faces, tri, bary)
    dst = pts
    w = np.ones(len(src))
    lm_tmpl = barycentric_points(model.v_template, model.faces, relation.landmark_tri, relation.landmark_bary)
    if lm3d is not None:
        good = np.isfinite(lm3d).all(1)
        good[CONTOUR_LANDMARKS] = False
        src = np.vstack([src, lm_tmpl[good]])
        dst = np.vstack([dst, lm3d[good]])
        w = np.append(w, np.full(good.sum(), max(1.0, 0.05 * len(pts) / max(good.sum(), 1))))
    keep = np.ones(len(src), bool)
    for _ in range(config.rigid_rounds):
        s, r, t = similarity_fit(src[keep], dst[keep], w[keep])
        res = np.linalg.norm(dst - (s * src @ r.T + t), axis=1)
        keep = res <= np.quantile(res, config.rigid_keep)
    return s, r, t


def _residuals(vpx: np.ndarray, model: FlameModel, relation: FlameCorrespondence,
               points: np.ndarray) -> tuple[float, float]:
    """Mean and 90th percentile distance (crop px) from ``points`` to the fitted FLAME face surface ``vpx``."""
    face_f = model.faces[relation.face_faces]
    cp, _, _ = closest_points(vpx, face_f, points)
    d = np.linalg.norm(cp - points, axis=1)
    return float(d.mean()), float(np.percentile(d, 90))


def _forward_np(model: FlameModel, params: FlameParams) -> np.ndarray:
    from facevision.flame.params import flame_forward

    return flame_forward(model, params)


# ----------------------------------------------------------------------------- stage 2
@dataclass
class _Problem:
    """The fixed side of the refinement, in the normalised frame (data centroid at 0, unit RMS radius).

    ft: FLAME tensors restricted to the face region; local: (V,) model vertex -> face-region vertex (-1 outside);
    face_f / face_f_t: (T,3) face-region triangles in local ids; p_n: (N,3) data points; faces_t, bary_t: (N,3)
    local corners and barycentric weights of each point's corresponding FLAME point; landmarks: (targets (68,2),
    weights (68,), corners (68,3), barycentric weights (68,3)) or None.
    """

    ft: Any
    local: np.ndarray
    face_f: np.ndarray
    face_f_t: torch.Tensor
    p_n: torch.Tensor
    faces_t: torch.Tensor
    bary_t: torch.Tensor
    landmarks: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None


@dataclass
class _Unknowns:
    """The refinement's free parameters (batch 1; pose as axis-angle radians; scale as log, and translation, in
    the normalised frame)."""

    betas: torch.Tensor
    expr: torch.Tensor
    jaw: torch.Tensor
    neck: torch.Tensor
    glob: torch.Tensor
    log_s: torch.Tensor
    trans: torch.Tensor

    def groups(self, cfg: RegistrationConfig) -> list[dict[str, Any]]:
        """Adam parameter groups, one learning rate each (the neck only with ``cfg.fit_neck``)."""
        groups = [{"params": [self.betas], "lr": cfg.lr_shape}, {"params": [self.expr], "lr": cfg.lr_expr},
                  {"params": [self.jaw], "lr": cfg.lr_pose}, {"params": [self.glob], "lr": cfg.lr_global},
                  {"params": [self.log_s], "lr": cfg.lr_scale}, {"params": [self.trans], "lr": cfg.lr_trans}]
        if cfg.fit_neck:
            groups.append({"params": [self.neck], "lr": cfg.lr_pose})
        return groups

    def vertices(self, ft: Any) -> torch.Tensor:
        """Posed face-region vertices (normalised frame); eyes stay at rest."""
        eyes = torch.zeros(1, 6, dtype=self.jaw.dtype)
        pose = torch.cat([self.glob, self.neck, self.jaw, eyes], 1)[:, : 3 * len(ft.parents)]
        return torch.exp(self.log_s) * flame_forward_torch(ft, self.betas, self.expr, pose)[0] + self.trans


class _Association(NamedTuple):
    """Closest points on the current fit's face surface (remade every ``reassociate_every`` steps): local
    triangle (N,), barycentric weights (N,3), unit normal (N,3), and 1/0 weights of the point-to-surface and the
    correspondence pairs kept (pairs beyond ``trim_factor`` x their median distance are 0)."""

    tri: torch.Tensor
    bary: torch.Tensor
    normal: torch.Tensor
    p2s_w: torch.Tensor
    corr_w: torch.Tensor


def _refine(model: FlameModel, relation: FlameCorrespondence, pts: np.ndarray, tri: np.ndarray, bary: np.ndarray,
            lm_xy: np.ndarray | None, s: float, r: np.ndarray, t: np.ndarray, cfg: RegistrationConfig
            ) -> tuple[FlameParams, np.ndarray]:
    """Stage 2 from the rigid similarity (s, r, t): Adam on shape, expression, pose, scale and translation.
    Returns the parameters and which data points the last association kept (bool (N,))."""
    c0 = pts.mean(0)
    rad = float(np.sqrt(((pts - c0) ** 2).sum(1).mean()))
    prob = _problem(model, relation, pts, tri, bary, lm_xy, c0, rad, cfg)
    x = _initial_unknowns(model, min(cfg.n_shape, model.n_shape), min(cfg.n_expr, model.n_expr), s, r, t, c0, rad)
    opt = torch.optim.Adam(x.groups(cfg))
    assoc = None
    for it in range(cfg.iterations):
        if it % cfg.reassociate_every == 0:
            with torch.no_grad():
                cur = x.vertices(prob.ft).numpy().astype(np.float64)
            assoc = _associate(cur, prob, model, tri, bary, cfg)
        opt.zero_grad()
        loss = _refine_loss(x.vertices(prob.ft), x, prob, assoc, cfg)
        loss.backward()
        opt.step()
    return _fitted_params(x, model, c0, rad), assoc.p2s_w.numpy() > 0


def _problem(model: FlameModel, relation: FlameCorrespondence, pts: np.ndarray, tri: np.ndarray, bary: np.ndarray,
             lm_xy: np.ndarray | None, c0: np.ndarray, rad: float, cfg: RegistrationConfig) -> _Problem:
    """FLAME cut to the face region (every triangle the fit touches lies in it) and the normalised data."""
    dt = torch.float32
    face_f_full = model.faces[relation.face_faces]
    used = np.unique(face_f_full)
    local = -np.ones(model.n_vertices, dtype=np.int64)
    local[used] = np.arange(len(used))
    ks, ke = min(cfg.n_shape, model.n_shape), min(cfg.n_expr, model.n_expr)
    ft = subset_tensors(flame_tensors(model, dt), used, n_shape=ks, n_expr=ke)
    landmarks = None
    if lm_xy is not None:
        lm_w = np.ones(68)
        lm_w[CONTOUR_LANDMARKS] = cfg.contour_weight
        landmarks = (torch.as_tensor((lm_xy - c0[:2]) / rad, dtype=dt), torch.as_tensor(lm_w / lm_w.sum(), dtype=dt),
                     torch.as_tensor(local[model.faces[relation.landmark_tri]]),
                     torch.as_tensor(relation.landmark_bary, dtype=dt))
    face_f = local[face_f_full]
    return _Problem(ft=ft, local=local, face_f=face_f, face_f_t=torch.as_tensor(face_f),
                    p_n=torch.as_tensor((pts - c0) / rad, dtype=dt), faces_t=torch.as_tensor(local[model.faces[tri]]),
                    bary_t=torch.as_tensor(bary, dtype=dt), landmarks=landmarks)


def _initial_unknowns(model: FlameModel, ks: int, ke: int, s: float, r: np.ndarray, t: np.ndarray, c0: np.ndarray,
                      rad: float) -> _Unknowns:
    """Zero shape, expression, jaw and neck; global rotation, scale and translation from the rigid stage."""
    from scipy.spatial.transform import Rotation

    dt = torch.float32
    # FLAME's global rotation turns about the root joint: fold that into the translation
    j0 = (model.J_regressor[0] @ model.v_template)
    t_lbs = t + s * (r @ j0 - j0)
    return _Unknowns(betas=torch.zeros(1, ks, dtype=dt, requires_grad=True),
                     expr=torch.zeros(1, ke, dtype=dt, requires_grad=True),
                     jaw=torch.zeros(1, 3, dtype=dt, requires_grad=True),
                     neck=torch.zeros(1, 3, dtype=dt, requires_grad=True),
                     glob=torch.tensor(Rotation.from_matrix(r).as_rotvec()[None], dtype=dt, requires_grad=True),
                     log_s=torch.tensor([np.log(s / rad)], dtype=dt, requires_grad=True),
                     trans=torch.tensor(((t_lbs - c0) / rad)[None], dtype=dt, requires_grad=True))


def _associate(cur: np.ndarray, prob: _Problem, model: FlameModel, tri: np.ndarray, bary: np.ndarray,
               cfg: RegistrationConfig) -> _Association:
    """Closest points of the data on the current fit ``cur`` (face-region vertices, normalised frame)."""
    dt = torch.float32
    q = prob.p_n.numpy().astype(np.float64)
    face_f = prob.face_f
    cp, ctri, cbary = closest_points(cur, face_f, q)
    dd = np.linalg.norm(cp - q, axis=1)
    fn = np.cross(cur[face_f[ctri, 1]] - cur[face_f[ctri, 0]], cur[face_f[ctri, 2]] - cur[face_f[ctri, 0]])
    # correspondence pairs far off the current fit are outliers too
    yc = barycentric_points(cur, prob.local[model.faces], tri, bary)
    dc = np.linalg.norm(yc - q, axis=1)
    return _Association(tri=torch.as_tensor(ctri), bary=torch.as_tensor(cbary, dtype=dt),
                        normal=torch.as_tensor(fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12), dtype=dt),
                        p2s_w=torch.as_tensor(dd <= cfg.trim_factor * max(np.median(dd), 1e-4), dtype=dt),
                        corr_w=torch.as_tensor(dc <= cfg.trim_factor * max(np.median(dc), 1e-4), dtype=dt))


def _refine_loss(v: torch.Tensor, x: _Unknowns, prob: _Problem, a: _Association,
                 cfg: RegistrationConfig) -> torch.Tensor:
    """Huber correspondence, point-to-plane and landmark (X/Y) terms plus the L2 priors, for posed vertices ``v``."""
    y_corr = (v[prob.faces_t] * prob.bary_t[:, :, None]).sum(1)
    loss = cfg.w_corr * (a.corr_w * _huber((prob.p_n - y_corr).norm(dim=1), cfg.huber_delta)).sum() \
        / a.corr_w.sum().clamp(min=1)
    y_s = (v[prob.face_f_t[a.tri]] * a.bary[:, :, None]).sum(1)
    plane = ((prob.p_n - y_s) * a.normal).sum(1)
    loss = loss + cfg.w_p2s * (a.p2s_w * _huber(plane, cfg.huber_delta)).sum() / a.p2s_w.sum().clamp(min=1)
    if prob.landmarks is not None:
        lm_t, lm_w_t, lm_faces_t, lm_bary_t = prob.landmarks
        y_l = (v[lm_faces_t] * lm_bary_t[:, :, None]).sum(1)[:, :2]
        loss = loss + cfg.w_landmarks * (lm_w_t * _huber((lm_t - y_l).norm(dim=1), cfg.huber_delta)).sum()
    return loss + cfg.prior_shape * (x.betas ** 2).sum() + cfg.prior_expr * (x.expr ** 2).sum() \
        + (torch.as_tensor(cfg.prior_jaw, dtype=torch.float32) * x.jaw[0] ** 2).sum() + cfg.prior_neck * (x.neck ** 2).sum()


def _fitted_params(x: _Unknowns, model: FlameModel, c0: np.ndarray, rad: float) -> FlameParams:
    """The unknowns as FLAME parameters: scale in crop px per metre, translation in crop px."""
    def row(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().numpy()[0].astype(np.float64)

    return FlameParams(
        shape=np.pad(row(x.betas), (0, model.n_shape - x.betas.shape[1])),
        expression=np.pad(row(x.expr), (0, model.n_expr - x.expr.shape[1])),
        global_pose=row(x.glob), neck_pose=row(x.neck), jaw_pose=row(x.jaw), eye_pose=np.zeros(6),
        scale=float(torch.exp(x.log_s).item() * rad), translation_px=row(x.trans) * rad + c0)

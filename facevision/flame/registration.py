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
from typing import Any

import numpy as np
import torch

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
    """Every knob of :func:`register`. Distances in stage 2 are in units of the data's RMS radius
    (the face's root-mean-square distance from its centroid, ~0.4 x face width)."""

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
        corr_map: (H,W,3) correspondence (:mod:`facevision.common.conventions`: in [0,1], 0 = background; checked); sampled at ``mesh.pixels`` when
            ``mesh.corr`` is None; its height also converts landmark rows to Y. May be None when
            ``mesh.corr`` is set and no landmarks are given.
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
    pts = verts[idx]

    # landmarks: 2D targets in mesh X/Y, and 3D lifts (nearest mesh vertex) for the rigid stage
    lm_xy = lm3d = None
    if landmarks68 is not None:
        lm = np.asarray(landmarks68, dtype=np.float64)
        if lm.shape != (68, 2):
            raise RegistrationError(f"register: landmarks68 must be (68, 2), got {lm.shape}")
        if corr_map is not None:
            height = corr_map.shape[0]
        elif getattr(mesh, "source_shape", None) is not None:
            height = mesh.source_shape[0]
        else:
            pix = np.asarray(mesh.pixels, dtype=np.float64)
            height = float(np.nanmedian(verts[:, 1] + pix[:, 0])) + 1.0  # Y = H-1-row
        lm_xy = np.stack([lm[:, 0], height - 1 - lm[:, 1]], 1)
        pix = np.asarray(mesh.pixels, dtype=np.float64)
        known = np.where(np.isfinite(pix).all(1))[0]
        lm3d = np.full((68, 3), np.nan)
        if len(known):
            from scipy.spatial import cKDTree

            d, nn = cKDTree(pix[known, ::-1]).query(lm)
            lm3d = np.where((d < 2.0)[:, None], verts[known[nn]], np.nan)
        if not np.isfinite(lm_xy).all():
            lm_xy = lm3d = None

    # ---------------- stage 1: trimmed weighted Umeyama (template, zero parameters)
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
    t_rigid = time.perf_counter()

    # ---------------- stage 2: refinement
    with torch_threads(config.threads):
        params, pts_keep = _refine(model, relation, pts, tri, bary, lm_xy, s, r, t, config)
    t_refine = time.perf_counter()

    vm = _forward_np(model, params)
    vpx = params.scale * vm + params.translation_px
    # residuals over all valid mesh vertices, to FLAME's face surface
    face_f = model.faces[relation.face_faces]
    cp, _, _ = closest_points(vpx, face_f, verts[idx_all])
    d = np.linalg.norm(cp - verts[idx_all], axis=1)
    mean_px, p90_px = float(d.mean()), float(np.percentile(d, 90))
    t_end = time.perf_counter()
    return FlameFit(params=params, vertices=vm, vertices_px=vpx, residual_mean_px=mean_px, residual_p90_px=p90_px,
                    residual_mean_mm=mean_px / params.scale * 1000.0, residual_p90_mm=p90_px / params.scale * 1000.0,
                    n_points=int(len(pts)), model_sha256=model.sha256, faces=model.faces,
                    timings={"relation": t_rel - t0, "rigid": t_rigid - t_rel, "refine": t_refine - t_rigid,
                             "residuals": t_end - t_refine, "total": t_end - t0})


def _forward_np(model: FlameModel, params: FlameParams) -> np.ndarray:
    from facevision.flame.params import flame_forward

    return flame_forward(model, params)


def _refine(model: FlameModel, relation: FlameCorrespondence, pts: np.ndarray, tri: np.ndarray, bary: np.ndarray,
            lm_xy: np.ndarray | None, s: float, r: np.ndarray, t: np.ndarray, cfg: RegistrationConfig
            ) -> tuple[FlameParams, np.ndarray]:
    from scipy.spatial.transform import Rotation

    dt = torch.float32
    face_f_full = model.faces[relation.face_faces]
    used = np.unique(face_f_full)  # every triangle the fit touches lies in the face region
    local = -np.ones(model.n_vertices, dtype=np.int64)
    local[used] = np.arange(len(used))
    ks, ke = min(cfg.n_shape, model.n_shape), min(cfg.n_expr, model.n_expr)
    ft = subset_tensors(flame_tensors(model, dt), used, n_shape=ks, n_expr=ke)
    # normalize the data: centroid at 0, unit RMS radius
    c0 = pts.mean(0)
    rad = float(np.sqrt(((pts - c0) ** 2).sum(1).mean()))
    p_n = torch.as_tensor((pts - c0) / rad, dtype=dt)
    # FLAME's global rotation turns about the root joint: fold that into the translation
    j0 = (model.J_regressor[0] @ model.v_template)
    t_lbs = t + s * (r @ j0 - j0)
    betas = torch.zeros(1, ks, dtype=dt, requires_grad=True)
    expr = torch.zeros(1, ke, dtype=dt, requires_grad=True)
    jaw = torch.zeros(1, 3, dtype=dt, requires_grad=True)
    neck = torch.zeros(1, 3, dtype=dt, requires_grad=True)
    glob = torch.tensor(Rotation.from_matrix(r).as_rotvec()[None], dtype=dt, requires_grad=True)
    log_s = torch.tensor([np.log(s / rad)], dtype=dt, requires_grad=True)
    trans = torch.tensor(((t_lbs - c0) / rad)[None], dtype=dt, requires_grad=True)
    groups = [{"params": [betas], "lr": cfg.lr_shape}, {"params": [expr], "lr": cfg.lr_expr},
              {"params": [jaw], "lr": cfg.lr_pose}, {"params": [glob], "lr": cfg.lr_global},
              {"params": [log_s], "lr": cfg.lr_scale}, {"params": [trans], "lr": cfg.lr_trans}]
    if cfg.fit_neck:
        groups.append({"params": [neck], "lr": cfg.lr_pose})
    opt = torch.optim.Adam(groups)
    faces_t = torch.as_tensor(local[model.faces[tri]])  # (N,3) local corner ids of each correspondence
    tri_t = torch.arange(len(tri))
    bary_t = torch.as_tensor(bary, dtype=dt)
    face_f = local[face_f_full]
    face_f_t = torch.as_tensor(face_f)
    eyes = torch.zeros(1, 6, dtype=dt)
    lm_t = None
    if lm_xy is not None:
        lm_t = torch.as_tensor((lm_xy - c0[:2]) / rad, dtype=dt)
        lm_w = np.ones(68)
        lm_w[CONTOUR_LANDMARKS] = cfg.contour_weight
        lm_w_t = torch.as_tensor(lm_w / lm_w.sum(), dtype=dt)
        lm_faces_t = torch.as_tensor(local[model.faces[relation.landmark_tri]])
        lm_bary_t = torch.as_tensor(relation.landmark_bary, dtype=dt)

    def forward() -> torch.Tensor:
        pose = torch.cat([glob, neck, jaw, eyes], 1)[:, : 3 * len(ft.parents)]
        return torch.exp(log_s) * flame_forward_torch(ft, betas, expr, pose)[0] + trans

    cp_tri = cp_bary = cp_n = cp_w = None
    for it in range(cfg.iterations):
        if it % cfg.reassociate_every == 0:
            with torch.no_grad():
                cur = forward().numpy().astype(np.float64)
            q = p_n.numpy().astype(np.float64)
            cp, ctri, cbary = closest_points(cur, face_f, q)
            dd = np.linalg.norm(cp - q, axis=1)
            cp_w = torch.as_tensor(dd <= cfg.trim_factor * max(np.median(dd), 1e-4), dtype=dt)
            fn = np.cross(cur[face_f[ctri, 1]] - cur[face_f[ctri, 0]], cur[face_f[ctri, 2]] - cur[face_f[ctri, 0]])
            cp_n = torch.as_tensor(fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12), dtype=dt)
            cp_tri, cp_bary = torch.as_tensor(ctri), torch.as_tensor(cbary, dtype=dt)
            # correspondence pairs far off the current fit are outliers too
            yc = barycentric_points(cur, local[model.faces], tri, bary)
            dc = np.linalg.norm(yc - q, axis=1)
            corr_w = torch.as_tensor(dc <= cfg.trim_factor * max(np.median(dc), 1e-4), dtype=dt)
        opt.zero_grad()
        v = forward()
        y_corr = (v[faces_t[tri_t]] * bary_t[:, :, None]).sum(1)
        loss = cfg.w_corr * (corr_w * _huber((p_n - y_corr).norm(dim=1), cfg.huber_delta)).sum() / corr_w.sum().clamp(min=1)
        y_s = (v[face_f_t[cp_tri]] * cp_bary[:, :, None]).sum(1)
        plane = ((p_n - y_s) * cp_n).sum(1)
        loss = loss + cfg.w_p2s * (cp_w * _huber(plane, cfg.huber_delta)).sum() / cp_w.sum().clamp(min=1)
        if lm_t is not None:
            y_l = (v[lm_faces_t] * lm_bary_t[:, :, None]).sum(1)[:, :2]
            loss = loss + cfg.w_landmarks * (lm_w_t * _huber((lm_t - y_l).norm(dim=1), cfg.huber_delta)).sum()
        loss = loss + cfg.prior_shape * (betas ** 2).sum() + cfg.prior_expr * (expr ** 2).sum() \
            + (torch.as_tensor(cfg.prior_jaw, dtype=dt) * jaw[0] ** 2).sum() + cfg.prior_neck * (neck ** 2).sum()
        loss.backward()
        opt.step()
    scale = float(torch.exp(log_s).item() * rad)
    params = FlameParams(
        shape=np.pad(betas.detach().numpy()[0].astype(np.float64), (0, model.n_shape - ks)),
        expression=np.pad(expr.detach().numpy()[0].astype(np.float64), (0, model.n_expr - ke)),
        global_pose=glob.detach().numpy()[0].astype(np.float64), neck_pose=neck.detach().numpy()[0].astype(np.float64),
        jaw_pose=jaw.detach().numpy()[0].astype(np.float64), eye_pose=np.zeros(6), scale=scale,
        translation_px=trans.detach().numpy()[0].astype(np.float64) * rad + c0)
    return params, cp_w.numpy() > 0

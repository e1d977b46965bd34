"""Relating facevision's reference face (the correspondence space) to a FLAME model's template.

A correspondence map stores, per pixel, the (u, v, w) coordinates of the reference-face point it
shows. To use it for FLAME registration we need, for any (u, v, w), the FLAME surface point of the
same anatomy. :func:`relate_reference_to_flame` computes that once per (model, reference) pair:

1. work in the reference's isotropic "raw" frame (``reference.from_uvw``; centred, unit RMS radius),
   so the alignment is a similarity, not a per-axis scaling;
2. rigid + scale ICP of the FLAME template onto the reference points, matching each reference point
   to its closest FLAME surface point; started from known pairs when FLAME's MediaPipe landmark
   embedding is available (:class:`LandmarkEmbedding`), else from aligned nose tips at several sizes;
3. non-rigid: FLAME identity shape, expression and jaw (L2 priors) plus the similarity, fitted to
   point-to-plane/point-to-point distances (and the embedding's pairs), re-associating closest points;
4. the fitted FLAME vertices, in the reference frame, define the mapping: a correspondence value is
   mapped to the closest point on the FLAME *face region* (vertices lying over the reference surface),
   returned as (triangle, barycentric) so it follows the model through any parameters.

The result is cached on disk per model-file hash and reference hash (``$FACEVISION_CACHE_DIR``,
else ``$XDG_CACHE_HOME/facevision``, else ``~/.cache/facevision``).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facevision.common.checks import check_int, check_number
from facevision.env import CACHE_ENV, FLAME_EMBEDDING_ENV
from facevision.flame.geometry import barycentric_points, closest_points
from facevision.flame.lbs import batch_rodrigues, flame_forward_torch, flame_tensors, torch_threads
from facevision.flame.model import FlameModel
from facevision.common.geometry import similarity_fit
from meshing.refine import vertex_normals

__all__ = ["EMBEDDING_ENV", "EMBEDDING_NAME", "find_landmark_embedding", "relation_for", "LandmarkEmbedding",
           "load_landmark_embedding", "RelationConfig", "FlameCorrespondence", "relate_reference_to_flame",
           "reference_sha256", "cache_dir"]

CACHE_VERSION = 2
EMBEDDING_ENV = FLAME_EMBEDDING_ENV
EMBEDDING_NAME = "mediapipe_landmark_embedding.npz"


@dataclass
class RelationConfig:
    """Settings of the one-off reference -> FLAME fit (all distances in reference raw units,
    where the reference face has unit RMS radius, i.e. roughly 1 unit = 6 cm on a real face). Checked when
    built (ValueError naming the field)."""

    radius_starts_m: tuple[float, ...] = (0.045, 0.06, 0.075)  # metric RMS radius tried for the reference face
    icp_iterations: int = 25
    n_shape: int = 100
    n_expr: int = 50
    iterations: int = 150
    shape_prior: float = 3e-4
    expr_prior: float = 3e-4
    jaw_prior: float = 1e-2
    face_distance: float = 0.03  # FLAME vertices this close to the reference surface are in the face region,
    face_distance_max: float = 0.3  # and so are those up to this far that lie over it (not past its boundary)
    normal_offset_cos: float = 0.9
    min_normal_dot: float = 0.2
    landmark_weight: float = 0.5  # weight of the embedding's pairs (when given) relative to the surface term
    dense_samples: int = 4000  # reference surface points used for fitting (vertices + random samples)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.radius_starts_m or not all(float(r) > 0.0 for r in self.radius_starts_m):
            raise ValueError(f"RelationConfig.radius_starts_m must be radii > 0 (metres), got {self.radius_starts_m!r}")
        check_int(self, "icp_iterations", low=1)
        for name in ("n_shape", "n_expr", "iterations", "dense_samples", "seed"):
            check_int(self, name, low=0)
        for name in ("shape_prior", "expr_prior", "jaw_prior", "landmark_weight"):
            check_number(self, name, low=0, finite=False)
        if not 0.0 < float(self.face_distance) <= float(self.face_distance_max):
            raise ValueError(f"RelationConfig needs 0 < face_distance <= face_distance_max, got face_distance "
                             f"{self.face_distance!r}, face_distance_max {self.face_distance_max!r}")
        check_number(self, "normal_offset_cos", 0, 1)
        check_number(self, "min_normal_dot", -1, 1)


@dataclass
class FlameCorrespondence:
    """Mapping from correspondence space to the FLAME surface.

    vertex_ref (V,3): FLAME vertices (relation fit) in the reference's raw frame.
    face_faces (T,) indices into model.faces of the face-region triangles.
    landmark_tri (68,), landmark_bary (68,3): FLAME surface points of the reference's iBUG-68 landmarks.
    uvw_offset, uvw_scale (3,): ``uvw = (raw - offset) * scale`` of the reference.
    residual: mean reference -> FLAME distance after the fit (raw units).
    """

    model_sha256: str
    reference_sha256: str
    vertex_ref: np.ndarray
    face_faces: np.ndarray
    landmark_tri: np.ndarray
    landmark_bary: np.ndarray
    uvw_offset: np.ndarray
    uvw_scale: np.ndarray
    residual: float

    def to_raw(self, uvw: np.ndarray) -> np.ndarray:
        return np.asarray(uvw, dtype=np.float64) / self.uvw_scale + self.uvw_offset

    def lookup(self, uvw: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Correspondence values (N,3) -> FLAME triangle index (N,) into ``faces`` (the model's),
        barycentric weights (N,3) and the distance (N,) from the value to the FLAME face region (raw units)."""
        q = self.to_raw(uvw)
        sub = faces[self.face_faces]
        pts, tri, bary = closest_points(self.vertex_ref, sub, q)
        return self.face_faces[tri], bary, np.linalg.norm(pts - q, axis=1)

    def save(self, path: Path) -> None:
        from facevision.common.fileio import atomic_write

        arrays = {k: getattr(self, k) for k in ("vertex_ref", "face_faces", "landmark_tri", "landmark_bary",
                                                "uvw_offset", "uvw_scale")}
        atomic_write(path, lambda p: np.savez(p, model_sha256=self.model_sha256, reference_sha256=self.reference_sha256,
                                              residual=self.residual, version=CACHE_VERSION, **arrays))

    @classmethod
    def load(cls, path: Path) -> "FlameCorrespondence":
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                raise ValueError(f"{path}: cache version {int(z['version'])} != {CACHE_VERSION}")
            return cls(model_sha256=str(z["model_sha256"]), reference_sha256=str(z["reference_sha256"]),
                       vertex_ref=z["vertex_ref"], face_faces=z["face_faces"], landmark_tri=z["landmark_tri"],
                       landmark_bary=z["landmark_bary"], uvw_offset=z["uvw_offset"], uvw_scale=z["uvw_scale"],
                       residual=float(z["residual"]))


def reference_sha256(reference: Any) -> str:
    h = hashlib.sha256()
    for name in ("vertices", "triangles", "ibug68"):
        a = np.ascontiguousarray(np.asarray(getattr(reference, name)))
        h.update(name.encode() + str(a.shape).encode() + a.astype(np.float64).tobytes())
    off, scale = _normalization(reference)
    h.update(off.tobytes() + scale.tobytes() + str(CACHE_VERSION).encode())
    return h.hexdigest()


def cache_dir() -> Path:
    """Where relations are cached (created on first write)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "facevision"


def _normalization(reference: Any) -> tuple[np.ndarray, np.ndarray]:
    norm = getattr(reference, "normalization", None)
    if isinstance(norm, dict) and "offset" in norm and "scale" in norm:
        return np.asarray(norm["offset"], dtype=np.float64), np.asarray(norm["scale"], dtype=np.float64)
    return np.zeros(3), np.ones(3)


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Known pairs between reference vertices and FLAME surface points.

    FLAME's ``mediapipe_landmark_embedding.npz`` (from the FLAME website, next to the model) gives 105
    MediaPipe Face Mesh vertices as FLAME triangles + barycentric weights; facevision's reference face
    has MediaPipe's 468-vertex topology, so its vertices ``reference_indices`` pair with those points.
    """

    reference_indices: np.ndarray  # (K,) reference vertex ids
    face_idx: np.ndarray  # (K,) FLAME triangle ids
    bary: np.ndarray  # (K,3)
    sha256: str


def load_landmark_embedding(path: str | os.PathLike) -> LandmarkEmbedding:
    """Read FLAME's ``mediapipe_landmark_embedding.npz`` (keys ``landmark_indices``, ``lmk_face_idx``,
    ``lmk_b_coords``; no pickles allowed). Raises ValueError naming the file when it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable landmark embedding .npz ({exc})") from None
    need = ("landmark_indices", "lmk_face_idx", "lmk_b_coords")
    if not all(k in data for k in need):
        raise ValueError(f"{path}: a landmark embedding needs {', '.join(need)}; found {', '.join(sorted(data))}")
    idx = data["landmark_indices"].astype(np.int64).ravel()
    face = data["lmk_face_idx"].astype(np.int64).ravel()
    bary = data["lmk_b_coords"].astype(np.float64).reshape(-1, 3)
    if not len(idx) == len(face) == len(bary):
        raise ValueError(f"{path}: landmark_indices, lmk_face_idx and lmk_b_coords differ in length")
    h = hashlib.sha256(idx.tobytes() + face.tobytes() + bary.tobytes()).hexdigest()
    return LandmarkEmbedding(reference_indices=idx, face_idx=face, bary=bary, sha256=h)


_MEMORY: dict[tuple[str, str], FlameCorrespondence] = {}


def relate_reference_to_flame(model: FlameModel, reference: Any, config: RelationConfig = RelationConfig(),
                              cache: str | Path | None | bool = True,
                              embedding: LandmarkEmbedding | None = None) -> FlameCorrespondence:
    """The reference -> FLAME mapping for ``model`` (see module docstring), cached.

    Args:
        reference: anything with ``vertices (N,3)`` in [0,1]^3, ``triangles``, ``ibug68`` and optionally
            ``normalization`` {"offset", "scale"} (facevision.face.reference.ReferenceFace or a synthetic one).
        cache: True = default cache folder, a path = that folder, False/None = no disk cache.
        embedding: optional known reference-vertex <-> FLAME-surface pairs (FLAME's MediaPipe landmark
            embedding): they initialize the alignment and anchor the non-rigid fit.
    """
    ref_hash = reference_sha256(reference)
    if embedding is not None:
        n_ref, n_faces = len(reference.vertices), len(model.faces)
        if embedding.reference_indices.max(initial=0) >= n_ref or embedding.face_idx.max(initial=0) >= n_faces:
            raise ValueError("landmark embedding does not fit this reference face / FLAME model (index out of range)")
        ref_hash = hashlib.sha256((ref_hash + embedding.sha256).encode()).hexdigest()
    key = (model.sha256, ref_hash)
    if key in _MEMORY:
        return _MEMORY[key]
    path = None
    if cache:
        folder = cache_dir() if cache is True else Path(cache)
        path = folder / f"flame_relation_{model.sha256[:16]}_{ref_hash[:16]}.npz"
        if path.is_file():
            try:
                rel = FlameCorrespondence.load(path)
                if rel.model_sha256 == model.sha256 and rel.reference_sha256 == ref_hash:
                    _MEMORY[key] = rel
                    return rel
            except (ValueError, OSError, KeyError):
                pass  # stale or broken cache: recompute
    with torch_threads(1):
        rel = _fit_relation(model, reference, ref_hash, config, embedding)
    if path is not None:
        try:
            rel.save(path)
        except OSError:
            pass  # a read-only cache folder must not break registration
    _MEMORY[key] = rel
    return rel


def _dense_reference(raw: np.ndarray, tris: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    extra = max(n - len(raw), 0)
    if extra == 0:
        return raw
    area = np.linalg.norm(np.cross(raw[tris[:, 1]] - raw[tris[:, 0]], raw[tris[:, 2]] - raw[tris[:, 0]]), axis=1)
    t = rng.choice(len(tris), size=extra, p=area / area.sum())
    r = rng.random((extra, 2))
    flip = r.sum(1) > 1
    r[flip] = 1 - r[flip]
    bary = np.stack([1 - r[:, 0] - r[:, 1], r[:, 0], r[:, 1]], 1)
    return np.vstack([raw, barycentric_points(raw, tris, t, bary)])


def _front_faces(model: FlameModel) -> np.ndarray:
    """Template triangles facing forward (+Z half), where a face can be."""
    v = model.v_template
    n = np.cross(v[model.faces[:, 1]] - v[model.faces[:, 0]], v[model.faces[:, 2]] - v[model.faces[:, 0]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-18)
    centre = v[model.faces].mean(1)
    return np.where((n[:, 2] > -0.3) & (centre[:, 2] > np.median(v[:, 2])))[0]


def _fit_relation(model: FlameModel, reference: Any, ref_hash: str, cfg: RelationConfig,
                  embedding: LandmarkEmbedding | None = None) -> FlameCorrespondence:
    rng = np.random.default_rng(cfg.seed)
    offset, scale = _normalization(reference)
    ref_raw = np.asarray(reference.vertices, dtype=np.float64) / scale + offset
    tris = np.asarray(reference.triangles, dtype=np.int64)
    pts = _dense_reference(ref_raw, tris, cfg.dense_samples, rng)
    tmpl = model.v_template
    front = _front_faces(model)
    ff = model.faces[front]
    # --- rigid + scale ICP; FLAME -> reference frame. Starts: the embedding's pairs (Umeyama) when
    # given, else nose tips aligned at several metric sizes for the reference.
    lm_src = lm_dst = None
    if embedding is not None:
        lm_src = barycentric_points(tmpl, model.faces, embedding.face_idx, embedding.bary)
        lm_dst = ref_raw[embedding.reference_indices]
        starts = [similarity_fit(lm_src, lm_dst)]
    else:
        rms = np.sqrt(((ref_raw - ref_raw.mean(0)) ** 2).sum(1).mean())
        nose_ref = ref_raw[np.argmax(ref_raw[:, 2])]
        nose_flame = tmpl[ff.ravel()][np.argmax(tmpl[ff.ravel(), 2])]
        starts = [(rms / radius, np.eye(3), nose_ref - rms / radius * nose_flame) for radius in cfg.radius_starts_m]
    best = None
    for s, r, t in starts:
        for _ in range(cfg.icp_iterations):
            cur = s * tmpl @ r.T + t
            cp, _, _ = closest_points(cur, ff, pts)
            d = np.linalg.norm(cp - pts, axis=1)
            keep = d <= np.quantile(d, 0.9)
            # inverse map of matched FLAME points: pts ~ s R (flame point) + t
            src, dst = ((cp - t) @ r)[keep] / s, pts[keep]
            w = np.ones(len(src))
            if lm_src is not None:
                src, dst = np.vstack([src, lm_src]), np.vstack([dst, lm_dst])
                w = np.append(w, np.full(len(lm_src), cfg.landmark_weight * len(w) / len(lm_src)))
            s, r, t = similarity_fit(src, dst, w)
        err = float(np.mean(np.sort(d)[: int(0.9 * len(d))]))
        if best is None or err < best[0]:
            best = (err, s, r, t)
    _, s, r, t = best
    lm_pairs = None if embedding is None else (embedding.face_idx, embedding.bary, lm_dst)
    verts = _nonrigid(model, pts, ff, s, r, t, cfg, lm_pairs)
    # --- face region: FLAME vertices near the reference surface, facing the same way
    cp, tri, _ = closest_points(ref_raw, tris, verts)
    dist = np.linalg.norm(cp - verts, axis=1)
    n_ref = np.cross(ref_raw[tris[:, 1]] - ref_raw[tris[:, 0]], ref_raw[tris[:, 2]] - ref_raw[tris[:, 0]])
    n_ref /= np.maximum(np.linalg.norm(n_ref, axis=1, keepdims=True), 1e-18)
    n_ref *= np.sign(n_ref[:, 2].sum()) or 1.0  # reference triangles face the camera (+w)
    n_flame = vertex_normals(verts, model.faces)
    # a vertex belongs to the face when it lies over the reference surface (offset along the normal
    # there, not beyond its boundary), close to it and facing the same way
    along = np.abs(((verts - cp) * n_ref[tri]).sum(1)) >= cfg.normal_offset_cos * dist
    in_face = (dist < cfg.face_distance_max) & (along | (dist < cfg.face_distance)) \
        & ((n_flame * n_ref[tri]).sum(1) > cfg.min_normal_dot)
    face_faces = np.where(in_face[model.faces].all(1))[0]
    if len(face_faces) < 10:
        raise ValueError("could not relate the reference face to the FLAME template (no overlapping face region)")
    cpf, trif, _ = closest_points(verts, model.faces[face_faces], pts)
    residual = float(np.linalg.norm(cpf - pts, axis=1).mean())
    lm = ref_raw[np.asarray(reference.ibug68, dtype=np.int64)]
    _, lt, lb = closest_points(verts, model.faces[face_faces], lm)
    return FlameCorrespondence(model_sha256=model.sha256, reference_sha256=ref_hash, vertex_ref=verts,
                               face_faces=face_faces, landmark_tri=face_faces[lt], landmark_bary=lb,
                               uvw_offset=offset, uvw_scale=scale, residual=residual)


def _nonrigid(model: FlameModel, pts: np.ndarray, ff: np.ndarray, s: float, r: np.ndarray, t: np.ndarray,
              cfg: RelationConfig, lm_pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Fit shape/expression/jaw + similarity so the FLAME surface passes through ``pts``; FLAME vertices
    in the reference frame."""
    from scipy.spatial.transform import Rotation

    ft = flame_tensors(model, torch.float32)
    ks, ke = min(cfg.n_shape, model.n_shape), min(cfg.n_expr, model.n_expr)
    dt = torch.float32
    betas = torch.zeros(1, ks, dtype=dt, requires_grad=True)
    expr = torch.zeros(1, ke, dtype=dt, requires_grad=True)
    jaw = torch.zeros(1, 3, dtype=dt, requires_grad=True)
    rot = torch.tensor(Rotation.from_matrix(r).as_rotvec()[None], dtype=dt, requires_grad=True)
    log_s = torch.tensor([np.log(s)], dtype=dt, requires_grad=True)
    trans = torch.tensor(t[None], dtype=dt, requires_grad=True)
    opt = torch.optim.Adam([{"params": [betas, expr], "lr": 0.05}, {"params": [jaw, rot], "lr": 0.01},
                            {"params": [log_s], "lr": 0.005}, {"params": [trans], "lr": 0.01}])
    target = torch.as_tensor(pts, dtype=dt)
    faces_t = torch.as_tensor(ff)
    zeros = torch.zeros(1, 3, dtype=dt)

    def forward() -> torch.Tensor:
        pose = torch.cat([zeros, zeros, jaw, zeros, zeros], 1)[:, : 3 * len(ft.parents)]
        v = flame_forward_torch(ft, betas, expr, pose)[0]
        return torch.exp(log_s) * v @ batch_rodrigues(rot)[0].T + trans

    if lm_pairs is not None:
        lm_faces = torch.as_tensor(model.faces[lm_pairs[0]])
        lm_bary = torch.as_tensor(lm_pairs[1], dtype=dt)
        lm_target = torch.as_tensor(lm_pairs[2], dtype=dt)
    tri = bary = normal = None
    for it in range(cfg.iterations):
        if it % 10 == 0:
            with torch.no_grad():
                cur = forward().numpy()
            cp, tri, bary_np = closest_points(cur, ff, pts)
            d = np.linalg.norm(cp - pts, axis=1)
            w = torch.as_tensor((d <= max(np.quantile(d, 0.9), 1e-6)).astype(np.float32))
            bary = torch.as_tensor(bary_np, dtype=dt)
            tri_t = torch.as_tensor(tri)
            fn = np.cross(cur[ff[tri, 1]] - cur[ff[tri, 0]], cur[ff[tri, 2]] - cur[ff[tri, 0]])
            normal = torch.as_tensor(fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12), dtype=dt)
        opt.zero_grad()
        v = forward()
        p = (v[faces_t[tri_t]] * bary[:, :, None]).sum(1)
        diff = target - p
        plane = (diff * normal).sum(1)
        loss = (w * (plane ** 2 + 0.1 * (diff ** 2).sum(1))).sum() / w.sum()
        if lm_pairs is not None:
            lp = (v[lm_faces] * lm_bary[:, :, None]).sum(1)
            loss = loss + cfg.landmark_weight * ((lp - lm_target) ** 2).sum(1).mean()
        loss = loss + cfg.shape_prior * (betas ** 2).sum() + cfg.expr_prior * (expr ** 2).sum() \
            + cfg.jaw_prior * (jaw ** 2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return forward().numpy().astype(np.float64)


def find_landmark_embedding(model: FlameModel) -> Path | None:
    """``$FACEVISION_FLAME_EMBEDDING``, else FLAME's ``mediapipe_landmark_embedding.npz`` next to the model file."""
    if os.environ.get(EMBEDDING_ENV):
        return Path(os.environ[EMBEDDING_ENV]).expanduser()
    if model.source and not model.source.startswith("<"):
        candidate = Path(model.source).with_name(EMBEDDING_NAME)
        if candidate.is_file():
            return candidate
    return None


def relation_for(model: FlameModel, reference: Any = None, embedding: str | os.PathLike | LandmarkEmbedding | None
                 | bool = True, config: RelationConfig = RelationConfig()) -> FlameCorrespondence:
    """The (cached) relation for ``model``: default reference = facevision.face.reference.load_reference();
    ``embedding`` = a LandmarkEmbedding, a path, True (look for one: :func:`find_landmark_embedding`)
    or None/False (none)."""
    if reference is None:
        from facevision.face.reference import load_reference

        reference = load_reference()
    if embedding is True:
        embedding = find_landmark_embedding(model)
    if embedding is False:
        embedding = None
    if embedding is not None and not isinstance(embedding, LandmarkEmbedding):
        embedding = load_landmark_embedding(embedding)
    return relate_reference_to_flame(model, reference, config=config, embedding=embedding)

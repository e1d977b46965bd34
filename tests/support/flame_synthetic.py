"""A small synthetic model with FLAME's file structure, for tests, docs and benchmarks.

It is *not* FLAME: a smooth head-like surface (ellipsoid with nose, brows, eye sockets, lips and
chin, a narrower neck) of about two thousand vertices, smooth random identity and expression
bases, FLAME's five joints (root, neck, jaw, left eye, right eye) with plausible skinning weights,
small pose correctives, a joint regressor and FLAME's kintree table. Units are metres, the face
looks along +Z, Y is up.

:func:`synthetic_setup` also builds a matching *reference face* (the normalized front of a shaped
template, like facevision's correspondence space) and the ground-truth correspondence of every
template vertex, so tests can render correspondence maps of posed heads.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facevision.flame.model import FlameModel, flame_model_from_arrays

if TYPE_CHECKING:
    from facevision.flame.correspondence import LandmarkEmbedding
    from facevision.flame.params import FlameParams

__all__ = ["synthetic_embedding", "RenderedFace", "render_synthetic_face", "random_params", "save_synthetic_reference", "make_synthetic_flame_arrays", "make_synthetic_flame", "save_synthetic_flame", "SyntheticReference",
           "SyntheticSetup", "synthetic_setup", "JOINTS_REST"]

# rest joint positions (metres): root, neck, jaw, left eye (+X), right eye
JOINTS_REST = np.array([[0.0, -0.125, -0.01], [0.0, -0.075, -0.01], [0.0, -0.02, 0.0],
                        [0.032, 0.025, 0.062], [-0.032, 0.025, 0.062]])
RADII = np.array([0.078, 0.11, 0.095])
MOUTH_Y = -0.045


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gauss(p: np.ndarray, centre: tuple[float, float], sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((p[:, 0] - centre[0]) / sx) ** 2 + ((p[:, 1] - centre[1]) / sy) ** 2))


def _head_template(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    theta = np.linspace(0, np.pi, n_lat)[1:-1]  # 0 = top of head
    phi = np.linspace(-np.pi, np.pi, n_lon, endpoint=False)  # 0 = front (+Z)
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(th) * np.sin(ph), np.cos(th), np.sin(th) * np.cos(ph)], -1).reshape(-1, 3)
    v = unit * RADII
    y = v[:, 1]
    neck = _sigmoid((-0.075 - y) / 0.01)
    v[:, [0, 2]] *= (1.0 - 0.4 * neck)[:, None]
    front = np.clip(unit[:, 2], 0, 1) ** 2
    bump = (0.026 * _gauss(v, (0.0, -0.008), 0.011, 0.022) * (1 - 0.5 * _sigmoid((v[:, 1] - 0.01) / 0.008))
            + 0.005 * _gauss(v, (0.0, 0.045), 0.04, 0.007)
            - 0.009 * (_gauss(v, (0.032, 0.025), 0.011, 0.008) + _gauss(v, (-0.032, 0.025), 0.011, 0.008))
            + 0.005 * _gauss(v, (0.0, MOUTH_Y + 0.004), 0.022, 0.005)
            + 0.004 * _gauss(v, (0.0, MOUTH_Y - 0.008), 0.02, 0.005)
            + 0.007 * _gauss(v, (0.0, -0.085), 0.02, 0.012))
    v[:, 2] += bump * front
    # triangles of the lat-long grid plus caps at the poles
    rows, cols = len(theta), n_lon
    idx = np.arange(rows * cols).reshape(rows, cols)
    faces = []
    for r in range(rows - 1):
        a, b = idx[r], idx[r + 1]
        a2, b2 = np.roll(a, -1), np.roll(b, -1)
        faces += [np.stack([a, b, a2], 1), np.stack([a2, b, b2], 1)]
    top, bottom = rows * cols, rows * cols + 1
    v = np.vstack([v, [[0, RADII[1], 0], [0, -RADII[1], 0]]])
    faces.append(np.stack([np.full(cols, top), idx[0], np.roll(idx[0], -1)], 1))
    faces.append(np.stack([np.full(cols, bottom), np.roll(idx[-1], -1), idx[-1]], 1))
    v[bottom, [0, 2]] *= 0.6
    return v, np.vstack(faces).astype(np.int64)


def _smooth_fields(p: np.ndarray, n: int, rng: np.random.Generator, scale: np.ndarray) -> np.ndarray:
    """n smooth random displacement fields (V,3,n) from polynomials of degree 1..3 in normalized coords."""
    q = p / RADII
    x, y, z = q.T
    feats = np.stack([x, y, z, x * x, y * y, z * z, x * y, y * z, x * z, x * x * y, y * y * y, x * x * z,
                      y * y * z, z * z * z, x * y * z], 1)
    feats /= np.abs(feats).max(0)
    coef = rng.normal(size=(feats.shape[1], 3, n)) / np.sqrt(feats.shape[1])
    fields = np.einsum("vm,mcn->vcn", feats, coef) * scale
    # remove infinitesimal rigid motions (as Procrustes-aligned PCA bases do): 6 fields over the vertices
    c = p - p.mean(0)
    rigid = np.zeros((len(p), 3, 6))
    rigid[:, 0, 0] = rigid[:, 1, 1] = rigid[:, 2, 2] = 1.0
    for k, axis in enumerate(np.eye(3)):
        rigid[:, :, 3 + k] = np.cross(axis, c)
    a = rigid.reshape(-1, 6)
    flat = fields.reshape(-1, n)
    flat = flat - a @ np.linalg.lstsq(a, flat, rcond=None)[0]
    return flat.reshape(len(p), 3, n)


def _least_norm_regressor(v: np.ndarray, joint: np.ndarray, k: int) -> np.ndarray:
    """Vertex weights (sum 1) whose weighted mean of the k nearest vertices is exactly ``joint``."""
    near = np.argsort(np.linalg.norm(v - joint, axis=1))[:k]
    a = np.vstack([v[near].T, np.ones(len(near))])
    b = np.append(joint, 1.0)
    w = a.T @ np.linalg.solve(a @ a.T, b)
    row = np.zeros(len(v))
    row[near] = w
    return row


def make_synthetic_flame_arrays(n_shape: int = 40, n_expr: int = 20, n_lat: int = 52, n_lon: int = 72,
                                seed: int = 0) -> dict[str, np.ndarray]:
    """FLAME-file-structured arrays (the keys of generic_model.pkl plus ``n_shape``)."""
    rng = np.random.default_rng(seed)
    v, f = _head_template(n_lat, n_lon)
    nv = len(v)
    y, z = v[:, 1], v[:, 2]
    shape_scale = 0.004 / (1.0 + 0.25 * np.arange(n_shape))
    shapedirs = _smooth_fields(v, n_shape, rng, shape_scale)
    face_mask = (np.clip(v[:, 2] / RADII[2], 0, 1) ** 2 * (_gauss(v, (0.0, MOUTH_Y), 0.035, 0.025)
                                                          + 0.6 * _gauss(v, (0.0, 0.04), 0.045, 0.015)))
    expr_scale = 0.004 / (1.0 + 0.15 * np.arange(n_expr))
    exprdirs = _smooth_fields(v, n_expr, rng, expr_scale) * face_mask[:, None, None]
    # skinning weights: root (neck base), neck (head), jaw (lower face), eyes (sockets)
    w_root = _sigmoid((-0.1 - y) / 0.008)
    w_jaw = _sigmoid((MOUTH_Y - 0.002 - y) / 0.004) * _sigmoid((z + 0.01) / 0.012) * _sigmoid((y + 0.095) / 0.006)
    w_eye_l = 0.8 * np.exp(-0.5 * (np.linalg.norm(v - [0.032, 0.025, 0.075], axis=1) / 0.008) ** 2)
    w_eye_r = 0.8 * np.exp(-0.5 * (np.linalg.norm(v - [-0.032, 0.025, 0.075], axis=1) / 0.008) ** 2)
    w_neck = np.clip(1.0 - w_root - w_jaw - w_eye_l - w_eye_r, 0.0, None)
    weights = np.stack([w_root, w_neck, w_jaw, w_eye_l, w_eye_r], 1)
    weights /= weights.sum(1, keepdims=True)
    jreg = np.stack([_least_norm_regressor(v, j, 120) for j in JOINTS_REST])
    posedirs = np.zeros((nv, 3, 36))
    posedirs[:, :, 0:9] = _smooth_fields(v, 9, rng, 0.002) * w_neck[:, None, None]
    posedirs[:, :, 9:18] = _smooth_fields(v, 9, rng, 0.002) * w_jaw[:, None, None]
    kintree = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)
    return {"v_template": v, "f": f.astype(np.uint32), "shapedirs": np.concatenate([shapedirs, exprdirs], 2),
            "posedirs": posedirs, "J_regressor": jreg, "weights": weights, "kintree_table": kintree,
            "n_shape": np.array(n_shape)}


def make_synthetic_flame(**kwargs: int) -> FlameModel:
    """The synthetic model as a :class:`FlameModel` (in memory; its hash is the arrays' hash)."""
    return flame_model_from_arrays(make_synthetic_flame_arrays(**kwargs), source="<synthetic FLAME>")


def save_synthetic_flame(path: str | Path, arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Write the synthetic model as ``.npz`` or as a FLAME-like ``.pkl`` (sparse J_regressor, protocol 2)."""
    import scipy.sparse

    path = Path(path)
    arrays = arrays if arrays is not None else make_synthetic_flame_arrays()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        data = dict(arrays)
        data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])
        data["bs_style"], data["bs_type"] = "lbs", "lrotmin"
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    return path


@dataclass
class SyntheticReference:
    """Duck-typed like facevision.face.reference.ReferenceFace: vertices (N,3) in [0,1]^3, triangles, ibug68."""

    vertices: np.ndarray
    triangles: np.ndarray
    ibug68: np.ndarray
    normalization: dict


@dataclass
class SyntheticSetup:
    """A synthetic model, its reference face and each template vertex's true correspondence.

    vertex_corr (V,3): correspondence-space coordinates of each FLAME vertex (valid where face_vertices).
    face_vertices (V,) bool: the vertices of the face region (what a correspondence map covers).
    """

    model: FlameModel
    reference: SyntheticReference
    vertex_corr: np.ndarray
    face_vertices: np.ndarray
    face_triangles: np.ndarray  # (T,3) FLAME triangles fully inside the face region


def _ibug68_layout() -> np.ndarray:
    """Approximate iBUG-68 positions in (u, v) of a normalized frontal face."""
    t = np.linspace(-1.75, 1.75, 17)
    jaw = np.stack([0.5 + 0.47 * np.sin(t), 0.5 - 0.48 * np.cos(t * 0.9)], 1)
    brows = np.array([[u, 0.8] for u in np.linspace(0.15, 0.42, 5)] + [[u, 0.8] for u in np.linspace(0.58, 0.85, 5)])
    nose = np.array([[0.5, v] for v in np.linspace(0.72, 0.5, 4)] + [[u, 0.42] for u in np.linspace(0.42, 0.58, 5)])
    a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eyes = np.vstack([np.stack([c + 0.08 * -np.cos(a), 0.66 + 0.025 * np.sin(a)], 1) for c in (0.3, 0.7)])
    a12 = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    a8 = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    mouth = np.vstack([np.stack([0.5 - 0.16 * np.cos(a12), 0.25 + 0.06 * np.sin(a12)], 1),
                       np.stack([0.5 - 0.1 * np.cos(a8), 0.25 + 0.015 * np.sin(a8)], 1)])
    return np.vstack([jaw, brows, nose, eyes, mouth])


def synthetic_setup(model_arrays: dict[str, np.ndarray] | None = None, reference_shape_seed: int | None = 1,
                    reference_shape_sigma: float = 0.7) -> SyntheticSetup:
    """Model + reference face + ground-truth vertex correspondences.

    The reference face is the front of the template deformed by random identity coefficients
    (``reference_shape_sigma``; 0 or seed None = the template itself), normalized per axis to [0,1]^3,
    mimicking how facevision's correspondence space is a normalized average face.
    """
    arrays = model_arrays if model_arrays is not None else make_synthetic_flame_arrays()
    model = flame_model_from_arrays(arrays, source="<synthetic FLAME>")
    v = model.v_template.copy()
    if reference_shape_seed is not None and reference_shape_sigma > 0:
        betas = np.random.default_rng(reference_shape_seed).normal(size=model.n_shape) * reference_shape_sigma
        v = v + np.einsum("vck,k->vc", model.shapedirs, betas)
    t = model.v_template
    face = (((t[:, 0] / 0.066) ** 2 + ((t[:, 1] + 0.012) / 0.092) ** 2) < 1.0) & (t[:, 2] > 0.03)
    centre = v[face].mean(0)
    rms = np.sqrt(((v[face] - centre) ** 2).sum(1).mean())
    raw = (v - centre) / rms  # isotropic "raw" frame: centred, unit RMS radius
    lo, hi = raw[face].min(0), raw[face].max(0)
    norm = {"offset": lo, "scale": 1.0 / (hi - lo)}
    corr = (raw - lo) * norm["scale"]
    tri = model.faces[face[model.faces].all(1)]
    used = np.unique(tri)
    remap = -np.ones(len(v), dtype=np.int64)
    remap[used] = np.arange(len(used))
    ref_v = corr[used]
    layout = _ibug68_layout()
    d = np.linalg.norm(ref_v[None, :, :2] - layout[:, None, :], axis=2) + 0.2 * (1 - ref_v[None, :, 2])
    ibug = d.argmin(1)
    face_vertices = np.zeros(len(v), bool)
    face_vertices[used] = True
    ref = SyntheticReference(vertices=ref_v, triangles=remap[tri], ibug68=ibug, normalization=norm)
    return SyntheticSetup(model=model, reference=ref, vertex_corr=np.clip(corr, 0, 1), face_vertices=face_vertices,
                          face_triangles=tri)


def save_synthetic_reference(path: str | Path, reference: SyntheticReference) -> Path:
    """Write a synthetic reference face in data_prep's reference asset format (``load_reference(path)``)."""
    v = np.asarray(reference.vertices, dtype=np.float64)
    mirrored = np.stack([1.0 - v[:, 0], v[:, 1], v[:, 2]], 1)
    mirror = np.linalg.norm(v[None] - mirrored[:, None], axis=2).argmin(1)
    off, scale = reference.normalization["offset"], reference.normalization["scale"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, vertices=v, triangles=reference.triangles, ibug68=reference.ibug68, mirror=mirror,
             raw_vertices=v / scale + off, norm_offset=off, norm_scale=scale,
             norm_description="synthetic FLAME-format test reference")
    return path


@dataclass
class RenderedFace:
    """Maps of a posed synthetic head, as ``facevision predict`` would give them (crop pixels).

    depth (S,S) float32 (larger = closer, 0 = background), corr (S,S,3), mask (S,S) bool,
    landmarks68 (68,2) (x = column, y = row), params: the ground truth with scale/translation filled in,
    vertices_px (V,3): ground-truth posed vertices in meshing's frame (X = col, Y = S-1-row, Z = depth).
    """

    depth: np.ndarray
    corr: np.ndarray
    mask: np.ndarray
    landmarks68: np.ndarray
    params: "FlameParams"
    vertices_px: np.ndarray


def random_params(model: FlameModel, seed: int, shape_sigma: float = 1.0, expr_sigma: float = 1.5,
                  max_yaw: float = 25.0, max_pitch: float = 12.0, max_roll: float = 8.0, max_jaw: float = 15.0
                  ) -> "FlameParams":
    """Random ground-truth parameters (first 20 shape / 10 expression coefficients, head angles, jaw)."""
    from scipy.spatial.transform import Rotation

    from facevision.flame.params import FlameParams
    from facevision.maps.pose import angles_to_rotation

    rng = np.random.default_rng(seed)
    ns, ne = min(20, model.n_shape), min(10, model.n_expr)
    return FlameParams(
        shape=np.r_[rng.normal(size=ns) * shape_sigma, np.zeros(model.n_shape - ns)],
        expression=np.r_[rng.normal(size=ne) * expr_sigma, np.zeros(model.n_expr - ne)],
        global_pose=Rotation.from_matrix(angles_to_rotation(rng.uniform(-max_yaw, max_yaw),
                                                            rng.uniform(-max_pitch, max_pitch),
                                                            rng.uniform(-max_roll, max_roll))).as_rotvec(),
        jaw_pose=np.array([np.radians(rng.uniform(0, max_jaw)), 0.0, 0.0]))


def render_synthetic_face(setup: SyntheticSetup, params: "FlameParams", size: int = 128, face_fraction: float = 0.6,
                          depth_noise: float = 0.0, depth_outliers: float = 0.0, landmark_noise: float = 0.0,
                          seed: int = 0) -> RenderedFace:
    """Pose the model, place its face in a ``size`` crop (face width = ``face_fraction`` of it) and render
    depth + correspondence with data_prep's rasterizer. Noise: Gaussian depth noise (px), a fraction of
    depth outliers (+-30 px spikes) and Gaussian landmark noise (px)."""
    from dataclasses import replace as dc_replace

    from facevision.face.codecs import DEPTH_BASE_PX
    from facevision.face.rasterize import rasterize
    from facevision.flame.params import flame_forward

    rng = np.random.default_rng(seed)
    fv = setup.face_vertices
    vm = flame_forward(setup.model, params)
    scale = face_fraction * size / np.ptp(vm[fv, 0])
    centre = 0.5 * (vm[fv].min(0) + vm[fv].max(0))
    trans = np.array([(size - 1) / 2.0, (size - 1) / 2.0, 0.0]) - scale * centre
    trans[2] = DEPTH_BASE_PX - scale * vm[fv, 2].min()
    gt = dc_replace(params, scale=float(scale), translation_px=trans)
    v = scale * vm + trans
    raster = np.stack([v[:, 0], size - 1 - v[:, 1], v[:, 2]], 1)
    depth, corr, mask = rasterize(raster, setup.face_triangles, size, size, attributes=setup.vertex_corr)
    if depth_noise > 0 or depth_outliers > 0:
        noisy = depth + rng.normal(size=depth.shape).astype(np.float32) * depth_noise
        spikes = rng.random(depth.shape) < depth_outliers
        noisy[spikes] += rng.uniform(-30, 30, spikes.sum()).astype(np.float32)
        depth = np.where(mask, np.maximum(noisy, 0.05), 0).astype(np.float32)
    # the reference's vertices are the face-region FLAME vertices (in order), so iBUG-68 maps directly
    lm_idx = np.asarray(setup.reference.ibug68)
    ref_to_vertex = np.where(setup.face_vertices)[0]
    lm = raster[ref_to_vertex[lm_idx], :2] + rng.normal(size=(68, 2)) * landmark_noise
    return RenderedFace(depth=depth, corr=corr, mask=mask, landmarks68=lm, params=gt, vertices_px=v)


def synthetic_embedding(setup: SyntheticSetup, n: int = 105, seed: int = 0) -> "LandmarkEmbedding":
    """A MediaPipe-embedding-like set of pairs: ``n`` reference vertices and the FLAME points they are."""
    from facevision.flame.correspondence import LandmarkEmbedding

    rng = np.random.default_rng(seed)
    ref_ids = np.sort(rng.choice(len(setup.reference.vertices), size=min(n, len(setup.reference.vertices)),
                                 replace=False))
    flame_ids = np.where(setup.face_vertices)[0][ref_ids]
    faces = setup.model.faces
    face_idx = np.array([np.where((faces == v).any(1))[0][0] for v in flame_ids])
    bary = (faces[face_idx] == flame_ids[:, None]).astype(np.float64)
    return LandmarkEmbedding(reference_indices=ref_ids, face_idx=face_idx, bary=bary,
                             sha256=f"synthetic-{n}-{seed}")

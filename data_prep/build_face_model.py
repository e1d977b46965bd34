"""Build the linear face model (:mod:`facevision.face.face_model`) from a prepared dataset's Face Mesh vertices.

1. Every sample's vertices (``samples/<id>/face_mesh.npy``, crop px, y down, z larger = closer) go to
   the reference's raw frame (y up) and are similarity-aligned (Umeyama) to the reference face. The reference
   is the dataset's (:func:`facevision.face.reference.dataset_reference`): Face Mesh's 468 vertices, or for 3DDFA
   labels the 4,096 grid points followed by the 68 landmarks the sample keeps in ``label_fit.npz``.
2. Mirror symmetry: every aligned shape also enters mirrored (x -> -x, vertices permuted by the
   reference's left/right map), as a shape of a mirrored person, so the model is symmetric.
3. Identity modes: PCA of the per-person mean shapes of people with >= ``min_photos`` photos in the
   train split; expression modes: PCA of what is left (each shape minus its person's mean). Before
   the PCA, the 7 directions of a similarity motion of the mean (3 translations, 3 small rotations,
   scale) are projected out, so no mode moves the face rigidly and a fit's pose is well defined.
4. The number of modes: on the val split, shapes are reconstructed (ridge least squares) for a grid of
   (identity, expression) counts; the smallest total that removes at least ``1 - tolerance`` of the
   error that the grid's best removes (from the mean shape's error) is kept.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.dataset_format import read_face_mesh, read_label_fit, read_manifest
from facevision.common.checks import check_int, check_number
from facevision.face.face_model import FACE_MODEL_NAME, FaceModel
from facevision.common.geometry import similarity_fit
from facevision.face.reference import ReferenceFace, dataset_reference

__all__ = ["FaceModelBuildConfig", "align_to_reference", "mirror_shapes", "rigid_directions", "pca", "reconstruction_rms",
           "build_face_model", "save_face_model"]


@dataclass(frozen=True)
class FaceModelBuildConfig:
    """id_grid, exp_grid: mode counts tried on the val split; tolerance: relative slack over the best val
    error when picking the smallest model; min_photos: people with fewer train photos do not enter the
    identity / expression split; ridge: prior weight of the val reconstructions (unit-variance coefficients);
    limit: first N samples per split (None = all). Checked when built (ValueError naming the field)."""

    id_grid: tuple[int, ...] = (5, 10, 20, 30, 40, 60)
    exp_grid: tuple[int, ...] = (5, 10, 15, 20, 30)
    tolerance: float = 0.03
    min_photos: int = 2
    ridge: float = 1e-4
    limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("id_grid", "exp_grid"):
            grid = getattr(self, name)
            if not grid or min(int(k) for k in grid) < 1:
                raise ValueError(f"FaceModelBuildConfig.{name}: mode counts must be >= 1, got {grid!r}")
        for name in ("tolerance", "ridge"):
            check_number(self, name, low=0, finite=False)
        check_int(self, "min_photos", low=1)
        check_int(self, "limit", low=1, optional=True)


def align_to_reference(mesh_crop: np.ndarray, reference: ReferenceFace) -> np.ndarray:
    """(V, 3) crop-px vertices of the reference's topology (y down, z larger = closer) -> its raw frame."""
    p = np.asarray(mesh_crop, np.float64) * [1.0, -1.0, 1.0]
    s, r, t = similarity_fit(p, reference.raw_vertices)
    return s * p @ r.T + t


def mirror_shapes(shapes: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(N, V, 3) raw-frame shapes -> their mirror images (x -> -x, left/right vertices swapped)."""
    out = shapes[:, mirror].copy()
    out[..., 0] *= -1.0
    return out


def rigid_directions(mean: np.ndarray) -> np.ndarray:
    """(V * 3, 7) orthonormal basis of the first-order similarity motions of a (V, 3) shape."""
    v = len(mean)
    cols = []
    for axis in range(3):
        t = np.zeros((v, 3))
        t[:, axis] = 1.0
        cols.append(t)
        w = np.zeros(3)
        w[axis] = 1.0
        cols.append(np.cross(w, mean))
    cols.append(mean - mean.mean(0))
    q, _ = np.linalg.qr(np.stack([c.reshape(-1) for c in cols], 1))
    return q


def pca(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred (N, D) rows -> (k, D) modes scaled by their standard deviation, and (k,) variance ratios."""
    _, sig, vt = np.linalg.svd(rows, full_matrices=False)
    var = sig ** 2 / max(len(rows) - 1, 1)
    k = min(k, len(var))
    return vt[:k] * np.sqrt(var[:k])[:, None], var[:k] / var.sum()


def reconstruction_rms(shapes: np.ndarray, mean: np.ndarray, basis: np.ndarray, ridge: float) -> float:
    """RMS vertex error (raw units) of ridge least-squares reconstructions of (N, V, 3) shapes."""
    d = shapes.reshape(len(shapes), -1) - mean.reshape(-1)
    if len(basis):
        coef = np.linalg.solve(basis @ basis.T + ridge * np.eye(len(basis)), basis @ d.T)
        d = d - coef.T @ basis
    return float(np.sqrt((d.reshape(len(shapes), -1, 3) ** 2).sum(-1).mean()))


def _sample_points(root: Path, sid: str, n: int) -> np.ndarray | None:
    """The sample's kept vertices in the reference's topology (the labeler's face points, then the landmarks
    of ``label_fit.npz`` where the reference has more vertices than the face points); None when not kept."""
    mesh = read_face_mesh(root, sid)
    if mesh is None or len(mesh) == n:
        return mesh
    fit = read_label_fit(root, sid)
    if fit is not None and "landmarks" in fit and len(mesh) + len(fit["landmarks"]) == n:
        return np.concatenate([mesh, fit["landmarks"]])
    raise ValueError(f"{root / 'samples' / sid}: keeps {len(mesh)} face points, the dataset's reference face has {n}")


def _load_split(root: Path, manifest: dict, split: str, reference: ReferenceFace,
                limit: int | None) -> tuple[np.ndarray, list[str]]:
    shapes, people = [], []
    for s in manifest["samples"]:
        if s["split"] != split:
            continue
        mesh = _sample_points(root, s["id"], len(reference.raw_vertices))
        if mesh is None:
            continue
        shapes.append(align_to_reference(mesh, reference))
        people.append(s["identity"])
        if limit is not None and len(shapes) >= limit:
            break
    if not shapes:
        raise ValueError(f"{root}: no {split} sample keeps face_mesh.npy (re-run `facevision prepare lfw`)")
    return np.stack(shapes), people


def build_face_model(dataset: str | Path, config: FaceModelBuildConfig = FaceModelBuildConfig(),
                     reference: ReferenceFace | None = None) -> tuple[FaceModel, dict[str, Any]]:
    """Dataset folder -> (model, model card dict)."""
    t0 = time.time()
    root = Path(dataset)
    manifest = read_manifest(root)
    reference = reference or dataset_reference(root, manifest)
    train, people = _load_split(root, manifest, "train", reference, config.limit)
    val, _ = _load_split(root, manifest, "val", reference, config.limit)
    by_person: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(people):
        by_person[p].append(i)
    groups = [idx for idx in by_person.values() if len(idx) >= config.min_photos]
    if len(groups) < 2:
        raise ValueError(f"{root}: fewer than 2 people with {config.min_photos}+ train photos")
    both = np.concatenate([train, mirror_shapes(train, reference.mirror)])
    mean = both.mean(0)
    person_means, residuals = [], []
    for mirrored in (False, True):
        shapes = mirror_shapes(train, reference.mirror) if mirrored else train
        for idx in groups:
            pm = shapes[idx].mean(0)
            person_means.append(pm)
            residuals.append(shapes[idx] - pm)
    rigid = rigid_directions(mean)
    id_rows = np.stack(person_means).reshape(len(person_means), -1) - mean.reshape(-1)
    exp_rows = np.concatenate(residuals).reshape(-1, mean.size)
    id_rows -= (id_rows @ rigid) @ rigid.T
    exp_rows -= (exp_rows @ rigid) @ rigid.T
    id_all, id_ratio = pca(id_rows, max(config.id_grid))
    exp_all, exp_ratio = pca(exp_rows, max(config.exp_grid))

    val_both = np.concatenate([val, mirror_shapes(val, reference.mirror)])
    grid = []
    for ki in config.id_grid:
        for ke in config.exp_grid:
            basis = np.concatenate([id_all[:ki], exp_all[:ke]])
            grid.append((ki, ke, reconstruction_rms(val_both, mean, basis, config.ridge)))
    best = min(e for _, _, e in grid)
    mean_only = reconstruction_rms(val_both, mean, np.zeros((0, mean.size)), config.ridge)
    limit = best + config.tolerance * (mean_only - best)
    ki, ke, err = min((g for g in grid if g[2] <= limit), key=lambda g: (g[0] + g[1], g[2]))
    model = FaceModel(mean=mean, id_basis=id_all[:ki], exp_basis=exp_all[:ke], id_var_ratio=id_ratio[:ki],
                      exp_var_ratio=exp_ratio[:ke], triangles=reference.triangles.copy(),
                      ibug68=reference.ibug68.copy(), mirror=reference.mirror.copy())
    card = {
        "name": FACE_MODEL_NAME,
        "dataset": str(root),
        "label_source": manifest.get("label_source"),
        "correspondence_space": reference.name,
        "train_shapes": int(len(train)),
        "train_people_used": len(groups),
        "val_shapes": int(len(val)),
        "vertices": int(mean.shape[0]),
        "identity_modes": ki,
        "expression_modes": ke,
        "identity_explained_variance": round(float(id_ratio[:ki].sum()), 4),
        "expression_explained_variance": round(float(exp_ratio[:ke].sum()), 4),
        "val_rms_mean_only": round(mean_only, 5),
        "val_rms": round(err, 5),
        "val_grid": [[a, b, round(e, 5)] for a, b, e in grid],
        "units": "raw reference units (face RMS radius = 1)",
        "config": asdict(config),
        "build_seconds": round(time.time() - t0, 1),
    }
    return model, card


def save_face_model(path: str | Path, model: FaceModel, card: dict[str, Any]) -> Path:
    """Write the model as an .npz (float32 arrays, the card as JSON text) atomically."""
    import io

    from facevision.common.fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, mean=model.mean.astype(np.float32), id_basis=model.id_basis.astype(np.float32),
                        exp_basis=model.exp_basis.astype(np.float32),
                        id_var_ratio=model.id_var_ratio.astype(np.float32),
                        exp_var_ratio=model.exp_var_ratio.astype(np.float32),
                        triangles=model.triangles.astype(np.int32), ibug68=model.ibug68.astype(np.int32),
                        mirror=model.mirror.astype(np.int32), card=np.array(json.dumps(card)))
    return atomic_write_bytes(path, buf.getvalue())

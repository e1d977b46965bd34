"""The 3DDFA / 3DDFA_V2 files a user passes with ``--tddfa-dir DIR`` (never shipped: the face model derives
from the Basel Face Model, non-commercial research use), read into plain arrays. ``FILES``: the regressor's
weights (:mod:`data_prep.tddfa_net`), the parameters' mean and std (62,), the face model on a 64 x 64 grid
(``mu``, ``w_shp`` (40), ``w_exp`` (10)), the 53,215-vertex mean with the 68 iBUG landmarks' indices, and
3DDFA_V2's face vertex indices (checked to lie in the mean).

Correspondence space ``3ddfa-bfm4096-ncc`` (:meth:`TddfaFiles.to_ncc`): the normalized coordinate code of the
4,096-point mean shape (docs/data_prep.md): v and w span its range in y and z, u spans [-a, a] in x (a = its
largest |x|), so a point's mirror image (x -> -x) has u -> 1 - u exactly.

Model frame ("BFM units"): x right, y up, z towards the viewer; one face is ~146,000 units wide. Grid order:
point ``i * 64 + j`` is column ``i`` (left to right as seen) and row ``j`` (top to bottom).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facevision.face.grid import GRID

__all__ = ["TddfaFiles", "load_tddfa_files", "TddfaFilesError", "FILES", "LANDMARK_NEIGHBOURS"]

FILES = {"weights": "tddfa_v2_mb05_120x120.safetensors", "param_stats": "tddfa_v2_param_mean_std_62d.npz",
         "grid_model": "bfm_paf_4096.npz", "mean_53215": "bfm_53215_mean.npz",
         "meta": "tddfa_v2_bfm_noneck_v3_meta.npz"}
#: Grid points whose bases are blended (inverse-square distance) into each landmark's basis (the 68 landmarks
#: are not grid points; how many hardly matters: docs/data_prep.md).
LANDMARK_NEIGHBOURS = 6


class TddfaFilesError(ValueError):
    """A file of the 3DDFA folder is missing or malformed; the message names it."""


@dataclass(frozen=True)
class TddfaFiles:
    """The arrays of a 3DDFA folder.

    param_mean, param_std: (62,). grid_mean: (4096, 3); grid_shape (4096 * 3, 40), grid_exp (4096 * 3, 10):
    flat interleaved x0 y0 z0 x1 ... like ``grid_mean.reshape(-1)``. lm_mean (68, 3), lm_shape (204, 40),
    lm_exp (204, 10): the iBUG-68 landmarks, mean exact, bases interpolated from the grid.
    ncc_min, ncc_max: (3,) the normalization of the correspondence space: ncc = (p - min) / (max - min).
    weights: path of the regressor's safetensors file.
    """

    folder: Path
    weights: Path
    param_mean: np.ndarray
    param_std: np.ndarray
    grid_mean: np.ndarray
    grid_shape: np.ndarray
    grid_exp: np.ndarray
    lm_mean: np.ndarray
    lm_shape: np.ndarray
    lm_exp: np.ndarray
    ncc_min: np.ndarray
    ncc_max: np.ndarray

    def shape(self, alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(40,) shape and (10,) expression coefficients -> grid points (4096, 3), landmarks (68, 3), model frame."""
        a, b = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
        grid = self.grid_mean.reshape(-1) + self.grid_shape @ a + self.grid_exp @ b
        lms = self.lm_mean.reshape(-1) + self.lm_shape @ a + self.lm_exp @ b
        return grid.reshape(-1, 3), lms.reshape(-1, 3)

    def to_ncc(self, points: np.ndarray) -> np.ndarray:
        """Model-frame points -> normalized coordinate code (``3ddfa-bfm4096-ncc``), in [0, 1] on the mean shape."""
        return (np.asarray(points, np.float64) - self.ncc_min) / (self.ncc_max - self.ncc_min)


def _npz(folder: Path, key: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = folder / FILES[key]
    if not path.is_file():
        raise TddfaFilesError(f"{path}: missing (the 3DDFA folder needs {', '.join(FILES.values())})")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [n for n in names if n not in z.files]
            if missing:
                raise TddfaFilesError(f"{path}: lacks {missing}")
            return {n: np.asarray(z[n]) for n in names}
    except (OSError, ValueError) as exc:
        if isinstance(exc, TddfaFilesError):
            raise
        raise TddfaFilesError(f"{path}: not a readable npz file ({exc})") from exc


def _check(path: Path, name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if arr.shape != shape or not np.isfinite(arr).all():
        raise TddfaFilesError(f"{path}: {name} must be finite with shape {shape}, got {arr.shape}")


def load_tddfa_files(folder: str | Path) -> TddfaFiles:
    """Read and check a 3DDFA folder (cached per folder). TddfaFilesError names the file that is wrong."""
    return _load(str(Path(folder).resolve()))


@lru_cache(maxsize=2)
def _load(folder_s: str) -> TddfaFiles:
    folder = Path(folder_s)
    if not folder.is_dir():
        raise TddfaFilesError(f"{folder}: 3DDFA folder not found (pass the folder with {FILES['weights']})")
    weights = folder / FILES["weights"]
    if not weights.is_file():
        raise TddfaFilesError(f"{weights}: missing (the 3DDFA_V2 regressor's weights)")
    stats = _npz(folder, "param_stats", ("mean", "std"))
    grid = _npz(folder, "grid_model", ("mu", "w_shp", "w_exp"))
    big = _npz(folder, "mean_53215", ("u_shp", "u_exp", "keypoints"))
    meta = _npz(folder, "meta", ("indices",))
    n = GRID * GRID
    for key, name, arr, shape in (("param_stats", "mean", stats["mean"], (62,)),
                                  ("param_stats", "std", stats["std"], (62,)),
                                  ("grid_model", "mu", grid["mu"], (3 * n,)),
                                  ("grid_model", "w_shp", grid["w_shp"], (3 * n, 40)),
                                  ("grid_model", "w_exp", grid["w_exp"], (3 * n, 10)),
                                  ("mean_53215", "keypoints", big["keypoints"], (204,))):
        _check(folder / FILES[key], name, arr.astype(np.float64), shape)
    mean_big = (big["u_shp"].astype(np.float64) + big["u_exp"].astype(np.float64))
    if mean_big.ndim != 1 or len(mean_big) % 3:
        raise TddfaFilesError(f"{folder / FILES['mean_53215']}: u_shp + u_exp must be a flat (3 V,) vector")
    verts = mean_big.reshape(-1, 3)
    kp = big["keypoints"].astype(np.int64)
    idx = meta["indices"].astype(np.int64)
    if kp.max() >= len(mean_big) or idx.max() >= len(verts) or kp.min() < 0 or idx.min() < 0:
        raise TddfaFilesError(f"{folder}: landmark or face indices point outside the 53,215-vertex mean")
    lm_mean = mean_big[kp].reshape(68, 3)
    gmean = grid["mu"].astype(np.float64).reshape(n, 3)
    w_shp, w_exp = grid["w_shp"].astype(np.float64), grid["w_exp"].astype(np.float64)
    lm_shape, lm_exp = _landmark_bases(lm_mean, gmean, w_shp, w_exp, LANDMARK_NEIGHBOURS)
    a = float(np.abs(gmean[:, 0]).max())
    lo, hi = gmean.min(0), gmean.max(0)
    return TddfaFiles(folder=folder, weights=weights, param_mean=stats["mean"].astype(np.float64),
                      param_std=stats["std"].astype(np.float64), grid_mean=gmean, grid_shape=w_shp, grid_exp=w_exp,
                      lm_mean=lm_mean, lm_shape=lm_shape, lm_exp=lm_exp, ncc_min=np.array([-a, lo[1], lo[2]]),
                      ncc_max=np.array([a, hi[1], hi[2]]))


def _landmark_bases(lm_mean: np.ndarray, grid_mean: np.ndarray, w_shp: np.ndarray, w_exp: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each landmark's basis rows as the inverse-square-distance blend of its k nearest grid points' rows."""
    from scipy.spatial import cKDTree

    dist, near = cKDTree(grid_mean).query(lm_mean, k=k)
    dist, near = dist.reshape(68, k), near.reshape(68, k)
    w = 1.0 / np.maximum(dist, 1e-6) ** 2
    w /= w.sum(1, keepdims=True)
    rows = (3 * near[..., None] + np.arange(3)).reshape(68, k, 3)  # flat rows of x, y, z per neighbour
    shp = np.einsum("lk,lkcm->lcm", w, w_shp[rows]).reshape(204, -1)
    exp = np.einsum("lk,lkcm->lcm", w, w_exp[rows]).reshape(204, -1)
    return shp, exp

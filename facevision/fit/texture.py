"""The photo's colours unwrapped onto the fitted face model in a fixed UV layout (``fit_texture.png``).

Layouts (:func:`uv_layout`), one per face-model topology and the same for every photo, both mirror symmetric
about u = 0.5 (a texel's mirror is the same row, mirrored column):

* ``facevision-reference-v1`` (468 Face Mesh vertices): the reference face's (u, v), i.e. the correspondence
  code's u and v (u right, v up): a ``corr.png`` pixel with code (u, v, w) shows texel (u, v).
* ``3ddfa-grid64``: u = (column + 0.5) / 64, v = 1 - (row + 0.5) / 64 of the 64 x 64 grid
  (:mod:`facevision.face.grid`); the 68 landmark vertices take the (u, v) of their nearest grid point.

Texel (row r, column c) of a T x T texture covers u = (c + 0.5) / T, v = 1 - (r + 0.5) / T (OBJ convention; the
PNG's first row is v near 1). :func:`unwrap_texture` projects each texel's surface point orthographically into
the image (x = column, y = row, z towards the viewer, image px): it takes the image's colour when *seen*
(inside the image, facing the camera, not behind the fitted mesh's z-buffer), else its mirror texel's
(*mirrored*), else grey (*hidden*); outside the layout grey, but for ``pad`` texels repeating its edge.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from facevision.common.checks import check_int, check_number
from facevision.face.rasterize import rasterize
from meshing.refine import vertex_normals

__all__ = ["TextureConfig", "UVLayout", "FitTexture", "uv_layout", "texel_lookup", "unwrap_texture", "SEEN", "MIRRORED",
           "HIDDEN", "OUTSIDE", "REFERENCE_LAYOUT", "GRID_LAYOUT"]

OUTSIDE, SEEN, MIRRORED, HIDDEN = 0, 1, 2, 3  # texel states (FitTexture.state)
REFERENCE_LAYOUT = "facevision-reference-v1"
GRID_LAYOUT = "3ddfa-grid64"


@dataclass(frozen=True)
class TextureConfig:
    """size: texture side in texels; depth_tol: a texel is seen when it lies at most this far behind the fitted
    mesh's z-buffer, in face-model units (RMS radius of the face, ~52 mm); min_facing: least z (towards the
    viewer) of its unit normal: grazing surface is not seen (docs/predict.md); zbuffer_px: longest side of the
    z-buffer (the image is reduced to it for the visibility test only); hidden_rgb: colour of hidden texels and of
    texels outside the layout; pad: texels of edge padding around the layout."""

    size: int = 256
    depth_tol: float = 0.04
    min_facing: float = 0.2
    zbuffer_px: int = 160
    hidden_rgb: tuple[int, int, int] = (128, 128, 128)
    pad: int = 3

    def __post_init__(self) -> None:
        check_int(self, "size", 16, 4096, unit="texels")
        check_number(self, "depth_tol", low=0, finite=False)
        check_number(self, "min_facing", -1, 1, high_open=True)
        if len(self.hidden_rgb) != 3 or not all(0 <= int(c) <= 255 for c in self.hidden_rgb):
            raise ValueError(f"TextureConfig.hidden_rgb must be three values in [0, 255], got {self.hidden_rgb!r}")
        check_int(self, "zbuffer_px", low=16)
        check_int(self, "pad", low=0)


@dataclass(frozen=True)
class UVLayout:
    """name: which layout (module docstring); uv (V, 2) float64 in [0, 1], OBJ convention (v up), one per vertex."""

    name: str
    uv: np.ndarray


@dataclass(frozen=True)
class FitTexture:
    """texture (T, T, 3) uint8 RGB, first row = top (v near 1); state (T, T) uint8: OUTSIDE (0), SEEN (1),
    MIRRORED (2) or HIDDEN (3) per texel; layout: the layout's name."""

    texture: np.ndarray
    state: np.ndarray
    layout: str

    def summary(self) -> dict:
        """JSON-ready: size, layout and the fraction of the layout's texels seen, mirrored and hidden."""
        inside = max(int((self.state != OUTSIDE).sum()), 1)
        frac = lambda s: round(int((self.state == s).sum()) / inside, 4)  # noqa: E731
        return {"size": int(self.texture.shape[0]), "layout": self.layout, "seen": frac(SEEN),
                "mirrored": frac(MIRRORED), "hidden": frac(HIDDEN)}


def _key(*arrays: np.ndarray) -> str:
    return hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


@lru_cache(maxsize=4)
def _reference_layout() -> tuple[str, np.ndarray, np.ndarray]:
    """(triangles key, triangles, uv) of the package reference face."""
    from facevision.face.reference import load_reference

    ref = load_reference()
    uv = ref.vertices[:, :2].copy()
    uv.setflags(write=False)
    return _key(ref.triangles.astype(np.int64)), ref.triangles, uv


@lru_cache(maxsize=4)
def _grid_key(n_grid: int) -> str:
    from facevision.face.grid import grid_triangles

    return _key(grid_triangles(n_grid).astype(np.int64))


def _grid_uv(vertices: np.ndarray, n_grid: int) -> np.ndarray:
    """(V, 2): grid point ``i * n + j`` at u = (i + 0.5) / n, v = 1 - (j + 0.5) / n; vertices past the grid at the
    (u, v) of their nearest grid point (3D distance in ``vertices``)."""
    k = n_grid * n_grid
    i, j = np.divmod(np.arange(k), n_grid)
    uv = np.column_stack([(i + 0.5) / n_grid, 1.0 - (j + 0.5) / n_grid])
    extra = np.asarray(vertices, np.float64)[k:]
    if len(extra):
        grid = np.asarray(vertices, np.float64)[:k]
        near = np.argmin(((extra[:, None, :] - grid[None, :, :]) ** 2).sum(-1), axis=1)
        uv = np.vstack([uv, uv[near]])
    return uv


def uv_layout(vertices: np.ndarray, triangles: np.ndarray) -> UVLayout:
    """The fixed layout of a fitted face model, told by its topology (module docstring).

    vertices: (V, 3) the fit's vertices (any frame; used only to place vertices no triangle uses);
    triangles: (F, 3) the face model's triangles. Raises ValueError for a topology with no known layout.
    """
    from facevision.face.grid import GRID

    tri = np.asarray(triangles, np.int64)
    v = np.asarray(vertices)
    ref_key, ref_tri, ref_uv = _reference_layout()
    if len(v) == len(ref_uv) and tri.shape == ref_tri.shape and _key(tri) == ref_key:
        return UVLayout(REFERENCE_LAYOUT, ref_uv)
    if len(v) >= GRID * GRID and tri.shape == (2 * (GRID - 1) ** 2, 3) and _key(tri) == _grid_key(GRID):
        return UVLayout(GRID_LAYOUT, _grid_uv(v, GRID))
    raise ValueError(f"no fixed UV layout for a face model of {len(v)} vertices and {len(tri)} triangles "
                     f"(known: the {len(ref_uv)}-vertex reference topology and the {GRID} x {GRID} 3DDFA grid)")


@dataclass(frozen=True)
class _Texels:
    """The texels inside a layout, once per layout and size: flat (N,) index of each (row * size + column);
    interp (N, V) sparse: its centre as barycentric weights of its triangle's vertices; mirror (N,) position in
    this list of its mirror texel (same row, column size - 1 - c; -1 when that one is outside the layout);
    pad_flat (M,) the padding texels and pad (M, N) sparse: their colours as means of the inside texels' (ring by
    ring)."""

    flat: np.ndarray
    interp: object
    mirror: np.ndarray
    pad_flat: np.ndarray
    pad: object


_LOOKUPS: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
_TEXELS: dict[tuple[str, int, int], _Texels] = {}


def _layout_key(layout: UVLayout, tri: np.ndarray) -> str:
    return _key(layout.uv[np.unique(tri)], tri)  # only the uvs the triangles use matter


def texel_lookup(layout: UVLayout, triangles: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size) int64 triangle per texel (-1 outside the layout) and (size, size, 3) float64 barycentric
    coordinates of the texel's centre in it; computed once per layout, triangles and size."""
    tri = np.asarray(triangles, np.int64)
    key = (_layout_key(layout, tri), int(size))
    if key not in _LOOKUPS:
        corners = layout.uv[tri]  # (F, 3, 2)
        pts = np.stack([corners[..., 0] * size - 0.5, (1.0 - corners[..., 1]) * size - 0.5,
                        np.zeros(tri.shape)], -1).reshape(-1, 3)
        attrs = np.column_stack([np.repeat(np.arange(len(tri)) + 1.0, 3), np.tile(np.eye(3), (len(tri), 1))])
        _, val, cover = rasterize(pts, np.arange(len(pts)).reshape(-1, 3), size, size, attrs)
        which = np.where(cover, np.round(val[..., 0]).astype(np.int64) - 1, -1)
        bary = np.clip(val[..., 1:].astype(np.float64), 0.0, None)
        bary /= np.maximum(bary.sum(-1, keepdims=True), 1e-12)
        which.setflags(write=False)
        bary.setflags(write=False)
        _LOOKUPS[key] = (which, bary)
    return _LOOKUPS[key]


def _pad_plan(inside: np.ndarray, rings: int):
    """(flat indices (M,), sparse (M, N)) of ``rings`` rings of texels around ``inside`` (size, size), each the
    mean of its 8-neighbours already known (inside, or an earlier ring), as weights of the N inside texels."""
    from scipy import sparse

    size = inside.shape[0]
    flat = np.flatnonzero(inside)
    rows = sparse.csr_matrix((np.ones(len(flat)), (flat, np.arange(len(flat)))), shape=(size * size, len(flat)))
    known = inside.copy()
    targets, parts = [], []
    offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    for _ in range(rings):
        grown = cv2.dilate(known.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~known
        new = np.flatnonzero(grown)
        if not len(new):
            break
        r, c = np.divmod(new, size)
        src_t, src_f = [], []
        for dr, dc in offsets:
            rr, cc = r + dr, c + dc
            ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
            ok[ok] = known[rr[ok], cc[ok]]
            src_t.append(np.flatnonzero(ok))
            src_f.append(rr[ok] * size + cc[ok])
        t, f = np.concatenate(src_t), np.concatenate(src_f)
        count = np.bincount(t, minlength=len(new))
        mean = sparse.csr_matrix((1.0 / count[t], (t, f)), shape=(len(new), size * size))
        ring = mean @ rows
        rows = _set_rows(rows, new, ring)
        targets.append(new)
        parts.append(ring)
        known[r, c] = True
    if not targets:
        return np.zeros(0, np.int64), sparse.csr_matrix((0, len(flat)))
    return np.concatenate(targets), sparse.vstack(parts).tocsr()


def _set_rows(rows, index: np.ndarray, values):
    """``rows`` (csr) with rows ``index`` (empty before) set to ``values``."""
    from scipy import sparse

    v = values.tocoo()
    add = sparse.csr_matrix((v.data, (index[v.row], v.col)), shape=rows.shape)
    return (rows + add).tocsr()


def _texels(layout: UVLayout, tri: np.ndarray, size: int, pad: int) -> _Texels:
    """:class:`_Texels` of ``layout``, once per layout, size and padding."""
    from scipy import sparse

    key = (_layout_key(layout, tri), int(size), int(pad))
    if key not in _TEXELS:
        which, bary = texel_lookup(layout, tri, size)
        inside = which >= 0
        flat = np.flatnonzero(inside)
        pos = np.full(size * size, -1, np.int64)
        pos[flat] = np.arange(len(flat))
        r, c = np.divmod(flat, size)
        pad_flat, pad_matrix = _pad_plan(inside, pad)
        corner = tri[which.reshape(-1)[flat]]  # (N, 3) vertex indices
        weights = bary.reshape(-1, 3)[flat].ravel()
        interp = sparse.csr_matrix((weights, (np.repeat(np.arange(len(flat)), 3), corner.ravel())),
                                   shape=(len(flat), int(tri.max()) + 1))
        _TEXELS[key] = _Texels(flat=flat, interp=interp, mirror=pos[r * size + (size - 1 - c)], pad_flat=pad_flat,
                               pad=pad_matrix)
    return _TEXELS[key]


def _seen(points: np.ndarray, normals: np.ndarray, vertices: np.ndarray, triangles: np.ndarray,
          shape: tuple[int, int], tol_px: float, min_facing: float, zbuffer_px: int) -> np.ndarray:
    """(N,) bool: image points (x = column, y = row, z towards the viewer) inside the image, facing the viewer
    (unit normal's z > min_facing) and at most ``tol_px`` behind the mesh's z-buffer at their pixel (a z-buffer
    of the image reduced to ``zbuffer_px`` on its longer side; the nearest z-buffer pixel is read, so the surface's
    slope times 0.75 of a z-buffer px is allowed on top)."""
    h, w = shape
    inside = ((points[:, 0] >= -0.5) & (points[:, 0] <= w - 0.5) & (points[:, 1] >= -0.5)
              & (points[:, 1] <= h - 0.5))
    k = min(1.0, zbuffer_px / float(max(h, w)))
    zh, zw = max(1, int(round(h * k))), max(1, int(round(w * k)))
    def reduce(p: np.ndarray) -> np.ndarray:
        return np.column_stack([(p[:, 0] + 0.5) * k - 0.5, (p[:, 1] + 0.5) * k - 0.5, p[:, 2] * k])

    zbuf, _, cover = rasterize(reduce(vertices), triangles, zh, zw)
    x, y, z = reduce(points).T
    c = np.clip(np.round(x), 0, zw - 1).astype(np.int64)
    r = np.clip(np.round(y), 0, zh - 1).astype(np.int64)
    nz = np.maximum(normals[:, 2], 1e-3)
    slope = np.sqrt(np.maximum(1.0 - nz ** 2, 0.0)) / nz  # depth change per px along the steepest direction
    front = ~cover[r, c] | (z >= zbuf[r, c] - tol_px * k - 0.75 * slope)  # the lookup is up to ~0.7 px off
    return inside & front & (normals[:, 2] > min_facing)


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N, 3) float32 bilinear colours of ``image`` at (N, 2) pixel positions (x = column, y = row)."""
    n = len(xy)
    width = 256  # OpenCV's remap takes maps under 32767 px a side: N samples as rows of 256
    maps = np.full((-(-n // width) * width, 2), -1.0, np.float32)
    maps[:n] = xy
    maps = maps.reshape(-1, width, 2)
    out = cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n].astype(np.float32)


def unwrap_texture(image: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, layout: UVLayout, scale: float,
                   config: TextureConfig = TextureConfig()) -> FitTexture:
    """Unwrap ``image``'s colours onto the fitted mesh in ``layout`` (see the module docstring).

    image: (H, W, 3) uint8 RGB the mesh lies on; vertices: (V, 3) the fitted mesh in that image's pixels
    (x = column, y = row, z = depth towards the viewer, image px; orthographic); triangles: (F, 3), counter-clockwise
    as the viewer sees a front-facing triangle; layout: :func:`uv_layout`; scale: image px per face-model unit
    (sets ``config.depth_tol``).
    """
    img = np.ascontiguousarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"unwrap_texture: image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    v = np.asarray(vertices, np.float64)
    tri = np.asarray(triangles, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or len(layout.uv) != len(v):
        raise ValueError(f"unwrap_texture: vertices must be (V, 3) with one uv each, got {v.shape} and "
                         f"{len(layout.uv)} uvs")
    size = int(config.size)
    tx = _texels(layout, tri, size, int(config.pad))
    used = tx.interp.shape[1]  # vertices up to the last one a triangle uses
    points = tx.interp @ v[:used]  # (N, 3) the texel centres on the fitted surface
    normals = vertex_normals(v * [1.0, -1.0, 1.0], tri)  # y up, so front faces point to +z
    n = tx.interp @ normals[:used]
    n /= np.maximum(np.sqrt((n * n).sum(1)), 1e-12)[:, None]
    seen = _seen(points, n, v, tri, img.shape[:2], config.depth_tol * float(scale), config.min_facing,
                 int(config.zbuffer_px))
    sampled = _sample(img, points[:, :2])
    mirrored = ~seen & (tx.mirror >= 0)
    mirrored[mirrored] = seen[tx.mirror[mirrored]]
    colour = np.empty((len(tx.flat), 3), np.float32)
    colour[:] = config.hidden_rgb
    colour[seen] = sampled[seen]
    colour[mirrored] = sampled[tx.mirror[mirrored]]
    state = np.full(size * size, OUTSIDE, np.uint8)
    state[tx.flat] = np.where(seen, SEEN, np.where(mirrored, MIRRORED, HIDDEN))
    texture = np.empty((size * size, 3), np.float32)
    texture[:] = config.hidden_rgb
    texture[tx.flat] = colour
    if len(tx.pad_flat):
        texture[tx.pad_flat] = tx.pad @ colour
    texture = np.clip(np.round(texture), 0, 255).astype(np.uint8).reshape(size, size, 3)
    return FitTexture(texture=texture, state=state.reshape(size, size), layout=layout.name)

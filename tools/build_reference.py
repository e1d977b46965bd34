"""Build the reference face asset ``facevision/face/assets/reference_face.npz``.

``python tools/build_reference.py [--root LFW] [--count 3000] [--workers 2]``

1. Face Mesh landmarks (468, photo px, y down, z larger = closer) on ``count`` train-split LFW photos
   that have exactly one detected face (photos taken in a fixed-seed order).
2. Convert to x right, y UP, z towards the camera; generalized Procrustes (similarity) alignment to the mean.
3. Left/right vertex pairs from the mean (:mod:`data_prep.mirror`, checked against MediaPipe's named
   eye/brow contours); rotate the mean so its symmetry plane is x = 0 (yaw and roll removed, mean pitch kept)
   and symmetrize: ``(mean + mirrored mean) / 2``.
4. Normalize per axis to [0, 1] (u symmetric about 0.5): ``uvw = (raw - offset) * scale``.
5. Triangulate: Delaunay of the frontal (u, v) layout, keeping triangles inside MediaPipe's face oval. This
   gives a fold-free triangulation that also covers the eyes and mouth (no holes in label masks).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from facevision.face.ibug68 import IBUG68_FROM_MEDIAPIPE
from data_prep.mirror import check_mirror_with_mediapipe, mirror_permutation
from facevision.common.geometry import similarity_fit
from facevision.face.reference import REFERENCE_PATH

DEFAULT_ROOT = "/work/shared/datasets/lfw/images_deepfunneled"


def _landmarks_of(path: str):
    from data_prep.drops import DropError
    from facevision.face.images import ImageReadError, read_photo
    from data_prep.label_mediapipe import detect_single_face, photo_landmarks

    try:
        img = read_photo(path)
        face = detect_single_face(img)
        return photo_landmarks(img, face)
    except (DropError, ImageReadError):
        return None


def collect_landmarks(root: str | Path, count: int, workers: int, seed: int = 0) -> np.ndarray:
    from data_prep.lfw import list_lfw
    from data_prep.split import split_identities

    entries = list_lfw(root, all_files=False)
    split = split_identities(Counter(e.identity for e in entries))
    train = [str(Path(root) / e.source) for e in entries if split[e.identity] == "train"]
    random.Random(seed).shuffle(train)
    paths = train[: int(count * 1.15) + 10]
    ctx = mp.get_context("spawn")
    out = []
    with ctx.Pool(workers) as pool:
        for lm in pool.imap(_landmarks_of, paths, chunksize=16):
            if lm is not None:
                out.append(lm)
            if len(out) >= count:
                break
    return np.stack(out)


def procrustes_mean(shapes: np.ndarray, iterations: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Generalized Procrustes: returns (aligned shapes, mean), mean centred with unit RMS radius."""
    def norm(x):
        x = x - x.mean(0)
        return x / np.sqrt((x ** 2).sum(1).mean())

    mean = norm(shapes[0])
    aligned = shapes
    for _ in range(iterations):
        aligned = []
        for s in shapes:
            sc, r, t = similarity_fit(s, mean)
            aligned.append(sc * s @ r.T + t)
        aligned = np.stack(aligned)
        new = aligned.mean(0)
        sc, r, t = similarity_fit(new, mean)
        mean = norm(sc * new @ r.T + t)
    return aligned, mean


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def symmetrize(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (symmetric shape with symmetry plane x = 0, mirror permutation)."""
    perm = mirror_permutation(mean)
    check_mirror_with_mediapipe(perm)
    c = mean - mean.mean(0)
    # symmetry plane normal: direction of (p_i - p_mirror(i)) summed over pairs
    d = c - c[perm]
    sign = np.sign(d[:, 0])[:, None]
    normal = (d * sign).sum(0)
    r = _rotation_between(normal, np.array([1.0, 0.0, 0.0]))
    c = c @ r.T
    refl = c[perm] * np.array([-1.0, 1.0, 1.0])
    sym = 0.5 * (c + refl)
    sym[:, 0] -= 0.5 * (sym[:, 0].max() + sym[:, 0].min())
    return sym, perm


def face_oval_polygon() -> list[int]:
    """MediaPipe's face oval as an ordered closed loop of vertex indices."""
    import mediapipe as mp_

    edges = list(mp_.solutions.face_mesh.FACEMESH_FACE_OVAL)
    nbrs: dict[int, list[int]] = {}
    for a, b in edges:
        nbrs.setdefault(a, []).append(b)
        nbrs.setdefault(b, []).append(a)
    start = edges[0][0]
    loop, prev, cur = [start], None, start
    while True:
        nxt = [n for n in nbrs[cur] if n != prev][0]
        if nxt == start:
            break
        loop.append(nxt)
        prev, cur = cur, nxt
    return loop


def triangulate(uv: np.ndarray) -> np.ndarray:
    """Delaunay of (u, v) keeping triangles whose centroid lies inside the face oval; CCW in (u, v)."""
    import cv2
    from scipy.spatial import Delaunay

    tri = Delaunay(uv).simplices.astype(np.int64)
    oval = uv[face_oval_polygon()].astype(np.float32).reshape(-1, 1, 2)
    cent = uv[tri].mean(1)
    keep = np.array([cv2.pointPolygonTest(oval, (float(x), float(y)), False) >= 0 for x, y in cent])
    tri = tri[keep]
    p = uv[tri]
    area = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1])
    tri[area < 0] = tri[area < 0][:, ::-1]
    return tri


def build(shapes_px: np.ndarray) -> dict[str, np.ndarray]:
    shapes = shapes_px * np.array([1.0, -1.0, 1.0])  # y up
    _, mean = procrustes_mean(shapes)
    sym, perm = symmetrize(mean)
    half = np.abs(sym[:, 0]).max()
    lo = np.array([-half, sym[:, 1].min(), sym[:, 2].min()])
    hi = np.array([half, sym[:, 1].max(), sym[:, 2].max()])
    scale = 1.0 / (hi - lo)
    uvw = np.clip((sym - lo) * scale, 0.0, 1.0)
    tri = triangulate(uvw[:, :2])
    return {
        "vertices": uvw.astype(np.float64),
        "triangles": tri.astype(np.int32),
        "ibug68": IBUG68_FROM_MEDIAPIPE.astype(np.int32),
        "mirror": perm.astype(np.int32),
        "raw_vertices": sym.astype(np.float64),
        "norm_offset": lo,
        "norm_scale": scale,
        "norm_description": np.array(
            "uvw = (raw - norm_offset) * norm_scale; raw = similarity-aligned mean Face Mesh "
            "(x right, y up, z towards camera), centred, unit RMS radius, symmetry plane x = 0"),
        "num_shapes": np.array(len(shapes_px)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--root", default=DEFAULT_ROOT)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-o", "--output", default=str(REFERENCE_PATH))
    args = ap.parse_args(argv)
    t0 = time.time()
    shapes = collect_landmarks(args.root, args.count, args.workers)
    print(f"collected {len(shapes)} landmark sets in {time.time() - t0:.0f} s", file=sys.stderr)
    data = build(shapes)
    from facevision.common.fileio import atomic_write

    atomic_write(args.output, lambda p: np.savez_compressed(p, **data))
    print(f"wrote {args.output}: {len(data['vertices'])} vertices, {len(data['triangles'])} triangles", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Is Face Mesh's depth to scale? ``python tools/depth_scale_sfm.py DATASET [--min-photos 10] [--synthetic K]``.

Orthographic structure from motion (Tomasi-Kanade factorization with the weak-perspective metric upgrade)
on the 2D Face Mesh vertices that ``facevision prepare lfw`` keeps (``samples/<id>/face_mesh.npy``):
for each person with enough photos, the rigid upper face (vertices above the nose tip + 10 % of the
face height: eyes, brows, nose, upper cheeks, forehead) seen from that person's photos gives a 3D shape
from 2D evidence alone. It is aligned (similarity, both depth signs) to the mean of Face Mesh's own 3D
vertices with a free depth factor ``k``: ``k > 1`` means the photos say the face is deeper than Face Mesh's
z. Only photos' yaw variety fixes the depth, so people are reported by their yaw spread (std of the nose
tip's offset from the face's centre / face width).

``--synthetic K`` replaces each person's photos by orthographic views of their mean Face Mesh shape with z
scaled by K (yaw sd 12 deg, pitch sd 8 deg, 0.5 px noise): the printed ``k`` should be K (the method's check).
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from facevision.common.geometry import similarity_fit

NOSE_TIP = 4  # Face Mesh vertex of the nose tip


def metric_factorization(w: np.ndarray) -> np.ndarray | None:
    """(2F, P) centred 2D tracks (rows x_f, y_f per frame) -> (P, 3) shape up to rotation and depth sign
    (weak perspective: each frame's two camera rows orthogonal and of equal length); None if the metric
    upgrade is not positive definite (too little rotation among the frames)."""
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    m = u[:, :3] * np.sqrt(s[:3])
    shape = np.sqrt(s[:3])[:, None] * vt[:3]

    def sym(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # a L b^T as a linear form in L's 6 entries
        return np.array([a[0] * b[0], a[0] * b[1] + a[1] * b[0], a[0] * b[2] + a[2] * b[0], a[1] * b[1],
                         a[1] * b[2] + a[2] * b[1], a[2] * b[2]])

    rows = []
    for f in range(w.shape[0] // 2):
        m1, m2 = m[2 * f], m[2 * f + 1]
        rows += [sym(m1, m1) - sym(m2, m2), sym(m1, m2)]
    l6 = np.linalg.svd(np.array(rows))[2][-1]
    gram = np.array([[l6[0], l6[1], l6[2]], [l6[1], l6[3], l6[4]], [l6[2], l6[4], l6[5]]])
    ev, vec = np.linalg.eigh(gram)
    if (ev < 0).sum() >= 2:
        ev = -ev  # the null vector's sign is arbitrary
    if (ev <= 0).any():
        return None
    return np.linalg.solve(vec * np.sqrt(ev), shape).T


def depth_factor(shape: np.ndarray, ref: np.ndarray, rounds: int = 50) -> tuple[float, float]:
    """(P, 3) SfM shape, (P, 3) reference (x, y, z) -> (k, relative residual) of ``similarity(shape) ~
    ref with z scaled by k``, the better of the two depth signs (orthographic views cannot tell them apart)."""
    rc = ref - ref.mean(0)
    best = (float("nan"), float("inf"))
    for sign in (1.0, -1.0):
        src, k = shape * [1.0, 1.0, sign], 1.0
        for _ in range(rounds):
            s, rot, t = similarity_fit(src, rc * [1.0, 1.0, k])
            z = s * src @ rot.T + t
            k = float(z[:, 2] @ rc[:, 2] / (rc[:, 2] @ rc[:, 2]))
        err = float(np.linalg.norm(z - rc * [1.0, 1.0, k]) / np.linalg.norm(rc))
        if err < best[1]:
            best = (abs(k), err)
    return best


def synthetic_views(mean: np.ndarray, k: float, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(F, P, 2) orthographic views of ``mean`` with z scaled by k about its centre: yaw sd 12, pitch sd 8 deg,
    0.5 px noise."""
    x = (mean - mean.mean(0)) * [1.0, 1.0, k]
    out = []
    for _ in range(frames):
        y, p = np.radians(rng.normal(0.0, 12.0)), np.radians(rng.normal(0.0, 8.0))
        ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
        rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
        out.append((x @ (ry @ rx).T)[:, :2] + rng.normal(0.0, 0.5, (len(x), 2)))
    return np.stack(out)


def measure(dataset: Path, min_photos: int, synthetic: float | None, seed: int = 0) -> dict:
    records = [json.loads(line) for line in (dataset / "records.jsonl").read_text().splitlines() if line.strip()]
    by_person: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r.get("status") == "kept":
            by_person[r["identity"]].append(r["id"])
    rng = np.random.default_rng(seed)
    rows = []
    for person, ids in sorted(by_person.items()):
        if len(ids) < min_photos:
            continue
        meshes = np.stack([np.load(dataset / "samples" / i / "face_mesh.npy") for i in ids])  # (F, 468, 3)
        mean = meshes.mean(0)
        rigid = np.nonzero(mean[:, 1] < mean[NOSE_TIP, 1] + 0.1 * np.ptp(mean[:, 1]))[0]
        views = synthetic_views(mean[rigid], synthetic, len(ids), rng) if synthetic else meshes[:, rigid, :2]
        w = np.concatenate([(v - v.mean(0)).T for v in views])
        shape = metric_factorization(w)
        if shape is None:
            continue
        k, err = depth_factor(shape, mean[rigid])
        spread = float(np.std([(m[NOSE_TIP, 0] - m[rigid, 0].mean()) / np.ptp(m[rigid, 0]) for m in meshes]))
        rows.append((person, len(ids), spread, k, err))
    spread = np.array([r[2] for r in rows])
    ks = np.array([r[3] for r in rows])
    out = {"people": len(rows), "k_median": float(np.median(ks))}
    for lo in (0.05, 0.07):
        sel = spread >= lo
        if sel.any():
            out[f"k_median_spread_ge_{lo}"] = float(np.median(ks[sel]))
            out[f"people_spread_ge_{lo}"] = int(sel.sum())
    out["most_turned"] = [{"person": p, "photos": n, "spread": round(s, 3), "k": round(k, 3), "residual": round(e, 3)}
                          for p, n, s, k, e in sorted(rows, key=lambda r: -r[2])[:10]]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path, help="a dataset written by `facevision prepare lfw` (keeps face_mesh.npy)")
    ap.add_argument("--min-photos", type=int, default=10, help="people with at least this many kept photos")
    ap.add_argument("--synthetic", type=float, metavar="K", help="check the method on views of depth-scaled means")
    args = ap.parse_args()
    print(json.dumps(measure(args.dataset, args.min_photos, args.synthetic), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How stable identity codes are: single-photo fits against one identity shared over several photos.

For LFW people with at least ``2 * k`` photos (test/val split people first), two disjoint halves of ``k`` photos:
the figure is mean same-person code distance / mean different-person distance (lower = more stable; 1 = the
codes say nothing), for single-photo codes (the first photo of each half) and for each half's joint fit
(:func:`facevision.fit.model_fit.fit_shared_identity`).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["within_between_ratio", "run_identity_stability"]


def within_between_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """(P, K) codes of P people from two disjoint photo sets -> mean ||a_i - b_i|| / mean ||a_i - b_j|| (i != j)."""
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    within = float(np.mean(np.diag(d)))
    between = float(d[~np.eye(len(a), dtype=bool)].mean())
    return within / max(between, 1e-12)


def run_identity_stability(root: str | Path, maps_of: Callable[[np.ndarray], tuple | None], people: int = 20,
                           k: int = 5, progress: bool = False) -> dict:
    """maps_of(photo_rgb) -> (depth_px, corr, mask, id_coeffs of its own fit) or None when no face."""
    from facevision.face.face_model import load_face_model
    from facevision.face.images import read_photo
    from data_prep.lfw import list_lfw
    from data_prep.split import split_identities
    from facevision.fit.model_fit import fit_shared_identity

    root = Path(root)
    entries = list_lfw(root)
    counts = Counter(e.identity for e in entries)
    split = split_identities(counts)
    order = sorted((p for p, n in counts.items() if n >= 2 * k), key=lambda p: (split[p] == "train", p))[:people]
    if len(order) < 2:
        raise ValueError(f"{root}: fewer than 2 people with {2 * k} photos")
    by_person: dict[str, list] = {p: [] for p in order}
    for e in entries:
        if e.identity in by_person and len(by_person[e.identity]) < 2 * k:
            by_person[e.identity].append(e)
    model = load_face_model()
    it = order
    if progress:
        from tqdm import tqdm

        it = tqdm(order, desc="identity stability", unit="person")
    singles_a, singles_b, shared_a, shared_b, used = [], [], [], [], []
    for person in it:
        got = [r for r in (maps_of(read_photo(root / e.source)) for e in by_person[person]) if r is not None]
        if len(got) < 2 * k:
            continue
        halves = got[:k], got[k:2 * k]
        singles_a.append(halves[0][0][3])
        singles_b.append(halves[1][0][3])
        shared_a.append(fit_shared_identity([r[:3] for r in halves[0]], model)[0])
        shared_b.append(fit_shared_identity([r[:3] for r in halves[1]], model)[0])
        used.append(person)
    if len(used) < 2:
        raise ValueError(f"{root}: fewer than 2 people gave {2 * k} usable faces")
    single = within_between_ratio(np.array(singles_a), np.array(singles_b))
    shared = within_between_ratio(np.array(shared_a), np.array(shared_b))
    return {"people": len(used), "photos_per_half": k, "ratio_single_photo": round(single, 4),
            "ratio_shared": round(shared, 4), "people_in_train_split": sum(split[p] == "train" for p in used)}

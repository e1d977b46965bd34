"""LFW face verification from identity codes (the face-model fit's identity coefficients).

Protocol (LFW's ``pairs.txt``): 10 folds of 300 same-person and 300 different-person pairs; a pair's score is the
cosine similarity of its codes; each fold is scored at the threshold that maximizes accuracy on the other nine;
``accuracy`` is the mean over folds. ``accuracy_unseen`` uses only pairs whose people are outside the train split
``prepare`` makes (:func:`data_prep.split.split_identities`), thresholds chosen within those pairs.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["Pair", "read_pairs", "photo_path", "cosine", "fold_accuracy", "verification_accuracy",
           "train_identities", "subset_pairs", "run_lfw_pairs"]


@dataclass(frozen=True)
class Pair:
    """Two LFW photos (person, 1-based image number each), same person or not, and the fold (0-9)."""

    a: tuple[str, int]
    b: tuple[str, int]
    same: bool
    fold: int


def read_pairs(path: str | Path) -> list[Pair]:
    """Parse LFW's ``pairs.txt`` (first line: folds, pairs per kind); ValueError naming the file if malformed."""
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        folds, per = int(lines[0][0]), int(lines[0][1])
    except (OSError, ValueError, IndexError) as exc:
        raise ValueError(f"{path}: not an LFW pairs file ({exc})") from None
    pairs, i = [], 1
    for fold in range(folds):
        for same in (True, False):
            for _ in range(per):
                if i >= len(lines):
                    raise ValueError(f"{path}: ends early (fold {fold + 1})")
                f = lines[i]
                i += 1
                if same and len(f) == 3:
                    pairs.append(Pair((f[0], int(f[1])), (f[0], int(f[2])), True, fold))
                elif not same and len(f) == 4:
                    pairs.append(Pair((f[0], int(f[1])), (f[2], int(f[3])), False, fold))
                else:
                    raise ValueError(f"{path}: line {i} does not fit the format: {' '.join(f)}")
    return pairs


def photo_path(root: Path, person: str, number: int) -> Path:
    return root / person / f"{person}_{number:04d}.jpg"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def _best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    cands = np.unique(scores)
    cands = np.concatenate([cands - 1e-9, [cands[-1] + 1e-9]]) if len(cands) else np.array([0.0])
    acc = [(((scores >= c) == same).mean(), c) for c in cands]
    return max(acc)[1]


def fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> list[float]:
    """Per fold: accuracy at the threshold chosen on the other folds (folds with no pairs are skipped)."""
    out = []
    for f in np.unique(folds):
        test = folds == f
        if test.all():  # a single fold: nothing to choose the threshold on
            thr = _best_threshold(scores, same)
        else:
            thr = _best_threshold(scores[~test], same[~test])
        out.append(float(((scores[test] >= thr) == same[test]).mean()))
    return out


def verification_accuracy(pairs: Sequence[Pair], codes: dict[tuple[str, int], np.ndarray]) -> dict:
    """Accuracy (mean and std over folds, in %) over the pairs whose two photos both have a code."""
    used = [p for p in pairs if p.a in codes and p.b in codes]
    if not used:
        return {"accuracy": float("nan"), "accuracy_std": float("nan"), "pairs": 0}
    scores = np.array([cosine(codes[p.a], codes[p.b]) for p in used])
    same = np.array([p.same for p in used])
    folds = np.array([p.fold for p in used])
    acc = fold_accuracy(scores, same, folds)
    return {"accuracy": round(100 * float(np.mean(acc)), 2), "accuracy_std": round(100 * float(np.std(acc)), 2),
            "pairs": len(used)}


def train_identities(root: Path) -> set[str]:
    """People in the train split that ``facevision prepare lfw`` makes of this LFW tree."""
    from data_prep.lfw import list_lfw
    from data_prep.split import split_identities

    entries = list_lfw(root)
    split = split_identities(Counter(e.identity for e in entries))
    return {k for k, v in split.items() if v == "train"}


def subset_pairs(pairs: Sequence[Pair], max_pairs: int | None) -> list[Pair]:
    """The first ``max_pairs // 10`` pairs of each fold, same and different alternating (all when None)."""
    if max_pairs is None:
        return list(pairs)
    per_fold = max(1, max_pairs // 10)
    keep: list[Pair] = []
    for f in range(10):
        fp = [p for p in pairs if p.fold == f]
        keep += [p for p in fp if p.same][: (per_fold + 1) // 2] + [p for p in fp if not p.same][: per_fold // 2]
    return keep


def run_lfw_pairs(root: str | Path, code_of: Callable[[np.ndarray], np.ndarray | None], pairs_file: str | Path | None = None,
                  max_pairs: int | None = None, progress: bool = False) -> dict:
    """Identity codes for every photo the pairs need (``code_of(photo_rgb)``, None = no face), then the
    accuracy over all pairs and over pairs of people unseen in training.

    root: ``.../lfw/images_deepfunneled`` (pairs.txt is looked for in it and its parent). max_pairs:
    the first N pairs of each fold, same and different alternating, for a quicker run.
    """
    from facevision.face.images import ImageReadError, read_photo

    root = Path(root)
    if pairs_file is None:
        cands = [root / "pairs.txt", root.parent / "pairs.txt"]
        pairs_file = next((c for c in cands if c.is_file()), None)
        if pairs_file is None:
            raise FileNotFoundError(f"{root}: no pairs.txt here or in its parent (pass --pairs)")
    pairs = read_pairs(pairs_file)
    pairs = subset_pairs(pairs, max_pairs)
    photos = sorted({p.a for p in pairs} | {p.b for p in pairs})
    it: Iterable = photos
    if progress:
        from tqdm import tqdm

        it = tqdm(photos, desc="LFW pairs", unit="photo")
    codes, failed = {}, 0
    for key in it:
        try:
            code = code_of(read_photo(photo_path(root, *key)))
        except ImageReadError:
            code = None
        if code is None:
            failed += 1
        else:
            codes[key] = np.asarray(code, np.float64)
    trained = train_identities(root)
    unseen = [p for p in pairs if p.a[0] not in trained and p.b[0] not in trained]
    out = {"pairs_file": str(pairs_file), "pairs": len(pairs), "photos": len(photos), "photos_without_code": failed}
    out.update(verification_accuracy(pairs, codes))
    u = verification_accuracy(unseen, codes)
    out.update({"accuracy_unseen": u["accuracy"], "accuracy_unseen_std": u["accuracy_std"], "pairs_unseen": u["pairs"]})
    return out

"""LFW verification protocol on generated pair lists and codes with known answers; fit-identity on real photos."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facevision.face.images import atomic_write_png
from facevision.benchmark.lfw_pairs import (Pair, fold_accuracy, read_pairs, run_lfw_pairs, subset_pairs,
                                           verification_accuracy)


def _pairs_file(path: Path, folds: int = 10, per: int = 3) -> list[Pair]:
    lines, pairs = [f"{folds}\t{per}"], []
    for f in range(folds):
        for i in range(per):
            p = f"P{f}_{i}"
            lines.append(f"{p}\t1\t2")
            pairs.append(Pair((p, 1), (p, 2), True, f))
        for i in range(per):
            a, b = f"P{f}_{i}", f"Q{f}_{i}"
            lines.append(f"{a}\t1\t{b}\t1")
            pairs.append(Pair((a, 1), (b, 1), False, f))
    path.write_text("\n".join(lines) + "\n")
    return pairs


def test_read_pairs_and_bad_file(tmp_path):
    truth = _pairs_file(tmp_path / "pairs.txt")
    assert read_pairs(tmp_path / "pairs.txt") == truth
    (tmp_path / "bad.txt").write_text("10\t300\nA\t1\n")
    with pytest.raises(ValueError, match="bad.txt"):
        read_pairs(tmp_path / "bad.txt")


def test_subset_pairs_takes_the_first_of_each_kind_per_fold(tmp_path):
    pairs = _pairs_file(tmp_path / "pairs.txt", per=3)
    assert subset_pairs(pairs, None) == pairs
    sub = subset_pairs(pairs, 30)  # 3 per fold: 2 same, 1 different
    assert len(sub) == 30
    for f in range(10):
        fold = [p for p in sub if p.fold == f]
        assert [p.same for p in fold] == [True, True, False]
        assert fold[0] == pairs[6 * f] and fold[2] == pairs[6 * f + 3]


def test_fold_accuracy_picks_the_threshold_on_other_folds():
    # same pairs score 0.9, different 0.1, except fold 0 where one different pair scores 0.95
    scores = np.array([0.9, 0.1] * 10)
    same = np.array([True, False] * 10)
    folds = np.repeat(np.arange(10), 2)
    scores[1] = 0.95
    acc = fold_accuracy(scores, same, folds)
    assert acc[0] == 0.5 and all(a == 1.0 for a in acc[1:])


def test_verification_accuracy_from_codes():
    rng = np.random.default_rng(0)
    pairs = [Pair((f"A{i}", 1), (f"A{i}", 2), True, i % 10) for i in range(40)] + \
            [Pair((f"A{i}", 1), (f"B{i}", 1), False, i % 10) for i in range(40)]
    codes = {}
    for i in range(40):
        base = rng.normal(size=5)
        codes[(f"A{i}", 1)], codes[(f"A{i}", 2)] = base, base + 0.01 * rng.normal(size=5)
        codes[(f"B{i}", 1)] = rng.normal(size=5)
    assert verification_accuracy(pairs, codes)["accuracy"] > 95.0
    noise = {k: rng.normal(size=5) for k in codes}
    assert verification_accuracy(pairs, noise)["accuracy"] < 75.0


def test_run_on_a_generated_tree(tmp_path):
    pairs = _pairs_file(tmp_path / "pairs.txt", folds=10, per=2)
    root = tmp_path / "lfw"
    rng = np.random.default_rng(1)
    people = {}
    for p in pairs:
        for name, num in (p.a, p.b):
            d = root / name
            d.mkdir(parents=True, exist_ok=True)
            level = people.setdefault(name, int(rng.integers(0, 255)))
            atomic_write_png(d / f"{name}_{num:04d}.jpg", np.full((8, 8, 3), level, np.uint8))
    # the "code" of a photo is its grey level on a circle: same person -> same code
    code = lambda img: np.array([np.cos(img[0, 0, 0] / 40.0), np.sin(img[0, 0, 0] / 40.0)])  # noqa: E731
    out = run_lfw_pairs(root, code, tmp_path / "pairs.txt")
    assert out["pairs"] == 40 and out["photos_without_code"] == 0
    assert out["accuracy"] > 80.0
    assert 0 <= out["pairs_unseen"] <= out["pairs"]


@pytest.mark.lfw
def test_fit_identity_on_real_photos(lfw_root, tmp_path):
    from facevision.cli import main

    person = lfw_root / "Colin_Powell"
    photos = sorted(person.glob("*.jpg"))[:3]
    if len(photos) < 3:
        pytest.skip(f"{person}: needs 3 photos")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    rc = main(["fit-identity", *map(str, photos), str(bad), "-o", str(tmp_path / "out")])
    assert rc == 1  # one photo failed, the others were fitted
    data = json.loads((tmp_path / "out" / "identity.json").read_text())
    assert len(data["photos"]) == 3 and data["failed"] == 1
    assert len(data["id_coeffs"]) >= 1 and all(np.isfinite(data["id_coeffs"]))
    assert (tmp_path / "out" / "identity_mesh.obj").stat().st_size > 10000


def test_within_between_ratio():
    from facevision.benchmark.identity_stability import within_between_ratio

    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 4))
    assert within_between_ratio(a, a + 0.01 * rng.normal(size=a.shape)) < 0.05
    assert 0.8 < within_between_ratio(a, rng.normal(size=a.shape)) < 1.2

"""Identity-disjoint, deterministic split."""
from __future__ import annotations

from data_prep.split import SplitConfig, split_identities


def _counts(n=2000):
    return {f"person_{i:04d}": (1 + (i * 7919) % 13 if i % 50 else 300) for i in range(n)}


def test_split_is_deterministic_and_fractions_hold():
    counts = _counts()
    a, b = split_identities(counts), split_identities(dict(reversed(list(counts.items()))))
    assert a == b
    total = sum(counts.values())
    per = {s: sum(n for k, n in counts.items() if a[k] == s) for s in ("train", "val", "test")}
    cfg = SplitConfig()
    assert abs(per["test"] / total - cfg.test_frac) < 0.01
    assert abs(per["val"] / total - cfg.val_frac) < 0.01
    assert per["train"] + per["val"] + per["test"] == total


def test_large_identities_stay_in_train_and_seed_matters():
    counts = _counts()
    a = split_identities(counts)
    assert all(a[k] == "train" for k, n in counts.items() if n > SplitConfig().max_eval_photos)
    assert a != split_identities(counts, SplitConfig(seed=1))

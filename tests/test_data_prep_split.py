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


def test_large_sets_keep_todays_assignment():
    """The small-set rule never touches a set whose fractions already fill test and val (pinned digest)."""
    import hashlib
    import json

    a = split_identities(_counts())
    assert hashlib.sha256(json.dumps(sorted(a.items())).encode()).hexdigest()[:16] == "e8d6d840db6c041c"


def test_small_set_gives_val_and_test_one_identity_each():
    """4 people x 5 photos: the fractions give test and val nothing; each now gets one identity, train the rest."""
    counts = {f"person_{i}": 5 for i in range(4)}
    a = split_identities(counts)
    assert sorted(a.values()) == ["test", "train", "train", "val"]
    assert a == split_identities(dict(reversed(list(counts.items()))))  # still deterministic
    # the identity with the fewest photos goes first; those over max_eval_photos only when nothing else is left
    uneven = {"big_a": 40, "big_b": 30, "small": 3, "mid": 7}
    b = split_identities(uneven)
    assert b["small"] in ("test", "val") and b["mid"] in ("test", "val") and b["small"] != b["mid"]
    assert b["big_a"] == b["big_b"] == "train"
    only_big = split_identities({"a": 50, "b": 40, "c": 30})
    assert sorted(only_big.values()) == ["test", "train", "val"]


def test_two_identities_stay_in_train_and_a_filled_split_is_kept():
    assert set(split_identities({"a": 5, "b": 5}).values()) == {"train"}  # below min_identities_for_eval
    # test filled by the fractions (one 1-photo identity), val empty: val takes one more, test keeps its own
    counts = {"solo": 1, **{f"p{i}": 6 for i in range(3)}}
    a = split_identities(counts, SplitConfig(test_frac=0.06, val_frac=0.0))
    assert a["solo"] == "test" and sorted(a.values()) == ["test", "train", "train", "val"]


def test_split_config_refuses_bad_values() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"SplitConfig\.val_frac must be a fraction in \[0, 1\], got -0\.1"):
        SplitConfig(val_frac=-0.1)
    with pytest.raises(ValueError, match=r"SplitConfig\.test_frac \+ val_frac must be at most 1"):
        SplitConfig(test_frac=0.6, val_frac=0.5)

"""Identity-disjoint train/val/test split of an LFW-style tree, with a fixed seed.

Identities are shuffled with ``SplitConfig.seed`` and walked in that order: an identity goes to
``test`` while test holds fewer than ``test_frac`` of all photos, then to ``val`` up to ``val_frac``,
the rest to ``train``. Identities with more than ``max_eval_photos`` photos always go to train so
that no single person (LFW has one with 530 photos) dominates an evaluation split. The split
depends only on the list of (identity, photo count) pairs, never on which photos survive labelling.

Small sets: with at least ``min_identities_for_eval`` identities, test and val each get at least one
identity even when the fractions give them none (4 people x 5 photos would otherwise all go to train and
leave nothing to validate on): an empty evaluation split (test first, then val) takes the train identity with
the fewest photos (the earliest in the shuffled order among equals), preferring those within
``max_eval_photos``. Sets whose fractions already fill both splits are not changed by this rule.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping

from facevision.common.checks import check_fraction, check_int

__all__ = ["SplitConfig", "split_identities"]


@dataclass(frozen=True)
class SplitConfig:
    """How identities are split; checked when built (ValueError naming the field).

    seed: shuffles the identities. test_frac, val_frac: shares of all photos for test and val (test follows
    the paper's split, 543 of 12,337 photos, ~4.4 %). max_eval_photos: identities with more photos always go to
    train. min_identities_for_eval: from this many identities on, test and val never stay empty.
    """

    seed: int = 20240607
    test_frac: float = 0.045
    val_frac: float = 0.04
    max_eval_photos: int = 20
    min_identities_for_eval: int = 3

    def __post_init__(self) -> None:
        for name in ("test_frac", "val_frac"):
            check_fraction(self, name)
        if self.test_frac + self.val_frac > 1.0:
            raise ValueError(f"SplitConfig.test_frac + val_frac must be at most 1, got {self.test_frac!r} + "
                             f"{self.val_frac!r}")
        for name in ("max_eval_photos", "min_identities_for_eval"):
            check_int(self, name, low=0)


def split_identities(photo_counts: Mapping[str, int], config: SplitConfig = SplitConfig()) -> dict[str, str]:
    """{identity: number of photos} -> {identity: "train" | "val" | "test"} (deterministic)."""
    names = sorted(photo_counts)
    random.Random(config.seed).shuffle(names)
    total = sum(photo_counts.values())
    targets = {"test": config.test_frac * total, "val": config.val_frac * total}
    filled = {"test": 0, "val": 0}
    out: dict[str, str] = {}
    for name in names:
        n = photo_counts[name]
        split = "train"
        if n <= config.max_eval_photos:
            for s in ("test", "val"):
                if filled[s] + n <= targets[s]:
                    split = s
                    filled[s] += n
                    break
        out[name] = split
    if len(names) >= config.min_identities_for_eval:
        for s in ("test", "val"):
            train = [k for k in names if out[k] == "train"]  # in shuffled order: min() keeps the earliest
            if s not in out.values() and len(train) > 1:
                out[min(train, key=lambda k: (photo_counts[k] > config.max_eval_photos, photo_counts[k]))] = s
    return out

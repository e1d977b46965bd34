"""PyTorch dataset over the on-disk facevision format (see data_prep.dataset_format)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data_prep.dataset_format import DatasetFormatError, read_manifest, read_sample, sample_complete
from facevision.data.augment import AugmentConfig, augment_sample


class FaceMapsDataset(Dataset):
    """Samples of one split as tensors.

    Each item is a dict: ``image`` (3,S,S) RGB in [0,1]; ``depth`` (1,S,S) = depth in crop px / S
    (larger = closer, 0 background); ``corr`` (3,S,S) in [0,1]; ``mask`` (1,S,S) in {0,1}; ``index``.
    """

    def __init__(self, root: str | Path, split: str, augment: AugmentConfig | None = None, seed: int = 0) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.size = int(self.manifest.get("size", 128))
        self.items: list[dict[str, Any]] = [s for s in self.manifest["samples"] if s["split"] == split]
        if not self.items:
            raise DatasetFormatError(f"{self.root / 'manifest.json'}: no samples in split {split!r}")
        missing = [s["id"] for s in self.items[:50] if not sample_complete(self.root, s["id"])]
        if missing:
            raise DatasetFormatError(f"{self.root}: sample files missing for {missing[:3]} (incomplete dataset?)")
        self.split = split
        self.augment = augment
        self.seed = seed
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = read_sample(self.root, self.items[index]["id"])
        if s.image.shape[:2] != (self.size, self.size):
            raise DatasetFormatError(
                f"{self.root}/samples/{self.items[index]['id']}: size {s.image.shape[:2]} != manifest size {self.size}")
        image, depth, corr, mask = s.image, s.depth, s.corr, s.mask
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self._epoch, index))
            image, depth, corr, mask = augment_sample(image, depth, corr, mask, self.augment, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0,
            "depth": torch.from_numpy(depth / self.size).float()[None],
            "corr": torch.from_numpy(np.ascontiguousarray(corr)).permute(2, 0, 1).float(),
            "mask": torch.from_numpy(mask.astype(np.float32))[None],
            "index": torch.tensor(index),
        }

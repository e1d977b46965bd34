"""PyTorch dataset over the on-disk facevision format (see data_prep.dataset_format).

The constructor checks every sample of the split up front, cheaply (each PNG exists, has the PNG
signature, the manifest's size in its header and its end chunk), so a missing or truncated file is
reported before training starts. A sample that still fails to read is one :class:`SampleError`
line naming the file, also when it happens in a data-loader worker process.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data_prep.dataset_format import SAMPLE_FILES, DatasetFormatError, read_manifest, read_sample, sample_dir
from facevision.common.fileio import png_complete
from facevision.data.augment import AugmentConfig, augment_sample
from facevision.model.outputs import depth_from_network, depth_to_network
from facevision.face.sizes import CROP_SIZE


class SampleError(DatasetFormatError):
    """A sample could not be read; the message names the file and the reason.

    PyTorch re-raises a data-loader worker's exception as ``type(exc)(message)`` with the worker's
    whole traceback in the message; this class keeps only the original one-line message.
    """

    def __init__(self, message: str = "") -> None:
        if message.startswith("Caught ") and "Traceback" in message:
            last = [line for line in message.strip().splitlines() if line.strip()][-1]
            tag = f"{type(self).__name__}: "
            message = last[last.index(tag) + len(tag):] if tag in last else last
        super().__init__(message)


def png_header_problem(path: Path, size: int) -> str | None:
    """None when ``path`` is a complete-looking PNG of ``size`` x ``size`` (header and end chunk), else why not."""
    if not path.is_file():
        return "sample files missing (incomplete dataset?)"
    problem = png_complete(path)
    if problem:
        return problem
    with open(path, "rb") as fh:
        fh.seek(16)
        w, h = struct.unpack(">II", fh.read(8))
    return None if (w, h) == (size, size) else f"{w} x {h} pixels, the manifest says {size} x {size}"


def check_samples(root: Path, ids: list[str], size: int) -> None:
    """Check every sample's four PNGs (see :func:`png_header_problem`); one DatasetFormatError line if any is bad."""
    bad = []
    for sid in ids:
        d = sample_dir(root, sid)
        for name in SAMPLE_FILES:
            problem = png_header_problem(d / name, size)
            if problem:
                bad.append(f"{d / name}: {problem}")
                break
    if bad:
        more = f" (and {len(bad) - 1} more bad samples)" if len(bad) > 1 else ""
        raise DatasetFormatError(f"{bad[0]}{more}")


class FaceMapsDataset(Dataset):
    """Samples of one split as tensors.

    Each item is a dict: ``image`` (3,S,S) RGB in [0,1]; ``depth`` (1,S,S) in the network's unit
    (:func:`facevision.model.outputs.depth_to_network`); ``corr`` (3,S,S) in [0,1]; ``mask`` (1,S,S) in {0,1}; ``index``.
    """

    def __init__(self, root: str | Path, split: str, augment: AugmentConfig | None = None, seed: int = 0) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.size = int(self.manifest.get("size", CROP_SIZE))
        self.items: list[dict[str, Any]] = [s for s in self.manifest["samples"] if s["split"] == split]
        if not self.items:
            raise DatasetFormatError(f"{self.root / 'manifest.json'}: no samples in split {split!r}")
        check_samples(self.root, [s["id"] for s in self.items], self.size)
        self.split = split
        self.augment = augment
        self.seed = seed
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sid = self.items[index]["id"]
        try:
            s = read_sample(self.root, sid)
        except DatasetFormatError as exc:
            raise SampleError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - anything else from reading: still one line naming the sample
            raise SampleError(f"{sample_dir(self.root, sid)}: cannot read sample ({type(exc).__name__}: {exc})") from None
        if s.image.shape[:2] != (self.size, self.size):
            raise SampleError(f"{sample_dir(self.root, sid)}: size {s.image.shape[:2]} != manifest size {self.size}")
        image, depth, corr, mask = s.image, s.depth, s.corr, s.mask
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self._epoch, index))
            image, depth, corr, mask = augment_sample(image, depth, corr, mask, self.augment, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0,
            "depth": torch.from_numpy(depth_to_network(depth, self.size)).float()[None],
            "corr": torch.from_numpy(np.ascontiguousarray(corr)).permute(2, 0, 1).float(),
            "mask": torch.from_numpy(mask.astype(np.float32))[None],
            "index": torch.tensor(index),
        }


def decode_labels(batch: dict[str, torch.Tensor], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of :class:`FaceMapsDataset` items -> label maps as the decoder returns predictions:
    depth_px (B, S, S) float32 crop px, corr (B, S, S, 3) float32, mask (B, S, S) bool."""
    return (depth_from_network(batch["depth"][:, 0], size).float().cpu().numpy(),
            batch["corr"].permute(0, 2, 3, 1).float().cpu().numpy(), (batch["mask"][:, 0] > 0.5).cpu().numpy())

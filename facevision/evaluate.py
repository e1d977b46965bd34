"""``facevision evaluate``: a checkpoint's map and landmark errors on a dataset split, next to a baseline.

Figures (all against the dataset's labels, over the label's face mask unless noted):

* ``depth_mae_px``: mean |predicted - label| depth in crop pixels over label-mask pixels (raw network
  depth, not cut by the predicted mask; same definition as training's validation metric).
* ``corr_mae``: mean |predicted - label| correspondence (u, v, w in [0, 1], channel mean), label mask.
* ``mask_iou``: IoU of the predicted mask (probability > 0.5) and the label mask, pooled over the split.
* ``landmark_nme``: 68-point NME. Label landmarks are read from the *label* correspondence map with the
  same procedure as the prediction (:func:`facevision.maps.landmarks.landmarks_from_corr`: nearest
  reference iBUG-68 vertex in correspondence space, affine subpixel), so both sides use one definition
  and the label side reproduces the rendered reference vertices within a fraction of a pixel. Per image:
  mean point distance / inter-ocular distance (outer eye corners, iBUG 36 and 45, of the label
  landmarks); averaged over images.

Baseline: always predict the mean training maps (pixel-wise masked mean depth and correspondence over
the train split, mask = pixels that are face in at least half of the train labels). The means are cached
atomically in ``DATASET/mean_maps_<split>.npz`` (recomputed when the split's sample count changes).
"""
from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.dataset_format import SPLITS, DatasetFormatError, read_manifest, read_sample
from facevision.common.checks import check_choice, check_int, check_number
from facevision.common.fileio import atomic_write_bytes
from facevision.face.reference import dataset_reference
from facevision.maps.landmarks import landmarks_from_corr
from facevision.model.outputs import decode_outputs
from facevision.face.sizes import CROP_SIZE

__all__ = ["EvaluateConfig", "MapMetrics", "mean_maps", "evaluate", "margins", "MapScores", "landmark_nme", "IOD_POINTS",
           "metrics_table"]

IOD_POINTS = (36, 45)


@dataclass(frozen=True)
class EvaluateConfig:
    """split: split to score; limit: first N samples of it (None = all); batch_size: network batch;
    baseline_split: split the mean maps come from; baseline_limit: first N of those (None = all);
    mask_threshold: predicted-mask probability threshold. Checked when built (ValueError naming the field)."""

    split: str = "test"
    limit: int | None = None
    batch_size: int = 32
    baseline_split: str = "train"
    baseline_limit: int | None = None
    mask_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("split", "baseline_split"):
            check_choice(self, name, SPLITS)
        for name in ("limit", "baseline_limit"):
            check_int(self, name, low=1, optional=True)
        check_int(self, "batch_size", low=1)
        check_number(self, "mask_threshold", 0, 1)


class MapMetrics:
    """Accumulates masked depth MAE (crop px), correspondence MAE and mask IoU over samples.

    Arrays may carry any leading batch dimensions: depth (..., S, S) in crop px, corr (..., S, S, 3),
    masks (..., S, S) bool. Errors are summed over the *label* mask's pixels; IoU is pooled.
    """

    def __init__(self) -> None:
        self.depth_err = self.corr_err = self.pixels = self.inter = self.union = 0.0

    def add(self, depth: np.ndarray, corr: np.ndarray, mask: np.ndarray,
            label_depth: np.ndarray, label_corr: np.ndarray, label_mask: np.ndarray) -> None:
        m = np.asarray(label_mask, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        self.depth_err += float(np.abs(depth - label_depth)[m].sum())
        self.corr_err += float(np.abs(corr - label_corr).mean(-1)[m].sum())
        self.pixels += float(m.sum())
        self.inter += float((mask & m).sum())
        self.union += float((mask | m).sum())

    def result(self) -> dict[str, float]:
        n = max(self.pixels, 1.0)
        return {"depth_mae_px": self.depth_err / n, "corr_mae": self.corr_err / n,
                "mask_iou": self.inter / max(self.union, 1.0)}


def landmark_nme(pred: np.ndarray, label: np.ndarray) -> float:
    """(68, 2) predicted and label points (px) -> mean distance / label inter-ocular (outer corners) distance."""
    iod = float(np.linalg.norm(label[IOD_POINTS[0]] - label[IOD_POINTS[1]]))
    return float(np.linalg.norm(pred - label, axis=1).mean() / max(iod, 1e-6))


class MapScores(MapMetrics):
    """:class:`MapMetrics` plus the 68-landmark NME (numpy; maps in dataset conventions)."""

    def __init__(self, reference=None) -> None:
        super().__init__()
        self.reference = reference
        self.nme: list[float] = []
        self.landmark_failures = 0

    def add(self, depth: np.ndarray, corr: np.ndarray, mask: np.ndarray, label, label_lm: np.ndarray | None) -> None:
        """depth (S, S) px, corr (S, S, 3), mask (S, S) bool predicted; label: a dataset Sample."""
        super().add(depth, corr, mask, label.depth, label.corr, label.mask)
        if label_lm is None:
            return
        try:
            lm = landmarks_from_corr(corr, mask, self.reference).points
        except ValueError:
            self.landmark_failures += 1
            return
        self.nme.append(landmark_nme(lm, label_lm))

    def result(self) -> dict[str, Any]:
        r = super().result()
        return {"depth_mae_px": round(r["depth_mae_px"], 4), "corr_mae": round(r["corr_mae"], 5),
                "mask_iou": round(r["mask_iou"], 4),
                "landmark_nme": round(float(np.mean(self.nme)), 5) if self.nme else None,
                "landmark_failures": self.landmark_failures}


def margins(model: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """How much better the model is than the baseline: relative error reduction for the errors
    ((baseline - model) / baseline, > 0 = better) and the IoU gain (model - baseline)."""
    out: dict[str, Any] = {}
    for key in ("depth_mae_px", "corr_mae", "landmark_nme"):
        mv, bv = model.get(key), baseline.get(key)
        out[f"{key}_reduction"] = None if mv is None or not bv else round((bv - mv) / bv, 4)
    out["mask_iou_gain"] = round(model["mask_iou"] - baseline["mask_iou"], 4)
    out["beats_baseline_on_all"] = all(v is not None and v > 0 for v in out.values() if not isinstance(v, bool))
    return out


def _split_ids(manifest: dict[str, Any], split: str, limit: int | None) -> list[str]:
    ids = [s["id"] for s in manifest["samples"] if s["split"] == split]
    return ids if limit is None else ids[: int(limit)]


def mean_maps(root: str | Path, split: str = "train", limit: int | None = None) -> dict[str, np.ndarray]:
    """Pixel-wise mean label maps of a split: ``depth`` (S, S) px and ``corr`` (S, S, 3), each averaged over
    the samples where the pixel is face (0 where never), and ``mask_frac`` (S, S) in [0, 1]. Cached in
    ``root/mean_maps_<split>.npz`` keyed by the sample ids."""
    root = Path(root)
    manifest = read_manifest(root)
    ids = _split_ids(manifest, split, limit)
    if not ids:
        raise DatasetFormatError(f"{root / 'manifest.json'}: no samples in split {split!r}")
    key = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    cache = root / f"mean_maps_{split}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    return {k: z[k] for k in ("depth", "corr", "mask_frac")}
        except (OSError, KeyError, ValueError):
            pass
    s = int(manifest.get("size", CROP_SIZE))
    dsum, csum, msum = np.zeros((s, s)), np.zeros((s, s, 3)), np.zeros((s, s))
    for sid in ids:
        smp = read_sample(root, sid)
        m = smp.mask
        dsum += np.where(m, smp.depth, 0.0)
        csum += np.where(m[..., None], smp.corr, 0.0)
        msum += m
    cnt = np.maximum(msum, 1.0)
    out = {"depth": (dsum / cnt).astype(np.float32), "corr": (csum / cnt[..., None]).astype(np.float32),
           "mask_frac": (msum / len(ids)).astype(np.float32)}
    buf = io.BytesIO()
    np.savez_compressed(buf, key=np.array(key), n=np.array(len(ids)), **out)
    atomic_write_bytes(cache, buf.getvalue())
    return out


def evaluate(root: str | Path, model: Any, config: EvaluateConfig = EvaluateConfig(), device: str = "cpu") -> dict[str, Any]:
    """Score ``model`` (a generator, see :class:`facevision.model.generator.DualUnetGenerator`) and the mean-map baseline
    on ``config.split`` of the dataset at ``root``; returns the JSON-ready result."""
    import torch

    t0 = time.time()
    root = Path(root)
    manifest = read_manifest(root)
    ids = _split_ids(manifest, config.split, config.limit)
    if not ids:
        raise DatasetFormatError(f"{root / 'manifest.json'}: no samples in split {config.split!r}")
    size = int(manifest.get("size", CROP_SIZE))
    base = mean_maps(root, config.baseline_split, config.baseline_limit)
    base_mask = base["mask_frac"] >= 0.5
    base_depth = np.where(base_mask, base["depth"], 0.0).astype(np.float32)
    base_corr = np.where(base_mask[..., None], base["corr"], 0.0).astype(np.float32)
    model = model.to(device).eval()
    reference = dataset_reference(root, manifest, required=False)  # None: no face space, no landmark NME
    ours, baseline = MapScores(reference), MapScores(reference)
    for i in range(0, len(ids), config.batch_size):
        samples = [read_sample(root, sid) for sid in ids[i:i + config.batch_size]]
        x = torch.from_numpy(np.stack([s.image for s in samples])).to(device).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            out = model(x)
        depth, corr, mask = decode_outputs(out, size, config.mask_threshold, masked=False)
        for k, s in enumerate(samples):
            try:
                label_lm = None if reference is None else landmarks_from_corr(s.corr, s.mask, reference).points
            except ValueError:
                label_lm = None
            ours.add(depth[k], corr[k], mask[k], s, label_lm)
            baseline.add(base_depth, base_corr, base_mask, s, label_lm)
    m, b = ours.result(), baseline.result()
    return {
        "data": str(root),
        "split": config.split,
        "samples": len(ids),
        "crop_size": size,
        "model": m,
        "baseline_mean_maps": b,
        "margins": margins(m, b),
        "baseline_source": f"{config.baseline_split} split mean maps ({root / f'mean_maps_{config.baseline_split}.npz'})",
        "definitions": {
            "depth_mae_px": "mean |pred - label| depth, crop px, over label-mask pixels",
            "corr_mae": "mean |pred - label| (u,v,w) channel mean, over label-mask pixels",
            "mask_iou": "pooled IoU of predicted mask (p > 0.5) vs label mask",
            "landmark_nme": "mean 68-point error / inter-ocular distance (outer eye corners 36-45 of the label "
                            "landmarks); label landmarks read from the label correspondence map with the same "
                            "procedure as predictions",
        },
        "elapsed_s": round(time.time() - t0, 2),
    }


# (key, label, number format, margin key, margin is a relative reduction)
_TABLE_ROWS = (("depth_mae_px", "depth MAE (crop px)", "{:.3f}", "depth_mae_px_reduction", True),
               ("corr_mae", "correspondence MAE", "{:.4f}", "corr_mae_reduction", True),
               ("mask_iou", "mask IoU", "{:.3f}", "mask_iou_gain", False),
               ("landmark_nme", "landmark NME (68 pts)", "{:.4f}", "landmark_nme_reduction", True))


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def metrics_table(result: dict[str, Any]) -> str:
    """A short human-readable table of :func:`evaluate`'s result: model, baseline and the margin per figure
    (errors: relative reduction, > 0 = the model is better; IoU: gain)."""
    m, b, g = result["model"], result["baseline_mean_maps"], result["margins"]
    head = f"{result.get('split', '?')} split of {result.get('data', '?')}: {result.get('samples', '?')} samples"
    if result.get("checkpoint"):
        head = f"{result['checkpoint']} on the {head}"
    rows = [("metric", "model", "mean-map baseline", "model better by")]
    for key, label, fmt, margin, relative in _TABLE_ROWS:
        gain = g.get(margin)
        better = "n/a" if gain is None else f"{100 * gain:+.1f} %" if relative else f"{gain:+.3f}"
        rows.append((label, _cell(m.get(key), fmt), _cell(b.get(key), fmt), better))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [head, ""] + ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                          for r in rows]
    lines += ["", f"beats the baseline on every figure: {'yes' if g.get('beats_baseline_on_all') else 'no'}"]
    if m.get("landmark_failures"):
        lines.append(f"landmarks could not be read on {m['landmark_failures']} predicted faces")
    return "\n".join(lines)

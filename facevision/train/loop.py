"""The GAN training loop: resumable, atomic checkpoints, per-epoch validation, CSV log, PNG grids.

Run folder layout (``--out RUN_DIR``)::

    last.pt              full training state (models, optimizers, epoch, step), weights_only-loadable
    last.safetensors     generator weights after the last finished epoch (for predict/evaluate)
    best.safetensors     generator weights with the best validation score (the last epoch's when the
                         dataset has no val split: training then goes on without validation, saying so once)
    log.csv              one row per epoch: train losses, val metrics, images/s
    vis/epoch_NNN.png    fixed validation samples: input | depth label | depth pred | corr label | corr pred
    config.json          model + training config of the run

Distributed: launched by ``torchrun --nproc_per_node=N -m facevision train ...`` every process
trains on its shard (DistributedSampler) with DDP-wrapped models; rank 0 alone writes files.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from facevision.common.fileio import atomic_write_bytes, atomic_write_json, remove_stale_temporaries
from facevision.face.images import atomic_write_png
from facevision.data import AugmentConfig, FaceMapsDataset
from facevision.maps.visualize import corr_to_rgb, depth_to_rgb, image_grid
from facevision.train.curves import plot_log
from facevision.model.config import ModelConfig, check_input_size
from facevision.model.discriminator import PatchDiscriminator
from facevision.model.generator import DualUnetGenerator
from facevision.model.checkpoint import CheckpointError, checked_model_config, save_generator
from facevision.train.checkpoint import load_training_state, save_training_state
from facevision.train.config import TrainConfig
from facevision.train.step import gan_step
from facevision.evaluate import MapMetrics
from facevision.model.device import resolve_device
from facevision.model.outputs import decode_outputs, depth_to_network
from facevision.data.dataset import decode_labels


class RunFolderError(ValueError):
    """The run folder is in a state that does not match the request (e.g. exists without --resume)."""


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend)
    d = Dist(rank=torch.distributed.get_rank(), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(d.local_rank)
    return d


class ResumableSampler(Sampler[int]):
    """Seeded permutation per epoch; can start part-way through an epoch (mid-epoch resume)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g)[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    return m.module if hasattr(m, "module") else m


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


VIS_LABELS = ["input", "depth label", "depth predicted", "corr. label", "corr. predicted"]


def _visual_grid(images: list[np.ndarray], rows: list[dict]) -> bytes:
    tiles = [[img, depth_to_rgb(r["depth_label"], r["mask"]), depth_to_rgb(r["depth_pred"], r["mask_pred"]),
              corr_to_rgb(r["corr_label"], r["mask"]), corr_to_rgb(r["corr_pred"], r["mask_pred"])]
             for img, r in zip(images, rows)]
    return image_grid(tiles, labels=VIS_LABELS)


@torch.no_grad()
def validate(generator: torch.nn.Module, loader: DataLoader, device: torch.device, size: int,
             vis_indices: frozenset[int] = frozenset()) -> tuple[dict[str, float], np.ndarray | None]:
    """Masked depth MAE (crop px), correspondence MAE and mask IoU over a loader; optional grid of the
    samples whose dataset index is in ``vis_indices``."""
    generator.eval()
    metrics = MapMetrics()
    vis_rows: list[dict] = []
    vis_imgs: list[np.ndarray] = []
    for batch in loader:
        batch = _to(batch, device)
        out = _unwrap(generator)(batch["image"])
        depth, corr, mask = decode_outputs(out, size, masked=False)
        label_depth, label_corr, label_mask = decode_labels(batch, size)
        metrics.add(depth, corr, mask, label_depth, label_corr, label_mask)
        for i in range(batch["image"].shape[0]):
            if int(batch["index"][i]) not in vis_indices:
                continue
            vis_imgs.append((batch["image"][i].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8))
            vis_rows.append({"depth_label": label_depth[i], "mask": label_mask[i], "depth_pred": depth[i],
                             "mask_pred": mask[i], "corr_label": label_corr[i], "corr_pred": corr[i]})
    generator.train()
    grid = _visual_grid(vis_imgs, vis_rows) if vis_rows else None
    return metrics.result(), grid


def lr_factor(step: int, steps_per_epoch: int, epochs: int, decay_epochs: int) -> float:
    """pix2pix schedule: 1 until the last ``decay_epochs`` epochs, then linearly down to 0 at the end."""
    if decay_epochs <= 0:
        return 1.0
    total, decay = epochs * steps_per_epoch, decay_epochs * steps_per_epoch
    return float(min(1.0, max(0.0, (total - step) / max(decay, 1))))


def validation_score(m: dict[str, float], size: int) -> float:
    """Lower is better: depth MAE as a fraction of the crop + correspondence MAE + (1 - mask IoU)."""
    return depth_to_network(m["depth_mae_px"], size) + m["corr_mae"] + (1.0 - m["mask_iou"])


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    """Rewrite the CSV atomically with one more row (keeps the log whole after a kill)."""
    rows: list[dict[str, Any]] = []
    if path.is_file():
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    rows = [r for r in rows if int(r["epoch"]) < int(row["epoch"])] + [row]
    fields = list(row.keys())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


@dataclass
class _Run:
    """What the stages of :func:`train` share: the run's settings, data, networks, optimisers and counters."""

    cfg: TrainConfig
    data: str | Path
    out: Path
    dev: torch.device
    dist: Dist
    model_config: ModelConfig
    train_set: FaceMapsDataset
    val_set: FaceMapsDataset | None
    generator: torch.nn.Module
    disc_depth: torch.nn.Module
    disc_corr: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    start_epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    best: float = math.inf
    sampler: Sampler | None = None
    train_loader: DataLoader | None = None
    val_loader: DataLoader | None = None
    steps_per_epoch: int = 0
    vis_indices: frozenset[int] = frozenset()
    autocast: Callable[[], ContextManager] = nullcontext
    scaler: torch.amp.GradScaler | None = None

    @property
    def last_pt(self) -> Path:
        return self.out / "last.pt"


def train(data: str | Path, out: str | Path, config: TrainConfig | None = None,
          model_config: ModelConfig | None = None, device: str = "auto", resume: bool = False,
          save_every_steps: int = 0, progress: bool = True, init_generator: str | Path | None = None) -> dict[str, Any]:
    """Train the generator and discriminators; returns the last epoch's log row.

    init_generator: a generator .safetensors to start a new run from (fine-tuning); its model config is
    used and ``model_config`` ignored. Discriminators and optimizers start fresh.

    Raises:
        DatasetFormatError: the dataset folder is missing or malformed.
        RunFolderError: ``out`` already holds a run and ``resume`` is False.
    """
    run = _set_up(data, Path(out), config or TrainConfig(), model_config, device, resume, init_generator)
    row: dict[str, Any] = {}
    run.generator.train()
    for epoch in range(run.start_epoch, run.cfg.epochs):
        means, timing = _train_epoch(run, epoch, save_every_steps, progress)
        row = _end_epoch(run, epoch, means, timing, progress)
    if run.dist.world > 1:
        torch.distributed.destroy_process_group()
    return row


# ----------------------------------------------------------------------------- set-up
def _set_up(data: str | Path, out: Path, cfg: TrainConfig, model_config: ModelConfig | None, device: str,
            resume: bool, init_generator: str | Path | None) -> _Run:
    """Device, seed, starting point, data, networks and optimisers (restored on resume), loaders; writes
    ``config.json``."""
    dev = torch.device(resolve_device(device))
    dist = _init_distributed(dev)
    if dist.world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
    torch.manual_seed(cfg.seed + dist.rank)
    state, model_config, init_state = _starting_point(out, dist, resume, model_config, init_generator)
    train_set, val_set = _datasets(data, cfg, dist)
    model_config = _sized_model_config(model_config, train_set.size, data, fresh=state is None)
    run = _Run(cfg, data, out, dev, dist, model_config, train_set, val_set,
               *_networks(model_config, init_state, cfg, dev))
    if state is not None:
        _restore(run, state)
    _distribute_and_load(run)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", {"train": cfg.to_dict(), "model": model_config.to_dict(), "data": str(data)})
    return run


def _starting_point(out: Path, dist: Dist, resume: bool, model_config: ModelConfig | None,
                    init_generator: str | Path | None) -> tuple[dict[str, Any] | None, ModelConfig, dict | None]:
    """(training state of ``last.pt`` when resuming, model config, generator weights of ``init_generator``)."""
    state: dict[str, Any] | None = None
    last_pt = out / "last.pt"
    if dist.main:
        remove_stale_temporaries(out, max_depth=1)  # left by a killed run: .last.<pid>-*.tmp.pt, ...
    if resume:
        state = load_training_state(last_pt)
        model_config = checked_model_config(state["model_config"], str(last_pt))
    elif last_pt.exists():
        raise RunFolderError(f"{out}: already holds a training run (last.pt); pass --resume to continue it or choose a new --out")
    init_state = None
    if init_generator is not None and state is None:
        from facevision.model.checkpoint import load_generator

        init_model = load_generator(init_generator, "cpu")
        model_config, init_state = init_model.config, init_model.state_dict()
    return state, model_config or ModelConfig(), init_state


def _datasets(data: str | Path, cfg: TrainConfig, dist: Dist) -> tuple[FaceMapsDataset, FaceMapsDataset | None]:
    """The train split (augmented unless ``cfg.augment`` is off) and the val split (None when it is empty)."""
    train_set = FaceMapsDataset(data, "train", AugmentConfig() if cfg.augment else None, seed=cfg.seed)
    # a small dataset may have no val split: train without validation (one warning) rather than stop
    has_val = any(s.get("split") == "val" for s in train_set.manifest["samples"])
    val_set = FaceMapsDataset(data, "val") if has_val else None
    if val_set is None and dist.main:
        print(f"facevision train: warning: {data}: no samples in split 'val'; training without validation "
              "(no val metrics; best.safetensors follows the last epoch)", file=sys.stderr, flush=True)
    return train_set, val_set


def _sized_model_config(model_config: ModelConfig, size: int, data: str | Path, fresh: bool) -> ModelConfig:
    """A new run's model takes the dataset's crop size; a resumed run's must already have it."""
    check_input_size(size, model_config.encoder_depth, what=f"{data}: crop size")
    if fresh:
        return replace(model_config, image_size=size)
    if model_config.image_size != size:
        raise ValueError(f"{data}: crop size {size} differs from the resumed model's {model_config.image_size}")
    return model_config


def _networks(model_config: ModelConfig, init_state: dict | None, cfg: TrainConfig, dev: torch.device
              ) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
    """Generator (``init_state`` loaded), depth and correspondence discriminators, and their Adam optimisers."""
    generator = DualUnetGenerator(model_config)
    if init_state is not None:
        generator.load_state_dict(init_state)
    generator = generator.to(dev)
    disc_depth = PatchDiscriminator(4, model_config.disc_channels).to(dev)
    disc_corr = PatchDiscriminator(6, model_config.disc_channels).to(dev)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(list(disc_depth.parameters()) + list(disc_corr.parameters()), lr=cfg.lr_disc, betas=cfg.betas)
    return generator, disc_depth, disc_corr, opt_g, opt_d


def _restore(run: _Run, state: dict[str, Any]) -> None:
    """Load a ``last.pt`` state into the run's networks, optimisers and counters; CheckpointError if it does not fit."""
    try:
        run.generator.load_state_dict(state["generator"])
        run.disc_depth.load_state_dict(state["disc_depth"])
        run.disc_corr.load_state_dict(state["disc_corr"])
        run.opt_g.load_state_dict(state["opt_g"])
        run.opt_d.load_state_dict(state["opt_d"])
        run.start_epoch, run.step = int(state["epoch"]), int(state["step"])
        run.batch_in_epoch, run.best = int(state.get("batch_in_epoch", 0)), float(state.get("best_score", math.inf))
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{run.last_pt}: training state does not match its model ({first})") from None


def _distribute_and_load(run: _Run) -> None:
    """DDP wrapping (several processes), sampler, data loaders, visualised samples and mixed precision."""
    cfg, dev, dist = run.cfg, run.dev, run.dist
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        ids = [dev.index] if dev.type == "cuda" else None
        run.generator, run.disc_depth, run.disc_corr = (DDP(m, device_ids=ids)
                                                        for m in (run.generator, run.disc_depth, run.disc_corr))
        from torch.utils.data.distributed import DistributedSampler
        run.sampler = DistributedSampler(run.train_set, num_replicas=dist.world, rank=dist.rank, seed=cfg.seed)
    else:
        run.sampler = ResumableSampler(len(run.train_set), cfg.seed)
    loader_kw = dict(num_workers=cfg.num_workers, pin_memory=dev.type == "cuda", persistent_workers=False)
    run.train_loader = DataLoader(run.train_set, batch_size=cfg.batch_size, sampler=run.sampler,
                                  drop_last=len(run.train_set) > cfg.batch_size, **loader_kw)
    val_set = run.val_set
    run.val_loader = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False, **loader_kw) \
        if val_set is not None else None
    run.steps_per_epoch = len(run.train_loader) if cfg.max_steps_per_epoch is None \
        else min(len(run.train_loader), cfg.max_steps_per_epoch)
    # fixed validation samples for the PNG grids, spread over the split (so over many identities)
    run.vis_indices = frozenset(np.linspace(0, len(val_set) - 1, min(cfg.vis_samples, len(val_set))).round().astype(int).tolist()) \
        if cfg.vis_samples > 0 and val_set is not None else frozenset()
    use_amp = cfg.amp and dev.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    run.scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    run.autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext


# ----------------------------------------------------------------------------- one epoch
def _train_epoch(run: _Run, epoch: int, save_every_steps: int, progress: bool
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """Train one epoch (from ``run.batch_in_epoch`` when resuming mid-epoch), checkpointing every
    ``save_every_steps`` steps; returns (mean losses, {"images_per_s", "epoch_s"})."""
    cfg = run.cfg
    run.train_set.set_epoch(epoch)
    skip = run.batch_in_epoch if epoch == run.start_epoch else 0
    if isinstance(run.sampler, ResumableSampler):
        run.sampler.set_epoch(epoch, start=skip * cfg.batch_size)
    else:
        run.sampler.set_epoch(epoch)
        skip = 0
    sums: dict[str, float] = {}
    n_batches, n_images, t0 = 0, 0, time.time()
    bar = tqdm(run.train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and run.dist.main),
               dynamic_ncols=True)
    for i, batch in enumerate(bar, start=skip):
        if cfg.max_steps_per_epoch is not None and i >= cfg.max_steps_per_epoch:
            break
        batch = _to(batch, run.dev)
        _set_learning_rates(run)
        losses = gan_step(run.generator, run.disc_depth, run.disc_corr, run.opt_g, run.opt_d, batch, cfg,
                          run.autocast, run.scaler)
        run.step += 1
        n_batches += 1
        n_images += batch["image"].shape[0] * run.dist.world
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(g=f"{sums['loss_g'] / n_batches:.3f}", d=f"{sums['loss_d'] / n_batches:.3f}")
        if save_every_steps and run.dist.main and run.step % save_every_steps == 0:
            save_training_state(run.last_pt, _snapshot(run, epoch, i + 1))
    elapsed = time.time() - t0
    means = {k: round(v / max(n_batches, 1), 6) for k, v in sums.items()}
    return means, {"images_per_s": round(n_images / max(elapsed, 1e-9), 2), "epoch_s": round(elapsed, 1)}


def _set_learning_rates(run: _Run) -> None:
    """Both optimisers' learning rates at the run's global step (:func:`lr_factor`)."""
    factor = lr_factor(run.step, run.steps_per_epoch, run.cfg.epochs, run.cfg.decay_epochs)
    for opt, base in ((run.opt_g, run.cfg.lr), (run.opt_d, run.cfg.lr_disc)):
        for group in opt.param_groups:
            group["lr"] = base * factor


def _snapshot(run: _Run, epoch: int, batch_idx: int) -> dict[str, Any]:
    """The ``last.pt`` state: next batch to train is ``batch_idx`` of epoch ``epoch`` (0-based)."""
    return {
        "generator": _unwrap(run.generator).state_dict(), "disc_depth": _unwrap(run.disc_depth).state_dict(),
        "disc_corr": _unwrap(run.disc_corr).state_dict(), "opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(),
        "epoch": epoch, "step": run.step, "batch_in_epoch": batch_idx, "best_score": run.best,
        "model_config": run.model_config.to_dict(), "train_config": run.cfg.to_dict(),
    }


# ----------------------------------------------------------------------------- validation and checkpoints
def _end_epoch(run: _Run, epoch: int, means: dict[str, float], timing: dict[str, float],
               progress: bool) -> dict[str, Any]:
    """Validate a finished epoch and (main process) write its checkpoints, grid and log row; returns the row."""
    if run.val_loader is not None:
        metrics, grid = validate(run.generator, run.val_loader, run.dev, run.train_set.size,
                                 run.vis_indices if run.dist.main else frozenset())
        score = validation_score(metrics, run.train_set.size)
        val_row = {**{f"val_{k}": round(v, 6) for k, v in metrics.items()}, "val_score": round(score, 6)}
    else:  # no val split: nothing to report; best.safetensors follows the last epoch
        metrics, grid, score, val_row = {}, None, None, {}
    row = {"epoch": epoch + 1, "step": run.step, **means, **val_row, "lr": run.opt_g.param_groups[0]["lr"], **timing}
    if run.dist.main:
        _save_epoch(run, epoch, row, metrics, score, grid)
        if progress:
            print(json.dumps(row), flush=True)
    return row


def _save_epoch(run: _Run, epoch: int, row: dict[str, Any], metrics: dict[str, float], score: float | None,
                grid: np.ndarray | None) -> None:
    """last/best.safetensors, the vis grid, log.csv, curves.png and last.pt (the next epoch's start)."""
    out, train_set = run.out, run.train_set
    meta = {"epoch": epoch + 1, "val": metrics, "data": str(run.data),
            "correspondence_space": train_set.manifest.get("correspondence_space", "unknown"),
            "label_source": train_set.manifest.get("label_source", "unknown")}
    save_generator(out / "last.safetensors", _unwrap(run.generator), meta)
    if score is None or score < run.best:
        run.best = run.best if score is None else score
        save_generator(out / "best.safetensors", _unwrap(run.generator), meta)
    if grid is not None:
        atomic_write_png(out / "vis" / f"epoch_{epoch + 1:03d}.png", grid)
    _append_csv(out / "log.csv", row)
    plot_log(out / "log.csv", out / "curves.png")  # redrawn from the whole CSV: also right after --resume
    save_training_state(run.last_pt, _snapshot(run, epoch + 1, 0))

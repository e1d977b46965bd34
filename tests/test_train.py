"""Training: overfitting a tiny generated set, checkpoints, resume, and dataset errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_prep.dataset_format import DatasetFormatError
from facevision.face.images import read_png
from data_prep.toy import make_toy_dataset
from facevision.cli import main
from facevision.data import FaceMapsDataset
from facevision.model.config import ModelConfig
from facevision.model.discriminator import PatchDiscriminator
from facevision.model.generator import DualUnetGenerator
from facevision.model.checkpoint import load_generator, save_generator
from facevision.train.checkpoint import export_generator, load_training_state
from facevision.train.config import TrainConfig
from facevision.train.loop import RunFolderError, train
from facevision.train.step import gan_step

SIZE = 64


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    make_toy_dataset(root, count=8, size=SIZE, seed=0)
    return root


def test_overfit_lowers_l1(toy_data: Path) -> None:
    torch.manual_seed(0)
    batch = next(iter(DataLoader(FaceMapsDataset(toy_data, "train"), batch_size=4)))
    mc = ModelConfig()
    g, dd, dc = DualUnetGenerator(mc), PatchDiscriminator(4, mc.disc_channels), PatchDiscriminator(6, mc.disc_channels)
    cfg = TrainConfig(lr=1e-3)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(list(dd.parameters()) + list(dc.parameters()), lr=cfg.lr, betas=cfg.betas)
    history = [gan_step(g, dd, dc, opt_g, opt_d, batch, cfg) for _ in range(40)]
    first = np.mean([h["depth_l1"] + h["corr_l1"] for h in history[:3]])
    last = np.mean([h["depth_l1"] + h["corr_l1"] for h in history[-3:]])
    assert last < 0.5 * first, (first, last)
    assert history[-1]["mask_bce"] < history[0]["mask_bce"]


def test_generator_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    g = DualUnetGenerator(ModelConfig(decoder_channels=(32, 24, 16, 16, 8))).eval()
    path = save_generator(tmp_path / "g.safetensors", g, {"epoch": 3})
    loaded = load_generator(path)
    assert loaded.config.decoder_channels == (32, 24, 16, 16, 8)
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        a, b = g(x), loaded(x)
    for ta, tb in zip(a, b):
        assert torch.equal(ta, tb)


def test_train_writes_run_and_resumes(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = TrainConfig(epochs=1, batch_size=2, num_workers=0, max_steps_per_epoch=2, vis_samples=2)
    train(toy_data, run, cfg, device="cpu", progress=False)
    for name in ("last.pt", "last.safetensors", "best.safetensors", "log.csv", "config.json", "vis/epoch_001.png",
                 "curves.png"):
        assert (run / name).is_file(), name
    grid = read_png(run / "vis" / "epoch_001.png")
    from facevision.maps.visualize import label_strip
    from facevision.train.loop import VIS_LABELS

    strip = label_strip(VIS_LABELS, SIZE)  # the panel names above the columns (issue #13)
    assert grid.shape[:2] == (strip.shape[0] + 2 * (SIZE + 2) + 2, 5 * (SIZE + 2) + 2)  # 2 x (input, 2 labels, 2 preds)
    assert np.array_equal(grid[:strip.shape[0]], strip)
    curves_1 = read_png(run / "curves.png")
    state = load_training_state(run / "last.pt")
    assert state["epoch"] == 1 and state["step"] == 2
    assert int(state["opt_g"]["state"][0]["step"]) == 2

    with pytest.raises(RunFolderError, match="--resume"):
        train(toy_data, run, cfg, device="cpu", progress=False)

    cfg.epochs = 2
    row = train(toy_data, run, cfg, device="cpu", resume=True, progress=False)
    assert row["epoch"] == 2 and row["step"] == 4
    state = load_training_state(run / "last.pt")
    assert int(state["opt_g"]["state"][0]["step"]) == 4  # optimizer moments continued, not restarted
    # the generator exported from the training state equals the one saved at the epoch's end
    exported = load_generator(export_generator(run / "last.pt", tmp_path / "exported.safetensors"))
    saved = load_generator(run / "last.safetensors")
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(exported(x).depth, saved(x).depth)
    with open(run / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    curves_2 = read_png(run / "curves.png")  # redrawn after the resumed epoch, from the whole log
    assert curves_2.shape == curves_1.shape and not np.array_equal(curves_1, curves_2)
    # training's validation and `facevision evaluate` are one evaluation: same figures for the saved generator
    from facevision.evaluate import EvaluateConfig, evaluate

    scored = evaluate(toy_data, saved, EvaluateConfig(split="val"))["model"]
    for key in ("depth_mae_px", "corr_mae", "mask_iou"):
        assert float(rows[-1][f"val_{key}"]) == pytest.approx(scored[key], abs=2e-4), key


def test_resume_mid_epoch_after_kill(toy_data: Path, tmp_path: Path) -> None:
    """A checkpoint written mid-epoch resumes at the next batch of the same epoch."""
    run = tmp_path / "run"
    cfg = TrainConfig(epochs=1, batch_size=2, num_workers=0, max_steps_per_epoch=3, vis_samples=0)
    train(toy_data, run, cfg, device="cpu", progress=False, save_every_steps=1)
    state = load_training_state(run / "last.pt")
    # simulate a kill after step 1 of epoch 0: rewind the checkpoint to its mid-epoch form
    state.update(epoch=0, step=1, batch_in_epoch=1)
    torch.save(state, run / "last.pt")
    row = train(toy_data, run, cfg, device="cpu", resume=True, progress=False)
    assert row["epoch"] == 1 and row["step"] == 3  # 1 done before the kill + 2 remaining batches


def test_missing_and_malformed_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="does not exist"):
        FaceMapsDataset(tmp_path / "nope", "train")
    with pytest.raises(DatasetFormatError, match="manifest.json: missing"):
        FaceMapsDataset(tmp_path, "train")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match="not valid JSON"):
        FaceMapsDataset(tmp_path, "train")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "facevision-dataset", "version": 1,
                                                        "samples": [{"id": "a", "identity": "a", "split": "train"}]}))
    with pytest.raises(DatasetFormatError, match="sample files missing"):
        FaceMapsDataset(tmp_path, "train")
    with pytest.raises(DatasetFormatError, match="no samples in split 'val'"):
        FaceMapsDataset(tmp_path, "val")


def test_train_cli_reports_bad_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing" in err and "does not exist" in err


def test_toy_dataset_then_train_from_the_command_line(tmp_path: Path) -> None:
    """The README's quick try: generate a toy dataset, train a few steps, get a usable checkpoint."""
    data, run = tmp_path / "toy", tmp_path / "run"
    assert main(["prepare", "toy", "-o", str(data), "--count", "6", "--size", "64"]) == 0
    assert FaceMapsDataset(data, "val").size == 64
    assert main(["train", "--data", str(data), "--out", str(run), "--epochs", "1", "--batch-size", "2",
                 "--max-steps-per-epoch", "2", "--workers", "0", "--device", "cpu"]) == 0
    g = load_generator(run / "best.safetensors")
    assert g.config.image_size == 64  # recorded from the dataset, so predict crops to the trained size
    with torch.no_grad():
        assert g(torch.rand(1, 3, 64, 64)).depth.shape == (1, 1, 64, 64)


def test_lr_schedule_constant_then_linear_decay() -> None:
    from facevision.train.loop import lr_factor

    assert lr_factor(0, 10, epochs=4, decay_epochs=0) == 1.0
    assert lr_factor(19, 10, epochs=4, decay_epochs=2) == 1.0  # first two epochs constant
    assert lr_factor(30, 10, epochs=4, decay_epochs=2) == pytest.approx(0.5)
    assert lr_factor(40, 10, epochs=4, decay_epochs=2) == 0.0


def test_init_starts_a_new_run_from_a_generator(toy_data: Path, tmp_path: Path) -> None:
    """--init: the new run begins with the given generator's weights and architecture (lr 0 keeps them)."""
    torch.manual_seed(3)
    g = DualUnetGenerator(ModelConfig(image_size=SIZE, decoder_channels=(32, 24, 16, 12, 8)))
    init = save_generator(tmp_path / "init.safetensors", g)
    run = tmp_path / "run"
    cfg = TrainConfig(epochs=1, batch_size=2, num_workers=0, max_steps_per_epoch=1, vis_samples=0, lr=0.0)
    train(toy_data, run, cfg, device="cpu", progress=False, init_generator=init)
    out = load_generator(run / "last.safetensors", "cpu")
    assert tuple(out.config.decoder_channels) == (32, 24, 16, 12, 8)
    ref = g.state_dict()
    for k, v in out.state_dict().items():
        if "running" in k or "num_batches" in k:  # batch-norm statistics move even at lr 0
            continue
        assert torch.equal(v, ref[k]), k


def test_resume_refuses_data_of_another_correspondence_space(tmp_path, capsys) -> None:
    """A run keeps learning the space it began with: resuming it on a dataset of another space is refused, naming both."""
    import json

    from data_prep.toy import make_toy_dataset
    from facevision.cli import main

    first, second, out = tmp_path / "a", tmp_path / "b", tmp_path / "run"
    make_toy_dataset(first, count=4, size=64, seed=0)
    make_toy_dataset(second, count=4, size=64, seed=1)
    manifest = json.loads((second / "manifest.json").read_text())
    manifest["correspondence_space"] = "3ddfa-bfm4096-ncc"
    (second / "manifest.json").write_text(json.dumps(manifest))
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"data": str(first)}))
    assert main(["train", "--data", str(second), "--out", str(out), "--resume", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "correspondence spaces" in err and str(first) in err and str(second) in err


def test_a_dataset_without_val_trains_without_validation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A small dataset whose split gave val nothing: training goes on (one warning), logs no val metrics, and
    best.safetensors is the last epoch's generator."""
    data, run = tmp_path / "toy", tmp_path / "run"
    make_toy_dataset(data, count=4, size=SIZE, seed=0)
    manifest = json.loads((data / "manifest.json").read_text())
    for s in manifest["samples"]:
        s["split"] = "train"
    manifest.pop("split_counts", None)
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert main(["train", "--data", str(data), "--out", str(run), "--epochs", "2", "--batch-size", "2",
                 "--max-steps-per-epoch", "1", "--workers", "0", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("no samples in split 'val'") == 1 and "without validation" in err
    with open(run / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and not any(k.startswith("val_") for k in rows[0])
    assert not (run / "vis").exists()
    best, last = load_generator(run / "best.safetensors"), load_generator(run / "last.safetensors")
    for (k, a), b in zip(best.state_dict().items(), last.state_dict().values()):
        assert torch.equal(a, b), k
    assert load_training_state(run / "last.pt")["epoch"] == 2


@pytest.mark.parametrize("config, message", [
    (lambda: TrainConfig(lr=-1e-4), "TrainConfig.lr must be >= 0, got -0.0001"),
    (lambda: TrainConfig(batch_size=0), "TrainConfig.batch_size must be at least 1, got 0"),
    (lambda: TrainConfig(gan_mode="wgan"), "TrainConfig.gan_mode must be one of lsgan, vanilla, got 'wgan'"),
    (lambda: TrainConfig(max_steps_per_epoch=0), "TrainConfig.max_steps_per_epoch must be at least 1 or None, got 0"),
    (lambda: ModelConfig(image_size=100), "ModelConfig.image_size 100 must be divisible by 32"),
    (lambda: ModelConfig(decoder_channels=(32, 16)), "ModelConfig.decoder_channels must be at least 5"),
])
def test_train_and_model_configs_refuse_bad_values(config, message: str) -> None:
    """A bad value is refused when the config is built, the message naming the field and the value."""
    with pytest.raises(ValueError) as exc:
        config()
    assert message in str(exc.value)


def test_curves_config_refuses_a_panel_too_small_to_plot() -> None:
    from facevision.train.curves import CurvesConfig

    with pytest.raises(ValueError, match=r"CurvesConfig\.panel .*\(40, 240\)"):
        CurvesConfig(panel=(40, 240))


def test_train_command_names_the_bad_flag_and_exits_2(tmp_path: Path, toy_data: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """The config's error comes back as one line naming the command-line flag; nothing is written."""
    run = tmp_path / "run"
    assert main(["train", "--data", str(toy_data), "--out", str(run), "--lr", "-0.5", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "facevision train: error: --lr must be >= 0, got -0.5"
    assert main(["train", "--data", str(toy_data), "--out", str(run), "--workers", "-1", "--device", "cpu"]) == 2
    assert "--workers must be at least 0, got -1" in capsys.readouterr().err
    assert not run.exists()

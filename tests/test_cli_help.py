"""``--help`` tells the truth (issue #13): every option explains itself, stated defaults are the config
dataclasses' defaults, no RST markup reaches the terminal, and the README's command table lists the options."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from facevision.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _sub(name: str, action: str | None = None) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    p = sub.choices[name]
    if action is not None:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[action]
    return p


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def _help_of(p: argparse.ArgumentParser, dest: str) -> str:
    a = next(a for a in p._actions if a.dest == dest)
    return p._get_formatter()._expand_help(a) if a.help else ""


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) and value >= 10000 \
        else str(value)


def _states_default(p: argparse.ArgumentParser, dest: str, value) -> None:
    text = _help_of(p, dest)
    shown = {_shown(value), str(value)}
    assert any(f"(default {s}" in text for s in shown), f"--{dest}: help {text!r} should state default {value!r}"


@pytest.mark.parametrize("command", ["predict", "train", "evaluate", "mesh", "prepare"])
def test_every_option_has_help(command):
    missing = [a.option_strings[0] for a in _options(_sub(command)) if not (a.help or "").strip()]
    assert not missing, f"facevision {command}: options without help: {missing}"


def test_train_help_states_the_train_config_defaults():
    from facevision.model.config import ModelConfig
    from facevision.train.config import TrainConfig

    p, cfg = _sub("train"), TrainConfig()
    for dest, field in {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "lr_disc": "lr_disc",
                        "decay_epochs": "decay_epochs", "gan_mode": "gan_mode", "adv_weight": "adv_weight",
                        "l1_weight": "l1_weight", "grad_weight": "grad_weight", "mask_weight": "mask_weight",
                        "workers": "num_workers", "seed": "seed"}.items():
        a = next(a for a in p._actions if a.dest == dest)
        assert a.default == getattr(cfg, field), dest
        _states_default(p, dest, getattr(cfg, field))
    _states_default(p, "encoder", ModelConfig.encoder_name)
    assert cfg.augment and "default: augment" in _help_of(p, "no_augment")


def test_mesh_help_states_the_mesh_config_defaults():
    from meshing import MeshConfig

    p, cfg = _sub("mesh"), MeshConfig()
    for dest, field in {"density": "vertex_density", "triangulation": "triangulation", "z_scale": "z_scale",
                        "spike_edge_factor": "spike_edge_factor", "spike_area_factor": "spike_area_factor",
                        "smooth_iterations": "smooth_iterations", "smooth_lambda": "smooth_lambda",
                        "detail_strength": "detail_strength", "detail_sigma": "detail_sigma"}.items():
        _states_default(p, dest, getattr(cfg, field))


def test_prepare_help_states_the_prepare_config_defaults():
    from data_prep.prepare import PrepareConfig

    for action in ("lfw", "toy"):
        _states_default(_sub("prepare", action), "size", PrepareConfig.size)
    p = _sub("prepare", "lfw")
    for dest in ("z_stretch", "workers", "passes"):
        _states_default(p, dest, getattr(PrepareConfig, dest))


def test_evaluate_help_states_the_evaluate_config_defaults():
    from facevision.evaluate import EvaluateConfig

    p, cfg = _sub("evaluate"), EvaluateConfig()
    assert next(a for a in p._actions if a.dest == "batch_size").default == cfg.batch_size
    _states_default(p, "batch_size", cfg.batch_size)
    assert next(a for a in p._actions if a.dest == "split").default == cfg.split


def test_predict_help_states_the_predict_defaults():
    from facevision.face.detect import DetectConfig
    from facevision.predict.runner import DEFAULT_MAX_PIXELS
    from facevision.predict.outputs import OutputConfig
    from facevision.predict.predictor import PredictConfig

    p = _sub("predict")
    assert next(a for a in p._actions if a.dest == "batch_size").default == PredictConfig.batch_size
    _states_default(p, "batch_size", PredictConfig.batch_size)
    _states_default(p, "min_score", DetectConfig.min_score)
    _states_default(p, "max_pixels", DEFAULT_MAX_PIXELS)
    _states_default(p, "mesh_frame", OutputConfig.mesh_frame)
    _states_default(p, "texture_size", OutputConfig.texture_size)


@pytest.mark.parametrize("argv", [["predict"], ["train"], ["evaluate"], ["mesh"], ["prepare"], ["flame"],
                                  ["flame", "fit"], ["flame", "edit"], ["flame", "animate"]])
def test_help_has_no_rst_markup(argv, capsys):
    from facevision.cli import main

    with pytest.raises(SystemExit):
        main(argv + ["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and ":class:" not in out, out


def _readme_row(command: str) -> str:
    rows = [ln for ln in README.read_text().splitlines() if ln.startswith(f"| `facevision {command}")]
    assert rows, f"README has no command-table row for facevision {command}"
    return rows[0]


def test_readme_predict_row_lists_every_predict_option():
    row = _readme_row("predict")
    missing = [a.option_strings for a in _options(_sub("predict"))
               if not any(re.search(rf"{re.escape(o)}(?![\w-])", row) for o in a.option_strings)]
    assert not missing, f"README's predict row omits {missing}"


@pytest.mark.parametrize("command", ["predict", "train", "evaluate", "mesh"])
def test_readme_rows_name_only_real_options(command):
    known = {o for a in _sub(command)._actions for o in a.option_strings}
    named = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", _readme_row(command).split("|")[1]))
    assert named <= known, f"README's {command} row names unknown options {sorted(named - known)}"

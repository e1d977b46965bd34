"""Issue #11, trust: forged checkpoints and crafted FLAME pickles (all made here) end in one clear line,
before anything is downloaded, allocated or run."""
from __future__ import annotations

import json
import pickle
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from facevision.cli import main
from facevision.flame.model import FlameModelError, load_flame_model
from support.flame_synthetic import make_synthetic_flame_arrays
from facevision.model.config import ModelConfig
from facevision.model.generator import DualUnetGenerator
from facevision.model.checkpoint import CheckpointError, load_generator
from facevision.train.checkpoint import load_training_state

GOOD = ModelConfig().to_dict()


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.contiguous() for k, v in DualUnetGenerator().state_dict().items()}


def _forge(path: Path, weights: dict[str, torch.Tensor], model_config=None, **meta) -> Path:
    md = {"format": "facevision-generator-v1", **meta}
    if model_config is not None:
        md["model_config"] = model_config if isinstance(model_config, str) else json.dumps(model_config)
    save_file(weights, str(path), metadata=md)
    return path


@pytest.fixture()
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("tried to open a network connection while loading a checkpoint")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_forged_encoder_weights_never_download(tmp_path, weights, no_network):
    path = _forge(tmp_path / "imagenet.safetensors", weights, {**GOOD, "encoder_weights": "imagenet"})
    model = load_generator(path)
    assert model.config.encoder_weights is None  # the file's weights are used, nothing fetched
    assert torch.equal(model.state_dict()["depth_head.0.weight"], weights["depth_head.0.weight"])


@pytest.mark.parametrize("change,why", [
    ({"decoder_channels": [100_000_000, 48, 32, 24, 16]}, "decoder_channels"),
    ({"encoder_name": "no_such_encoder"}, "not a known encoder"),
    ({"encoder_name": "tu-definitely_not_a_timm_model"}, "not a known encoder"),
    ({"image_size": -5}, "image_size"),
    ({"image_size": 100}, "image_size"),  # not a multiple of 32
    ({"encoder_depth": True}, "encoder_depth"),
    ({"disc_channels": "16"}, "disc_channels"),
])
def test_forged_model_config_is_refused_before_building(tmp_path, weights, no_network, change, why):
    path = _forge(tmp_path / "bad.safetensors", weights, {**GOOD, **change})
    t = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and why in msg and "\n" not in msg
    assert time.perf_counter() - t < 5  # refused up front, no 2.2 TB allocation attempted


def test_large_but_allowed_config_is_checked_against_the_tensors_before_allocating(tmp_path, weights):
    path = _forge(tmp_path / "wide.safetensors", weights, {**GOOD, "decoder_channels": [2048] * 5})
    with pytest.raises(CheckpointError, match="weights do not match the model config: tensors .* other shape"):
        load_generator(path)
    renamed = {("x" + k if k.startswith("depth_head") else k): v for k, v in weights.items()}
    with pytest.raises(CheckpointError, match="missing .*unexpected"):
        load_generator(_forge(tmp_path / "renamed.safetensors", renamed, GOOD))


@pytest.mark.parametrize("kind", ["not_json", "no_config", "config_list", "deep_json", "not_safetensors"])
def test_unreadable_checkpoints_are_one_line(tmp_path, weights, kind):
    path = tmp_path / f"{kind}.safetensors"
    if kind == "not_safetensors":
        path.write_bytes(b"\x00" * 64)
    elif kind == "not_json":
        _forge(path, weights, "{not json")
    elif kind == "no_config":
        _forge(path, weights)
    elif kind == "config_list":
        _forge(path, weights, [1, 2])
    else:
        _forge(path, weights, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_predict_with_a_forged_checkpoint_prints_one_line(tmp_path, weights, capsys):
    path = _forge(tmp_path / "f.safetensors", weights, {**GOOD, "image_size": -5})
    (tmp_path / "x.jpg").write_bytes(b"")
    assert main(["predict", str(tmp_path / "x.jpg"), "-o", str(tmp_path / "out"), "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "image_size" in err[0]


def test_forged_training_state_is_refused_on_resume(tmp_path, weights, capsys):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"generator": weights, "model_config": {**GOOD, "encoder_name": "os.system"}, "epoch": 0, "step": 0},
               run / "last.pt")
    with pytest.raises(CheckpointError, match="not a known encoder"):
        load_training_state(run / "last.pt")
    torch.save({"generator": weights}, run / "last.pt")
    with pytest.raises(CheckpointError, match="not a facevision training checkpoint"):
        load_training_state(run / "last.pt")


# ----------------------------------------------------------------------------- FLAME pickles
def _deep_list_pickle(depth: int) -> bytes:
    """A list nested ``depth`` levels deep, written opcode by opcode (pickle.dumps itself would recurse)."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def _shared_tree_pickle(levels: int) -> bytes:
    """L0 = []; L(i+1) = [L(i), L(i)] through the memo: a small file that expands to 2**levels lists."""
    import struct

    out = [b"\x80\x04", b"]\x94"]  # EMPTY_LIST, MEMOIZE -> memo[0]
    for i in range(levels):
        get = b"j" + struct.pack("<I", i)  # LONG_BINGET i
        out.append(b"](" + get + get + b"e\x940")  # EMPTY_LIST MARK get get APPENDS MEMOIZE POP
    out.append(b"j" + struct.pack("<I", levels) + b".")
    return b"".join(out)


@pytest.fixture(scope="module")
def flame_arrays():
    return make_synthetic_flame_arrays(n_shape=8, n_expr=4, n_lat=14, n_lon=18)


def _huge_sparse_pickle(arrays) -> bytes:
    import scipy.sparse

    m = scipy.sparse.csc_matrix(np.asarray(arrays["J_regressor"]))
    m.__dict__["_shape"] = (1_000_000, 2_000_000)  # 2e12 elements: 16 TB once made dense
    m.__dict__["indptr"], m.__dict__["indices"], m.__dict__["data"] = np.array([0, 1]), np.array([5]), np.ones(1)
    return pickle.dumps({**arrays, "J_regressor": m}, protocol=2)


@pytest.mark.parametrize("kind,why", [("deep", "nested"), ("tree", "objects"), ("sparse", "sparse matrix"),
                                      ("codec", "not a readable FLAME pickle")])
def test_crafted_flame_pickles_are_refused_in_one_line(tmp_path, flame_arrays, kind, why):
    path = tmp_path / f"{kind}.pkl"
    if kind == "deep":
        path.write_bytes(_deep_list_pickle(200_000))
    elif kind == "tree":
        path.write_bytes(_shared_tree_pickle(24))  # 16.7 million lists from 300 bytes
    elif kind == "sparse":
        path.write_bytes(_huge_sparse_pickle(flame_arrays))
    else:  # _codecs.encode is allowed for bytes, but not with a compression codec
        path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R.")
    t = time.perf_counter()
    with pytest.raises(FlameModelError) as info:
        load_flame_model(path)
    assert str(info.value).startswith(f"{path}: ") and why in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - t < 10

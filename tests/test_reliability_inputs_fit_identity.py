"""Reliability II: ``facevision fit-identity`` names each bad input once, takes folders of photos, and warns in one
line when a photo fits the shared identity much worse than its own (it may show someone else).

The network is replaced by a stub whose maps are the project's face model rendered with a known identity per
photo name (``a_*`` one person, ``b_*`` another), so the fit sees what a perfect network would predict."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from facevision.face.face_model import load_face_model
from facevision.face.images import read_photo
from facevision.face.reference import load_reference
from facevision.cli import main
from facevision.fit.model_fit import fit_face_model
from support.face_model import render_face_model


class _StubPredictor:
    """Reads the photo (so unreadable files fail as they would), then returns one face of the identity its name
    says, with an expression and pose drawn from the photo's number."""

    def __init__(self):
        self.face_model = load_face_model()
        self.reference = load_reference()
        self.config = SimpleNamespace(face_model=None)
        rng = np.random.default_rng(3)
        a = rng.normal(0, 1, self.face_model.n_id)
        self.ids = {"a": a, "b": -a}

    def __call__(self, path):
        read_photo(path)
        who, number = path.stem.split("_")
        rng = np.random.default_rng(int(number))
        expression = rng.normal(0, 0.7, self.face_model.n_exp)
        depth, corr, mask, _, _ = render_face_model(self.face_model, self.ids[who], expression,
                                                    rng.uniform(-25, 25), rng.uniform(-10, 10), 0.0)
        fit = fit_face_model(depth, corr, mask, self.face_model)
        return [SimpleNamespace(ok=True, depth_px=depth, corr=corr, mask=mask, model_fit=fit, crop_angle=0.0)]


@pytest.fixture()
def stub(monkeypatch):
    from facevision.predict.predictor import Predictor

    monkeypatch.setattr(Predictor, "from_pretrained", classmethod(lambda cls, *a, **k: _StubPredictor()))


def _photo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 100, 90)).save(path)
    return path


def test_folders_are_read_and_each_bad_input_is_named_once(tmp_path, stub, capsys):
    person = tmp_path / "person"
    for i in range(3):
        _photo(person / f"a_{i}.png")
    (person / "a_9.png").write_bytes(b"not a png")
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.jpg"
    rc = main(["fit-identity", str(person), str(empty), str(missing), "-o", str(tmp_path / "out")])
    assert rc == 1  # three inputs failed, the three photos were fitted
    err = capsys.readouterr().err.strip().splitlines()
    bad = (person / "a_9.png", empty, missing)
    assert len(err) == 3, err
    for path in bad:
        lines = [line for line in err if f"{path}:" in line]
        assert len(lines) == 1 and lines[0].count(str(path)) == 1, (path, err)
    assert not any("warning" in line for line in err)
    data = json.loads((tmp_path / "out" / "identity.json").read_text())
    assert [p["photo"] for p in data["photos"]] == [str(person / f"a_{i}.png") for i in range(3)]
    assert data["failed"] == 3 and data["warnings"] == []
    assert all(p["rms_px"] <= 1.15 * p["rms_px_alone"] for p in data["photos"])


def test_a_photo_of_someone_else_gets_one_warning_line(tmp_path, stub, capsys):
    photos = [_photo(tmp_path / f"a_{i}.png") for i in range(3)] + [_photo(tmp_path / "b_7.png")]
    assert main(["fit-identity", *map(str, photos), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and "different person" in err[0], err
    assert str(photos[3]) in err[0] and not any(str(p) in err[0] for p in photos[:3])
    data = json.loads((tmp_path / "out" / "identity.json").read_text())
    odd = data["photos"][3]
    assert odd["rms_px"] > 1.15 * odd["rms_px_alone"] and len(data["warnings"]) == 1

"""Issue "Reliability II", ``facevision predict`` and its network: an OUT so long that ``OUT/<name>`` passes
PATH_MAX fails that photo in one line (the batch goes on, summary.json is written); a file name holding a
newline or other control characters cannot split an error line; ONNX Runtime's telemetry is turned off where
the session is made.

The detector is stubbed (bright images have one face at FACE_BOX) and the network returns known maps, as in
test_reliability_predict.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevision.predict.runner import BatchConfig, run_batch
from facevision.predict.predictor import PredictConfig
from support.stub_detector import StubDetector
from support.synthetic import fixed_maps_model, render_reference


def _photo(path: Path, size: tuple[int, int] = (90, 100)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    Image.fromarray(np.random.default_rng(0).integers(150, 255, (h, w, 3)).astype(np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture(scope="module")
def predictor():
    f = render_reference(128, 10, 0, 0)
    return StubDetector(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(batch_size=4))


def _deep_folder(root: Path, length: int) -> Path:
    """A folder whose path is ``length`` bytes long, made of components under NAME_MAX."""
    out = root
    while len(os.fsencode(out)) < length:
        out = out / ("o" * min(200, length - len(os.fsencode(out)) - 1))
    return out


def test_out_too_long_for_one_photo_fails_that_photo_in_one_line(tmp_path, predictor, capsys):
    try:
        path_max = os.pathconf(tmp_path, "PC_PATH_MAX")
    except (AttributeError, OSError, ValueError):
        pytest.skip("no PATH_MAX to pass on this platform")
    if path_max > 8192:
        pytest.skip(f"PATH_MAX is {path_max}: too long a path to build in a test")
    long_stem, short_stem = "p" * 180, "short"
    photos = [_photo(tmp_path / "photos" / f"{s}.png") for s in (long_stem, short_stem)]
    # OUT/short and everything under it fit; OUT/ppp...p (180 bytes more) does not
    out = _deep_folder(tmp_path / "out", path_max - 120)
    summary = run_batch(predictor, [str(p) for p in photos], out, BatchConfig(log=False))
    assert summary["counts"] == {"ok": 1, "failed": 1, "skipped": 0}
    bad, good = summary["inputs"]
    assert bad["status"] == "failed" and "too long for the file system" in bad["reason"]
    assert good["status"] == "ok" and (out / short_stem / "face0" / "result.json").is_file()
    assert json.loads((out / "summary.json").read_text())["counts"]["failed"] == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"facevision predict: error: {photos[0]}: output folder ")
    assert "use a shorter output folder or file name" in err[0]


def test_a_file_name_with_a_newline_stays_on_one_error_line(tmp_path, predictor, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    try:
        bad = folder / "two\nlines\x1b[31m.png"
        bad.write_text("not an image")
    except OSError as exc:
        pytest.skip(f"this file system refuses control characters in names ({exc})")
    good = _photo(folder / "fine.png")
    summary = run_batch(predictor, [str(bad), str(good)], tmp_path / "out", BatchConfig(log=True))
    assert summary["counts"] == {"ok": 1, "failed": 1, "skipped": 0}
    assert summary["inputs"][0]["input"] == str(bad)  # summary.json keeps the real name (JSON escapes it)
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith(f"facevision predict: error: {folder}/two\\nlines\\x1b[31m.png: ") and "\x1b" not in err[0]
    assert len([line for line in captured.out.splitlines() if line.strip()]) == 1  # the good photo's line


def test_onnx_runtime_telemetry_is_turned_off_where_the_session_is_made(monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    from facevision.model.onnx_network import OnnxNetwork

    calls = []
    monkeypatch.setattr(ort, "disable_telemetry_events", lambda: calls.append(1), raising=False)
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        OnnxNetwork(b"not an onnx file")
    assert calls == [1]
    monkeypatch.delattr(ort, "disable_telemetry_events")  # an ONNX Runtime without it: still just the load error
    with pytest.raises(ValueError, match="ONNX Runtime cannot load"):
        OnnxNetwork(b"not an onnx file")

"""Issue "Reliability II" item 6b/6c, faces left out: without ``--all-faces`` only the largest face of a photo is
processed; the summary says per photo how many faces were found and left out, stderr says it once per run with
the flag that takes them, and a rerun with ``--all-faces`` over that OUT processes them instead of calling the
photo "already done".

The detector is replaced by a stand-in that finds three faces in bright photos (MediaPipe does not fire on
generated pictures); the network returns known maps; writers run in the calling thread.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facevision.predict.predictor as pp
from facevision.face.detect import FaceBox
from facevision.cli import main
from facevision.predict.runner import BatchConfig, run_batch
from facevision.predict.outputs import OutputConfig
from facevision.predict.predictor import PredictConfig, Predictor
from facevision.predict.writer import WriterConfig
from support.synthetic import fixed_maps_model, render_reference

BOXES = [FaceBox((20.0, 30.0, 120.0, 140.0), 0.9), FaceBox((140.0, 40.0, 190.0, 95.0), 0.95),
         FaceBox((150.0, 120.0, 185.0, 160.0), 0.8)]  # largest first: 0, 1, 2


@pytest.fixture(autouse=True)
def three_faces(monkeypatch):
    """Bright photos hold the three faces of BOXES, dark ones none (every pass of the detector)."""
    monkeypatch.setattr(pp, "detect_faces", lambda image, config: list(BOXES) if image.mean() > 100 else [])


def _photo(path: Path, value: int = 200) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(np.clip(rng.normal(value, 20, (180, 210, 3)), 0, 255).astype(np.uint8)).save(path)
    return path


def _predictor(all_faces: bool) -> Predictor:
    f = render_reference(128, 10, 0, 0)
    return Predictor(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(mesh=None, all_faces=all_faces,
                                                                             batch_size=4))


def _config() -> BatchConfig:
    return BatchConfig(log=False, writer=WriterConfig(workers=0),
                       output=OutputConfig(outputs=frozenset({"depth", "corr", "mask"})))


def _notes(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "--all-faces" in line]


def test_the_faces_left_out_are_counted_per_photo_and_said_once(tmp_path, capsys):
    photos = [str(_photo(tmp_path / "in" / f"p{i}.png")) for i in range(2)] + [str(_photo(tmp_path / "in" / "dark.png",
                                                                                         20))]
    out = tmp_path / "out"
    s = run_batch(_predictor(False), photos, out, _config())
    recs = {r["output"]: r for r in s["inputs"]}
    for name in ("p0", "p1"):
        assert recs[name]["status"] == "ok" and len(recs[name]["faces"]) == 1
        assert recs[name]["faces_detected"] == 3 and recs[name]["faces_skipped"] == 2
        image = json.loads((out / name / "image.json").read_text())
        assert image["faces_detected"] == 3 and image["all_faces"] is False
        assert json.loads((out / name / "face0" / "result.json").read_text())["bbox"] == list(BOXES[0].box)
    assert recs["dark"]["status"] == "failed" and "faces_skipped" not in recs["dark"]
    assert s["faces_skipped"] == 4
    notes = _notes(capsys)
    assert len(notes) == 1 and "4 more face(s)" in notes[0] and "2 photo(s)" in notes[0]  # once for the run
    on_disk = {r["output"]: r for r in json.loads((out / "summary.json").read_text())["inputs"]}
    assert on_disk["p0"]["faces_skipped"] == 2
    # a later batch of another photo still lists p0 and p1 (earlier_batch) with their counts
    run_batch(_predictor(False), [str(_photo(tmp_path / "in" / "q.png"))], out, _config())
    listed = {r["output"]: r for r in json.loads((out / "summary.json").read_text())["inputs"]}
    assert listed["p0"]["earlier_batch"] and listed["p0"]["faces_detected"] == 3 and listed["p0"]["faces_skipped"] == 2


def test_a_rerun_with_all_faces_processes_the_faces_left_out(tmp_path, capsys):
    photo = [str(_photo(tmp_path / "a.png"))]
    out = tmp_path / "out"
    run_batch(_predictor(False), photo, out, _config())
    assert sorted(p.name for p in (out / "a").iterdir()) == ["face0", "image.json"]
    s = run_batch(_predictor(True), photo, out, _config())  # was: "already done", skipped
    rec = s["inputs"][0]
    assert s["counts"] == {"ok": 1, "failed": 0, "skipped": 0} and len(rec["faces"]) == 3
    assert rec["faces_detected"] == 3 and rec["faces_skipped"] == 0 and s["faces"] == 3
    assert sorted(p.name for p in (out / "a").iterdir()) == ["face0", "face1", "face2", "image.json"]
    boxes = [json.loads((out / "a" / f"face{k}" / "result.json").read_text())["bbox"] for k in range(3)]
    assert boxes == [list(b.box) for b in BOXES]
    assert json.loads((out / "a" / "image.json").read_text())["all_faces"] is True
    capsys.readouterr()
    # now done for both kinds of run: every face is there
    assert run_batch(_predictor(True), photo, out, _config())["counts"]["skipped"] == 1
    s = run_batch(_predictor(False), photo, out, _config())
    assert s["counts"]["skipped"] == 1 and s["inputs"][0]["faces_skipped"] == 0
    assert _notes(capsys) == []  # nothing was left out


def test_the_command_says_it_once_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Predictor, "from_pretrained",
                        classmethod(lambda cls, *a, config=None, **kw: _predictor(config.all_faces)))
    photos = [str(_photo(tmp_path / f"p{i}.png")) for i in range(3)]
    out = tmp_path / "out"
    assert main(["predict", *photos, "-o", str(out), "--outputs", "depth", "--writers", "0", "-q"]) == 0
    notes = _notes(capsys)
    assert len(notes) == 1 and "6 more face(s) found in 3 photo(s)" in notes[0]
    assert main(["predict", *photos, "-o", str(out), "--outputs", "depth", "--writers", "0", "-q",
                 "--all-faces"]) == 0
    err = capsys.readouterr().err
    assert "3 ok (0 already done)" in err and "9 face(s)" in err

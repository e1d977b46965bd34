"""Issue "Reliability II" items 15 and 16 (part), listing the inputs of ``facevision predict``: an earlier run's
output folder is never read as photos (its crop.png, depth_vis.png... are not searched for faces), links to
folders, broken links and image files of a format that cannot be read are no longer skipped silently (one line
per kind and run), and a file of several frames or pages says that only the first is read.

The detector is stubbed (bright images have one face) and the network returns known maps, as in
test_reliability_predict.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facevision.predict.inputs as inputs
from facevision.predict.inputs import expand_inputs, output_marker
from facevision.predict.lock import LOCK_NAME
from facevision.predict.runner import BatchConfig, run_batch
from facevision.predict.outputs import OutputConfig
from facevision.predict.predictor import PredictConfig
from facevision.predict.writer import WriterConfig
from support.stub_detector import StubDetector
from support.synthetic import fixed_maps_model, render_reference


@pytest.fixture(scope="module")
def predictor():
    f = render_reference(128, 10, 0, 0)
    return StubDetector(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(batch_size=4, mesh=None))


def _config() -> BatchConfig:
    return BatchConfig(log=False, writer=WriterConfig(workers=0),
                       output=OutputConfig(outputs=frozenset({"crop", "depth", "depth_vis", "corr", "mask"})))


def _photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(150, 255, (200, 180, 3)).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _err(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_an_earlier_output_folder_inside_an_input_folder_is_skipped_and_said_once(tmp_path, predictor, capsys):
    photos = tmp_path / "photos"
    _photo(photos / "a.png", 1)
    _photo(photos / "sub" / "b.png", 2)
    run_batch(predictor, [str(photos)], photos / "old", _config())  # OUT inside the photos: 2 photos, 10 PNGs
    assert len(list((photos / "old").rglob("*.png"))) >= 10
    capsys.readouterr()
    s = run_batch(predictor, [str(photos)], tmp_path / "new", _config())
    assert sorted(Path(r["input"]).name for r in s["inputs"]) == ["a.png", "b.png"]  # was: + crop.png, depth_vis.png...
    assert s["counts"] == {"ok": 2, "failed": 0, "skipped": 0}
    err = _err(capsys)
    assert len(err) == 1 and "note: skipped 1 folder(s) holding facevision predict outputs" in err[0]
    assert str(photos / "old") in err[0]


def test_an_output_folder_given_as_input_is_one_line(tmp_path, predictor, capsys):
    out = tmp_path / "out"
    run_batch(predictor, [str(_photo(tmp_path / "rgb.png"))], out, _config())
    capsys.readouterr()
    s = run_batch(predictor, [str(out), str(out / "rgb"), str(out / "*" / "face0" / "*.png")], tmp_path / "x", _config())
    reasons = [r["reason"] for r in s["inputs"]]
    assert reasons == [
        "is an output folder of an earlier facevision predict run (it holds summary.json); outputs are not read as "
        "photos",
        "is the folder of one photo of an earlier facevision predict run (it holds image.json); outputs are not read "
        "as photos",
        "the pattern matches only facevision predict outputs of an earlier run; outputs are not read as photos"]
    assert len(_err(capsys)) == 3 and not (tmp_path / "x" / "crop").exists()  # one line each, no note besides


def test_what_marks_an_output_folder(tmp_path):
    running = tmp_path / "running"
    _photo(running / "p.png")
    (running / LOCK_NAME).write_text('{"pid": 1}')
    assert output_marker(running) == LOCK_NAME
    own = tmp_path / "mine"  # a folder of photos with an image.json / summary.json of its own: not predict's
    _photo(own / "p.png")
    (own / "image.json").write_text(json.dumps({"width": 180, "height": 200}))
    (own / "summary.json").write_text("not json")
    assert output_marker(own) is None
    files, failures = expand_inputs([str(tmp_path)], notes=(notes := []))
    assert files == [own / "p.png"] and failures == []
    assert len(notes) == 1 and str(running) in notes[0]


def test_links_and_unreadable_formats_are_counted_once(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    _photo(photos / "a.png")
    elsewhere = tmp_path / "elsewhere"
    _photo(elsewhere / "b.png")
    (photos / "linked").symlink_to(elsewhere, target_is_directory=True)
    (photos / "linked2").symlink_to(elsewhere, target_is_directory=True)
    (photos / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (photos / "c.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (photos / "d.cr2").write_bytes(b"II*\0")
    (photos / "notes.txt").write_text("not an image: not counted")
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(photos / "e.avif") if inputs._pillow_reads(".avif") \
        else (photos / "e.avif").write_bytes(b"\0")
    monkeypatch.setattr(inputs, "_pillow_reads", lambda suffix: False)  # a Pillow without AVIF (and HEIF) support
    notes: list[str] = []
    files, failures = expand_inputs([str(photos)], notes=notes)
    assert files == [photos / "a.png"] and failures == []
    assert len(notes) == 3
    assert notes[0].startswith("skipped 2 symbolic link(s) to folders") and str(photos / "linked") in notes[0]
    assert notes[1].startswith("skipped 1 broken symbolic link(s)") and "gone.jpg" in notes[1]
    assert notes[2].startswith("skipped 3 image file(s) of a format that cannot be read here (.avif, .cr2, .heic)")
    files, failures = expand_inputs([str(photos / "gone.jpg"), str(photos / "*.jpg")])  # given: one line each
    assert files == [] and [f["reason"] for f in failures] == [
        f"broken symbolic link (points to {tmp_path / 'deleted.jpg'}, which does not exist)",
        "the pattern matches only broken symbolic links (pointing to nothing)"]
    monkeypatch.undo()
    if inputs._pillow_reads(".avif"):  # this Pillow reads AVIF: such photos are inputs
        files, _ = expand_inputs([str(photos)])
        assert photos / "e.avif" in files


def test_the_notes_come_once_per_run_on_stderr(tmp_path, predictor, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        _photo(d / "p.png")
        (d / "gone.png").symlink_to(d / "nothing.png")
    s = run_batch(predictor, [str(a), str(b)], tmp_path / "out", _config())
    assert s["counts"]["ok"] == 2
    err = _err(capsys)
    assert err == [f"facevision predict: note: skipped 2 broken symbolic link(s) (pointing to nothing), e.g. "
                   f"{a / 'gone.png'}"]


def test_only_the_first_frame_of_an_animation_or_multipage_file_is_read_and_said(tmp_path, predictor, capsys):
    frames = [Image.fromarray(np.full((120, 100, 3), v, np.uint8)) for v in (200, 30, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:2])
    still = _photo(tmp_path / "still.png")
    s = run_batch(predictor, [str(tmp_path / "anim.gif"), str(tmp_path / "pages.tif"), str(still)], tmp_path / "out",
                  _config())
    assert s["counts"]["ok"] == 3  # the first frame is bright: one face each
    err = _err(capsys)
    assert err == [f"facevision predict: note: {tmp_path / 'anim.gif'}: holds 3 frames or pages; only the first is read",
                   f"facevision predict: note: {tmp_path / 'pages.tif'}: holds 2 frames or pages; only the first is "
                   "read"]

"""Issue #11, ``facevision predict``: output names stay inside OUT, a full disk fails one input in one line,
stale temporaries go, bad OUT / locked folders / clashing names / folders without images each get one
line while the batch goes on, OUT is never read back, summary.json indexes all of OUT, large photos are
reduced with results in original pixels.

The detector is stubbed (bright images have one face at FACE_BOX) and the network returns known maps, as
in test_predict_cli; permission cases drop root's privileges (seteuid nobody) where the tests run as root.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevision.cli import main
from facevision.predict.inputs import expand_inputs
from facevision.predict.out_folder import safe_stem
from facevision.predict.runner import BatchConfig, run_batch
from facevision.predict.predictor import PredictConfig
from support.synthetic import fixed_maps_model, render_reference
from support.stub_detector import FACE_BOX, StubDetector

DEAD_PID = 2**22 + 4321
NOBODY = 65534


def _photo(path: Path, size: tuple[int, int] = (180, 200), value: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(len(path.name))
    arr = rng.integers(150, 255, (h, w, 3)).astype(np.uint8) if value is None else np.full((h, w, 3), value, np.uint8)
    Image.fromarray(arr).save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG")  # "...jpg": no ext for PIL
    return path


@pytest.fixture(scope="module")
def predictor():
    f = render_reference(128, 10, 0, 0)
    return StubDetector(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(batch_size=4))


def _quiet() -> BatchConfig:
    return BatchConfig(log=False)


def _errors(capsys) -> list[str]:
    return [e for e in capsys.readouterr().err.splitlines() if e.strip()]


# ----------------------------------------------------------------------------- 1. names inside OUT
def test_safe_stem_is_never_a_path():
    for name, want in [("...jpg", "image"), ("..jpg", "image"), (".jpg", "jpg"), (".hidden.jpg", "hidden"),
                       ("a\\b.jpg", "a_b"), ("x\ny.png", "x_y"), ("  .. .png", "image"), ("ok.png", "ok")]:
        got = safe_stem(Path(name))
        assert got == want and got not in (".", "..", "") and "/" not in got and not got.startswith(".")
    long = safe_stem(Path("é" * 300 + ".jpg"))
    assert len(long.encode()) <= 200 and long == "é" * 100


def test_dot_named_photos_stay_inside_out_even_with_overwrite(tmp_path, predictor):
    work = tmp_path / "work"
    sentinel = work / "face0" / "keep.txt"  # a face* folder in OUT's parent: --overwrite must not touch it
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("mine")
    photos = [_photo(work / "photos" / n) for n in ("...jpg", "..jpg", ".hidden.jpg")]
    out = work / "out"
    for overwrite in (False, True):
        s = run_batch(predictor, [str(p) for p in photos], out, BatchConfig(log=False, overwrite=overwrite))
        assert s["counts"]["ok"] == 3
    assert sorted(p.name for p in work.iterdir()) == ["face0", "out", "photos"]  # nothing written beside OUT
    assert sentinel.read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["hidden", "image", "image_2", "summary.json"]
    for name in ("hidden", "image", "image_2"):
        assert (out / name / "face0" / "result.json").is_file()


def test_a_symlinked_output_folder_is_not_followed(tmp_path, predictor):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "rgb").symlink_to(elsewhere, target_is_directory=True)
    s = run_batch(predictor, [str(_photo(tmp_path / "rgb.jpg"))], out, _quiet())
    assert s["inputs"][0]["output"] == "rgb_2" and s["counts"]["ok"] == 1
    assert list(elsewhere.iterdir()) == []


# ----------------------------------------------------------------------------- 2. disk full
@pytest.fixture()
def full_disk_for(monkeypatch):
    """``full_disk_for(text)``: writes through os.write to files whose path contains ``text`` hit ENOSPC."""
    real = os.write
    victims: list[str] = []

    def write(fd, data):
        if any(v in os.readlink(f"/proc/self/fd/{fd}") for v in victims):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    return victims.append


def test_disk_full_fails_that_input_in_one_line_and_leaves_nothing(tmp_path, predictor, full_disk_for, capsys):
    good, bad = _photo(tmp_path / "in" / "good.jpg"), _photo(tmp_path / "in" / "bad.jpg")
    out = tmp_path / "out"
    full_disk_for(f"{out}/.bad.")  # bad's folder is written as a whole, in .bad.<pid>-<random>.tmp beside OUT/bad
    s = run_batch(predictor, [str(good), str(bad)], out, _quiet())
    recs = {Path(r["input"]).name: r for r in s["inputs"]}
    assert recs["good.jpg"]["status"] == "ok" and recs["bad.jpg"]["status"] == "failed"
    reason = recs["bad.jpg"]["reason"]
    assert f"{out}/bad/face0/" in reason and "disk full" in reason  # the final name, not the temporary one
    err = _errors(capsys)
    assert len(err) == 1 and str(bad) in err[0] and "disk full" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["good", "summary.json"]  # no partial folder, no temporary
    assert json.loads((out / "summary.json").read_text())["counts"] == {"ok": 1, "failed": 1, "skipped": 0}


def test_disk_full_for_the_summary_is_one_line(tmp_path, predictor, full_disk_for, capsys):
    out = tmp_path / "out"
    full_disk_for(".summary.")
    s = run_batch(predictor, [str(_photo(tmp_path / "a.jpg"))], out, _quiet())
    err = _errors(capsys)
    assert len(err) == 1 and f"{out / 'summary.json'}: no space left on device (disk full)" in err[0]
    assert "summary_error" in s and not (out / "summary.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["a"]  # no temporary left


# ----------------------------------------------------------------------------- 3. stale temporaries
def test_stale_temporaries_in_out_are_removed_on_start(tmp_path, predictor):
    out = tmp_path / "out"
    face = out / "x" / "face0"
    face.mkdir(parents=True)
    stale = [face / f".crop.{DEAD_PID}-abcdefgh.tmp.png", out / ".summary.q1w2e3r4.tmp.json"]
    for p in stale:
        p.write_bytes(b"partial")
    (face / f".mesh.{DEAD_PID}-zyxwvuts.tmp").mkdir()
    (face / f".mesh.{DEAD_PID}-zyxwvuts.tmp" / "mesh.obj").write_bytes(b"v 0 0 0\n")
    keep = face / "crop.png"
    keep.write_bytes(b"x")
    run_batch(predictor, [str(_photo(tmp_path / "dark.png", value=20))], out, _quiet())
    assert sorted(p.name for p in face.iterdir()) == ["crop.png"]
    assert not stale[1].exists()


# ----------------------------------------------------------------------------- 6. one line each, the batch goes on
def test_out_is_an_existing_file(tmp_path, capsys):
    out = tmp_path / "out.txt"
    out.write_text("not a folder")
    rc = main(["predict", str(_photo(tmp_path / "a.jpg")), "-o", str(out), "--checkpoint", str(tmp_path / "none")])
    err = _errors(capsys)
    assert rc == 2 and len(err) == 1 and f"{out}: exists and is not a folder" in err[0]
    assert out.read_text() == "not a folder"


@contextmanager
def _unprivileged():
    """Permissions apply to the body: as root, run it with the effective ids of nobody."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture()
def shared(tmp_path):
    """A folder every user may enter (tmp_path is root-only when the tests run as root)."""
    try:
        with _unprivileged():
            pass
    except PermissionError:
        pytest.skip("cannot drop root privileges here (no CAP_SETUID)")
    d = Path(tempfile.mkdtemp(prefix="facevision-perm-"))
    d.chmod(0o777)
    yield d
    for p in [d, *d.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o777)
    shutil.rmtree(d)


def test_out_not_writable(shared, capsys):
    out = shared / "out"
    out.mkdir()
    out.chmod(0o555)
    photo = _photo(shared / "a.jpg")
    with _unprivileged():
        rc = main(["predict", str(photo), "-o", str(out), "--checkpoint", str(shared / "none")])
    err = _errors(capsys)
    assert rc == 2 and len(err) == 1 and f"{out}: output folder is not writable (Permission denied)" in err[0]


def test_a_folder_that_cannot_be_entered_is_one_line_and_the_rest_goes_on(shared, predictor, capsys):
    photos = shared / "photos"
    ok = _photo(photos / "ok.jpg")
    locked = photos / "locked"
    hidden = _photo(locked / "a.jpg")
    locked.chmod(0o000)
    out = shared / "out"
    out.mkdir()
    out.chmod(0o777)
    with _unprivileged():
        s = run_batch(predictor, [str(photos), str(hidden)], out, _quiet())
    err = _errors(capsys)
    assert len(err) == 2
    assert f"{locked}: cannot enter folder (Permission denied)" in err[0]
    assert f"{hidden}: permission denied" in err[1]
    recs = {r["input"]: r for r in s["inputs"]}
    assert recs[str(ok)]["status"] == "ok" and (out / "ok" / "face0" / "result.json").is_file()
    assert s["counts"] == {"ok": 1, "failed": 2, "skipped": 0}
    assert json.loads((out / "summary.json").read_text())["counts"] == s["counts"]


def test_photos_named_like_the_batch_files(tmp_path, predictor, capsys):
    photos = [_photo(tmp_path / "in" / "summary.json.jpg"), _photo(tmp_path / "in" / "report.html.jpg")]
    out = tmp_path / "out"
    s = run_batch(predictor, [str(p) for p in photos], out, BatchConfig(log=False, report=True))
    assert s["counts"]["ok"] == 2 and (out / "summary.json").is_file() and (out / "report.html").is_file()
    assert {r["output"] for r in s["inputs"]} == {"summary.json_2", "report.html_2"}
    err = _errors(capsys)
    assert len(err) == 2 and all("warning" in e and "batch's own files" in e for e in err)
    assert str(photos[0]) in err[0] and str(photos[1]) in err[1]


def test_a_folder_in_the_way_of_summary_json_is_one_line(tmp_path, predictor, capsys):
    out = tmp_path / "out"
    (out / "summary.json").mkdir(parents=True)  # left by an older version for a photo named summary.json.jpg
    s = run_batch(predictor, [str(_photo(tmp_path / "a.jpg"))], out, _quiet())
    err = _errors(capsys)
    assert len(err) == 1 and f"{out / 'summary.json'}: cannot write" in err[0]
    assert s["counts"]["ok"] == 1 and (out / "a" / "face0" / "result.json").is_file()


# ----------------------------------------------------------------------------- 7. OUT inside an input folder
def test_out_inside_an_input_folder_is_never_read_back(tmp_path, predictor, capsys):
    photos = tmp_path / "photos"
    _photo(photos / "rgb.jpg")
    out = photos / "out"
    s1 = run_batch(predictor, [str(photos)], out, _quiet())
    assert s1["counts"] == {"ok": 1, "failed": 0, "skipped": 0}
    assert len(list(out.rglob("*.png"))) > 3  # the outputs now lie inside the input folder
    s2 = run_batch(predictor, [str(photos)], out, _quiet())
    assert [Path(r["input"]).name for r in s2["inputs"]] == ["rgb.jpg"] and s2["counts"]["skipped"] == 1
    assert _errors(capsys) == []
    files, failures = expand_inputs([str(out / "rgb" / "face0" / "crop.png"), str(photos / "**" / "*.png")],
                                    exclude=out)
    assert files == [] and [f["reason"] for f in failures] == [
        f"lies in the output folder {out}; outputs are not read as photos",
        "the pattern matches only files in the output folder"]


# ----------------------------------------------------------------------------- 8. folders without images
def test_directory_named_like_a_photo_and_empty_folder_say_so(tmp_path, predictor, capsys):
    (tmp_path / "x.jpg").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    s = run_batch(predictor, [str(tmp_path / "x.jpg"), str(tmp_path / "empty"), str(tmp_path / "x.j*g")],
                  tmp_path / "out", _quiet())
    reasons = [r["reason"] for r in s["inputs"]]
    assert reasons == ["is a folder, not an image file, and holds no images",
                       "folder holds no images (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp, .gif, "
                       ".jfif, .pgm, .ppm in it and its subfolders)",
                       "the pattern matches only folders without images"]
    err = _errors(capsys)
    assert len(err) == 3 and all(reason in line for reason, line in zip(reasons, err))


# ----------------------------------------------------------------------------- 9. summary.json indexes OUT
def test_summary_keeps_inputs_finished_by_earlier_batches(tmp_path, predictor):
    out = tmp_path / "out"
    a, b, dark = _photo(tmp_path / "a.jpg"), _photo(tmp_path / "b.jpg"), _photo(tmp_path / "dark.png", value=20)
    run_batch(predictor, [str(a), str(dark)], out, _quiet())
    s = run_batch(predictor, [str(b)], out, _quiet())
    listed = {r["output"]: r for r in json.loads((out / "summary.json").read_text())["inputs"]}
    assert set(listed) == {"a", "b"} and listed["a"]["earlier_batch"] and "earlier_batch" not in listed["b"]
    assert s["counts"] == {"ok": 1, "failed": 0, "skipped": 0} and s["finished_in_out"] == 2
    (out / "a" / "face0" / "result.json").unlink()  # a is no longer finished: it leaves the index
    run_batch(predictor, [str(b)], out, _quiet())
    assert [r["output"] for r in json.loads((out / "summary.json").read_text())["inputs"]] == ["b"]


# ----------------------------------------------------------------------------- 10. large photos
def test_large_photo_is_reduced_and_results_are_in_original_pixels(tmp_path, predictor):
    out = tmp_path / "out"
    big = _photo(tmp_path / "big.png", size=(400, 360))
    s = run_batch(predictor, [str(big)], out, BatchConfig(log=False, max_pixels=36_000))
    assert s["counts"]["ok"] == 1
    image = json.loads((out / "big" / "image.json").read_text())
    assert image["image_size"] == [400, 360] and image["processed_size"] == [200, 180]
    res = json.loads((out / "big" / "face0" / "result.json").read_text())
    assert res["bbox"] == [2 * v for v in FACE_BOX] and res["photo_scale"] == [0.5, 0.5]
    x0, y0, x1, y1 = res["crop_box"]
    assert x1 - x0 > 200  # the crop square around a 200 x 220 px face of the original photo
    lm = np.array(res["landmarks68"])
    assert np.all((lm >= [x0, y0]) & (lm <= [x1, y1]))
    full = run_batch(predictor, [str(big)], tmp_path / "full", BatchConfig(log=False, max_pixels=None))
    assert full["counts"]["ok"] == 1
    assert "photo_scale" not in json.loads((tmp_path / "full" / "big" / "face0" / "result.json").read_text())

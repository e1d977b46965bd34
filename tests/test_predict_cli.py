"""``facevision predict`` end to end on generated images: bad inputs, exit codes, reruns, the HTML report.

MediaPipe's detector does not fire on synthetic images, so the per-face path is exercised by a
Predictor whose detector is replaced (bright images = one face at a known box) and whose network
returns known maps; the real detector is used for the no-face and broken-file cases.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevision.face.detect import FaceBox
from facevision.cli import main
from facevision.predict.inputs import expand_inputs
from facevision.predict.out_folder import output_names
from facevision.predict.runner import BatchConfig, run_batch
from facevision.predict.predictor import PredictConfig, Predictor
from support.stub_detector import FACE_BOX, StubDetector
from support.synthetic import fixed_maps_model, render_reference

def _save(path: Path, arr: np.ndarray, mode: str | None = None, **kw) -> Path:
    im = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    im.save(path, **kw)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    bright = (rng.integers(150, 255, (200, 180, 3))).astype(np.uint8)
    files = {
        "rgb": _save(d / "rgb.jpg", bright),
        "gray": _save(d / "gray.png", bright[..., 0]),
        "rgba": _save(d / "rgba.png", np.dstack([bright, np.full(bright.shape[:2], 200, np.uint8)])),
        "cmyk": _save(d / "cmyk.jpg", bright, mode="CMYK"),
    }
    g16 = (bright[..., 0].astype(np.uint16) * 257)
    Image.fromarray(g16).save(d / "gray16.png")
    files["gray16"] = d / "gray16.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(bright[:, :120]).save(d / "exif.jpg", exif=exif.tobytes())
    files["exif"] = d / "exif.jpg"
    sub = d / "more"
    sub.mkdir()
    files["dark"] = _save(sub / "dark.png", np.full((60, 80, 3), 20, np.uint8))  # no face
    buf = io.BytesIO()
    Image.fromarray(bright).save(buf, format="JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[:300])
    files["truncated"] = d / "truncated.jpg"
    (d / "empty.png").write_bytes(b"")
    files["empty"] = d / "empty.png"
    (d / "notes.png").write_text("not an image")
    files["text"] = d / "notes.png"
    return files


@pytest.fixture(scope="module")
def predictor():
    f = render_reference(128, 10, 0, 0)
    return StubDetector(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(batch_size=4))


def test_expand_inputs_and_names(inputs, tmp_path):
    root = inputs["rgb"].parent
    files, missing = expand_inputs([str(root), str(root / "*.jpg"), str(tmp_path / "nothing*.png")])
    assert inputs["dark"] in files  # folders are searched recursively
    assert len(files) == len(set(p.resolve() for p in files))  # globs repeating a folder's files add nothing
    assert len(missing) == 1 and "nothing" in missing[0]["input"]
    assert output_names([Path("a/x.jpg"), Path("b/x.png"), Path("y.jpg")]) == ["x", "x_2", "y"]
    (tmp_path / "o" / "x").mkdir(parents=True)
    (tmp_path / "o" / "x" / "image.json").write_text(json.dumps({"source": str(Path("b/x.png").resolve())}))
    # x is already b/x.png's folder in that OUT: a/x.jpg moves to x_2, b/x.png keeps x
    assert output_names([Path("a/x.jpg"), Path("b/x.png")], tmp_path / "o") == ["x_2", "x"]


def test_batch_good_and_bad_inputs(inputs, predictor, tmp_path, capsys):
    out = tmp_path / "out"
    paths = [str(p) for p in inputs.values()]
    summary = run_batch(predictor, paths, out, BatchConfig(log=False))
    err = capsys.readouterr().err.strip().splitlines()
    recs = {Path(r["input"]).name: r for r in summary["inputs"]}
    good = ["rgb.jpg", "gray.png", "rgba.png", "cmyk.jpg", "gray16.png", "exif.jpg"]
    for name in good:
        assert recs[name]["status"] == "ok", recs[name]
    bad = {"dark.png": "no face", "truncated.jpg": "unreadable", "empty.png": "empty", "notes.png": "not an image"}
    for name, why in bad.items():
        assert recs[name]["status"] == "failed" and why in recs[name]["reason"]
        lines = [e for e in err if name in e]
        assert len(lines) == 1 and why in lines[0]  # one line per bad input, naming the file and the reason
    assert summary["counts"] == {"ok": 6, "failed": 4, "skipped": 0}
    assert json.loads((out / "summary.json").read_text())["counts"] == summary["counts"]
    # EXIF orientation applied: stored 120 wide x 200 high, shown 200 wide x 120 high
    assert json.loads((out / "exif" / "image.json").read_text())["image_size"] == [200, 120]
    for name in good:
        d = out / Path(name).stem / "face0"
        res = json.loads((d / "result.json").read_text())
        assert res["status"] == "ok" and res["bbox"] == list(FACE_BOX)
        x0, y0, x1, y1 = res["crop_box"]
        lm = np.array(res["landmarks68"])
        assert np.all((lm >= [x0, y0]) & (lm <= [x1, y1]))
        assert (d / "mesh.obj").is_file() and (d / "preview.png").is_file()
    assert not (out / "dark").exists()


def test_rerun_skips_finished_inputs_and_overwrite_redoes(inputs, predictor, tmp_path, capsys):
    out = tmp_path / "out"
    paths = [str(inputs["rgb"]), str(inputs["gray"]), str(inputs["dark"])]
    run_batch(predictor, paths, out, BatchConfig(log=False))
    mtime = (out / "rgb" / "face0" / "result.json").stat().st_mtime_ns
    s2 = run_batch(predictor, paths, out, BatchConfig(log=False))
    assert s2["counts"] == {"ok": 2, "failed": 1, "skipped": 2}  # the failed input is tried again
    assert (out / "rgb" / "face0" / "result.json").stat().st_mtime_ns == mtime
    (out / "gray" / "face0" / "result.json").unlink()  # an unfinished face -> that input is redone
    s3 = run_batch(predictor, paths, out, BatchConfig(log=False))
    assert s3["counts"]["skipped"] == 1 and (out / "gray" / "face0" / "result.json").is_file()
    s4 = run_batch(predictor, paths, out, BatchConfig(log=False, overwrite=True))
    assert s4["counts"]["skipped"] == 0
    assert (out / "rgb" / "face0" / "result.json").stat().st_mtime_ns != mtime


def test_no_mesh_batch(inputs, tmp_path):
    f = render_reference(128)
    p = StubDetector(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(mesh=None))
    s = run_batch(p, [str(inputs["rgb"])], tmp_path / "o", BatchConfig(log=False))
    d = tmp_path / "o" / "rgb" / "face0"
    assert s["counts"]["ok"] == 1 and not (d / "mesh.ply").exists() and (d / "depth.png").is_file()
    assert "mesh" not in json.loads((d / "result.json").read_text())


def test_cli_exit_codes_and_messages(inputs, tmp_path, capsys, monkeypatch):
    import torch

    from facevision.model.generator import DualUnetGenerator
    from facevision.model.checkpoint import save_generator

    torch.manual_seed(0)
    ckpt = save_generator(tmp_path / "g.safetensors", DualUnetGenerator())
    out = tmp_path / "cli"
    tiny = _save(tmp_path / "tiny.png", np.full((2, 3, 3), 128, np.uint8))
    large = _save(tmp_path / "large.png", np.full((3000, 2500, 3), 60, np.uint8))
    rc = main(["predict", str(inputs["dark"]), str(inputs["text"]), str(tiny), str(large), "-o", str(out),
               "--checkpoint", str(ckpt), "-q"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{inputs['dark']}: no face detected" in err and f"{inputs['text']}: not an image" in err
    assert f"{tiny}: no face detected" in err and f"{large}: no face detected" in err
    assert len([e for e in err.splitlines() if ": error: " in e]) == 4  # nothing else on stderr but the summary
    summary = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in summary["inputs"]] == ["failed"] * 4
    monkeypatch.setenv("FACEVISION_CHECKPOINT", str(tmp_path / "missing.safetensors"))
    rc = main(["predict", str(inputs["dark"]), "-o", str(out)])
    assert rc == 2 and "missing.safetensors" in capsys.readouterr().err


def _external_refs(page: str) -> list[str]:
    """src/href attributes of the page's own tags (script bodies are not parsed) that are not data: URIs."""
    from html.parser import HTMLParser

    refs: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            refs.extend(v for k, v in attrs if k in ("src", "href") and v and not v.startswith("data:"))

    P().feed(page)
    return refs


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_is_self_contained_and_renders_offline(inputs, predictor, tmp_path):
    out = tmp_path / "rep"
    s = run_batch(predictor, [str(inputs["rgb"]), str(inputs["dark"])], out, BatchConfig(log=False, report=True))
    page = (out / "report.html").read_text()
    assert s["report"] == str(out / "report.html")
    assert page.count("<canvas") == 1 and 'id="face-0"' in page  # one 3D viewer, the face's data inline
    assert "data:image/jpeg;base64," in page
    assert _external_refs(page) == []  # nothing loaded from elsewhere: works offline
    assert "dark.png" in page and "no face detected" in page
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium): headless render check skipped")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--virtual-time-budget=10000", "--dump-dom",
           (out / "report.html").as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    # the inline viewer ran, showed the first face and drew its mesh into the one WebGL canvas
    assert 'data-shown="0"' in dom and int(re.search(r'data-drawn="(\d+)"', dom).group(1)) > 1000


def test_flame_hook_registers_when_a_model_is_given(inputs, predictor, tmp_path, capsys):
    import support.flame_synthetic as synth

    model = synth.save_synthetic_flame(tmp_path / "flame.npz")
    out = tmp_path / "fl"
    s = run_batch(predictor, [str(inputs["rgb"])], out, BatchConfig(log=False, flame_model=str(model)))
    d = out / "rgb" / "face0"
    res = json.loads((d / "result.json").read_text())
    assert s["counts"]["ok"] == 1 and "flame" in res and "error" not in res["flame"], res.get("flame")
    assert (d / "flame.npz").is_file() and "flame.npz" in res["files"]
    # a missing model file: a warning, and the batch still reconstructs the face
    s2 = run_batch(predictor, [str(inputs["rgb"])], tmp_path / "fl2",
                   BatchConfig(log=False, flame_model=str(tmp_path / "none.npz")))
    assert s2["counts"]["ok"] == 1 and "continuing without FLAME" in capsys.readouterr().err


def test_all_faces_writes_one_folder_per_face(inputs, tmp_path, monkeypatch):
    import facevision.predict.predictor as pp

    boxes = [FaceBox((5.0, 5.0, 40.0, 45.0), 0.99), FaceBox((60.0, 50.0, 160.0, 170.0), 0.8)]
    monkeypatch.setattr(pp, "detect_faces", lambda image, config: boxes)
    f = render_reference(128)
    p = Predictor(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig(mesh=None, all_faces=True, batch_size=3))
    s = run_batch(p, [str(inputs["rgb"]), str(inputs["gray"])], tmp_path / "o", BatchConfig(log=False))
    assert s["faces"] == 4
    for name in ("rgb", "gray"):
        r0, r1 = (json.loads((tmp_path / "o" / name / f"face{k}" / "result.json").read_text()) for k in (0, 1))
        assert r0["bbox"] == list(boxes[1].box) and r1["bbox"] == list(boxes[0].box)  # largest first
        assert r0["face_index"] == 0 and r1["face_index"] == 1


@pytest.mark.parametrize("score", ["1.5", "-0.1", "nan"])
def test_cli_min_score_out_of_range_is_an_error_naming_the_flag(inputs, tmp_path, capsys, score):
    rc = main(["predict", str(inputs["rgb"]), "-o", str(tmp_path / "o"), "--min-score", score, "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "--min-score" in err and "[0, 1]" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_cli_flame_without_a_model_is_an_error(inputs, tmp_path, capsys, monkeypatch):
    from facevision.flame.model import FLAME_MODEL_ENV

    monkeypatch.delenv(FLAME_MODEL_ENV, raising=False)
    rc = main(["predict", str(inputs["rgb"]), "-o", str(tmp_path / "o"), "--flame", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1  # one line: what is missing and how to give it
    assert "no FLAME model file" in err and "--flame-model" in err and FLAME_MODEL_ENV in err
    assert "--flame-optional" in err
    assert not (tmp_path / "o").exists()  # refused before the network loads
    # a model file that is not there: the same, naming the file (given by the flag or by the variable)
    monkeypatch.setenv(FLAME_MODEL_ENV, str(tmp_path / "nowhere.pkl"))
    assert main(["predict", str(inputs["rgb"]), "-o", str(tmp_path / "o"), "--flame", "-q"]) == 2
    err = capsys.readouterr().err
    assert "nowhere.pkl" in err and FLAME_MODEL_ENV in err and len(err.splitlines()) == 1
    assert main(["predict", str(inputs["rgb"]), "-o", str(tmp_path / "o"), "--flame-model",
                 str(tmp_path / "gone.npz"), "-q"]) == 2
    assert "gone.npz" in capsys.readouterr().err


def test_cli_flame_optional_warns_and_goes_on(inputs, tmp_path, capsys, monkeypatch, random_checkpoint):
    import facevision.predict.predictor as pp
    from facevision.flame.model import FLAME_MODEL_ENV

    monkeypatch.delenv(FLAME_MODEL_ENV, raising=False)
    monkeypatch.setattr(pp, "detect_faces", lambda image, config: [FaceBox(FACE_BOX, 0.9)])
    out = tmp_path / "o"
    rc = main(["predict", str(inputs["rgb"]), "-o", str(out), "--flame", "--flame-optional", "--no-mesh",
               "--checkpoint", str(random_checkpoint), "--writers", "0", "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "warning: no FLAME model file given" in err and "Continuing without FLAME" in err
    res = json.loads((out / "rgb" / "face0" / "result.json").read_text())
    assert "flame" not in res and json.loads((out / "summary.json").read_text())["counts"]["ok"] == 1

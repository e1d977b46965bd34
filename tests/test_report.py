"""``predict --report`` (issue #13): one WebGL viewer for any number of faces, display meshes decimated and
decoded only for the face shown, a page that grows by ~100 kB per face. The page is rendered in headless
Chromium where it is installed (Debian: ``apt-get install chromium``) and those checks skip without it."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevision.face.detect import FaceBox
from facevision.predict.runner import BatchConfig, run_batch
from facevision.predict.predictor import PredictConfig, Predictor
from facevision.predict.report import ReportConfig, display_mesh, encode_mesh, write_report
from support.synthetic import fixed_maps_model, render_reference

BOX = (60.0, 50.0, 190.0, 200.0)


class _OneFace(Predictor):
    """Every photo has one face at BOX (MediaPipe does not fire on generated pictures)."""

    def detect(self, image_rgb, all_faces=None):
        return [FaceBox(box=BOX, score=0.9)]


def _photo_like(size: int = 250) -> np.ndarray:
    """A smooth picture with a little grain, compressing about like a photo (pure noise would not)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    face = np.exp(-(((xx - 0.5) / 0.22) ** 2 + ((yy - 0.5) / 0.3) ** 2))
    img = np.stack([120 + 90 * face + 30 * xx, 90 + 80 * face + 20 * yy, 80 + 60 * face], -1)
    img += np.random.default_rng(0).normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report")
    Image.fromarray(_photo_like()).save(d / "p.jpg", quality=92)
    f = render_reference(128, 15, 5, 0)
    p = _OneFace(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig())
    s = run_batch(p, [str(d / "p.jpg")], d / "out", BatchConfig(log=False))
    assert s["counts"]["ok"] == 1
    return d / "out"


def _records(n: int) -> list[dict]:
    """n inputs, all pointing at the one face folder written (the report reads each one again)."""
    return [{"input": f"photo_{k}.jpg", "output": "p", "status": "ok", "faces": [{"dir": "face0", "status": "ok"}]}
            for k in range(n)] + [{"input": "bad.jpg", "output": None, "status": "failed", "reason": "no face detected"}]


def test_display_meshes_are_decimated_and_round_trip():
    from meshing import mesh_from_maps

    f = render_reference(256, 20, 0, 0)
    m = mesh_from_maps(f.depth, f.mask, np.full((256, 256, 3), 128, np.uint8))
    assert m.n_faces > 20000
    v, faces, c = display_mesh(m.vertices, m.faces, m.colors, 4000)
    assert 1000 < len(faces) <= 4000 and len(v) < 65536 and c.shape == v.shape
    enc = encode_mesh(v, faces, c)
    q = np.frombuffer(base64.b64decode(enc["v"]), "<i2").reshape(-1, 3) / 32767
    ext = (v.max(0) - v.min(0)).max() / 2
    back = q * ext + 0.5 * (v.min(0) + v.max(0))
    assert np.abs(back - v).max() < 2 * ext / 32767  # one scale for all axes: true proportions
    assert np.array_equal(np.frombuffer(base64.b64decode(enc["f"]), "<u2").reshape(-1, 3), faces)
    small_v, small_f, _ = display_mesh(v[:3], np.array([[0, 1, 2]]), None, 4000)
    assert len(small_f) == 1  # small meshes are kept as they are


def test_page_has_one_viewer_and_grows_by_about_100_kb_per_face(out):
    sizes = {}
    for n in (1, 41):
        path = write_report(out, _records(n))
        page = path.read_text()
        sizes[n] = path.stat().st_size
        assert page.count("<canvas") == 1 and "getContext(" in page and page.count('getContext("webgl"') == 1
        assert len(re.findall(r'<script type="application/json" id="face-\d+">', page)) == n
        assert page.count("<button") == n and "bad.jpg" in page and "no face detected" in page
        assert "plotly" not in page.lower() and "http://" not in page and "https://" not in page
    per_face = (sizes[41] - sizes[1]) / 40
    empty = sizes[1] - per_face
    assert empty < 60_000, empty  # was 4.8 MB with plotly.js inline
    assert per_face < 150_000, per_face
    assert empty + 40 * per_face <= 8_000_000


def test_display_size_is_configurable(out):
    big = write_report(out, _records(1), ReportConfig(display_triangles=20000)).stat().st_size
    small = write_report(out, _records(1), ReportConfig(display_triangles=1000)).stat().st_size
    assert small < big


@pytest.mark.parametrize("field, value", [("display_triangles", 0), ("preview_width", -5), ("canvas", 0),
                                          ("jpeg_quality", 101), ("jpeg_quality", -1)])
def test_report_config_refuses_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"ReportConfig\.{field} must be .*, got {value}"):
        ReportConfig(**{field: value})
    ReportConfig(**{field: 100})  # a good value passes


def test_a_photo_name_that_is_not_utf8_is_shown_escaped(tmp_path):
    """A file named b"caf\\xe9.jpg" (Linux allows any bytes) failed the whole page; its name is now escaped."""
    import os

    folder = os.fsencode(tmp_path)
    try:
        with open(os.path.join(folder, b"caf\xe9.jpg"), "wb") as fh:
            Image.fromarray(_photo_like()).save(fh, format="JPEG", quality=92)
        with open(os.path.join(folder, b"bad\xff.jpg"), "wb") as fh:  # fails: its name in the failed list
            fh.write(b"not an image")
    except (OSError, UnicodeError) as exc:
        pytest.skip(f"this file system refuses names that are not UTF-8 ({exc})")
    f = render_reference(128, 15, 5, 0)
    p = _OneFace(fixed_maps_model(f.depth, f.corr, f.mask), PredictConfig())
    photos = [os.fsdecode(os.path.join(folder, n)) for n in (b"caf\xe9.jpg", b"bad\xff.jpg")]
    s = run_batch(p, photos, tmp_path / "out", BatchConfig(log=False, report=True))
    assert s["counts"] == {"ok": 1, "failed": 1, "skipped": 0} and "report_error" not in s
    page = (tmp_path / "out" / "report.html").read_bytes().decode("utf-8")  # strict: the page is valid UTF-8
    assert page.count("<button") == 1 and "caf\\xe9.jpg" in page and "bad\\xff.jpg" in page


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium): headless render check skipped")
    return browser


def _render(browser: str, url: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--virtual-time-budget=10000", "--dump-dom", url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout


def test_a_report_of_100_faces_shows_any_of_them_in_headless_chromium(out):
    """Beyond 16 WebGL contexts Chromium dropped the oldest views; one viewer shows face 99 as well as face 0."""
    browser = _chromium()
    page = write_report(out, _records(100))
    for k in (0, 99):
        dom = _render(browser, f"{page.as_uri()}#face={k}")
        assert f'data-shown="{k}"' in dom, dom[-2000:]
        drawn = int(re.search(r'data-drawn="(\d+)"', dom).group(1))
        assert drawn > 5000, drawn  # the mesh covers a good part of the 480 x 480 canvas
        assert dom.count("<canvas") == 1


def test_every_package_the_report_imports_is_a_declared_dependency():
    """The report used plotly without declaring it (issue #13): what it imports now must be in pyproject."""
    import ast
    import importlib.metadata as md
    import sys

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    root = Path(__file__).resolve().parents[1]
    declared = {re.split(r"[<>=!~; \[]", d, maxsplit=1)[0].lower().replace("_", "-")
                for d in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    dists = md.packages_distributions()
    for module in ("facevision/predict/report.py", "facevision/train/curves.py", "facevision/predict/mesh_frame.py"):
        tree = ast.parse((root / module).read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
        third = names - set(sys.stdlib_module_names) - {"facevision", "meshing", "data_prep"}
        for name in third:
            providers = {d.lower().replace("_", "-") for d in dists.get(name, [name])}
            assert providers & declared, f"{module} imports {name} (from {providers}), not declared in pyproject.toml"

"""What a new user sees (issue #13): the README's Python blocks run as written, its set-up lines work with
and without sudo and are what CI runs, its figure caption names every panel, the API docs warn about BGR."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)


def _setup_commands() -> dict[str, str]:
    """The set-up block's numbered commands: comment line -> the command line after it."""
    block = next(b for b in _blocks("bash") if "install, then run the tests" in b)
    lines = block.splitlines()
    return {ln: lines[i + 1] for i, ln in enumerate(lines) if ln.startswith("# ") and i + 1 < len(lines)}


@pytest.fixture(scope="module")
def me_jpg(tmp_path_factory) -> Path:
    """A folder holding ``me.jpg`` (a drawn face MediaPipe's detector finds, so the real pipeline runs on it)
    and ``generic_model.pkl`` (a small synthetic stand-in with FLAME's file structure, not FLAME)."""
    from PIL import Image

    from support.flame_synthetic import save_synthetic_flame
    from support.synthetic import drawn_face_photo

    d = tmp_path_factory.mktemp("readme")
    photo = np.pad(drawn_face_photo(256), ((60, 40), (30, 50), (0, 0)), mode="edge")
    Image.fromarray(photo).save(d / "me.jpg", quality=92)
    save_synthetic_flame(d / "generic_model.pkl")
    return d


def test_readme_python_blocks_run_as_written(me_jpg, monkeypatch):
    """Runs every ```python block in order in one namespace (the FLAME block continues the first), in a folder
    with me.jpg, on the shipped checkpoint. The FLAME block gets a synthetic stand-in model file: FLAME
    itself cannot be shipped, so this checks the calls, not FLAME's answer."""
    from facevision.predict.predictor import checkpoint_candidates

    if not any(p.is_file() for p in checkpoint_candidates()):
        pytest.skip("the shipped checkpoint is not in checkpoints/")
    blocks = _blocks("python")
    assert len(blocks) >= 2 and any("load_flame_model" in b for b in blocks)
    monkeypatch.chdir(me_jpg)
    namespace: dict = {"__name__": "readme"}
    for k, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {k + 1}", "exec"), namespace)  # noqa: S102
    f = namespace["f"]
    assert f.ok and f.mesh is not None and f.landmarks68_crop.shape == (68, 2)
    assert (me_jpg / "face.obj").is_file() and (me_jpg / "face_0.png").is_file()
    assert namespace["on_photo"].vertices[:, 1].max() < 356  # photo px: below the photo's height
    assert namespace["open_mouth"].ndim == 2 and namespace["open_mouth"].shape[1] == 3


def test_setup_commands_work_with_and_without_sudo(tmp_path):
    """The apt-get steps run as root without sudo (containers) and through sudo where it exists."""
    commands = _setup_commands()
    assert len(commands) == 2
    for cmd in commands.values():
        assert not re.search(r"(^|&& )sudo ", cmd), cmd  # no bare sudo: missing in root-only images
        apt = " && ".join(part for part in cmd.split(" && ") if "apt-get" in part)
        assert "apt-get install -y libusb-1.0-0 libgl1 libglib2.0-0" in apt and "apt-get update" in apt
        fake = apt.replace("apt-get", "echo apt-get")
        empty = tmp_path / "no_sudo"
        empty.mkdir(exist_ok=True)
        bash = shutil.which("bash")
        env = {"PATH": str(empty)}
        out = subprocess.run([bash, "-c", fake], capture_output=True, text=True, env=env)
        assert out.returncode == 0 and out.stdout.split("\n")[:2] == [
            "apt-get update", "apt-get install -y libusb-1.0-0 libgl1 libglib2.0-0"]
        with_sudo = tmp_path / "sudo_here"
        with_sudo.mkdir(exist_ok=True)
        (with_sudo / "sudo").write_text('#!/bin/sh\necho "sudo $*"\n')
        (with_sudo / "sudo").chmod(0o755)
        out = subprocess.run([bash, "-c", fake], capture_output=True, text=True, env={"PATH": f"{with_sudo}:/bin:/usr/bin"})
        assert out.returncode == 0 and out.stdout.startswith("sudo echo apt-get update"), out.stdout + out.stderr


def test_ci_runs_the_readme_install_and_test_command():
    cmd = _setup_commands()["# 2. install, then run the tests"]
    assert cmd.endswith("&& python -m pytest -q")
    printed = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print"], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert printed == cmd.replace(".venv", ".venv-ci")  # only the environment's folder differs
    install = _setup_commands()["# 1. install, then reconstruct your own face photo (outputs in out/my_photo/face0/)"]
    assert install.rsplit(" && ", 1)[0] == cmd.rsplit(" && ", 1)[0]  # the same installation in both commands


def test_overview_caption_names_every_panel():
    from PIL import Image

    text = README.read_text()
    m = re.search(r"!\[[^\]]*\]\((docs/figures/overview\.png)\)\n\n\*(.*?)\*\n", text, re.S)
    assert m, "README's overview figure and caption"
    caption = " ".join(m.group(2).split())
    panels = caption.split(":", 1)[1].split("|")
    width, _ = Image.open(ROOT / m.group(1)).size
    tile = 160  # python tools/overview_figure.py --tile 160
    assert (width - 2) % (tile + 2) == 0
    assert len(panels) == (width - 2) // (tile + 2) == 6, panels
    assert "six" in caption


def test_api_docs_say_rgb_not_bgr():
    from facevision.predict.predictor import Predictor

    doc = Predictor.__call__.__doc__
    assert "BGR" in doc and "cv2.imread" in doc and "read_photo" in doc
    text = README.read_text()
    api = text[text.index("## Python API"):text.index("## The model")]
    assert "BGR" in api and "cv2.imread" in api and "read_photo" in api


def test_readme_documents_both_mesh_frames():
    text = README.read_text()
    conventions = text[text.index("## Conventions"):text.index("## Command line")]
    for words in ("photo's", "--mesh-frame crop", "photo_frame_mesh", "--texture-size"):
        assert words in conventions, words


def test_ci_refuses_to_run_when_the_readme_line_changes(tmp_path):
    """.ci/run checks the README's line against the steps it runs before running anything."""
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text((ROOT / ".ci" / "run").read_text())
    readme = (ROOT / "README.md").read_text().replace("&& python -m pytest -q\n", "&& python -m pytest -q -x\n", 1)
    (tmp_path / "README.md").write_text(readme)
    out = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "not what .ci/run runs" in out.stderr
    assert not (tmp_path / ".venv-ci").exists()  # nothing was installed

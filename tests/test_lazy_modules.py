"""facevision.common.lazy_modules: a package imported without submodules it never uses here, which still work when used
(Open3D's plotly/dash viewer, MediaPipe's matplotlib). Fresh interpreters, so nothing is imported beforehand."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, tmp_path: Path | None = None) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), str(tmp_path or ""),
                                                                 os.environ.get("PYTHONPATH", "")] if p))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_deferred_modules_load_when_first_used(tmp_path):
    (tmp_path / "heavy").mkdir()
    (tmp_path / "heavy" / "__init__.py").write_text("import sys\nsys.stdout.write('heavy ran\\n')\nVALUE = 41\n"
                                                    "def thing(x):\n    return x + VALUE\n")
    (tmp_path / "heavy" / "sub.py").write_text("def twice(x):\n    return 2 * x\n")
    (tmp_path / "user.py").write_text("from heavy import thing\nimport heavy.sub as sub\n")
    out = _run("""
        import sys
        from facevision.common.lazy_modules import deferred
        with deferred(["heavy", "heavy.sub"]):
            import user
        print("imported", "heavy" in sys.modules)
        print(user.thing(1), user.sub.twice(4))
        import heavy
        print(heavy.VALUE, type(sys.modules["heavy"]).__name__)
    """, tmp_path)
    assert out.splitlines() == ["imported False", "heavy ran", "42 8", "41 module"]


def test_open3d_without_its_web_viewer_until_used():
    out = _run("""
        import sys
        from facevision.common.lazy_modules import import_open3d
        o3d = import_open3d()
        print("dash" in sys.modules, "IPython" in sys.modules)
        fig = o3d.visualization.get_plotly_fig([o3d.geometry.TriangleMesh.create_sphere()])
        print(type(fig).__name__, "dash" in sys.modules)
        import dash
        print(type(dash.Dash).__name__, callable(o3d.visualization.draw_plotly))
    """)
    assert out.splitlines() == ["False False", "Figure True", "type True"]


def test_mediapipe_without_matplotlib_until_used():
    out = _run("""
        import sys
        from facevision.face.detect import import_mediapipe
        mp = import_mediapipe()
        print("matplotlib" in sys.modules, hasattr(mp.solutions, "face_detection"))
        import matplotlib.pyplot as plt
        print(mp.solutions.drawing_utils.plt.figure is plt.figure, type(sys.modules["matplotlib"]).__name__)
    """)
    assert out.splitlines() == ["False True", "True module"]


def test_threads_importing_at_once_all_get_the_finished_module(tmp_path):
    (tmp_path / "slowmod.py").write_text("import time\ntime.sleep(0.5)\nVALUE = 7\n")
    out = _run("""
        import threading
        from facevision.common.lazy_modules import import_deferring
        got = []
        def run():
            got.append(getattr(import_deferring("slowmod", ["slowmod_viewer"]), "VALUE", None))
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(got)
    """, tmp_path)
    assert out.strip() == "[7, 7, 7, 7]"

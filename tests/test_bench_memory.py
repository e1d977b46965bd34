"""Peak memory of reading a large photo (Reliability II): ``read_photo_scaled`` on a 4000 x 4000 16-bit RGBA PNG
under a 2-megapixel budget.

Measure with ``pytest tests/test_bench_memory.py --benchmark-enable`` (the time is that of a whole subprocess);
in CI it runs once as an ordinary test and still checks the memory. Memory is the growth of a fresh subprocess's
peak resident set (``VmHWM`` in /proc/self/status) over its resident size just before the call: unlike
``tracemalloc``, it counts the buffers Pillow and OpenCV allocate in C, among them the decoded image itself.
(``ru_maxrss`` would not do: Linux carries the parent's peak over into a child that ``subprocess`` starts with
vfork, here the pytest process's.)

Bound: 2.5 x the decoded 8-bit RGB image (H x W x 3 bytes, 48 MB here). Pillow decodes the PNG to 8-bit RGBA
(4 bytes a pixel, 1.33 x), the conversion adds one strip at a time (a few MB) and the reduced result (6 MB).
Measured 2026-12-06 on the 2-core sandbox: 85 MB (1.8 x); before the fix, decoding at 16 bits and a float64
copy of the whole photo took 1,285 MB (27 x; 8000 x 8000 took 5.4 GB).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np

SIDE = 4000
BUDGET = 2_000_000


def _gradient_png16(path: Path, side: int) -> Path:
    """A smooth 16-bit RGBA gradient: every row is the one above plus a constant, so PNG stores it in ~0.6 MB."""
    ramp = np.linspace(0, 65535, side).astype(np.uint16)
    img = np.empty((side, side, 4), np.uint16)
    img[..., 0] = ramp[None, :]
    img[..., 1] = ramp[:, None]
    img[..., 2] = 30000
    img[..., 3] = ramp[::-1, None] // 2 + 32768  # alpha from 1 (top) to 0.5 (bottom): compositing is exercised
    assert cv2.imwrite(str(path), img[..., [2, 1, 0, 3]], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def _peak_growth(path: Path, max_pixels: int) -> dict:
    code = textwrap.dedent(f"""
        import json
        from facevision.face.images import read_photo_scaled
        def status_kb(key):
            with open("/proc/self/status") as fh:
                return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))
        before = status_kb("VmRSS")
        p = read_photo_scaled({str(path)!r}, max_pixels={max_pixels})
        grew = status_kb("VmHWM") - before
        print(json.dumps({{"grew_kb": grew, "shape": list(p.image.shape), "size": p.original_size,
                           "centre": p.image[p.image.shape[0] // 2, p.image.shape[1] // 2].tolist()}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_bench_memory_16bit_rgba_png_under_a_pixel_budget(benchmark, tmp_path):
    path = _gradient_png16(tmp_path / "big16.png", SIDE)
    res = benchmark.pedantic(_peak_growth, args=(path, BUDGET), rounds=1, iterations=1)
    h, w = res["shape"][:2]
    assert h * w <= BUDGET and res["size"] == [SIDE, SIDE] and res["shape"][2] == 3
    # the centre pixel: colour at half scale, alpha 0.75 -> composited over black
    half, alpha = 127.5, 0.75
    assert np.allclose(res["centre"], [half * alpha, half * alpha, 30000 / 257 * alpha], atol=3)
    decoded_rgb_kb = SIDE * SIDE * 3 / 1024
    benchmark.extra_info.update(peak_growth_mb=round(res["grew_kb"] / 1024, 1),
                                ratio_to_decoded_rgb=round(res["grew_kb"] / decoded_rgb_kb, 2))
    assert res["grew_kb"] <= 2.5 * decoded_rgb_kb, res

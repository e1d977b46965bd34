"""``--report``: one self-contained HTML page for a predict batch (opens offline: no CDN, no external files).

One page, **one 3D viewer**: a strip of thumbnails (one per face) picks the face shown; the viewer is a
single WebGL canvas (``assets/report_viewer.js``, inlined into the page from ``assets/report_page.html``; no
library), so the page never holds more than one WebGL context, however many faces it lists (browsers drop the
oldest beyond about 16). Each face's data, its decimated display mesh (at most
``ReportConfig.display_triangles`` triangles, vertex clustering; the files keep the full mesh), its maps and
preview (JPEG), sits in its own inline JSON block that is parsed, decoded and uploaded only when the face is
selected, so the page grows linearly with the faces (docs/predict.md gives its size).
Selection: click a thumbnail, the arrow keys, or ``report.html#face=N``. Everything is read back from the
files the batch wrote, so skipped (already finished) inputs appear too.
"""
from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facevision.common.checks import check_int
from facevision.common.fileio import atomic_write_bytes
from facevision.face.images import read_png
from facevision.common.lazy_modules import import_open3d

__all__ = ["ReportConfig", "write_report", "REPORT_NAME", "display_mesh", "encode_mesh"]

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class ReportConfig:
    """display_triangles: most triangles of a face's 3D view (decimated for display only);
    preview_width: px width of the preview sheet shown; jpeg_quality: of every picture in the page;
    canvas: side of the 3D view in px."""

    display_triangles: int = 4000
    preview_width: int = 960
    jpeg_quality: int = 82
    canvas: int = 480

    def __post_init__(self) -> None:
        for name in ("display_triangles", "preview_width", "canvas"):
            check_int(self, name, low=1)
        check_int(self, "jpeg_quality", 0, 100)


def _jpeg_uri(image: np.ndarray, quality: int, width: int | None = None) -> str:
    """(H, W, 3) uint8 RGB -> ``data:image/jpeg;base64,...`` (shrunk to ``width`` px if wider)."""
    if width is not None and image.shape[1] > width:
        h = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _rgb8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3]


def display_mesh(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None, max_triangles: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Decimate a mesh for display to at most ``max_triangles`` (Open3D vertex clustering, colours averaged;
    the voxel follows from the surface area, so any frame or unit works). Returns (vertices, faces, colors)."""
    o3d = import_open3d()

    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    if len(f) <= max_triangles and len(v) < 65536:
        return v, f, colors
    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32)))
    if colors is not None:
        m.vertex_colors = o3d.utility.Vector3dVector(np.clip(np.asarray(colors, np.float64), 0, 1))
    p = v[f]
    area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum()
    voxel = float(np.sqrt(2.0 * max(area, 1e-12) / max_triangles)) * 1.05
    for _ in range(12):
        d = m.simplify_vertex_clustering(voxel, o3d.geometry.SimplificationContraction.Average)
        if len(d.triangles) <= max_triangles and len(d.vertices) < 65536:
            break
        voxel *= 1.25
    c = np.asarray(d.vertex_colors) if d.has_vertex_colors() else None
    return np.asarray(d.vertices), np.asarray(d.triangles, np.int64), c


def encode_mesh(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None) -> dict[str, Any]:
    """Display mesh -> JSON-ready base64 arrays: ``v`` int16 positions normalized to [-1, 1] about the bounding
    box centre (one scale for all axes, so proportions stay true), ``f`` uint16 indices, ``c`` uint8 RGB."""
    v = np.asarray(vertices, np.float64)
    centre = 0.5 * (v.min(0) + v.max(0))
    half = max(float(np.abs(v - centre).max()), 1e-9)
    q = np.round((v - centre) / half * 32767).astype("<i2")
    out: dict[str, Any] = {"n_vertices": len(v), "n_faces": len(faces),
                           "v": base64.b64encode(q.tobytes()).decode("ascii"),
                           "f": base64.b64encode(np.asarray(faces, "<u2").tobytes()).decode("ascii")}
    if colors is not None:
        c = np.clip(np.round(np.asarray(colors, np.float64) * 255), 0, 255).astype(np.uint8)
        out["c"] = base64.b64encode(c.tobytes()).decode("ascii")
    return out


def _face_entry(face_dir: Path, title: str, config: ReportConfig) -> tuple[str, dict[str, Any]] | None:
    """(thumbnail data URI, the face's JSON block) from one face folder, or None if it cannot be read."""
    try:
        res = json.loads((face_dir / "result.json").read_text())
        crop = _jpeg_uri(_rgb8(read_png(face_dir / "crop.png")), config.jpeg_quality)
    except (OSError, ValueError):
        return None
    entry: dict[str, Any] = {"title": title, "status": res.get("status", "?"), "pose": res.get("pose", {}),
                             "mesh_info": res.get("mesh", {})}
    for key, name in (("depth", "depth_vis.png"), ("corr", "corr.png"), ("preview", "preview.png")):
        try:
            entry[key] = _jpeg_uri(_rgb8(read_png(face_dir / name)), config.jpeg_quality,
                                   config.preview_width if key == "preview" else None)
        except (OSError, ValueError):
            pass
    if (face_dir / "mesh.ply").is_file():
        from meshing import MeshIOError, load_mesh

        try:
            m = load_mesh(face_dir / "mesh.ply")
            entry["mesh"] = encode_mesh(*display_mesh(m.vertices, m.faces, m.colors, config.display_triangles))
        except (MeshIOError, OSError, ValueError):
            pass
    return crop, entry


def _shown(text: Any) -> str:
    """Text for the page: a file name that is not UTF-8 (``b"caf\\xe9.jpg"`` on Linux, held by Python as lone
    surrogates) is shown with its bytes escaped (``caf\\xe9.jpg``) instead of failing the page's encoding."""
    text = str(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte: its code point, escaped
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no ``</`` that could close it)."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def write_report(out: str | Path, records: list[dict[str, Any]], config: ReportConfig = ReportConfig()) -> Path:
    """Write ``OUT/report.html`` for ``records`` (the batch's input records); returns its path."""
    out = Path(out)
    thumbs: list[str] = []
    blocks: list[str] = []
    failed: list[str] = []
    n_ok = sum(r["status"] == "ok" for r in records)
    for rec in records:
        if rec["status"] != "ok":
            failed.append(f'<li>{html.escape(_shown(rec["input"]))}: {html.escape(_shown(rec.get("reason")))}</li>')
            continue
        for face in rec.get("faces", []):
            title = _shown(f'{rec["input"]} \u00b7 {face["dir"]}')
            got = _face_entry(out / rec["output"] / face["dir"], title, config)
            if got is None:
                continue
            crop, entry = got
            k = len(thumbs)
            thumbs.append(f'<button type="button" data-i="{k}" title="{html.escape(title)}">'
                          f'<img src="{crop}" alt="face {k}"><span>{k}</span></button>')
            blocks.append(f'<script type="application/json" id="face-{k}">{_script_json(entry)}</script>')
    fails = f'<section id="failed"><h2>Failed inputs</h2><ul>{"".join(failed)}</ul></section>' if failed else ""
    page = _asset("report_page.html").format(n_ok=n_ok, n_inputs=len(records), n_faces=len(thumbs),
                                             thumbs="".join(thumbs), canvas=int(config.canvas), failed=fails,
                                             blocks="\n".join(blocks), script=_asset("report_viewer.js"))
    path = out / REPORT_NAME
    atomic_write_bytes(path, page.encode("utf-8"))
    return path


def _asset(name: str) -> str:
    """Text of a file in ``facevision/predict/assets`` (the page's template and its viewer script)."""
    from importlib.resources import files

    return files("facevision.predict").joinpath("assets", name).read_text(encoding="utf-8")


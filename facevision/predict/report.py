"""``--report``: one self-contained HTML page for a predict batch (opens offline: no CDN, no external files).

Per face: the preview photo, depth / correspondence maps (base64 PNG) and an interactive 3D view of
the mesh (plotly ``Mesh3d`` with the mesh's vertex colours). plotly.js is embedded once, inline.
Everything is read back from the files the batch wrote, so skipped (already finished) inputs appear too.
"""
from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.io import atomic_write_bytes

__all__ = ["ReportConfig", "write_report", "REPORT_NAME"]

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class ReportConfig:
    """max_faces: faces shown in 3D (later faces get images only, to keep the page light);
    max_mesh_faces: triangles per 3D view (the mesh is decimated by keeping every n-th triangle's vertices
    on a coarser lattice if larger)."""

    max_faces: int = 50
    max_mesh_faces: int = 20000


def _b64_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _mesh_div(ply: Path, div_id: str, config: ReportConfig) -> str:
    import plotly.graph_objects as go

    from meshing import load_mesh

    m = load_mesh(ply)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    if len(f) > config.max_mesh_faces:
        f = f[:: int(np.ceil(len(f) / config.max_mesh_faces))]
    colors = None
    if m.colors is not None:
        c = (np.clip(np.asarray(m.colors), 0, 1) * 255).astype(int)
        colors = [f"rgb({r},{g},{b})" for r, g, b in c]
    mesh = go.Mesh3d(x=v[:, 0].round(2), y=v[:, 1].round(2), z=v[:, 2].round(2), i=f[:, 0], j=f[:, 1], k=f[:, 2],
                     vertexcolor=colors, color=None if colors else "lightgrey", flatshading=False,
                     lighting=dict(ambient=0.5, diffuse=0.8, specular=0.1), hoverinfo="skip")
    fig = go.Figure(mesh)
    fig.update_layout(scene=dict(aspectmode="data", camera=dict(eye=dict(x=0, y=0, z=2.0), up=dict(x=0, y=1, z=0)),
                                 xaxis_visible=False, yaxis_visible=False, zaxis_visible=False),
                      margin=dict(l=0, r=0, t=0, b=0), width=360, height=360)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def write_report(out: str | Path, records: list[dict[str, Any]], config: ReportConfig = ReportConfig()) -> Path:
    """Write ``OUT/report.html`` for ``records`` (the batch's input records); returns its path."""
    from plotly.offline import get_plotlyjs

    out = Path(out)
    parts: list[str] = []
    n3d = 0
    n_ok = sum(r["status"] == "ok" for r in records)
    for rec in records:
        title = html.escape(str(rec["input"]))
        if rec["status"] != "ok":
            parts.append(f'<section class="fail"><h2>{title}</h2><p>failed: {html.escape(str(rec.get("reason")))}</p></section>')
            continue
        for face in rec.get("faces", []):
            d = out / rec["output"] / face["dir"]
            try:
                res = json.loads((d / "result.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
            imgs = "".join(
                f'<figure><img src="{_b64_png(d / name)}" alt="{label}"><figcaption>{label}</figcaption></figure>'
                for name, label in (("crop.png", "photo crop"), ("depth_vis.png", "depth"), ("corr.png", "correspondence"))
                if (d / name).is_file())
            view = ""
            if (d / "mesh.ply").is_file() and n3d < config.max_faces:
                view = _mesh_div(d / "mesh.ply", f"mesh{n3d}", config)
                n3d += 1
            pose = res.get("pose", {})
            info = (f'pose yaw {pose.get("yaw", "?")}&deg;, pitch {pose.get("pitch", "?")}&deg;, roll {pose.get("roll", "?")}&deg;'
                    f' &middot; mesh {res.get("mesh", {}).get("vertices", 0)} vertices, {res.get("mesh", {}).get("faces", 0)} faces'
                    f' &middot; status {html.escape(res.get("status", "?"))}')
            parts.append(f'<section><h2>{title} &middot; {html.escape(face["dir"])}</h2><p>{info}</p>'
                         f'<div class="row">{imgs}<div class="mesh">{view}</div></div>'
                         f'<p><img class="preview" src="{_b64_png(d / "preview.png")}" alt="preview"></p></section>'
                         if (d / "preview.png").is_file() else
                         f'<section><h2>{title}</h2><p>{info}</p><div class="row">{imgs}{view}</div></section>')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>facevision predict report</title>
<style>body{{font-family:sans-serif;margin:1em;background:#fafafa}} section{{background:#fff;border:1px solid #ddd;
margin:1em 0;padding:.5em 1em}} .row{{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}}
figure{{margin:0}} figure img{{width:192px;height:192px;image-rendering:pixelated}} .preview{{max-width:100%}}
.fail{{color:#a00}} h2{{font-size:1em}}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body><h1>facevision predict</h1><p>{n_ok} of {len(records)} inputs reconstructed.</p>
{''.join(parts)}
</body></html>
"""
    path = out / REPORT_NAME
    atomic_write_bytes(path, page.encode("utf-8"))
    return path

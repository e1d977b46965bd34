"""``--report``: one self-contained HTML page for a predict batch (opens offline: no CDN, no external files).

One page, **one 3D viewer**: a strip of thumbnails (one per face) picks the face shown; the viewer is a
single WebGL canvas (a few dozen lines of inline JavaScript, no library), so the page never holds more
than one WebGL context, however many faces it lists (browsers drop the oldest beyond about 16, which
blanked the 3D views of larger reports). Each face's data, its decimated display mesh (at most
``ReportConfig.display_triangles`` triangles, vertex clustering; the files keep the full mesh), its maps and
preview (JPEG), sits in its own inline JSON block that is parsed, decoded and uploaded only when the face is
selected. Size: about 100-150 kB per face (a 40-photo report stays well under 8 MB) plus ~15 kB of page.
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

from data_prep.io import atomic_write_bytes, read_png
from meshing.lazy_modules import import_open3d

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
    page = _PAGE.format(n_ok=n_ok, n_inputs=len(records), n_faces=len(thumbs), thumbs="".join(thumbs),
                        canvas=int(config.canvas), failed=fails, blocks="\n".join(blocks), script=_SCRIPT)
    path = out / REPORT_NAME
    atomic_write_bytes(path, page.encode("utf-8"))
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>facevision predict report</title>
<style>
body{{font-family:sans-serif;margin:1em;background:#fafafa;color:#222}} h1{{font-size:1.3em}} h2{{font-size:1em}}
#thumbs{{display:flex;flex-wrap:wrap;gap:4px;max-height:220px;overflow-y:auto;padding:4px;background:#fff;border:1px solid #ddd}}
#thumbs button{{padding:0;border:2px solid transparent;background:none;cursor:pointer;position:relative}}
#thumbs button.on{{border-color:#d62728}} #thumbs img{{width:64px;height:64px;display:block}}
#thumbs span{{position:absolute;left:2px;bottom:1px;font-size:10px;color:#fff;text-shadow:0 0 2px #000}}
#view{{display:flex;flex-wrap:wrap;gap:1em;margin-top:1em;align-items:flex-start}} #side{{flex:1 1 480px;min-width:0}}
#gl{{background:#f5f5f5;border:1px solid #ccc;touch-action:none;cursor:grab}}
.maps{{display:flex;gap:6px}} .maps figure{{margin:0;text-align:center;font-size:.8em}}
.maps img{{width:160px;height:160px;image-rendering:pixelated}} #preview{{max-width:100%;margin-top:.5em}}
#failed{{color:#a00}} .hint{{font-size:.8em;color:#666}}
</style></head>
<body><h1>facevision predict</h1>
<p>{n_ok} of {n_inputs} inputs reconstructed, {n_faces} faces. Pick a face below (or with the arrow keys); one
3D view shows it: drag to turn, wheel to zoom, double-click to reset.</p>
<div id="thumbs">{thumbs}</div>
<div id="view"><div><canvas id="gl" width="{canvas}" height="{canvas}"></canvas>
<p class="hint" id="meshnote"></p></div>
<div id="side"><h2 id="title"></h2><p id="info"></p>
<div class="maps"><figure><img id="crop" alt="crop"><figcaption>crop</figcaption></figure>
<figure><img id="depth" alt="depth"><figcaption>depth (near = red)</figcaption></figure>
<figure><img id="corr" alt="correspondence"><figcaption>correspondence</figcaption></figure></div>
<img id="preview" alt="preview"></div></div>
{failed}
{blocks}
<script>{script}</script>
</body></html>
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var buttons = Array.prototype.slice.call(document.querySelectorAll("#thumbs button"));
  var canvas = document.getElementById("gl");
  var gl = null, prog = null, loc = {}, buf = {}, count = 0;
  var view = {index: -1, yaw: 0, pitch: 0, zoom: 0.9};
  var BG = [245, 245, 245];
  var VS = "attribute vec3 p; attribute vec3 n; attribute vec3 c; uniform mat4 m; uniform mat3 r;" +
           "varying vec3 vc; varying vec3 vn; void main(){ gl_Position = m * vec4(p, 1.0); vc = c; vn = r * n; }";
  var FS = "precision mediump float; varying vec3 vc; varying vec3 vn;" +
           "void main(){ float l = 0.3 + 0.7 * abs(normalize(vn).z); gl_FragColor = vec4(vc * l, 1.0); }";

  function compile(type, src) {
    var s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    return s;
  }
  function setup() {  // the page's only WebGL context, made once
    gl = canvas.getContext("webgl", {antialias: true, preserveDrawingBuffer: true});
    if (!gl) { return false; }
    prog = gl.createProgram();
    gl.attachShader(prog, compile(gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, compile(gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    gl.useProgram(prog);
    ["p", "n", "c"].forEach(function (k) { loc[k] = gl.getAttribLocation(prog, k); buf[k] = gl.createBuffer(); });
    loc.m = gl.getUniformLocation(prog, "m");
    loc.r = gl.getUniformLocation(prog, "r");
    buf.i = gl.createBuffer();
    gl.enable(gl.DEPTH_TEST);
    gl.clearColor(BG[0] / 255, BG[1] / 255, BG[2] / 255, 1);
    return true;
  }
  function bytes(b64) {
    var s = atob(b64), a = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) { a[i] = s.charCodeAt(i); }
    return a;
  }
  function normals(pos, idx) {
    var n = new Float32Array(pos.length);
    for (var t = 0; t < idx.length; t += 3) {
      var a = 3 * idx[t], b = 3 * idx[t + 1], c = 3 * idx[t + 2];
      var ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
      var vx = pos[c] - pos[a], vy = pos[c + 1] - pos[a + 1], vz = pos[c + 2] - pos[a + 2];
      var nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      [a, b, c].forEach(function (k) { n[k] += nx; n[k + 1] += ny; n[k + 2] += nz; });
    }
    return n;
  }
  function attribute(k, data) {
    gl.bindBuffer(gl.ARRAY_BUFFER, buf[k]);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
    gl.enableVertexAttribArray(loc[k]);
    gl.vertexAttribPointer(loc[k], 3, gl.FLOAT, false, 0, 0);
  }
  function upload(mesh) {  // decoded and sent to the GPU only for the face shown
    var q = new Int16Array(bytes(mesh.v).buffer), pos = new Float32Array(q.length);
    for (var i = 0; i < q.length; i++) { pos[i] = q[i] / 32767; }
    var idx = new Uint16Array(bytes(mesh.f).buffer), col = new Float32Array(q.length);
    if (mesh.c) { var c8 = bytes(mesh.c); for (var j = 0; j < c8.length; j++) { col[j] = c8[j] / 255; } }
    else { col.fill(0.75); }
    attribute("p", pos);
    attribute("n", normals(pos, idx));
    attribute("c", col);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, buf.i);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, idx, gl.STATIC_DRAW);
    count = idx.length;
  }
  function draw() {
    if (!gl) { return; }
    var cy = Math.cos(view.yaw), sy = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
    // R = Rx(pitch) Ry(yaw), rows; mesh frame X right, Y up, Z towards the viewer
    var R = [[cy, 0, sy], [sp * sy, cp, -sp * cy], [-cp * sy, sp, cp * cy]];
    var z = view.zoom, m = new Float32Array(16), r = new Float32Array(9);
    for (var col = 0; col < 3; col++) {
      m[4 * col] = z * R[0][col]; m[4 * col + 1] = z * R[1][col]; m[4 * col + 2] = -0.5 * R[2][col];
      for (var row = 0; row < 3; row++) { r[3 * col + row] = R[row][col]; }
    }
    m[15] = 1;
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    if (!count) { return; }
    gl.uniformMatrix4fv(loc.m, false, m);
    gl.uniformMatrix3fv(loc.r, false, r);
    gl.drawElements(gl.TRIANGLES, count, gl.UNSIGNED_SHORT, 0);
  }
  function drawnPixels() {  // pixels off the background: read by the headless-browser test
    var w = canvas.width, h = canvas.height, px = new Uint8Array(4 * w * h), n = 0;
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
    for (var i = 0; i < px.length; i += 4) {
      if (Math.abs(px[i] - BG[0]) + Math.abs(px[i + 1] - BG[1]) + Math.abs(px[i + 2] - BG[2]) > 12) { n++; }
    }
    return n;
  }
  function show(id, src) { var el = document.getElementById(id); if (src) { el.src = src; el.style.display = ""; } else { el.style.display = "none"; } }
  function select(i) {
    if (i < 0 || i >= buttons.length) { return; }
    var face = JSON.parse(document.getElementById("face-" + i).textContent);
    buttons.forEach(function (b, k) { b.classList.toggle("on", k === i); });
    view = {index: i, yaw: 0, pitch: 0, zoom: 0.9};
    document.getElementById("title").textContent = face.title;
    var p = face.pose || {}, mi = face.mesh_info || {};
    document.getElementById("info").textContent = "pose yaw " + p.yaw + "\u00b0, pitch " + p.pitch + "\u00b0, roll " +
      p.roll + "\u00b0 \u00b7 mesh " + (mi.vertices || 0) + " vertices, " + (mi.faces || 0) + " faces (" +
      (mi.frame || "crop") + " frame) \u00b7 status " + face.status;
    show("crop", buttons[i].querySelector("img").src);
    show("depth", face.depth); show("corr", face.corr); show("preview", face.preview);
    var note = document.getElementById("meshnote");
    count = 0;
    if (face.mesh && (gl || setup())) {
      upload(face.mesh);
      note.textContent = "shown: " + face.mesh.n_faces + " triangles (decimated for display; mesh.ply / mesh.obj have all)";
    } else {
      note.textContent = gl || !face.mesh ? "no mesh for this face" : "WebGL is not available in this browser";
    }
    draw();
    document.body.setAttribute("data-shown", String(i));
    canvas.setAttribute("data-drawn", gl ? String(drawnPixels()) : "0");
    if (history.replaceState) { history.replaceState(null, "", "#face=" + i); }
  }
  buttons.forEach(function (b, k) { b.addEventListener("click", function () { select(k); }); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "ArrowRight") { select(Math.min(view.index + 1, buttons.length - 1)); }
    if (e.key === "ArrowLeft") { select(Math.max(view.index - 1, 0)); }
  });
  var drag = null;
  canvas.addEventListener("pointerdown", function (e) { drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", function () { drag = null; });
  canvas.addEventListener("pointermove", function (e) {
    if (!drag) { return; }
    view.yaw += (e.clientX - drag[0]) * 0.01;
    view.pitch = Math.max(-1.5, Math.min(1.5, view.pitch + (e.clientY - drag[1]) * 0.01));
    drag = [e.clientX, e.clientY];
    draw();
  });
  canvas.addEventListener("wheel", function (e) { e.preventDefault(); view.zoom *= Math.exp(-e.deltaY * 0.001); draw(); }, {passive: false});
  canvas.addEventListener("dblclick", function () { view.yaw = 0; view.pitch = 0; view.zoom = 0.9; draw(); });
  var m = /face=(\d+)/.exec(location.hash);
  select(m ? Math.min(parseInt(m[1], 10), buttons.length - 1) : 0);
})();
"""

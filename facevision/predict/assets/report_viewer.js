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

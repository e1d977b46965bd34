"""Mesh files, written atomically: PLY (via Open3D) and OBJ (+ MTL + PNG texture, written here).

* ``.ply``: binary PLY with positions, normals and vertex colours (if any).
* ``.obj``: ``v x y z r g b``, ``vn`` and, with a texture, one ``vt`` per vertex (faces ``f i/i/i``),
  ``<stem>.mtl`` (``map_Kd <stem>_0.png``) and ``<stem>_0.png`` beside it.

Each file is written to a temporary name (an OBJ set into a temporary folder), checked against the bytes
meant for it (PLY: its header's counts; PNG: its end chunk), flushed and renamed into place, the OBJ last. A
failed write leaves nothing under the final names and raises ``facevision.common.fileio.OutputWriteError``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from facevision.common.fileio import (OutputWriteError, atomic_write, fsync_file, native_stderr_silenced, png_complete,
                                      temp_prefix, write_error)
from meshing.fixed_text import fixed_rows
from facevision.common.lazy_modules import import_open3d
from meshing.types import FaceMesh, MeshingError

__all__ = ["save_mesh", "load_mesh", "obj_text", "encode_texture", "MeshIOError", "MESH_SUFFIXES"]

MESH_SUFFIXES = (".ply", ".obj")


class MeshIOError(ValueError):
    """A mesh file could not be written or read; the message names the file and the reason."""


def _texture_u8(texture: np.ndarray, path: Path) -> np.ndarray:
    t = np.asarray(texture)
    if t.ndim == 2:
        t = np.repeat(t[..., None], 3, axis=2)
    if t.ndim != 3 or t.shape[2] not in (1, 3, 4) or t.shape[0] == 0 or t.shape[1] == 0:
        raise MeshIOError(f"{path}: texture must be (H, W[, 3|4]), got shape {t.shape}")
    if t.shape[2] == 1:
        t = np.repeat(t, 3, axis=2)
    t = t[..., :3]
    if t.dtype == np.uint16:
        t = (t >> 8).astype(np.uint8)
    elif t.dtype != np.uint8:
        t = np.clip(np.nan_to_num(t.astype(np.float64)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(t)


def _to_o3d(mesh: FaceMesh):
    o3d = import_open3d()

    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(mesh.vertices, dtype=np.float64)),
                                  o3d.utility.Vector3iVector(np.asarray(mesh.faces, dtype=np.int32)))
    m.compute_vertex_normals()
    if mesh.colors is not None:
        m.vertex_colors = o3d.utility.Vector3dVector(np.clip(np.asarray(mesh.colors, dtype=np.float64), 0, 1))
    return m


def _face_rows(faces: np.ndarray, corner: str) -> str:
    """``f a b c`` lines of 0-based triangles, each corner written as ``corner.format(index + 1)``
    (e.g. ``"{0}/{0}/{0}"``): every vertex's corner text is made once and reused by all its triangles."""
    faces = np.asarray(faces, dtype=np.int64)
    if faces.size == 0:
        return ""
    n = int(faces.max()) + 1
    tokens = _CORNER_TOKENS.get(corner)
    if tokens is None or len(tokens) < n:  # made once per corner style, grown for larger meshes
        tokens = np.array([corner.format(i) for i in range(1, max(n, 8192) + 1)], dtype=object)
        _CORNER_TOKENS[corner] = tokens
    return ("f %s %s %s\n" * len(faces)) % tuple(tokens[faces].ravel().tolist())


_CORNER_TOKENS: dict[str, np.ndarray] = {}  # corner style -> its text for vertices 1..n (read-only once made)


def obj_text(mesh: FaceMesh, material: str | None = None, comment: str = "", decimals: int = 4) -> str:
    """The OBJ file of ``mesh``: ``v x y z [r g b]``, ``vn`` per vertex, and with ``material`` (the MTL's stem)
    ``mtllib``, one ``vt`` per vertex (``mesh.uvs``, OBJ convention) and faces ``f i/i/i``; else ``f i//i``.
    comment: extra ``#`` lines at the top; decimals: of the positions (4 for pixels, 6 for metres)."""
    from meshing.refine import vertex_normals

    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64) + 1
    head = [f"# facevision mesh: {len(v)} vertices, {len(f)} triangles",
            "# frame: right-handed, X right, Y up, Z towards the viewer"]
    head += [f"# {line}" for line in comment.splitlines()]
    if material:
        head.append(f"mtllib {material}.mtl")
    parts = ["\n".join(head) + "\n"]
    if mesh.colors is not None:
        c = np.clip(np.nan_to_num(np.asarray(mesh.colors, dtype=np.float64)), 0, 1)
        parts.append(fixed_rows(np.hstack([v, c]), "v", (decimals,) * 3 + (4, 4, 4)))
    else:
        parts.append(fixed_rows(v, "v", (decimals,) * 3))
    parts.append(fixed_rows(vertex_normals(v, f - 1), "vn", (5, 5, 5)))
    if material:
        parts.append(fixed_rows(np.asarray(mesh.uvs, dtype=np.float64), "vt", (6, 6)))
        parts.append(f"usemtl {material}_0\n")
        parts.append(_face_rows(f - 1, "{0}/{0}/{0}"))
    else:
        parts.append(_face_rows(f - 1, "{0}//{0}"))
    return "".join(parts)


def _mtl_text(material: str) -> str:
    return (f"newmtl {material}_0\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
            f"map_Kd {material}_0.png\n")


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a file in the temporary folder of an OBJ set; checked afterwards)."""
    with open(path, "wb") as fh:
        fh.write(data)


def encode_texture(texture: np.ndarray) -> bytes:
    """A texture (H, W[, 3|4]) uint8, uint16 or float [0, 1] as the PNG file :func:`save_mesh` writes next to an
    OBJ; give it to several ``save_mesh`` calls (``texture_png``) when their meshes share one texture."""
    return _png(_texture_u8(texture, Path("texture")), Path("texture"))


def _png(texture: np.ndarray, path: Path) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG file bytes (OpenCV's default settings)."""
    import cv2

    ok, png = cv2.imencode(".png", cv2.cvtColor(texture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise MeshIOError(f"{path}: PNG encoding of the texture failed")
    return png.tobytes()


def _write_obj_set(target: Path, mesh: FaceMesh, texture_png: bytes | None, comment: str = "",
                   decimals: int = 4) -> dict[str, int]:
    """``target`` (.obj) and, with a texture, ``<stem>.mtl`` + ``<stem>_0.png`` (the texture, top row first).
    Returns the bytes meant for each file, by name (the check after the write compares them)."""
    stem = target.stem
    files: dict[str, bytes] = {}
    if texture_png is not None:
        files[f"{stem}_0.png"] = texture_png
        files[f"{stem}.mtl"] = _mtl_text(stem).encode()
    files[target.name] = obj_text(mesh, stem if texture_png is not None else None, comment, decimals).encode()
    for name, data in files.items():
        _write_file(target.with_name(name), data)
    return {name: len(data) for name, data in files.items()}


def save_mesh(path: str | os.PathLike, mesh: FaceMesh, texture: np.ndarray | None = None, comment: str = "",
              decimals: int = 4, texture_png: bytes | None = None) -> Path:
    """Write ``mesh`` to ``path`` (.ply or .obj) atomically; returns the path.

    texture: (H, W, 3) photo the mesh's ``uvs`` point into (uint8, uint16 or float [0, 1]); OBJ only (written as
    ``<stem>_0.png``, referenced from ``<stem>.mtl``); texture_png: the same already encoded (:func:`encode_texture`);
    comment, decimals: OBJ only, see :func:`obj_text`.
    Raises MeshIOError (unknown suffix, invalid mesh, texture without uvs) or OutputWriteError (an OSError: the
    files could not be written completely)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise MeshIOError(f"{path}: unsupported mesh format {path.suffix!r} (use .ply or .obj)")
    try:
        mesh.validate()
    except MeshingError as exc:
        raise MeshIOError(f"{path}: invalid mesh ({exc})") from None
    with_uvs = suffix == ".obj" and (texture is not None or texture_png is not None)
    if with_uvs and mesh.uvs is None:
        raise MeshIOError(f"{path}: a texture needs texture coordinates (mesh.uvs is None)")
    if suffix == ".obj":
        if with_uvs and texture_png is None:
            texture_png = _png(_texture_u8(texture, path), path)
        _save_file_set(path, lambda target: _write_obj_set(target, mesh, texture_png if with_uvs else None, comment,
                                                           decimals))
        return path
    o3d = import_open3d()
    m = _to_o3d(mesh)

    def write(target: Path) -> None:
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error), native_stderr_silenced():
            ok = o3d.io.write_triangle_mesh(str(target), m, write_ascii=False, write_vertex_normals=True,
                                            write_vertex_colors=mesh.colors is not None)
        if not ok:
            raise write_error(path, problem="Open3D could not write the mesh")

    atomic_write(path, write, check=lambda tmp: _ply_problem(tmp, mesh.n_vertices, mesh.n_faces))
    return path


def _save_file_set(path: Path, write: Callable[[Path], dict[str, int]]) -> None:
    """Write a set of files (OBJ + MTL + texture) into a temporary folder, check, flush and rename each
    (the file named ``path`` last); on any failure nothing is renamed and the folder is removed. ``write``
    returns the size meant for each file, by name: a writer can report success for a file a full disk cut short."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        sizes = write(tmp_dir / path.name)
        files = sorted(tmp_dir.iterdir(), key=lambda p: p.name == path.name)  # the OBJ last
        for f in files:
            why = _set_file_problem(f, sizes)
            if why:
                raise write_error(path.parent / f.name, problem=why)
            fsync_file(f)
        for f in files:
            os.replace(f, path.parent / f.name)
    except OutputWriteError:
        raise
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


_PLY_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
              "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


def _ply_problem(file: Path, n_vertices: int, n_faces: int) -> str | None:
    """Binary PLY of triangles: header counts and file size must match the mesh (None if they do)."""
    with open(file, "rb") as fh:
        head = fh.read(4096)
    end = head.find(b"end_header\n")
    if not head.startswith(b"ply\n") or end < 0:
        return "incomplete PLY header"
    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    element = ""
    for line in head[:end].decode("ascii", "replace").splitlines():
        parts = line.split()
        if parts[:1] == ["element"] and len(parts) == 3:
            element = parts[1]
            counts[element], sizes[element] = int(parts[2]), 0
        elif parts[:2] == ["property", "list"] and len(parts) == 5:  # count type, index type, name
            sizes[element] += _PLY_SIZES.get(parts[2], 0) + 3 * _PLY_SIZES.get(parts[3], 0)
        elif parts[:1] == ["property"] and len(parts) == 3:
            sizes[element] += _PLY_SIZES.get(parts[1], 0)
    if counts.get("vertex") != n_vertices or counts.get("face", 0) != n_faces:
        return f"PLY header counts {counts} differ from the mesh ({n_vertices} vertices, {n_faces} faces)"
    expected = end + len(b"end_header\n") + sum(counts[e] * sizes[e] for e in counts)
    size = file.stat().st_size
    return None if size == expected else f"PLY has {size} bytes, expected {expected} (truncated)"


def _set_file_problem(file: Path, sizes: dict[str, int]) -> str | None:
    """One file of an OBJ set: it has every byte meant for it (and a PNG its end chunk); None if so."""
    want = sizes.get(file.name)
    if want is None:
        return "not a file of this set"
    size = file.stat().st_size
    if size != want:
        return "the writer left an empty file" if size == 0 else f"only {size} of {want} bytes were written"
    return png_complete(file) if file.suffix.lower() == ".png" else None


def load_mesh(path: str | os.PathLike) -> FaceMesh:
    """Read a .ply or .obj mesh into a :class:`FaceMesh`; MeshIOError naming the file when it cannot.

    ``pixels`` are NaN; ``uvs`` per vertex (from the OBJ's per-corner coordinates); ``colors`` from vertex colours.
    Open3D numbers OBJ vertices in order of first use by the faces (PLY keeps the file's order)."""
    o3d = import_open3d()

    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise MeshIOError(f"{path}: unsupported mesh format {path.suffix!r} (use .ply or .obj)")
    if not path.is_file():
        raise MeshIOError(f"{path}: file not found")
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        m = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False)
    v = np.asarray(m.vertices, dtype=np.float32)
    f = np.asarray(m.triangles, dtype=np.int64)
    if len(v) == 0 or len(f) == 0:
        raise MeshIOError(f"{path}: no vertices or triangles could be read")
    colors = np.asarray(m.vertex_colors, dtype=np.float32) if m.has_vertex_colors() else None
    uvs = None
    if m.has_triangle_uvs():
        corner = np.asarray(m.triangle_uvs, dtype=np.float32)
        if len(corner) == 3 * len(f):
            uvs = np.full((len(v), 2), np.nan, dtype=np.float32)
            uvs[f.ravel()] = corner
    return FaceMesh(vertices=v, faces=f, pixels=np.full((len(v), 2), np.nan, dtype=np.float32),
                    colors=colors, uvs=uvs)

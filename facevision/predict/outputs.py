"""Files written per face, per photo and per batch by ``facevision predict`` (all atomic: complete or absent).

``OUT/<name>/face<k>/`` (every file by default; ``OutputConfig.outputs`` / ``--outputs`` picks some):
crop.png, depth.png (16-bit, dataset scale: round(depth_px * 256)),
depth_vis.png, corr.png (16-bit RGB, round(c * 65535)), mask.png (255 = face), mesh.ply,
mesh.obj + mesh.mtl + mesh_0.png (meshes in the photo frame by default, :mod:`facevision.predict.mesh_frame`;
texture = the same, possibly turned, crop cut from the photo at ``OutputConfig.texture_size``),
fit_mesh.obj + fit_mesh.mtl + fit_texture.png (the fitted face model, fixed topology, photo frame:
:mod:`facevision.fit.fit_mesh`; its texture is the photo unwrapped in the face model's fixed UV layout,
:mod:`facevision.fit.texture`), preview.png, result.json (written last: a face is finished when its
result.json exists). ``OUT/<name>/`` itself holds the photo's files (:data:`PHOTO_OUTPUT_FILES`, written once per
photo by :func:`write_photo_files`: overlay.jpg, every face drawn over the photo, :mod:`facevision.predict.overlay`)
and ``image.json`` (written after all its faces), which
records the input, its status, its faces with the outputs written for each, the outputs asked for
(``asked``) and whether meshes were made (``mesh``). A photo's folder is written as a whole (a temporary
sibling renamed into place, :func:`facevision.common.fileio.atomic_folder`). ``OUT/summary.json`` lists the batch's
inputs and every photo finished in OUT (:func:`finished_photos`), each with the outputs it holds.

A photo's outputs count for each of its faces: :func:`present_outputs` of a face folder lists the face's own
outputs and those of the photo's files in the folder above it, so reruns and the summary judge both alike.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facevision.common.checks import check_choice, check_int
from facevision.face.crop import crop_image
from facevision.face.codecs import DEPTH_PNG_UNITS_PER_PX, encode_corr, encode_depth
from facevision.common.fileio import atomic_write_json
from facevision.face.images import atomic_write_png
from facevision.maps.visualize import corr_to_rgb, depth_to_rgb
from facevision.predict.predictor import FaceResult
from facevision.predict.render import RenderConfig, preview_sheet
from meshing.io import encode_texture, save_mesh

__all__ = ["FACE_FILES", "MESH_FILES", "write_face", "face_dir_name", "IMAGE_RECORD", "SUMMARY_NAME",
           "to_original_pixels", "OutputConfig", "texture_side", "face_texture", "OUTPUTS", "OUTPUT_FILES",
           "OUTPUT_GROUPS", "DEFAULT_OUTPUTS", "parse_outputs", "MESH_OUTPUTS", "MESH_FILE_OUTPUTS",
           "written_outputs", "present_outputs", "read_image_record", "finished_photo", "finished_photos",
           "photo_outputs", "FIT_MESH_FILES", "PHOTO_OUTPUT_FILES", "PHOTO_FILES", "write_photo_files",
           "write_fit_mesh"]

FACE_FILES = ("crop.png", "depth.png", "depth_vis.png", "corr.png", "mask.png", "preview.png", "result.json")
MESH_FILES = ("mesh.ply", "mesh.obj", "mesh.mtl", "mesh_0.png")
FIT_MESH_FILES = ("fit_mesh.obj", "fit_mesh.mtl", "fit_texture.png")
IMAGE_RECORD = "image.json"
SUMMARY_NAME = "summary.json"

# ``--outputs``: what each name writes per face, in its face<k> folder (result.json is always written: it marks a
# finished face)
OUTPUT_FILES: dict[str, tuple[str, ...]] = {
    "crop": ("crop.png",),
    "depth": ("depth.png",),
    "depth_vis": ("depth_vis.png",),
    "corr": ("corr.png",),
    "mask": ("mask.png",),
    "ply": ("mesh.ply",),
    "obj": ("mesh.obj", "mesh.mtl", "mesh_0.png"),
    "fit_mesh": FIT_MESH_FILES,
    "preview": ("preview.png",),
}
# ``--outputs``: what each name writes once per photo, in the photo's folder beside image.json
PHOTO_OUTPUT_FILES: dict[str, tuple[str, ...]] = {
    "overlay": ("overlay.jpg",),
}
PHOTO_FILES = tuple(f for files in PHOTO_OUTPUT_FILES.values() for f in files)
_ALL_FILES = {**OUTPUT_FILES, **PHOTO_OUTPUT_FILES}
OUTPUTS = tuple(_ALL_FILES)
DEFAULT_OUTPUTS = frozenset(OUTPUTS)  # every file
OUTPUT_GROUPS: dict[str, tuple[str, ...]] = {
    "all": OUTPUTS,
    "maps": ("depth", "corr", "mask"),
    "mesh": ("ply", "obj"),
}
MESH_OUTPUTS = frozenset({"ply", "obj", "fit_mesh", "preview"})  # need the mesh computed (preview renders it)
MESH_FILE_OUTPUTS = frozenset({"ply", "obj", "fit_mesh"})  # not written at all without the mesh (--no-mesh)


def parse_outputs(text: str) -> frozenset[str]:
    """``"depth,corr,mesh"`` -> the output names; groups (``all``, ``maps`` = depth,corr,mask, ``mesh`` =
    ply,obj) are expanded. Raises ValueError naming an unknown name and the valid ones."""
    chosen: set[str] = set()
    for name in (n.strip().lower() for n in str(text).split(",")):
        if not name:
            continue
        if name in OUTPUT_GROUPS:
            chosen.update(OUTPUT_GROUPS[name])
        elif name in _ALL_FILES:
            chosen.add(name)
        else:
            valid = ", ".join(list(OUTPUTS) + list(OUTPUT_GROUPS))
            raise ValueError(f"unknown output {name!r} (choose from {valid})")
    if not chosen:
        raise ValueError("no output chosen (result.json is always written; name at least one of "
                         f"{', '.join(OUTPUTS)})")
    return frozenset(chosen)


@dataclass(frozen=True)
class OutputConfig:
    """What the mesh files of a face look like.

    mesh_frame: "photo" (default: mesh.ply / mesh.obj / fit_mesh.obj in the photo's pixels, X = column,
        Y = H - 1 - row, Z = depth in photo px, so a mesh overlays its photo like 3DDFA_V2's and matches
        landmarks68_3d), "crop" (mesh.ply / mesh.obj in the maps' frame, crop px, what ``FaceResult.mesh``
        holds; fit_mesh.obj stays in the photo frame) or "head" (all three in the head's frame, millimetres,
        pose removed: for Blender and MeshLab; :mod:`facevision.predict.mesh_frame`).
    texture_size: side in px of mesh.obj's texture (mesh_0.png), cut from the photo with the crop's box and
        angle; never more than the crop covers in the photo (no blown-up pixels), never less than the network
        crop. The uvs are normalized, so they hold for any size. fit_texture.png is unwrapped from that cut.
    fit_texture_size: side in texels of fit_texture.png (the face model's fixed UV layout).
    outputs: which files to write (names of :data:`OUTPUT_FILES`, per face, and :data:`PHOTO_OUTPUT_FILES`, per
        photo; default: all of them); result.json is always written.
    """

    mesh_frame: str = "photo"
    texture_size: int = 512
    outputs: frozenset[str] = field(default=DEFAULT_OUTPUTS)
    fit_texture_size: int = 256

    def __post_init__(self) -> None:
        from facevision.predict.mesh_frame import MESH_FRAMES

        check_choice(self, "mesh_frame", MESH_FRAMES)
        check_int(self, "texture_size", low=16, unit="px")
        check_int(self, "fit_texture_size", 16, 4096, unit="texels")
        unknown = set(self.outputs) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"OutputConfig.outputs: unknown {sorted(unknown)} (choose from {', '.join(OUTPUTS)})")

    @property
    def needs_mesh(self) -> bool:
        """True when a chosen output needs the mesh (mesh files, the fitted mesh or the preview's renders)."""
        return bool(MESH_OUTPUTS & set(self.outputs))


def texture_side(crop_box: Sequence[int], size: int, texture_size: int) -> int:
    """Texture side in px: ``texture_size``, capped at the crop box's side in the photo, at least ``size``."""
    return int(max(size, min(int(texture_size), int(crop_box[2]) - int(crop_box[0]))))


def face_texture(photo: np.ndarray, result: FaceResult, texture_size: int) -> np.ndarray:
    """The face's crop cut again from ``photo`` (the photo ``result`` was predicted on) at the texture size."""
    side = texture_side(result.crop_box, result.crop.shape[0], texture_size)
    if side == result.crop.shape[0]:
        return result.crop
    return crop_image(photo, result.crop_box, side, result.crop_angle)


def face_dir_name(index: int) -> str:
    return f"face{index}"


def written_outputs(files: Sequence[str]) -> list[str]:
    """The output names (:data:`OUTPUTS`: per face and per photo) all of whose files are among ``files`` (file
    names), in order."""
    have = set(files)
    return [name for name, needed in _ALL_FILES.items() if have.issuperset(needed)]


def present_outputs(face_dir: str | Path) -> list[str]:
    """The outputs whose files all exist for the face in ``face_dir`` now: its own files (one directory listing)
    and the photo's files in the folder above it (:data:`PHOTO_FILES`); [] when ``face_dir`` cannot be listed."""
    face_dir = Path(face_dir)
    try:
        names = os.listdir(face_dir)
    except OSError:
        return []
    return written_outputs(names + [n for n in PHOTO_FILES if (face_dir.parent / n).is_file()])


def read_image_record(folder: str | Path) -> dict[str, Any] | None:
    """``folder/image.json`` as a dict, or None when it is missing or unreadable."""
    try:
        rec = json.loads((Path(folder) / IMAGE_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def finished_photo(folder: str | Path) -> dict[str, Any] | None:
    """``folder``'s image.json if it says ``ok`` and every face's result.json exists (a finished photo), else None."""
    folder = Path(folder)
    rec = read_image_record(folder)
    if rec is None or rec.get("status") != "ok" or not isinstance(rec.get("faces"), list):
        return None
    for face in rec["faces"]:
        name = face.get("dir") if isinstance(face, dict) else None
        if not isinstance(name, str) or name != Path(name).name or not (folder / name / "result.json").is_file():
            return None
    return rec


def photo_outputs(folder: str | Path, faces: list[dict[str, Any]]) -> list[str]:
    """The outputs present for every ``ok`` face of a photo (:func:`present_outputs`), in :data:`OUTPUTS` order."""
    common: set[str] | None = None
    for face in faces:
        if face.get("status") == "ok":
            have = set(present_outputs(Path(folder) / face["dir"]))
            common = have if common is None else common & have
    return [name for name in OUTPUTS if common and name in common]


def finished_photos(out: str | Path, skip: frozenset[str] | set[str] = frozenset()) -> list[dict[str, Any]]:
    """Summary records of every photo finished in OUT (:func:`finished_photo`; real folders, not hidden, not
    named in ``skip``), by folder name: ``{"input", "output", "status": "ok", "faces", "outputs"}``."""
    found = []
    try:
        entries = sorted(os.scandir(out), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or entry.name in skip or not entry.is_dir(follow_symlinks=False):
            continue
        rec = finished_photo(entry.path)
        if rec is not None:
            found.append({"input": rec.get("input", rec.get("source")), "output": entry.name, "status": "ok",
                          "faces": rec["faces"], "outputs": photo_outputs(entry.path, rec["faces"])})
    return found


def to_original_pixels(data: dict[str, Any], result: FaceResult, scale: tuple[float, float]) -> None:
    """Map result.json's photo coordinates (bbox, crop_box, landmarks68) from a reduced photo, ``scale`` =
    (reduced / original) per axis, back to the original photo's pixels; records ``photo_scale``."""
    sx, sy = scale
    x0, y0, x1, y1 = result.bbox
    data["bbox"] = [round(x0 / sx, 2), round(y0 / sy, 2), round(x1 / sx, 2), round(y1 / sy, 2)]
    cx0, cy0, cx1, cy1 = result.crop_box
    data["crop_box"] = [int(round(cx0 / sx)), int(round(cy0 / sy)), int(round(cx1 / sx)), int(round(cy1 / sy))]
    if result.landmarks68 is not None:
        data["landmarks68"] = [[round(float(x) / sx, 2), round(float(y) / sy, 2)] for x, y in result.landmarks68]
    if result.landmarks68_3d is not None:
        data["landmarks68_3d"] = [[round(float(x) / sx, 2), round(float(y) / sy, 2), round(float(z) / sx, 2)]
                                  for x, y, z in result.landmarks68_3d]
    data["photo_scale"] = [round(sx, 6), round(sy, 6)]


def _fit_triangles() -> np.ndarray:
    from facevision.face.face_model import load_face_model

    return load_face_model().triangles


def _fit_mtl_text() -> str:
    """fit_mesh.mtl: material ``fit_mesh_0`` (the name :func:`meshing.io.obj_text` uses) showing fit_texture.png."""
    return ("newmtl fit_mesh_0\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\n"
            f"map_Kd {FIT_MESH_FILES[2]}\n")


def write_fit_mesh(face_dir: str | Path, result: FaceResult, texture_image: np.ndarray, photo_height: int,
                   photo_scale: tuple[float, float] = (1.0, 1.0), output: OutputConfig = OutputConfig(),
                   head: Any = None) -> dict[str, Any]:
    """Write fit_mesh.obj + fit_mesh.mtl + fit_texture.png of a face with a face-model fit; returns the texture's
    summary (:meth:`facevision.fit.texture.FitTexture.summary`).

    Vertices: the photo frame (the original photo's px, Y up), or the head frame (mm) when ``head`` (a
    :class:`facevision.predict.mesh_frame.HeadFrame`) is given. Texture coordinates: the face model's fixed layout
    (:func:`facevision.fit.texture.uv_layout`), one ``vt`` per vertex, the same for every photo; fit_texture.png
    (``output.fit_texture_size`` texels) is unwrapped from ``texture_image``, the face's crop cut again from the
    photo (:func:`face_texture`: the crop box and angle at any side).
    """
    from dataclasses import replace

    from facevision.fit.fit_mesh import fit_mesh
    from facevision.fit.texture import TextureConfig, unwrap_texture, uv_layout
    from facevision.common.fileio import atomic_write_bytes
    from meshing.io import MeshIOError, obj_text
    from meshing.types import MeshingError

    face_dir = Path(face_dir)
    fit = result.model_fit
    size = int(result.crop.shape[0])
    tri = np.asarray(fit.triangles if fit.triangles is not None else _fit_triangles(), np.int64)
    layout = uv_layout(fit.vertices, tri)
    k = texture_image.shape[0] / size  # texture image px per crop px
    v = np.asarray(fit.vertices, np.float64)
    image_v = np.column_stack([(v[:, 0] + 0.5) * k - 0.5, (size - 1 - v[:, 1] + 0.5) * k - 0.5, v[:, 2] * k])
    tex = unwrap_texture(texture_image, image_v, tri, layout, fit.scale * k,
                         TextureConfig(size=output.fit_texture_size))
    mesh = fit_mesh(fit, tri, result.crop_box, size, result.crop_angle, photo_height, photo_scale)
    mesh = replace(mesh, uvs=layout.uv.astype(np.float32),
                   vertices=head.to_head(mesh.vertices) if head is not None else mesh.vertices)
    try:
        mesh.validate()
    except MeshingError as exc:
        raise MeshIOError(f"{face_dir / FIT_MESH_FILES[0]}: invalid mesh ({exc})") from None
    frame = "head frame, mm" if head is not None else "photo frame, photo px"
    comment = (f"fitted face model ({frame}); texture: {FIT_MESH_FILES[2]} in the fixed UV layout "
               f"{layout.name}")
    atomic_write_png(face_dir / FIT_MESH_FILES[2], tex.texture)  # texture and material first, the OBJ last
    atomic_write_bytes(face_dir / FIT_MESH_FILES[1], _fit_mtl_text().encode())
    atomic_write_bytes(face_dir / FIT_MESH_FILES[0], obj_text(mesh, "fit_mesh", comment).encode())
    return tex.summary()


def _frame_mesh(result: FaceResult, frame: str, height: int, photo_scale: tuple[float, float], head: Any) -> Any:
    """``result.mesh`` in the mesh frame asked for (:class:`OutputConfig`)."""
    from facevision.predict.mesh_frame import photo_frame_mesh

    if frame == "crop":
        return result.mesh
    mesh = photo_frame_mesh(result, height, photo_scale)
    if frame == "head":
        from dataclasses import replace

        mesh = replace(mesh, vertices=head.to_head(mesh.vertices))
    return mesh


def write_face(face_dir: str | Path, result: FaceResult, photo: np.ndarray, source: str = "",
               render: RenderConfig = RenderConfig(), extra: dict[str, Any] | None = None,
               photo_scale: tuple[float, float] = (1.0, 1.0), output: OutputConfig = OutputConfig()) -> dict[str, Any]:
    """Write every file of one face that ``output`` asks for; returns the result.json content (with
    ``timings_ms.write``).

    photo_scale: ``photo`` was reduced from the original by this (x, y) factor before detection; ``result``
    is in the reduced photo's pixels (as the preview shows it) and result.json gets original pixels.
    output: mesh frame and texture size (:class:`OutputConfig`). extra: more result.json keys (``flame``: the FLAME
    fit's summary, whose ``files`` count among the face's). The photo's own files (overlay.jpg) are not
    written here but once per photo, by :func:`write_photo_files`.
    """
    face_dir = Path(face_dir)
    t0 = time.perf_counter()
    want = output.outputs
    files: list[str] = []
    depth_rgb = depth_to_rgb(result.depth_px, result.mask) if want & {"depth_vis", "preview"} else None
    _write_maps(face_dir, result, want, depth_rgb, files)
    height = int(round(photo.shape[0] / photo_scale[1]))  # the original photo's
    meshes = _write_meshes(face_dir, result, photo, height, photo_scale, output, files)
    if "preview" in want:
        corr_rgb = corr_to_rgb(result.corr, result.mask)
        sheet = preview_sheet(photo, result.crop, depth_rgb, corr_rgb, result.mesh, result.crop_box,
                              result.landmarks68, render, result.crop_angle, visible=result.landmarks68_visible,
                              face_yaw_deg=0.0 if result.pose is None else float(result.pose.yaw))
        atomic_write_png(face_dir / "preview.png", sheet)
        files.append("preview.png")
    data = _result_data(result, source, photo_scale, height, output, meshes, extra, files)
    data["timings_ms"]["write"] = round((time.perf_counter() - t0) * 1e3, 3)
    atomic_write_json(face_dir / "result.json", data)
    return data


def _write_maps(face_dir: Path, result: FaceResult, want: frozenset[str], depth_rgb: np.ndarray | None,
                files: list[str]) -> None:
    """crop.png and the maps' PNGs that ``want`` names; their names are added to ``files``."""
    mask = result.mask
    pngs = (("crop.png", "crop", lambda: result.crop),
            ("depth.png", "depth", lambda: encode_depth(result.depth_px, mask)),
            ("depth_vis.png", "depth_vis", lambda: depth_rgb),
            ("corr.png", "corr", lambda: encode_corr(result.corr, mask)),
            ("mask.png", "mask", lambda: mask.astype(np.uint8) * 255))
    for name, key, image in pngs:
        if key in want:
            atomic_write_png(face_dir / name, image())
            files.append(name)


@dataclass
class _MeshFiles:
    """What writing a face's mesh files made: the OBJ texture (photo cut, None when not needed), the head frame
    (``--mesh-frame head``), the fitted mesh's texture summary and ms per step."""

    texture: np.ndarray | None = None
    head: Any = None
    fit_texture: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _write_meshes(face_dir: Path, result: FaceResult, photo: np.ndarray, height: int,
                  photo_scale: tuple[float, float], output: OutputConfig, files: list[str]) -> _MeshFiles:
    """mesh.ply, mesh.obj (+ .mtl + texture) and fit_mesh.obj (+ .mtl + texture) that ``output`` asks for, in its
    mesh frame; none without a mesh (``--no-mesh``). ``height``: the original photo's, px."""
    want = output.outputs
    made = _MeshFiles()
    if result.mesh is None:
        return made
    with_fit = result.model_fit is not None and "fit_mesh" in want
    if "obj" in want or with_fit:
        made.texture = face_texture(photo, result, output.texture_size)
    if output.mesh_frame == "head" and want & {"ply", "obj", "fit_mesh"}:
        from facevision.predict.mesh_frame import head_frame

        made.head = head_frame(result, height, photo_scale)
    if want & {"ply", "obj"}:
        mesh = _frame_mesh(result, output.mesh_frame, height, photo_scale, made.head)
        if "ply" in want:
            save_mesh(face_dir / "mesh.ply", mesh)
            files += list(OUTPUT_FILES["ply"])
        if "obj" in want:
            save_mesh(face_dir / "mesh.obj", mesh, texture_png=encode_texture(made.texture))
            files += list(OUTPUT_FILES["obj"])
    if with_fit:
        t = time.perf_counter()
        made.fit_texture = write_fit_mesh(face_dir, result, made.texture, height, photo_scale, output, made.head)
        files += list(FIT_MESH_FILES)
        made.timings["fit_mesh"] = round((time.perf_counter() - t) * 1e3, 3)
    return made


def _result_data(result: FaceResult, source: str, photo_scale: tuple[float, float], height: int,
                 output: OutputConfig, meshes: _MeshFiles, extra: dict[str, Any] | None, files: list[str]
                 ) -> dict[str, Any]:
    """result.json's content (original photo px; ``height``: the original photo's) but its ``timings_ms.write``."""
    data = result.to_json()
    if tuple(photo_scale) != (1.0, 1.0):
        to_original_pixels(data, result, photo_scale)
    data["source"] = source
    data["depth_png_scale"] = DEPTH_PNG_UNITS_PER_PX
    if "mesh" in data:
        data["mesh"].update(frame=output.mesh_frame,
                            **({"texture_px": int(meshes.texture.shape[0])} if meshes.texture is not None else {}),
                            **({"photo_height_px": height} if output.mesh_frame != "crop" else {}),
                            **({"head_frame": meshes.head.to_json()} if meshes.head is not None else {}))
    if meshes.fit_texture is not None:
        data["fit_texture"] = meshes.fit_texture
    if extra:
        data.update(extra)
        flame_files = (extra.get("flame") or {}).get("files") if isinstance(extra.get("flame"), dict) else None
        if isinstance(flame_files, dict):
            files = files + [str(v) for v in flame_files.values()]
    data["files"] = files + ["result.json"]
    data["timings_ms"].update(meshes.timings)
    return data


def write_photo_files(folder: str | Path, results: Sequence[FaceResult], photo: np.ndarray,
                      output: OutputConfig = OutputConfig(), overlay: Any = None) -> list[str]:
    """Write a photo's own files that ``output`` asks for (:data:`PHOTO_OUTPUT_FILES`) into its folder
    ``OUT/<name>/``, beside its face folders and image.json, once per photo; returns the names written.

    overlay.jpg: every face of ``results`` (the photo's ``FaceResult`` list, in ``photo``'s pixels, ``index`` =
    its face folder's number) drawn over ``photo`` (:mod:`facevision.predict.overlay`; ``overlay``: its
    :class:`facevision.predict.overlay.OverlayConfig`); written only when at least one face is ok.
    """
    folder = Path(folder)
    written: list[str] = []
    if "overlay" in output.outputs and any(r.ok for r in results):
        from facevision.predict.overlay import OverlayConfig, write_overlay

        write_overlay(folder / PHOTO_OUTPUT_FILES["overlay"][0], photo, results, overlay or OverlayConfig())
        written += list(PHOTO_OUTPUT_FILES["overlay"])
    return written

"""Files written per face and per batch by ``facevision predict`` (all atomic: complete or absent).

``OUT/<name>/face<k>/`` (every file by default; ``OutputConfig.outputs`` / ``--outputs`` picks some):
crop.png, depth.png (16-bit, dataset scale: round(depth_px * 256)),
depth_vis.png, corr.png (16-bit RGB, round(c * 65535)), mask.png (255 = face), mesh.ply,
mesh.obj + mesh.mtl + mesh_0.png (meshes in the photo frame by default, :mod:`facevision.predict.mesh_frame`;
texture = the same, possibly turned, crop cut from the photo at ``OutputConfig.texture_size``),
fit_mesh.obj + fit_mesh.mtl + fit_mesh_0.png (the fitted face model, fixed topology, photo frame:
:mod:`facevision.fit.fit_mesh`), preview.png, result.json (written last: a face is finished when its
result.json exists). ``OUT/<name>/image.json`` (written after all its faces)
records the input, its status, its faces with the outputs written for each, the outputs asked for
(``asked``) and whether meshes were made (``mesh``). A photo's folder is written as a whole (a temporary
sibling renamed into place, :func:`meshing.fileio.atomic_folder`). ``OUT/summary.json`` lists the batch's
inputs and every photo finished in OUT (:func:`finished_photos`), each with the outputs it holds.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from data_prep.crop import crop_image
from data_prep.dataset_format import DEPTH_SCALE, encode_corr, encode_depth
from data_prep.io import atomic_write_json, atomic_write_png
from facevision.maps.visualize import corr_to_rgb, depth_to_rgb
from facevision.predict.predictor import FaceResult
from facevision.predict.render import RenderConfig, preview_sheet
from meshing.io import encode_texture, save_mesh

__all__ = ["FACE_FILES", "MESH_FILES", "write_face", "face_dir_name", "IMAGE_RECORD", "SUMMARY_NAME",
           "to_original_pixels", "OutputConfig", "texture_side", "face_texture", "OUTPUTS", "OUTPUT_FILES",
           "OUTPUT_GROUPS", "DEFAULT_OUTPUTS", "parse_outputs", "MESH_OUTPUTS", "MESH_FILE_OUTPUTS",
           "written_outputs", "present_outputs", "read_image_record", "finished_photo", "finished_photos",
           "photo_outputs"]

FACE_FILES = ("crop.png", "depth.png", "depth_vis.png", "corr.png", "mask.png", "preview.png", "result.json")
MESH_FILES = ("mesh.ply", "mesh.obj", "mesh.mtl", "mesh_0.png")
FIT_MESH_FILES = ("fit_mesh.obj", "fit_mesh.mtl", "fit_mesh_0.png")
IMAGE_RECORD = "image.json"
SUMMARY_NAME = "summary.json"

# ``--outputs``: what each name writes per face (result.json is always written: it marks a finished face)
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
OUTPUTS = tuple(OUTPUT_FILES)
DEFAULT_OUTPUTS = frozenset(OUTPUTS)  # every file, as before --outputs existed
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
        elif name in OUTPUT_FILES:
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

    mesh_frame: "photo" (default: mesh.ply / mesh.obj in the photo's pixels, X = column, Y = H - 1 - row,
        Z = depth in photo px, so a mesh overlays its photo like 3DDFA_V2's and matches fit_mesh.obj and
        landmarks68_3d) or "crop" (the maps' frame, crop px; what ``FaceResult.mesh`` holds).
    texture_size: side in px of the OBJ textures (mesh_0.png, fit_mesh_0.png), cut from the photo with the
        crop's box and angle; never more than the crop covers in the photo (no blown-up pixels), never less
        than the network crop. The uvs are normalized, so they hold for any size.
    outputs: which files to write per face (names of :data:`OUTPUT_FILES`; default: all of them);
        result.json is always written.
    """

    mesh_frame: str = "photo"
    texture_size: int = 512
    outputs: frozenset[str] = field(default=DEFAULT_OUTPUTS)

    def __post_init__(self) -> None:
        from facevision.predict.mesh_frame import MESH_FRAMES

        if self.mesh_frame not in MESH_FRAMES:
            raise ValueError(f"OutputConfig.mesh_frame must be one of {MESH_FRAMES}, got {self.mesh_frame!r}")
        if int(self.texture_size) < 16:
            raise ValueError(f"OutputConfig.texture_size must be >= 16 px, got {self.texture_size!r}")
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
    """The output names (:data:`OUTPUT_FILES`) all of whose files are among ``files`` (file names), in order."""
    have = set(files)
    return [name for name, needed in OUTPUT_FILES.items() if have.issuperset(needed)]


def present_outputs(face_dir: str | Path) -> list[str]:
    """The outputs whose files all exist in ``face_dir`` now (one directory listing)."""
    try:
        return written_outputs(os.listdir(face_dir))
    except OSError:
        return []


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
    from data_prep.face_model import load_face_model

    return load_face_model().triangles


def write_face(face_dir: str | Path, result: FaceResult, photo: np.ndarray, source: str = "",
               render: RenderConfig = RenderConfig(), extra: dict[str, Any] | None = None,
               photo_scale: tuple[float, float] = (1.0, 1.0), output: OutputConfig = OutputConfig()) -> dict[str, Any]:
    """Write every file of one face; returns the result.json content (with ``timings_ms.write``).

    photo_scale: ``photo`` was reduced from the original by this (x, y) factor before detection; ``result``
    is in the reduced photo's pixels (as the preview shows it) and result.json gets original pixels.
    output: mesh frame and texture size (:class:`OutputConfig`).
    """
    face_dir = Path(face_dir)
    t0 = time.perf_counter()
    want = output.outputs
    mask = result.mask
    files: list[str] = []

    def png(name: str, key: str, image_fn) -> None:
        if key in want:
            atomic_write_png(face_dir / name, image_fn())
            files.append(name)

    depth_rgb = depth_to_rgb(result.depth_px, mask) if want & {"depth_vis", "preview"} else None
    corr_rgb = corr_to_rgb(result.corr, mask) if "preview" in want else None
    png("crop.png", "crop", lambda: result.crop)
    png("depth.png", "depth", lambda: encode_depth(result.depth_px, mask))
    png("depth_vis.png", "depth_vis", lambda: depth_rgb)
    png("corr.png", "corr", lambda: encode_corr(result.corr, mask))
    png("mask.png", "mask", lambda: mask.astype(np.uint8) * 255)
    height = int(round(photo.shape[0] / photo_scale[1]))  # the original photo's
    meshes = result.mesh is not None
    texture = face_texture(photo, result, output.texture_size) if meshes and want & {"obj", "fit_mesh"} else None
    texture_png = encode_texture(texture) if texture is not None else None  # mesh_0.png = fit_mesh_0.png
    if meshes and want & {"ply", "obj"}:
        from facevision.predict.mesh_frame import photo_frame_mesh

        mesh = photo_frame_mesh(result, height, photo_scale) if output.mesh_frame == "photo" else result.mesh
        if "ply" in want:
            save_mesh(face_dir / "mesh.ply", mesh)
            files += list(OUTPUT_FILES["ply"])
        if "obj" in want:
            save_mesh(face_dir / "mesh.obj", mesh, texture_png=texture_png)
            files += list(OUTPUT_FILES["obj"])
    if result.model_fit is not None and meshes and "fit_mesh" in want:  # --no-mesh: no meshes at all
        from facevision.fit.fit_mesh import fit_mesh

        tri = result.model_fit.triangles if result.model_fit.triangles is not None else _fit_triangles()
        fm = fit_mesh(result.model_fit, tri, result.crop_box, result.crop.shape[0], result.crop_angle,
                      height, photo_scale)
        save_mesh(face_dir / "fit_mesh.obj", fm, texture_png=texture_png)
        files += list(FIT_MESH_FILES)
    if "preview" in want:
        sheet = preview_sheet(photo, result.crop, depth_rgb, corr_rgb, result.mesh, result.crop_box,
                              result.landmarks68, render, result.crop_angle)
        atomic_write_png(face_dir / "preview.png", sheet)
        files.append("preview.png")
    data = result.to_json()
    if tuple(photo_scale) != (1.0, 1.0):
        to_original_pixels(data, result, photo_scale)
    data["source"] = source
    data["depth_png_scale"] = DEPTH_SCALE
    if "mesh" in data:
        data["mesh"].update(frame=output.mesh_frame,
                            **({"texture_px": int(texture.shape[0])} if texture is not None else {}),
                            **({"photo_height_px": height} if output.mesh_frame == "photo" else {}))
    if extra:
        data.update(extra)
        flame_files = (extra.get("flame") or {}).get("files") if isinstance(extra.get("flame"), dict) else None
        if isinstance(flame_files, dict):
            files += [str(v) for v in flame_files.values()]
    data["files"] = files + ["result.json"]
    data["timings_ms"]["write"] = round((time.perf_counter() - t0) * 1e3, 3)
    atomic_write_json(face_dir / "result.json", data)
    return data

"""Finishing one input of ``facevision predict`` in a writer (:mod:`facevision.predict.writer`): its faces' crops
and maps -> results (:meth:`facevision.predict.predictor.Postprocessor.postprocess`) -> its folder in OUT.

A job is plain data (:class:`WriteJob`), sent to a writer process as it is; what comes back is an
:class:`Outcome`. A photo's folder is written as a whole, into a temporary sibling renamed into place
(:func:`facevision.common.fileio.atomic_folder`), so no folder mixes two runs' files and a killed run leaves no half
folder; a folder holding files predict did not write is never replaced (:func:`facevision.predict.out_folder.foreign`).
A write failure (disk full) fails that input with one line naming the file, leaving none of its faces behind.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from facevision.common.fileio import OutputWriteError, atomic_folder, atomic_write_json
from facevision.face.images import ScaledPhoto
from facevision.predict.out_folder import foreign
from facevision.predict.outputs import (IMAGE_RECORD, MESH_FILE_OUTPUTS, OutputConfig, face_dir_name, write_face,
                                        write_photo_files, written_outputs)
from facevision.predict.predictor import FaceResult, PredictConfig, Postprocessor
from facevision.predict.records import FaceCrop, FaceMaps
from facevision.predict.render import RenderConfig

__all__ = ["PhotoTask", "WriteJob", "Outcome", "WriteSetup", "WriteState", "write_input", "write_folder",
           "flame_setup"]

Postprocess = Callable[..., FaceResult]  # (crop: FaceCrop, maps: FaceMaps, index=k) -> FaceResult
FlameFit = Callable[[Path, FaceResult], dict[str, Any]]  # (face_dir, result) -> the FLAME fit's summary


@dataclass(frozen=True)
class PhotoTask:
    """One input read and its faces cut: path; out_dir: its folder ``OUT/<name>``; photo: as read (possibly reduced,
    :class:`facevision.face.images.ScaledPhoto`); outputs: the outputs to write
    (:data:`facevision.predict.outputs.OUTPUTS` names); found: faces the detector found in the photo (more than
    those processed when only the largest is); all_faces: every face was asked for."""

    path: Path
    out_dir: Path
    photo: ScaledPhoto
    outputs: frozenset[str]
    found: int = 0
    all_faces: bool = False


@dataclass(frozen=True)
class WriteJob:
    """Everything needed to finish one input: its :class:`PhotoTask` and, per face (largest first), its crop and
    the network's maps of it."""

    task: PhotoTask
    faces: tuple[tuple[FaceCrop, FaceMaps], ...]


@dataclass
class Outcome:
    """What finishing one input reports back to the calling process: its record's ``status``, ``faces`` and
    ``reason``; ``errors``: the reasons of its error lines, in order; ``done``: its ``-v`` line, if any."""

    status: str = "failed"
    faces: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    errors: list[str] = field(default_factory=list)
    done: str | None = None

    def fail(self, reason: str) -> None:
        self.status, self.reason = "failed", reason
        self.errors.append(reason)


@dataclass(frozen=True)
class WriteSetup:
    """What a writer needs besides its jobs (picklable); calling it makes a writer's state once: its own
    :class:`Postprocessor` (face model, reference, mesh settings) and FLAME model."""

    predict: PredictConfig
    output: OutputConfig
    render: RenderConfig
    log: bool
    flame_model: str | None

    def __call__(self) -> "WriteState":
        flame_fit, flame_off = flame_setup(self.flame_model)
        if self.flame_model is not None and flame_fit is None:  # loaded in the calling process, not here: say so
            raise RuntimeError(f"{flame_off} (in a writer)")
        return WriteState(Postprocessor(self.predict).postprocess, self, flame_fit)

    def preload(self) -> None:
        """Import what only the writers use (Open3D for smoothing and PLY, scipy.sparse, the fitted mesh) in the
        process the writer processes fork from: once instead of once per worker. Imports only: no Open3D work,
        which would start threads before the fork."""
        from facevision.common.lazy_modules import import_open3d

        import_open3d()
        import scipy.ndimage  # noqa: F401
        import scipy.sparse.csgraph  # noqa: F401
        import scipy.sparse.linalg  # noqa: F401

        import facevision.fit.complete  # noqa: F401
        import facevision.fit.fit_mesh  # noqa: F401
        import facevision.fit.texture  # noqa: F401
        import facevision.predict.mesh_frame  # noqa: F401
        import facevision.predict.overlay  # noqa: F401
        import meshing  # noqa: F401


@dataclass
class WriteState:
    """A writer's state: its postprocess, the settings, and the FLAME fit (None: off)."""

    postprocess: Postprocess
    setup: WriteSetup
    flame_fit: FlameFit | None


def write_input(state: WriteState, job: WriteJob) -> Outcome:
    """Crops and maps of one input's faces -> results -> files; runs in a writer (process, thread or the calling
    thread). Any failure fails this input only."""
    out = Outcome()
    try:
        results = [state.postprocess(crop, maps, index=k) for k, (crop, maps) in enumerate(job.faces)]
    except Exception as exc:  # an unexpected failure fails this input, not the batch
        out.fail(f"prediction failed ({type(exc).__name__}: {exc})")
        return out
    try:
        write_folder(job.task, results, state, out)  # handles write failures itself
    except Exception as exc:  # noqa: BLE001 - anything else still fails only this input
        out.fail(f"writing outputs failed ({type(exc).__name__}: {exc})")
    return out


def write_folder(task: PhotoTask, results: list[FaceResult], state: WriteState, outcome: Outcome) -> None:
    """Write one input's folder as a whole: its faces, the photo's files, then its image.json, into a temporary
    folder beside ``OUT/<name>`` that then replaces it (never one holding files predict did not write); set
    ``outcome`` (status, faces, reason, lines)."""
    mesh = state.setup.predict.mesh is not None
    where: list[Path] = []  # the temporary folder: messages name the final one
    try:
        strangers = foreign(task.out_dir)
        if strangers:
            raise OutputWriteError(f"{task.out_dir}: holds {', '.join(strangers[:3])}, which facevision predict did "
                                   "not write; the folder is left as it is (move it away to redo this photo)")
        with atomic_folder(task.out_dir) as folder:
            where.append(folder)
            faces = _write_faces(folder, results, task, state)
            atomic_write_json(folder / IMAGE_RECORD, _image_record(task, faces, mesh))
    except OSError as exc:  # OutputWriteError names the file and says "disk full" when it is
        outcome.fail(f"cannot write outputs: {_final_names(str(exc), where, task.out_dir)}")
        return
    except Exception as exc:
        outcome.fail(f"writing outputs failed ({type(exc).__name__}: {_final_names(str(exc), where, task.out_dir)})")
        return
    outcome.faces = faces
    ok = [f for f in faces if f["status"] == "ok"]
    if not ok:
        outcome.fail(faces[0].get("error", "no usable face"))
        return
    outcome.status, outcome.reason = "ok", None
    if state.setup.log:
        outcome.done = f"{task.path}: {len(ok)} face(s) -> {task.out_dir}"


def _write_faces(folder: Path, results: list[FaceResult], task: PhotoTask, state: WriteState) -> list[dict[str, Any]]:
    """Each face's folder ``face<k>``, then the photo's own files (overlay.jpg); the faces' entries of image.json.
    A photo's files count among the outputs of each of its ok faces."""
    setup = state.setup
    output = replace(setup.output, outputs=task.outputs)
    faces: list[dict[str, Any]] = []
    face_files: list[list[str]] = []
    for k, res in enumerate(results):
        res.index = k
        face_dir = folder / face_dir_name(k)
        data = write_face(face_dir, res, task.photo.image, str(task.path), setup.render,
                          _flame_extra(state, face_dir, res), photo_scale=task.photo.scale, output=output)
        face_files.append(data["files"])
        faces.append({"dir": face_dir.name, "status": data["status"], "outputs": written_outputs(data["files"]),
                      **({"error": res.error} if res.error else {})})
    photo_files = write_photo_files(folder, results, task.photo.image, output)
    for face, files in zip(faces, face_files):
        if photo_files and face["status"] == "ok":
            face["outputs"] = written_outputs(files + photo_files)
    return faces


def _flame_extra(state: WriteState, face_dir: Path, res: FaceResult) -> dict[str, Any]:
    """``{"flame": summary}`` of the FLAME fit of an ok face with a mesh (its failure recorded too); {} when off."""
    if state.flame_fit is None or not res.ok or res.mesh is None:
        return {}
    try:
        return {"flame": state.flame_fit(face_dir, res)}
    except Exception as exc:
        return {"flame": {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}}


def _image_record(task: PhotoTask, faces: list[dict[str, Any]], mesh: bool) -> dict[str, Any]:
    """image.json of a photo: its source, status, faces and their outputs, what was asked (``asked``; no mesh files
    without meshes), whether meshes were made, sizes (original px; ``processed_size`` when reduced)."""
    ok = any(f["status"] == "ok" for f in faces)
    asked = task.outputs if mesh else task.outputs - MESH_FILE_OUTPUTS
    record = {"source": str(task.path.resolve()), "input": str(task.path), "status": "ok" if ok else "failed",
              "faces": faces, "image_size": list(task.photo.original_size), "asked": sorted(asked), "mesh": mesh,
              "all_faces": task.all_faces, "faces_detected": max(task.found, len(faces))}
    if task.photo.scale != (1.0, 1.0):
        record["processed_size"] = [int(task.photo.image.shape[1]), int(task.photo.image.shape[0])]
    return record


def _final_names(message: str, temporary: list[Path], final: Path) -> str:
    """``message`` naming the files of a photo's final folder instead of its temporary one."""
    return message.replace(str(temporary[0]), str(final)) if temporary else message


def flame_setup(model_path: str | None) -> tuple[FlameFit | None, str | None]:
    """Returns (fit_and_save(face_dir, result) -> summary, None) or (None, reason it is off)."""
    if not model_path:
        return None, None
    from facevision.flame import load_flame_model, register_and_save, resolve_model_path

    try:
        model = load_flame_model(resolve_model_path(model_path))
    except Exception as exc:  # FlameModelError and friends: the message names the file
        return None, f"FLAME model not usable: {exc}"

    def fit(face_dir: Path, result: FaceResult) -> dict[str, Any]:
        return register_and_save(face_dir, result.mesh, result.corr, result.landmarks68_crop, model)

    return fit, None

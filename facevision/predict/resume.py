"""What a rerun finds in OUT: whether an input is finished there (skipped unless ``overwrite``), which outputs its
folder holds (a rerun writes them again, so it loses none) and how many of its faces were left out.

An input is finished when ``OUT/<name>/image.json`` says ``ok`` for the same source file, every face's
result.json exists and every output this run asks for is there (:func:`finished_input`: a run with meshes
redoes a photo of a ``--no-mesh`` run; a run asking for every face redoes one that kept only the largest).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from facevision.predict.outputs import MESH_FILE_OUTPUTS, MESH_OUTPUTS, finished_photo, present_outputs

__all__ = ["finished_input", "missing_outputs", "held_outputs", "face_counts"]


def finished_input(out_dir: Path, source: Path, want: frozenset[str] | None = None, mesh: bool = True,
                   all_faces: bool = False) -> dict[str, Any] | None:
    """``out_dir``'s image.json when it holds a finished photo (:func:`finished_photo`) of ``source`` with every
    output of ``want`` that a run making meshes (``mesh``) or not writes (:func:`missing_outputs`), and, for a run
    asking for every face (``all_faces``), made by such a run (image.json's ``all_faces``: a photo of a run that
    kept only the largest face is redone, with the faces it left out), else None."""
    rec = finished_photo(out_dir)
    if rec is None or rec.get("source") != str(source.resolve()):
        return None
    if all_faces and rec.get("all_faces") is not True:
        return None
    if want is not None and missing_outputs(out_dir, rec, want, mesh):
        return None
    return rec


def missing_outputs(out_dir: Path, rec: dict[str, Any], want: frozenset[str], mesh: bool) -> set[str]:
    """The outputs of ``want`` a run making meshes or not (``mesh``; without, no mesh files are made) would write
    that the finished photo ``rec`` in ``out_dir`` lacks on disk, for any of its ok faces. Not missing: what
    the photo's own run asked for and could not make for a face (fit_mesh where the face-model fit failed; its
    image.json lists what was asked and each face's outputs). With meshes, the outputs that show the mesh are
    missing when the photo's run made none (its preview has no mesh)."""
    want = set(want) if mesh else set(want) - MESH_FILE_OUTPUTS
    if mesh and rec.get("mesh") is False and want & MESH_OUTPUTS:
        return want & MESH_OUTPUTS
    asked = rec.get("asked")
    missing: set[str] = set()
    for face in rec["faces"]:
        if face.get("status") != "ok":
            continue
        lacks = want - set(present_outputs(out_dir / face["dir"]))
        if isinstance(asked, list) and isinstance(face.get("outputs"), list):
            lacks -= set(asked) - set(face["outputs"])
        missing |= lacks
    return missing


def held_outputs(out_dir: Path, source: Path) -> frozenset[str]:
    """The outputs ``out_dir`` holds for ``source`` (any ok face): a rerun without overwrite writes them again."""
    rec = finished_photo(out_dir)
    if rec is None or rec.get("source") != str(source.resolve()):
        return frozenset()
    return frozenset(o for f in rec["faces"] if f.get("status") == "ok" for o in present_outputs(out_dir / f["dir"]))


def face_counts(rec: dict[str, Any]) -> dict[str, int]:
    """``{"faces_detected", "faces_skipped"}`` of a photo from its image.json (or a record alike): faces the detector
    found and those left out (found but not processed: only the largest is, without ``--all-faces``); {} for an
    image.json written before they were recorded."""
    found = rec.get("faces_detected")
    if not isinstance(found, int) or isinstance(found, bool) or not isinstance(rec.get("faces"), list):
        return {}
    return {"faces_detected": found, "faces_skipped": max(0, found - len(rec["faces"]))}

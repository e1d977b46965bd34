"""``facevision fit-identity PHOTOS... -o OUT``: one identity code for several photos of one person."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facevision.commands.errors import fail

NAME = "fit-identity"
# A photo whose residual under the shared identity exceeds its own fit's by this factor may show someone else
# (how it was chosen: docs/face_model.md)
MISFIT_FACTOR = 1.15


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="fit one identity (face-model shape code) shared by several photos of a person",
        description="Predict every photo (largest face), then fit the project's face model jointly: one identity "
                    "code for all photos, pose and expression per photo. Writes OUT/identity.json (the code, per-photo "
                    "pose, expression and residual, shared and alone) and OUT/identity_mesh.obj (the neutral face of "
                    "that identity in the model's fixed topology, raw model units: x right, y up, z towards the "
                    f"viewer). Warns when a photo fits the shared identity more than {MISFIT_FACTOR:g} x worse than "
                    "its own: it may show someone else (a coarse check, not face recognition).")
    p.add_argument("photos", nargs="+", type=Path, help="photos of one person, or folders of them")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--checkpoint", type=Path, help="generator .safetensors (default: the shipped checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.set_defaults(func=run)
    return p


def _named(path: Path, exc: Exception) -> str:
    """The error's message, led by the photo's path once (ImageReadError's own message already starts with it)."""
    msg = str(exc)
    return msg if msg.startswith(f"{path}:") else f"{path}: {msg}"


def misfits(shared_rms: list[float], alone_rms: list[float | None], factor: float = MISFIT_FACTOR) -> list[int]:
    """Indices of the photos whose residual under the shared identity is more than ``factor`` x that of their own
    fit (None: no own fit, not judged)."""
    return [i for i, (s, a) in enumerate(zip(shared_rms, alone_rms)) if a is not None and a > 0 and s > factor * a]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from facevision.face.face_model import load_face_model
    from facevision.face.images import ImageReadError
    from facevision.common.fileio import atomic_write_json
    from facevision.fit.model_fit import fit_shared_identity
    from facevision.maps.pose import photo_pose
    from facevision.predict.inputs import expand_inputs
    from facevision.predict.predictor import PredictConfig, Predictor
    from meshing import save_mesh
    from meshing.types import FaceMesh

    prog = f"facevision {NAME}"
    if args.output.exists() and not args.output.is_dir():
        return fail(prog, f"{args.output}: exists and is not a folder")
    photos, problems = expand_inputs([str(p) for p in args.photos], exclude=args.output)
    for rec in problems:  # arguments that match nothing, folders without images
        print(f"{prog}: {rec['input']}: {rec['reason']}", file=sys.stderr)
    pred = Predictor.from_pretrained(args.checkpoint, device=args.device, config=PredictConfig(mesh=None))
    used, maps, failed = [], [], len(problems)
    for path in photos:
        try:
            faces = pred(path)
        except (ImageReadError, OSError, ValueError) as exc:
            print(f"{prog}: {_named(path, exc)}", file=sys.stderr)
            failed += 1
            continue
        if not faces or not faces[0].ok:
            print(f"{prog}: {path}: no usable face", file=sys.stderr)
            failed += 1
            continue
        used.append((path, faces[0]))
        maps.append((faces[0].depth_px, faces[0].corr, faces[0].mask))
    if not maps:
        return fail(prog, f"none of the {len(photos) + len(problems)} inputs gave a face", code=1)
    model = pred.face_model or load_face_model(pred.config.face_model)  # the checkpoint's correspondence space
    try:
        ident, fits = fit_shared_identity(maps, model, reference=pred.reference)
    except ValueError as exc:
        return fail(prog, exc, code=1)
    alone = [face.model_fit.rms_px if face.model_fit is not None else None for _, face in used]
    odd = misfits([f.rms_px for f in fits], alone) if len(fits) > 1 else []
    warning = None
    if odd:
        worst = ", ".join(f"{used[i][0]} ({fits[i].rms_px:.2f} px against {alone[i]:.2f} px alone)" for i in odd)
        warning = (f"{len(odd)} of {len(fits)} photos fit the shared identity more than {MISFIT_FACTOR:g} x worse "
                   f"than their own: {worst}; they may show a different person")
        print(f"{prog}: warning: {warning}", file=sys.stderr)
    photos_out = []
    for (path, face), fit, own in zip(used, fits, alone):
        pose = photo_pose(fit.pose, face.crop_angle)
        photos_out.append({"photo": str(path), "pose": pose.to_dict(),
                           "exp_coeffs": [round(float(v), 4) for v in fit.exp_coeffs], "rms_px": round(fit.rms_px, 4),
                           "rms_px_alone": None if own is None else round(own, 4)})
    args.output.mkdir(parents=True, exist_ok=True)
    neutral = model.shape(ident, None)
    save_mesh(args.output / "identity_mesh.obj", FaceMesh(vertices=neutral.astype(np.float32), faces=model.triangles,
                                                          pixels=np.full((len(neutral), 2), np.nan, np.float32)))
    atomic_write_json(args.output / "identity.json", {
        "face_model": model.name, "id_coeffs": [round(float(v), 5) for v in ident], "photos": photos_out,
        "failed": failed, "warnings": [warning] if warning else [], "files": ["identity.json", "identity_mesh.obj"]})
    print(f"identity from {len(fits)} photo(s) ({failed} failed): {args.output / 'identity.json'}")
    return 0 if not failed else 1

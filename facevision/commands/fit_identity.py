"""``facevision fit-identity PHOTOS... -o OUT``: one identity code for several photos of one person."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "fit-identity"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="fit one identity (face-model shape code) shared by several photos of a person",
        description="Predict every photo (largest face), then fit the project's face model jointly: one identity "
                    "code for all photos, pose and expression per photo. Writes OUT/identity.json (the code, per-photo "
                    "pose, expression and residual) and OUT/identity_mesh.obj (the neutral face of that identity "
                    "in the model's fixed topology, raw model units: x right, y up, z towards the viewer).")
    p.add_argument("photos", nargs="+", type=Path, help="photos of one person")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--checkpoint", type=Path, help="generator .safetensors (default: the shipped checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from data_prep.face_model import load_face_model
    from data_prep.io import ImageReadError, atomic_write_json
    from facevision.fit.model_fit import fit_shared_identity
    from facevision.maps.pose import photo_pose
    from facevision.predict.predictor import PredictConfig, Predictor
    from meshing import save_mesh
    from meshing.types import FaceMesh

    prog = f"facevision {NAME}"
    if args.output.exists() and not args.output.is_dir():
        print(f"{prog}: error: {args.output}: exists and is not a folder", file=sys.stderr)
        return 2
    pred = Predictor.from_pretrained(args.checkpoint, device=args.device, config=PredictConfig(mesh=None))
    used, maps, failed = [], [], 0
    for path in args.photos:
        try:
            faces = pred(path)
        except (ImageReadError, OSError, ValueError) as exc:
            print(f"{prog}: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        if not faces or not faces[0].ok:
            print(f"{prog}: {path}: no usable face", file=sys.stderr)
            failed += 1
            continue
        used.append((path, faces[0]))
        maps.append((faces[0].depth_px, faces[0].corr, faces[0].mask))
    if not maps:
        print(f"{prog}: error: none of the {len(args.photos)} photos gave a face", file=sys.stderr)
        return 1
    model = load_face_model()
    try:
        ident, fits = fit_shared_identity(maps, model)
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    photos = []
    for (path, face), fit in zip(used, fits):
        pose = photo_pose(fit.pose, face.crop_angle)
        photos.append({"photo": str(path), "pose": pose.to_dict(), "exp_coeffs": [round(float(v), 4) for v in fit.exp_coeffs],
                       "rms_px": round(fit.rms_px, 4)})
    args.output.mkdir(parents=True, exist_ok=True)
    neutral = model.shape(ident, None)
    save_mesh(args.output / "identity_mesh.obj", FaceMesh(vertices=neutral.astype(np.float32), faces=model.triangles,
                                                          pixels=np.full((len(neutral), 2), np.nan, np.float32)))
    atomic_write_json(args.output / "identity.json", {
        "face_model": model.name, "id_coeffs": [round(float(v), 5) for v in ident], "photos": photos,
        "failed": failed, "files": ["identity.json", "identity_mesh.obj"]})
    print(f"identity from {len(fits)} photo(s) ({failed} failed): {args.output / 'identity.json'}")
    return 0 if not failed else 1

"""``facevision flame fit|edit|animate``: FLAME registration of predict outputs and parameter control.

fit      PATH...   face folders written by ``facevision predict`` (OUT/<stem>/face<k>/ with depth.png,
                   corr.png, mask.png, result.json) or folders containing them; writes flame.npz,
                   flame_mesh.obj and a "flame" entry (residuals) in each result.json.
edit     FLAME.npz edit parameters (absolute values) and write the posed mesh as OBJ.
animate  FLAME.npz write a short OBJ sequence from the fitted parameters to the edited ones
                   (default: opening the jaw to 25 degrees).
The model comes from --flame-model PATH or $FACEVISION_FLAME_MODEL.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from facevision.commands.errors import fail
from facevision.env import FLAME_MODEL_ENV

__all__ = ["add_parser", "run", "plain_text"]


def plain_text(doc: str) -> str:
    """A docstring as terminal text: RST literals (double backquotes) become plain words."""
    return re.sub(r"``([^`]*)``", r"\1", doc)


def _index_value(text: str) -> tuple[int, float]:
    try:
        i, v = text.split("=", 1)
        return int(i), float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected INDEX=VALUE (e.g. 3=1.5), got {text!r}") from None


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--flame-model", metavar="PATH",
                   help="FLAME model file (generic_model.pkl, flame2023.pkl or a FLAME-structured .npz); "
                        f"default: ${FLAME_MODEL_ENV}")


def _add_edit_args(p: argparse.ArgumentParser, jaw_default: float | None = None) -> None:
    p.add_argument("--expression", action="append", type=_index_value, default=[], metavar="I=V",
                   help="set expression coefficient I to V (repeatable)")
    p.add_argument("--shape", action="append", type=_index_value, default=[], metavar="I=V",
                   help="set identity shape coefficient I to V (repeatable)")
    p.add_argument("--jaw", type=float, default=jaw_default, metavar="DEGREES", help="jaw opening (positive = open)")
    p.add_argument("--yaw", type=float, metavar="DEGREES", help="head yaw (positive = face turns to the image right)")
    p.add_argument("--pitch", type=float, metavar="DEGREES", help="head pitch (positive = face tilts up)")
    p.add_argument("--roll", type=float, metavar="DEGREES", help="head roll (positive = counter-clockwise in the image)")
    p.add_argument("--pixels", action="store_true",
                   help="write vertices in crop pixels over the reconstruction instead of FLAME metres")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("flame", help="fit FLAME to predict outputs; edit and animate FLAME parameters",
                                   description=plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="flame_command", required=True, metavar="ACTION")
    fit = sub.add_parser("fit", help="register FLAME to predict output folders")
    fit.add_argument("paths", nargs="+", type=Path, help="face folders (or folders containing them)")
    _add_model_args(fit)
    fit.add_argument("--reference", type=Path, metavar="NPZ",
                     help="reference-face asset of the correspondence space (default: the project's)")
    fit.add_argument("--flame-embedding", type=Path, metavar="NPZ",
                     help="FLAME's mediapipe_landmark_embedding.npz (default: $FACEVISION_FLAME_EMBEDDING or the file "
                          "of that name next to the model); improves relating the reference face to FLAME")
    fit.add_argument("--no-landmarks", action="store_true", help="ignore landmarks68 from result.json")
    fit.set_defaults(func=run)
    edit = sub.add_parser("edit", help="edit FLAME parameters and write the mesh")
    edit.add_argument("params", type=Path, help="flame.npz from fit")
    _add_model_args(edit)
    _add_edit_args(edit)
    edit.add_argument("-o", "--output", type=Path, required=True, help="output .obj")
    edit.add_argument("--save-params", type=Path, metavar="NPZ", help="also write the edited parameters")
    edit.set_defaults(func=run)
    anim = sub.add_parser("animate", help="write an OBJ sequence from the fitted to the edited parameters")
    anim.add_argument("params", type=Path, help="flame.npz from fit")
    _add_model_args(anim)
    _add_edit_args(anim, jaw_default=25.0)
    anim.add_argument("--frames", type=int, default=12, help="number of meshes (default 12)")
    anim.add_argument("-o", "--output", type=Path, required=True, help="output folder (frame_000.obj, ...)")
    anim.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from facevision.flame.model import (FLAME_HELP, FlameModelError, FlameModelMissingError, load_flame_model,
                                        resolve_model_path)
    from facevision.flame.params import FlameParamsError

    try:
        model = load_flame_model(resolve_model_path(args.flame_model))
        if args.flame_command == "fit":
            return _fit(args, model)
        return _edit_or_animate(args, model)
    except FlameModelMissingError:
        return fail("facevision flame", FLAME_HELP)
    except (FlameModelError, FlameParamsError, FileNotFoundError) as exc:
        return fail("facevision flame", exc)


def find_face_dirs(paths: list[Path]) -> list[Path]:
    """Face folders (holding depth.png and corr.png) among ``paths`` and below them, sorted."""
    found: list[Path] = []
    for p in paths:
        if (p / "depth.png").is_file() and (p / "corr.png").is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(d.parent for d in p.rglob("depth.png") if (d.parent / "corr.png").is_file())
    return sorted(set(found))


def fit_face_dir(face_dir: Path, model: Any, relation: Any, use_landmarks: bool = True) -> dict[str, Any]:
    """Register one predict face folder; writes flame.npz, flame_mesh.obj, result.json["flame"]."""
    import numpy as np

    from facevision.face.crop import original_to_crop
    from facevision.face.codecs import decode_corr, decode_depth
    from facevision.common.fileio import atomic_write_json
    from facevision.face.images import read_png
    from facevision.flame.io import save_fit
    from facevision.flame.registration import register
    from meshing import mesh_from_maps

    depth = decode_depth(read_png(face_dir / "depth.png"))
    corr = decode_corr(read_png(face_dir / "corr.png")[..., :3])
    mask = None
    if (face_dir / "mask.png").is_file():
        m = read_png(face_dir / "mask.png")
        mask = (m[..., 0] if m.ndim == 3 else m) > 127
    result_path = face_dir / "result.json"
    result: dict[str, Any] = {}
    if result_path.is_file():
        try:
            result = json.loads(result_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{result_path}: not valid JSON ({exc})") from None
    landmarks = None
    if use_landmarks and result.get("landmarks68_crop") is not None:  # predict also writes crop-pixel landmarks
        landmarks = np.asarray(result["landmarks68_crop"], dtype=np.float64)
    elif use_landmarks and result.get("landmarks68") is not None:
        lm = np.asarray(result["landmarks68"], dtype=np.float64)
        if lm.ndim != 2 or lm.shape[1] != 2:
            raise ValueError(f"{result_path}: landmarks68 must be [x, y] pairs, got shape {lm.shape}")
        box = result.get("crop_box")
        landmarks = original_to_crop(lm, box, depth.shape[0]) if box is not None else lm
    if landmarks is not None and landmarks.shape != (68, 2):
        raise ValueError(f"{result_path}: expected 68 landmarks [x, y], got shape {landmarks.shape}")
    mesh = mesh_from_maps(depth, mask, corr=corr)
    fit = register(mesh, corr, landmarks, model, relation=relation)
    summary = save_fit(face_dir / "flame.npz", fit, model.sha256)
    result["flame"] = summary
    if isinstance(result.get("files"), list):
        result["files"] += [f for f in ("flame.npz", "flame_mesh.obj") if f not in result["files"]]
    atomic_write_json(result_path, result)
    return summary


def _fit(args: argparse.Namespace, model: Any) -> int:
    from facevision.flame.correspondence import relation_for

    reference = None
    if args.reference is not None:
        from facevision.face.reference import load_reference

        reference = load_reference(args.reference)
    dirs = find_face_dirs(args.paths)
    if not dirs:
        return fail("facevision flame fit", f"no face folders (with depth.png and corr.png) under "
                                            f"{', '.join(map(str, args.paths))}")
    try:
        relation = relation_for(model, reference, embedding=args.flame_embedding or True)
    except (ValueError, OSError) as exc:
        return fail("facevision flame fit", f"cannot relate the reference face to {model.source}: {exc}")
    failed = 0
    for d in dirs:
        try:
            s = fit_face_dir(d, model, relation, use_landmarks=not args.no_landmarks)
            print(f"{d}: flame.npz, flame_mesh.obj (residual mean {s['residual_mean_px']:.2f} px / "
                  f"{s['residual_mean_mm']:.2f} mm, p90 {s['residual_p90_px']:.2f} px, {s['seconds']['total']:.2f} s)")
        except (ValueError, OSError) as exc:
            failed += 1
            print(f"facevision flame fit: {d}: {exc}", file=sys.stderr)
    print(f"fitted {len(dirs) - failed}/{len(dirs)} faces")
    return 1 if failed else 0


def _edit_or_animate(args: argparse.Namespace, model: Any) -> int:
    import numpy as np

    from facevision.flame.geometry import write_obj
    from facevision.flame.params import edit_params, flame_forward, interpolate_params, load_params, save_params

    params, _ = load_params(args.params, model)
    edited = edit_params(params, expression=dict(args.expression), shape=dict(args.shape), jaw=args.jaw,
                         yaw=args.yaw, pitch=args.pitch, roll=args.roll)
    units = "crop pixels" if args.pixels else "metres (FLAME frame)"
    if args.flame_command == "edit":
        write_obj(args.output, flame_forward(model, edited, pixels=args.pixels), model.faces,
                  comment=f"facevision flame edit of {args.params.name}; {units}")
        if args.save_params:
            save_params(args.save_params, edited, model.sha256, extra={"edited_from": str(args.params)})
        print(f"wrote {args.output}")
        return 0
    if args.frames < 2:
        return fail("facevision flame animate", f"--frames must be at least 2, got {args.frames}")
    for k, t in enumerate(np.linspace(0.0, 1.0, args.frames)):
        v = flame_forward(model, interpolate_params(params, edited, float(t)), pixels=args.pixels)
        write_obj(args.output / f"frame_{k:03d}.obj", v, model.faces, comment=f"frame {k}, t={t:.3f}; {units}")
    print(f"wrote {args.frames} meshes to {args.output}")
    return 0

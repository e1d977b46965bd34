"""``facevision prepare lfw ROOT -o DATASET``: build a labelled training set from LFW-style photos.

Also ``prepare toy`` (generated samples) and ``prepare profile`` (large-pose views of a dataset).
"""
from __future__ import annotations

import argparse
import sys

from facevision.face.sizes import CROP_SIZE  # imports nothing
from facevision.commands.errors import DeprecatedFlag, config_errors, fail, reports_errors

PROG = "facevision prepare"
# PrepareConfig's fields as the command line names them (its ValueErrors name the field)
_LFW_FLAGS = {"z_stretch": "--z-stretch", "tddfa_dir": "--tddfa-dir", "labeler": "--labeler", "size": "--size",
              "workers": "--workers", "passes": "--passes", "limit": "--limit"}
# ProfileRunConfig's and FaceModelBuildConfig's fields as the command line names them
_PROFILE_FLAGS = {"views": "--views", "min_yaw": "--min-yaw", "max_yaw": "--max-yaw", "max_pitch": "--max-pitch",
                  "seed": "--seed", "workers": "--workers", "limit": "--limit"}
_FACE_MODEL_FLAGS = {"id_grid": "--id-modes", "exp_grid": "--exp-modes", "limit": "--limit"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "prepare", help="turn face photos into a labelled dataset (depth, correspondence, mask)",
        description="Turn face photos into a labelled facevision dataset.")
    sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    _add_lfw(sub)
    _add_face_model(sub)
    _add_toy(sub)
    _add_profile(sub)
    return p


def _add_output(p: argparse.ArgumentParser, metavar: str, help: str) -> None:
    p.add_argument("-o", "--output", required=True, metavar=metavar, help=help)


def _add_lfw(sub) -> None:
    lfw = sub.add_parser(
        "lfw", help="an LFW-style tree ROOT/<Person>/<Person>_NNNN.jpg",
        description="Detect one face per photo, crop it square, label it (3DDFA_V2 run here when --tddfa-dir is "
                    "given, MediaPipe Face Mesh otherwise) and write the dataset. Resumable: rerun the same "
                    "command to continue; finished and dropped photos are skipped.")
    lfw.add_argument("root", metavar="ROOT", help="folder of <Person>/<Person>_NNNN.jpg photos")
    _add_output(lfw, "DATASET", "dataset folder to write")
    lfw.add_argument("--labeler", choices=("mediapipe", "3ddfa-v2"), default=None,
                     help="label source: 3ddfa-v2 (the 3DDFA_V2 regressor and its 3DMM, needs --tddfa-dir; the "
                          "default when --tddfa-dir is given) or mediapipe (Face Mesh, built in; the default otherwise)")
    lfw.add_argument("--tddfa-dir", metavar="DIR",
                     help="folder with the 3DDFA_V2 regressor and face model files (see docs/data_prep.md)")
    lfw.add_argument("--passes", type=int, default=2,
                     help="3ddfa-v2: regressor passes per face, each later one on the previous landmarks (default 2)")
    lfw.add_argument("--mirror-average", action="store_true",
                     help="average the labeler on each photo and its mirror image (AFLW2000-3D labeler NME: Face "
                          "Mesh 7.53 -> 7.39 %%, 3DDFA_V2 4.15 -> 4.05 %%; twice the labelling time)")
    lfw.add_argument("--z-stretch", type=float, default=1.0, metavar="K",
                     help="MediaPipe labels: multiply Face Mesh's depth (z) by K (default 1; structure from motion on "
                          "LFW says about 1.17, see docs/DEVELOPING.md)")
    lfw.add_argument("--depth-scale", dest="z_stretch", type=float, metavar="K", action=DeprecatedFlag,
                     new="--z-stretch", prog=PROG)
    lfw.add_argument("--size", type=int, default=CROP_SIZE, help=f"crop side in pixels (default {CROP_SIZE})")
    lfw.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    lfw.add_argument("--limit", type=int, default=None, help="only the first N files (sorted), for a quick run")
    lfw.add_argument("--no-progress", action="store_true", help="no progress bar")
    lfw.set_defaults(func=run)


def _add_face_model(sub) -> None:
    fm = sub.add_parser(
        "face-model", help="build the linear face model (mean, identity and expression modes) from a dataset",
        description="Procrustes-align the Face Mesh vertices `prepare lfw` keeps per sample, add their mirror "
                    "images, and derive identity modes (PCA of per-person means) and expression modes (PCA of "
                    "the rest); the number of modes is chosen by reconstruction error on the val split. "
                    "Writes the .npz asset and prints its model card (JSON).")
    fm.add_argument("dataset", metavar="DATASET", help="dataset folder from `facevision prepare lfw`")
    fm.add_argument("-o", "--output", metavar="NPZ", default=None,
                    help="where to write the model (default: the package asset facevision/face/assets/face_model.npz for "
                         "Face Mesh labels; DATASET/face_model.npz, beside its reference.npz, for other spaces)")
    fm.add_argument("--limit", type=int, default=None, help="only the first N samples per split (quick runs)")
    fm.add_argument("--id-modes", type=int, default=None, metavar="K",
                    help="keep exactly K identity modes instead of choosing by val reconstruction error")
    fm.add_argument("--exp-modes", type=int, default=None, metavar="K",
                    help="keep exactly K expression modes instead of choosing by val reconstruction error")
    fm.set_defaults(func=run_face_model)


def _add_toy(sub) -> None:
    toy = sub.add_parser(
        "toy", help="a generated toy dataset (shaded ellipsoids with exact labels), no photos needed",
        description="Write generated samples in the dataset format, to try `facevision train` end to end.")
    _add_output(toy, "DATASET", "dataset folder to write")
    toy.add_argument("--count", type=int, default=32, help="number of samples (default 32; a quarter are val)")
    toy.add_argument("--size", type=int, default=CROP_SIZE, help=f"crop side in pixels (default {CROP_SIZE})")
    toy.add_argument("--seed", type=int, default=0)
    toy.set_defaults(func=run_toy)


def _add_profile(sub) -> None:
    prof = sub.add_parser(
        "profile", help="large-pose views of a dataset by 3D profiling (300W-LP style)",
        description="Lift every sample of DATASET to 3D, rotate it by random yaw/pitch and re-render image and "
                    "labels as new samples <id>_lp<k> (same identity and split) in a new dataset. Resumable: "
                    "rerun the same command to continue. See docs/profile.md.")
    prof.add_argument("dataset", metavar="DATASET", help="source dataset folder (manifest.json + samples/)")
    _add_output(prof, "DATASET_LP", "new dataset folder to write")
    prof.add_argument("--views", type=int, default=4, help="rotated views per sample (default 4)")
    prof.add_argument("--min-yaw", type=float, default=20.0, help="smallest |yaw| in degrees (default 20)")
    prof.add_argument("--max-yaw", type=float, default=90.0, help="largest |yaw| in degrees (default 90)")
    prof.add_argument("--max-pitch", type=float, default=30.0, help="largest |pitch| in degrees (default 30)")
    prof.add_argument("--seed", type=int, default=0, help="angle seed (default 0)")
    prof.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    prof.add_argument("--limit", type=int, default=None, help="only the first K source samples")
    prof.add_argument("--include-originals", action="store_true",
                      help="also link the source samples in, so the result can be trained on directly")
    prof.add_argument("--no-progress", action="store_true", help="no progress bar")
    prof.set_defaults(func=run_profile)


@reports_errors(PROG)
def run_profile(args: argparse.Namespace) -> int:
    from data_prep.dataset_format import DatasetFormatError
    from data_prep.profile import ProfileRunConfig, profile_dataset

    with config_errors(PROG, _PROFILE_FLAGS):
        cfg = ProfileRunConfig(views=args.views, min_yaw=args.min_yaw, max_yaw=args.max_yaw, max_pitch=args.max_pitch,
                               seed=args.seed, workers=args.workers, limit=args.limit,
                               include_originals=args.include_originals, progress=not args.no_progress)
    try:
        summary = profile_dataset(args.dataset, args.output, cfg)
    except (ValueError, DatasetFormatError) as exc:
        return fail(PROG, exc)
    print(f"views: {summary['views']} ({summary['rendered_this_run']} rendered this run, {summary['failed']} failed), "
          f"originals: {summary['originals']}, per split: {summary['split_counts']}, "
          f"{summary['wall_time_s']:.0f} s")
    print(f"dataset: {args.output} (manifest.json)")
    return 0


@reports_errors(f"{PROG} face-model")
def run_face_model(args: argparse.Namespace) -> int:
    import json

    from data_prep.build_face_model import FaceModelBuildConfig, build_face_model, save_face_model
    from data_prep.dataset_format import DatasetFormatError
    from pathlib import Path

    from facevision.face.face_model import FACE_MODEL_PATH
    from facevision.face.reference import CORRESPONDENCE_SPACE

    grids = {}
    if args.id_modes is not None:
        grids["id_grid"] = (args.id_modes,)
    if args.exp_modes is not None:
        grids["exp_grid"] = (args.exp_modes,)
    with config_errors(f"{PROG} face-model", _FACE_MODEL_FLAGS):
        config = FaceModelBuildConfig(limit=args.limit, **grids)
    try:
        model, card = build_face_model(args.dataset, config)
        default = FACE_MODEL_PATH if card["correspondence_space"] == CORRESPONDENCE_SPACE else \
            Path(args.dataset) / "face_model.npz"
        out = save_face_model(args.output or default, model, card)
    except (ValueError, DatasetFormatError, OSError) as exc:
        return fail(f"{PROG} face-model", exc)
    print(json.dumps({k: v for k, v in card.items() if k != "val_grid"}, indent=1))
    print(f"face model: {out}", file=sys.stderr)
    return 0


def run_toy(args: argparse.Namespace) -> int:
    from data_prep.toy import make_toy_dataset

    try:
        manifest = make_toy_dataset(args.output, count=args.count, size=args.size, seed=args.seed)
    except ValueError as exc:
        return fail(PROG, exc)
    print(f"dataset: {args.output}: {manifest['split_counts']}")
    return 0


@reports_errors(PROG)
def run(args: argparse.Namespace) -> int:
    from data_prep.prepare import PrepareConfig, format_summary, prepare_lfw

    labeler = args.labeler or ("3ddfa-v2" if args.tddfa_dir else "mediapipe")
    with config_errors(PROG, _LFW_FLAGS):  # checked here, before any worker starts
        cfg = PrepareConfig(labeler=labeler, mirror_average=args.mirror_average, z_stretch=args.z_stretch,
                            workers=args.workers, limit=args.limit, tddfa_dir=args.tddfa_dir,
                            passes=args.passes, size=args.size, progress=not args.no_progress)
    try:
        summary = prepare_lfw(args.root, args.output, cfg)
    except (ValueError, FileNotFoundError) as exc:  # TddfaFilesError and RegressorFileError are ValueErrors
        return fail(PROG, exc)
    print(format_summary(summary))
    print(f"dataset: {args.output} (summary.json, manifest.json, records.jsonl)")
    return 0

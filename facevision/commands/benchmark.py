"""``facevision benchmark aflw2000 DIR``: the AFLW2000-3D protocol (68-landmark NME per |yaw| bin, pose MAE)."""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

from facevision.commands.errors import config_errors, fail, reports_errors

NAME = "benchmark"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="score on public benchmarks (AFLW2000-3D)",
                              description="Score the pipeline (or its labeler) on a public benchmark.")
    sub = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    _add_aflw2000(sub)
    _add_lfw_pairs(sub)
    _add_identity_stability(sub)
    return p


def _add_aflw2000(sub) -> None:
    a = sub.add_parser(
        "aflw2000", help="AFLW2000-3D: 68-landmark NME per |yaw| bin and head-pose MAE",
        description="AFLW2000-3D protocol (3DDFA / SynergyNet): NME = mean distance over the 68 points of "
                    "pt3d_68 / sqrt(w*h) of the ground-truth box, per |yaw| bin [0,30) [30,60) [60,90] and their "
                    "mean; pose MAE (yaw, pitch, roll, mean) over photos with all angles within +-99 deg. Faces "
                    "come from the project's detector (the detection nearest the ground truth); where it finds "
                    "none, a box derived from the ground-truth landmarks stands in (counted as fallback_boxes).")
    a.add_argument("root", type=Path, help="folder with imageNNNNN.jpg + imageNNNNN.mat (or its images/ subfolder)")
    a.add_argument("--method", choices=("network", "labeler", "labeler-maps"), default="network",
                   help="network: the full predict pipeline (default); labeler: a training labeler (--labeler), the "
                        "labels' ceiling; labeler-maps: the 3DDFA_V2 labeler's maps (as training renders them) read "
                        "by predict's fit, the read-out's ceiling (needs --tddfa-dir; --checkpoint picks the "
                        "reference and face model beside it)")
    a.add_argument("--labeler", choices=("mediapipe", "3ddfa-v2"), default=None,
                   help="with --method labeler: mediapipe (Face Mesh) or 3ddfa-v2 (needs --tddfa-dir); default "
                        "3ddfa-v2 when --tddfa-dir is given, else mediapipe")
    a.add_argument("--tddfa-dir", type=Path, metavar="DIR",
                   help="folder with the 3DDFA_V2 regressor and face model (see docs/data_prep.md)")
    a.add_argument("--passes", type=int, default=2,
                   help="3ddfa-v2: regressor passes, each later one on the previous landmarks (default 2)")
    a.add_argument("--mirror-average", action="store_true",
                   help="average over the photo and its mirror image: the network's maps (as predict "
                        "--mirror-average) or, with --method labeler, Face Mesh")
    a.add_argument("--limit", type=int, help="score only the first N photos (sorted by name)")
    a.add_argument("--csv", type=Path, metavar="FILE", help="write per-photo records (NME, angles) to FILE")
    _add_run_flags(a)
    a.set_defaults(func=run_aflw2000)


def _add_lfw_pairs(sub) -> None:
    v = sub.add_parser(
        "lfw-pairs", help="LFW verification (pairs.txt, 10 folds) from the face-model fit's identity codes",
        description="Cosine similarity of identity codes for LFW's official pairs; per fold the threshold is chosen "
                    "on the other nine. Pairs may contain people from facevision's training split, so accuracy on "
                    "pairs whose people never were in training is reported too (accuracy_unseen).")
    v.add_argument("root", type=Path, help="LFW images folder (<Person>/<Person>_NNNN.jpg); pairs.txt here or one up")
    v.add_argument("--pairs", type=Path, help="pairs file (default: pairs.txt in ROOT or its parent)")
    v.add_argument("--max-pairs", type=int, help="use about N pairs (equal per fold, half same, half different)")
    _add_run_flags(v)
    v.set_defaults(func=run_lfw_pairs)


def _add_identity_stability(sub) -> None:
    st = sub.add_parser(
        "identity-stability", help="same-person / different-person code distance ratio: single photos vs shared fits",
        description="For LFW people with 2K+ photos, two disjoint halves of K photos each: the ratio of the mean "
                    "same-person code distance to the mean different-person distance, for single-photo codes and "
                    "for one identity fitted over each half (`facevision fit-identity`). Lower = more stable.")
    st.add_argument("root", type=Path, help="LFW images folder (<Person>/<Person>_NNNN.jpg)")
    st.add_argument("--people", type=int, default=20, help="number of people (test/val split first; default 20)")
    st.add_argument("-k", type=int, default=5, help="photos per half (default 5)")
    st.add_argument("--checkpoint", type=Path, help="generator .safetensors (default: the shipped checkpoint)")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=run_identity_stability)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags every network benchmark shares: --checkpoint, --device, --json, -q."""
    p.add_argument("--checkpoint", type=Path, help="generator .safetensors (default: the shipped checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run_identity_stability(args: argparse.Namespace) -> int:
    from facevision.benchmark.identity_stability import run_identity_stability as run
    from facevision.predict.predictor import PredictConfig, Predictor

    try:
        pred = Predictor.from_pretrained(args.checkpoint, config=PredictConfig(mesh=None))

        def maps_of(photo):
            faces = pred(photo)
            if not faces or faces[0].model_fit is None:
                return None
            f = faces[0]
            return f.depth_px, f.corr, f.mask, f.model_fit.id_coeffs

        out = run(args.root, maps_of, args.people, args.k, progress=not args.json)
    except (FileNotFoundError, ValueError) as exc:
        return fail("facevision benchmark identity-stability", exc)
    print(dumps(out) if args.json else
          f"{out['people']} people, {out['photos_per_half']} photos per half: same/different distance ratio "
          f"{out['ratio_single_photo']:.3f} single-photo, {out['ratio_shared']:.3f} shared fit")
    return 0


def run_lfw_pairs(args: argparse.Namespace) -> int:
    from facevision.benchmark.lfw_pairs import run_lfw_pairs as run
    from facevision.predict.predictor import PredictConfig, Predictor

    prog = "facevision benchmark lfw-pairs"
    try:
        pred = Predictor.from_pretrained(args.checkpoint, device=args.device, config=PredictConfig(mesh=None))

        def code_of(photo):
            faces = pred(photo)
            return faces[0].model_fit.id_coeffs if faces and faces[0].model_fit is not None else None

        out = run(args.root, code_of, args.pairs, args.max_pairs, progress=not (args.quiet or args.json))
    except (FileNotFoundError, ValueError) as exc:
        return fail(prog, exc)
    if args.json:
        print(dumps(out))
    else:
        print(f"LFW pairs: {out['pairs']} pairs, {out['photos']} photos ({out['photos_without_code']} without a code)\n"
              f"accuracy         {out['accuracy']:.2f} % (std {out['accuracy_std']:.2f} over folds)\n"
              f"unseen people    {out['accuracy_unseen']:.2f} % over {out['pairs_unseen']} pairs")
    return 0


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float (Python's or numpy's) replaced by None, numpy scalars by Python
    numbers and tuples by lists, so that ``json.dumps(..., allow_nan=False)`` writes valid JSON (``null`` where
    a figure is undefined, e.g. the NME of an empty |yaw| bin)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(summary: dict) -> str:
    """One line of valid JSON (:func:`json_safe`; ``allow_nan=False`` refuses anything it missed)."""
    return json.dumps(json_safe(summary), allow_nan=False)


def format_table(summary: dict) -> str:
    """A short human-readable table of a summary from :func:`facevision.benchmark.aflw2000.summarize`."""
    bins = summary["nme_bins"]
    counts = summary["bin_counts"]
    bad = summary.get("bad_files", 0)
    lines = [f"AFLW2000-3D: {summary['photos']} photos, {summary['failed']} failed, "
             f"{summary['fallback_boxes']} with the fallback box"
             + (f", {bad} bad file{'s' if bad != 1 else ''} skipped (named on stderr)" if bad else ""),
             "NME %      " + "  ".join(f"{k:>8}" for k in bins) + "    mean3     mean",
             "           " + "  ".join(f"{v:8.2f}" for v in bins.values())
             + f"  {summary['nme_mean3']:7.2f}  {summary['nme_mean']:7.2f}",
             "photos     " + "  ".join(f"{v:8d}" for v in counts.values()),
             "pose MAE   yaw {yaw:.2f}  pitch {pitch:.2f}  roll {roll:.2f}".format(**summary["pose_mae"])
             + f"  mean {summary['pose_mae_mean']:.2f} deg over {summary['pose_photos']} photos"]
    groups, offsets = summary.get("nme_groups") or {}, summary.get("offset_groups") or {}
    if groups:
        parts = list(next(iter(groups.values())))
        lines.append("by part    NME % (offset dx, dy %: dx towards the nose side, dy down)")
        for name, by_part in groups.items():
            lines.append(f"  {name:9}" + "  ".join(f"{p} {by_part[p]:.2f} ({offsets[name][p][0]:+.1f}, "
                                                   f"{offsets[name][p][1]:+.1f})" for p in parts))
    return "\n".join(lines)


def _postprocessor(checkpoint: Path | None):
    """predict's read-out (no mesh) in the correspondence space of ``checkpoint`` (its reference and face model
    beside it: :func:`facevision.predict.predictor.space_files`; the package's without one)."""
    from facevision.predict.predictor import PredictConfig, Postprocessor, default_checkpoint, space_files

    files = space_files(checkpoint or default_checkpoint())
    ref, model = (str(files[0]), str(files[1])) if files else (None, None)
    return Postprocessor(PredictConfig(mesh=None, reference=ref, face_model=model))


AFLW_PROG = "facevision benchmark aflw2000"
# AflwConfig's fields as the command line names them (its ValueErrors name the field)
_AFLW_FLAGS = {"limit": "--limit", "passes": "--passes"}


@reports_errors(AFLW_PROG)
def run_aflw2000(args: argparse.Namespace) -> int:
    from facevision.common.fileio import atomic_write_bytes
    from facevision.benchmark.aflw2000 import (AflwConfig, labeler_maps_method, labeler_method, network_method,
                                               run_benchmark, tddfa_labeler_method)

    prog = AFLW_PROG
    labeler = args.labeler or ("3ddfa-v2" if args.tddfa_dir else "mediapipe")
    if args.method != "labeler" and args.labeler:
        return fail(prog, "--labeler needs --method labeler")
    if args.method == "labeler" and labeler == "3ddfa-v2" and not args.tddfa_dir:
        return fail(prog, "--labeler 3ddfa-v2 needs --tddfa-dir DIR")
    if args.method == "labeler-maps" and not args.tddfa_dir:
        return fail(prog, "--method labeler-maps needs --tddfa-dir DIR")
    with config_errors(prog, _AFLW_FLAGS):
        cfg = AflwConfig(limit=args.limit, passes=args.passes)
    try:
        if args.method == "labeler" and labeler == "3ddfa-v2":
            method = tddfa_labeler_method(args.tddfa_dir, cfg, mirror_average=args.mirror_average)
        elif args.method == "labeler":
            method = labeler_method(cfg, mirror_average=args.mirror_average)
        elif args.method == "labeler-maps":
            method = labeler_maps_method(args.tddfa_dir, _postprocessor(args.checkpoint), cfg)
        else:
            from facevision.predict.predictor import PredictConfig, Predictor

            pred = Predictor.from_pretrained(args.checkpoint, device=args.device,
                                             config=PredictConfig(mesh=None, mirror_average=args.mirror_average))
            method = network_method(pred, cfg)
        summary, records = run_benchmark(args.root, method, cfg, progress=not (args.quiet or args.json))
    except (FileNotFoundError, ValueError) as exc:
        return fail(prog, exc)
    summary["method"] = args.method
    if args.method == "labeler":
        summary["labeler"] = labeler
        if labeler == "3ddfa-v2":
            summary["passes"] = args.passes
    if args.method == "labeler-maps":
        summary.update(labeler="3ddfa-v2", passes=args.passes)
    summary["mirror_average"] = bool(args.mirror_average)
    for bad in summary.get("bad_file_errors", []):
        print(f"{prog}: warning: skipped {bad['photo']}: {bad['error']}", file=sys.stderr)
    if args.csv:
        buf = io.StringIO()
        keys = ["photo", "yaw_gt", "pitch_gt", "roll_gt", "nme", "yaw", "pitch", "roll", "fallback", "error"]
        w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
        atomic_write_bytes(args.csv, buf.getvalue().encode())
    print(dumps(summary) if args.json else format_table(summary))
    return 0

"""``facevision predict``: photos -> depth, correspondence, mesh, landmarks and pose per face."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from facevision.face.sizes import CROP_SIZE  # imports nothing
from facevision.commands.errors import CommandError, config_errors, fail, reports_errors
from facevision.env import CHECKPOINT_ENV, FLAME_MODEL_ENV  # imports nothing (numpy loads after run() sets threads)

NAME = "predict"
PROG = "facevision predict"
# the configs' fields as the command line names them (their ValueErrors name the field)
_FLAGS = {"batch_size": "--batch-size", "threads": "--threads", "max_pixels": "--max-pixels",
          "texture_size": "--texture-size", "mesh_frame": "--mesh-frame", "workers": "--writers",
          "min_score": "--min-score", "redetect_every": "--redetect-every", "smoothing": "--smoothing"}
_DESCRIPTION = ("Reconstruct every photo given (files, folders searched recursively, or globs): per face "
                "OUT/<image stem>/face<k>/ gets crop.png, depth.png (16-bit, round(px * 256)), depth_vis.png, "
                "corr.png, mask.png, mesh.ply, mesh.obj (+ .mtl + texture), fit_mesh.obj, preview.png and result.json "
                "(--outputs picks some; bbox, crop_box, landmarks68, pose, mesh counts and frame, timings); "
                "OUT/summary.json lists every input (with faces_detected and faces_skipped per photo). Folders holding "
                "an earlier run's outputs (image.json, summary.json) are not read as photos. Meshes are in photo pixels "
                "by default (X = column, Y = height - 1 - row, Z = depth in "
                f"photo px), so they overlay the photo; --mesh-frame crop keeps the {CROP_SIZE}-px crop's frame. "
                "Finished inputs are skipped on a rerun unless --overwrite; summary.json keeps every input finished in "
                "OUT. A progress bar shows photos/s and ETA (-q: none; -v: one line per input). "
                "--shard K/N splits a collection over N jobs or machines. One run per OUT at a time (shards of "
                "one N may share it); a photo's folder is written as a whole. summary.json is rebuilt from OUT at "
                "the end of every run, also one stopped by Ctrl-C or SIGTERM. "
                "Exit code 1 if any input failed, 2 if nothing could run (bad OUT or checkpoint, OUT in use by "
                "another run), 130 on Ctrl-C, 143 on SIGTERM.")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="photos -> depth / correspondence maps, 3D mesh, 68 landmarks and head pose per face",
        description=_DESCRIPTION,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive) or glob patterns")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="output folder")
    _add_network_arguments(p)
    _add_output_arguments(p)
    _add_flame_arguments(p)
    _add_video_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="also one line per input on stdout")
    p.set_defaults(func=run, fast_exit=True)  # everything is written and closed when run returns
    return p


def _add_network_arguments(p: argparse.ArgumentParser) -> None:
    """The network and what it runs on: checkpoint, device, batches, threads, faces, mirror averaging, meshes."""
    p.add_argument("--checkpoint", type=Path, help="generator .safetensors (default: the shipped checkpoint, "
                                                   f"or ${CHECKPOINT_ENV})")
    p.add_argument("--device", default="auto", help="auto (GPU if available), cpu or cuda[:N] (default auto)")
    p.add_argument("--batch-size", type=int, default=8, help="faces per network call (default 8)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the network (default: 1 on CPU while writers run, as they keep the other "
                        "cores busy; else the library's choice: ONNX Runtime's, or torch's on a GPU; 1 is also "
                        "faster when other jobs load the CPU)")
    p.add_argument("--all-faces", action="store_true",
                   help="every face found (default: only the largest; summary.json's faces_skipped counts the others "
                        "per photo, and one line says how many). Also looks harder on every photo: the full-range "
                        "detector and, in large photos, overlapping tiles find faces down to ~3 %% of the photo's width "
                        "(without it, only where the first pass finds no face); a rerun with it redoes photos of a "
                        "run without it")
    p.add_argument("--mirror-average", action="store_true",
                   help="average the network's maps of each crop and of its mirror image: better landmarks and pose "
                        "(README, AFLW2000-3D), twice the network time")
    p.add_argument("--no-mesh", action="store_true", help="maps, landmarks and pose only (faster; no mesh files)")
    p.add_argument("--complete-mesh", choices=("auto", "always", "never"), default="auto",
                   help="auto (default): for a face turned 35 degrees or more, or where the maps' mesh has holes, "
                        "torn strips or pieces, the mesh is the face-model fit moved onto the maps: one whole piece, "
                        "the hidden side from the fit; always: for every face; never: the maps' mesh as it is")


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """What is written where and how: outputs, shards, writers, mesh frame, textures, report, reruns, photo size,
    detector threshold."""
    p.add_argument("--outputs", default="all", metavar="LIST",
                   help="comma-separated files to write (result.json always): per face crop, depth, depth_vis, "
                        "corr, mask, ply (mesh.ply), obj (mesh.obj + .mtl + texture), fit_mesh (fit_mesh.obj + "
                        ".mtl + fit_texture.png, the photo unwrapped in the face model's fixed UV layout), preview; "
                        "per photo overlay (OUT/<stem>/overlay.jpg: landmarks, pose axes and fitted mesh of every "
                        "face over the photo); groups: maps = depth,corr,mask; mesh = ply,obj; all (default: all)."
                        " Without ply, obj, fit_mesh and preview no mesh is computed (faster)")
    p.add_argument("--shard", metavar="K/N",
                   help="process only the K-th of N deterministic parts of the inputs (1 <= K <= N; same paths on "
                        "every job); writes OUT/summary.shard-K-of-N.json, merged into OUT/summary.json by the "
                        "shard that finds all N in OUT, or later by `facevision merge-shards OUT`")
    p.add_argument("--writers", type=int, default=None, metavar="N",
                   help="processes that finish faces (face-model fit, mesh, files) while the next photos are detected "
                        "and run (threads where processes cannot be forked; default: one per CPU core plus one, at "
                        "most 8; 0 = one after another in this process; a single photo never starts any)")
    p.add_argument("--mesh-frame", choices=("photo", "crop", "head"), default="photo",
                   help="coordinates of mesh.ply / mesh.obj / fit_mesh.obj: photo = photo pixels, X = column, "
                        "Y = height - 1 - row, Z = depth in photo px, so the mesh overlays the photo (like 3DDFA_V2); "
                        f"crop = mesh.ply / mesh.obj in the {CROP_SIZE} x {CROP_SIZE} crop's pixels, the maps' frame; head = "
                        "millimetres in the head's own frame (origin at the fitted head, pose removed, Y up, Z out of "
                        "the face), for Blender and MeshLab (default photo)")
    p.add_argument("--texture-size", type=int, default=512, metavar="PX",
                   help="side of the OBJ textures, cut from the photo; capped at the face's size in the photo "
                        "(default 512)")
    p.add_argument("--report", action="store_true",
                   help="also write OUT/report.html: one offline page, thumbnails to pick a face, one 3D viewer")
    p.add_argument("--overwrite", action="store_true",
                   help="redo inputs already finished in OUT (without it, a photo lacking an output this run asks "
                        "for, e.g. meshes after --no-mesh, is redone, keeping the outputs it had)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="photos with more pixels are reduced to N before detection, results are given in original "
                        "pixels (default 40,000,000; bounds memory; 0 = never reduce)")
    p.add_argument("--min-score", type=float, default=None,
                   help="face detector confidence threshold in [0, 1]: detections scoring below it are ignored "
                        "(default 0.5)")


def _add_flame_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--flame", action="store_true",
                   help="also register FLAME to each face (needs a FLAME model: --flame-model or "
                        f"${FLAME_MODEL_ENV}; without one it is an error unless --flame-optional)")
    p.add_argument("--flame-model", type=Path, help=f"FLAME model file (.pkl/.npz; default ${FLAME_MODEL_ENV})")
    p.add_argument("--flame-optional", action="store_true",
                   help="with --flame: when no FLAME model file is given or found, warn and go on without FLAME "
                        "instead of stopping with an error")


def _add_video_arguments(p: argparse.ArgumentParser) -> None:
    v = p.add_argument_group("video", "a video file given (.mp4, .mov, .avi, .mkv, .webm, ...) is processed frame by "
                             "frame into OUT/<clip>/: frames.jsonl (per frame: status, crop, landmarks raw and "
                             "smoothed, visibility, pose, fit codes, ms), overlay.mp4 (unless --outputs leaves out "
                             "overlay) and video.json (counts, frames/s, landmark jitter raw vs smoothed); the face "
                             "is detected on the first frame and followed from its landmarks after")
    v.add_argument("--sequence", action="store_true",
                   help="read each folder given as the frames of one video (images in name order) instead of photos")
    v.add_argument("--smoothing", choices=("causal", "offline", "none"), default="causal",
                   help="causal: One-Euro filter, frame by frame as a live run would (default); offline: zero-lag "
                        "Savitzky-Golay over the whole clip; none")
    v.add_argument("--redetect-every", type=int, default=30, metavar="N",
                   help="run the detector every N frames while following a face (0 = only when it is lost; "
                        "default 30)")
    v.add_argument("--fps", type=float, default=25.0, help="frame rate of a --sequence (default 25)")


@reports_errors(PROG)
def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("GLOG_minloglevel", "2")
    threads = args.threads
    if threads is None and args.writers != 0 and not str(args.device).startswith("cuda"):
        # writers keep the other cores busy: one thread per library call is faster than torch's and OpenBLAS's
        # pools spinning on the same cores
        threads = 1
        from facevision.predict.writer import one_thread_per_library  # imports neither numpy nor torch

        one_thread_per_library(override=False)  # read when numpy and torch load (the imports below)

    from facevision.predict.lock import OutputFolderLock
    from facevision.predict.out_folder import OutputFolderError, check_output_folder
    from facevision.predict.writer import retain_freed_memory

    retain_freed_memory()  # our own process: numpy's large temporaries reuse freed memory (no page faults)

    prog = PROG
    config, batch = _configs(args, threads)
    flame_model = None
    if args.flame or args.flame_model:
        from facevision.flame.model import FLAME_HELP, FlameModelError, FlameModelMissingError, resolve_model_path

        try:  # --flame-model, else $FLAME_MODEL_ENV
            flame_model = str(resolve_model_path(args.flame_model))
        except FlameModelError as exc:
            # nothing given: the command line's message (FLAME_HELP), which names the flag and the variable
            why = FLAME_HELP if isinstance(exc, FlameModelMissingError) else str(exc)
            if not args.flame_optional:
                return fail(prog, f"{why} Add --flame-optional to go on without FLAME.")
            print(f"{prog}: warning: {why} Continuing without FLAME.", file=sys.stderr)
    batch.flame_model = flame_model or None
    lock = OutputFolderLock(args.output, batch.shard)
    try:
        check_output_folder(args.output)  # before the model loads: a bad OUT is reported at once,
        lock.acquire()  # and so is one another run writes into (run_batch holds the lock again: re-entrant)
    except OutputFolderError as exc:
        return fail(prog, exc)
    try:
        with _sigterm_interrupts():
            return _predict(args, config, batch, threads)
    except _Terminated:  # run_batch has written summary.json (what OUT holds) before passing it on
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return 128 + 15
    finally:
        lock.release()


def _configs(args: argparse.Namespace, threads: int | None):
    """(PredictConfig, BatchConfig) from the command line; each config checks itself, a bad value is a
    :class:`CommandError` naming the flag (nothing has loaded yet)."""
    from facevision.face.detect import DetectConfig
    from facevision.fit.complete import CompleteConfig
    from facevision.predict.runner import DEFAULT_MAX_PIXELS, BatchConfig
    from facevision.predict.outputs import OutputConfig, parse_outputs
    from facevision.predict.predictor import PredictConfig
    from facevision.predict.shards import parse_shard
    from facevision.predict.writer import WriterConfig

    with config_errors(PROG, _FLAGS):
        complete = None if args.complete_mesh == "never" else CompleteConfig(always=args.complete_mesh == "always")
        config = PredictConfig(batch_size=args.batch_size, all_faces=args.all_faces, complete=complete,
                               mirror_average=args.mirror_average, threads=None if threads is None else max(1, threads))
    try:
        outputs = parse_outputs(args.outputs)
    except ValueError as exc:
        raise CommandError(PROG, f"--outputs: {exc}") from None
    with config_errors(PROG, _FLAGS):
        output = OutputConfig(mesh_frame=args.mesh_frame, texture_size=args.texture_size, outputs=outputs)
        writer = WriterConfig(workers=args.writers)
        shard = parse_shard(args.shard) if args.shard is not None else None
        max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else (args.max_pixels or None)
        batch = BatchConfig(overwrite=args.overwrite, report=args.report, log=args.verbose, progress=not args.quiet,
                            max_pixels=max_pixels, output=output, writer=writer, shard=shard)
    try:
        config.detect = DetectConfig() if args.min_score is None else DetectConfig(min_score=args.min_score)
    except ValueError as exc:
        raise CommandError(PROG, f"--min-score {args.min_score}: {exc}") from None
    if args.no_mesh or not output.needs_mesh:
        config.mesh = None
    return config, batch


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's time limit), raised where Ctrl-C would be, so the batch ends the same
    way: writers stopped, unfinished temporaries removed, summary.json rebuilt, OUT's lock released."""


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """For the block, SIGTERM raises :class:`_Terminated` in the main thread (elsewhere: left as it is)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _predict(args: argparse.Namespace, config, batch, threads: int | None) -> int:
    """Load the network and run the batch (OUT checked and locked by :func:`run`); the exit code."""
    from facevision.predict.out_folder import OutputFolderError
    from facevision.predict.runner import run_batch
    from facevision.predict.predictor import Predictor
    from facevision.predict.shards import shard_summary_name

    prog = PROG
    try:
        predictor = Predictor.from_pretrained(args.checkpoint, device=args.device, config=config)
    except (FileNotFoundError, ValueError) as exc:  # CheckpointError is a ValueError (not imported: it pulls in
        # segmentation-models-pytorch, timm and torchvision, seconds at start, which a cached network does not need)
        return fail(prog, exc)
    if threads is not None and "torch" in sys.modules:  # a torch network (GPU, or no ONNX Runtime)
        import torch

        torch.set_num_threads(max(1, threads))
    videos, photos = _split_videos(args.paths, args.sequence)
    code = _predict_videos(args, videos, batch.output, predictor) if videos else 0
    if not photos:
        return code
    try:
        summary = run_batch(predictor, photos, args.output, batch)
    except OutputFolderError as exc:
        return fail(prog, exc)
    c = summary["counts"]
    shard = batch.shard
    where = args.output / (shard_summary_name(*shard) if shard else "summary.json")
    print(f"{prog}: {c['ok']} ok ({c['skipped']} already done), {c['failed']} failed, {summary['faces']} face(s) "
          f"-> {where}" + (f", {summary['report']}" if "report" in summary else ""), file=sys.stderr)
    return max(code, 1 if c["failed"] or "summary_error" in summary or "report_error" in summary else 0)


def _split_videos(paths: list[str], sequence: bool) -> tuple[list[str], list[str]]:
    """(video files and, with --sequence, frame folders; everything else) in the order given."""
    from facevision.video.frames import is_video

    videos = [p for p in paths if (Path(p).is_file() and is_video(p)) or (sequence and Path(p).is_dir())]
    return videos, [p for p in paths if p not in videos]


def _predict_videos(args: argparse.Namespace, videos: list[str], output, photo_predictor) -> int:
    """Each video into OUT/<clip>/ (:func:`facevision.video.runner.run_video`) with ``photo_predictor``'s network
    (loaded once), no mesh and the video fit; 1 if any failed, else 0."""
    from dataclasses import replace

    from facevision.predict.out_folder import safe_stem
    from facevision.predict.predictor import Predictor
    from facevision.video.frames import VideoReadError
    from facevision.video.runner import VideoConfig, run_video

    prog = PROG
    with config_errors(prog, _FLAGS):
        video = VideoConfig(redetect_every=args.redetect_every, smoothing=args.smoothing,
                            overlay="overlay" in output.outputs)
    p = photo_predictor
    config = replace(p.config, mesh=None, fit=video.fit, freeze=False)  # the network is prepared already
    predictor = Predictor(p.model, config, device=p.device, checkpoint=p.checkpoint)
    failed = 0
    for path in videos:
        try:
            s = run_video(predictor, path, args.output / safe_stem(Path(path)), video, progress=not args.quiet,
                          fps=args.fps)
        except (VideoReadError, OSError, ValueError) as exc:
            failed += 1
            fail(prog, exc)
            continue
        c = s["counts"]
        lost = f", {s['not_decoded']} of the header's {s['header_frames']} frames did not decode" \
            if s["not_decoded"] else ""
        print(f"{prog}: {path}: {s['frames']} frames ({c.get('ok', 0)} ok){lost}, {s['frames_per_s']} frames/s "
              f"-> {s['output']}", file=sys.stderr)
    return 1 if failed else 0

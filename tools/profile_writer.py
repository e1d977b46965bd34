"""CPU time per photo of each stage of ``facevision predict``, in one process, one thread:
``python tools/profile_writer.py LFW_ROOT [--photos 30] [--out /tmp/fv_profile]``.

The first ``--photos`` LFW photos (one per person, sorted) go through the calling side (read, detect, crop,
network) and the writer side (face-model fit, mesh, every default file) as a writer process runs them (one torch
and BLAS thread, freed memory kept for reuse where this checkout has :func:`retain_freed_memory`). Each stage's
CPU time (``time.process_time``, nested stages subtracted) is summed over the photos after one warm-up photo and
printed in ms per photo. CPU time, not wall time: it means something on a busy machine too (fsync waits are
not in it). Runs on older checkouts too (``PYTHONPATH=OTHER_CHECKOUT python tools/profile_writer.py ...``):
stages whose function is missing there are left out; one without the per-face records
(:mod:`facevision.predict.records`) runs its array stages.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

# (module, function, stage): the writer's stages as the functions that do them
WRITER_STAGES = (
    ("facevision.predict.predictor", "fit_face_model", "fit: face model"),
    ("meshing", "mesh_from_maps", "mesh: from maps"),
    ("facevision.predict.outputs", "depth_to_rgb", "maps: colour images"),
    ("facevision.predict.outputs", "corr_to_rgb", "maps: colour images"),
    ("facevision.predict.outputs", "encode_depth", "maps: 16-bit encoding"),
    ("facevision.predict.outputs", "encode_corr", "maps: 16-bit encoding"),
    ("facevision.predict.outputs", "atomic_write_png", "PNG files: encode + write"),
    ("facevision.predict.render", "render_mesh", "preview: two mesh renders"),
    ("facevision.predict.outputs", "preview_sheet", "preview: photo tile, layout"),
    ("facevision.predict.outputs", "face_texture", "mesh files: texture crop + PNG"),
    ("facevision.predict.outputs", "encode_texture", "mesh files: texture crop + PNG"),
    ("facevision.predict.mesh_frame", "photo_frame_mesh", "mesh files: photo frame"),
    ("facevision.fit.fit_mesh", "fit_mesh", "mesh files: photo frame"),
    ("meshing.io", "obj_text", "mesh files: OBJ text"),
    ("meshing", "save_mesh", "mesh files: PLY + OBJ sets, write"),
    ("facevision.predict.outputs", "save_mesh", "mesh files: PLY + OBJ sets, write"),
    ("facevision.predict.outputs", "atomic_write_json", "result.json"),
)


class StageClock:
    """CPU time per stage; a stage running inside another is subtracted from the outer one."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._inner: list[float] = []

    def wrap(self, fn: Callable, stage: str) -> Callable:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.process_time()
            self._inner.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                inner = self._inner.pop()
                spent = time.process_time() - t
                self.ms[stage] = self.ms.get(stage, 0.0) + (spent - inner) * 1e3
                if self._inner:
                    self._inner[-1] += spent

        return timed

    def install(self, stages: tuple[tuple[str, str, str], ...]) -> list[str]:
        """Wrap every function found; returns the stages left out (function missing in this checkout)."""
        missing = []
        for module, name, stage in stages:
            mod = importlib.import_module(module)
            fn = getattr(mod, name, None)
            if fn is None:
                missing.append(f"{module}.{name}")
                continue
            setattr(mod, name, self.wrap(fn, stage))
        return missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lfw_root", type=Path, help="LFW images_deepfunneled folder (<Person>/<Person>_NNNN.jpg)")
    ap.add_argument("--photos", type=int, default=30, help="photos to profile (default 30)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/fv_profile"), help="work folder (emptied first)")
    args = ap.parse_args()
    predictor = _one_thread_predictor()
    from facevision.benchmark.throughput import first_photo_per_person

    shutil.rmtree(args.out, ignore_errors=True)
    photos = first_photo_per_person(args.lfw_root, args.photos + 1)
    clock, calling = StageClock(), StageClock()
    missing = clock.install(WRITER_STAGES)
    done = 0
    for i, path in enumerate(photos):
        if i == 1:  # the first photo warms up (first calls, caches)
            clock.ms.clear()
            calling.ms.clear()
        done += _profile_photo(predictor, path, args.out, clock, calling) and i > 0
    _print_report(clock, calling, done, missing)
    return 0


def _one_thread_predictor() -> Any:
    """The shipped checkpoint's Predictor on the CPU, one thread per library, as predict's writers run it."""
    from facevision.predict.writer import one_thread_per_library

    one_thread_per_library()  # as predict's command line does, before numpy and torch load
    import torch

    torch.set_num_threads(1)
    try:
        from facevision.predict.writer import retain_freed_memory

        retain_freed_memory()
    except ImportError:
        pass
    from facevision.predict.predictor import PredictConfig, Predictor

    try:
        config = PredictConfig(threads=1)  # the ONNX Runtime network's threads, as predict runs it with writers
    except TypeError:  # an older checkout: torch's setting above rules
        config = PredictConfig()
    return Predictor.from_pretrained(device="cpu", config=config)


def _profile_photo(predictor: Any, path: Path, out: Path, clock: StageClock, calling: StageClock) -> bool:
    """One photo through the calling side (read, detect, crop; network) and the writer side (postprocess, files);
    False when it has no face."""
    from facevision.face.images import read_photo
    from facevision.predict import outputs

    t = time.process_time()
    image = read_photo(path)
    face = _cut(predictor, image)
    if face is None:
        return False
    calling.ms["read, detect, crop"] = calling.ms.get("read, detect, crop", 0.0) + (time.process_time() - t) * 1e3
    t = time.process_time()
    maps = _network(predictor, face)
    calling.ms["network"] = calling.ms.get("network", 0.0) + (time.process_time() - t) * 1e3
    t = time.process_time()
    result = _postprocess(predictor, face, maps)
    outputs.write_face(out / path.stem / "face0", result, image, str(path))
    clock.ms["writer: total"] = clock.ms.get("writer: total", 0.0) + (time.process_time() - t) * 1e3
    return True


def _cut(predictor: Any, image: Any) -> Any:
    """The largest face's crop: ``Predictor.prepare``'s list (an older checkout: ``(crop_faces(...), faces)``), or
    None without a face."""
    if hasattr(predictor, "prepare"):
        return predictor.prepare(image) or None
    faces = predictor.detect(image)
    return (predictor.crop_faces(image, faces), faces) if faces else None


def _network(predictor: Any, face: Any) -> Any:
    return predictor.run_network(face if hasattr(predictor, "prepare") else face[0][0])


def _postprocess(predictor: Any, face: Any, maps: Any) -> Any:
    if hasattr(predictor, "prepare"):
        return predictor.postprocess(face[0], maps[0])
    (crops, boxes, angles, refusals), faces = face
    depth, corr, mask = maps
    return predictor.postprocess(crops[0], depth[0], corr[0], mask[0], boxes[0], faces[0].box, faces[0].score,
                                 crop_angle=float(angles[0]), refusal=refusals[0])


def _print_report(clock: StageClock, calling: StageClock, done: int, missing: list[str]) -> None:
    n = max(done, 1)
    total = clock.ms.pop("writer: total", 0.0)
    print(f"CPU ms per photo over {done} LFW photos (one thread):")
    for stage, ms in calling.ms.items():
        print(f"  calling process  {stage:34s} {ms / n:7.1f}")
    for stage, ms in sorted(clock.ms.items(), key=lambda kv: -kv[1]):
        print(f"  writer           {stage:34s} {ms / n:7.1f}")
    print(f"  writer           {'other (JSON, files, fsync, glue)':34s} {(total - sum(clock.ms.values())) / n:7.1f}")
    print(f"  writer           {'TOTAL':34s} {total / n:7.1f}")
    if missing:
        print(f"(not in this checkout: {', '.join(missing)})")


if __name__ == "__main__":
    sys.exit(main())

"""A Face Mesh-labelled dataset in one small file, to move it to a training machine.

A dataset written by ``facevision prepare lfw`` (labeler ``mediapipe``) keeps, per sample, the 468 Face
Mesh vertices its labels were rendered from (``face_mesh.npy``). The labels are a pure function of those
vertices (:func:`data_prep.label_mediapipe.render_labels`), so a pack stores only:

* the RGB crop as WebP (``quality``; above 100 lossless);
* the vertices as a least-squares affine map of the pack's mean mesh (12 float32) plus the residual in
  steps of 1/``mesh_steps_per_px`` crop px (int16, LZMA-compressed; 8 by default, so the rounding error
  is at most 1/16 px, far below Face Mesh's own noise);
* the manifest (JSON).

:func:`unpack_dataset` re-renders depth, correspondence and mask from the restored vertices and writes an
ordinary dataset folder, so ``facevision prepare profile`` and ``facevision train`` run on it unchanged. The labels differ from the
source's only by the vertex rounding; the image by the WebP compression.

Command line::

    python -m data_prep.pack pack DATASET PACK.npz [--splits train,val] [--quality 88] [--mesh-steps-per-px 8]
    python -m data_prep.pack unpack PACK.npz DATASET [--workers N]
"""
from __future__ import annotations

import argparse
import io
import json
import lzma
import multiprocessing as mp
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from data_prep.dataset_format import (SPLITS, DatasetFormatError, Sample, read_face_mesh, read_manifest,
                                      sample_complete, sample_dir, write_face_mesh, write_manifest, write_sample)
from facevision.common.checks import check_int
from facevision.common.fileio import atomic_write_bytes

PACK_FORMAT = "facevision-pack"
PACK_VERSION = 1

__all__ = ["PackConfig", "pack_dataset", "unpack_dataset", "PACK_FORMAT"]


@dataclass(frozen=True)
class PackConfig:
    """splits: which splits go into the pack. quality: WebP quality of the RGB crops (1-100; above 100: lossless).
    mesh_steps_per_px: resolution of the stored vertices (steps per crop px). Checked when built (ValueError
    naming the field)."""

    splits: tuple[str, ...] = ("train", "val", "test")
    quality: int = 88
    mesh_steps_per_px: int = 8

    def __post_init__(self) -> None:
        if not self.splits or not set(self.splits) <= set(SPLITS):
            raise ValueError(f"PackConfig.splits must be some of {', '.join(SPLITS)}, got {self.splits!r}")
        for name in ("quality", "mesh_steps_per_px"):
            check_int(self, name, low=1)


def _affine_basis(mean: np.ndarray) -> np.ndarray:
    return np.concatenate([mean, np.ones((len(mean), 1), np.float64)], axis=1)


def pack_dataset(src: str | Path, pack: str | Path, cfg: PackConfig = PackConfig()) -> dict[str, Any]:
    """Write ``pack`` (.npz, no pickles) from the dataset folder ``src``; returns counts and bytes.

    Raises DatasetFormatError when the dataset has no samples in ``cfg.splits`` or a sample lacks its
    Face Mesh vertices (only ``prepare lfw`` with the MediaPipe labeler keeps them).
    """
    src = Path(src)
    manifest = read_manifest(src)
    samples = [s for s in manifest["samples"] if s["split"] in cfg.splits]
    if not samples:
        raise DatasetFormatError(f"{src}: no samples in splits {', '.join(cfg.splits)}")
    meshes, blobs = [], []
    for s in samples:
        v = read_face_mesh(src, s["id"])
        if v is None:
            raise DatasetFormatError(f"{sample_dir(src, s['id'])}: no face_mesh.npy "
                                     "(a pack needs the Face Mesh vertices)")
        meshes.append(np.asarray(v, np.float64))
        image = cv2.imread(str(sample_dir(src, s["id"]) / "image.png"), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetFormatError(f"{sample_dir(src, s['id']) / 'image.png'}: unreadable")
        ok, buf = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, int(cfg.quality)])
        if not ok:
            raise DatasetFormatError(f"{sample_dir(src, s['id']) / 'image.png'}: WebP encoding failed")
        blobs.append(buf.tobytes())
    v = np.stack(meshes)
    mean = v.mean(axis=0)
    basis = _affine_basis(mean)
    affine = np.stack([np.linalg.lstsq(basis, x, rcond=None)[0] for x in v]).astype(np.float32)
    residual = v - basis[None] @ affine.astype(np.float64)
    steps = np.round(residual * cfg.mesh_steps_per_px)
    if np.abs(steps).max() > np.iinfo(np.int16).max:
        raise DatasetFormatError(f"{src}: a face mesh lies too far from the affine mean for int16 steps")
    residual_lzma = lzma.compress(np.ascontiguousarray(steps.astype(np.int16).transpose(1, 2, 0)).tobytes(), preset=9)
    header = {"format": PACK_FORMAT, "version": PACK_VERSION, "mesh_steps_per_px": int(cfg.mesh_steps_per_px),
              "vertices": int(v.shape[1]), "webp_quality": int(cfg.quality),
              "manifest": {k: val for k, val in manifest.items() if k not in ("samples", "split_counts")},
              "samples": samples}
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), np.uint8), mean=mean.astype(np.float32),
             affine=affine, residual=np.frombuffer(residual_lzma, np.uint8),
             images=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets)
    atomic_write_bytes(Path(pack), buf.getvalue())
    return {"samples": len(samples), "bytes": len(buf.getvalue()), "image_bytes": int(offsets[-1]),
            "mesh_bytes": len(residual_lzma) + affine.nbytes}


def _read_pack(pack: Path) -> tuple[dict[str, Any], np.ndarray, list[np.ndarray]]:
    """(header, vertices (N, V, 3) float32 crop px, WebP blobs)."""
    try:
        with np.load(pack, allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes())
            if header.get("format") != PACK_FORMAT or header.get("version") != PACK_VERSION:
                raise DatasetFormatError(f"{pack}: not a {PACK_FORMAT} v{PACK_VERSION} file")
            n, nv = len(header["samples"]), int(header["vertices"])
            raw = lzma.decompress(z["residual"].tobytes())
            steps = np.frombuffer(raw, np.int16).reshape(nv, 3, n).transpose(2, 0, 1)
            basis = _affine_basis(z["mean"].astype(np.float64))
            verts = basis[None] @ z["affine"].astype(np.float64) + steps / float(header["mesh_steps_per_px"])
            images, offsets = z["images"], z["offsets"]
            blobs = [images[offsets[i]:offsets[i + 1]] for i in range(n)]
    except (OSError, ValueError, KeyError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise DatasetFormatError(f"{pack}: unreadable pack ({type(exc).__name__}: {exc})") from exc
    return header, verts.astype(np.float32), blobs


_WORKER: dict[str, Any] = {}


def _init_worker(out: str, size: int) -> None:
    from facevision.face.reference import load_reference

    _WORKER.update(out=Path(out), size=size, reference=load_reference())


def _unpack_one(task: tuple[str, np.ndarray, np.ndarray]) -> str | None:
    """Write one sample; returns None, or the reason it could not be written."""
    from data_prep.label_mediapipe import render_labels

    sid, blob, verts = task
    out, size = _WORKER["out"], _WORKER["size"]
    if sample_complete(out, sid):
        return None
    bgr = cv2.imdecode(blob, cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (size, size):
        return f"{sid}: the packed image does not decode to {size} x {size}"
    depth, corr, mask = render_labels(verts, size, _WORKER["reference"])
    write_face_mesh(out, sid, verts)
    write_sample(out, sid, Sample(image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth=depth, corr=corr, mask=mask))
    return None


def unpack_dataset(pack: str | Path, out: str | Path, workers: int = 2) -> dict[str, Any]:
    """Write the dataset folder ``out`` from ``pack`` (resumable: complete samples are kept).

    Raises DatasetFormatError when the pack is unreadable or a sample cannot be written.
    """
    pack, out = Path(pack), Path(out)
    header, verts, blobs = _read_pack(pack)
    m = header["manifest"]
    size = int(m["size"])
    tasks = [(s["id"], blobs[i], verts[i]) for i, s in enumerate(header["samples"])]
    if workers > 1 and "fork" in mp.get_all_start_methods():
        with mp.get_context("fork").Pool(workers, _init_worker, (str(out), size)) as pool:
            problems = [p for p in pool.imap_unordered(_unpack_one, tasks, chunksize=64) if p]
    else:
        _init_worker(str(out), size)
        problems = [p for p in map(_unpack_one, tasks) if p]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DatasetFormatError(f"{pack}: {problems[0]}{more}")
    extra = {k: v for k, v in m.items() if k not in ("format", "version", "size", "depth_scale", "corr_scale",
                                                        "label_source", "correspondence_space")}
    extra["unpacked_from"] = {"pack": pack.name, "webp_quality": header["webp_quality"],
                              "mesh_steps_per_px": header["mesh_steps_per_px"]}
    write_manifest(out, header["samples"], size, m["label_source"], m["correspondence_space"], **extra)
    return {"samples": len(tasks), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.pack", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="dataset folder -> pack file")
    a.add_argument("dataset")
    a.add_argument("pack")
    a.add_argument("--splits", default="train,val,test")
    a.add_argument("--quality", type=int, default=PackConfig.quality)
    a.add_argument("--mesh-steps-per-px", type=int, default=PackConfig.mesh_steps_per_px)
    b = sub.add_parser("unpack", help="pack file -> dataset folder")
    b.add_argument("pack")
    b.add_argument("dataset")
    b.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    try:
        cfg = PackConfig(tuple(args.splits.split(",")), args.quality, args.mesh_steps_per_px) \
            if args.cmd == "pack" else None
    except ValueError as exc:
        p.error(str(exc))  # exit code 2
    try:
        if args.cmd == "pack":
            res = pack_dataset(args.dataset, args.pack, cfg)
        else:
            res = unpack_dataset(args.pack, args.dataset, max(1, args.workers))
    except DatasetFormatError as exc:
        print(f"data_prep.pack: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The facevision dataset format: what ``facevision prepare`` writes and ``facevision train`` reads.

Layout::

    DATASET/
      manifest.json                 # metadata + one entry per sample (see below)
      samples/<id>/image.png        # RGB crop, uint8, size x size
      samples/<id>/depth.png        # uint16 relative depth, see DEPTH_PNG_UNITS_PER_PX
      samples/<id>/corr.png         # uint16 RGB correspondence map, see CORR_SCALE
      samples/<id>/mask.png         # uint8 face mask, 255 = face, 0 = background
      samples/<id>/face_mesh.npy    # optional: (N, 3) float32 vertices of the labeler's face the labels were
                                    # rendered from: 468 Face Mesh vertices (label_source "mediapipe") or the
                                    # 4,096 grid points of the 3DDFA face (label_source "3ddfa-v2"); crop px:
                                    # x = column, y = row, z larger = closer (origin: the face centre / arbitrary)
      samples/<id>/label_fit.npz    # optional, "3ddfa-v2": params (62,) de-normalized 3DDFA_V2 parameters,
                                    # roi (4,) the photo-px square they refer to, landmarks (68, 3) crop px

Conventions: the maps' conventions are :mod:`facevision.common.conventions`' (its ``check_*`` functions are
re-exported here; :func:`read_sample` refuses a sample that breaks them). Storage: depth and correspondence as
PNG values of :mod:`facevision.face.codecs` (``DEPTH_PNG_UNITS_PER_PX``, ``CORR_SCALE``); mask 255 inside.

``manifest.json``::

    {"format": "facevision-dataset", "version": 1, "size": 128,
     "depth_scale": 256, "corr_scale": 65535,
     "label_source": "mediapipe" | "3ddfa-v2" | "synthetic" | "<source>+profile",
     "correspondence_space": "facevision-reference-v1" | "3ddfa-bfm4096-ncc" | ...,
     "split_counts": {"train": n, "val": n, "test": n},
     "samples": [{"id": "Aaron_Eckhart_0001", "identity": "Aaron_Eckhart",
                  "split": "train", "source": "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
                  "crop_box": [x0, y0, x1, y1], "crop_angle": 0.0}, ...]}

``crop_box`` is in pixels of the source photo (x right, y down, exclusive end); ``crop_angle`` (degrees)
turns the crop about the box centre (upright crops, see :mod:`facevision.face.crop`).
Extra keys are allowed and ignored by readers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from facevision.common.fileio import atomic_write_json
from facevision.face.images import atomic_write_png, read_png
from facevision.common.conventions import check_corr, check_depth_px, check_mask
from facevision.face.codecs import CORR_SCALE, DEPTH_BASE_PX, DEPTH_PNG_UNITS_PER_PX, decode_corr, decode_depth, encode_corr, encode_depth

FORMAT_NAME = "facevision-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
SAMPLE_FILES = ("image.png", "depth.png", "corr.png", "mask.png")

__all__ = [
    "DatasetFormatError",
    "Sample",
    "write_sample",
    "read_sample",
    "sample_dir",
    "sample_complete",
    "write_manifest",
    "write_face_mesh",
    "read_face_mesh",
    "write_label_fit",
    "read_label_fit",
    "check_same_space",
    "read_manifest",
    "check_depth_px",
    "check_corr",
    "check_mask",
]


class DatasetFormatError(ValueError):
    """The dataset folder is missing or does not follow the format; the message says what is wrong."""


@dataclass
class Sample:
    """One labelled crop: image (S, S, 3) uint8 RGB; depth (S, S) float32 crop px, corr (S, S, 3) float32,
    mask (S, S) bool (the maps of :mod:`facevision.common.conventions`)."""

    image: np.ndarray
    depth: np.ndarray
    corr: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def sample_dir(root: str | Path, sample_id: str) -> Path:
    return Path(root) / "samples" / sample_id


def sample_complete(root: str | Path, sample_id: str) -> bool:
    """True when all four files of a sample exist (each was written atomically)."""
    d = sample_dir(root, sample_id)
    return all((d / name).is_file() for name in SAMPLE_FILES)


def write_sample(root: str | Path, sample_id: str, sample: Sample) -> Path:
    """Write one sample's four PNGs atomically (mask last, so a complete mask means a complete sample)."""
    d = sample_dir(root, sample_id)
    mask = np.asarray(sample.mask, dtype=bool)
    atomic_write_png(d / "image.png", np.asarray(sample.image, dtype=np.uint8))
    atomic_write_png(d / "depth.png", encode_depth(sample.depth, mask))
    atomic_write_png(d / "corr.png", encode_corr(sample.corr, mask))
    atomic_write_png(d / "mask.png", mask.astype(np.uint8) * 255)
    return d


FACE_MESH_FILE = "face_mesh.npy"


def write_face_mesh(root: str | Path, sample_id: str, vertices: np.ndarray) -> Path:
    """Keep the (N, 3) vertices of the labeler's face (crop px, z larger = closer) a sample's labels were rendered
    from: 468 Face Mesh vertices or 4,096 3DDFA grid points."""
    import io

    from facevision.common.fileio import atomic_write_bytes

    v = np.asarray(vertices, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"face mesh vertices must be (N, 3), got {v.shape}")
    buf = io.BytesIO()
    np.save(buf, v, allow_pickle=False)
    return atomic_write_bytes(sample_dir(root, sample_id) / FACE_MESH_FILE, buf.getvalue())


def read_face_mesh(root: str | Path, sample_id: str) -> np.ndarray | None:
    """The sample's Face Mesh vertices, or None when the dataset does not keep them."""
    path = sample_dir(root, sample_id) / FACE_MESH_FILE
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: unreadable face mesh ({exc})") from exc


LABEL_FIT_FILE = "label_fit.npz"


def write_label_fit(root: str | Path, sample_id: str, **arrays: np.ndarray) -> Path:
    """Keep a model-based labeler's fit beside a sample (``label_fit.npz``: float64 arrays, no pickles)."""
    import io

    from facevision.common.fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, np.float64) for k, v in arrays.items()})
    return atomic_write_bytes(sample_dir(root, sample_id) / LABEL_FIT_FILE, buf.getvalue())


def read_label_fit(root: str | Path, sample_id: str) -> dict[str, np.ndarray] | None:
    """The sample's ``label_fit.npz`` arrays, or None when the dataset does not keep them."""
    path = sample_dir(root, sample_id) / LABEL_FIT_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: unreadable label fit ({exc})") from exc


def check_same_space(manifests: dict[str, dict[str, Any]]) -> str:
    """The one correspondence space of several datasets' manifests (folder -> manifest); DatasetFormatError
    naming the folders when they differ: maps of two spaces cannot be learned or compared as one."""
    spaces = {str(root): m.get("correspondence_space", "unknown") for root, m in manifests.items()}
    if len(set(spaces.values())) > 1:
        raise DatasetFormatError("datasets with different correspondence spaces cannot be mixed: "
                                 + ", ".join(f"{r} ({s})" for r, s in spaces.items()))
    return next(iter(spaces.values()), "unknown")


def read_sample(root: str | Path, sample_id: str, meta: dict[str, Any] | None = None) -> Sample:
    """Read one sample; raises DatasetFormatError naming the file when something is wrong."""
    d = sample_dir(root, sample_id)
    try:
        image = read_png(d / "image.png")
        depth = read_png(d / "depth.png")
        corr = read_png(d / "corr.png")
        mask = read_png(d / "mask.png")
    except ValueError as exc:
        raise DatasetFormatError(str(exc)) from exc
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[..., :3]
    if image.dtype != np.uint8:
        image = (image >> 8).astype(np.uint8)
    if corr.ndim != 3 or corr.shape[2] < 3:
        raise DatasetFormatError(f"{d / 'corr.png'}: expected a 3-channel correspondence map, got shape {corr.shape}")
    if mask.ndim == 3:
        mask = mask[..., 0]
    shapes = {image.shape[:2], depth.shape[:2], corr.shape[:2], mask.shape[:2]}
    if len(shapes) != 1:
        raise DatasetFormatError(f"{d}: image, depth, corr and mask differ in size: {sorted(shapes)}")
    depth, corr = decode_depth(depth), decode_corr(corr[..., :3])
    shape = check_depth_px(depth, str(d / "depth.png"), DatasetFormatError).shape
    check_corr(corr, shape, str(d / "corr.png"), DatasetFormatError)
    check_mask(mask, shape, str(d / "mask.png"), DatasetFormatError)
    return Sample(image=image, depth=depth, corr=corr, mask=mask > 127, meta=meta or {})


def write_manifest(root: str | Path, samples: Iterable[dict[str, Any]], size: int, label_source: str,
                   correspondence_space: str, **extra: Any) -> dict[str, Any]:
    """Write ``manifest.json`` atomically and return it. Split counts are computed here."""
    samples = list(samples)
    counts = {s: 0 for s in SPLITS}
    for s in samples:
        if s.get("split") not in counts:
            raise DatasetFormatError(f"sample {s.get('id')!r}: split must be one of {SPLITS}, got {s.get('split')!r}")
        counts[s["split"]] += 1
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "size": int(size),
        "depth_scale": DEPTH_PNG_UNITS_PER_PX,
        "corr_scale": CORR_SCALE,
        "label_source": label_source,
        "correspondence_space": correspondence_space,
        "split_counts": counts,
        **extra,
        "samples": samples,
    }
    atomic_write_json(Path(root) / "manifest.json", manifest)
    return manifest


def read_manifest(root: str | Path) -> dict[str, Any]:
    """Read and validate ``manifest.json``; errors name the folder or file and what is wrong."""
    root = Path(root)
    if not root.exists():
        raise DatasetFormatError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: not a folder")
    path = root / "manifest.json"
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing (run `facevision prepare` to build a dataset)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DatasetFormatError(f"{path}: 'format' must be {FORMAT_NAME!r}")
    if manifest.get("version") != FORMAT_VERSION:
        raise DatasetFormatError(f"{path}: unsupported version {manifest.get('version')!r} (expected {FORMAT_VERSION})")
    samples = manifest.get("samples")
    if not isinstance(samples, list):
        raise DatasetFormatError(f"{path}: 'samples' must be a list")
    for i, s in enumerate(samples):
        if not isinstance(s, dict) or not {"id", "identity", "split"} <= set(s):
            raise DatasetFormatError(f"{path}: sample #{i} needs 'id', 'identity' and 'split'")
        if s["split"] not in SPLITS:
            raise DatasetFormatError(f"{path}: sample {s['id']!r} has unknown split {s['split']!r}")
    return manifest

"""The CPU inference network prepared once and kept on disk: a fast start for ``facevision predict``.

Preparing the network costs seconds at every start (importing segmentation-models-pytorch, timm and
torchvision, building the generator, loading its weights, tracing and freezing it,
:func:`facevision.model.inference.freeze_for_inference`); loading the frozen TorchScript copy back takes
about 25 ms and needs only torch. The cache file is ``<cache dir>/generator-<path id>-<key>.pt`` where
``key`` hashes the checkpoint's sha256, the torch and facevision versions, the crop size and this module's
format number, so a changed checkpoint or library makes a new file (the stale one of the same checkpoint path
is removed when the new one is written).

Safety: the file is a TorchScript archive (``torch.jit.save``): TorchScript code and tensors, no pickled
Python objects, loaded by ``torch.jit.load`` which runs no Python code. It is read only when it lies in a
folder and is a file owned by the current user that nobody else can write (the folder is made with mode
0700), and its recorded key must match; anything else (missing, stale, corrupt, foreign) is ignored and the
network is prepared from the checkpoint as before. Written atomically (temporary file + rename).

Where: ``$FACEVISION_CACHE_DIR`` if set (``off`` disables the cache), else
``$XDG_CACHE_HOME/facevision/inference`` (``~/.cache/facevision/inference``). Not beside the checkpoint: the
shipped one lies in the package or the source checkout, where extra files would be written into an install
or show up in ``git status``.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

__all__ = ["CACHE_ENV", "cache_dir", "cache_key", "cache_path", "load_cached", "store", "cached_frozen_generator"]

CACHE_ENV = "FACEVISION_CACHE_DIR"
FORMAT = 1
_META = "facevision.json"
_OFF = ("", "0", "off", "none", "no", "false")


def cache_dir() -> Path | None:
    """The cache folder, or None when ``$FACEVISION_CACHE_DIR`` switches the cache off."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facevision" / "inference"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(checkpoint: str | Path, size: int = 0) -> str:
    """Key of the frozen network of ``checkpoint``: its sha256, torch and facevision versions, format."""
    import torch

    from facevision import __version__

    text = f"{_sha256(Path(checkpoint))}|torch {torch.__version__}|facevision {__version__}|format {FORMAT}|{size}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _path_id(checkpoint: Path) -> str:
    return hashlib.sha256(str(checkpoint.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def cache_path(checkpoint: str | Path, key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"generator-{_path_id(Path(checkpoint))}-{key}.pt"


def _trusted(path: Path) -> bool:
    """A regular file and its folder, both owned by the current user and writable by nobody else."""
    try:
        for p, want in ((path.parent, stat.S_ISDIR), (path, stat.S_ISREG)):
            st = os.lstat(p)
            if not want(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return False
    except OSError:
        return False
    return True


def load_cached(checkpoint: str | Path) -> Any | None:
    """The frozen network of ``checkpoint`` from the cache (with ``.config.image_size`` set), or None."""
    import torch

    try:
        key = cache_key(checkpoint)
    except OSError:
        return None
    path = cache_path(checkpoint, key)
    if path is None or not path.is_file() or not _trusted(path):
        return None
    extra = {_META: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        meta = json.loads(extra[_META])
        if meta.get("key") != key:
            return None
        model.config = SimpleNamespace(image_size=int(meta["image_size"]))
    except Exception:  # noqa: BLE001 - corrupt or foreign file: prepare the network from the checkpoint
        return None
    return model.eval()


def store(checkpoint: str | Path, frozen: Any, image_size: int) -> Path | None:
    """Write ``frozen`` (a TorchScript module) to the cache atomically; None when the cache is off or the
    write fails (the cache only saves time)."""
    import io

    import torch

    from data_prep.io import atomic_write_bytes

    key = cache_key(checkpoint)
    path = cache_path(checkpoint, key)
    if path is None:
        return None
    meta = {"key": key, "checkpoint": str(Path(checkpoint).resolve()), "image_size": int(image_size),
            "torch": torch.__version__, "format": FORMAT}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 points to torch.export: not for this
            torch.jit.save(frozen, buf, _extra_files={_META: json.dumps(meta)})
        atomic_write_bytes(path, buf.getvalue())
        for old in path.parent.glob(f"generator-{_path_id(Path(checkpoint))}-*.pt"):
            if old != path:
                old.unlink(missing_ok=True)  # the same checkpoint path's stale network
    except Exception:  # noqa: BLE001 - read-only home, disk full, unsavable module: run without the cache
        return None
    return path


def cached_frozen_generator(checkpoint: str | Path, load: Callable[[], Any]) -> Any:
    """The CPU inference network of ``checkpoint``: from the cache, else ``load()`` (the eager generator)
    frozen by :func:`facevision.model.inference.freeze_for_inference` and stored for the next start."""
    model = load_cached(checkpoint)
    if model is not None:
        return model
    from facevision.model.inference import freeze_for_inference

    eager = load()
    size = int(eager.config.image_size)
    frozen = freeze_for_inference(eager, size, "cpu")
    if frozen is eager:  # could not be frozen: nothing to cache
        return eager
    store(checkpoint, frozen, size)
    frozen.config = SimpleNamespace(image_size=size)
    return frozen

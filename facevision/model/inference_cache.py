"""The CPU inference network exported once and kept on disk: a fast start for ``facevision predict``.

File: ``<cache dir>/generator-<path id>-<key>.onnx``; ``key`` hashes the checkpoint's sha256, the torch,
onnxruntime and facevision versions, the crop size and ``FORMAT``, so a changed checkpoint or library makes a new
file (the stale one is removed). Without an export (no ``onnx``/``onnxruntime``) the network is the TorchScript
copy of :mod:`facevision.model.inference`, made at every start.

Safety: the file (an ONNX graph, no Python code) is read only when it is a regular file in a folder, both owned
by the current user and writable by nobody else, and its recorded key matches; anything else is ignored.

Where: ``$FACEVISION_CACHE_DIR`` (``off`` disables the cache), else ``$XDG_CACHE_HOME/facevision/inference``
(``~/.cache/...``); never beside the checkpoint, which may lie in an install or a source checkout.
"""
from __future__ import annotations

import hashlib
import os
import stat
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from facevision.env import CACHE_ENV

__all__ = ["CACHE_ENV", "cache_dir", "cache_key", "cache_path", "load_cached", "store", "inference_network"]

FORMAT = 2  # 1: TorchScript archives (.pt), 2: ONNX graphs
_SUFFIX = ".onnx"
_OFF = ("", "0", "off", "none", "no", "false")


def cache_dir() -> Path | None:
    """The cache folder, or None when ``$FACEVISION_CACHE_DIR`` switches the cache off."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facevision" / "inference"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def cache_key(checkpoint: str | Path, size: int = 0) -> str:
    """Key of the inference network of ``checkpoint``: its sha256, the torch, onnxruntime and facevision
    versions (read from the installed packages' metadata: nothing is imported), format, crop size."""
    from facevision import __version__

    from facevision.common.fileio import file_sha256

    text = (f"{file_sha256(checkpoint)}|torch {_version('torch')}|onnxruntime {_version('onnxruntime')}"
            f"|facevision {__version__}|format {FORMAT}|{size}")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _path_id(checkpoint: Path) -> str:
    return hashlib.sha256(str(checkpoint.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def cache_path(checkpoint: str | Path, key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"generator-{_path_id(Path(checkpoint))}-{key}{_SUFFIX}"


def _owned_by_me(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read_trusted(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file in a folder, both owned by the current user and writable by
    nobody else (the file is checked on the descriptor it is read from, links not followed), else None."""
    try:
        folder = os.lstat(path.parent)
        if not stat.S_ISDIR(folder.st_mode) or not _owned_by_me(folder):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or not _owned_by_me(st):
            return None
        return fh.read()


def load_cached(checkpoint: str | Path, threads: int | None = None, key: str | None = None) -> Any | None:
    """The ONNX Runtime network of ``checkpoint`` from the cache
    (:class:`~facevision.model.onnx_network.OnnxNetwork`, ``threads`` per call), or None. ``key``: its
    :func:`cache_key` if already known (hashing the checkpoint once per start)."""
    try:
        from facevision.model.onnx_network import OnnxNetwork

        key = key or cache_key(checkpoint)
        path = cache_path(checkpoint, key)
        data = None if path is None else _read_trusted(path)
        if data is None:
            return None
        network = OnnxNetwork(data, threads)
    except Exception:  # noqa: BLE001 - unreadable, corrupt or foreign file, no onnxruntime: prepare it anew
        return None
    return network if network.metadata.get("key") == key else None


def store(checkpoint: str | Path, model_bytes: bytes, key: str | None = None) -> Path | None:
    """Write ONNX ``model_bytes`` (made by :func:`export_onnx` with this checkpoint's key, ``key`` if given, in
    its metadata) to the cache atomically; None when the cache is off or the write fails (the cache only saves
    time)."""
    from facevision.common.fileio import atomic_write_bytes

    key = key or cache_key(checkpoint)
    path = cache_path(checkpoint, key)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_bytes(path, model_bytes)
        for old in path.parent.glob(f"generator-{_path_id(Path(checkpoint))}-*"):
            if old != path and old.suffix in (".pt", _SUFFIX):
                old.unlink(missing_ok=True)  # the same checkpoint path's stale network (either format)
    except Exception:  # noqa: BLE001 - read-only home, disk full: run without the cache
        return None
    return path


def inference_network(checkpoint: str | Path, load: Callable[[], Any], threads: int | None = None) -> Any:
    """The CPU inference network of ``checkpoint``: the cached ONNX Runtime network; else ``load()`` (the eager
    generator) exported to ONNX, stored for the next start and loaded; else (no export possible) ``load()``
    frozen by :func:`facevision.model.inference.freeze_for_inference`. ``threads``: CPU threads of the
    ONNX Runtime network (None = its default); the torch fallback uses torch's setting."""
    key = cache_key(checkpoint)
    network = load_cached(checkpoint, threads, key)
    if network is not None:
        return network
    eager = load()
    size = int(eager.config.image_size)
    try:
        from facevision.model.onnx_network import OnnxNetwork, export_onnx

        data = export_onnx(eager.cpu(), size, {"key": key, "image_size": size, "format": FORMAT,
                                                "checkpoint": str(Path(checkpoint).resolve())})
        network = OnnxNetwork(data, threads)
    except Exception:  # noqa: BLE001 - no onnx/onnxruntime, or a graph the exporter cannot write: torch it is
        from facevision.model.inference import freeze_for_inference

        frozen = freeze_for_inference(eager, size, "cpu")
        if frozen is not eager:
            frozen.config = SimpleNamespace(image_size=size)
        return frozen
    store(checkpoint, data, key)
    return network

"""Loading FLAME model files safely: no chumpy, no arbitrary pickle code.

Files: FLAME 2020 (``generic_model.pkl``, ``male_model.pkl``, ``female_model.pkl``) and FLAME 2023
(``flame2023.pkl``, ``flame2023_no_jaw.pkl``), or any pickle or ``.npz`` of FLAME's structure (``REQUIRED_KEYS``;
``J_regressor`` dense or scipy sparse). An optional ``n_shape`` entry splits ``shapedirs`` into shape and
expression; without it a 400-column basis is read as FLAME's 300 + 100.

The restricted unpickler resolves only numpy's array helpers, ``copyreg._reconstructor``, inert builtins and
``_codecs.encode``; chumpy arrays and scipy sparse matrices become inert placeholders, then dense arrays. Any
other global raises :class:`UnsafeModelFileError` before anything runs; :class:`PickleLimits` bounds the rest.

Units: metres; FLAME's frame is right-handed, X to the subject's left (image right), Y up, Z towards the viewer.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facevision.common.fileio import file_sha256
from facevision.env import FLAME_MODEL_ENV

__all__ = [
    "FLAME_MODEL_ENV",
    "FLAME_HELP",
    "FLAME_DOWNLOAD",
    "FlameModelError",
    "FlameModelMissingError",
    "UnsafeModelFileError",
    "FlameModel",
    "load_flame_model",
    "flame_model_from_arrays",
    "resolve_model_path",
    "safe_load_pickle",
    "PickleLimits",
    "file_sha256",
]

FLAME_DOWNLOAD = (
    "FLAME is not shipped with facevision: register (free for research) at https://flame.is.tue.mpg.de and "
    "download FLAME 2020 (generic_model.pkl) or FLAME 2023 (flame2023.pkl)"
)
# The command line's message (names its flag); API errors use FLAME_DOWNLOAD and name no flag.
FLAME_HELP = (
    "no FLAME model file given: pass --flame-model /path/to/generic_model.pkl or set "
    f"{FLAME_MODEL_ENV}=/path/to/generic_model.pkl ({FLAME_DOWNLOAD})."
)
REQUIRED_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")


class FlameModelError(ValueError):
    """A FLAME model file is missing, unreadable or not FLAME-shaped; the message names the file."""


class FlameModelMissingError(FlameModelError):
    """No model file was given (neither --flame-model nor $FACEVISION_FLAME_MODEL); see FLAME_HELP."""


class UnsafeModelFileError(FlameModelError):
    """The pickle references code outside the small allow-list; it was not executed."""


# ----------------------------------------------------------------------------- restricted unpickler
class _PickledState:
    """Inert stand-in for a pickled object of an allowed foreign class: keeps only its state."""

    _kind = "object"
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # never runs user code
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyArray(_PickledState):
    _kind = "chumpy"


class _SparseMatrix(_PickledState):
    _kind = "sparse"
    _fmt = "csc"


def _sparse_class(fmt: str) -> type:
    return type(f"_Sparse_{fmt}", (_SparseMatrix,), {"_fmt": fmt})


_SPARSE_CLASSES = {fmt: _sparse_class(fmt) for fmt in ("csc", "csr", "coo")}


def _numpy_global(module: str, name: str) -> Any:
    import numpy.core.multiarray as multiarray  # numpy 1.x layout (numpy 2 pickles say numpy._core)

    if name == "_reconstruct":
        return multiarray._reconstruct
    if name == "scalar":
        return multiarray.scalar
    if name == "ndarray":
        return np.ndarray
    if name == "dtype":
        return np.dtype
    if name == "_frombuffer":
        from numpy.core import numeric

        return numeric._frombuffer
    return None


def _encode_text(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to the text encodings pickles use for bytes (no compression codecs)."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed")
    return obj.encode(encoding, errors)


_SAFE_BUILTINS = {"object": object, "set": set, "frozenset": frozenset, "slice": slice, "complex": complex}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolve only numpy array pieces, copyreg._reconstructor and inert chumpy/scipy stand-ins."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1", fix_imports=True)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle hook
        if module in {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                      "numpy._core.numeric"}:
            obj = _numpy_global(module, name)
            if obj is not None:
                return obj
        if module.startswith("numpy") and name.endswith("DType") and module.endswith("dtypes"):
            return getattr(np.dtypes, name)
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":  # Python 3 / Python 2 spelling
            import copyreg

            return copyreg._reconstructor
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "_codecs" and name == "encode":  # how Python 3 protocol-2 pickles store bytes
            return _encode_text
        if module == "chumpy.ch" and name == "Ch":
            return _ChumpyArray
        if module.startswith("chumpy"):
            raise UnsafeModelFileError(
                f"{self._source}: chumpy expression object {module}.{name} is not supported "
                "(only plain chumpy arrays are); re-save the model with numpy arrays")
        if module.startswith("scipy.sparse") and name in {"csc_matrix", "csr_matrix", "coo_matrix"}:
            return _SPARSE_CLASSES[name[:3]]
        raise UnsafeModelFileError(
            f"{self._source}: refusing to load: the pickle references {module}.{name}, which is not one of the "
            "numpy/scipy/chumpy array types a FLAME model file contains")


@dataclass(frozen=True)
class PickleLimits:
    """Bounds on what a FLAME pickle may unpack into (FLAME 2020/2023 files stay far below them).

    max_file_bytes: size of the file. max_depth: nesting of dicts, lists, tuples and stand-ins.
    max_objects: containers and values visited while converting. max_dense_elements: elements of a
    scipy sparse matrix made dense (FLAME's J_regressor is 5 x 5023).
    """

    max_file_bytes: int = 1 << 30
    max_depth: int = 32
    max_objects: int = 1_000_000
    max_dense_elements: int = 50_000_000


class _Plain:
    """Replace stand-ins by numpy arrays, recursively through dicts/lists/tuples, within :class:`PickleLimits`."""

    def __init__(self, source: str, limits: PickleLimits) -> None:
        self.source, self.limits, self.visited = source, limits, 0

    def __call__(self, obj: Any, depth: int = 0) -> Any:
        self.visited += 1
        if depth > self.limits.max_depth:
            raise FlameModelError(f"{self.source}: refusing to load: objects nested more than "
                                  f"{self.limits.max_depth} levels deep (no FLAME file is)")
        if self.visited > self.limits.max_objects:
            raise FlameModelError(f"{self.source}: refusing to load: more than {self.limits.max_objects} "
                                  "objects (no FLAME file has that many)")
        if isinstance(obj, _ChumpyArray):
            state = obj.state if isinstance(obj.state, dict) else {}
            if "x" not in state:
                raise FlameModelError(f"{self.source}: a chumpy object without a stored value 'x' is not supported")
            return np.asarray(self(state["x"], depth + 1))
        if isinstance(obj, _SparseMatrix):
            return _sparse_to_dense(obj, self.source, self.limits)
        if isinstance(obj, _PickledState):
            raise FlameModelError(f"{self.source}: unsupported pickled object")
        if isinstance(obj, dict):
            return {k: self(v, depth + 1) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self(v, depth + 1) for v in obj)
        if isinstance(obj, np.ndarray) and obj.dtype == object:
            return np.array([self(v, depth + 1) for v in obj.ravel()], dtype=object).reshape(obj.shape)
        return obj


def _to_plain(obj: Any, source: str, limits: PickleLimits | None = None) -> Any:
    """Replace stand-ins by numpy arrays, recursively through dicts/lists (bounded, see PickleLimits)."""
    return _Plain(source, limits or PickleLimits())(obj)


def _sparse_to_dense(obj: _SparseMatrix, source: str, limits: PickleLimits | None = None) -> np.ndarray:
    limits = limits or PickleLimits()
    st = obj.state if isinstance(obj.state, dict) else {}
    fmt = getattr(obj, "_fmt", "csc")
    shape = tuple(int(s) for s in st.get("_shape", st.get("shape", ())))
    if len(shape) != 2 or min(shape) < 0:
        raise FlameModelError(f"{source}: sparse matrix without a valid 2-D shape ({shape})")
    if shape[0] * shape[1] > limits.max_dense_elements:
        raise FlameModelError(f"{source}: refusing to load: a {shape[0]} x {shape[1]} sparse matrix is larger than "
                              f"any FLAME array (limit {limits.max_dense_elements} elements)")
    dense = np.zeros(shape, dtype=np.float64)
    data = np.asarray(st.get("data"), dtype=np.float64)
    if fmt == "coo":
        rows, cols = np.asarray(st["row"]), np.asarray(st["col"])
        np.add.at(dense, (rows, cols), data)
        return dense
    indices, indptr = np.asarray(st["indices"]), np.asarray(st["indptr"])
    outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    if fmt == "csc":
        np.add.at(dense, (indices, outer), data)
    else:
        np.add.at(dense, (outer, indices), data)
    return dense


_LOAD_ERRORS = (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, IndexError, KeyError,
                OverflowError)


def safe_load_pickle(path: str | os.PathLike, limits: PickleLimits = PickleLimits()) -> Any:
    """Unpickle ``path`` with the restricted unpickler into plain Python/numpy objects. UnsafeModelFileError when
    the pickle names a global outside the allow-list (nothing is run); FlameModelError for an unreadable or corrupt
    file or one beyond :class:`PickleLimits`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise FlameModelError(f"{path}: refusing to load: {size} bytes is larger than any FLAME model file "
                                  f"(limit {limits.max_file_bytes})")
        with open(path, "rb") as fh:
            raw = _RestrictedUnpickler(fh, str(path)).load()
        return _to_plain(raw, str(path), limits)
    except FlameModelError:
        raise
    except MemoryError:
        raise FlameModelError(f"{path}: refusing to load: the pickle needs more memory than this machine has") from None
    except RecursionError:
        raise FlameModelError(f"{path}: refusing to load: objects nested too deeply") from None
    except OSError as exc:
        raise FlameModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except _LOAD_ERRORS as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise FlameModelError(f"{path}: not a readable FLAME pickle ({type(exc).__name__}: {first})") from None


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class FlameModel:
    """FLAME's arrays in float64 numpy (metres).

    v_template (V,3); faces (F,3) int64; shapedirs (V,3,n_shape); exprdirs (V,3,n_expr);
    posedirs (P, V*3) with P = 9*(J-1) (rows ordered like smplx: pose feature -> offsets);
    J_regressor (J,V); weights (V,J); parents (J,) with -1 for the root.
    FLAME's joints are 0 root/global, 1 neck, 2 jaw, 3 left eye, 4 right eye.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    sha256: str
    source: str = "<memory>"

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def n_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def n_expr(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def n_joints(self) -> int:
        return int(self.parents.shape[0])


def _arrays_sha256(arrays: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for key in REQUIRED_KEYS:
        a = np.ascontiguousarray(np.asarray(arrays[key]))
        h.update(key.encode())
        h.update(str(a.shape).encode())
        h.update(a.astype(np.float64).tobytes())
    return h.hexdigest()


def flame_model_from_arrays(arrays: dict[str, Any], n_shape: int | None = None, sha256: str | None = None,
                            source: str = "<memory>") -> FlameModel:
    """Validate FLAME-structured arrays and build a :class:`FlameModel` (see module docstring)."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise FlameModelError(f"{source}: not a FLAME model: missing {', '.join(missing)}")
    try:
        v = np.asarray(arrays["v_template"], dtype=np.float64)
        f = np.asarray(arrays["f"]).astype(np.int64)
        sd = np.asarray(arrays["shapedirs"], dtype=np.float64)
        pd = np.asarray(arrays["posedirs"], dtype=np.float64)
        jr = np.asarray(arrays["J_regressor"], dtype=np.float64)
        w = np.asarray(arrays["weights"], dtype=np.float64)
        kt = np.asarray(arrays["kintree_table"]).astype(np.int64)
    except (TypeError, ValueError) as exc:
        raise FlameModelError(f"{source}: FLAME arrays have unexpected types ({exc})") from None
    nv = v.shape[0] if v.ndim == 2 else -1
    problems = []
    if v.ndim != 2 or v.shape[1] != 3:
        problems.append(f"v_template shape {v.shape} (expected (V,3))")
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= nv)):
        problems.append(f"f shape {f.shape} or indices out of range")
    if sd.ndim != 3 or sd.shape[:2] != (nv, 3):
        problems.append(f"shapedirs shape {sd.shape} (expected (V,3,K))")
    if kt.ndim != 2 or kt.shape[0] != 2:
        problems.append(f"kintree_table shape {kt.shape} (expected (2,J))")
    if problems:
        raise FlameModelError(f"{source}: not a FLAME model: " + "; ".join(problems))
    nj = kt.shape[1]
    if jr.shape != (nj, nv):
        problems.append(f"J_regressor shape {jr.shape} (expected {(nj, nv)})")
    if w.shape != (nv, nj):
        problems.append(f"weights shape {w.shape} (expected {(nv, nj)})")
    npose = 9 * (nj - 1)
    if pd.shape == (nv, 3, npose):
        pd = pd.reshape(nv * 3, npose).T.copy()
    elif pd.shape != (npose, nv * 3):
        problems.append(f"posedirs shape {pd.shape} (expected {(nv, 3, npose)})")
    if problems:
        raise FlameModelError(f"{source}: not a FLAME model: " + "; ".join(problems))
    k = sd.shape[2]
    if n_shape is None and "n_shape" in arrays:
        n_shape = int(np.asarray(arrays["n_shape"]).ravel()[0])
    if n_shape is None:
        if k == 400:
            n_shape = 300
        else:
            raise FlameModelError(f"{source}: shapedirs has {k} components; cannot tell shape from expression "
                                  "(store an 'n_shape' entry in the file or pass n_shape)")
    if not 0 < n_shape <= k:
        raise FlameModelError(f"{source}: n_shape={n_shape} does not fit shapedirs with {k} components")
    parents = kt[0].copy()
    parents[0] = -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, nj)):
        raise FlameModelError(f"{source}: kintree_table parents must precede their children")
    return FlameModel(
        v_template=v, faces=f, shapedirs=sd[:, :, :n_shape].copy(), exprdirs=sd[:, :, n_shape:].copy(),
        posedirs=pd, J_regressor=jr, weights=w, parents=parents,
        sha256=sha256 or _arrays_sha256(arrays), source=source)


def load_flame_model(path: str | os.PathLike, n_shape: int | None = None) -> FlameModel:
    """Load a FLAME 2020/2023 ``.pkl`` or a FLAME-structured ``.npz`` (module docstring); FlameModelError (or
    UnsafeModelFileError) naming the file and the reason."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FlameModelError(f"{path}: FLAME model file not found ({FLAME_DOWNLOAD}).")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError, MemoryError, zipfile.BadZipFile) as exc:
            raise FlameModelError(f"{path}: not a readable .npz FLAME model ({type(exc).__name__}: {exc})") from None
    else:
        arrays = safe_load_pickle(path)
    if not isinstance(arrays, dict):
        raise FlameModelError(f"{path}: not a FLAME model (the pickle holds a {type(arrays).__name__}, not a dict)")
    return flame_model_from_arrays(arrays, n_shape=n_shape, sha256=file_sha256(path), source=str(path))


def resolve_model_path(path: str | os.PathLike | None = None) -> Path:
    """The model file to use: ``path`` if given, else ``$FACEVISION_FLAME_MODEL``. FlameModelMissingError when
    neither is set (the command line prints :data:`FLAME_HELP`); FlameModelError when the file does not exist."""
    value = str(path) if path else os.environ.get(FLAME_MODEL_ENV, "")
    if not value:
        raise FlameModelMissingError(f"no FLAME model file given: pass its path or set ${FLAME_MODEL_ENV} "
                                     f"({FLAME_DOWNLOAD}).")
    p = Path(value).expanduser()
    if not p.is_file():
        where = "" if path else f" (from ${FLAME_MODEL_ENV})"
        raise FlameModelError(f"{p}: FLAME model file not found{where} ({FLAME_DOWNLOAD}).")
    return p

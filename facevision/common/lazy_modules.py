"""Import a third-party package without submodules it loads at import time and we never use.

Open3D imports its plotly/dash web viewer, MediaPipe imports matplotlib for a plotting helper (the time this
saves: README, Performance). :func:`deferred` puts stand-ins for such modules in ``sys.modules`` while the
package is imported: what the package takes from them (``from dash import Dash``) is a proxy, and the real
module is imported the first time the proxy is used (called, or an attribute read). After the block the
stand-ins leave ``sys.modules``: a later ``import dash`` is an ordinary import.
:func:`import_open3d` is the one way this project imports Open3D.
"""
from __future__ import annotations

import importlib
import sys
import threading
import types
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

__all__ = ["deferred", "import_deferring", "import_open3d", "OPEN3D_UNUSED"]

OPEN3D_UNUSED = ("open3d.visualization.draw_plotly",)  # dash + plotly + IPython: Open3D's web viewer
_MISSING = object()
_IMPORTING = threading.RLock()  # one deferred import at a time (the stand-ins live in the shared sys.modules)


def _real(name: str) -> types.ModuleType:
    """The real module ``name``, imported now if only a stand-in was there. A parent package keeps what it had
    bound under the child's name (the import system would rebind it to the module)."""
    mod = sys.modules.get(name)
    if mod is not None and not isinstance(mod, _StandIn):
        return mod
    sys.modules.pop(name, None)
    parent, _, child = name.rpartition(".")
    pmod = sys.modules.get(parent) if parent else None
    saved = pmod.__dict__.get(child, _MISSING) if pmod is not None else _MISSING
    mod = importlib.import_module(name)
    if saved is not _MISSING and not isinstance(saved, _StandIn):
        setattr(pmod, child, saved)
    return mod


class _Later:
    """A name taken from a stand-in (``from dash import Dash``): the real object once used."""

    def __init__(self, module: str, attr: str) -> None:
        self._module, self._attr = module, attr

    def _target(self) -> Any:
        return getattr(_real(self._module), self._attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __repr__(self) -> str:
        return f"<{self._module}.{self._attr}, imported when first used>"


class _StandIn(types.ModuleType):
    """Stands in for module ``name`` while :func:`deferred`'s block runs; afterwards its attributes are the real
    module's (imported on first use)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"stand-in for {name}, imported when first used")
        self.__path__: list[str] = []  # a package: "import name.sub" finds its stand-in too
        self._active = True

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        if self.__dict__.get("_active"):
            return _Later(self.__name__, attr)
        return getattr(_real(self.__name__), attr)


@contextmanager
def deferred(names: Iterable[str]) -> Iterator[None]:
    """During the block, the modules ``names`` that are not imported yet are stand-ins (see the module
    docstring); name a package and its submodule both (``"matplotlib", "matplotlib.pyplot"``) where the package
    itself is to wait too. Use it around the import of the package that pulls them in."""
    made: dict[str, _StandIn] = {}
    for name in names:
        if name not in sys.modules:
            made[name] = sys.modules[name] = _StandIn(name)
    for name, stand_in in made.items():
        parent, _, child = name.rpartition(".")
        if parent in made:  # "import a.b as c" reads b from the stand-in of a
            made[parent].__dict__[child] = stand_in
    try:
        yield
    finally:
        for name, stand_in in made.items():
            stand_in.__dict__["_active"] = False
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def import_deferring(name: str, unused: Iterable[str]) -> types.ModuleType:
    """``import name`` with the modules ``unused`` deferred (:func:`deferred`) if it is not imported yet. Safe from
    several threads: one imports, the others wait for the finished module (never a half-imported one)."""
    if name not in sys.modules:
        with _IMPORTING:
            if name not in sys.modules:
                with deferred(unused):
                    return importlib.import_module(name)
    return importlib.import_module(name)  # waits while another thread is still importing it


def import_open3d() -> types.ModuleType:
    """``import open3d``, without its plotly/dash web viewer until something uses it."""
    return import_deferring("open3d", OPEN3D_UNUSED)

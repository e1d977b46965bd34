"""FLAME model loading: FLAME-structured pkl/npz, chumpy-free pickles, refusal of malicious pickles."""
from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest

from facevision.flame.model import (FLAME_MODEL_ENV, FlameModelError, FlameModelMissingError, UnsafeModelFileError,
                                    flame_model_from_arrays, load_flame_model, resolve_model_path, safe_load_pickle)
from support.flame_synthetic import make_synthetic_flame_arrays, save_synthetic_flame


@pytest.fixture(scope="module")
def arrays():
    return make_synthetic_flame_arrays(n_shape=8, n_expr=4, n_lat=14, n_lon=18)


def _same(model, arrays):
    np.testing.assert_allclose(model.v_template, arrays["v_template"])
    np.testing.assert_array_equal(model.faces, arrays["f"])
    np.testing.assert_allclose(model.J_regressor, arrays["J_regressor"], atol=1e-15)
    np.testing.assert_allclose(model.shapedirs, arrays["shapedirs"][:, :, :8])
    np.testing.assert_allclose(model.exprdirs, arrays["shapedirs"][:, :, 8:])
    assert model.parents.tolist() == [-1, 0, 1, 1, 1]
    assert model.posedirs.shape == (36, 3 * len(arrays["v_template"]))


@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_load_synthetic_model_file(tmp_path, arrays, suffix):
    path = save_synthetic_flame(tmp_path / f"model{suffix}", arrays)
    model = load_flame_model(path)
    _same(model, arrays)
    assert len(model.sha256) == 64 and model.source == str(path)
    assert load_flame_model(path).sha256 == model.sha256


def _fake_chumpy(monkeypatch):
    """Install a throw-away ``chumpy.ch`` module whose Ch pickles like chumpy's (state dict with 'x')."""
    pkg = types.ModuleType("chumpy")
    mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()

        def __reduce_ex__(self, protocol):
            import copyreg
            return (copyreg._reconstructor, (Ch, object, None), dict(self.__dict__))

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch = Ch
    pkg.ch = mod
    monkeypatch.setitem(sys.modules, "chumpy", pkg)
    monkeypatch.setitem(sys.modules, "chumpy.ch", mod)
    return Ch


def test_chumpy_arrays_become_numpy_without_chumpy(tmp_path, arrays, monkeypatch):
    import scipy.sparse

    ch = _fake_chumpy(monkeypatch)
    data = dict(arrays)
    data["shapedirs"] = ch(arrays["shapedirs"])
    data["v_template"] = ch(arrays["v_template"])
    data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy.ch")  # loading must not need chumpy
    monkeypatch.delitem(sys.modules, "chumpy")
    loaded = safe_load_pickle(path)
    assert type(loaded["shapedirs"]) is np.ndarray
    _same(load_flame_model(path), arrays)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalIt:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


@pytest.mark.parametrize("payload", ["os_system", "eval", "chumpy_expression"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, arrays, payload, monkeypatch):
    marker = tmp_path / "pwned"
    data = dict(arrays)
    if payload == "os_system":
        data["v_template"] = _Evil(marker)
    elif payload == "eval":
        data["weights"] = _EvalIt(marker)
    else:
        mod = types.ModuleType("chumpy.ch_ops")

        class add:  # noqa: N801 - chumpy's class name
            def __reduce_ex__(self, protocol):
                import copyreg
                return (copyreg._reconstructor, (add, object, None), {"a": 1})
        add.__module__, add.__qualname__ = "chumpy.ch_ops", "add"
        mod.add = add
        pkg = types.ModuleType("chumpy")
        pkg.ch_ops = mod
        monkeypatch.setitem(sys.modules, "chumpy", pkg)
        monkeypatch.setitem(sys.modules, "chumpy.ch_ops", mod)
        data["shapedirs"] = add()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(UnsafeModelFileError, match="model.pkl"):
        load_flame_model(path)
    assert not marker.exists()


def test_not_a_flame_file_errors_name_the_file(tmp_path, arrays):
    bad = dict(arrays)
    del bad["posedirs"]
    p = tmp_path / "bad.npz"
    np.savez(p, **bad)
    with pytest.raises(FlameModelError, match=r"bad\.npz.*posedirs"):
        load_flame_model(p)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(FlameModelError, match="junk.pkl"):
        load_flame_model(junk)
    with pytest.raises(FlameModelError, match="not found"):
        load_flame_model(tmp_path / "missing.pkl")


def test_flame_400_component_split_and_explicit_n_shape(arrays):
    nv = len(arrays["v_template"])
    big = dict(arrays)
    del big["n_shape"]
    big["shapedirs"] = np.zeros((nv, 3, 400))
    m = flame_model_from_arrays(big)
    assert (m.n_shape, m.n_expr) == (300, 100)
    big["shapedirs"] = np.zeros((nv, 3, 12))
    with pytest.raises(FlameModelError, match="n_shape"):
        flame_model_from_arrays(big)
    assert flame_model_from_arrays(big, n_shape=10).n_expr == 2


def test_resolve_model_path(tmp_path, monkeypatch, arrays):
    monkeypatch.delenv(FLAME_MODEL_ENV, raising=False)
    with pytest.raises(FlameModelMissingError) as err:
        resolve_model_path(None)
    msg = str(err.value)
    # API users get no command-line flag, and the message says each thing once (issue #13)
    assert "flame.is.tue.mpg.de" in msg and "--flame-model" not in msg and FLAME_MODEL_ENV in msg
    assert msg.lower().count("flame model file") == 1 and msg.count("flame.is.tue.mpg.de") == 1
    p = save_synthetic_flame(tmp_path / "m.npz", arrays)
    monkeypatch.setenv(FLAME_MODEL_ENV, str(p))
    assert resolve_model_path(None) == p
    assert resolve_model_path(str(p)) == p
    with pytest.raises(FlameModelError, match="not found") as err:
        resolve_model_path(tmp_path / "nope.pkl")
    _said_once(str(err.value), tmp_path / "nope.pkl")
    with pytest.raises(FlameModelError, match="not found") as err:
        load_flame_model(tmp_path / "nope.pkl")
    _said_once(str(err.value), tmp_path / "nope.pkl")


def _said_once(msg: str, path) -> None:
    """One line: the file, 'not found' and where to get FLAME, each once; no command-line flag."""
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert msg.count("not found") == 1 and msg.count("flame.is.tue.mpg.de") == 1
    assert "--" not in msg and "No FLAME model file" not in msg


def test_cli_without_a_model_names_the_flag_once(tmp_path, monkeypatch, capsys):
    from facevision.cli import main

    monkeypatch.delenv(FLAME_MODEL_ENV, raising=False)
    assert main(["flame", "edit", str(tmp_path / "p.npz"), "-o", str(tmp_path / "x.obj")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].count("--flame-model") == 1 and err[0].count("flame.is.tue.mpg.de") == 1

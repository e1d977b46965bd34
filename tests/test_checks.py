"""The config field checks (facevision.common.checks): what each refuses, what it lets pass, how it says so."""
from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from facevision.common.checks import check_choice, check_fraction, check_int, check_number

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ProbeConfig:
    value: object = 0


def _refused(check, value, *args, **kwargs) -> str:
    """The one-line message ``check`` raises for ``value`` (fails the test when it lets the value pass)."""
    with pytest.raises(ValueError) as exc:
        check(ProbeConfig(value), "value", *args, **kwargs)
    return str(exc.value)


def _passes(check, value, *args, **kwargs) -> None:
    check(ProbeConfig(value), "value", *args, **kwargs)


def test_check_int_refuses_out_of_range_and_non_integers_naming_class_field_and_value():
    assert _refused(check_int, 0, low=1) == "ProbeConfig.value must be at least 1, got 0"
    assert _refused(check_int, 101, 0, 100) == "ProbeConfig.value must be in [0, 100], got 101"
    assert _refused(check_int, -1, 0, 100) == "ProbeConfig.value must be in [0, 100], got -1"
    assert _refused(check_int, 9, high=8) == "ProbeConfig.value must be at most 8, got 9"
    assert _refused(check_int, 8, low=64, unit="px") == "ProbeConfig.value must be at least 64 px, got 8"
    assert _refused(check_int, 0, low=1, optional=True) == "ProbeConfig.value must be at least 1 or None, got 0"
    for bad in (None, "x", math.nan, math.inf, (1, 2)):  # what int() cannot take is a ValueError too
        assert _refused(check_int, bad, low=0).endswith(f"got {bad!r}")
    assert _refused(check_int, 0.5, low=1) == "ProbeConfig.value must be at least 1, got 0.5"  # compared as int 0


def test_check_int_accepts_its_bounds_and_none_when_optional():
    for value in (1, 100, True):
        _passes(check_int, value, 1, 100)
    _passes(check_int, 2.5, low=2)  # compared as int(2.5) == 2, as the configs always did
    _passes(check_int, None, low=1, optional=True)
    _passes(check_int, -(10 ** 30))  # no bounds: any integer


def test_check_number_refuses_nan_always_and_infinity_unless_asked():
    assert _refused(check_number, math.nan, low=0, finite=False) == "ProbeConfig.value must be >= 0, got nan"
    assert _refused(check_number, math.inf, low=0) == "ProbeConfig.value must be a finite number >= 0, got inf"
    assert _refused(check_number, -math.inf) == "ProbeConfig.value must be a finite number, got -inf"
    _passes(check_number, math.inf, low=0, finite=False)
    _refused(check_number, -math.inf, low=0, finite=False)  # infinity on a bounded side is out of range
    _refused(check_number, math.inf, 0, 1, finite=False)
    for bad in (None, "x", (1.0,)):
        assert _refused(check_number, bad, low=0).endswith(f"got {bad!r}")


def test_check_number_open_and_closed_bounds():
    assert _refused(check_number, 0, low=0, low_open=True, finite=False) == "ProbeConfig.value must be > 0, got 0"
    assert _refused(check_number, 0.0, low=0, low_open=True) == "ProbeConfig.value must be a finite number > 0, got 0.0"
    assert _refused(check_number, 1.0, -1, 1, high_open=True) == "ProbeConfig.value must be in [-1, 1), got 1.0"
    assert _refused(check_number, 0.0, 0, 10, low_open=True) == "ProbeConfig.value must be in (0, 10], got 0.0"
    assert _refused(check_number, 181, 0, 180, unit="degrees") == \
        "ProbeConfig.value must be in [0, 180] degrees, got 181"
    assert _refused(check_number, 2.0, high=1.5) == "ProbeConfig.value must be a finite number <= 1.5, got 2.0"
    assert _refused(check_number, 1.5, high=1.5, high_open=True) == \
        "ProbeConfig.value must be a finite number < 1.5, got 1.5"
    for value in (-1, -1.0, 0.999):
        _passes(check_number, value, -1, 1, high_open=True)
    for value in (1e-12, 10):
        _passes(check_number, value, 0, 10, low_open=True)
    _passes(check_number, "0.5", 0, 1)
    _passes(check_number, None, optional=True)
    assert _refused(check_number, math.inf, optional=True) == \
        "ProbeConfig.value must be a finite number or None, got inf"


def test_check_fraction():
    assert _refused(check_fraction, 1.5) == "ProbeConfig.value must be a fraction in [0, 1], got 1.5"
    assert _refused(check_fraction, -0.1) == "ProbeConfig.value must be a fraction in [0, 1], got -0.1"
    assert _refused(check_fraction, 0.0, low_open=True) == "ProbeConfig.value must be a fraction in (0, 1], got 0.0"
    assert _refused(check_fraction, 1, low_open=True, high_open=True) == \
        "ProbeConfig.value must be a fraction in (0, 1), got 1"
    assert "got nan" in _refused(check_fraction, math.nan)
    for value in (0, 0.0, 0.5, 1, 1.0):
        _passes(check_fraction, value)
    _passes(check_fraction, 1.0, low_open=True)
    _passes(check_fraction, 1e-9, low_open=True, high_open=True)


def test_check_choice():
    assert _refused(check_choice, "wgan", ("lsgan", "vanilla")) == \
        "ProbeConfig.value must be one of lsgan, vanilla, got 'wgan'"
    assert _refused(check_choice, None, ("a",)) == "ProbeConfig.value must be one of a, got None"
    _passes(check_choice, "vanilla", ("lsgan", "vanilla"))


def test_the_checks_load_nothing_but_the_standard_library():
    """facevision.common is the base layer: the checks load no numpy (commands build their parsers before it)."""
    code = "import sys, facevision.common.checks; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr

"""Field checks for the configuration dataclasses' ``__post_init__`` (standard library only).

Each reads ``config.<name>`` and raises ValueError with one line naming the class, the field and the value:
``check_int(self, "batch_size", low=1)`` -> ``"TrainConfig.batch_size must be at least 1, got 0"``. Bounds are
inclusive unless ``low_open`` / ``high_open``; ``optional`` lets None pass; ``unit`` ("px", "degrees") is
written after the bounds. Checks that relate two fields stay in the config.
"""
from __future__ import annotations

import math
from typing import Collection, NoReturn

__all__ = ["check_int", "check_number", "check_fraction", "check_choice"]


def _fail(config: object, name: str, must: str, value: object) -> NoReturn:
    raise ValueError(f"{type(config).__name__}.{name} must be {must}, got {value!r}")


def _show(bound: float) -> str:
    """A bound as messages write it: 1 and 1.0 both as ``1``."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_show(low)}, {_show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_show(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_show(high)}"
    return ""


def _tail(unit: str, optional: bool) -> str:
    return (f" {unit}" if unit else "") + (" or None" if optional else "")


def _within(value: object, low: float | None, high: float | None, low_open: bool, high_open: bool,
            finite: bool) -> bool:
    """``float(value)`` is a number (never NaN; never +-inf when ``finite``) within the bounds."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
    if math.isnan(x) or (finite and math.isinf(x)):
        return False
    if low is not None and not (x > low if low_open else x >= low):
        return False
    return high is None or (x < high if high_open else x <= high)


def check_int(config: object, name: str, low: int | None = None, high: int | None = None, *,
              optional: bool = False, unit: str = "") -> None:
    """``config.<name>`` in [low, high], compared as ``int(value)`` (2.5 counts as 2); None passes when
    ``optional``. A value ``int()`` cannot take is refused."""
    value = getattr(config, name)
    if optional and value is None:
        return
    try:
        number: int | None = int(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            must = f"in [{low}, {high}]"
        else:
            must = f"at least {low}" if low is not None else f"at most {high}" if high is not None else "an integer"
        _fail(config, name, must + _tail(unit, optional), value)


def check_number(config: object, name: str, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, finite: bool = True, optional: bool = False,
                 unit: str = "") -> None:
    """``config.<name>`` a number within the bounds. NaN is always refused, +-inf unless ``finite=False``
    (then an unbounded side lets infinity pass); None passes when ``optional``."""
    value = getattr(config, name)
    if optional and value is None:
        return
    if not _within(value, low, high, low_open, high_open, finite):
        bounds = _bounds(low, high, low_open, high_open)
        if finite and (low is None or high is None):
            must = f"a finite number {bounds}".rstrip()
        else:
            must = bounds or "a number"
        _fail(config, name, must + _tail(unit, optional), value)


def check_fraction(config: object, name: str, *, low_open: bool = False, high_open: bool = False) -> None:
    """``config.<name>`` a fraction in [0, 1] (ends excluded when ``low_open`` / ``high_open``)."""
    value = getattr(config, name)
    if not _within(value, 0.0, 1.0, low_open, high_open, finite=True):
        _fail(config, name, f"a fraction {_bounds(0, 1, low_open, high_open)}", value)


def check_choice(config: object, name: str, choices: Collection[object]) -> None:
    """``config.<name>`` one of ``choices``."""
    value = getattr(config, name)
    if value not in choices:
        _fail(config, name, f"one of {', '.join(map(str, choices))}", value)

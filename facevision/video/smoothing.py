"""Temporal smoothing of per-frame values (landmarks, pose angles, fit codes).

* causal (live): the One-Euro filter (Casiez, Roussel and Vogel, CHI 2012), element-wise on arrays: a low-pass
  whose cutoff rises with the signal's speed, so a still head stops jittering and a turning one lags little.
  Written here on numpy arrays because the PyPI implementations filter one scalar per object.
* offline (zero lag): a Savitzky-Golay fit over a centred window (:func:`scipy.signal.savgol_filter`).

Values are filtered in the units given; callers divide landmarks by the face size first so one setting fits
every face size (:mod:`facevision.video.runner`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facevision.common.checks import check_number

__all__ = ["OneEuroConfig", "OneEuroFilter", "savgol_smooth", "jitter"]


@dataclass(frozen=True)
class OneEuroConfig:
    """min_cutoff: Hz, the cutoff of a still signal (lower = smoother when still); beta: cutoff gain per unit of
    speed (units per second; higher = less lag when moving); d_cutoff: Hz, the cutoff of the speed estimate."""

    min_cutoff: float = 1.0
    beta: float = 0.5
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff"):
            check_number(self, name, low=0, low_open=True, finite=False)
        check_number(self, "beta", low=0, finite=False)


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * rate)


class OneEuroFilter:
    """Causal One-Euro filter of an array-valued signal sampled at ``rate`` Hz; ``filter(x)`` per frame.

    ``reset()`` forgets the past (a face lost and found again starts a new track)."""

    def __init__(self, rate: float, config: OneEuroConfig = OneEuroConfig()) -> None:
        if not rate > 0:
            raise ValueError(f"OneEuroFilter rate must be > 0 Hz, got {rate!r}")
        self.rate, self.config = float(rate), config
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @property
    def last(self) -> np.ndarray | None:
        """The last filtered value (None before the first)."""
        return None if self._x is None else self._x.copy()

    def filter(self, x: np.ndarray, unit: float = 1.0) -> np.ndarray:
        """The filtered value of the next sample ``x``; ``unit``: the speed that ``beta`` multiplies is measured
        in units of this (e.g. the face's size in px, so one setting fits every face size)."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        c = self.config
        dx = (x - self._x) * self.rate
        self._dx = self._dx + _alpha(c.d_cutoff, self.rate) * (dx - self._dx)
        a = _alpha(c.min_cutoff + c.beta * np.abs(self._dx) / float(unit), self.rate)
        self._x = self._x + a * (x - self._x)
        return self._x.copy()


def savgol_smooth(values: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    """(T, ...) values -> the same smoothed along axis 0 by a centred Savitzky-Golay fit (zero lag); a series
    shorter than ``window`` gets the longest odd window it has (returned as is below ``order + 2`` samples)."""
    from scipy.signal import savgol_filter

    v = np.asarray(values, np.float64)
    n = len(v)
    w = min(int(window), n if n % 2 else n - 1)
    if w <= order + 1:
        return v.copy()
    return savgol_filter(v, w, order, axis=0, mode="interp")


def jitter(values: np.ndarray, window: int = 9) -> float:
    """Mean frame-to-frame jitter of a (T, ...) series: the mean absolute residual to its Savitzky-Golay fit
    (``window``, order 2), i.e. what is left after removing the smooth motion. Units of ``values``."""
    v = np.asarray(values, np.float64)
    return float(np.abs(v - savgol_smooth(v, window)).mean()) if len(v) else 0.0

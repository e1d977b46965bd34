"""Text of float arrays in fixed-point notation, byte for byte what printf's ``%.Nf`` writes, made with numpy.

``fixed_rows(arr, "v", (4, 4, 4))`` is ``"".join("v %.4f %.4f %.4f\\n" % tuple(row) for row in arr)``, faster
(docs/meshing.md). Each value times 10**N rounded half-to-even is the printed integer ``q``, except within a few
units in the last place of a tie (``k + 0.5``), where Python formats the value and ``q`` is read back from its
text; ``q``'s digits are laid out in a character matrix, one row per line. Non-finite values and magnitudes of
2**52 / 10**N and above are left to Python entirely.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["fixed_rows"]

_POW10 = np.array([10 ** k for k in range(19)], dtype=np.int64)
_BIG = float(2 ** 52)


def _python_rows(arr: np.ndarray, prefix: str, decimals: Sequence[int]) -> str:
    """The reference: Python's own formatting, one call over all rows."""
    fmt = prefix + "".join(f" %.{d}f" for d in decimals) + "\n"
    return (fmt * len(arr)) % tuple(arr.ravel().tolist())


def _printed_integers(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """|round(x * 10**d)| as printed by ``%.{d}f`` (int64; ``d`` broadcasts over ``x``), exact for finite
    |x| * 10**d < 2**52."""
    y = x * (10.0 ** d)
    q = np.rint(y)
    tie = np.abs(y - np.floor(y) - 0.5) <= 2.0 * np.spacing(np.abs(y))  # near k + 0.5: the exact value decides
    if tie.any():
        dd = np.broadcast_to(d, x.shape)[tie].tolist()
        q[tie] = [float(f"{v:.{k}f}".replace(".", "")) for v, k in zip(x[tie].tolist(), dd)]
    return np.abs(q).astype(np.int64)


def fixed_rows(arr: np.ndarray, prefix: str, decimals: Sequence[int]) -> str:
    """One line per row of ``arr`` (n, c): ``prefix``, then each value as `` %.{decimals[j]}f``, then a newline;
    exactly the text of Python's ``%`` formatting (see the module docstring). decimals: 1 to 15 per column."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(decimals):
        raise ValueError(f"fixed_rows: expected (n, {len(decimals)}) values, got {arr.shape}")
    if arr.size == 0:
        return "" if len(arr) == 0 else (prefix + "\n") * len(arr)
    d = np.array([int(k) for k in decimals], dtype=np.int64)
    if not ((d >= 1) & (d <= 15)).all() or not np.isfinite(arr).all() or np.abs(arr).max() >= _BIG / 10.0 ** d.max():
        return _python_rows(arr, prefix, decimals)
    n, c = arr.shape
    most = int(d.max())
    q = _printed_integers(arr, d) * _POW10[most - d]  # every column with `most` decimals (extra ones unprinted)
    whole = q // _POW10[most]
    n_digits = np.ones(q.shape, np.int64)  # digits before the point
    while (whole >= _POW10[int(n_digits.max())]).any():
        n_digits += whole >= _POW10[int(n_digits.max())]
    width = int(n_digits.max())
    # per value: " ", sign, `width` integer digits (leading ones unprinted), ".", `most` decimals
    cells = np.empty((n, c, 3 + width + most), np.uint8)
    shown = np.ones(cells.shape, bool)
    cells[..., 0] = ord(" ")
    cells[..., 1] = ord("-")
    shown[..., 1] = np.signbit(arr)  # printf prints "-" for every negative value, -0.0 and -0.00001 included
    cells[..., 2 + width] = ord(".")
    shown[..., 3 + width:] = np.arange(most) < d[:, None]
    for j in range(most + width):  # least significant digit first; division by a scalar is fast in numpy
        q, digit = np.divmod(q, 10)
        col = 2 + width + most - j if j < most else 1 + width - (j - most)
        cells[..., col] = digit + ord("0")
        if j >= most:
            shown[..., col] = n_digits > j - most
    head = np.frombuffer(prefix.encode("ascii"), np.uint8)
    lines = np.concatenate([np.broadcast_to(head, (n, len(head))), cells.reshape(n, -1),
                            np.full((n, 1), ord("\n"), np.uint8)], axis=1)
    keep = np.concatenate([np.ones((n, len(head)), bool), shown.reshape(n, -1), np.ones((n, 1), bool)], axis=1)
    return lines[keep].tobytes().decode("ascii")

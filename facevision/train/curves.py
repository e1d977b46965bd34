"""``curves.png`` of a training run: losses and validation metrics per epoch, drawn from ``log.csv``.

Drawn with OpenCV and numpy (no plotting library). The whole picture is redrawn from the CSV after
every epoch, so it is always complete, also after ``--resume`` (the CSV keeps every finished epoch).
Panels (each only if its columns are in the log): generator loss, discriminator loss, map L1 terms,
gradient L1 terms + mask BCE (train means per epoch), then validation depth MAE (crop px),
correspondence MAE, mask IoU and the validation score that picks ``best.safetensors`` (lower = better).
"""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facevision.common.checks import check_int
from facevision.face.images import atomic_write_png

__all__ = ["CurvesConfig", "PANELS", "read_log", "draw_curves", "write_curves", "plot_log"]

# (title, columns): one panel each
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("generator loss (train)", ("loss_g",)),
    ("discriminator loss (train)", ("loss_d",)),
    ("map L1 (train)", ("depth_l1", "corr_l1")),
    ("gradient L1, mask BCE (train)", ("depth_grad", "corr_grad", "mask_bce")),
    ("val depth MAE (crop px)", ("val_depth_mae_px",)),
    ("val correspondence MAE", ("val_corr_mae",)),
    ("val mask IoU", ("val_mask_iou",)),
    ("val score (lower = better)", ("val_score",)),
)
_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14))  # RGB
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 10, 24, 26  # a panel's margins around its plot area (px)
_MIN_PANEL = (_LEFT + _RIGHT + 13, _TOP + _BOTTOM + 1)  # the smallest panel with a plot area


@dataclass(frozen=True)
class CurvesConfig:
    """panel: (width, height) of one panel in px (at least what its margins take); columns: panels per row.
    Checked when built (ValueError naming the field)."""

    panel: tuple[int, int] = (360, 240)
    columns: int = 4

    def __post_init__(self) -> None:
        if len(self.panel) != 2 or int(self.panel[0]) < _MIN_PANEL[0] or int(self.panel[1]) < _MIN_PANEL[1]:
            raise ValueError(f"CurvesConfig.panel must be (width, height) of at least {_MIN_PANEL} px, got {self.panel!r}")
        check_int(self, "columns", low=1)


def read_log(path: str | Path) -> dict[str, np.ndarray]:
    """``log.csv`` -> column name -> float array (NaN where a value is missing or not a number)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = list(rows[0].keys()) if rows else []

    def num(v: str | None) -> float:
        try:
            return float(v) if v not in (None, "") else float("nan")
        except ValueError:
            return float("nan")

    return {n: np.array([num(r.get(n)) for r in rows], dtype=np.float64) for n in names}


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.4, colour=(0, 0, 0)) -> None:
    cv2.putText(img, text, org, _FONT, scale, colour, 1, cv2.LINE_AA)


def _panel(title: str, x: np.ndarray, series: dict[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """One line chart: (H, W, 3) uint8 RGB, white, title on top, min / mid / max ticks on y, epochs on x."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = _LEFT, _RIGHT, _TOP, _BOTTOM
    _text(img, title, (left, 16), 0.42)
    x0, x1, y0, y1 = left, w - right, top, h - bottom
    cv2.rectangle(img, (x0, y0), (x1, y1), (160, 160, 160), 1)
    values = np.concatenate([v[np.isfinite(v)] for v in series.values()]) if series else np.zeros(0)
    if values.size == 0 or x.size == 0:
        _text(img, "no data yet", (x0 + 10, (y0 + y1) // 2))
        return img
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    ex0, ex1 = float(np.nanmin(x)), float(np.nanmax(x))
    ex1 = ex1 if ex1 > ex0 else ex0 + 1.0

    def px(xv: np.ndarray, yv: np.ndarray) -> np.ndarray:
        cx = x0 + 6 + (xv - ex0) / (ex1 - ex0) * (x1 - x0 - 12)
        cy = y1 - (yv - lo) / (hi - lo) * (y1 - y0)
        return np.column_stack([cx, cy])

    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        y = int(round(y1 - frac * (y1 - y0)))
        cv2.line(img, (x0, y), (x1, y), (225, 225, 225), 1)
        _text(img, f"{v:.3g}", (4, min(max(y + 4, y0 + 8), y1)), 0.36)
    for e in sorted({ex0, round((ex0 + ex1) / 2), float(np.nanmax(x))}):
        cx = int(round(px(np.array([e]), np.array([lo]))[0, 0]))
        _text(img, f"{e:g}", (cx - 6, h - 10), 0.36)
    _text(img, "epoch", (4, h - 10), 0.36, (90, 90, 90))
    for k, (name, yv) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        ok = np.isfinite(yv) & np.isfinite(x)
        pts = np.round(px(x[ok], yv[ok])).astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, (int(p[0]), int(p[1])), 3, colour, -1, cv2.LINE_AA)
        if len(series) > 1:
            ly = y0 + 14 + 14 * k
            cv2.line(img, (x1 - 118, ly - 4), (x1 - 102, ly - 4), colour, 2)
            _text(img, name, (x1 - 98, ly), 0.36)
    return img


def draw_curves(log: dict[str, np.ndarray], config: CurvesConfig = CurvesConfig()) -> np.ndarray:
    """The curves picture (H, W, 3) uint8 RGB of a read log (:func:`read_log`); panels without columns are left out."""
    x = log.get("epoch", np.zeros(0))
    panels = [_panel(title, x, {c: log[c] for c in cols}, config.panel)
              for title, cols in PANELS if any(c in log for c in cols)]
    if not panels:
        panels = [_panel("no losses in the log", x, {}, config.panel)]
    w, h = config.panel
    ncols = min(config.columns, len(panels))
    nrows = -(-len(panels) // ncols)
    sheet = np.full((nrows * h, ncols * w, 3), 255, np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, ncols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = p
    return sheet


def write_curves(log_csv: str | Path, out_png: str | Path, config: CurvesConfig = CurvesConfig()) -> Path:
    """Draw ``log_csv`` into ``out_png`` (atomic write); raises OSError / ValueError on failure."""
    return atomic_write_png(out_png, draw_curves(read_log(log_csv), config))


def plot_log(log_csv: str | Path, out_png: str | Path) -> bool:
    """:func:`write_curves` for the training loop: a failure is one warning line on stderr, never the end of
    training (the picture is redrawn next epoch). Returns whether it was written."""
    try:
        write_curves(log_csv, out_png)
        return True
    except (OSError, ValueError, csv.Error) as exc:
        print(f"facevision train: warning: {out_png}: cannot draw the curves ({exc})", file=sys.stderr, flush=True)
        return False

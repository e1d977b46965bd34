"""Pictures people look at (issue #13): labelled preview and validation grids, training curves."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from facevision.face.images import read_png
from facevision.maps.visualize import image_grid, label_strip
from facevision.train.curves import PANELS, CurvesConfig, draw_curves, plot_log, read_log, write_curves


def _dark_columns(strip: np.ndarray, width: int, n: int, pad: int = 2) -> list[int]:
    """Number of dark (text) pixels in each column's part of a label strip."""
    return [int((strip[:, pad + j * (width + pad):pad + j * (width + pad) + width] < 128).sum()) for j in range(n)]


def test_image_grid_labels_every_column():
    tiles = [[np.full((64, 64, 3), 200, np.uint8)] * 3]
    plain = image_grid(tiles)
    named = image_grid(tiles, labels=["input", "depth", "a much longer label than fits"])
    strip = label_strip(["input", "depth", "a much longer label than fits"], 64)
    assert named.shape == (plain.shape[0] + strip.shape[0], plain.shape[1], 3)
    assert np.array_equal(named[strip.shape[0]:], plain) and np.array_equal(named[:strip.shape[0]], strip)
    assert all(n > 10 for n in _dark_columns(strip, 64, 3))  # text in every column, also the shrunk long one
    assert not np.array_equal(label_strip(["input"], 64), label_strip(["depth"], 64))


def test_preview_sheet_names_its_panels():
    from facevision.predict.render import RenderConfig, preview_labels, preview_sheet
    from support.synthetic import render_reference
    from meshing import mesh_from_maps

    face = render_reference(64, 10.0, 0.0, 0.0)
    mesh = mesh_from_maps(face.depth, face.mask)
    grey = np.full((64, 64, 3), 120, np.uint8)
    cfg = RenderConfig(tile=96)
    sheet = preview_sheet(np.full((80, 90, 3), 90, np.uint8), grey, grey, grey, mesh, (5, 5, 69, 69), None, cfg)
    names = preview_labels(cfg)
    assert len(names) == 6 and names[0].startswith("photo") and "60" in names[-1]
    strip = label_strip(names, 96)
    assert np.array_equal(sheet[:strip.shape[0]], strip) and sheet.shape[1] == 6 * 98 + 2
    assert preview_sheet(grey, grey, grey, grey, config=cfg, labels=False).shape[0] == 96 + 4


def test_preview_turns_the_mesh_against_the_face_yaw():
    from facevision.predict.render import RenderConfig, preview_labels, render_mesh, view_angles
    from support.synthetic import render_reference
    from meshing import mesh_from_maps

    cfg = RenderConfig(tile=64)
    assert view_angles(cfg, 0.0) == [0.0, 60.0] and view_angles(cfg, -40.0) == [0.0, 60.0]
    assert view_angles(cfg, 50.0) == [0.0, -60.0] and preview_labels(cfg, face_yaw_deg=50.0)[-1] == "mesh, -60 deg"
    # a face turned 50 degrees to the image right (its maps' mesh covers the seen side): turned on by 60 more, the
    # render sees that side edge-on from behind (few pixels, darker under the headlight); turned back by 60, from
    # the front
    face = render_reference(64, 50.0, 0.0, 0.0)
    mesh = mesh_from_maps(face.depth, face.mask)
    lit = lambda yaw: render_mesh(mesh.vertices, mesh.faces, 64, yaw, cfg).astype(float)[..., 0]  # noqa: E731
    on, back = lit(60.0), lit(view_angles(cfg, 50.0)[1])
    assert (back > 0).sum() > 1.5 * (on > 0).sum() and back[back > 0].mean() > on[on > 0].mean() + 15


def _write_log(path: Path, epochs: int, columns: list[str] | None = None) -> None:
    cols = columns or ["epoch", "step"] + [c for _, cs in PANELS for c in cs] + ["lr"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for e in range(1, epochs + 1):
            w.writerow({c: (e if c == "epoch" else 1.0 / (e + k)) for k, c in enumerate(cols)})


def test_curves_draw_one_panel_per_figure_and_change_with_the_log(tmp_path):
    _write_log(tmp_path / "log.csv", 3)
    cfg = CurvesConfig()
    img = draw_curves(read_log(tmp_path / "log.csv"), cfg)
    w, h = cfg.panel
    assert img.shape == (2 * h, 4 * w, 3)  # 8 panels: 4 losses, 4 validation figures
    for r in range(2):
        for c in range(4):
            panel = img[r * h:(r + 1) * h, c * w:(c + 1) * w]
            coloured = (panel.max(axis=2).astype(int) - panel.min(axis=2)) > 80
            assert coloured.sum() > 50, (r, c)  # a curve was drawn in every panel
    path = write_curves(tmp_path / "log.csv", tmp_path / "curves.png")
    assert np.array_equal(read_png(path), img)
    _write_log(tmp_path / "log.csv", 4)
    assert not np.array_equal(draw_curves(read_log(tmp_path / "log.csv")), img)


def test_curves_skip_missing_columns_and_never_stop_training(tmp_path, capsys):
    _write_log(tmp_path / "log.csv", 1, ["epoch", "loss_g", "val_score"])  # one epoch, two panels
    img = draw_curves(read_log(tmp_path / "log.csv"))
    assert img.shape[1] == 2 * CurvesConfig().panel[0]
    assert plot_log(tmp_path / "missing.csv", tmp_path / "curves.png") is False
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "curves.png" in err[0] and "warning" in err[0]


@pytest.mark.parametrize("rows", [0, 1])
def test_curves_of_an_empty_or_short_log(tmp_path, rows):
    _write_log(tmp_path / "log.csv", rows)
    assert draw_curves(read_log(tmp_path / "log.csv")).ndim == 3

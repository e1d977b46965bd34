"""3D profiling (large-pose views) against analytic ground truth: a rotated ellipsoid cap, identity views,
self-occlusion, label invariants, and `facevision prepare profile` on a toy dataset."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facevision.face.codecs import DEPTH_BASE_PX
from data_prep.dataset_format import Sample, read_manifest, read_sample
from data_prep.profile import (ProfileConfig, ProfileError, ProfileRunConfig, harmonic_fill, lattice_faces,
                               lift_surface, profile_sample, render_view, rotation_matrix, view_angles)
from facevision.face.rasterize import rasterize
from data_prep.toy import make_toy_dataset, toy_sample
from facevision.cli import main as cli_main

S = 128
CENTER = np.array([63.4, 65.2, DEPTH_BASE_PX])  # ellipsoid centre (x col, y row, z depth), crop px
RADII = np.array([34.0, 42.0, 26.0])           # (rx, ry, rz) px
CAP = 0.95                                     # the face is the cap x^2 + y^2 < CAP (normalized coords)
# exact geometry: no recentring/rescaling, no mask opening
EXACT = ProfileConfig(recenter=False, rescale=False, open_mask_px=0)


def ellipsoid_sample() -> Sample:
    """Front of an ellipsoid seen from the camera: depth = CENTER z + rz * h, corr = (0.5 + x/2, 0.5 - y/2, h)."""
    rows, cols = np.mgrid[0:S, 0:S].astype(np.float64)
    x, y = (cols - CENTER[0]) / RADII[0], (rows - CENTER[1]) / RADII[1]
    mask = x**2 + y**2 < CAP
    h = np.sqrt(np.clip(1 - x**2 - y**2, 0, None))
    depth = np.where(mask, CENTER[2] + RADII[2] * h, 0).astype(np.float32)
    corr = np.where(mask[..., None], np.stack([0.5 + x / 2, 0.5 - y / 2, h], -1), 0).astype(np.float32)
    image = np.where(mask[..., None], (corr * 255).astype(np.uint8), np.uint8(40))
    return Sample(image=image, depth=depth, corr=corr, mask=mask)


def ellipsoid_truth(yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic orthographic render of the ellipsoid rotated about its centre: (z, corr, face mask).

    A pixel is face where the nearest intersection of its viewing ray with the whole rotated ellipsoid
    lies on the front cap (the back half of the head, not in the sample, would hide everything behind it).
    """
    rows, cols = np.mgrid[0:S, 0:S].astype(np.float64)
    r = rotation_matrix(yaw, pitch)
    d0 = np.stack([cols - CENTER[0], rows - CENTER[1], np.zeros_like(cols)], -1)
    a, b = d0 @ r, r[2]              # source-frame point = a + t * b for the ray at depth CENTER z + t
    a, b = a / RADII, b / RADII
    qa, qb, qc = (b**2).sum(), 2 * (a * b).sum(-1), (a**2).sum(-1) - 1
    disc = qb**2 - 4 * qa * qc
    t = (-qb + np.sqrt(np.clip(disc, 0, None))) / (2 * qa)  # the larger root: nearest to the camera
    p = a + t[..., None] * b
    face = (disc > 0) & (p[..., 2] >= 0) & (p[..., 0] ** 2 + p[..., 1] ** 2 < CAP)
    corr = np.stack([0.5 + p[..., 0] / 2, 0.5 - p[..., 1] / 2, p[..., 2]], -1)
    return CENTER[2] + t, corr, face


def test_rotation_sign_conventions() -> None:
    nose = np.array([0.0, 0.0, 1.0])  # +z = towards the camera
    assert np.allclose(rotation_matrix(90, 0) @ nose, [1, 0, 0])          # yaw > 0: nose to the image right
    assert (rotation_matrix(0, 30) @ nose)[1] < 0                          # pitch > 0: nose up (rows go down)
    chin = np.array([0.0, 1.0, 0.0])
    assert (rotation_matrix(0, 30) @ chin)[2] > 0                          # ... and the chin comes forward
    r = rotation_matrix(37, -21)
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1)


@pytest.mark.parametrize("yaw, pitch", [(35.0, 0.0), (-60.0, 0.0), (30.0, 20.0)])
def test_rotated_ellipsoid_matches_analytic_render(yaw: float, pitch: float) -> None:
    view = profile_sample(ellipsoid_sample(), yaw, pitch, EXACT, center=CENTER)
    z_true, corr_true, face_true = ellipsoid_truth(yaw, pitch)
    inter = view.mask & face_true
    iou = inter.sum() / (view.mask | face_true).sum()
    assert iou > 0.95, iou
    # depth is re-based; the offset to the analytic depth is one constant
    diff = view.depth[inter] - z_true[inter]
    err = np.abs(diff - np.median(diff))
    assert np.median(err) < 0.02 and np.percentile(err, 99) < 0.2, (np.median(err), np.percentile(err, 99))
    cerr = np.abs(view.corr[inter] - corr_true[inter]).max(-1)
    assert np.median(cerr) < 0.001 and np.percentile(cerr, 99) < 0.005, (np.median(cerr), np.percentile(cerr, 99))
    assert np.isclose(view.depth[view.mask].min(), DEPTH_BASE_PX)
    # the default mask opening only removes label pixels, and few
    opened = profile_sample(ellipsoid_sample(), yaw, pitch, ProfileConfig(recenter=False, rescale=False),
                            center=CENTER)
    assert (opened.mask <= view.mask).all() and opened.mask.sum() > 0.98 * view.mask.sum()


def test_zero_rotation_returns_the_input() -> None:
    for sample in (ellipsoid_sample(), toy_sample(S, np.random.default_rng(3))):
        view = profile_sample(sample, 0.0, 0.0)  # default config: recentring, rescaling, anchoring all on
        assert np.array_equal(view.mask, sample.mask)
        assert np.array_equal(view.image, sample.image)
        assert np.abs(view.corr - sample.corr).max() < 1e-6
        rebased = np.where(sample.mask, sample.depth - sample.depth[sample.mask].min() + DEPTH_BASE_PX, 0)
        assert np.abs(view.depth - rebased).max() < 1e-4


def test_far_side_self_occludes_at_large_yaw() -> None:
    """At yaw 80 (nose to +x) the face's image-right side turns away: its corr (u > 0.65) leaves the labels."""
    sample = ellipsoid_sample()
    far = sample.mask & (sample.corr[..., 0] > 0.65)
    assert far.sum() > 500
    view = profile_sample(sample, 80.0, 0.0, EXACT, center=CENTER)
    assert view.mask.sum() > 500
    assert not (view.mask & (view.corr[..., 0] > 0.65)).any()
    # ... while the near side (u < 0.35), squeezed into a sliver before, now fills most of the face
    assert (view.corr[..., 0][view.mask] < 0.35).mean() > 0.3


def test_labels_only_where_the_face_is_the_nearest_surface() -> None:
    """Face = the left half of a dome; the invented right half swings in front of it at yaw -60."""
    sample = ellipsoid_sample()
    rows, cols = np.mgrid[0:S, 0:S]
    sample.mask &= cols < CENTER[0] - 5
    sample.depth[~sample.mask] = 0
    sample.corr[~sample.mask] = 0
    surf = lift_surface(sample, EXACT, center=CENTER)
    view = render_view(surf, -60.0, 0.0, EXACT)
    # a render of the face triangles alone (all three vertices face) reaches pixels the label leaves out
    from data_prep.profile import _posed_vertices

    p, _, _, _ = _posed_vertices(surf, -60.0, 0.0, EXACT)
    face_tris = surf.faces[surf.face[surf.faces].all(1)]
    z_face, _, cover_face = rasterize(p, face_tris, S, S)
    z_all, _, _ = rasterize(p, surf.faces, S, S)
    hidden = cover_face & (z_all > z_face + 1e-3)
    assert hidden.sum() > 50
    assert not (view.mask & hidden).any()
    assert view.mask.sum() > 50 and (view.mask <= cover_face).all()


def test_label_invariants_on_random_views() -> None:
    rng = np.random.default_rng(7)
    for i in range(3):
        sample = toy_sample(S, rng)
        surf = lift_surface(sample)
        for yaw, pitch in ((rng.uniform(20, 90), rng.uniform(-30, 30)), (-rng.uniform(20, 90), rng.uniform(-30, 30))):
            v = render_view(surf, yaw, pitch)
            assert v.image.dtype == np.uint8 and v.image.shape == (S, S, 3)
            assert v.mask.dtype == bool and v.mask.sum() >= 50
            assert v.corr.min() >= 0 and v.corr.max() <= 1
            assert (v.corr[~v.mask] == 0).all() and (v.depth[~v.mask] == 0).all()
            assert (v.depth[v.mask] >= DEPTH_BASE_PX - 1e-5).all()
            assert np.isclose(v.depth[v.mask].min(), DEPTH_BASE_PX)
            # anchored background: the crop stays covered (no black holes from the rotation)
            assert (v.image.sum(-1) > 0).mean() > 0.99
            # recentred: the face box centre stays near the source's
            src = np.argwhere(sample.mask).mean(0)
            assert np.abs(np.argwhere(v.mask).mean(0) - src).max() < 20


def test_lifted_surface_is_continuous() -> None:
    sample = toy_sample(S, np.random.default_rng(1))
    z = lift_surface(sample).vertices[:, 2].reshape(S, S)
    assert np.isfinite(z).all()
    assert np.array_equal(z[sample.mask], sample.depth[sample.mask].astype(np.float64))
    # no cliff at the face boundary: steps there are no larger than the face's own steepest steps
    step = np.maximum(np.abs(np.diff(z, axis=0)).max(), np.abs(np.diff(z, axis=1)).max())
    inside = np.abs(np.diff(np.where(sample.mask, z, np.nan), axis=1))
    assert step <= np.nanmax(inside) + 1e-6


def test_harmonic_fill_recovers_a_harmonic_function() -> None:
    rows, cols = np.mgrid[0:40, 0:50].astype(np.float64)
    f = cols**2 - rows**2 + 3 * cols  # discrete-harmonic (5-point Laplacian is exactly 0)
    known = np.ones(f.shape, bool)
    known[10:30, 12:40] = False
    assert np.abs(harmonic_fill(f, known) - f).max() < 1e-8
    both = harmonic_fill(np.stack([f, 2 * f + 1], -1), known)  # several fields share one solve
    assert np.abs(both[..., 1] - (2 * f + 1)).max() < 1e-8


def test_lattice_faces_keep_one_face_triangle_per_three_corner_cell() -> None:
    from meshing.lift import triangulate_grid

    rows, cols = np.mgrid[0:20, 0:20]
    mask = (rows + 0.7 * cols < 18) & (rows > 2)
    faces = lattice_faces(mask)
    assert len(faces) == 2 * 19 * 19
    all_face = faces[mask.ravel()[faces].all(1)]
    assert len(all_face) == len(triangulate_grid(mask))  # same as the foreground-only lattice of meshing


def test_empty_mask_raises() -> None:
    sample = toy_sample(64, np.random.default_rng(0))
    sample.mask[:] = False
    with pytest.raises(ProfileError):
        lift_surface(sample)


def test_view_angles_are_deterministic_and_favour_large_poses() -> None:
    cfg = ProfileRunConfig(views=6, min_yaw=20, max_yaw=90, max_pitch=30, seed=4)
    angles = [view_angles("Some_One_0001", k, cfg) for k in range(6)]
    assert angles == [view_angles("Some_One_0001", k, cfg) for k in range(6)]
    assert angles != [view_angles("Some_One_0002", k, cfg) for k in range(6)]
    yaws = np.array([a[0] for a in angles])
    assert ((np.abs(yaws) >= 20) & (np.abs(yaws) <= 90)).all()
    assert (np.sign(yaws[1:]) != np.sign(yaws[:-1])).all()  # both sides
    assert all(abs(a[1]) <= 30 for a in angles)


def test_cli_profiles_a_toy_dataset(tmp_path: Path) -> None:
    src, out = tmp_path / "toy", tmp_path / "toy_lp"
    assert cli_main(["prepare", "toy", "-o", str(src), "--count", "6", "--size", "96"]) == 0
    source = read_manifest(src)
    args = ["prepare", "profile", str(src), "-o", str(out), "--views", "2", "--no-progress"]
    assert cli_main(args + ["--workers", "2"]) == 0
    m = read_manifest(out)
    assert m["size"] == 96 and m["label_source"] == "synthetic+profile"
    assert m["correspondence_space"] == source["correspondence_space"]
    assert len(m["samples"]) == 12
    split_of = {s["id"]: s["split"] for s in source["samples"]}
    assert m["split_counts"] == {k: 2 * v for k, v in source["split_counts"].items()}
    for s in m["samples"]:
        assert s["id"] == f"{s['profile_of']}_lp{s['view']}"
        assert s["split"] == split_of[s["profile_of"]] and s["identity"] == s["profile_of"]
        assert 20 <= abs(s["yaw"]) <= 90 and abs(s["pitch"]) <= 30
        v = read_sample(out, s["id"])
        assert v.image.shape == (96, 96, 3) and v.mask.sum() > 0
    # resumable: a rerun renders nothing; removing one view's mask re-renders just that view
    (out / "samples" / m["samples"][0]["id"] / "mask.png").unlink()
    summary_path = out / "manifest.json"
    assert cli_main(args + ["--workers", "1"]) == 0
    assert json.loads(summary_path.read_text())["summary"]["rendered_this_run"] == 1
    # originals linked in on request; other angle settings are refused for the same folder
    assert cli_main(args + ["--workers", "1", "--include-originals"]) == 0
    m = read_manifest(out)
    assert len(m["samples"]) == 18 and sum("profile_of" not in s for s in m["samples"]) == 6
    assert read_sample(out, source["samples"][0]["id"]).mask.sum() > 0
    assert cli_main(args + ["--max-yaw", "60"]) == 2


def test_profile_dataset_keeps_going_past_a_bad_sample(tmp_path: Path) -> None:
    from data_prep.profile import profile_dataset

    src = tmp_path / "toy"
    make_toy_dataset(src, count=3, size=64, seed=1)
    first = read_manifest(src)["samples"][0]["id"]
    (src / "samples" / first / "depth.png").write_bytes(b"not a png")
    summary = profile_dataset(src, tmp_path / "lp", ProfileRunConfig(views=2, workers=1, progress=False))
    assert summary["failed"] == 2 and summary["views"] == 4
    assert all(k.startswith(first) for k in summary["failures"])


def ellipsoid_grid(n: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ellipsoid's front cap as an n x n grid of 3D points (the way a 3DMM's face is kept): points (crop px,
    z larger = closer), triangles, and each point's code (the sample's corr convention)."""
    from facevision.face.grid import grid_triangles

    i, j = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    x, y = i * np.sqrt(CAP), j * np.sqrt(CAP)  # i: left to right, j: top to bottom; the square holds the cap
    h = np.sqrt(np.clip(1 - x**2 - y**2, 0, None))
    pts = np.stack([CENTER[0] + RADII[0] * x, CENTER[1] + RADII[1] * y, CENTER[2] + RADII[2] * h], -1)
    code = np.stack([0.5 + x / 2, 0.5 - y / 2, h], -1)
    return pts.reshape(-1, 3) + [0.0, 0.0, 17.0], grid_triangles(n), code.reshape(-1, 3)  # any z origin


def test_face_model_labels_show_what_the_photo_hid() -> None:
    """With the whole 3D face kept (3DDFA labels), a view's labels are the exact render of the turned face,
    including the side that faced away in the photo: at yaw 75 they match the analytic render, while labels
    from the visible depth map lose the part that was squeezed into the rim."""
    from data_prep.profile import align_face_model

    sample = ellipsoid_sample()
    pts, tri, code = ellipsoid_grid()
    model = align_face_model(sample, pts, tri, code)
    assert abs(np.median(model.points[:, 2] - pts[:, 2]) + 17.0) < 0.05  # moved onto the sample's depth frame
    z_true, corr_true, face_true = ellipsoid_truth(75.0, 10.0)
    face_true &= np.abs(corr_true[..., 0] - 0.5) < 0.5 * np.sqrt(CAP) * 0.97  # the grid's square, not the cap
    face_true &= np.abs(corr_true[..., 1] - 0.5) < 0.5 * np.sqrt(CAP) * 0.97
    view = render_view(lift_surface(sample, EXACT, CENTER, model=model), 75.0, 10.0, EXACT)
    inter = view.mask & face_true
    assert inter.sum() > 0.97 * face_true.sum(), (inter.sum(), face_true.sum())
    diff = view.depth[inter] - z_true[inter]
    err = np.abs(diff - np.median(diff))
    assert np.percentile(err, 99) < 0.3, np.percentile(err, 99)
    assert np.percentile(np.abs(view.corr[inter] - corr_true[inter]).max(-1), 99) < 0.01
    from_depth = profile_sample(sample, 75.0, 10.0, EXACT, center=CENTER)
    assert from_depth.mask.sum() < view.mask.sum()  # the depth map's labels miss part of the turned face


def test_face_model_points_must_cover_the_sample() -> None:
    from data_prep.profile import align_face_model

    pts, tri, code = ellipsoid_grid()
    with pytest.raises(ProfileError, match="do not cover"):
        align_face_model(ellipsoid_sample(), pts + [200.0, 0.0, 0.0], tri, code)


def test_profile_configs_refuse_bad_values_and_the_command_names_the_flag(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match=r"ProfileConfig\.anchor_level must be > 0, got 0"):
        ProfileConfig(anchor_level=0)
    with pytest.raises(ValueError, match=r"ProfileRunConfig\.views must be at least 1, got 0"):
        ProfileRunConfig(views=0)
    with pytest.raises(ValueError, match=r"min_yaw 50, max_yaw 40"):
        ProfileRunConfig(min_yaw=50, max_yaw=40)
    assert cli_main(["prepare", "profile", str(tmp_path / "src"), "-o", str(tmp_path / "lp"), "--max-pitch", "95"]) == 2
    assert capsys.readouterr().err.strip() == "facevision prepare: error: --max-pitch must be in [0, 90], got 95.0"
    assert not (tmp_path / "lp").exists()

"""The 3DDFA_V2 labeler: regressor file, face-model files, roi rules, pose, grid rendering, label files, the
dataset's reference face; with the real 3DDFA files ($FACEVISION_TDDFA_DIR, never copied into the repository)
the regressor itself, mirror invariance, the dense round trip, ``prepare lfw`` and the AFLW2000-3D benchmark."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_prep.dataset_format import DatasetFormatError, check_same_space, read_label_fit, write_label_fit
from data_prep.label_tddfa import _to_photo, pose_from_params, render_grid_labels, roi_from_box, roi_from_landmarks
from data_prep.tddfa_files import FILES, TddfaFiles, TddfaFilesError, load_tddfa_files
from facevision.face.grid import GRID, grid_triangles
from facevision.cli import main as cli_main

AFLW_ENV = "FACEVISION_AFLW2000_ROOT"


# ----------------------------------------------------------------------------- regressor file
def _random_regressor():
    import torch

    from data_prep.tddfa_net import TddfaRegressor

    torch.manual_seed(0)
    net = TddfaRegressor()
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode really uses them
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


def _save(path: Path, state: dict) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_regressor_loads_from_safetensors_and_matches_the_model(tmp_path):
    import torch

    from data_prep.tddfa_net import INPUT_SIZE, load_regressor

    net = _random_regressor()
    state = dict(net.state_dict())
    state["fc_lm.weight"] = torch.zeros(136, 512)  # the real file's auxiliary head: ignored
    loaded = load_regressor(_save(tmp_path / "w.safetensors", state))
    assert not loaded.training
    x = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = net(x), loaded(x)
    assert got.shape == (2, 62)
    assert torch.allclose(got, want, atol=1e-6) and want.abs().max() > 1e-3


def test_regressor_file_errors_name_the_file(tmp_path):
    import torch

    from data_prep.tddfa_net import RegressorFileError, load_regressor

    good = dict(_random_regressor().state_dict())
    wrong = _save(tmp_path / "wrong_shape.safetensors", {**good, "fc_param.weight": torch.zeros(61, 512)})
    with pytest.raises(RegressorFileError, match="fc_param.weight") as exc:
        load_regressor(wrong)
    assert str(wrong) in str(exc.value)
    missing = _save(tmp_path / "missing.safetensors", {k: v for k, v in good.items() if k != "dw6.conv_sep.weight"})
    with pytest.raises(RegressorFileError, match="missing.*dw6.conv_sep.weight") as exc:
        load_regressor(missing)
    assert str(missing) in str(exc.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"a pickle or anything else, not safetensors")
    with pytest.raises(RegressorFileError, match="not a readable safetensors") as exc:
        load_regressor(junk)
    assert str(junk) in str(exc.value)
    with pytest.raises(RegressorFileError, match="not found"):
        load_regressor(tmp_path / "absent.safetensors")


def test_tddfa_folder_errors_name_the_missing_file(tmp_path):
    with pytest.raises(TddfaFilesError, match="not found") as exc:
        load_tddfa_files(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(exc.value)
    (tmp_path / FILES["weights"]).write_bytes(b"")
    with pytest.raises(TddfaFilesError, match="tddfa_v2_param_mean_std_62d.npz: missing"):
        load_tddfa_files(tmp_path)
    # every file present, one array of the wrong shape: the error names that array's file
    n = GRID * GRID
    np.savez(tmp_path / FILES["param_stats"], mean=np.zeros(62), std=np.ones(62))
    np.savez(tmp_path / FILES["grid_model"], mu=np.zeros(3 * n), w_shp=np.zeros((3 * n, 39)),
             w_exp=np.zeros((3 * n, 10)))
    np.savez(tmp_path / FILES["mean_53215"], u_shp=np.zeros(612), u_exp=np.zeros(612), keypoints=np.arange(204))
    np.savez(tmp_path / FILES["meta"], indices=np.arange(10))
    with pytest.raises(TddfaFilesError, match="w_shp") as exc:
        load_tddfa_files(tmp_path)
    assert str(tmp_path / FILES["grid_model"]) in str(exc.value)


# ----------------------------------------------------------------------------- geometry
def test_grid_triangles_are_counter_clockwise_and_tile_the_grid():
    n = 4
    tri = grid_triangles(n)
    assert tri.shape == (2 * (n - 1) ** 2, 3) and tri.dtype == np.int64
    assert tri.min() == 0 and tri.max() == n * n - 1
    k = np.arange(n * n)
    xy = np.stack([k // n, -(k % n)], 1).astype(float)  # point i * n + j: x = column i, y = -row j (y up)
    a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    area = 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    assert np.allclose(area, 0.5)  # all counter-clockwise, each half a cell
    assert area.sum() == pytest.approx((n - 1) ** 2)  # together exactly the grid's square
    assert len({tuple(sorted(t)) for t in tri.tolist()}) == len(tri)  # no triangle twice
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), 1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    assert uses.max() == 2 and (uses == 1).sum() == 4 * (n - 1)  # only the grid's border edges are unshared


def test_roi_from_box_is_3ddfa_v2s_box_rule():
    box = (10.0, 20.0, 110.0, 140.0)  # w 100, h 120: mean 110
    # side 1.58 x 110 = 173.8 (half 86.9), centre (60, 80 + 0.14 x 110 = 95.4)
    assert roi_from_box(box) == pytest.approx((-26.9, 8.5, 146.9, 182.3))
    assert roi_from_box(box, scale=1.0, shift=0.0) == pytest.approx((5.0, 25.0, 115.0, 135.0))


def test_roi_from_landmarks_is_sqrt2_times_the_longer_side():
    rng = np.random.default_rng(0)
    lm = np.column_stack([rng.uniform(10, 50, 68), rng.uniform(20, 80, 68), rng.uniform(-500, 500, 68)])
    lm[0, :2], lm[1, :2] = (10, 20), (50, 80)  # box 40 x 60: longer side 60, centre (30, 50); z is ignored
    h = 30 * math.sqrt(2)
    assert roi_from_landmarks(lm) == pytest.approx((30 - h, 50 - h, 30 + h, 50 + h))


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("yxz", [yaw, pitch, roll], degrees=True).as_matrix()


def test_pose_from_params_recovers_rotation_and_scale():
    r, s, t = _rotation(25.0, -10.0, 5.0), 7.3e-4, np.array([60.0, 55.0, 3.0])
    params = np.concatenate([np.hstack([s * r, t[:, None]]).ravel(), np.random.default_rng(0).normal(size=50)])
    rot, scale = pose_from_params(params)
    assert scale == pytest.approx(s, rel=1e-12)
    assert np.allclose(rot, r, atol=1e-12) and np.linalg.det(rot) == pytest.approx(1.0)


def test_model_points_map_to_photo_by_the_3ddfa_crop_rule():
    # P = [s I | t] in the 120-px crop frame (y up); the roi (30, 40) .. (270, 280) is 2 photo px per crop px.
    params = np.concatenate([np.hstack([0.5 * np.eye(3), [[10.0], [20.0], [4.0]]]).ravel(), np.zeros(50)])
    pts = np.array([[0.0, 0.0, 0.0], [100.0, 60.0, -8.0]])
    out = _to_photo(pts, params, (30, 40, 270, 280))
    # crop: x = 0.5 X + 10 - 1, y = 120 - (0.5 Y + 20), z = 0.5 Z + 4 - 1; then x 2 and + the roi's corner
    assert np.allclose(out, [[30 + 2 * 9.0, 40 + 2 * 100.0, 2 * 3.0], [30 + 2 * 59.0, 40 + 2 * 70.0, 2 * -1.0]])


# ----------------------------------------------------------------------------- grid rendering
def test_render_grid_labels_on_a_spherical_cap():
    from facevision.face.codecs import DEPTH_BASE_PX

    size, radius, step, lo = 128, 90.0, 1.5, 20.0
    i, j = np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij")  # point i * 64 + j: column i, row j
    x, y = (lo + step * i).ravel(), (lo + step * j).ravel()  # crop px 20 .. 114.5
    cx = cy = lo + step * (GRID - 1) / 2

    def cap(x, y):  # sphere seen from the front: z larger = closer
        return np.sqrt(np.maximum(radius ** 2 - (x - cx) ** 2 - (y - cy) ** 2, 0.0))

    points = np.column_stack([x, y, cap(x, y)])
    u = (x - lo) / (step * (GRID - 1))
    code = np.column_stack([1.2 * u - 0.1, (y - lo) / (step * (GRID - 1)), 0.2 + 0.3 * u])  # u leaves [0, 1]
    depth, corr, mask = render_grid_labels(points, grid_triangles(), code, size)

    assert depth.dtype == np.float32 and corr.dtype == np.float32 and mask.shape == (size, size)
    rows, cols = np.nonzero(mask)
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (20, 114, 20, 114) and mask.sum() == 95 * 95
    assert np.all(depth[~mask] == 0) and np.all(corr[~mask] == 0)
    rr, cc = np.mgrid[:size, :size].astype(float)
    want = cap(cc, rr)
    want = want - want[mask].min() + DEPTH_BASE_PX  # re-based: the farthest face pixel at DEPTH_BASE_PX
    assert depth[mask].min() == pytest.approx(DEPTH_BASE_PX)
    assert np.abs(depth[mask] - want[mask]).max() < 0.05  # flat triangles on a 1.5-px grid: chord error only
    # the farthest pixel is the corner grid point (20, 20); the top of the cap is ~62 px nearer
    assert depth[20, 20] == pytest.approx(DEPTH_BASE_PX) and depth[67, 67] == pytest.approx(
        cap(67.0, 67.0) - cap(lo, lo) + DEPTH_BASE_PX, abs=0.05)
    # the code is linear in the crop position, so barycentric interpolation reproduces it (clipped to [0, 1])
    uu = (cc - lo) / (step * (GRID - 1))
    want_corr = np.clip(np.dstack([1.2 * uu - 0.1, (rr - lo) / (step * (GRID - 1)), 0.2 + 0.3 * uu]), 0.0, 1.0)
    assert np.abs(corr[mask] - want_corr[mask]).max() < 1e-5
    assert corr[mask][:, 0].min() == 0.0 and corr[mask][:, 0].max() == 1.0


# ----------------------------------------------------------------------------- dataset files
def test_check_same_space(tmp_path):
    a, b = tmp_path / "lfw_mediapipe", tmp_path / "lfw_tddfa"
    ma, mb = {"correspondence_space": "facevision-reference-v1"}, {"correspondence_space": "3ddfa-bfm4096-ncc"}
    with pytest.raises(DatasetFormatError) as exc:
        check_same_space({str(a): ma, str(b): mb})
    assert str(a) in str(exc.value) and str(b) in str(exc.value) and "3ddfa-bfm4096-ncc" in str(exc.value)
    assert check_same_space({str(a): mb, str(b): dict(mb)}) == "3ddfa-bfm4096-ncc"
    assert check_same_space({str(a): ma}) == "facevision-reference-v1"


def test_label_fit_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    params, lms = rng.normal(size=62), rng.normal(size=(68, 3)) * 50
    write_label_fit(tmp_path, "P_0001", params=params, roi=np.array([3, -7, 203, 193]), landmarks=lms)
    got = read_label_fit(tmp_path, "P_0001")
    assert set(got) == {"params", "roi", "landmarks"}
    assert np.array_equal(got["params"], params) and np.array_equal(got["landmarks"], lms)
    assert got["roi"].dtype == np.float64 and got["roi"].tolist() == [3.0, -7.0, 203.0, 193.0]
    assert read_label_fit(tmp_path, "Nobody_0001") is None
    bad = tmp_path / "samples" / "Bad_0001" / "label_fit.npz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an npz")
    with pytest.raises(DatasetFormatError, match="Bad_0001"):
        read_label_fit(tmp_path, "Bad_0001")


def _synthetic_files(tmp_path: Path) -> TddfaFiles:
    """A TddfaFiles of made-up arrays: a mirror-symmetric dome on the 64 x 64 grid, landmarks on it."""
    t = np.linspace(-1.0, 1.0, GRID)
    i, j = np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij")
    gx, gy = t[i].ravel(), -t[j].ravel()  # column i left to right, row j top to bottom (y up)
    grid = np.column_stack([gx, gy, 1.0 - 0.3 * (gx ** 2 + gy ** 2)]) * 70000.0
    lm = grid[np.random.default_rng(0).choice(GRID * GRID, 68, replace=False)] + [100.0, 100.0, 0.0]
    a = float(np.abs(grid[:, 0]).max())
    lo, hi = grid.min(0), grid.max(0)
    z = np.zeros
    return TddfaFiles(folder=tmp_path, weights=tmp_path / "w.safetensors", param_mean=z(62), param_std=np.ones(62),
                      grid_mean=grid, grid_shape=z((3 * GRID * GRID, 40)), grid_exp=z((3 * GRID * GRID, 10)),
                      lm_mean=lm, lm_shape=z((204, 40)), lm_exp=z((204, 10)), ncc_min=np.array([-a, lo[1], lo[2]]),
                      ncc_max=np.array([a, hi[1], hi[2]]))


def test_dataset_reference_space_must_match_the_manifest(tmp_path):
    from facevision.face.reference import CORRESPONDENCE_SPACE, dataset_reference
    from data_prep.tddfa_reference import write_tddfa_reference

    space = "3ddfa-bfm4096-ncc"
    with pytest.raises(ValueError, match="reference.npz") as exc:  # a 3DDFA dataset without its reference face
        dataset_reference(tmp_path, {"correspondence_space": space})
    assert str(tmp_path) in str(exc.value) and space in str(exc.value)
    assert dataset_reference(tmp_path, {}).name == CORRESPONDENCE_SPACE  # no file, default space: the package's

    ds = tmp_path / "ds"
    write_tddfa_reference(ds / "reference.npz", _synthetic_files(tmp_path))
    with pytest.raises(ValueError) as exc:  # the file's space is not the manifest's
        dataset_reference(ds, {"correspondence_space": CORRESPONDENCE_SPACE})
    assert str(ds / "reference.npz") in str(exc.value) and space in str(exc.value)
    ref = dataset_reference(ds, {"correspondence_space": space})
    n = GRID * GRID
    assert ref.name == space and ref.vertices.shape == (n + 68, 3) and ref.ibug68.tolist() == list(range(n, n + 68))
    assert ref.vertices[:n].min() >= 0.0 and ref.vertices[:n].max() <= 1.0
    i, j = np.divmod(np.arange(n), GRID)
    assert np.array_equal(ref.mirror[:n], (GRID - 1 - i) * GRID + j)  # the dome's exact mirror points
    assert np.allclose(ref.vertices[ref.mirror[:n], 0], 1.0 - ref.vertices[:n, 0])  # mirror: u -> 1 - u
    assert np.allclose(ref.to_uvw(ref.raw_vertices), ref.vertices)  # one normalization for both


def test_prepare_cli_names_a_bad_tddfa_dir(tmp_path, capsys):
    bad = tmp_path / "no_such_3ddfa_folder"
    out = tmp_path / "ds"
    assert cli_main(["prepare", "lfw", str(tmp_path), "-o", str(out), "--tddfa-dir", str(bad), "--no-progress"]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not out.exists()  # nothing written before the folder is checked


# ----------------------------------------------------------------------------- the real 3DDFA files
@pytest.fixture(scope="module")
def labeler(tddfa_dir):
    from data_prep.label_tddfa import TddfaLabeler

    return TddfaLabeler(tddfa_dir)


def _photo(lfw_root: Path, rel: str = "Aaron_Eckhart/Aaron_Eckhart_0001.jpg") -> np.ndarray:
    from facevision.face.images import read_photo

    return read_photo(lfw_root / rel)


def test_real_files_shapes(tddfa_dir):
    f = load_tddfa_files(tddfa_dir)
    n = GRID * GRID
    assert f.param_mean.shape == f.param_std.shape == (62,) and (f.param_std > 0).all()
    assert f.grid_mean.shape == (n, 3) and f.grid_shape.shape == (3 * n, 40) and f.grid_exp.shape == (3 * n, 10)
    assert f.lm_mean.shape == (68, 3) and f.lm_shape.shape == (204, 40) and f.lm_exp.shape == (204, 10)
    ncc = f.to_ncc(f.grid_mean)
    assert ncc.min() == pytest.approx(0.0, abs=1e-12) and ncc.max() == pytest.approx(1.0, abs=1e-12)
    assert 1.2e5 < np.ptp(f.grid_mean[:, 0]) < 1.8e5  # a face ~146,000 BFM units wide
    grid, lms = f.shape(np.zeros(40), np.zeros(10))
    assert np.array_equal(grid, f.grid_mean) and np.array_equal(lms, f.lm_mean)
    assert f.weights.is_file()


def test_regressor_on_a_fixed_input(labeler):
    """Recorded from this implementation (a regression guard; the accuracy is the AFLW2000-3D benchmark's)."""
    image = np.random.default_rng(0).integers(0, 256, (120, 120, 3), dtype=np.uint8)
    params = labeler.regress(image, [(0, 0, 120, 120)])
    assert params.shape == (1, 62)
    want = [1.735e-04, 1.862e-04, 2.165e-05, 51.96, -1.384e-04, 4.904e-04]
    # rtol 1e-3; plus 1e-4 of each parameter's spread, for the third, a near-zero difference of out * std and mean
    tol = 1e-3 * np.abs(want) + 1e-4 * labeler.files.param_std[:6]
    assert np.all(np.abs(params[0, :6] - want) <= tol), params[0, :6]


def _mirror_error(lab, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Landmarks of the photo and of its mirror image mirrored back; the inter-ocular distance."""
    from facevision.face.ibug68 import IBUG68_MIRROR
    from data_prep.label_mediapipe import detect_single_face

    w = image.shape[1]
    mirrored = np.ascontiguousarray(image[:, ::-1])
    a = lab.fit_face(image, detect_single_face(image).box).landmarks
    b = lab.fit_face(mirrored, detect_single_face(mirrored).box).landmarks
    back = b[IBUG68_MIRROR].copy()
    back[:, 0] = w - 1 - back[:, 0]
    iod = float(np.linalg.norm(a[36:42, :2].mean(0) - a[42:48, :2].mean(0)))
    return a, back, iod


@pytest.mark.lfw
def test_mirror_invariance_on_a_real_photo(labeler, lfw_root):
    from data_prep.label_tddfa import TddfaConfig, TddfaLabeler

    image = _photo(lfw_root)
    a, back, iod = _mirror_error(labeler, image)
    err = np.linalg.norm(back[:, :2] - a[:, :2], axis=1) / iod
    # measured: mean 3.4 %, max 6.9 % of the inter-ocular distance (the regressor is not exactly mirror
    # symmetric: ~0.5 px in x with exactly mirrored rois); without the iBUG permutation ~90 %
    assert 30 < iod < 50
    assert err.mean() < 0.05 and err.max() < 0.12
    # mirror averaging makes the labeler mirror symmetric up to the detector boxes: measured mean 0.3 %
    avg = TddfaLabeler(labeler.files.folder, TddfaConfig(mirror_average=True))
    a, back, iod = _mirror_error(avg, image)
    assert (np.linalg.norm(back[:, :2] - a[:, :2], axis=1) / iod).mean() < 0.01


@pytest.mark.lfw
def test_dense_labels_give_back_the_fitted_landmarks(labeler, lfw_root, tmp_path):
    """label -> corr, mask -> landmarks_from_corr through the space's reference face -> the fit's landmarks."""
    from data_prep.label_tddfa import label_photo_tddfa
    from facevision.face.reference import load_reference
    from data_prep.tddfa_reference import write_tddfa_reference
    from facevision.maps.landmarks import landmarks_from_corr

    lab = label_photo_tddfa(_photo(lfw_root), labeler)
    s = lab.sample
    assert s.image.shape == (128, 128, 3) and 0.25 < s.mask.mean() < 0.6
    assert s.depth[s.mask].min() == pytest.approx(1.0) and s.depth[s.mask].max() > 30  # a face is deep
    assert lab.points_crop.shape == (4096, 3) and lab.landmarks_crop.shape == (68, 3)
    ref = load_reference(write_tddfa_reference(tmp_path / "reference.npz", labeler.files))
    assert ref.name == "3ddfa-bfm4096-ncc"
    read = landmarks_from_corr(s.corr, s.mask, ref)
    err = np.linalg.norm(read.points - lab.landmarks_crop[:, :2], axis=1)
    # measured: median 0.10 px over points 17..67, max 0.53; jaw points at the grid's edge can be off by px
    inner = err[17:]
    assert np.median(inner) < 0.35 and inner.max() < 1.5
    assert np.median(err[read.residual < 0.05]) < 0.35


@pytest.mark.lfw
def test_prepare_lfw_with_the_3ddfa_labeler(tddfa_dir, lfw_root, tmp_path):
    from data_prep.dataset_format import read_face_mesh, read_manifest, read_sample
    from data_prep.prepare import PrepareConfig, prepare_lfw
    from facevision.face.reference import dataset_reference

    root, out = tmp_path / "lfw", tmp_path / "ds"
    for person in ("Aaron_Eckhart", "AJ_Cook"):
        (root / person).mkdir(parents=True)
        shutil.copy(lfw_root / person / f"{person}_0001.jpg", root / person / f"{person}_0001.jpg")
    import torch

    threads = torch.get_num_threads()
    try:  # workers=1 labels in this process, and the labeler's worker set-up pins torch to one thread
        summary = prepare_lfw(root, out, PrepareConfig(labeler="3ddfa-v2", tddfa_dir=str(tddfa_dir), workers=1,
                                                       progress=False))
    finally:
        torch.set_num_threads(threads)
    assert summary["kept"] == 2 and summary["dropped_total"] == 0
    assert summary["labeler"] == "3ddfa-v2" and summary["passes"] == 2
    manifest = read_manifest(out)
    assert manifest["label_source"] == "3ddfa-v2" and manifest["correspondence_space"] == "3ddfa-bfm4096-ncc"
    assert (out / "reference.npz").is_file() and dataset_reference(out, manifest).name == "3ddfa-bfm4096-ncc"
    for s in manifest["samples"]:
        sample = read_sample(out, s["id"])
        assert sample.mask.mean() > 0.2
        mesh = read_face_mesh(out, s["id"])
        assert mesh.shape == (4096, 3) and mesh.dtype == np.float32
        fit = read_label_fit(out, s["id"])
        assert set(fit) == {"params", "roi", "landmarks"}
        assert fit["params"].shape == (62,) and fit["roi"].shape == (4,) and fit["landmarks"].shape == (68, 3)
        x0, y0, x1, y1 = fit["roi"]
        assert x1 - x0 == y1 - y0 > 50  # a square roi in photo px
    with pytest.raises(ValueError, match="'3ddfa-v2'.*'mediapipe'") as exc:  # labels of two spaces never mix
        prepare_lfw(root, out, PrepareConfig(labeler="mediapipe", workers=1, progress=False))
    assert str(out) in str(exc.value)


@pytest.fixture(scope="module")
def aflw_root() -> Path:
    value = os.environ.get(AFLW_ENV)
    if not value:
        pytest.skip(f"{AFLW_ENV} is not set: point it at an AFLW2000-3D folder to run the labeler benchmark test")
    if not Path(value).is_dir():
        pytest.skip(f"{AFLW_ENV}={value} is not a folder")
    return Path(value)


def test_benchmark_aflw2000_with_the_3ddfa_labeler(tddfa_dir, aflw_root):
    """The first 40 photos (the first 20 leave the [30,60) bin empty, so nme_mean3 would be NaN); ~1 s."""
    from facevision.benchmark.aflw2000 import summarize

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli_main(["benchmark", "aflw2000", str(aflw_root), "--method", "labeler", "--labeler", "3ddfa-v2",
                       "--tddfa-dir", str(tddfa_dir), "--limit", "40", "--json"])
    assert rc == 0
    out = json.loads(buf.getvalue())
    one = {"yaw_gt": 0.0, "pitch_gt": 0.0, "roll_gt": 0.0, "nme": 0.01, "yaw": 0.0, "pitch": 0.0, "roll": 0.0}
    network_keys = set(summarize([one])) | {"seconds", "method", "mirror_average", "bad_files",
                                            "bad_file_errors"}  # what --method network prints
    assert set(out) == network_keys | {"labeler", "passes"}
    assert out["labeler"] == "3ddfa-v2" and out["passes"] == 2 and out["method"] == "labeler"
    assert out["photos"] == 40 and out["failed"] == 0 and min(out["bin_counts"].values()) >= 1
    # measured on the odd half: mean3 3.99 %, pose MAE 2.2 deg (Face Mesh: ~7 % over all photos)
    assert 1.0 < out["nme_mean3"] < 6.0 and out["pose_mae_mean"] < 6.0


# ----------------------------------------------------------------------------- face model of a 3DDFA dataset
_S = 128  # crop side, px
_N_ID, _N_EXP = 6, 3  # the synthetic model's modes (all closed under the mirror, so the build needs 9)


def _mirrored_landmark_weights(n_lm: int = 68) -> np.ndarray:
    """(68, 4096) bilinear weights of 68 mirror-consistent surface points of the grid: landmark
    IBUG68_MIRROR[k] sits at landmark k's mirror position (x -> -x), the self-mirrored ones on x = 0
    (between grid columns 31 and 32: the grid has no centre column)."""
    from facevision.face.ibug68 import IBUG68_MIRROR

    xy = np.random.default_rng(5).uniform(-0.7, 0.7, (n_lm, 2))
    for k, m in enumerate(IBUG68_MIRROR):
        if m == k:
            xy[k, 0] = 0.0
        elif k < m:
            xy[m] = (-xy[k, 0], xy[k, 1])
    fi, fj = (xy[:, 0] + 1.0) / 2.0 * (GRID - 1), (1.0 - xy[:, 1]) / 2.0 * (GRID - 1)  # column, row (y up)
    i0, j0 = np.floor(fi).astype(int), np.floor(fj).astype(int)
    wi, wj = fi - i0, fj - j0
    b = np.zeros((n_lm, GRID * GRID))
    for di, dj, w in ((0, 0, (1 - wi) * (1 - wj)), (1, 0, wi * (1 - wj)), (0, 1, (1 - wi) * wj), (1, 1, wi * wj)):
        np.add.at(b, (np.arange(n_lm), (i0 + di) * GRID + j0 + dj), w)
    return b


def _synthetic_model_files(tmp_path: Path) -> TddfaFiles:
    """:func:`_synthetic_files`' dome with 6 shape and 3 expression modes (smooth displacement fields, each
    mirror symmetric or antisymmetric) and 68 mirror-consistent landmarks interpolated from the grid."""
    import dataclasses

    base = _synthetic_files(tmp_path)
    n, unit = GRID * GRID, 70000.0
    gx, gy = base.grid_mean[:, 0] / unit, base.grid_mean[:, 1] / unit
    zero = np.zeros(n)

    def field(dx, dy, dz):
        return np.column_stack([dx + zero, dy + zero, dz + zero]).ravel() * unit  # x0 y0 z0 x1 ...

    shape_modes = [field(0, 0, 0.08 * np.exp(-(gx ** 2 + (gy - 0.1) ** 2) / 0.05)),  # nose
                   field(0.06 * gx, 0, 0),  # width
                   field(0, 0.06 * gy * (1 - gx ** 2), 0),  # height
                   field(0, 0, 0.06 * gy ** 2),  # profile curvature
                   field(0, 0, 0.05 * gx * gy),  # antisymmetric twist
                   field(0, 0.04 * gx * (1 - gy ** 2), 0)]  # antisymmetric shear
    exp_modes = [field(0, -0.06 * np.clip(-gy, 0, None) ** 2, 0),  # jaw drop
                 field(0, 0, 0.05 * np.exp(-(gx ** 2 + (gy + 0.5) ** 2) / 0.03)),  # pucker
                 field(0.05 * gx * np.exp(-(gy + 0.5) ** 2 / 0.05), 0, 0)]  # smile
    grid_shape, grid_exp = np.zeros((3 * n, 40)), np.zeros((3 * n, 10))
    grid_shape[:, :_N_ID] = np.stack(shape_modes, 1)
    grid_exp[:, :_N_EXP] = np.stack(exp_modes, 1)
    b = _mirrored_landmark_weights()

    def lm_basis(w):
        return np.einsum("lg,gck->lck", b, w.reshape(n, 3, -1)).reshape(3 * len(b), -1)

    return dataclasses.replace(base, grid_shape=grid_shape, grid_exp=grid_exp, lm_mean=b @ base.grid_mean,
                               lm_shape=lm_basis(grid_shape), lm_exp=lm_basis(grid_exp))


def _posed(files: TddfaFiles, rng: np.random.Generator, alpha: np.ndarray, beta: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Grid points and landmarks of a shape under a random similarity into crop px (y down, z larger = closer)."""
    grid, lms = files.shape(alpha, beta)
    s = rng.uniform(5.5e-4, 7e-4)  # px per model unit: the face ~80-100 px wide
    rot = _rotation(rng.uniform(-20, 20), rng.uniform(-10, 10), rng.uniform(-10, 10))
    centre = np.array([rng.uniform(60, 68), rng.uniform(58, 66), rng.uniform(20, 80)])  # mesh frame, y up
    to_crop = lambda p: (s * p @ rot.T + centre) * [1, -1, 1] + [0, _S - 1, 0]  # noqa: E731
    return to_crop(grid), to_crop(lms)


def _coeffs(rng: np.random.Generator, n_used: int, n_all: int) -> np.ndarray:
    c = np.zeros(n_all)
    c[:n_used] = rng.normal(0, 1, n_used)
    return c


@pytest.fixture(scope="module")
def tddfa_face_dataset(tmp_path_factory):
    """A 3DDFA-style dataset of shapes of the synthetic model: reference.npz, manifest, and per sample
    face_mesh.npy (4,096 grid points) and label_fit.npz (68 landmarks); no maps (the build reads none).
    Train: 10 people x 3 photos; val: 4 people x 2. Returns (root, files)."""
    from data_prep.dataset_format import write_face_mesh, write_manifest
    from data_prep.label_tddfa import CORRESPONDENCE_SPACE
    from data_prep.tddfa_reference import write_tddfa_reference

    root = tmp_path_factory.mktemp("tddfa_face_model") / "ds"
    files = _synthetic_model_files(root.parent)
    write_tddfa_reference(root / "reference.npz", files)
    rng = np.random.default_rng(7)
    samples = []
    for person, (split, photos) in enumerate([("train", 3)] * 10 + [("val", 2)] * 4):
        alpha = _coeffs(rng, _N_ID, 40)
        for k in range(photos):
            grid, lms = _posed(files, rng, alpha, _coeffs(rng, _N_EXP, 10))
            sid = f"P{person:02d}_{k + 1:04d}"
            write_face_mesh(root, sid, grid)
            write_label_fit(root, sid, params=np.zeros(62), roi=np.array([0.0, 0.0, _S, _S]), landmarks=lms)
            samples.append({"id": sid, "identity": f"P{person:02d}", "split": split})
    write_manifest(root, samples, size=_S, label_source="3ddfa-v2", correspondence_space=CORRESPONDENCE_SPACE)
    return root, files


def test_face_model_of_a_3ddfa_dataset_and_its_fit(tddfa_face_dataset):
    """build_face_model on grid points + landmarks of a known model; the fit of a held-out face's rendered
    maps with that model and the dataset's reference gives back its 68 landmarks."""
    import dataclasses

    from data_prep.build_face_model import FaceModelBuildConfig, build_face_model
    from data_prep.label_tddfa import CORRESPONDENCE_SPACE
    from facevision.face.reference import load_reference
    from facevision.fit import model_fit
    from facevision.common.geometry import similarity_fit

    root, files = tddfa_face_dataset
    n = GRID * GRID
    model, card = build_face_model(root, FaceModelBuildConfig(id_grid=(2, 4, 6, 8), exp_grid=(1, 2, 3, 4)))
    assert model.n_vertices == card["vertices"] == n + 68
    assert card["correspondence_space"] == CORRESPONDENCE_SPACE and card["label_source"] == "3ddfa-v2"
    assert card["train_shapes"] == 30 and card["val_shapes"] == 8 and card["train_people_used"] == 10
    assert model.ibug68.tolist() == list(range(n, n + 68)) and np.array_equal(model.triangles, grid_triangles())
    # the mean is the synthetic mean (the reference's raw vertices) up to a similarity and sampling noise
    ref = load_reference(root / "reference.npz")
    s, r, t = similarity_fit(model.mean, ref.raw_vertices)
    mean_err = float(np.sqrt(((s * model.mean @ r.T + t - ref.raw_vertices) ** 2).sum(1).mean()))
    # measured: mean error 0.011 raw units (sampling noise of 30 shapes), val_rms_mean_only 0.058
    assert mean_err < 0.3 * card["val_rms_mean_only"]
    # the 9 true directions need 9 modes (measured: 8 + 1; the best 8, 6 + 2, leaves 0.0069, over the limit 0.0038)
    assert card["identity_modes"] + card["expression_modes"] >= _N_ID + _N_EXP
    # measured: val_rms 0.0021 = 3.6 % of the mean's; the floor is the Procrustes alignment's own: it shrinks
    # every shape d by ~|d|^2 along the mean, a scale direction that the build takes out of the modes
    assert card["val_rms"] < 0.1 * card["val_rms_mean_only"]

    # a held-out face rendered like the labeler renders a sample's maps, fitted with the dataset's reference
    rng = np.random.default_rng(123)
    grid, lms = _posed(files, rng, _coeffs(rng, _N_ID, 40), _coeffs(rng, _N_EXP, 10))
    depth, corr, mask = render_grid_labels(grid, grid_triangles(), ref.vertices[:n], _S)
    assert 0.3 < mask.mean() < 0.7
    # uv_lookup caches by layout, not by name alone: a real "3ddfa-bfm4096-ncc" lookup built first must not serve
    # this synthetic layout of the same name
    real_like = dataclasses.replace(ref, vertices=ref.vertices[:, ::-1].copy())
    model_fit.uv_lookup(real_like)
    assert not np.array_equal(model_fit.uv_lookup(real_like), model_fit.uv_lookup(ref))
    fit = model_fit.fit_face_model(depth, corr, mask, model, reference=ref)
    assert fit.vertices.shape == (n + 68, 3) and fit.landmarks68.shape == (68, 2)
    err = np.linalg.norm(fit.landmarks68 - lms[:, :2], axis=1)
    # measured (face 104 px wide): mean 0.10 px, max 0.24 px with the default prior (noise_px 5 shrinks the
    # coefficients); with a weak prior mean 0.0035, max 0.0068 px; the mean shape alone (modes zeroed) 1.06 px
    assert err.mean() < 0.25 and err.max() < 0.6
    weak = model_fit.fit_face_model(depth, corr, mask, model, model_fit.FitConfig(noise_px=0.1), reference=ref)
    err_weak = np.linalg.norm(weak.landmarks68 - lms[:, :2], axis=1)
    assert err_weak.mean() < 0.02 and err_weak.max() < 0.05
    rigid = dataclasses.replace(model, id_basis=np.zeros_like(model.id_basis), exp_basis=np.zeros_like(model.exp_basis))
    err_rigid = np.linalg.norm(model_fit.fit_face_model(depth, corr, mask, rigid, reference=ref).landmarks68
                               - lms[:, :2], axis=1)
    assert err_rigid.mean() > 4 * err.mean()  # the modes do the work


def test_prepare_face_model_cli_writes_beside_a_3ddfa_dataset(tddfa_face_dataset, tmp_path, monkeypatch, capsys):
    """Default output of a non-default space: DATASET/face_model.npz, never the package asset."""
    import facevision.face.face_model as face_model_module
    from facevision.face.face_model import FACE_MODEL_PATH, load_face_model
    from data_prep.label_tddfa import CORRESPONDENCE_SPACE

    root, _ = tddfa_face_dataset
    out = root / "face_model.npz"
    out.unlink(missing_ok=True)
    asset = (FACE_MODEL_PATH.stat().st_mtime_ns, FACE_MODEL_PATH.read_bytes()) if FACE_MODEL_PATH.exists() else None
    # should the default go wrong, it overwrites a stand-in, not the committed asset
    stand_in = tmp_path / "asset_face_model.npz"
    stand_in.write_bytes(b"stand-in")
    monkeypatch.setattr(face_model_module, "FACE_MODEL_PATH", stand_in)
    assert cli_main(["prepare", "face-model", str(root)]) == 0
    captured = capsys.readouterr()
    assert str(out) in captured.err
    assert json.loads(captured.out)["correspondence_space"] == CORRESPONDENCE_SPACE
    assert stand_in.read_bytes() == b"stand-in"
    now = (FACE_MODEL_PATH.stat().st_mtime_ns, FACE_MODEL_PATH.read_bytes()) if FACE_MODEL_PATH.exists() else None
    assert now == asset
    model = load_face_model(out)
    assert model.n_vertices == GRID * GRID + 68
    with np.load(out, allow_pickle=False) as z:
        assert json.loads(str(z["card"]))["correspondence_space"] == CORRESPONDENCE_SPACE


def test_a_3ddfa_space_fit_reports_pose_in_the_3dmm_frame(tddfa_face_dataset):
    """The 3DMM's frame is frontal (reference ``frontal_pitch_deg`` 0, Face Mesh's is -16): a face rendered at a
    known yaw / pitch / roll fits back to those angles, and with Face Mesh's tilt it would be 16 degrees off."""
    import dataclasses

    from data_prep.build_face_model import FaceModelBuildConfig, build_face_model
    from facevision.face.reference import load_reference
    from facevision.fit import model_fit
    from facevision.maps.pose import angles_to_rotation

    root, files = tddfa_face_dataset
    ref = load_reference(root / "reference.npz")
    assert ref.frontal_pitch_deg == 0.0
    model, _ = build_face_model(root, FaceModelBuildConfig(id_grid=(6,), exp_grid=(3,)))
    grid, _ = files.shape(np.zeros(40), np.zeros(10))
    for yaw, pitch, roll in ((0.0, 0.0, 0.0), (25.0, -10.0, 8.0)):
        rot = angles_to_rotation(yaw, pitch, roll)  # facevision's convention (pitch > 0: the face tilts up)
        pts = (6.5e-4 * grid @ rot.T + [64.0, 62.0, 50.0]) * [1, -1, 1] + [0, _S - 1, 0]
        depth, corr, mask = render_grid_labels(pts, grid_triangles(), ref.vertices[:GRID * GRID], _S)
        pose = model_fit.fit_face_model(depth, corr, mask, model, reference=ref).pose
        assert abs(pose.yaw - yaw) < 1.5 and abs(pose.pitch - pitch) < 1.5 and abs(pose.roll - roll) < 1.5, pose
    tilted = dataclasses.replace(ref, frontal_pitch_deg=-16.0)
    wrong = model_fit.fit_face_model(depth, corr, mask, model, reference=tilted).pose
    assert abs(wrong.pitch - pitch) > 10.0

"""3DDFA_V2 import on maps generated here in 3DDFA_V2's layout and encoding."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep.crop import original_to_crop
from data_prep.dataset_format import DEPTH_BASE_PX, read_manifest, read_sample
from data_prep.drops import DropError
from data_prep.import_3ddfa import Import3DDFAConfig, _read_render, find_3ddfa_maps, maps_from_3ddfa
from data_prep.rasterize import rasterize


def _write_3ddfa_renders(folder: Path, stem: str, verts_px: np.ndarray, tris: np.ndarray, ncc: np.ndarray,
                         h: int, w: int, ext: str = ".png") -> None:
    """Render like 3DDFA_V2's depth()/pncc() with with_bg_flag=False and save as <stem>_depth / <stem>_pncc."""
    z = verts_px[:, 2]
    zn = (z - z.min()) / (z.max() - z.min())
    _, dz, m = rasterize(verts_px, tris, h, w, np.repeat(zn[:, None], 3, 1))
    _, nc, _ = rasterize(verts_px, tris, h, w, ncc)
    depth_img = np.where(m[..., None], (255 * dz), 0).astype(np.uint8)
    pncc_img = np.where(m[..., None], (255 * nc), 0).astype(np.uint8)  # channel order x, y, z as written by cv2
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{stem}_depth{ext}"), depth_img)
    cv2.imwrite(str(folder / f"{stem}_pncc{ext}"), pncc_img)


def _hemisphere(cx, cy, r, n=61):
    t = np.linspace(-1, 1, n)
    gx, gy = np.meshgrid(cx + r * t, cy + r * t)
    xy = np.stack([gx.ravel(), gy.ravel()], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])
    d2 = ((xy - [cx, cy]) ** 2).sum(1)
    tris = tris[(d2[tris] <= r * r).all(1)]
    z = np.sqrt(np.clip(r * r - d2, 0, None))
    ncc = np.column_stack([(xy[:, 0] - cx) / (2 * r) + 0.5, -(xy[:, 1] - cy) / (2 * r) + 0.5, z / r])
    return np.column_stack([xy, z]), tris, ncc


def test_import_resamples_synthetic_renders_into_the_crop(tmp_path):
    h, w, cx, cy, r = 200, 180, 95.0, 104.0, 50.0
    verts, tris, ncc = _hemisphere(cx, cy, r)
    _write_3ddfa_renders(tmp_path, "Some_Person_0001", verts, tris, ncc, h, w)
    dpath, ppath = find_3ddfa_maps(tmp_path, "Some_Person", "Some_Person_0001")
    box, size = (30, 40, 160, 170), 64
    cfg = Import3DDFAConfig()
    depth, corr, mask = maps_from_3ddfa(_read_render(dpath), _read_render(ppath), box, size, cfg)
    # analytic truth in crop pixels
    c = original_to_crop(np.array([[cx, cy, r]]), box, size)[0]
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    rr = np.hypot(xx - c[0], yy - c[1])
    disk = rr <= c[2]
    assert (mask & disk).sum() / (mask | disk).sum() > 0.95
    inner = rr < 0.85 * c[2]
    # PNCC: x grows to the right, y grows upwards, z is largest at the centre
    assert np.abs(corr[..., 0][inner] - ((xx - c[0]) / (2 * c[2]) + 0.5)[inner]).max() < 0.03
    assert np.abs(corr[..., 1][inner] - (-(yy - c[1]) / (2 * c[2]) + 0.5)[inner]).max() < 0.03
    # depth: relative, base at DEPTH_BASE_PX, peak at the centre, range = ratio * face width
    assert depth[mask].min() == pytest.approx(DEPTH_BASE_PX, abs=1e-3)
    row, col = np.unravel_index(np.argmax(depth), depth.shape)
    assert np.hypot(col - c[0], row - c[1]) < 3
    width = mask.any(0).sum()
    assert depth.max() - DEPTH_BASE_PX == pytest.approx(cfg.depth_range_ratio * width, rel=0.05)
    truth = np.sqrt(np.clip(c[2] ** 2 - rr ** 2, 0, None))
    scale = (depth.max() - DEPTH_BASE_PX) / c[2]
    assert np.abs((depth - DEPTH_BASE_PX)[inner] / scale - truth[inner]).max() < 0.05 * c[2]


def test_missing_or_mismatched_renders_are_labeler_failures(tmp_path):
    with pytest.raises(DropError) as e:
        find_3ddfa_maps(tmp_path, "P", "P_0001")
    assert e.value.reason == "labeler_failure" and "P_0001_depth" in str(e.value)
    with pytest.raises(DropError):
        maps_from_3ddfa(np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10, 3), np.uint8), (0, 0, 10, 10), 8)


@pytest.mark.lfw
def test_prepare_with_3ddfa_labels_on_real_photos(lfw_root, tmp_path):
    from data_prep.io import read_photo
    from data_prep.label_mediapipe import detect_single_face, label_photo, photo_landmarks
    from data_prep.prepare import PrepareConfig, prepare_lfw
    from data_prep.reference import load_reference

    ref = load_reference()
    root, labels, out = tmp_path / "lfw", tmp_path / "3ddfa", tmp_path / "ds"
    photos = ["AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0001.jpg"]
    expected = {}
    for i, rel in enumerate(photos):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lfw_root / rel, root / rel)
        img = read_photo(lfw_root / rel)
        if i == 2:
            continue  # no renders for this one -> labeler failure
        lm = photo_landmarks(img, detect_single_face(img))
        # stand-in for a 3DDFA_V2 mesh: the Face Mesh in photo pixels; PNCC code = reference coordinates
        folder = labels if i == 0 else labels / rel.split("/")[0]  # flat and per-person layouts
        _write_3ddfa_renders(folder, Path(rel).stem, lm, ref.triangles, ref.vertices, *img.shape[:2],
                             ext=".png" if i == 0 else ".jpg")
        expected[Path(rel).stem] = label_photo(img).sample
    summary = prepare_lfw(root, out, PrepareConfig(labeler="3ddfa", labels_3ddfa=str(labels), workers=1, progress=False))
    assert summary["kept"] == 2 and summary["dropped"]["labeler_failure"] == 1
    manifest = read_manifest(out)
    assert manifest["label_source"] == "3ddfa" and manifest["correspondence_space"] == "3ddfa-bfm-pncc"
    for s in manifest["samples"]:
        got, want = read_sample(out, s["id"]), expected[s["id"]]
        inter = (got.mask & want.mask).sum()
        assert inter / (got.mask | want.mask).sum() > 0.9, s["id"]
        both = got.mask & want.mask
        assert np.median(np.abs(got.corr[both] - want.corr[both])) < 0.02, s["id"]
        assert np.array_equal(got.image, want.image)
        # same surface up to the depth scale: the peaks coincide
        g = np.unravel_index(np.argmax(got.depth), got.depth.shape)
        e = np.unravel_index(np.argmax(want.depth), want.depth.shape)
        assert np.hypot(g[0] - e[0], g[1] - e[1]) <= 3, s["id"]
    recs = [json.loads(l) for l in (out / "records.jsonl").read_text().splitlines()]
    assert any("no 3DDFA_V2 depth render" in r.get("message", "") for r in recs)

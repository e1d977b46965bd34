"""overlay.jpg and the preview's face panel (issue "Video, overlays and UV textures", item 4). Ground truth: the
face model rendered at a known pose into a (turned) crop of a photo; landmarks, the head's axes and the mesh must
be drawn where the photo shows them, and nothing elsewhere."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facevision.face.crop import original_to_crop
from facevision.face.face_model import load_face_model
from facevision.predict.outputs import (DEFAULT_OUTPUTS, PHOTO_FILES, OutputConfig, finished_photos, parse_outputs,
                                        photo_outputs, present_outputs, write_face, write_photo_files,
                                        written_outputs)
from facevision.predict.overlay import OverlayConfig, draw_overlay, overlay_scale
from facevision.predict.render import RenderConfig, face_panel, panel_box, preview_sheet
from facevision.predict.resume import missing_outputs
from support.face_photo import crop_to_photo_px, face_photo, face_result

CFG = OverlayConfig()


def _near(picture: np.ndarray, x: float, y: float, colour, tol: int = 60, reach: int = 1) -> bool:
    """Some pixel within ``reach`` of (x, y) is within ``tol`` of ``colour`` in every channel."""
    h, w = picture.shape[:2]
    c, r = int(round(x)), int(round(y))
    patch = picture[max(r - reach, 0):min(r + reach + 1, h), max(c - reach, 0):min(c + reach + 1, w)].astype(int)
    return bool((np.abs(patch - np.asarray(colour)).max(-1) <= tol).any())


@pytest.fixture(scope="module")
def scene():
    fp = face_photo(pose=(30.0, -10.0, 10.0), angle=15.0, seed=11)
    res = face_result(fp)
    assert res.ok and res.model_fit is not None
    return fp, res


def test_overlay_draws_landmarks_by_visibility_where_the_face_is(scene):
    fp, res = scene
    pic = draw_overlay(fp.photo, [res], CFG)
    assert pic.shape == fp.photo.shape and overlay_scale(fp.photo.shape, CFG.max_side) == 1.0
    model = load_face_model()
    truth = fp.vertices_px[model.ibug68, :2]
    assert np.median(np.linalg.norm(res.landmarks68 - truth, axis=1)) < 1.0  # drawn where the photo shows them
    vis = res.landmarks68_visible
    assert 0 < (~vis).sum() < 30  # a turned face hides part of its jaw
    on = [_near(pic, x, y, CFG.visible_rgb, tol=10, reach=0) for x, y in res.landmarks68[vis]]
    assert np.mean(on) > 0.9  # visible: filled dots (a few lie under an axis)
    for x, y in res.landmarks68[~vis]:  # hidden: rings of the other colour, never a filled dot of the first
        assert _near(pic, x, y, CFG.hidden_rgb, tol=60, reach=4)
        if np.linalg.norm(res.landmarks68[vis] - [x, y], axis=1).min() > 6:  # not under a visible one's dot
            assert not _near(pic, x, y, CFG.visible_rgb, tol=10, reach=0)


def test_overlay_draws_the_head_axes_from_the_head_origin(scene):
    fp, res = scene
    pic = draw_overlay(fp.photo, [res], CFG)
    # ground truth: the model origin and the head's axes (crop frame) mapped into the photo by facevision.face.crop
    length = CFG.axis_length * fp.scale  # crop px per model unit
    origin = crop_to_photo_px(fp.centre[None], fp.box, fp.angle)[0]
    tips = crop_to_photo_px(fp.centre + length * fp.head.T, fp.box, fp.angle)  # rows: X, Y, Z tips
    for k, colour in enumerate(CFG.axis_rgb):
        for t in (0.45, 0.7):  # along the axis, clear of the origin where the three meet
            x, y = origin[:2] + t * (tips[k, :2] - origin[:2])
            assert _near(pic, x, y, colour, tol=90), (k, t)
        # and not the opposite way
        x, y = origin[:2] - 0.6 * (tips[k, :2] - origin[:2])
        assert not _near(pic, x, y, colour, tol=40, reach=0), k


def test_overlay_blends_the_shaded_mesh_over_the_face_only(scene):
    fp, res = scene
    pic = draw_overlay(fp.photo, [res], CFG).astype(float)
    photo = fp.photo.astype(float)
    a = CFG.mesh_alpha
    face = cv2.erode(fp.face.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    drawn = np.abs(pic - photo).max(-1) > 0
    assert drawn[face].mean() > 0.97
    # inside the face, away from the marks, pic = (1 - a) photo + a shade mesh_rgb: the colour left is the mesh's
    rest = (pic - (1 - a) * photo) / a
    marks = np.zeros(fp.face.shape, bool)
    for x, y in np.round(res.landmarks68).astype(int):
        marks[max(y - 6, 0):y + 7, max(x - 6, 0):x + 7] = True
    plain = face & ~marks & (rest.min(-1) > 5)
    assert plain.sum() > 0.5 * face.sum()
    ratio = rest[plain] / rest[plain][:, 2:3]
    np.testing.assert_allclose(np.median(ratio, 0), np.asarray(CFG.mesh_rgb) / CFG.mesh_rgb[2], atol=0.03)
    # far from the face (and from its label above the detector box), the photo is untouched
    far = cv2.dilate(fp.face.astype(np.uint8), np.ones((25, 25), np.uint8)) == 0
    far[: int(res.bbox[1]) + 2] = False
    assert far.sum() > 1000 and not drawn[far].any()


def test_overlay_of_a_large_photo_is_reduced_and_keeps_the_places():
    fp = face_photo(shape=(600, 640), box=(80, 40, 592, 552), pose=(-20.0, 5.0, 0.0), seed=12, scale=38.0)
    res = face_result(fp)
    cfg = OverlayConfig(max_side=320)
    pic = draw_overlay(fp.photo, [res], cfg)
    assert pic.shape == (300, 320, 3)  # the longer side at max_side, the aspect kept
    assert overlay_scale((3000, 4000), 2048) == pytest.approx(0.512) and overlay_scale((3000, 4000), 4000) == 1.0
    k = 0.5
    vis = res.landmarks68_visible
    pts = (res.landmarks68[vis] + 0.5) * k - 0.5
    assert np.mean([_near(pic, x, y, cfg.visible_rgb, tol=10, reach=0) for x, y in pts]) > 0.85


def test_overlay_numbers_every_face_and_greys_a_failed_one(scene):
    from dataclasses import replace

    fp, res = scene
    failed = replace(res, index=1, bbox=(5.0, 150.0, 40.0, 190.0), error="no usable face surface")
    pic = draw_overlay(fp.photo, [replace(res, index=0), failed], CFG)
    assert _near(pic, 5.0, 170.0, CFG.failed_rgb, tol=5)  # the failed face's box edge, grey
    assert not _near(pic, 22.0, 170.0, CFG.visible_rgb, tol=40, reach=8)  # and nothing else of it
    label = pic[:int(res.bbox[1]) + 2, int(res.bbox[0]) - 2:int(res.bbox[0]) + 70]
    assert (label.min(-1) > 180).sum() > 40 and (label.max(-1) < 40).sum() > 100  # "face0", white on black, above
    assert (fp.photo[:int(res.bbox[1]) + 2].max(-1) < 110).all()  # ... the ok face's box, where the photo is grey


def test_photo_files_and_the_index_count_the_overlay(tmp_path, scene):
    fp, res = scene
    folder = tmp_path / "photo"
    write_face(folder / "face0", res, fp.photo, output=OutputConfig(outputs=frozenset({"depth", "overlay"})))
    assert present_outputs(folder / "face0") == ["depth"]
    assert write_photo_files(folder, [res], fp.photo, OutputConfig(outputs=frozenset({"depth"}))) == []
    assert write_photo_files(folder, [res], fp.photo, OutputConfig(outputs=frozenset({"overlay"}))) == ["overlay.jpg"]
    assert PHOTO_FILES == ("overlay.jpg",) and not (folder / "face0" / "overlay.jpg").exists()
    jpg = cv2.imdecode(np.fromfile(str(folder / "overlay.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert jpg.shape == fp.photo.shape
    expected = cv2.cvtColor(draw_overlay(fp.photo, [res], CFG), cv2.COLOR_RGB2BGR).astype(int)
    assert np.abs(jpg.astype(int) - expected).mean() < 4  # JPEG of the drawing
    # a photo's file counts for each of its faces: reruns and summary.json judge it as they judge face files
    assert present_outputs(folder / "face0") == ["depth", "overlay"] and written_outputs(["overlay.jpg"]) == ["overlay"]
    faces = [{"dir": "face0", "status": "ok", "outputs": ["depth", "overlay"]}]
    assert photo_outputs(folder, faces) == ["depth", "overlay"]
    (folder / "image.json").write_text(json.dumps({"source": "/x.png", "input": "x.png", "status": "ok",
                                                   "faces": faces, "asked": ["depth", "overlay"], "mesh": True}))
    assert finished_photos(tmp_path)[0]["outputs"] == ["depth", "overlay"]
    rec = json.loads((folder / "image.json").read_text())
    want = frozenset({"depth", "overlay"})
    assert missing_outputs(folder, rec, want, mesh=True) == set()  # a rerun skips it
    (folder / "overlay.jpg").unlink()
    assert missing_outputs(folder, rec, want, mesh=True) == {"overlay"}  # ... unless the overlay is gone
    assert finished_photos(tmp_path)[0]["outputs"] == ["depth"]
    from dataclasses import replace

    failed = replace(res, error="no usable face")
    assert write_photo_files(folder, [failed], fp.photo) == [] and not (folder / "overlay.jpg").exists()


def test_overlay_is_an_output_on_by_default_that_needs_no_mesh():
    assert "overlay" in DEFAULT_OUTPUTS and parse_outputs("all") == DEFAULT_OUTPUTS
    assert parse_outputs("overlay,depth") == {"overlay", "depth"}
    assert not OutputConfig(outputs=frozenset({"overlay"})).needs_mesh  # drawn from the fit: meshing not needed
    for field, value in (("max_side", 10), ("mesh_alpha", 1.5), ("jpeg_quality", 0), ("axis_length", 0.0),
                         ("mesh_raster_px", 4)):
        with pytest.raises(ValueError, match=field):
            OverlayConfig(**{field: value})
    with pytest.raises(ValueError, match="colours"):
        OverlayConfig(axis_rgb=((255, 0, 0), (0, 255, 0)))


def test_preview_shows_the_face_large_around_its_crop_box(scene):
    fp, res = scene
    cfg = RenderConfig(tile=128)
    tile = face_panel(fp.photo, res.crop_box, 128, res.crop_angle, res.landmarks68, res.landmarks68_visible,
                      cfg.context)
    box = panel_box(res.crop_box, cfg.context)
    assert box[2] - box[0] == round(1.5 * (res.crop_box[2] - res.crop_box[0]))
    assert abs((box[0] + box[2]) - (res.crop_box[0] + res.crop_box[2])) <= 1  # centred on the crop box
    # the face fills a large part of the panel (the whole 320 px photo in a tile: the face's share of the photo)
    corners = original_to_crop(np.argwhere(fp.face)[:, ::-1].astype(float), box, 128)
    span = np.ptp(corners, axis=0)
    assert span.min() > 0.45 * 128  # the face spans about half the panel or more
    # landmarks where the photo shows them, at the panel's scale: visible ones red dots
    pts = original_to_crop(res.landmarks68, box, 128)
    vis = res.landmarks68_visible
    assert np.mean([_near(tile, x, y, (255, 0, 0), tol=30, reach=0) for x, y in pts[vis]]) > 0.9
    # elsewhere the panel is the photo cut at that box (drawings aside)
    from facevision.face.crop import crop_image

    plain = crop_image(fp.photo, box, 128)
    assert np.mean(np.all(tile == plain, -1)) > 0.8
    sheet = preview_sheet(fp.photo, res.crop, res.crop, res.crop, None, res.crop_box, res.landmarks68, cfg,
                          res.crop_angle, labels=False, visible=vis)
    np.testing.assert_array_equal(sheet[2:130, 2:130], tile)


def test_a_batch_writes_one_overlay_per_photo_and_reruns_judge_it(tmp_path):
    from PIL import Image

    from facevision.predict.runner import BatchConfig, run_batch
    from facevision.predict.predictor import PredictConfig
    from facevision.predict.writer import WriterConfig
    from support.stub_detector import StubDetector
    from support.synthetic import fixed_maps_model

    fp = face_photo(seed=13)
    predictor = StubDetector(fixed_maps_model(fp.depth, fp.corr, fp.mask), PredictConfig(batch_size=2))
    photos = []
    for k in range(2):
        photos.append(tmp_path / f"p{k}.png")
        Image.fromarray(np.clip(fp.photo.astype(int) + 60, 0, 255).astype(np.uint8)).save(photos[-1])  # bright
    out = tmp_path / "out"
    cfg = BatchConfig(log=False, progress=False, writer=WriterConfig(workers=0))
    s = run_batch(predictor, [str(p) for p in photos], out, cfg)
    assert s["counts"]["ok"] == 2
    for k in range(2):
        assert sorted(p.name for p in (out / f"p{k}").iterdir()) == ["face0", "image.json", "overlay.jpg"]
        assert not (out / f"p{k}" / "face0" / "overlay.jpg").exists()
        rec = json.loads((out / f"p{k}" / "image.json").read_text())
        assert "overlay" in rec["faces"][0]["outputs"] and "overlay" in rec["asked"]
    summary = json.loads((out / "summary.json").read_text())
    assert all("overlay" in r["outputs"] for r in summary["inputs"])
    again = run_batch(predictor, [str(p) for p in photos], out, cfg)  # a rerun: nothing to do, no foreign files
    assert again["counts"] == {"ok": 2, "failed": 0, "skipped": 2}
    (out / "p0" / "overlay.jpg").unlink()
    third = run_batch(predictor, [str(p) for p in photos], out, cfg)
    assert third["counts"]["skipped"] == 1 and (out / "p0" / "overlay.jpg").is_file()

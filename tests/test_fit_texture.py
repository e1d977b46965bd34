"""fit_texture.png (issue "Video, overlays and UV textures", item 5): the photo unwrapped onto the fitted face
model in a fixed UV layout. Ground truth: the face model rendered into a photo whose every face pixel is painted
with its own layout (u, v), so a correct texture shows at each texel the texel's own (u, v)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facevision.face.face_model import load_face_model
from facevision.face.images import read_png
from facevision.face.reference import load_reference
from facevision.fit.texture import (GRID_LAYOUT, HIDDEN, MIRRORED, OUTSIDE, REFERENCE_LAYOUT, SEEN, TextureConfig,
                                    UVLayout, texel_lookup, unwrap_texture, uv_layout)
from facevision.predict.outputs import FIT_MESH_FILES, OutputConfig, write_face
from support.face_photo import face_photo, face_result

T = 128  # texture side in the tests: small and quick
NOSE_TIP = 30  # iBUG index


def _texel_uv(size: int) -> np.ndarray:
    """(size, size, 2) (u, v) of every texel centre (OBJ convention)."""
    c = (np.arange(size) + 0.5) / size
    return np.stack(np.meshgrid(c, 1.0 - c), -1)


def _interior(inside: np.ndarray) -> np.ndarray:
    """Texels of ``inside`` whose 8 neighbours are inside too (the texture's border counts as outside)."""
    import cv2

    padded = np.pad(inside, 1).astype(np.uint8)
    return cv2.erode(padded, np.ones((3, 3), np.uint8))[1:-1, 1:-1].astype(bool)


def test_layouts_are_fixed_and_mirror_symmetric():
    from facevision.face.grid import GRID, grid_triangles

    model, ref = load_face_model(), load_reference()
    rng = np.random.default_rng(0)
    a = uv_layout(model.mean, model.triangles)
    b = uv_layout(model.shape(rng.normal(size=model.n_id), rng.normal(size=model.n_exp)) * 40 + 7, model.triangles)
    assert a.name == b.name == REFERENCE_LAYOUT
    np.testing.assert_array_equal(a.uv, ref.vertices[:, :2])  # the correspondence code's own (u, v)
    np.testing.assert_array_equal(a.uv, b.uv)  # the same for any fitted shape
    np.testing.assert_allclose(a.uv[ref.mirror], np.column_stack([1 - a.uv[:, 0], a.uv[:, 1]]), atol=1e-12)
    # 3DDFA grid: (column, row) of the 64 x 64 grid; the 68 landmark vertices at their nearest grid point
    i, j = np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij")
    grid = np.stack([i.ravel() * 1.0, -j.ravel() * 1.0, np.zeros(GRID * GRID)], 1)
    lms = grid[[5 * GRID + 7, 40 * GRID + 33]] + [0.2, -0.1, 0.0]
    g = uv_layout(np.vstack([grid, lms]), grid_triangles())
    assert g.name == GRID_LAYOUT and g.uv.shape == (GRID * GRID + 2, 2)
    np.testing.assert_allclose(g.uv[5 * GRID + 7], [5.5 / GRID, 1 - 7.5 / GRID])
    np.testing.assert_allclose(g.uv[-2:], g.uv[[5 * GRID + 7, 40 * GRID + 33]])
    mirror = (GRID - 1 - i.ravel()) * GRID + j.ravel()
    np.testing.assert_allclose(g.uv[mirror, 0], 1 - g.uv[:GRID * GRID, 0])
    with pytest.raises(ValueError, match="no fixed UV layout"):
        uv_layout(model.mean[:100], model.triangles[:50])


def test_texel_lookup_gives_each_texel_its_own_surface_point():
    model = load_face_model()
    layout = uv_layout(model.mean, model.triangles)
    which, bary = texel_lookup(layout, model.triangles, T)
    inside = which >= 0
    back = np.einsum("nc,ncd->nd", bary[inside], layout.uv[model.triangles[which[inside]]])
    np.testing.assert_allclose(back, _texel_uv(T)[inside], atol=1e-6)
    assert 0.55 < inside.mean() < 0.95  # the face's outline in the unit square
    assert texel_lookup(layout, model.triangles, T)[0] is which  # made once


@pytest.mark.parametrize("pose,angle", [((0.0, 0.0, 0.0), 0.0), ((25.0, -10.0, 12.0), 20.0)])
def test_unwrap_reads_each_texel_where_the_photo_shows_it(pose, angle):
    fp = face_photo(pose=pose, angle=angle, seed=3)
    model = load_face_model()
    tex = unwrap_texture(fp.photo, fp.vertices_px, model.triangles, uv_layout(fp.vertices_px, model.triangles),
                         fp.scale * 2.0, TextureConfig(size=T))  # crop px are 2 photo px here
    which, _ = texel_lookup(uv_layout(fp.vertices, model.triangles), model.triangles, T)
    assert np.array_equal(tex.state == OUTSIDE, which < 0)
    seen = (tex.state == SEEN) & _interior(which >= 0)  # the layout's rim texels sample the face's outline
    assert seen.sum() > 0.75 * _interior(which >= 0).sum()
    err = np.abs(tex.texture[seen][:, :2] / 255.0 - _texel_uv(T)[seen]).max(1)  # the photo paints (u, v) as R, G
    assert np.median(err) < 0.003  # a texel is 1 / 128 = 0.008 wide
    assert (err > 0.02).mean() < 0.005  # points at the face's silhouette in the photo mix with the background
    assert np.mean(tex.texture[seen][:, 2] == 128) > 0.99
    # padding: the rings around the layout repeat its rim (blue stays the photo's 128 but where the rim's texels
    # sample the face's outline in the photo; red and green are the rim's (u, v)); beyond them the texture is grey
    import cv2

    inside = (which >= 0).astype(np.uint8)
    ring = (cv2.dilate(inside, np.ones((3, 3), np.uint8)) > 0) & (inside == 0)
    assert ring.sum() > 100 and np.median(np.abs(tex.texture[ring][:, 2].astype(int) - 128)) <= 1
    assert np.abs(tex.texture[ring][:, :2].astype(int) - 128).max(1).mean() > 30  # face colours, not grey
    beyond = cv2.dilate(inside, np.ones((9, 9), np.uint8)) == 0
    assert (tex.texture[beyond] == TextureConfig().hidden_rgb).all()


def test_hidden_texels_come_from_the_mirror_side_or_are_grey():
    model = load_face_model()
    fp = face_photo(pose=(55.0, 0.0, 0.0), seed=4)
    layout = uv_layout(fp.vertices, model.triangles)
    tex = unwrap_texture(fp.photo, fp.vertices_px, model.triangles, layout, fp.scale * 2.0, TextureConfig(size=T))
    uv = _texel_uv(T)
    mirrored = tex.state == MIRRORED
    assert mirrored.mean() > 0.1  # the face turned away shows one cheek only
    # yaw > 0: the nose points to the image right, the side at u > 0.5 (image right of a frontal face) turns away
    assert uv[mirrored][:, 0].mean() > 0.6 and uv[tex.state == SEEN][:, 0].mean() < 0.5
    got = tex.texture[mirrored][:, :2] / 255.0
    assert np.median(np.abs(got[:, 0] - (1 - uv[mirrored][:, 0]))) < 0.01  # the mirror texel's u
    assert np.median(np.abs(got[:, 1] - uv[mirrored][:, 1])) < 0.01
    # turned away completely: nothing seen, nothing to mirror, every texel grey
    front = face_photo(seed=4).vertices_px
    back = front * [-1.0, 1.0, -1.0] + [2 * front[:, 0].mean(), 0.0, 0.0]  # a frontal face turned by 180 degrees
    cfg = TextureConfig(size=T, hidden_rgb=(128, 128, 128))
    away = unwrap_texture(fp.photo, back, model.triangles, layout, fp.scale * 2.0, cfg)
    assert set(np.unique(away.state)) == {OUTSIDE, HIDDEN} and (away.texture == 128).all()
    s = away.summary()
    assert s["hidden"] == 1.0 and s["seen"] == 0.0 and s["layout"] == REFERENCE_LAYOUT


def _red_centroid(texture: np.ndarray) -> np.ndarray:
    r, g, b = (texture[..., k].astype(int) for k in range(3))
    red = (r > 200) & (g < 60) & (b < 60)
    assert red.sum() >= 4, "the red mark is in the texture"
    rows, cols = np.nonzero(red)
    return np.array([cols.mean(), rows.mean()])


def test_two_photos_give_the_same_layout_the_nose_tip_at_one_texel(tmp_path):
    """Two different photos (identity, expression, pose, crop angle, photo size, face size) through the whole
    path (predictor, fit, write_face): the red mark painted on each nose tip lands on the layout's nose-tip texel."""
    model, ref = load_face_model(), load_reference()
    nose = int(model.ibug68[NOSE_TIP])
    cases = [dict(seed=1, pose=(-15.0, 5.0, 0.0), angle=0.0),
             dict(seed=2, pose=(30.0, -8.0, 10.0), angle=-25.0, shape=(420, 380), box=(60, 80, 316, 336))]
    want = np.array([ref.vertices[nose, 0] * T - 0.5, (1 - ref.vertices[nose, 1]) * T - 0.5])  # texel (col, row)
    found = []
    for k, case in enumerate(cases):
        fp = face_photo(marks={nose: ((255, 0, 0), 4.0)}, **case)
        res = face_result(fp)
        assert res.ok and res.model_fit is not None
        data = write_face(tmp_path / f"p{k}" / "face0", res, fp.photo,
                          output=OutputConfig(outputs=frozenset({"fit_mesh"}), fit_texture_size=T))
        assert data["files"] == list(FIT_MESH_FILES) + ["result.json"]
        assert data["fit_texture"]["layout"] == REFERENCE_LAYOUT and data["fit_texture"]["seen"] > 0.6
        tex = read_png(tmp_path / f"p{k}" / "face0" / "fit_texture.png")
        assert tex.shape == (T, T, 3)
        found.append((tex, _red_centroid(tex)))
        # away from the mark, seen texels show their own (u, v): the fit is close, the layout is the photo's
        which, _ = texel_lookup(uv_layout(fp.vertices, model.triangles), model.triangles, T)
        uv = _texel_uv(T)
        painted = (which >= 0) & (tex[..., 2] == 128)
        err = np.abs(tex[painted][:, :2] / 255.0 - uv[painted])
        assert np.median(err) < 0.01
    # the mark is a disc in the photo: on a turned face it reaches further down the nose's far side, so its
    # centroid in the texture moves by a texel or so; the nose-tip texel itself is red in both
    for tex, centroid in found:
        assert np.linalg.norm(centroid - want) < 2.0
        col, row = np.round(want).astype(int)
        assert tex[row, col, 0] > 200 and tex[row, col, 1] < 60 and tex[row, col, 2] < 60


def test_fit_mesh_obj_uses_the_layout_and_the_texture(tmp_path):
    fp = face_photo(seed=5, pose=(10.0, 0.0, 0.0))
    res = face_result(fp)
    write_face(tmp_path / "face0", res, fp.photo, output=OutputConfig(fit_texture_size=T))
    d = Path(tmp_path / "face0")
    lines = (d / "fit_mesh.obj").read_text().splitlines()
    vt = np.array([[float(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("vt ")])
    layout = uv_layout(res.model_fit.vertices, res.model_fit.triangles)
    assert len(vt) == 468 and np.abs(vt - layout.uv).max() < 1e-6
    assert "mtllib fit_mesh.mtl" in lines and "usemtl fit_mesh_0" in lines
    mtl = (d / "fit_mesh.mtl").read_text()
    assert "newmtl fit_mesh_0" in mtl and "map_Kd fit_texture.png" in mtl
    faces = [ln for ln in lines if ln.startswith("f ")]
    assert len(faces) == len(res.model_fit.triangles) and faces[0].count("/") == 6  # f v/vt/vn
    assert not (d / "fit_mesh_0.png").exists() and not list(d.glob(".*tmp*"))
    from meshing import load_mesh

    assert load_mesh(d / "fit_mesh.obj").n_vertices == 468


@pytest.mark.parametrize("field,value", [("size", 8), ("depth_tol", -1.0), ("min_facing", 1.0), ("pad", -1),
                                         ("hidden_rgb", (0, 0, 300)), ("zbuffer_px", 4)])
def test_texture_config_checks_itself(field, value):
    with pytest.raises(ValueError, match=field):
        TextureConfig(**{field: value})
    with pytest.raises(ValueError, match="fit_texture_size"):
        OutputConfig(fit_texture_size=8)
    with pytest.raises(ValueError, match="uv"):
        unwrap_texture(np.zeros((8, 8, 3), np.uint8), np.zeros((5, 3)), np.zeros((1, 3), int),
                       UVLayout("x", np.zeros((4, 2))), 1.0)


def test_nose_tip_texel_shows_the_photo_at_the_fitted_nose_tip_on_lfw(lfw_root, tmp_path):
    """Real photos, shipped checkpoint: the layout's nose-tip texel has the colour the photo has where the fit puts
    the nose tip (landmark 30), for two different people."""
    from facevision.face.images import read_photo
    from facevision.predict.predictor import Predictor

    ref = load_reference()
    nose = ref.vertices[ref.ibug68[NOSE_TIP], :2]
    col, row = int(nose[0] * 256), int((1 - nose[1]) * 256)
    predictor = Predictor.from_pretrained()
    for k, name in enumerate(("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "AJ_Cook/AJ_Cook_0001.jpg")):
        photo = read_photo(lfw_root / name)
        res = predictor(photo)[0]
        data = write_face(tmp_path / f"{k}", res, photo, output=OutputConfig(outputs=frozenset({"fit_mesh"})))
        assert data["fit_texture"]["seen"] > 0.7  # near-frontal faces
        tex = read_png(tmp_path / f"{k}" / "fit_texture.png").astype(float)
        x, y = np.round(res.landmarks68[NOSE_TIP]).astype(int)
        in_photo = photo[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)
        in_texture = tex[row - 1:row + 1, col - 1:col + 1].reshape(-1, 3).mean(0)
        assert np.abs(in_photo - in_texture).max() < 20, (name, in_photo, in_texture)

"""The real MediaPipe labeler on a few LFW photos: mask without holes, labels aligned with the crop."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_fill_holes

from facevision.face.crop import crop_to_original
from facevision.face.codecs import DEPTH_BASE_PX
from facevision.face.images import read_photo
from data_prep.label_mediapipe import LabelConfig, label_photo
from facevision.face.reference import load_reference

PHOTOS = ["AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
          "Andre_Agassi/Andre_Agassi_0028.jpg", "Abdullah_Gul/Abdullah_Gul_0001.jpg"]

pytestmark = pytest.mark.lfw


@pytest.fixture(scope="module")
def labelled(lfw_root):
    out = []
    for rel in PHOTOS:
        img = read_photo(lfw_root / rel)
        out.append((rel, img, label_photo(img)))
    return out


def test_maps_have_the_documented_format(labelled):
    for rel, _, res in labelled:
        s = res.sample
        assert s.image.shape == (128, 128, 3) and s.image.dtype == np.uint8, rel
        assert s.depth.shape == (128, 128) and s.depth.dtype == np.float32
        assert s.corr.shape == (128, 128, 3) and s.mask.dtype == bool
        assert 0.15 < s.mask.mean() < 0.7, rel
        assert s.depth[s.mask].min() == pytest.approx(DEPTH_BASE_PX, abs=1e-4)
        assert (s.depth[~s.mask] == 0).all() and (s.corr[~s.mask] == 0).all()
        assert s.corr[s.mask].min() >= 0 and s.corr[s.mask].max() <= 1
        # a face is about as deep as it is wide / 2: the depth range is plausible in crop pixels
        width = s.mask.any(0).sum()
        assert 0.25 * width < s.depth.max() < 1.0 * width, rel


def test_no_holes_inside_the_face_mask(labelled):
    for rel, _, res in labelled:
        m = res.sample.mask
        assert not (binary_fill_holes(m) & ~m).any(), rel


def test_nose_tip_landmark_falls_on_the_depth_maximum(labelled):
    for rel, _, res in labelled:
        d = res.sample.depth
        row, col = np.unravel_index(np.argmax(d), d.shape)
        lm = res.landmarks_crop
        # exact alignment: the depth maximum sits on the nearest landmark (a piecewise-linear surface peaks at a vertex)
        near = lm[np.argmax(lm[:, 2])]
        at_near = d[int(round(near[1])), int(round(near[0]))]
        assert np.hypot(col - near[0], row - near[1]) <= 1.0 or d.max() - at_near < 0.01, rel  # (or a tie)
        # and that is the nose tip: MediaPipe 4 (pronasale), or a vertex beside it when the head is turned
        nose = lm[4]
        assert np.hypot(col - nose[0], row - nose[1]) <= 5.0, rel
        c, r = np.round(nose[:2]).astype(int)
        assert d[r, c] >= d.max() - 1.0, rel


def test_correspondence_matches_reference_at_landmarks(labelled):
    ref = load_reference()
    for rel, _, res in labelled:
        lm = res.landmarks_crop
        # the correspondence value at a visible vertex's pixel is close to that vertex's reference coordinates
        for k in (4, 1, 168, 33, 263, 61, 291, 199):
            c, r = int(round(lm[k, 0])), int(round(lm[k, 1]))
            assert res.sample.mask[r, c], (rel, k)
            assert np.abs(res.sample.corr[r, c] - ref.vertices[k]).max() < 0.08, (rel, k)


def test_crop_and_photo_line_up(labelled):
    for rel, img, res in labelled:
        # crop pixels mapped back to the photo show the same colours (crop = resampled photo)
        lm_photo = crop_to_original(res.landmarks_crop, res.crop_box, 128, res.crop_angle)
        assert np.allclose(lm_photo, res.landmarks_photo, atol=1e-6)
        for k in (4, 1, 168):
            c, r = np.round(res.landmarks_crop[k, :2]).astype(int)
            x, y = np.round(res.landmarks_photo[k, :2]).astype(int)
            assert np.abs(res.sample.image[r, c].astype(int) - img[y, x].astype(int)).mean() < 40, (rel, k)


def test_mirrored_photo_gives_mirrored_correspondence(labelled):
    rel, img, res = labelled[1]
    flipped = label_photo(np.ascontiguousarray(img[:, ::-1]), LabelConfig())
    m1, m2 = res.sample.mask, flipped.sample.mask[:, ::-1]
    both = m1 & m2
    assert both.sum() > 0.9 * m1.sum() * 0.9
    u1 = res.sample.corr[..., 0][both]
    u2 = flipped.sample.corr[..., 0][:, ::-1][both]
    assert np.median(np.abs(u1 - (1 - u2))) < 0.03


def test_mirror_average_pairs_each_face_with_its_mirror_twin():
    from data_prep.landmarks import _average_with_mirror
    from facevision.face.reference import load_reference

    ref = load_reference()
    rng = np.random.default_rng(0)
    face = np.column_stack([rng.uniform(40, 80, 468), rng.uniform(30, 90, 468), rng.normal(0, 5, 468)])
    # what Face Mesh would give on the mirrored photo: the same face, reflected, vertices swapped left/right,
    # with a small bias of its own
    width = 128
    mirrored = face[ref.mirror].copy()
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    biased = mirrored + [1.0, 0.0, 0.0]
    far = mirrored + [60.0, 0.0, 0.0]  # another face elsewhere in the photo
    out = _average_with_mirror(face, [far, biased], width)
    assert np.allclose(out[:, 1:], face[:, 1:]) and np.allclose(out[:, 0], face[:, 0] - 0.5)
    assert np.array_equal(_average_with_mirror(face, [], width), face)


def test_depth_scale_deepens_face_mesh_z_only(lfw_root):
    from data_prep.landmarks import FaceMeshConfig, face_mesh_landmarks

    img = read_photo(lfw_root / PHOTOS[0])
    plain = face_mesh_landmarks(img, FaceMeshConfig(max_faces=1))[0]
    deep = face_mesh_landmarks(img, FaceMeshConfig(max_faces=1, z_stretch=1.17))[0]
    assert np.allclose(deep[:, :2], plain[:, :2])
    assert np.allclose(deep[:, 2], 1.17 * plain[:, 2])
    assert np.ptp(plain[:, 2]) > 10.0  # a real face has depth to scale


@pytest.mark.parametrize("bad", [0.0, -1.0, 11.0])
def test_depth_scale_must_be_positive_and_sane(bad):
    from data_prep.landmarks import FaceMeshConfig

    with pytest.raises(ValueError, match="z_stretch"):
        FaceMeshConfig(z_stretch=bad)

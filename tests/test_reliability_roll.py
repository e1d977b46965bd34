"""Faces at any roll (Reliability II #4): an upside-down or sideways face gets an upright crop, or is refused.

MediaPipe's keypoints read a face turned by more than about 90 deg as one turned the other way by less (the
chin where the forehead is), so the eye line alone cannot give the full circle: :func:`facevision.face.crop.face_crop`
reads the eye line over the full circle and keeps its quarter turn for turned-away faces, and
:func:`facevision.face.crop.upright_face_crop` (what ``predict`` cuts with) takes a second detector look to find
upside-down crops. Synthetic keypoints and a stub detector check the rules; LFW photos turned by np.rot90 check
them on real faces (skipped without LFW).
"""
from __future__ import annotations

import numpy as np
import pytest

from facevision.face.crop import (CropConfig, crop_image, face_crop, original_to_crop, square_crop_box, upright_angle,
                                  upright_face_crop, upright_turn)
from facevision.face.detect import FaceBox

LFW_PHOTOS = ("Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Paris_Hilton/Paris_Hilton_0001.jpg",
              "Tim_Robbins/Tim_Robbins_0001.jpg", "Azra_Akin/Azra_Akin_0001.jpg")

#: the full-circle rule of upright_face_crop (prepare's plain face_crop fades the whole turn: CropConfig's default)
FULL = CropConfig(quarter_turns=True, max_angle=180.0)


def wrap(a: float) -> float:
    a = float(a) % 360.0
    return a - 360.0 if a > 180.0 else a


# an upright frontal face about the origin, box width 100 (x right, y down): right eye (image left), left eye,
# nose tip, mouth centre, right ear, left ear; eye distance 41 = LFW's median 0.41 x box width
UPRIGHT = np.array([[-20.5, -10.0], [20.5, -10.0], [0.0, 12.0], [0.0, 30.0], [-45.0, -2.0], [45.0, -2.0]])


def turned_face(deg: float, centre=(200.0, 160.0), eye_scale: float = 1.0):
    """Box and keypoints of the face turned counter-clockwise as seen by ``deg`` (the detector's box stays axis
    aligned and square). ``eye_scale`` < 1 squeezes the eye distance like a turned-away face."""
    pts = UPRIGHT * [eye_scale, 1.0]
    t = np.radians(-deg)  # y down: a positive rotation matrix angle turns clockwise as seen
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    kp = pts @ rot.T + centre
    box = (centre[0] - 50.0, centre[1] - 50.0, centre[0] + 50.0, centre[1] + 50.0)
    return box, [tuple(p) for p in kp]


# (a) synthetic keypoints: the full circle


@pytest.mark.parametrize("deg", [0, 20, -35, 60, 90, 120, 135, 180, -150, 210, 270, 300])
def test_face_crop_reads_the_eye_line_over_the_full_circle(deg):
    box, kp = turned_face(deg)
    crop_box, angle = face_crop(box, kp, FULL)
    assert angle == pytest.approx(wrap(-deg), abs=1e-9)
    # the face is upright in the crop: eyes level, right eye on the left, nose and mouth below the eyes
    c = original_to_crop(np.array(kp), crop_box, 128, angle)
    assert c[0, 1] == pytest.approx(c[1, 1], abs=1e-6) and c[0, 0] < c[1, 0]
    assert c[2, 1] > c[0, 1] and c[3, 1] > c[2, 1]


@pytest.mark.parametrize("deg,expected", [(10, 0.0), (-10, 0.0), (100, -90.0), (-80, 90.0), (190, 180.0),
                                          (170, 180.0), (-100, 90.0), (260, 90.0)])
def test_turned_away_faces_fade_only_the_residual_beyond_the_quarter_turn(deg, expected):
    cfg = FULL
    # eye distance 0.15 x box width: below upright_none_ratio, the eye line's residual is not trusted at all
    box, kp = turned_face(deg, eye_scale=15.0 / 41.0)
    assert face_crop(box, kp, cfg)[1] == pytest.approx(expected, abs=1e-9)  # upside down stays upside down
    # half way between the two ratios: half the residual
    half = 0.5 * (cfg.upright_full_ratio + cfg.upright_none_ratio) * 100 / 41.0
    box, kp = turned_face(deg, eye_scale=half)
    assert face_crop(box, kp, cfg)[1] == pytest.approx(wrap(expected + 0.5 * wrap(-deg - expected)), abs=1e-6)


def test_upright_angle_covers_the_full_circle():
    assert upright_angle((0, 0), (-1, 0)) == 180.0
    assert upright_angle((0.0, 0.0), (-1.0, -0.0)) == 180.0  # arctan2 gives -180 here: (-180, 180] never has it
    assert upright_angle((0, 0), (0, -1)) == -90.0 and upright_angle((0, 0), (0, 1)) == 90.0
    assert face_crop(*turned_face(180), CropConfig(quarter_turns=True, max_angle=90.0))[1] == 90.0  # a limit holds


def _rot90_points(pts: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
    """Pixel-centre points of an H x W photo -> the same points in np.rot90(photo, k) (counter-clockwise)."""
    p = np.array(pts, dtype=np.float64)
    for _ in range(k % 4):
        p = np.stack([p[:, 1], w - 1 - p[:, 0]], axis=1)
        h, w = w, h
    return p


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("deg", [0.0, 12.0, -30.0])
def test_face_crop_turns_with_the_photo(k, deg):
    """Turning the photo by quarter turns turns the crop with it: the face lands on the same crop pixels (the
    box centre's shift towards the top of the face follows the face; the integer box rounds by at most 1 px)."""
    h, w = 300, 400
    box, kp = turned_face(deg, centre=(181.3, 143.7))
    crop_box, angle = face_crop(box, kp, FULL)
    ref = original_to_crop(np.array(kp), crop_box, 128, angle)
    corners = np.array([[box[0], box[1]], [box[2], box[3]]]) - 0.5  # edges -> pixel-centre coordinates
    rc = _rot90_points(corners, k, h, w) + 0.5
    rbox = (rc[:, 0].min(), rc[:, 1].min(), rc[:, 0].max(), rc[:, 1].max())
    rkp = _rot90_points(np.array(kp), k, h, w)
    rcrop_box, rangle = face_crop(rbox, [tuple(p) for p in rkp], FULL)
    assert wrap(rangle - (angle - 90.0 * k)) == pytest.approx(0.0, abs=1e-9)
    scale = 128 / (crop_box[2] - crop_box[0])
    assert np.abs(original_to_crop(rkp, rcrop_box, 128, rangle) - ref).max() <= scale * 1.0 + 1e-9


# (c) upright photos: exactly the rule prepare made the training crops with


def old_face_crop(box, keypoints, size=128, margin=1.4, shift_y=-0.05, max_angle=90.0, full=0.355, none=0.205):
    """The crop rule before faces at any roll were handled (a copy, for comparison)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    side = max(1, int(round(margin * max(w, h))))
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1) + shift_y * h
    bx0, by0 = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    dx, dy = keypoints[1][0] - keypoints[0][0], keypoints[1][1] - keypoints[0][1]
    angle = float(np.clip(np.degrees(np.arctan2(dy, dx)), -max_angle, max_angle))
    ratio = float(np.hypot(dx, dy)) / max(w, 1e-9)
    angle *= float(np.clip((ratio - none) / (full - none), 0.0, 1.0))
    return (bx0, by0, bx0 + side, by0 + side), angle


def test_small_angles_give_exactly_the_old_crops():
    rng = np.random.default_rng(4)
    n = 0
    for _ in range(2000):
        x0, y0 = rng.uniform(-20, 300, 2)
        w, h = rng.uniform(20, 200), rng.uniform(20, 200)
        box = (x0, y0, x0 + w, y0 + h)
        a = np.radians(rng.uniform(-44.9, 44.9))
        d = rng.uniform(0.05, 0.7) * w
        e0 = rng.uniform([x0, y0], [x0 + w, y0 + h])
        kp = [tuple(e0), (e0[0] + d * np.cos(a), e0[1] + d * np.sin(a)), tuple(e0 + 5)]
        old_box, old_angle = old_face_crop(box, kp)
        new_box, new_angle = face_crop(box, kp)
        assert new_box == old_box and square_crop_box(box) == old_box
        assert new_angle == pytest.approx(old_angle, abs=1e-9)
        n += 1
    assert n == 2000


@pytest.mark.parametrize("deg", [50.0, -70.0, 89.0, -90.0])
def test_frontal_faces_beyond_45_degrees_turn_as_before(deg):
    box, kp = turned_face(-deg)
    assert face_crop(box, kp)[1] == pytest.approx(old_face_crop(box, kp)[1], abs=1e-9)
    assert upright_turn(box, kp) == pytest.approx(deg, abs=1e-9)


# (a) the second look: a stub detector that finds a face the right way up where the top of the face is bright


def _photo(upside_down: bool, size=(240, 320)) -> np.ndarray:
    """A grey photo with a 'face' at (160, 120): its top half bright, bottom half dark (turned if upside_down)."""
    img = np.full(size + (3,), 60, np.uint8)
    yy, xx = np.mgrid[:size[0], :size[1]]
    disk = (xx - 160) ** 2 + (yy - 120) ** 2 < 45 ** 2
    top = yy < 120
    img[disk & (top != upside_down)] = 230
    img[disk & (top == upside_down)] = 120
    return img


def stub_detect(scores=(0.9, 0.6), half_eye=0.1):
    """Finds a centred face in any image, scoring ``scores[0]`` when the middle's top half is the brighter one,
    else ``scores[1]``; keypoints level (as MediaPipe reads an upside-down face), eyes ``2 half_eye`` x the
    image width apart (eye ratio ``4 half_eye``: 0.4 frontal); box = the image's middle half."""
    def detect(image):
        h, w = image.shape[:2]
        mid = image[h // 4: 3 * h // 4, w // 4: 3 * w // 4].astype(float).mean(axis=(1, 2))
        upright = mid[: len(mid) // 2].mean() > mid[len(mid) // 2:].mean()
        score = scores[0] if upright else scores[1]
        if score <= 0:
            return []
        kp = (((0.5 - half_eye) * w, 0.45 * h), ((0.5 + half_eye) * w, 0.45 * h), (0.5 * w, 0.55 * h), (0.5 * w, 0.63 * h))
        return [FaceBox((0.25 * w, 0.25 * h, 0.75 * w, 0.75 * h), score, kp)]
    return detect


FIRST_BOX = (128.0, 88.0, 192.0, 152.0)
FIRST_KP = ((141.0, 112.0), (167.0, 112.0), (154.0, 125.0), (154.0, 136.0))  # level eyes, eye ratio 0.41


def test_upright_face_keeps_the_face_crop_of_prepare():
    u = upright_face_crop(_photo(False), FIRST_BOX, FIRST_KP, detect=stub_detect())
    assert (u.crop_box, u.angle) == face_crop(FIRST_BOX, FIRST_KP, FULL)
    assert u.trusted and not u.turned and not u.refined and u.reason is None
    assert (u.score, u.turned_score) == (0.9, 0.6)


def test_upside_down_face_is_turned_by_the_second_look():
    img = _photo(True)
    u = upright_face_crop(img, FIRST_BOX, FIRST_KP, detect=stub_detect())
    assert u.trusted and u.turned and u.refined
    assert abs(wrap(u.angle - 180.0)) < 1.0
    first_box, _ = face_crop(FIRST_BOX, FIRST_KP, FULL)
    assert abs((u.crop_box[2] - u.crop_box[0]) - (first_box[2] - first_box[0])) <= 1  # same size, mapped back
    assert abs(0.5 * (u.crop_box[0] + u.crop_box[2]) - 160) <= 1.5
    crop = crop_image(img, u.crop_box, 64, u.angle).astype(float)
    assert crop[16:32, 16:48].mean() > crop[32:48, 16:48].mean() + 50  # the bright top of the face is on top


def test_face_not_found_again_or_a_close_call_is_not_trusted():
    u = upright_face_crop(_photo(True), FIRST_BOX, FIRST_KP, detect=stub_detect((0.0, 0.0)))
    assert not u.trusted and "roll is unknown" in u.reason and "not found" in u.reason
    assert (u.crop_box, u.angle) == face_crop(FIRST_BOX, FIRST_KP, FULL)
    u = upright_face_crop(_photo(True), FIRST_BOX, FIRST_KP, detect=stub_detect((0.62, 0.6)))
    assert not u.trusted and "cannot tell which way up" in u.reason
    # the keypoints' own reading winning narrowly is kept (as on upright photos)
    u = upright_face_crop(_photo(False), FIRST_BOX, FIRST_KP, detect=stub_detect((0.62, 0.6)))
    assert u.trusted and not u.turned


def test_the_photos_own_detection_counts_for_the_face_as_cut():
    # the square as cut finds nothing, the turned one scores 0.6: the photo's detection (0.8) saw it this way up
    u = upright_face_crop(_photo(False), FIRST_BOX, FIRST_KP, detect=stub_detect((0.0, 0.6)), score=0.8)
    assert u.trusted and not u.turned and u.score == 0.8


# a turned-away face: eyes close together (ratio 0.16), their line steep as a profile's unsure keypoints can be
PROFILE_KP = ((150.0, 108.0), (155.0, 117.0), (160.0, 125.0), (158.0, 136.0))
PROFILE_LEVEL_KP = ((150.0, 110.0), (160.0, 112.0), (160.0, 125.0), (158.0, 136.0))


def test_turned_away_faces_keep_the_photos_up():
    plain = face_crop(FIRST_BOX, PROFILE_KP)
    assert plain != face_crop(FIRST_BOX, PROFILE_KP, FULL)  # the full circle would turn it sideways
    for photo, scores in ((_photo(False), (0.7, 0.7)), (_photo(True), (0.7, 0.8))):  # a narrow win is not enough
        u = upright_face_crop(photo, FIRST_BOX, PROFILE_KP, detect=stub_detect(scores, half_eye=0.03))
        assert u.trusted and not u.turned and not u.refined
        assert (u.crop_box, u.angle) == plain
    # a clear win of the face turned by 180 deg refuses it (its way up is unknown); it is not turned
    plain = face_crop(FIRST_BOX, PROFILE_LEVEL_KP)
    u = upright_face_crop(_photo(True), FIRST_BOX, PROFILE_LEVEL_KP, detect=stub_detect((0.8, 0.3), half_eye=0.03))
    assert not u.trusted and "turned-away" in u.reason and (u.crop_box, u.angle) == plain
    u = upright_face_crop(_photo(False), FIRST_BOX, PROFILE_LEVEL_KP, detect=stub_detect((0.8, 0.3), half_eye=0.03))
    assert u.trusted and (u.crop_box, u.angle) == plain


def test_predictor_refuses_a_face_whose_way_up_is_unknown(monkeypatch):
    """The refusal reaches the result: an error naming why, no landmarks or pose, marked not ok."""
    import facevision.predict.predictor as pp
    from facevision.predict.predictor import PredictConfig, Predictor
    from support.synthetic import fixed_maps_model, render_reference

    face = render_reference(128, 0.0, 0.0, 0.0, scale=36.0)
    predictor = Predictor(fixed_maps_model(face.depth, face.corr, face.mask), PredictConfig(mesh=None))
    close_call = stub_detect((0.62, 0.6))
    monkeypatch.setattr(pp, "detect_faces", lambda image, config: close_call(image))
    r = predictor(_photo(True))[0]
    assert not r.ok and r.refused and "roll is unknown" in r.error and r.landmarks68 is None and r.pose is None
    clear = stub_detect((0.9, 0.6))
    monkeypatch.setattr(pp, "detect_faces", lambda image, config: clear(image))
    r = predictor(_photo(True))[0]
    assert r.ok and abs(wrap(r.crop_angle - 180.0)) < 1.0


def test_no_keypoints_no_second_look():
    def fail(image):
        raise AssertionError("no detector run expected")
    u = upright_face_crop(_photo(True), FIRST_BOX, None, detect=fail)
    assert (u.crop_box, u.angle, u.trusted) == (square_crop_box(FIRST_BOX), 0.0, True)
    u = upright_face_crop(_photo(True), FIRST_BOX, FIRST_KP, CropConfig(upright=False), detect=fail)
    assert u.angle == 0.0 and u.trusted


# (b) real photos turned by np.rot90


def _rotated(image: np.ndarray, k: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, k))


def test_lfw_photos_turned_by_quarter_turns_get_upright_crops(lfw_root):
    from facevision.face.detect import detect_faces
    from facevision.face.images import read_photo

    for name in LFW_PHOTOS:
        img = read_photo(lfw_root / name)
        for k in range(4):
            im = _rotated(img, k)
            f = detect_faces(im)[0]
            u = upright_face_crop(im, f.box, f.keypoints)
            assert u.trusted, (name, k, u.reason)
            if k == 0:  # upright: exactly the crop prepare made
                assert (u.crop_box, u.angle) == face_crop(f.box, f.keypoints, FULL)
                base = u.angle
            # MediaPipe reads a sideways face's eye line 10-20 deg short of 90 (median 11-16 deg on 66 LFW photos),
            # a residual roll the network takes (the predicted roll is within 10 deg, test below)
            assert abs(wrap(u.angle - (base - 90.0 * k))) < 25.0, (name, k, u.angle, base)


def _nme(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.linalg.norm(pred - true, axis=1).mean() / np.linalg.norm(true[36] - true[45]))


@pytest.fixture(scope="module")
def predictor():
    from facevision.predict.predictor import PredictConfig, Predictor

    return Predictor.from_pretrained(config=PredictConfig(mesh=None))


def _roll_and_landmarks(predictor, im):
    """Detect, cut with upright_face_crop (the crop predict uses), predict."""
    f = list(predictor.detect(im))[0]
    u = upright_face_crop(im, f.box, f.keypoints)
    assert u.trusted, u.reason
    crop = crop_image(im, u.crop_box, predictor.size, u.angle)
    r = predictor.predict_crops(crop[None], [u.crop_box], [f.box], [f.score], None, [u.angle])[0]
    assert r.ok, r.error
    return r.pose.roll, r.landmarks68


def test_rotated_photo_gives_turned_roll_and_landmarks_on_the_face(lfw_root, predictor):
    from facevision.face.images import read_photo

    img = read_photo(lfw_root / LFW_PHOTOS[0])
    h, w = img.shape[:2]
    roll0, lm0 = _roll_and_landmarks(predictor, img)
    assert abs(roll0) < 10.0
    for k in (1, 2, 3):
        roll, lm = _roll_and_landmarks(predictor, _rotated(img, k))
        # np.rot90 turns counter-clockwise as seen; pose roll > 0 is counter-clockwise as seen
        assert abs(wrap(roll - roll0 - 90.0 * k)) < 10.0, (k, roll, roll0)
        assert _nme(lm, _rot90_points(lm0, k, h, w)) < 0.1, k


@pytest.mark.parametrize("k", [1, 2, 3])
def test_predictor_on_a_rotated_photo(lfw_root, predictor, k):
    from facevision.face.images import read_photo

    img = read_photo(lfw_root / LFW_PHOTOS[0])
    h, w = img.shape[:2]
    r0 = predictor(img)[0]
    r = predictor(_rotated(img, k))[0]
    if not r.ok:  # refusing is an allowed answer; a wrong answer marked ok is not
        return
    assert abs(wrap(r.pose.roll - r0.pose.roll - 90.0 * k)) < 10.0
    assert _nme(r.landmarks68, _rot90_points(r0.landmarks68, k, h, w)) < 0.1

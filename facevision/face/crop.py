"""Square face crops: one set of functions used by both ``prepare`` and ``predict`` so crops match.

Coordinates: original-photo pixels, x right, y down, pixel centres at integer coordinates.
A crop box ``(x0, y0, x1, y1)`` is integer and exclusive at the end (it covers columns
x0..x1-1); it may extend past the photo, and the part outside is zero-padded. Crop pixel
``(i, j)`` (column, row) shows the photo point
``x = x0 + (i + 0.5) / s - 0.5``, ``y = y0 + (j + 0.5) / s - 0.5`` with ``s = size / (x1 - x0)``.

Upright crops: a crop may also be turned by ``angle`` degrees about the box centre, so that a tilted
face comes out with level eyes (:func:`upright_angle` reads the angle from the detector's eye
keypoints; :func:`face_crop` is the one rule ``prepare`` and ``predict`` share). ``angle`` is the
direction of the crop's x axis in the photo, measured from the photo's x axis towards its y axis,
i.e. clockwise as the viewer sees it (y points down). With ``c`` the box centre and ``m = (S - 1) / 2``
the crop centre: ``crop = s * R(-angle) (photo - c) + m``. ``angle = 0`` is the plain box crop above;
angles cover the full circle, (-180, 180].

Faces turned by more than 90 degrees: MediaPipe's detector reads every face as if it were at most about
90 degrees from upright, so its keypoints give the eye line only up to a half turn (an upside-down face
comes back with level eyes, nose and mouth below them: the chin where the forehead is). The crop as cut
then shows the face upside down; :func:`upright_face_crop` (the crop for ``predict``) finds that with a second
detector look at the crop (upright and turned by 180 degrees) and places the crop again, or says that it cannot
tell which way up the face is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import cv2
import numpy as np

from facevision.common.checks import check_int, check_number

__all__ = [
    "CropConfig",
    "square_crop_box",
    "crop_image",
    "crop_scale",
    "original_to_crop",
    "crop_to_original",
    "crop_matrix",
    "upright_angle",
    "upright_turn",
    "face_crop",
    "UprightCrop",
    "upright_face_crop",
]


@dataclass(frozen=True)
class CropConfig:
    """How a detector box becomes a square crop; checked when built (ValueError naming the field).

    size: output side in pixels.
    margin: side of the square = ``margin * max(box width, box height)``. MediaPipe's detector box
        spans roughly brows to mouth; the value is chosen so the whole labelled mesh (forehead to chin,
        ear to ear) fits with a little background.
    shift_y: the square's centre is moved by ``shift_y * box height`` (negative = up) from the box centre.

    upright: turn each crop so the detector's eye keypoints are level (:func:`upright_turn`);
        faces without keypoints are cropped unturned.
    max_angle: eye-line angles beyond this (degrees) are clipped to it (90; :func:`upright_face_crop` uses 180,
        the full circle).
    quarter_turns: fade only the eye line's residual beyond its nearest quarter turn for turned-away faces
        (:func:`upright_turn`); off for ``prepare`` and the plain crop, whose rule fades the whole turn, so
        profile faces, whose eye keypoints are unsure, are not turned sideways. :func:`upright_face_crop`
        switches it on for its second look.
    upright_full_ratio, upright_none_ratio: the eye keypoints of a turned-away face are unsure (one eye
        is hidden), so the turn is scaled by how frontal the face looks: eye distance / box width at or
        above ``upright_full_ratio`` turns fully, at or below ``upright_none_ratio`` not at all, linearly
        between. The limits are a frontal face's ratio (about 0.41) x cos 30 deg and x cos 60 deg, i.e. full
        turning up to about 30 deg of yaw, none beyond 60.
        "Not at all" means no turn beyond the nearest quarter turn (0, +-90, 180) of the eye line: the
        unsure part is the residual, not that a photo was taken sideways (:func:`upright_turn`).
    half_turn_context, half_turn_size, half_turn_min_gap, half_turn_refuse_gap, refine_angle:
        :func:`upright_face_crop` (faces at any roll, ``predict``) runs the detector again on a ``half_turn_size``
        px square of ``half_turn_context`` x the detector box (as ``margin``), upright and turned by 180 deg;
        for a frontal face, scores closer than ``half_turn_min_gap`` with the turned one ahead leave it
        untrusted; a turned-away face is refused only when the turned one leads by ``half_turn_refuse_gap``;
        a turn of more than ``refine_angle`` deg read in that second look re-places the crop (docs/predict.md).
    """

    size: int = 128
    margin: float = 1.4
    shift_y: float = -0.05
    upright: bool = True
    max_angle: float = 90.0
    quarter_turns: bool = False
    upright_full_ratio: float = 0.355
    upright_none_ratio: float = 0.205
    half_turn_context: float = 2.0
    half_turn_size: int = 128
    half_turn_min_gap: float = 0.1
    half_turn_refuse_gap: float = 0.3
    refine_angle: float = 20.0

    def __post_init__(self) -> None:
        for name in ("size", "half_turn_size"):
            check_int(self, name, low=1, unit="px")
        for name in ("margin", "half_turn_context"):
            check_number(self, name, low=0, low_open=True, finite=False)
        check_number(self, "max_angle", 0, 180, unit="degrees")
        if not 0.0 <= float(self.upright_none_ratio) <= float(self.upright_full_ratio):
            raise ValueError(f"CropConfig needs 0 <= upright_none_ratio <= upright_full_ratio, got upright_none_ratio "
                             f"{self.upright_none_ratio!r}, upright_full_ratio {self.upright_full_ratio!r}")
        for name in ("half_turn_min_gap", "half_turn_refuse_gap", "refine_angle"):
            check_number(self, name, low=0, finite=False)


def square_crop_box(box: Sequence[float], config: CropConfig = CropConfig(),
                    quarter: int = 0) -> tuple[int, int, int, int]:
    """Detector box (float x0, y0, x1, y1) -> integer square crop box in original pixels (may extend past the photo).

    quarter: the face's way up in quarter turns of the crop angle (0 upright, 1 = crop angle 90, 2 = 180,
    3 = -90); ``shift_y`` moves the centre towards the top of the face, which is the photo's top only for 0."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    if not (w > 0 and h > 0):
        raise ValueError(f"face box must have positive size, got {tuple(box)}")
    side = max(1, int(round(config.margin * max(w, h))))
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    # the crop's y axis in photo px is (-sin q, cos q) for a crop angle q
    quarter %= 4
    if quarter == 0:
        cy += config.shift_y * h
    elif quarter == 2:
        cy -= config.shift_y * h
    elif quarter == 1:
        cx -= config.shift_y * w
    else:
        cx += config.shift_y * w
    bx0 = int(round(cx - side / 2.0))
    by0 = int(round(cy - side / 2.0))
    return (bx0, by0, bx0 + side, by0 + side)


def upright_angle(right_eye: Sequence[float], left_eye: Sequence[float]) -> float:
    """Angle (degrees in (-180, 180], clockwise as seen) of the line from the subject's right eye (image
    left in a frontal photo) to the left eye: the crop ``angle`` that makes that line level."""
    dx, dy = float(left_eye[0]) - float(right_eye[0]), float(left_eye[1]) - float(right_eye[1])
    a = float(np.degrees(np.arctan2(dy, dx)))
    return a + 360.0 if a <= -180.0 else a


def _wrap(angle: float) -> float:
    """Degrees -> (-180, 180]."""
    a = float(angle) % 360.0
    return a - 360.0 if a > 180.0 else a


def eye_ratio(box: Sequence[float], keypoints: Sequence[Sequence[float]]) -> float:
    """Eye keypoints' distance / box width of a detection: about 0.41 for a frontal face (LFW), smaller turned away."""
    return float(np.hypot(keypoints[1][0] - keypoints[0][0], keypoints[1][1] - keypoints[0][1])) / \
        max(float(box[2]) - float(box[0]), 1e-9)


def upright_turn(box: Sequence[float], keypoints: Sequence[Sequence[float]],
                 config: CropConfig = CropConfig()) -> float:
    """Crop angle (degrees, (-180, 180]) that levels the eye keypoints (right eye, left eye first) of a detection.

    The eye line's angle ``a`` (:func:`upright_angle`) is split into its nearest quarter turn ``q`` (0, +-90
    or 180; ties go to 0 or 180) and the residual ``a - q`` (within +-45 deg). Only the residual is faded for
    turned-away faces (weight from eye distance / box width, see :class:`CropConfig`): ``q + weight (a - q)``,
    clipped to ``+-config.max_angle``. For ``|a| < 45`` this is ``weight * a``; a sideways face keeps its
    quarter turn, since the eye distance of a frontal face turned by 90 deg is often small against the box
    width and fading the whole turn would leave the face sideways in the crop. With ``quarter_turns`` off the
    whole turn is faded (``prepare``'s rule)."""
    a = upright_angle(keypoints[0], keypoints[1])
    if not config.quarter_turns:  # prepare's rule: the whole turn faded
        a = float(np.clip(a, -config.max_angle, config.max_angle))
    quarter = 90.0 * float(np.round(a / 90.0)) if config.quarter_turns else 0.0
    ratio = eye_ratio(box, keypoints)
    span = config.upright_full_ratio - config.upright_none_ratio
    weight = float(np.clip((ratio - config.upright_none_ratio) / max(span, 1e-9), 0.0, 1.0))
    angle = _wrap(quarter + weight * (a - quarter))
    return float(np.clip(angle, -config.max_angle, config.max_angle))


def face_crop(box: Sequence[float], keypoints: Sequence[Sequence[float]] | None,
              config: CropConfig = CropConfig()) -> tuple[tuple[int, int, int, int], float]:
    """Detector box + keypoints (MediaPipe order: right eye, left eye, ...) -> (crop box, crop angle).

    The one crop rule of ``prepare`` and ``predict``. The box is turned about its centre, so the square
    keeps its size and centre (``shift_y`` goes towards the top of the face, by the nearest quarter turn of
    the angle: for an angle within +-45 deg, towards the photo's top); angle is 0 without keypoints
    or with ``config.upright`` off, else :func:`upright_turn` (the residual beyond the nearest quarter turn
    shrinks for turned-away faces).
    Keypoints cannot tell a face turned by more than 90 deg (see the module docstring): such a crop shows it
    upside down, which :func:`upright_face_crop` finds and mends.
    """
    angle = 0.0
    if config.upright and keypoints is not None and len(keypoints) >= 2:
        angle = upright_turn(box, keypoints, config)
    return square_crop_box(box, config, int(np.round(angle / 90.0)) % 4), angle


@dataclass(frozen=True)
class UprightCrop:
    """Where :func:`upright_face_crop` puts a face's crop, and whether that is trusted.

    crop_box, angle: as :func:`face_crop` (cut with :func:`crop_image`).
    trusted: False when the face's way up cannot be told (``reason`` says why): such a face should be refused,
        not reconstructed (its landmarks and pose would be upside down or sideways, marked ok).
    reason: why not trusted (None when trusted).
    turned: the keypoints' reading was a half turn off (an upside-down face) and the crop is turned by about
        180 deg from it. refined: crop box and angle come from the detector's second look (see below), not from
        the photo's detection.
    score, turned_score: the detector's score for the face at the centre of the context square as first cut and
        turned by 180 deg (0 = none found).
    """

    crop_box: tuple[int, int, int, int]
    angle: float
    trusted: bool = True
    reason: str | None = None
    turned: bool = False
    refined: bool = False
    score: float = 0.0
    turned_score: float = 0.0


def _centre_face(image: np.ndarray, detect):
    """The best-scoring detection whose box centre lies in the middle half of the image, or None."""
    h, w = image.shape[:2]
    best = None
    for f in detect(np.ascontiguousarray(image)):
        cx, cy = 0.5 * (f.box[0] + f.box[2]), 0.5 * (f.box[1] + f.box[3])
        if abs(cx - 0.5 * w) <= 0.25 * w and abs(cy - 0.5 * h) <= 0.25 * h and (best is None or f.score > best.score):
            best = f
    return best


def upright_face_crop(image: np.ndarray, box: Sequence[float], keypoints: Sequence[Sequence[float]] | None,
                      config: CropConfig = CropConfig(), detect=None, score: float = 0.0) -> UprightCrop:
    """:func:`face_crop` for faces at any roll: the crop ``predict`` cuts from a photo (RGB uint8).

    MediaPipe's keypoints read a face turned by more than about 90 deg as one turned the other way by less
    (the chin where the forehead is), so :func:`face_crop` alone shows it upside down. Here the detector takes
    a second look at the face: on a ``config.half_turn_size`` px square of ``config.half_turn_context`` x the
    detector box, cut at the full-circle crop's centre and angle (``quarter_turns`` on), and on that square
    turned by 180 deg; the photo's own detection (``score``) counts for the square as cut when that is within
    45 deg of the photo's up.

    * A frontal face (eye ratio, :func:`eye_ratio`, at least ``config.upright_full_ratio`` in either look): the
      turned square must win by ``config.half_turn_min_gap`` to turn the crop (a narrower win, or a face found
      in neither, is not trusted). When it wins, or the turn :func:`upright_turn` reads in the square as cut is
      more than ``config.refine_angle`` (a sideways or badly read face), crop box and angle are taken again
      from that second detection (box and keypoints mapped back to the photo); otherwise the full-circle crop.
    * A turned-away face: its eye line and the detector's way up are both unsure (the two looks' scores
      overlap for profile faces), so it keeps the photo's up, :func:`face_crop` with ``config`` as given
      (``prepare``'s crop); it is refused only when the look turned by 180 deg wins by
      ``config.half_turn_refuse_gap``. An upside-down profile can therefore still come out upside down.

    detect: ``image -> list of FaceBox`` (default :func:`facevision.face.detect.detect_faces` with its default config).
    Costs two detector runs on a ``config.half_turn_size`` px image.
    """
    from dataclasses import replace

    plain = face_crop(box, keypoints, config)  # prepare's rule: the photo's up, the whole turn faded
    config = replace(config, quarter_turns=True, max_angle=180.0)  # the full circle, quarter turns kept
    crop_box, angle = face_crop(box, keypoints, config)
    if not config.upright or keypoints is None or len(keypoints) < 2:
        return UprightCrop(crop_box, angle)
    look = _second_look(image, crop_box, angle, config, detect, score)
    seen_ratios = [eye_ratio(f.box, f.keypoints) for f in (look.as_cut, look.turned)
                   if f is not None and len(f.keypoints) >= 2]
    if max(seen_ratios or [eye_ratio(box, keypoints)]) < config.upright_full_ratio:
        return _turned_away_crop(plain, look, config)
    return _frontal_crop(crop_box, angle, look, config)


class _SecondLook(NamedTuple):
    """The detector's second look at a face: the context square (``ctx_box`` photo px, ``side`` photo px, cut at
    ``size`` px), the face at its centre as cut and turned by 180 deg (None: none found), and their scores."""

    ctx_box: tuple[int, int, int, int]
    side: int
    size: int
    as_cut: Any
    turned: Any
    score: float
    turned_score: float


def _second_look(image: np.ndarray, crop_box: tuple[int, int, int, int], angle: float, config: CropConfig,
                 detect, score: float) -> _SecondLook:
    """Run the detector on the context square around ``crop_box`` (turned by ``angle``), as cut and turned."""
    if detect is None:
        from facevision.face.detect import detect_faces

        detect = detect_faces
    x0, y0, x1, y1 = crop_box
    half = 0.5 * (x1 - x0) * config.half_turn_context / config.margin
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    bx0, by0 = int(round(cx - half)), int(round(cy - half))
    side = max(1, int(round(2 * half)))
    ctx_box, size = (bx0, by0, bx0 + side, by0 + side), int(config.half_turn_size)
    ctx = crop_image(image, ctx_box, size, angle)
    as_cut, turned = _centre_face(ctx, detect), _centre_face(ctx[::-1, ::-1], detect)
    # within 45 deg of the photo's up, the photo's own detection (``score``) saw the face as cut too
    score = max(0.0 if as_cut is None else float(as_cut.score), float(score) if abs(angle) <= 45.0 else 0.0)
    turned_score = 0.0 if turned is None else float(turned.score)
    return _SecondLook(ctx_box, side, size, as_cut, turned, score, turned_score)


def _turned_away_crop(plain: tuple[tuple[int, int, int, int], float], look: _SecondLook,
                      config: CropConfig) -> UprightCrop:
    """A turned-away face: its eye line and the detector's way up are unsure, so the photo's up is kept
    (``plain``, prepare's crop); only a clear win of the face turned by 180 deg refuses it."""
    score, turned_score = look.score, look.turned_score
    if turned_score - score >= config.half_turn_refuse_gap:
        return UprightCrop(*plain, trusted=False, score=score, turned_score=turned_score,
                           reason=f"a turned-away face that looks upside down (detector {score:.2f} as the "
                                  f"photo stands, {turned_score:.2f} turned by 180 deg): its roll is unknown")
    return UprightCrop(*plain, score=score, turned_score=turned_score)


def _frontal_crop(crop_box: tuple[int, int, int, int], angle: float, look: _SecondLook,
                  config: CropConfig) -> UprightCrop:
    """A frontal face: the full-circle crop, turned by 180 deg or placed again from the second look."""
    score, turned_score = look.score, look.turned_score
    if look.as_cut is None and look.turned is None:
        return UprightCrop(crop_box, angle, trusted=False, score=score, turned_score=turned_score,
                           reason="face not found again in its upright crop, either way up: its roll is unknown")
    turn = turned_score > score
    if turn and turned_score - score < config.half_turn_min_gap:
        return UprightCrop(crop_box, angle, trusted=False, turned=False, score=score, turned_score=turned_score,
                           reason=f"cannot tell which way up the face is (detector {score:.2f} as the keypoints "
                                  f"place it, {turned_score:.2f} turned by 180 deg): its roll is unknown")
    seen, seen_angle = (look.turned, _wrap(angle + 180.0)) if turn else (look.as_cut, angle)
    if seen is None:  # only with a detector that reports zero scores
        return UprightCrop(crop_box, angle, score=score, turned_score=turned_score)
    # the turn face_crop would give in the square: small = the crop is upright (a turned-away face's unsure eye
    # line is faded there as in face_crop, so it does not count as off level)
    level = len(seen.keypoints) < 2 or abs(upright_turn(seen.box, seen.keypoints, config)) <= config.refine_angle
    if not turn and level:
        return UprightCrop(crop_box, angle, score=score, turned_score=turned_score)
    new_box, new_angle = _crop_from_look(seen, seen_angle, look, config)
    return UprightCrop(new_box, new_angle, turned=turn, refined=True, score=score, turned_score=turned_score)


def _crop_from_look(seen: Any, seen_angle: float, look: _SecondLook,
                    config: CropConfig) -> tuple[tuple[int, int, int, int], float]:
    """:func:`face_crop` of the second look's detection ``seen`` (in the square turned by ``seen_angle``) in photo
    px: keypoints mapped exactly; the box keeps its centre, width and height (face-frame sizes, which face_crop's
    margin and eye-distance ratio mean)."""
    # detector coordinates are pixel edges, crop_to_original's pixel centres: hence the half pixels
    kp = crop_to_original(np.asarray(seen.keypoints, dtype=np.float64) - 0.5, look.ctx_box, look.size, seen_angle) + 0.5
    s = look.size / float(look.side)
    c = crop_to_original(np.array([[0.5 * (seen.box[0] + seen.box[2]), 0.5 * (seen.box[1] + seen.box[3])]]) - 0.5,
                         look.ctx_box, look.size, seen_angle)[0] + 0.5
    w, h = (seen.box[2] - seen.box[0]) / s, (seen.box[3] - seen.box[1]) / s
    return face_crop((c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2), kp.tolist(), config)


def crop_matrix(crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """2 x 3 affine matrix, photo px -> crop px, of a (possibly turned) crop (see the module docstring)."""
    x0, y0, x1, y1 = (float(v) for v in crop_box)
    s = float(size) / (x1 - x0)
    c = np.array([0.5 * (x0 + x1) - 0.5, 0.5 * (y0 + y1) - 0.5])
    a = np.radians(angle)
    rot_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # R(-angle)
    m = np.empty((2, 3))
    m[:, :2] = s * rot_inv
    m[:, 2] = (size - 1) / 2.0 - s * rot_inv @ c
    return m


def crop_scale(crop_box: Sequence[int], size: int) -> float:
    """Crop pixels per original pixel."""
    return float(size) / float(crop_box[2] - crop_box[0])


def crop_image(image: np.ndarray, crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """Cut ``crop_box`` (turned by ``angle``) out of ``image`` (zero padding outside) as ``(size, size, C)``.

    Area averaging when shrinking, bilinear when enlarging; dtype is kept. A turned crop first cuts the
    axis-aligned square around the turned box at the output's pixel pitch (area averaging), then turns
    it bilinearly, so it is not aliased when shrinking.
    """
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if x1 - x0 != y1 - y0 or x1 <= x0:
        raise ValueError(f"crop box must be a non-empty square, got {tuple(crop_box)}")
    if angle != 0.0:
        return _turned_crop(image, (x0, y0, x1, y1), size, float(angle))
    image = np.asarray(image)
    h, w = image.shape[:2]
    side = x1 - x0
    out = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    if side == size:
        return out
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    res = cv2.resize(out, (size, size), interpolation=interp)
    if res.ndim < out.ndim:
        res = res[..., None]
    return res


def _turned_crop(image: np.ndarray, crop_box: tuple[int, int, int, int], size: int, angle: float) -> np.ndarray:
    x0, y0, x1, y1 = crop_box
    side = x1 - x0
    a = np.radians(angle)
    grow = abs(np.cos(a)) + abs(np.sin(a))
    big = int(np.ceil(size * grow / 2.0)) * 2 + 2  # even margin keeps the centres aligned
    half = (side * big / size) / 2.0
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    # outer square at the output pitch: side * big / size photo px -> big px (rounded to whole px)
    ox0, oy0 = int(round(cx - half)), int(round(cy - half))
    oside = max(1, int(round(2 * half)))
    outer = crop_image(image, (ox0, oy0, ox0 + oside, oy0 + oside), big)
    # photo -> outer px, then photo -> crop; so crop = M_crop @ inv(M_outer) @ outer
    m_outer = np.vstack([crop_matrix((ox0, oy0, ox0 + oside, oy0 + oside), big), [0, 0, 1]])
    m_crop = np.vstack([crop_matrix(crop_box, size, angle), [0, 0, 1]])
    m = (m_crop @ np.linalg.inv(m_outer))[:2]
    res = cv2.warpAffine(outer, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if res.ndim < outer.ndim:
        res = res[..., None]
    return res


def original_to_crop(points: np.ndarray, crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """Map (..., 2+) points (x, y[, z]) from original to crop pixels; a 3rd column (depth) is scaled only."""
    p = np.array(points, dtype=np.float64, copy=True)
    if angle != 0.0:
        m = crop_matrix(crop_box, size, angle)
        p[..., :2] = p[..., :2] @ m[:, :2].T + m[:, 2]
        if p.shape[-1] > 2:
            p[..., 2:] *= crop_scale(crop_box, size)
        return p
    s = crop_scale(crop_box, size)
    p[..., 0] = (p[..., 0] + 0.5 - crop_box[0]) * s - 0.5
    p[..., 1] = (p[..., 1] + 0.5 - crop_box[1]) * s - 0.5
    if p.shape[-1] > 2:
        p[..., 2:] *= s
    return p


def crop_to_original(points: np.ndarray, crop_box: Sequence[int], size: int, angle: float = 0.0) -> np.ndarray:
    """Inverse of :func:`original_to_crop`."""
    p = np.array(points, dtype=np.float64, copy=True)
    if angle != 0.0:
        m = crop_matrix(crop_box, size, angle)
        p[..., :2] = (p[..., :2] - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
        if p.shape[-1] > 2:
            p[..., 2:] /= crop_scale(crop_box, size)
        return p
    s = crop_scale(crop_box, size)
    p[..., 0] = (p[..., 0] + 0.5) / s - 0.5 + crop_box[0]
    p[..., 1] = (p[..., 1] + 0.5) / s - 0.5 + crop_box[1]
    if p.shape[-1] > 2:
        p[..., 2:] /= s
    return p

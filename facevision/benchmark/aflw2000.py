"""The AFLW2000-3D benchmark: 68-landmark NME per |yaw| bin and head-pose MAE.

Protocol (3DDFA, 3DDFA_V2, SynergyNet, ...), per ``imageNNNNN.jpg`` with ``imageNNNNN.mat``: NME = mean 2D
distance over the 68 points of ``pt3d_68[:2]`` (photo px, x right, y down) / ``sqrt(w * h)`` of the ground-truth
landmarks' box, per |yaw| bin [0, 30), [30, 60), [60, 90] (beyond 90 in the last), as the mean of the bins
(``nme_mean3``, the papers' figure) and over all photos (``nme_mean``); pose MAE of yaw, pitch, roll (degrees)
over photos whose three angles lie within +-99 degrees. Faces come from the project's detector
(:func:`nearest_box`), else a box from the ground truth (:func:`fallback_box`, counted in ``fallback_boxes``).

Angles: ``Pose_Para`` holds (pitch, yaw, roll) radians in 3DDFA's signs (yaw > 0 towards the image left, roll > 0
clockwise as seen); :func:`aflw_angles_to_ours` turns them into facevision's (:mod:`facevision.maps.pose`), the
signs of every angle returned here, in degrees. AFLW's Euler order is ``Rx(-pitch) Ry(yaw) Rz(roll)``, ours
``Rz(roll) Ry(yaw) Rx(-pitch)``; predictions are decomposed in AFLW's (:func:`angles_in_aflw_order`) to compare.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from facevision.common.checks import check_int, check_number
from facevision.face.ibug68 import IBUG68_GROUPS

__all__ = ["AflwConfig", "AflwAnnotation", "AflwPrediction", "AFLW_SIGNS", "YAW_BINS", "read_annotation",
           "aflw_angles_to_ours", "angles_in_aflw_order", "nme", "group_errors", "yaw_bin", "fallback_box",
           "nearest_box", "list_photos", "summarize", "run_benchmark", "network_method", "labeler_method",
           "tddfa_labeler_method", "labeler_maps_method"]

#: (yaw, pitch, roll) sign factors from 3DDFA's Pose_Para to facevision's convention.
AFLW_SIGNS = (-1.0, 1.0, -1.0)
YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
BIN_NAMES = ("[0,30)", "[30,60)", "[60,90]")


@dataclass(frozen=True)
class AflwConfig:
    """Benchmark settings.

    pose_limit_deg: photos enter the pose MAE only when all three ground-truth angles lie within this.
    fallback_scale, fallback_shift: the stand-in detector box when the detector finds no face:
        side = ``fallback_scale`` x the longer side of the ground-truth landmarks' box, centre moved by
        ``fallback_shift`` x that side (x right, y down; docs/predict.md says how they were measured).
    limit: score only the first N photos (sorted by name); None = all.
    passes: 3DDFA_V2 regressor passes of the labeler methods (:class:`data_prep.label_tddfa.TddfaConfig`).
    """

    pose_limit_deg: float = 99.0
    fallback_scale: float = 1.11
    fallback_shift: tuple[float, float] = (0.014, -0.038)
    limit: int | None = None
    passes: int = 2

    def __post_init__(self) -> None:
        check_number(self, "pose_limit_deg", 0, 180, low_open=True)
        check_number(self, "fallback_scale", low=0, low_open=True)
        if len(self.fallback_shift) != 2 or not all(math.isfinite(v) for v in self.fallback_shift):
            raise ValueError(f"AflwConfig.fallback_shift must be two finite numbers, got {self.fallback_shift!r}")
        check_int(self, "limit", low=1, optional=True)
        check_int(self, "passes", low=1)


@dataclass
class AflwAnnotation:
    """Ground truth of one photo: landmarks (68, 2) photo px (x right, y down); yaw, pitch, roll in
    degrees, facevision's convention (see the module docstring)."""

    landmarks: np.ndarray
    yaw: float
    pitch: float
    roll: float


@dataclass
class AflwPrediction:
    """What a method returns for one photo: landmarks (68, 2) photo px, angles in degrees (facevision's
    signs in AFLW's Euler order, :func:`angles_in_aflw_order`; None when the method gives no pose),
    whether the fallback box was used, or an error."""

    landmarks: np.ndarray | None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    fallback: bool = False
    error: str | None = None


def aflw_angles_to_ours(pitch_rad: float, yaw_rad: float, roll_rad: float) -> tuple[float, float, float]:
    """3DDFA ``Pose_Para`` (pitch, yaw, roll) radians -> facevision (yaw, pitch, roll) degrees."""
    sy, sp, sr = AFLW_SIGNS
    return sy * math.degrees(yaw_rad), sp * math.degrees(pitch_rad), sr * math.degrees(roll_rad)


def angles_in_aflw_order(rotation: np.ndarray) -> tuple[float, float, float]:
    """(3, 3) head rotation (facevision's mesh frame, :class:`facevision.maps.pose.Pose`) -> (yaw, pitch,
    roll) degrees in facevision's signs but AFLW2000-3D's Euler order ``Rx(-pitch) Ry(yaw) Rz(roll)``."""
    r = np.asarray(rotation, np.float64)
    yaw = math.asin(float(np.clip(r[0, 2], -1.0, 1.0)))
    roll = math.atan2(-r[0, 1], r[0, 0])
    pitch = -math.atan2(-r[1, 2], r[2, 2])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def read_annotation(mat_path: str | Path) -> AflwAnnotation:
    """Read ``pt3d_68`` and ``Pose_Para`` of one ``.mat`` file; ValueError naming the file if malformed."""
    from scipy.io import loadmat

    mat_path = Path(mat_path)
    try:
        m = loadmat(str(mat_path))
    except Exception as exc:  # scipy raises several types for broken files
        raise ValueError(f"{mat_path}: not a readable .mat file ({exc})") from exc
    pts, pose = m.get("pt3d_68"), m.get("Pose_Para")
    if pts is None or pose is None or np.size(pose) < 3:
        raise ValueError(f"{mat_path}: needs pt3d_68 (3 x 68) and Pose_Para (1 x 7)")
    try:
        pts = np.asarray(pts, dtype=np.float64)
        p = np.asarray(pose, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:  # cells, structs or strings where numbers belong
        raise ValueError(f"{mat_path}: pt3d_68 and Pose_Para must be numeric arrays ({exc})") from exc
    if pts.ndim != 2 or pts.shape[0] < 2 or pts.shape[1] != 68:
        raise ValueError(f"{mat_path}: pt3d_68 has shape {pts.shape}, expected (3, 68)")
    if not (np.isfinite(pts[:2]).all() and np.isfinite(p[:3]).all()):
        raise ValueError(f"{mat_path}: pt3d_68 or Pose_Para holds values that are not finite (NaN or inf)")
    yaw, pitch, roll = aflw_angles_to_ours(p[0], p[1], p[2])
    return AflwAnnotation(landmarks=pts[:2].T.copy(), yaw=yaw, pitch=pitch, roll=roll)


def _normalized_offsets(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, 2) prediction minus ground truth / sqrt(w * h) of the ground truth's bounding box (the NME's normaliser)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or gt.ndim != 2 or gt.shape[1] != 2:
        raise ValueError(f"landmarks must be two (N, 2) arrays of one shape, got {pred.shape} and {gt.shape}")
    w, h = gt.max(0) - gt.min(0)
    return (pred - gt) / math.sqrt(max(w * h, 1e-12))


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean point distance / sqrt(w * h) of the ground truth's bounding box (a fraction, not %)."""
    return float(np.linalg.norm(_normalized_offsets(pred, gt), axis=1).mean())


def group_errors(pred: np.ndarray, gt: np.ndarray, yaw_deg: float) -> dict[str, dict[str, float]]:
    """Per iBUG part (:data:`facevision.face.ibug68.IBUG68_GROUPS`): ``nme`` (as :func:`nme`, over the part's points)
    and the mean signed offset ``dx``, ``dy`` of prediction minus ground truth (same normaliser, fractions),
    with ``dx > 0`` towards the side the face turns to (the nose side: image right for yaw >= 0 in
    facevision's convention) and ``dy > 0`` down."""
    d = _normalized_offsets(pred, gt)
    d[:, 0] *= -1.0 if yaw_deg < 0 else 1.0
    return {name: {"nme": float(np.linalg.norm(d[a:b], axis=1).mean()), "dx": float(d[a:b, 0].mean()),
                   "dy": float(d[a:b, 1].mean())} for name, (a, b) in IBUG68_GROUPS.items()}


def yaw_bin(yaw_deg: float) -> int:
    """Index of the |yaw| bin (0: [0, 30), 1: [30, 60), 2: [60, 90] and beyond)."""
    a = abs(float(yaw_deg))
    return 0 if a < 30.0 else 1 if a < 60.0 else 2


def fallback_box(landmarks: np.ndarray, config: AflwConfig = AflwConfig()) -> tuple[float, float, float, float]:
    """A detector-like box (x0, y0, x1, y1) from (68, 2) ground-truth landmarks (see :class:`AflwConfig`)."""
    lm = np.asarray(landmarks, np.float64)
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    base = max(x1 - x0, y1 - y0)
    half = 0.5 * base * config.fallback_scale
    cx = 0.5 * (x0 + x1) + config.fallback_shift[0] * base
    cy = 0.5 * (y0 + y1) + config.fallback_shift[1] * base
    return (cx - half, cy - half, cx + half, cy + half)


def nearest_box(boxes: Sequence[Sequence[float]], landmarks: np.ndarray) -> int | None:
    """Index of the box (x0, y0, x1, y1) whose centre is nearest the landmarks' box centre, among the boxes that
    contain that centre; None when none does (no detection of this face: another person's face is not one)."""
    lm = np.asarray(landmarks, np.float64)
    c = 0.5 * (lm.min(0) + lm.max(0))
    inside = [i for i, b in enumerate(boxes) if b[0] <= c[0] <= b[2] and b[1] <= c[1] <= b[3]]
    if not inside:
        return None
    centres = np.array([[0.5 * (boxes[i][0] + boxes[i][2]), 0.5 * (boxes[i][1] + boxes[i][3])] for i in inside])
    return inside[int(np.argmin(np.linalg.norm(centres - c, axis=1)))]


def list_photos(root: str | Path) -> list[Path]:
    """The ``*.jpg`` photos with a ``.mat`` beside them, sorted, under ``root`` or ``root/images``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: AFLW2000-3D folder not found")
    folder = root / "images" if (root / "images").is_dir() else root
    photos = sorted(p for p in folder.glob("*.jpg") if p.with_suffix(".mat").is_file())
    if not photos:
        raise FileNotFoundError(f"{folder}: no imageNNNNN.jpg with a .mat beside it")
    return photos


def summarize(records: Iterable[dict], config: AflwConfig = AflwConfig()) -> dict:
    """Per-photo records (``yaw_gt``, ``pitch_gt``, ``roll_gt``, ``nme``, ``yaw``, ``pitch``, ``roll``,
    ``fallback``, optionally ``groups``) -> the benchmark's figures: NMEs in %, angles in degrees, per-part figures
    where records carry ``groups``. A photo without landmarks counts in ``failed``, not in the NME."""
    records = list(records)
    bins: list[list[float]] = [[], [], []]
    for r in records:
        if r.get("nme") is not None:
            bins[yaw_bin(r["yaw_gt"])].append(100.0 * r["nme"])
    bin_means = [float(np.mean(b)) if b else float("nan") for b in bins]
    all_nme = [x for b in bins for x in b]
    lim = config.pose_limit_deg
    err = {"yaw": [], "pitch": [], "roll": []}
    for r in records:
        if r.get("yaw") is None:
            continue
        if max(abs(r["yaw_gt"]), abs(r["pitch_gt"]), abs(r["roll_gt"])) > lim:
            continue
        for k in err:
            d = (r[k] - r[f"{k}_gt"] + 180.0) % 360.0 - 180.0
            err[k].append(abs(d))
    pose = {k: float(np.mean(v)) if v else float("nan") for k, v in err.items()}
    pose_mean = float(np.mean([pose["yaw"], pose["pitch"], pose["roll"]])) if err["yaw"] else float("nan")
    return {
        "photos": len(records),
        "failed": sum(r.get("nme") is None for r in records),
        "fallback_boxes": sum(bool(r.get("fallback")) for r in records),
        "nme_bins": dict(zip(BIN_NAMES, [round(v, 4) for v in bin_means])),
        "bin_counts": dict(zip(BIN_NAMES, [len(b) for b in bins])),
        "nme_mean3": round(float(np.mean(bin_means)), 4),
        "nme_mean": round(float(np.mean(all_nme)), 4) if all_nme else float("nan"),
        "pose_mae": {k: round(v, 3) for k, v in pose.items()},
        "pose_mae_mean": round(pose_mean, 3),
        "pose_photos": len(err["yaw"]),
        **_group_summary(records),
    }


def _group_summary(records: list[dict]) -> dict:
    """``nme_groups`` (bin -> part -> NME %) and ``offset_groups`` (bin -> part -> [dx, dy] %) of the records
    that carry ``groups`` (:func:`group_errors`); empty bins are left out."""
    nmes: dict[str, dict[str, float]] = {}
    offsets: dict[str, dict[str, list[float]]] = {}
    for i, name in enumerate(BIN_NAMES):
        parts = [r["groups"] for r in records if r.get("groups") and yaw_bin(r["yaw_gt"]) == i]
        if not parts:
            continue
        nmes[name] = {g: round(100.0 * float(np.mean([p[g]["nme"] for p in parts])), 4) for g in parts[0]}
        offsets[name] = {g: [round(100.0 * float(np.mean([p[g][k] for p in parts])), 4) for k in ("dx", "dy")]
                         for g in parts[0]}
    return {"nme_groups": nmes, "offset_groups": offsets}


Method = Callable[[np.ndarray, AflwAnnotation], AflwPrediction]


def _check_prediction(pred: AflwPrediction, photo: Path) -> AflwPrediction:
    """``pred`` if its landmarks (when given) are a finite (68, 2) array and its angles (when given) are finite;
    else a failed prediction whose error names the photo and what was wrong."""
    if pred.landmarks is None:
        return pred
    lm = np.asarray(pred.landmarks)
    why = None
    if lm.shape != (68, 2):
        why = f"the method returned landmarks of shape {lm.shape}, expected (68, 2)"
    elif not np.isfinite(lm).all():
        why = "the method returned landmarks that are not finite (NaN or inf)"
    elif pred.yaw is not None and not all(math.isfinite(float(a)) for a in (pred.yaw, pred.pitch, pred.roll)):
        why = "the method returned angles that are not finite (NaN or inf)"
    if why is None:
        return pred
    return AflwPrediction(landmarks=None, fallback=pred.fallback, error=f"{photo}: {why}")


def run_benchmark(root: str | Path, method: Method, config: AflwConfig = AflwConfig(),
                  progress: bool = False) -> tuple[dict, list[dict]]:
    """Score ``method`` (photo RGB, annotation -> :class:`AflwPrediction`) on every photo under ``root``; the
    annotation serves only to pick the detection and the fallback box. Returns (summary, per-photo records).

    A photo whose ``.mat`` is unreadable is skipped, counted in ``bad_files`` and listed in ``bad_file_errors``. A
    photo the method fails on (unreadable photo, ValueError, landmarks not a finite (68, 2) array) is a record with
    ``nme`` None and an ``error`` naming the photo, counted in ``failed``."""
    from facevision.face.images import ImageReadError, read_photo

    photos = list_photos(root)
    if config.limit is not None:
        photos = photos[: config.limit]
    it: Iterable[Path] = photos
    if progress:
        from tqdm import tqdm

        it = tqdm(photos, desc="AFLW2000-3D", unit="photo")
    records = []
    bad_files: list[dict] = []
    t0 = time.perf_counter()
    for photo in it:
        try:
            ann = read_annotation(photo.with_suffix(".mat"))
        except ValueError as exc:
            bad_files.append({"photo": photo.name, "error": str(exc)})
            continue
        rec: dict = {"photo": photo.name, "yaw_gt": ann.yaw, "pitch_gt": ann.pitch, "roll_gt": ann.roll,
                     "nme": None, "yaw": None, "pitch": None, "roll": None, "fallback": False}
        try:
            image = read_photo(photo)
        except ImageReadError as exc:
            pred = AflwPrediction(landmarks=None, error=str(exc))
        else:
            try:
                pred = _check_prediction(method(image, ann), photo)
            except ValueError as exc:  # the project's errors for one bad input; the run goes on
                msg = str(exc)
                pred = AflwPrediction(landmarks=None, error=msg if str(photo) in msg else f"{photo}: {msg}")
        rec["fallback"] = pred.fallback
        if pred.landmarks is not None:
            rec["nme"] = nme(pred.landmarks, ann.landmarks)
            rec["groups"] = group_errors(pred.landmarks, ann.landmarks, ann.yaw)
            if pred.yaw is not None:
                rec.update(yaw=pred.yaw, pitch=pred.pitch, roll=pred.roll)
        else:
            rec["error"] = pred.error or "no landmarks"
        records.append(rec)
    summary = summarize(records, config)
    summary["bad_files"] = len(bad_files)
    summary["bad_file_errors"] = bad_files
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary, records


def network_method(predictor, config: AflwConfig = AflwConfig()) -> Method:
    """The facevision pipeline: detector (nearest detection, else the fallback box) -> crop -> network ->
    landmarks and pose, exactly as ``facevision predict`` computes them."""
    from facevision.face.detect import FaceBox, detect_faces

    def run(image: np.ndarray, ann: AflwAnnotation) -> AflwPrediction:
        faces = detect_faces(image, predictor.config.detect)
        i = nearest_box([f.box for f in faces], ann.landmarks)
        fallback = i is None
        face = FaceBox(box=fallback_box(ann.landmarks, config), score=0.0) if fallback else faces[i]
        res = predictor.predict_faces(image, [face])[0]
        if not res.ok:
            return AflwPrediction(landmarks=None, fallback=fallback, error=res.error)
        yaw, pitch, roll = angles_in_aflw_order(res.pose.rotation)
        return AflwPrediction(landmarks=res.landmarks68, yaw=yaw, pitch=pitch, roll=roll, fallback=fallback)

    return run


def labeler_method(config: AflwConfig = AflwConfig(), mirror_average: bool = False) -> Method:
    """The training labeler (MediaPipe Face Mesh + the reference's iBUG-68 vertices), run on the photo:
    the ceiling the network learns from. Pose: a similarity fit of the reference face to the 468
    landmarks, reported like :mod:`facevision.maps.pose`. Face Mesh's own detector finds the face (the mesh
    chosen like a detection, :func:`nearest_box`); when it finds none of this face, it is run on the fallback
    crop. ``mirror_average``: the labeler's photo + mirrored photo average
    (:class:`data_prep.landmarks.FaceMeshConfig`)."""
    from facevision.face.crop import CropConfig, crop_image, crop_to_original, square_crop_box
    from data_prep.landmarks import FaceMeshConfig, face_mesh_landmarks
    from facevision.face.reference import load_reference
    from facevision.maps.pose import reference_tilt
    from facevision.common.geometry import similarity_fit

    ref = load_reference()
    mesh_cfg = FaceMeshConfig(max_faces=4, mirror_average=mirror_average)

    def run(image: np.ndarray, ann: AflwAnnotation) -> AflwPrediction:
        meshes = face_mesh_landmarks(image, mesh_cfg)
        fallback = False
        i = nearest_box([(m[:, 0].min(), m[:, 1].min(), m[:, 0].max(), m[:, 1].max()) for m in meshes], ann.landmarks)
        if i is not None:
            lm = meshes[i]
        else:
            fallback = True
            box = square_crop_box(fallback_box(ann.landmarks, config), CropConfig(size=256))
            found = face_mesh_landmarks(crop_image(image, box, 256), mesh_cfg)
            if not found:
                return AflwPrediction(landmarks=None, fallback=True, error="Face Mesh found no face")
            lm = crop_to_original(found[0], box, 256)
        pts = np.stack([lm[:, 0], -lm[:, 1], lm[:, 2]], 1)  # mesh frame: y up, z towards the viewer
        _, rot, _ = similarity_fit(ref.raw_vertices, pts)
        yaw, pitch, roll = angles_in_aflw_order(rot @ reference_tilt().T)
        return AflwPrediction(landmarks=lm[ref.ibug68, :2], yaw=yaw, pitch=pitch, roll=roll, fallback=fallback)

    return run


def tddfa_labeler_method(tddfa_dir: str | Path, config: AflwConfig = AflwConfig(), mirror_average: bool = False
                         ) -> Method:
    """The 3DDFA_V2 labeler (:mod:`data_prep.label_tddfa`): the project's detector (the detection chosen by
    :func:`nearest_box`, else the fallback box), 3DDFA_V2's box rule, then ``config.passes - 1`` passes from the
    previous landmarks. Pose: the regressor's rotation, decomposed in AFLW's order."""
    from facevision.face.detect import DetectConfig, detect_faces
    from data_prep.label_tddfa import TddfaConfig, TddfaLabeler

    labeler = TddfaLabeler(tddfa_dir, TddfaConfig(passes=config.passes, mirror_average=mirror_average))
    detect = DetectConfig()

    def run(image: np.ndarray, ann: AflwAnnotation) -> AflwPrediction:
        faces = detect_faces(image, detect)
        i = nearest_box([f.box for f in faces], ann.landmarks)
        fallback = i is None
        box = fallback_box(ann.landmarks, config) if fallback else faces[i].box
        fit = labeler.fit_face(image, box)
        yaw, pitch, roll = angles_in_aflw_order(fit.rotation)
        return AflwPrediction(landmarks=fit.landmarks[:, :2], yaw=yaw, pitch=pitch, roll=roll, fallback=fallback)

    return run


def labeler_maps_method(tddfa_dir: str | Path, postprocessor, config: AflwConfig = AflwConfig()) -> Method:
    """The read-out's ceiling: the 3DDFA_V2 labeler's maps, rendered into predict's crop as training labels are
    (:meth:`data_prep.label_tddfa.TddfaLabeler.label_face`), read by predict's own fit and landmarks
    (``postprocessor``: a :class:`facevision.predict.predictor.Postprocessor` in the labels' correspondence space).
    What this loses against :func:`tddfa_labeler_method` is lost by the read-out, not by the network. A face the
    labeler drops (landmarks outside the crop) fails."""
    from facevision.face.detect import FaceBox, detect_faces
    from data_prep.drops import DropError
    from data_prep.label_tddfa import TddfaConfig, TddfaLabeler
    from facevision.predict.records import FaceCrop, FaceMaps

    labeler = TddfaLabeler(tddfa_dir, TddfaConfig(passes=config.passes))

    def run(image: np.ndarray, ann: AflwAnnotation) -> AflwPrediction:
        faces = detect_faces(image, labeler.config.detect)
        i = nearest_box([f.box for f in faces], ann.landmarks)
        fallback = i is None
        face = FaceBox(box=fallback_box(ann.landmarks, config), score=0.0) if fallback else faces[i]
        try:
            label = labeler.label_face(image, face)
        except DropError as exc:
            return AflwPrediction(landmarks=None, fallback=fallback, error=str(exc))
        s = label.sample
        res = postprocessor.postprocess(FaceCrop(s.image, tuple(label.crop_box), float(label.crop_angle)),
                                        FaceMaps(s.depth, s.corr, s.mask))
        if not res.ok:
            return AflwPrediction(landmarks=None, fallback=fallback, error=res.error)
        yaw, pitch, roll = angles_in_aflw_order(res.pose.rotation)
        return AflwPrediction(landmarks=res.landmarks68, yaw=yaw, pitch=pitch, roll=roll, fallback=fallback)

    return run

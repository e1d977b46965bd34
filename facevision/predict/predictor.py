"""The in-memory prediction pipeline: photo -> faces -> maps, mesh, landmarks and pose.

``Predictor.from_pretrained()`` loads the shipped checkpoint (see :func:`default_checkpoint`);
``predictor(image_rgb)`` returns one :class:`FaceResult` per face (the largest only unless
``all_faces``). Its stages, usable on their own, pass per-face records (:mod:`facevision.predict.records`):
:meth:`Predictor.prepare` (photo -> :class:`~facevision.predict.records.FaceCrop` per face),
:meth:`Predictor.run_network` (crops -> :class:`~facevision.predict.records.FaceMaps`, batched) and
:meth:`Postprocessor.postprocess` (one crop and its maps -> :class:`FaceResult`).

Per face: detect (``facevision.face.detect.find_faces``: the short-range model, then, where it finds nothing or every
face is wanted, the full-range model and tiles of large photos) -> square crop (``facevision.face.crop``, the same functions
``facevision prepare`` uses, so crops match training) -> network (batched over faces) -> maps
(mask threshold, depth in crop px) -> fit of the project's face model (:mod:`facevision.fit.model_fit`):
all 68 landmarks (also those the face hides), their visibility, the pose and a fixed-topology mesh;
the direct read-out of the correspondence map (:mod:`facevision.maps.landmarks`, :mod:`facevision.maps.pose`)
stands in where the fit is switched off or fails -> mesh (:func:`meshing.mesh_from_maps`, optional).
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from facevision.common.checks import check_int, check_number
from facevision.face.crop import CropConfig, crop_image, crop_to_original, upright_face_crop
from facevision.face.detect import DetectConfig, FaceBox, SearchConfig, detect_faces, find_faces
from facevision.env import CHECKPOINT_ENV
from facevision.fit.complete import CompleteConfig
from facevision.fit.model_fit import FitConfig, ModelFit, fit_face_model
from facevision.maps.landmarks import LandmarkConfig, landmarks_from_corr, landmarks_to_original
from facevision.maps.pose import Pose, PoseConfig, photo_pose, pose_from_maps
from facevision.model.device import resolve_device
from facevision.model.outputs import decode_outputs, mirror_averaged
from facevision.common.conventions import check_corr, check_depth_px, check_mask
from facevision.predict.records import FaceCrop, FaceMaps, PreparedFaces
from meshing.types import MeshConfig

__all__ = ["PredictConfig", "FaceResult", "DetectedFaces", "Predictor", "Postprocessor",
           "default_checkpoint", "checkpoint_candidates", "CHECKPOINT_ENV", "CHECKPOINT_NAME", "space_files"]

CHECKPOINT_NAME = "facevision_lfw128.safetensors"


@dataclass
class PredictConfig:
    """Settings of one prediction pipeline.

    crop: square-crop rule (``size`` is replaced by the network's input size).
    detect: face detector settings.
    search: how faces the first detector pass misses are looked for (:class:`facevision.face.detect.SearchConfig`: the
        full-range model, then tiles of large photos, when the first pass finds nothing; always, merged, when every
        face is wanted); None: the first pass only.
    mesh: meshing settings, or None to skip meshing (``--no-mesh``).
    complete: for a turned face (|yaw| >= 35 deg) or where the maps' mesh is not one whole disc (holes, torn
        strips, pieces), the mesh is the face-model fit moved onto the maps instead (:mod:`facevision.fit.complete`;
        ``always``: for every face); None: the maps' mesh as it is (``--complete-mesh never``).
    landmarks, pose: direct read-out settings of the maps.
    fit: face-model fit settings, or None to read landmarks and pose directly from the maps.
    refine_visible: landmarks the fit finds visible take the direct read-out's position where that is
        confident (off by default).
    mask_threshold: face probability above which a pixel is face.
    batch_size: faces per network call.
    all_faces: every detected face (True) or only the largest (False).
    freeze: on CPU, run the network prepared for inference: exported once to ONNX and run by ONNX Runtime
        (:mod:`facevision.model.onnx_network`, cached by :mod:`facevision.model.inference_cache`; no torch
        import), else a TorchScript-frozen copy (:mod:`facevision.model.inference`);
        same outputs as the eager model to ~1e-5.
    threads: CPU threads of one network call (None = the library's default; ``predict`` with writer
        processes uses 1). Applies to the ONNX Runtime network; torch's own setting rules the torch paths.
    reference, face_model: paths of the reference face and face model of the checkpoint's correspondence space
        (None: the package's, space ``facevision-reference-v1``). :meth:`Predictor.from_pretrained` fills them
        from the files beside a checkpoint trained in another space (:func:`space_files`).
    mirror_average: run the network on each crop and on its mirror image and average the maps
        (:func:`facevision.model.outputs.mirror_averaged`; ``--mirror-average``): better landmarks and pose
        (README, AFLW2000-3D), twice the network time, so off by default.
    """

    crop: CropConfig = field(default_factory=CropConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    search: SearchConfig | None = field(default_factory=SearchConfig)
    mesh: MeshConfig | None = field(default_factory=MeshConfig)
    complete: CompleteConfig | None = field(default_factory=CompleteConfig)
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    fit: FitConfig | None = field(default_factory=FitConfig)
    refine_visible: bool = False
    mask_threshold: float = 0.5
    batch_size: int = 8
    all_faces: bool = False
    freeze: bool = True
    mirror_average: bool = False
    threads: int | None = None
    reference: str | None = None
    face_model: str | None = None

    def __post_init__(self) -> None:
        check_int(self, "threads", low=1, optional=True)
        check_number(self, "mask_threshold", 0, 1, low_open=True, high_open=True)
        check_int(self, "batch_size", low=1)


@dataclass
class FaceResult:
    """Everything predicted for one face. Coordinates: original photo pixels (x right, y down) unless
    named ``*_crop`` (crop pixels of the ``size`` x ``size`` crop, x = column, y = row).

    index: face number in the photo (0 = largest). bbox: detector box (x0, y0, x1, y1) float;
    score: detector score (None for injected crops). crop_box: integer square (x0, y0, x1, y1), end exclusive;
    crop_angle: degrees the crop is turned about the box centre so the eyes are level (upright crops,
    :mod:`facevision.face.crop`); maps, mesh and ``*_crop`` values are in that turned crop.
    crop: (S, S, 3) uint8 RGB. depth_px: (S, S) float32 depth in crop px (:mod:`facevision.common.conventions`), 0 outside
    the mask. corr: (S, S, 3) float32 (u, v, w) in [0, 1], 0 outside. mask: (S, S) bool.
    mesh: meshing.FaceMesh in crop px (mesh frame: X = column, Y = S - 1 - row, Z = depth), or None;
    :func:`facevision.predict.mesh_frame.photo_frame_mesh` gives it in photo px (what predict writes);
    mesh_source: "maps" (meshed from the maps) or "fit" (the fit moved onto the maps, :mod:`facevision.fit.complete`).
    landmarks68: (68, 2) original px; landmarks68_crop: (68, 2) crop px; landmark_residual: (68,) of the
    direct read-out (large = point not visible, see :class:`facevision.maps.landmarks.Landmarks`), None
    when the fit gave the landmarks (the direct read-out is then skipped unless ``refine_visible``);
    landmarks68_visible: (68,) bool (from the fit's z-buffer; None without a fit); landmarks68_3d: (68, 3)
    photo px (x right, y down) and depth (photo px, larger = closer, relative); model_fit: the face-model
    fit (:class:`facevision.fit.model_fit.ModelFit`, crop frame) or None; landmarks_source: "model_fit" or "direct".
    pose: yaw/pitch/roll in degrees (:mod:`facevision.maps.pose`). timings: ms per stage.
    error: why the face could not be reconstructed (then landmarks/pose/mesh are None); refused: it was not
    tried, its way up being unknown (:class:`~facevision.predict.records.FaceCrop`'s ``refusal``; ``error`` says why).
    """

    index: int
    bbox: tuple[float, float, float, float]
    score: float | None
    crop_box: tuple[int, int, int, int]
    crop: np.ndarray
    depth_px: np.ndarray
    corr: np.ndarray
    mask: np.ndarray
    mesh: Any = None
    landmarks68: np.ndarray | None = None
    landmarks68_crop: np.ndarray | None = None
    landmark_residual: np.ndarray | None = None
    landmarks68_visible: np.ndarray | None = None
    landmarks68_3d: np.ndarray | None = None
    model_fit: ModelFit | None = None
    landmarks_source: str = "direct"
    pose: Pose | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    refused: bool = False
    crop_angle: float = 0.0
    mesh_source: str = "maps"

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (what ``result.json`` holds, without file names)."""
        r2 = lambda a: [[round(float(x), 2) for x in row] for row in a]  # noqa: E731
        out: dict[str, Any] = {
            "face_index": self.index,
            "bbox": [round(float(v), 2) for v in self.bbox],
            "detection_score": None if self.score is None else round(float(self.score), 4),
            "crop_box": [int(v) for v in self.crop_box],
            "crop_angle_deg": round(float(self.crop_angle), 3),
            "crop_size": int(self.crop.shape[0]),
            "mask_pixels": int(self.mask.sum()),
            "depth_max_px": round(float(self.depth_px.max(initial=0.0)), 3),
            "status": "ok" if self.ok else "failed",
        }
        if self.error:
            out["error"] = self.error
        if self.refused:
            out["refused"] = True
        if self.landmarks68 is not None:
            out["landmarks68"] = r2(self.landmarks68)
            out["landmarks68_crop"] = r2(self.landmarks68_crop)
            if self.landmark_residual is not None:
                out["landmark_residual"] = [round(float(v), 4) for v in self.landmark_residual]
            out["landmarks_source"] = self.landmarks_source
        if self.landmarks68_visible is not None:
            out["landmarks68_visible"] = [bool(v) for v in self.landmarks68_visible]
            out["landmarks68_3d"] = r2(self.landmarks68_3d)
        if self.model_fit is not None:
            out["model_fit"] = self.model_fit.to_dict()
        if self.pose is not None:
            out["pose"] = self.pose.to_dict()
        if self.mesh is not None:
            out["mesh"] = {"vertices": self.mesh.n_vertices, "faces": self.mesh.n_faces, "source": self.mesh_source}
        out["timings_ms"] = {k: round(float(v), 3) for k, v in self.timings.items()}
        return out


class DetectedFaces(list):
    """The faces :meth:`Predictor.detect` returns (FaceBox, largest first) and ``found``: how many the detector
    found in all, more than the list holds when only the largest is kept (so a caller can say what it left out)."""

    def __init__(self, faces: Sequence[FaceBox] = (), found: int | None = None) -> None:
        super().__init__(faces)
        self.found = len(self) if found is None else int(found)


class Postprocessor:
    """One face's crop and maps -> :class:`FaceResult`: face-model fit (landmarks, visibility, pose), the direct
    read-out where the fit is off or fails, and the mesh. numpy, scipy and Open3D only, never torch: this is the
    part of the pipeline that ``facevision predict``'s writer processes run (:mod:`facevision.predict.writer`),
    each with its own instance (the face model and reference are loaded once per instance).

    config: the pipeline's settings (fit, landmarks, pose, mesh, refine_visible; the crop size is the maps' side).
    """

    def __init__(self, config: PredictConfig | None = None) -> None:
        from facevision.face.reference import load_reference

        self.config = config or PredictConfig()
        self.reference = load_reference(self.config.reference)
        self.face_model = None
        if self.config.fit is not None:
            from facevision.face.face_model import load_face_model

            self.face_model = load_face_model(self.config.face_model)
            if self.face_model.n_vertices != len(self.reference.raw_vertices):
                raise ValueError(f"face model {self.config.face_model or '(package)'} has {self.face_model.n_vertices} "
                                 f"vertices, its reference {self.config.reference or '(package)'} "
                                 f"{len(self.reference.raw_vertices)}: they belong to different spaces")

    def postprocess(self, crop: FaceCrop, maps: FaceMaps, index: int = 0) -> FaceResult:
        """One face's crop and maps -> :class:`FaceResult` with landmarks, pose and (if configured) mesh;
        ``index``: the face's number in its photo.

        Maps follow :mod:`facevision.common.conventions` (checked: a ValueError names what is wrong). A face whose
        maps cannot be used (too small a mask, meshing failure) gets ``error`` set; so does a refused crop
        (``crop.refusal``), with nothing read from its maps. ``timings``: the crop's, the network's
        (``maps.network_ms``), then this stage's, and their ``total``.
        """
        from meshing import MeshingError

        res = _new_result(crop, maps, index)
        if crop.refusal is not None:
            res.error, res.refused = crop.refusal, True
            return res
        try:
            self._read_maps(res)
        except (ValueError, MeshingError) as exc:
            res.error = f"no usable face surface in the prediction ({exc})"
        res.timings["total"] = sum(v for k, v in res.timings.items() if k != "total")
        return res

    def _read_maps(self, res: FaceResult) -> None:
        """Landmarks, pose and mesh of ``res`` from its maps: the face-model fit, else the direct read-out."""
        from meshing import mesh_from_maps

        fit = self._fit(res) if self.config.fit is not None else None
        if fit is None or self.config.refine_visible:
            with _timed(res.timings, "landmarks"):
                lm = landmarks_from_corr(res.corr, res.mask, self.reference, self.config.landmarks)
            res.landmarks68_crop, res.landmark_residual = lm.points, lm.residual
        if fit is not None:
            self._use_fit(res, fit)
        else:
            with _timed(res.timings, "pose"):
                res.pose = pose_from_maps(res.depth_px, res.corr, res.mask, self.reference, self.config.pose)
        size = int(res.depth_px.shape[0])
        res.landmarks68 = landmarks_to_original(res.landmarks68_crop, res.crop_box, size, res.crop_angle)
        res.pose = photo_pose(res.pose, res.crop_angle)
        if self.config.mesh is not None:
            with _timed(res.timings, "mesh"):
                res.mesh = mesh_from_maps(res.depth_px, mask=res.mask, image=res.crop, corr=res.corr,
                                          config=self.config.mesh)
                self._complete_mesh(res)

    def _complete_mesh(self, res: FaceResult) -> None:
        """``res.mesh`` from the fit moved onto the maps where ``config.complete`` asks for it."""
        from facevision.fit.complete import completed_face_mesh, needs_completion

        cfg = self.config.complete
        if cfg is None or res.model_fit is None or not needs_completion(res.mesh, res.model_fit, cfg):
            return
        from meshing import MeshingError

        try:
            res.mesh = completed_face_mesh(res.model_fit, res.depth_px, res.mask, res.crop, self.config.mesh,
                                           self.face_model.mirror, self.reference.vertices, cfg)
        except (ValueError, MeshingError):  # the maps' own mesh stays (mesh_source "maps")
            return
        res.mesh_source = "fit"

    def _fit(self, res: FaceResult) -> ModelFit | None:
        """The face-model fit of ``res``'s maps, or None when too little of the face model is in view (the direct
        read-out stands in)."""
        t = time.perf_counter()
        try:
            fit = fit_face_model(res.depth_px, res.corr, res.mask, self.face_model, self.config.fit, self.reference)
        except ValueError:
            fit = None
        res.timings["fit"] = _ms(t)
        return fit

    def _use_fit(self, res: FaceResult, fit: ModelFit) -> None:
        """Landmarks, visibility and pose of ``res`` from the face-model fit (crop frame)."""
        lm = fit.landmarks68.copy()
        if self.config.refine_visible:
            sure = fit.visible & (res.landmark_residual < 0.1)
            lm[sure] = res.landmarks68_crop[sure]
        res.model_fit = fit
        res.landmarks68_crop = lm
        res.landmarks68_visible = fit.visible.copy()
        p3 = np.column_stack([fit.landmarks68, fit.landmarks68_3d[:, 2]])
        res.landmarks68_3d = crop_to_original(p3, res.crop_box, int(res.crop.shape[0]), res.crop_angle)
        res.landmarks_source = "model_fit"
        res.pose = fit.pose


def _new_result(crop: FaceCrop, maps: FaceMaps, index: int) -> FaceResult:
    """The :class:`FaceResult` of one face before anything is read from its maps (checked here)."""
    shape = check_depth_px(maps.depth_px, "postprocess: depth_px").shape
    check_corr(maps.corr, shape, "postprocess: corr")
    check_mask(maps.mask, shape, "postprocess: mask")
    timings = dict(crop.timings)
    if maps.network_ms is not None:
        timings["network"] = maps.network_ms
    box = tuple(int(v) for v in crop.box)
    bbox = tuple(float(v) for v in (crop.bbox if crop.bbox is not None else box))
    return FaceResult(index=index, bbox=bbox, score=crop.score, crop_box=box, crop=crop.image,
                      depth_px=maps.depth_px, corr=maps.corr, mask=maps.mask, timings=timings,
                      crop_angle=float(crop.angle))


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """``timings[stage]``: ms the block took (not set when it raises)."""
    t = time.perf_counter()
    yield
    timings[stage] = _ms(t)


def checkpoint_candidates() -> list[Path]:
    """Where :func:`default_checkpoint` looks, in order (after ``$FACEVISION_CHECKPOINT``):
    ``facevision/checkpoints/`` (package data) and ``<checkout>/checkpoints/`` (editable install)."""
    import facevision

    pkg = Path(facevision.__file__).resolve().parent
    return [pkg / "checkpoints" / CHECKPOINT_NAME, pkg.parent / "checkpoints" / CHECKPOINT_NAME]


def default_checkpoint() -> Path:
    """The shipped checkpoint: ``$FACEVISION_CHECKPOINT`` if set, else the first existing candidate.

    Raises:
        FileNotFoundError: nothing found; the message lists every place it looked.
    """
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"${CHECKPOINT_ENV}={env}: checkpoint file not found")
        return p
    cands = checkpoint_candidates()
    for p in cands:
        if p.is_file():
            return p
    looked = ", ".join(str(p) for p in cands)
    raise FileNotFoundError(f"no facevision checkpoint found: ${CHECKPOINT_ENV} is not set and none of {looked} "
                            f"exists; pass --checkpoint / path=, or set ${CHECKPOINT_ENV}")


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class Predictor(Postprocessor):
    """Photo -> list of :class:`FaceResult`. Holds the network (state), so a class; its :meth:`postprocess` is
    :class:`Postprocessor`'s.

    Stages: :meth:`prepare` (photo -> :class:`FaceCrop` per face: :meth:`detect`, then :meth:`crop`),
    :meth:`run_network` (crops -> :class:`FaceMaps`, batched), :meth:`postprocess` (one crop and its maps ->
    :class:`FaceResult`).

    model: a module mapping (B, 3, S, S) RGB in [0, 1] to ``(depth, corr, mask_logits)`` (see
    :class:`facevision.model.generator.DualUnetGenerator`); it is put in eval mode on ``device``. Or an
    :class:`~facevision.model.onnx_network.OnnxNetwork` (the same on numpy arrays; CPU only).
    """

    def __init__(self, model: Any, config: PredictConfig | None = None, device: str = "cpu",
                 checkpoint: str | Path | None = None) -> None:
        from dataclasses import replace

        from facevision.model.onnx_network import OnnxNetwork  # imports no onnxruntime itself

        self.device = resolve_device(device)
        self.numpy_network = isinstance(model, OnnxNetwork)
        if self.numpy_network and self.device != "cpu":
            raise ValueError(f"an ONNX Runtime network runs on the CPU only, not on {self.device!r}")
        self.model = model if self.numpy_network else model.to(self.device).eval()
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        config = config or PredictConfig()
        size = int(getattr(getattr(model, "config", None), "image_size", config.crop.size))
        if config.crop.size != size:
            config = replace(config, crop=replace(config.crop, size=size))
        if config.freeze and str(self.device) == "cpu" and not self.numpy_network:
            from facevision.model.inference import freeze_for_inference

            self.model = freeze_for_inference(self.model, size, self.device)
        super().__init__(config)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str = "auto",
                        config: PredictConfig | None = None) -> "Predictor":
        """Load a generator checkpoint (.safetensors; default :func:`default_checkpoint`). On CPU with
        ``config.freeze`` the network comes from :mod:`facevision.model.inference_cache` (exported to ONNX once,
        then loaded without importing torch)."""
        path = Path(path) if path is not None else default_checkpoint()
        dev = resolve_device(device)
        cfg = config or PredictConfig()
        if cfg.reference is None and cfg.face_model is None:
            files = space_files(path)
            if files is not None:
                from dataclasses import replace

                cfg = config = replace(cfg, reference=str(files[0]), face_model=str(files[1]))

        def load() -> Any:
            from facevision.model.checkpoint import load_generator  # imports smp, timm, torchvision: seconds

            return load_generator(path, dev)  # its config records the crop size it was trained on

        if cfg.freeze and dev == "cpu":
            from facevision.model.inference_cache import inference_network

            return cls(inference_network(path, load, cfg.threads), config=config, device=dev, checkpoint=path)
        return cls(load(), config=config, device=dev, checkpoint=path)

    @property
    def size(self) -> int:
        return int(self.config.crop.size)

    # ------------------------------------------------------------------ stages
    def prepare(self, photo: np.ndarray, all_faces: bool | None = None) -> PreparedFaces:
        """(H, W, 3) uint8 RGB photo -> one :class:`FaceCrop` per face to process (:meth:`detect`, then
        :meth:`crop`), largest first; ``found`` counts every face found. Each crop's timings: detect and crop ms
        per face."""
        t = time.perf_counter()
        faces = self.detect(photo, all_faces)
        detect_ms = _ms(t) / max(len(faces), 1)
        found = getattr(faces, "found", len(faces))  # a subclass's detect may return a plain list
        return PreparedFaces(self.crop(photo, faces, {"detect": detect_ms}), found)

    def detect(self, image_rgb: np.ndarray, all_faces: bool | None = None) -> DetectedFaces:
        """Faces to process, largest first (only the largest unless ``all_faces``); ``found`` on the list counts
        every face found. With ``all_faces`` every pass of :func:`facevision.face.detect.find_faces` runs (full-range
        model, tiles of large photos); without, the later passes run only when the short-range one finds nothing."""
        all_faces = self.config.all_faces if all_faces is None else all_faces
        found = find_faces(image_rgb, self.config.detect, self.config.search, thorough=all_faces,
                           detector=detect_faces)  # this module's name: tests replace it
        faces = sorted(found, key=lambda f: -f.width * f.height)
        return DetectedFaces(faces if all_faces else faces[:1], len(faces))

    def crop(self, photo: np.ndarray, faces: Sequence[FaceBox], timings: Mapping[str, float] | None = None
             ) -> list[FaceCrop]:
        """Upright crops of ``faces`` (:func:`facevision.face.crop.upright_face_crop`: faces at any roll, an
        upside-down one turned the right way up by the detector's second look, or refused with its reason).
        Each crop's timings: ``timings``, then the crop's ms per face."""
        def detect(image: np.ndarray) -> list[FaceBox]:
            return detect_faces(image, self.config.detect)  # this module's name: tests replace it

        t = time.perf_counter()
        placed = [upright_face_crop(photo, f.box, f.keypoints, self.config.crop, detect, f.score or 0.0)
                  for f in faces]
        images = [crop_image(photo, u.crop_box, self.size, u.angle) for u in placed]
        stages = {**(timings or {}), "crop": _ms(t) / max(len(faces), 1)}
        return [FaceCrop(image, u.crop_box, u.angle, None if u.trusted else u.reason, tuple(f.box), f.score,
                         dict(stages)) for f, u, image in zip(faces, placed, images)]

    def run_network(self, crops: Sequence[FaceCrop], batch_size: int | None = None) -> list[FaceMaps]:
        """The maps of each crop, batched by ``batch_size`` (default ``config.batch_size``); each records the
        network's ms per face. Given an (B, S, S, 3) uint8 array of crops instead, the maps as arrays
        (:meth:`network_arrays`)."""
        if isinstance(crops, np.ndarray):
            return self.network_arrays(crops, batch_size)
        if not crops:
            return []
        t = time.perf_counter()
        depth, corr, mask = self.network_arrays(np.stack([c.image for c in crops]), batch_size)
        ms = _ms(t) / len(crops)
        return [FaceMaps(depth[i], corr[i], mask[i], ms) for i in range(len(crops))]

    def network_arrays(self, crops: np.ndarray, batch_size: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, S, S, 3) uint8 crops -> depth_px (B, S, S) float32 (crop px, 0 outside the mask),
        corr (B, S, S, 3) float32 (0 outside), mask (B, S, S) bool; batched by ``batch_size``."""
        crops = _checked_crops(np.asarray(crops), self.size)
        bs = int(batch_size or self.config.batch_size)
        run = self._run_numpy if self.numpy_network else self._run_torch
        maps = [run(crops[i:i + bs]) for i in range(0, len(crops), bs)]
        if not maps:
            s = self.size
            return np.zeros((0, s, s), np.float32), np.zeros((0, s, s, 3), np.float32), np.zeros((0, s, s), bool)
        depth, corr, mask = (np.concatenate(parts) for parts in zip(*maps))
        return depth, corr, mask

    def _maps(self, x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, 3, S, S) RGB in [0, 1] (numpy for a numpy network, else torch) -> decoded maps."""
        out = mirror_averaged(self.model, x) if self.config.mirror_average else self.model(x)
        return decode_outputs(out, self.size, self.config.mask_threshold)

    def _run_numpy(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._maps(crops.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0))

    def _run_torch(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
            return self._maps(x.permute(0, 3, 1, 2).float().div_(255.0))

    # ------------------------------------------------------------------ stages together
    def predict_face_crops(self, crops: Sequence[FaceCrop]) -> list[FaceResult]:
        """Crops already cut (:meth:`crop`, or your own :class:`FaceCrop`) -> one result each (network, then
        :meth:`postprocess`; ``index`` = position in ``crops``)."""
        maps = self.run_network(crops)
        return [self.postprocess(c, m, index=i) for i, (c, m) in enumerate(zip(crops, maps))]

    def predict_crops(self, crops: np.ndarray, crop_boxes: Sequence[Sequence[int]],
                      bboxes: Sequence[Sequence[float]] | None = None, scores: Sequence[float | None] | None = None,
                      timings: Sequence[dict[str, float]] | None = None,
                      crop_angles: Sequence[float] | None = None,
                      refusals: Sequence[str | None] | None = None) -> list[FaceResult]:
        """The arrays form of :meth:`predict_face_crops`: crops you cut yourself + their crop boxes -> results.

        crops: (B, S, S, 3) uint8; crop_boxes: B integer squares in original px; then per face, each optional:
        detector boxes, scores, timings, crop angles (degrees, :mod:`facevision.face.crop`; 0 when None) and
        reasons to refuse it (:class:`FaceCrop`).
        """
        crops = _checked_crops(np.asarray(crops), self.size)
        if len(crop_boxes) != len(crops):
            raise ValueError(f"{len(crops)} crops but {len(crop_boxes)} crop boxes")
        n = len(crops)
        faces = [FaceCrop(crop, tuple(box), float(angle or 0.0), refusal, None if bbox is None else tuple(bbox), score,
                          dict(tm or {}))
                 for crop, box, bbox, score, tm, angle, refusal in zip(crops, crop_boxes, _each(bboxes, n),
                                                                       _each(scores, n), _each(timings, n),
                                                                       _each(crop_angles, n), _each(refusals, n))]
        return self.predict_face_crops(faces)

    def predict_faces(self, image_rgb: np.ndarray, faces: Sequence[FaceBox],
                      timings: dict[str, float] | None = None) -> list[FaceResult]:
        """Faces already found (detector boxes in photo px, e.g. from :meth:`detect`) -> one result each."""
        return self.predict_face_crops(self.crop(image_rgb, faces, timings))

    def __call__(self, image_rgb: np.ndarray | str | os.PathLike, all_faces: bool | None = None) -> list[FaceResult]:
        """(H, W, 3) uint8 **RGB** photo, or a path (read with ``facevision.face.images.read_photo``: EXIF-upright RGB,
        the safe choice) -> one result per face (largest first); [] when no face is found.

        A BGR array, what ``cv2.imread`` returns, is accepted without complaint but gives other (worse)
        results: the network was trained on RGB. Pass ``image[..., ::-1]`` or, better, the path."""
        if isinstance(image_rgb, (str, os.PathLike)):
            from facevision.face.images import read_photo

            image_rgb = read_photo(image_rgb)
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image_rgb.shape} {image_rgb.dtype}")
        return self.predict_face_crops(self.prepare(image_rgb, all_faces))


def _each(values: Sequence[Any] | None, n: int) -> Sequence[Any]:
    """``values``, or ``n`` times None when it is None."""
    return [None] * n if values is None else values


def _checked_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """``crops`` when it is (B, size, size, 3); else a ValueError naming its shape."""
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
        raise ValueError(f"crops must be (B, {size}, {size}, 3), got {crops.shape}")
    return crops


def space_files(checkpoint: str | Path) -> tuple[Path, Path] | None:
    """The reference face and face model a checkpoint's maps need: None for the package's space
    (``facevision-reference-v1``, or a checkpoint that names none), else ``<stem>.reference.npz`` and
    ``<stem>.face_model.npz`` beside the checkpoint (ValueError naming them when missing). The space is read from
    the checkpoint's metadata without importing torch."""
    import json

    from safetensors import safe_open

    from facevision.face.reference import CORRESPONDENCE_SPACE

    checkpoint = Path(checkpoint)
    try:
        with safe_open(str(checkpoint), framework="numpy") as f:
            space = json.loads((f.metadata() or {}).get("correspondence_space", "null"))
    except Exception:  # noqa: BLE001 - the checkpoint loader reports an unreadable file with its own message
        return None
    if space in (None, CORRESPONDENCE_SPACE, "unknown"):
        return None
    files = (checkpoint.with_name(checkpoint.stem + ".reference.npz"),
             checkpoint.with_name(checkpoint.stem + ".face_model.npz"))
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise ValueError(f"{checkpoint}: its maps are in correspondence space {space!r}, which needs "
                         f"{' and '.join(missing)} (the dataset's reference.npz and its `prepare face-model` output)")
    return files

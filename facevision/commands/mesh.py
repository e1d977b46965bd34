"""``facevision mesh``: dataset-format depth (+ corr, photo, mask) PNGs -> refined mesh (.ply or .obj)."""
from __future__ import annotations

import argparse
from pathlib import Path

from facevision.commands.errors import DeprecatedFlag, config_errors, fail, reports_errors

NAME = "mesh"
PROG = "facevision mesh"
# MeshConfig's fields as the command line names them (its ValueErrors name the field)
_FLAGS = {"vertex_density": "--density", "target_vertices": "--target-vertices", "triangulation": "--triangulation",
          "z_scale": "--z-scale", "spike_edge_factor": "--spike-edge-factor",
          "spike_area_factor": "--spike-area-factor", "smooth_iterations": "--smooth-iterations",
          "smooth_lambda": "--smooth-lambda", "detail_strength": "--detail-strength", "detail_sigma": "--detail-sigma"}
MAX_PIXELS = 2048 * 2048  # meshing needs ~250 bytes per map pixel


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="depth (+ correspondence, photo, mask) maps -> refined 3D mesh (.ply or .obj)",
        description="Lift a depth map to a triangle mesh, remove background and spikes, smooth it, "
                    "add detail from the photo and write PLY or textured OBJ (+ MTL + PNG). "
                    "Depth: one channel; 16-bit PNG = round(z * 256) px (dataset format, predict's depth.png), "
                    "8-bit gray or float (TIFF, .npy) = px; larger = closer, 0 = background. Colour images "
                    "(a photo, depth_vis.png, corr.png) are refused.",
    )
    p.add_argument("--depth", required=True, type=Path,
                   help="one-channel depth map: 16-bit PNG (dataset format), 8-bit gray or float TIFF/.npy in px")
    p.add_argument("--corr", type=Path,
                   help="correspondence map: 16-bit RGB PNG (dataset format), 8-bit RGB, or float TIFF/.npy in [0, 1]")
    p.add_argument("--image", type=Path, help="photo of the same crop: detail, vertex colours and texture")
    p.add_argument("--mask", type=Path, help="face mask PNG (> 50%% of full scale = face)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output mesh, .ply or .obj")
    g = p.add_argument_group("sampling")
    g.add_argument("--density", type=float, default=None,
                   help="vertices per foreground pixel (default 1: every face pixel a vertex; a 128x128 face crop "
                        "gives 5-8k vertices)")
    g.add_argument("--target-vertices", type=int, default=None, help="aim for this many vertices (overrides --density)")
    g.add_argument("--triangulation", choices=("auto", "grid", "delaunay"), default=None,
                   help="auto/grid: direct lattice triangulation (fast); delaunay: scipy qhull (default auto)")
    g.add_argument("--z-scale", type=float, default=None,
                   help="multiply depth values, e.g. to bring a 0-255 depth map to pixel units (default 1)")
    g.add_argument("--depth-scale", dest="z_scale", type=float, action=DeprecatedFlag, new="--z-scale", prog=PROG)
    g.add_argument("--nan-as-background", action="store_true", help="treat NaN/inf depth as background")
    g.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"refuse maps with more pixels than this (default {MAX_PIXELS:,} = 2048 x 2048; "
                        "memory grows by ~250 bytes per pixel)")
    s = p.add_argument_group("steps")
    s.add_argument("--no-background", action="store_true", help="skip background-triangle removal")
    s.add_argument("--no-spikes", action="store_true", help="skip spike removal")
    s.add_argument("--spike-edge-factor", type=float, default=None, help="longest edge > F x median = spike (default 4)")
    s.add_argument("--spike-area-factor", type=float, default=None, help="area > F x median = spike (default 10)")
    s.add_argument("--keep-all-components", action="store_true", help="do not keep only the largest component")
    s.add_argument("--smooth-iterations", type=int, default=None, help="Laplacian passes, 0 = off (default 5)")
    s.add_argument("--smooth-lambda", type=float, default=None, help="Laplacian step in [0, 1] (default 0.5)")
    s.add_argument("--pin-boundary", action="store_true", help="keep boundary vertices fixed while smoothing")
    s.add_argument("--detail-strength", type=float, default=None,
                   help="px of normal displacement per unit high-pass grey, 0 = off (default 2)")
    s.add_argument("--detail-sigma", type=float, default=None, help="Gaussian low-pass sigma in px (default 2)")
    s.add_argument("--colors", choices=("image", "corr", "none"), default="image",
                   help="vertex colours from the photo (default), the correspondence map, or none")
    s.add_argument("--no-texture", action="store_true", help="OBJ: do not write the MTL + PNG texture")
    p.set_defaults(func=run)
    return p


def _config(args):
    from meshing import MeshConfig

    overrides = {
        "vertex_density": args.density,
        "target_vertices": args.target_vertices,
        "triangulation": args.triangulation,
        "z_scale": args.z_scale,
        "spike_edge_factor": args.spike_edge_factor,
        "spike_area_factor": args.spike_area_factor,
        "smooth_iterations": args.smooth_iterations,
        "smooth_lambda": args.smooth_lambda,
        "detail_strength": args.detail_strength,
        "detail_sigma": args.detail_sigma,
    }
    kw = {k: v for k, v in overrides.items() if v is not None}
    kw["nonfinite"] = "background" if args.nan_as_background else "error"
    kw["remove_background"] = not args.no_background
    kw["remove_spikes"] = not args.no_spikes
    kw["keep_largest_component"] = not args.keep_all_components
    kw["smooth_pin_boundary"] = bool(args.pin_boundary)
    return MeshConfig(**kw)


class _InputError(ValueError):
    pass


DEPTH_EXPECTED = ("a one-channel depth map: 16-bit PNG = round(z * 256) px (predict's depth.png), or 8-bit gray "
                  "or float (TIFF, .npy) in px")
CORR_EXPECTED = ("a correspondence map: 16-bit RGB PNG = round(c * 65535) (predict's corr.png), 8-bit RGB, or "
                 "float RGB (TIFF, .npy) in [0, 1]")


def _check_pixels(path: Path | None, max_pixels: int) -> None:
    """Refuse a map larger than ``max_pixels`` from its header, before decoding it."""
    if path is None:
        return
    from PIL import Image

    try:
        if path.suffix.lower() == ".npy":
            import numpy as np

            h, w = (np.load(path, mmap_mode="r", allow_pickle=False).shape + (1, 1))[:2]
        else:
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError:  # more pixels than Pillow even opens: OpenCV would decode it whole
        raise _InputError(f"{path}: map is too large to mesh (more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} "
                          "pixels, the most Pillow opens); downscale it (and its depth values by the same factor) "
                          "first") from None
    except Exception:  # noqa: BLE001 - unreadable files get read_png's / read_photo's message
        return
    if w * h > max_pixels:
        raise _InputError(f"{path}: {w} x {h} map is too large to mesh ({w * h:,} pixels > --max-pixels "
                          f"{max_pixels:,}); downscale it (and its depth values by the same factor) first")


def _describe(arr) -> str:
    """What an image array is, for messages: '8-bit RGB', '16-bit gray', 'float32 RGBA'..."""
    import numpy as np

    bits = {np.dtype(np.uint8): "8-bit", np.dtype(np.uint16): "16-bit"}.get(arr.dtype, str(arr.dtype))
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    return f"{bits} " + {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels}-channel")


def _read_array(path: Path, flag: str):
    """A map file as an array: .npy (no pickles) or any image OpenCV reads, bit depth and floats kept."""
    import numpy as np

    from facevision.face.images import ImageReadError, read_png

    try:
        if path.suffix.lower() != ".npy":
            return read_png(path)
        if not path.is_file():
            raise ImageReadError(f"{path}: file not found")
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ImageReadError(f"{path}: not a readable .npy array ({exc})") from None
    except ImageReadError as exc:
        raise _InputError(f"{exc} (given as {flag})") from None


def _depth_from(path: Path, raw):
    """A --depth file's array -> float32 depth in px: 16-bit = round(z * 256) (dataset format), other integers
    and floats as they are. Anything with colour channels is refused (_InputError naming the file)."""
    import numpy as np

    from facevision.common.conventions import check_depth_px
    from facevision.face.codecs import decode_depth

    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[..., 0]
    if raw.ndim != 2 or raw.dtype.kind not in "uif":
        guess = ""
        if raw.ndim == 3 and raw.dtype == np.uint16 and raw.shape[2] >= 3:
            guess = " (a correspondence map such as corr.png?)"
        elif raw.ndim == 3 and raw.dtype == np.uint8:
            guess = " (a photo or a depth visualisation such as depth_vis.png?)"
        raise _InputError(f"{path}: --depth got a {_describe(raw) if raw.ndim in (2, 3) else raw.shape} "
                          f"image{guess}; expected {DEPTH_EXPECTED}")
    depth = decode_depth(raw) if raw.dtype == np.uint16 else raw.astype(np.float32)
    return check_depth_px(depth, f"{path} (--depth)", _InputError)


def _corr_from(path: Path, raw):
    """A --corr file's array -> float32 (H, W, 3) in [0, 1]: 16-bit / 8-bit RGB(A) scaled from full scale, floats
    as they are (checked). Anything else is refused (_InputError naming the file)."""
    import numpy as np

    from facevision.common.conventions import check_corr
    from facevision.face.codecs import decode_corr

    if not (raw.ndim == 3 and raw.shape[2] in (3, 4) and (raw.dtype in (np.uint8, np.uint16) or raw.dtype.kind == "f")):
        what = _describe(raw) if raw.ndim in (2, 3) else f"{raw.shape}"
        guess = " (a depth map or mask?)" if raw.ndim == 2 or (raw.ndim == 3 and raw.shape[2] == 1) else ""
        raise _InputError(f"{path}: --corr got a {what} image{guess}; expected {CORR_EXPECTED}")
    rgb = raw[..., :3]
    if rgb.dtype.kind == "f":
        return check_corr(np.nan_to_num(rgb.astype(np.float32)), source=f"{path} (--corr)", error=_InputError)
    return decode_corr(rgb)


def _read_maps(args):
    import numpy as np

    from facevision.face.images import ImageReadError, read_photo

    for path in (args.depth, args.mask, args.corr, args.image):
        _check_pixels(path, args.max_pixels)
    depth = _depth_from(args.depth, _read_array(args.depth, "--depth"))
    if not args.nan_as_background and not np.isfinite(depth).all():
        n = int((~np.isfinite(depth)).sum())
        raise _InputError(f"{args.depth}: --depth has {n} NaN/inf value(s); clean the map or pass --nan-as-background")
    shape = depth.shape

    def same_size(path, arr):
        if arr.shape[:2] != shape:
            raise _InputError(f"{path}: size {arr.shape[1]}x{arr.shape[0]} differs from the depth map "
                              f"{args.depth} ({shape[1]}x{shape[0]})")
        return arr

    mask = corr = image = None
    if args.mask is not None:
        raw = same_size(args.mask, _read_array(args.mask, "--mask"))
        if raw.ndim == 3:
            raw = raw[..., 0]
        full = 65535 if raw.dtype == np.uint16 else 255 if raw.dtype == np.uint8 else 1.0
        mask = np.nan_to_num(raw.astype(np.float64)) > full / 2
    if args.corr is not None:
        corr = _corr_from(args.corr, same_size(args.corr, _read_array(args.corr, "--corr")))
    if args.image is not None:
        try:
            image = same_size(args.image, read_photo(args.image))
        except ImageReadError as exc:
            raise _InputError(f"{exc} (given as --image)") from None
    return depth, mask, corr, image


@reports_errors(PROG)
def run(args: argparse.Namespace) -> int:
    from meshing import FaceMesh, MeshingError, mesh_from_maps, save_mesh
    from facevision.common.fileio import OutputWriteError
    from meshing.io import MESH_SUFFIXES, MeshIOError

    prog = PROG
    if args.output.suffix.lower() not in MESH_SUFFIXES:
        return fail(prog, f"{args.output}: output must end in .ply or .obj")
    with config_errors(prog, _FLAGS):
        config = _config(args)
    if args.max_pixels < 1:
        return fail(prog, "--max-pixels must be >= 1")
    try:
        depth, mask, corr, image = _read_maps(args)
    except ValueError as exc:  # ImageReadError, _InputError: the input is bad, exit code 1
        return fail(prog, exc, code=1)
    try:
        mesh: FaceMesh = mesh_from_maps(depth, mask=mask, image=image, corr=corr, config=config)
    except MeshingError as exc:
        return fail(prog, f"{args.depth}: cannot mesh: {exc}", code=1)
    if args.colors == "corr":
        mesh.colors = mesh.corr
    elif args.colors == "none":
        mesh.colors = None
    texture = image if (image is not None and not args.no_texture and args.output.suffix.lower() == ".obj") else None
    try:
        save_mesh(args.output, mesh, texture=texture)
    except (MeshIOError, OSError) as exc:
        msg = str(exc) if isinstance(exc, (MeshIOError, OutputWriteError)) else f"{args.output}: cannot write: {exc}"
        return fail(prog, msg, code=1)
    extra = f" (+ {args.output.with_suffix('.mtl').name}, {args.output.stem}_0.png)" if texture is not None else ""
    print(f"{args.output}: {mesh.n_vertices} vertices, {mesh.n_faces} faces{extra}")
    return 0

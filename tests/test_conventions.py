"""The map conventions (facevision.common.conventions) are checked where maps enter a stage; bad values are refused.

Also the layering rules: ``meshing`` imports alone, inference code does not load training code.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facevision.common.conventions import check_corr, check_depth_px, check_mask

ROOT = Path(__file__).resolve().parents[1]


def _maps(size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    depth = np.where(mask, 5.0 + 0.1 * xx, 0.0).astype(np.float32)
    corr = np.where(mask[..., None], np.dstack([xx, size - 1 - yy, xx * 0 + 8]) / size, 0.0).astype(np.float32)
    return depth, corr, mask


def test_checks_accept_maps_in_the_conventions():
    depth, corr, mask = _maps()
    assert check_depth_px(depth).shape == depth.shape
    check_corr(corr, depth.shape)
    check_mask(mask, depth.shape)
    check_depth_px(np.where(mask, np.nan, depth))  # NaN is the caller's policy, not a convention breach


@pytest.mark.parametrize("bad, match", [
    (lambda d: -d, "negative"), (lambda d: d[None], r"\(H, W\)"), (lambda d: d.astype(str), "numeric"),
    (lambda d: d[:0], "non-empty")])
def test_check_depth_refuses(bad, match):
    depth, _, _ = _maps()
    with pytest.raises(ValueError, match=match):
        check_depth_px(bad(depth), "x.png")


def test_check_corr_and_mask_refuse_and_name_the_source():
    depth, corr, mask = _maps()
    with pytest.raises(ValueError, match=r"^c\.png: .* outside \[0, 1\]"):
        check_corr(corr * 2.0, source="c.png")
    with pytest.raises(ValueError, match="-0.5"):
        check_corr(corr - 0.5)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        check_corr(corr[..., :2])
    with pytest.raises(ValueError, match="differs"):
        check_corr(corr[:-1], depth.shape)
    with pytest.raises(ValueError, match="differs"):
        check_mask(mask[1:], depth.shape)
    with pytest.raises(ValueError, match="NaN"):
        check_mask(np.full(depth.shape, np.nan))

    class Custom(ValueError):
        pass

    with pytest.raises(Custom):
        check_depth_px(-depth, error=Custom)


def test_meshing_refuses_negative_depth_instead_of_making_it_background():
    from meshing import MeshingError, lift, mesh_from_maps

    depth, corr, mask = _maps()
    assert mesh_from_maps(depth, mask, corr=corr).n_vertices > 0
    bad = depth.copy()
    bad[mask] -= 100.0
    with pytest.raises(MeshingError, match="negative"):
        mesh_from_maps(bad, mask)
    with pytest.raises(MeshingError, match="negative"):
        lift(bad)
    with pytest.raises(MeshingError, match=r"outside \[0, 1\]"):
        mesh_from_maps(depth, mask, corr=corr + 1.0)


def test_encode_depth_refuses_negative_depth():
    from facevision.face.codecs import encode_depth

    depth, _, mask = _maps()
    assert encode_depth(np.where(mask, depth, -3.0), mask).min() == 0  # outside the mask: not looked at
    with pytest.raises(ValueError, match="negative"):
        encode_depth(-depth, mask)


def test_dataset_reader_checks_the_decoded_maps(tmp_path, monkeypatch):
    import data_prep.dataset_format as fmt

    depth, corr, mask = _maps()
    image = np.zeros(depth.shape + (3,), np.uint8)
    fmt.write_sample(tmp_path, "s0", fmt.Sample(image=image, depth=depth, corr=corr, mask=mask))
    s = fmt.read_sample(tmp_path, "s0")
    np.testing.assert_allclose(s.depth, depth, atol=1 / 256)
    monkeypatch.setattr(fmt, "decode_corr", lambda v: v.astype(np.float32) / 1000.0)  # a wrong decoder
    with pytest.raises(fmt.DatasetFormatError, match=r"corr\.png: .*outside \[0, 1\]"):
        fmt.read_sample(tmp_path, "s0")


def test_predictor_postprocess_refuses_maps_that_break_the_conventions():
    from facevision.predict.predictor import PredictConfig, Predictor
    from facevision.predict.records import FaceCrop, FaceMaps
    from support.synthetic import fixed_maps_model

    depth, corr, mask = _maps()
    p = Predictor(fixed_maps_model(depth, corr, mask), PredictConfig(mesh=None, fit=None, freeze=False))
    crop = FaceCrop(np.zeros(depth.shape + (3,), np.uint8), (0, 0, 32, 32))
    with pytest.raises(ValueError, match="postprocess: depth_px: .*negative"):
        p.postprocess(crop, FaceMaps(-depth, corr, mask))
    with pytest.raises(ValueError, match=r"postprocess: corr: .*outside \[0, 1\]"):
        p.postprocess(crop, FaceMaps(depth, corr * 3, mask))
    with pytest.raises(ValueError, match="postprocess: mask: mask size"):
        p.postprocess(crop, FaceMaps(depth, corr, mask[:5]))


def test_flame_register_refuses_a_correspondence_map_out_of_range():
    from facevision.flame.registration import RegistrationError, register
    from meshing import mesh_from_maps

    depth, corr, mask = _maps()
    mesh = mesh_from_maps(depth, mask)
    with pytest.raises(RegistrationError, match=r"corr_map: .*outside \[0, 1\]"):
        register(mesh, corr * 255.0, None, model=None)


def _fresh_modules(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_meshing_imports_alone():
    """``import meshing`` loads of the project only facevision.common (and the light facevision/__init__)."""
    _fresh_modules("import meshing, sys; extra = sorted(m for m in sys.modules if m.split('.')[0] in "
                   "('facevision', 'data_prep') and m != 'facevision' and not m.startswith('facevision.common')); "
                   "assert not extra, extra")


@pytest.mark.parametrize("package", ["facevision.predict.predictor", "facevision.predict.runner",
                                     "facevision.predict.outputs", "facevision.evaluate", "facevision.model.checkpoint",
                                     "facevision.model.outputs", "facevision.maps.pose", "facevision.maps.landmarks",
                                     "facevision.fit.model_fit", "facevision.commands.predict"])
def test_inference_code_does_not_load_training_code(package):
    _fresh_modules(f"import {package}, sys; loaded = [m for m in sys.modules if m.startswith('facevision.train')]; "
                   "assert not loaded, loaded")

"""``facevision mesh``: dataset-format PNGs in, mesh files out, clear errors."""
from __future__ import annotations

import re

import numpy as np
import pytest

import meshing
from facevision.face.codecs import encode_corr, encode_depth
from facevision.face.images import atomic_write_png
from facevision.cli import main
from support.surfaces import face_like, hemisphere


@pytest.fixture()
def maps(tmp_path):
    depth, mask = face_like(64, 0.6, height=16.0)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    corr = np.where(mask[..., None], rng.random((64, 64, 3)), 0.0)
    paths = {
        "depth": atomic_write_png(tmp_path / "depth.png", encode_depth(depth, mask)),
        "mask": atomic_write_png(tmp_path / "mask.png", mask.astype(np.uint8) * 255),
        "image": atomic_write_png(tmp_path / "image.png", image),
        "corr": atomic_write_png(tmp_path / "corr.png", encode_corr(corr, mask)),
    }
    return paths, depth, mask, image


def _counts(out: str) -> tuple[int, int]:
    m = re.search(r"(\d+) vertices, (\d+) faces", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_mesh_command_writes_textured_obj_and_prints_counts(tmp_path, maps, capsys):
    paths, depth, mask, image = maps
    out = tmp_path / "out" / "face.obj"
    rc = main(["mesh", "--depth", str(paths["depth"]), "--mask", str(paths["mask"]), "--image", str(paths["image"]),
               "--corr", str(paths["corr"]), "-o", str(out)])
    assert rc == 0
    nv, nf = _counts(capsys.readouterr().out)
    assert (out.parent / "face.mtl").is_file() and (out.parent / "face_0.png").is_file()
    back = meshing.load_mesh(out)
    assert (back.n_vertices, back.n_faces) == (nv, nf)
    expected = meshing.mesh_from_maps(depth.astype(np.float32), mask, image)
    assert abs(nv - expected.n_vertices) <= 0.01 * nv  # same pipeline; depth went through 1/256 px quantisation


def test_mesh_command_ply_with_switches(tmp_path, maps, capsys):
    paths, depth, mask, _ = maps
    out = tmp_path / "raw.ply"
    rc = main(["mesh", "--depth", str(paths["depth"]), "-o", str(out), "--density", "1", "--no-spikes",
               "--smooth-iterations", "0", "--colors", "none"])
    assert rc == 0
    nv, nf = _counts(capsys.readouterr().out)
    assert nv == int(mask.sum())  # one vertex per foreground pixel
    back = meshing.load_mesh(out)
    assert back.colors is None and back.n_faces == nf
    np.testing.assert_allclose(np.sort(back.vertices[:, 2]), np.sort(np.round(depth[mask] * 256) / 256), atol=1e-4)


def test_mesh_command_accepts_8bit_depth(tmp_path, capsys):
    depth, mask, _ = hemisphere(48, 18.0)
    p = atomic_write_png(tmp_path / "d8.png", np.rint(depth).astype(np.uint8))
    assert main(["mesh", "--depth", str(p), "-o", str(tmp_path / "m.ply")]) == 0
    nv, nf = _counts(capsys.readouterr().out)
    assert nv > 0.5 * mask.sum() and nf > nv


def test_mesh_command_errors_name_the_file(tmp_path, maps, capsys):
    paths, *_ = maps
    out = str(tmp_path / "x.ply")
    missing = tmp_path / "nope.png"
    assert main(["mesh", "--depth", str(missing), "-o", out]) == 1
    assert str(missing) in capsys.readouterr().err

    small = atomic_write_png(tmp_path / "small_mask.png", np.full((32, 32), 255, np.uint8))
    assert main(["mesh", "--depth", str(paths["depth"]), "--mask", str(small), "-o", out]) == 1
    err = capsys.readouterr().err
    assert str(small) in err and "differs" in err

    empty = atomic_write_png(tmp_path / "empty.png", np.zeros((32, 32), np.uint16))
    assert main(["mesh", "--depth", str(empty), "-o", out]) == 1
    err = capsys.readouterr().err
    assert str(empty) in err and "no foreground" in err

    junk = tmp_path / "junk.png"
    junk.write_bytes(b"garbage")
    assert main(["mesh", "--depth", str(junk), "-o", out]) == 1
    assert str(junk) in capsys.readouterr().err

    assert main(["mesh", "--depth", str(paths["depth"]), "-o", str(tmp_path / "x.stl")]) == 2
    assert "x.stl" in capsys.readouterr().err

    assert main(["mesh", "--depth", str(paths["depth"]), "-o", out, "--smooth-lambda", "3"]) == 2
    assert "--smooth-lambda must be in [0, 1], got 3" in capsys.readouterr().err  # MeshConfig's check, flag named
    assert not (tmp_path / "x.ply").exists()


def test_mesh_help_lists_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["mesh", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--depth", "--corr", "--image", "--mask", "--density", "--no-spikes", "--smooth-iterations",
                 "--detail-strength", "--triangulation"):
        assert flag in text


# ------------------------------------------------------------- Reliability II: what --depth / --corr read
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_float_depth_tiff_and_npy_are_read_as_pixels(tmp_path, maps, capsys):
    """A float32 depth map in px (TIFF or .npy) is meshed at its own scale, not divided by 256 as 16-bit PNGs are."""
    import cv2

    _, depth, mask, _ = maps
    d = np.where(mask, depth, 0).astype(np.float32)
    assert cv2.imwrite(str(tmp_path / "d.tiff"), d)
    np.save(tmp_path / "d.npy", d)
    for name in ("d.tiff", "d.npy"):
        out = tmp_path / f"{name}.ply"
        rc = main(["mesh", "--depth", str(tmp_path / name), "-o", str(out), "--density", "1", "--no-spikes",
                   "--smooth-iterations", "0", "--detail-strength", "0", "--colors", "none"])
        assert rc == 0, capsys.readouterr().err
        nv, _ = _counts(capsys.readouterr().out)
        assert nv == int(mask.sum())
        np.testing.assert_allclose(np.sort(meshing.load_mesh(out).vertices[:, 2]), np.sort(d[mask]), atol=1e-3)


def test_colour_images_given_as_depth_are_refused_with_one_line(tmp_path, maps, capsys):
    """A photo, predict's depth_vis.png (8-bit RGB) or corr.png (16-bit RGB) given as --depth: one line saying what
    was given and what is expected, and no mesh."""
    from facevision.maps.visualize import depth_to_rgb

    paths, depth, mask, _ = maps
    vis = atomic_write_png(tmp_path / "depth_vis.png", depth_to_rgb(np.where(mask, depth, 0), mask))
    out = tmp_path / "m.ply"
    for given, what in ((paths["image"], "8-bit RGB"), (vis, "8-bit RGB"), (paths["corr"], "16-bit RGB")):
        assert main(["mesh", "--depth", str(given), "-o", str(out)]) == 1
        line = _one_error_line(capsys)
        assert f"{given}: --depth got a {what} image" in line, line
        assert "expected a one-channel depth map" in line and "16-bit PNG" in line
    assert not out.exists()


def test_corr_files_are_checked_and_errors_name_the_flag(tmp_path, maps, capsys):
    import cv2

    paths, depth, mask, _ = maps
    out = tmp_path / "m.ply"
    assert main(["mesh", "--depth", str(paths["depth"]), "--corr", str(paths["depth"]), "-o", str(out)]) == 1
    line = _one_error_line(capsys)
    assert f"{paths['depth']}: --corr got a 16-bit gray image" in line and "expected a correspondence map" in line

    corr = np.repeat(np.where(mask, 0.25, 0.0)[..., None], 3, axis=2).astype(np.float32)
    assert cv2.imwrite(str(tmp_path / "c.tiff"), corr)
    assert main(["mesh", "--depth", str(paths["depth"]), "--corr", str(tmp_path / "c.tiff"), "-o", str(out),
                 "--colors", "corr"]) == 0
    capsys.readouterr()
    colours = meshing.load_mesh(out).colors
    assert colours is not None and np.allclose(colours[colours.sum(1) > 0], 0.25, atol=0.01)  # floats as they are

    assert cv2.imwrite(str(tmp_path / "c2.tiff"), corr * 4)  # out of [0, 1]: not a float correspondence map
    assert main(["mesh", "--depth", str(paths["depth"]), "--corr", str(tmp_path / "c2.tiff"), "-o", str(out)]) == 1
    assert "(--corr)" in _one_error_line(capsys)

    missing = tmp_path / "nope.png"
    assert main(["mesh", "--depth", str(paths["depth"]), "--corr", str(missing), "-o", str(out)]) == 1
    line = _one_error_line(capsys)
    assert str(missing) in line and "--corr" in line


def test_nan_depth_error_names_the_flags(tmp_path, maps, capsys):
    _, depth, mask, _ = maps
    d = np.where(mask, depth, 0).astype(np.float32)
    d[mask.nonzero()[0][0], mask.nonzero()[1][0]] = np.nan
    np.save(tmp_path / "nan.npy", d)
    out = tmp_path / "m.ply"
    assert main(["mesh", "--depth", str(tmp_path / "nan.npy"), "-o", str(out)]) == 1
    line = _one_error_line(capsys)
    assert f"{tmp_path / 'nan.npy'}: --depth has 1 NaN/inf value(s)" in line and "--nan-as-background" in line
    assert "nonfinite" not in line  # the API argument is not the user's flag
    assert main(["mesh", "--depth", str(tmp_path / "nan.npy"), "-o", str(out), "--nan-as-background"]) == 0
    assert out.is_file()


def test_z_scale_and_its_old_name_depth_scale(tmp_path, maps, capsys):
    """``--z-scale`` multiplies depth; ``--depth-scale``, its old name, still works for one release and warns in
    one line naming the new flag."""
    paths = maps[0]
    plain, new, old = (tmp_path / f"{n}.ply" for n in ("plain", "new", "old"))
    assert main(["mesh", "--depth", str(paths["depth"]), "-o", str(plain)]) == 0
    assert main(["mesh", "--depth", str(paths["depth"]), "-o", str(new), "--z-scale", "2"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(["mesh", "--depth", str(paths["depth"]), "-o", str(old), "--depth-scale", "2"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "--depth-scale is deprecated" in err[0] and "--z-scale" in err[0]
    z = {n: meshing.load_mesh(p).vertices[:, 2] for n, p in (("plain", plain), ("new", new), ("old", old))}
    assert np.allclose(z["new"], z["old"]) and np.ptp(z["new"]) == pytest.approx(2 * np.ptp(z["plain"]), rel=0.05)
    assert main(["mesh", "--depth", str(paths["depth"]), "-o", str(old), "--z-scale", "0"]) == 2
    assert "--z-scale must be a finite number > 0, got 0" in capsys.readouterr().err

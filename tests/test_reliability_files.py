"""Issue #11, files: a full disk never leaves a partial file under a final name, stale temporaries of
killed runs are removed, photos read right (alpha over black, 16-bit colour), huge photos and maps are
bounded. Faults are injected: ``os.write`` raising ENOSPC (our writer), Open3D "succeeding" with a cut
file (what it does on a full disk), and, where the machine allows mounting, a real 48 KiB tmpfs."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import meshing
from facevision.face.codecs import encode_depth
from facevision.common.fileio import OutputWriteError, atomic_write_bytes, atomic_write_json, remove_stale_temporaries
from facevision.face.images import atomic_write_png, read_photo, read_photo_scaled
from facevision.cli import main
from support.surfaces import hemisphere

DEAD_PID = 2**22 + 12345  # above Linux's pid_max: never a live process


@pytest.fixture()
def full_disk(monkeypatch, tmp_path):
    """Writes through ``os.write`` to files under tmp_path get half their bytes on disk, then ENOSPC."""
    real = os.write

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            n = real(fd, bytes(data[: max(1, len(data) // 2)]))
            if n < len(data):
                return n
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_writers_on_a_full_disk_leave_nothing(tmp_path, full_disk):
    (tmp_path / "old.json").write_text('{"kept": true}')
    for write, name in ((lambda p: atomic_write_bytes(p, b"x" * 10000), "a.bin"),
                        (lambda p: atomic_write_json(p, {"k": list(range(1000))}), "old.json"),
                        (lambda p: atomic_write_png(p, np.full((64, 64, 3), 7, np.uint8)), "c.png")):
        with pytest.raises(OutputWriteError) as info:
            write(tmp_path / name)
        msg = str(info.value)
        assert msg.startswith(f"{tmp_path / name}: ") and "disk full" in msg and "\n" not in msg
        assert info.value.errno == errno.ENOSPC
    # nothing under the new final names, no temporary left, the old complete file untouched
    assert _leftovers(tmp_path) == ["old.json"]
    assert json.loads((tmp_path / "old.json").read_text()) == {"kept": True}


@pytest.fixture(scope="module")
def maps_and_mesh():
    depth, mask, _ = hemisphere(64, 24.0)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return depth, mask, image, meshing.mesh_from_maps(depth, mask, image)


def _open3d_cuts(monkeypatch, victim: str, keep: float) -> None:
    """Open3D on a full disk: the named file of the set ends cut to ``keep`` of its size, success reported."""
    import open3d as o3d

    real = o3d.io.write_triangle_mesh

    def write(filename, mesh, **kw):
        real(filename, mesh, **kw)
        for f in Path(filename).parent.iterdir():
            if f.suffix == victim:
                data = f.read_bytes()
                f.write_bytes(data[: int(len(data) * keep)])
        return True

    monkeypatch.setattr(o3d.io, "write_triangle_mesh", write)


def _obj_writer_cuts(monkeypatch, victim: str, keep: float) -> None:
    """The OBJ set's writer on a full disk: the named file ends cut to ``keep`` of its size, no error raised."""
    import meshing.io as mio

    real = mio._write_file

    def write(path, data):
        real(path, data[: int(len(data) * keep)] if Path(path).suffix == victim else data)

    monkeypatch.setattr(mio, "_write_file", write)


@pytest.mark.parametrize("name,victim,keep", [("m.ply", ".ply", 0.5), ("m.ply", ".ply", 0.0),
                                              ("m.obj", ".obj", 0.7), ("m.obj", ".obj", 0.999),
                                              ("m.obj", ".mtl", 0.0), ("m.obj", ".png", 0.9)])
def test_mesh_files_cut_by_a_full_disk_are_refused(tmp_path, maps_and_mesh, monkeypatch, name, victim, keep):
    _, _, image, mesh = maps_and_mesh
    (_open3d_cuts if name.endswith(".ply") else _obj_writer_cuts)(monkeypatch, victim, keep)
    with pytest.raises(OutputWriteError) as info:
        meshing.save_mesh(tmp_path / name, mesh, texture=image)
    assert str(info.value).startswith(str(tmp_path / "m")) and victim in str(info.value).split(":")[0]
    assert "disk full" in str(info.value)
    assert _leftovers(tmp_path) == []  # not the OBJ, MTL or texture, no temporary folder


def test_mesh_command_exits_nonzero_when_the_disk_is_full(tmp_path, maps_and_mesh, monkeypatch, capsys):
    depth, mask, _, _ = maps_and_mesh
    atomic_write_png(tmp_path / "d.png", encode_depth(depth, mask))
    out = tmp_path / "out"
    out.mkdir()
    _open3d_cuts(monkeypatch, ".ply", 0.0)  # the case: a 0-byte m.ply and exit code 0
    assert main(["mesh", "--depth", str(tmp_path / "d.png"), "-o", str(out / "m.ply")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{out / 'm.ply'}:" in err[0] and "disk full" in err[0]
    assert _leftovers(out) == []


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"], capture_output=True)
    return r.returncode == 0


@pytest.mark.slow
def test_mesh_command_on_a_really_full_tmpfs(tmp_path, maps_and_mesh):
    if not _can_mount_tmpfs():
        pytest.skip("cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN); the injected faults above cover it")
    depth, mask, image, _ = maps_and_mesh
    atomic_write_png(tmp_path / "d.png", encode_depth(depth, mask))
    atomic_write_png(tmp_path / "i.png", image)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    exe = Path(sys.executable).parent / "facevision"
    script = (f"mount -t tmpfs -o size=48k tmpfs {mnt} && "
              f"{exe} mesh --depth {tmp_path / 'd.png'} -o {mnt / 'm.ply'}; echo rc=$?; "
              f"{exe} mesh --depth {tmp_path / 'd.png'} --image {tmp_path / 'i.png'} -o {mnt / 'm.obj'}; echo rc=$?; "
              f"ls -A {mnt}")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    lines = r.stdout.split()
    assert lines[:2] == ["rc=1", "rc=1"] and lines[2:] == [], r.stdout + r.stderr  # nothing left on the tmpfs
    err = r.stderr.strip().splitlines()
    assert len(err) == 2 and all("disk is full" in e or "(disk full)" in e for e in err), err  # one line each, no RPly spam
    assert f"{mnt / 'm.ply'}:" in err[0] and str(mnt / "m.") in err[1]


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sub = tmp_path / "photo" / "face0"
        sub.mkdir(parents=True)
        stale = [tmp_path / f".summary.{DEAD_PID}-abcd1234.tmp.json", sub / f".crop.{DEAD_PID}-zz_x9y8w.tmp.png",
                 tmp_path / ".last.k2j3h4g5.tmp.pt"]  # the last: the naming before pids were recorded
        stale_dir = sub / f".mesh.{DEAD_PID}-q1w2e3r4.tmp"
        kept = [tmp_path / f".summary.{live.pid}-abcd1234.tmp.json", tmp_path / f".x.{os.getpid()}-abcd1234.tmp",
                tmp_path / ".hidden_notes.txt", tmp_path / "a.tmp", sub / "crop.png"]
        for p in stale + kept:
            p.write_bytes(b"x")
        stale_dir.mkdir()
        (stale_dir / "mesh.obj").write_bytes(b"v 1 2 3\n")
        deep = tmp_path / "a" / "b" / "c"
        deep.mkdir(parents=True)
        (deep / f".y.{DEAD_PID}-abcd1234.tmp").write_bytes(b"x")  # deeper than max_depth: not looked at
        removed = remove_stale_temporaries(tmp_path, max_depth=2)
        assert sorted(removed) == sorted(stale + [stale_dir])
        assert all(not p.exists() for p in stale + [stale_dir]) and all(p.exists() for p in kept)
        assert (deep / f".y.{DEAD_PID}-abcd1234.tmp").exists()
    finally:
        live.kill()
        live.wait()


def test_a_folder_written_as_a_whole_replaces_the_old_one_or_leaves_it(tmp_path, full_disk):
    """atomic_folder: a complete new folder replaces the old one (no file of the old left in it); a block that
    fails (here: a full disk) or is interrupted leaves the old folder as it was and no temporary; a file or
    a symlink at the final name is never replaced."""
    from facevision.common.fileio import atomic_folder

    target = tmp_path / "photo"
    (target / "face1").mkdir(parents=True)
    (target / "face1" / "old.png").write_bytes(b"old")
    with pytest.raises(OutputWriteError, match="disk full"):
        with atomic_folder(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(f".photo.{os.getpid()}-")
            atomic_write_bytes(tmp / "new.bin", b"x" * 100)
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(target) as tmp:
            (tmp / "face0").mkdir()
            raise KeyboardInterrupt
    assert _leftovers(tmp_path) == ["photo"] and _leftovers(target / "face1") == ["old.png"]
    with atomic_folder(target) as tmp:
        (tmp / "face0").mkdir()
        (tmp / "face0" / "new.png").write_text("new")  # not through os.write: the disk is full for that
    assert _leftovers(tmp_path) == ["photo"] and _leftovers(target) == ["face0"]
    assert (target / "face0" / "new.png").read_text() == "new" and oct(target.stat().st_mode & 0o777) != "0o700"
    (tmp_path / "file").write_text("a file")
    (tmp_path / "link").symlink_to(target, target_is_directory=True)
    for name in ("file", "link"):
        with pytest.raises(OutputWriteError, match=f"^{tmp_path / name}: "):
            with atomic_folder(tmp_path / name) as tmp:
                (tmp / "face0").mkdir()
    assert (tmp_path / "file").read_text() == "a file" and _leftovers(target) == ["face0"]
    assert _leftovers(tmp_path) == ["file", "link", "photo"]


# ----------------------------------------------------------------------------- read_photo
def test_rgba_is_composited_over_black(tmp_path):
    rgb = np.array([[[200, 100, 50], [10, 220, 30]]], np.uint8)
    alpha = np.array([[255 // 2, 0]], np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    out = read_photo(tmp_path / "a.png").astype(int)
    np.testing.assert_allclose(out[0, 0], rgb[0, 0].astype(float) * 127 / 255, atol=1)
    assert out[0, 1].tolist() == [0, 0, 0]  # fully transparent -> black, not the hidden colour
    Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA").save(tmp_path / "la.png")
    assert read_photo(tmp_path / "la.png")[0, 1].tolist() == [0, 0, 0]


def test_16bit_colour_png_with_small_values_is_not_black(tmp_path):
    import cv2

    rgb = np.array([[[200, 100, 50], [10, 220, 255]]], np.uint16)
    cv2.imwrite(str(tmp_path / "low.png"), rgb[..., ::-1])  # 16-bit PNG, values <= 255
    assert read_photo(tmp_path / "low.png").tolist() == rgb.tolist()
    cv2.imwrite(str(tmp_path / "full.png"), (rgb * 257)[..., ::-1])  # 16-bit full scale
    assert read_photo(tmp_path / "full.png").tolist() == rgb.tolist()
    rgba = np.dstack([rgb * 257, np.array([[65535, 0]], np.uint16)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba[..., [2, 1, 0, 3]])
    assert read_photo(tmp_path / "rgba.png").tolist() == [[[200, 100, 50], [0, 0, 0]]]


def test_large_jpeg_is_decoded_reduced_within_a_memory_bound(tmp_path):
    """An 8000 x 6000 JPEG (144 MB as RGB) read under a 2-megapixel limit: the process grows by far less."""
    path = tmp_path / "big.jpg"
    Image.new("RGB", (8000, 6000), (90, 120, 150)).save(path, quality=50)
    code = textwrap.dedent(f"""
        import resource, json
        from facevision.face.images import read_photo_scaled
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        p = read_photo_scaled({str(path)!r}, max_pixels=2_000_000)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"grew_kb": after - before, "shape": list(p.image.shape), "size": p.original_size,
                           "scale": p.scale, "pixel": p.image[10, 10].tolist()}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[1])
    res = json.loads(r.stdout)
    h, w = res["shape"][:2]
    assert h * w <= 2_000_000 and res["size"] == [8000, 6000] and abs(w / h - 4 / 3) < 0.01
    assert res["scale"][0] == pytest.approx(w / 8000) and res["scale"][1] == pytest.approx(h / 6000)
    assert np.allclose(res["pixel"], [90, 120, 150], atol=3)
    assert res["grew_kb"] < 60_000, res  # a full-size decode alone would add ~144,000 KB


def test_large_png_is_resampled_to_the_limit(tmp_path):
    Image.new("RGB", (1000, 500), (10, 20, 30)).save(tmp_path / "p.png")
    p = read_photo_scaled(tmp_path / "p.png", max_pixels=50_000)
    assert p.image.shape[0] * p.image.shape[1] <= 50_000 and p.original_size == (1000, 500)
    assert read_photo_scaled(tmp_path / "p.png").image.shape == (500, 1000, 3)  # no limit: full size


def test_mesh_command_refuses_a_huge_map_before_decoding_it(tmp_path, monkeypatch, capsys):
    import facevision.face.images

    Image.fromarray(np.zeros((2100, 2100), np.uint16)).save(tmp_path / "huge.png")
    monkeypatch.setattr(facevision.face.images, "read_png", lambda *a, **k: pytest.fail("decoded a map above the limit"))
    assert main(["mesh", "--depth", str(tmp_path / "huge.png"), "-o", str(tmp_path / "m.ply")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{tmp_path / 'huge.png'}: 2100 x 2100" in err[0] and "--max-pixels" in err[0]
    assert not (tmp_path / "m.ply").exists()

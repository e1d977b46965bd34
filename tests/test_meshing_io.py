"""meshing.save_mesh / load_mesh: PLY and textured OBJ round trips."""
from __future__ import annotations

import re

import numpy as np
import pytest

import meshing
from facevision.face.images import read_png
from meshing import MeshConfig, MeshIOError
from support.surfaces import hemisphere


@pytest.fixture(scope="module")
def textured():
    depth, mask, _ = hemisphere(48, 18.0)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    corr = rng.random((48, 48, 3)).astype(np.float32)
    return meshing.mesh_from_maps(depth, mask, image, corr, MeshConfig()), image


def test_ply_round_trip_keeps_order_and_colours(tmp_path, textured):
    mesh, image = textured
    path = meshing.save_mesh(tmp_path / "face.ply", mesh, texture=image)
    back = meshing.load_mesh(path)
    assert back.n_vertices == mesh.n_vertices and back.n_faces == mesh.n_faces
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-5)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_allclose(back.colors, mesh.colors, atol=1 / 255 + 1e-6)  # 8-bit colour in PLY
    assert np.isnan(back.pixels).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.ply"]  # no temp files left behind


def test_obj_round_trip_references_its_texture(tmp_path, textured):
    mesh, image = textured
    path = meshing.save_mesh(tmp_path / "face.obj", mesh, texture=image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mtl", "face.obj", "face_0.png"]
    obj = path.read_text()
    assert re.search(r"^mtllib face\.mtl$", obj, re.M)
    assert re.search(r"^usemtl ", obj, re.M)
    # one shared uv per vertex (issue #13): trimesh / game engines keep 1 vertex per ``v`` line
    assert len(re.findall(r"^vt ", obj, re.M)) == len(re.findall(r"^v ", obj, re.M)) == mesh.n_vertices
    corners = np.array([[int(i) for c in ln.split()[1:] for i in c.split("/")]
                        for ln in obj.splitlines() if ln.startswith("f ")])
    assert corners.shape == (mesh.n_faces, 9)
    assert np.array_equal(corners[:, 0::3], corners[:, 1::3]) and np.array_equal(corners[:, 0::3], corners[:, 2::3])
    np.testing.assert_array_equal(corners[:, 0::3] - 1, mesh.faces)  # vertex order kept
    vt = np.array([[float(x) for x in ln.split()[1:]] for ln in obj.splitlines() if ln.startswith("vt ")])
    np.testing.assert_allclose(vt, mesh.uvs, atol=1e-6)
    mtl = (tmp_path / "face.mtl").read_text()
    tex_name = re.search(r"^map_Kd (\S+)$", mtl, re.M).group(1)
    texture = read_png(tmp_path / tex_name)
    np.testing.assert_array_equal(texture, image)  # RGB order kept, same size as the uvs assume
    back = meshing.load_mesh(path)
    assert back.n_vertices == mesh.n_vertices and back.n_faces == mesh.n_faces
    # Open3D renumbers OBJ vertices by first use: compare (position, uv) rows as sets
    from scipy.spatial import cKDTree

    a = np.hstack([mesh.vertices, mesh.uvs]).astype(np.float64)
    b = np.hstack([back.vertices, back.uvs]).astype(np.float64)
    gap, match = cKDTree(a).query(b)
    assert gap.max() < 1e-4 and len(np.unique(match)) == len(a)
    # the same triangles: map loaded vertices to the originals by position, compare index triples

    dist, to_orig = cKDTree(mesh.vertices).query(back.vertices)
    assert dist.max() < 1e-3 and len(np.unique(to_orig)) == mesh.n_vertices
    tri_a = {tuple(sorted(t)) for t in mesh.faces.tolist()}
    tri_b = {tuple(sorted(t)) for t in to_orig[back.faces].tolist()}
    assert tri_a == tri_b


def test_obj_uvs_point_at_the_source_pixels(tmp_path, textured):
    mesh, image = textured
    meshing.save_mesh(tmp_path / "m.obj", mesh, texture=image)
    back = meshing.load_mesh(tmp_path / "m.obj")
    h, w = image.shape[:2]
    col = back.uvs[:, 0] * w - 0.5
    row = (1 - back.uvs[:, 1]) * h - 0.5
    colors = meshing.sample_colors(image, np.stack([row, col], 1))
    np.testing.assert_allclose(colors, back.colors, atol=2 / 255)  # texture and vertex colours agree


def test_obj_without_texture_and_bad_paths(tmp_path, textured):
    mesh, _ = textured
    meshing.save_mesh(tmp_path / "plain.obj", mesh)
    back = meshing.load_mesh(tmp_path / "plain.obj")
    assert back.n_vertices == mesh.n_vertices and back.uvs is None
    assert not list(tmp_path.glob("plain_*.png"))
    with pytest.raises(MeshIOError, match="unsupported"):
        meshing.save_mesh(tmp_path / "m.stl", mesh)
    with pytest.raises(MeshIOError, match="not found"):
        meshing.load_mesh(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a mesh")
    with pytest.raises(MeshIOError, match="junk.ply"):
        meshing.load_mesh(tmp_path / "junk.ply")
    bad = meshing.FaceMesh(mesh.vertices, mesh.faces + 10**6, mesh.pixels)
    with pytest.raises(MeshIOError, match="invalid mesh"):
        meshing.save_mesh(tmp_path / "bad.ply", bad)
    assert not (tmp_path / "bad.ply").exists()


def test_overwrite_is_atomic_and_complete(tmp_path, textured):
    mesh, image = textured
    target = tmp_path / "face.obj"
    meshing.save_mesh(target, mesh, texture=image)
    meshing.save_mesh(target, mesh, texture=image)  # replaces in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mtl", "face.obj", "face_0.png"]
    assert meshing.load_mesh(target).n_faces == mesh.n_faces


def _printf_rows(arr: np.ndarray, prefix: str, decimals: tuple[int, ...]) -> str:
    """Ground truth: Python's own %-formatting, row by row."""
    fmt = prefix + "".join(f" %.{d}f" for d in decimals) + "\n"
    return "".join(fmt % tuple(float(v) for v in row) for row in arr)


def test_fixed_rows_is_printf_byte_for_byte():
    """The OBJ text's numbers: random magnitudes, exact ties (k / 2**m, e.g. 0.03125 -> 0.0312 by half-to-even),
    the floats next to them, decimal half-units, zeros and negative zeros ("-0.0000"), mixed decimals."""
    from meshing.fixed_text import fixed_rows

    rng = np.random.default_rng(7)
    n = 3000
    random = rng.choice([-1.0, 1.0], (n, 3)) * 10.0 ** rng.uniform(-9, 5, (n, 3)) * rng.random((n, 3))
    ties = rng.integers(-10**6, 10**6, (n, 3)) / 2.0 ** rng.integers(0, 20, (n, 3))
    arr = np.where(rng.random((n, 3)) < 0.5, random, ties)
    arr[::7, 0] = np.nextafter(arr[::7, 0], np.inf)
    arr[::11, 1] = np.nextafter(arr[::11, 1], -np.inf)
    arr[::13, 2] = (rng.integers(-10**5, 10**5, len(arr[::13, 2])) + 0.5) / 10**4
    arr[::17, 0] = -0.0
    arr[::19, 1] = 0.0
    arr[::23, 2] = -1e-7
    for decimals in [(4, 4, 4), (5, 5, 5), (6, 6, 6), (1, 3, 6), (6, 4, 2)]:
        assert fixed_rows(arr, "v", decimals) == _printf_rows(arr, "v", decimals)
    assert fixed_rows(np.array([[0.03125, -0.03125, 2.5]]), "vt", (4, 4, 1)) == "vt 0.0312 -0.0312 2.5\n"
    # what it leaves to Python: non-finite and huge values, no rows
    for odd in ([np.nan, 1.0, 2.0], [np.inf, 1.0, 2.0], [1e300, 1.0, 2.0]):
        assert fixed_rows(np.array([odd]), "v", (4, 4, 4)) == _printf_rows(np.array([odd]), "v", (4, 4, 4))
    assert fixed_rows(np.zeros((0, 3)), "v", (4, 4, 4)) == ""
    with pytest.raises(ValueError):
        fixed_rows(np.zeros((2, 3)), "v", (4, 4))

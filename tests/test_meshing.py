"""meshing: ground-truth tests of each step and of the composed pipeline."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

import meshing
from meshing import FaceMesh, MeshConfig, MeshingError
from support.surfaces import ellipsoid, ellipsoid_error, face_like, hemisphere, sphere_error

RAW = MeshConfig(vertex_density=1.0, remove_spikes=False, smooth_iterations=0, detail_strength=0.0)


# ---------------------------------------------------------------- lift / coordinates


def test_lift_coordinate_system_and_orientation():
    depth = np.arange(1, 13, dtype=np.float32).reshape(3, 4)  # every pixel foreground
    v, f, px = meshing.lift(depth)
    assert v.dtype == np.float32 and px.dtype == np.float32 and f.shape == (2 * 2 * 3, 3)
    rows, cols = np.nonzero(np.ones((3, 4), bool))
    np.testing.assert_array_equal(px, np.stack([rows, cols], 1))
    np.testing.assert_array_equal(v[:, 0], cols)              # X = column
    np.testing.assert_array_equal(v[:, 1], 2 - rows)          # Y = H - 1 - row (up)
    np.testing.assert_array_equal(v[:, 2], depth[rows, cols])  # Z = depth
    n = meshing.vertex_normals(v, f)
    assert np.all(n[:, 2] > 0)  # counter-clockwise from +Z: normals face the viewer
    p = v[f].astype(np.float64)
    cross_z = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])[:, 2]
    assert np.all(cross_z > 0)


def test_lift_mask_and_background_and_z_scale():
    depth = np.full((5, 5), 3.0)
    depth[0, :] = 0.0
    mask = np.ones((5, 5), bool)
    mask[:, 0] = False
    v, f, px = meshing.lift(depth, mask, z_scale=2.0)
    assert len(v) == 4 * 4 and np.all(v[:, 2] == 6.0)
    assert px[:, 0].min() == 1 and px[:, 1].min() == 1


def test_resampled_lattice_keeps_source_pixel_units():
    depth, mask, centre = hemisphere(128, 40.0)
    v, f, px = meshing.lift(depth, mask, density=0.5)
    assert abs(len(v) / mask.sum() - 0.5) < 0.03
    np.testing.assert_allclose(v[:, 0], px[:, 1], atol=1e-4)
    np.testing.assert_allclose(v[:, 1], 127 - px[:, 0], atol=1e-4)
    # lattice spacing = 1 / sqrt(density) source pixels; vertices still on the sphere
    step = np.diff(np.unique(px[:, 1]))
    np.testing.assert_allclose(step, 128 / round(128 * np.sqrt(0.5)), rtol=1e-4)
    inner = np.hypot(px[:, 0] - 64, px[:, 1] - 64) < 36  # bilinear error grows only at the rim
    assert sphere_error(v[inner], centre, 40.0).max() < 0.05


def test_grid_triangulation_is_a_delaunay_triangulation():
    _, mask = face_like(48, 0.6)
    v, f, px = meshing.lift(mask.astype(float), triangulation="grid")
    pts = px.astype(np.float64)
    # empty circumcircle: no lattice point strictly inside any triangle's circumcircle
    a, b, c = pts[f[:, 0]], pts[f[:, 1]], pts[f[:, 2]]
    d = 2 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1]) + c[:, 0] * (a[:, 1] - b[:, 1]))
    sa, sb, sc = (a ** 2).sum(1), (b ** 2).sum(1), (c ** 2).sum(1)
    ux = (sa * (b[:, 1] - c[:, 1]) + sb * (c[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / d
    uy = (sa * (c[:, 0] - b[:, 0]) + sb * (a[:, 0] - c[:, 0]) + sc * (b[:, 0] - a[:, 0])) / d
    centre = np.stack([ux, uy], 1)
    radius = np.linalg.norm(a - centre, axis=1)
    tree = cKDTree(pts)
    inside = tree.query_ball_point(centre, radius - 1e-6)
    assert all(len(i) == 0 for i in inside)
    # same vertices and same number of triangles as scipy's Delaunay minus hull triangles over background
    vd, fd, pxd = meshing.lift(mask.astype(float), triangulation="delaunay")
    fd = meshing.remove_background(vd, fd, pxd, mask)
    np.testing.assert_array_equal(px, pxd)
    assert len(fd) == len(f)
    assert len(meshing.remove_background(v, f, px, mask)) == len(f)


def test_delaunay_hull_triangles_over_background_are_removed():
    depth = np.zeros((20, 20))
    depth[2:18, 2:6] = 5.0   # an L shape: the convex hull spans background
    depth[14:18, 2:18] = 5.0
    v, f, px = meshing.lift(depth, triangulation="delaunay")
    kept = meshing.remove_background(v, f, px, depth > 0)
    assert len(kept) < len(f)
    centroid = px[kept].mean(axis=1)
    r, c = np.rint(centroid[:, 0]).astype(int), np.rint(centroid[:, 1]).astype(int)
    assert np.all(depth[r, c] > 0)
    assert meshing.longest_edges(px, kept).max() <= np.sqrt(2) + 1e-6


def test_remove_background_drops_triangles_touching_zero_depth_vertices():
    depth = np.full((6, 6), 4.0)
    v, f, px = meshing.lift(depth)
    v = v.copy()
    v[14, 2] = 0.0  # a vertex lifted by a caller with Z = 0 (background)
    kept = meshing.remove_background(v, f, px)
    assert not np.any(kept == 14)
    assert len(kept) == len(f) - np.any(f == 14, axis=1).sum()


# ---------------------------------------------------------------- analytic surfaces


def test_hemisphere_exact_without_smoothing_and_close_with_full_pipeline():
    depth, mask, centre = hemisphere(128, 40.0)
    raw = meshing.mesh_from_maps(depth, mask, config=RAW)
    assert raw.n_vertices == mask.sum()
    assert sphere_error(raw.vertices, centre, 40.0).max() < 1e-4  # float32 rounding only
    full = meshing.mesh_from_maps(depth, mask)
    err = sphere_error(full.vertices, centre, 40.0)
    # Tolerance: Laplacian smoothing pulls a vertex on a sphere inwards by ~lam * l^2 / (2R)
    # per pass (l = 3D edge length); 5 passes, lam 0.5, l <= 2.5 px, R 40 -> <= 0.2 px (0.5 % of R).
    assert err.mean() < 0.2
    assert np.percentile(err, 99) < 0.5
    nosmooth = meshing.mesh_from_maps(depth, mask, config=MeshConfig(smooth_iterations=0))
    # lifting alone at the default density 1 is exact up to float32 rounding
    assert sphere_error(nosmooth.vertices, centre, 40.0).mean() < 0.03
    sub = meshing.mesh_from_maps(depth, mask, config=MeshConfig(smooth_iterations=0, vertex_density=0.62))
    # re-sampling at density 0.62: bilinear error ~ l^2 / (8R) ~ 0.01 px, larger at the steep rim
    assert sphere_error(sub.vertices, centre, 40.0).mean() < 0.03


def test_ellipsoid_close_to_truth():
    depth, mask, centre, axes = ellipsoid(128)
    raw = meshing.mesh_from_maps(depth, mask, config=RAW)
    assert ellipsoid_error(raw.vertices, centre, axes).max() < 1e-3
    full = meshing.mesh_from_maps(depth, mask)
    err = ellipsoid_error(full.vertices, centre, axes)
    # same smoothing bound as for the sphere with the smallest radius of curvature a_z^2 / a_y = 14 px
    # only at the rim; the mean is dominated by the flatter front (radii >= 28 px).
    assert err.mean() < 0.2


def _step_plane(size=64, low=20.0, high=32.0, step_col=40):
    depth = np.full((size, size), low)
    depth[:, step_col:] = high
    return depth


def test_step_triangles_removed_as_spikes():
    depth = _step_plane()
    v, f, px = meshing.lift(depth)
    z = v[:, 2]
    spans = lambda faces: (z[faces].max(1) - z[faces].min(1)) > 1  # noqa: E731
    assert spans(f).sum() == 2 * 63  # the vertical strip of the step
    v2, f2, kept = meshing.remove_spikes(v, f, keep_largest=False)
    assert spans_after(v2, f2) == 0
    assert len(f2) == len(f) - 2 * 63  # every genuine (flat) triangle is kept
    assert len(v2) == len(v)
    # with the largest component only, the larger (left, 40 columns) plane remains, exactly
    v3, f3, kept3 = meshing.remove_spikes(v, f)
    assert np.all(v3[:, 2] == 20.0) and len(v3) == 64 * 40


def spans_after(v, f):
    z = v[:, 2]
    return int(((z[f].max(1) - z[f].min(1)) > 1).sum())


def test_step_plane_full_pipeline_stays_on_the_plane():
    mesh = meshing.mesh_from_maps(_step_plane())
    assert spans_after(mesh.vertices, mesh.faces) == 0
    np.testing.assert_allclose(mesh.vertices[:, 2], 20.0, atol=1e-3)  # smoothing keeps a plane planar


def test_injected_spikes_removed_genuine_surface_kept():
    rng = np.random.default_rng(3)
    size = 96
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float64)
    truth = 10.0 + 8.0 * np.exp(-((rr - 48) ** 2 + (cc - 48) ** 2) / (2 * 25.0 ** 2))  # smooth bump
    depth = truth.copy()
    # isolated spikes (no two within 3 px), up and down, 6-30 px
    cand = rng.permutation(np.stack(np.nonzero((rr > 2) & (rr < size - 3) & (cc > 2) & (cc < size - 3)), 1))
    spikes = []
    for p in cand:
        if all(abs(p - q).max() > 3 for q in spikes):
            spikes.append(p)
        if len(spikes) == 40:
            break
    spikes = np.array(spikes)
    amp = rng.uniform(6, 30, len(spikes)) * rng.choice([-1, 1], len(spikes))
    depth[spikes[:, 0], spikes[:, 1]] = np.maximum(depth[spikes[:, 0], spikes[:, 1]] + amp, 0.5)
    v, f, px = meshing.lift(depth)
    v2, f2, kept = meshing.remove_spikes(v, f)
    p2 = px[kept].astype(int)
    is_spike = np.zeros((size, size), bool)
    is_spike[spikes[:, 0], spikes[:, 1]] = True
    assert not is_spike[p2[:, 0], p2[:, 1]].any()  # every spike vertex is gone
    genuine = size * size - len(spikes)
    assert len(v2) >= 0.95 * genuine
    np.testing.assert_allclose(v2[:, 2], truth[p2[:, 0], p2[:, 1]], atol=1e-4)
    # the full pipeline (re-sampling smears a spike over a few lattice points) stays close too
    mesh = meshing.mesh_from_maps(depth)
    pr = np.rint(mesh.pixels).astype(int)
    err = np.abs(mesh.vertices[:, 2] - truth[pr[:, 0], pr[:, 1]])
    assert np.percentile(err, 99) < 0.5 and err.max() < 3.0


def test_smoothing_reduces_noise_error_on_a_sphere():
    depth, mask, centre = hemisphere(96, 36.0, 4.0)
    rng = np.random.default_rng(0)
    noisy = np.where(mask, depth + rng.normal(0, 0.4, depth.shape), 0.0)
    cfg = MeshConfig(vertex_density=1.0, smooth_iterations=0, detail_strength=0)
    before = meshing.mesh_from_maps(noisy, mask, config=cfg)
    after_v = meshing.smooth_laplacian(before.vertices, before.faces, iterations=5, lam=0.5)
    e0 = np.sqrt(np.mean(sphere_error(before.vertices, centre, 36.0) ** 2))
    e1 = np.sqrt(np.mean(sphere_error(after_v, centre, 36.0) ** 2))
    assert e0 > 0.2  # Z noise of 0.4 px seen along the sphere normal
    assert e1 < 0.5 * e0
    pinned = meshing.smooth_laplacian(before.vertices, before.faces, 5, 0.5, pin_boundary=True)
    b = meshing.boundary_vertices(before.faces, before.n_vertices)
    np.testing.assert_array_equal(pinned[b], before.vertices[b])
    assert np.sqrt(np.mean(sphere_error(pinned, centre, 36.0) ** 2)) < 0.6 * e0


def test_smoothing_off_and_invalid_input_does_not_reach_open3d():
    v = np.zeros((3, 3), np.float32)
    f = np.array([[0, 1, 2]])
    np.testing.assert_array_equal(meshing.smooth_laplacian(v, f, iterations=0), v)
    with pytest.raises(MeshingError, match="empty"):
        meshing.smooth_laplacian(np.zeros((0, 3)), np.zeros((0, 3), int))
    with pytest.raises(MeshingError, match="NaN"):
        meshing.smooth_laplacian(np.array([[0, 0, 0], [1, 0, np.nan], [0, 1, 0]]), f)
    with pytest.raises(MeshingError, match="out of range"):
        meshing.smooth_laplacian(v, np.array([[0, 1, 5]]))
    with pytest.raises(MeshingError, match="lambda"):
        meshing.smooth_laplacian(v, f, lam=2.0)


# ---------------------------------------------------------------- detail filling


def _stripes(size=64, period=16.0, amp=0.2):
    cc = np.arange(size, dtype=np.float64)
    g = 0.5 + amp * np.sin(2 * np.pi * cc / period)
    return np.repeat(np.tile(g, (size, 1))[..., None], 3, axis=2)


def test_detail_filling_follows_known_high_frequency_pattern():
    import cv2

    size, period, amp, sigma, strength = 64, 16.0, 0.2, 2.0, 3.0
    image = _stripes(size, period, amp)
    depth = np.full((size, size), 10.0)
    v, f, px = meshing.lift(depth)
    moved = meshing.fill_detail(v, f, px, image, strength=strength, sigma=sigma)
    np.testing.assert_array_equal(moved[:, :2], v[:, :2])  # plane: normals are +Z, X/Y unchanged
    dz = moved[:, 2].astype(np.float64) - v[:, 2]
    # ground truth: the Gaussian keeps cos-weighted sum of its taps; the high pass keeps the rest;
    # the one-ring (self + 6 neighbours, 4 of them one column away) averages with (3 + 4 cos(w)) / 7
    k = cv2.getGaussianKernel(int(round(sigma * 8 + 1)) | 1, sigma).ravel()  # cv2's 64-bit kernel size
    taps = np.arange(len(k)) - len(k) // 2
    w = 2 * np.pi / period
    gain = amp * (1 - np.sum(k * np.cos(w * taps))) * (3 + 4 * np.cos(w)) / 7
    expected = strength * gain * np.sin(w * px[:, 1])
    interior = (px[:, 1] >= 10) & (px[:, 1] < size - 10) & (px[:, 0] >= 1) & (px[:, 0] < size - 1)
    np.testing.assert_allclose(dz[interior], expected[interior], atol=0.02 * strength * gain)
    twice = meshing.fill_detail(v, f, px, image, strength=2 * strength, sigma=sigma)
    np.testing.assert_allclose(twice[:, 2] - v[:, 2], 2 * dz, atol=1e-5)  # proportional to strength


def test_detail_displacement_is_along_normals_on_a_sphere():
    depth, mask, centre = hemisphere(64, 24.0)
    rng = np.random.default_rng(1)
    image = rng.random((64, 64, 3))
    v, f, px = meshing.lift(depth, mask)
    moved = meshing.fill_detail(v, f, px, image, strength=2.0)
    d = moved.astype(np.float64) - v
    n = meshing.vertex_normals(v, f)
    along = (d * n).sum(1)
    np.testing.assert_allclose(d, along[:, None] * n, atol=1e-5)
    assert np.abs(along).max() > 0.05


def test_zero_detail_strength_changes_nothing():
    depth, mask, _ = hemisphere(64, 24.0)
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    v, f, px = meshing.lift(depth, mask)
    np.testing.assert_array_equal(meshing.fill_detail(v, f, px, image, strength=0.0), v)
    a = meshing.mesh_from_maps(depth, mask, image, config=MeshConfig(detail_strength=0.0))
    b = meshing.mesh_from_maps(depth, mask, None)
    np.testing.assert_array_equal(a.vertices, b.vertices)


def test_finish_mesh_details_only_where_asked_and_graph_laplacian_matches_one_ring():
    size, period, amp = 64, 16.0, 0.2
    image = _stripes(size, period, amp)
    v, f, px = meshing.lift(np.full((size, size), 10.0))
    cfg = MeshConfig(smooth_iterations=0, detail_strength=3.0)
    left = px[:, 1] < size / 2
    full = meshing.finish_mesh(v, f, px, (size, size), image, cfg)
    half = meshing.finish_mesh(v, f, px, (size, size), image, cfg, detail_where=left)
    np.testing.assert_array_equal(half.vertices[~left], v[~left])
    np.testing.assert_array_equal(half.vertices[left], full.vertices[left])
    assert np.abs(full.vertices[~left, 2] - 10.0).max() > 0.05  # the stripes moved the other half in ``full``
    np.testing.assert_allclose(full.uvs, meshing.pixel_uvs(px, (size, size)))
    lap = meshing.graph_laplacian(f, len(v))
    x = np.random.default_rng(3).random(len(v))
    deg = np.asarray(meshing.vertex_adjacency(f, len(v)).sum(1)).ravel()
    np.testing.assert_allclose(meshing.one_ring_mean(x, f), x - lap @ x / (deg + 1.0))


# ---------------------------------------------------------------- colours, uvs, corr


def test_colors_uvs_and_corr_sampled_at_vertices():
    depth, mask, _ = hemisphere(64, 20.0)
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = np.arange(64)[None, :] * 4  # red = 4 x column
    corr = np.zeros((64, 64, 3), np.float32)
    corr[mask] = (0.25, 0.5, 0.75)
    mesh = meshing.mesh_from_maps(depth, mask, image, corr, MeshConfig(detail_strength=0))
    np.testing.assert_allclose(mesh.colors[:, 0], mesh.pixels[:, 1] * 4 / 255, atol=1e-5)
    # constant correspondence inside the mask stays constant up to the boundary (no background leak)
    np.testing.assert_allclose(mesh.corr, np.tile([0.25, 0.5, 0.75], (mesh.n_vertices, 1)), atol=1e-6)
    np.testing.assert_allclose(mesh.uvs[:, 0], (mesh.pixels[:, 1] + 0.5) / 64, atol=1e-6)
    np.testing.assert_allclose(mesh.uvs[:, 1], 1 - (mesh.pixels[:, 0] + 0.5) / 64, atol=1e-6)
    assert mesh.colors.dtype == np.float32 and mesh.uvs.dtype == np.float32 and mesh.corr.dtype == np.float32


# ---------------------------------------------------------------- counts and density


@pytest.mark.parametrize("coverage", [0.33, 0.40, 0.45])
def test_default_counts_in_paper_range_for_a_face_sized_mask(coverage):
    """Coverages of typical facevision 128x128 LFW crops (32-50 %; at 50 % faces reach ~16k)."""
    depth, mask = face_like(128, coverage)
    mesh = meshing.mesh_from_maps(depth, mask)
    assert 5000 <= mesh.n_vertices <= 8000
    assert 10000 <= mesh.n_faces <= 15000


def test_target_vertices_and_upsampling():
    depth, mask = face_like(64, 0.6)
    mesh = meshing.mesh_from_maps(depth, mask, config=MeshConfig(target_vertices=6000))
    assert abs(mesh.n_vertices - 6000) < 0.08 * 6000  # up-sampled 64 px map
    mesh = meshing.mesh_from_maps(depth, mask, config=MeshConfig(vertex_density=4.0, smooth_iterations=0))
    assert mesh.n_vertices > 3.6 * mask.sum()
    assert mesh.vertices[:, 0].max() <= 63 and mesh.vertices[:, 0].min() >= 0  # still source pixel units


# ---------------------------------------------------------------- robustness


@pytest.mark.parametrize("density", [1.0, 0.62])
def test_degenerate_inputs_raise_clear_errors(density):
    cfg = MeshConfig(vertex_density=density)
    with pytest.raises(MeshingError, match="no foreground"):
        meshing.mesh_from_maps(np.zeros((32, 32)), config=cfg)
    with pytest.raises(MeshingError, match="no foreground"):
        meshing.mesh_from_maps(np.ones((32, 32)), np.zeros((32, 32), bool), config=cfg)
    one = np.zeros((32, 32))
    one[10, 10] = 5
    with pytest.raises(MeshingError, match="at least 3|no triangle"):
        meshing.mesh_from_maps(one, config=cfg)
    line = np.zeros((32, 32))
    line[10, 2:30] = 5
    with pytest.raises(MeshingError):
        meshing.mesh_from_maps(line, config=cfg)
    with pytest.raises(MeshingError):
        meshing.mesh_from_maps(line, config=MeshConfig(vertex_density=density, triangulation="delaunay"))
    with pytest.raises(MeshingError):
        meshing.mesh_from_maps(np.full((1, 50), 3.0), config=cfg)  # a one-row map
    with pytest.raises(MeshingError):
        meshing.mesh_from_maps(np.full((2, 2), 3.0), config=MeshConfig(vertex_density=0.01))  # sampled away
    with pytest.raises(MeshingError, match="empty"):
        meshing.mesh_from_maps(np.zeros((0, 0)), config=cfg)
    with pytest.raises(MeshingError, match="2D"):
        meshing.lift(np.zeros((4, 4, 2)))


def test_nonfinite_depth_error_or_background():
    depth, mask, _ = hemisphere(48, 16.0)
    depth = depth.copy()
    depth[24, 24] = np.nan
    depth[20, 20] = np.inf
    with pytest.raises(MeshingError, match="NaN/inf"):
        meshing.mesh_from_maps(depth)
    mesh = meshing.mesh_from_maps(depth, config=MeshConfig(nonfinite="background"))
    assert np.all(np.isfinite(mesh.vertices)) and mesh.n_faces > 0
    with pytest.raises(MeshingError, match="no foreground"):
        meshing.mesh_from_maps(np.full((8, 8), np.nan), config=MeshConfig(nonfinite="background"))


def test_mismatched_sizes_raise():
    depth, mask, _ = hemisphere(32, 10.0)
    with pytest.raises(MeshingError, match="mask size"):
        meshing.mesh_from_maps(depth, mask[:30])
    with pytest.raises(MeshingError, match="image size"):
        meshing.mesh_from_maps(depth, mask, np.zeros((31, 32, 3), np.uint8))
    with pytest.raises(MeshingError, match="corr size"):
        meshing.mesh_from_maps(depth, mask, corr=np.zeros((32, 33, 3), np.float32))


def test_8bit_and_16bit_inputs():
    from facevision.face.codecs import decode_depth, encode_depth

    depth, mask, centre = hemisphere(64, 24.0, 4.0)
    d16 = decode_depth(encode_depth(depth, mask))
    m16 = meshing.mesh_from_maps(d16, config=RAW)
    assert sphere_error(m16.vertices, centre, 24.0).max() < 1 / 256  # 1/512 px quantisation
    d8 = np.clip(np.rint(depth), 0, 255).astype(np.uint8)
    m8 = meshing.mesh_from_maps(d8)
    assert m8.n_faces > 0 and sphere_error(m8.vertices, centre, 24.0).mean() < 0.5


def test_config_validation():
    with pytest.raises(ValueError):
        MeshConfig(vertex_density=0)
    with pytest.raises(ValueError):
        MeshConfig(triangulation="voronoi")
    with pytest.raises(ValueError):
        MeshConfig(smooth_lambda=1.5)
    with pytest.raises(ValueError):
        MeshConfig(nonfinite="ignore")


def test_facemesh_validate():
    ok = FaceMesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]]), np.zeros((3, 2), np.float32))
    assert ok.validate() is ok
    with pytest.raises(MeshingError):
        FaceMesh(np.zeros((3, 3)), np.array([[0, 1, 3]]), np.zeros((3, 2))).validate()
    with pytest.raises(MeshingError):
        FaceMesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), np.zeros((2, 2))).validate()


def test_thin_and_non_square_maps_keep_their_triangles():
    strip = np.full((3, 200), 5.0)  # anisotropic lattice after re-sampling (row step != col step)
    mesh = meshing.mesh_from_maps(strip, config=MeshConfig(smooth_iterations=0))
    assert mesh.n_faces >= 2 * (mesh.n_vertices // 2 - 1)
    depth = np.zeros((40, 40))
    depth[2:38, 2:10] = 5.0  # L shape: Delaunay's hull triangles over background must go
    depth[30:38, 2:38] = 5.0
    from scipy.ndimage import distance_transform_edt

    to_fg = distance_transform_edt(depth == 0)  # px from each pixel to the nearest foreground pixel
    counts = []
    for tri in ("grid", "delaunay"):
        mesh = meshing.mesh_from_maps(depth, config=MeshConfig(triangulation=tri, smooth_iterations=0))
        centroid = mesh.pixels[mesh.faces].mean(axis=1)
        r, c = np.rint(centroid[:, 0]).astype(int), np.rint(centroid[:, 1]).astype(int)
        assert to_fg[r, c].max() <= 1.0, tri  # at most sub-pixel corner cuts, no triangle over the gap
        counts.append((mesh.n_vertices, mesh.n_faces))
    assert counts[0] == counts[1]  # both triangulate the same lattice cells


def test_random_small_maps_mesh_or_raise_meshing_error_never_crash():
    rng = np.random.default_rng(7)
    outcomes = {"mesh": 0, "error": 0}
    for i in range(150):
        h, w = rng.integers(1, 12, 2)
        depth = rng.random((h, w)) * rng.choice([0.5, 5, 50])
        depth[rng.random((h, w)) < rng.random()] = 0.0
        if i % 5 == 0:
            depth[rng.random((h, w)) < 0.1] = np.nan
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cfg = MeshConfig(vertex_density=float(rng.choice([0.3, 0.62, 1.0, 3.0])),
                         triangulation=str(rng.choice(["grid", "delaunay"])),
                         nonfinite=str(rng.choice(["error", "background"])),
                         smooth_pin_boundary=bool(rng.integers(2)))
        try:
            mesh = meshing.mesh_from_maps(depth, None, image, config=cfg)
        except MeshingError:
            outcomes["error"] += 1
            continue
        mesh.validate()
        assert np.isfinite(mesh.vertices).all() and mesh.n_faces > 0
        outcomes["mesh"] += 1
    assert outcomes["mesh"] > 20 and outcomes["error"] > 20

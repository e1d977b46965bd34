"""facevision.fit.complete: a whole mesh of a turned face from the fit moved onto the maps (ground truth: the
face model rendered at known poses)."""
from __future__ import annotations

import numpy as np
import pytest

from facevision.face.face_model import load_face_model
from facevision.face.rasterize import rasterize
from facevision.fit.complete import CompleteConfig, complete_mesh, is_whole, refinement
from facevision.fit.model_fit import fit_face_model
from facevision.maps.pose import REFERENCE_PITCH_DEG
from meshing.refine import graph_laplacian
from support.face_model import S, render_face_model
from support.synthetic import known_rotation


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    v = np.column_stack([i.ravel(), j.ravel(), np.zeros(n * n)]).astype(np.float64)
    a = (i[:-1, :-1] * n + j[:-1, :-1]).ravel()
    f = np.concatenate([np.stack([a, a + n, a + 1], 1), np.stack([a + 1, a + n, a + n + 1], 1)])
    return v, f


def test_is_whole_tells_a_disc_from_holes_pieces_and_non_manifold_edges():
    v, f = _grid(6)
    assert is_whole(f, len(v))
    centre = 2 * 6 + 2  # the quad of rows 2-3, columns 2-3: its two triangles removed leave a hole
    holed = f[~np.isin(np.arange(len(f)), [i for i, t in enumerate(f) if set(t) <= {centre, centre + 1, centre + 6,
                                                                                       centre + 7}])]
    assert len(holed) == len(f) - 2 and not is_whole(holed, len(v))
    v2, f2 = _grid(3)
    two = np.concatenate([f, f2 + len(v)])
    assert not is_whole(two, len(v) + len(v2))
    fin = np.concatenate([f, [[0, 1, len(v)]], [[0, 1, len(v) + 1]]])  # edge 0-1 in three triangles
    assert not is_whole(fin, len(v) + 2)


def subdivide_midpoint(v: np.ndarray, f: np.ndarray, mirror: np.ndarray | None = None):
    """Plain-loop midpoint subdivision, the reference :func:`refinement` is checked against: a new vertex at
    each edge's midpoint (numbered in sorted edge order), each triangle -> 4, the mirror carried to midpoints."""
    edges = sorted({tuple(sorted((int(t[i]), int(t[(i + 1) % 3])))) for t in f for i in range(3)})
    index = {e: len(v) + k for k, e in enumerate(edges)}
    mid = lambda a, b: index[tuple(sorted((int(a), int(b))))]  # noqa: E731
    new_v = np.concatenate([v, [0.5 * (v[a] + v[b]) for a, b in edges]])
    faces = [[(a, mid(a, b), mid(c, a)), (mid(a, b), b, mid(b, c)), (mid(c, a), mid(b, c), c),
              (mid(a, b), mid(b, c), mid(c, a))] for a, b, c in f]
    new_f = np.array([t[k] for k in range(4) for t in faces])  # the 4 kinds of child in blocks, like refinement
    if mirror is None:
        return new_v, new_f, None
    pm = [tuple(sorted((int(mirror[a]), int(mirror[b])))) for a, b in edges]
    new_m = np.concatenate([mirror, [index.get(e, -1) if min(e) >= 0 else -1 for e in pm]])
    return new_v, new_f, new_m


def test_one_refinement_keeps_the_surface_and_carries_the_mirror():
    v, f = _grid(5)
    v[:, 0] -= 2.0  # columns -2..2: mirror partner of (x, y) is (-x, y)
    mirror = np.array([int(np.flatnonzero((v[:, 0] == -x) & (v[:, 1] == y))[0]) for x, y, _ in v])
    n_edges = len(np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1), axis=0))
    fine = refinement(f, len(v), mirror, max_vertices=len(v) + n_edges)  # one subdivision
    v2, f2, m2 = fine.weights @ v, fine.faces, fine.mirror
    assert v2.shape == (len(v) + n_edges, 3) and f2.shape == (4 * len(f), 3)
    assert is_whole(f2, len(v2))
    assert np.array_equal(m2[: len(v)], mirror)
    found = m2 >= 0  # an edge's midpoint has a partner where the mirrored edge exists (not the grid's diagonals)
    assert found.sum() == len(v) + 2 * 5 * 4
    assert np.allclose(v2[m2[found], 0], -v2[found, 0]) and np.allclose(v2[m2[found], 1], v2[found, 1])
    area = lambda vv, ff: 0.5 * np.cross(vv[ff[:, 1]] - vv[ff[:, 0]], vv[ff[:, 2]] - vv[ff[:, 0]])[:, 2]  # noqa: E731
    assert np.all(area(v2, f2) * np.sign(area(v, f)[0]) > 0)  # same winding everywhere
    assert np.isclose(area(v2, f2).sum(), area(v, f).sum())


def _truth(model, yaw: float) -> tuple[np.ndarray, ...]:
    """Maps of the face model at ``yaw`` and its vertices in the same frame as the maps (depth relative)."""
    depth, corr, mask, _, _ = render_face_model(model, None, None, yaw, 5.0, 3.0)
    rot = known_rotation(yaw, 5.0, 3.0) @ known_rotation(0.0, REFERENCE_PITCH_DEG, 0.0)
    verts = 38.0 * model.shape() @ rot.T + np.array([64.0, 62.0, 80.0])
    zbuf, _, cover = rasterize(np.column_stack([verts[:, 0], S - 1 - verts[:, 1], verts[:, 2]]), model.triangles, S, S)
    verts[:, 2] -= zbuf[cover].min() - 1.0
    return depth, corr, mask, verts


@pytest.mark.parametrize("yaw", [30.0, 60.0, 85.0])
def test_a_turned_face_meshes_into_one_piece_that_follows_the_maps(yaw):
    """The maps' own mesh of a turned face is not whole here (holes where the nose hides the cheek); the
    completed one is, sits on the true surface, and a fit 6 px too far and turned 5 degrees off is pulled back
    onto the maps where the crop shows the face (the hidden side follows)."""
    from meshing import MeshConfig, mesh_from_maps

    model = load_face_model()
    depth, corr, mask, truth = _truth(model, yaw)
    fit = fit_face_model(depth, corr, mask, model)
    cfg = CompleteConfig()
    mesh = complete_mesh(fit, depth, mask, model.mirror, cfg)
    fine = refinement(model.triangles, model.n_vertices, None, cfg.max_vertices)
    assert is_whole(mesh.faces, mesh.n_vertices) and 5000 <= mesh.n_vertices <= cfg.max_vertices
    t = fine.weights @ truth
    err = np.linalg.norm(mesh.vertices - t, axis=1)
    assert np.median(err) < 0.6 and np.percentile(err, 95) < 1.5, (np.median(err), np.percentile(err, 95))

    off = np.deg2rad(5.0)
    turn = np.array([[np.cos(off), 0, np.sin(off)], [0, 1, 0], [-np.sin(off), 0, np.cos(off)]])
    centre = fit.vertices.mean(0)
    fit.vertices = (fit.vertices - centre) @ turn.T + centre + [0.0, 0.0, 6.0]
    wrong = fine.weights @ fit.vertices
    moved = complete_mesh(fit, depth, mask, model.mirror, cfg)
    assert is_whole(moved.faces, moved.n_vertices)
    z_err, z_err_fit = np.abs(moved.vertices[:, 2] - t[:, 2]), np.abs(wrong[:, 2] - t[:, 2])
    assert np.median(z_err) < 0.3 * np.median(z_err_fit), (np.median(z_err), np.median(z_err_fit))
    # the correction bends without creases where the seen part ends: its umbrella Laplacian stays small everywhere
    # (a membrane spread, which interpolates the seen offsets with kinks at their edge, gives p99 ~0.45 px here)
    lap = graph_laplacian(fine.faces, fine.weights.shape[0])
    bend = np.abs(lap @ (moved.vertices[:, 2] - wrong[:, 2])) / lap.diagonal()
    assert np.percentile(bend, 99) < 0.15, np.percentile(bend, 99)


def test_the_maps_own_mesh_of_these_renders_has_holes():
    """What the completion is for: on the same renders the maps' mesh is not one whole disc at 30 and 85 deg."""
    from meshing import MeshConfig, mesh_from_maps

    model = load_face_model()
    for yaw in (30.0, 85.0):
        depth, corr, mask, _ = _truth(model, yaw)
        m = mesh_from_maps(depth, mask, None, corr, MeshConfig())
        assert not is_whole(m.faces, m.n_vertices), yaw


def test_hidden_vertices_take_their_seen_mirror_partners_pixel():
    model = load_face_model()
    depth, corr, mask, _ = _truth(model, 70.0)
    fit = fit_face_model(depth, corr, mask, model)
    with_mirror = complete_mesh(fit, depth, mask, model.mirror)
    plain = complete_mesh(fit, depth, mask, None)
    changed = np.any(with_mirror.pixels != plain.pixels, axis=1)
    assert 0.05 < changed.mean() < 0.6  # the far side, not the whole face
    assert np.allclose(with_mirror.vertices, plain.vertices)


@pytest.mark.parametrize("field, value", [("max_vertices", 2), ("visible_tol_px", 0.0), ("edge_px", float("nan")),
                                          ("min_yaw_deg", -1.0),
                                          ("smoothness", -1.0), ("outlier_mads", float("inf"))])
def test_complete_config_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=f"CompleteConfig.{field}"):
        CompleteConfig(**{field: value})


def test_the_finished_mesh_has_colours_uvs_and_the_correspondence_of_the_maps():
    """completed_face_mesh: the vertex correspondence (the reference code of the fit's vertices, carried through
    the subdivision) matches the rendered correspondence map where the face is seen; colours come from the crop."""
    from facevision.face.reference import load_reference
    from facevision.fit.complete import completed_face_mesh
    from meshing import MeshConfig

    model, ref = load_face_model(), load_reference()
    depth, corr, mask, _ = _truth(model, 40.0)
    fit = fit_face_model(depth, corr, mask, model)
    image = np.zeros((S, S, 3), np.uint8)
    image[:, S // 2:] = (200, 40, 40)  # right half red
    mesh = completed_face_mesh(fit, depth, mask, image, MeshConfig(detail_strength=0.0), model.mirror, ref.vertices)
    assert mesh.colors.shape == (mesh.n_vertices, 3) and mesh.uvs.shape == (mesh.n_vertices, 2)
    assert np.all((mesh.uvs >= 0) & (mesh.uvs <= 1))
    r, c = np.round(mesh.pixels).astype(int).T
    inside = (r >= 0) & (r < S) & (c >= 0) & (c < S)
    on_face = inside.copy()
    on_face[inside] = mask[r[inside], c[inside]]
    red = c >= S // 2 + 1
    assert np.allclose(mesh.colors[inside & red], [200 / 255, 40 / 255, 40 / 255], atol=1e-6)
    err = np.abs(mesh.corr[on_face] - corr[r[on_face], c[on_face]])
    assert np.median(err) < 0.01, np.median(err)


def test_predict_completes_turned_faces_and_keeps_whole_frontal_meshes():
    """The predictor's rule (PredictConfig.complete): a face turned 60 degrees gets the completed mesh (one whole
    piece, ``mesh_source`` "fit", written in result.json); a frontal face whose maps' mesh is whole keeps it;
    ``complete=None`` keeps the maps' mesh of the turned face too."""
    from facevision.predict.predictor import Predictor, PredictConfig
    from support.synthetic import fixed_maps_model

    model = load_face_model()
    box = (0, 0, S, S)
    seen = {}
    for yaw in (0.0, 60.0):
        depth, corr, mask, _ = _truth(model, yaw)
        for name, cfg in (("auto", PredictConfig()), ("never", PredictConfig(complete=None))):
            res = Predictor(fixed_maps_model(depth, corr, mask), cfg).predict_crops(np.zeros((1, S, S, 3), np.uint8),
                                                                                    [box])[0]
            assert res.ok and res.mesh is not None
            seen[yaw, name] = (res.mesh_source, is_whole(res.mesh.faces, res.mesh.n_vertices),
                               res.to_json()["mesh"]["source"])
    assert seen[60.0, "auto"] == ("fit", True, "fit")
    assert seen[60.0, "never"][0] == "maps"
    assert seen[0.0, "auto"][0] == ("fit" if not seen[0.0, "never"][1] else "maps")
    assert seen[0.0, "auto"][1]  # whole either way


def test_needs_completion_follows_the_config():
    from types import SimpleNamespace

    from facevision.fit.complete import needs_completion

    v, f = _grid(5)
    whole = SimpleNamespace(faces=f, n_vertices=len(v))
    inner = {12, 13, 17, 18}  # the quad of rows 2-3, columns 2-3: without its two triangles, a hole
    torn = SimpleNamespace(faces=np.array([t for t in f if not set(t) <= inner]), n_vertices=len(v))
    assert len(torn.faces) == len(f) - 2
    fit = lambda yaw: SimpleNamespace(pose=SimpleNamespace(yaw=yaw))  # noqa: E731
    assert not needs_completion(whole, fit(10.0), CompleteConfig())
    assert needs_completion(whole, fit(-40.0), CompleteConfig())
    assert not needs_completion(whole, fit(-40.0), CompleteConfig(min_yaw_deg=50.0))
    assert needs_completion(torn, fit(0.0), CompleteConfig(min_yaw_deg=50.0))
    assert needs_completion(whole, fit(0.0), CompleteConfig(always=True))


def test_refinement_is_repeated_midpoint_subdivision_within_the_vertex_budget():
    v, f = _grid(9)  # 81 vertices, 208 edges: 289 after one subdivision, 1,089 after two
    m = np.arange(len(v))[::-1]
    fine = refinement(f, len(v), m, max_vertices=1000)
    v1, f1, m1 = subdivide_midpoint(v, f, m)
    assert fine.weights.shape == (len(v1), len(v)) and np.array_equal(fine.faces, f1)
    assert np.allclose(fine.weights @ v, v1) and np.array_equal(fine.mirror, m1)
    v2, f2, _ = subdivide_midpoint(v1, f1)
    assert np.allclose(refinement(f, len(v), None, max_vertices=len(v2)).weights @ v, v2)
    assert refinement(f, len(v), None, max_vertices=len(v1) - 1).weights.shape == (len(v), len(v))
    lap = graph_laplacian(fine.faces, fine.weights.shape[0])
    assert np.allclose(lap @ np.ones(lap.shape[0]), 0.0) and abs(lap - lap.T).max() == 0
    assert abs(fine.bilaplacian - lap.T @ lap).max() == 0


def test_a_completion_that_fails_keeps_the_maps_mesh(monkeypatch):
    """If the completion raises (a degenerate fit), the face keeps its maps' mesh instead of failing."""
    import facevision.fit.complete as complete
    from facevision.predict.predictor import Predictor
    from meshing.types import MeshingError
    from support.synthetic import fixed_maps_model

    def broken(*args, **kwargs):
        raise MeshingError("vertices contain NaN or inf")

    monkeypatch.setattr(complete, "completed_face_mesh", broken)
    depth, corr, mask, _ = _truth(load_face_model(), 60.0)
    res = Predictor(fixed_maps_model(depth, corr, mask)).predict_crops(np.zeros((1, S, S, 3), np.uint8),
                                                                       [(0, 0, S, S)])[0]
    assert res.ok and res.mesh is not None and res.mesh_source == "maps"

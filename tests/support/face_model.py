"""The project's linear face model rendered with known coefficients and pose (ground truth for the fit tests)."""
from __future__ import annotations

import numpy as np

from facevision.face.rasterize import rasterize
from facevision.face.reference import load_reference
from facevision.maps.pose import REFERENCE_PITCH_DEG
from support.synthetic import known_rotation

S = 128


def render_face_model(model, id_c, exp_c, yaw, pitch, roll, scale=38.0, centre=(64.0, 62.0, 80.0)):
    """Maps a perfect network would predict for the face model posed in an S x S crop (rotation built with scipy,
    not with the code under test), plus the truth: depth, corr, mask, the 68 landmarks (crop px) and their
    visibility (+1 clearly hidden, -1 clearly visible, 0 on a silhouette)."""
    ref = load_reference()
    rot = known_rotation(yaw, pitch, roll) @ known_rotation(0.0, REFERENCE_PITCH_DEG, 0.0)
    verts = scale * model.shape(id_c, exp_c) @ rot.T + np.asarray(centre)  # mesh frame, Y up
    img = np.stack([verts[:, 0], S - 1 - verts[:, 1], verts[:, 2]], 1)
    depth, corr, mask = rasterize(img, model.triangles, S, S, ref.vertices)
    depth = np.where(mask, depth - depth[mask].min() + 1.0, 0.0)  # relative, like the dataset format
    lm = np.stack([verts[model.ibug68, 0], S - 1 - verts[model.ibug68, 1]], 1)
    # z-buffer at each landmark's pixel: clearly hidden (+1), clearly visible (-1), or on a silhouette (0)
    zb, _, cov = rasterize(img, model.triangles, S, S)
    c, r = (np.clip(np.round(v).astype(int), 0, S - 1) for v in (lm[:, 0], lm[:, 1]))
    gap = zb[r, c] - img[model.ibug68, 2]
    hidden = np.where(cov[r, c] & (gap > 0.12 * scale), 1, np.where(cov[r, c] & (gap < 0.02 * scale), -1, 0))
    return depth, corr, mask, lm, hidden

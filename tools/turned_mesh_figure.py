"""``python tools/turned_mesh_figure.py PHOTO... -o FIGURE.jpg``: the README's figure of turned faces' meshes.

Per photo (largest face): the crop, the mesh lifted from the maps (``--complete-mesh never``) and the completed mesh
(:mod:`facevision.fit.complete`), each seen from the camera and turned 60 degrees towards the hidden side, all made by
the prediction pipeline itself.
"""
from __future__ import annotations

import cv2
import numpy as np

from facevision.face.images import read_photo
from facevision.fit.complete import completed_face_mesh
from facevision.predict.predictor import PredictConfig, Predictor
from facevision.predict.render import RenderConfig, render_mesh, view_angles
from overlay_figure import figure_args, side_by_side, write_figure  # tools/ is the script's folder


def mesh_row(predictor: Predictor, path: str, size: int = 160) -> np.ndarray:
    """crop | maps' mesh front, 60 deg | completed mesh front, 60 deg (turned towards the face's hidden side)."""
    res = predictor(read_photo(path))[0]
    if not res.ok or res.model_fit is None:
        raise SystemExit(f"{path}: no face with a fit ({res.error})")
    done = completed_face_mesh(res.model_fit, res.depth_px, res.mask, res.crop, predictor.config.mesh,
                               predictor.face_model.mirror, predictor.reference.vertices)
    turn = view_angles(RenderConfig(), res.pose.yaw)[1]  # as the preview: towards the side the photo hides
    tiles = [cv2.resize(res.crop, (size, size), interpolation=cv2.INTER_AREA)]
    for mesh in (res.mesh, done):
        tiles += [render_mesh(mesh.vertices, mesh.faces, size), render_mesh(mesh.vertices, mesh.faces, size, turn)]
    return side_by_side(tiles)


def main() -> None:
    args = figure_args(__doc__)
    predictor = Predictor.from_pretrained(config=PredictConfig(complete=None))
    write_figure(args.output, side_by_side([mesh_row(predictor, p) for p in args.photos], axis=0))
    print(args.output)


if __name__ == "__main__":
    main()

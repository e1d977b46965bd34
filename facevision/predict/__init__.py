"""Prediction: photos -> depth, correspondence, mesh, landmarks, pose (API: :class:`~facevision.predict.predictor.Predictor`,
also ``from facevision import Predictor``).

Modules: predictor (in-memory pipeline), outputs (files per face), mesh_frame (crop and photo frames of a mesh),
batch (the CLI's loop), report (offline HTML), render (preview sheet). The README's figure: tools/overview_figure.py.
"""

"""Prediction: photos -> depth, correspondence, mesh, landmarks, pose (API: :class:`~facevision.predict.predictor.Predictor`,
also ``from facevision import Predictor``).

Modules: predictor (in-memory pipeline), records (per-face records between its stages), outputs (files per face),
mesh_frame (crop and photo frames of a mesh), report (offline HTML), render (preview sheet), overlay (overlay.jpg).
The CLI's batch: runner (the run), inputs (listing the inputs), out_folder (OUT and its folder names), lock (one run
per OUT), resume (what a rerun skips), jobs (finishing an input), writer (the writers' pool), summary
(summary.json), shards (``--shard``), console (lines and progress bar); batch keeps their names importable. The
README's figure: tools/overview_figure.py.
"""

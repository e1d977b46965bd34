"""Video in and out: frames -> tracked faces -> smoothed landmarks, pose and fit codes -> frames.jsonl, overlay.mp4."""

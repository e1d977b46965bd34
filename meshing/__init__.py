"""meshing: depth (+ correspondence, image) maps -> refined triangle mesh. Plain numpy arrays in and out."""

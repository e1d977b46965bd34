"""data_prep: turn face photos into a labelled facevision dataset.

Pipeline: detect a face -> square crop -> label (depth, correspondence, mask) -> dataset on disk.
The on-disk format is defined in :mod:`data_prep.dataset_format`.
"""

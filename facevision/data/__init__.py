"""Reading the facevision dataset format into tensors, with label-preserving augmentation."""
from facevision.data.augment import AugmentConfig, augment_sample, hflip_sample
from facevision.data.dataset import FaceMapsDataset

__all__ = ["AugmentConfig", "augment_sample", "hflip_sample", "FaceMapsDataset"]

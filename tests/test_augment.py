"""Augmentation keeps labels true: flips mirror the correspondence u channel, geometry stays aligned."""
from __future__ import annotations

import numpy as np

from data_prep.toy import toy_sample
from facevision.data.augment import AugmentConfig, augment_sample, hflip_sample


def _u_slope(corr: np.ndarray, mask: np.ndarray) -> float:
    """Least-squares slope of u against the column index inside the mask (> 0: u grows to the right)."""
    rows, cols = np.nonzero(mask)
    return float(np.polyfit(cols.astype(float), corr[rows, cols, 0], 1)[0])


def test_flip_keeps_correspondence_convention() -> None:
    s = toy_sample(96, np.random.default_rng(1))
    assert _u_slope(s.corr, s.mask) > 0
    image, depth, corr, mask = hflip_sample(s.image, s.depth, s.corr, s.mask)
    # still "u grows to the image right", v and w unchanged per mirrored pixel
    assert _u_slope(corr, mask) > 0
    np.testing.assert_allclose(corr[..., 1:], s.corr[:, ::-1, 1:])
    np.testing.assert_array_equal(depth, s.depth[:, ::-1])
    np.testing.assert_array_equal(image, s.image[:, ::-1])
    assert np.all(corr[~mask] == 0)
    # flipping twice is the identity
    back = hflip_sample(image, depth, corr, mask)
    np.testing.assert_allclose(back[2], s.corr, atol=1e-6)


def test_naive_flip_would_break_convention() -> None:
    s = toy_sample(96, np.random.default_rng(2))
    assert _u_slope(s.corr[:, ::-1], s.mask[:, ::-1]) < 0  # the check above can fail


def test_geometric_augmentation_keeps_maps_aligned() -> None:
    cfg = AugmentConfig(flip_p=0.5, affine_p=1.0, photometric_p=1.0)
    rng = np.random.default_rng(3)
    for _ in range(5):
        s = toy_sample(96, np.random.default_rng(int(rng.integers(1000))))
        image, depth, corr, mask = augment_sample(s.image, s.depth, s.corr, s.mask, cfg, rng)
        assert image.shape == s.image.shape and image.dtype == np.uint8
        assert np.all(depth[~mask] == 0) and np.all(corr[~mask] == 0)
        assert np.all(depth[mask] > 0)
        assert 0.6 * s.mask.sum() < mask.sum() < 1.5 * s.mask.sum()  # scale within 1/1.2 .. 1.2
        assert depth[mask].min() == np.float32(1.0)  # re-based like the dataset format


def test_quarter_turn_moves_every_label_with_the_image() -> None:
    from facevision.data.augment import similarity_matrix, warp_sample

    s = toy_sample(96, np.random.default_rng(4))
    m = similarity_matrix(96, 90.0, 1.0, (0.0, 0.0))  # counter-clockwise as seen
    image, depth, corr, mask = warp_sample(s.image, s.depth, s.corr, s.mask, m, 1.0)
    np.testing.assert_array_equal(mask, np.rot90(s.mask))
    np.testing.assert_array_equal(image, np.rot90(s.image))
    np.testing.assert_allclose(corr, np.rot90(s.corr), atol=1e-6)
    base = np.rot90(np.where(s.mask, s.depth - s.depth[s.mask].min() + 1.0, 0.0))
    np.testing.assert_allclose(depth, base, atol=1e-5)


def test_scale_multiplies_depth_relief_and_keeps_correspondence_values() -> None:
    from facevision.data.augment import similarity_matrix, warp_sample

    s = toy_sample(128, np.random.default_rng(5))
    for scale in (0.8, 1.2):
        image, depth, corr, mask = warp_sample(s.image, s.depth, s.corr, s.mask,
                                               similarity_matrix(128, 0.0, scale, (0.0, 0.0)), scale)
        relief, relief0 = np.ptp(depth[mask]), np.ptp(s.depth[s.mask])
        assert depth.dtype == np.float32 and abs(relief - scale * relief0) < 0.02 * relief0
        assert abs(mask.sum() / s.mask.sum() - scale ** 2) < 0.05 * scale ** 2
        # nearest-neighbour sampling: every correspondence value is one the label had
        src = {tuple(v) for v in s.corr[s.mask].round(6)}
        assert all(tuple(v) in src for v in corr[mask].round(6))


def test_augment_config_refuses_bad_values() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"AugmentConfig\.flip_p must be in \[0, 1\], got 1\.5"):
        AugmentConfig(flip_p=1.5)
    with pytest.raises(ValueError, match=r"AugmentConfig\.max_scale must be >= 1, got 0\.8"):
        AugmentConfig(max_scale=0.8)

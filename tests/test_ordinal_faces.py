"""The ordinal-faces stand-in for UTKFace/AFAD: determinism, a UTKFace-like age prior, age cues in pixels."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from domainknowledge.data.synthetic.ordinal_faces import (
    age_cues,
    age_distribution,
    make_ordinal_faces,
    render_faces,
)


def test_same_seed_same_data_and_different_seed_different_data():
    first = make_ordinal_faces(300, seed=7)
    second = make_ordinal_faces(300, seed=7)
    other = make_ordinal_faces(300, seed=8)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


def test_shapes_and_types():
    images, ages = make_ordinal_faces(50, seed=0, image_size=40, max_age=60)
    assert images.shape == (50, 40, 40) and images.dtype == np.uint8
    assert ages.shape == (50,) and ages.dtype == np.int64
    assert ages.min() >= 0 and ages.max() <= 60


def test_age_prior_is_skewed_like_utkface():
    prior = age_distribution(79)
    assert prior.sum() == pytest.approx(1.0)
    assert 20 <= int(np.argmax(prior[5:])) + 5 <= 35          # the adult peak lies in the 20s-30s
    assert prior[1] > prior[5:15].max()                      # a spike at infancy
    assert prior[1] > 3 * prior[8]
    mean = (np.arange(80) * prior).sum()
    median = int(np.searchsorted(np.cumsum(prior), 0.5))
    assert mean > median                                     # a long right tail
    assert prior[60:].sum() > 0.02


def test_sampled_ages_follow_the_prior():
    _, ages = make_ordinal_faces(20000, seed=1)
    observed = np.bincount(ages, minlength=80) / ages.size
    assert np.abs(observed - age_distribution(79)).max() < 0.01


def test_every_cue_moves_monotonically_with_age_on_average():
    ages = np.repeat(np.arange(0, 80, 5), 400)
    cues = age_cues(ages, np.random.default_rng(0))
    for name, direction in [("head_size", 1), ("face_length", 1), ("eye_height", -1), ("wrinkles", 1),
                            ("grey_hair", 1)]:
        rho = spearmanr(ages, cues[name]).statistic
        assert direction * rho > 0.3, (name, rho)


def test_a_pixel_statistic_tracks_age():
    """Adults' heads are larger than children's: the size cue is visible in the rendered images."""
    rng = np.random.default_rng(3)
    ages = np.repeat(np.array([0, 3, 8, 15, 30]), 200)
    cues = age_cues(ages, rng)
    for name in ("face_length", "eye_height", "wrinkles", "grey_hair"):   # keep only the size cue moving
        cues[name] = np.full_like(cues[name], np.median(cues[name]))
    images = render_faces(cues, rng).astype(np.float64)
    background = np.concatenate([images[:, :, :2], images[:, :, -2:]], axis=2).mean(axis=(1, 2))
    face_area = (np.abs(images - background[:, None, None]) > 25).mean(axis=(1, 2))
    means = [face_area[ages == a].mean() for a in (0, 3, 8, 15, 30)]
    assert all(later > earlier for earlier, later in zip(means, means[1:])), means


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="positive"):
        make_ordinal_faces(0, seed=0)
    with pytest.raises(ValueError, match="image_size"):
        make_ordinal_faces(5, seed=0, image_size=8)
    with pytest.raises(ValueError, match="max_age"):
        age_distribution(10)

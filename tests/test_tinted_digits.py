"""The tinted-digits clustering set: two clean partitions, by digit and by tint, independent of each other."""

import numpy as np
import pytest

from domainknowledge import metrics
from domainknowledge.data.synthetic.tinted_digits import TINTS, make_tinted_digits, tint


def test_shapes_determinism_and_independent_partitions():
    data = make_tinted_digits(seed=0, size=16, copies=2)
    assert data.images.shape == (2 * 1797, 16, 16, 3) and data.images.dtype == np.uint8
    assert np.array_equal(data.images, make_tinted_digits(seed=0, size=16, copies=2).images)
    # tints carry no information about digits, and vice versa
    assert metrics.normalized_mutual_information(data.tints, data.labels) < 0.01
    assert set(np.unique(data.tints)) == set(range(10))


def test_the_tint_partition_is_recoverable_from_mean_colour():
    data = make_tinted_digits(seed=1, size=16, copies=1)
    mean_colour = data.images.reshape(len(data.images), -1, 3).astype(float)
    bright = mean_colour.max(axis=2) > 60                       # glyph pixels only
    # the glyph's mean colour minus the background, compared with each tint (minus background) by direction
    hue = np.stack([mean_colour[i][bright[i]].mean(axis=0) / 255 - 0.08 for i in range(len(data.images))])
    directions = TINTS - 0.08
    cosine = (hue / np.linalg.norm(hue, axis=1, keepdims=True)) @ (directions / np.linalg.norm(directions, axis=1, keepdims=True)).T
    nearest = cosine.argmax(axis=1)
    assert (nearest == data.tints).mean() > 0.95


def test_tint_by_hand_and_bad_input():
    image = tint(np.array([[[0.0, 1.0]]]), np.array([[1.0, 0.0, 0.0]]))
    assert image[0, 0, 1].tolist() == [255, 0, 0]
    assert image[0, 0, 0].tolist() == [20, 20, 20]
    with pytest.raises(ValueError, match="copies"):
        make_tinted_digits(seed=0, copies=11)

"""The book's figure helpers: what they draw, and their errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from domainknowledge import plots


def test_tree_exploration_draws_one_cell_per_node_and_counts_members():
    # eight images; the first path bit splits 6 / 2, the second splits the 6 into 4 / 2
    bits = np.array([[0, 0]] * 4 + [[0, 1]] * 2 + [[1, 0]] * 2, dtype=np.uint8)
    images = np.arange(8, dtype=np.uint8)[:, None, None] * np.ones((8, 5, 5), dtype=np.uint8)
    fig, axes = plots.plot_tree_exploration(images, bits, levels=2, samples=3, seed=0)
    # level 1: two mean-image cells; level 2: four leaves, three sample rows each
    assert len(axes) == 2 + 4 * 3
    titles = [ax.get_title() for ax in axes if ax.get_title()]
    assert titles == ["6", "2", "4", "2", "2"]           # the empty leaf has no title
    left_mean = axes[0].get_images()[0].get_array()
    assert np.allclose(left_mean, np.mean(np.arange(6)))       # the mean of the six images that went left
    assert not axes[-3].get_images()                             # the empty leaf stays blank
    plt.close(fig)


def test_tree_exploration_rejects_too_few_bits_and_mismatched_images():
    images = np.zeros((4, 5, 5), dtype=np.uint8)
    with pytest.raises(ValueError, match="d >= levels"):
        plots.plot_tree_exploration(images, np.zeros((4, 2), dtype=np.uint8), levels=3)
    with pytest.raises(ValueError, match="N = 3"):
        plots.plot_tree_exploration(images, np.zeros((3, 3), dtype=np.uint8), levels=2)


def test_image_grid_shows_float_rgb_in_the_0_to_255_range():
    images = np.full((2, 4, 4, 3), 200.0)                     # float RGB, as a mean image is
    fig, axes = plots.plot_image_grid(images, ["a", "b"], columns=2)
    shown = axes[0, 0].get_images()[0].get_array()
    assert shown.dtype == np.uint8 and int(shown.max()) == 200   # not clipped to white as a 0..1 float would be
    plt.close(fig)


def test_relplot_under_the_book_style_draws_without_a_layout_warning():
    import warnings

    import pandas as pd

    plots.use_book_style()
    frame = pd.DataFrame({"x": [1, 2, 1, 2], "y": [0.1, 0.2, 0.3, 0.1], "group": ["a", "a", "b", "b"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # matplotlib's "layout has changed to tight" would raise
        grid = plots.relplot(data=frame, x="x", y="y", col="group", kind="line")
    assert len(grid.axes.flat) == 2
    plt.close(grid.figure)
    matplotlib.rcdefaults()

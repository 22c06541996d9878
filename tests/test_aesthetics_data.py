"""The aesthetics stand-in: a documented, monotone hidden score, AVA-like votes, seeded determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from domainknowledge.data.synthetic import aesthetics as A


def ideal_properties(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "exposure": np.zeros(n), "contrast": np.zeros(n), "saturation": np.zeros(n), "harmony": np.zeros(n),
        "blur": np.zeros(n), "noise": np.zeros(n), "horizon": np.full(n, 1 / 3), "tilt": np.zeros(n),
        "subject": ["tree"] * n, "subject_x": np.full(n, 1 / 3), "subject_y": np.full(n, 2 / 3),
        "subject_size": np.full(n, 0.15), "hue": np.full(n, 0.3), "content_noise": np.zeros(n)})


@pytest.mark.parametrize("column, values", [
    ("exposure", [0.0, 0.5, 1.0, 1.5]), ("exposure", [0.0, -0.5, -1.0]), ("contrast", [0.0, 0.3, 0.6]),
    ("saturation", [0.0, -0.4, -0.8]), ("harmony", [0.0, 0.5, 1.0]), ("blur", [0.0, 0.5, 1.0]),
    ("noise", [0.0, 0.5, 1.0]), ("tilt", [0.0, 4.0, 8.0]), ("subject_x", [1 / 3, 0.4, 0.5]),
    ("horizon", [1 / 3, 0.4, 0.5])])
def test_hidden_score_falls_monotonically_away_from_the_ideal(column, values):
    properties = ideal_properties(len(values))
    properties[column] = values
    scores = A.hidden_score(properties)
    assert np.all(np.diff(scores) < 0)


def test_ideal_scene_scores_the_base_score_and_content_counts():
    properties = ideal_properties(3)
    properties["subject"] = ["sun", "tree", "house"]
    assert A.hidden_score(properties).tolist() == pytest.approx([A.BASE_SCORE + 0.25, A.BASE_SCORE, A.BASE_SCORE - 0.15])


def test_generator_is_seeded_and_votes_match_the_score():
    first = A.generate_aesthetics(60, 32, seed=3, votes=200)
    second = A.generate_aesthetics(60, 32, seed=3, votes=200)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.votes, second.votes)
    assert first.images.shape == (60, 32, 32, 3) and first.images.dtype == np.uint8
    assert first.votes.shape == (60, 10) and (first.votes.sum(axis=1) == 200).all()
    assert np.allclose(first.distributions.sum(axis=1), 1.0)
    assert np.corrcoef(first.hidden_score, first.mean_score)[0, 1] > 0.9
    other = A.generate_aesthetics(60, 32, seed=4, votes=200)
    assert not np.array_equal(first.images, other.images)


def test_vote_histograms_are_centred_on_the_score():
    votes = A.vote_histograms(np.array([2.0, 5.5, 8.0]), 20000, np.random.default_rng(0))
    means = (votes * A.SCORES).sum(axis=1) / votes.sum(axis=1)
    assert means[0] < means[1] < means[2]
    assert abs(means[1] - 5.5) < 0.05


def test_well_composed_scenes_put_subject_and_horizon_on_thirds():
    properties = A.sample_properties(200, np.random.default_rng(0), well_composed=True)
    assert A.thirds_offset(properties["subject_x"], properties["subject_y"]).max() < 0.1
    assert (properties[["exposure", "contrast", "blur", "noise"]] == 0).all().all()
    scenes = A.generate_well_composed_scenes(4, 32, seed=1)
    assert scenes.shape == (4, 32, 32, 3) and np.array_equal(scenes, A.generate_well_composed_scenes(4, 32, seed=1))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="at least 1"):
        A.sample_properties(0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="lack the column"):
        A.hidden_score(pd.DataFrame({"exposure": [0.0]}))

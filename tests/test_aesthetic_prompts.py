"""Prompting and linear probing of Kobs (2023), Ch. 12, checked on hand-made embeddings with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from domainknowledge.principles import aesthetic_prompts as P


def test_the_adjective_lists_have_the_thesis_counts_and_winners():
    assert len(P.POSITIVE_ADJECTIVES) == 27 and len(set(P.POSITIVE_ADJECTIVES)) == 27
    assert len(P.NEGATIVE_ADJECTIVES) == 12 and len(set(P.NEGATIVE_ADJECTIVES)) == 12
    for positive, negative in P.THESIS_BEST_PAIRS.values():
        assert positive in P.POSITIVE_ADJECTIVES and negative in P.NEGATIVE_ADJECTIVES
    assert {"beautiful", "pretty"} <= set(P.POSITIVE_ADJECTIVES)


def test_prompt_templates():
    assert P.fixed_prompt("outstanding") == "a outstanding picture"
    assert P.context_prompts("horrible", ["tabby cat, tabby", "dog"]) == ["a horrible picture, of a #tabby cat",
                                                                         "a horrible picture, of a #dog"]
    with pytest.raises(ValueError, match="at least one content class"):
        P.context_prompts("horrible", [])


def test_eq_12_1_on_a_hand_made_embedding():
    image = np.array([[2.0, 0.0, 0.0]])                         # cosine normalises: e1
    texts = np.array([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 0.0]])
    weights = P.prompt_weights(1, 2)
    np.testing.assert_array_equal(weights, [1.0, -1.0, -1.0])
    score = P.weighted_prompt_score(image, texts, weights)
    np.testing.assert_allclose(score, [1.0 - 0.0 - 1 / np.sqrt(2)])
    # a negative prompt that is far from the image raises the score (Sec. 12.1.1)
    far = P.weighted_prompt_score(image, np.array([[1.0, 0, 0], [-1.0, 0, 0]]), P.prompt_weights(1, 1))
    np.testing.assert_allclose(far, [2.0])


def test_eq_12_1_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same encoder"):
        P.weighted_prompt_score(np.ones((2, 3)), np.ones((2, 4)), [1, -1])
    with pytest.raises(ValueError, match="one weight per prompt"):
        P.weighted_prompt_score(np.ones((2, 3)), np.ones((2, 3)), [1, -1, 1])
    with pytest.raises(ValueError, match="zero vector"):
        P.weighted_prompt_score(np.zeros((1, 3)), np.ones((1, 3)), [1])
    with pytest.raises(ValueError, match="at least one prompt"):
        P.prompt_weights(0, 0)


def test_binary_decision_takes_the_closest_prompt_and_ties_count_as_aesthetic():
    images = np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 1.0]])
    positive = np.array([[1.0, 0.0]])
    negative = np.array([[0.0, 1.0]])
    np.testing.assert_array_equal(P.binary_from_prompts(images, positive, negative), [True, False, True])
    # context prompts: the single closest of all prompts decides
    positive_many = np.array([[1.0, 0.0], [0.6, 0.8]])
    np.testing.assert_array_equal(P.binary_from_prompts(np.array([[0.1, 1.0]]), positive_many, negative), [False])
    # identical prompts (two words an encoder never saw): every image is called aesthetic
    same = np.array([[0.3, 0.7]])
    assert P.binary_from_prompts(images, same, same).all()


def test_ensemble_vector_is_the_normalised_mean():
    np.testing.assert_allclose(P.ensemble_vector(np.array([[2.0, 0.0], [0.0, 5.0]])), [[1 / np.sqrt(2)] * 2])


def test_evaluate_prompts_on_embeddings_that_encode_the_score():
    scores = np.linspace(2, 8, 30)
    angles = (scores - 2) / 6 * (np.pi / 2)                    # score 2 -> along "ugly", 8 -> along "great"
    images = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    positive, negative = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    values = P.evaluate_prompts(images, scores, positive, negative)
    assert values["spearman"] == pytest.approx(1.0)
    # the binary boundary is at 45 degrees, i.e. score 5
    assert values["accuracy"] == pytest.approx(1.0)
    flat = P.evaluate_prompts(images, scores, positive, positive)
    assert flat["spearman"] == 0.0 and flat["pearson"] == 0.0


def test_the_pair_search_finds_the_planted_pair():
    scores = np.linspace(2, 8, 40)
    angles = (scores - 2) / 6 * (np.pi / 2)
    images = np.stack([np.sin(angles), np.cos(angles), np.zeros_like(angles)], axis=1)
    words = {"good": np.array([[1.0, 0.0, 0.0]]), "meh": np.array([[-1.0, 0.0, 0.0]]),
             "bad": np.array([[0.0, 1.0, 0.0]]), "odd": np.array([[1.0, 0.0, 0.0]])}
    search = P.search_adjective_pairs(images, scores, words, ["meh", "good"], ["odd", "bad"])
    assert len(search) == 4
    assert P.best_pair(search, "continuous") == ("good", "bad")
    assert P.best_pair(search, "binary") == ("good", "bad")
    with pytest.raises(ValueError, match="no prompt embeddings"):
        P.search_adjective_pairs(images, scores, words, ["great"], ["bad"])
    with pytest.raises(ValueError, match="binary' or 'continuous"):
        P.best_pair(search, "ranking")


def test_linear_probe_recovers_a_linear_score():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 5)) * np.array([1.0, 2.0, 0.5, 1.0, 1.0])
    scores = 5.0 + 0.8 * features[:, 0] - 0.3 * features[:, 1]
    probe = P.fit_linear_probe(features, scores)
    np.testing.assert_allclose(probe.coef, [0.8, -0.3, 0, 0, 0], atol=1e-3)
    assert probe.intercept == pytest.approx(5.0, abs=1e-2)
    np.testing.assert_allclose(probe.predict(features), scores, atol=1e-2)
    scaled = P.scaled_probe_weights(probe)
    np.testing.assert_allclose(scaled[:2], [0.8 * features[:, 0].std(), -0.3 * features[:, 1].std()], rtol=1e-3)
    with pytest.raises(ValueError, match="features must be"):
        probe.predict(features[:, :3])
    with pytest.raises(ValueError, match="need features"):
        P.fit_linear_probe(features, scores[:10])


def test_weight_spread_of_one_dimension_and_of_equal_weights():
    one = P.weight_spread(np.array([0.0, 0.0, -3.0, 0.0]))
    assert one == {"top_share": 1.0, "effective_dimensions": 1.0, "effective_fraction": 0.25, "dimensions_for_half": 1}
    equal = P.weight_spread(np.ones(8))
    assert equal["top_share"] == pytest.approx(1 / 8) and equal["effective_dimensions"] == pytest.approx(8)
    assert equal["dimensions_for_half"] == 4
    with pytest.raises(ValueError, match="non-zero"):
        P.weight_spread(np.zeros(3))


def test_equal_dimension_spread_finds_one_direction_in_any_basis():
    rng = np.random.default_rng(1)
    # 300 points in 12 dimensions with distinct variances, rotated so that no feature axis is a component
    raw = rng.normal(size=(300, 12))
    latent = np.linalg.qr(raw - raw.mean(axis=0))[0] * np.sqrt(300) * np.linspace(3.0, 0.5, 12)  # uncorrelated
    rotation = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    features = latent @ rotation.T
    one = P.equal_dimension_spread(features, 2.0 * latent[:, 0] + 5.0, 6)   # the score reads the first component
    assert one["dimensions"] == 6 and one["top_share"] > 0.99 and one["effective_dimensions"] < 1.02
    assert 0.0 < one["variance_kept"] < 1.0
    # a score spread evenly over the six kept components (each in units of its own spread) uses all six
    even = P.equal_dimension_spread(features, (latent[:, :6] / latent[:, :6].std(axis=0)).sum(axis=1), 6)
    assert even["effective_dimensions"] == pytest.approx(6.0, rel=0.02)
    assert even["effective_fraction"] == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError, match="dimensions must lie"):
        P.equal_dimension_spread(features, latent[:, 0], 13)


def test_pair_search_from_per_word_similarities_equals_eq_12_1_and_the_binary_rule_pair_by_pair():
    rng = np.random.default_rng(3)
    images, scores = rng.normal(size=(40, 8)), rng.uniform(2, 8, 40)
    words = {w: rng.normal(size=(3, 8)) for w in ("fine", "good", "bad", "ugly")}
    search = P.search_adjective_pairs(images, scores, words, ("fine", "good"), ("bad", "ugly"))
    for row in search.itertuples():
        positive, negative = words[row.positive], words[row.negative]
        score = P.weighted_prompt_score(images, np.concatenate([positive, negative]), P.prompt_weights(3, 3))
        binary = P.binary_from_prompts(images, positive, negative)
        assert row.accuracy == pytest.approx(np.mean(binary == (scores > 5)))
        assert row.spearman == pytest.approx(stats.spearmanr(score, scores)[0])
    largest, total = P.prompt_similarities(images, words["fine"], chunk=7)
    unit = images / np.linalg.norm(images, axis=1, keepdims=True)
    similarity = unit @ (words["fine"] / np.linalg.norm(words["fine"], axis=1, keepdims=True)).T
    np.testing.assert_allclose(largest, similarity.max(axis=1))
    np.testing.assert_allclose(total, similarity.sum(axis=1))

"""MAP@R and R-Precision from a k-nearest-neighbour search equal the exact computation on the full order."""

from __future__ import annotations

import numpy as np
import pytest

from domainknowledge import metrics
from domainknowledge.metric_learning import DISTANCES


def _embeddings_with_ties(seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, size=90)
    labels[:3] = 7                                             # a class of three, and ...
    labels[3] = 8                                              # ... one without another member (skipped)
    embeddings = rng.standard_normal((90, 6)) + 1.5 * rng.standard_normal((9, 6))[labels]
    embeddings[10] = embeddings[11]                            # exact duplicates: tied distances
    embeddings[20] = embeddings[21] = embeddings[22]
    return embeddings, labels


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("seed", [0, 1])
def test_knn_scores_equal_the_exact_ones(distance, seed):
    embeddings, labels = _embeddings_with_ties(seed)
    order = metrics.neighbour_order(embeddings, distance)
    scores = metrics.knn_retrieval_scores(embeddings, labels, distance)
    assert scores["map_at_r"] == pytest.approx(metrics.map_at_r(labels, order), abs=1e-12)
    assert scores["r_precision"] == pytest.approx(metrics.r_precision(labels, order), abs=1e-12)
    k = np.bincount(labels).max() - 1
    np.testing.assert_array_equal(metrics.knn_neighbour_order(embeddings, k, distance), order[:, :k])


def test_knn_scores_of_perfect_and_known_embeddings():
    labels = np.repeat(np.arange(4), 5)
    clustered = np.eye(4)[labels] + 1e-3 * np.random.default_rng(0).standard_normal((20, 4))
    assert metrics.knn_retrieval_scores(clustered, labels)["map_at_r"] == pytest.approx(1.0)
    # a line: 0 0 1 1 at positions 0 1 2 3; query 1's nearest other is 0 (hit) -> AP 1; query 2's is 3 -> AP 1
    line = np.array([[0.0], [1.0], [2.2], [3.2]])
    assert metrics.knn_retrieval_scores(line, [0, 0, 1, 1])["map_at_r"] == pytest.approx(1.0)
    # 0 1 0 1: every nearest other is of the other class -> AP@R 0 for R = 1
    assert metrics.knn_retrieval_scores(np.arange(4.0)[:, None], [0, 1, 0, 1])["r_precision"] == pytest.approx(0.0)


def test_knn_scores_reject_bad_input():
    with pytest.raises(ValueError, match="single item"):
        metrics.knn_retrieval_scores(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match="labels"):
        metrics.knn_retrieval_scores(np.eye(3), [0, 0])


@pytest.mark.parametrize("distance", DISTANCES)
def test_the_device_neighbour_order_equals_the_numpy_one(distance):
    """The torch path :func:`neighbour_order` takes on a GPU, run here on the CPU."""
    embeddings, _ = _embeddings_with_ties(2)
    queries = np.array([0, 10, 11, 20, 89])
    np.testing.assert_array_equal(metrics._neighbour_order_on_device(embeddings, distance, queries, "cpu"),
                                  metrics.neighbour_order(embeddings, distance, queries=queries))

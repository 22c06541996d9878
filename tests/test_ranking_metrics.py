"""Accuracy@k, MRR and the expected random ranking (Kobs 2023, Sec. 2.5.1; Table 8.1) on hand-made rankings."""

from __future__ import annotations

import numpy as np
import pytest

from domainknowledge import metrics


def test_ranks_accuracy_at_k_and_mrr_on_a_hand_made_ranking():
    scores = np.array([[0.1, 0.7, 0.2],     # target 1 ranked 1st
                       [0.5, 0.3, 0.2],     # target 2 ranked 3rd
                       [0.2, 0.2, 0.6]])    # target 1: tie with class 0, which wins (lower index): rank 3
    targets = np.array([1, 2, 1])
    assert metrics.target_ranks(scores, targets).tolist() == [1, 3, 3]
    assert metrics.accuracy_at_k(scores, targets, 1) == pytest.approx(1 / 3)
    assert metrics.accuracy_at_k(scores, targets, 3) == 1.0
    assert metrics.mean_reciprocal_rank(scores, targets) == pytest.approx((1 + 1 / 3 + 1 / 3) / 3)


def test_expected_random_ranking_matches_table_8_1_and_simulation():
    expected = metrics.expected_random_ranking(78, 5)
    assert round(expected["accuracy"], 3) == 0.013
    assert round(expected["accuracy_at_5"], 3) == 0.064
    assert round(expected["mrr"], 3) == 0.063
    rng = np.random.default_rng(0)
    scores, targets = rng.random((200_000, 6)), rng.integers(0, 6, 200_000)
    simulated = metrics.mean_reciprocal_rank(scores, targets)
    assert simulated == pytest.approx(metrics.expected_random_ranking(6)["mrr"], abs=0.005)


def test_ranking_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="class indices"):
        metrics.target_ranks(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        metrics.target_ranks(np.zeros(3), [0, 1, 2])
    with pytest.raises(ValueError, match="k must be at least 1"):
        metrics.accuracy_at_k(np.zeros((1, 2)), [0], 0)

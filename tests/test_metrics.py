"""Metrics of Kobs 2023, Sec. 2.5, on hand-computed examples."""

import math

import numpy as np
import pytest
import torch

from domainknowledge import metrics

# classes 0-1 form superclass 0, classes 2-4 superclass 1
SUPERCLASS_OF = np.array([0, 0, 1, 1, 1])


def test_accuracy_mae_mse_by_hand():
    predictions, targets = [0, 2, 4, 1], [0, 3, 1, 1]
    assert metrics.accuracy(predictions, targets) == 0.5
    assert metrics.mean_absolute_error(predictions, targets) == pytest.approx((0 + 1 + 3 + 0) / 4)
    assert metrics.mean_squared_error(predictions, targets) == pytest.approx((0 + 1 + 9 + 0) / 4)


def test_superclass_accuracies_by_hand():
    predictions = np.array([0, 1, 2, 3, 0, 4])
    targets = np.array([0, 0, 4, 3, 2, 1])
    # correct: examples 0 and 3; right superclass: 0, 1, 2, 3; wrong: 1, 2, 4, 5 of which 1, 2 hit the superclass
    assert metrics.accuracy(predictions, targets) == pytest.approx(2 / 6)
    assert metrics.superclass_accuracy(predictions, targets, SUPERCLASS_OF) == pytest.approx(4 / 6)
    assert metrics.failed_superclass_accuracy(predictions, targets, SUPERCLASS_OF) == pytest.approx(2 / 4)


def test_fsa_is_nan_when_nothing_is_misclassified():
    assert math.isnan(metrics.failed_superclass_accuracy([1, 2], [1, 2], SUPERCLASS_OF))


def test_superclass_accuracy_is_at_least_accuracy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        targets = rng.integers(0, 5, size=50)
        predictions = np.where(rng.random(50) < 0.4, targets, rng.integers(0, 5, size=50))
        assert (metrics.superclass_accuracy(predictions, targets, SUPERCLASS_OF)
                >= metrics.accuracy(predictions, targets))


def test_sa_combines_accuracy_and_fsa():
    """SA = Acc + (1 - Acc) * FSA follows from Eqs. 2.22 and 2.23."""
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 5, size=200)
    predictions = rng.integers(0, 5, size=200)
    acc = metrics.accuracy(predictions, targets)
    fsa = metrics.failed_superclass_accuracy(predictions, targets, SUPERCLASS_OF)
    assert metrics.superclass_accuracy(predictions, targets, SUPERCLASS_OF) == pytest.approx(acc + (1 - acc) * fsa)


def test_torch_and_numpy_inputs_agree():
    predictions, targets = torch.tensor([3, 1, 4]), torch.tensor([3, 2, 2])
    assert metrics.mean_absolute_error(predictions, targets) == metrics.mean_absolute_error([3, 1, 4], [3, 2, 2])
    assert metrics.superclass_accuracy(predictions, targets, torch.from_numpy(SUPERCLASS_OF)) == pytest.approx(2 / 3)


def test_perplexity_counts_effective_classes():
    assert metrics.perplexity([0, 1, 0, 0]) == pytest.approx(1.0)
    assert metrics.perplexity([1, 1, 1, 1]) == pytest.approx(4.0)
    assert metrics.perplexity([2, 2, 0, 0]) == pytest.approx(2.0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="at least one"):
        metrics.accuracy([], [])
    with pytest.raises(ValueError, match="outside"):
        metrics.superclass_accuracy([7], [0], SUPERCLASS_OF)
    with pytest.raises(ValueError, match="one-dimensional"):
        metrics.accuracy(np.zeros((2, 2)), np.zeros((2, 2)))

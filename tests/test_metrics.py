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


# --- per-class classification: confusion counts, Macro Recall, Macro F1 (Eqs. 2.18-2.21) -----------------


def test_confusion_recall_and_f1_by_hand():
    targets = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    predictions = [0, 1, 2, 1, 1, 2, 2, 2, 0, 1]
    confusion = metrics.confusion_counts(predictions, targets)
    assert confusion.tolist() == [[1, 1, 1], [0, 2, 0], [1, 1, 3]]
    assert confusion.dtype == np.int64
    # recall: 1/3, 2/2, 3/5
    assert np.allclose(metrics.recall_per_class(confusion), [1 / 3, 1.0, 3 / 5])
    assert metrics.macro_recall(predictions, targets) == pytest.approx((1 / 3 + 1 + 3 / 5) / 3)
    # F1_c = TP / (TP + (FP + FN) / 2): class 0: 1 / (1 + (1 + 2) / 2) = 0.4; class 1: 2 / (2 + (2 + 0) / 2) = 2/3;
    # class 2: 3 / (3 + (1 + 2) / 2) = 2/3
    assert np.allclose(metrics.f1_per_class(confusion), [0.4, 2 / 3, 2 / 3])
    assert metrics.macro_f1(predictions, targets) == pytest.approx((0.4 + 2 / 3 + 2 / 3) / 3)


def test_macro_scores_agree_with_scikit_learn():
    from sklearn.metrics import confusion_matrix, f1_score, recall_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        targets = rng.integers(0, 3, size=60)
        predictions = np.where(rng.random(60) < 0.5, targets, rng.integers(0, 3, size=60))
        assert np.array_equal(metrics.confusion_counts(predictions, targets, 3),
                              confusion_matrix(targets, predictions, labels=[0, 1, 2]))
        assert metrics.macro_recall(predictions, targets) == pytest.approx(
            recall_score(targets, predictions, average="macro"))
        assert metrics.macro_f1(predictions, targets) == pytest.approx(f1_score(targets, predictions, average="macro"))
    # a class that is predicted but never true counts with recall 0, as in scikit-learn
    targets, predictions = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    expected_recall = recall_score(targets, predictions, average="macro", zero_division=0)
    expected_f1 = f1_score(targets, predictions, average="macro", zero_division=0)
    assert metrics.macro_recall(predictions, targets) == pytest.approx(expected_recall)
    assert metrics.macro_f1(predictions, targets) == pytest.approx(expected_f1)


def test_num_classes_fixes_the_classes_averaged_over():
    # class 2 occurs nowhere: averaged over 2 classes by default, over 3 with num_classes=3
    assert metrics.macro_recall([0, 1], [0, 1]) == 1.0
    assert metrics.macro_recall([0, 1], [0, 1], num_classes=3) == pytest.approx(2 / 3)
    assert metrics.confusion_counts([0, 1], [0, 1], num_classes=3).shape == (3, 3)
    with pytest.raises(ValueError, match="outside"):
        metrics.confusion_counts([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        metrics.confusion_counts([0.5], [0])


def test_table_15_2_baselines_from_the_gold_label_counts():
    """Table 15.2: the expected scores of the random and majority baselines on 404 / 748 / 770 labels."""
    counts = np.array([404, 748, 770])
    rows = {"uniform": (np.full(3, 1 / 3), 0.333, 0.333, 0.327),
            "target distribution": (counts / counts.sum(), 0.356, 0.333, 0.333),
            "majority (positive)": (np.array([0.0, 0.0, 1.0]), 0.401, 0.333, 0.191)}
    for name, (distribution, accuracy, recall, f1) in rows.items():
        confusion = metrics.expected_confusion(counts, distribution)
        assert np.trace(confusion) / counts.sum() == pytest.approx(accuracy, abs=5e-4), name
        assert metrics.recall_per_class(confusion).mean() == pytest.approx(recall, abs=5e-4), name
        assert metrics.f1_per_class(confusion).mean() == pytest.approx(f1, abs=5e-4), name
    # the same majority numbers from actual predictions
    targets = np.repeat([0, 1, 2], counts)
    predictions = np.full(targets.size, 2)
    assert metrics.macro_recall(predictions, targets) == pytest.approx(1 / 3)
    assert metrics.macro_f1(predictions, targets) == pytest.approx(0.191, abs=5e-4)
    with pytest.raises(ValueError, match="sum to 1"):
        metrics.expected_confusion(counts, [0.5, 0.5, 0.5])


def test_table_15_5_row_sums_and_accuracy_from_confusion():
    # the distribution-based lexicon approach of Table 15.5 (messages with signal tokens only)
    confusion = np.array([[195, 80, 37], [71, 104, 145], [24, 118, 479]])
    assert confusion.sum(axis=1).tolist() == [312, 320, 621]
    targets = np.repeat(np.arange(3), confusion.sum(axis=1))
    predictions = np.concatenate([np.repeat(np.arange(3), row) for row in confusion])
    assert np.array_equal(metrics.confusion_counts(predictions, targets), confusion)
    assert metrics.accuracy(predictions, targets) == pytest.approx((195 + 104 + 479) / 1253)
    assert metrics.macro_recall(predictions, targets) == pytest.approx((195 / 312 + 104 / 320 + 479 / 621) / 3)


def test_hamming_nearest_neighbour_labels_take_the_closest_code():
    from domainknowledge import metrics

    database = np.array([[0, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=np.uint8)
    queries = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 0]], dtype=np.uint8)
    labels = np.array([7, 8, 9])
    assert metrics.hamming_nearest_neighbour_labels(queries, database, labels).tolist() == [7, 8, 7]
    assert metrics.hamming_nearest_neighbour_accuracy(queries, [7, 8, 9], database, labels) == pytest.approx(2 / 3)

"""Evaluation metrics of the book, grouped by the thesis section that defines them.

Every metric takes class indices (or values) as numpy arrays, torch tensors or sequences and returns a
Python ``float``. Per-example variants (``*_per_example``) return the quantity that a metric averages, one
value per example: they are what a paired significance test compares.

Sections:

* classification (Kobs 2023, Sec. 2.5.1): :func:`accuracy` (Eq. 2.17);
* regression over ordered class indices (Sec. 2.5.2): :func:`mean_absolute_error` (Eq. 2.24),
  :func:`mean_squared_error` (Eq. 2.25);
* class similarity (Sec. 2.5.1, used in Ch. 14): :func:`superclass_accuracy` (Eq. 2.22),
  :func:`failed_superclass_accuracy` (Eq. 2.23);
* predicted distributions: :func:`perplexity`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["absolute_errors", "accuracy", "correct_per_example", "failed_superclass_accuracy",
           "mean_absolute_error", "mean_squared_error", "perplexity", "squared_errors", "superclass_accuracy",
           "superclass_correct_per_example"]


def _as_array(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one entry per example), got shape {array.shape}")
    return array


def _paired(predictions, targets) -> tuple[np.ndarray, np.ndarray]:
    predicted = _as_array(predictions, "predictions")
    target = _as_array(targets, "targets")
    if predicted.shape != target.shape:
        raise ValueError(f"predictions {predicted.shape} and targets {target.shape} differ in length")
    if predicted.size == 0:
        raise ValueError("metrics need at least one example")
    return predicted, target


# --- classification (Sec. 2.5.1) ------------------------------------------------------------------------


def correct_per_example(predictions, targets) -> np.ndarray:
    """``(N,)`` bool: whether each predicted class equals its target."""
    predicted, target = _paired(predictions, targets)
    return predicted == target


def accuracy(predictions, targets) -> float:
    """Fraction of examples whose predicted class is the target (Eq. 2.17), in ``[0, 1]``."""
    return float(correct_per_example(predictions, targets).mean())


# --- regression over ordered class indices (Sec. 2.5.2) ------------------------------------------------


def absolute_errors(predictions, targets) -> np.ndarray:
    """``(N,)`` float: ``|y_i - y_hat_i|`` per example."""
    predicted, target = _paired(predictions, targets)
    return np.abs(predicted.astype(np.float64) - target.astype(np.float64))


def squared_errors(predictions, targets) -> np.ndarray:
    """``(N,)`` float: ``(y_i - y_hat_i) ** 2`` per example."""
    return absolute_errors(predictions, targets) ** 2


def mean_absolute_error(predictions, targets) -> float:
    """Mean absolute error (Eq. 2.24). For ages as consecutive class indices it is in years."""
    return float(absolute_errors(predictions, targets).mean())


def mean_squared_error(predictions, targets) -> float:
    """Mean squared error (Eq. 2.25)."""
    return float(squared_errors(predictions, targets).mean())


# --- class similarity (Eqs. 2.22 and 2.23) --------------------------------------------------------------


def _superclasses(predictions, targets, superclass_of) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    predicted, target = _paired(predictions, targets)
    mapping = _as_array(superclass_of, "superclass_of")
    for name, indices in (("predictions", predicted), ("targets", target)):
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"{name} must be integer class indices, got {indices.dtype}")
        if indices.min() < 0 or indices.max() >= mapping.size:
            raise ValueError(f"{name} hold class indices outside [0, {mapping.size}) that superclass_of covers")
    return predicted, target, mapping[predicted], mapping[target]


def superclass_correct_per_example(predictions, targets, superclass_of) -> np.ndarray:
    """``(N,)`` bool: whether the predicted class lies in the target's superclass.

    ``superclass_of`` is a ``(C,)`` integer array: ``superclass_of[c]`` is the superclass of class ``c``.
    """
    _, _, predicted_super, target_super = _superclasses(predictions, targets, superclass_of)
    return predicted_super == target_super


def superclass_accuracy(predictions, targets, superclass_of) -> float:
    """Superclass Accuracy, SA (Eq. 2.22): the fraction of examples put into the correct superclass.

    ``SA >= accuracy`` always, since a correct class implies a correct superclass.
    """
    return float(superclass_correct_per_example(predictions, targets, superclass_of).mean())


def failed_superclass_accuracy(predictions, targets, superclass_of) -> float:
    """Failed Superclass Accuracy, FSA (Eq. 2.23): SA over the misclassified examples only.

    ``(sum_s TP_s - sum_c TP_c) / (|T| - sum_c TP_c)``. Returns ``nan`` when every example is classified
    correctly (the ratio is 0/0), so a perfect classifier does not look like a failing one.
    """
    predicted, target, predicted_super, target_super = _superclasses(predictions, targets, superclass_of)
    wrong = predicted != target
    if not wrong.any():
        return math.nan
    return float((predicted_super[wrong] == target_super[wrong]).mean())


# --- predicted distributions ----------------------------------------------------------------------------


def perplexity(distribution) -> float:
    """``exp(entropy)`` of a probability vector ``(C,)``: the effective number of classes it spreads over.

    1 for a one-hot vector, ``C`` for the uniform one. The vector is renormalised; zeros contribute nothing.
    """
    p = _as_array(distribution, "distribution").astype(np.float64)
    if np.any(p < 0) or p.sum() <= 0:
        raise ValueError("distribution must be non-negative with a positive sum")
    p = p / p.sum()
    nonzero = p[p > 0]
    return float(np.exp(-(nonzero * np.log(nonzero)).sum()))

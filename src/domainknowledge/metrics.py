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
* per-class classification (Sec. 2.5.1, used in Ch. 15): :func:`confusion_counts`, :func:`recall_per_class`
  (Eq. 2.18), :func:`macro_recall` (Eq. 2.19), :func:`f1_per_class` (Eq. 2.20), :func:`macro_f1` (Eq. 2.21),
  and :func:`expected_confusion` for the expected scores of random baselines (Table 15.2);
* predicted distributions: :func:`perplexity`;
* binary hash codes (Darlow 2022, Sec. 3.2.2-3.2.3): :func:`retrieval_ranking` (lexicographic or Hamming),
  :func:`mean_average_precision_at_k` (Eq. 3.19), :func:`hamming_nearest_neighbour_accuracy` and
  :func:`hash_code_quality` (Table 3.5);
* clustering (Darlow 2022, Sec. 4.4): :func:`hungarian_mapping`, :func:`hungarian_accuracy`,
  :func:`normalized_mutual_information`, :func:`adjusted_rand_index`;
* aesthetic scores (Kobs 2023, Sec. 16.2.6): :func:`aesthetic_score_metrics`;
* embeddings (Kobs 2023, Sec. 2.5.3 and 7.1.2): :func:`neighbour_order`, :func:`r_precision` (Eq. 7.2),
  :func:`map_at_r`, :func:`normalized_r_precision` (Eq. 7.3, with the square-root standard deviation of the
  errata) and :func:`property_nr_precision` (one value per property of a table).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["absolute_errors", "accuracy", "adjusted_rand_index", "aesthetic_score_metrics", "hungarian_accuracy", "hungarian_mapping",
           "normalized_mutual_information", "confusion_counts", "correct_per_example", "expected_confusion",
           "f1_per_class", "failed_superclass_accuracy", "hamming_nearest_neighbour_accuracy", "hamming_nearest_neighbour_labels", "hash_code_quality",
           "macro_f1", "map_at_r", "mean_average_precision_at_k", "neighbour_order", "normalized_r_precision",
           "property_nr_precision", "r_precision", "retrieval_ranking", "macro_recall", "score_correlation", "mean_absolute_error",
           "mean_squared_error", "perplexity", "recall_per_class", "squared_errors", "superclass_accuracy",
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


# --- per-class classification: confusion counts, Macro Recall and Macro F1 (Sec. 2.5.1) ---------------


def confusion_counts(predictions, targets, num_classes: int | None = None) -> np.ndarray:
    """``(C, C)`` int64 counts: entry ``[t, p]`` is the number of examples of true class ``t`` predicted as
    ``p`` (rows true, columns predicted, as in Table 15.5).

    ``C`` is ``num_classes``, or one more than the largest class index seen. Row sums are the true class
    counts, column sums the predicted ones (Table 15.4); ``TP_c`` is the diagonal, ``FN_c`` the rest of row
    ``c``, ``FP_c`` the rest of column ``c`` (Sec. 2.5.1).
    """
    predicted, target = _paired(predictions, targets)
    for name, indices in (("predictions", predicted), ("targets", target)):
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"{name} must be integer class indices, got {indices.dtype}")
        if indices.min() < 0:
            raise ValueError(f"{name} hold negative class indices")
    size = int(max(predicted.max(), target.max())) + 1
    if num_classes is not None:
        if size > num_classes:
            raise ValueError(f"class index {size - 1} is outside [0, {num_classes}) (num_classes={num_classes})")
        size = num_classes
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (target, predicted), 1)
    return counts


def _confusion(confusion) -> np.ndarray:
    matrix = np.asarray(confusion.detach().cpu().numpy() if hasattr(confusion, "detach") else confusion,
                        dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or np.any(matrix < 0):
        raise ValueError(f"a confusion matrix must be a square (C, C) array of non-negative counts, got shape "
                         f"{matrix.shape}")
    if matrix.sum() <= 0:
        raise ValueError("the confusion matrix is empty")
    return matrix


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with 0/0 := 0 (scikit-learn's ``zero_division`` value)."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def recall_per_class(confusion) -> np.ndarray:
    """``(C,)`` ``Recall_c = TP_c / (TP_c + FN_c)`` (Eq. 2.18) from a ``(C, C)`` confusion matrix (counts or
    expected counts); 0 for a class with no true example."""
    matrix = _confusion(confusion)
    return _ratio(np.diag(matrix), matrix.sum(axis=1))


def f1_per_class(confusion) -> np.ndarray:
    """``(C,)`` ``F1_c = TP_c / (TP_c + (FP_c + FN_c) / 2)`` (Eq. 2.20) from a ``(C, C)`` confusion matrix;
    0 for a class that is neither true nor predicted anywhere (0/0)."""
    matrix = _confusion(confusion)
    true_positives = np.diag(matrix)
    false_positives = matrix.sum(axis=0) - true_positives
    false_negatives = matrix.sum(axis=1) - true_positives
    return _ratio(true_positives, true_positives + 0.5 * (false_positives + false_negatives))


def _classes_confusion(predictions, targets, num_classes):
    confusion = confusion_counts(predictions, targets, num_classes)
    if num_classes is None:                       # average over the classes that occur, as scikit-learn does
        present = np.union1d(_as_array(predictions, "predictions"), _as_array(targets, "targets"))
        confusion = confusion[np.ix_(present, present)]
    return confusion


def macro_recall(predictions, targets, num_classes: int | None = None) -> float:
    """Macro Recall (Eq. 2.19): the unweighted mean of :func:`recall_per_class`.

    Averages over ``range(num_classes)`` when given, else over the classes that occur in ``targets`` or
    ``predictions`` (scikit-learn's ``recall_score(average="macro")``). Always predicting one class gives
    ``1 / C``.
    """
    return float(recall_per_class(_classes_confusion(predictions, targets, num_classes)).mean())


def macro_f1(predictions, targets, num_classes: int | None = None) -> float:
    """Macro F1 (Eq. 2.21): the unweighted mean of :func:`f1_per_class`, over the classes as in
    :func:`macro_recall` (scikit-learn's ``f1_score(average="macro")``)."""
    return float(f1_per_class(_classes_confusion(predictions, targets, num_classes)).mean())


def expected_confusion(target_counts, predicted_distribution) -> np.ndarray:
    """The expected ``(C, C)`` confusion matrix of a classifier that ignores its input and predicts class
    ``p`` with probability ``predicted_distribution[p]``: ``outer(target_counts, predicted_distribution)``.

    Feeding it to :func:`recall_per_class` and :func:`f1_per_class` gives the expected scores the thesis
    reports for its random baselines (Table 15.2): uniform guessing, sampling from the target
    distribution, and (a one-hot distribution) always predicting the majority class.
    """
    counts = _as_array(target_counts, "target_counts").astype(np.float64)
    distribution = _as_array(predicted_distribution, "predicted_distribution").astype(np.float64)
    if counts.shape != distribution.shape:
        raise ValueError(f"target_counts {counts.shape} and predicted_distribution {distribution.shape} differ")
    if np.any(distribution < 0) or not np.isclose(distribution.sum(), 1.0):
        raise ValueError("predicted_distribution must be non-negative and sum to 1")
    return np.outer(counts, distribution)


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


# --- binary hash codes: retrieval and code quality (Darlow 2022, Sec. 3.2.2-3.2.3) ---------------------


def _codes(codes, name: str) -> np.ndarray:
    array = np.asarray(codes.cpu() if hasattr(codes, "cpu") else codes)
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(f"{name} must be (N, bits), got shape {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return array.astype(np.uint8)


def _as_integers(codes: np.ndarray) -> np.ndarray:
    """Each ``(bits,)`` row read as a binary number, first bit most significant (at most 62 bits)."""
    if codes.shape[1] > 62:
        raise ValueError(f"codes of {codes.shape[1]} bits are too long to rank (at most 62)")
    return codes.astype(np.int64) @ (2 ** np.arange(codes.shape[1] - 1, -1, -1, dtype=np.int64))


def retrieval_ranking(query_codes, database_codes, order: str = "lexicographic") -> np.ndarray:
    """``(Q, N)`` database indices, best match first, for each query code.

    ``"lexicographic"`` (Sec. 3.1.1): compare bits left to right; a database code that agrees with the query
    on a longer prefix ranks higher, i.e. the XOR of the two codes read as a binary number (first bit most
    significant) is sorted ascending. ``"hamming"``: the number of differing bits, ascending. Ties keep the
    database order (stable sort).
    """
    queries, database = _codes(query_codes, "query_codes"), _codes(database_codes, "database_codes")
    if queries.shape[1] != database.shape[1]:
        raise ValueError(f"query codes have {queries.shape[1]} bits, database codes {database.shape[1]}")
    if order not in ("lexicographic", "hamming"):
        raise ValueError(f"order must be 'lexicographic' or 'hamming', got {order!r}")
    key = np.bitwise_xor(_as_integers(queries)[:, None], _as_integers(database)[None, :])      # (Q, N)
    if order == "hamming":
        key = np.bitwise_count(key)
    return np.argsort(key, axis=1, kind="stable")


def mean_average_precision_at_k(query_codes, query_labels, database_codes, database_labels, k: int, *,
                                order: str = "lexicographic", chunk: int = 256) -> float:
    """mAP@K of Eq. 3.19 (Darlow 2022): the mean over queries of ``sum_k P_k delta(k) / sum_k delta(k)`` over
    the top ``k`` retrievals (:func:`retrieval_ranking`), where ``delta(k) = 1`` if the ``k``-th retrieval has
    the query's class and ``P_k`` is the precision of the top ``k``. A query with no true neighbour in its top
    ``k`` scores 0. Queries are ranked ``chunk`` at a time to bound memory."""
    query_labels, database_labels = np.asarray(query_labels), np.asarray(database_labels)
    if len(query_labels) != len(query_codes) or len(database_labels) != len(database_codes):
        raise ValueError("every code needs a label")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, len(database_labels))
    precisions = []
    for start in range(0, len(query_labels), chunk):
        ranking = retrieval_ranking(query_codes[start:start + chunk], database_codes, order)[:, :k]
        relevant = database_labels[ranking] == query_labels[start:start + chunk, None]        # (q, k)
        precision_at = np.cumsum(relevant, axis=1) / np.arange(1, k + 1)
        hits = relevant.sum(axis=1)
        precisions.append(np.where(hits > 0, (precision_at * relevant).sum(axis=1) / np.maximum(hits, 1), 0.0))
    return float(np.concatenate(precisions).mean())


def hamming_nearest_neighbour_labels(query_codes, database_codes, database_labels) -> np.ndarray:
    """``(Q,)``: each query's label by 1-NN in Hamming distance, the label of the database code with the fewest
    differing bits (the first such code in database order on ties); queries go 256 at a time, so memory is
    ``256 x N`` whatever the number of queries."""
    queries, database = _codes(query_codes, "query_codes"), _as_integers(_codes(database_codes, "database_codes"))
    nearest = np.concatenate([
        np.argmin(np.bitwise_count(np.bitwise_xor(_as_integers(queries[start:start + 256])[:, None], database[None, :])),
                  axis=1) for start in range(0, len(queries), 256)])
    return np.asarray(database_labels)[nearest]


def hamming_nearest_neighbour_accuracy(query_codes, query_labels, database_codes, database_labels) -> float:
    """1-NN accuracy in Hamming distance (Table 3.4), of :func:`hamming_nearest_neighbour_labels`."""
    predicted = hamming_nearest_neighbour_labels(query_codes, database_codes, database_labels)
    return float((predicted == np.asarray(query_labels)).mean())


def hash_code_quality(codes) -> dict[str, float]:
    """How evenly ``(N, bits)`` codes use the hash space (Table 3.5, on the training set):

    * ``entropy_bits``: entropy of the histogram of images over codes, in bits (at most ``log2 N`` and at
      most ``bits``);
    * ``unique_percent``: ``100 * (number of distinct codes) / N``;
    * ``mean_bucket_size``: the mean, over images, of the number of images sharing its code (itself
      included), ``sum_b n_b^2 / N``. The thesis' "average collision count" is undefined; its values (4942 for
      a method with about ten class buckets of 5,000 CIFAR-10 images) fit this reading.
    """
    array = _codes(codes, "codes")
    _, counts = np.unique(array, axis=0, return_counts=True)
    shares = counts / counts.sum()
    return {"entropy_bits": float(-(shares * np.log2(shares)).sum()),
            "unique_percent": 100.0 * len(counts) / len(array),
            "mean_bucket_size": float((counts.astype(np.float64) ** 2).sum() / len(array))}


# --- clustering (Darlow 2022, Sec. 4.4) --------------------------------------------------------------


def hungarian_mapping(clusters, labels, num_clusters: int | None = None, num_classes: int | None = None) -> np.ndarray:
    """The one-to-one assignment of clusters to classes that maximises the number of agreements (Kuhn's
    Hungarian method via ``scipy.optimize.linear_sum_assignment``): ``(num_clusters,)`` class per cluster,
    -1 for a cluster left without a class (more clusters than classes)."""
    from scipy.optimize import linear_sum_assignment

    clusters, labels = _paired(clusters, labels)
    num_clusters = int(clusters.max()) + 1 if num_clusters is None else num_clusters
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    counts = np.zeros((num_clusters, num_classes), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    mapping = np.full(num_clusters, -1, dtype=np.int64)
    mapping[rows] = columns
    return mapping


def hungarian_accuracy(clusters, labels, mapping: np.ndarray | None = None) -> float:
    """Clustering accuracy: the share of examples whose cluster maps to their class under ``mapping`` (by
    default the Hungarian mapping of these same examples; the thesis fits it on the training set and applies
    it to the test set)."""
    clusters, labels = _paired(clusters, labels)
    mapping = hungarian_mapping(clusters, labels) if mapping is None else np.asarray(mapping)
    if clusters.max() >= len(mapping):
        raise ValueError(f"cluster {clusters.max()} has no entry in a mapping of {len(mapping)} clusters")
    return float((mapping[clusters] == labels).mean())


def normalized_mutual_information(first, second) -> float:
    """NMI of two labelings (arithmetic normalisation, scikit-learn's default): 1 for identical partitions."""
    from sklearn.metrics import normalized_mutual_info_score

    first, second = _paired(first, second)
    return float(normalized_mutual_info_score(second, first))


def adjusted_rand_index(first, second) -> float:
    """The adjusted Rand index of two labelings: 1 for identical partitions, about 0 for independent ones."""
    from sklearn.metrics import adjusted_rand_score

    first, second = _paired(first, second)
    return float(adjusted_rand_score(second, first))


# --- aesthetic scores (Kobs 2023, Sec. 16.2.6) ---------------------------------------------------------


def score_correlation(predicted, true, method: str = "pearson") -> float:
    """Pearson or Spearman correlation of predicted and true scores ``(N,)``; 0 for a constant prediction
    (undefined in SciPy). Cheap enough to call thousands of times in a randomization test."""
    predicted, true = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if np.ptp(predicted) == 0:          # exact: a float mean repeated N times has std ~1e-16
        return 0.0
    if method == "spearman":
        from scipy import stats

        predicted, true = stats.rankdata(predicted), stats.rankdata(true)
    elif method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    return float(np.corrcoef(predicted, true)[0, 1])


def aesthetic_score_metrics(predicted_mean, true_mean, threshold: float = 5.0) -> dict[str, float]:
    """Pearson and Spearman correlation, accuracy of the scores binarised at ``threshold`` (above: aesthetic)
    and MAE between predicted and true mean scores ``(N,)``, as Kobs (2023, Sec. 16.2.6) reports them for
    AVA. A constant prediction has no correlation (0 here, undefined in SciPy)."""
    predicted, true = np.asarray(predicted_mean, dtype=np.float64), np.asarray(true_mean, dtype=np.float64)
    if predicted.shape != true.shape or predicted.ndim != 1 or predicted.size < 3:
        raise ValueError(f"need two equal-length vectors of at least 3 scores, got {predicted.shape} and {true.shape}")
    return {"pearson": score_correlation(predicted, true, "pearson"),
            "spearman": score_correlation(predicted, true, "spearman"),
            "accuracy": float(np.mean((predicted > threshold) == (true > threshold))),
            "mae": float(np.mean(np.abs(predicted - true)))}


# --- embeddings: R-Precision, MAP@R, Normalized R-Precision (Kobs 2023, Sec. 2.5.3, 7.1.2) ---------------


def _neighbour_order_on_device(embeddings: np.ndarray, distance: str, queries: np.ndarray, device) -> np.ndarray:
    """:func:`neighbour_order` computed with torch on ``device`` (float64, the formulas of
    :func:`domainknowledge.metric_learning.pairwise_distance`, a stable sort)."""
    import torch

    x = torch.as_tensor(embeddings, dtype=torch.float64, device=device)
    rows = torch.as_tensor(queries, dtype=torch.int64, device=device)
    q = x[rows]
    if distance == "dot":
        distances = -(q @ x.T)
    elif distance == "cosine":
        unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        distances = 1.0 - unit[rows] @ unit.T
    else:
        norms = (x * x).sum(dim=1)
        distances = (norms[rows, None] + norms[None, :] - 2 * q @ x.T).clamp_min(0.0)
        distances[torch.arange(len(rows), device=device), rows] = 0.0
        if distance == "snr":
            dim, means = x.shape[1], x.mean(dim=1)
            noise = (distances / dim - (means[None, :] - means[rows, None]) ** 2).clamp_min(0.0)
            distances = noise / (norms[rows] / dim - means[rows] ** 2).clamp_min(1e-12)[:, None]
        elif distance == "euclidean":
            distances = distances.sqrt()
    distances[torch.arange(len(rows), device=device), rows] = float("inf")
    order = torch.sort(distances, dim=1, stable=True).indices[:, :-1]
    return np.ascontiguousarray(order.cpu().numpy())


def neighbour_order(embeddings, distance: str = "euclidean", queries=None, *, device="cpu") -> np.ndarray:
    """For each query embedding, the indices of the other ``n - 1`` embeddings from nearest to farthest under
    ``distance`` (see :func:`domainknowledge.metric_learning.pairwise_distance`): ``(q, n - 1)`` for the query
    indices ``queries`` (default: all ``n``), from embeddings ``(n, D)``.

    Ties are broken by index (a stable sort), so the result is deterministic. Compute it once per embedding
    and pass it to the metrics below for every property. On a CUDA ``device`` the distances and the sort run
    there (torch, float64).
    """
    from domainknowledge.metric_learning import DISTANCES, pairwise_distance

    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise ValueError(f"embeddings must have shape (n, D) with n >= 2, got {embeddings.shape}")
    queries = np.arange(len(embeddings)) if queries is None else np.asarray(queries)
    if str(device).startswith("cuda"):
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; choose one of {DISTANCES}")
        return _neighbour_order_on_device(embeddings, distance, queries, device)
    distances = pairwise_distance(embeddings, distance, rows=queries)
    distances[np.arange(len(queries)), queries] = np.inf          # the query itself goes last ...
    order = np.argsort(distances, axis=1, kind="stable")
    return np.ascontiguousarray(order[:, :-1])                     # ... and is dropped


def _label_codes(values) -> np.ndarray:
    return np.unique(_as_array(values, "values"), return_inverse=True)[1]


def _query_statistics(labels: np.ndarray, order: np.ndarray, queries: np.ndarray):
    """``same (q, n-1)``: whether each neighbour shares the query's value; ``r (q,)``: how many others do."""
    if order.shape != (len(queries), labels.size - 1):
        raise ValueError(f"order must have shape ({len(queries)}, {labels.size - 1}) for {labels.size} values, "
                         f"got {order.shape}; compute it with neighbour_order(embeddings)")
    counts = np.bincount(labels)[labels[queries]] - 1
    width = max(int(counts.max()), 1)                              # only the first max(R_q) neighbours count
    same = labels[order[:, :width]] == labels[queries, None]
    return same, counts


def _hits_at_r(same: np.ndarray, counts: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(same, axis=1, dtype=np.int32)
    hits = np.zeros(len(counts), dtype=np.int64)
    has = counts > 0
    hits[has] = cumulative[np.flatnonzero(has), counts[has] - 1]
    return hits


def _per_query(metric: str, labels: np.ndarray, order: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Per-query values (NaN where undefined) of ``r_precision``, ``map_at_r`` or ``nr_precision``."""
    same, counts = _query_statistics(labels, order, queries)
    valid = counts > 0
    out = np.full(len(counts), np.nan)
    if metric == "map_at_r":
        if valid.any():
            width = int(counts.max())
            hits = same[valid, :width]
            precision = np.cumsum(hits, axis=1) / np.arange(1, width + 1)
            within = np.arange(width)[None, :] < counts[valid, None]
            out[valid] = (precision * hits * within).sum(axis=1) / counts[valid]
        return out
    hits = _hits_at_r(same, counts)
    if metric == "r_precision":
        out[valid] = hits[valid] / counts[valid]
        return out
    if metric != "nr_precision":
        raise ValueError(f"unknown metric {metric!r}; choose r_precision, map_at_r or nr_precision")
    p = counts / (labels.size - 1)
    sigma = np.sqrt(counts * p * (1 - p))
    valid = sigma > 0
    out[valid] = (hits[valid] - counts[valid] * p[valid]) / sigma[valid]
    return out


def _reduce(values: np.ndarray, per_query: bool, name: str):
    if per_query:
        return values
    if np.isnan(values).all():
        raise ValueError(f"{name} is undefined: every value is unique (or, for NR-Prec, shared by all items)")
    return float(np.nanmean(values))


def r_precision(values, order: np.ndarray, per_query: bool = False):
    """R-Precision of property ``values`` ``(n,)`` under the neighbour ``order`` ``(n, n - 1)`` (Eq. 7.2).

    For query ``q`` with ``R_q`` other items of its value, the fraction of its ``R_q`` nearest neighbours that
    share the value; queries without another item of their value are skipped. Returns the mean (or the
    per-query fractions ``(n,)``, NaN where skipped).
    """
    labels = _label_codes(values)
    return _reduce(_per_query("r_precision", labels, order, np.arange(labels.size)), per_query, "R-Precision")


def map_at_r(values, order: np.ndarray, per_query: bool = False):
    """MAP@R (Musgrave et al. 2020) of property ``values`` ``(n,)`` under the neighbour ``order`` ``(n, n - 1)``.

    ``AP@R_q = (1 / R_q) sum_{i <= R_q} P(i) [neighbour i shares q's value]`` with ``P(i)`` the precision
    of the first ``i`` neighbours; the mean over queries with ``R_q > 0``.
    """
    labels = _label_codes(values)
    return _reduce(_per_query("map_at_r", labels, order, np.arange(labels.size)), per_query, "MAP@R")


def normalized_r_precision(values, order: np.ndarray, per_query: bool = False):
    """Normalized R-Precision of property ``values`` ``(n,)`` under the neighbour ``order`` (Eq. 7.3).

    Under random embeddings the number of hits among query ``q``'s ``R_q`` nearest neighbours is binomial
    with ``p_q = R_q / (n - 1)`` (the share of the other items with q's value), mean ``mu_q = R_q p_q`` and
    standard deviation ``sigma_q = sqrt(R_q p_q (1 - p_q))``. The thesis prints ``sigma = R p (1 - p)``, the
    variance; like its code we use the square root, so each term is a z-score (erratum, Sec. 7.1.2).
    NR-Prec is the mean over queries of ``(hits_q - mu_q) / sigma_q``: 0 for random embeddings, larger the
    better the property clusters. Queries whose value is unique or shared by all (``sigma_q = 0``) are
    skipped. Returns the mean, or per-query z-scores ``(n,)`` (NaN where skipped).
    """
    labels = _label_codes(values)
    return _reduce(_per_query("nr_precision", labels, order, np.arange(labels.size)), per_query, "NR-Prec")


def _faiss_vectors(embeddings: np.ndarray, distance: str) -> tuple[np.ndarray, bool]:
    """float32 vectors whose L2 (or, with the flag, inner-product) neighbours are ``distance``'s neighbours:
    cosine ranks as L2 on unit vectors, ``dot`` as the largest inner product, ``snr`` (``var(b - a) / var(a)``
    for the query ``a``) as L2 on mean-centred vectors, since ``var(b - a) = ||(b - mean b) - (a - mean a)||^2 / D``
    and ``var(a)`` is fixed per query."""
    x = np.asarray(embeddings, dtype=np.float64)
    if distance == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    elif distance == "snr":
        x = x - x.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32), distance == "dot"


def _faiss_index(vectors: np.ndarray, inner_product: bool, device):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1]) if inner_product else faiss.IndexFlatL2(vectors.shape[1])
    if str(device).startswith("cuda") and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        gpu = int(str(device).split(":")[1]) if ":" in str(device) else 0
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)
    index.add(vectors)
    return index


def knn_candidates(embeddings, k: int, distance: str = "euclidean", *, device="cpu", queries=None) -> np.ndarray:
    """The ``k`` nearest embeddings (itself usually first) of every embedding ``(N, D)`` (or of the rows
    ``queries``) under ``distance``, ``(Q, k)`` int64 indices, from a faiss flat index (exact search in
    float32): on the GPU when ``device`` is CUDA and faiss was built with GPU support, else on the CPU.
    Memory ``O(N k)``."""
    vectors, inner_product = _faiss_vectors(embeddings, distance)
    index = _faiss_index(vectors, inner_product, device)
    chosen = vectors if queries is None else vectors[np.asarray(queries)]
    _, neighbours = index.search(np.ascontiguousarray(chosen), int(min(k, len(vectors))))
    return neighbours.astype(np.int64)


def _candidate_distances(x: np.ndarray, queries: np.ndarray, candidates: np.ndarray, distance: str) -> np.ndarray:
    """float64 ``distance`` from each query row of ``x`` to its ``candidates`` ``(q, c)``, by the formulas of
    :func:`domainknowledge.metric_learning.pairwise_distance` (so ties fall as they do there)."""
    q, c = x[queries], x[candidates]                                          # (q, D), (q, c, D)
    if distance == "dot":
        return -np.einsum("qd,qcd->qc", q, c)
    if distance == "cosine":
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return 1.0 - np.einsum("qd,qcd->qc", unit[queries], unit[candidates])
    norms = (x * x).sum(axis=1)
    squared = np.maximum(norms[queries, None] + norms[candidates] - 2 * np.einsum("qd,qcd->qc", q, c), 0.0)
    squared[candidates == queries[:, None]] = 0.0
    if distance == "snr":
        dim, means = x.shape[1], x.mean(axis=1)
        noise = np.maximum(squared / dim - (means[candidates] - means[queries, None]) ** 2, 0.0)
        return noise / np.maximum(norms[queries] / dim - means[queries] ** 2, 1e-12)[:, None]
    return squared if distance == "squared_euclidean" else np.sqrt(squared)


def knn_neighbour_order(embeddings, k: int, distance: str = "euclidean", *, device="cpu",
                        chunk_size: int = 4096, margin: int = 4) -> np.ndarray:
    """The first ``k`` columns of :func:`neighbour_order` without an ``N x N`` matrix: each embedding's ``k``
    nearest others ``(N, k)``. A faiss search (:func:`knn_candidates`) finds ``k + 1 + margin`` candidates,
    whose distances are recomputed in float64 by the exact formulas and sorted with ties broken by index, as
    :func:`neighbour_order` does. Where the nearest excluded candidate ties with the ``k``-th neighbour, the
    tie may continue beyond the candidates, so those queries are searched again with twice as many; the
    result is then the exact order's."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings must have shape (n, D) with n >= 2, got {x.shape}")
    if not 1 <= k <= len(x) - 1:
        raise ValueError(f"k must lie in 1 .. {len(x) - 1}, got {k}")
    order = np.empty((len(x), k), dtype=np.int64)
    pending, width = np.arange(len(x)), k + 1 + margin
    while len(pending):
        width = min(width, len(x))
        unresolved = []
        for start in range(0, len(pending), chunk_size):
            queries = pending[start:start + chunk_size]
            candidates = np.sort(knn_candidates(x, width, distance, device=device, queries=queries), axis=1)
            distances = _candidate_distances(x, queries, candidates, distance)
            distances[candidates == queries[:, None]] = np.inf                 # the query itself goes last
            ranked = np.argsort(distances, axis=1, kind="stable")
            order[queries] = np.take_along_axis(candidates, ranked[:, :k], axis=1)
            if width < len(x):
                sorted_distances = np.take_along_axis(distances, ranked, axis=1)
                tied = sorted_distances[:, k] <= sorted_distances[:, k - 1]      # the tie may go on beyond
                unresolved.append(queries[tied])
        pending = np.concatenate(unresolved) if unresolved else np.empty(0, np.int64)
        width *= 2
    return order


def knn_retrieval_scores(embeddings, labels, distance: str = "euclidean", *, device="cpu") -> dict[str, float]:
    """MAP@R, R-Precision and Precision@1 of the class ``labels`` ``(N,)`` for ``embeddings`` ``(N, D)``,
    every item a query against all others, as pytorch-metric-learning's ``AccuracyCalculator`` computes them:
    from the ``k`` nearest neighbours with ``k`` the largest class size minus one
    (:func:`knn_neighbour_order`; memory ``O(N k)``, never ``N x N``). Equal to :func:`map_at_r` and
    :func:`r_precision` on :func:`neighbour_order` (queries whose class has no other member are skipped)."""
    codes = _label_codes(labels)
    if len(codes) != len(np.asarray(embeddings)):
        raise ValueError(f"{len(codes)} labels for {len(np.asarray(embeddings))} embeddings")
    counts = np.bincount(codes)[codes] - 1
    if counts.max() < 1:
        raise ValueError("MAP@R is undefined: every class has a single item")
    order = knn_neighbour_order(embeddings, int(counts.max()), distance, device=device)
    same = codes[order] == codes[:, None]
    valid = counts > 0
    width = order.shape[1]
    hits = same[valid]
    precision = np.cumsum(hits, axis=1) / np.arange(1, width + 1)
    within = np.arange(width)[None, :] < counts[valid, None]
    average_precision = (precision * hits * within).sum(axis=1) / counts[valid]
    r_hits = (hits * within).sum(axis=1)
    return {"map_at_r": float(average_precision.mean()), "r_precision": float((r_hits / counts[valid]).mean()),
            "precision_at_1": float(hits[:, 0].mean())}


def property_nr_precision(properties, embeddings, *, distance: str = "euclidean", metric: str = "nr_precision",
                          chunk_size: int = 1024, device="cpu") -> dict[str, float]:
    """NR-Prec (or ``metric`` = ``r_precision``/``map_at_r``) of every column of the table ``properties``
    (a ``pandas.DataFrame`` with one row per embedding) for ``embeddings`` ``(n, D)``.

    Queries are processed ``chunk_size`` at a time (memory ``chunk_size x n``), so ``n`` can be the thesis'
    100,000; their neighbour order is computed on ``device`` (:func:`neighbour_order`). Each column's values
    are compared as strings (a value is a category).
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if len(properties) != len(embeddings):
        raise ValueError(f"properties has {len(properties)} rows for {len(embeddings)} embeddings")
    codes = {str(column): _label_codes(properties[column].astype(str).to_numpy()) for column in properties.columns}
    sums = {name: [] for name in codes}
    for start in range(0, len(embeddings), chunk_size):
        queries = np.arange(start, min(start + chunk_size, len(embeddings)))
        order = neighbour_order(embeddings, distance, queries=queries, device=device)
        for name, labels in codes.items():
            sums[name].append(_per_query(metric, labels, order, queries))
    return {name: _reduce(np.concatenate(parts), False, metric) for name, parts in sums.items()}


# --- rankings of classes (Kobs 2023, Sec. 2.5.1, used in Ch. 8) ----------------------------------------

__all__ += ["knn_candidates", "knn_neighbour_order", "knn_retrieval_scores"]
__all__ += ["accuracy_at_k", "expected_random_ranking", "mean_reciprocal_rank", "target_ranks"]


def target_ranks(scores, targets) -> np.ndarray:
    """The 1-based rank of each target class when the classes are sorted by decreasing score: ``scores``
    ``(N, C)`` (logits, probabilities or any per-class score), ``targets`` ``(N,)`` class indices; returns
    ``(N,)`` int64. Ties are broken by class index (the lower index ranks first), as a stable sort does, so
    a fixed ordering such as the majority baseline's counts gives one definite ranking."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = _as_array(targets, "targets").astype(np.int64)
    if scores.ndim != 2 or scores.shape[0] != targets.shape[0]:
        raise ValueError(f"scores must be (N, C) with N = len(targets) = {targets.shape[0]}, got {scores.shape}")
    if targets.size and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise ValueError(f"targets must be class indices in [0, {scores.shape[1]}), got {targets.min()}..{targets.max()}")
    order = np.argsort(-scores, axis=1, kind="stable")
    return (np.argmax(order == targets[:, None], axis=1) + 1).astype(np.int64)


def accuracy_at_k(scores, targets, k: int) -> float:
    """Accuracy@k (Sec. 2.5.1): the fraction of examples whose target is among the ``k`` highest-scored
    classes (:func:`target_ranks` <= k). Accuracy@1 is Accuracy (Eq. 2.17)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return float(np.mean(target_ranks(scores, targets) <= k))


def mean_reciprocal_rank(scores, targets) -> float:
    """Mean Reciprocal Rank (Sec. 2.5.1): ``mean_i 1 / rank_i`` over :func:`target_ranks`."""
    return float(np.mean(1.0 / target_ranks(scores, targets)))


def expected_random_ranking(num_classes: int, k: int = 5) -> dict[str, float]:
    """Expected Accuracy, Accuracy@k and MRR of a uniformly random ordering of ``num_classes`` classes: the
    target's rank is uniform on 1..C, so Accuracy = 1/C, Accuracy@k = min(k, C)/C and MRR = H_C / C with the
    harmonic number H_C (Table 8.1's random baseline: 0.013, 0.064, 0.063 for C = 78)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    harmonic = float(np.sum(1.0 / np.arange(1, num_classes + 1)))
    return {"accuracy": 1.0 / num_classes, f"accuracy_at_{k}": min(k, num_classes) / num_classes,
            "mrr": harmonic / num_classes}

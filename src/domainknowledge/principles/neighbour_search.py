"""Multi-label classification on frozen language-image embeddings (Bynke 2022, Sec. 3.1.2 and 3.2).

Every function works on unit-length embeddings, so a dot product is a cosine similarity (Eq. 2.1). Shapes:
queries ``(Q, D)``, references ``(N, D)``, 0/1 reference labels ``(N, C)``, scores ``(Q, C)`` in [0, 1]. A
class is suggested when its score reaches one global threshold (:func:`best_f2_threshold`, chosen on
validation data for micro F2).

**Zero-shot** (Sec. 3.2.1): a class text vector is the weighted mean of the caption embeddings of its name in
``K`` contexts, ``t_c = sum_k w_k t_{c,k} / sum_k w_k`` (:func:`weighted_prompt_classifier`), and the score is
the cosine rescaled to [0, 1], ``(cos(f, t_c) + 1) / 2`` (:func:`rescaled_cosine_scores`): no softmax, so
classes do not compete.

**Neighbour search** (Sec. 3.2.2, Fig. 3.7): ``s_n = T cos(f_q, f_n)``; keep the references with
``s_n >= max_m s_m - delta`` and at most ``M`` of them, most similar first; ``w = softmax(s_kept)``;
``score_c = sum_n w_n L_{n,c}``, accumulated in descending weight and stopped once the cumulative weight
reaches 0.99 (:func:`neighbour_search`). ``M = 1`` is the 1-NN baseline (Conde & Turgutlu 2021).

**Neighbour nets** (Sec. 3.2.3, Fig. 3.8): the simple net ``y = L^T softmax(e^tau F f_q)`` over keys ``F``
(``P, D``) and values ``L`` (``P, C``) (:class:`SimpleNeighbourNet`); the class-wise net
``score_c = (sum_n a_{n,c} c_n + 1) / 2`` with ``a_{.,c} = softmax_n(T c_n)`` masked to the keys of class c
(:class:`ClassWiseNeighbourNet`). Keys are the references or ``k`` prototypes per class
(:func:`class_prototypes`: random groups or mini-batch k-means, average or one-hot labels); fine-tuning
(:func:`fine_tune`) trains the keys (and the simple net's log temperature) with MSE, SGD with momentum and
cosine annealing.

**Tip-Adapter** (Zhang et al. 2021; the extension of Sec. 6.3): zero-shot scores plus ``alpha`` times the
affinity-weighted label average, affinity ``exp(-beta (1 - cos))`` (:func:`tip_adapter_scores`).

**Data preparation** (Sec. 3.1.2): duplicate thresholds at P(duplicate) = 1 % and 99 % from a logistic
regression on similarity (:func:`duplicate_thresholds`), removal and keyword merging (:func:`deduplicate`),
the split stratified on deciles of the maximum softmaxed similarity (:func:`stratified_split`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["ClassWiseNeighbourNet", "NeighbourResult", "SimpleNeighbourNet", "best_f2_threshold", "class_prototypes",
           "deduplicate", "duplicate_thresholds", "faiss_neighbours", "fine_tune", "keyword_matrix",
           "max_softmax_similarity", "multilabel_metrics", "nearest_other", "neighbour_search",
           "per_class_roc_auc", "rescaled_cosine_scores", "stratified_split", "tip_adapter_scores",
           "weighted_prompt_classifier"]


def _check_unit(name: str, array: np.ndarray):
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (rows are embeddings), got shape {array.shape}")


# ----------------------------------------------------------------------------------------------- zero-shot
def weighted_prompt_classifier(text_embeddings: np.ndarray, weights) -> np.ndarray:
    """Class text vectors ``(C, D)`` from caption embeddings ``(C, K, D)`` and context weights ``(K,)`` (Sec. 3.2.1).

    ``t_c = sum_k w_k t_{c,k} / sum_k w_k``, then normalised to unit length (the thesis does not say whether it
    re-normalises; with unit rows the rescaled cosine stays in [0, 1]). Weights are non-negative, not all zero.
    """
    text_embeddings = np.asarray(text_embeddings, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if text_embeddings.ndim != 3 or weights.shape != (text_embeddings.shape[1],):
        raise ValueError(f"need caption embeddings (C, K, D) and K weights; got {text_embeddings.shape} and "
                         f"{weights.shape}")
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"context weights must be non-negative and not all zero, got {weights}")
    mean = np.einsum("ckd,k->cd", text_embeddings, weights / weights.sum())
    return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def rescaled_cosine_scores(image_embeddings: np.ndarray, class_vectors: np.ndarray) -> np.ndarray:
    """``(cos + 1) / 2``: ``(N, D) x (C, D) -> (N, C)`` in [0, 1] (Sec. 3.2.1's multi-label zero-shot score)."""
    image_embeddings, class_vectors = np.asarray(image_embeddings), np.asarray(class_vectors)
    if image_embeddings.ndim != 2 or class_vectors.ndim != 2 or image_embeddings.shape[1] != class_vectors.shape[1]:
        raise ValueError(f"need (N, D) image and (C, D) class embeddings of one encoder; got "
                         f"{image_embeddings.shape} and {class_vectors.shape}")
    return np.clip((image_embeddings @ class_vectors.T + 1) / 2, 0, 1)


# ------------------------------------------------------------------------------------------ neighbour search
@dataclass
class NeighbourResult:
    """Output of :func:`neighbour_search`: ``scores (Q, C)``; ``indices (Q, M)`` of the kept references, most
    similar first (-1 where fewer were kept); ``weights (Q, M)`` their softmax weights (0 where not used)."""

    scores: np.ndarray
    indices: np.ndarray
    weights: np.ndarray


def neighbour_search(queries, references, labels, *, temperature: float, max_difference: float, max_neighbours: int,
                     early_stop: float = 0.99, exclude=None, chunk_size: int = 1024, device="cpu") -> NeighbourResult:
    """Bynke's neighbour search (Sec. 3.2.2, Fig. 3.7) in chunks of ``chunk_size`` queries on ``device``.

    ``queries (Q, D)`` and ``references (N, D)`` unit rows; ``labels (N, C)`` 0/1 (or soft); ``temperature`` T;
    ``max_difference`` delta (references with ``T cos < T max_cos - delta`` are dropped); ``max_neighbours`` M;
    ``early_stop``: accumulation stops once the cumulative weight (descending) reaches it (1 disables it);
    ``exclude``: ``(Q,)`` reference indices to leave out (the query itself when it is a reference), -1 for none.
    """
    queries = torch.as_tensor(np.asarray(queries, dtype=np.float32))
    references = torch.as_tensor(np.asarray(references, dtype=np.float32))
    labels = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    if queries.ndim != 2 or references.ndim != 2 or queries.shape[1] != references.shape[1]:
        raise ValueError(f"need (Q, D) queries and (N, D) references; got {tuple(queries.shape)} and "
                         f"{tuple(references.shape)}")
    if labels.shape[0] != references.shape[0]:
        raise ValueError(f"labels need one row per reference: {labels.shape[0]} rows for {references.shape[0]}")
    if max_neighbours < 1 or temperature < 0 or max_difference < 0 or not 0 < early_stop <= 1:
        raise ValueError("need max_neighbours >= 1, temperature >= 0, max_difference >= 0, 0 < early_stop <= 1")
    device = torch.device(device)
    references, labels = references.to(device), labels.to(device)
    m = min(int(max_neighbours), references.shape[0] - (exclude is not None))
    exclude_t = torch.as_tensor(np.asarray(exclude, dtype=np.int64)) if exclude is not None else None
    all_scores, all_indices, all_weights = [], [], []
    for start in range(0, queries.shape[0], chunk_size):
        q = queries[start:start + chunk_size].to(device)
        similarity = temperature * (q @ references.T)                                   # (B, N)
        if exclude_t is not None:
            rows = exclude_t[start:start + chunk_size].to(device)
            valid = rows >= 0
            similarity[torch.arange(len(q), device=device)[valid], rows[valid]] = -torch.inf
        top, index = torch.topk(similarity, m, dim=1)                                    # (B, M) descending
        keep = top >= top[:, :1] - max_difference
        weights = torch.softmax(top.masked_fill(~keep, -torch.inf), dim=1)
        if early_stop < 1:
            before = torch.cumsum(weights, dim=1) - weights                               # weight accumulated so far
            weights = weights * (before < early_stop)
        scores = torch.einsum("bm,bmc->bc", weights, labels[index])
        all_scores.append(scores.cpu())
        all_indices.append(index.masked_fill(weights == 0, -1).cpu())
        all_weights.append(weights.cpu())
    return NeighbourResult(torch.cat(all_scores).numpy(), torch.cat(all_indices).numpy(),
                           torch.cat(all_weights).numpy())


def faiss_neighbours(queries, references, k: int):
    """Brute-force inner-product top-``k`` with ``faiss.IndexFlatIP``: ``(similarities (Q, k), indices (Q, k))``."""
    import faiss

    index = faiss.IndexFlatIP(references.shape[1])
    index.add(np.ascontiguousarray(references, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def tip_adapter_scores(queries, keys, values, zero_shot_scores, *, alpha: float, beta: float, device="cpu",
                       chunk_size: int = 1024) -> np.ndarray:
    """Tip-Adapter's cache (Zhang et al. 2021) with its zero-shot residual, for multi-label scores ``(Q, C)``.

    ``score = (zero_shot + alpha * (A L) / (A 1)) / (1 + alpha)`` with affinities ``A = exp(-beta (1 - Q K^T))``
    ``(Q, N)``: Tip-Adapter's formula, with the cache term divided by the total affinity so that it is an
    average of label vectors, and the sum divided by ``1 + alpha`` so that scores stay in [0, 1] (the
    multi-label normalisation; a global threshold is unaffected by the last step).

    The normalised cache term equals ``softmax(beta Q K^T) L`` (the constant ``exp(-beta)`` cancels), which is
    how it is computed: in float32 without underflow, ``chunk_size`` queries at a time on ``device``, so no
    ``(Q, N)`` affinity matrix is ever held. ``keys (N, D)`` and ``values (N, C)`` may be tensors already on
    ``device`` (an optuna loop moves them once).
    """
    device = torch.device(device)
    k = torch.as_tensor(keys, dtype=torch.float32, device=device)
    v = torch.as_tensor(values, dtype=torch.float32, device=device)
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32))
    cache = []
    with torch.no_grad():
        for start in range(0, len(q), chunk_size):
            logits = beta * (q[start:start + chunk_size].to(device) @ k.T)              # (chunk, N)
            cache.append((torch.softmax(logits, dim=1) @ v).cpu())                   # (chunk, C)
    cache = torch.cat(cache).numpy() if cache else np.zeros((0, v.shape[1]), np.float32)
    return (np.asarray(zero_shot_scores, dtype=np.float64) + alpha * cache) / (1 + alpha)


# ------------------------------------------------------------------------------------------- neighbour nets
class SimpleNeighbourNet(nn.Module):
    """``y = V^T softmax(e^tau K f)`` (Sec. 3.2.3): keys ``K (P, D)`` (trainable), values ``V (P, C)`` (frozen),
    log temperature ``tau`` (trainable, unclamped, as CLIP's logit scale). ``forward((B, D)) -> (B, C)``."""

    def __init__(self, keys, values, temperature: float):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.keys = nn.Parameter(torch.as_tensor(np.asarray(keys, dtype=np.float32)).clone())
        self.register_buffer("values", torch.as_tensor(np.asarray(values, dtype=np.float32)).clone())
        self.log_temperature = nn.Parameter(torch.tensor(float(np.log(temperature))))

    def forward(self, queries: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """``exclude (B,)``: the index of a key each query must not see (itself, when the keys are the training
        images and the queries are those images), or -1 for none."""
        logits = self.log_temperature.exp() * queries @ self.keys.T
        if exclude is not None:
            rows = torch.nonzero(exclude >= 0).squeeze(1)
            logits = logits.index_put((rows, exclude[rows]), torch.tensor(-torch.inf, device=logits.device))
        return torch.softmax(logits, dim=1) @ self.values


class ClassWiseNeighbourNet(nn.Module):
    """``score_c = (sum_n a_{n,c} c_n + 1) / 2``, ``a_{.,c} = softmax_n(T c_n)`` over the keys of class c (Sec. 3.2.3).

    Keys ``K (P, D)`` (trainable), membership ``M (P, C)`` 0/1 (frozen), ``temperature`` T (fixed, as in the
    thesis). A class without keys scores 0.5 (cosine 0). ``forward((B, D)) -> (B, C)``.

    The softmaxes run over the ``E`` (key, class) pairs of ``M`` only, as segment sums: ``O(B E)`` work rather
    than a dense ``(B, P, C)`` tensor, which matters when each prototype belongs to one class (``E = P``).
    """

    def __init__(self, keys, membership, temperature: float):
        super().__init__()
        self.keys = nn.Parameter(torch.as_tensor(np.asarray(keys, dtype=np.float32)).clone())
        member = torch.as_tensor(np.asarray(membership) > 0)
        key_index, class_index = member.nonzero(as_tuple=True)
        self.register_buffer("membership", member)
        self.register_buffer("key_index", key_index)                                    # (E,)
        self.register_buffer("class_index", class_index)                                # (E,)
        self.temperature = float(temperature)

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        cosine = (queries @ self.keys.T)[:, self.key_index]                             # (B, E)
        logits = self.temperature * cosine
        segments = self.class_index.expand_as(logits)
        shape = (len(queries), self.membership.shape[1])
        peak = logits.new_full(shape, -torch.inf).scatter_reduce(1, segments, logits.detach(), "amax")
        weights = torch.exp(logits - peak.gather(1, segments))                           # (B, E)
        total = logits.new_zeros(shape).index_add(1, self.class_index, weights)        # (B, C)
        weighted = logits.new_zeros(shape).index_add(1, self.class_index, weights * cosine)
        mean_cosine = torch.where(total > 0, weighted / total.clamp_min(1e-30), torch.zeros_like(total))
        return (mean_cosine + 1) / 2


def class_prototypes(features, labels, per_class: int, *, clustering: bool, label_mode: str = "average",
                     seed: int = 0):
    """Prototypes after Tip-Adapter, multi-label (Sec. 3.2.3): ``(keys (C k, D), values (C k, C), membership (C k, C))``.

    Every sample joins the groups of all its classes; within class c its samples are split into ``per_class``
    groups, at random or by mini-batch k-means (``clustering``); a key is its group's mean; its value is the
    group's mean label vector (``average``) or the one-hot vector of c (``one-hot``); ``membership`` is always
    that one-hot vector. A group without samples is not considered (the thesis): it has no prototype, so
    the arrays hold at most ``C k`` rows, those of the non-empty groups, in class order.
    """
    from sklearn.cluster import MiniBatchKMeans

    features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=np.float32)
    if label_mode not in ("average", "one-hot"):
        raise ValueError(f"label_mode must be 'average' or 'one-hot', got {label_mode!r}")
    if per_class < 1:
        raise ValueError(f"per_class must be positive, got {per_class}")
    rng = np.random.default_rng(seed)
    n_classes = labels.shape[1]
    keys = np.zeros((n_classes * per_class, features.shape[1]), np.float32)
    values = np.zeros((n_classes * per_class, n_classes), np.float32)
    membership = np.zeros_like(values)
    filled = np.zeros(len(keys), bool)
    for c in range(n_classes):
        members = np.flatnonzero(labels[:, c] > 0)
        rows = slice(c * per_class, (c + 1) * per_class)
        membership[rows, c] = 1
        if label_mode == "one-hot":
            values[rows, c] = 1
        if len(members) == 0:
            continue
        if clustering and len(members) > per_class:
            groups = MiniBatchKMeans(per_class, random_state=seed, n_init=3, batch_size=256).fit_predict(
                features[members])
        else:
            groups = rng.permutation(len(members)) % per_class
        for g in range(per_class):
            chosen = members[groups == g]
            if len(chosen):
                filled[c * per_class + g] = True
                keys[c * per_class + g] = features[chosen].mean(axis=0)
                if label_mode == "average":
                    values[c * per_class + g] = labels[chosen].mean(axis=0)
    return keys[filled], values[filled], membership[filled]


def fine_tune(net: nn.Module, features, labels, *, epochs: int, batch_size: int, learning_rate: float,
              momentum: float, seed: int = 0, device="cpu", keys_are_features: bool = False) -> nn.Module:
    """Fine-tune a neighbour net (Sec. 3.2.3): MSE between its scores and the 0/1 labels, SGD with ``momentum``,
    cosine annealing of the learning rate over all steps (no restarts), seeded batch order. Returns ``net``.

    ``keys_are_features``: the net's keys are ``features`` themselves, row for row (a
    :class:`SimpleNeighbourNet` on every training image); each training image is then left out of its own
    keys, as the neighbour search leaves a query out of its references. Otherwise an image would find
    itself at cosine 1 and learn to copy its own labels."""
    if epochs < 1 or batch_size < 1 or learning_rate <= 0 or not 0 <= momentum < 1:
        raise ValueError("need epochs >= 1, batch_size >= 1, learning_rate > 0 and 0 <= momentum < 1")
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    if keys_are_features and (not isinstance(net, SimpleNeighbourNet) or net.keys.shape != x.shape):
        raise ValueError("keys_are_features needs a SimpleNeighbourNet whose keys are the features, row for row")
    net.to(device).train()
    parameters = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=learning_rate, momentum=momentum)
    steps = epochs * int(np.ceil(len(x) / batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            scores = net(x[batch].to(device), batch.to(device)) if keys_are_features else net(x[batch].to(device))
            loss = torch.mean((scores - y[batch].to(device)) ** 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def net_scores(net: nn.Module, features, batch_size: int = 512) -> np.ndarray:
    """Scores ``(N, C)`` of a neighbour net on ``features (N, D)``, in batches, without gradients, on the device
    that holds the net's parameters (a net fine-tuned on a GPU is scored there)."""
    device = next(net.parameters()).device
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    with torch.no_grad():
        return torch.cat([net(x[s:s + batch_size].to(device)).cpu() for s in range(0, len(x), batch_size)]).numpy()


# ---------------------------------------------------------------------------------------------- thresholds
def best_f2_threshold(scores, labels, beta: float = 2.0) -> tuple[float, float]:
    """The single global threshold that maximises micro F-beta on ``(scores, labels)``: ``(threshold, F)``.

    Exact: every distinct score is a candidate (predict ``score >= threshold``); sorting all scores once gives
    the true positives at every cut. Ties are kept together. Micro ``F = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)``.
    """
    scores, labels = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel() > 0
    if scores.shape != labels.shape or scores.size == 0:
        raise ValueError("scores and labels must have the same, non-zero size")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], labels[order]
    true_positives = np.cumsum(hits)
    predicted = np.arange(1, len(hits) + 1)
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    b2 = beta ** 2
    positives = labels.sum()
    f = (1 + b2) * true_positives / ((1 + b2) * true_positives + b2 * (positives - true_positives)
                                      + (predicted - true_positives))
    f = np.where(last_of_tie, f, -1.0)
    best = int(np.argmax(f))
    return float(sorted_scores[best]), float(f[best])


def multilabel_metrics(scores, labels, threshold: float) -> dict[str, float]:
    """The micro-averaged metrics of Table 4.8: F2, MSE, recall, precision, accuracy, subset accuracy, ROC AUC."""
    from sklearn.metrics import roc_auc_score

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels) > 0
    predicted = scores >= threshold
    tp = float((predicted & labels).sum())
    fp = float((predicted & ~labels).sum())
    fn = float((~predicted & labels).sum())
    recall = tp / max(tp + fn, 1)
    precision = tp / max(tp + fp, 1)
    return {"F2": 5 * tp / max(5 * tp + 4 * fn + fp, 1), "MSE": float(np.mean((scores - labels) ** 2)),
            "recall": recall, "precision": precision, "accuracy": float(np.mean(predicted == labels)),
            "subset accuracy": float(np.mean((predicted == labels).all(axis=1))),
            "ROC AUC": float(roc_auc_score(labels.ravel(), scores.ravel()))}


def per_class_roc_auc(scores, labels) -> np.ndarray:
    """ROC AUC of each class ``(C,)`` (NaN for a class with only one label value in ``labels``)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels) > 0
    return np.array([roc_auc_score(labels[:, c], scores[:, c]) if 0 < labels[:, c].sum() < len(labels) else np.nan
                     for c in range(labels.shape[1])])


# ---------------------------------------------------------------------------------------- data preparation
def keyword_matrix(keyword_lists, vocabulary) -> np.ndarray:
    """0/1 ``(N, C)`` matrix: entry (i, c) says whether image i carries ``vocabulary[c]``."""
    position = {word: c for c, word in enumerate(vocabulary)}
    matrix = np.zeros((len(keyword_lists), len(vocabulary)), np.float32)
    for i, words in enumerate(keyword_lists):
        for word in words:
            if word in position:
                matrix[i, position[word]] = 1
    return matrix


def nearest_other(embeddings, chunk_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For every row of ``embeddings (N, D)``: the index and cosine of its most similar other row, ``(N,), (N,)``."""
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    best, index = [], []
    for start in range(0, len(x), chunk_size):
        similarity = x[start:start + chunk_size] @ x.T
        rows = torch.arange(similarity.shape[0])
        similarity[rows, rows + start] = -torch.inf
        value, where = similarity.max(dim=1)
        best.append(value)
        index.append(where)
    return torch.cat(index).numpy(), torch.cat(best).numpy()


def duplicate_thresholds(similarity, is_duplicate, low: float = 0.01, high: float = 0.99) -> tuple[float, float, object]:
    """Sec. 3.1.2: fit ``P(duplicate | s) = sigmoid(a + b s)`` to labelled (image, nearest image) pairs and return
    the similarities where P = ``low`` ("suspected") and P = ``high`` ("certain"), and the fitted model."""
    from sklearn.linear_model import LogisticRegression

    similarity = np.asarray(similarity, dtype=np.float64).reshape(-1, 1)
    is_duplicate = np.asarray(is_duplicate).astype(int)
    if len(np.unique(is_duplicate)) < 2:
        raise ValueError("the labelled pairs must contain both duplicates and non-duplicates")
    model = LogisticRegression(C=1e4, max_iter=1000).fit(similarity, is_duplicate)
    a, b = float(model.intercept_[0]), float(model.coef_[0, 0])
    if b <= 0:
        raise ValueError("duplicates are not more similar than non-duplicates here: no thresholds can be set")

    def at(p):
        return (np.log(p / (1 - p)) - a) / b

    return float(at(low)), float(at(high)), model


def deduplicate(embeddings, keyword_lists, suspected: float, certain: float, chunk_size: int = 2048):
    """Remove duplicates (Sec. 3.1.2): scanning in order, every later image with cosine >= ``suspected`` to a kept
    one is removed; when the cosine is also >= ``certain`` its keywords are merged into the kept one.

    Returns ``(kept indices (K,), merged keyword lists (K,))``.
    """
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    n = len(x)
    removed = np.zeros(n, bool)
    merged = [list(words) for words in keyword_lists]
    for start in range(0, n, chunk_size):
        similarity = (x[start:start + chunk_size] @ x.T).numpy()
        for row in range(similarity.shape[0]):
            i = start + row
            if removed[i]:
                continue
            later = np.flatnonzero(similarity[row, i + 1:] >= suspected) + i + 1
            for j in later:
                if removed[j]:
                    continue
                removed[j] = True
                if similarity[row, j] >= certain:
                    merged[i] += [w for w in merged[j] if w not in merged[i]]
    kept = np.flatnonzero(~removed)
    return kept, [merged[i] for i in kept]


def max_softmax_similarity(embeddings, temperature: float = 100.0, chunk_size: int = 2048) -> np.ndarray:
    """Sec. 3.1.2's stratification variable: ``max_j softmax_j(T cos(i, j))`` over the other images j, ``(N,)``."""
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    out = []
    for start in range(0, len(x), chunk_size):
        logits = temperature * (x[start:start + chunk_size] @ x.T)
        rows = torch.arange(logits.shape[0])
        logits[rows, rows + start] = -torch.inf
        out.append(torch.softmax(logits, dim=1).max(dim=1).values)
    return torch.cat(out).numpy()


def stratified_split(strata_variable, fractions=(0.6, 0.2, 0.2), bins: int = 10, seed: int = 0):
    """Train/validation/test indices stratified on the ``bins`` quantile groups of ``strata_variable`` (Sec. 3.1.2).

    A small data set gets fewer groups, so that every group can put two items into the smallest split."""
    from sklearn.model_selection import train_test_split

    values = np.asarray(strata_variable)
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive shares summing to 1, got {fractions}")
    bins = max(1, min(bins, int(len(values) * min(fractions[1:]) // 2)))   # >= 2 per stratum in each split
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    strata = np.searchsorted(edges, values, side="right")
    indices = np.arange(len(values))
    train, rest = train_test_split(indices, train_size=fractions[0], stratify=strata if bins > 1 else None,
                                   random_state=seed)
    validation, test = train_test_split(rest, train_size=fractions[1] / (fractions[1] + fractions[2]),
                                        stratify=strata[rest] if bins > 1 else None, random_state=seed)
    return np.sort(train), np.sort(validation), np.sort(test)

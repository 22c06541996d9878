"""Loss functions that carry domain knowledge (Kobs 2023, the *Loss Function* principle).

SimLoss (Kobs 2023, Ch. 14; Kobs et al. 2020) replaces the one-hot target of categorical cross-entropy by a
row of a class-similarity matrix ``S``:

    L_SimLoss = -1/|B| sum_i log( sum_c S[y_i, c] * p_i[c] )            (Eq. 14.2)

``S = I`` gives cross-entropy (Eq. 14.1). Two builders turn domain knowledge into ``S``: class order
(:func:`ordinal_similarity`, Eq. 14.10) and class-name similarity (:func:`semantic_similarity`, Eq. 14.11).
:func:`probability_matrix_loss` is the row-normalised variant of the literature (Eq. 14.3); it differs from
SimLoss by a constant per example and so has the same gradients (Eq. 14.9).

Shapes: ``logits`` ``(B, C)`` float, ``targets`` ``(B,)`` int64 class indices, ``similarity`` ``(C, C)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SimLoss", "bounded_similarity", "check_similarity_matrix", "cosine_similarity_matrix",
           "cross_entropy_identity_gap", "gradient_equivalence_gap", "ordinal_similarity", "probability_matrix_loss",
           "semantic_similarity", "simloss"]

_REDUCTIONS = ("mean", "sum", "none")


def check_similarity_matrix(similarity: torch.Tensor, num_classes: int | None = None) -> None:
    """Raise a ``ValueError`` unless ``similarity`` is a valid SimLoss matrix.

    Valid means: a floating-point ``(C, C)`` tensor (``C = num_classes`` when given), values in ``[0, 1]``,
    ones on the diagonal (a class is fully similar to itself, Sec. 14.1), no NaN.
    """
    if not isinstance(similarity, torch.Tensor):
        raise TypeError(f"similarity must be a torch.Tensor, got {type(similarity).__name__}")
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be a square (C, C) matrix, got shape {tuple(similarity.shape)}")
    if num_classes is not None and similarity.shape[0] != num_classes:
        raise ValueError(f"similarity is {similarity.shape[0]} x {similarity.shape[0]} but the logits have "
                         f"{num_classes} classes")
    if not similarity.is_floating_point():
        raise ValueError(f"similarity must be floating point, got {similarity.dtype}")
    if torch.isnan(similarity).any():
        raise ValueError("similarity contains NaN")
    if (similarity < 0).any() or (similarity > 1).any():
        raise ValueError(f"similarity values must lie in [0, 1]; found min {similarity.min().item():.4g} and "
                         f"max {similarity.max().item():.4g}")
    diagonal = torch.diagonal(similarity)
    if not torch.all(diagonal == 1):
        worst = diagonal[diagonal != 1][0].item()
        raise ValueError(f"the diagonal of similarity must be all ones (S[c, c] = 1); found {worst:.4g}")


def _check_batch(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets must have shape (B,) = ({logits.shape[0]},), got {tuple(targets.shape)}")
    if targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"targets must be integer class indices, got {targets.dtype}")


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    if reduction == "none":
        return per_example
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _log_similarity_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                         reduction: str) -> torch.Tensor:
    """``-log(sum_c W[y, c] p[c])`` computed as ``-logsumexp(log_softmax(logits) + log W[y])``.

    ``log 0 = -inf`` drops a class from the sum exactly; the diagonal (> 0) keeps every row finite.
    """
    log_probabilities = F.log_softmax(logits, dim=1)                   # (B, C)
    log_weights = torch.log(weights.to(logits.dtype))[targets]         # (B, C)
    per_example = -torch.logsumexp(log_probabilities + log_weights, dim=1)
    return _reduce(per_example, reduction)


def simloss(logits: torch.Tensor, targets: torch.Tensor, similarity: torch.Tensor,
            reduction: str = "mean") -> torch.Tensor:
    """SimLoss (Eq. 14.2) of a batch.

    Args:
        logits: ``(B, C)`` unnormalised scores; ``p = softmax(logits)``.
        targets: ``(B,)`` int64 target class indices ``y``.
        similarity: ``(C, C)`` matrix ``S`` with values in ``[0, 1]`` and ones on the diagonal.
        reduction: ``"mean"`` (Eq. 14.2), ``"sum"`` or ``"none"`` (a ``(B,)`` tensor).

    ``log(sum_c S[y, c] p[c])`` is evaluated in log space, ``logsumexp(log_softmax(logits) + log S[y])``, so
    confident predictions do not underflow. With ``S = I`` the result equals ``F.cross_entropy``.
    """
    _check_batch(logits, targets)
    check_similarity_matrix(similarity, logits.shape[1])
    return _log_similarity_loss(logits, targets, similarity.to(logits.device), reduction)


def probability_matrix_loss(logits: torch.Tensor, targets: torch.Tensor, similarity: torch.Tensor,
                            reduction: str = "mean") -> torch.Tensor:
    """The probability-matrix loss ``L_prob`` (Eq. 14.3): SimLoss with each row of ``S`` divided by its sum.

    Shapes as :func:`simloss`. By Eq. 14.7 it equals SimLoss plus ``mean_i log(sum_c S[y_i, c])``, a term
    that does not depend on the network, so both losses have the same gradients (Eq. 14.9); its minimum is
    that constant, not 0.
    """
    _check_batch(logits, targets)
    check_similarity_matrix(similarity, logits.shape[1])
    row_normalised = similarity / similarity.sum(dim=1, keepdim=True)
    return _log_similarity_loss(logits, targets, row_normalised.to(logits.device), reduction)


class SimLoss(nn.Module):
    """SimLoss (Eq. 14.2) as a module: ``SimLoss(S)(logits (B, C), targets (B,)) -> scalar``.

    The matrix is checked once here and kept as a buffer, so it follows ``.to(device)``.
    """

    def __init__(self, similarity: torch.Tensor, reduction: str = "mean"):
        super().__init__()
        similarity = torch.as_tensor(similarity, dtype=torch.float32)
        check_similarity_matrix(similarity)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.register_buffer("similarity", similarity)
        self.reduction = reduction

    @property
    def num_classes(self) -> int:
        return self.similarity.shape[0]

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_batch(logits, targets)
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[1]} classes, the similarity matrix {self.num_classes}")
        return _log_similarity_loss(logits, targets, self.similarity, self.reduction)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, reduction={self.reduction!r}"


def ordinal_similarity(num_classes: int, reduction_factor: float) -> torch.Tensor:
    """Class-order similarity ``S[i, j] = r ** |i - j|`` (Eq. 14.10), a ``(C, C)`` float32 tensor.

    ``r = reduction_factor`` in ``[0, 1)``; ``0 ** 0 = 1``, so ``r = 0`` gives the identity (cross-entropy).
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not 0.0 <= reduction_factor < 1.0:
        raise ValueError(f"the reduction factor r must lie in [0, 1), got {reduction_factor!r}")
    index = torch.arange(num_classes, dtype=torch.float64)
    distance = (index[:, None] - index[None, :]).abs()
    similarity = torch.where(distance == 0, torch.ones_like(distance),
                             torch.as_tensor(float(reduction_factor), dtype=torch.float64) ** distance)
    return similarity.float()


def cosine_similarity_matrix(embeddings) -> np.ndarray:
    """Cosine similarities of class embeddings ``(C, D)`` as a ``(C, C)`` float64 array in ``[-1, 1]``."""
    vectors = np.asarray(embeddings.detach().cpu() if isinstance(embeddings, torch.Tensor) else embeddings,
                         dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must have shape (C, D), got {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(vectors)):
        raise ValueError("every class embedding must be finite and non-zero to define a cosine similarity")
    unit = vectors / norms
    return np.clip(unit @ unit.T, -1.0, 1.0)


def bounded_similarity(similarity, lower_bound: float) -> torch.Tensor:
    """The lower bound of Eq. 14.11 applied to any class similarity, a ``(C, C)`` float32 tensor.

    ``similarity``: ``(C, C)`` numpy or torch, values in ``[0, 1]`` (a cosine clipped at 0, a Wu-Palmer
    similarity, ...); ``S[i, j] = max(0, sim(i, j) - l) / (1 - l)`` with ``l = lower_bound`` in ``[0, 1)``, and
    the diagonal set to exactly 1. An ``l`` at or above the largest off-diagonal similarity gives the identity,
    i.e. cross-entropy (Sec. 14.1.2).
    """
    if not 0.0 <= lower_bound < 1.0:
        raise ValueError(f"the lower bound l must lie in [0, 1), got {lower_bound!r}")
    values = np.asarray(similarity.detach().cpu() if isinstance(similarity, torch.Tensor) else similarity,
                        dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"the class similarity must be a square (C, C) matrix, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0 + 1e-9:
        raise ValueError("the class similarity must lie in [0, 1]; clip a cosine at 0 first")
    scaled = np.maximum(values - lower_bound, 0.0) / (1.0 - lower_bound)
    np.fill_diagonal(scaled, 1.0)
    return torch.from_numpy(np.clip(scaled, 0.0, 1.0)).float()


def semantic_similarity(embeddings, lower_bound: float) -> torch.Tensor:
    """General class similarity with a lower bound (Eq. 14.11), a ``(C, C)`` float32 tensor.

    ``sim(i, j) = max(0, cos(w_i, w_j))`` of the class-name embeddings ``w`` (``(C, D)``, numpy or torch), as in
    Sec. 14.2.1; then ``S[i, j] = max(0, sim(i, j) - l) / (1 - l)`` with ``l = lower_bound`` in ``[0, 1)``
    (:func:`bounded_similarity`). The diagonal is set to exactly 1. An ``l`` at or above the largest off-diagonal
    similarity gives the identity, i.e. cross-entropy (Sec. 14.1.2).
    """
    return bounded_similarity(np.maximum(cosine_similarity_matrix(embeddings), 0.0), lower_bound)


# --- the two algebraic facts of Sec. 14.1 -----------------------------------------------------------------


def _random_batch(num_classes: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(batch_size, num_classes, generator=generator, dtype=torch.float64)
    targets = torch.randint(num_classes, (batch_size,), generator=generator)
    return logits, targets


def cross_entropy_identity_gap(*, num_classes: int = 80, batch_size: int = 512, seed: int = 0) -> float:
    """Max over examples of ``|SimLoss(S = I) - cross-entropy|`` on random float64 logits (Eq. 14.2 vs 14.1)."""
    logits, targets = _random_batch(num_classes, batch_size, seed)
    identity = torch.eye(num_classes, dtype=torch.float64)
    ours = simloss(logits, targets, identity, reduction="none")
    reference = F.cross_entropy(logits, targets, reduction="none")
    return float((ours - reference).abs().max())


def gradient_equivalence_gap(*, num_classes: int = 80, reduction_factor: float = 0.8, batch_size: int = 512,
                             seed: int = 0) -> dict[str, float]:
    """Compare SimLoss and the row-normalised ``L_prob`` on random float64 logits (Eqs. 14.3-14.9).

    Returns the max absolute difference of the gradients w.r.t. the logits (Eq. 14.9: zero) and of
    ``L_prob - L_SimLoss`` from the constant ``mean_i log(sum_c S[y_i, c])`` of Eq. 14.7 (zero), plus
    that constant.
    """
    logits, targets = _random_batch(num_classes, batch_size, seed)
    similarity = ordinal_similarity(num_classes, reduction_factor).double()
    gradients, values = [], []
    for loss_function in (simloss, probability_matrix_loss):
        leaf = logits.clone().requires_grad_(True)
        value = loss_function(leaf, targets, similarity)
        value.backward()
        gradients.append(leaf.grad)
        values.append(value.item())
    constant = float(torch.log(similarity.sum(dim=1))[targets].mean())
    return {"max_gradient_difference": float((gradients[0] - gradients[1]).abs().max()),
            "offset_error": abs((values[1] - values[0]) - constant), "offset": constant}

"""Deep supervised hashing baselines that Darlow (2022, Table 3.4) trains on the same backbone as the DDTL.

Each method maps a backbone's features through a linear layer to ``K`` continuous outputs ``u`` ``(B, K)``
and binarises them with ``sign`` (:func:`binarize`) at retrieval time; they differ in the loss that pulls
``u`` towards good codes. Similarity of a pair is "same class" (:func:`pair_similarity`). The losses here
follow the original papers' definitions; where a paper leaves a constant to cross-validation, the default
below is stated in the function's docstring and is this book's choice.

* :func:`sigmoid_code_loss` - "supervised only" sigmoid codes: a classifier on ``sigmoid(u)``, code =
  ``sigmoid(u) > 0.5``;
* :func:`greedy_hash_loss` - GreedyHash (Su et al. 2018): a classifier on ``sign(u)`` with the
  straight-through gradient, plus the cubic penalty ``|| |u| - 1 ||^3``;
* :func:`dsh_loss` - DSH (Liu et al. 2016): a contrastive loss on real-valued codes with margin ``2K`` and
  an L1 push of ``|u|`` towards 1;
* :func:`dpsh_loss` - DPSH (Li et al. 2016): the pairwise likelihood with ``theta_ij = u_i . u_j / 2`` and a
  quantisation penalty;
* :func:`hashnet_loss` - HashNet (Cao et al. 2017): a weighted pairwise likelihood on ``tanh(beta u)``, with
  ``beta`` raised during training (continuation, :func:`hashnet_beta`);
* :func:`dch_loss` - DCH (Cao et al. 2018): a Cauchy likelihood of the normalised Hamming distance and a
  Cauchy quantisation loss;
* :func:`dtsh_loss` - DTSH (Wang et al. 2016): a triplet likelihood with margin and a quantisation penalty.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["binarize", "dch_loss", "dpsh_loss", "dsh_loss", "dtsh_loss", "greedy_hash_loss", "hashnet_beta",
           "hashnet_loss", "pair_similarity", "sigmoid_code_loss", "sign_straight_through"]


def binarize(outputs: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` continuous outputs -> ``(B, K)`` uint8 bits, 1 where the output is positive (``sign``)."""
    return (outputs > 0).to(torch.uint8)


def pair_similarity(labels: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` float: 1 where two examples share their class, else 0."""
    return (labels[:, None] == labels[None, :]).float()


def _off_diagonal(batch: int, device) -> torch.Tensor:
    return ~torch.eye(batch, dtype=torch.bool, device=device)


def _check(outputs: torch.Tensor, labels: torch.Tensor) -> None:
    if outputs.ndim != 2 or labels.shape != outputs.shape[:1]:
        raise ValueError(f"outputs must be (B, K) and labels (B,), got {tuple(outputs.shape)} and {tuple(labels.shape)}")
    if outputs.shape[0] < 2:
        raise ValueError("pairwise hashing losses need a batch of at least two examples")


def sigmoid_code_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the classifier that reads the sigmoid codes (the caller computes
    ``class_logits = classifier(sigmoid(u))``); the code is ``sigmoid(u) > 0.5``, i.e. :func:`binarize`."""
    return F.cross_entropy(class_logits, labels)


class _SignStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values):
        return torch.where(values >= 0, torch.ones_like(values), -torch.ones_like(values))

    @staticmethod
    def backward(ctx, gradient):
        return gradient


def sign_straight_through(values: torch.Tensor) -> torch.Tensor:
    """``sign(values)`` in {-1, 1} forward, the identity backward (GreedyHash's greedy step, Su et al. 2018)."""
    return _SignStraightThrough.apply(values)


def greedy_hash_loss(outputs: torch.Tensor, class_logits: torch.Tensor, labels: torch.Tensor,
                     penalty: float = 0.1) -> torch.Tensor:
    """GreedyHash: ``CE(classifier(sign(u)), y) + penalty * mean(| |u| - 1 |^3)``. The caller computes
    ``class_logits = classifier(sign_straight_through(u))``; ``penalty = 0.1`` (this book's default)."""
    return F.cross_entropy(class_logits, labels) + penalty * (outputs.abs() - 1).abs().pow(3).mean()


def dsh_loss(outputs: torch.Tensor, labels: torch.Tensor, regulariser: float = 0.01,
             margin: float | None = None) -> torch.Tensor:
    """DSH: over all pairs ``i != j``, ``1/2 s_ij ||u_i - u_j||^2 + 1/2 (1 - s_ij) max(m - ||u_i - u_j||^2, 0)``,
    plus ``regulariser * mean(| |u| - 1 |)``; margin ``m = 2K`` and ``regulariser = 0.01`` as in Liu et al."""
    _check(outputs, labels)
    margin = 2.0 * outputs.shape[1] if margin is None else margin
    similar = pair_similarity(labels)
    distance = torch.cdist(outputs, outputs).pow(2)
    pairwise = 0.5 * similar * distance + 0.5 * (1 - similar) * (margin - distance).clamp_min(0)
    mask = _off_diagonal(len(labels), outputs.device)
    return pairwise[mask].mean() + regulariser * (outputs.abs() - 1).abs().mean()


def dpsh_loss(outputs: torch.Tensor, labels: torch.Tensor, quantisation: float = 0.1) -> torch.Tensor:
    """DPSH: ``mean_{i != j} [log(1 + exp(theta_ij)) - s_ij theta_ij]`` with ``theta_ij = u_i . u_j / 2``
    (the negative log-likelihood of the pairwise labels), plus ``quantisation * mean((u - sign(u))^2)``;
    ``quantisation = 0.1`` is this book's default (Li et al. cross-validate it)."""
    _check(outputs, labels)
    theta = 0.5 * outputs @ outputs.T
    likelihood = F.softplus(theta) - pair_similarity(labels) * theta
    mask = _off_diagonal(len(labels), outputs.device)
    return likelihood[mask].mean() + quantisation * (outputs - outputs.sign().detach()).pow(2).mean()


def hashnet_beta(step: int, gamma: float = 0.005, power: float = 0.5) -> float:
    """HashNet's continuation: ``beta = (1 + gamma * step)^power`` grows during training, so
    ``tanh(beta u)`` approaches ``sign(u)``."""
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}")
    return (1.0 + gamma * step) ** power


def hashnet_loss(outputs: torch.Tensor, labels: torch.Tensor, beta: float, scale: float | None = None) -> torch.Tensor:
    """HashNet: with ``h = tanh(beta u)`` and ``theta_ij = scale * h_i . h_j``, the weighted pairwise
    likelihood ``sum_{i != j} w_ij [log(1 + exp(theta_ij)) - s_ij theta_ij] / sum w_ij``, where similar and
    dissimilar pairs are weighted inversely to their counts (``w = |S| / |S_1|`` or ``|S| / |S_0|``) to fix the
    imbalance. ``scale`` defaults to ``10 / K`` (this book's choice; the paper's adaptive ``alpha``)."""
    _check(outputs, labels)
    codes = torch.tanh(beta * outputs)
    scale = 10.0 / outputs.shape[1] if scale is None else scale
    theta = scale * codes @ codes.T
    similar = pair_similarity(labels)
    mask = _off_diagonal(len(labels), outputs.device)
    count_similar = similar[mask].sum().clamp_min(1)
    count_dissimilar = (1 - similar)[mask].sum().clamp_min(1)
    total = mask.sum()
    weights = torch.where(similar > 0, total / count_similar, total / count_dissimilar)
    likelihood = F.softplus(theta) - similar * theta
    return (weights * likelihood)[mask].sum() / weights[mask].sum()


def _normalised_hamming(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """DCH's continuous Hamming distance ``K/2 (1 - cos(a, b))``: ``(B, D) x (C, D) -> (B, C)``."""
    return 0.5 * first.shape[1] * (1 - F.normalize(first, dim=1) @ F.normalize(second, dim=1).T)


def dch_loss(outputs: torch.Tensor, labels: torch.Tensor, gamma: float = 20.0, quantisation: float = 0.1) -> torch.Tensor:
    """DCH: the Cauchy likelihood ``p(s_ij = 1) = gamma / (gamma + d_ij)`` of the normalised Hamming
    distance, as the weighted cross-entropy ``w_ij [s_ij log(d_ij / gamma) + log(1 + gamma / d_ij)]``
    (weights as in :func:`hashnet_loss`), plus ``quantisation * mean log(1 + d(|u|, 1) / gamma)``;
    ``gamma = 20`` and ``quantisation = 0.1`` are this book's defaults."""
    _check(outputs, labels)
    distance = _normalised_hamming(outputs, outputs).clamp_min(1e-6)
    similar = pair_similarity(labels)
    mask = _off_diagonal(len(labels), outputs.device)
    total = mask.sum()
    weights = torch.where(similar > 0, total / similar[mask].sum().clamp_min(1),
                          total / (1 - similar)[mask].sum().clamp_min(1))
    likelihood = similar * torch.log(distance / gamma) + torch.log1p(gamma / distance)
    cauchy = (weights * likelihood)[mask].sum() / weights[mask].sum()
    ones = torch.ones_like(outputs)
    to_binary = torch.diagonal(_normalised_hamming(outputs.abs(), ones))
    return cauchy + quantisation * torch.log1p(to_binary / gamma).mean()


def dtsh_loss(outputs: torch.Tensor, labels: torch.Tensor, margin: float = 5.0, quantisation: float = 1.0,
              max_triplets: int | None = 20_000) -> torch.Tensor:
    """DTSH: the mean over triplets (anchor ``i``, positive ``j`` of its class, negative ``k`` of another
    class) of ``-log sigmoid(theta_ij - theta_ik - margin)`` with ``theta_ij = u_i . u_j / 2``, plus
    ``quantisation * mean((u - sign(u))^2)``; ``margin = 5`` and ``quantisation = 1`` are this book's defaults.
    A batch has ``O(B^3)`` triplets; as Wang et al. sample their triplet set, at most ``max_triplets`` of the
    valid ones are drawn uniformly (torch's global generator; ``None`` keeps all). A batch without a valid
    triplet gives only the quantisation term."""
    _check(outputs, labels)
    theta = 0.5 * outputs @ outputs.T
    similar = pair_similarity(labels).bool() & _off_diagonal(len(labels), outputs.device)
    dissimilar = ~pair_similarity(labels).bool()
    valid = similar[:, :, None] & dissimilar[:, None, :]                           # (anchor, positive, negative)
    quantisation_term = quantisation * (outputs - outputs.sign().detach()).pow(2).mean()
    if not valid.any():
        return quantisation_term
    anchors, positives, negatives = valid.nonzero(as_tuple=True)
    if max_triplets is not None and len(anchors) > max_triplets:
        keep = torch.randperm(len(anchors), device=outputs.device)[:max_triplets]
        anchors, positives, negatives = anchors[keep], positives[keep], negatives[keep]
    gap = theta[anchors, positives] - theta[anchors, negatives] - margin               # theta_ij - theta_ik - margin
    return F.softplus(-gap).mean() + quantisation_term

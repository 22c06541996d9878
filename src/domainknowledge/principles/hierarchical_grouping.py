"""Deep Hierarchical Object Grouping (DHOG): clustering by mutual information across augmentations, with
later heads pushed away from earlier ones (Darlow 2022, Ch. 4, Sec. 4.3).

Each of ``k`` heads maps an image to a probability vector ``z`` over ``C`` clusters. For a batch, two
probability matrices ``(B, C)`` define a joint distribution of the two discrete labels,
``P = mean_b z_b z'_b^T`` (``C x C``), and its mutual information is Eq. 4.1 (the estimator of IIC,
Ji et al. 2019):

    MI(c, c') = sum_{u, v} P_uv log(P_uv / (P_u. P_.v)).

* :func:`joint_distribution` and :func:`mutual_information`: Eq. 4.1 (and Eq. 4.2 for two heads);
* :func:`pull_term`: Eq. 4.3, the MI between augmentations of the same image, per head, averaged over heads
  (and over all pairs of the augmentations);
* :func:`push_term`: Eq. 4.4, the MI between each head and the heads *before* it on the same augmentation,
  with the earlier head's output detached so that only the later head moves (the hierarchy by gradient
  stopping of Sec. 4.3.2);
* :func:`dhog_loss`: the negative of Eq. 4.5, ``-(MI_pull - alpha MI_push)`` with ``alpha = 0.05``.

**Erratum.** Eq. 4.4 sums ``j = 1 .. i``, which includes ``MI(c_i, c_i)`` (the entropy of head ``i``), and
divides by ``i``; Eq. 4.3 sums ``i = 0 .. k`` and divides by ``k``. We compare head ``i`` with the heads
``j < i`` only and average over them (divide by ``i - 1``), and average the pull over the ``k`` heads.

Following IIC's code, a joint between two augmentations is symmetrised, ``(P + P^T) / 2`` (the two views
are exchangeable), and entries are clamped at a small epsilon before the logarithm; the joint between two
heads is not symmetrised (their clusters need not correspond).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

__all__ = ["EPSILON", "THESIS_ALPHA", "dhog_loss", "joint_distribution", "mutual_information", "pull_term", "push_term"]

EPSILON = 1e-8
THESIS_ALPHA = 0.05


def joint_distribution(first: torch.Tensor, second: torch.Tensor, symmetric: bool) -> torch.Tensor:
    """``(C, C)`` joint ``P = mean_b first_b second_b^T`` of two ``(B, C)`` probability matrices, optionally
    symmetrised; normalised to sum to one."""
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"both inputs must be (B, C) of one shape, got {tuple(first.shape)} and {tuple(second.shape)}")
    joint = first.T @ second / first.shape[0]
    if symmetric:
        joint = (joint + joint.T) / 2
    return joint / joint.sum()


def mutual_information(first: torch.Tensor, second: torch.Tensor, symmetric: bool = True) -> torch.Tensor:
    """Eq. 4.1: the mutual information (nats) of the discrete labels defined by two ``(B, C)`` probability
    matrices. ``symmetric=True`` for two augmentations of the same images (IIC), ``False`` for two heads."""
    joint = joint_distribution(first, second, symmetric).clamp_min(EPSILON)
    rows, columns = joint.sum(dim=1, keepdim=True), joint.sum(dim=0, keepdim=True)
    return (joint * (joint.log() - rows.log() - columns.log())).sum()


def pull_term(views: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Eq. 4.3: ``views[i][a]`` is head ``i``'s ``(B, C)`` output for augmentation ``a`` of the batch. The MI
    between every pair of augmentations, averaged over the pairs and over the heads."""
    per_head = []
    for head_views in views:
        if len(head_views) < 2:
            raise ValueError("the pull term needs at least two augmentations per head")
        pairs = [mutual_information(a, b, symmetric=True) for a, b in itertools.combinations(head_views, 2)]
        per_head.append(torch.stack(pairs).mean())
    return torch.stack(per_head).mean()


def push_term(views: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Eq. 4.4 (with ``j < i``): for each head ``i > 1`` and each augmentation, the MI between head ``i`` and
    each earlier head ``j`` (detached: gradients flow into head ``i`` only), averaged over the earlier heads
    and the augmentations, and summed over the heads. Zero for a single head."""
    total = views[0][0].new_zeros(())
    for i in range(1, len(views)):
        per_augmentation = []
        for a in range(len(views[i])):
            earlier = [mutual_information(views[i][a], views[j][a].detach(), symmetric=False) for j in range(i)]
            per_augmentation.append(torch.stack(earlier).mean())
        total = total + torch.stack(per_augmentation).mean()
    return total


def dhog_loss(views: Sequence[Sequence[torch.Tensor]], alpha: float = THESIS_ALPHA) -> torch.Tensor:
    """The loss to minimise, ``-(MI_pull - alpha * MI_push)`` (Eq. 4.5, ``alpha = 0.05``; ``alpha = 0`` is the
    IIC-like ablation)."""
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    pull = pull_term(views)
    return -pull if alpha == 0 else -(pull - alpha * push_term(views))

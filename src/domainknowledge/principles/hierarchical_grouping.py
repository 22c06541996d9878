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

__all__ = ["EPSILON", "THESIS_ALPHA", "dhog_loss", "joint_distribution", "mutual_information",
           "mutual_information_of_joints", "pull_term", "push_term"]

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


def mutual_information_of_joints(joints: torch.Tensor) -> torch.Tensor:
    """Eq. 4.1 for a stack of unnormalised joints ``(..., C, C)``: each is normalised to sum to one and
    clamped at :data:`EPSILON`; returns the MI (nats) of each, ``(...)``."""
    joints = (joints / joints.sum(dim=(-2, -1), keepdim=True)).clamp_min(EPSILON)
    rows, columns = joints.sum(dim=-1, keepdim=True), joints.sum(dim=-2, keepdim=True)
    return (joints * (joints.log() - rows.log() - columns.log())).sum(dim=(-2, -1))


def mutual_information(first: torch.Tensor, second: torch.Tensor, symmetric: bool = True) -> torch.Tensor:
    """Eq. 4.1: the mutual information (nats) of the discrete labels defined by two ``(B, C)`` probability
    matrices. ``symmetric=True`` for two augmentations of the same images (IIC), ``False`` for two heads."""
    return mutual_information_of_joints(joint_distribution(first, second, symmetric))


def _stack_views(views: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """``views[i][a]`` ``(B, C)`` as one tensor ``(k, A, B, C)`` (every head needs the same augmentations)."""
    if len({len(head_views) for head_views in views}) != 1:
        raise ValueError(f"every head needs the same number of augmentations, got {[len(h) for h in views]}")
    return torch.stack([torch.stack(list(head_views)) for head_views in views])


def pull_term(views: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Eq. 4.3: ``views[i][a]`` is head ``i``'s ``(B, C)`` output for augmentation ``a`` of the batch. The MI
    between every pair of augmentations, averaged over the pairs and over the heads. All ``k`` heads and
    ``A (A - 1) / 2`` pairs are computed in one batched product ``(k, pairs, C, C)``."""
    z = _stack_views(views)                                                   # (k, A, B, C)
    if z.shape[1] < 2:
        raise ValueError("the pull term needs at least two augmentations per head")
    first, second = zip(*itertools.combinations(range(z.shape[1]), 2))
    joints = torch.einsum("kpbc,kpbd->kpcd", z[:, list(first)], z[:, list(second)]) / z.shape[2]
    joints = (joints + joints.transpose(-2, -1)) / 2                          # the two views are exchangeable
    return mutual_information_of_joints(joints).mean()


def push_term(views: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Eq. 4.4 (with ``j < i``): for each head ``i > 1`` and each augmentation, the MI between head ``i`` and
    each earlier head ``j`` (detached: gradients flow into head ``i`` only), averaged over the earlier heads
    and the augmentations, and summed over the heads. Zero for a single head. Every head pair of every
    augmentation is one entry of a batched product ``(A, k, k, C, C)``; only the pairs ``j < i`` are kept."""
    z = _stack_views(views).transpose(0, 1)                                   # (A, k, B, C)
    heads = z.shape[1]
    if heads < 2:
        return z.new_zeros(())
    joints = torch.einsum("aibc,ajbd->aijcd", z, z.detach()) / z.shape[2]     # head i against detached head j
    information = mutual_information_of_joints(joints)                        # (A, k, k)
    earlier = torch.ones(heads, heads, dtype=torch.bool, device=z.device).tril(-1)   # [i, j]: j < i
    per_head = (information * earlier).sum(dim=2)[:, 1:] / torch.arange(1, heads, device=z.device)   # (A, k - 1)
    return per_head.mean(dim=0).sum()


def dhog_loss(views: Sequence[Sequence[torch.Tensor]], alpha: float = THESIS_ALPHA) -> torch.Tensor:
    """The loss to minimise, ``-(MI_pull - alpha * MI_push)`` (Eq. 4.5, ``alpha = 0.05``; ``alpha = 0`` is the
    IIC-like ablation)."""
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    pull = pull_term(views)
    return -pull if alpha == 0 else -(pull - alpha * push_term(views))

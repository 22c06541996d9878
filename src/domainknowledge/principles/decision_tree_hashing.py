"""The Deep Decision Tree Layer (DDTL) for semantic hashing (Darlow 2022, Ch. 3, Sec. 3.1).

A backbone ``f`` gives a representation; two linear heads give the class logits (``g_2``) and one logit per
internal node of a binary decision tree (``g_1``, Eq. 3.4). The *Loss function* principle enters through
Eq. 3.17: cross-entropy on the classes plus a contrastive loss on the tree's leaf probabilities computed
*within* each class of the batch, which spreads the images of a class over the leaves instead of
re-learning the class.

* :func:`leaf_probabilities`: ``z_k``, the product of branch probabilities along the root-to-leaf path of
  leaf ``k`` (Eq. 3.5); the right branch of node ``i`` has probability ``sigmoid(u_i)``.
* :func:`greedy_path_bits`: the hard path of Eq. 3.6-3.7: at each node go right iff ``sigmoid(u_i) > 0.5``
  (threshold ``H`` of Eq. 3.3), root to leaf; :func:`leaf_index` turns the bits into the leaf reached.
* :func:`class_bits`: the binary code of the predicted class (Eq. 3.9), least significant bit first.
* :func:`hash_codes`: ``h = h_sup (+) h_path`` (Eq. 3.13).
* :func:`within_class_contrastive_loss` and :func:`ddtl_loss`: Eqs. 3.14-3.17.
* :class:`RepeatedPCATree`: the rPCA codes of the CrPCA baseline (Sec. 3.3.1).

**Tree size (erratum).** Sec. 3.1 gives ``u`` ``2^d - 1`` entries, ``z`` ``2^(d-1)`` leaves and a path of
``d - 1`` bits, which cannot all hold for one ``d``. Here ``depth`` is the number of decisions: a tree of
depth ``d`` has ``2^d - 1`` internal nodes (node logits), ``2^d`` leaves and ``d`` path bits. The thesis'
"decision tree of depth 12" with 16-bit CIFAR-10 codes (4 class bits + 12 path bits) fits this reading.
Nodes are stored in breadth-first (heap) order: node 0 is the root, the children of node ``i`` are
``2i + 1`` (left, ``s = 0``) and ``2i + 2`` (right, ``s = 1``); leaves are numbered left to right, so leaf
``k``'s path bits are the binary digits of ``k``, most significant (root) first.

**Class bits (erratum).** Eq. 3.9 lists exponents ``0 .. floor(log2 m) + 1``, one more than the length
``floor(log2 m) + 1`` it states; :func:`class_bits` uses exponents ``0 .. floor(log2 m)``: 4 bits for
``m = 10``, 7 for ``m = 100``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from domainknowledge.principles.pretext import nt_xent_loss

__all__ = ["RepeatedPCATree", "class_bit_count", "class_bits", "ddtl_loss", "greedy_path_bits", "hash_codes",
           "leaf_index", "leaf_probabilities", "node_count", "within_class_contrastive_loss"]


def node_count(depth: int) -> int:
    """Internal nodes (node logits) of a tree with ``depth`` decisions: ``2^depth - 1``."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    return 2 ** depth - 1


def _depth_of(node_logits: torch.Tensor) -> int:
    if node_logits.ndim != 2:
        raise ValueError(f"node_logits must be (B, 2^depth - 1), got {tuple(node_logits.shape)}")
    depth = int(round(math.log2(node_logits.shape[1] + 1)))
    if 2 ** depth - 1 != node_logits.shape[1]:
        raise ValueError(f"node_logits has {node_logits.shape[1]} columns; a full binary tree has 2^depth - 1")
    return depth


def leaf_probabilities(node_logits: torch.Tensor) -> torch.Tensor:
    """``z`` of Eq. 3.5: ``(B, 2^d)`` leaf probabilities from ``(B, 2^d - 1)`` node logits (heap order).

    Computed level by level in log space (``log sigmoid``), so deep trees do not underflow; each row sums
    to one.
    """
    depth = _depth_of(node_logits)
    log_right, log_left = F.logsigmoid(node_logits), F.logsigmoid(-node_logits)
    log_z = node_logits.new_zeros(node_logits.shape[0], 1)
    for level in range(depth):
        nodes = slice(2 ** level - 1, 2 ** (level + 1) - 1)                # this level's nodes, left to right
        children = torch.stack([log_z + log_left[:, nodes], log_z + log_right[:, nodes]], dim=2)
        log_z = children.reshape(node_logits.shape[0], -1)                 # (B, 2^(level+1)), left child first
    return log_z.exp()


def greedy_path_bits(node_logits: torch.Tensor) -> torch.Tensor:
    """``h_path`` of Eqs. 3.6-3.7: ``(B, d)`` uint8 decisions root to leaf, 1 = right, taking the right branch
    iff ``sigmoid(u_i) > 0.5`` (i.e. ``u_i > 0``) at each node on the way (Fig. 3.3). This greedy path can
    end at a leaf other than ``argmax z``."""
    depth = _depth_of(node_logits)
    node = torch.zeros(node_logits.shape[0], dtype=torch.long, device=node_logits.device)
    bits = []
    for _ in range(depth):
        right = (node_logits.gather(1, node[:, None])[:, 0] > 0).long()
        bits.append(right)
        node = 2 * node + 1 + right
    return torch.stack(bits, dim=1).to(torch.uint8)


def leaf_index(path_bits) -> np.ndarray:
    """The leaf reached by ``(N, d)`` path bits: the bits read as a binary number, root bit most significant."""
    bits = np.asarray(path_bits.cpu() if hasattr(path_bits, "cpu") else path_bits, dtype=np.int64)
    return bits @ (2 ** np.arange(bits.shape[1] - 1, -1, -1))


def class_bit_count(num_classes: int) -> int:
    """``floor(log2 m) + 1`` bits for ``m`` classes (Eq. 3.9 with its erratum resolved, module docstring)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return int(math.floor(math.log2(num_classes))) + 1


def class_bits(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``h_single`` of Eq. 3.9: ``(B,)`` class indices -> ``(B, floor(log2 m) + 1)`` uint8 bits,
    ``(y // 2^0) mod 2`` first."""
    if classes.ndim != 1:
        raise ValueError(f"classes must be (B,), got {tuple(classes.shape)}")
    if len(classes) and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
        raise ValueError(f"class indices must lie in [0, {num_classes})")
    exponents = torch.arange(class_bit_count(num_classes), device=classes.device)
    return ((classes[:, None] // (2 ** exponents)) % 2).to(torch.uint8)


def hash_codes(class_logits: torch.Tensor, node_logits: torch.Tensor) -> torch.Tensor:
    """The DDTL hash ``h = h_sup (+) h_path`` (Eq. 3.13): ``(B, floor(log2 m) + 1 + d)`` uint8, the bits of
    ``argmax`` of the ``(B, m)`` class logits followed by the greedy path through the ``(B, 2^d - 1)`` node
    logits. The code is ordered: class first, then the tree from root to leaf."""
    if class_logits.ndim != 2 or class_logits.shape[0] != node_logits.shape[0]:
        raise ValueError(f"class_logits must be (B, m) with the batch of node_logits, got {tuple(class_logits.shape)}")
    predicted = class_logits.argmax(dim=1)
    return torch.cat([class_bits(predicted, class_logits.shape[1]), greedy_path_bits(node_logits)], dim=1)


def within_class_contrastive_loss(leaves_a: torch.Tensor, leaves_b: torch.Tensor, labels: torch.Tensor,
                                  temperature: float = 1.0) -> torch.Tensor:
    """The contrastive term of Eq. 3.17: SimCLR's NT-Xent (Eqs. 3.14-3.16, cosine similarity, temperature
    ``tau = 1`` in the thesis) on the leaf probabilities ``(B, L)`` of two augmentations of each image,
    computed separately among the images of each class in the batch and averaged over the classes.

    Negatives thus come only from the same class, so the tree learns what distinguishes images *within* a
    class. A class with a single image in the batch has no negatives and is skipped; a batch with no class
    of two or more images gives 0.
    """
    if leaves_a.shape != leaves_b.shape or leaves_a.ndim != 2 or labels.shape != leaves_a.shape[:1]:
        raise ValueError(f"leaves_a and leaves_b must be (B, L) and labels (B,), got {tuple(leaves_a.shape)}, "
                         f"{tuple(leaves_b.shape)}, {tuple(labels.shape)}")
    losses = []
    for label in torch.unique(labels):
        members = labels == label
        if int(members.sum()) >= 2:
            losses.append(nt_xent_loss(leaves_a[members], leaves_b[members], temperature))
    return torch.stack(losses).mean() if losses else leaves_a.sum() * 0.0


def ddtl_loss(class_logits: torch.Tensor, labels: torch.Tensor, leaves_a: torch.Tensor, leaves_b: torch.Tensor, *,
              alpha: float = 1.0, beta: float = 0.1, temperature: float = 1.0) -> torch.Tensor:
    """Eq. 3.17 for single-label data: ``alpha * CE(class_logits, labels) + beta *`` the within-class
    contrastive loss on the leaf probabilities of two views (``alpha = 1``, ``beta = 0.1``, ``tau = 1`` in the
    thesis). ``class_logits`` ``(B, m)`` may come from either view."""
    return (alpha * F.cross_entropy(class_logits, labels)
            + beta * within_class_contrastive_loss(leaves_a, leaves_b, labels, temperature))


class RepeatedPCATree:
    """Repeated PCA (rPCA, Sec. 3.3.1): a divisive binary tree on continuous features.

    :meth:`fit` projects the features on their first principal component, splits them at the median into two
    halves of equal size, and recurses into each half with a fresh PCA until ``depth`` splits; every split is
    one path bit (1 = above the median). :meth:`encode` sends new features down the fitted tree: ``(N, D)``
    float -> ``(N, depth)`` uint8 bits, root first. A node with fewer than two training points reuses its
    parent's direction and threshold.
    """

    def __init__(self, depth: int):
        node_count(depth)
        self.depth = depth
        self.means: np.ndarray | None = None
        self.directions: np.ndarray | None = None
        self.thresholds: np.ndarray | None = None

    def fit(self, features) -> "RepeatedPCATree":
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"features must be (N >= 2, D), got {x.shape}")
        nodes = node_count(self.depth)
        self.means = np.zeros((nodes, x.shape[1]))
        self.directions = np.zeros((nodes, x.shape[1]))
        self.thresholds = np.zeros(nodes)
        members = {0: np.arange(x.shape[0])}
        for node in range(nodes):
            index = members.pop(node)
            if len(index) >= 2:
                mean = x[index].mean(axis=0)
                _, _, vt = np.linalg.svd(x[index] - mean, full_matrices=False)
                direction = vt[0] * (np.sign(vt[0][np.argmax(np.abs(vt[0]))]) or 1.0)   # a fixed sign
                projection = (x[index] - mean) @ direction
                self.means[node], self.directions[node] = mean, direction
                self.thresholds[node] = np.median(projection)
            else:                                                                     # inherit the parent's split
                parent = (node - 1) // 2
                self.means[node], self.directions[node] = self.means[parent], self.directions[parent]
                self.thresholds[node] = self.thresholds[parent]
                projection = (x[index] - self.means[node]) @ self.directions[node]
            if 2 * node + 1 < nodes:                                                  # children are internal
                right = projection > self.thresholds[node]
                members[2 * node + 1], members[2 * node + 2] = index[~right], index[right]
        return self

    def encode(self, features) -> np.ndarray:
        if self.means is None:
            raise RuntimeError("fit the tree before encoding")
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(f"features must be (N, {self.means.shape[1]}), got {x.shape}")
        node = np.zeros(x.shape[0], dtype=np.int64)
        bits = np.zeros((x.shape[0], self.depth), dtype=np.uint8)
        for level in range(self.depth):
            projection = np.einsum("nd,nd->n", x - self.means[node], self.directions[node])
            right = projection > self.thresholds[node]
            bits[:, level] = right
            node = 2 * node + 1 + right
        return bits

"""The Deep Decision Tree Layer (Darlow 2022, Ch. 3) and the hash-code metrics, on known answers."""

import math

import numpy as np
import pytest
import torch

from domainknowledge import metrics
from domainknowledge.principles import decision_tree_hashing as ddtl


def test_tree_sizes_follow_the_resolved_erratum():
    # depth 12: 4,095 node logits, 4,096 leaves, 12 path bits; with 4 class bits the CIFAR-10 code is 16 bits
    assert ddtl.node_count(12) == 4095
    logits = torch.zeros(2, 4095)
    assert ddtl.leaf_probabilities(logits).shape == (2, 4096)
    assert ddtl.greedy_path_bits(logits).shape == (2, 12)
    assert ddtl.hash_codes(torch.zeros(2, 10), logits).shape == (2, 16)
    assert ddtl.class_bit_count(10) == 4 and ddtl.class_bit_count(100) == 7 and ddtl.class_bit_count(2) == 2


def test_leaf_probabilities_by_hand_for_depth_two():
    # root right-probability 0.8; left child 0.3, right child 0.6 (heap order)
    u = torch.logit(torch.tensor([[0.8, 0.3, 0.6]], dtype=torch.float64))
    z = ddtl.leaf_probabilities(u)[0]
    expected = [0.2 * 0.7, 0.2 * 0.3, 0.8 * 0.4, 0.8 * 0.6]
    assert torch.allclose(z, torch.tensor(expected, dtype=torch.float64))


def test_leaf_probabilities_sum_to_one_and_are_even_for_zero_logits():
    z = ddtl.leaf_probabilities(torch.randn(5, 63, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(z.sum(dim=1), torch.ones(5), atol=1e-6)
    even = ddtl.leaf_probabilities(torch.zeros(1, 31))
    assert torch.allclose(even, torch.full((1, 32), 1 / 32))


def test_greedy_path_follows_the_thresholds_and_can_differ_from_argmax_z():
    # right-probabilities: root 0.55, left child 0.01, right child 0.1 -> right at the root, then left
    u = torch.logit(torch.tensor([[0.55, 0.01, 0.1]]))
    bits = ddtl.greedy_path_bits(u)
    assert bits.tolist() == [[1, 0]]
    assert ddtl.leaf_index(bits).tolist() == [2]
    # a root barely right and an undecided right child: the greedy path ends in leaf 3 (0.51 * 0.5001),
    # while the most probable leaf is leaf 0 (0.49 * 0.999)
    u = torch.logit(torch.tensor([[0.51, 0.001, 0.5001]]))
    z = ddtl.leaf_probabilities(u)
    assert int(z.argmax()) == 0
    assert ddtl.leaf_index(ddtl.greedy_path_bits(u)).tolist() == [3]


def test_class_bits_are_the_binary_code_least_significant_first():
    bits = ddtl.class_bits(torch.tensor([0, 1, 6, 9]), 10)
    assert bits.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]]
    with pytest.raises(ValueError, match="class indices"):
        ddtl.class_bits(torch.tensor([10]), 10)


def test_contrastive_loss_is_computed_within_classes():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(6, 8, generator=generator), torch.rand(6, 8, generator=generator)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    from domainknowledge.principles.pretext import nt_xent_loss

    expected = (nt_xent_loss(a[:3], b[:3], 1.0) + nt_xent_loss(a[3:5], b[3:5], 1.0)) / 2   # class 2 has no negatives
    assert ddtl.within_class_contrastive_loss(a, b, labels) == pytest.approx(expected.item())
    assert ddtl.within_class_contrastive_loss(a, b, torch.arange(6)).item() == 0.0
    # images of other classes never act as negatives: changing them leaves class 0's term unchanged
    a2 = a.clone()
    a2[3:] = torch.rand(3, 8, generator=generator)
    assert ddtl.within_class_contrastive_loss(a2[:3], b[:3], labels[:3]) == pytest.approx(
        nt_xent_loss(a[:3], b[:3], 1.0).item())


def test_ddtl_loss_with_beta_zero_is_cross_entropy():
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    z = torch.rand(4, 8)
    assert ddtl.ddtl_loss(logits, labels, z, z, beta=0.0) == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item())


def test_repeated_pca_splits_each_node_in_half():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1024, 5)) * np.array([5.0, 3.0, 1.0, 1.0, 1.0])
    tree = ddtl.RepeatedPCATree(depth=3).fit(features)
    bits = tree.encode(features)
    leaves = np.bincount(ddtl.leaf_index(bits), minlength=8)
    assert leaves.tolist() == [128] * 8                     # median splits: every leaf gets an eighth
    # the root splits along the direction of largest variance (the first axis)
    assert abs(tree.directions[0][0]) > 0.99
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        tree.encode(features[:, :3])


# --- metrics ------------------------------------------------------------------------------------------


def test_lexicographic_ranking_prefers_longer_common_prefixes():
    query = np.array([[1, 0, 1, 1]])
    database = np.array([[0, 0, 1, 1],    # differs in the first bit: last
                         [1, 0, 0, 0],    # agrees on 2 bits
                         [1, 0, 1, 0],    # agrees on 3 bits
                         [1, 0, 1, 1]])   # identical: first
    assert metrics.retrieval_ranking(query, database).tolist() == [[3, 2, 1, 0]]
    # Hamming distance instead ranks [0] (1 bit) before [1] (2 bits)
    assert metrics.retrieval_ranking(query, database, "hamming").tolist() == [[3, 0, 2, 1]]


def test_map_at_k_by_hand():
    # one query of class 1; ranking (Hamming) gives classes [1, 0, 1, 0]: AP@4 = (1/1 + 2/3) / 2
    query, database = np.array([[0, 0]]), np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    labels = np.array([1, 0, 1, 0])
    assert metrics.mean_average_precision_at_k(query, [1], database, labels, 4, order="hamming") == pytest.approx(
        (1 + 2 / 3) / 2)
    assert metrics.mean_average_precision_at_k(query, [1], database, labels, 1, order="hamming") == 1.0
    assert metrics.mean_average_precision_at_k(query, [7], database, labels, 4) == 0.0
    assert metrics.hamming_nearest_neighbour_accuracy(query, [1], database, labels) == 1.0


def test_hash_code_quality_by_hand():
    codes = np.array([[0, 0], [0, 0], [0, 1], [1, 1]])
    quality = metrics.hash_code_quality(codes)
    assert quality["entropy_bits"] == pytest.approx(1.5)
    assert quality["unique_percent"] == pytest.approx(75.0)
    assert quality["mean_bucket_size"] == pytest.approx((4 + 1 + 1) / 4)
    # an evenly split tree has maximal entropy: every code once
    all_codes = np.array([[(i >> b) & 1 for b in range(4)] for i in range(16)])
    assert metrics.hash_code_quality(all_codes)["entropy_bits"] == pytest.approx(math.log2(16))
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics.hash_code_quality(np.array([[0, 2]]))

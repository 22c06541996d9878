"""DHOG's mutual-information objective (Darlow 2022, Ch. 4) and the clustering metrics, on known answers."""

import math

import numpy as np
import pytest
import torch

from domainknowledge import metrics
from domainknowledge.principles import hierarchical_grouping as dhog


def one_hot(labels, classes):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), classes).double()


def test_mutual_information_of_identical_uniform_labels_is_log_c():
    labels = torch.arange(40) % 4
    z = one_hot(labels, 4)
    assert dhog.mutual_information(z, z).item() == pytest.approx(math.log(4), abs=1e-5)


def test_mutual_information_of_independent_labels_is_zero():
    # every pair (u, v) appears equally often: P = 1/16 everywhere
    first = one_hot(torch.arange(16) % 4, 4)
    second = one_hot(torch.arange(16) // 4, 4)
    assert dhog.mutual_information(first, second, symmetric=False).item() == pytest.approx(0.0, abs=1e-5)


def test_mutual_information_ignores_a_relabelling_of_clusters_only_between_heads():
    labels = torch.arange(30) % 3
    permuted = (labels + 1) % 3
    a, b = one_hot(labels, 3), one_hot(permuted, 3)
    assert dhog.mutual_information(a, b, symmetric=False).item() == pytest.approx(math.log(3), abs=1e-5)
    # symmetrising a permuted joint mixes it: two augmentations must agree on cluster identities
    assert dhog.mutual_information(a, b, symmetric=True).item() < math.log(3) - 0.1


def test_pull_averages_pairs_and_heads():
    z = one_hot(torch.arange(20) % 2, 2)
    noise = torch.full_like(z, 0.5)
    views = [[z, z, z], [z, noise, noise]]                      # head 2: only the first view is informative
    expected_head_1 = math.log(2)
    expected_head_2 = 0.0                                       # every pair involves an uninformative view
    assert dhog.pull_term(views).item() == pytest.approx((expected_head_1 + expected_head_2) / 2, abs=1e-5)


def test_push_compares_with_earlier_heads_only_and_stops_their_gradient():
    first = torch.softmax(torch.randn(32, 3, generator=torch.Generator().manual_seed(0)), dim=1).requires_grad_()
    second = torch.softmax(torch.randn(32, 3, generator=torch.Generator().manual_seed(1)), dim=1).requires_grad_()
    push = dhog.push_term([[first], [second]])
    assert push.item() == pytest.approx(dhog.mutual_information(second, first, symmetric=False).item(), abs=1e-6)   # float32
    push.backward()
    assert (first.grad is None or not first.grad.any()) and second.grad.abs().sum() > 0
    assert dhog.push_term([[first]]).item() == 0.0


def test_dhog_loss_with_alpha_zero_is_the_negative_pull():
    z = one_hot(torch.arange(12) % 3, 3)
    views = [[z, z], [z, z]]
    assert dhog.dhog_loss(views, alpha=0.0).item() == pytest.approx(-math.log(3), abs=1e-5)
    # two identical heads: the push term is log 3 for head 2, so the loss rises by alpha * log 3
    assert dhog.dhog_loss(views).item() == pytest.approx(-math.log(3) + 0.05 * math.log(3), abs=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        dhog.dhog_loss(views, alpha=-1)


def test_hungarian_accuracy_by_hand():
    clusters = np.array([2, 2, 0, 0, 1, 1, 1])
    labels = np.array([0, 0, 1, 1, 2, 2, 0])
    mapping = metrics.hungarian_mapping(clusters, labels)
    assert mapping.tolist() == [1, 2, 0]
    assert metrics.hungarian_accuracy(clusters, labels) == pytest.approx(6 / 7)
    # a mapping fitted elsewhere is applied as it is
    assert metrics.hungarian_accuracy(np.array([0, 1]), np.array([1, 1]), mapping=mapping) == pytest.approx(0.5)


def test_nmi_and_ari_of_identical_and_permuted_partitions():
    labels = np.repeat(np.arange(4), 25)
    permuted = (labels + 2) % 4
    assert metrics.normalized_mutual_information(permuted, labels) == pytest.approx(1.0)
    assert metrics.adjusted_rand_index(permuted, labels) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert abs(metrics.adjusted_rand_index(rng.integers(0, 4, 400), rng.integers(0, 4, 400))) < 0.05


def test_batched_pull_and_push_equal_the_pairwise_definitions_with_their_gradients():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 3, 24, 5, generator=generator, dtype=torch.float64, requires_grad=True)   # (k, A, B, C)
    views = [[logits[i, a].softmax(dim=1) for a in range(3)] for i in range(4)]
    pull_by_pairs = torch.stack([torch.stack([dhog.mutual_information(views[i][a], views[i][b], symmetric=True)
                                              for a, b in ((0, 1), (0, 2), (1, 2))]).mean() for i in range(4)]).mean()
    push_by_pairs = sum(torch.stack([torch.stack([dhog.mutual_information(views[i][a], views[j][a].detach(), symmetric=False)
                                                  for j in range(i)]).mean() for a in range(3)]).mean()
                        for i in range(1, 4))
    expected = -(pull_by_pairs - 0.05 * push_by_pairs)
    measured = dhog.dhog_loss(views, alpha=0.05)
    assert measured.item() == pytest.approx(expected.item(), rel=1e-10)
    expected_grad, = torch.autograd.grad(expected, logits, retain_graph=True)
    measured_grad, = torch.autograd.grad(measured, logits)
    assert torch.allclose(measured_grad, expected_grad, atol=1e-12)
    with pytest.raises(ValueError, match="same number of augmentations"):
        dhog.pull_term([views[0], views[1][:2]])


def test_paired_effect_size_is_mean_over_sd_of_the_differences():
    from domainknowledge import significance

    assert significance.paired_effect_size([1.0, 3.0]) == pytest.approx(2.0 / math.sqrt(2.0))
    assert significance.paired_effect_size([0.5, 0.5]) == math.inf
    assert math.isnan(significance.paired_effect_size([0.5])) and math.isnan(significance.paired_effect_size([0.0, 0.0]))

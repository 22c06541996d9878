"""Deep hashing baselines of Darlow 2022, Table 3.4, on known answers."""

import math

import pytest
import torch
import torch.nn.functional as F

from domainknowledge.principles import hashing_baselines as hb


def test_binarize_and_straight_through_sign():
    values = torch.tensor([[-0.3, 0.0, 2.0]], requires_grad=True)
    assert hb.binarize(values).tolist() == [[0, 0, 1]]
    signs = hb.sign_straight_through(values)
    assert signs.tolist() == [[-1.0, 1.0, 1.0]]
    (signs * torch.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    assert values.grad.tolist() == [[1.0, 2.0, 3.0]]          # identity gradient


def test_dsh_by_hand():
    labels = torch.tensor([0, 0, 1])
    u = torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    # similar pair at distance 0 costs 0; dissimilar pairs at squared distance 8 >= m = 4 cost 0; |u| = 1
    assert hb.dsh_loss(u, labels).item() == pytest.approx(0.0)
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # pairs (0,1) similar d2 = 2 -> 1; (0,2) dissimilar d2 = 0 -> 2; (1,2) dissimilar d2 = 2 -> 1; each twice
    expected_pairs = (1 + 2 + 1) / 3
    expected_regulariser = 0.01 * (0 + 1 + 1 + 0 + 0 + 1) / 6
    assert hb.dsh_loss(v, labels).item() == pytest.approx(expected_pairs + expected_regulariser)


def test_dpsh_by_hand():
    u = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    # theta = 1 for the similar pair: softplus(1) - 1; codes already binary: no quantisation cost
    assert hb.dpsh_loss(u, torch.tensor([3, 3])).item() == pytest.approx(math.log1p(math.e) - 1)
    assert hb.dpsh_loss(u, torch.tensor([3, 4])).item() == pytest.approx(math.log1p(math.e))


def test_hashnet_weights_balance_similar_and_dissimilar_pairs():
    assert hb.hashnet_beta(0) == 1.0 and hb.hashnet_beta(1000) > hb.hashnet_beta(10) > 1.0
    # one similar pair among many dissimilar ones: with the weights, each kind contributes half
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    u = torch.zeros(6, 4)                                       # theta = 0 everywhere: every pair costs log 2
    assert hb.hashnet_loss(u, labels, beta=1.0).item() == pytest.approx(math.log(2))


def test_dch_prefers_close_similar_and_far_dissimilar_pairs():
    labels = torch.tensor([0, 0, 1])
    good = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]])
    bad = torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    assert hb.dch_loss(good, labels).item() < hb.dch_loss(bad, labels).item()


def test_dtsh_without_triplets_is_only_quantisation():
    u = torch.tensor([[0.5, -0.5], [0.5, 0.5]])
    assert hb.dtsh_loss(u, torch.tensor([0, 1])).item() == pytest.approx(0.25)   # mean (0.5 - 1)^2
    # anchor 0, positive 1, negative 2 (and the symmetric triplet): theta_ij = 1, theta_ik = -1, margin 1
    codes = torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    expected = F.softplus(torch.tensor(-(1.0 - (-1.0) - 1.0))).item()
    assert hb.dtsh_loss(codes, torch.tensor([0, 0, 1]), margin=1.0).item() == pytest.approx(expected)


def test_the_greedy_hash_penalty_is_zero_on_binary_outputs():
    u = torch.tensor([[1.0, -1.0]])
    logits, labels = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    assert hb.greedy_hash_loss(u, logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item())


@pytest.mark.parametrize("loss", ["dsh", "dpsh", "hashnet", "dch", "dtsh"])
def test_each_pairwise_loss_learns_class_codes_on_free_parameters(loss):
    torch.manual_seed(0)
    labels = torch.arange(3).repeat_interleave(8)
    codes = torch.nn.Parameter(torch.randn(24, 12) * 0.1)
    optimizer = torch.optim.Adam([codes], lr=0.05)
    for step in range(150):
        if loss == "hashnet":
            value = hb.hashnet_loss(codes, labels, beta=hb.hashnet_beta(step))
        else:
            value = getattr(hb, f"{loss}_loss")(codes, labels)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    bits = hb.binarize(codes.detach()).float()
    distance = torch.cdist(bits, bits, p=1)
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(24, dtype=torch.bool)
    assert distance[same & off].mean() + 2 < distance[~same].mean()


def test_pairwise_losses_need_two_examples():
    with pytest.raises(ValueError, match="at least two"):
        hb.dsh_loss(torch.zeros(1, 4), torch.tensor([0]))


def test_dtsh_samples_at_most_max_triplets_and_matches_all_triplets_when_few():
    torch.manual_seed(0)
    u, labels = torch.randn(12, 6), torch.arange(12) % 3
    full = hb.dtsh_loss(u, labels, max_triplets=None)
    assert hb.dtsh_loss(u, labels, max_triplets=10_000).item() == pytest.approx(full.item())   # 12*3*8 < 10,000
    sampled = hb.dtsh_loss(u, labels, max_triplets=50)
    assert abs(sampled.item() - full.item()) < 0.5 * full.item()

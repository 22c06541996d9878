"""SimLoss and its similarity matrices (Kobs 2023, Sec. 14.1): properties with known answers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domainknowledge.principles.losses import (
    SimLoss,
    bounded_similarity,
    check_similarity_matrix,
    cosine_similarity_matrix,
    cross_entropy_identity_gap,
    gradient_equivalence_gap,
    ordinal_similarity,
    probability_matrix_loss,
    semantic_similarity,
    simloss,
)


def random_batch(num_classes=7, batch_size=32, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    logits = 4.0 * torch.randn(batch_size, num_classes, generator=generator, dtype=dtype)
    targets = torch.randint(num_classes, (batch_size,), generator=generator)
    return logits, targets


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_identity_matrix_gives_cross_entropy(seed, reduction):
    logits, targets = random_batch(seed=seed)
    identity = torch.eye(logits.shape[1], dtype=torch.float64)
    torch.testing.assert_close(simloss(logits, targets, identity, reduction=reduction),
                               F.cross_entropy(logits, targets, reduction=reduction), rtol=0, atol=1e-12)


def test_module_matches_function_and_cross_entropy_in_float32():
    logits, targets = random_batch(num_classes=5, dtype=torch.float32)
    loss = SimLoss(torch.eye(5))
    torch.testing.assert_close(loss(logits, targets), F.cross_entropy(logits, targets), rtol=1e-6, atol=1e-6)


def test_hand_computed_value():
    # p = softmax(0, 0, 0) = 1/3 each; S[0] = (1, 0.5, 0): loss = -log(1/3 + 0.5/3) = -log(0.5)
    similarity = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]])
    value = simloss(torch.zeros(1, 3), torch.tensor([0]), similarity)
    assert value.item() == pytest.approx(np.log(2.0), abs=1e-6)


@pytest.mark.parametrize("reduction_factor", [0.3, 0.8, 0.95])
def test_row_normalised_matrix_has_the_same_gradients(reduction_factor):
    """Eq. 14.9: L_prob and L_SimLoss differ by a constant, so their gradients agree."""
    gaps = gradient_equivalence_gap(num_classes=9, reduction_factor=reduction_factor, batch_size=64, seed=1)
    assert gaps["max_gradient_difference"] < 1e-12
    assert gaps["offset_error"] < 1e-10 and gaps["offset"] > 0          # Eq. 14.7: a positive constant


def test_identity_matrix_gives_cross_entropy_on_the_chapter_batch():
    assert cross_entropy_identity_gap() < 1e-12      # the check the SimLoss chapter shows (Eq. 14.2 vs 14.1)


def test_loss_is_non_negative_and_zero_for_a_confident_correct_prediction():
    similarity = ordinal_similarity(6, 0.7)
    logits, targets = random_batch(num_classes=6, batch_size=200, seed=2, dtype=torch.float32)
    assert torch.all(simloss(logits, targets, similarity, reduction="none") >= 0)
    one_hot_logits = torch.full((6, 6), -1e4)
    one_hot_logits[torch.arange(6), torch.arange(6)] = 1e4
    assert simloss(one_hot_logits, torch.arange(6), similarity).item() == pytest.approx(0.0, abs=1e-6)


def test_probability_matrix_loss_cannot_reach_zero():
    similarity = ordinal_similarity(4, 0.5)
    logits = torch.full((1, 4), -1e4)
    logits[0, 1] = 1e4
    value = probability_matrix_loss(logits, torch.tensor([1]), similarity).item()
    assert value == pytest.approx(np.log(similarity[1].sum().item()), abs=1e-6) and value > 0


def test_similar_mistakes_cost_less():
    similarity = ordinal_similarity(10, 0.8)
    near, far = torch.full((1, 10), -20.0), torch.full((1, 10), -20.0)
    near[0, 4], far[0, 9] = 20.0, 20.0
    target = torch.tensor([3])
    assert simloss(near, target, similarity) < simloss(far, target, similarity)


def test_extreme_logits_stay_finite_with_zero_similarities():
    logits = torch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    value = simloss(logits, torch.tensor([1]), torch.eye(3))
    value.backward()
    assert torch.isfinite(value) and torch.all(torch.isfinite(logits.grad))


def test_ordinal_matrix_entries():
    similarity = ordinal_similarity(5, 0.5)
    expected = torch.tensor([[0.5 ** abs(i - j) for j in range(5)] for i in range(5)])
    torch.testing.assert_close(similarity, expected)
    torch.testing.assert_close(ordinal_similarity(4, 0.0), torch.eye(4))        # 0^0 = 1
    assert torch.equal(similarity, similarity.T)


def test_semantic_matrix_properties():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(8, 16))
    for lower_bound in (0.0, 0.3, 0.9):
        similarity = semantic_similarity(embeddings, lower_bound)
        assert torch.all(torch.diagonal(similarity) == 1)
        assert torch.all((similarity >= 0) & (similarity <= 1))
        check_similarity_matrix(similarity)


def test_semantic_matrix_cut_off_and_scaling():
    angles = np.deg2rad([0.0, 60.0, 120.0])               # cosines with the first vector: 1, 0.5, -0.5
    embeddings = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    similarity = semantic_similarity(embeddings, lower_bound=0.2)
    assert similarity[0, 1].item() == pytest.approx((0.5 - 0.2) / 0.8, abs=1e-6)
    assert similarity[0, 2].item() == 0.0                 # max(0, cos) cuts the negative cosine
    above_every_pair = semantic_similarity(embeddings, lower_bound=0.6)
    torch.testing.assert_close(above_every_pair, torch.eye(3))   # l >= max off-diagonal: cross-entropy


def test_cosine_matrix_of_orthogonal_vectors_is_identity():
    np.testing.assert_allclose(cosine_similarity_matrix(np.eye(4) * 3.0), np.eye(4))


@pytest.mark.parametrize("bad, message", [
    (torch.ones(2, 3), "square"),
    (torch.tensor([[1.0, 1.5], [0.2, 1.0]]), r"\[0, 1\]"),
    (torch.tensor([[1.0, -0.1], [0.2, 1.0]]), r"\[0, 1\]"),
    (torch.tensor([[0.9, 0.1], [0.1, 1.0]]), "diagonal"),
    (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "NaN"),
    (torch.eye(2, dtype=torch.int64), "floating"),
])
def test_invalid_similarity_matrices_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        check_similarity_matrix(bad)


def test_invalid_arguments_raise():
    logits, targets = random_batch(num_classes=3, dtype=torch.float32)
    with pytest.raises(ValueError, match="3 classes"):
        simloss(logits, targets, torch.eye(4))
    with pytest.raises(ValueError, match="reduction"):
        simloss(logits, targets, torch.eye(3), reduction="median")
    with pytest.raises(ValueError, match="targets"):
        simloss(logits, targets[:-1], torch.eye(3))
    with pytest.raises(ValueError, match="reduction factor"):
        ordinal_similarity(5, 1.0)
    with pytest.raises(ValueError, match="reduction factor"):
        ordinal_similarity(5, -0.1)
    with pytest.raises(ValueError, match="lower bound"):
        semantic_similarity(np.eye(3), 1.0)
    with pytest.raises(ValueError, match="non-zero"):
        semantic_similarity(np.zeros((3, 2)), 0.5)
    with pytest.raises(ValueError, match="square"):
        bounded_similarity(np.ones((3, 2)), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bounded_similarity(np.full((3, 3), -0.2), 0.5)
    with pytest.raises(ValueError, match="diagonal"):
        SimLoss(torch.full((3, 3), 0.5))


def test_bounded_similarity_is_eq_14_11_on_any_similarity():
    similarity = np.array([[1.0, 0.9, 0.5], [0.9, 1.0, 0.7], [0.5, 0.7, 1.0]])
    bounded = bounded_similarity(similarity, 0.6).numpy()
    assert np.allclose(bounded, [[1, 0.75, 0], [0.75, 1, 0.25], [0, 0.25, 1]])
    embeddings = np.random.default_rng(0).normal(size=(4, 3))
    assert torch.equal(semantic_similarity(embeddings, 0.2),
                       bounded_similarity(np.maximum(cosine_similarity_matrix(embeddings), 0), 0.2))

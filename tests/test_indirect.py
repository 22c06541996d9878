"""InDiReCT and its baselines (Kobs 2023, Ch. 13, Eqs. 13.1-13.9): known answers."""

import math

import numpy as np
import pytest
import torch

from domainknowledge.principles import indirect


def _subspace_texts(n=20, r=32, k=4, seed=0):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((r, k)))[0]                      # (r, k) orthonormal columns
    return rng.standard_normal((n, k)) @ basis.T, basis


def test_loss_is_zero_for_an_identity_and_right_angle_for_an_orthogonal_projection():
    texts = torch.eye(4)[:2]                                                  # e1, e2 in R^4
    identity = torch.eye(4)
    assert float(indirect.indirect_loss(texts, identity)) < 1e-3              # arccos clamp: ~4.5e-4
    # U keeps e1 only: e1 reconstructs exactly, e2 maps to zero -> normalise(0) = 0 -> arccos(0) = pi/2
    keep_first = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    value = float(indirect.indirect_loss(texts, keep_first))
    assert value == pytest.approx((math.acos(1 - indirect.ACOS_EPS) + math.pi / 2) / 2, abs=1e-4)


def test_texts_in_a_k_dim_subspace_are_reconstructed_at_r_prime_k_and_not_below():
    texts, _ = _subspace_texts()
    exact = indirect.fit_indirect(texts, 4, seed=0)
    assert exact.best_loss < 0.01
    assert exact.matrix.shape == (32, 4)
    squeezed = indirect.fit_indirect(texts, 2, seed=0)
    assert squeezed.best_loss > 0.1                                           # 4 directions do not fit in 2


def test_learnt_projection_suppresses_directions_orthogonal_to_the_prompts():
    texts, basis = _subspace_texts()
    fit = indirect.fit_indirect(texts, 4, seed=0)
    orthogonal = np.linalg.qr(np.column_stack([basis, np.random.default_rng(1).standard_normal((32, 6))]))[0][:, 4:]
    inside = np.linalg.norm(basis.T @ fit.matrix, axis=1).mean()
    outside = np.linalg.norm(orthogonal.T @ fit.matrix, axis=1).mean()
    assert outside < 0.01 * inside
    # an image that only varies orthogonally to the prompts keeps (almost) nothing after Eq. 13.6's product
    image = orthogonal[:, 0]
    assert np.linalg.norm(image @ fit.matrix) < 0.01 * np.linalg.norm(basis[:, 0] @ fit.matrix)


def test_projection_of_an_orthogonal_direction_is_zero_and_rows_are_unit_otherwise():
    projection = np.zeros((4, 2), np.float32)
    projection[0, 0] = projection[1, 1] = 1.0
    out = indirect.apply_projection(np.array([[0, 0, 1, 0], [3, 4, 0, 0]], float), projection)
    assert np.allclose(out[0], 0) and np.allclose(out[1], [0.6, 0.8])


def test_same_seed_same_projection_and_early_stopping():
    texts, _ = _subspace_texts(n=10)
    a, b = indirect.fit_indirect(texts, 3, seed=5), indirect.fit_indirect(texts, 3, seed=5)
    assert np.array_equal(a.matrix, b.matrix) and a.losses == b.losses
    best = int(np.argmin(a.losses))
    assert a.iterations <= best + 1 + indirect.THESIS_PATIENCE
    random_u = indirect.random_projection(32, 3, seed=5)
    assert np.array_equal(random_u.matrix, indirect.random_matrix(32, 3, seed=5).numpy())
    assert abs(random_u.matrix.std() - 0.1) < 0.03


def test_pca_spans_the_prompt_subspace_and_refuses_too_few_prompts():
    texts, basis = _subspace_texts(n=12, k=3)
    fit = indirect.fit_pca(texts, 3)
    normalised = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    centred = normalised - normalised.mean(axis=0)
    # the axes lie in the span of the centred prompts: projecting onto that span changes nothing
    span = np.linalg.qr(centred.T)[0][:, :3]
    assert np.allclose(span @ (span.T @ fit.matrix), fit.matrix, atol=1e-4)
    with pytest.raises(ValueError, match="PCA needs"):
        indirect.fit_pca(texts, 12)


def test_linear_autoencoder_reconstructs_a_subspace_and_encodes_by_eq_13_8():
    texts, _ = _subspace_texts(n=16, k=3)
    fit = indirect.fit_linear_autoencoder(texts, 3, seed=0)
    assert fit.best_loss < 1e-3
    out = fit(texts)
    assert out.shape == (16, 3) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)


def test_autoencoder_runs_and_decays_weights():
    texts, _ = _subspace_texts(n=8, k=2)
    fit = indirect.fit_autoencoder(texts, 2, seed=0, hidden=16, max_iterations=200)
    assert fit.matrix is None and fit(texts).shape == (8, 2) and fit.iterations <= 200


def test_random_embeddings_are_unit_and_seeded():
    a = indirect.random_embeddings(50, 8, seed=1)
    assert np.allclose(np.linalg.norm(a, axis=1), 1) and np.array_equal(a, indirect.random_embeddings(50, 8, seed=1))


def test_normalised_softmax_equals_cross_entropy_of_scaled_cosines():
    embeddings = torch.nn.functional.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    prototypes = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 1, 0, 1])
    unit = torch.nn.functional.normalize(prototypes, dim=-1)
    expected = torch.nn.functional.cross_entropy(embeddings @ unit.T / 0.05, labels)
    assert torch.allclose(indirect.normalised_softmax_loss(embeddings, labels, prototypes), expected)


def test_oracle_separates_labelled_clusters_and_retrieval_scores_known_answer():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    images = rng.standard_normal((60, 16)) * 0.15 + 2 * np.eye(16)[labels]
    fit = indirect.fit_oracle(images, labels, 4, seed=0, max_iterations=300)
    assert indirect.retrieval_scores(fit(images), labels)["map_at_r"] > 0.99
    # two tight, far-apart pairs: perfect retrieval; swapped labels: none
    points = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1]])
    assert indirect.retrieval_scores(points, [0, 0, 1, 1]) == {"map_at_r": 1.0, "precision_at_1": 1.0}
    assert indirect.retrieval_scores(points, [0, 1, 0, 1]) == {"map_at_r": 0.0, "precision_at_1": 0.0}


def test_bad_inputs_say_what_is_wrong():
    texts, _ = _subspace_texts()
    with pytest.raises(ValueError, match="exceeds"):
        indirect.fit_indirect(texts, 64, seed=0)
    with pytest.raises(ValueError, match="2-d"):
        indirect.fit_indirect(texts[0], 2, seed=0)
    with pytest.raises(ValueError, match="rows"):
        indirect.apply_projection(np.ones((3, 5)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="labels"):
        indirect.fit_oracle(np.ones((3, 4)), [0, 1], 2, seed=0)


def test_retrieval_scores_without_the_full_order_match_the_exact_ones():
    rng = np.random.default_rng(3)
    embeddings = rng.standard_normal((60, 5))
    labels = rng.integers(0, 7, 60)
    labels[0] = 99                                                   # a class of one image
    exact = indirect.retrieval_scores(embeddings, labels)
    nearest = indirect.retrieval_scores(embeddings, labels, exact_limit=10)
    assert nearest["map_at_r"] == pytest.approx(exact["map_at_r"]) and nearest["precision_at_1"] == exact["precision_at_1"]

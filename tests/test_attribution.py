"""Integrated Gradients (Eq. 8.1) against known answers: a linear model, the plain-torch reference sum,
completeness on small networks, and the token rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from domainknowledge.principles import attribution


def test_linear_model_attribution_is_input_minus_baseline_times_weight():
    torch.manual_seed(0)
    linear = nn.Linear(6, 3).double()
    x, baseline = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    for method in ("riemann_right", "gausslegendre"):
        result = attribution.integrated_gradients(linear, x, target=2, baselines=baseline, steps=7, method=method)
        expected = (x - baseline) * linear.weight[2].detach()
        # exact up to captum's step weights, which it keeps in float32 (they sum to 1 within ~1e-8)
        assert torch.allclose(result.attributions[0], expected, rtol=0, atol=1e-7)
        assert result.gap.abs().max() < 1e-7           # completeness is exact for a linear function


def test_captum_right_riemann_sum_equals_the_printed_equation():
    torch.manual_seed(1)
    network = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    ours = attribution.integrated_gradients(network, x, target=1, steps=13, method="riemann_right").attributions[0]
    reference = attribution.integrated_gradients_reference(network, x, target=1, steps=13)
    assert torch.allclose(ours, reference, rtol=0, atol=1e-7)


def test_completeness_on_a_small_smooth_network_improves_with_steps():
    torch.manual_seed(2)
    network = nn.Sequential(nn.Linear(4, 16), nn.Softplus(), nn.Linear(16, 3)).double()
    forward = attribution.probability_output(network)
    x = 2 * torch.randn(5, 4, dtype=torch.float64)
    coarse = attribution.integrated_gradients(forward, x, target=torch.tensor([0, 1, 2, 0, 1]), steps=5)
    fine = attribution.integrated_gradients(forward, x, target=torch.tensor([0, 1, 2, 0, 1]), steps=400)
    # the gap is sum(attributions) - (F(x) - F(0)), and F comes out as the softmax probabilities
    assert torch.allclose(fine.total - (fine.output - fine.baseline_output), fine.gap)
    assert torch.allclose(fine.output, torch.softmax(network(x), 1)[torch.arange(5), [0, 1, 2, 0, 1]])
    assert fine.gap.abs().max() < 1e-3
    assert fine.gap.abs().max() < coarse.gap.abs().max()
    legendre = attribution.integrated_gradients(forward, x, target=0, steps=50, method="gausslegendre")
    assert legendre.gap.abs().max() < 1e-6


def test_only_incomplete_examples_are_recomputed_on_a_finer_path():
    """f(x) = sum(x) + 3 sum(relu(x - 0.5)) per class: an example below the kink is linear along its path
    (complete at any step count), one that crosses it is not at 3 points; only the second is recomputed, at
    four times the points, and gets what a direct call with that many points gives."""
    class Kinked(nn.Module):
        def forward(self, x):
            return (x.sum(dim=1) + 3 * torch.relu(x - 0.5).sum(dim=1))[:, None].repeat(1, 2)

    inputs = torch.tensor([[0.4, 0.3, 0.2], [1.0, 0.9, 0.7]])
    coarse = attribution.integrated_gradients(Kinked(), inputs, 0, steps=3, method="riemann_right")
    assert coarse.relative_gap[0] < 1e-6 < attribution.COMPLETENESS_TOLERANCE < coarse.relative_gap[1]
    result, steps = attribution.integrated_gradients_complete(Kinked(), inputs, 0, steps=3, method="riemann_right")
    assert steps.tolist() == [3, 12]
    direct = attribution.integrated_gradients(Kinked(), inputs[1:], 0, steps=12, method="riemann_right")
    torch.testing.assert_close(result.attributions[0][1:], direct.attributions[0])
    torch.testing.assert_close(result.attributions[0][:1], coarse.attributions[0][:1])
    assert result.relative_gap[1] < coarse.relative_gap[1]


def test_per_input_attribution_holds_the_other_inputs_at_their_real_values():
    """Known answer on f(a, b) = sum(a * b * w): with b held real, f is linear in a, so IG of a alone is
    a * b * w exactly and sums to f(a, b) - f(0, b); interpolating both together instead gives half of it
    (the path t a, t b makes f = t^2 sum(a b w), whose derivative in a integrates to 1/2)."""
    torch.manual_seed(4)
    w = torch.randn(2, 5, dtype=torch.float64)

    def forward(a, b):
        return (a * b) @ w.T

    a, b = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    per_a, per_b = attribution.integrated_gradients_per_input(forward, (a, b), target=1, steps=8, method="gausslegendre")
    assert len(per_a.attributions) == 1
    assert torch.allclose(per_a.attributions[0], a * b * w[1], rtol=0, atol=1e-7)
    assert torch.allclose(per_b.attributions[0], a * b * w[1], rtol=0, atol=1e-7)
    # completeness per input: the baseline output is f with only that input at its baseline, here 0
    assert torch.allclose(per_a.baseline_output, torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(per_a.total, forward(a, b)[:, 1], atol=1e-7) and per_a.gap.abs().max() < 1e-7
    joint = attribution.integrated_gradients(forward, (a, b), target=1, steps=8, method="gausslegendre")
    assert torch.allclose(joint.attributions[0], a * b * w[1] / 2, rtol=0, atol=1e-7)
    # a non-zero baseline for b: IG_b = a * (b - b') * w, summing to f(a, b) - f(a, b')
    b_base = torch.randn(3, 5, dtype=torch.float64)
    _, per_b = attribution.integrated_gradients_per_input(forward, (a, b), target=0, baselines=(torch.zeros_like(a), b_base),
                                                          steps=3, method="riemann_right")
    assert torch.allclose(per_b.attributions[0], a * (b - b_base) * w[0], rtol=0, atol=1e-6)   # float32 step weights
    assert torch.allclose(per_b.baseline_output, forward(a, b_base)[:, 0])


def test_layer_attribution_on_an_embedding_with_zero_baseline():
    torch.manual_seed(3)

    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(10, 4)
            self.output = nn.Linear(4, 2)

        def forward(self, ids):
            return self.output(self.embedding(ids).sum(dim=1))

    model = Bag().double()
    with torch.no_grad():
        model.embedding.weight[0] = 0.0
    ids = torch.tensor([[3, 5, 3], [1, 2, 0]])
    result = attribution.integrated_gradients(model, ids, target=1, baselines=torch.zeros_like(ids),
                                              layer=model.embedding, steps=3)
    # the model is linear in the embeddings: token attribution = embedding * output weight, exactly
    expected = model.embedding.weight[ids].detach() * model.output.weight[1].detach()
    assert torch.allclose(result.attributions[0], expected, rtol=0, atol=1e-7)
    scores = attribution.token_scores(result.attributions[0])
    assert scores.shape == (2, 3) and torch.allclose(scores[0, 0], scores[0, 2])   # same token, same score
    assert scores[1, 2] == 0                                                       # the zero embedding


def test_bad_arguments_are_clear_errors():
    linear = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        attribution.integrated_gradients(linear, torch.randn(2, 3), target=0, method="simpson")
    with pytest.raises(ValueError, match="target must be one class or one per example"):
        attribution.integrated_gradients(linear, torch.randn(2, 3), target=torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="baselines must match"):
        attribution.integrated_gradients(linear, torch.randn(2, 3), target=0, baselines=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(B, L, D\)"):
        attribution.token_scores(torch.zeros(2, 3))


def test_tokens_html_colours_by_sign_and_escapes():
    html = attribution.tokens_html(["good", "<bad>", "flat"], [1.0, -1.0, 0.0])
    spans = html.split("</span>")
    assert "&lt;bad&gt;" in html and "<bad>" not in html
    red_green = [tuple(int(v) for v in s.split("rgb(")[1].split(")")[0].split(",")) for s in spans[:3]]
    assert red_green[0][1] > red_green[0][0]        # positive: green dominates
    assert red_green[1][0] > red_green[1][1]        # negative: red dominates
    with pytest.raises(ValueError, match="3 tokens but 2 scores"):
        attribution.tokens_html(["a", "b", "c"], np.zeros(2))


# --- attribution maps of embedding models (Kobs Ch. 9) ----------------------------------------------------


class _MaskedLinearEmbedding(nn.Module):
    """``(B, 3, 8, 8) -> (B, 4)``: a linear map with a bias that only sees the left half of the image."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(4, 3, 8, 8, generator=generator)
        weight[..., 4:] = 0.0
        self.weight = nn.Parameter(weight.reshape(4, -1))
        self.bias = nn.Parameter(torch.randn(4, generator=generator))

    def forward(self, images):
        return images.flatten(1) @ self.weight.T + self.bias


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine", "dot", "snr"])
def test_embedding_distance_matches_the_retrieval_distance(distance):
    from domainknowledge.metric_learning import pairwise_distance

    embeddings = torch.randn(5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    unit = nn.functional.normalize(embeddings, dim=1)              # the retrieval embeddings are unit vectors
    expected = pairwise_distance(unit.numpy(), distance, rows=[0])[0]
    measured = attribution.embedding_distance(embeddings, embeddings[0], distance).numpy()
    np.testing.assert_allclose(measured[1:], expected[1:], rtol=1e-6, atol=1e-9)
    assert abs(measured[0] - (-1.0 if distance == "dot" else 0.0)) < 1e-5      # an embedding to itself


def test_postprocess_saliency_abs_mean_clip_scale():
    gradients = np.zeros((1, 3, 10, 10))
    gradients[0, :, 0, :] = -2.0                      # row 0: |g| = 2 in every channel
    gradients[0, 0, 1, :] = 3.0                       # row 1: channel mean 1
    gradients[0, :, 9, 9] = 100.0                     # one outlier pixel, above the 99th percentile
    maps = attribution.postprocess_saliency(gradients)
    assert maps.shape == (1, 10, 10) and maps.min() == 0.0 and maps.max() == 1.0
    ceiling = np.percentile(np.abs(gradients).mean(axis=1), 99)
    np.testing.assert_allclose(maps[0, 0, 0], 2.0 / ceiling)      # the outlier no longer sets the scale
    np.testing.assert_allclose(maps[0, 1, 0], 1.0 / ceiling)
    assert attribution.postprocess_saliency(np.zeros((2, 3, 4, 4))).max() == 0.0


def test_dml_attribution_map_without_noise_is_the_plain_distance_gradient():
    network = _MaskedLinearEmbedding()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    maps, gradients = attribution.dml_attribution_maps(network, images, distance="euclidean", samples=1,
                                                       sigma_fraction=0.0, return_gradients=True)
    point = images.clone().requires_grad_(True)
    base = network(torch.zeros(1, 3, 8, 8)).detach()[0]
    attribution.embedding_distance(network(point), base, "euclidean").sum().backward()
    torch.testing.assert_close(gradients, point.grad)
    assert maps.shape == (2, 8, 8) and np.all(maps[:, :, 4:] == 0.0) and maps[:, :, :4].max() == 1.0
    assert all(p.requires_grad for p in network.parameters())         # restored after the call


def test_dml_attribution_maps_are_seeded_per_image_and_ignore_unseen_pixels():
    network = _MaskedLinearEmbedding()
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    together = attribution.dml_attribution_maps(network, images, distance="cosine", samples=8, seed=5)
    alone = attribution.dml_attribution_maps(network, images[1:2], distance="cosine", samples=8, seed=6)
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5)     # float32: a batch of 3 vs 1 sums in another order
    assert np.all(together[:, :, 4:] == 0.0)
    noisy = attribution.dml_attribution_maps(network, images, distance="cosine", samples=8, seed=6)
    assert not np.allclose(noisy, together)
    with pytest.raises(ValueError, match="distance"):
        attribution.dml_attribution_maps(network, images, distance="manhattan")
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        attribution.dml_attribution_maps(network, np.zeros((2, 8, 8)), distance="dot")


# --- comparing attribution maps (Kobs Sec. 9.2) -----------------------------------------------------------


def test_map_correlations_known_answers():
    rng = np.random.default_rng(0)
    a = rng.random((3, 5, 5))
    r = attribution.map_correlations(a, 2.0 * a + 1.0)              # a positive linear map: r = 1
    np.testing.assert_allclose(r, 1.0)
    np.testing.assert_allclose(attribution.map_correlations(a, 1.0 - a), -1.0)
    x = np.array([[0.0, 1.0], [2.0, 3.0]])
    y = np.array([[1.0, 0.0], [3.0, 2.0]])                           # r = 0.6 by hand: cov 1, var 1.25
    np.testing.assert_allclose(attribution.map_correlations(x, y), [0.6])
    np.testing.assert_allclose(attribution.map_correlations(a, a.transpose(0, 2, 1))[0],
                               np.corrcoef(a[0].ravel(), a[0].T.ravel())[0, 1])
    assert np.isnan(attribution.map_correlations(np.zeros((4, 4)), x.repeat(2, 0).repeat(2, 1))[0])
    with pytest.raises(ValueError, match="same shape"):
        attribution.map_correlations(a, a[:2])


def test_fisher_z_mean_known_answers():
    assert attribution.fisher_z_mean([0.3, 0.3, 0.3]) == pytest.approx(0.3)
    assert attribution.fisher_z_mean([0.5, -0.5]) == pytest.approx(0.0, abs=1e-12)
    expected = np.tanh((np.arctanh(0.9) + np.arctanh(0.1)) / 2)        # 0.6 by hand: (1.4722 + 0.1003) / 2
    assert attribution.fisher_z_mean([0.9, 0.1, np.nan]) == pytest.approx(expected)
    assert 0.5 < expected < 0.9                                          # above the plain mean of 0.5
    assert attribution.fisher_z_mean([1.0, 1.0]) == pytest.approx(1.0)   # clipped, not infinite
    np.testing.assert_allclose(attribution.fisher_z_mean(np.array([[0.2, 0.2], [0.5, -0.5]]), axis=1), [0.2, 0.0],
                               atol=1e-12)
    with pytest.raises(ValueError, match="not NaN"):
        attribution.fisher_z_mean([np.nan])


def test_jensen_shannon_divergence_known_answers():
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    b = np.array([[0.0, 0.0], [0.0, 5.0]])
    assert attribution.jensen_shannon_divergence(a, b)[0] == pytest.approx(1.0)      # disjoint: the bound
    assert attribution.jensen_shannon_divergence(a, 3 * a)[0] == pytest.approx(0.0)  # same distribution
    p = np.array([[1.0, 1.0], [0.0, 0.0]])                                           # (1/2, 1/2, 0, 0)
    q = np.array([[1.0, 0.0], [1.0, 0.0]])                                           # (1/2, 0, 1/2, 0)
    # M = (1/2, 1/4, 1/4, 0): KL(P||M) = 1/2 log2(1) + 1/2 log2(2) = 1/2, the same for Q, so JSD = 1/2
    assert attribution.jensen_shannon_divergence(p, q)[0] == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    x, y = rng.random((4, 6, 6)), rng.random((4, 6, 6))
    np.testing.assert_allclose(attribution.jensen_shannon_divergence(x, y), attribution.jensen_shannon_divergence(y, x))
    from scipy.spatial.distance import jensenshannon

    expected = [jensenshannon(x[i].ravel(), y[i].ravel(), base=2) ** 2 for i in range(4)]
    np.testing.assert_allclose(attribution.jensen_shannon_divergence(x, y), expected, rtol=1e-9)
    with pytest.raises(ValueError, match="positive sum"):
        attribution.jensen_shannon_divergence(np.zeros((2, 2)), a)
    with pytest.raises(ValueError, match="non-negative"):
        attribution.jensen_shannon_divergence(-a, a)


def test_compare_attribution_maps_tables():
    rng = np.random.default_rng(2)
    base = rng.random((5, 8, 8))
    maps = {"same": base, "scaled": 0.5 * base, "other": rng.random((5, 8, 8))}
    comparison = attribution.compare_attribution_maps(maps)
    correlation = comparison.mean_correlation()
    assert list(correlation.index) == ["same", "scaled", "other"]
    assert correlation.loc["same", "scaled"] == pytest.approx(1.0)
    assert comparison.mean_jsd().loc["same", "scaled"] == pytest.approx(0.0, abs=1e-12)
    assert abs(correlation.loc["same", "other"]) < 0.5
    np.testing.assert_allclose(correlation.to_numpy(), correlation.to_numpy().T)
    expected = attribution.fisher_z_mean(attribution.map_correlations(base, maps["other"]))
    assert correlation.loc["other", "same"] == pytest.approx(expected)
    assert comparison.correlation_sd().loc["same", "other"] > 0 and comparison.jsd_sd().shape == (3, 3)
    with pytest.raises(ValueError, match="at least two"):
        attribution.compare_attribution_maps({"one": base})
    with pytest.raises(ValueError, match="same images"):
        attribution.compare_attribution_maps({"a": base, "b": base[:2]})


def test_smoothgrad_class_maps_of_a_linear_classifier_is_its_weight():
    network = _MaskedLinearEmbedding()                  # a linear "classifier" with 4 outputs
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    maps = attribution.smoothgrad_class_maps(network, images, 2, samples=4)
    expected = attribution.postprocess_saliency(network.weight[2].detach().reshape(1, 3, 8, 8).repeat(2, 1, 1, 1))
    np.testing.assert_allclose(maps, expected, atol=1e-6)          # the gradient of a linear output is constant
    with pytest.raises(ValueError, match="one per image"):
        attribution.smoothgrad_class_maps(network, images, [0, 1, 2])


def test_smoothgrad_class_maps_do_not_depend_on_the_samples_batch_size():
    network = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5), nn.Tanh())
    images = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    together = attribution.smoothgrad_class_maps(network, images, 1, samples=6)
    in_pieces = attribution.smoothgrad_class_maps(network, images, 1, samples=6, samples_batch_size=4)
    np.testing.assert_allclose(together, in_pieces, atol=1e-6)

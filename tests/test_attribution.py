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

"""Pretext losses of Sec. 16.1 (Eqs. 16.1-16.5), the RotNet and SimCLR objectives and NIMA's EMD loss."""

from __future__ import annotations

import math

import pytest
import torch

from domainknowledge.principles import pretext


def one_group():
    # original, then brightness (index 6) at +1, +3, +5 and contrast (7) at -2
    group = torch.zeros(5, dtype=torch.int64)
    distortion = torch.tensor([-1, 6, 6, 6, 7])
    level = torch.tensor([0, 1, 3, 5, -2])
    return group, distortion, level


def test_ranking_pairs_rank_the_original_above_every_variant_and_weaker_above_stronger():
    better, worse = pretext.ranking_pairs(*one_group())
    pairs = set(zip(better.tolist(), worse.tolist()))
    assert pairs == {(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (2, 3)}


def test_ranking_pairs_never_mix_groups_or_signs():
    group = torch.tensor([0, 0, 0, 1, 1])
    distortion = torch.tensor([-1, 6, 6, -1, 6])
    level = torch.tensor([0, -1, 2, 0, 3])
    pairs = set(zip(*(t.tolist() for t in pretext.ranking_pairs(group, distortion, level))))
    assert pairs == {(0, 1), (0, 2), (3, 4)}


def test_ranking_loss_is_zero_when_the_original_outranks_by_more_than_the_margin():
    better, worse = pretext.ranking_pairs(*one_group())
    scores = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.7])
    assert pretext.margin_ranking_loss(scores, better, worse, num_groups=1).item() == 0.0


def test_ranking_loss_has_the_corrected_sign():
    better, worse = torch.tensor([0]), torch.tensor([1])
    # the less distorted image scores lower: loss m - (0.3 - 0.6) = 0.5 (the printed Eq. 16.1 would give 0)
    loss = pretext.margin_ranking_loss(torch.tensor([0.3, 0.6]), better, worse, num_groups=1, margin=0.2)
    assert loss.item() == pytest.approx(0.5)


def test_classification_loss_uses_only_the_aspect_head():
    logits = [torch.zeros(3, 6), torch.zeros(3, 9), torch.zeros(3, 6)]
    aspect = torch.tensor([-1, 0, 1])
    target = torch.tensor([-1, 2, 4])
    loss = pretext.distortion_classification_loss(logits, aspect, target, num_groups=1)
    assert loss.item() == pytest.approx(math.log(6) + math.log(9))


def test_regression_loss_only_at_the_applied_distortion():
    outputs = torch.tensor([[0.5, 9.0], [9.0, -1.0]])
    loss = pretext.intensity_regression_loss(outputs, torch.tensor([0, 1]), torch.tensor([0.2, -0.6]), num_groups=2)
    assert loss.item() == pytest.approx((0.3 ** 2 + 0.4 ** 2) / 2)


def test_balanced_sum_weights_gradients_by_h_prime():
    first, second = torch.tensor(10.0, requires_grad=True), torch.tensor(100.0, requires_grad=True)
    total = pretext.balanced_sum([first, second], temperature=50.0)
    total.backward()
    assert total.item() == pytest.approx(math.exp(0.2) + math.exp(2.0))
    assert first.grad.item() == pytest.approx(math.exp(0.2) / 50)
    assert second.grad.item() == pytest.approx(math.exp(2.0) / 50)
    assert second.grad > first.grad      # the larger loss gets the larger weight


def test_emd_of_identical_histograms_is_zero_and_of_point_masses_is_closed_form():
    p = torch.softmax(torch.randn(4, 10, generator=torch.Generator().manual_seed(0)), 1)
    assert pretext.emd_loss(p, p).item() == pytest.approx(0.0, abs=1e-5)
    for k in (1, 3, 9):
        a, b = torch.zeros(1, 10), torch.zeros(1, 10)
        a[0, 0], b[0, k] = 1.0, 1.0
        assert pretext.emd_loss(a, b, r=2).item() == pytest.approx(math.sqrt(k / 10))
        assert pretext.emd_loss(a, b, r=1).item() == pytest.approx(k / 10)


def test_mean_score_and_rotation_batch():
    distribution = torch.zeros(2, 10)
    distribution[0, 4], distribution[1, [0, 9]] = 1.0, 0.5
    assert pretext.mean_score(distribution).tolist() == [5.0, 5.5]
    images = torch.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    rotated, labels = pretext.rotation_batch(images)
    assert rotated.shape == (8, 3, 4, 4) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(rotated[4], torch.rot90(images[0], 2, dims=(1, 2)))


def test_nt_xent_prefers_matching_views():
    z = torch.eye(4)
    matched = pretext.nt_xent_loss(z, z.clone(), temperature=0.1)
    shuffled = pretext.nt_xent_loss(z, z[[1, 2, 3, 0]], temperature=0.1)
    assert matched < 0.01 < shuffled


def test_bad_shapes_get_clear_errors():
    with pytest.raises(ValueError, match="both be"):
        pretext.emd_loss(torch.zeros(2, 10), torch.zeros(2, 9))
    with pytest.raises(ValueError, match="temperature"):
        pretext.balanced_sum([torch.tensor(1.0)], temperature=0)
    with pytest.raises(ValueError, match="square"):
        pretext.rotation_batch(torch.zeros(1, 3, 4, 5))


def test_simclr_views_are_batched_reproducible_and_reduce_to_identity_without_augmentation():
    images = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8)
    first, second = pretext.simclr_views(images, torch.Generator().manual_seed(3))
    again, _ = pretext.simclr_views(images, torch.Generator().manual_seed(3))
    assert first.shape == images.shape and first.dtype == torch.float32
    assert 0 <= float(first.min()) and float(first.max()) <= 255
    assert torch.equal(first, again) and not torch.allclose(first, second)
    x = images.float() / 255
    generator = torch.Generator().manual_seed(0)
    whole = pretext._random_resized_crops(x, generator, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    gap = torch.minimum((whole - x).abs().amax((1, 2, 3)), (whole - x.flip(3)).abs().amax((1, 2, 3)))
    assert float(gap.max()) < 1e-4                                   # the whole image, or its mirror
    assert torch.allclose(pretext._colour_jitter(x, generator, strength=(0, 0, 0, 0)), x, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        pretext.simclr_views(images[:, :1], generator)

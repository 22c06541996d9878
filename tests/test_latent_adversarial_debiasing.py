"""Known answers for LAD's pieces (Darlow 2022, Ch. 5): VQ quantisation, straight-through gradients, the
QE-walk, Eq. 5.1 and 5.6, the one-pixel construction, ResNet-20's size and the colour-biased sets."""

import numpy as np
import pytest
import torch

from domainknowledge.data.synthetic import coloured_digits as cd
from domainknowledge.models.cnn import count_parameters
from domainknowledge.models.resnet import ResNet20
from domainknowledge.models.vqvae import VQVAE, VectorQuantizer, vq_loss
from domainknowledge.principles import latent_adversarial_debiasing as lad


def test_quantiser_picks_the_nearest_code():
    quantizer = VectorQuantizer(3, 2)
    quantizer.codebook.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    latents = torch.tensor([[0.4, 0.0], [0.6, 0.1], [0.0, 3.0], [-2.0, -2.0]]).t().reshape(1, 2, 2, 2)
    # positions in row-major order (0,0), (0,1), (1,0), (1,1) hold the four columns above
    assert quantizer.indices(latents).tolist() == [[[0, 1], [2, 0]]]
    quantised, codes = quantizer(latents)
    assert torch.allclose(quantised, codes)
    assert torch.allclose(codes[0, :, 1, 0], torch.tensor([0.0, 5.0]))


def test_straight_through_gradient_is_the_identity():
    quantizer = VectorQuantizer(4, 3)
    latents = torch.randn(2, 3, 2, 2, requires_grad=True)
    quantised, _ = quantizer(latents)
    weights = torch.randn_like(quantised)
    (quantised * weights).sum().backward()
    assert torch.allclose(latents.grad, weights)                 # d quantise(z) / dz passed straight through
    assert quantizer.codebook.grad is None                       # the codebook learns from vq_loss only


def test_vq_loss_is_zero_on_the_codebook_and_weights_commitment():
    codes = torch.randn(1, 3, 2, 2)
    assert float(vq_loss(codes, codes)) == 0.0
    latents = codes + 1.0                                        # every entry one unit away
    assert float(vq_loss(latents, codes, beta=0.25)) == pytest.approx(1.25)


def test_vqvae_shapes():
    model = VQVAE(codes=20, code_dim=64, hidden=8, downsamplings=1)
    images = torch.rand(2, 3, 16, 16)
    assert model.encode(images).shape == (2, 64, 8, 8)
    with torch.no_grad():
        reconstruction, loss = model(images)
    assert reconstruction.shape == images.shape and loss.item() >= 0
    assert 0 <= reconstruction.min().item() and reconstruction.max().item() <= 1


def test_resnet20_has_about_0_27_million_parameters_at_width_16():
    assert count_parameters(ResNet20(10, width=16)) == pytest.approx(0.27e6, rel=0.02)
    model = ResNet20(10, width=4)
    assert model(torch.rand(3, 3, 16, 16)).shape == (3, 10)
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convolutions) + 1 == 20                           # 19 3x3 convolutions and the linear layer


def test_entropy_known_values():
    uniform = torch.zeros(1, 10)
    assert float(lad.prediction_entropy(uniform)) == pytest.approx(np.log(10))
    assert float(lad.prediction_entropy(torch.tensor([[100.0, 0.0, 0.0]]))) == pytest.approx(0.0, abs=1e-6)


def test_standardised_step_has_zero_mean_and_std_alpha_per_example():
    gradient = torch.randn(3, 4, 5, 5, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.01], dtype=torch.float64)[:, None, None, None] + 7
    step = lad.standardised_step(gradient, 0.1)
    flat = step.reshape(3, -1)
    assert torch.allclose(flat.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(flat.std(1), torch.full((3,), 0.1, dtype=torch.float64), atol=1e-9)   # alpha applied once (erratum)


def _toy_walk_setup():
    """Codes (c, 0) on a line, 0.5 apart; f reads class 0 from a large first coordinate, class 1 from a small
    one, so entropy is maximal at c = 0. A standardised step of a gradient (g, 0) is alpha (0.71, -0.71)."""
    torch.manual_seed(0)
    codebook = torch.stack([torch.linspace(-3, 3, 13), torch.zeros(13)], dim=1)   # 13 codes (c, 0)
    quantizer = VectorQuantizer(13, 2)
    quantizer.codebook.data = codebook
    classifier = torch.nn.Linear(2 * 1 * 1, 2)
    classifier.weight.data = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    classifier.bias.data.zero_()
    model = torch.nn.Sequential(torch.nn.Flatten(), classifier)
    latents = codebook[[12, 0, 11]].reshape(3, 2, 1, 1)          # confident predictions at both ends
    return latents, model, lambda z: quantizer(z)[1]


@pytest.mark.parametrize("accumulate", [True, False])
def test_qe_walk_raises_entropy_and_stays_on_the_codebook(accumulate):
    latents, model, quantise = _toy_walk_setup()
    walked, entropies = lad.qe_walk(latents, model, quantise, steps=10, alpha=0.5, accumulate=accumulate,
                                    return_entropies=True)
    assert len(entropies) == 11
    assert entropies[-1] > entropies[0] + 0.5                     # towards the boundary at 0: maximal entropy
    assert torch.allclose(quantise(walked), walked)               # every position is a code
    assert lad.qe_walk(latents, model, quantise, steps=0, alpha=0.5).equal(latents)


def test_literal_walk_with_small_steps_is_undone_by_quantisation():
    latents, model, quantise = _toy_walk_setup()
    walked = lad.qe_walk(latents, model, quantise, steps=20, alpha=0.1, accumulate=False)
    assert walked.equal(latents)                                  # 0.07 < half the code spacing of 0.5
    moved = lad.qe_walk(latents, model, quantise, steps=20, alpha=0.1, accumulate=True)
    assert not moved.equal(latents)                               # the accumulated steps cross codes


def test_one_pixel_construction_and_gradient_ratio():
    images = np.zeros((3, 4, 12), dtype=np.float32)
    marked = lad.add_class_pixels(images, np.array([0, 4, 9]), 10)
    assert marked[1, 0, 4] == 1.0 and marked[1].sum() == 1.0 and marked[2, 0, 9] == 1.0
    assert images.sum() == 0                                      # a copy
    mask = lad.class_pixel_mask(10, 4, 12)
    assert mask.sum() == 10 and mask[0, :10].all()
    with pytest.raises(ValueError, match="first row"):
        lad.class_pixel_mask(10, 8, 8)
    # a linear model: the gradient w.r.t. the input is the same weight pattern for every example
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    causal, spurious = lad.input_gradient_norms(model, torch.from_numpy(marked)[:, None], torch.tensor([0, 4, 9]),
                                                torch.from_numpy(mask))
    assert causal.shape == spurious.shape == (3,)
    assert lad.gradient_ratio(torch.tensor([2.0, 4.0]), torch.tensor([1.0, 1.0])) == pytest.approx(3.0)


def test_biased_sets_follow_the_table_5_1_conditions():
    glyphs = np.zeros((20, 16, 16), dtype=np.float32)
    glyphs[:, 4:12, 7:9] = 1.0
    labels = np.arange(20) % 10
    biased = cd.make_split("background", "biased", glyphs, labels, seed=0)
    assert np.allclose(biased.images[:, 0, 0], cd.REBIAS_COLOURS[labels])          # background = class colour
    assert np.allclose(biased.images[:, 8, 7], 1.0)                                   # white digit
    independent = cd.make_split("background", "independent", glyphs, labels, seed=0)
    assert (independent.attributes != labels).all()                                  # never the own colour
    conditioned = cd.make_split("foreground", "conditioned", glyphs, labels, seed=0)
    assert np.allclose(conditioned.images[:, 0, 0], 0) and np.allclose(conditioned.images[:, 8, 7], 1)
    foreground = cd.make_split("foreground", "biased", glyphs, labels, seed=0)
    assert np.abs(foreground.images[:, 8, 7] - cd.FOREGROUND_COLOURS[labels]).max() < 0.05   # N(colour, 0.005)
    corrupted = cd.make_split("corrupted", "biased", glyphs, labels, seed=0)
    assert corrupted.images.shape == (20, 16, 16, 3) and 0 <= corrupted.images.min() and corrupted.images.max() <= 1
    with pytest.raises(ValueError, match="kind"):
        cd.make_split("stripes", "biased", glyphs, labels, seed=0)


def test_corruptions_change_the_image_and_are_seeded():
    image = cd.random_colour_canvas(np.random.default_rng(0).random((1, 16, 16)).astype(np.float32),
                                    np.random.default_rng(1))[0]
    for name in cd.CORRUPTIONS:
        a = cd.corrupt(image, name, np.random.default_rng(5))
        assert a.shape == image.shape and np.abs(a - image).mean() > 1e-3, name
        assert np.array_equal(a, cd.corrupt(image, name, np.random.default_rng(5)))


def test_digit_cells_and_changed_code_fractions():
    glyphs = np.zeros((1, 8, 8), dtype=np.float32)
    glyphs[0, 0:2, 0:2] = 1.0                                       # a stroke in the top-left 4 x 4 patch
    cells = lad.digit_cells(glyphs, 2)
    assert cells.tolist() == [[[True, False], [False, False]]]
    before = torch.zeros(1, 2, 2, dtype=torch.long)
    after = torch.tensor([[[0, 1], [1, 0]]])
    fractions = lad.changed_code_fractions(before, after, cells)
    assert fractions == {"digit": 0.0, "background": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="multiple"):
        lad.digit_cells(np.zeros((1, 7, 7)), 2)


def test_colour_predictability_reads_colour_not_shape():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    palette = rng.random((4, 3))
    coloured = np.broadcast_to(palette[labels][:, None, None, :], (120, 6, 6, 3)) + 0.01 * rng.random((120, 6, 6, 3))
    assert lad.colour_predictability(coloured, labels) > 0.95
    shuffled = palette[rng.integers(0, 4, 120)][:, None, None, :] * np.ones((120, 6, 6, 3))
    assert lad.colour_predictability(shuffled, labels) < 0.5


def test_code_margins_are_nearest_other_code_distances():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    indices = torch.tensor([[[0, 2]]])
    margins = lad.code_margins(codebook, indices, np.array([[[True, False]]]))
    assert margins == {"digit": pytest.approx(1.0), "background": pytest.approx(4.0)}


def test_code_attribute_information_separates_colour_codes_from_stroke_codes():
    # background positions: code = colour (all ln 10 of colour information); digit positions: one stroke code for
    # every colour (none)
    attributes = np.repeat(np.arange(10), 20)
    codes = np.broadcast_to(attributes[:, None, None], (200, 2, 2)).copy()
    digit = np.zeros((200, 2, 2), dtype=bool)
    digit[:, 0, 0] = True
    codes[:, 0, 0] = 15
    information = lad.code_attribute_information(codes, attributes, digit)
    assert information["background"] == pytest.approx(np.log(10))
    assert information["digit"] == pytest.approx(0.0, abs=1e-12)
    codes[:, 0, 0] = 10 + attributes                                     # "stroke on colour k": as informative
    assert lad.code_attribute_information(codes, attributes, digit)["digit"] == pytest.approx(np.log(10))
    with pytest.raises(ValueError, match="attributes"):
        lad.code_attribute_information(codes, attributes[:-1], digit)


def test_entropy_gradient_location_finds_the_positions_f_depends_on():
    torch.manual_seed(0)
    classifier = lad.LatentClassifier((3, 2, 2), num_classes=4, hidden=8)
    with torch.no_grad():                                                # f reads position (0, 0) only
        weights = classifier.layers[1].weight.view(8, 3, 2, 2)
        weights.zero_()
        weights[:, :, 0, 0] = torch.randn(8, 3)
    latents = torch.randn(16, 3, 2, 2)
    digit = np.zeros((16, 2, 2), dtype=bool)
    digit[:, 1, 1] = True                                                # f ignores the "digit" position
    location = lad.entropy_gradient_location(classifier, latents, digit)
    assert location["digit"] == pytest.approx(0.0, abs=1e-12)
    assert location["ratio"] == pytest.approx(0.0, abs=1e-12)
    assert location["digit positions"] == pytest.approx(0.25)
    digit[:] = False
    digit[:, 0, 0] = True                                                # now all of the gradient is at digit positions
    location = lad.entropy_gradient_location(classifier, latents, digit)
    assert location["digit"] == pytest.approx(1.0)
    assert classifier.training                                           # mode restored


def test_masked_position_accuracies_and_cell_palette_colours():
    torch.manual_seed(0)
    classifier = lad.LatentClassifier((1, 1, 2), num_classes=2, hidden=4)
    with torch.no_grad():                                                # class 1 iff the value at column 1 > 0
        classifier.layers[1].weight.zero_()
        classifier.layers[1].bias.zero_()
        classifier.layers[1].weight[0, 1] = 1.0
        classifier.layers[3].weight.zero_()
        classifier.layers[3].bias.copy_(torch.tensor([0.5, 0.0]))
        classifier.layers[3].weight[1, 0] = 2.0
    labels = torch.tensor([0, 1, 0, 1])
    latents = torch.tensor([-1.0, 1.0, -1.0, 1.0]).reshape(4, 1, 1, 1).expand(4, 1, 1, 2).contiguous()
    digit = np.zeros((4, 1, 2), dtype=bool)
    digit[:, :, 0] = True                                                # column 0 = digit, column 1 = background
    reads = lad.masked_position_accuracies(classifier, latents, labels, digit, torch.zeros(1))
    assert reads == {"all": 1.0, "background only": 1.0, "digit only": 0.5}
    palette = np.eye(3)
    images = np.zeros((2, 4, 4, 3))
    images[0, :2, :, 0] = 1.0                                            # top half red, bottom half green
    images[0, 2:, :, 1] = 0.9
    images[1] = [0.1, 0.1, 0.8]
    assert lad.cell_palette_colours(images, 2, palette).tolist() == [[[0, 0], [1, 1]], [[2, 2], [2, 2]]]


def test_sparse_latent_classifier_zeroes_unused_weights():
    torch.manual_seed(0)
    labels = torch.arange(256) % 2
    latents = torch.randn(256, 2, 2, 2)
    latents[:, 0, 0, 0] = 3.0 * (2 * labels - 1)                         # one input tells the class
    train = lambda sparsity: lad.train_latent_classifier(latents, labels, hidden=8, epochs=30, learning_rate=1e-2,
                                                         seed=0, sparsity=sparsity)                # noqa: E731
    plain, sparse = train(0.0), train(0.01)
    unused = lambda model: float(model.layers[1].weight.detach()[:, 1:].abs().mean())        # noqa: E731
    assert unused(sparse) < 0.2 * unused(plain)
    assert float((sparse(latents).argmax(1) == labels).float().mean()) == 1.0
    with pytest.raises(ValueError, match="sparsity"):
        lad.train_latent_classifier(latents, labels, sparsity=-1.0)


def test_spread_sample_avoids_the_common_vector_and_repeats():
    from domainknowledge.models.vqvae import spread_sample

    vectors = torch.zeros(100, 3)                                         # a black background at most positions ...
    vectors[90:] = torch.randn(10, 3) + 5.0                               # ... and ten stroke vectors
    generator = torch.Generator().manual_seed(0)
    picked = spread_sample(vectors, 5, generator)
    assert len({tuple(row.tolist()) for row in picked}) == 5              # never the same vector twice
    again = spread_sample(vectors, 4, generator, chosen=torch.zeros(1, 3))
    assert (again.norm(dim=1) > 1).all()                                  # far from the codes already in use


def test_reconstruction_loss_keeps_a_gradient_where_the_sigmoid_saturates():
    from domainknowledge.models.vqvae import reconstruction_loss

    logits = torch.full((1, 1, 2, 2), -20.0, requires_grad=True)          # decoder says black, the image is white
    reconstruction_loss(logits, torch.ones(1, 1, 2, 2)).backward()
    assert torch.allclose(logits.grad, torch.full_like(logits, -0.25), atol=1e-6)      # (sigmoid - x) / 4 pixels
    squared = torch.full((1, 1, 2, 2), -20.0, requires_grad=True)
    torch.nn.functional.mse_loss(torch.sigmoid(squared), torch.ones(1, 1, 2, 2)).backward()
    assert squared.grad.abs().max() < 1e-7                                # the squared error's gradient vanishes

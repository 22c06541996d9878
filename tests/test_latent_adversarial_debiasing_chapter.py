"""The LAD chapter's drivers (Darlow 2022, Ch. 5): configs, data, the one-pixel run and one tiny LAD run."""

import dataclasses

import numpy as np
import pytest
import torch

from domainknowledge.chapters import latent_adversarial_debiasing as ch
from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.models.vqvae import VQVAEConfig

TINY = dataclasses.replace(
    ch.CONFIGS["smoke"], train_images=200, test_images=100,
    vqvae=VQVAEConfig(codes=20, code_dim=16, hidden=8, downsamplings=1, epochs=1, batch_size=50),
    weak_epochs=2, weak_sparsities=(0.05,), resnet_width=2, strong_epochs=1, strong_batch=50, oracle_recolour=True, validation_images=50, alphas=(0.1, 1.0),
    one_pixel_images=200, one_pixel_iterations=30)


def test_profiles_share_one_code_path_and_validate():
    assert set(ch.CONFIGS) == {"smoke", "cpu", "paper"}
    assert ch.CONFIGS["paper"].source == "mnist" and ch.CONFIGS["paper"].resnet_width == 16
    assert ch.CONFIGS["cpu"].source == "mnist-sample" and ch.CONFIGS["cpu"].image_size == 28
    assert all(config.walk == "per-step" for config in ch.CONFIGS.values())       # Algorithm 1 as written
    with pytest.raises(ValueError, match="walk"):
        dataclasses.replace(TINY, walk="sideways")
    with pytest.raises(ValueError, match="28 px"):
        dataclasses.replace(ch.CONFIGS["cpu"], image_size=32)
    assert set(ch.CONFIGS["paper"].kinds) == set(ch.cd.KINDS) and ch.CONFIGS["paper"].runs >= 3
    assert "background" in ch.CONFIGS["cpu"].kinds and ch.CONFIGS["cpu"].oracle_recolour     # the diagnosed set
    with pytest.raises(ValueError, match="weak_sparsities"):
        dataclasses.replace(TINY, weak_sparsities=(0.0,))
    assert ch.WALKS == {"background": (20, 0.1), "foreground": (7, 0.1), "corrupted": (4, 0.07)}
    with pytest.raises(ValueError, match="kinds"):
        dataclasses.replace(TINY, kinds=("stripes",))
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(TINY, image_size=15)
    with pytest.raises(ValueError, match="source"):
        dataclasses.replace(TINY, source="svhn")
    with pytest.raises(ValueError, match="one_pixel_networks"):
        dataclasses.replace(TINY, one_pixel_networks=("transformer",))
    assert "vqvae.codes" in ch.describe_profiles().index


def test_paper_data_missing_names_the_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match="train-images-idx3-ubyte"):
        ch.load_mnist("train", data_root=tmp_path)
    with pytest.raises(DataNotFoundError):
        ch.load_glyphs(ch.CONFIGS["paper"], seed=0, data_root=None)


def test_crossover_iteration_known_answers():
    assert ch.crossover_iteration([2.0] * 50) is None
    ratios = [3.0] * 30 + [0.5] * 40
    # the 10-iteration running mean first drops below 1 at the window ending at iteration 32
    # (mean of 8 x 3.0 and 2 x 0.5 would be 2.5; 3 x 3.0 + 7 x 0.5 = 12.5 / 10 = 1.25; 2 x 3.0 + 8 x 0.5 = 1.0, not < 1)
    crossing = ch.crossover_iteration(ratios)
    assert crossing is not None and 30 <= crossing <= 45


def test_augment_keeps_shape_and_is_seeded():
    images = torch.rand(4, 3, 16, 16)
    a = ch.augment(images, torch.Generator().manual_seed(0), affine=True, flip=False)
    b = ch.augment(images, torch.Generator().manual_seed(0), affine=True, flip=False)
    assert a.shape == images.shape and torch.equal(a, b) and not torch.equal(a, images)
    assert ch.augment(images, torch.Generator().manual_seed(0), affine=False, flip=True).shape == images.shape


@pytest.fixture(scope="module")
def task():
    return ch.load_task("background", TINY, seed=0)


def test_task_holds_the_three_conditions(task):
    assert abs(len(task.train.labels) - 200) <= 5 and (task.train.attributes == task.train.labels).all()   # stratified rounding
    assert set(task.tests) == {"biased", "independent", "conditioned"}
    assert (task.tests["independent"].attributes != task.tests["independent"].labels).all()
    assert task.train.images.shape[1:] == (16, 16, 3)
    assert task.validation.images.shape[0] == pytest.approx(50, abs=5) and task.train_glyphs.shape[1:] == (16, 16)


def test_binarise_follows_rebias():
    glyphs = np.array([[[0.0, 0.004], [0.5, 1.0]]], dtype=np.float32)
    assert ch.binarise(glyphs).tolist() == [[[0.0, 1.0], [1.0, 1.0]]]


def test_calibration_picks_the_smallest_alpha_that_confuses_f():
    torch.manual_seed(0)
    codebook = torch.randn(6, 4)
    quantise = lambda z: codebook[torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, 4), codebook).argmin(1)].reshape(
        z.shape[0], z.shape[2], z.shape[3], 4).permute(0, 3, 1, 2)
    latents = quantise(torch.randn(30, 4, 3, 3))
    weak = ch.lad.train_latent_classifier(latents, torch.arange(30) % 3, epochs=30, seed=0)
    alpha, rows = ch.calibrate_alpha(latents, weak, quantise, steps=5, alphas=(0.01, 0.5, 2.0), accumulate=False,
                                     target_entropy=0.01, classes=3)
    assert [row["alpha"] for row in rows] == [0.01, 0.5, 2.0] and sum(row["chosen"] for row in rows) == 1
    reached = [row["alpha"] for row in rows if row["entropy after (nats)"] >= 0.01 * np.log(3)]
    assert alpha == (reached[0] if reached else max(rows, key=lambda r: r["entropy after (nats)"])["alpha"])
    alpha, _ = ch.calibrate_alpha(latents, weak, quantise, steps=5, alphas=(0.5, 2.0), accumulate=False,
                                  target_entropy=1.0, classes=3)
    assert alpha in (0.5, 2.0)                                      # none reaches ln 3: the highest entropy


def test_tiny_lad_run_end_to_end_and_seeded(task):
    result = ch.run_lad(task, TINY, seed=0, log=lambda message: None)
    methods = {method for method, _ in result.accuracies}
    assert methods == {"LAD", "Vanilla", ch.ORACLE_METHOD}
    assert result.alpha in (0.1, 1.0) and len(result.calibration) == 2
    assert set(result.changed_codes) == {"digit", "background"} and 0 <= result.changed_codes["digit"] <= 1
    assert set(result.colour_predictability) == {"reconstruction", "walked"}
    assert set(result.shape_survival) == {"reconstruction", "walked"} and 0 <= result.oracle_entropy <= np.log(10)
    assert set(result.code_information) == {"digit", "background"}
    assert 0 <= result.code_information["background"] <= np.log(10) + 1e-9
    assert 0 <= result.gradient_location["digit"] <= 1 and result.gradient_location["ratio"] >= 0
    assert set(result.weak_reads) == {"all", "background only", "digit only"}
    assert set(result.background_colour) == {"reconstruction", "walked"}
    assert all(0 <= value <= 1 for value in result.background_colour.values())
    assert [row["L1 weight of f"] for row in result.constrained_walks] == [0.0, 0.05]
    assert all(0 <= row["oracle ResNet-20 reads the walked digits"] <= 1 for row in result.constrained_walks)
    assert result.constrained_walks[0]["alpha (calibrated)"] == result.alpha          # L1 weight 0 is LAD's own f
    assert all(0 <= value <= 1 for value in result.accuracies.values())
    assert result.examples["walked"].shape == (10, 16, 16, 3)
    assert 0 <= result.entropy_before <= np.log(10) + 1e-6 and 0 <= result.entropy_after <= np.log(10) + 1e-6
    again = ch.run_lad(task, TINY, seed=0, log=lambda message: None)
    assert again.accuracies == result.accuracies


def test_tiny_one_pixel_run():
    result = ch.one_pixel_experiment(TINY, "mlp", seed=0)
    history = result["history"]
    assert len(history) == 30 and (history["gradient_ratio"] > 0).all()
    assert history["gradient_ratio"].iloc[0] > 1            # at initialisation the image gradient is larger
    assert 0 <= result["test_clean"] <= 1 and result["chance"] == pytest.approx(0.1)

"""The shared training loop: it learns, it is deterministic on CPU, it stops early and keeps the best epoch."""

import numpy as np
import pytest
import torch
from torch import nn

from domainknowledge.models.cnn import LeNet, NiuCNN, Standardize
from domainknowledge.training import (
    TrainingConfig,
    as_image_tensor,
    predict_classes,
    predict_proba,
    train_classifier,
)


def bars(n, seed):
    """16x16 grey images of one bar: class 0 vertical, class 1 horizontal, at random positions, with noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    images = rng.normal(0.0, 0.2, size=(n, 16, 16))
    for image, label, position in zip(images, labels, rng.integers(2, 14, size=n)):
        if label == 0:
            image[:, position - 1:position + 1] += 1.0
        else:
            image[position - 1:position + 1, :] += 1.0
    images = np.clip(images * 100 + 60, 0, 255).astype(np.uint8)
    return as_image_tensor(images), torch.from_numpy(labels.astype(np.int64))


@pytest.fixture(scope="module")
def bar_data():
    return bars(256, seed=0), bars(128, seed=1)


def build_lenet(train_images):
    standardize = Standardize.fit(train_images, per_channel=False)
    return lambda: LeNet(2, in_channels=1, image_size=16, standardize=standardize)


def test_a_tiny_problem_is_learned(bar_data):
    train, validation = bar_data
    config = TrainingConfig(max_epochs=8, batch_size=32, patience=8, monitor="accuracy")
    model, history = train_classifier(build_lenet(train[0]), nn.CrossEntropyLoss(), train, validation, config, seed=0)
    assert history.best_score > 0.9
    assert (predict_classes(model, validation[0]) == validation[1].numpy()).mean() == pytest.approx(history.best_score)
    probabilities = predict_proba(model, validation[0], batch_size=50)
    assert probabilities.shape == (128, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]


def test_same_seed_gives_identical_weights(bar_data):
    train, validation = bar_data
    config = TrainingConfig(max_epochs=2, batch_size=64, patience=2)
    weights = []
    for seed in (5, 5, 6):
        model, _ = train_classifier(build_lenet(train[0]), nn.CrossEntropyLoss(), train, validation, config, seed=seed)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_early_stopping_keeps_the_best_epoch(bar_data):
    train, validation = bar_data
    config = TrainingConfig(max_epochs=30, batch_size=64, patience=2, monitor="mae", learning_rate=1e-2)
    lines = []
    model, history = train_classifier(build_lenet(train[0]), nn.CrossEntropyLoss(), train, validation, config,
                                      seed=0, log=lines.append)
    scores = [epoch["validation_mae"] for epoch in history.epochs]
    assert history.best_score == min(scores) and scores[history.best_epoch - 1] == min(scores)
    assert len(scores) - history.best_epoch <= config.patience
    final = np.abs(predict_classes(model, validation[0]) - validation[1].numpy()).mean()
    assert final == pytest.approx(history.best_score)           # the best weights were restored
    assert not lines                                            # log_every = 0: silent
    assert list(history.to_frame().columns) == ["epoch", "train_loss", "validation_mae", "seconds"]


def test_progress_is_logged_every_n_epochs(bar_data):
    train, validation = bar_data
    config = TrainingConfig(max_epochs=4, batch_size=128, patience=4, log_every=2)
    lines = []
    train_classifier(build_lenet(train[0]), nn.CrossEntropyLoss(), train, validation, config, seed=0,
                     log=lines.append)
    assert len(lines) == 3 and lines[0].startswith("epoch   2") and lines[-1].startswith("kept epoch")


@pytest.mark.parametrize("image_size, map_after_two_pools", [(32, 4), (60, 11), (80, 16)])
def test_niu_cnn_handles_input_sizes(image_size, map_after_two_pools):
    model = NiuCNN(7, in_channels=3, image_size=image_size, channels=(4, 8, 16))
    assert model(torch.zeros(2, 3, image_size, image_size)).shape == (2, 7)
    assert sum(model.padding[:2]) == max(0, 11 - map_after_two_pools)


def test_niu_cnn_thesis_widths_and_lenet_sizes():
    assert NiuCNN(90)(torch.zeros(1, 3, 60, 60)).shape == (1, 90)
    assert LeNet(96, in_channels=3, image_size=32).fc1.in_features == 16 * 5 * 5
    assert LeNet(10, in_channels=1, image_size=28).fc1.in_features == 16 * 4 * 4


def test_standardize_fits_per_channel_and_globally():
    images = torch.stack([torch.full((4, 4), 10.0), torch.full((4, 4), 30.0)])[None].repeat(3, 1, 1, 1)
    images[1] += 2
    per_channel = Standardize.fit(images, per_channel=True)
    assert per_channel.mean.flatten().tolist() == pytest.approx([10 + 2 / 3, 30 + 2 / 3])
    assert Standardize.fit(images, per_channel=False).mean.numel() == 1
    output = per_channel(images.to(torch.uint8))
    assert output.dtype == torch.float32 and output.mean(dim=(0, 2, 3)).abs().max() < 1e-5


def test_bad_inputs_raise(bar_data):
    train, validation = bar_data
    with pytest.raises(ValueError, match="monitor"):
        TrainingConfig(max_epochs=1, batch_size=1, patience=1, monitor="f1")
    with pytest.raises(ValueError, match="max_epochs"):
        TrainingConfig(max_epochs=0, batch_size=1, patience=1)
    config = TrainingConfig(max_epochs=1, batch_size=8, patience=1)
    with pytest.raises(ValueError, match="int64"):
        train_classifier(build_lenet(train[0]), nn.CrossEntropyLoss(), (train[0], train[1].int()), validation,
                         config, seed=0)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        as_image_tensor(np.zeros((2, 3)))


def test_train_epochs_follows_a_seeded_cosine_schedule_and_skips_single_example_batches():
    from domainknowledge.training import train_epochs

    x = torch.linspace(-1, 1, 41)[:, None]
    y = 3 * x + 1

    def run(seed):
        torch.manual_seed(seed)
        model = torch.nn.Linear(1, 1)
        seen = []

        def batch_loss(batch, step):
            seen.append(len(batch))
            return torch.nn.functional.mse_loss(model(x[batch]), y[batch])

        losses = train_epochs(model, batch_loss, examples=41, epochs=30, batch_size=10, learning_rate=0.1,
                              generator=torch.Generator().manual_seed(seed))
        return model, losses, seen

    model, losses, seen = run(0)
    assert len(losses) == 30 and losses[-1] < 0.01 * losses[0]
    assert 1 not in seen and set(seen) == {10}           # 41 = 4 x 10 + 1: the last single example is skipped
    assert not model.training
    assert run(0)[1] == losses                           # seeded: the same losses again


def test_standardize_fits_in_chunks_to_the_same_statistics(monkeypatch):
    """Issue 21: a large training set (or a lazy reader) is read in chunks, never as one float64 copy; the
    statistics are those of the whole set."""
    images = torch.randint(0, 256, (50, 3, 9, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    whole = {per_channel: Standardize.fit(images, per_channel=per_channel) for per_channel in (True, False)}
    monkeypatch.setattr(Standardize, "FIT_CHUNK_VALUES", 3 * 81 * 7)          # 7 images a chunk
    for per_channel, reference in whole.items():
        chunked = Standardize.fit(images, per_channel=per_channel)
        assert torch.allclose(chunked.mean, reference.mean, rtol=1e-6) and torch.allclose(chunked.std, reference.std,
                                                                                         rtol=1e-6)

"""The aligned image-text model: ConSE before training, heads that never see the left-out world, the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domainknowledge.models import encoders
from domainknowledge.models.encoders import aligned
from domainknowledge.models.encoders.pretrained import conse_class_embeddings, conse_embedding

TINY = aligned.AlignedConfig(images_per_world=24, steps=3, batch_size=8)


@pytest.fixture(scope="module")
def without_cars(tmp_path_factory):
    cache = tmp_path_factory.mktemp("aligned-cache")
    return aligned.load_aligned(TINY, "cars", cache_dir=cache, progress=False), cache


def test_heads_never_see_the_left_out_world_and_reload_from_the_cache(without_cars):
    encoder, cache = without_cars
    assert encoder.history["worlds"] == sorted(set(aligned.WORLDS) - {"cars"})
    assert encoder.name == "aligned-lite0-minilm-custom-without-cars" and "never saw the cars world" in encoder.provenance
    assert not list((cache / "aligned").glob("features-cars-*"))
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    again = aligned.load_aligned(TINY, "cars", cache_dir=cache, progress=False)
    assert again.key == encoder.key
    np.testing.assert_allclose(again.encode_images(images), encoder.encode_images(images), atol=1e-5)
    texts = encoder.encode_texts(["a photo of a red sedan.", "a blurry picture."])
    assert texts.shape == (2, 384) and np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)


def test_before_training_the_image_side_is_conse(without_cars):
    encoder, cache = without_cars
    heads = aligned.AlignedHeads(torch.zeros(1632), torch.ones(1632))
    features = torch.randn(4, 1632)
    probabilities = torch.softmax(torch.randn(4, 1000), dim=1)
    classes = torch.as_tensor(conse_class_embeddings(cache))
    conse = conse_embedding(probabilities, classes)
    assert torch.allclose(heads.image(features, conse), conse, atol=1e-6)
    sentence = torch.nn.functional.normalize(torch.randn(2, 384), dim=-1)
    assert torch.allclose(heads.text(sentence), sentence, atol=1e-6)


def test_the_split_image_side_is_the_image_side(without_cars):
    """Fine-tuning the top blocks on cached maps starts from the encoder's own embedding."""
    encoder, _ = without_cars
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 40, 40), dtype=np.uint8))
    split = encoder.split_image_tower(2).eval()
    with torch.no_grad():
        embedded = split.upper(*split.lower(images.float()))
    np.testing.assert_allclose(embedded.numpy(), encoder.encode_images(images.numpy().transpose(0, 2, 3, 1)),
                               atol=1e-5)
    before = [p.detach().clone() for p in encoder.taps.parameters()]
    split.train()
    embedded = split.upper(*split.lower(images.float()))
    embedded.sum().backward()
    assert all(p.grad is None for p in encoder.taps.parameters())              # the shared tower stays frozen
    assert all(torch.equal(a, b) for a, b in zip(before, encoder.taps.parameters()))
    with pytest.raises(ValueError, match="above the last tap"):
        encoder.split_image_tower(16 - max(aligned.TAPS))


def test_training_lowers_the_contrastive_loss(without_cars):
    _, cache = without_cars
    config = aligned.AlignedConfig(images_per_world=24, steps=60, batch_size=16, learning_rate=3e-3)
    data = {world: aligned.world_features(world, config, cache_dir=cache, progress=False)
            for world in ("captioned", "vehicles")}
    _, history = aligned.train_aligned_heads(data, config, progress=False)
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0]


def test_world_features_can_be_drawn_in_several_chunks(tmp_path, monkeypatch):
    """The paper size draws 20 chunks per world: every chunk must see the ConSE class embeddings, not the
    previous chunk's labels (a shadowed name once broke the second chunk)."""
    config = aligned.AlignedConfig(images_per_world=24, steps=1, batch_size=8)
    monkeypatch.setattr(aligned, "WORLD_CHUNK", 10)
    chunked = aligned.world_features("products", config, cache_dir=tmp_path / "chunked", progress=False)
    assert {name: chunked[name].shape[0] for name in chunked} == dict.fromkeys(("features", "conse", "text",
                                                                                "classes"), 24)
    assert chunked["conse"].dtype == np.float32 and np.isfinite(chunked["conse"]).all()
    assert all(str(label).startswith("products:") for label in chunked["classes"])


def test_registry_names_round_trip_and_bad_names_are_explained(tmp_path):
    assert aligned.parse_aligned_name("aligned-lite0-minilm-cpu-without-vehicles") == ("cpu", "vehicles", "captions")
    assert aligned.parse_aligned_name("aligned-lite0-minilm-smoke-all-worlds") == ("smoke", None, "captions")
    assert aligned.parse_aligned_name("aligned-lite0-minilm-cpu-class-labels-without-aesthetics") == (
        "cpu", "aesthetics", "class-labels")
    assert aligned.parse_aligned_name("aligned-lite0-minilm-cpu-without-moon") is None
    names = {entry.name for entry in encoders.available_encoders() if entry.kind == "aligned"}
    assert names == {aligned.aligned_encoder_name("cpu", w, s) for w in (None, *aligned.WORLDS)
                     for s in aligned.SUPERVISIONS}
    for name in names:
        size, left_out, supervision = aligned.parse_aligned_name(name)
        assert aligned.aligned_encoder_name(size, left_out, supervision) == name
    with pytest.raises(ValueError, match="supervision must be one of"):
        aligned.AlignedConfig(images_per_world=24, steps=1, supervision="tags")
    with pytest.raises(ValueError, match="left_out must be one of"):
        aligned.load_aligned(TINY, "moon", cache_dir=tmp_path)



def test_class_label_heads_learn_the_object_classes_and_never_read_the_captions(without_cars):
    from domainknowledge.data.bundled import FASHION_MNIST_CLASSES

    _, cache = without_cars
    config = aligned.AlignedConfig(images_per_world=24, steps=60, batch_size=16, learning_rate=3e-3,
                                   supervision="class-labels")
    data = {world: aligned.world_features(world, config, cache_dir=cache, progress=False)
            for world in ("captioned", "products")}
    assert set(data["products"]["classes"]) <= {f"products:{item}" for item in FASHION_MNIST_CLASSES}
    assert aligned.class_prompts(["cars:suv", "captioned:star", "aesthetics:sun"]) == [
        "a photo of a SUV.", "a photo of a star.", "a photo of the sun."]
    heads, history = aligned.train_aligned_heads(data, config, progress=False)
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0]
    shuffled = {world: {**arrays, "text": arrays["text"][::-1].copy()} for world, arrays in data.items()}
    tensors, again = (aligned._training_tensors(d, config, "cpu") for d in (data, shuffled))
    index = torch.arange(16)
    assert torch.equal(aligned._batch_loss(heads, tensors, index, config),
                       aligned._batch_loss(heads, again, index, config))


def test_the_whole_image_side_fine_tunes_end_to_end_on_a_copy(without_cars):
    encoder, _ = without_cars
    images = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    before = encoder.encode_images(images)
    tower = encoder.trainable_image_tower().eval()
    batch = torch.as_tensor(images).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        np.testing.assert_allclose(tower(batch).numpy(), before, atol=1e-4)
    tower.train()
    tower(batch).sum().backward()
    trunk_grads = [p.grad for p in tower.taps.network.parameters() if p.grad is not None]
    assert trunk_grads and any(g.abs().sum() > 0 for g in trunk_grads)
    assert all(not p.requires_grad for p in encoder.taps.parameters())
    np.testing.assert_allclose(encoder.encode_images(images), before, atol=1e-6)


def test_a_trunk_trained_under_the_supervision_learns_on_cached_maps(tmp_path):
    """``trained_blocks``: the top blocks train with a CLIP-shaped projection on the frozen blocks' cached maps,
    for the whole schedule; batch-norm statistics and the shared frozen tower stay as they were."""
    config = aligned.AlignedConfig(images_per_world=24, steps=6, batch_size=8, trained_blocks=2,
                                   trunk_learning_rate=1e-2)
    data = {world: aligned.world_features(world, config, cache_dir=tmp_path, progress=False)
            for world in ("captioned", "vehicles")}
    assert data["captioned"]["features"].shape == (24, 192 * 3 * 3)          # block 13's maps at 96 px
    fresh = aligned.TrunkHeads(96, 2)
    heads, history = aligned.train_aligned_heads(data, config, progress=False)
    assert history["best_step"] == config.steps                              # no early stopping
    assert not torch.equal(heads.top.conv_head.weight, fresh.top.conv_head.weight)
    assert torch.equal(heads.top.bn.running_mean, fresh.top.bn.running_mean)

    encoder = aligned.load_aligned(config, "cars", cache_dir=tmp_path, progress=False, label="tiny-top2")
    assert encoder.name == "aligned-lite0-minilm-tiny-top2-without-cars"
    taps, _ = aligned._towers(config, tmp_path, "cpu")
    assert all(not p.requires_grad for p in taps.parameters())
    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    features = encoder.image_features(images)
    assert features.shape == (3, 1280)
    projected = torch.nn.functional.normalize(encoder.heads.projection(torch.as_tensor(features)), dim=-1)
    np.testing.assert_allclose(encoder.encode_images(images), projected.detach().numpy(), atol=1e-5)
    again = aligned.load_aligned(config, "cars", cache_dir=tmp_path, progress=False, label="tiny-top2")
    np.testing.assert_allclose(again.image_features(images), features, atol=1e-5)


@pytest.mark.parametrize("change, message", [({"trained_blocks": 6}, "trained_blocks must lie in 0..5"),
                                             ({"trained_blocks": 2, "anchor_weight": 0.1}, "no ConSE term")])
def test_trunk_settings_that_cannot_work_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        aligned.AlignedConfig(images_per_world=24, steps=1, **change)

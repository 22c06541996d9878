"""The encoder registry: input handling, normalisation, ConSE's combination, the offline open_clip error,
the stand-in CLIP (determinism, cache, zero-shot above chance) and the shared zero-shot helpers."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from domainknowledge.data.synthetic.captioned_world import FACTORS, generate_captioned_world, zero_shot_prompts
from domainknowledge.models import encoders
from domainknowledge.models.encoders import base, standin_clip, zero_shot
from domainknowledge.models.encoders.pretrained import open_clip_weights_file


class _TableEncoder(encoders.Encoder):
    """A text encoder with known answers: each text maps to a fixed vector."""

    has_text = True
    name = "table"
    embedding_dim = 3

    def __init__(self, table):
        super().__init__("cpu")
        self.table = table

    def _embed_texts(self, texts):
        return torch.tensor([self.table[t] for t in texts], dtype=torch.float32)


class _CountingEncoder(encoders.RawPixelEncoder):
    calls = 0

    def encode_images(self, images, **kwargs):
        type(self).calls += 1
        return super().encode_images(images, **kwargs)


# ------------------------------------------------------------------------------------------ input handling
def test_every_accepted_image_layout_gives_the_same_unit_embeddings():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 40, 48, 3), dtype=np.uint8)
    encoder = encoders.RawPixelEncoder(16)
    reference = encoder.encode_images(images)
    assert reference.shape == (5, 3 * 16 * 16) and reference.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(reference, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_images(torch.from_numpy(images).permute(0, 3, 1, 2)), reference, atol=1e-6)
    np.testing.assert_allclose(encoder.encode_images(images.astype(np.float32) / 255), reference, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_images(list(images), batch_size=2), reference, atol=1e-6)
    mixed = encoder.encode_images([images[0], images[1, :30]])          # different sizes in one list
    assert mixed.shape == (2, 768)
    grey = encoder.encode_images(images[..., 0])
    assert grey.shape == (5, 768)


def test_bad_images_are_explained():
    encoder = encoders.RawPixelEncoder(8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encoder.encode_images(np.full((2, 8, 8, 3), 3.0, np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        encoder.encode_images(np.zeros((2, 8, 8, 5), np.uint8))
    with pytest.raises(ValueError, match="non-empty"):
        encoder.encode_images(np.zeros((0, 8, 8, 3), np.uint8))


def test_resize_center_crop_keeps_the_centre():
    image = torch.arange(4 * 8, dtype=torch.float32).reshape(1, 1, 4, 8).expand(1, 3, 4, 8)
    cropped = base.resize_center_crop(image, 4)                          # no resize: the middle 4 columns
    assert cropped.shape == (1, 3, 4, 4)
    assert torch.equal(cropped[0, 0], image[0, 0, :, 2:6])
    assert base.resize_center_crop(torch.zeros(2, 3, 30, 60), 16).shape == (2, 3, 16, 16)


# ----------------------------------------------------------------------------------------------- ConSE
def test_conse_embedding_is_the_weighted_mean_of_the_top_classes():
    rng = np.random.default_rng(1)
    class_embeddings = rng.normal(size=(6, 4)).astype(np.float32)
    p = np.array([[0.5, 0.3, 0.15, 0.05, 0.0, 0.0]], np.float32)
    expected = 0.5 * class_embeddings[0] + 0.3 * class_embeddings[1]          # top 2, weights renormalised away
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(encoders.conse_embedding(p, class_embeddings, top_t=2)[0], expected, atol=1e-6)
    full = p @ class_embeddings
    np.testing.assert_allclose(encoders.conse_embedding(p, class_embeddings, top_t=6)[0],
                               full[0] / np.linalg.norm(full), atol=1e-6)
    one_hot = np.eye(6, dtype=np.float32)[[3]]
    np.testing.assert_allclose(encoders.conse_embedding(one_hot, class_embeddings, top_t=1)[0],
                               class_embeddings[3] / np.linalg.norm(class_embeddings[3]), atol=1e-6)
    with pytest.raises(ValueError, match="top_t"):
        encoders.conse_embedding(p, class_embeddings, top_t=7)


def test_conse_with_real_weights_labels_the_cat_photo(tmp_path):
    from domainknowledge.data.bundled import load_photos

    conse = encoders.load_encoder("conse-lite0-minilm", cache_dir=tmp_path)
    assert conse.has_text and conse.embedding_dim == 384 and len(conse.class_names) == 1000
    assert list((tmp_path / "conse").glob("*.npy")), "the class-name embeddings were not cached"
    photos = load_photos(("chelsea", "coffee"))
    x = conse.encode_images([photos["chelsea"], photos["coffee"]])
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    labels = ["cat", "cup of coffee", "rocket", "horse"]
    predicted = encoders.zero_shot_predict(x, encoders.zero_shot_classifier(conse, labels, ["a photo of a {}."]))
    assert [labels[i] for i in predicted] == ["cat", "cup of coffee"]
    # the image embedding is ConSE's combination of the classifier's own probabilities
    p = conse.imagenet_probabilities([photos["chelsea"]])
    np.testing.assert_allclose(encoders.conse_embedding(p, conse.class_embeddings.numpy()), x[:1], atol=1e-5)


# ------------------------------------------------------------------------------------------- image-only
def test_image_only_encoders_refuse_texts_and_say_which_can():
    encoder = encoders.load_encoder("raw-pixels-32")
    with pytest.raises(encoders.NoTextTowerError, match="standin-clip-cpu.*conse-lite0-minilm|conse"):
        encoder.encode_texts(["a photo of a cat"])


def test_efficientnet_lite_encoders_have_real_weights_and_unit_features():
    photo = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    for variant in (0, 1, 2):
        encoder = encoders.load_encoder(f"efficientnet-lite{variant}")
        assert encoder.image_size == (224, 240, 260)[variant]
        x = encoder.encode_images(photo)
        assert x.shape == (1, 1280) and abs(np.linalg.norm(x) - 1) < 1e-5


def test_torchvision_random_initialisation_is_seeded():
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    a = encoders.load_encoder("torchvision-resnet18-random").encode_images(images)
    b = encoders.load_encoder("torchvision-resnet18-random").encode_images(images)
    assert a.shape == (2, 512)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------- open_clip
def test_missing_open_clip_weights_raise_a_clear_offline_error(tmp_path):
    with pytest.raises(encoders.EncoderNotAvailableError) as error:
        encoders.load_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k", cache_dir=tmp_path)
    message = str(error.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message
    assert str(tmp_path / "open_clip") in message
    assert "open_clip.create_model_and_transforms('ViT-B-32', pretrained='laion2b_s34b_b79k'" in message
    # allowed to download but without a network (pytest-socket and HF_HUB_OFFLINE): the same kind of error
    with pytest.raises(encoders.EncoderNotAvailableError, match="could not be loaded"):
        encoders.load_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k", cache_dir=tmp_path, allow_download=True)
    with pytest.raises(ValueError, match="no pretrained tag"):
        encoders.load_encoder("open_clip:ViT-B-32/no-such-tag", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="open_clip:<architecture>/<tag>"):
        encoders.load_encoder("open_clip:ViT-B-32", cache_dir=tmp_path)


def test_open_clip_weights_are_found_in_the_hub_cache_layout(tmp_path):
    snapshot = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    (tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "refs").mkdir()
    (tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "refs" / "main").write_text("abc123")
    assert open_clip_weights_file("ViT-B-32", "laion2b_s34b_b79k", tmp_path) == snapshot / "open_clip_model.safetensors"
    assert open_clip_weights_file("ViT-B-16", "laion2b_s34b_b88k", tmp_path) is None


def test_open_clip_encoder_wires_preprocessing_and_tokenizer(tmp_path, monkeypatch):
    """The real-CLIP path with a randomly initialised ViT-B-32 in place of downloaded weights (none offline)."""
    import open_clip

    from domainknowledge.models.encoders import pretrained

    weights = tmp_path / "open_clip_model.safetensors"
    weights.write_bytes(b"stand-in for a downloaded file")
    original = open_clip.create_model_and_transforms
    seen = {}

    def random_model(architecture, pretrained=None, **kwargs):
        seen["pretrained"] = pretrained
        return original(architecture, pretrained=None, **kwargs)

    monkeypatch.setattr(pretrained, "open_clip_weights_file", lambda *args: weights)
    monkeypatch.setattr(open_clip, "create_model_and_transforms", random_model)
    torch.manual_seed(0)
    clip = encoders.load_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k", cache_dir=tmp_path)
    assert seen["pretrained"] == str(weights)                       # the cached file is what would be loaded
    assert clip.has_text and clip.embedding_dim == 512 and clip.image_size == 224
    images = np.random.default_rng(0).integers(0, 256, (2, 100, 150, 3), dtype=np.uint8)
    x, t = clip.encode_images(images), clip.encode_texts(["a photo of a cat", "a diagram"])
    assert x.shape == (2, 512) and t.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(np.vstack([x, t]), axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------------------- the registry
def test_registry_lists_every_kind_and_rejects_unknown_names(tmp_path):
    entries = {entry.name: entry for entry in encoders.available_encoders()}
    assert {e.kind for e in entries.values()} == {"open_clip", "stand-in", "aligned", "conse", "image-only"}
    assert not entries["open_clip:ViT-B-32/laion2b_s34b_b79k"].offline(tmp_path)
    assert entries["efficientnet-lite2"].offline(tmp_path) and entries["standin-clip-cpu"].offline(tmp_path)
    table = encoders.registry_table(tmp_path)
    assert table.loc["conse-lite0-minilm", "texts"] == "yes" and table.loc["efficientnet-lite0", "dimension"] == 1280
    assert set(encoders.text_encoder_names()) >= {"conse-lite0-minilm", "standin-clip-cpu"}
    offline_text = encoders.offline_encoder_names(has_text=True, cache_dir=tmp_path)
    assert "conse-lite0-minilm" in offline_text and not any(n.startswith("open_clip:") for n in offline_text)
    assert set(encoders.offline_encoder_names(kind="image-only", cache_dir=tmp_path)) >= {
        "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "raw-pixels-32"}
    with pytest.raises(ValueError, match="unknown encoder 'clip'.*standin-clip-cpu"):
        encoders.load_encoder("clip")


# ------------------------------------------------------------------------------------- zero-shot helpers
def test_zero_shot_classifier_averages_normalised_prompts():
    table = {"a cat": [3.0, 0, 0], "the cat": [0, 4.0, 0], "a dog": [0, 0, 2.0], "the dog": [0, 0, 5.0]}
    weights = encoders.zero_shot_classifier(_TableEncoder(table), ["cat", "dog"], ["a {}", "the {}"])
    np.testing.assert_allclose(weights, [[2 ** -0.5, 2 ** -0.5, 0], [0, 0, 1]], atol=1e-6)
    images = np.array([[0.9, 0.1, 0.0], [0.1, 0.0, 0.9]], np.float32)
    assert encoders.zero_shot_predict(images, weights).tolist() == [0, 1]
    assert encoders.zero_shot_logits(images, weights).shape == (2, 2)
    with pytest.raises(ValueError, match="exactly one"):
        encoders.zero_shot_classifier(_TableEncoder(table), ["cat"], ["a cat"])


def test_recall_at_k_and_its_chance_level():
    similarity = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    relevant = np.array([[False, False, True], [False, True, False]])
    assert encoders.recall_at_k(similarity, relevant, 1) == 0.0
    assert encoders.recall_at_k(similarity, relevant, 2) == 1.0
    one_of_ten = np.eye(10, dtype=bool)
    assert encoders.recall_at_k_chance(one_of_ten, 5) == pytest.approx(0.5)
    two_of_four = np.array([[True, True, False, False]])
    assert encoders.recall_at_k_chance(two_of_four, 1) == pytest.approx(0.5)
    assert encoders.recall_at_k_chance(two_of_four, 3) == pytest.approx(1.0)


def test_embedding_cache_misses_then_hits_and_writes_atomically(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    encoder = _CountingEncoder(8)
    _CountingEncoder.calls = 0
    first = encoders.cached_image_embeddings(encoder, images, cache_dir=tmp_path)
    second = encoders.cached_image_embeddings(encoder, images, cache_dir=tmp_path)
    assert _CountingEncoder.calls == 1
    np.testing.assert_array_equal(first, second)
    files = sorted(p.name for p in (tmp_path / "embeddings").iterdir())
    assert len(files) == 1 and not files[0].startswith(".")
    encoders.cached_image_embeddings(encoder, images[:2], cache_dir=tmp_path)        # other data: a miss
    encoders.cached_image_embeddings(encoder, images, cache_dir=tmp_path, data_key="world-seed-0")
    assert _CountingEncoder.calls == 3 and len(list((tmp_path / "embeddings").iterdir())) == 3


def test_text_embeddings_are_cached_by_their_texts(tmp_path):
    table = {"a cat": [3.0, 0, 0], "a dog": [0, 0, 2.0]}
    encoder = _TableEncoder(table)
    first = encoders.cached_text_embeddings(encoder, ["a cat", "a dog"], cache_dir=tmp_path)
    np.testing.assert_allclose(first, [[1, 0, 0], [0, 0, 1]])
    encoder.table = {"a cat": [0, 1.0, 0], "a dog": [0, 1.0, 0]}       # a changed model with the same cache key
    np.testing.assert_array_equal(encoders.cached_text_embeddings(encoder, ["a cat", "a dog"], cache_dir=tmp_path),
                                  first)                                # read back, not recomputed
    swapped = encoders.cached_text_embeddings(encoder, ["a dog", "a cat"], cache_dir=tmp_path)
    np.testing.assert_allclose(swapped, [[0, 1, 0], [0, 1, 0]])        # other texts: computed


# ------------------------------------------------------------------------------------------ stand-in CLIP
TINY = standin_clip.StandInClipConfig(train_images=64, steps=3, batch_size=32, warmup_steps=1)


@pytest.mark.parametrize("tower", ["vit", "cnn"])
def test_standin_training_is_deterministic_with_its_seed(tower):
    import dataclasses

    config = dataclasses.replace(TINY, vision_tower=tower)
    model_a, tokenizer_a, history_a = standin_clip.train_standin_clip(config, progress=False)
    model_b, _, history_b = standin_clip.train_standin_clip(config, progress=False)
    assert history_a["loss"] == history_b["loss"] and len(history_a["loss"]) == 3
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), name
    tokens = tokenizer_a(["a red circle on grass.", "a zebra"])
    assert tokens[0, 0] == standin_clip.START and standin_clip.END in tokens[0].tolist()
    assert standin_clip.UNKNOWN in tokens[1].tolist()                         # never seen in training
    assert tokenizer_a.coverage("a zebra") < 1.0 and tokenizer_a.coverage("a") == 1.0


def test_standin_cache_key_follows_the_configuration():
    import dataclasses

    assert standin_clip.standin_cache_key(TINY) == standin_clip.standin_cache_key(dataclasses.replace(TINY))
    assert standin_clip.standin_cache_key(TINY) != standin_clip.standin_cache_key(dataclasses.replace(TINY, steps=4))


def test_standin_cache_write_is_atomic(tmp_path, monkeypatch):
    def broken_save(payload, path):
        with open(path, "wb") as file:
            file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(standin_clip.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        encoders.load_standin_clip(TINY, cache_dir=tmp_path, progress=False)
    assert list((tmp_path / "standin-clip").iterdir()) == []                  # neither the file nor a temporary


@pytest.fixture(scope="module")
def smoke_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    trained = encoders.load_encoder("standin-clip-smoke", cache_dir=root, progress=False)
    return root, trained


def test_standin_clip_is_cached_and_reloads_to_the_same_embeddings(smoke_clip):
    root, trained = smoke_clip
    assert not trained.loaded_from_cache
    files = list((root / "standin-clip").iterdir())
    assert len(files) == 1 and files[0].name.startswith("smoke-") and files[0].suffix == ".pt"
    reloaded = encoders.load_encoder("standin-clip-smoke", cache_dir=root, progress=False)
    assert reloaded.loaded_from_cache and reloaded.history["loss"] == trained.history["loss"]
    world = generate_captioned_world(8, seed=0, split="test")
    np.testing.assert_allclose(reloaded.encode_images(world.images), trained.encode_images(world.images), atol=1e-6)
    texts = trained.encode_texts(world.captions)
    assert texts.shape == (8, trained.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_standin_clip_at_smoke_size_beats_chance_zero_shot_on_held_out_data(smoke_clip):
    _, clip = smoke_clip
    world = generate_captioned_world(600, seed=0, split="test")
    x = clip.encode_images(world.images)
    gains = {}
    for factor, values in FACTORS.items():
        phrases, templates = zero_shot_prompts(factor)
        predicted = encoders.zero_shot_predict(x, encoders.zero_shot_classifier(clip, phrases, templates))
        gains[factor] = (predicted == world.labels(factor)).mean() - 1 / len(values)
    assert gains["background"] > 0.3, gains                                     # the easiest factor, learnt first
    assert np.mean(list(gains.values())) > 0.03, gains
    assert clip.history["loss"][-1] < 0.85 * clip.history["loss"][0]


def test_default_cache_follows_dk_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DK_DATA_DIR", str(tmp_path))
    assert encoders.default_cache_dir() == tmp_path / "encoders"
    assert os.fspath(encoders.default_cache_dir()).startswith(str(tmp_path))

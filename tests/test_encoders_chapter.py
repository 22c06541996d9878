"""Drivers of the encoders appendix, checked with an oracle encoder whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from domainknowledge.chapters import encoders as chapter
from domainknowledge.data.synthetic.captioned_world import FACTORS, generate_captioned_world, zero_shot_prompts


class _Oracle:
    """Embeds an image as the one-hot of its caption (or of its shape's phrase), and texts the same way."""

    has_text = True
    name = "oracle"

    def __init__(self, world, by="caption"):
        self.by = by
        self.vocabulary = sorted(set(world.captions)) + list(zero_shot_prompts("shape")[0])
        self.lookup = {image.tobytes(): (caption, shape) for image, caption, shape
                       in zip(world.images, world.captions, world.factors["shape"])}

    def _one_hot(self, words):
        out = np.zeros((len(words), len(self.vocabulary)), np.float32)
        for row, word in enumerate(words):
            out[row, self.vocabulary.index(word)] = 1.0
        return out

    def encode_images(self, images):
        keys = [self.lookup[np.asarray(image).tobytes()] for image in images]
        return self._one_hot([caption if self.by == "caption" else shape for caption, shape in keys])

    def encode_texts(self, texts):
        words = []
        for text in texts:
            if text in self.vocabulary:
                words.append(text)
            else:                                            # a zero-shot prompt: find its shape phrase
                words.append(next(p for p in zero_shot_prompts("shape")[0] if f" {p}." in text))
        return self._one_hot(words)


@pytest.fixture(scope="module")
def world():
    return generate_captioned_world(120, seed=5, split="test")


def test_retrieval_of_an_oracle_is_perfect_and_chance_is_small(world):
    table = chapter.retrieval_recall(_Oracle(world), world)
    assert (table["recall"] == 1.0).all()
    assert (table["chance"] < 0.2).all()
    assert table.loc[("image → text", 5), "chance"] == pytest.approx(5 / table.loc[("image → text", 5), "gallery"])


def test_zero_shot_of_a_shape_oracle_is_perfect_on_shape_only(world):
    oracle = _Oracle(world, by="shape")
    original = oracle.encode_texts

    def texts(prompts):                                       # other factors' prompts say nothing: all-zero rows
        return np.stack([original([p])[0] if any(f" {s}." in p for s in zero_shot_prompts("shape")[0])
                         else np.zeros(len(oracle.vocabulary), np.float32) for p in prompts])

    oracle.encode_texts = texts
    rows = chapter.zero_shot_by_factor(oracle, world).loc[["shape"]]
    assert rows.loc["shape", "accuracy"] == 1.0 and rows.loc["shape", "chance"] == pytest.approx(1 / 6)
    assert rows.loc["shape", "p_value"] < 1e-10
    assert set(chapter.zero_shot_by_factor(oracle, world).index) == set(FACTORS)


def test_smoothed_loss_is_a_running_mean():
    np.testing.assert_allclose(chapter.smoothed([1, 3, 5, 7], window=2), [1, 2, 4, 6])


def test_photo_labels_need_known_photos():
    with pytest.raises(ValueError, match="none of the photos"):
        chapter.photo_zero_shot(None, {"unknown": np.zeros((4, 4, 3), np.uint8)})


class _FactorOracle:
    """An image-text encoder that knows one factor of a captioned set: images embed as the one-hot of their value,
    prompts as the one-hot of the value their phrase names."""

    has_text = True
    name = "factor-oracle"

    def __init__(self, pairs, factor, values, phrases):
        self.values, self.phrases = list(values), list(phrases)
        self.lookup = {image.tobytes(): value for image, value in zip(pairs.images, pairs.factors[factor])}

    def encode_images(self, images):
        out = np.zeros((len(images), len(self.values) + 1), np.float32)
        for row, image in enumerate(images):
            value = self.lookup[np.asarray(image).tobytes()]
            out[row, self.values.index(value) if value in self.values else -1] = 1.0
        return out

    def encode_texts(self, texts):
        out = np.zeros((len(texts), len(self.values) + 1), np.float32)
        for row, text in enumerate(texts):
            named = [i for i, phrase in enumerate(self.phrases) if f" {phrase}" in f" {text}"]
            out[row, max(named, key=lambda i: len(self.phrases[i]))] = 1.0          # "tank truck", not "truck"
        return out


def test_world_fitness_scores_an_encoder_that_knows_the_factor_perfectly():
    from domainknowledge.data.synthetic.world_captions import captioned_set, zero_shot_factors

    test = captioned_set("vehicles", 60, split="test", image_size=32)
    probe = captioned_set("vehicles", 60, split="probe", image_size=32)
    values, phrases, _ = zero_shot_factors("vehicles")["body type"]
    oracle = _FactorOracle(test, "body type", values, phrases)
    oracle.lookup.update(_FactorOracle(probe, "body type", values, phrases).lookup)
    table = chapter.world_fitness(oracle, "vehicles", test, probe)
    row = table.loc[("vehicles", "body type")]
    assert row["zero_shot"] == 1.0 and row["probe"] == 1.0 and row["p_value"] == pytest.approx(1 / 2001)
    assert row["chance"] == pytest.approx(1 / test.factors["body type"].nunique())
    with pytest.raises(ValueError, match="must be of the world 'cars'"):
        chapter.world_fitness(oracle, "cars", test)



def test_balanced_accuracy_p_value_separates_a_reader_from_a_majority_guess():
    labels = np.array([0] * 80 + [1] * 20)
    majority = np.zeros(100, int)                          # 80 % accuracy, balanced accuracy 0.5: no information
    assert chapter.balanced_accuracy_p_value(labels, majority) == 1.0
    reader = labels.copy()
    reader[:8] = 1                                          # 90 % of each class right
    assert chapter.balanced_accuracy_p_value(labels, reader, rounds=500) == pytest.approx(1 / 501)

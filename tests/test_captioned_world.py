"""The captioned synthetic world: determinism, bookkeeping of what captions mention, and the photographic factors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from domainknowledge.data.synthetic.captioned_world import (
    FACTORS,
    SYNONYMS,
    generate_captioned_world,
    zero_shot_prompts,
)

NONE = {factor: 0.0 for factor in FACTORS}
ALL = {factor: 1.0 for factor in FACTORS}


@pytest.fixture(scope="module")
def world():
    return generate_captioned_world(400, seed=3)


def _words(factor):
    return {w for options in SYNONYMS[factor].values() for w in options}


def test_shapes_types_and_factor_table(world):
    assert world.images.shape == (400, 32, 32, 3) and world.images.dtype == np.uint8
    assert len(world.captions) == 400 and len(world) == 400
    for factor, values in FACTORS.items():
        assert set(world.factors[factor]) <= set(values)
        labels = world.labels(factor)
        assert labels.min() >= 0 and labels.max() < len(values)
        assert [values[i] for i in labels[:20]] == list(world.factors[factor][:20])
        assert world.factors[f"mentions_{factor}"].dtype == bool


def test_same_seed_and_split_give_the_same_world_and_splits_differ(world):
    again = generate_captioned_world(400, seed=3)
    assert np.array_equal(again.images, world.images) and again.captions == world.captions
    other = generate_captioned_world(400, seed=3, split="test")
    assert not np.array_equal(other.images, world.images)
    assert not np.array_equal(generate_captioned_world(400, seed=4).images, world.images)


def test_captions_mention_exactly_what_the_table_says():
    full = generate_captioned_world(60, seed=0, mention_probability=ALL)
    for caption, (_, row) in zip(full.captions, full.factors.iterrows()):
        for factor in ("colour", "shape", "background"):
            assert any(word in caption for word in SYNONYMS[factor][row[factor]]), (factor, caption)
        assert all(row[f"mentions_{f}"] for f in FACTORS)
    bare = generate_captioned_world(60, seed=0, mention_probability=NONE)
    colour_words = re.compile(r"\b(" + "|".join(sorted(_words("colour"))) + r")\b")
    for caption in bare.captions:
        assert not colour_words.search(caption), caption
        assert caption.endswith(".") and ("object" in caption or "shape" in caption)
    assert not bare.factors[[f"mentions_{f}" for f in FACTORS]].to_numpy().any()


def test_defaults_are_mentioned_less_often_than_other_values():
    world = generate_captioned_world(1200, seed=1)
    blur = world.factors
    sharp = blur.loc[blur["blur"] == "sharp", "mentions_blur"].mean()
    blurry = blur.loc[blur["blur"] == "blurry", "mentions_blur"].mean()
    assert 0.15 < sharp < 0.35 and 0.4 < blurry < 0.6       # 0.25 and 0.5 by construction


def test_photographic_style_changes_pixels_as_documented():
    world = generate_captioned_world(600, seed=2)
    brightness = world.images.reshape(600, -1).mean(axis=1)
    exposure = world.factors["exposure"].to_numpy()
    means = [brightness[exposure == v].mean() for v in FACTORS["exposure"]]
    assert means[0] < means[1] < means[2]                        # under < well < over
    grey = world.images.astype(float).mean(axis=-1)
    detail = np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))
    sharp_clean = (world.factors["blur"] == "sharp").to_numpy() & (world.factors["noise"] == "clean").to_numpy()
    blurry_clean = (world.factors["blur"] == "blurry").to_numpy() & (world.factors["noise"] == "clean").to_numpy()
    assert detail[blurry_clean].mean() < 0.8 * detail[sharp_clean].mean()
    grainy = (world.factors["noise"] == "grainy").to_numpy()
    assert detail[grainy].mean() > 1.5 * detail[~grainy].mean()


def test_zero_shot_prompts_cover_every_value():
    for factor, values in FACTORS.items():
        phrases, templates = zero_shot_prompts(factor)
        assert len(phrases) == len(values) and len(set(phrases)) == len(values)
        assert templates and all(t.count("{}") == 1 for t in templates)
    with pytest.raises(ValueError, match="unknown factor"):
        zero_shot_prompts("smell")


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="positive"):
        generate_captioned_world(0)
    with pytest.raises(ValueError, match="image_size"):
        generate_captioned_world(5, image_size=4)
    with pytest.raises(ValueError, match="mention_probability"):
        generate_captioned_world(5, mention_probability={"colour": 1.5})

"""Captions of every synthetic world: deterministic, split-separated, partial, and free of Ch. 12's adjectives."""

from __future__ import annotations

import re

import numpy as np
import pytest

from domainknowledge.data.synthetic.world_captions import (WORLDS, basic_colour_names, captioned_set,
                                                           zero_shot_factors)
from domainknowledge.principles.aesthetic_prompts import NEGATIVE_ADJECTIVES, POSITIVE_ADJECTIVES


@pytest.mark.parametrize("world", WORLDS)
def test_every_world_gives_images_captions_and_the_factors_its_checks_classify(world):
    first = captioned_set(world, 24, seed=3, image_size=32)
    again = captioned_set(world, 24, seed=3, image_size=32)
    other = captioned_set(world, 24, seed=3, split="test", image_size=32)
    assert first.images.shape == (24, 32, 32, 3) and first.images.dtype == np.uint8
    assert len(first.captions) == 24 and all(c.endswith(".") and len(c.split()) >= 2 for c in first.captions)
    assert first.captions == again.captions and np.array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)
    for factor, (values, phrases, templates) in zero_shot_factors(world).items():
        assert factor in first.factors.columns and len(values) == len(phrases) >= 2
        assert all(t.count("{}") == 1 for t in templates)


def test_aesthetic_captions_never_use_the_thesis_prompt_adjectives():
    captions = " ".join(captioned_set("aesthetics", 400, seed=0).captions).lower()
    used = [word for word in (*POSITIVE_ADJECTIVES, *NEGATIVE_ADJECTIVES)
            if re.search(rf"\b{re.escape(word.lower())}\b", captions)]
    assert used == []
    assert "blurry" in captions or "out-of-focus" in captions          # the style words are there


def test_captions_mention_factors_partly():
    captions = captioned_set("cars", 200, seed=1).captions
    named = sum(any(word in c for word in ("sedan", "saloon", "SUV", "hatchback", "van", "pickup", "sports car",
                                           "coupe", "roadster", "four-door", "off-roader", "people carrier",
                                           "sport utility"))
                for c in captions)
    assert 0.7 * len(captions) < named < len(captions)


def test_basic_colour_names():
    rgb = np.array([[0.9, 0.1, 0.1], [0.1, 0.2, 0.9], [0.05, 0.05, 0.05], [0.95, 0.95, 0.95], [0.5, 0.5, 0.5],
                    [0.45, 0.25, 0.1], [0.1, 0.8, 0.2]])
    assert basic_colour_names(rgb).tolist() == ["red", "blue", "black", "white", "grey", "brown", "green"]


def test_unknown_world_is_explained():
    with pytest.raises(ValueError, match="unknown world 'trees'.*captioned"):
        captioned_set("trees", 4)

"""Table 16.1's distortions: identity at level 0, monotone effects, shapes, the normalised intensities of Eq. 16.3."""

from __future__ import annotations

import numpy as np
import pytest

from domainknowledge.principles import distortions as D


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:40]
    base = np.stack([x * 5, y * 5, (x + y) * 2.5], axis=-1) + rng.integers(0, 30, (40, 40, 3))
    return np.clip(base + 20, 0, 255).astype(np.uint8)


def test_catalogue_has_the_thesis_distortions_per_aspect():
    assert len(D.aspect_names("technical")) == 6
    assert len(D.aspect_names("style")) == 9
    assert len(D.aspect_names("composition")) == 6
    for spec in D.CATALOGUE:
        expected = tuple(range(0, 6)) if spec.aspect == "technical" else tuple(range(-5, 6))
        assert spec.levels == expected and len(spec.parameters) == len(spec.levels)


@pytest.mark.parametrize("name", D.DISTORTION_NAMES)
def test_level_zero_is_the_identity_and_others_keep_shape(image, name):
    assert np.array_equal(D.apply_distortion(image, name, 0), image)
    strongest = max(D.distortion_levels(name))
    out = D.apply_distortion(image, name, strongest, np.random.default_rng(1))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image), f"{name} at level {strongest} left the image unchanged"


def test_brightness_raises_mean_luminance_monotonically(image):
    means = [D.luminance(D.apply_distortion(image, "brightness", level)).mean() for level in range(-5, 6)]
    assert np.all(np.diff(means) > 0)


def test_contrast_and_saturation_are_monotone(image):
    contrasts = [D.rms_contrast(D.apply_distortion(image, "contrast", level)) for level in range(-5, 1)]
    assert np.all(np.diff(contrasts) > 0)
    grey = D.apply_distortion(image, "saturation", -5).astype(int)
    assert np.abs(grey - grey.mean(axis=-1, keepdims=True)).max() <= 1   # saturation -1 is grey


def test_noise_grows_with_intensity(image):
    rng = np.random.default_rng
    errors = [np.abs(D.apply_distortion(image, "gaussian_noise", k, rng(3)).astype(int) - image).mean() for k in range(6)]
    assert errors[0] == 0 and np.all(np.diff(errors) > 0)


def test_normalised_intensity_of_eq_16_3():
    assert D.normalised_intensity("brightness", 5) == 1.0
    assert D.normalised_intensity("brightness", -5) == -1.0
    assert D.normalised_intensity("brightness", -2) == pytest.approx(-0.4)
    assert D.normalised_intensity("jpeg_compression", 3) == pytest.approx(0.6)
    assert D.normalised_intensity("rotation", 0) == 0.0


def test_bad_input_gets_a_clear_error(image):
    with pytest.raises(ValueError, match="unknown distortion 'sepia'"):
        D.apply_distortion(image, "sepia", 1)
    with pytest.raises(ValueError, match="out of range"):
        D.apply_distortion(image, "jpeg_compression", -1)
    with pytest.raises(ValueError, match="out of range"):
        D.normalised_intensity("contrast", 6)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        D.apply_distortion(image[..., 0], "contrast", 1)
    with pytest.raises(ValueError, match="uint8"):
        D.apply_distortion(image.astype(np.float32), "contrast", 1)


def test_random_distortions_are_seeded(image):
    a = D.apply_distortion(image, "impulse_noise", 4, np.random.default_rng(5))
    b = D.apply_distortion(image, "impulse_noise", 4, np.random.default_rng(5))
    assert np.array_equal(a, b)

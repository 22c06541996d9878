"""The procedural car renderer (Kobs 2023, Ch. 7 stand-in): shapes, determinism, what each property changes."""

import numpy as np
import pandas as pd
import pytest

from domainknowledge.data.synthetic import cars

BASE = {"model": "sedan", "rotation": 45, "car_hue": 0.0, "car_saturation": 1.5, "car_value": 1.5,
        "background_hue": 0.6, "background_saturation": 0.75, "background_value": 1.5, "camera_height": 1.5,
        "sun_elevation": 45, "sun_rotation": 135}


def render(**changes):
    images, masks = cars.render_cars(pd.DataFrame([{**BASE, **changes}]), image_size=48, supersample=1)
    return images[0].astype(int), masks[0]


def test_analysis_set_shapes_grid_and_masks():
    renders = cars.make_analysis_set(40, seed=0, image_size=32)
    assert renders.images.shape == (40, 32, 32, 3) and renders.images.dtype == np.uint8
    assert renders.masks.shape == (40, 32, 32) and renders.masks.dtype == bool
    assert list(renders.properties.columns) == list(cars.PROPERTIES) and len(renders) == 40
    for name, values in cars.ANALYSIS_GRID.items():
        assert set(renders.properties[name]) <= set(values), name
    share = renders.masks.mean(axis=(1, 2))
    assert (share > 0.03).all() and (share < 0.8).all()          # every image shows a car, none fills it
    assert np.array_equal(renders.labels, [cars.BODY_TYPES.index(m) for m in renders.properties["model"]])


def test_renders_are_deterministic_per_seed():
    first, second = cars.make_training_set(12, seed=3, image_size=32), cars.make_training_set(12, seed=3, image_size=32)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.masks, second.masks)
    pd.testing.assert_frame_equal(first.properties, second.properties)
    other = cars.make_training_set(12, seed=4, image_size=32)
    assert not np.array_equal(first.images, other.images)


def test_background_colour_changes_only_pixels_outside_the_car():
    image, mask = render()
    recoloured, same_mask = render(background_hue=0.1, background_value=0.75)
    assert np.array_equal(mask, same_mask)
    changed = (image != recoloured).any(axis=2)
    assert not changed[mask].any()                 # the mask is exactly the car: its pixels keep their colour
    assert changed[~mask].all()                     # every other pixel is background (or its shadow)


def test_car_colour_changes_only_pixels_on_the_car():
    image, mask = render()
    repainted, same_mask = render(car_hue=0.5)
    changed = (image != repainted).any(axis=2)
    assert np.array_equal(mask, same_mask) and not changed[~mask].any() and changed[mask].mean() > 0.4


@pytest.mark.parametrize("change", [{"rotation": 90}, {"camera_height": 3.5}, {"model": "van"}])
def test_geometry_properties_change_the_silhouette(change):
    _, mask = render()
    _, moved = render(**change)
    assert (mask != moved).mean() > 0.01


def test_sun_changes_shading_and_shadow_but_not_the_car():
    image, mask = render()
    for change in ({"sun_rotation": 315}, {"sun_elevation": 0}):
        lit, same_mask = render(**change)
        assert np.array_equal(mask, same_mask)
        assert (image != lit).any(axis=2)[mask].any()           # faces are lit differently
        assert (image != lit).any(axis=2)[~mask].any()          # the shadow moved
    low, _ = render(sun_elevation=0)
    high, _ = render(sun_elevation=90)
    assert low[mask].mean() < high[mask].mean()                 # a low sun is dimmer


def test_colour_factors_follow_the_thesis_grid():
    assert np.allclose(cars.hsv_factors_to_rgb(0.3, 0.0, 2.0), 1.0)          # no saturation, full value: white
    assert np.allclose(cars.hsv_factors_to_rgb(0.7, 1.5, 0.0), 0.0)          # zero value: black
    assert np.allclose(cars.hsv_factors_to_rgb(0.0, 2.0, 2.0), [1.0, 0.0, 0.0])


def test_training_classes_are_models_with_their_own_proportions():
    renders = cars.make_training_set(60, seed=0, image_size=32, variants_per_type=3)
    properties = renders.properties
    assert np.array_equal(renders.labels, [cars.BODY_TYPES.index(m) * 3 + v
                                           for m, v in zip(properties["model"], properties["variant"])])
    assert renders.labels.max() < len(cars.BODY_TYPES) * 3
    canonical, variant = cars.body_shape("suv"), cars.body_shape("suv", 1)
    assert not np.allclose(canonical.profile, variant.profile)
    assert np.array_equal(cars.body_shape("suv", 1).profile, variant.profile)


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match="lacks the columns"):
        cars.render_cars(pd.DataFrame([{"model": "sedan"}]))
    with pytest.raises(ValueError, match="unknown body type"):
        cars.body_shape("limousine")
    with pytest.raises(ValueError, match="background"):
        cars.render_cars(pd.DataFrame([BASE]), background="sky")

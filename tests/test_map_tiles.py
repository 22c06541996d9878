"""The OSM-style tile generator and its hidden NO2 function (Kobs 2023, Ch. 6 stand-in): known answers."""

import numpy as np
import pytest

from domainknowledge.data.synthetic import map_tiles as mt


def test_same_seed_same_tiles_and_values():
    first = mt.make_map_tiles(12, seed=3, size=32)
    second = mt.make_map_tiles(12, seed=3, size=32)
    other = mt.make_map_tiles(12, seed=4, size=32)
    assert first.images.dtype == np.uint8 and first.images.shape == (12, 32, 32, 3)
    assert first.labels.shape == (12, 32, 32)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.no2, second.no2)
    assert not np.array_equal(first.images, other.images)


@pytest.mark.parametrize("entity", mt.LAND_USES + ("motorway", "trunk"))
def test_uniform_tile_has_one_colour_and_fraction_one(entity):
    image, labels = mt.render_scene(mt.uniform_scene(entity), 24)
    assert (image.reshape(-1, 3) == mt.PALETTE[entity]).all()
    fractions = mt.class_fractions(labels[None])[0]
    assert fractions[mt.CLASSES.index(entity)] == pytest.approx(1.0)
    assert fractions.sum() == pytest.approx(1.0)


def test_road_overlay_width_in_pixels_and_casing_colour():
    # a 16 m trunk on an 80 m tile of 80 px covers exactly 16 pixel columns, casing at both borders
    image, labels = mt.render_scene(mt.uniform_scene("park", "trunk", overlay_width=16.0), 80)
    road_columns = np.flatnonzero((labels == mt.CLASSES.index("trunk")).all(axis=0))
    assert road_columns.tolist() == list(range(32, 48))
    assert tuple(image[0, 32]) == mt.CASING["trunk"] and tuple(image[0, 40]) == mt.PALETTE["trunk"]
    assert tuple(image[0, 0]) == mt.PALETTE["park"]


def test_truth_of_uniform_land_use_is_base_plus_level():
    function = mt.NO2Function()
    for name in mt.LAND_USES:
        _, labels = mt.render_scene(mt.uniform_scene(name), 16)
        assert function(labels) == pytest.approx(function.base + function.land_use_levels[name])


def test_truth_of_a_road_tile_saturates_at_the_road_scale():
    function = mt.NO2Function()
    _, labels = mt.render_scene(mt.uniform_scene("trunk"), 16)
    expected = function.base + function.road_scale * (1 - np.exp(-function.road_emissions["trunk"] / function.saturation))
    assert function(labels) == pytest.approx(expected)


def test_truth_rises_with_width_and_falls_with_distance():
    function = mt.NO2Function()
    _, labels = mt.render_scenes(mt.width_probe_scenes(np.linspace(1, 40, 14)), 160)
    assert np.all(np.diff(function(labels)) > 0)
    _, labels = mt.render_scenes(mt.distance_probe_scenes(np.linspace(0, 40, 11), width_m=8.0), 160)
    assert np.all(np.diff(function(labels)) < 0)


def test_interaction_same_road_adds_more_in_commercial_than_in_park():
    function = mt.NO2Function()
    added = {}
    for name in ("commercial", "park"):
        _, alone = mt.render_scene(mt.uniform_scene(name), 32)
        _, with_road = mt.render_scene(mt.uniform_scene(name, "trunk"), 32)
        added[name] = function(with_road) - function(alone)
    assert added["commercial"] > added["park"] + 5


def test_noise_has_the_documented_spread():
    tiles = mt.make_map_tiles(400, seed=0, size=16)
    residual = tiles.no2 - tiles.truth
    assert abs(residual.std() - mt.NO2Function().noise_sd) < 0.5


def test_decode_labels_recovers_plain_renders():
    scenes = [mt.uniform_scene(name) for name in mt.LAND_USES] + [mt.uniform_scene("water", "motorway")]
    images, labels = mt.render_scenes(scenes, 20)
    np.testing.assert_array_equal(mt.decode_labels(images), labels)


def test_lur_features_known_areas_lengths_and_distances():
    # an all-commercial tile with a vertical primary road 20 m right of the centre
    scene = mt.Scene(site_land_uses=("commercial",), roads=(mt.Road("primary", 0.0, 20.0, 10.0),))
    _, labels = mt.render_scene(scene, 80)
    features, names = mt.lur_features(labels[None], radii_m=(10.0,))
    row = dict(zip(names, features[0]))
    assert row["area:commercial@10m"] == pytest.approx(np.pi * 100, rel=0.05)
    assert row["length:big@10m"] == 0 and row["area:industrial@10m"] == 0
    assert row["distance:trunk_or_primary"] == pytest.approx(15.0, abs=0.8)
    assert row["distance:motorway"] == mt.TILE_METRES and row["distance:industrial"] == mt.TILE_METRES
    extended, extended_names = mt.lur_features(labels[None], radii_m=(40.0,), feature_set="extended")
    length = dict(zip(extended_names, extended[0]))["length:primary@40m"]
    assert length == pytest.approx(2 * np.sqrt(40 ** 2 - 20 ** 2), rel=0.1)   # chord through the 40 m circle


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="road type"):
        mt.Road("highway", 0.0, 0.0, 5.0)
    with pytest.raises(ValueError, match="road overlay on a road"):
        mt.uniform_scene("trunk", "motorway")
    with pytest.raises(ValueError, match="feature_set"):
        mt.lur_features(np.zeros((1, 8, 8), dtype=np.int8), feature_set="all")
    with pytest.raises(ValueError, match="orientation"):
        mt.width_probe_scenes([1.0], orientation="diagonal")
    with pytest.raises(ValueError, match="land uses"):
        mt.NO2Function(land_use_levels={"park": 1.0})


def test_lur_features_are_computed_chunk_by_chunk_with_the_same_numbers():
    """Issue 21: the features of a tile depend on that tile alone, so chunks (bounded memory) change nothing."""
    tiles = mt.make_map_tiles(7, seed=3, size=32)
    for feature_set in mt.FEATURE_SETS:
        whole, names = mt.lur_features(tiles.labels, feature_set=feature_set, chunk_size=100)
        chunked, chunk_names = mt.lur_features(tiles.labels, feature_set=feature_set, chunk_size=3)
        assert names == chunk_names and whole.shape == (7, len(names)) and np.array_equal(whole, chunked)
    assert np.array_equal(mt.decode_labels(tiles.images), np.concatenate([mt.decode_labels(tiles.images[:4]),
                                                                          mt.decode_labels(tiles.images[4:])]))

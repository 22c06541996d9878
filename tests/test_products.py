"""The products-on-backgrounds set (Kobs Ch. 9 and 11): disjoint banks, exact masks, the shortcut knob, BGAugment."""

import numpy as np
import pytest
import torch

from domainknowledge.data.synthetic import products


@pytest.fixture(scope="module")
def train_set():
    return products.make_product_set(12, 4, split="train", seed=0, image_size=32, shortcut_rate=1.0)


def test_banks_share_no_source_and_no_image():
    photos = [set(bank["photos"]) for bank in products.BANK_SOURCES.values()]
    patterns = [set(bank["patterns"]) for bank in products.BANK_SOURCES.values()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not photos[i] & photos[j] and not patterns[i] & patterns[j]
    banks = {name: products.background_bank(name, 20, image_size=16, seed=0) for name in products.BANK_SOURCES}
    flat = {name: {bank[k].tobytes() for k in range(len(bank))} for name, bank in banks.items()}
    assert not flat["augment"] & flat["corrupt"] and not flat["scene"] & flat["corrupt"]
    np.testing.assert_array_equal(banks["corrupt"], products.background_bank("corrupt", 20, image_size=16, seed=0))
    with pytest.raises(ValueError, match="unknown background bank"):
        products.background_bank("studio", 3)


def test_product_views_labels_and_masks(train_set):
    assert train_set.images.shape == (48, 32, 32, 3) and train_set.masks.shape == (48, 32, 32)
    np.testing.assert_array_equal(np.bincount(train_set.labels), np.full(12, 4))
    assert 0.05 < train_set.masks.mean() < 0.6                       # every view shows a product and background
    assert train_set.masks.reshape(48, -1).any(axis=1).all()
    test_set = products.make_product_set(12, 4, split="test", seed=0, image_size=32)
    assert test_set.split == "test" and len(test_set) == 48          # items of the other Fashion-MNIST split


def test_full_shortcut_gives_each_product_one_background(train_set):
    backgrounds = train_set.backgrounds_only.astype(int)
    outside = ~train_set.masks
    first, second = 0, 1                                            # two views of product 0
    both = outside[first] & outside[second]
    np.testing.assert_array_equal(backgrounds[first][both], backgrounds[second][both])
    other = 4                                                       # first view of product 1
    both = outside[first] & outside[other]
    assert np.abs(backgrounds[first][both] - backgrounds[other][both]).mean() > 5
    none = products.make_product_set(12, 4, seed=0, image_size=32, shortcut_rate=0.0)
    assert not none.own_background.any() and train_set.own_background.all()


def test_replace_background_is_the_thesis_formula_in_numpy_and_torch(train_set):
    background = np.full((32, 32, 3), 7, dtype=np.uint8)
    swapped = products.replace_background(train_set.images[:3], train_set.masks[:3], background)
    np.testing.assert_array_equal(swapped[train_set.masks[:3]], train_set.images[:3][train_set.masks[:3]])
    assert (swapped[~train_set.masks[:3]] == 7).all() and swapped.dtype == np.uint8
    as_tensor = torch.from_numpy(train_set.images[:3].transpose(0, 3, 1, 2).copy())
    swapped_tensor = products.replace_background(as_tensor, train_set.masks[:3],
                                                 torch.from_numpy(background.transpose(2, 0, 1).copy()))
    np.testing.assert_array_equal(swapped_tensor.numpy().transpose(0, 2, 3, 1), swapped)
    with pytest.raises(ValueError, match="masks must have shape"):
        products.replace_background(train_set.images[:3], train_set.masks[:2], background)


def test_corrupted_copies_keep_the_product_and_change_the_background(train_set):
    copies = products.corrupted_copies(train_set, repeats=2, bank_size=10, seed=0)
    assert len(copies) == 2 and copies[0].shape == train_set.images.shape
    for copy in copies:
        np.testing.assert_array_equal(copy[train_set.masks], train_set.images[train_set.masks])
    assert (copies[0] != train_set.images).any(axis=-1)[~train_set.masks].mean() > 0.5
    assert not np.array_equal(copies[0], copies[1])


def test_bgaugment_transform_is_seeded_and_keeps_the_foreground(train_set):
    images = torch.from_numpy(train_set.images.transpose(0, 3, 1, 2).copy())
    indices = np.array([5, 0, 9])
    first = products.bgaugment_transform(train_set.masks, bank_size=10, seed=1)(images[indices], indices)
    again = products.bgaugment_transform(train_set.masks, bank_size=10, seed=1)(images[indices], indices)
    torch.testing.assert_close(first, again)
    masks = torch.from_numpy(train_set.masks[indices])
    torch.testing.assert_close(first.permute(0, 2, 3, 1)[masks], images[indices].permute(0, 2, 3, 1)[masks])
    assert first.shape == (3, 3, 32, 32) and first.dtype == torch.uint8
    with pytest.raises(ValueError, match="px"):
        products.bgaugment_transform(train_set.masks, bank=np.zeros((4, 16, 16, 3), dtype=np.uint8))


def test_a_larger_scene_shows_each_view_a_shifted_window_of_its_product_s_place(train_set):
    """``scene_scale`` > 1: two views of a product on its own background show different pixels of one scene
    (one window is the other shifted); the objects, labels and masks are those of ``scene_scale = 1``."""
    shifted = products.make_product_set(12, 4, split="train", seed=0, image_size=32, shortcut_rate=1.0, scene_scale=1.5)
    np.testing.assert_array_equal(shifted.masks, train_set.masks)
    np.testing.assert_array_equal(shifted.images[shifted.masks], train_set.images[train_set.masks])
    scene = products.background_bank("scene", 12 + 100, image_size=48, seed=0)[0]       # product 0's place
    windows = {(top, left): scene[top:top + 32, left:left + 32] for top in range(17) for left in range(17)}
    backgrounds, outside = shifted.backgrounds_only, ~shifted.masks
    found = []
    for view in range(4):                                             # every view of product 0 is one window
        shown = backgrounds[view][outside[view]]
        matches = [key for key, window in windows.items() if (window[outside[view]] == shown).all()]
        assert matches
        found.append(matches[0])
    assert len(set(found)) > 1                                        # at different places
    with pytest.raises(ValueError, match="scene_scale"):
        products.make_product_set(4, 2, scene_scale=0.5)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="split"):
        products.make_product_set(4, 2, split="validation")
    with pytest.raises(ValueError, match="probability"):
        products.make_product_set(4, 2, shortcut_rate=1.5)
    with pytest.raises(ValueError, match="at least 2 products"):
        products.make_product_set(4, 1)


def test_shuffled_objects_leave_the_class_to_its_background():
    """The positive control's data: with shuffled objects and rho = 1, a class's views share a background but
    not an object; the unshuffled set keeps each product's own object in every view."""
    shuffled = products.make_product_set(12, 4, seed=0, image_size=32, shortcut_rate=1.0, shuffle_objects=True)
    again = products.make_product_set(12, 4, seed=0, image_size=32, shortcut_rate=1.0, shuffle_objects=True)
    np.testing.assert_array_equal(shuffled.images, again.images)                      # seeded
    views = shuffled.object_products.reshape(12, 4)
    assert (np.array([len(set(row)) for row in views]) > 1).mean() > 0.8              # objects differ within a class
    assert len(np.unique(shuffled.object_products)) > 6                               # drawn from across the set
    backgrounds, outside = shuffled.backgrounds_only.astype(int), ~shuffled.masks
    both = outside[0] & outside[1]                                                    # two views of product 0
    np.testing.assert_array_equal(backgrounds[0][both], backgrounds[1][both])
    items = shuffled.item_ids[views]                                                  # the Fashion-MNIST item shown
    assert (np.array([len(set(row)) for row in items]) > 1).mean() > 0.8
    colour = lambda i: shuffled.images[i][shuffled.masks[i]].mean(axis=0)           # same object, same colour
    same = [(i, j) for i in range(48) for j in range(i + 1, 48) if shuffled.object_products[i] == shuffled.object_products[j]]
    assert same and all(np.abs(colour(i) - colour(j)).max() < 60 for i, j in same[:5])
    plain = products.make_product_set(12, 4, seed=0, image_size=32, shortcut_rate=1.0)
    np.testing.assert_array_equal(plain.object_products, plain.labels)
    np.testing.assert_array_equal(plain.images, products.make_product_set(12, 4, seed=0, image_size=32,
                                                                          shortcut_rate=1.0).images)

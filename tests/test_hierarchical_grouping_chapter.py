"""The DHOG chapter's drivers (Darlow 2022, Ch. 4): the multi-head network, views, training and evaluation."""

import dataclasses

import numpy as np
import pytest
import torch

from domainknowledge.chapters import hierarchical_grouping as ch

TINY = dataclasses.replace(ch.CONFIGS["smoke"], train_images=200, test_images=100, channels=(4, 4, 8, 8),
                           hidden=8, batch_size=50, epochs=1)


@pytest.fixture(scope="module")
def task():
    return ch.load_task("tinted_digits", TINY, seed=0)


def test_network_has_one_head_per_block_and_final_copy():
    network = ch.DHOGNetwork(3, (4, 4, 8, 8), heads=6, clusters=5, hidden=8)
    outputs = network(torch.rand(2, 3, 14, 14) * 255)
    assert len(outputs) == 6 and all(o.shape == (2, 5) for o in outputs)
    assert all(torch.allclose(o.sum(dim=1), torch.ones(2)) for o in outputs)
    assert len(network.final_blocks) == 3                      # heads 4..6 each own a copy of the final block
    # the copies are separate modules with separate weights
    assert network.final_blocks[0].body[0].weight.data_ptr() != network.final_blocks[1].body[0].weight.data_ptr()


def test_detaching_the_trunk_keeps_push_gradients_in_head_specific_weights():
    network = ch.DHOGNetwork(1, (4, 4, 8, 8), heads=4, clusters=3, hidden=8)
    outputs = network(torch.rand(4, 1, 12, 12) * 255, detach_trunk=True)
    sum(o.sum() * (i + 1) for i, o in enumerate(outputs)).backward()
    assert all(p.grad is None for p in network.trunk.parameters())
    assert network.final_blocks[0].body[0].weight.grad is not None


def test_views_have_the_crop_size_and_are_seeded(task):
    images = task.train_images[:5]
    a = ch.clustering_views(images, 3, 0.75, torch.Generator().manual_seed(0))
    b = ch.clustering_views(images, 3, 0.75, torch.Generator().manual_seed(0))
    assert len(a) == 3 and a[0].shape == (5, 3, 12, 12)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert ch.centre_view(images, 0.75).shape == (5, 3, 12, 12)


def test_training_and_per_head_evaluation(task):
    trained = ch.train_clusterer(task, TINY, alpha=0.05, seed=0)
    assert len(trained.losses) == 1 and np.isfinite(trained.losses[0])
    table = ch.evaluate_heads(trained, task, TINY, seed=0)
    assert list(table["head"]) == [1, 2, 3, 4]
    assert table["accuracy"].between(0, 1).all() and table["augmentation_nmi"].between(0, 1).all()
    assert "nmi_easy" in table                                  # tinted digits carry the tint partition
    assert table["size_entropy"].between(0, 1).all() and table["clusters_used"].between(1, task.num_classes).all()
    assert (table["degenerate"] == (table["size_entropy"] < ch.DEGENERATE_ENTROPY)).all()
    assert table.loc[table["collapsed"], "degenerate"].all()
    again = ch.train_clusterer(task, TINY, alpha=0.05, seed=0)
    assert again.losses == trained.losses
    assert trained.steps == 4                                   # 200 images in batches of 50, one epoch
    curves = ch.training_curves({("tinted digits", 0.05, 0): trained})
    assert curves.to_dict(orient="records") == [{"dataset": "tinted digits", "alpha": 0.05, "seed": 0, "step": 4,
                                                 "loss": trained.losses[0]}]


def test_config_and_data_errors():
    with pytest.raises(ValueError, match="heads"):
        dataclasses.replace(TINY, heads=3)
    with pytest.raises(ValueError, match="datasets"):
        dataclasses.replace(TINY, datasets=("svhn",))
    from domainknowledge.data.bundled import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        ch.load_task("cifar10", TINY, seed=0, data_root="/nonexistent")


def test_a_collapsed_head_has_no_augmentation_agreement(task):
    network = ch.DHOGNetwork(3, TINY.channels, TINY.heads, 10, TINY.hidden)
    with torch.no_grad():
        network.heads[0][-1].weight.zero_()
        network.heads[0][-1].bias.copy_(torch.arange(10, dtype=torch.float32) * -10.0)     # always cluster 0
    trained = ch.TrainedClusterer(network, 0.0, 0, [], 0.0)
    agreement = ch.augmentation_agreement(trained, task.train_images[:60], TINY, seed=0)
    assert agreement[0] == 0.0                        # scikit-learn alone would say 1.0 for two constant labelings


def test_exemplars_are_the_most_probable_images_of_each_cluster(task):
    network = ch.DHOGNetwork(3, TINY.channels, TINY.heads, 10, TINY.hidden)
    trained = ch.TrainedClusterer(network, 0.0, 0, [], 0.0)
    images = task.train_images[:40]
    probabilities = ch.predict_probabilities(trained, images, TINY.crop)
    assert probabilities.shape == (TINY.heads, 40, 10)
    assert np.allclose(probabilities.sum(axis=2), 1.0, atol=1e-5)
    assert (ch.predict_clusters(trained, images, TINY.crop) == probabilities.argmax(axis=2)).all()
    exemplars = ch.cluster_exemplars(trained, images, head=2, crop=TINY.crop, top=3)
    assert exemplars.shape == (10, 3)
    for cluster, chosen in enumerate(exemplars):
        column = probabilities[1, :, cluster]
        assert np.allclose(column[chosen], np.sort(column)[::-1][:3])      # the three highest, in order
    with pytest.raises(ValueError, match="head must be between 1 and 4"):
        ch.cluster_exemplars(trained, images, head=5, crop=TINY.crop)
    with pytest.raises(ValueError, match="top must be between 1 and the number of images"):
        ch.cluster_exemplars(trained, images, head=1, crop=TINY.crop, top=41)


def test_first_stride_halves_the_trunk_resolution():
    network = ch.DHOGNetwork(1, (4, 4, 8, 8), heads=4, clusters=3, hidden=8, first_stride=2)
    assert network.trunk[0](torch.rand(2, 1, 16, 16)).shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="first_stride"):
        dataclasses.replace(TINY, first_stride=3)
    assert ch.is_collapsed(np.zeros(5, dtype=int)) and not ch.is_collapsed(np.array([0, 1, 0]))


def test_the_one_tint_control_keeps_only_the_digit_grouping():
    control = ch.load_task("one_tint_digits", TINY, seed=0)
    tinted = ch.load_task("tinted_digits", TINY, seed=0)
    assert control.name == "one-tint digits" and control.train_easy is None and control.test_easy is None
    assert len(control.train_labels) == 200 and set(np.unique(control.train_labels)) == set(range(10))
    # every glyph pixel of the control has one hue: the brightest pixel of each image has the same colour ratio
    brightest = control.train_images.flatten(2).max(dim=2).values.float()            # (N, 3)
    ratios = brightest / brightest.sum(dim=1, keepdim=True)
    assert torch.allclose(ratios, ratios[:1].expand_as(ratios), atol=0.02)
    assert len(np.unique(tinted.train_easy)) > 1


def test_cluster_size_entropy_and_degenerate_heads():
    assert ch.cluster_size_entropy(np.arange(100) % 10, 10) == pytest.approx(1.0)          # ten equal clusters
    assert ch.cluster_size_entropy(np.zeros(50, dtype=int), 10) == pytest.approx(0.0)      # collapsed
    assert ch.cluster_size_entropy(np.arange(100) % 2, 10) == pytest.approx(np.log(2) / np.log(10))
    assert ch.is_degenerate(np.zeros(50, dtype=int), 10)
    assert ch.is_degenerate(np.arange(100) % 2, 10)                                       # two clusters: 0.30
    assert not ch.is_degenerate(np.arange(100) % 5, 10)                                   # five clusters: 0.70
    stray = np.concatenate([np.zeros(97, dtype=int), [1, 2, 3]])                          # not collapsed, still degenerate
    assert not ch.is_collapsed(stray) and ch.is_degenerate(stray, 10)


def test_the_control_runs_once_without_the_push_term_and_the_arms_share_seeds():
    config = dataclasses.replace(TINY, datasets=("tinted_digits", "one_tint_digits"), runs=2, control_runs=1)
    assert ch.run_seeds(config, 3) == (3000, 3001)
    assert ch.planned_runs(config, 3) == [("tinted_digits", 0.0, 3000), ("tinted_digits", 0.0, 3001),
                                          ("tinted_digits", 0.05, 3000), ("tinted_digits", 0.05, 3001),
                                          ("one_tint_digits", 0.0, 3000)]
    with pytest.raises(ValueError, match="control_runs"):
        dataclasses.replace(TINY, control_runs=0)
    assert ch.config_for(dataclasses.replace(config, control_epochs=3), "one_tint_digits").epochs == 3
    assert ch.config_for(dataclasses.replace(config, control_epochs=3), "tinted_digits").epochs == config.epochs
    assert ch.config_for(dataclasses.replace(config, control_epochs=None), "one_tint_digits").epochs == config.epochs


def test_paired_by_seed_subtracts_within_each_seed():
    import pandas as pd

    frame = pd.DataFrame({"seed": [0, 0, 1, 1, 2], "alpha": [0.0, 0.05, 0.0, 0.05, 0.0],
                          "accuracy": [0.5, 0.7, 0.6, 0.65, 0.9]})
    gaps = ch.paired_by_seed(frame, "accuracy", 0.05, 0.0)
    assert gaps.index.tolist() == [0, 1] and gaps.tolist() == pytest.approx([0.2, 0.05])    # seed 2 ran one arm only
    assert ch.paired_by_seed(frame, "accuracy", 0.5, 0.0).empty


def test_views_without_flips_keep_the_orientation_and_training_threads_are_restored(task):
    images = task.train_images[:6, :1]                          # one channel: no random greyscale
    generator = torch.Generator().manual_seed(1)
    view, = ch.clustering_views(images, 1, 1.0, generator, flip=False)         # full-size crop: only the jitter is left
    # brightness and contrast are an increasing map per image (clamped at 0 and 255): sorted by the image's pixel
    # values, each view's pixels never decrease, which a mirrored digit's would
    for original, augmented in zip(images.float().flatten(1), view.flatten(1)):
        assert (augmented[original.argsort()].diff() >= -1e-3).all()
    mirrored, = ch.clustering_views(images.flip(dims=[3]), 1, 1.0, torch.Generator().manual_seed(1), flip=False)
    assert not torch.equal(mirrored.argsort(dim=-1), view.argsort(dim=-1))
    threads = torch.get_num_threads()
    ch.train_clusterer(task, dataclasses.replace(TINY, cpu_threads=1), alpha=0.0, seed=0)
    assert torch.get_num_threads() == threads

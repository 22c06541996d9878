"""The DDTL chapter's drivers (Darlow 2022, Ch. 3): one network for every method, training and evaluation."""

import dataclasses

import numpy as np
import pytest
import torch

from domainknowledge.chapters import decision_tree_hashing as ch

TINY = dataclasses.replace(ch.CONFIGS["smoke"], channels=(4, 8, 8), feature_dim=16, tree_depth=4, epochs=3,
                           batch_size=32, learning_rate=3e-3, map_k=20)


@pytest.fixture(scope="module")
def task():
    """Two easy classes: bright squares in the top-left or the bottom-right corner, with noise."""
    generator = torch.Generator().manual_seed(0)

    def images(n):
        labels = torch.arange(n) % 2
        x = torch.randint(0, 60, (n, 1, 16, 16), generator=generator)
        for i, label in enumerate(labels.tolist()):
            if label:
                x[i, 0, 9:15, 9:15] += 180
            else:
                x[i, 0, 1:7, 1:7] += 180
        return x.to(torch.uint8), labels

    train, query = images(128), images(32)
    return ch.HashingTask("toy", *train, *query, ("top-left", "bottom-right"))


@pytest.mark.parametrize("method", ch.METHODS)
def test_every_method_trains_and_gives_codes_of_one_length(task, method):
    trained = ch.train_hasher(method, task, TINY, seed=0)
    encoded = ch.encode(trained, task.query_images)
    assert encoded["codes"].shape == (32, 2 + TINY.tree_depth)        # floor(log2 2) + 1 = 2 class bits
    assert encoded["features"].shape == (32, TINY.feature_dim)
    assert set(np.unique(encoded["codes"])) <= {0, 1}
    assert all(np.isfinite(trained.losses))


def test_ddtl_learns_the_classes_and_its_class_bits_come_first(task):
    trained = ch.train_hasher("ddtl", task, dataclasses.replace(TINY, epochs=12), seed=0)
    assert trained.losses[-1] < trained.losses[0]
    database, queries = ch.encode(trained, task.train_images), ch.encode(trained, task.query_images)
    # class bits are the binary code of the predicted class, least significant first: class 1 -> (1, 0)
    predicted = queries["codes"][:, 0]
    assert (predicted == task.query_labels.numpy()).mean() > 0.9
    scores = ch.evaluate_retrieval("ddtl", database, task.train_labels, queries, task.query_labels, TINY.map_k)
    assert scores["map_at_k"] > 0.9 and scores["nearest_neighbour_accuracy"] > 0.9
    assert 0 < scores["entropy_bits"] <= np.log2(len(task.train_labels))


def test_training_is_seeded(task):
    first = ch.train_hasher("dsh", task, TINY, seed=3)
    second = ch.train_hasher("dsh", task, TINY, seed=3)
    assert first.losses == second.losses


def test_augment_keeps_shape_and_is_seeded():
    images = torch.rand(5, 1, 28, 28)
    a = ch.augment(images, torch.Generator().manual_seed(1))
    b = ch.augment(images, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and torch.equal(a, b)
    assert not torch.equal(a, ch.augment(images, torch.Generator().manual_seed(2)))


def test_config_rejects_unknown_methods():
    with pytest.raises(ValueError, match="methods"):
        dataclasses.replace(TINY, methods=("ddtl", "lsh"))
    with pytest.raises(ValueError, match="method must be one of"):
        ch.HashingNetwork("lsh", standardize=None, num_classes=2, channels=(4, 4, 4), feature_dim=4, tree_depth=2)


def test_the_tree_fitted_after_learning_sends_no_gradient_to_the_backbone(task):
    from domainknowledge.models.cnn import Standardize
    from domainknowledge.principles import decision_tree_hashing as ddtl

    network = ch.HashingNetwork("tree_after", standardize=Standardize.fit(task.train_images, per_channel=False),
                                num_classes=2, channels=(4, 4, 4), feature_dim=8, tree_depth=3)
    out = network(task.train_images[:8].float())
    ddtl.leaf_probabilities(out["node_logits"]).sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in network.backbone.parameters())
    assert network.tree_head.weight.grad.any()


def test_crpca_codes_use_the_fitted_pca_tree(task):
    trained = ch.train_hasher("crpca", task, TINY, seed=0)
    codes = ch.encode(trained, task.train_images)["codes"]
    path = codes[:, 2:]
    assert np.array_equal(path, trained.pca_tree.encode(ch.encode(trained, task.train_images)["features"]))
    # median splits: the root bit divides the training set in half
    assert path[:, 0].mean() == pytest.approx(0.5, abs=0.02)


def test_retention_is_one_without_distortion_and_falls_with_occlusion(task):
    trained = ch.train_hasher("ddtl", task, TINY, seed=0)
    retention = ch.code_retention(trained, task.query_images, ch.occlude, [0.0, 0.6], seed=0)
    assert retention.shape == (2, TINY.tree_depth + 1)
    assert np.all(retention[0] == 1.0)
    assert np.all(np.diff(retention[1]) <= 0)             # longer prefixes are retained less often
    assert retention[1, -1] < 1.0


def test_coarse_to_fine_labels_leaves_by_majority(task):
    trained = ch.train_hasher("ddtl", task, TINY, seed=0)
    # fine labels that equal the coarse ones are recovered as well as the classes are
    accuracy = ch.coarse_to_fine_accuracy(trained, task, task.train_labels, task.query_labels)
    assert accuracy > 0.6


def test_fashion_mnist_transfer_holds_the_classes_the_task_left_out():
    task = ch.load_task(ch.CONFIGS["smoke"], seed=0)
    assert task.class_names == ch.SOURCE_CLASSES and set(task.train_labels.tolist()) == set(range(5))
    train_images, train_labels, test_images, test_labels = ch.load_transfer(task, seed=0)
    assert train_images.shape[1:] == (1, 28, 28) and train_images.dtype == torch.uint8
    # the other five classes, as many images per class as the task has, labelled 0..4
    assert len(train_labels) == len(task.train_labels) and len(test_labels) == len(task.query_labels)
    assert np.bincount(train_labels.numpy()).tolist() == [len(task.train_labels) // 5] * 5
    from domainknowledge.data.bundled import load_fashion_mnist
    images, labels = load_fashion_mnist("test")
    unseen = [i for i, name in enumerate(ch.FASHION_MNIST_CLASSES) if name not in ch.SOURCE_CLASSES]
    pool = images[np.isin(labels, unseen)]
    assert any(np.array_equal(test_images[0, 0].numpy(), image) for image in pool)


def test_cifar10_transfer_reads_the_first_cifar100_classes(tmp_path):
    """The paper's transfer set is CIFAR-100 in its published pickles; ``classes`` keeps its first classes
    (a paper dry run's cap, :attr:`Config.transfer_classes`), ``None`` all of them."""
    from domainknowledge.experiment import select
    from domainknowledge.fixtures import write_fixtures

    root = write_fixtures(tmp_path, ["cifar10", "cifar100"])
    config = select(ch.CONFIGS, "paper", dry_run=True)
    assert ch.CONFIGS["paper"].transfer_classes == 100 and config.transfer_classes < 100
    task = ch.load_task(config, seed=0, data_root=root)
    every = ch.load_transfer(task, seed=0, data_root=root)
    first = ch.load_transfer(task, seed=0, data_root=root, classes=config.transfer_classes)
    assert sorted(set(every[1].tolist())) == list(range(100)) and every[0].shape[1:] == (3, 32, 32)
    assert sorted(set(first[1].tolist())) == sorted(set(first[3].tolist())) == list(range(config.transfer_classes))
    kept = every[1] < config.transfer_classes
    assert torch.equal(first[0], every[0][kept]) and torch.equal(first[1], every[1][kept])
    with pytest.raises(ValueError, match="transfer_classes must be at least 2"):
        dataclasses.replace(config, transfer_classes=1)


def test_transfer_needs_classes_left_out():
    task = ch.load_task(dataclasses.replace(ch.CONFIGS["smoke"], classes=None), seed=0)
    with pytest.raises(ValueError, match="none is left to transfer"):
        ch.load_transfer(task, seed=0)
    with pytest.raises(ValueError, match="not Fashion-MNIST classes"):
        ch.load_task(dataclasses.replace(ch.CONFIGS["smoke"], classes=("T-shirt/top", "Jumper")), seed=0)


def test_training_curve_records_the_codes_every_epoch(task):
    trained = ch.train_hasher("ddtl", task, TINY, seed=0, code_curve=True)
    assert [row["epoch"] for row in trained.code_curve] == list(range(1, TINY.epochs + 1))
    assert trained.code_curve[-1]["unique_percent"] == pytest.approx(
        ch.metrics.hash_code_quality(ch.encode(trained, task.train_images)["codes"])["unique_percent"])
    # recording does not change the training
    assert ch.train_hasher("ddtl", task, TINY, seed=0).losses == trained.losses


def test_coarse_task_and_its_majority_bar():
    labels = torch.arange(10).repeat(3)
    task = ch.HashingTask("Fashion-MNIST", torch.zeros(30, 1, 4, 4, dtype=torch.uint8), labels,
                          torch.zeros(30, 1, 4, 4, dtype=torch.uint8), labels,
                          ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                           "Ankle boot"))
    coarse = ch.coarse_task(task)
    assert coarse.num_classes == 5 and int(coarse.train_labels.max()) == 4
    assert coarse.train_labels[1] == coarse.train_labels[1 + 10]        # Trouser keeps its superclass
    # single-class superclasses (trousers, dresses, bags) are always right; tops 1/4, footwear 1/3
    assert ch.superclass_majority_accuracy(task) == pytest.approx((3 + 1 + 1) / 10)
    predicted = ch.superclass_majority_predictions(task)
    assert predicted.shape == (30,) and predicted[1] == 1 and predicted[3] == 3     # Trouser, Dress: their own class
    assert (predicted == labels.numpy()).mean() == pytest.approx(ch.superclass_majority_accuracy(task))


def test_coarse_to_fine_predictions_match_the_accuracy(task):
    trained = ch.train_hasher("ddtl", task, TINY, seed=0)
    predicted = ch.coarse_to_fine_predictions(trained, task, task.train_labels)
    assert predicted.shape == (len(task.query_labels),)
    assert (predicted == task.query_labels.numpy()).mean() == pytest.approx(
        ch.coarse_to_fine_accuracy(trained, task, task.train_labels, task.query_labels))


def test_path_entropy_is_the_depth_for_an_evenly_split_tree_and_zero_for_one_leaf():
    class_bits = 4
    leaves = np.array([[int(b) for b in f"{k:03b}"] for k in range(8)] * 5, dtype=np.uint8)   # 8 leaves x 5 images
    codes = np.concatenate([np.zeros((40, class_bits), dtype=np.uint8), leaves], axis=1)
    assert ch.path_entropy_bits(codes, class_bits) == pytest.approx(3.0)
    assert ch.path_entropy_bits(np.zeros((40, class_bits + 3), dtype=np.uint8), class_bits) == pytest.approx(0.0)
    uneven = np.concatenate([codes[:8], codes[:1].repeat(8, axis=0)])    # one leaf holds 9 of 16 images
    assert ch.path_entropy_bits(uneven, class_bits) < 3.0


def test_paper_profile_uses_cifar10_and_resnet34_and_says_where_to_put_it(tmp_path, monkeypatch):
    from domainknowledge.data.bundled import DataNotFoundError
    from domainknowledge.models.cnn import Standardize

    monkeypatch.setenv("DK_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        ch.load_task(ch.CONFIGS["paper"], seed=0, data_root=tmp_path)
    network = ch.HashingNetwork("ddtl", standardize=Standardize([0.5] * 3, [0.2] * 3), num_classes=10, channels=(1, 1, 1),
                                feature_dim=512, tree_depth=12, in_channels=3, backbone="resnet34")
    out = network(torch.rand(2, 3, 32, 32))
    assert out["features"].shape == (2, 512) and out["node_logits"].shape == (2, 4095)


def test_coarse_task_keeps_only_the_superclasses_of_the_classes_held():
    names = ch.SOURCE_CLASSES                         # T-shirt/top, Trouser, Pullover, Dress, Coat
    labels = torch.arange(5).repeat(2)
    task = ch.HashingTask("Fashion-MNIST", torch.zeros(10, 1, 4, 4, dtype=torch.uint8), labels,
                          torch.zeros(10, 1, 4, 4, dtype=torch.uint8), labels, names)
    coarse = ch.coarse_task(task)
    assert coarse.class_names == ("tops", "trousers", "dresses")
    assert coarse.train_labels[:5].tolist() == [0, 1, 0, 2, 0]


def test_code_quality_by_class_splits_the_database_by_true_class():
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 0], [1, 0], [1, 1]], dtype=np.uint8)
    labels = np.array([0, 0, 0, 1, 1, 1])
    first, second = ch.code_quality_by_class(codes, labels)
    assert first["unique_percent"] == pytest.approx(100.0) and first["entropy_bits"] == pytest.approx(np.log2(3))
    assert second["unique_percent"] == pytest.approx(200 / 3) and second["mean_bucket_size"] == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="one row per image"):
        ch.code_quality_by_class(codes, labels[:3])


def test_transfer_predictions_give_the_transfer_scores(task):
    trained = ch.train_hasher("ddtl", task, TINY, seed=0)
    transfer = (task.train_images, task.train_labels, task.query_images, task.query_labels)
    predicted = ch.transfer_predictions(trained, transfer)
    scores = ch.transfer_scores(trained, transfer)
    for column, labels in predicted.items():
        assert labels.shape == (len(task.query_labels),)
        assert scores[column] == pytest.approx((labels == task.query_labels.numpy()).mean())

"""The shared metric-learning trainer (Kobs 2023, Ch. 7, 9 and 11): every loss learns, batches, hooks, embeddings."""

import dataclasses

import numpy as np
import pytest
import torch

from domainknowledge import metric_learning as ml

TINY = ml.EmbeddingConfig(backbone="small_cnn", image_size=16, embedding_dim=16, head_hidden=32, epochs=12,
                          batch_size=16, m_per_class=4, head_learning_rate=3e-3)


def separable_features(classes=8, per_class=8, dim=128, seed=0):
    """Features whose classes are separable (class centres plus noise) and placeholder images for them."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    features = rng.normal(size=(classes, dim))[labels] * 2 + rng.normal(size=(len(labels), dim))
    images = torch.zeros(len(labels), 3, 16, 16, dtype=torch.uint8)
    return images, labels, torch.tensor(features, dtype=torch.float32)


def test_table_7_1_losses_with_families_and_distances():
    trained = [name for name, spec in ml.LOSSES.items() if spec.family != "none"]
    assert {"contrastive", "triplet", "multi_similarity", "margin", "normalized_softmax", "arcface", "cosface",
            "proxy_nca", "soft_triple"} <= set(trained)
    assert ml.LOSSES["none"].family == "none"
    assert {spec.family for spec in ml.LOSSES.values()} <= set(ml.FAMILIES)
    assert {spec.distance for spec in ml.LOSSES.values()} <= set(ml.DISTANCES)
    assert ml.LOSSES["contrastive"].family == "ranking" and ml.LOSSES["arcface"].family == "classification"


@pytest.mark.parametrize("loss_name", [name for name in ml.LOSSES if name != "none"])
def test_every_loss_lowers_its_training_loss(loss_name):
    images, labels, features = separable_features()
    _, history = ml.train_embedding_model(loss_name, images, labels, config=TINY, seed=0, features=features)
    assert len(history.epoch_losses) == TINY.epochs
    assert np.mean(history.epoch_losses[-3:]) < np.mean(history.epoch_losses[:2])


def test_a_proxy_loss_clusters_the_training_classes():
    """ProxyNCA learns its proxies with its own optimiser; afterwards same-class embeddings are neighbours."""
    from domainknowledge import metrics

    images, labels, features = separable_features()
    network, _ = ml.train_embedding_model("proxy_nca", images, labels, config=TINY, seed=0, features=features)
    embeddings = ml.embed(network, features=features)
    assert metrics.r_precision(labels, metrics.neighbour_order(embeddings)) > 0.9


def test_batch_transform_is_applied_to_every_batch():
    images = torch.randint(0, 255, (32, 3, 16, 16), dtype=torch.uint8)
    labels = np.repeat(np.arange(4), 8)
    calls = []

    def transform(batch, indices):
        calls.append((batch.shape, np.asarray(indices).copy()))
        return 255 - batch                                   # any image-to-image map

    for train_backbone in (True, False):
        calls.clear()
        config = dataclasses.replace(TINY, epochs=2, batch_size=8, m_per_class=4, train_backbone=train_backbone)
        ml.train_embedding_model("contrastive", images, labels, config=config, seed=0, batch_transform=transform)
        training_calls = calls[:-1]                          # the last: the head's standardisation pass
        assert len(training_calls) == 2 * (32 // 8)          # every batch of every epoch, frozen backbone or not
        assert calls[-1][0] == (32, 3, 16, 16)
        for shape, indices in training_calls:
            assert shape == (8, 3, 16, 16)
            assert sorted(np.bincount(labels[indices], minlength=4)[np.unique(labels[indices])]) == [4, 4]
    with pytest.raises(ValueError, match="batch_transform"):
        ml.train_embedding_model("contrastive", images, labels, config=config, seed=0,
                                 batch_transform=lambda batch, indices: batch[:2])


def test_m_per_class_sampler_is_seeded_and_balanced():
    labels = np.repeat(np.arange(10), 7)
    sampler = ml.MPerClassBatchSampler(labels, batch_size=12, m=3, seed=5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 70 // 12
    for batch in batches:
        counts = np.bincount(labels[batch])
        assert sorted(counts[counts > 0]) == [3, 3, 3, 3] and len(set(batch)) == 12
    again = ml.MPerClassBatchSampler(labels, batch_size=12, m=3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, sampler))   # the next pass differs
    with pytest.raises(ValueError, match="classes"):
        ml.MPerClassBatchSampler(np.repeat(np.arange(2), 8), batch_size=12, m=3, seed=0)


def test_training_is_deterministic_and_embeddings_are_normalised():
    images = torch.randint(0, 255, (24, 3, 16, 16), dtype=torch.uint8)
    labels = np.repeat(np.arange(3), 8)
    config = dataclasses.replace(TINY, epochs=1, batch_size=8, m_per_class=4, train_backbone=True)
    first, history = ml.train_embedding_model("triplet", images, labels, config=config, seed=1)
    second, _ = ml.train_embedding_model("triplet", images, labels, config=config, seed=1)
    a, b = ml.embed(first, images), ml.embed(second, images)
    assert a.shape == (24, 16) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, b) and history.seconds > 0
    frozen = dataclasses.replace(config, train_backbone=False)
    network, _ = ml.train_embedding_model("none", images, labels, config=frozen, seed=0)
    assert np.allclose(ml.embed(network, images),
                       ml.embed(network, features=ml.backbone_features(network, images)), atol=1e-5)


def test_lite0_backbone_cut_and_pooled():
    config = ml.EmbeddingConfig(backbone_blocks=11, pool_grid=2, image_size=64)
    network = ml.build_embedding_network(config, seed=0)
    features = ml.backbone_features(network, torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert features.shape == (2, network.backbone.feature_dim) and network.backbone.feature_dim == 112 * 4
    assert not any(p.requires_grad for p in network.backbone.parameters())


def test_bad_input_says_what_is_wrong():
    images, labels, _ = separable_features()
    with pytest.raises(ValueError, match="unknown loss"):
        ml.train_embedding_model("hinge", images, labels, config=TINY, seed=0)
    with pytest.raises(ValueError, match="labels must have shape"):
        ml.train_embedding_model("triplet", images, labels[:-1], config=TINY, seed=0)
    with pytest.raises(ValueError, match="multiple of m_per_class"):
        ml.EmbeddingConfig(batch_size=30, m_per_class=4)


def test_cached_features_must_match_the_backbone():
    images, labels, features = separable_features()
    with pytest.raises(ValueError, match="features must have shape"):
        ml.train_embedding_model("triplet", images, labels, config=TINY, seed=0, features=features[:, :10])


# --- the top blocks of the trunk trained on cached lower-block maps ------------------------------------------

TOP_BLOCKS = ml.EmbeddingConfig(backbone="efficientnet_lite0", image_size=32, trainable_blocks=2, pool_grid=1,
                                embedding_dim=16, epochs=4, batch_size=16, m_per_class=4,
                                backbone_learning_rate=1e-3, head_learning_rate=1e-3)


def coloured_images(classes=6, per_class=8, size=32, seed=0):
    """Images whose class is their colour (plus pixel noise): a problem any trained embedding separates."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    colours = rng.integers(0, 256, size=(classes, 3, 1, 1))
    pixels = colours[labels] + rng.normal(0, 25, size=(len(labels), 3, size, size))
    return torch.from_numpy(np.clip(pixels, 0, 255).astype(np.uint8)), labels


def trunk_batch_norm_state(network):
    return {name: value.clone() for name, value in network.backbone.state_dict().items() if "running" in name}


def test_top_blocks_train_with_the_head_and_lower_the_loss():
    images, labels = coloured_images()
    network, history = ml.train_embedding_model("contrastive", images, labels, config=TOP_BLOCKS, seed=0)
    assert network.backbone.frozen_blocks == 14 and network.frozen_shape == (192, 1, 1)
    assert history.epoch_losses[-1] < 0.7 * history.epoch_losses[0]
    untouched = ml.build_embedding_network(TOP_BLOCKS, seed=0)
    top, lower = network.backbone.blocks[15], network.backbone.blocks[13]
    assert not torch.equal(top._project_conv.weight, untouched.backbone.blocks[15]._project_conv.weight)
    assert torch.equal(lower._project_conv.weight, untouched.backbone.blocks[13]._project_conv.weight)
    assert not torch.equal(network.backbone.head[0].weight, untouched.backbone.head[0].weight)


def test_trunk_batch_norm_statistics_stay_frozen_while_the_top_blocks_train():
    images, labels = coloured_images()
    before = trunk_batch_norm_state(ml.build_embedding_network(TOP_BLOCKS, seed=0))
    network, _ = ml.train_embedding_model("normalized_softmax", images, labels, config=TOP_BLOCKS, seed=0)
    after = trunk_batch_norm_state(network)
    assert before.keys() == after.keys() and len(before) > 10
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_cached_maps_give_the_gradients_of_end_to_end_training():
    images, labels = coloured_images()
    network = ml.build_embedding_network(TOP_BLOCKS, seed=0).train()
    loss, _ = ml.build_loss("triplet", 6, TOP_BLOCKS.embedding_dim)
    batch, batch_labels = images[:16], torch.as_tensor(labels[:16])
    trained = [p for p in network.parameters() if p.requires_grad]

    def gradients(embeddings):
        network.zero_grad()
        loss(embeddings, batch_labels).backward()
        return [p.grad.clone() for p in trained]

    end_to_end = gradients(network(batch))
    cached = gradients(network.from_frozen(ml.backbone_features(network, batch)))
    assert len(trained) > 10
    for a, b in zip(end_to_end, cached):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    # and the trainer: one epoch on cached maps equals one epoch that runs the lower blocks on every batch
    config = dataclasses.replace(TOP_BLOCKS, epochs=1)
    on_cached, _ = ml.train_embedding_model("triplet", images, labels, config=config, seed=3)
    per_batch, _ = ml.train_embedding_model("triplet", images, labels, config=config, seed=3,
                                            batch_transform=lambda images, indices: images)
    for (name, a), b in zip(on_cached.state_dict().items(), per_batch.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-5), name


def test_early_stopping_keeps_the_best_validation_state(monkeypatch):
    images, labels = coloured_images(classes=10)
    scores, snapshots = iter([0.2, 0.6, 0.5, 0.4, 0.3, 0.9]), []

    def scripted(inputs, rows, labels, distance, batch_size, device):
        snapshots.append({k: v.clone() for k, v in inputs.network.state_dict().items()})
        assert set(np.unique(labels[rows])).isdisjoint(np.unique(labels[train_rows]))
        return next(scores)

    train_rows, validation_rows = ml.validation_split(labels, 0.3)
    assert len(np.unique(labels[validation_rows])) == 3
    monkeypatch.setattr(ml, "_validation_map_at_r", scripted)
    config = dataclasses.replace(TOP_BLOCKS, epochs=6, validation_fraction=0.3, patience=2)
    network, history = ml.train_embedding_model("contrastive", images, labels, config=config, seed=0)
    assert history.validation_map_at_r == [0.2, 0.6, 0.5, 0.4] and history.best_epoch == 1
    assert history.stopped_early and len(history.epoch_losses) == 4
    kept = network.state_dict()
    for name, value in snapshots[1].items():
        if "head.0.running" not in name:                  # the standardisation is set after training
            assert torch.equal(kept[name], value), name
    assert not torch.equal(kept["backbone.head.0.weight"], snapshots[3]["backbone.head.0.weight"])


def test_every_model_standardises_its_features_the_untrained_one_too():
    images, labels = coloured_images()
    for loss_name in ("none", "arcface"):
        network, _ = ml.train_embedding_model(loss_name, images, labels, config=TOP_BLOCKS, seed=0)
        pooled = network.backbone(images.float())
        norm = network.head[0]
        assert torch.allclose(norm.running_mean, pooled.mean(0), atol=1e-4)
        assert torch.allclose(norm.running_var, pooled.var(0), rtol=1e-3, atol=1e-5)


def test_large_feature_maps_are_memory_mapped_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DK_DATA_DIR", str(tmp_path))
    images, labels = coloured_images()
    network = ml.build_embedding_network(TOP_BLOCKS, seed=0)
    in_memory = ml.backbone_features(network, images)
    mapped = ml.backbone_features(network, images, max_in_memory_bytes=0, batch_size=7)
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float16 and mapped.shape == in_memory.shape
    assert np.allclose(mapped, in_memory.numpy(), rtol=2e-3, atol=2e-3)
    assert list((tmp_path / "feature_maps").iterdir()) == []     # unlinked: nothing left behind
    versions = ml.backbone_features(network, images, versions=2, max_in_memory_bytes=0,
                                    transform=lambda k, batch, indices: 255 - batch if k else batch)
    assert versions.shape == (2, *in_memory.shape) and np.allclose(versions[0], mapped, rtol=2e-3, atol=2e-3)  # float16
    _, history = ml.train_embedding_model("contrastive", images, labels, config=TOP_BLOCKS, seed=0,
                                          features=versions, validation_features=mapped)
    assert len(history.epoch_losses) == TOP_BLOCKS.epochs
    assert np.allclose(ml.embed(network, features=mapped), ml.embed(network, features=in_memory), atol=1e-2)


def test_trainable_blocks_config_is_checked():
    with pytest.raises(ValueError, match="trainable_blocks"):
        dataclasses.replace(TOP_BLOCKS, pool_grid=2)
    with pytest.raises(ValueError, match="trainable_blocks"):
        dataclasses.replace(TOP_BLOCKS, backbone_blocks=11, trainable_blocks=12)

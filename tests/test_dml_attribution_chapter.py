"""The attribution-map chapter's drivers (Kobs 2023, Ch. 9): configs, the analyses' known answers, one tiny run."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from domainknowledge.chapters import dml_attribution as chapter
from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.metric_learning import LOSSES
from domainknowledge.principles import masking
from domainknowledge.principles.attribution import MapComparison

SMOKE = chapter.CONFIGS["smoke"]


def test_profiles_and_config_validation():
    assert set(chapter.CONFIGS) == {"smoke", "cpu", "paper"}
    cpu, paper = chapter.CONFIGS["cpu"], chapter.CONFIGS["paper"]
    assert cpu.runs >= 2 and cpu.smoothgrad_samples == 50 and cpu.sigma_fraction == 0.15
    families = [LOSSES[name].family for name in cpu.losses]
    assert families.count("ranking") == 4 and families.count("classification") == 4 and "none" in cpu.losses
    assert set(paper.losses) == set(LOSSES) and paper.datasets == ("cars196", "cub200", "sop")
    assert paper.smoothgrad_samples == 50 and paper.embedding.trainable_blocks >= 4 and paper.analysis_images is None
    assert "embedding.backbone_blocks" in chapter.describe_profiles().index
    with pytest.raises(ValueError, match="two ranking"):
        dataclasses.replace(SMOKE, losses=("contrastive", "arcface", "none"))
    with pytest.raises(ValueError, match="unknown data sets"):
        dataclasses.replace(SMOKE, datasets=("mnist",))
    with pytest.raises(ValueError, match="image_size"):
        dataclasses.replace(SMOKE, image_size=32)


def _comparison(table: np.ndarray, names) -> MapComparison:
    """A comparison whose per-image correlations are constant over 3 images, equal to ``table``."""
    corr = np.repeat(np.asarray(table, dtype=float)[:, :, None], 3, axis=2)
    return MapComparison(tuple(names), corr, np.full_like(corr, 0.01))


def test_loss_tables_average_seed_pairs_in_fisher_z():
    names = [("contrastive", 0), ("contrastive", 1), ("arcface", 0), ("arcface", 1)]
    table = np.array([[1.0, 0.8, 0.5, 0.3],
                      [0.8, 1.0, 0.3, 0.5],
                      [0.5, 0.3, 1.0, 0.9],
                      [0.3, 0.5, 0.9, 1.0]])
    tables = chapter.loss_tables(_comparison(table, names))
    expected = np.tanh(np.mean(np.arctanh([0.5, 0.3, 0.3, 0.5])))
    assert tables["correlation"].loc["contrastive", "arcface"] == pytest.approx(expected)
    assert tables["correlation"].loc["contrastive", "contrastive"] == pytest.approx(0.8)     # seed agreement
    assert tables["correlation"].loc["arcface", "arcface"] == pytest.approx(0.9)
    assert tables["correlation_sd"].loc["contrastive", "arcface"] == pytest.approx(0.0)
    assert tables["jsd"].loc["contrastive", "arcface"] == pytest.approx(0.01)
    only_first = chapter.loss_tables(_comparison(table, names), seeds={0})
    assert only_first["correlation"].loc["contrastive", "arcface"] == pytest.approx(0.5)
    assert np.isnan(only_first["correlation"].loc["contrastive", "contrastive"])


def test_correlation_spread_is_tanh_of_the_fisher_z_sd_and_jsd_is_in_nats():
    names = [("contrastive", 0), ("arcface", 0)]
    r = np.array([0.2, 0.5, 0.9])                                       # per-image correlations of the pair
    corr = np.ones((2, 2, 3))
    corr[0, 1] = corr[1, 0] = r
    bits = np.zeros((2, 2, 3))
    bits[0, 1] = bits[1, 0] = [1.0, 0.5, 0.0]
    tables = chapter.loss_tables(MapComparison(tuple(names), corr, bits))
    expected = np.tanh(np.std(np.arctanh(r), ddof=1))                   # the authors' code: tanh(sd of z)
    assert tables["correlation_sd"].loc["contrastive", "arcface"] == pytest.approx(expected)
    assert expected != pytest.approx(np.std(r, ddof=1), abs=1e-3)       # not the sd of r
    nats = chapter.jsd_in_nats(MapComparison(tuple(names), corr, bits))
    np.testing.assert_allclose(nats.jsd[0, 1], [np.log(2), np.log(2) / 2, 0.0])   # disjoint maps: ln 2 nats
    from domainknowledge.principles.attribution import jensen_shannon_divergence
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(0)
    x, y = rng.random((2, 5, 5)), rng.random((2, 5, 5))
    comparison = chapter.jsd_in_nats(MapComparison(tuple(names), corr[:, :, :2], np.stack(
        [[np.zeros(2), jensen_shannon_divergence(x, y)], [jensen_shannon_divergence(x, y), np.zeros(2)]])))
    np.testing.assert_allclose(comparison.jsd[0, 1], [jensenshannon(x[i].ravel(), y[i].ravel()) ** 2 for i in range(2)])


def test_per_image_agreement_groups_and_object_share():
    names = [("contrastive", 0), ("triplet", 0), ("normalized_softmax", 0), ("arcface", 0), ("none", 0)]
    table = np.array([[1.0, 0.6, 0.2, 0.2, 0.1],
                      [0.6, 1.0, 0.2, 0.2, 0.3],
                      [0.2, 0.2, 1.0, 0.8, 0.5],
                      [0.2, 0.2, 0.8, 1.0, 0.5],
                      [0.1, 0.3, 0.5, 0.5, 1.0]])
    comparison = _comparison(table, names)
    within = chapter.per_image_agreement(comparison, "within")
    assert within.shape == (3,) and within[0] == pytest.approx(np.tanh(np.mean(np.arctanh([0.6, 0.8]))))
    assert chapter.per_image_agreement(comparison, "across")[0] == pytest.approx(0.2)
    assert chapter.per_image_agreement(comparison, "none_classification")[0] == pytest.approx(0.5)
    assert chapter.per_image_agreement(comparison, "none_ranking")[0] == pytest.approx(
        np.tanh(np.mean(np.arctanh([0.1, 0.3]))))
    assert chapter.per_image_agreement(comparison, "trained", value="jsd")[0] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="no pair"):
        chapter.per_image_agreement(comparison, "seeds")                # one seed: no seed pairs
    masks = np.zeros((2, 4, 4))
    masks[:, :2] = 1                                                     # the object is the top half
    on_object, off_object = masks.copy(), 1 - masks
    maps = {("contrastive", 0): on_object, ("triplet", 0): on_object, ("arcface", 0): off_object,
            ("normalized_softmax", 0): 0.5 * on_object + 0.5 * off_object, ("arcface", 1): on_object}
    per_model = {name: masking.attribution_share(masks, values) for name, values in maps.items()}
    shares = chapter.object_share_by_family(per_model, seeds=(0,))
    np.testing.assert_allclose(shares["ranking"], [1.0, 1.0])
    np.testing.assert_allclose(shares["classification"], [0.25, 0.25])  # mean of 0 and 0.5; seed 1 left out


def test_agreement_summary_and_permutation_test_known_answers():
    losses = ["contrastive", "triplet", "ntxent", "multi_similarity", "proxy_nca", "normalized_softmax", "cosface",
              "arcface", "none"]
    families = [LOSSES[name].family for name in losses]
    values = np.full((9, 9), 0.3)
    for i in range(9):
        for j in range(9):
            if families[i] == families[j] != "none":
                values[i, j] = 0.7
    values[8, :] = values[:, 8] = 0.2
    np.fill_diagonal(values, np.nan)
    table = pd.DataFrame(values, index=losses, columns=losses)
    summary = chapter.agreement_summary(table)
    assert summary["within"] == pytest.approx(0.7) and summary["across"] == pytest.approx(0.3)
    assert summary["none"] == pytest.approx(0.2) and summary["gap"] == pytest.approx(0.4)
    assert summary["within_ranking"] == pytest.approx(0.7) and summary["within_classification"] == pytest.approx(0.7)
    expected_trained = np.tanh((12 * np.arctanh(0.7) + 16 * np.arctanh(0.3)) / 28)
    assert summary["trained"] == pytest.approx(expected_trained)
    test = chapter.family_permutation_test(table)
    assert test["splits"] == 70                                   # choose 4 of 8
    assert test["p_value"] == pytest.approx(2 / 70)               # only the true split and its mirror image
    assert test["statistic"] == pytest.approx(0.4)
    flat = pd.DataFrame(np.where(np.isnan(values), np.nan, 0.5), index=losses, columns=losses)
    assert chapter.family_permutation_test(flat)["p_value"] == pytest.approx(1.0)


def test_paper_data_sets_need_the_data_root(tmp_path):
    with pytest.raises(DataNotFoundError, match="cars_annos.mat.*car_dataset"):
        chapter.load_image_set("cars196", chapter.CONFIGS["paper"], seed=0, data_root=tmp_path)
    with pytest.raises(DataNotFoundError, match="data_root"):
        chapter.load_image_set("sop", chapter.CONFIGS["paper"], seed=0, data_root=None)


def test_paper_loader_reads_the_published_layout_lazily(tmp_path):
    from domainknowledge.data.real.image_files import ImageFiles
    from domainknowledge.fixtures import cub200, write_fixtures

    write_fixtures(tmp_path, ["cub200"])
    config = dataclasses.replace(chapter.CONFIGS["paper"], analysis_images=3)
    images = chapter.load_image_set("cub200", config, seed=0, data_root=tmp_path)
    per_class = cub200.IMAGES_PER_CLASS
    assert isinstance(images.training_images, ImageFiles) and images.training_images.shape == (8 * per_class, 3, 224, 224)
    assert list(images.training_labels[:per_class + 1]) == [0] * per_class + [1] and images.num_classes == 8
    assert len(images.analysis_images) == 3 and len(set(images.analysis_labels)) == 2     # spread over classes
    assert chapter.picture(images.analysis_images, 2).shape == (224, 224, 3) and images.analysis_masks is None


def test_streamed_attribution_equals_comparing_every_map_at_once():
    from domainknowledge.principles import attribution

    config = dataclasses.replace(SMOKE, analysis_images=5, smoothgrad_samples=2, losses=SMOKE.losses,
                                 embedding=dataclasses.replace(SMOKE.embedding, epochs=1))
    image_set = chapter.load_image_set("products", config, seed=0)
    networks = chapter.train_models(config, image_set, (0,), log=lambda line: None)
    streamed = chapter.attribute_streaming(config, image_set, networks, noise_seed=3, chunk_size=2, kept_maps=3)
    full = {name: attribution.dml_attribution_maps(network, image_set.analysis_images, distance=LOSSES[name[0]].distance,
                                                   samples=2, sigma_fraction=config.sigma_fraction, seed=3).astype(np.float32)
            for name, network in networks.items()}
    expected = chapter.jsd_in_nats(attribution.compare_attribution_maps(full))
    assert streamed.comparison.names == expected.names
    np.testing.assert_allclose(streamed.comparison.correlations, expected.correlations, atol=1e-5)
    np.testing.assert_allclose(streamed.comparison.jsd, expected.jsd, atol=1e-6)
    assert all(maps.shape == (3, 64, 64) for maps in streamed.maps.values())          # only the kept images
    name = ("contrastive", 0)
    np.testing.assert_allclose(streamed.object_shares[name],
                               masking.attribution_share(image_set.analysis_masks, full[name]), atol=1e-6)


def test_tiny_run_end_to_end():
    config = dataclasses.replace(SMOKE, cars_training_images=96, analysis_images=2, smoothgrad_samples=2, runs=2,
                                 embedding=dataclasses.replace(SMOKE.embedding, epochs=1))
    image_set = chapter.load_image_set("products", config, seed=0)
    assert image_set.analysis_masks.shape == image_set.analysis_images.shape[:3]
    assert len(np.unique(image_set.analysis_labels)) == 2               # spread over classes
    result = chapter.train_and_attribute(config, image_set, chapter.run_seeds(0, 2), log=lambda line: None)
    assert set(result.maps) == {(loss, s) for loss in config.losses for s in (0, 1)}
    maps = result.maps[("contrastive", 0)]
    assert maps.shape == (2, 64, 64) and maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    tables = chapter.loss_tables(result.comparison)
    assert list(tables["correlation"].index) == [name for name in LOSSES if name in config.losses]
    assert np.isfinite(tables["correlation"].to_numpy()).all()          # seeds fill the diagonal
    by_seed = chapter.agreement_by_seed(result.comparison, (0, 1))
    assert list(by_seed.index) == [0, 1] and by_seed[["trained", "none"]].abs().le(1).all().all()
    import matplotlib.pyplot as plt

    chapter.plot_comparison_heatmap(tables["correlation"], tables["correlation_sd"])
    chapter.plot_attribution_grid(image_set.analysis_images[0], {k: result.maps[(k, 0)][0] for k in config.losses},
                                  mask=image_set.analysis_masks[0])
    plt.close("all")


def test_no_two_models_share_a_seed():
    seeds = [chapter.model_seed(run, loss) for run in chapter.run_seeds(0, 3) for loss in LOSSES]
    assert len(set(seeds)) == len(seeds)
    with pytest.raises(ValueError, match="unknown loss"):
        chapter.model_seed(0, "hinge")


def test_control_trains_both_regimes_on_one_start_and_maps_the_same_images():
    config = dataclasses.replace(SMOKE, analysis_images=3, smoothgrad_samples=2, product_classes=12,
                                 embedding=dataclasses.replace(SMOKE.embedding, epochs=1))
    images, _, masks = chapter.product_analysis_images(config, seed=0)
    control = chapter.identifying_part_control(config, seed=0, analysis=(images, masks), log=lambda line: None)
    assert set(control.shares) == set(chapter.CONTROL_REGIMES) == {"background", "object"}
    for regime in control.shares:
        assert control.maps[regime].shape == (3, 64, 64) and control.shares[regime].shape == (3,)
        np.testing.assert_allclose(control.shares[regime], masking.attribution_share(masks, control.maps[regime]))
    assert control.difference == pytest.approx(control.shares["object"].mean() - control.shares["background"].mean())
    assert -1 <= control.correlation <= 1 and control.loss == config.control_loss
    background = chapter.product_training_set(config, seed=0, **chapter.CONTROL_REGIMES["background"])
    assert background.own_background.all() and (background.object_products != background.labels).mean() > 0.5
    obj = chapter.product_training_set(config, seed=0, **chapter.CONTROL_REGIMES["object"])
    assert not obj.own_background.any() and (obj.object_products == obj.labels).all()
    import matplotlib.pyplot as plt

    chapter.plot_control_maps(control, count=2)
    plt.close("all")


def test_control_passes_only_beyond_ten_points_and_needs_a_trained_loss():
    control = chapter.ControlResult("normalized_softmax", np.zeros((2, 4, 4, 3), np.uint8), np.ones((2, 4, 4), bool),
                                    shares={"background": np.array([0.2, 0.3]), "object": np.array([0.3, 0.4])})
    assert control.difference == pytest.approx(0.1) and not control.passes        # exactly 10 points: not clear
    control.shares["object"] = np.array([0.5, 0.6])
    assert control.passes
    with pytest.raises(ValueError, match="control_loss"):
        dataclasses.replace(SMOKE, control_loss="none")

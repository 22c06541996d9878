"""The rendered-cars chapter's drivers (Kobs 2023, Ch. 7): configs, one tiny end-to-end run, the analyses."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from domainknowledge.chapters import cars_attention as chapter
from domainknowledge.metric_learning import LOSSES

SMOKE = chapter.CONFIGS["smoke"]


def test_profiles_and_config_validation():
    assert set(chapter.CONFIGS) == {"smoke", "cpu", "paper"}
    cpu, paper = chapter.CONFIGS["cpu"], chapter.CONFIGS["paper"]
    assert cpu.runs >= 1 and set(cpu.losses) == set(LOSSES) and len(LOSSES) == 15       # Table 7.1 and None
    assert cpu.embedding.trainable_blocks >= 1 and cpu.embedding.validation_fraction > 0 and cpu.embedding.head_hidden == 0
    assert paper.analysis_renders == 100_000 and paper.embedding.trainable_blocks >= 4
    assert paper.embedding.image_size == 224 and paper.embedding.embedding_dim == 128
    assert "embedding.backbone_blocks" in chapter.describe_profiles().index
    with pytest.raises(ValueError, match="two ranking"):
        dataclasses.replace(SMOKE, losses=("contrastive", "arcface", "none"))
    with pytest.raises(ValueError, match="unknown losses"):
        dataclasses.replace(SMOKE, losses=("hinge",))
    with pytest.raises(ValueError, match="must equal image_size"):
        dataclasses.replace(SMOKE, image_size=SMOKE.image_size + 32)


@pytest.fixture(scope="module")
def tiny_run():
    config = dataclasses.replace(SMOKE, training_renders=96, analysis_renders=120, variants_per_type=2,
                                 embedding=dataclasses.replace(SMOKE.embedding, epochs=1))
    renders = chapter.load_renders(config, seed=0)
    trained = chapter.train_and_embed(config, renders, chapter.run_seeds(0, 2), log=lambda line: None)
    return config, renders, trained


def test_tiny_run_end_to_end(tiny_run):
    config, renders, trained = tiny_run
    assert renders.num_classes == 12 and len(renders.analysis) == 120
    assert set(trained.embeddings) == {(loss, s) for loss in config.losses for s in (0, 1)}
    table = chapter.nr_precision_table(trained, renders.analysis.properties)
    assert list(table.columns) == list(chapter.PROPERTY_TITLES) and len(table) == 2 * len(config.losses)
    assert np.isfinite(table.to_numpy()).all()
    means = chapter.mean_table(table)
    assert list(means.index) == [name for name in LOSSES if name in config.losses]
    families = chapter.family_comparison(means)
    assert families["p_value"].between(0, 1).all() and len(families) == 11
    agreement = chapter.property_order_agreement(means)
    assert agreement["spearman_with_consensus"].between(-1, 1).all()
    assert set(chapter.family_means(means).index) == {"Ranking mean", "Classification mean"}
    fig, _ = chapter.plot_nr_precision_heatmap(means)
    chosen, coordinates = chapter.tsne_embedding(trained.embeddings[("contrastive", 0)], 60, seed=0)
    assert coordinates.shape == (60, 2) and len(set(chosen)) == 60
    import matplotlib.pyplot as plt

    plt.close("all")


def test_property_order_agreement_known_answer():
    means = pd.DataFrame({"a": [3.0, 4.0, 1.0], "b": [2.0, 3.0, 2.0], "c": [1.0, 1.0, 3.0]},
                         index=["contrastive", "arcface", "none"])
    agreement = chapter.property_order_agreement(means)
    assert agreement.loc["contrastive", "same_order"] and agreement.loc["arcface", "same_order"]
    assert agreement.loc["contrastive", "spearman_with_consensus"] == pytest.approx(1.0)
    assert agreement.loc["none", "spearman_with_consensus"] == pytest.approx(-1.0)


def test_property_sweep_changes_one_property():
    base = {name: values[0] for name, values in chapter.cars.ANALYSIS_GRID.items()}
    sweep = chapter.property_sweep(base, "rotation")
    assert list(sweep["rotation"]) == list(range(0, 360, 45))
    assert (sweep.drop(columns="rotation").nunique() == 1).all()
    with pytest.raises(ValueError, match="unknown property"):
        chapter.property_sweep(base, "colour")


@pytest.mark.slow
def test_the_paper_profile_runs_the_same_code_with_fine_tuned_top_blocks():
    """The paper Config at a tiny size: 224 px renders, Lite0's top blocks fine-tuned on cached lower-block
    maps, a linear 128-d layer (slow on a loaded core)."""
    paper = chapter.CONFIGS["paper"]
    config = dataclasses.replace(paper, training_renders=16, analysis_renders=20, variants_per_type=1,
                                 losses=("contrastive", "triplet", "arcface", "cosface", "none"), runs=1,
                                 embedding=dataclasses.replace(paper.embedding, epochs=1, batch_size=8))
    renders = chapter.load_renders(config, seed=0)
    assert renders.training.images.shape[1:] == (224, 224, 3)
    trained = chapter.train_and_embed(config, renders, (0,), log=lambda line: None)
    assert "all 16 blocks" in trained.backbone and "top 4 trained" in trained.backbone
    embeddings = trained.embeddings[("contrastive", 0)]
    assert embeddings.shape == (20, 128) and np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    assert not np.allclose(embeddings, trained.embeddings[("none", 0)])      # fine-tuning moved the network
    assert len(trained.histories[("triplet", 0)].epoch_losses) == 1


def test_significance_threshold_scales_the_thesis_threshold_with_the_square_root_of_the_set_size():
    # at the thesis' 100,000 renders it is the thesis' 2.576; a quarter of the clustering signal at 1/16 of the size
    assert chapter.significance_threshold(chapter.THESIS_ANALYSIS_IMAGES) == pytest.approx(chapter.SIGNIFICANCE_Z)
    sixteenth = (chapter.THESIS_ANALYSIS_IMAGES - 1) // 16 + 1
    assert chapter.significance_threshold(sixteenth) == pytest.approx(chapter.SIGNIFICANCE_Z / 4, rel=1e-4)
    # the noise floor of random embeddings at this size wins where it is larger
    assert chapter.significance_threshold(1601, null_sd=0.01) == pytest.approx(chapter.SIGNIFICANCE_Z * np.sqrt(1600 / 99_999))
    assert chapter.significance_threshold(201, null_sd=1.0) == pytest.approx(chapter.SIGNIFICANCE_Z)
    with pytest.raises(ValueError):
        chapter.significance_threshold(1)


def test_thesis_table_7_3_orders_every_loss_alike():
    # the bar of the same-order claim comes from the thesis' own table: every trained loss rho >= 0.98, None 0.84
    agreement = chapter.property_order_agreement(chapter.THESIS_TABLE_7_3)
    assert list(chapter.THESIS_TABLE_7_3.index) == list(LOSSES)
    assert (agreement["top_property"] == "model").all()
    trained = agreement.drop(index="none")["spearman_with_consensus"]
    assert trained.min() == pytest.approx(0.9818, abs=1e-3)
    assert agreement.loc["none", "spearman_with_consensus"] == pytest.approx(0.8364, abs=1e-3)


def test_large_analysis_sets_are_rendered_into_memory_mapped_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DK_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(chapter, "IN_MEMORY_RENDERS", 20)
    config = dataclasses.replace(SMOKE, training_renders=16, analysis_renders=24, variants_per_type=1)
    renders = chapter.load_renders(config, seed=0)
    assert isinstance(renders.analysis.images, np.memmap) and renders.analysis.images.shape == (24, 64, 64, 3)
    from domainknowledge.data.synthetic import cars

    in_memory = cars.make_analysis_set(24, seed=1, image_size=64, supersample=1)
    np.testing.assert_array_equal(renders.analysis.images, in_memory.images)
    np.testing.assert_array_equal(renders.analysis.labels, in_memory.labels)
    pd.testing.assert_frame_equal(renders.analysis.properties, in_memory.properties)
    assert not list(tmp_path.rglob("*.partial"))
    again = chapter.load_renders(config, seed=0)                       # read back from the cache
    np.testing.assert_array_equal(again.analysis.masks, in_memory.masks)

"""The Ch. 16 chapter's drivers: profiles, pretext batches, metrics, and the paper profile's data path on tiny fakes."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from domainknowledge import metrics
from domainknowledge.chapters import multitask_aesthetics as M
from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.principles import distortions, pretext


def test_profiles_share_fields_and_paper_uses_the_thesis_settings():
    table = M.describe_profiles()
    assert list(table.columns) == ["smoke", "cpu", "paper"]
    paper = M.CONFIGS["paper"]
    assert paper.image_size == 224 and paper.width_mult == 1.0 and paper.pretraining.epochs == 20
    assert paper.pretraining.learning_rate == 1e-4 and paper.pretraining.batch_groups == 8
    assert (paper.finetuning.lr_patience, paper.finetuning.stop_patience) == (5, 10)
    assert paper.pretraining_data == "pexels" and paper.aesthetics_data == "ava" and paper.tid2013
    with pytest.raises(ValueError, match="unknown initialisation"):
        dataclasses.replace(M.CONFIGS["smoke"], initialisations=("imagenet", "jigsaw"))


def test_distortion_groups_hold_the_original_and_sorted_variants():
    config = dataclasses.replace(M.CONFIGS["smoke"].pretraining, distortions_per_group=2, levels_per_sign=3,
                                 both_signs=True)
    base = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype(np.uint8)
    batch = M.make_distortion_groups(base, config, np.random.default_rng(1))
    assert batch.images.shape[1:] == (3, 32, 32) and batch.num_groups == 2
    originals = (batch.distortion == -1).nonzero().squeeze(1)
    assert torch.equal(batch.images[originals[0]], torch.from_numpy(base[0]).permute(2, 0, 1))
    for row in range(batch.images.shape[0]):
        if batch.distortion[row] >= 0:
            name = distortions.DISTORTION_NAMES[batch.distortion[row]]
            aspect, cls = distortions.class_within_aspect(name)
            assert (batch.aspect[row], batch.aspect_class[row]) == (aspect, cls)
    # regression terms: every variant once, the original once per distortion of its group, with target 0
    assert batch.regression_rows.shape[0] == (batch.distortion >= 0).sum() + 2 * 2
    assert (batch.regression_target[torch.isin(batch.regression_rows, originals)] == 0).all()
    better, worse = pretext.ranking_pairs(batch.group, batch.distortion, batch.level)
    assert (batch.level[better].abs() < batch.level[worse].abs()).all()


def test_score_metrics_known_answers():
    truth = np.array([3.0, 4.0, 6.0, 7.0])
    perfect = metrics.aesthetic_score_metrics(truth, truth)
    assert perfect == {"pearson": pytest.approx(1.0), "spearman": pytest.approx(1.0), "accuracy": 1.0, "mae": 0.0}
    flipped = metrics.aesthetic_score_metrics(truth[::-1].copy(), truth)
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["accuracy"] == 0.0 and flipped["mae"] == 3.0



def test_score_metrics_of_a_constant_prediction_are_zero_without_a_warning():
    constant = np.full(50, 4.1234567)           # its float std is 8.9e-16, not 0: SciPy would warn
    truth = np.linspace(2.0, 8.0, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = metrics.aesthetic_score_metrics(constant, truth)
    assert values["pearson"] == 0.0 and values["spearman"] == 0.0 and values["accuracy"] == 0.5

def test_subset_keeps_validation_and_test():
    config = dataclasses.replace(M.CONFIGS["smoke"], aesthetics_images=(20, 6, 8))
    task = M.load_aesthetics(config, seed=0)
    half = task.subset(0.5, seed=1)
    assert half.images["train"].shape[0] == 10 and torch.equal(half.images["test"], task.images["test"])
    assert np.allclose(task.distributions["train"].sum(1), 1.0)


def test_wilcoxon_is_one_sided_against_the_baseline():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.0, (3, 200))
    errors = {("imagenet", 1.0): base, ("ranking", 1.0): base * 0.8, ("rotnet", 1.0): base * 1.2}
    tests = M.wilcoxon_against(errors, ["ranking", "rotnet"])
    assert tests.loc["ranking", "p"] < 1e-6 and tests.loc["rotnet", "p"] > 0.99
    assert tests.loc["ranking", "p_bonferroni"] == pytest.approx(2 * tests.loc["ranking", "p"])


def test_missing_real_data_raises_a_clear_error(tmp_path):
    paper = M.CONFIGS["paper"]
    with pytest.raises(DataNotFoundError, match="pexels"):
        M.load_pretraining_images(paper, seed=0, data_root=tmp_path)
    with pytest.raises(DataNotFoundError, match="AVA.txt"):
        M.load_aesthetics(paper, seed=0, data_root=tmp_path)
    with pytest.raises(DataNotFoundError, match="mos_with_names"):
        M.load_tid2013(paper, data_root=None)


def test_paper_data_path_reads_the_documented_layouts(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "pexels" / "sub").mkdir(parents=True)
    (tmp_path / "AVA" / "images").mkdir(parents=True)
    (tmp_path / "TID2013" / "distorted_images").mkdir(parents=True)
    for k in range(30):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3)).astype(np.uint8)).save(tmp_path / "pexels" / "sub" / f"p{k}.jpg")
    lines = []
    for k in range(20):
        Image.fromarray(rng.integers(0, 255, (50, 30, 3)).astype(np.uint8)).save(tmp_path / "AVA" / "images" / f"{900 + k}.jpg")
        votes = " ".join(str(v) for v in rng.integers(0, 30, 10) + 1)
        lines.append(f"{k + 1} {900 + k} {votes} 0 0 {k}")
    (tmp_path / "AVA" / "AVA.txt").write_text("\n".join(lines) + "\n")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3)).astype(np.uint8)).save(tmp_path / "TID2013" / "distorted_images" / "i01_01_1.bmp")
    (tmp_path / "TID2013" / "mos_with_names.txt").write_text("5.1 i01_01_1.bmp\n")
    config = dataclasses.replace(M.CONFIGS["paper"], image_size=32)
    images = M.load_pretraining_images(config, seed=0, data_root=tmp_path)
    assert sum(len(v) for v in images.values()) == 30 and images["train"].shape[1:] == (32, 32, 3)
    task = M.load_aesthetics(config, seed=0, data_root=tmp_path)
    assert sum(t.shape[0] for t in task.images.values()) == 20 and not task.is_stand_in
    assert task.images["test"].shape[1:] == (3, 32, 32)
    tid_images, mos = M.load_tid2013(config, data_root=tmp_path)
    assert tid_images.shape == (1, 3, 32, 32) and mos.tolist() == [5.1]


def test_tiny_pretraining_and_finetuning_run_end_to_end():
    config = dataclasses.replace(
        M.CONFIGS["smoke"], pretraining_images=(8, 4, 4), aesthetics_images=(16, 8, 8),
        initialisations=("imagenet", "ranking+regression"), label_fractions=(1.0,),
        fraction_initialisations=("imagenet",),
        pretraining=dataclasses.replace(M.CONFIGS["smoke"].pretraining, batch_groups=4),
        finetuning=dataclasses.replace(M.CONFIGS["smoke"].finetuning, max_epochs=2))
    images = M.load_pretraining_images(config, seed=0)
    pretrained = M.run_pretraining(config, images, seed=0, log=lambda _: None)
    assert set(pretrained) == {"ranking+regression"}
    task = M.load_aesthetics(config, seed=0)
    results, predictions = M.run_finetuning(config, task, pretrained, (0,), log=lambda _: None)
    assert set(results["initialisation"]) == {"imagenet", "ranking+regression"}
    errors = M.errors_by_run(predictions, task.mean_scores["test"])
    assert (results["epochs"] <= 2).all() and errors[("imagenet", 1.0)].shape == (1, 8)
    assert np.allclose(errors[("imagenet", 1.0)].mean(), results.set_index("initialisation").loc["imagenet", "mae"])
    method, loss = M.ranking_validation_loss(pretrained)
    kept = pretrained[method].history[pretrained[method].best_epoch - 1]
    assert method == "ranking+regression" and loss == kept["validation_ranking"] > 0
    outputs = M.regression_outputs(pretrained["ranking+regression"].network, images["test"])
    assert set(outputs["level"]) == set(range(-5, 6)) and len(outputs) == 11 * 2 * 4


@pytest.mark.parametrize("both_signs, distortions_per_group", [(False, 1), (True, 3)])
def test_constant_scores_pay_the_margin_on_every_pair(both_signs, distortions_per_group):
    config = dataclasses.replace(M.CONFIGS["smoke"].pretraining, distortions_per_group=distortions_per_group,
                                 levels_per_sign=3, both_signs=both_signs)
    base = np.random.default_rng(0).integers(0, 255, (40, 32, 32, 3)).astype(np.uint8)
    batch = M.make_distortion_groups(base, config, np.random.default_rng(2))
    better, worse = pretext.ranking_pairs(batch.group, batch.distortion, batch.level)
    loss = pretext.margin_ranking_loss(torch.full((batch.images.shape[0],), 0.5), better, worse, batch.num_groups)
    expected = M.constant_score_ranking_loss(config)
    assert loss.item() == pytest.approx(expected, rel=1e-6 if not both_signs else 0.15)


def test_correlation_comparison_finds_a_better_model_and_not_a_copy():
    rng = np.random.default_rng(0)
    truth = rng.normal(5, 1, 300)
    good = np.stack([truth + rng.normal(0, 0.5, 300) for _ in range(2)])
    poor = np.stack([truth + rng.normal(0, 2.0, 300) for _ in range(2)])
    predictions = {("ours", 1.0): good, ("simclr", 1.0): poor, ("copy", 1.0): good.copy()}
    tests = M.compare_correlations(predictions, truth, "ours", ["simclr", "copy"], iterations=200)
    assert tests.loc["simclr", "pearson_difference"] > 0.2 and tests.loc["simclr", "pearson_p"] < 0.01
    assert tests.loc["simclr", "spearman_p"] < 0.01
    assert tests.loc["copy", "pearson_difference"] == 0 and tests.loc["copy", "pearson_p"] >= 0.5
    reverse = M.compare_correlations(predictions, truth, "simclr", ["ours"], iterations=200)
    assert reverse.loc["ours", "pearson_p"] > 0.99                     # one-sided: the wrong direction


def test_the_imagenet_row_is_the_pretext_starting_point_at_paper_and_a_reference_elsewhere():
    assert M.CONFIGS["paper"].pretext_from_imagenet and not M.CONFIGS["paper"].imagenet_is_reference
    assert M.CONFIGS["cpu"].imagenet_is_reference and M.CONFIGS["smoke"].imagenet_is_reference
    text = M.deviations_markdown(M.CONFIGS["cpu"], "cpu")
    assert "reference" in text and "Only the full training split" in text


def test_distortion_penalty_is_the_distortable_part_of_the_hidden_score():
    from domainknowledge.data.synthetic import aesthetics

    properties = aesthetics.sample_properties(200, np.random.default_rng(0))
    penalty = aesthetics.distortion_penalty(properties)
    rest = aesthetics.hidden_score(properties) + penalty
    unclipped = (aesthetics.hidden_score(properties) > 1.5) & (aesthetics.hidden_score(properties) < 9.0)
    expected = (aesthetics.BASE_SCORE - 0.9 * properties["harmony"] + properties["subject"].map(aesthetics.CONTENT_BONUS)
                + properties["content_noise"]).to_numpy()
    assert np.allclose(rest[unclipped], expected[unclipped]) and (penalty >= 0).all()
    with pytest.raises(ValueError, match="lack the column"):
        aesthetics.distortion_penalty(properties.drop(columns=["blur"]))


def test_pretext_batches_are_the_same_in_worker_processes():
    config = dataclasses.replace(M.CONFIGS["smoke"].pretraining, batch_groups=2, levels_per_sign=2)
    images = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3)).astype(np.uint8)
    order = np.array([4, 0, 3, 1, 2])
    here = list(M._pretext_batches("ranking", images, order, config, seed=1, epoch=2))
    workers = list(M._pretext_batches("ranking", images, order, dataclasses.replace(config, loader_workers=2),
                                      seed=1, epoch=2))
    assert len(here) == len(workers) == 2                        # the last base image alone makes no group pair
    for a, b in zip(here, workers):
        assert torch.equal(a.images, b.images) and torch.equal(a.level, b.level)
    [(rotnet_images, _), _] = list(M._pretext_batches("rotnet", images, order, config, seed=1, epoch=2))
    assert torch.equal(rotnet_images, torch.from_numpy(images[[4, 0]]).permute(0, 3, 1, 2))
    with pytest.raises(ValueError, match="loader_workers"):
        dataclasses.replace(config, loader_workers=-1)

"""The SimLoss chapter's drivers: configs, deterministic sweeps, validation-only selection, the checks of Sec. 14.1."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from domainknowledge.chapters import simloss
from domainknowledge.principles import losses
from domainknowledge.training import TrainingConfig

SMOKE = simloss.CONFIGS["smoke"]


@pytest.fixture(scope="module")
def age_task():
    return simloss.load_age_task(SMOKE, "ordinal_faces", seed=0)


@pytest.fixture(scope="module")
def ordinal_sweeps(age_task):
    seeds = simloss.run_seeds(0, 2)
    return [simloss.run_ordinal_sweep(SMOKE, age_task, seeds, log=lambda line: None) for _ in range(2)]


def test_profiles_share_one_config_type_and_the_grids_hold_the_baselines():
    assert set(simloss.CONFIGS) == {"smoke", "cpu", "paper"}
    cpu, paper = simloss.CONFIGS["cpu"], simloss.CONFIGS["paper"]
    assert cpu.reduction_factors == paper.reduction_factors == tuple(round(0.1 * i, 1) for i in range(10))
    assert cpu.lower_bounds == paper.lower_bounds and paper.lower_bounds[-1] == 0.99
    assert paper.runs == 10 and paper.image_size == 60 and paper.age_training.batch_size == 1024
    assert paper.age_training.patience == 10 and paper.semantic_training.patience == 20
    table = simloss.describe_profiles()
    assert list(table.columns) == ["smoke", "cpu", "paper"] and "reduction_factors" in table.index


def test_config_rejects_grids_without_a_baseline():
    with pytest.raises(ValueError, match="baselines"):
        dataclasses.replace(SMOKE, reduction_factors=(0.5, 0.9))
    with pytest.raises(ValueError, match="age_datasets"):
        dataclasses.replace(SMOKE, age_datasets=("imdb",))


def test_age_task_split_and_classes(age_task):
    sizes = [len(age_task.labels[name]) for name in ("train", "validation", "test")]
    assert sizes == [900, 300, 300]
    assert age_task.num_classes == SMOKE.max_age + 1 and age_task.in_channels == 1
    assert age_task.images["train"].shape[1:] == (1, 32, 32)


def test_ordinal_sweep_is_deterministic(ordinal_sweeps):
    first, second = ordinal_sweeps
    pd.testing.assert_frame_equal(first.results, second.results)
    for value in first.values:
        assert np.array_equal(first.test_probabilities[value], second.test_probabilities[value])
    assert set(first.results.r) == set(SMOKE.reduction_factors)
    assert len(first.results) == len(SMOKE.reduction_factors) * 2 * 2          # values x seeds x splits


def test_analysis_of_a_sweep(ordinal_sweeps):
    sweep = ordinal_sweeps[0]
    means = simloss.summary_means(sweep)
    assert list(means.index) == list(SMOKE.reduction_factors)
    chosen = simloss.best_on_validation(sweep, "mae")
    validation = means[("validation", "mae")]
    assert validation[chosen] == validation.min()
    tests = simloss.significance_tests(sweep, baseline=0.0, pairing="per-example")
    assert set(tests.metric) == {"accuracy", "mae", "mse"} and tests.p_value.between(0, 1).all()
    assert (tests.pairs == len(sweep.test_labels)).all()
    per_run = simloss.significance_tests(sweep, baseline=0.0, pairing="per-run")
    assert (per_run.pairs == 2).all()
    collapse = simloss.collapse_statistics(sweep)
    assert (collapse.distinct_predicted >= 1).all() and (collapse.output_perplexity <= sweep_classes(sweep)).all()
    distribution = simloss.mean_predicted_distribution(sweep, 0.0)
    assert distribution.sum() == pytest.approx(1.0, abs=1e-5)
    html = simloss.results_table(sweep, tests, scale={"accuracy": 100}).to_html()
    assert "font-weight: bold" in html


def sweep_classes(sweep):
    return sweep.test_probabilities[sweep.values[0]].shape[1]


def test_semantic_sweep_is_deterministic_and_scores_superclasses():
    config = dataclasses.replace(SMOKE, semantic_per_class=(20, 10, 10), lower_bounds=(0.0, 0.5, 0.98, 0.99),
                                 semantic_training=TrainingConfig(max_epochs=1, batch_size=64, patience=1))
    task = simloss.load_semantic_task(config, seed=0)
    assert task.num_classes == 10 and sorted(set(task.superclass_of)) == list(range(5))
    similarity = np.maximum(losses.cosine_similarity_matrix(np.random.default_rng(0).normal(size=(10, 16))), 0)
    lines = []                                                         # cosines far below 0.98
    sweeps = [simloss.run_semantic_sweep(config, task, similarity, (0,), log=lines.append) for _ in range(2)]
    pd.testing.assert_frame_equal(sweeps[0].results, sweeps[1].results)
    results = sweeps[0].results
    assert (results.sa >= results.accuracy).all()
    # l = 0.98 and l = 0.99 both give the identity matrix: the second reuses the first one's runs
    assert sum("reused" in line for line in lines) == 2
    by_l = results.set_index("l").drop(columns="dataset")
    pd.testing.assert_frame_equal(by_l.loc[[0.98]].reset_index(drop=True), by_l.loc[[0.99]].reset_index(drop=True))
    tests = simloss.significance_tests(sweeps[0], baseline=0.99)
    assert set(tests.metric) == {"accuracy", "sa"}                             # FSA is not paired per example


def test_fashion_superclasses_cover_every_class_once():
    from domainknowledge.data import FASHION_MNIST_CLASSES

    members = [name for group in simloss.FASHION_SUPERCLASSES.values() for name in group]
    assert sorted(members) == sorted(FASHION_MNIST_CLASSES)


def test_the_paper_profile_runs_the_same_code_on_the_thesis_formats(tmp_path):
    """The paper Config on tiny fakes of UTKFace and CIFAR-100: 60 x 60 RGB, thesis widths, per-run tests."""
    from tests.test_real_data import write_cifar100, write_jpeg

    rng = np.random.default_rng(0)
    for index, age in enumerate(rng.integers(1, 60, size=60)):
        write_jpeg(tmp_path / "UTKFace" / f"{age}_0_0_2017011{index:04d}.jpg.chip.jpg", int(rng.integers(0, 255)))
    write_cifar100(tmp_path, per_class_train=3, per_class_test=1)
    quick = TrainingConfig(max_epochs=1, batch_size=1024, patience=10, monitor="mae")
    config = dataclasses.replace(simloss.CONFIGS["paper"], age_datasets=("utkface",), reduction_factors=(0.0, 0.8),
                                 age_training=quick, runs=2, lower_bounds=(0.5, 0.99), semantic_per_class=(2, 1, 1),
                                 semantic_training=dataclasses.replace(quick, monitor="accuracy"))
    task = simloss.load_age_task(config, "utkface", seed=0, data_root=tmp_path)
    assert task.images["train"].shape[1:] == (3, 60, 60) and not task.is_stand_in
    seeds = simloss.run_seeds(0, config.runs)
    ordinal = simloss.run_ordinal_sweep(config, task, seeds, log=lambda line: None)
    tests = simloss.significance_tests(ordinal, baseline=0.0, pairing=config.significance)
    assert (tests.pairs == 2).all()                                            # runs are paired, not examples
    semantic_task = simloss.load_semantic_task(config, seed=0, data_root=tmp_path)
    assert semantic_task.num_classes == 96 and len(semantic_task.superclass_names) == 20
    similarity = np.maximum(losses.cosine_similarity_matrix(np.random.default_rng(1).normal(size=(96, 8))), 0)
    semantic = simloss.run_semantic_sweep(config, semantic_task, similarity, seeds, log=lambda line: None)
    assert set(simloss.significance_tests(semantic, 0.99, pairing="per-run").metric) == {"accuracy", "sa", "fsa"}


def test_p_value_lookup_against_the_baseline():
    tests = pd.DataFrame([{"r": 0.5, "metric": "mae", "p_value": 0.01},
                          {"r": 0.5, "metric": "accuracy", "p_value": 0.3}])
    assert simloss.p_value_against_baseline(tests, "r", 0.5, "mae", baseline=0.0) == 0.01
    assert simloss.p_value_against_baseline(tests, "r", 0.0, "mae", baseline=0.0) == 1.0   # baseline itself
    assert simloss.p_value_against_baseline(tests, "r", 0.5, "fsa", baseline=0.0) == 1.0   # not tested
    assert simloss.p_value_against_baseline(tests.iloc[:0], "r", 0.5, "mae", baseline=0.0) == 1.0


def test_compare_with_baseline_reads_means_direction_and_p():
    results = pd.DataFrame([
        {"r": r, "seed": s, "split": split, "accuracy": acc, "mae": mae, "mse": mae ** 2}
        for r, acc, mae in ((0.0, 0.10, 5.0), (0.5, 0.20, 4.0)) for s in (0, 1) for split in ("validation", "test")])
    sweep = simloss.Sweep(dataset="toy", parameter="r", metric_names=simloss.AGE_METRICS, results=results,
                          test_labels=np.zeros(2, dtype=int),
                          test_predictions={0.0: np.zeros((2, 2), int), 0.5: np.zeros((2, 2), int)})
    tests = pd.DataFrame([{"r": 0.5, "metric": "mae", "p_value": 0.01},
                          {"r": 0.5, "metric": "accuracy", "p_value": 0.3}])
    mae = simloss.compare_with_baseline(sweep, tests, "mae", 0.5, baseline=0.0)
    assert mae == {"value": 4.0, "baseline": 5.0, "difference": -1.0, "p_value": 0.01, "better": True,
                   "significant": True}
    accuracy = simloss.compare_with_baseline(sweep, tests, "accuracy", 0.5, baseline=0.0)
    assert accuracy["better"] and not accuracy["significant"] and accuracy["difference"] == pytest.approx(0.1)
    itself = simloss.compare_with_baseline(sweep, tests, "mae", 0.0, baseline=0.0)
    assert not itself["better"] and not itself["significant"] and itself["p_value"] == 1.0


def test_median_guess_mae_and_miss_cause():
    # median of the training labels is 3; |[1, 3, 8] - 3| = [2, 0, 5]
    assert simloss.median_guess_mae([1, 3, 3, 4, 9], [1, 3, 8]) == pytest.approx(7 / 3)
    assert simloss.miss_cause("smoke", in_thesis_direction=False, substitute="stand-in") == "budget"
    assert simloss.miss_cause("paper", in_thesis_direction=True, substitute="stand-in") == "genuine"
    assert simloss.miss_cause("cpu", in_thesis_direction=True, substitute="stand-in") == "budget"
    assert simloss.miss_cause("cpu", in_thesis_direction=False, substitute="deviation") == "deviation"


def test_sa_headroom_says_when_the_thesis_gain_cannot_reach_significance():
    # the thesis' own setting: cross-entropy SA 49.22 % on 9,600 CIFAR-100 test images leaves room for ~68 images
    thesis = simloss.sa_headroom(0.4922, 9_600)
    assert thesis["converted_share"] == pytest.approx(0.71 / 50.78) and thesis["testable"]
    assert thesis["expected"] == pytest.approx(0.71 / 50.78 * 0.5078 * 9_600)
    # near the ceiling: 5.3 % of 3,000 images cross a superclass, and 1.4 % of them are about 2 images < 5
    ceiling = simloss.sa_headroom(0.947, 3_000)
    assert ceiling["minimum"] == 5 and ceiling["expected"] == pytest.approx(2.22, abs=0.01) and not ceiling["testable"]
    with pytest.raises(ValueError, match="share"):
        simloss.sa_headroom(94.7, 3_000)


def test_fashion_wordnet_similarity_follows_the_shop_superclasses():
    from domainknowledge.data.real.wordnet import WordNetNotFoundError, wordnet_dir

    try:
        wordnet_dir()
    except WordNetNotFoundError:
        pytest.skip("WordNet is not installed here (tools/setup installs Debian's wordnet-base as root)")
    task = simloss.load_semantic_task(dataclasses.replace(SMOKE, semantic_per_class=(2, 1, 1)), seed=0)
    similarity = simloss.class_name_similarity(task, "wordnet")
    assert similarity.shape == (10, 10) and np.allclose(np.diag(similarity), 1) and np.allclose(similarity, similarity.T)
    contrast = simloss.superclass_similarity_contrast(similarity, task.superclass_of)
    assert contrast["within"] > contrast["across"] + 0.1
    names = list(task.class_names)
    sneaker, sandal, bag = (names.index(n) for n in ("Sneaker", "Sandal", "Bag"))
    assert similarity[sneaker, sandal] > similarity[sneaker, bag]

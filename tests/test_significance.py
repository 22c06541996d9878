"""Yeh's randomized matched-pair test (Yeh 2000; Kobs 2023, Sec. 15.4.2)."""

import numpy as np
import pytest

from domainknowledge import metrics
from domainknowledge.significance import randomized_matched_pair_test


def accuracy(predicted, target):
    return metrics.accuracy(predicted, target)


def test_identical_systems_give_p_one():
    y = np.array([0, 1, 2, 1, 0])
    assert randomized_matched_pair_test(y, y, y, accuracy, iterations=50) == 1.0


def test_a_much_better_system_gets_the_smallest_attainable_p():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=400)
    perfect = y.copy()
    wrong = (y + 1) % 3
    p = randomized_matched_pair_test(perfect, wrong, y, accuracy, iterations=999, seed=1)
    assert p == pytest.approx(1 / 1000)


def test_one_differing_example_matches_the_exact_answer():
    # Only one example differs; swapping it reproduces the observed |difference| in every round,
    # whichever way the coin falls, so every round counts: p = 1.
    y = np.zeros(10, dtype=int)
    a = y.copy()
    b = y.copy()
    b[0] = 1
    assert randomized_matched_pair_test(a, b, y, accuracy, iterations=100) == 1.0


def test_p_value_is_uniformish_for_exchangeable_systems_and_seeded():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=300)
    a, b = rng.integers(0, 2, size=300), rng.integers(0, 2, size=300)
    p = randomized_matched_pair_test(a, b, y, accuracy, iterations=500, seed=5)
    assert 0.01 < p <= 1.0
    assert p == randomized_matched_pair_test(a, b, y, accuracy, iterations=500, seed=5)


def test_macro_f1_is_supported_and_shapes_are_checked():
    y = np.array([0, 1, 2, 2, 1, 0])
    p = randomized_matched_pair_test(y, np.zeros(6, dtype=int), y, lambda a, t: metrics.macro_f1(a, t, 3),
                                     iterations=200)
    assert 0 < p <= 1
    with pytest.raises(ValueError, match="same non-empty"):
        randomized_matched_pair_test(y, y[:3], y, accuracy)
    with pytest.raises(ValueError, match="iterations"):
        randomized_matched_pair_test(y, y, y, accuracy, iterations=0)


def test_seed_spread_rule_needs_a_gap_wider_than_the_noise():
    from domainknowledge.significance import exceeds_seed_spread

    # means 0.6 vs 0.5; sd 0.1 (0.5, 0.6, 0.7) and 0.0: the gap 0.1 does not exceed the spread 0.1
    assert not exceeds_seed_spread([0.5, 0.6, 0.7], [0.5, 0.5, 0.5])
    assert exceeds_seed_spread([0.65, 0.7, 0.75], [0.5, 0.5, 0.5])    # gap 0.2 > sd 0.05
    assert not exceeds_seed_spread([0.5, 0.5], [0.65, 0.7, 0.75])      # the wrong direction never holds
    assert exceeds_seed_spread([0.51], [0.5])                          # single runs: a plain comparison
    with pytest.raises(ValueError, match="at least one run"):
        exceeds_seed_spread([], [0.5])


def test_paired_rule_asks_for_a_mean_gap_twice_its_spread():
    from domainknowledge.significance import paired_gap_exceeds_spread

    assert paired_gap_exceeds_spread([1.0, 1.1, 0.9])          # mean 1.0 > 2 x sd 0.1
    assert not paired_gap_exceeds_spread([1.0, -0.5, 2.0])     # mean 0.83 < 2 x sd 1.26
    assert not paired_gap_exceeds_spread([-1.0, -1.0])         # the wrong sign never holds
    assert paired_gap_exceeds_spread([0.2])                    # one run: the sign alone
    with pytest.raises(ValueError, match="at least one"):
        paired_gap_exceeds_spread([])


def test_sign_test_known_answers():
    from domainknowledge.significance import paired_sign_test

    # 9 wins, 1 loss, 5 ties: exact two-sided p = 2 * (1 + 10) / 2**10 = 0.021484375
    a = np.r_[np.ones(9), 0.0, np.full(5, 0.5)]
    b = np.r_[np.zeros(9), 1.0, np.full(5, 0.5)]
    result = paired_sign_test(a, b)
    assert (result["wins"], result["losses"], result["n"]) == (9, 1, 15)
    assert result["p_value"] == pytest.approx(22 / 1024)
    assert result["difference"] == pytest.approx(8 / 15)
    assert result["share"] == pytest.approx(0.9)
    same = paired_sign_test([0.5, 1.0], [0.5, 1.0])
    assert same["p_value"] == 1.0 and np.isnan(same["share"])
    with pytest.raises(ValueError, match="same non-empty"):
        paired_sign_test([1.0], [1.0, 0.0])


def test_stratified_matched_pair_test_matches_the_exact_sign_test():
    from domainknowledge.significance import stratified_matched_pair_test

    accuracy = lambda p, t: float(np.mean(p == t))  # noqa: E731
    # one stratum, a right on all 8 examples, b wrong on all: the exact two-sided p is 2 / 2**8 = 0.0078125
    y = np.arange(8) % 2
    result = stratified_matched_pair_test([(y, 1 - y, y)], accuracy, iterations=20000, seed=1)
    assert result["difference"] == pytest.approx(1.0)
    assert result["p_value"] == pytest.approx(2 / 256, abs=0.0015)
    # two strata of 4: the statistic is the mean of the per-stratum differences, and the exact p is the same
    halves = [(y[:4], 1 - y[:4], y[:4]), (y[4:], 1 - y[4:], y[4:])]
    assert stratified_matched_pair_test(halves, accuracy, iterations=20000, seed=2)["p_value"] == \
        pytest.approx(2 / 256, abs=0.0015)
    # multi-label rows are swapped whole; identical systems give p = 1
    rows = np.eye(3, dtype=bool)
    assert stratified_matched_pair_test([(rows, rows, rows)], accuracy)["p_value"] == 1.0
    with pytest.raises(ValueError, match="at least one stratum"):
        stratified_matched_pair_test([], accuracy)


def test_exact_mcnemar_by_hand():
    from domainknowledge.significance import exact_mcnemar_test

    # 8 examples only a gets right, 1 only b, 5 both: P(X >= 8 | n = 9, 1/2) = (9 + 1) / 512
    a = np.array([1] * 8 + [0] + [1] * 5, dtype=bool)
    b = np.array([0] * 8 + [1] + [1] * 5, dtype=bool)
    assert exact_mcnemar_test(a, b) == pytest.approx(10 / 512)
    assert exact_mcnemar_test(a, b, alternative="two-sided") == pytest.approx(20 / 512)
    assert exact_mcnemar_test(b, a) == pytest.approx(1 - 1 / 512)          # P(X >= 1 | n = 9)
    assert exact_mcnemar_test(a, a) == 1.0                                 # no discordant example
    with pytest.raises(ValueError):
        exact_mcnemar_test(a, b[:-1])


def test_mcnemar_is_the_sign_test_on_right_and_wrong():
    from domainknowledge.significance import exact_mcnemar_test, paired_sign_test

    a = np.array([1, 1, 1, 1, 1, 0, 1, 0], dtype=bool)
    b = np.array([0, 0, 0, 0, 1, 0, 1, 1], dtype=bool)  # 4 discordant for a, 1 for b
    assert exact_mcnemar_test(a, b) == pytest.approx(paired_sign_test(a, b, alternative="greater")["p_value"])
    assert exact_mcnemar_test(a, b) == pytest.approx(6 / 32)  # P(X >= 4), X ~ Binomial(5, 1/2)


def test_paired_signed_rank_known_answers():
    from scipy.stats import wilcoxon

    from domainknowledge.significance import paired_signed_rank

    # every pair favours A: rank-biserial +1; the exact one-sided p of n = 5 is 1 / 2^5
    result = paired_signed_rank([1.0, 2.0, 3.0, 4.0, 5.0])
    assert result["rank_biserial"] == pytest.approx(1.0)
    assert result["p_value"] == pytest.approx(1 / 32)
    assert result["wins"] == 5 and result["n"] == 5 and result["mean"] == pytest.approx(3.0)
    assert result["least_p"] == pytest.approx(result["p_value"])  # all pairs one way: the least attainable p
    assert paired_signed_rank([1.0, 2.0, 3.0, 4.0])["least_p"] == pytest.approx(1 / 16)  # > 5 %: n too small
    assert paired_signed_rank([1.0, 2.0, 3.0, 4.0], alternative="two-sided")["least_p"] == pytest.approx(1 / 8)
    # mirrored: -1, and the "less" alternative gets the small p
    mirrored = paired_signed_rank([-1.0, -2.0, -3.0, -4.0, -5.0], alternative="less")
    assert mirrored["rank_biserial"] == pytest.approx(-1.0) and mirrored["p_value"] == pytest.approx(1 / 32)
    # balanced ranks: W+ = 1 + 4 = 5, W- = 2 + 3 = 5, so r = 0; zeros are dropped
    balanced = paired_signed_rank([1.0, -2.0, -3.0, 4.0, 0.0])
    assert balanced["rank_biserial"] == pytest.approx(0.0) and balanced["nonzero"] == 4 and balanced["n"] == 5
    # W+ = 1 + 3 = 4 of 10: r = (4 - 6) / 10; the p-value is scipy's
    values = np.array([0.1, -0.2, 0.3, -0.4])
    result = paired_signed_rank(values, alternative="two-sided")
    assert result["rank_biserial"] == pytest.approx(-0.2)
    assert result["p_value"] == pytest.approx(wilcoxon(values).pvalue)
    # scale-free: the effect size and p do not change when the differences are rescaled
    assert paired_signed_rank(1000 * values)["rank_biserial"] == pytest.approx(-0.2)
    assert np.isnan(paired_signed_rank([0.0, 0.0])["rank_biserial"])
    with pytest.raises(ValueError, match="alternative"):
        paired_signed_rank(values, alternative="bigger")

"""Significance tests that compare two systems on the same test examples.

* :func:`randomized_matched_pair_test`: Yeh's (2000) approximate randomization test, which Kobs 2023 uses
  to compare sentiment classifiers on Macro F1 (Sec. 15.4.2). It works for any metric, including ones that
  do not decompose over examples such as Macro F1, which is why Yeh proposed it.

* :func:`exceeds_seed_spread`: the verdict rule for "A beats B" when each was run with a few seeds: the
  difference of means must exceed the larger of the two standard deviations over seeds;
* :func:`paired_gap_exceeds_spread`: the rule for paired runs (A and B measured in the same run, e.g. the
  same trained model under two probes): the mean per-run difference must exceed twice its standard deviation.

* :func:`nr_precision_p_value`: the two-sided p-value of a Normalized R-Precision read as a z-score against
  the binomial null (Kobs 2023, Sec. 7.1.2: above 2.576 is significant at 1 %);
* :func:`mann_whitney_families`: per property, a two-sided Mann-Whitney U test between the values of two
  groups of models (ranking against classification losses, Sec. 7.3).

* :func:`paired_signed_rank`: Wilcoxon's signed-rank test on paired differences (the same images, triplets
  or seeds under two conditions) with the matched-pairs rank-biserial correlation as a scale-free effect size.
* :func:`paired_sign_test`: the exact sign test of two systems' outcomes on the same examples (ties dropped),
  and :func:`exact_mcnemar_test`, the same test on right/wrong outcomes;
* :func:`stratified_matched_pair_test`: Yeh's test over several strata (e.g. the test sets of split seeds).
* :func:`balanced_accuracy_p_value`: a permutation test of a classifier's balanced accuracy against chance
  (zero-shot readings of the encoders, Ch. 13's words-reach-the-notion check).

Other per-example Wilcoxon tests live with the chapters that use them (e.g. the SimLoss chapter).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["exact_mcnemar_test", "mann_whitney_families", "nr_precision_p_value", "exceeds_seed_spread",
           "paired_gap_exceeds_spread", "paired_sign_test", "paired_signed_rank", "randomized_matched_pair_test",
           "stratified_matched_pair_test"]

Metric = Callable[[np.ndarray, np.ndarray], float]


def randomized_matched_pair_test(predictions_a, predictions_b, targets, metric: Metric, *,
                                 iterations: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of Yeh's randomized matched-pair test for ``metric(a) != metric(b)``.

    ``predictions_a``, ``predictions_b`` and ``targets`` are ``(N,)`` arrays over the same examples. Under the
    null hypothesis the two systems are exchangeable, so swapping the two predictions of any example is as
    likely as not. Each of ``iterations`` rounds swaps every example's pair with probability 1/2 and
    recomputes ``|metric(a') - metric(b')|``; the p-value is ``(r + 1) / (iterations + 1)``, with ``r`` the
    number of rounds whose difference is at least the observed one (Yeh 2000, with the usual +1 so that a
    finite number of rounds never reports p = 0). Identical predictions give p = 1.
    """
    a, b, y = (np.asarray(values) for values in (predictions_a, predictions_b, targets))
    if not (a.shape == b.shape == y.shape) or a.ndim != 1 or a.size == 0:
        raise ValueError(f"predictions_a {a.shape}, predictions_b {b.shape} and targets {y.shape} must be the "
                         "same non-empty 1-d shape")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    observed = abs(metric(a, y) - metric(b, y))
    differ = np.flatnonzero(a != b)
    if differ.size == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    at_least = 0
    for _ in range(iterations):
        swap = differ[rng.random(differ.size) < 0.5]
        shuffled_a, shuffled_b = a.copy(), b.copy()
        shuffled_a[swap], shuffled_b[swap] = b[swap], a[swap]
        at_least += abs(metric(shuffled_a, y) - metric(shuffled_b, y)) >= observed - 1e-12
    return (at_least + 1) / (iterations + 1)


def exceeds_seed_spread(higher, lower) -> bool:
    """Whether the runs ``higher`` ``(n,)`` beat the runs ``lower`` ``(m,)`` by more than seed noise:
    ``mean(higher) - mean(lower) > max(sd(higher), sd(lower))`` with the sample standard deviation (ddof 1;
    a single run has none, and then the rule reduces to ``mean(higher) > mean(lower)``). With two or three
    seeds a formal test has almost no power; this rule is the book's stated compromise: a difference smaller
    than the spread between seeds of one method is not read as an effect."""
    higher, lower = np.asarray(higher, dtype=float).ravel(), np.asarray(lower, dtype=float).ravel()
    if not len(higher) or not len(lower):
        raise ValueError("both groups need at least one run")
    spread = max(higher.std(ddof=1) if len(higher) > 1 else 0.0, lower.std(ddof=1) if len(lower) > 1 else 0.0)
    return bool(higher.mean() - lower.mean() > spread)


def paired_gap_exceeds_spread(differences) -> bool:
    """Whether per-run differences ``(n,)`` (A minus B, each run measuring both) show A above B beyond run
    noise: their mean is positive and larger than twice their sample standard deviation (ddof 1; a single run
    has none, and then the rule is ``difference > 0``). Pairing removes what the runs share, so the rule can
    ask for more than :func:`exceeds_seed_spread`."""
    values = np.asarray(differences, dtype=float).ravel()
    if not len(values):
        raise ValueError("need at least one run's difference")
    spread = values.std(ddof=1) if values.size > 1 else 0.0
    return bool(values.mean() > 0 and values.mean() > 2 * spread)


def nr_precision_p_value(value: float) -> float:
    """Two-sided p-value ``2 (1 - Phi(|value|))`` of a Normalized R-Precision read, as the thesis does
    (Sec. 7.1.2), as one standard-normal z-score under the binomial null: 2.576 gives p = 0.01, the thesis'
    threshold of significance at 1 %. (The mean of ``n`` independent per-query z-scores would spread as
    ``1 / sqrt(n)``; compared with that, this reading is conservative.)"""
    from scipy.stats import norm

    return float(2 * norm.sf(abs(value)))


def mann_whitney_families(table, families, *, first: str = "ranking", second: str = "classification",
                          level: float = 0.01):
    """Two-sided Mann-Whitney U test per column of ``table`` (rows: models, columns: properties) between the
    rows whose ``families[row]`` is ``first`` and those that are ``second`` (Sec. 7.3, 1 % level).

    Returns a ``pandas.DataFrame`` indexed by property with both group means, U, p, ``significant`` and
    ``higher`` (the family with the larger mean where significant, else "").
    """
    import pandas as pd
    from scipy.stats import mannwhitneyu

    groups = {name: [row for row in table.index if families.get(row) == name] for name in (first, second)}
    if min(len(rows) for rows in groups.values()) < 2:
        raise ValueError(f"each family needs at least two models; got {groups}")
    rows = []
    for column in table.columns:
        a, b = table.loc[groups[first], column].to_numpy(float), table.loc[groups[second], column].to_numpy(float)
        result = mannwhitneyu(a, b, alternative="two-sided", method="exact")
        significant = bool(result.pvalue < level)
        rows.append({"property": column, f"{first}_mean": a.mean(), f"{second}_mean": b.mean(),
                     "U": float(result.statistic), "p_value": float(result.pvalue), "significant": significant,
                     "higher": (first if a.mean() > b.mean() else second) if significant else ""})
    return pd.DataFrame(rows).set_index("property")


def paired_sign_test(scores_a, scores_b, *, alternative: str = "two-sided") -> dict:
    """Exact sign test of ``scores_a`` against ``scores_b`` ``(n,)``, paired by example (e.g. the
    per-triplet outcomes, 0, 1/2 or 1, of two systems on the same triplets; McNemar's exact test when the
    outcomes are 0/1). Ties are dropped; under the null each discordant example is won by either system with
    probability 1/2, so ``p = binomtest(wins, wins + losses, 1/2)``, and 1 when no example differs.
    ``alternative``: ``"two-sided"``, or ``"greater"`` for ``a`` winning more often.

    Returns ``{"difference": mean(a - b), "wins": #(a > b), "losses": #(a < b), "share": wins / (wins +
    losses) (NaN without discordant examples), "p_value": p, "n": n}``: the mean difference and the share of
    discordant examples that ``a`` wins are the effect sizes."""
    from scipy.stats import binomtest

    a, b = np.asarray(scores_a, dtype=float).ravel(), np.asarray(scores_b, dtype=float).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"scores_a {a.shape} and scores_b {b.shape} must be the same non-empty shape")
    wins, losses = int((a > b).sum()), int((a < b).sum())
    if alternative not in ("greater", "two-sided"):
        raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")
    p = float(binomtest(wins, wins + losses, 0.5, alternative=alternative).pvalue) if wins + losses else 1.0
    return {"difference": float((a - b).mean()), "wins": wins, "losses": losses,
            "share": wins / (wins + losses) if wins + losses else float("nan"), "p_value": p, "n": int(a.size)}


def exact_mcnemar_test(correct_a, correct_b, *, alternative: str = "greater") -> float:
    """Exact McNemar test of two classifiers scored on the same examples: ``correct_a`` and ``correct_b``
    are ``(N,)`` booleans (example right or wrong). Only the discordant examples count: with ``k`` that only
    ``a`` gets right and ``m`` that only ``b`` gets right, under the null hypothesis ``k ~ Binomial(k + m,
    1/2)``. ``alternative="greater"``: p-value of ``a`` being more accurate; ``"two-sided"``: of any
    difference. No discordant example gives p = 1. It is :func:`paired_sign_test` on 0/1 outcomes."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a {a.shape} and correct_b {b.shape} must be the same 1-d shape")
    return paired_sign_test(a, b, alternative=alternative)["p_value"]


def stratified_matched_pair_test(strata, metric: Metric, *, iterations: int = 2000, seed: int = 0) -> dict:
    """Yeh's randomized matched-pair test over several strata (e.g. the test sets of several split seeds).

    ``strata`` is a list of ``(predictions_a, predictions_b, targets)``, each with examples along the first
    axis (rows may be vectors, e.g. one image's multi-label predictions). The statistic is the mean over strata
    of ``metric(a, y) - metric(b, y)``; each round swaps the two systems' predictions of every example with
    probability 1/2, within its stratum. Returns ``{"difference": observed statistic, "p_value": two-sided
    (r + 1) / (iterations + 1)}``, with ``r`` the rounds whose absolute statistic reaches the observed one;
    p is 1 when the predictions never differ."""
    if not strata:
        raise ValueError("need at least one stratum")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    prepared = []
    for a, b, y in strata:
        a, b, y = np.asarray(a), np.asarray(b), np.asarray(y)
        if a.shape != b.shape or len(a) != len(y) or len(a) == 0:
            raise ValueError(f"a stratum needs predictions of one shape and as many targets: {a.shape}, "
                             f"{b.shape}, {y.shape}")
        differ = np.flatnonzero((a != b).reshape(len(a), -1).any(axis=1))
        prepared.append((a, b, y, differ))

    def statistic(pairs):
        return float(np.mean([metric(a, y) - metric(b, y) for a, b, y in pairs]))

    observed = statistic([(a, b, y) for a, b, y, _ in prepared])
    if all(differ.size == 0 for *_, differ in prepared):
        return {"difference": observed, "p_value": 1.0}
    rng = np.random.default_rng(seed)
    at_least = 0
    for _ in range(iterations):
        shuffled = []
        for a, b, y, differ in prepared:
            swap = differ[rng.random(differ.size) < 0.5]
            a2, b2 = a.copy(), b.copy()
            a2[swap], b2[swap] = b[swap], a[swap]
            shuffled.append((a2, b2, y))
        at_least += abs(statistic(shuffled)) >= abs(observed) - 1e-12
    return {"difference": observed, "p_value": (at_least + 1) / (iterations + 1)}


def paired_signed_rank(differences, *, alternative: str = "greater") -> dict[str, float]:
    """Wilcoxon's signed-rank test on paired differences ``(n,)`` (A minus B, each pair measured on the same
    image, triplet or seed), with an effect size.

    ``alternative``: ``"greater"`` (A above B), ``"less"`` or ``"two-sided"``. Zero differences are dropped
    (Wilcoxon's convention); the p-value is scipy's (exact for small ``n`` without ties). The effect size is
    the matched-pairs rank-biserial correlation ``r = (W+ - W-) / (W+ + W-)`` (Kerby 2014) over the non-zero
    differences: +1 when every pair favours A, -1 when every pair favours B, 0 when the ranks balance; it
    does not depend on the scale of the differences.

    Returns ``n`` (pairs), ``nonzero``, ``mean`` and ``median`` difference, ``wins`` (pairs with A > B),
    ``p_value`` (NaN with fewer than two non-zero differences), ``rank_biserial`` (NaN without any) and
    ``least_p``, the smallest p-value the exact test can give with this many non-zero pairs (``1/2^n``
    one-sided): above the level, a miss says the sample is too small, not that the effect is absent."""
    from scipy.stats import rankdata, wilcoxon

    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    values = np.asarray(differences, dtype=float).ravel()
    if not len(values) or np.isnan(values).any():
        raise ValueError("need at least one paired difference and no NaN")
    nonzero = values[values != 0]
    if len(nonzero):
        ranks = rankdata(np.abs(nonzero))
        positive, negative = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
        effect = float((positive - negative) / (positive + negative))
    else:
        effect = float("nan")
    p_value = float(wilcoxon(nonzero, alternative=alternative).pvalue) if len(nonzero) >= 2 else float("nan")
    least_p = min(1.0, (2.0 if alternative == "two-sided" else 1.0) * 0.5 ** len(nonzero))
    return {"n": int(len(values)), "nonzero": int(len(nonzero)), "mean": float(values.mean()),
            "median": float(np.median(values)), "wins": int((values > 0).sum()), "p_value": p_value,
            "rank_biserial": effect, "least_p": least_p}


def paired_effect_size(differences) -> float:
    """Cohen's ``d_z`` of paired differences ``(n,)`` (A minus B, each pair measured on the same seed, image
    or triplet): their mean over their sample standard deviation (ddof 1). ``inf`` (signed) when every
    difference is the same non-zero value, NaN with fewer than two differences or when all are zero."""
    values = np.asarray(differences, dtype=float).ravel()
    if values.size < 2:
        return float("nan")
    spread = values.std(ddof=1)
    if spread == 0:
        return float("nan") if values.mean() == 0 else float(np.sign(values.mean()) * np.inf)
    return float(values.mean() / spread)


__all__ += ["paired_effect_size"]


def balanced_accuracy_p_value(labels, predicted, rounds: int = 2000, seed: int = 0) -> float:
    """One-sided permutation p-value of the balanced accuracy of ``predicted`` against ``labels`` (both ``(N,)``
    ints): the share of ``rounds`` random pairings of the same predictions with the labels that score at least
    as high (with the observed pairing counted, so never below ``1 / (rounds + 1)``)."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return 1.0
    classes = np.unique(labels)
    members = (labels[:, None] == classes[None, :]).astype(np.float64)            # (N, C) one-hot of the truth
    counts = members.sum(axis=0)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([predicted] + [rng.permutation(predicted) for _ in range(rounds)])   # (1 + R, N)
    recall = ((shuffled == labels[None, :]).astype(np.float64) @ members) / counts             # (1 + R, C)
    balanced = recall.mean(axis=1)
    return float((balanced[1:] >= balanced[0] - 1e-12).sum() + 1) / (rounds + 1)


__all__ += ["balanced_accuracy_p_value"]

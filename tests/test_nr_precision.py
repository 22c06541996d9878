"""R-Precision, MAP@R and Normalized R-Precision (Kobs 2023, Eqs. 7.2-7.3) and the Ch. 7 significance tests."""

import numpy as np
import pandas as pd
import pytest

from domainknowledge import metrics, significance


def brute_force(values, embeddings):
    """Eqs. 7.1-7.3 and MAP@R with loops, straight from the definitions (sqrt sigma, p over n - 1 others)."""
    values, x = np.asarray(values), np.asarray(embeddings, dtype=float)
    n = len(values)
    r_prec, ap, z = [], [], []
    for q in range(n):
        others = [i for i in range(n) if i != q]
        distances = [np.linalg.norm(x[i] - x[q]) for i in others]
        ranked = [others[k] for k in np.argsort(distances, kind="stable")]
        r = sum(values[i] == values[q] for i in others)
        if r == 0:
            continue
        relevant = [values[i] == values[q] for i in ranked[:r]]
        hits = sum(relevant)
        r_prec.append(hits / r)
        ap.append(sum(np.mean(relevant[:k + 1]) for k in range(r) if relevant[k]) / r)
        p = r / (n - 1)
        if 0 < p < 1:
            z.append((hits - r * p) / np.sqrt(r * p * (1 - p)))
    return np.mean(r_prec), np.mean(ap), np.mean(z)


def test_hand_computed_example():
    values, x = ["a", "a", "b", "b"], [[0.0], [1.0], [10.0], [11.0]]
    order = metrics.neighbour_order(x)
    # each query's single same-value item is its nearest neighbour: R = 1, p = 1/3, z = (1 - 1/3) / sqrt(2/9)
    assert metrics.r_precision(values, order) == 1.0
    assert metrics.normalized_r_precision(values, order) == pytest.approx(np.sqrt(2))
    swapped = metrics.neighbour_order([[0.0], [10.0], [1.0], [11.0]])
    assert metrics.r_precision(values, swapped) == 0.0
    assert metrics.normalized_r_precision(values, swapped) == pytest.approx(-1 / np.sqrt(2))


def test_map_at_r_hand_example():
    # query 0 (a, R = 2): neighbours b, a -> AP = (0 + 1/2) / 2 = 0.25, R-Prec 0.5
    values, x = ["a", "b", "a", "b", "a"], [[0.0], [0.4], [0.5], [3.0], [3.2]]
    order = metrics.neighbour_order(x)
    per_query = metrics.map_at_r(values, order, per_query=True)
    assert per_query[0] == pytest.approx(0.25)
    assert metrics.r_precision(values, order, per_query=True)[0] == pytest.approx(0.5)


def test_metrics_match_the_definitions_on_random_data():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, size=60)
    embeddings = rng.normal(size=(60, 3)) + 0.8 * values[:, None]
    order = metrics.neighbour_order(embeddings)
    expected = brute_force(values, embeddings)
    measured = (metrics.r_precision(values, order), metrics.map_at_r(values, order),
                metrics.normalized_r_precision(values, order))
    assert measured == pytest.approx(expected)


def test_perfect_embedding_reaches_the_binomial_maximum():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 6, size=900)
    perfect = np.eye(6)[values] + 1e-3 * rng.normal(size=(900, 6))
    table = pd.DataFrame({"k": values})
    assert metrics.property_nr_precision(table, perfect, metric="r_precision")["k"] == 1.0
    assert metrics.property_nr_precision(table, perfect, metric="map_at_r")["k"] == 1.0
    r = np.bincount(values)[values] - 1
    p = r / 899
    expected = np.mean(np.sqrt(r * (1 - p) / p))                 # (R - Rp) / sqrt(Rp(1-p)) for every query
    assert metrics.property_nr_precision(table, perfect, chunk_size=128)["k"] == pytest.approx(expected)
    assert expected > 25


def test_random_embeddings_score_about_zero_whatever_the_number_of_values():
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"two": rng.integers(0, 2, 2000), "nine": rng.integers(0, 9, 2000)})
    scores = metrics.property_nr_precision(table, rng.normal(size=(2000, 16)))
    assert abs(scores["two"]) < 0.15 and abs(scores["nine"]) < 0.15
    # plain R-Precision would not be comparable: about 1/2 against 1/9
    r_prec = metrics.property_nr_precision(table, rng.normal(size=(2000, 16)), metric="r_precision")
    assert r_prec["two"] == pytest.approx(0.5, abs=0.03) and r_prec["nine"] == pytest.approx(1 / 9, abs=0.02)


def test_distances_and_bad_input():
    from domainknowledge.metric_learning import pairwise_distance

    x = np.array([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])
    assert pairwise_distance(x, "euclidean")[0, 2] == pytest.approx(5.0)
    assert pairwise_distance(x, "squared_euclidean")[0, 2] == pytest.approx(25.0)
    assert pairwise_distance(x, "cosine")[0, 2] == pytest.approx(0.0)
    assert pairwise_distance(x, "dot")[0, 2] == pytest.approx(-50.0)
    assert pairwise_distance(x, rows=[2]).shape == (1, 3)
    with pytest.raises(ValueError, match="unknown distance"):
        pairwise_distance(x, "manhattan")
    with pytest.raises(ValueError, match="neighbour_order"):
        metrics.normalized_r_precision([0, 1, 0], np.zeros((3, 1), dtype=int))
    with pytest.raises(ValueError, match="undefined"):
        metrics.r_precision([0, 1, 2], metrics.neighbour_order(np.eye(3)))


def test_nr_precision_significance_threshold():
    assert significance.nr_precision_p_value(2.576) == pytest.approx(0.01, abs=1e-4)
    assert significance.nr_precision_p_value(0.0) == pytest.approx(1.0)


def test_mann_whitney_between_families():
    table = pd.DataFrame({"separated": [5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 0], "mixed": [1, 2, 3, 4, 5, 6] + [1, 2, 3, 4, 5]},
                         index=[f"r{i}" for i in range(6)] + [f"c{i}" for i in range(5)])
    families = {name: "ranking" if name.startswith("r") else "classification" for name in table.index}
    result = significance.mann_whitney_families(table, families)
    assert result.loc["separated", "p_value"] == pytest.approx(2 / 462)       # exact: 2 of C(11, 5) splits
    assert result.loc["separated", "significant"] and result.loc["separated", "higher"] == "ranking"
    assert not result.loc["mixed", "significant"] and result.loc["mixed", "higher"] == ""
    with pytest.raises(ValueError, match="at least two"):
        significance.mann_whitney_families(table.iloc[:7], families)


def test_snr_distance_is_noise_variance_over_signal_variance():
    from domainknowledge.metric_learning import pairwise_distance

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 7))
    expected = np.array([[np.var(b - a) / np.var(a) for b in x] for a in x])
    assert np.allclose(pairwise_distance(x, "snr"), expected)

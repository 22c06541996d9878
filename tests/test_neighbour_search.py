"""Bynke's multi-label methods (principles/neighbour_search.py) and the vehicle world, with known answers."""

import numpy as np
import pytest
import torch

from domainknowledge.data.synthetic import vehicles
from domainknowledge.principles import neighbour_search as ns


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_rescaled_cosine_and_weighted_prompts():
    text = np.zeros((2, 3, 2), np.float32)
    text[0, :, 0] = 1                      # class 0: all contexts along x
    text[1, 0, 1], text[1, 1, 1], text[1, 2, 0] = 1, 1, 1
    vectors = ns.weighted_prompt_classifier(text, [1, 1, 0])          # context 2 unused
    np.testing.assert_allclose(vectors, [[1, 0], [0, 1]], atol=1e-6)
    scores = ns.rescaled_cosine_scores(unit([[1, 0], [-1, 0]]), vectors)
    np.testing.assert_allclose(scores, [[1.0, 0.5], [0.0, 0.5]], atol=1e-6)   # (cos + 1) / 2
    with pytest.raises(ValueError, match="non-negative"):
        ns.weighted_prompt_classifier(text, [0, 0, 0])


def test_neighbour_search_filter_softmax_and_one_nn():
    references = unit([[1, 0], [0.8, 0.6], [0, 1]])
    labels = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    query = unit([[1, 0]])
    cos = references @ query[0]
    # no filter, all neighbours, no early stop: the softmax-weighted label average
    out = ns.neighbour_search(query, references, labels, temperature=2.0, max_difference=100, max_neighbours=3,
                              early_stop=1.0)
    w = np.exp(2 * cos) / np.exp(2 * cos).sum()
    np.testing.assert_allclose(out.scores[0], w @ labels, rtol=1e-5)
    # delta = 0.5 at T = 2 keeps cos >= 1 - 0.25: references 0 and 1 only
    out = ns.neighbour_search(query, references, labels, temperature=2.0, max_difference=0.5, max_neighbours=3,
                              early_stop=1.0)
    w = np.exp(2 * cos[:2]) / np.exp(2 * cos[:2]).sum()
    np.testing.assert_allclose(out.scores[0], w @ labels[:2], rtol=1e-5)
    assert list(out.indices[0]) == [0, 1, -1]
    # 1-NN: exactly the nearest reference's labels; excluding it gives the next one
    one = ns.neighbour_search(query, references, labels, temperature=1.0, max_difference=0, max_neighbours=1)
    np.testing.assert_array_equal(one.scores[0], labels[0])
    other = ns.neighbour_search(query, references, labels, temperature=1.0, max_difference=0, max_neighbours=1,
                                exclude=[0])
    np.testing.assert_array_equal(other.scores[0], labels[1])


def test_early_stop_drops_the_tail_once_99_percent_is_used():
    references = unit([[1, 0], [0, 1]])
    labels = np.eye(2, dtype=np.float32)
    out = ns.neighbour_search(unit([[1, 0]]), references, labels, temperature=100.0, max_difference=1e9,
                              max_neighbours=2, early_stop=0.99)
    assert out.scores[0, 0] == pytest.approx(1 / (1 + np.exp(-100)), rel=1e-6) and out.scores[0, 1] == 0
    assert out.indices[0, 1] == -1


def test_simple_net_equals_unfiltered_search_and_class_wise_known_answer():
    rng = np.random.default_rng(0)
    references, queries = unit(rng.normal(size=(30, 5))), unit(rng.normal(size=(4, 5)))
    labels = (rng.random((30, 3)) < 0.4).astype(np.float32)
    net = ns.SimpleNeighbourNet(references, labels, temperature=7.0)
    search = ns.neighbour_search(queries, references, labels, temperature=7.0, max_difference=1e9,
                                 max_neighbours=30, early_stop=1.0)
    np.testing.assert_allclose(ns.net_scores(net, queries), search.scores, rtol=1e-5, atol=1e-6)
    # class-wise at T = 0: the mean within-class cosine, rescaled; a class without keys scores 0.5
    labels[:, 2] = 0
    cw = ns.ClassWiseNeighbourNet(references, labels, temperature=0.0)
    cos = queries @ references.T
    expected = [(cos[:, labels[:, c] > 0].mean(axis=1) + 1) / 2 for c in range(2)]
    np.testing.assert_allclose(ns.net_scores(cw, queries)[:, :2], np.stack(expected, 1), rtol=1e-5)
    np.testing.assert_allclose(ns.net_scores(cw, queries)[:, 2], 0.5)
    # at a large T it approaches the maximum within-class cosine
    cw = ns.ClassWiseNeighbourNet(references, labels, temperature=1e4)
    np.testing.assert_allclose(ns.net_scores(cw, queries)[:, 0], (cos[:, labels[:, 0] > 0].max(axis=1) + 1) / 2,
                               atol=1e-4)


def test_class_wise_segment_softmax_equals_the_dense_formula_and_its_gradients():
    import torch

    rng = np.random.default_rng(1)
    keys, queries = unit(rng.normal(size=(12, 6))), unit(rng.normal(size=(5, 6)))
    membership = rng.random((12, 4)) < 0.4                                   # multi-hot, class 3 may be empty
    membership[:, 3] = False
    net = ns.ClassWiseNeighbourNet(keys, membership, temperature=9.0)
    q = torch.as_tensor(queries, dtype=torch.float32)
    net(q).sum().backward()
    segment_gradient = net.keys.grad.clone()

    dense_keys = torch.tensor(keys, dtype=torch.float32, requires_grad=True)
    cosine = q @ dense_keys.T
    logits = (9.0 * cosine).unsqueeze(2).masked_fill(~torch.as_tensor(membership).unsqueeze(0), -torch.inf)
    attention = torch.softmax(logits, dim=1).nan_to_num(0.0)
    dense = (torch.einsum("bpc,bp->bc", attention, cosine) + 1) / 2
    dense.sum().backward()
    np.testing.assert_allclose(net(q).detach().numpy(), dense.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(segment_gradient.numpy(), dense_keys.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert np.all(net(q).detach().numpy()[:, 3] == 0.5)


def test_prototypes_and_fine_tuning():
    features = unit([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 1]], np.float32)
    keys, values, membership = ns.class_prototypes(features, labels, 1, clustering=False, label_mode="average")
    np.testing.assert_allclose(keys[0], features[:2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(values[0], [1, 0.5])           # the mean label vector of class 0's samples
    np.testing.assert_allclose(values[1], [1 / 3, 1])
    np.testing.assert_array_equal(membership, np.eye(2))
    _, one_hot, _ = ns.class_prototypes(features, labels, 4, clustering=True, label_mode="one-hot")
    # class 0 has 2 samples and class 1 has 3 for 4 groups each: the empty groups are not considered (no vote)
    np.testing.assert_array_equal(one_hot, np.repeat(np.eye(2), [2, 3], axis=0))
    keys3, _, membership3 = ns.class_prototypes(features, labels, 3, clustering=True)
    assert membership3.sum(axis=0).tolist() == [2, 3] and (np.linalg.norm(keys3, axis=1) > 0).all()
    torch.manual_seed(0)
    net = ns.SimpleNeighbourNet(keys, values, temperature=1.0)
    before = np.mean((ns.net_scores(net, features) - labels) ** 2)
    ns.fine_tune(net, features, labels, epochs=30, batch_size=2, learning_rate=0.5, momentum=0.9, seed=0)
    assert np.mean((ns.net_scores(net, features) - labels) ** 2) < before


def test_best_f2_threshold_is_exact():
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.8]])
    labels = np.array([[1, 0], [0, 1], [1, 1]])
    threshold, f2 = ns.best_f2_threshold(scores, labels)
    grid = np.unique(scores)
    brute = [ns.multilabel_metrics(scores, labels, t)["F2"] for t in grid]
    assert f2 == pytest.approx(max(brute)) and threshold == grid[int(np.argmax(brute))]
    m = ns.multilabel_metrics(scores, labels, 0.35)
    assert m["recall"] == pytest.approx(3 / 4) and m["precision"] == pytest.approx(3 / 4)
    assert m["subset accuracy"] == pytest.approx(1 / 3) and m["accuracy"] == pytest.approx(4 / 6)


def test_duplicate_thresholds_dedup_and_split():
    rng = np.random.default_rng(0)
    similarity = np.r_[rng.uniform(0.5, 0.85, 200), rng.uniform(0.9, 1.0, 200)]
    is_duplicate = np.r_[np.zeros(200), np.ones(200)]
    suspected, certain, model = ns.duplicate_thresholds(similarity + rng.normal(0, 0.03, 400), is_duplicate)
    assert suspected < certain
    assert model.predict_proba([[suspected]])[0, 1] == pytest.approx(0.01, abs=1e-6)
    assert model.predict_proba([[certain]])[0, 1] == pytest.approx(0.99, abs=1e-6)
    x = unit([[1, 0], [1, 0.01], [1, 0.3], [0, 1]])
    kept, merged = ns.deduplicate(x, [["a"], ["b"], ["c"], ["d"]], suspected=0.95, certain=0.9999)
    assert list(kept) == [0, 3] and merged[0] == ["a", "b"]      # 1 is a certain duplicate, 2 a suspected one
    x = unit(rng.normal(size=(200, 8)))
    strata = ns.max_softmax_similarity(x, 10.0)
    assert strata.shape == (200,) and (strata > 0).all() and (strata <= 1).all()
    train, validation, test = ns.stratified_split(strata, seed=0)
    assert (len(train), len(validation), len(test)) == (120, 40, 40)
    assert len(set(train) | set(validation) | set(test)) == 200


def test_faiss_agrees_and_tip_adapter_reduces_to_zero_shot():
    rng = np.random.default_rng(1)
    references, queries = unit(rng.normal(size=(500, 16))), unit(rng.normal(size=(10, 16)))
    out = ns.neighbour_search(queries, references, np.zeros((500, 1)), temperature=1.0, max_difference=1e9,
                              max_neighbours=5, early_stop=1.0, chunk_size=3)
    _, index = ns.faiss_neighbours(queries, references, 5)
    np.testing.assert_array_equal(out.indices, index)
    zero_shot = rng.random((10, 2))
    np.testing.assert_allclose(ns.tip_adapter_scores(queries, references, rng.random((500, 2)), zero_shot,
                                                     alpha=0.0, beta=1.0), zero_shot)


def test_vehicle_world_is_seeded_and_labels_follow_the_factors():
    a = vehicles.generate_vehicle_world(40, 32, seed=3)
    b = vehicles.generate_vehicle_world(40, 32, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.keywords == b.keywords and a.images.shape == (40, 32, 32, 3) and a.images.dtype == np.uint8
    truck = {"body": "truck", "axles": 4, "manufacturer": "kamaz", "antenna": 1, "style": "drawing"}
    assert set(vehicles.true_keywords(truck)) == {"fireakslet", "Kamaz", "lastebil", "antenne", "tegning"}
    for words in a.keywords:
        assert all(w in vehicles.KEYWORDS or w == "????" or w[:1].isdigit() or w.startswith("øvelse") for w in words)
    assert set(vehicles.MANUAL_TRANSLATION) == set(vehicles.KEYWORDS) == set(vehicles.AUTOMATIC_TRANSLATION)
    assert vehicles.AUTOMATIC_TRANSLATION["tilhenger"] == "supporter"        # Table 3.1's errors
    duplicates = a.factors.duplicate_of.to_numpy()
    assert (duplicates < np.arange(40)).all()
    with pytest.raises(ValueError, match="n_images"):
        vehicles.generate_vehicle_world(0)


def test_tip_adapter_is_chunked_float32_and_equals_the_dense_formula():
    rng = np.random.default_rng(2)
    keys, queries = unit(rng.normal(size=(300, 16))), unit(rng.normal(size=(25, 16)))
    values, zero_shot = (rng.random((300, 3)) < 0.2).astype(float), rng.random((25, 3))
    for beta in (0.5, 30.0, 100.0):
        affinity = np.exp(-beta * (1 - queries @ keys.T))                       # the thesis' form, float64, dense
        expected = (zero_shot + 2.0 * (affinity @ values) / affinity.sum(axis=1, keepdims=True)) / 3.0
        found = ns.tip_adapter_scores(queries, keys, values, zero_shot, alpha=2.0, beta=beta, chunk_size=4)
        assert np.isfinite(found).all()
        np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-6)


class DeviceSpy(torch.nn.Module):
    """Wraps a neighbour net and records the device of every batch it is fed. On the ``meta`` device (shapes
    without values, so no GPU is needed to test device placement) it answers scoring calls with CPU zeros."""

    def __init__(self, net):
        super().__init__()
        self.net, self.devices = net, []

    def forward(self, queries):
        self.devices.append(queries.device.type)
        out = self.net(queries)
        return torch.zeros(out.shape) if out.device.type == "meta" and not torch.is_grad_enabled() else out


@pytest.mark.parametrize("kind", ["simple", "class-wise"])
def test_fine_tuned_net_is_trained_and_scored_on_the_chosen_device(kind):
    # the CUDA crash of issue 17: fine_tune moved the net to the device, net_scores then fed it CPU tensors
    rng = np.random.default_rng(3)
    features = unit(rng.normal(size=(30, 8))).astype(np.float32)
    labels = (rng.random((30, 3)) < 0.3).astype(np.float32)
    net = (ns.SimpleNeighbourNet(features[:6], labels[:6], 10.0) if kind == "simple"
           else ns.ClassWiseNeighbourNet(features[:6], labels[:6], 10.0))
    spy = DeviceSpy(net)
    ns.fine_tune(spy, features, labels, epochs=1, batch_size=8, learning_rate=0.1, momentum=0.5, device="meta")
    assert set(spy.devices) == {"meta"} and all(p.device.type == "meta" for p in spy.parameters())
    spy.devices.clear()
    scores = ns.net_scores(spy, features)
    assert spy.devices and set(spy.devices) == {"meta"} and scores.shape == (30, 3)


def test_fine_tuning_on_the_training_images_leaves_each_image_out_of_its_own_keys():
    # the issue-17 leak: a simple net whose keys are the training images finds each image at cosine 1
    features = unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    labels = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)      # neighbours disagree on purpose
    net = ns.SimpleNeighbourNet(features, labels, temperature=2000.0)
    with torch.no_grad():
        own = net(torch.as_tensor(features)).numpy()
        others = net(torch.as_tensor(features), torch.arange(4)).numpy()
    np.testing.assert_allclose(own, labels, atol=1e-3)                     # itself dominates: a copy of its labels
    np.testing.assert_allclose(others, labels[[1, 0, 3, 2]], atol=1e-3)     # left out: its nearest other image
    spy_calls = []
    forward = net.forward
    net.forward = lambda queries, exclude=None: (spy_calls.append(exclude), forward(queries, exclude))[1]
    ns.fine_tune(net, features, labels, epochs=1, batch_size=2, learning_rate=0.1, momentum=0.0,
                 keys_are_features=True)
    assert len(spy_calls) == 2 and all(c is not None for c in spy_calls)
    assert sorted(torch.cat(spy_calls).tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="keys are the features"):
        ns.fine_tune(ns.SimpleNeighbourNet(features[:2], labels[:2], 1.0), features, labels, epochs=1,
                     batch_size=2, learning_rate=0.1, momentum=0.0, keys_are_features=True)

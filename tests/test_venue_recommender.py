"""The three-branch venue recommender (Fig. 8.1), its zero-embedding baseline for Integrated Gradients, and
the chapter driver's data handling, baselines and tests (Kobs 2023, Ch. 8)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from domainknowledge.chapters import venue_attribution as chapter
from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.data.real import semantic_scholar
from domainknowledge.models.venue_recommender import VenueRecommender, zero_embedding_baseline
from domainknowledge.principles import attribution


def _ids(batch, length, vocabulary=30, padding_from=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocabulary, (batch, length), generator=generator)
    if padding_from is not None:
        ids[:, padding_from:] = 0
    return ids


def test_recommender_shapes_and_padding_does_not_change_the_output():
    torch.manual_seed(0)
    model = VenueRecommender(30, 7, embedding_dim=8, num_filters=4, hidden_size=16).eval()
    title, abstract, keywords = _ids(3, 6), _ids(3, 20, seed=1), _ids(3, 5, seed=2)
    logits = model(title, abstract, keywords)
    assert logits.shape == (3, 7)
    padded = model(torch.cat([title, torch.zeros(3, 4, dtype=torch.long)], 1), abstract, keywords)
    assert torch.allclose(logits, padded, atol=1e-6)
    with pytest.raises(ValueError, match="abstract ids must be"):
        model(title, abstract[:2], keywords)


def test_recommender_takes_word2vec_embeddings_and_keeps_padding_and_unknown_at_zero():
    vectors = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
    model = VenueRecommender(12, 3, embeddings=vectors, num_filters=2, hidden_size=4)
    table = model.embedding.table.weight.detach().numpy()
    assert np.allclose(table[2:], vectors[2:]) and np.all(table[:2] == 0)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(10, D\)"):
        VenueRecommender(10, 3, embeddings=vectors)


def test_integrated_gradients_on_the_recommender_is_complete_and_ignores_padding():
    torch.manual_seed(1)
    model = VenueRecommender(30, 5, embedding_dim=6, num_filters=3, hidden_size=8).double().eval()
    fields = (_ids(2, 6), _ids(2, 15, padding_from=11, seed=3), _ids(2, 4, seed=4))
    baseline = zero_embedding_baseline(*fields)
    assert all(torch.equal(b == 0, f == 0) for b, f in zip(baseline, fields))         # same padding
    assert all(torch.all(b[f != 0] == 1) for b, f in zip(baseline, fields))            # unknown = zero vector
    result = attribution.integrated_gradients(attribution.probability_output(model), fields, target=torch.tensor([0, 3]),
                                              baselines=baseline, layer=model.embedding, steps=300,
                                              method="gausslegendre")
    assert [tuple(a.shape) for a in result.attributions] == [(2, 6, 6), (2, 15, 6), (2, 4, 6)]
    assert torch.all(result.attributions[1][:, 11:] == 0)
    change = (result.output - result.baseline_output).abs()
    assert torch.all(result.gap.abs() <= 0.02 * change + 1e-6)


def test_per_field_attribution_sums_to_the_change_from_blanking_that_field_alone():
    """The default path of Ch. 8 (the authors' code): one field at a time from the zero embedding, the other
    two at their real embeddings. Known answer: a field's attributions sum to F(x) - F(x with only that
    field at the zero-embedding baseline), computed here by a separate forward pass."""
    torch.manual_seed(5)
    model = VenueRecommender(30, 5, embedding_dim=6, num_filters=3, hidden_size=8).double().eval()
    fields = (_ids(2, 6), _ids(2, 15, padding_from=11, seed=3), _ids(2, 4, seed=4))
    target = torch.tensor([1, 4])
    forward = attribution.probability_output(model)
    results = attribution.integrated_gradients_per_input(forward, fields, target, baselines=zero_embedding_baseline(*fields),
                                                         layer=model.embedding, steps=300, method="gausslegendre")
    blank = zero_embedding_baseline(*fields)
    full = forward(*fields)[torch.arange(2), target]
    for k, result in enumerate(results):
        assert tuple(result.attributions[0].shape) == tuple(fields[k].shape) + (6,)
        only_k = tuple(blank[j] if j == k else fields[j] for j in range(3))
        expected_base = forward(*only_k)[torch.arange(2), target]
        assert torch.allclose(result.output, full) and torch.allclose(result.baseline_output, expected_base)
        change = result.output - expected_base
        assert torch.all((result.total - change).abs() <= 0.02 * change.abs() + 1e-6)
    assert torch.all(results[1].attributions[0][:, 11:] == 0)            # padding gets nothing
    # the joint path is a different quantity: its baseline blanks all three fields at once
    joint = attribution.integrated_gradients(forward, fields, target, baselines=blank, layer=model.embedding, steps=300,
                                             method="gausslegendre")
    assert torch.allclose(joint.baseline_output, forward(*blank)[torch.arange(2), target])
    assert not torch.allclose(joint.attributions[0], results[0].attributions[0])


def _untrained_recommender(attribution_steps: int):
    """A smoke-sized AI task, its prepared splits and an untrained (seeded) recommender in eval mode."""
    config = dataclasses.replace(chapter.CONFIGS["smoke"], papers=600, attribution_steps=attribution_steps)
    prepared = chapter.prepare(chapter.load_task(config, "ai", seed=0), config, seed=0)
    torch.manual_seed(0)
    return config, prepared, chapter.build_recommender(prepared, config).eval()


def test_chapter_explain_per_field_is_the_default_and_keeps_completeness_per_field():
    config, prepared, model = _untrained_recommender(attribution_steps=20)
    papers, venues = [0, 1], [2, 0]
    per_field = chapter.explain(model, prepared, papers, venues, config=config)
    joint = chapter.explain(model, prepared, papers, venues, config=config, fields="joint")
    dimension = prepared.embeddings.shape[1]
    ids = prepared.splits["test"].fields(torch.tensor(papers))
    blank = zero_embedding_baseline(*ids)
    with torch.no_grad():
        for row, explanation in enumerate(per_field):
            assert explanation.mode == "per-field" and set(explanation.baseline_probabilities) == set(chapter.FIELDS)
            for k, name in enumerate(chapter.FIELDS):
                only = tuple(blank[j] if j == k else ids[j] for j in range(3))
                expected = torch.softmax(model(*only), 1)[row, venues[row]].item()
                assert explanation.baseline_probabilities[name] == pytest.approx(expected, abs=1e-6)
                total = float(explanation.scores[name].sum()) * dimension
                change = explanation.probability - explanation.baseline_probabilities[name]
                assert total - change == pytest.approx(explanation.gaps[name], abs=1e-5)
        for row, explanation in enumerate(joint):
            assert list(explanation.baseline_probabilities) == [chapter.JOINT]
            expected = torch.softmax(model(*blank), 1)[row, venues[row]].item()
            assert explanation.baseline_probabilities[chapter.JOINT] == pytest.approx(expected, abs=1e-6)
    assert chapter.completeness_summary(per_field)["explanations"] == 3 * len(papers)
    assert chapter.completeness_summary(joint)["explanations"] == len(papers)
    with pytest.raises(ValueError, match="fields must be one of"):
        chapter.explain(model, prepared, papers, venues, config=config, fields="both")


def test_tokenize_and_stratified_split():
    assert chapter.tokenize("Deep Residual Learning, for Image-Recognition (2016)!") == \
        ["deep", "residual", "learning", "for", "image-recognition", "2016"]
    labels = np.repeat([0, 1, 2], [50, 20, 10])
    split = chapter.stratified_split(labels, seed=0)
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(80))
    assert np.bincount(labels[split["train"]]).tolist() == [40, 16, 8]
    assert np.bincount(labels[split["validation"]]).tolist() == [5, 2, 1]


def test_baselines_and_wilcoxon_on_a_small_stand_in():
    config = dataclasses.replace(chapter.CONFIGS["smoke"], papers=900)
    task = chapter.load_task(config, "ai", seed=0)
    scores, info = chapter.baseline_scores(task, config)
    labels = task.labels["test"]
    majority = chapter.ranking_scores(scores["majority"], labels)
    largest = int(np.argmax(np.bincount(task.labels["train"], minlength=task.num_venues)))
    assert majority["accuracy"].mean() == pytest.approx(np.mean(labels == largest))
    regression = chapter.ranking_scores(scores["logistic regression"], labels)
    assert regression["mrr"].mean() > majority["mrr"].mean() + 0.2
    assert chapter.BIGRAM_ORACLE in scores and info["oracle"]["features"] > info["features"]
    tests = chapter.wilcoxon_tests([regression], {"majority": majority})
    assert set(tests.metric) == {"accuracy", "accuracy_at_5", "mrr"} and (tests.p_value < 1e-3).all()
    same = chapter.wilcoxon_tests([majority], {"majority": majority})
    assert (same.p_value == 1.0).all()


def test_bigram_features_are_adjacent_pairs_within_a_field():
    config = dataclasses.replace(chapter.CONFIGS["smoke"], papers=900)
    task = chapter.load_task(config, "medicine", seed=0)
    first = next(chapter._documents(task, "train", 2))
    fields = [task.fields["train"][name][0] for name in ("title", "abstract", "keywords")]
    unigrams = sum(len(f) for f in fields)
    assert first[:unigrams] == [t for f in fields for t in f]
    assert first[unigrams:] == [f"{a} {b}" for f in fields for a, b in zip(f, f[1:])]     # never across fields
    with pytest.raises(ValueError, match="ngrams must be 1 or 2"):
        chapter.logistic_regression_scores(task, config, ngrams=3)


def test_tokenized_texts_tokenise_when_read_and_stream():
    texts = chapter.TokenizedTexts(["Deep Learning", "Image-Recognition now"])
    phrases = chapter.TokenizedTexts([["object detection", "Pose"], ["x"]], phrases=True)
    assert texts[1] == ["image-recognition", "now"] and len(texts) == 2
    assert list(phrases) == [["object", "detection", "pose"], ["x"]]
    assert list(texts[np.array([1])]) == [["image-recognition", "now"]] and list(texts[:1]) == [["deep", "learning"]]
    both = chapter.Concatenated(texts, phrases)
    assert len(both) == 4 and list(both) == list(both)            # restartable, as Word2Vec needs


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    from domainknowledge.fixtures import write_fixtures

    return write_fixtures(tmp_path_factory.mktemp("s2"), ["semantic-scholar"])


def test_the_reader_extracts_the_thesis_subsets_from_the_published_shards(corpus_root):
    ai = semantic_scholar.load_venue_subset(corpus_root, "ai")
    assert semantic_scholar.NON_AI in ai["venue_names"] and "CVPR" in ai["venue_names"] and "ICML" in ai["venue_names"]
    assert len(ai["titles"]) == len(ai["abstracts"]) == len(ai["keywords"]) == len(ai["venues"])
    assert all(k for k in ai["keywords"]) and all(a.strip() for a in ai["abstracts"])
    assert "Some text of the record." not in ai["abstracts"]                    # incomplete records dropped
    few = semantic_scholar.load_venue_subset(corpus_root, "ai", non_ai_papers=3)
    assert int(np.sum(few["venues"] == few["venue_names"].index(semantic_scholar.NON_AI))) == 3
    medicine = semantic_scholar.load_venue_subset(corpus_root, "medicine")
    assert "Circulation" in medicine["venue_names"] and semantic_scholar.NON_AI not in medicine["venue_names"]
    top = semantic_scholar.load_venue_subset(corpus_root, "medicine", medicine_venues=3)
    sizes = np.bincount(medicine["venues"])
    largest = {medicine["venue_names"][i] for i in np.argsort(-sizes, kind="stable")[:3]}
    assert set(top["venue_names"]) == largest
    assert len(semantic_scholar.load_venue_subset(corpus_root, "medicine", limit=7)["titles"]) == 7


def test_paper_profile_needs_the_semantic_scholar_files(tmp_path, corpus_root):
    import gzip
    import shutil

    with pytest.raises(DataNotFoundError, match="corpus-2019-01-31"):
        semantic_scholar.load_venue_subset(tmp_path, "ai")
    folder = tmp_path / semantic_scholar.FOLDER
    shutil.copytree(corpus_root / semantic_scholar.FOLDER, folder)
    (folder / "s2-corpus-01.gz").unlink()
    with pytest.raises(DataNotFoundError, match="s2-corpus-01.gz"):
        semantic_scholar.load_venue_subset(tmp_path, "ai")
    (folder / semantic_scholar.MANIFEST).unlink()
    with gzip.open(folder / "s2-corpus-02.gz", "wt") as stream:
        stream.write("not json\n")
    with pytest.raises(ValueError, match="s2-corpus-02.gz line 1"):
        semantic_scholar.load_venue_subset(tmp_path, "medicine")
    with pytest.raises(ValueError, match="subset must be one of"):
        semantic_scholar.load_venue_subset(tmp_path, "physics")


def test_word2vec_puts_rare_synonyms_near_their_subfields_key_words():
    config = chapter.CONFIGS["smoke"]
    prepared = chapter.prepare(chapter.load_task(config, "ai", seed=0), config, seed=0)
    found = chapter.synonym_neighbours(prepared, config)
    assert found["synonyms"] > 100 and found["median_count_ratio"] < 0.25      # rare: several times rarer
    assert found["median_rank"] < found["key_words"] / 4                      # random vectors: about half


def test_completeness_gaps_shrink_with_more_integration_steps():
    config, prepared, model = _untrained_recommender(attribution_steps=4)
    papers = list(range(6))
    explanations = chapter.explain(model, prepared, papers, [0] * len(papers), config=config)
    table = chapter.completeness_convergence(model, prepared, explanations, config=config, factor=8, tolerance=0.0,
                                             floor=0.0)
    assert len(table) == 3 * len(papers)                    # tolerance 0: every part is explained again
    assert set(table["part"]) == set(chapter.FIELDS)
    # 32 points of the sum come closer to F(x) - F(x') than 4 do (completeness of the integral)
    assert (table["gap_finer"].abs() <= table["gap"].abs() + 1e-6).mean() >= 0.8
    assert table["gap_finer"].abs().median() < 0.5 * table["gap"].abs().median()


def test_a_completeness_gap_below_float32_resolution_counts_as_within():
    # a field whose blanking moves the probability by 1e-7 has a relative gap of 100 % at a gap of 1e-7: rounding
    assert not chapter.outside_tolerance(1e-7, 1e-7)
    assert chapter.outside_tolerance(1e-7, 1e-7, floor=0.0)
    assert chapter.outside_tolerance(0.07, 0.0042)                       # 6 % of a real change, above the floor
    assert not chapter.outside_tolerance(0.07, 0.0006)
    assert chapter.ROUNDING_FLOOR > 50 * 2.0 ** -24                       # above the rounding of a 50-point sum

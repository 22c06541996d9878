"""The Twitch sentiment chapter's drivers (Kobs 2023, Ch. 15) on known answers and properties."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domainknowledge.chapters import twitch_sentiment as ts
from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.data.real import twitch
from domainknowledge.data.synthetic import twitch_chat
from domainknowledge.data.synthetic.twitch_chat import GOLD_CLASS_COUNTS
from domainknowledge.models.text import train_word2vec
from domainknowledge.models.text_cnn import UNKNOWN_INDEX
from domainknowledge.principles import weak_labels

TINY = dataclasses.replace(ts.CONFIGS["smoke"], corpus_messages=800, validate_every=3, runs=1)


@pytest.fixture(scope="module")
def task():
    return ts.load_task(TINY, seed=0)


@pytest.fixture(scope="module")
def prepared(task):
    return ts.prepare_corpus(task, TINY, seed=0)


def test_expected_random_baselines_reproduce_table_15_2():
    labels = np.repeat(np.arange(3), GOLD_CLASS_COUNTS)
    scores = {name.split(" (")[0] + (" prior" if "distribution" in name else ""): {k: round(100 * v, 1) for k, v in s.items()}
              for name, s in ts.expected_baseline_scores(labels).items()}
    assert scores["random"] == {"accuracy": 33.3, "macro_recall": 33.3, "macro_f1": 32.7}
    assert scores["random prior"] == {"accuracy": 35.6, "macro_recall": 33.3, "macro_f1": 33.3}
    assert scores["majority"] == {"accuracy": 40.1, "macro_recall": 33.3, "macro_f1": 19.1}


def test_scores_from_a_confusion_matrix_by_hand():
    confusion = np.array([[2, 0, 0], [1, 1, 0], [0, 0, 0]])
    scores = ts.scores_from_confusion(confusion)
    assert scores["accuracy"] == pytest.approx(3 / 4)
    assert scores["macro_recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert scores["macro_f1"] == pytest.approx((2 / 2.5 + 1 / 1.5 + 0) / 3)


def test_soft_cross_entropy_is_cross_entropy_for_one_hot_targets():
    logits = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 1])
    assert ts.soft_cross_entropy(logits, F.one_hot(labels, 3).float()) == pytest.approx(
        F.cross_entropy(logits, labels).item(), abs=1e-6)


def test_word2vec_is_a_function_of_seed_and_corpus():
    corpus = [["good", "stream", "PogChamp"], ["bad", "lag", "FeelsBadMan"], ["good", "game"]] * 30
    first = train_word2vec(corpus, dimension=8, min_count=2, epochs=2, seed=3)
    second = train_word2vec(corpus, dimension=8, min_count=2, epochs=2, seed=3)
    assert set(first.key_to_index) == {"good", "stream", "PogChamp", "bad", "lag", "FeelsBadMan", "game"}
    assert np.array_equal(first["good"], second["good"])
    assert not np.array_equal(first["good"], train_word2vec(corpus, dimension=8, min_count=2, epochs=2, seed=4)["good"])
    with pytest.raises(ValueError, match="tokenize first"):
        train_word2vec(["good stream"], dimension=8, min_count=1)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="source"):
        dataclasses.replace(TINY, source="reddit")
    with pytest.raises(ValueError, match="masking_probability"):
        dataclasses.replace(TINY, masking_probability=1.5)
    with pytest.raises(ValueError, match="runs"):
        dataclasses.replace(TINY, runs=0)


def test_stand_in_task_keeps_the_hidden_emotes_out_of_the_lexicon(task):
    assert len(task.gold_texts) == sum(GOLD_CLASS_COUNTS)
    assert np.bincount(task.gold_labels).tolist() == list(GOLD_CLASS_COUNTS)
    assert len(task.corpus) == TINY.corpus_messages
    # the emote lexicon: Table 15.1's printed rows and simulated votes for the other surveyed emotes
    assert set(task.emote_survey) == set(weak_labels.EMOTE_SURVEY_TABLE_15_1) | set(twitch_chat.surveyed_emotes())
    assert set(task.simulated_emotes) == set(twitch_chat.surveyed_emotes())
    # the page calls the generator's other emotes hidden: neither the survey nor the labeller knows them
    hidden = twitch_chat.unsurveyed_emotes()
    assert "Sadge" in hidden and not set(hidden) & set(task.emote_survey)
    assert not any(emote in task.lexicon for emote in hidden)
    assert not any(variant in task.lexicon for variant in twitch_chat.EMOTE_VARIANTS.values())


def test_prepared_corpus_splits_and_targets(prepared):
    n_validation = round(TINY.validation_fraction * TINY.corpus_messages)
    assert prepared.validation.ids.shape == (n_validation, TINY.max_length)
    assert prepared.train.ids.shape[0] == TINY.corpus_messages - n_validation
    assert torch.allclose(prepared.train.targets.sum(dim=1), torch.ones(prepared.train.ids.shape[0]))
    # a message without signal tokens has the uncertain 25/50/25 target, one with signal a one-hot target
    without = ~prepared.train.signal.any(dim=1)
    assert torch.allclose(prepared.train.targets[without], torch.tensor([0.25, 0.5, 0.25]).expand(int(without.sum()), 3))
    assert (prepared.train.targets[~without].max(dim=1).values == 1).all()
    assert 0.4 < prepared.weak_label_agreement < 0.95


def test_training_keeps_the_state_with_the_lowest_validation_loss(prepared):
    trained = ts.train_weak_label_cnn(prepared, TINY, masking_probability=0.5, seed=0)
    history = trained.history
    assert len(history) >= 2 and trained.best_step in history["step"].tolist()
    best = history["validation_loss"].min()
    assert ts._validation_loss(trained.model, prepared.validation, "cpu") == pytest.approx(best, rel=1e-5)
    predicted, probabilities = ts.predict(trained, prepared.gold)
    assert predicted.shape == (len(prepared.gold.labels),)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    again = ts.train_weak_label_cnn(prepared, TINY, masking_probability=0.5, seed=0)
    assert again.history["validation_loss"].tolist() == history["validation_loss"].tolist()


def test_analysis_tables_add_up(task, prepared):
    predictions = ts.baseline_predictions(task)
    counts = ts.prediction_counts(task.gold_labels, predictions)
    assert (counts.sum(axis=1) == len(task.gold_labels)).all()
    has_signal = prepared.gold.has_signal
    for confusion in ts.signal_confusions(task.gold_labels, has_signal, predictions).values():
        assert confusion.to_numpy().sum() == has_signal.sum()
    behaviour = ts.no_signal_behaviour(task.gold_labels, has_signal, predictions)
    # Eq. 15.11: both labellers call every message without a signal token neutral
    assert behaviour.loc["distribution-based lexicon", "predicted_neutral_percent"] == 100
    assert behaviour.loc["average-based lexicon", "predicted_neutral_percent"] == 100


def test_lexicon_ablation_coverage_grows_with_more_lexica(task):
    ablation = ts.lexicon_ablation(task)
    assert len(ablation) == 2 * len(ts.LEXICON_COMBINATIONS)
    share = ablation.groupby("lexica")["signal_share"].first()
    assert share["Emote + Emoji + VADER"] >= max(share["Emote + VADER"], share["Emote + Emoji"], share["Emoji + VADER"])
    assert share["Emote + VADER"] >= max(share["Emote"], share["VADER"])


def test_paper_profile_without_data_says_what_to_put_where(tmp_path):
    with pytest.raises(DataNotFoundError, match="labeled_dataset.csv"):
        ts.load_task(ts.CONFIGS["paper"], seed=0, data_root=None)
    (tmp_path / "twitch").mkdir()
    with pytest.raises(DataNotFoundError, match=r"data/labeled_dataset.csv is missing.*emote-controlled"):
        ts.load_task(ts.CONFIGS["paper"], seed=0, data_root=tmp_path)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The Twitch fixture in the published layout of the authors' repository."""
    from domainknowledge.fixtures import write_fixtures

    return write_fixtures(tmp_path_factory.mktemp("published"), ["twitch"])


def test_published_labelled_comments_are_read_with_their_sentiment(published):
    texts, labels = twitch.load_labelled_messages(published)
    with open(published / "twitch" / twitch.LABELLED_CSV, encoding="utf-8") as handle:
        header = handle.readline().strip()
    assert header == ",".join(twitch.LABELLED_COLUMNS)
    assert texts[0] == 'lag again, "why" LUL'                      # quoted field with a comma and quotes
    assert set(labels.tolist()) == {0, 1, 2} and len(texts) == len(labels)
    raw = (published / "twitch" / twitch.LABELLED_CSV).read_text(encoding="utf-8").splitlines()
    first_sentiment = int(raw[1].split(",")[0])
    assert labels[0] == first_sentiment + 1                       # -1 / 0 / 1 -> negative / neutral / positive


def test_published_lexica_are_read_by_column_name(published):
    lexica = twitch.load_lexica(published)
    assert set(lexica) == set(weak_labels.PRECEDENCE)
    # vader_distribution.tsv orders its columns positive, negative, neutral: "hate" must still be negative
    assert int(np.argmax(lexica["vader"].distribution("hate"))) == weak_labels.NEGATIVE
    assert lexica["vader"].score("hate") < -0.33                   # header "word    sentiment" (spaces)
    # emote shares of Table 15.1, rounded to two decimals as published, renormalised
    np.testing.assert_allclose(lexica["emote"].distribution("FeelsBadMan"), np.array([71, 17, 19]) / 107, atol=0.01)
    assert "PogChamp" in lexica["emote"].emotes and not lexica["vader"].emotes


def test_published_lexicon_duplicates_resolve_as_the_authors_code(published, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(published / "twitch", root / "twitch")
    folder = root / "twitch" / twitch.LEXICA_FOLDER
    with open(folder / "emote_distribution.tsv", "a", encoding="utf-8") as handle:
        handle.write("LUL\t0.10\t0.10\t0.80\n")                # a second LUL row: negative; the last row wins
    with open(folder / "emote_average.tsv", "a", encoding="utf-8") as handle:
        handle.write("LUL\t-0.90\n")                             # a second LUL score: the first row wins
    lexica = twitch.load_lexica(root)
    assert int(np.argmax(lexica["emote"].distribution("LUL"))) == weak_labels.NEGATIVE
    assert lexica["emote"].score("LUL") > 0


def test_published_unlabelled_months_are_streamed(published):
    stream = twitch.iter_unlabelled_messages(published)
    assert next(stream) and next(stream)
    everything = twitch.load_unlabelled_messages(published)
    assert len(everything) >= 250
    assert twitch.load_unlabelled_messages(published, limit=7) == everything[:7]


def test_bad_published_files_are_named(published, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(published / "twitch", root / "twitch")
    (root / "twitch" / twitch.LEXICA_FOLDER / "emoji_average.tsv").unlink()
    with pytest.raises(DataNotFoundError, match="emoji_average.tsv is missing.*emote-controlled"):
        twitch.load_lexica(root)
    shutil.rmtree(root / "twitch" / twitch.UNLABELLED_FOLDER)
    with pytest.raises(DataNotFoundError, match="unlabeled.*README"):
        twitch.load_unlabelled_messages(root)
    (root / "twitch" / twitch.LABELLED_CSV).write_text("sentiment,message\n2,hi\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: sentiment '2' is not one of -1, 0, 1"):
        twitch.load_labelled_messages(root)


def test_paper_task_on_published_files_runs_table_15_2_rows(published):
    task = ts.load_task(ts.CONFIGS["paper"], seed=0, data_root=published)
    assert task.source == "twitch" and not task.emote_survey
    predictions = ts.baseline_predictions(task)
    table = ts.method_table(task.gold_labels, predictions)
    assert table.loc["distribution-based lexicon", "macro_f1"] > 40      # the majority baseline has 19 %
    assert set(ts.lexicon_ablation(task)["lexica"]) == {"Emote", "Emoji", "VADER", "Emoji + VADER", "Emote + Emoji",
                                                        "Emote + VADER", "Emote + Emoji + VADER"}
    assert ts.yeh_p_value(predictions["average-based lexicon"], predictions["distribution-based lexicon"],
                          task.gold_labels, iterations=20) <= 1


def test_the_hidden_strength_sweep_is_skipped_on_real_chat_with_a_reason():
    """The paper profile reads real chat, which has no hidden_strength knob: the chapter skips the sweep
    (it used to call it and crash)."""
    assert ts.sweep_skip_reason(ts.CONFIGS["cpu"]) is None
    reason = ts.sweep_skip_reason(ts.CONFIGS["paper"])
    assert reason and "stand-in" in reason
    with pytest.raises(ValueError, match="sweep_skip_reason"):
        ts.hidden_strength_sweep(ts.CONFIGS["paper"], seed=0, progress=False)


def test_the_stand_in_carries_mixed_messages_and_learnable_variants(task):
    """The positive controls' ingredients: the labellers disagree on many messages with lexicon tokens and
    the distribution labeller is right more often there; emote variants tell the sentiment beyond the
    lexicon."""
    mixed = ts.labeller_disagreement(task.gold_texts, task.gold_labels, task.lexicon)
    assert mixed["disagree_percent"] > 15 and mixed["p_distribution_better"] < 0.01
    assert mixed["distribution_right_percent"] > mixed["average_right_percent"]
    variants = ts.variant_evidence(task.gold_texts, task.gold_labels, task.lexicon)
    assert variants["messages"] > 20 and variants["variant_accuracy"] > variants["neutral_accuracy"]
    assert variants["p_variants_better"] < 0.01


def test_labeller_disagreement_by_hand():
    lexicon = weak_labels.load_emote_lexicon({"Up": (0, 1, 9), "Mixed": (5, 0, 5)})
    # "Up Mixed": average (0.9 + 0) / 2 = 0.45 -> positive; distribution: neutral is vetoed, positive wins
    # "Mixed": average 0 -> neutral; distribution: a tie of negative and positive -> negative (first)
    result = ts.labeller_disagreement(["Up Mixed", "Mixed", "Mixed"], [2, 0, 1], lexicon)
    assert result["disagree_percent"] == pytest.approx(200 / 3)
    assert result["distribution_right_percent"] == 50 and result["average_right_percent"] == 50


def test_a_corpus_too_small_for_min_count_says_so(task):
    config = dataclasses.replace(TINY, min_count=10_000)
    with pytest.raises(ValueError, match="no token occurs min_count = 10000 times"):
        ts.prepare_corpus(task, config, seed=0)


def test_hiding_signal_tokens_zeroes_exactly_the_lexicon_positions(prepared):
    gold = prepared.gold
    hidden = ts.hide_signal_tokens(gold)
    assert (hidden.ids[~gold.signal] == gold.ids[~gold.signal]).all()       # every other token is kept
    assert (hidden.ids[gold.signal] == UNKNOWN_INDEX).all()                  # every lexicon token is a zero vector
    assert not hidden.has_signal.any() and (hidden.labels == gold.labels).all()


def test_a_labeller_scores_the_hidden_signal_messages_as_its_neutral_default(prepared):
    gold = prepared.gold
    predicted = np.asarray(gold.labels).copy()                              # a perfect labeller ...
    row = ts.labeller_row(predicted, prepared)
    assert row["accuracy"] == pytest.approx(100)
    # ... which sees no lexicon token once they are hidden, and says neutral
    with_signal = np.asarray(gold.labels)[gold.has_signal]
    assert row["accuracy_signal_hidden"] == pytest.approx(100 * np.mean(with_signal == weak_labels.NEUTRAL))

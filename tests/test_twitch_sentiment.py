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
    assert set(task.emote_survey) == set(weak_labels.EMOTE_SURVEY_TABLE_15_1) and task.simulated_emotes == ()
    # the page calls the generator's other emotes hidden: the labeller must not know them
    hidden = twitch_chat.unsurveyed_emotes()
    assert "BibleThump" in hidden and not any(emote in task.lexicon for emote in hidden)
    completed = ts.load_task(TINY, seed=0, corpus_messages=50, complete_emote_survey=True)
    assert set(completed.simulated_emotes) == set(hidden) and all(e in completed.lexicon for e in hidden)


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
    with pytest.raises(DataNotFoundError, match="labelled.csv"):
        ts.load_task(ts.CONFIGS["paper"], seed=0, data_root=None)
    (tmp_path / "twitch").mkdir()
    with pytest.raises(DataNotFoundError, match="labelled.csv"):
        ts.load_task(ts.CONFIGS["paper"], seed=0, data_root=tmp_path)


def test_real_twitch_files_are_read(tmp_path):
    folder = tmp_path / "twitch"
    folder.mkdir()
    (folder / "labelled.csv").write_text("message,label\nPogChamp,positive\n\"lag, again\",negative\nok,neutral\n",
                                         encoding="utf-8")
    (folder / "messages.txt").write_text("a\n\nb LUL\nc\n", encoding="utf-8")
    texts, labels = twitch.load_labelled_messages(tmp_path)
    assert texts == ["PogChamp", "lag, again", "ok"] and labels.tolist() == [2, 0, 1]
    assert twitch.load_unlabelled_messages(tmp_path, limit=2) == ["a", "b LUL"]
    assert twitch.load_emote_survey(tmp_path) is None
    (folder / "emote_survey.csv").write_text("emote,negative,neutral,positive\nKappa,1,5,2\n", encoding="utf-8")
    assert twitch.load_emote_survey(tmp_path) == {"Kappa": (1, 5, 2)}
    (folder / "labelled.csv").write_text("message,label\nhi,happy\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not one of"):
        twitch.load_labelled_messages(tmp_path)


def test_the_hidden_strength_sweep_is_skipped_on_real_chat_with_a_reason():
    """The paper profile reads real chat, which has no hidden_strength knob: the chapter skips the sweep
    (it used to call it and crash)."""
    assert ts.sweep_skip_reason(ts.CONFIGS["cpu"]) is None
    reason = ts.sweep_skip_reason(ts.CONFIGS["paper"])
    assert reason and "stand-in" in reason
    with pytest.raises(ValueError, match="sweep_skip_reason"):
        ts.hidden_strength_sweep(ts.CONFIGS["paper"], seed=0, progress=False)

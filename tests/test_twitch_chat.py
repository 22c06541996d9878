"""The Twitch chat stand-in of Ch. 15: determinism, the thesis' gold prior and coverage, its token tables."""

import numpy as np
import pytest

from domainknowledge.data.synthetic import twitch_chat as tc
from domainknowledge.principles import weak_labels as wl


SURVEY = {**wl.EMOTE_SURVEY_TABLE_15_1, **tc.simulated_emote_survey(seed=0)}


@pytest.fixture(scope="module")
def lexicon():
    """The stand-in's lexica: Table 15.1 and simulated votes for the other surveyed emotes."""
    return wl.load_lexica(emote_survey=SURVEY)


@pytest.fixture(scope="module")
def gold():
    return tc.make_gold_set(seed=0)


def test_same_seed_same_messages_and_different_seed_different_messages():
    first, second = tc.make_twitch_chat(500, seed=3), tc.make_twitch_chat(500, seed=3)
    other = tc.make_twitch_chat(500, seed=4)
    assert first.texts == second.texts
    assert np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.planted_signal, second.planted_signal)
    assert first.texts != other.texts
    assert tc.make_gold_set(seed=1).texts == tc.make_gold_set(seed=1).texts


def test_shapes_types_and_no_empty_message():
    chat = tc.make_twitch_chat(300, seed=0)
    assert len(chat) == 300 and len(chat.texts) == 300
    assert chat.labels.shape == chat.planted_signal.shape == chat.hidden_counts.shape == (300,)
    assert chat.labels.dtype == np.int64 and chat.planted_signal.dtype == bool
    assert set(np.unique(chat.labels)) <= {0, 1, 2}
    assert all(text.strip() for text in chat.texts)


def test_gold_set_has_the_thesis_class_counts(gold):
    # Sec. 3.7.2: 1,922 messages, 404 negative (21.02 %), 748 neutral (38.92 %), 770 positive (40.06 %)
    assert tc.GOLD_SIZE == 1922 and len(gold) == 1922
    assert np.bincount(gold.labels).tolist() == [404, 748, 770]
    assert np.allclose(tc.GOLD_PRIOR, [0.2102, 0.3892, 0.4006], atol=5e-5)
    assert not np.all(np.diff(gold.labels) >= 0)                         # shuffled, not sorted


def test_stream_labels_follow_the_prior():
    chat = tc.make_twitch_chat(20_000, seed=5)
    assert np.allclose(np.bincount(chat.labels) / 20_000, tc.GOLD_PRIOR, atol=0.01)


def test_about_a_third_of_messages_have_no_lexicon_token(gold, lexicon):
    sources = wl.labelling_sources(gold.texts, lexicon)
    without = np.mean([not names for names in sources])
    assert 0.28 < without < 0.40                                     # thesis: 34.8 % (Sec. 15.3)
    # a message without a planted signal never has a lexicon token
    assert all(not names for names, planted in zip(sources, gold.planted_signal) if not planted)
    # per class, neutral messages most often lack signal (Table 15.5: 312/404, 320/748, 621/770 with signal)
    with_signal = np.array([bool(names) for names in sources])
    shares = [with_signal[gold.labels == y].mean() for y in range(3)]
    assert shares[1] < shares[0] and shares[1] < shares[2]


def test_emotes_cover_the_most_messages_as_in_table_15_3(gold):
    coverage = {}
    for name in ("emote", "emoji", "vader"):
        sources = wl.labelling_sources(gold.texts, wl.load_lexica([name], emote_survey=SURVEY))
        coverage[name] = np.mean([bool(names) for names in sources])
    assert coverage["emote"] > coverage["vader"] > coverage["emoji"] > 0       # 48.0 > 26.6 > 3.8 %


def test_token_tables_agree_with_the_real_lexica(lexicon):
    assert set(tc.EMOTE_USAGE) == set(wl.EMOTE_SURVEY_TABLE_15_1)
    for emote, (_, usage) in tc.EMOTE_USAGE.items():
        assert tuple(usage) == wl.EMOTE_SURVEY_TABLE_15_1[emote][:3]
    assert all(lexicon.source(emoji) == "emoji" for emoji in tc.EMOJI_USAGE)
    assert all(lexicon.source(word) == "vader" for word in tc.VADER_WORD_USAGE)
    for token in [*tc.FILLER_WORDS, *(t for words in tc.HIDDEN_WORDS.values() for t in words),
                  *tc.EMOTE_VARIANTS.values()]:
        assert not wl.signal_tokens(wl.tokenize(token, lexicon.emotes), lexicon), token
    hidden = {t.lower() for words in tc.HIDDEN_WORDS.values() for t in words}
    assert not hidden & set(tc.EMOTE_VARIANTS.values()) and not hidden & {e.lower() for e in tc.SURVEYED_EMOTE_USAGE}


def test_slang_words_contradict_vader_on_purpose(lexicon):
    for word in ("insane", "sick", "kill", "dead"):
        _, usage = tc.VADER_WORD_USAGE[word]
        assert np.argmax(usage) == wl.POSITIVE
        assert np.argmax(lexicon.distribution(word)) == wl.NEGATIVE


def test_hidden_strength_controls_how_much_hidden_words_tell():
    def purity(strength):
        chat = tc.make_twitch_chat(4000, seed=2, config=tc.ChatConfig(hidden_strength=strength, hidden_rate=1.0))
        owner = {token: y for y, tokens in tc.HIDDEN_WORDS.items() for token in tokens}
        hits = total = 0
        for text, y in zip(chat.texts, chat.labels):
            for token in text.split():
                if token in owner:
                    total += 1
                    hits += owner[token] == y
        return hits / total

    assert purity(1.0) == pytest.approx(1.0)
    assert purity(0.0) < 0.5                                   # uniform over all hidden tokens: about 1/3
    assert purity(0.0) < purity(0.5) < purity(1.0)


def test_noise_can_be_switched_off_and_every_planted_signal_is_then_found(lexicon):
    quiet = tc.ChatConfig(typo_rate=0.0, elongation_rate=0.0, emote_variant_rate=0.0)
    chat = tc.make_twitch_chat(2000, seed=1, config=quiet)
    sources = wl.labelling_sources(chat.texts, lexicon)
    assert [bool(names) for names in sources] == chat.planted_signal.tolist()


def test_lexicon_labels_on_the_gold_set_beat_the_majority_baseline(gold, lexicon):
    labels = wl.distribution_labels(gold.texts, lexicon)
    assert np.mean(labels == gold.labels) > 770 / 1922 + 0.1


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="sum to 1"):
        tc.ChatConfig(class_prior=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="probability"):
        tc.ChatConfig(typo_rate=1.5)
    with pytest.raises(ValueError, match="kind_rates"):
        tc.ChatConfig(kind_rates={"emote": 0.5})
    with pytest.raises(ValueError, match="positive number"):
        tc.make_twitch_chat(0, seed=0)
    with pytest.raises(ValueError, match="class_counts"):
        tc.make_gold_set(seed=0, class_counts=(1, 2))


def test_hidden_token_posterior_by_hand():
    # strength 1: a token of the negative list occurs only in negative messages
    strong = tc.hidden_token_posterior(tc.ChatConfig(hidden_strength=1.0))
    assert np.allclose(strong["scuffed"], [1, 0, 0])
    # strength 0: every hidden token is equally likely in every class, so the posterior is the prior
    weak = tc.hidden_token_posterior(tc.ChatConfig(hidden_strength=0.0))
    assert np.allclose(weak["clutch"], tc.GOLD_PRIOR)


def test_hidden_token_posterior_matches_generated_frequencies():
    config = tc.ChatConfig(hidden_rate=1.5)
    chat = tc.make_twitch_chat(20_000, seed=6, config=config)
    counts = np.zeros(3)
    for text, y in zip(chat.texts, chat.labels):
        counts[y] += text.split().count("Sadge")
    assert np.allclose(counts / counts.sum(), tc.hidden_token_posterior(config)["Sadge"], atol=0.03)


def test_simulated_emote_survey_covers_the_unprinted_surveyed_emotes_never_the_hidden_ones(lexicon):
    survey = tc.simulated_emote_survey(seed=0)
    assert set(survey) == set(tc.surveyed_emotes()) and "BibleThump" in survey
    assert not set(survey) & set(tc.unsurveyed_emotes()) and not set(survey) & set(wl.EMOTE_SURVEY_TABLE_15_1)
    assert all(sum(votes) == 108 and len(votes) == 4 for votes in survey.values())
    assert survey == tc.simulated_emote_survey(seed=0)
    assert np.argmax(survey["BibleThump"][:3]) == wl.NEGATIVE
    assert np.argmax(survey["Kreygasm"][:3]) == wl.POSITIVE
    completed = wl.load_lexica(emote_survey={**wl.EMOTE_SURVEY_TABLE_15_1, **survey})
    assert completed.source("BibleThump") == "emote"
    # controversial emotes: an average score near 0, a distribution that rules out neutral
    assert abs(completed.score("Kappa")) < 0.2 and completed.distribution("Kappa")[wl.NEUTRAL] < 0.3
    with pytest.raises(ValueError, match="hidden emotes"):
        tc.simulated_emote_survey(["Sadge"], seed=0)
    with pytest.raises(ValueError, match="no generating distribution"):
        tc.simulated_emote_survey(["Kappa123"], seed=0)

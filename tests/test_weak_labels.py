"""Lexicon weak labels of Kobs 2023, Ch. 15 (Sec. 15.1.1, Eqs. 15.10-15.11, Sec. 15.2.1), on known answers."""

import doctest
import subprocess
import sys

import numpy as np
import pytest

from domainknowledge.principles import weak_labels as wl
from domainknowledge.principles.weak_labels import NEGATIVE, NEUTRAL, POSITIVE


@pytest.fixture(scope="module")
def vader():
    return wl.load_vader_lexicon()


@pytest.fixture(scope="module")
def thesis_lexicon():
    return wl.load_lexica()


def toy_lexicon(entries, name="toy", emotes=()):
    """A lexicon from ``{token: (neg, neu, pos)}`` counts."""
    return wl._from_counts(name, entries, emotes=emotes)


# --- VADER, emoji and emote lexica -------------------------------------------------------------------


def test_vader_ratings_are_grouped_into_three_classes_by_hand():
    # -4..-2 negative, -1..1 neutral, 2..4 positive (Sec. 15.1.1)
    counts = wl.group_vader_ratings([-2, -1, 0, 0, 0, 0, 1, 1, 2, 3])
    assert counts.tolist() == [1, 7, 2]
    assert wl.group_vader_ratings([-4, -3, 4, 3, -1, 1, 0, 2, -2, 0]).tolist() == [3, 4, 3]
    text = "word\t0.4\t1.4\t[-2, -1, 0, 0, 0, 0, 1, 1, 2, 3]\n"
    lexicon = wl.load_vader_lexicon(text)
    # add-one smoothed as in the authors' published lexicon: (1 + 1, 7 + 1, 2 + 1) / (10 + 3)
    assert np.allclose(lexicon.distribution("word"), np.array([2, 8, 3]) / 13)
    assert lexicon.score("word") == pytest.approx(0.4 / 4)


def test_add_one_smoothing_by_hand_and_no_class_is_vetoed(vader):
    assert np.allclose(wl.smoothed_distribution([0, 0, 10]), np.array([1, 1, 11]) / 13)
    assert np.allclose(wl.smoothed_distribution([0, 0, 10], smoothing=0), [0, 0, 1])
    assert np.allclose(wl.smoothed_distribution([3, 0, 1], smoothing=0.5), np.array([3.5, 0.5, 1.5]) / 5.5)
    with pytest.raises(ValueError):
        wl.smoothed_distribution([1, 2])
    # raw shares give "good" no negative ratings, so any message with "good" could never be negative (Eq. 15.10);
    # smoothed, a strongly negative emote outweighs it
    assert vader.distribution("good")[NEGATIVE] > 0
    emote = toy_lexicon({"FeelsBadMan": (71, 17, 19)}, name="emote", emotes={"FeelsBadMan"})
    assert wl.distribution_label(["good", "FeelsBadMan", "FeelsBadMan"], wl.combine_lexica(emote, vader)) == NEGATIVE


def test_vader_ratings_out_of_range_raise():
    with pytest.raises(ValueError, match="-4 .. 4"):
        wl.group_vader_ratings([5, 0])
    with pytest.raises(ValueError, match="expected 4"):
        wl.load_vader_lexicon("word 1.0 0.5 [1, 1]\n")   # spaces, not tabs


def test_installed_vader_lexicon_entries(vader):
    # 7,520 lines, 14 tokens listed twice: 7,506 entries (the thesis counts 7,517 in its version)
    assert len(vader) == 7506
    # add-one smoothed counts, (count + 1) / 13
    assert np.allclose(vader.distribution("love"), np.array([1, 1, 11]) / 13)  # ratings 3 3 3 3 3 3 3 4 4 3
    assert np.allclose(vader.distribution("hate"), np.array([10, 2, 1]) / 13)  # one -1, nine <= -2
    assert np.allclose(vader.distribution("sad"), np.array([8, 4, 1]) / 13)
    assert vader.score("love") == pytest.approx(3.2 / 4)
    # "lol" appears twice; the last line ([1, 3, 4, 1, 2, 4, 1, 2, -1, 1], mean 1.8) wins, as in VADER
    assert np.allclose(vader.distribution("lol"), np.array([1, 6, 6]) / 13)
    assert vader.score("lol") == pytest.approx(1.8 / 4)
    for distribution in vader.distributions.values():
        assert distribution.sum() == pytest.approx(1.0)


def test_emoji_lexicon_keeps_emojis_with_at_least_50_tweets():
    emoji = wl.load_emoji_lexicon()
    assert len(emoji) == 300                                               # Sec. 15.1.1
    assert len(wl.load_emoji_lexicon(min_occurrences=0)) == 969
    # FACE WITH TEARS OF JOY: 3614 negative, 4163 neutral, 6845 positive of 14622 tweets
    assert np.allclose(emoji.distribution("😂"), np.array([3615, 4164, 6846]) / 14625)   # add-one smoothed
    assert emoji.score("😂") == pytest.approx((6845 - 3614) / 14622)
    assert "emosent" not in sys.modules          # read from the package folder without importing it


def test_emote_lexicon_from_table_15_1_drops_unknown_votes():
    emote = wl.load_emote_lexicon()
    assert len(emote) == 11
    assert np.allclose(emote.distribution("FeelsBadMan"), np.array([71, 17, 19]) / 107)
    assert np.allclose(emote.distribution("PogChamp"), np.array([1, 3, 101]) / 105)
    assert emote.score("FeelsGoodMan") == pytest.approx((98 - 1) / 106)
    assert "feelsbadman" not in emote                                      # emotes are case-sensitive
    assert emote.emotes == frozenset(wl.EMOTE_SURVEY_TABLE_15_1)


def test_importing_the_module_has_no_side_effects():
    code = ("import logging, sys; import domainknowledge.principles.weak_labels; "
            "assert not logging.getLogger().handlers; assert 'emosent' not in sys.modules; "
            "assert 'vaderSentiment' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- precedence ------------------------------------------------------------------------------------


def test_precedence_picks_the_emote_over_a_conflicting_vader_word(vader):
    emote = toy_lexicon({"love": (90, 5, 5)}, name="emote", emotes={"love"})
    combined = wl.combine_lexica(emote, vader)
    assert combined.source("love") == "emote"
    assert np.allclose(combined.distribution("love"), [0.9, 0.05, 0.05])
    assert wl.distribution_label("love", vader) == POSITIVE
    assert wl.distribution_label("love", combined) == NEGATIVE
    assert combined.source("hate") == "vader"


def test_precedence_emoji_over_vader_and_load_lexica_ignores_order():
    emoji = toy_lexicon({"x": (0, 0, 1)}, name="emoji")
    vader = toy_lexicon({"x": (1, 0, 0), "y": (0, 1, 0)}, name="vader")
    combined = wl.combine_lexica(emoji, vader)
    assert combined.source("x") == "emoji" and combined.source("y") == "vader"
    first, second = wl.load_lexica(["vader", "emote"]), wl.load_lexica(["emote", "vader"])
    assert first.name == second.name == "emote+vader"
    with pytest.raises(ValueError, match="subset"):
        wl.load_lexica(["emote", "sentiwordnet"])


def test_thesis_lexicon_combines_all_three(thesis_lexicon):
    assert thesis_lexicon.name == "emote+emoji+vader"
    assert len(thesis_lexicon) == 7506 + 300 + 11            # no token is in two of them
    assert thesis_lexicon.source("PogChamp") == "emote"
    assert thesis_lexicon.source("😂") == "emoji"
    assert thesis_lexicon.source("love") == "vader"


# --- preprocessing ---------------------------------------------------------------------------------


def test_tokenize_docstring_example():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(wl.tokenize, "tokenize", globs={"tokenize": wl.tokenize}):
        runner.run(test)
    assert runner.failures == 0


def test_tokenize_lowercases_words_but_keeps_emotes_emoticons_and_emojis():
    tokens = wl.tokenize("LUL OMG that was Kappa :D XD 👍🏽 ❤️ check https://twitch.tv/x!", emotes={"LUL"})
    assert tokens == ["LUL", "omg", "that", "was", "kappa", ":D", "XD", "👍", "❤", "check", "URL"]
    assert wl.tokenize("lul LUL", emotes={"LUL"}) == ["lul", "LUL"]


def test_elongations_are_reduced_to_two_characters():
    assert wl.reduce_elongation("loooove") == "loove"
    assert wl.tokenize("loooove gooooood noooo!!!!") == ["loove", "good", "noo", "!", "!"]
    assert wl.tokenize("😂😂😂😂") == ["😂", "😂"]


def test_tokenize_splits_punctuation_and_keeps_contractions():
    assert wl.tokenize("wait, what? can't be.") == ["wait", ",", "what", "?", "can't", "be", "."]
    assert wl.tokenize("nice:)") == ["nice", ":)"]


def test_every_emoji_and_almost_every_vader_entry_survives_tokenization(vader):
    for emoji in wl.load_emoji_lexicon(min_occurrences=0).distributions:
        assert wl.tokenize(emoji) == [emoji]
    reachable = [token for token in vader.distributions if [t.lower() for t in wl.tokenize(token)] == [token.lower()]]
    # the rest are multi-word entries ("fed up"), elongations the preprocessing shortens ("zzz") and rare
    # emoticons such as "@}-;-'---"
    assert len(reachable) / len(vader) > 0.99


def test_upper_case_emoticons_find_lower_case_vader_entries(vader):
    assert vader.key("XD") == "xd"
    assert vader.key(":D") == ":D"
    assert "XD" in vader and "Xd" in vader


# --- the distribution-based labeller (Eqs. 15.10 and 15.11) -----------------------------------------


def test_distribution_label_is_the_argmax_of_the_product_by_hand():
    lexicon = toy_lexicon({"a": (5, 3, 2), "b": (2, 3, 5), "c": (1, 3, 6)})
    # products: negative .5*.2*.1 = .010, neutral .3**3 = .027, positive .2*.5*.6 = .060
    assert wl.distribution_label(["a", "b", "c"], lexicon) == POSITIVE
    assert np.allclose(wl.distribution_scores(["a", "b", "c"], lexicon), np.array([0.010, 0.027, 0.060]) / 0.097)
    # without "c": .10, .09, .10 -> a tie between negative and positive, broken to the first (negative)
    assert wl.distribution_label(["a", "b"], lexicon) == NEGATIVE
    assert wl.distribution_label(["a", "a", "b"], lexicon) == NEGATIVE


def test_tie_rule_takes_the_first_maximal_class_like_numpy_argmax():
    lexicon = toy_lexicon({"np": (2, 1, 2), "up": (1, 2, 2), "nu": (2, 2, 1), "all": (1, 1, 1)})
    assert wl.distribution_label(["np"], lexicon) == NEGATIVE == int(np.argmax([0.4, 0.2, 0.4]))
    assert wl.distribution_label(["up"], lexicon) == NEUTRAL
    assert wl.distribution_label(["nu"], lexicon) == NEGATIVE
    assert wl.distribution_label(["all"], lexicon) == NEGATIVE
    # the alternative rule prefers neutral when neutral is among the tied classes
    assert wl.distribution_label(["nu"], lexicon, tie_break="neutral") == NEUTRAL
    assert wl.distribution_label(["all"], lexicon, tie_break="neutral") == NEUTRAL
    assert wl.distribution_label(["np"], lexicon, tie_break="neutral") == NEGATIVE
    with pytest.raises(ValueError, match="tie_break"):
        wl.distribution_label(["np"], lexicon, tie_break="last")


def test_no_signal_token_gives_neutral(thesis_lexicon):
    assert wl.distribution_label("xqzw blorp", thesis_lexicon) == NEUTRAL          # Eq. 15.11
    assert wl.distribution_scores("xqzw blorp", thesis_lexicon) is None
    assert wl.average_label("xqzw blorp", thesis_lexicon) == NEUTRAL
    assert wl.average_score("", thesis_lexicon) == 0.0


def test_zero_probabilities_and_long_messages():
    lexicon = toy_lexicon({"never_negative": (0, 1, 1), "never_positive": (1, 1, 0), "p": (1, 2, 7)})
    assert wl.distribution_label(["never_negative", "never_positive"], lexicon) == NEUTRAL
    # 10,000 repetitions: the plain product underflows (to 0 or a subnormal number); the log space does not
    naive = np.prod(np.tile([0.1, 0.2, 0.7], (10_000, 1)), axis=0)
    assert naive[NEGATIVE] == naive[NEUTRAL] == 0.0 and naive[POSITIVE] < 1e-300
    assert wl.distribution_label(["p"] * 10_000, lexicon) == POSITIVE
    assert np.allclose(wl.distribution_scores(["p"] * 10_000, lexicon), [0, 0, 1])


def test_thesis_lexicon_on_messages(thesis_lexicon):
    labels = wl.distribution_labels(["FeelsBadMan", "PogChamp PogChamp", "i hate this", "LUL 😂",
                                     "the stream is live"], thesis_lexicon)
    assert labels.tolist() == [NEGATIVE, POSITIVE, NEGATIVE, POSITIVE, NEUTRAL]
    assert labels.dtype == np.int64


# --- the average-based labeller (Sec. 15.2.1) -------------------------------------------------------


def test_average_label_thresholds_by_hand():
    lexicon = wl.Lexicon("toy", {t: np.full(3, 1 / 3) for t in "abcd"},
                         {"a": 0.33, "b": 0.34, "c": -0.34, "d": -1.0}, {t: "toy" for t in "abcd"})
    assert wl.average_label(["a"], lexicon) == NEUTRAL                 # -0.33 <= score <= 0.33
    assert wl.average_label(["b"], lexicon) == POSITIVE
    assert wl.average_label(["c"], lexicon) == NEGATIVE
    assert wl.average_score(["b", "d", "unknown"], lexicon) == pytest.approx((0.34 - 1.0) / 2)
    assert wl.average_labels([["b", "d"], ["c", "d"], ["a", "b"]], lexicon).tolist() == [NEUTRAL, NEGATIVE,
                                                                                   POSITIVE]  # -0.33, -0.67, 0.335


def test_average_and_distribution_labellers_can_disagree(thesis_lexicon):
    # "Jebaited" (25, 27, 37): the distribution picks positive (37/89), the average (37-25)/89 = 0.13 is neutral
    assert wl.distribution_label("Jebaited", thesis_lexicon) == POSITIVE
    assert wl.average_label("Jebaited", thesis_lexicon) == NEUTRAL


# --- which lexicon labelled a message (Table 15.3) ---------------------------------------------------


def test_labelling_sources(thesis_lexicon):
    sources = wl.labelling_sources(["LUL i love it 😂", "hello there", "FeelsBadMan so sad", ["😂"]],
                                   thesis_lexicon)
    assert sources == [("emote", "emoji", "vader"), (), ("emote", "vader"), ("emoji",)]
    emote_only = wl.load_lexica(["emote"])
    assert wl.labelling_sources(["i love it"], emote_only) == [()]


# --- training targets and the signal mask (Sec. 15.1.2) ---------------------------------------------


def test_weak_label_targets_are_one_hot_with_signal_and_uncertain_neutral_without(thesis_lexicon):
    targets = wl.weak_label_targets(["FeelsBadMan", "the stream is live", ["PogChamp"]], thesis_lexicon)
    assert targets.shape == (3, 3) and targets.dtype == np.float32
    assert targets.tolist() == [[1, 0, 0], [0.25, 0.5, 0.25], [0, 0, 1]]
    assert wl.weak_label_targets([], thesis_lexicon).shape == (0, 3)
    with pytest.raises(ValueError, match="distribution"):
        wl.weak_label_targets(["x"], thesis_lexicon, no_signal_target=(1, 1, 1))


def test_signal_mask_marks_lexicon_tokens(thesis_lexicon):
    tokens = wl.tokenize("LUL that play was insane 😂 clutch", thesis_lexicon.emotes)
    assert tokens == ["LUL", "that", "play", "was", "insane", "😂", "clutch"]
    assert wl.signal_mask(tokens, thesis_lexicon).tolist() == [True, False, True, False, True, True, False]


def test_loaded_lexica_are_read_only_and_shared(vader):
    assert wl.load_vader_lexicon() is vader
    with pytest.raises(TypeError):
        vader.distributions["love"] = np.array([1.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        vader.distribution("love")[0] = 1.0


# --- the NLTK VADER baseline (Sec. 15.2.1) -------------------------------------------------------------


def test_nltk_vader_uses_its_rules_and_the_thresholds():
    assert wl.nltk_vader_compound("I love this") > 0.05
    assert wl.nltk_vader_compound("I hate this") < -0.05
    # negation flips the sign: VADER's rule, not a lexicon lookup
    assert wl.nltk_vader_compound("this is not good") < 0 < wl.nltk_vader_compound("this is good")
    # capitals intensify
    assert wl.nltk_vader_compound("this is GOOD") > wl.nltk_vader_compound("this is good")
    labels = wl.nltk_vader_labels(["I love this", "the stream", "I hate this"])
    assert labels.tolist() == [POSITIVE, NEUTRAL, NEGATIVE]
    # with a threshold above every score, everything is neutral
    assert set(wl.nltk_vader_labels(["I love this", "I hate this"], threshold=0.999).tolist()) == {NEUTRAL}


def test_nltk_vader_rejects_tokens_and_bad_thresholds():
    with pytest.raises(TypeError, match="raw message"):
        wl.nltk_vader_labels([["i", "love", "it"]])
    with pytest.raises(ValueError, match="threshold"):
        wl.nltk_vader_labels(["x"], threshold=1.5)


def test_distribution_ties_flag_exactly_the_tied_messages():
    lexicon = toy_lexicon({"meh": (1, 1, 0), "yay": (0, 1, 3), "ok": (1, 2, 1)})
    tied = wl.distribution_ties([["meh"], ["yay"], ["ok"], ["nothing"], ["meh", "ok"]], lexicon)
    # meh: negative and neutral tie; yay and ok have one maximum; no signal is no tie; meh*ok = (1, 2, 0)/.. no tie
    assert tied.tolist() == [True, False, False, False, False]
    assert wl.distribution_label(["meh"], lexicon) == NEGATIVE     # the tie rule picks the first class

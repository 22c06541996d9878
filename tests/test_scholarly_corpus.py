"""The scholarly-corpus stand-in of Kobs 2023, Ch. 8: determinism, Table 3.1-like statistics, the planted
word's per-venue rates, and the venue catalogue."""

from __future__ import annotations

import numpy as np
import pytest

from domainknowledge.data.synthetic import scholarly_corpus as sc


@pytest.fixture(scope="module")
def ai_corpus():
    return sc.make_scholarly_corpus(sc.default_config("ai", 6000), seed=3)


def test_same_seed_same_corpus_other_seed_other_corpus():
    config = sc.default_config("medicine", 600)
    first, again, other = (sc.make_scholarly_corpus(config, seed=s) for s in (0, 0, 1))
    assert first.titles == again.titles and first.keywords == again.keywords
    assert np.array_equal(first.venues, again.venues)
    assert first.titles != other.titles


def test_lengths_and_size_skew_follow_table_3_1(ai_corpus):
    stats = sc.corpus_statistics([t.split() for t in ai_corpus.titles], [a.split() for a in ai_corpus.abstracts],
                                 ai_corpus.keywords, ai_corpus.venues, len(ai_corpus.venue_names))
    table = sc.TABLE_3_1["ai"]
    assert stats["publications"] == 6000 and stats["venues"] == len(sc.AI_VENUES)
    assert stats["avg_title_length"] == pytest.approx(table["avg_title_length"], rel=0.1)
    assert stats["avg_abstract_length"] == pytest.approx(table["avg_abstract_length"], rel=0.1)
    assert stats["avg_keywords"] == pytest.approx(table["avg_keywords"], rel=0.1)
    assert stats["min_publications"] >= 30
    # skewed sizes: the largest venue several times the median, and the non-AI class its thesis share
    assert stats["max_publications"] > 2 * stats["median_publications"]
    non_ai = ai_corpus.venue_names.index(sc.NON_AI_VENUE)
    assert np.mean(ai_corpus.venues == non_ai) == pytest.approx(20_000 / 245_573, abs=0.01)


def test_planted_word_rates_per_venue(ai_corpus):
    has = np.array([sc.PLANTED_WORD in (t + " " + a).split() for t, a in zip(ai_corpus.titles, ai_corpus.abstracts)])
    for index, rate in enumerate(ai_corpus.planted_rates):
        members = ai_corpus.venues == index
        share = has[members].mean()
        # a binomial share of the venue's papers, within 4 standard errors of the generator's rate
        assert abs(share - rate) <= 4 * np.sqrt(rate * (1 - rate) / members.sum()) + 1e-9
    vision, robot_learning = ai_corpus.venue_like.index("CVPR"), ai_corpus.venue_like.index("CoRL")
    assert ai_corpus.planted_rates[vision] == 0.26 and ai_corpus.planted_rates[robot_learning] == 0.90


def test_planted_word_is_in_no_word_list_and_medicine_has_none():
    lists = [sc.GENERIC_WORDS, *sc.FIELD_WORDS.values(), *sc.AI_TOPICS.values(), *sc.MEDICINE_TOPICS.values(),
             *sc.SPECIALTY_WORDS.values()]
    assert all(sc.PLANTED_WORD not in words for words in lists)
    corpus = sc.make_scholarly_corpus(sc.default_config("medicine", 500), seed=0)
    assert not any(sc.PLANTED_WORD in a.split() for a in corpus.abstracts)


def test_venues_of_one_subfield_share_topic_words(ai_corpus):
    def words_of(like):
        index = ai_corpus.venue_like.index(like)
        return {w for a, v in zip(ai_corpus.abstracts, ai_corpus.venues) if v == index for w in a.split()}

    vision_a, vision_b, language = words_of("CVPR"), words_of("ICCV"), words_of("ACL")
    vision_words = set(sc.AI_TOPICS["computer vision"])
    assert vision_words <= vision_a and vision_words <= vision_b
    # specialty words are dealt to one venue each within a subfield: "superpixel" is the CVPR-like venue's
    def share_with(like, word):
        index = ai_corpus.venue_like.index(like)
        return np.mean([word in a.split() for a, v in zip(ai_corpus.abstracts, ai_corpus.venues) if v == index])

    assert share_with("CVPR", "superpixel") > 5 * share_with("ICCV", "superpixel")
    assert len(vision_a & vision_b) / len(vision_a | vision_b) > len(vision_a & language) / len(vision_a | language)


def test_venue_phrases_use_every_key_word_once_in_a_different_order_per_venue(ai_corpus):
    keys = set(sc.AI_TOPICS["computer vision"][:10])
    orders = []
    for like in ("CVPR", "ICCV", "ECCV"):
        phrases = ai_corpus.venue_phrases[ai_corpus.venue_like.index(like)]["computer vision"]
        assert sorted(w for p in phrases for w in p) == sorted(keys)          # each key word exactly once
        assert all(len(p) in (2, 3) for p in phrases)
        orders.append({(a, b) for p in phrases for a, b in zip(p, p[1:])})
    assert orders[0] != orders[1] != orders[2]
    assert [sc._chunk_sizes(n) for n in (2, 4, 7, 10)] == [[2], [2, 2], [3, 2, 2], [3, 2, 3, 2]]


def test_key_words_are_equally_frequent_across_a_subfields_venues_but_their_pairs_are_not(ai_corpus):
    """The stand-in's ingredient: a unigram counter sees the same key-word rates in the CVPR- and ICCV-like
    venues; the venue's own ordered pairs are several times more frequent in it than in its sibling."""
    def papers(like):
        index = ai_corpus.venue_like.index(like)
        return [a.split() for a, v in zip(ai_corpus.abstracts, ai_corpus.venues) if v == index]

    cvpr, iccv = papers("CVPR"), papers("ICCV")
    key = sc.AI_TOPICS["computer vision"][0]
    rate = [np.mean([doc.count(key) for doc in group]) for group in (cvpr, iccv)]
    assert rate[0] == pytest.approx(rate[1], rel=0.2)
    own = ai_corpus.venue_phrases[ai_corpus.venue_like.index("CVPR")]["computer vision"]
    sibling = {(a, b) for p in ai_corpus.venue_phrases[ai_corpus.venue_like.index("ICCV")]["computer vision"]
               for a, b in zip(p, p[1:])}
    pair = next((a, b) for p in own for a, b in zip(p, p[1:]) if (a, b) not in sibling)

    def pair_rate(group):
        return np.mean([sum(d[i:i + 2] == list(pair) for i in range(len(d) - 1)) for d in group])

    assert pair_rate(cvpr) > 4 * pair_rate(iccv)
    # rare synonyms stand where the word stands, each much rarer than the word
    words = [w for doc in cvpr for w in doc]
    synonym = sc.synonyms(key, 3)[0]
    assert 0 < words.count(synonym) < words.count(key) / 3


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="field must be one of"):
        sc.default_config("physics", 100)
    with pytest.raises(ValueError, match="must be at least min_papers"):
        sc.default_config("ai", 100, min_papers=30)
    with pytest.raises(ValueError, match="phrase_rate must lie in"):
        sc.default_config("ai", 1000, phrase_rate=1.5)
    with pytest.raises(ValueError, match="phrase_words must lie in"):
        sc.default_config("medicine", 1000, phrase_words=11)

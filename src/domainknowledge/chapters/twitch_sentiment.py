"""Experiment drivers of the Twitch sentiment chapter (Kobs 2023, Ch. 15): weak labels from lexica, and a
TextCNN trained on them with input masking.

The chapter runs, through the same code at every profile:

1. the lexicon labellers and baselines of Table 15.2 on the evaluation set (:func:`baseline_predictions`,
   :func:`expected_baseline_scores`, :func:`method_table`);
2. the lexicon ablation of Table 15.3 (:func:`lexicon_ablation`);
3. the weakly supervised TextCNN of Sec. 15.1.2: Word2Vec trained on the unlabelled corpus, the TextCNN
   initialised with it ("cnn-nonstatic"), trained on the distribution labeller's weak labels (soft targets
   for messages without signal tokens), with and without 50 % input masking of signal tokens, several seeds
   (:func:`prepare_corpus`, :func:`train_weak_label_cnn`, :func:`run_cnn_experiment`);
4. the analysis of Sec. 15.4.2: predicted class counts (Table 15.4), confusion counts on messages with
   signal tokens (Table 15.5), what the CNN does with messages without signal tokens, and Yeh's randomized
   test (:func:`prediction_counts`, :func:`signal_confusions`, :func:`no_signal_behaviour`);
5. a sweep the thesis did not run: how strongly sentiment words outside every lexicon are tied to the
   true sentiment (the generator's ``hidden_strength``), and whether masking then helps messages without
   signal tokens (:func:`hidden_strength_sweep`).

Class indices: 0 negative, 1 neutral, 2 positive (``weak_labels.CLASSES``).
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from domainknowledge import metrics
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.data.synthetic import twitch_chat
from domainknowledge.models.text import train_word2vec
from domainknowledge.models.text_cnn import PADDING_INDEX, TextCNN, Vocabulary, mask_tokens, pad_masks
from domainknowledge.principles import weak_labels
from domainknowledge.significance import randomized_matched_pair_test

__all__ = ["CONFIGS", "LEXICON_COMBINATIONS", "SOURCES", "ChatTask", "Config", "combined_lexicon", "PreparedCorpus", "TrainedCNN",
           "baseline_predictions", "classification_scores", "describe_profiles",
           "example_messages", "expected_baseline_scores", "labeller_disagreement", "variant_evidence", "hidden_strength_sweep", "labeller_row", "lexicon_ablation", "lexicon_summary", "load_task", "method_table",
           "hide_signal_tokens", "no_signal_behaviour", "predict", "prediction_counts", "prepare_corpus", "run_cnn_experiment",
           "scores_from_confusion", "signal_confusions", "soft_cross_entropy", "sweep_skip_reason", "TokenTensors", "train_weak_label_cnn",
           "yeh_p_value"]

SOURCES = ("stand-in", "twitch")
NUM_CLASSES = 3
# Table 15.3's rows, in the thesis' order.
LEXICON_COMBINATIONS = (("emoji",), ("vader",), ("emoji", "vader"), ("emote",), ("emote", "emoji"),
                        ("emote", "vader"), ("emote", "emoji", "vader"))


@dataclass(frozen=True)
class Config:
    """What one profile of the Twitch chapter runs. Every field is shown on the chapter page.

    Data: ``source`` (``stand-in`` generator or the real ``twitch`` files), ``corpus_messages`` (unlabelled
    messages to weakly label and train on), ``validation_fraction`` (of them, held out for early stopping;
    about 20 % in the thesis). Word2Vec: ``word2vec_dimension``, ``min_count`` (rarer tokens get a zero
    vector; 100 in the thesis), ``word2vec_epochs``. TextCNN: ``max_length`` (tokens kept per message),
    ``num_filters`` per height (182), ``dropout`` (0.27), ``batch_size`` (2,816), ``learning_rate``,
    ``validate_every`` batches (500) with early stopping after ``patience`` (5) validations without
    improvement, at most ``max_epochs``; ``masking_probability`` (0.5). ``runs``: seeds per CNN variant.
    Sweep: ``hidden_strengths`` and ``sweep_corpus_messages``. ``randomization_iterations`` of Yeh's test.
    """

    source: str
    corpus_messages: int
    validation_fraction: float
    word2vec_dimension: int
    min_count: int
    word2vec_epochs: int
    max_length: int
    num_filters: int
    dropout: float
    batch_size: int
    learning_rate: float
    validate_every: int
    patience: int
    max_epochs: int
    masking_probability: float
    runs: int
    hidden_strengths: tuple[float, ...]
    sweep_corpus_messages: int
    randomization_iterations: int

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not 0 <= self.masking_probability <= 1:
            raise ValueError(f"masking_probability must be in [0, 1], got {self.masking_probability}")
        if any(not 0 <= s <= 1 for s in self.hidden_strengths):
            raise ValueError(f"hidden_strengths must lie in [0, 1], got {self.hidden_strengths}")
        for name in ("corpus_messages", "word2vec_dimension", "min_count", "word2vec_epochs", "max_length",
                     "num_filters", "batch_size", "validate_every", "patience", "max_epochs", "runs",
                     "sweep_corpus_messages", "randomization_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


CONFIGS: dict[str, Config] = {
    "smoke": Config(source="stand-in", corpus_messages=3_000, validation_fraction=0.2, word2vec_dimension=16,
                    min_count=2, word2vec_epochs=2, max_length=20, num_filters=16, dropout=0.27, batch_size=128,
                    learning_rate=2e-3, validate_every=10, patience=5, max_epochs=1, masking_probability=0.5,
                    runs=1, hidden_strengths=(0.0, 1.0), sweep_corpus_messages=1_500,
                    randomization_iterations=200),
    "cpu": Config(source="stand-in", corpus_messages=32_000, validation_fraction=0.2, word2vec_dimension=48,
                  min_count=5, word2vec_epochs=5, max_length=20, num_filters=48, dropout=0.27, batch_size=256,
                  learning_rate=3e-3, validate_every=40, patience=5, max_epochs=10, masking_probability=0.5,
                  runs=3, hidden_strengths=(0.0, 0.5, 1.0), sweep_corpus_messages=16_000,
                  randomization_iterations=5_000),
    "paper": Config(source="twitch", corpus_messages=20_000_000, validation_fraction=0.2, word2vec_dimension=300,
                    min_count=100, word2vec_epochs=5, max_length=64, num_filters=182, dropout=0.27,
                    batch_size=2816, learning_rate=1e-3, validate_every=500, patience=5, max_epochs=20,
                    masking_probability=0.5, runs=5, hidden_strengths=(0.0, 0.4, 0.8, 1.0),
                    sweep_corpus_messages=1_000_000, randomization_iterations=10_000),
}


def describe_profiles(configs: Mapping[str, Config] | None = None) -> pd.DataFrame:
    """A table of every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatTask:
    """The unlabelled ``corpus`` (N strings), the evaluation set (``gold_texts``, ``gold_labels`` ``(M,)``
    int64), the three ``lexica`` by name (emote, emoji, vader), their combination ``lexicon`` in the
    thesis' precedence, and the ``emote_survey`` votes the emote lexicon was built from (empty for the
    published lexica, which give shares, not votes). For the stand-in, ``corpus_labels`` ``(N,)`` are the
    generator's true labels (for analysis only, never for training) and ``simulated_emotes`` the survey rows
    that were simulated rather than printed in Table 15.1."""

    source: str
    corpus: list[str]
    gold_texts: list[str]
    gold_labels: np.ndarray
    lexica: Mapping[str, weak_labels.Lexicon]
    emote_survey: Mapping[str, tuple[int, ...]]
    simulated_emotes: tuple[str, ...]
    corpus_labels: np.ndarray | None

    @property
    def is_stand_in(self) -> bool:
        return self.source == "stand-in"

    @property
    def lexicon(self) -> weak_labels.Lexicon:
        """All three lexica combined, emote > emoji > VADER (Sec. 15.1.1)."""
        return combined_lexicon(self, weak_labels.PRECEDENCE)


def combined_lexicon(task: ChatTask, names: Sequence[str]) -> weak_labels.Lexicon:
    """The lexica ``names`` of ``task`` combined in the thesis' precedence (a row of Table 15.3). Cached
    per task, so repeated calls share one lexicon."""
    key = tuple(name for name in weak_labels.PRECEDENCE if name in names)
    cache = task.__dict__.setdefault("_combined", {})
    if key not in cache:
        cache[key] = weak_labels.combine_lexica(*(task.lexica[name] for name in key))
    return cache[key]


def load_task(config: Config, *, seed: int, data_root=None, corpus_messages: int | None = None,
              chat_config: twitch_chat.ChatConfig | None = None) -> ChatTask:
    """The corpus, evaluation set and lexica of ``config.source``.

    Stand-in: ``corpus_messages`` (default ``config.corpus_messages``) generated messages with ``seed``, the
    1,922-message gold set with ``seed + 1`` (:func:`twitch_chat.make_gold_set`), VADER and the emoji table
    from their packages, and the emote lexicon of the survey: Table 15.1's 11 printed rows plus simulated
    votes (seed ``seed + 2``, :func:`twitch_chat.simulated_emote_survey`) for the surveyed emotes the
    thesis does not print. The generator's hidden emotes ("Sadge", "KEKW", ...) stand for the emotes outside
    the thesis' top-100 survey and are in no lexicon. Twitch: the published evaluation set, lexica and
    unlabelled months of :mod:`domainknowledge.data.real.twitch` under ``data_root``.
    """
    size = config.corpus_messages if corpus_messages is None else corpus_messages
    if config.source == "stand-in":
        simulated = twitch_chat.simulated_emote_survey(seed=seed + 2)
        survey = {**weak_labels.EMOTE_SURVEY_TABLE_15_1, **simulated}
        corpus = twitch_chat.make_twitch_chat(size, seed=seed, config=chat_config)
        gold = twitch_chat.make_gold_set(seed=seed + 1, config=chat_config)
        lexica = {"emote": weak_labels.load_emote_lexicon(survey), "emoji": weak_labels.load_emoji_lexicon(),
                  "vader": weak_labels.load_vader_lexicon()}
        return ChatTask("stand-in", corpus.texts, gold.texts, gold.labels, lexica, survey, tuple(simulated),
                        corpus.labels)
    from domainknowledge.data.real import twitch

    texts, labels = twitch.load_labelled_messages(data_root)
    lexica = twitch.load_lexica(data_root)
    corpus = twitch.load_unlabelled_messages(data_root, limit=size)
    return ChatTask("twitch", corpus, texts, labels, lexica, {}, (), None)


def lexicon_summary(task: ChatTask) -> pd.DataFrame:
    """Entries per lexicon after precedence (emote > emoji > VADER) and where they come from."""
    sources = pd.Series(task.lexicon.sources).value_counts()
    if task.is_stand_in:
        printed = len(set(task.emote_survey) - set(task.simulated_emotes))
        origin = {"emote": f"{printed} survey rows of Table 15.1" + (f" + {len(task.simulated_emotes)} simulated"
                                                                        if task.simulated_emotes else ""),
                  "emoji": "Kralj Novak et al. (2015), emojis with at least 50 occurrences",
                  "vader": "Hutto and Gilbert (2014), ten ratings per token grouped into three classes"}
    else:
        origin = {name: f"published lexica/{name}_distribution.tsv and {name}_average.tsv "
                        f"({len(task.lexica[name])} entries)" for name in weak_labels.PRECEDENCE}
    return pd.DataFrame({"entries": [int(sources.get(name, 0)) for name in weak_labels.PRECEDENCE],
                         "source": [origin[name] for name in weak_labels.PRECEDENCE]},
                        index=pd.Index(weak_labels.PRECEDENCE, name="lexicon"))


def example_messages(task: ChatTask, count: int, *, seed: int) -> pd.DataFrame:
    """``count`` evaluation messages drawn with ``seed``: text, true label, the signal tokens with their
    lexicon, and both labellers' weak labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in rng.choice(len(task.gold_texts), size=min(count, len(task.gold_texts)), replace=False):
        text = task.gold_texts[index]
        tokens = weak_labels.tokenize(text, task.lexicon.emotes)
        found = weak_labels.signal_tokens(tokens, task.lexicon)
        rows.append({"message": text, "true": weak_labels.CLASSES[task.gold_labels[index]],
                     "signal tokens": ", ".join(f"{t} ({task.lexicon.source(t)})" for t in found) or "none",
                     "distribution": weak_labels.CLASSES[weak_labels.distribution_label(tokens, task.lexicon)],
                     "average": weak_labels.CLASSES[weak_labels.average_label(tokens, task.lexicon)]})
    return pd.DataFrame(rows)


# --- scores --------------------------------------------------------------------------------------------


def scores_from_confusion(confusion) -> dict[str, float]:
    """Accuracy, Macro Recall and Macro F1 (Eqs. 2.17-2.21) of a ``(3, 3)`` confusion matrix (counts or
    expected counts)."""
    matrix = np.asarray(confusion, dtype=np.float64)
    return {"accuracy": float(np.trace(matrix) / matrix.sum()),
            "macro_recall": float(metrics.recall_per_class(matrix).mean()),
            "macro_f1": float(metrics.f1_per_class(matrix).mean())}


def classification_scores(predictions, labels) -> dict[str, float]:
    """:func:`scores_from_confusion` of predicted against true class indices (all three classes count)."""
    return scores_from_confusion(metrics.confusion_counts(predictions, labels, NUM_CLASSES))


def expected_baseline_scores(labels) -> dict[str, dict[str, float]]:
    """The expected scores of the three input-blind baselines of Table 15.2 on ``labels``: uniform guessing,
    sampling from the label distribution, and always predicting the majority class."""
    counts = np.bincount(np.asarray(labels), minlength=NUM_CLASSES)
    prior = counts / counts.sum()
    majority = np.eye(NUM_CLASSES)[int(np.argmax(counts))]
    return {name: scores_from_confusion(metrics.expected_confusion(counts, distribution))
            for name, distribution in (("random (uniform)", np.full(NUM_CLASSES, 1 / NUM_CLASSES)),
                                       ("random (label distribution)", prior),
                                       (f"majority ({weak_labels.CLASSES[int(np.argmax(counts))]})", majority))}


def baseline_predictions(task: ChatTask) -> dict[str, np.ndarray]:
    """Predicted classes ``(M,)`` on the evaluation set of NLTK VADER and the two lexicon labellers."""
    return {"NLTK VADER": weak_labels.nltk_vader_labels(task.gold_texts),
            "average-based lexicon": weak_labels.average_labels(task.gold_texts, task.lexicon),
            "distribution-based lexicon": weak_labels.distribution_labels(task.gold_texts, task.lexicon)}


def method_table(labels, predictions: Mapping[str, np.ndarray],
                 expected: Mapping[str, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """Table 15.2: Accuracy, Macro Recall and Macro F1 (in %) per method; ``expected`` rows first."""
    rows = dict(expected or {})
    rows.update({name: classification_scores(predicted, labels) for name, predicted in predictions.items()})
    table = pd.DataFrame(rows).T * 100
    table.index.name = "method"
    return table


def yeh_p_value(predictions_a, predictions_b, labels, *, iterations: int, seed: int = 0) -> float:
    """Yeh's randomized matched-pair test on Macro F1 between two classifiers (Sec. 15.4.2)."""
    return randomized_matched_pair_test(
        predictions_a, predictions_b, labels,
        lambda predicted, target: metrics.macro_f1(predicted, target, NUM_CLASSES),
        iterations=iterations, seed=seed)


def lexicon_ablation(task: ChatTask) -> pd.DataFrame:
    """Table 15.3: for each combination of lexica, both labellers' scores (in %) on the evaluation set and
    the share of messages with at least one signal token."""
    rows = []
    for names in LEXICON_COMBINATIONS:
        lexicon = combined_lexicon(task, names)
        tokens = [weak_labels.tokenize(text, lexicon.emotes) for text in task.gold_texts]
        coverage = np.mean([bool(weak_labels.signal_tokens(t, lexicon)) for t in tokens])
        for labeller, label in (("average", weak_labels.average_labels), ("distribution", weak_labels.distribution_labels)):
            scores = classification_scores(label(tokens, lexicon), task.gold_labels)
            rows.append({"lexica": " + ".join(name.capitalize() if name != "vader" else "VADER" for name in names),
                         "labeller": labeller, **{k: 100 * v for k, v in scores.items()},
                         "signal_share": 100 * coverage})
    return pd.DataFrame(rows)


# --- the stand-in's ingredients (positive controls) -------------------------------------------------------


def labeller_disagreement(texts: Sequence[str], labels, lexicon: weak_labels.Lexicon) -> dict[str, float]:
    """Where the average and the distribution labeller disagree, on messages with known true ``labels``
    ``(N,)``: the share of messages with lexicon tokens on which they disagree (%), how often each is right
    there (%), and the exact McNemar p-value of the distribution labeller being more accurate (one-sided;
    only the disagreements count)."""
    from domainknowledge.significance import exact_mcnemar_test

    labels = np.asarray(labels)
    tokens = [weak_labels.tokenize(text, lexicon.emotes) for text in texts]
    has_signal = np.array([bool(weak_labels.signal_tokens(t, lexicon)) for t in tokens])
    average = weak_labels.average_labels(tokens, lexicon)
    distribution = weak_labels.distribution_labels(tokens, lexicon)
    differ = average != distribution
    return {"messages": int(len(labels)),
            "disagree_percent": 100 * float(differ[has_signal].mean()) if has_signal.any() else float("nan"),
            "distribution_right_percent": 100 * float((distribution[differ] == labels[differ]).mean()) if differ.any() else float("nan"),
            "average_right_percent": 100 * float((average[differ] == labels[differ]).mean()) if differ.any() else float("nan"),
            "p_distribution_better": exact_mcnemar_test(distribution == labels, average == labels)}


def variant_evidence(texts: Sequence[str], labels, lexicon: weak_labels.Lexicon) -> dict[str, float]:
    """Whether the emote variants (:data:`twitch_chat.EMOTE_VARIANTS`) carry sentiment beyond the lexicon:
    on messages with known true ``labels`` that have a variant but no lexicon token, the accuracy (%) of
    labelling each by the lexicon class of its variants' emotes (majority over the message's variants)
    against the labeller's default "neutral" there, with the exact McNemar p-value of the former being
    more accurate."""
    from domainknowledge.significance import exact_mcnemar_test

    emote_of = {variant: emote for emote, variant in twitch_chat.EMOTE_VARIANTS.items()}
    labels, guesses, truth = np.asarray(labels), [], []
    for text, label in zip(texts, labels):
        tokens = weak_labels.tokenize(text, lexicon.emotes)
        variants = [emote_of[t] for t in tokens if t in emote_of and emote_of[t] in lexicon]
        if not variants or weak_labels.signal_tokens(tokens, lexicon):
            continue
        votes = np.bincount([int(np.argmax(lexicon.distribution(e))) for e in variants], minlength=NUM_CLASSES)
        guesses.append(int(np.argmax(votes)))
        truth.append(int(label))
    guesses, truth = np.asarray(guesses, dtype=np.int64), np.asarray(truth, dtype=np.int64)
    if not len(truth):
        return {"messages": 0, "variant_accuracy": float("nan"), "neutral_accuracy": float("nan"), "p_variants_better": 1.0}
    return {"messages": int(len(truth)), "variant_accuracy": 100 * float((guesses == truth).mean()),
            "neutral_accuracy": 100 * float((truth == weak_labels.NEUTRAL).mean()),
            "p_variants_better": exact_mcnemar_test(guesses == truth, truth == weak_labels.NEUTRAL)}


# --- the weakly supervised TextCNN (Sec. 15.1.2) -------------------------------------------------------


@dataclass(frozen=True)
class TokenTensors:
    """Encoded messages: ``ids`` ``(N, L)`` int64, ``signal`` ``(N, L)`` bool (lexicon tokens), and
    ``targets`` ``(N, 3)`` float32 weak-label targets or ``labels`` ``(N,)`` int64 true classes."""

    ids: torch.Tensor
    signal: torch.Tensor
    targets: torch.Tensor | None = None
    labels: np.ndarray | None = None

    @property
    def has_signal(self) -> np.ndarray:
        """``(N,)`` bool: the message has at least one signal token (within ``max_length``)."""
        return self.signal.any(dim=1).numpy()


@dataclass(frozen=True)
class PreparedCorpus:
    """What every CNN run of one corpus shares: the vocabulary and its Word2Vec initialisation ``(V, D)``,
    the weakly labelled train and validation splits, the encoded evaluation set, and (stand-in only) how
    often the corpus' weak labels of messages with signal tokens agree with the generator's truth."""

    vocabulary: Vocabulary
    embeddings: np.ndarray
    train: TokenTensors
    validation: TokenTensors
    gold: TokenTensors
    weak_label_agreement: float | None
    word2vec_tokens: int


def _encode(token_lists, lexicon, vocabulary: Vocabulary, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = vocabulary.encode(token_lists, max_length)
    signal = pad_masks((weak_labels.signal_mask(tokens, lexicon) for tokens in token_lists), max_length)
    return ids, signal


def prepare_corpus(task: ChatTask, config: Config, *, seed: int) -> PreparedCorpus:
    """Tokenise (Sec. 15.1.1), weakly label (Eq. 15.11, soft targets without signal), train Word2Vec on the
    corpus, build the vocabulary of tokens seen ``min_count`` times, and split off the validation set."""
    lexicon = task.lexicon
    corpus_tokens = [weak_labels.tokenize(text, lexicon.emotes) for text in task.corpus]
    gold_tokens = [weak_labels.tokenize(text, lexicon.emotes) for text in task.gold_texts]
    targets = torch.from_numpy(weak_labels.weak_label_targets(corpus_tokens, lexicon))
    most_frequent = max(Counter(itertools.chain.from_iterable(corpus_tokens)).values(), default=0)
    if most_frequent < config.min_count:
        raise ValueError(f"no token occurs min_count = {config.min_count} times in the {len(corpus_tokens):,} corpus "
                         f"messages (the most frequent occurs {most_frequent} times): the corpus is too small for "
                         "this profile's Word2Vec vocabulary; give more unlabelled messages or lower min_count")
    vectors = train_word2vec(corpus_tokens, dimension=config.word2vec_dimension, min_count=config.min_count,
                             epochs=config.word2vec_epochs, seed=seed)
    vocabulary = Vocabulary.build(corpus_tokens, min_count=config.min_count)
    embeddings = vocabulary.embedding_matrix(vectors, config.word2vec_dimension)
    ids, signal = _encode(corpus_tokens, lexicon, vocabulary, config.max_length)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(corpus_tokens)))
    held_out = max(1, int(round(config.validation_fraction * len(corpus_tokens))))
    validation, train = order[:held_out], order[held_out:]
    gold_ids, gold_signal = _encode(gold_tokens, lexicon, vocabulary, config.max_length)
    agreement = None
    if task.corpus_labels is not None:
        has_signal = targets.max(dim=1).values == 1
        weak = targets.argmax(dim=1).numpy()
        agreement = float((weak[has_signal.numpy()] == task.corpus_labels[has_signal.numpy()]).mean())
    return PreparedCorpus(
        vocabulary, embeddings,
        TokenTensors(ids[train], signal[train], targets[train]),
        TokenTensors(ids[validation], signal[validation], targets[validation]),
        TokenTensors(gold_ids, gold_signal, labels=np.asarray(task.gold_labels)),
        agreement, len(vectors))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``mean_i -sum_c targets[i, c] log softmax(logits[i])_c``: cross-entropy against target distributions
    ``(B, 3)``, the one-hot weak labels and the 25/50/25 % target of Sec. 15.1.2."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@dataclass
class TrainedCNN:
    """A trained TextCNN (the state with the lowest validation loss) and its validation curve:
    ``history`` has one row per validation (``step`` in batches, ``epoch``, ``validation_loss``)."""

    model: TextCNN
    masking_probability: float
    seed: int
    history: pd.DataFrame
    best_step: int
    seconds: float


def _batched_logits(model: TextCNN, ids: torch.Tensor, device, batch_size: int = 4096) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        chunks = [model(ids[i:i + batch_size].to(device), (ids[i:i + batch_size] != PADDING_INDEX).to(device)).cpu()
                  for i in range(0, ids.shape[0], batch_size)]
    return torch.cat(chunks)


def _validation_loss(model: TextCNN, data: TokenTensors, device) -> float:
    return float(soft_cross_entropy(_batched_logits(model, data.ids, device), data.targets))


def train_weak_label_cnn(prepared: PreparedCorpus, config: Config, *, masking_probability: float, seed: int,
                         device="cpu", progress: bool = False) -> TrainedCNN:
    """Train the TextCNN of Sec. 15.1.2 on the weak labels.

    "cnn-nonstatic": the embedding starts from the corpus' Word2Vec vectors and is trained. Each training
    batch hides every signal token with ``masking_probability`` (:func:`mask_tokens`: a zero vector at its
    position). Adam on :func:`soft_cross_entropy`; every ``validate_every`` batches the loss on the
    (unmasked) validation split is computed, and training stops after ``patience`` validations without
    improvement or ``max_epochs`` epochs, keeping the state with the lowest validation loss (Sec. 15.2).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = TextCNN(len(prepared.vocabulary), NUM_CLASSES, embeddings=prepared.embeddings,
                    num_filters=config.num_filters, dropout=config.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    train, started = prepared.train, time.perf_counter()
    best_loss, best_state, best_step, waited, step, history = math.inf, None, 0, 0, 0, []

    def validate(epoch: int) -> bool:
        nonlocal best_loss, best_state, best_step, waited
        loss = _validation_loss(model, prepared.validation, device)
        history.append({"step": step, "epoch": epoch, "validation_loss": loss})
        if loss < best_loss - 1e-7:
            best_loss, best_state, best_step, waited = loss, copy.deepcopy(model.state_dict()), step, 0
        else:
            waited += 1
        model.train()
        return waited >= config.patience

    stop = False
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(train.ids.shape[0], generator=generator)
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            ids = mask_tokens(train.ids[batch], train.signal[batch], masking_probability, generator=generator)
            logits = model(ids.to(device), (ids != PADDING_INDEX).to(device))
            loss = soft_cross_entropy(logits, train.targets[batch].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % config.validate_every == 0 and validate(epoch):
                stop = True
                break
        if progress:
            print(f"  masking {masking_probability:.1f}, seed {seed}: epoch {epoch}, {step} batches, "
                  f"best validation loss {best_loss:.4f}", flush=True)
        if stop:
            break
    if not history or history[-1]["step"] != step:
        validate(epoch)
    model.load_state_dict(best_state)
    model.eval()
    return TrainedCNN(model, masking_probability, seed, pd.DataFrame(history), best_step,
                      time.perf_counter() - started)


def predict(trained: TrainedCNN, data: TokenTensors, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes ``(N,)`` int64 and class probabilities ``(N, 3)`` of the trained CNN."""
    probabilities = F.softmax(_batched_logits(trained.model, data.ids, device), dim=1).numpy()
    return probabilities.argmax(axis=1).astype(np.int64), probabilities


def _subset_accuracy(predicted: np.ndarray, labels: np.ndarray, subset: np.ndarray) -> float:
    return float((predicted[subset] == labels[subset]).mean()) if subset.any() else float("nan")


def hide_signal_tokens(data: TokenTensors) -> TokenTensors:
    """``data`` with every signal (lexicon) token hidden as the training masks it (:func:`mask_tokens` with
    probability 1: a zero vector at its position). What is left of a message with signal tokens is what a
    network can only read through words it learned beside them."""
    return TokenTensors(mask_tokens(data.ids, data.signal, 1.0), torch.zeros_like(data.signal), data.targets,
                        data.labels)


def _evaluation_row(predicted: np.ndarray, gold: TokenTensors,
                    predicted_signal_hidden: np.ndarray | None = None) -> dict[str, float]:
    """Scores in %: accuracy, Macro recall and F1, accuracy on the messages with and without signal tokens,
    the neutral share of those without, and ``accuracy_signal_hidden``: accuracy on the messages with signal
    tokens when those tokens are hidden (``predicted_signal_hidden``, the predictions on
    :func:`hide_signal_tokens` of ``gold``; ``None`` for a labeller, which then sees no signal and says
    "neutral")."""
    has_signal = gold.has_signal
    if predicted_signal_hidden is None:
        predicted_signal_hidden = np.full_like(predicted, weak_labels.NEUTRAL)
    return {**{k: 100 * v for k, v in classification_scores(predicted, gold.labels).items()},
            "accuracy_with_signal": 100 * _subset_accuracy(predicted, gold.labels, has_signal),
            "accuracy_without_signal": 100 * _subset_accuracy(predicted, gold.labels, ~has_signal),
            "neutral_share_without_signal": 100 * float((predicted[~has_signal] == weak_labels.NEUTRAL).mean())
            if (~has_signal).any() else float("nan"),
            "accuracy_signal_hidden": 100 * _subset_accuracy(predicted_signal_hidden, gold.labels, has_signal)}


def run_cnn_experiment(prepared: PreparedCorpus, config: Config, seeds: Sequence[int], *,
                       masking_probabilities: Sequence[float], device="cpu",
                       progress: bool = True) -> tuple[pd.DataFrame, dict[tuple[float, int], np.ndarray]]:
    """Train one CNN per masking probability and seed; return a tidy table (one row per run: the scores of
    :func:`_evaluation_row` in %, with the evaluation messages' signal tokens hidden too, the batches to the best validation loss, seconds) and the evaluation-set
    predictions keyed by ``(masking_probability, seed)``."""
    rows, predictions = [], {}
    for probability in masking_probabilities:
        for seed in seeds:
            trained = train_weak_label_cnn(prepared, config, masking_probability=probability, seed=seed,
                                           device=device, progress=progress)
            predicted, _ = predict(trained, prepared.gold, device)
            predicted_hidden, _ = predict(trained, hide_signal_tokens(prepared.gold), device)
            predictions[(probability, seed)] = predicted
            rows.append({"masking_probability": probability, "seed": seed,
                         **_evaluation_row(predicted, prepared.gold, predicted_hidden),
                         "best_step": trained.best_step, "seconds": trained.seconds})
    return pd.DataFrame(rows), predictions


def labeller_row(predicted: np.ndarray, prepared: PreparedCorpus) -> dict[str, float]:
    """The CNN table's scores for a labeller's predictions (to put the CNN runs in context)."""
    return _evaluation_row(predicted, prepared.gold)


# --- analysis (Sec. 15.4.2) ----------------------------------------------------------------------------


def prediction_counts(labels, predictions: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Table 15.4: how many evaluation messages each classifier puts in each class, under the true counts."""
    rows = {"true sentiment": np.bincount(np.asarray(labels), minlength=NUM_CLASSES)}
    rows.update({name: np.bincount(np.asarray(p), minlength=NUM_CLASSES) for name, p in predictions.items()})
    return pd.DataFrame(rows, index=list(weak_labels.CLASSES)).T


def signal_confusions(labels, has_signal: np.ndarray, predictions: Mapping[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    """Table 15.5: per classifier, the ``(3, 3)`` confusion counts (rows true, columns predicted) on the
    messages with at least one signal token."""
    labels = np.asarray(labels)
    index = [f"{name} ({count})" for name, count in
             zip(weak_labels.CLASSES, np.bincount(labels[has_signal], minlength=NUM_CLASSES))]
    return {name: pd.DataFrame(metrics.confusion_counts(np.asarray(p)[has_signal], labels[has_signal], NUM_CLASSES),
                               index=index, columns=list(weak_labels.CLASSES))
            for name, p in predictions.items()}


def no_signal_behaviour(labels, has_signal: np.ndarray, predictions: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """What each classifier does with the messages without signal tokens: how many it calls neutral, and its
    accuracy there (the lexicon labellers call all of them neutral, Eq. 15.11)."""
    labels, without = np.asarray(labels), ~np.asarray(has_signal)
    rows = {}
    for name, predicted in predictions.items():
        predicted = np.asarray(predicted)
        rows[name] = {"messages": int(without.sum()),
                      "predicted_neutral_percent": 100 * float((predicted[without] == weak_labels.NEUTRAL).mean()),
                      "accuracy_percent": 100 * _subset_accuracy(predicted, labels, without)}
    return pd.DataFrame(rows).T


# --- the hidden-strength sweep -------------------------------------------------------------------------


def sweep_skip_reason(config: Config) -> str | None:
    """Why :func:`hidden_strength_sweep` does not run for ``config``, or ``None`` when it does.

    The sweep turns the stand-in generator's ``hidden_strength`` knob; real chat has no such knob (how
    strongly words outside the lexica carry sentiment is a property of the crawl, not a setting), so on the
    thesis' data (``source='twitch'``, the ``paper`` profile) the sweep is skipped with this reason.
    """
    if config.source == "stand-in":
        return None
    return (f"the hidden-strength sweep turns a knob of the stand-in generator (how strongly words outside "
            f"the lexica follow the true sentiment); the {config.source!r} data have no such knob, so it is "
            "not run on them")


def hidden_strength_sweep(config: Config, *, seed: int, device="cpu", progress: bool = True) -> pd.DataFrame:
    """For each ``hidden_strength`` of the stand-in generator, a fresh corpus and gold set, and one CNN with
    and one without masking: their scores on the evaluation set (:func:`run_cnn_experiment`'s columns, with the
    number of evaluation messages with signal tokens), plus the distribution labeller's.

    ``hidden_strength`` is the probability that a sentiment word outside every lexicon matches the message's
    true sentiment (0: pure noise, 1: always). Masking can only help messages without signal tokens if such
    words exist and co-occur with signal tokens in the weakly labelled corpus.
    """
    reason = sweep_skip_reason(config)
    if reason is not None:
        raise ValueError(f"hidden_strength_sweep needs the stand-in generator (source='stand-in'): {reason}; "
                         "check sweep_skip_reason(config) first")
    rows = []
    for strength in config.hidden_strengths:
        chat_config = twitch_chat.ChatConfig(hidden_strength=strength)
        task = load_task(config, seed=seed, corpus_messages=config.sweep_corpus_messages, chat_config=chat_config)
        prepared = prepare_corpus(task, config, seed=seed)
        labeller = weak_labels.distribution_labels(task.gold_texts, task.lexicon)
        signal_messages = int(prepared.gold.has_signal.sum())
        rows.append({"hidden_strength": strength, "method": "distribution-based lexicon",
                     "messages_with_signal": signal_messages, **labeller_row(labeller, prepared)})
        if progress:
            print(f"hidden strength {strength}:", flush=True)
        runs, _ = run_cnn_experiment(prepared, config, (seed,), masking_probabilities=(0.0, config.masking_probability),
                                     device=device, progress=progress)
        for _, run in runs.iterrows():
            method = "TextCNN, masking" if run["masking_probability"] > 0 else "TextCNN, no masking"
            rows.append({"hidden_strength": strength, "method": method, "messages_with_signal": signal_messages,
                         **{k: run[k] for k in run.index if k not in ("masking_probability", "seed", "best_step", "seconds")}})
    return pd.DataFrame(rows)

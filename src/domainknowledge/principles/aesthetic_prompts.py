"""Image aesthetics from a frozen image-text encoder: prompting and linear probing (Kobs 2023, Ch. 12).

**Adjectives.** The thesis collects the WordNet synonyms of "great" and of "ugly" and adds "beautiful" and
"pretty" to the positive side: 27 positive and 12 negative words (Sec. 12.1.1). It prints only the counts and
the winning words, so :data:`POSITIVE_ADJECTIVES` and :data:`NEGATIVE_ADJECTIVES` are our reconstruction
from the adjective senses of the two words in WordNet 3.0; the counts come out as the thesis states.

**Prompts.** A word ``w`` becomes the *fixed* prompt ``"a w picture"`` (:data:`FIXED_TEMPLATE`), or, for each
content class ``k`` of a list (ImageNet's 1,000 class names in the thesis), the *context-aware* prompt
``"a w picture, of a #k"`` (:data:`CONTEXT_TEMPLATE`). An *ensemble* averages a word's context-aware prompt
embeddings into one vector (normalised again, as CLIP's prompt ensembles are).

**Binary decision.** With a positive word's prompt embeddings ``P (p, D)`` and a negative word's ``Q (q, D)``
(unit rows), an image ``i`` is called aesthetic when its most similar prompt is a positive one,
``max_k cos(i, P_k) >= max_k cos(i, Q_k)``. A tie (both words embed identically, as two words an encoder has
never seen do) counts as aesthetic, so such a pair can do no better and no worse than the majority vote.

**Continuous score** (Eqs. 12.1-12.2): every prompt's cosine similarity to the image, weighted by +1 for a
positive and -1 for a negative prompt,

    score(I) = sum_c cos(i, t_c) * w_c,    w_c = +1 (c positive), -1 (c negative).

**Choosing the pair.** As in the thesis, every (positive, negative) pair is tried on the *training* images and
the best one is kept: by accuracy for the binary task, by Spearman correlation for the continuous one
(:func:`search_adjective_pairs`).

**Linear probing** (Sec. 12.1.2): a linear regression from frozen image features to the mean score, fitted
with the squared error; thresholded at 5 for the binary task. Ours adds a ridge penalty chosen by
cross-validation on the training images (:func:`fit_linear_probe`), because our training sets are smaller
than the feature dimension. :func:`scaled_probe_weights` multiplies each weight by its feature's standard
deviation (Fig. 12.3) and :func:`weight_spread` summarises how many dimensions carry the probe. Both of its
summaries depend on the number of dimensions F (the largest share falls and the effective fraction falls as F
grows), so probes of encoders of different dimension compare only at equal F: :func:`equal_dimension_spread`
projects each encoder's training features onto their first k principal components, refits the probe there and
summarises its scaled weights, which on uncorrelated components split the variance of the predicted score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CONTEXT_TEMPLATE", "FIXED_TEMPLATE", "METHODS", "NEGATIVE_ADJECTIVES", "POSITIVE_ADJECTIVES", "THESIS_BEST_PAIRS",
           "LinearProbe", "best_pair", "binary_from_prompts", "content_class_name", "context_prompts", "ensemble_vector",
           "equal_dimension_spread", "evaluate_prompts", "fit_linear_probe", "fixed_prompt", "principal_projection",
           "prompt_similarities", "prompt_weights", "scaled_probe_weights",
           "search_adjective_pairs", "weight_spread", "weighted_prompt_score"]

# WordNet 3.0: the adjective senses of "great" (large, outstanding, the "very good" slang set, capital letters,
# pregnant) give 25 lemmas; the thesis adds "beautiful" and "pretty".
POSITIVE_ADJECTIVES = (
    "great", "outstanding", "bang-up", "bully", "corking", "cracking", "dandy", "groovy", "keen", "neat", "nifty",
    "not bad", "peachy", "slap-up", "swell", "smashing", "capital", "majuscule", "big", "large", "enceinte",
    "expectant", "gravid", "heavy", "with child", "beautiful", "pretty")
# WordNet 3.0: the adjective senses of "ugly" (unsightly, surly, despicable, frightful).
NEGATIVE_ADJECTIVES = (
    "ugly", "surly", "despicable", "vile", "slimy", "unworthy", "worthless", "wretched", "atrocious", "frightful",
    "horrifying", "horrible")

FIXED_TEMPLATE = "a {} picture"
CONTEXT_TEMPLATE = "a {} picture, of a #{}"

# The pairs chosen on AVA's training images (Sec. 12.2): (method, task) -> (positive, negative).
THESIS_BEST_PAIRS = {
    ("fixed", "binary"): ("outstanding", "atrocious"), ("fixed", "continuous"): ("outstanding", "horrible"),
    ("context", "binary"): ("smashing", "horrible"), ("context", "continuous"): ("outstanding", "horrible"),
    ("ensemble", "binary"): ("outstanding", "horrible"), ("ensemble", "continuous"): ("outstanding", "horrible"),
}
METHODS = ("fixed", "context", "ensemble")


def fixed_prompt(word: str) -> str:
    """``"a <word> picture"`` (the fixed template of Sec. 12.1.1)."""
    return FIXED_TEMPLATE.format(word)


def content_class_name(name: str) -> str:
    """A class name up to its first comma, stripped (the thesis' use of the ImageNet names)."""
    return name.split(",")[0].strip()


def context_prompts(word: str, content_classes: Sequence[str]) -> list[str]:
    """``"a <word> picture, of a #<class>"`` for every content class (``K`` prompts)."""
    if not len(content_classes):
        raise ValueError("context-aware prompts need at least one content class")
    return [CONTEXT_TEMPLATE.format(word, content_class_name(name)) for name in content_classes]


def _unit_rows(array, what: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty (N, D) array, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{what} holds a zero vector; cosine similarity is undefined for it")
    return array / norms


def ensemble_vector(prompt_embeddings) -> np.ndarray:
    """The normalised mean of ``(K, D)`` prompt embeddings (each normalised first): ``(1, D)``."""
    mean = _unit_rows(prompt_embeddings, "prompt embeddings").mean(axis=0, keepdims=True)
    return _unit_rows(mean, "the ensemble mean")


def prompt_weights(positive: int, negative: int) -> np.ndarray:
    """Eq. 12.2: ``(positive + negative,)`` weights, +1 for the positive prompts (first) and -1 for the rest."""
    if positive < 0 or negative < 0 or positive + negative == 0:
        raise ValueError(f"need a non-negative number of prompts on each side and at least one prompt; got "
                         f"{positive} positive and {negative} negative")
    return np.concatenate([np.ones(positive), -np.ones(negative)])


def weighted_prompt_score(image_embeddings, prompt_embeddings, weights) -> np.ndarray:
    """Eq. 12.1: ``score_n = sum_c cos(i_n, t_c) w_c`` for images ``(N, D)``, prompts ``(C, D)``, weights ``(C,)``
    -> ``(N,)``. Inputs need not be normalised; cosine similarity normalises them."""
    images = _unit_rows(image_embeddings, "image embeddings")
    prompts = _unit_rows(prompt_embeddings, "prompt embeddings")
    weights = np.asarray(weights, dtype=np.float64)
    if images.shape[1] != prompts.shape[1]:
        raise ValueError(f"image embeddings have D = {images.shape[1]} but prompts D = {prompts.shape[1]}: "
                         "they must come from the same encoder")
    if weights.shape != (prompts.shape[0],):
        raise ValueError(f"need one weight per prompt: {prompts.shape[0]} prompts, weights of shape {weights.shape}")
    return (images @ prompts.T) @ weights


def binary_from_prompts(image_embeddings, positive_embeddings, negative_embeddings, *, tolerance: float = 1e-6
                        ) -> np.ndarray:
    """Aesthetic (``True``) when an image's most similar prompt is positive: ``(N, D), (p, D), (q, D) -> (N,)``
    bool. Ties within ``tolerance`` count as aesthetic (module docstring)."""
    images = _unit_rows(image_embeddings, "image embeddings")
    positive = _unit_rows(positive_embeddings, "positive prompt embeddings")
    negative = _unit_rows(negative_embeddings, "negative prompt embeddings")
    return (images @ positive.T).max(axis=1) >= (images @ negative.T).max(axis=1) - tolerance


def prompt_similarities(image_embeddings, prompt_embeddings, *, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """For images ``(N, D)`` and one word's prompts ``(K, D)``: the largest cosine similarity of each image to
    the prompts and their sum, ``((N,), (N,))``; images are taken ``chunk`` at a time, so memory holds at most a
    ``(chunk, K)`` block. Every quantity Eq. 12.1 and the binary decision need is built from these two."""
    prompts = _unit_rows(np.atleast_2d(prompt_embeddings), "prompt embeddings")
    images = np.asarray(image_embeddings)
    if images.ndim != 2 or images.shape[1] != prompts.shape[1]:
        raise ValueError(f"image embeddings must be (N, {prompts.shape[1]}) like the prompts, got {images.shape}: "
                         "they must come from the same encoder")
    largest, total = np.empty(len(images)), np.empty(len(images))
    for start in range(0, len(images), chunk):
        similarity = _unit_rows(images[start:start + chunk], "image embeddings") @ prompts.T
        largest[start:start + chunk], total[start:start + chunk] = similarity.max(axis=1), similarity.sum(axis=1)
    return largest, total


def _prompt_metrics(positive: tuple[np.ndarray, np.ndarray], negative: tuple[np.ndarray, np.ndarray], truth,
                    threshold: float, tolerance: float = 1e-6) -> dict[str, float]:
    """The metrics of :func:`evaluate_prompts` from :func:`prompt_similarities` of the positive and the negative
    prompts: the binary decision compares the largest similarities, Eq. 12.1 subtracts the sums."""
    from scipy import stats

    predicted = positive[0] >= negative[0] - tolerance
    if truth.shape != predicted.shape:
        raise ValueError(f"{predicted.shape[0]} images but {truth.shape} scores")
    score = positive[1] - negative[1]
    constant = np.ptp(score) < 1e-9
    return {"accuracy": float(np.mean(predicted == (truth > threshold))),
            "spearman": 0.0 if constant else float(stats.spearmanr(score, truth)[0]),
            "pearson": 0.0 if constant else float(stats.pearsonr(score, truth)[0])}


def evaluate_prompts(image_embeddings, mean_scores, positive_embeddings, negative_embeddings, *,
                     threshold: float = 5.0) -> dict[str, float]:
    """Accuracy of the binary decision (:func:`binary_from_prompts`) against ``mean_scores > threshold`` and
    Spearman and Pearson correlations of the Eq. 12.1 score (:func:`weighted_prompt_score` with
    :func:`prompt_weights`) with ``mean_scores`` ``(N,)`` (0 for a constant score, where they are undefined)."""
    truth = np.asarray(mean_scores, dtype=np.float64)
    return _prompt_metrics(prompt_similarities(image_embeddings, positive_embeddings),
                           prompt_similarities(image_embeddings, negative_embeddings), truth, threshold)


def search_adjective_pairs(image_embeddings, mean_scores, word_embeddings: Mapping[str, np.ndarray],
                           positive_words: Sequence[str] = POSITIVE_ADJECTIVES,
                           negative_words: Sequence[str] = NEGATIVE_ADJECTIVES) -> pd.DataFrame:
    """Every (positive, negative) pair evaluated on (training) images: one row per pair with ``accuracy``,
    ``spearman`` and ``pearson`` (:func:`evaluate_prompts`), sorted by neither. ``word_embeddings[w]`` holds the
    ``(K, D)`` prompt embeddings of word ``w`` for the method at hand (``K = 1`` for fixed and ensemble prompts).
    The image-prompt similarities are computed once per word, not once per pair."""
    missing = [w for w in (*positive_words, *negative_words) if w not in word_embeddings]
    if missing:
        raise ValueError(f"no prompt embeddings for the word(s) {missing}")
    truth = np.asarray(mean_scores, dtype=np.float64)
    similarities = {w: prompt_similarities(image_embeddings, word_embeddings[w])
                    for w in dict.fromkeys((*positive_words, *negative_words))}
    return pd.DataFrame([{"positive": positive, "negative": negative,
                          **_prompt_metrics(similarities[positive], similarities[negative], truth, 5.0)}
                         for positive in positive_words for negative in negative_words])


def best_pair(search: pd.DataFrame, task: str) -> tuple[str, str]:
    """The pair of a :func:`search_adjective_pairs` table with the best ``accuracy`` (``task="binary"``) or
    ``spearman`` (``"continuous"``); the first in table order among equals."""
    column = {"binary": "accuracy", "continuous": "spearman"}.get(task)
    if column is None:
        raise ValueError(f"task must be 'binary' or 'continuous', got {task!r}")
    row = search.loc[search[column].idxmax()]
    return str(row["positive"]), str(row["negative"])


@dataclass(frozen=True)
class LinearProbe:
    """A fitted linear regression ``score = features @ coef + intercept``: ``coef (F,)``, the ridge ``alpha``
    chosen by cross-validation, and the training features' standard deviations ``feature_std (F,)``."""

    coef: np.ndarray
    intercept: float
    alpha: float
    feature_std: np.ndarray

    def predict(self, features) -> np.ndarray:
        """Predicted mean scores ``(N,)`` for features ``(N, F)``."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.coef.shape[0]:
            raise ValueError(f"features must be (N, {self.coef.shape[0]}), got {features.shape}")
        return features @ self.coef + self.intercept


def fit_linear_probe(features, scores, alphas: Sequence[float] = tuple(10.0 ** np.arange(-4, 5)),
                     folds: int = 5) -> LinearProbe:
    """Fit a linear regression (MSE) from features ``(N, F)`` to scores ``(N,)``, with the ridge penalty of
    ``alphas`` that has the lowest ``folds``-fold cross-validated squared error (ties: the smaller alpha)."""
    from sklearn.linear_model import RidgeCV

    features = np.asarray(features, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if features.ndim != 2 or scores.shape != (features.shape[0],):
        raise ValueError(f"need features (N, F) and scores (N,), got {features.shape} and {scores.shape}")
    if features.shape[0] < max(folds, 3):
        raise ValueError(f"need at least {max(folds, 3)} training examples, got {features.shape[0]}")
    model = RidgeCV(alphas=tuple(alphas), cv=folds).fit(features, scores)
    return LinearProbe(coef=model.coef_.astype(np.float64), intercept=float(model.intercept_), alpha=float(model.alpha_),
                       feature_std=features.std(axis=0))


def scaled_probe_weights(probe: LinearProbe) -> np.ndarray:
    """Fig. 12.3: each weight times its feature's standard deviation, ``(F,)`` (the change of the predicted score
    for a one-standard-deviation change of the feature)."""
    return probe.coef * probe.feature_std


def weight_spread(scaled_weights) -> dict[str, float]:
    """How many dimensions carry a probe, from its scaled weights ``(F,)``: ``top_share`` (the largest
    ``|w|`` over ``sum |w|``), ``effective_dimensions`` (the participation ratio ``(sum |w|)^2 / sum w^2``, 1 for
    one dimension and ``F`` for equal weights), ``effective_fraction`` (that over ``F``) and ``dimensions_for_half``
    (the fewest dimensions whose ``|w|`` make up half of ``sum |w|``)."""
    weights = np.abs(np.asarray(scaled_weights, dtype=np.float64).ravel())
    if weights.size == 0 or weights.sum() == 0:
        raise ValueError("the weights must hold at least one non-zero value")
    total = weights.sum()
    ordered = np.sort(weights)[::-1]
    effective = total ** 2 / np.sum(weights ** 2)
    return {"top_share": float(ordered[0] / total), "effective_dimensions": float(effective),
            "effective_fraction": float(effective / weights.size),
            "dimensions_for_half": int(np.searchsorted(np.cumsum(ordered), 0.5 * total - 1e-12) + 1)}


def equal_dimension_spread(features, scores, dimensions: int) -> dict[str, float]:
    """:func:`weight_spread` of a probe refitted on the first ``dimensions`` principal components of the (training)
    features ``(N, F)``, so that encoders of different F compare at one dimension k (both of its summaries
    depend on the number of dimensions). The components are uncorrelated, so the squared scaled weights
    ``(w_j sd_j)^2`` add up to the variance of the predicted score: the spread says over how many independent
    directions of the features the probe draws its prediction. Returns the spread with ``dimensions`` and the
    share of the features' variance the k components keep (``variance_kept``)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (N, F), got {features.shape}")
    if not 1 <= dimensions <= min(features.shape[1], features.shape[0] - 1):
        raise ValueError(f"dimensions must lie in 1..min(F, N - 1) = {min(features.shape[1], features.shape[0] - 1)}, "
                         f"got {dimensions}")
    project, variance_kept = principal_projection(features, dimensions)
    probe = fit_linear_probe(project(features), scores)
    spread = weight_spread(scaled_probe_weights(probe))
    return {**spread, "dimensions": int(dimensions), "variance_kept": variance_kept}


def principal_projection(train_features, dimensions: int):
    """``(project, variance_kept)``: ``project(features (N, F)) -> (N, dimensions)`` onto the first ``dimensions``
    principal components of ``train_features`` ``(M, F)`` (centred by their mean), and the share of their
    variance those components keep."""
    train_features = np.asarray(train_features, dtype=np.float64)
    mean = train_features.mean(axis=0)
    _, singular, components = np.linalg.svd(train_features - mean, full_matrices=False)
    variance = singular ** 2
    basis = components[:dimensions].T
    return (lambda features: (np.asarray(features, dtype=np.float64) - mean) @ basis,
            float(variance[:dimensions].sum() / variance.sum()))

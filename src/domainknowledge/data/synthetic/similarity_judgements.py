"""Simulated human similarity judgements: the stand-in for ImageNet-HSJ, Birds-16 and BAPPS-2AFC.

Margaritescu (2024, Ch. 4) evaluates feature extractors on triplets derived from three human-judgement
data sets that cannot be had offline. This module simulates the people who produced them.

**Full images (ImageNet-HSJ-like, Birds-16-like).** Images come from the captioned world of
:mod:`domainknowledge.data.synthetic.captioned_world`, whose generating factors are known. An observer
holds a *psychological embedding* of those factors (the idea behind the PsiZ embeddings of Roads and Love
2021): each categorical factor ``f`` becomes a one-hot vector scaled by ``w_f / sqrt(2)`` (two different
values are ``w_f`` apart) and each continuous one (object radius, exposure) a coordinate scaled so that its
range spans ``w_f``. The weights :data:`OBSERVER_WEIGHTS` put shape first (the human shape bias), then
colour, then texture and size; pose, background and the photographic factors count little. Each observer
jitters every weight by a log-normal factor ``exp(sigma * N(0, 1))`` (``sigma`` =
``observer_jitter``), so observers disagree. Similarity is ``s(q, r) = exp(-beta * ||z_q - z_r||)`` and
choices follow the (ranked) Luce rule:

* an **8-rank-2 trial** shows a query and 8 references; the first pick is reference ``a`` with probability
  ``s_a / sum_r s_r``, the second ``b`` among the remaining 7 with ``s_b / sum_{r != a} s_r``;
* a **2-rank-1 trial** shows a query and 2 references; the pick follows the same rule over two.

Triplets are derived as in Sec. 4.2: *8rank2 similar* (query, first pick, second pick); *8rank2 dissimilar*
(query, first pick, a random unpicked reference); *2rank1 dissimilar* (query, the pick, the other one).
The ImageNet-HSJ-like source has many categories (``shape x colour``, 36) and 8-rank-2 trials only; the
Birds-16-like source has 208 images, 4 "families" (shapes) x 4 "species" (colours) x 13 images, and both
trial kinds, as in the thesis.

**Patches (BAPPS-2AFC-like).** Patches are cut from the real photos bundled with scikit-image and
scikit-learn and distorted by six families standing in for BAPPS' six categories (Zhang et al. 2018):
``traditional`` (noise, blur, JPEG, contrast), ``cnn`` (a seeded random convolutional network's residual
artefacts), ``superres`` (down- then up-sampling), ``deblur`` (blur, then an over-sharpening unsharp mask),
``frameinterp`` (ghosting: a blend with a shifted copy) and ``colorization`` (the luminance kept, the
chroma replaced). A triplet is a patch and two distortions of it from one family. The votes come from a
*hidden perceptual observer* that is none of the evaluated metrics: a contrast-sensitivity-weighted
Laplacian-pyramid difference of an opponent colour representation, with Minkowski pooling (exponent 3);
five simulated judges each prefer the less distant distortion with probability
``sigmoid((D_other - D_this) / tau)`` after a per-judge jitter of the band weights, and the majority
choice is reference 1.

**Noise ceiling.** For every triplet, :func:`agreement` gives the probability ``a`` that a *fresh*
observer, shown the triplet as a two-alternative choice, picks reference 1; its mean over a set is the
accuracy of the observers themselves, and the mean of ``max(a, 1 - a)`` that of the ideal predictor, which
always answers with the observers' more likely choice. Both are drawn in the chapter's figures.

**Fine-tuning sets (Sec. 4.3, Table A.1)** are drawn from trials *separate* from the evaluation sets (the
thesis samples them from the evaluation sets' own triplets; see the chapter): per source a triplet set
balanced over its triplet sets, a quadruplet set (the same plus a fourth image: a random unpicked image of
the same 8-rank-2 trial, or for 2-rank-1 trials an image of another trial), and a singleton set of unique
images.

**What it preserves** of the real data: the trial formats and the derivation of triplets, the difference
between easy (dissimilar) and hard (similar) triplets, a shape-biased, noisy and inconsistent observer,
full images versus distorted patches. **What it cannot**: the meaning of real objects, which people use
(a tiger and a house cat are similar for reasons no shape factor holds), and real human disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = ["BAPPS_FAMILIES", "BIRD_FAMILIES", "BIRD_SPECIES", "OBSERVER_WEIGHTS", "BenchmarkSize",
           "draw_observer_weights", "observer_similarity", "SimilaritySource", "TripletSet", "agreement", "distort_patch", "hidden_perceptual_distance",
           "make_bapps_like", "make_birds_like", "make_imagenet_like", "make_similarity_benchmark", "perceptual_band_errors",
           "psychological_embedding", "simulate_2rank1", "simulate_8rank2"]

# Observer weights of the psychological embedding: shape first (shape bias), nuisance factors last.
OBSERVER_WEIGHTS = {"shape": 3.0, "colour": 2.2, "texture": 1.2, "size": 1.0, "pose": 0.5, "background": 0.6,
                    "exposure": 0.4, "blur": 0.4, "noise": 0.3}
_CATEGORICAL = ("shape", "colour", "texture", "pose", "background", "blur", "noise")
BIRD_FAMILIES = ("circle", "square", "triangle", "star")
BIRD_SPECIES = ("red", "yellow", "blue", "green")
BIRD_IMAGES_PER_SPECIES = 13
BAPPS_FAMILIES = ("traditional", "cnn", "superres", "deblur", "frameinterp", "colorization")
TRIPLET_KINDS = ("8rank2-similar", "8rank2-dissimilar", "2rank1-dissimilar")


# --------------------------------------------------------------------------------- the observer model
def psychological_embedding(factors: pd.DataFrame, weights: dict[str, float] | None = None) -> np.ndarray:
    """The psychological embedding ``(N, E)`` of images described by a captioned-world factor table.

    Categorical factors: one-hot times ``w_f / sqrt(2)`` (distinct values lie ``w_f`` apart). Continuous:
    the object ``radius`` (0.126..0.352 of the side) and ``exposure_ev`` (-1.9..1.6) rescaled so that their
    range spans ``w_size`` and ``w_exposure``.
    """
    from domainknowledge.data.synthetic.captioned_world import FACTORS

    weights = dict(OBSERVER_WEIGHTS if weights is None else weights)
    missing = [f for f in OBSERVER_WEIGHTS if f not in weights]
    if missing:
        raise ValueError(f"observer weights are missing for {missing}")
    columns = []
    for factor in _CATEGORICAL:
        values = FACTORS[factor]
        index = factors[factor].map({v: i for i, v in enumerate(values)}).to_numpy()
        if np.any(pd.isna(index)):
            raise ValueError(f"factor {factor!r} holds values outside {values}")
        one_hot = np.eye(len(values))[index.astype(int)]
        columns.append(one_hot * weights[factor] / np.sqrt(2))
    radius = (factors["radius"].to_numpy(float) - 0.126) / (0.352 - 0.126)
    exposure = (factors["exposure_ev"].to_numpy(float) + 1.9) / 3.5
    columns.append(radius[:, None] * weights["size"])
    columns.append(exposure[:, None] * weights["exposure"])
    return np.concatenate(columns, axis=1)


def _factor_blocks(factors: pd.DataFrame) -> dict[str, np.ndarray]:
    """The embedding of :func:`psychological_embedding` with every weight 1, one block ``(N, k_f)`` per factor."""
    unit = {f: 1.0 for f in OBSERVER_WEIGHTS}
    full = psychological_embedding(factors, unit)
    blocks, start = {}, 0
    from domainknowledge.data.synthetic.captioned_world import FACTORS

    for factor in _CATEGORICAL:
        width = len(FACTORS[factor])
        blocks[factor] = full[:, start:start + width]
        start += width
    blocks["size"], blocks["exposure"] = full[:, start:start + 1], full[:, start + 1:start + 2]
    return blocks


def _squared_factor_distances(factors: pd.DataFrame, query: np.ndarray, references: np.ndarray) -> np.ndarray:
    """``(T, R, F)``: per factor (order of :data:`OBSERVER_WEIGHTS`) the squared distance of unit-weight blocks."""
    blocks = _factor_blocks(factors)
    return np.stack([((blocks[f][references] - blocks[f][query][:, None, :]) ** 2).sum(-1) for f in OBSERVER_WEIGHTS],
                    axis=-1)


def draw_observer_weights(count: int, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """``count`` observers' factor weights ``(count, F)``: :data:`OBSERVER_WEIGHTS` times ``exp(jitter N(0, 1))``."""
    base = np.array(list(OBSERVER_WEIGHTS.values()))
    return base * np.exp(jitter * rng.normal(size=(count, len(base))))


def observer_similarity(squared: np.ndarray, weights: np.ndarray, beta: float) -> np.ndarray:
    """``s = exp(-beta ||z_q - z_r||)`` from per-factor squared distances ``(T, R, F)`` and observer weights
    ``(T, F)`` (one observer per trial): ``(T, R)``."""
    return np.exp(-beta * np.sqrt((squared * weights[:, None, :] ** 2).sum(-1)))


def _luce_pick(similarity: np.ndarray, rng: np.random.Generator, excluded: np.ndarray | None = None) -> np.ndarray:
    """One Luce choice per row of ``similarity (T, R)``: column indices ``(T,)``; ``excluded (T, R)`` bool."""
    weights = similarity.copy()
    if excluded is not None:
        weights[excluded] = 0.0
    probability = weights / weights.sum(axis=1, keepdims=True)
    cumulative = probability.cumsum(axis=1)
    draws = rng.random((len(weights), 1))
    return np.minimum((draws > cumulative).sum(axis=1), weights.shape[1] - 1)


def simulate_8rank2(factors: pd.DataFrame, query: np.ndarray, references: np.ndarray, rng: np.random.Generator,
                    *, beta: float, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """Ranked Luce choices of 8-rank-2 trials, one fresh observer per trial.

    ``query (T,)``, ``references (T, 8)`` image indices. Returns the columns ``(first (T,), second (T,))`` of
    the first and second pick in ``references``.
    """
    if references.ndim != 2 or references.shape[1] < 3:
        raise ValueError(f"references must be (T, R) with R >= 3, got {references.shape}")
    s = observer_similarity(_squared_factor_distances(factors, query, references),
                            draw_observer_weights(len(query), rng, jitter), beta)
    first = _luce_pick(s, rng)
    excluded = np.zeros_like(s, bool)
    excluded[np.arange(len(query)), first] = True
    return first, _luce_pick(s, rng, excluded)


def simulate_2rank1(factors: pd.DataFrame, query: np.ndarray, references: np.ndarray, rng: np.random.Generator,
                    *, beta: float, jitter: float) -> np.ndarray:
    """Luce choices of 2-rank-1 trials (``references (T, 2)``), one fresh observer each: the picked column ``(T,)``."""
    if references.ndim != 2 or references.shape[1] != 2:
        raise ValueError(f"references must be (T, 2), got {references.shape}")
    s = observer_similarity(_squared_factor_distances(factors, query, references),
                            draw_observer_weights(len(query), rng, jitter), beta)
    return _luce_pick(s, rng)


def agreement(factors: pd.DataFrame, query, first, second, *, beta: float, jitter: float, observers: int = 16,
              seed: int = 0) -> np.ndarray:
    """The probability ``(T,)`` that a fresh observer, shown (query, first, second) as a 2-alternative choice,
    picks ``first``: the mean over ``observers`` drawn observers of ``s_first / (s_first + s_second)``."""
    rng = np.random.default_rng(seed)
    query = np.asarray(query)
    squared = _squared_factor_distances(factors, query, np.stack([first, second], axis=1))
    total = np.zeros(len(query))
    for _ in range(observers):
        s = observer_similarity(squared, draw_observer_weights(len(query), rng, jitter), beta)
        total += s[:, 0] / s.sum(axis=1)
    return total / observers


# ----------------------------------------------------------------------------------------- containers
@dataclass
class TripletSet:
    """One evaluation (or fine-tuning) set: image indices ``query``, ``first`` (reference 1, judged more
    similar), ``second`` (reference 2), each ``(T,)``, into its source's ``images``; ``agreement (T,)`` the
    probability that a fresh observer agrees (the noise ceiling); ``extra`` the fourth image of a quadruplet."""

    name: str
    source: str
    kind: str
    query: np.ndarray
    first: np.ndarray
    second: np.ndarray
    agreement: np.ndarray
    extra: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.query)

    @property
    def ceiling(self) -> float:
        """The observers' own expected triplet accuracy on this set: a fresh observer's agreement."""
        return float(np.mean(self.agreement))

    @property
    def ideal(self) -> float:
        """The expected accuracy of the ideal predictor, which always answers with the observers' more likely
        choice: the mean of ``max(a, 1 - a)``. It exceeds :attr:`ceiling` because it adds no noise of its own."""
        return float(np.mean(np.maximum(self.agreement, 1 - self.agreement)))


@dataclass
class SimilaritySource:
    """One data source: ``images`` ``uint8 (N, S, S, 3)``, a per-image table ``info`` (factors or patch
    details), its evaluation ``sets`` and the fine-tuning sets ``finetune_triplets``,
    ``finetune_quadruplets`` (with ``extra``) and ``singletons`` (image indices)."""

    name: str
    images: np.ndarray
    info: pd.DataFrame
    sets: dict[str, TripletSet]
    finetune_triplets: TripletSet
    finetune_quadruplets: TripletSet
    singletons: np.ndarray
    is_stand_in: bool = True
    description: str = ""
    labels: np.ndarray | None = field(default=None)


@dataclass(frozen=True)
class BenchmarkSize:
    """Sizes of the simulated benchmark: ``triplets`` per evaluation set (``patch_triplets`` per BAPPS-like
    set, default the same), ``finetune`` items per fine-tuning set, ``imagenet_images`` in the
    ImageNet-HSJ-like pool, ``image_size`` of full images and ``patch_size`` of BAPPS-like patches (px),
    observer ``beta`` and ``jitter``, ``judges`` per BAPPS-like triplet."""

    triplets: int = 1000
    finetune: int = 1000
    imagenet_images: int = 2000
    image_size: int = 32
    patch_size: int = 32
    beta: float = 2.0
    jitter: float = 0.35
    judges: int = 5
    patch_triplets: int | None = None

    @property
    def bapps_triplets(self) -> int:
        return self.patch_triplets or self.triplets

    def __post_init__(self):
        if min(self.triplets, self.finetune) < 2 or self.imagenet_images < 50:
            raise ValueError("need at least 2 triplets and fine-tuning items and 50 ImageNet-like images")
        if self.image_size < 16 or self.patch_size < 16:
            raise ValueError("image_size and patch_size must be at least 16 px")


# -------------------------------------------------------------------------------------- full images
def _world(n: int, seed: int, split: str, image_size: int):
    from domainknowledge.data.synthetic.captioned_world import generate_captioned_world

    return generate_captioned_world(n, seed=seed, split=split, image_size=image_size)


def _8rank2_sets(source: str, factors: pd.DataFrame, trials: int, candidates: np.ndarray,
                 rng: np.random.Generator, size: BenchmarkSize, *, ceiling_seed: int):
    """Draw ``trials`` 8-rank-2 trials over ``candidates`` (image indices) and derive the similar and the
    dissimilar triplet sets; also returns (query, references, first, second) for quadruplets."""
    picks = np.stack([rng.choice(candidates, 9, replace=False) for _ in range(trials)])
    query, references = picks[:, 0], picks[:, 1:]
    first, second = simulate_8rank2(factors, query, references, rng, beta=size.beta, jitter=size.jitter)
    rows = np.arange(trials)
    unpicked = np.stack([rng.choice(np.setdiff1d(np.arange(8), [a, b]), 2, replace=False)
                         for a, b in zip(first, second)])
    one, two, other = references[rows, first], references[rows, second], references[rows, unpicked[:, 0]]
    extra = references[rows, unpicked[:, 1]]
    sets = {}
    for kind, reference2 in (("8rank2-similar", two), ("8rank2-dissimilar", other)):
        sets[kind] = TripletSet(f"{source} {kind}", source, kind, query, one, reference2,
                                agreement(factors, query, one, reference2, beta=size.beta, jitter=size.jitter,
                                          seed=ceiling_seed))
    return sets, extra


def _2rank1_set(source: str, factors, trials: int, candidates, rng, size: BenchmarkSize, *, ceiling_seed: int):
    picks = np.stack([rng.choice(candidates, 3, replace=False) for _ in range(trials)])
    query, references = picks[:, 0], picks[:, 1:]
    chosen = simulate_2rank1(factors, query, references, rng, beta=size.beta, jitter=size.jitter)
    rows = np.arange(trials)
    one, two = references[rows, chosen], references[rows, 1 - chosen]
    return TripletSet(f"{source} 2rank1-dissimilar", source, "2rank1-dissimilar", query, one, two,
                      agreement(factors, query, one, two, beta=size.beta, jitter=size.jitter, seed=ceiling_seed))


def _balanced_finetune(source: str, parts: list[tuple[TripletSet, np.ndarray]], total: int,
                       rng: np.random.Generator) -> tuple[TripletSet, TripletSet]:
    """Sample ``total`` triplets balanced over ``parts`` (each a set and its quadruplet extras)."""
    per = np.full(len(parts), total // len(parts))
    per[: total - per.sum()] += 1
    chosen = [rng.choice(len(s), min(k, len(s)), replace=False) for (s, _), k in zip(parts, per)]
    cat = lambda attribute: np.concatenate([getattr(s, attribute)[c] for (s, _), c in zip(parts, chosen)])  # noqa: E731
    extra = np.concatenate([e[c] for (_, e), c in zip(parts, chosen)])
    triplets = TripletSet(f"{source} fine-tuning triplets", source, "mixed", cat("query"), cat("first"),
                          cat("second"), cat("agreement"))
    quadruplets = TripletSet(f"{source} fine-tuning quadruplets", source, "mixed", cat("query"), cat("first"),
                             cat("second"), cat("agreement"), extra=extra)
    return triplets, quadruplets


def _singletons(sets: list[TripletSet], total: int, rng: np.random.Generator) -> np.ndarray:
    unique = np.unique(np.concatenate([np.concatenate([s.query, s.first, s.second]) for s in sets]))
    return np.sort(rng.choice(unique, min(total, len(unique)), replace=False))


def make_imagenet_like(size: BenchmarkSize, *, seed: int = 0) -> SimilaritySource:
    """The ImageNet-HSJ-like source: ``size.imagenet_images`` captioned-world images, 36 categories
    (shape x colour), 8-rank-2 trials only: sets ``8rank2-similar`` and ``8rank2-dissimilar`` of
    ``size.triplets`` triplets each (from the same trials), and fine-tuning sets from other trials."""
    world = _world(size.imagenet_images, seed, "similarity-imagenet", size.image_size)
    factors = world.factors
    rng = np.random.default_rng([seed, 101])
    candidates = np.arange(len(world))
    sets, _ = _8rank2_sets("ImageNet-HSJ-like", factors, size.triplets, candidates, rng, size, ceiling_seed=seed)
    tuning_sets, tuning_extra = _8rank2_sets("ImageNet-HSJ-like", factors, -(-size.finetune // 2), candidates, rng,
                                             size, ceiling_seed=seed + 1)
    parts = [(tuning_sets[k], tuning_extra) for k in ("8rank2-similar", "8rank2-dissimilar")]
    triplets, quadruplets = _balanced_finetune("ImageNet-HSJ-like", parts, size.finetune, rng)
    labels = (factors["shape"] + " " + factors["colour"]).to_numpy()
    return SimilaritySource("ImageNet-HSJ-like", world.images, factors, sets, triplets, quadruplets,
                            _singletons([triplets], size.finetune, rng),
                            description=f"{len(world)} captioned-world images, 36 categories (shape x colour), "
                                        "8-rank-2 trials", labels=labels)


def make_birds_like(size: BenchmarkSize, *, seed: int = 0) -> SimilaritySource:
    """The Birds-16-like source: 208 images, 4 families (shapes of :data:`BIRD_FAMILIES`) x 4 species
    (colours of :data:`BIRD_SPECIES`) x 13 images; 8-rank-2 and 2-rank-1 trials:
    sets ``8rank2-similar``, ``8rank2-dissimilar`` and ``2rank1-dissimilar``."""
    chosen, pools, round_ = {}, [], 0
    need = {(f, s): BIRD_IMAGES_PER_SPECIES for f in BIRD_FAMILIES for s in BIRD_SPECIES}
    while any(need.values()):
        if round_ > 40:
            raise RuntimeError("could not draw enough bird-like images; the captioned world changed?")
        world = _world(1000, seed, f"similarity-birds-{round_}", size.image_size)
        pools.append(world)
        for i, row in enumerate(world.factors.itertuples(index=False)):
            key = (row.shape, row.colour)
            if key in need and need[key]:
                chosen.setdefault(key, []).append((len(pools) - 1, i))
                need[key] -= 1
        round_ += 1
    order = [(f, s) for f in BIRD_FAMILIES for s in BIRD_SPECIES]
    picks = [item for key in order for item in chosen[key]]
    images = np.stack([pools[p].images[i] for p, i in picks])
    factors = pd.concat([pools[p].factors.iloc[[i]] for p, i in picks], ignore_index=True)
    rng = np.random.default_rng([seed, 202])
    candidates = np.arange(len(images))
    name = "Birds-16-like"
    sets, _ = _8rank2_sets(name, factors, size.triplets, candidates, rng, size, ceiling_seed=seed)
    sets["2rank1-dissimilar"] = _2rank1_set(name, factors, size.triplets, candidates, rng, size, ceiling_seed=seed)
    per = -(-size.finetune // 3)
    tuning_sets, tuning_extra = _8rank2_sets(name, factors, per, candidates, rng, size, ceiling_seed=seed + 1)
    tuning_2r1 = _2rank1_set(name, factors, per, candidates, rng, size, ceiling_seed=seed + 1)
    other_trial = tuning_2r1.query[(np.arange(per) + 1 + rng.integers(per - 1 if per > 1 else 1, size=per)) % per]
    parts = [(tuning_sets["8rank2-similar"], tuning_extra), (tuning_sets["8rank2-dissimilar"], tuning_extra),
             (tuning_2r1, other_trial)]
    triplets, quadruplets = _balanced_finetune(name, parts, size.finetune, rng)
    labels = factors["shape"].to_numpy()
    return SimilaritySource(name, images, factors, sets, triplets, quadruplets,
                            _singletons([triplets], size.finetune, rng),
                            description="208 captioned-world images: 4 families (shapes) x 4 species "
                                        "(colours) x 13, 8-rank-2 and 2-rank-1 trials", labels=labels)


# ------------------------------------------------------------------------------------------- patches
def _opponent(image: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] ``(..., 3)`` to an opponent space: luminance, red-green, blue-yellow."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return np.stack([0.299 * r + 0.587 * g + 0.114 * b, r - g, 0.5 * (r + g) - b], axis=-1)


_BAND_WEIGHTS = np.array([0.5, 1.0, 0.8, 0.45, 0.25])         # contrast sensitivity, fine to coarse
_CHANNEL_WEIGHTS = np.array([1.0, 0.45, 0.3])                  # luminance above chroma
_JUDGE_TEMPERATURE = 0.6                                       # judges: sigmoid((D_other - D_this) / tau), tau = 0.6 x median gap


def perceptual_band_errors(reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
    """Per pyramid band the Minkowski-pooled (exponent 3) difference of ``reference`` and ``distorted``
    ``uint8 (N, S, S, 3)`` patches in an opponent colour space (channel weights :data:`_CHANNEL_WEIGHTS`),
    summed over channels: ``(N, B)`` for the ``B = 5`` bands of a Laplacian pyramid, fine to coarse."""
    a = _opponent(np.asarray(reference, np.float64) / 255.0)
    b = _opponent(np.asarray(distorted, np.float64) / 255.0)
    errors = np.zeros((len(a), len(_BAND_WEIGHTS)))
    level_a, level_b = a, b
    for band in range(len(_BAND_WEIGHTS)):
        last = band == len(_BAND_WEIGHTS) - 1 or min(level_a.shape[1:3]) < 4
        if last:
            detail_a, detail_b = level_a, level_b
        else:
            smooth_a = ndimage.gaussian_filter(level_a, sigma=(0, 1, 1, 0))
            smooth_b = ndimage.gaussian_filter(level_b, sigma=(0, 1, 1, 0))
            detail_a, detail_b = level_a - smooth_a, level_b - smooth_b
        difference = np.abs(detail_a - detail_b) * _CHANNEL_WEIGHTS
        errors[:, band] = ((difference ** 3).mean(axis=(1, 2)) ** (1 / 3)).sum(axis=-1)
        if last:
            break
        level_a, level_b = smooth_a[:, ::2, ::2], smooth_b[:, ::2, ::2]
    return errors


def hidden_perceptual_distance(reference: np.ndarray, distorted: np.ndarray, band_weights=None) -> np.ndarray:
    """The hidden observer's distance ``(N,)`` between ``reference`` and ``distorted`` patches
    ``uint8 (N, S, S, 3)``: the band errors of :func:`perceptual_band_errors` weighted by a contrast-sensitivity
    curve (:data:`_BAND_WEIGHTS`, mid frequencies highest) and summed. No evaluated extractor computes this."""
    weights = _BAND_WEIGHTS if band_weights is None else np.asarray(band_weights, float)
    return perceptual_band_errors(reference, distorted) @ weights


def _random_cnn(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded random two-layer convolutional network's residual added to the patch (CNN artefacts)."""
    x = patch.astype(np.float64) / 255.0
    hidden = np.zeros(x.shape[:2] + (6,))
    kernels = rng.normal(0, 0.5, (6, 3, 3, 3))
    for k in range(6):
        hidden[..., k] = sum(ndimage.convolve(x[..., c], kernels[k, c], mode="reflect") for c in range(3))
    hidden = np.maximum(hidden, 0)
    out_kernels = rng.normal(0, 0.35, (3, 6, 3, 3))
    residual = np.stack([sum(ndimage.convolve(hidden[..., k], out_kernels[c, k], mode="reflect") for k in range(6))
                         for c in range(3)], axis=-1)
    strength = rng.uniform(0.05, 0.3)
    return x + strength * np.tanh(residual)


def distort_patch(patch: np.ndarray, family: str, rng: np.random.Generator) -> np.ndarray:
    """One random distortion of ``family`` (see :data:`BAPPS_FAMILIES`) of a ``uint8`` patch ``(S, S, 3)``."""
    from PIL import Image

    if family not in BAPPS_FAMILIES:
        raise ValueError(f"unknown distortion family {family!r}; choose one of {BAPPS_FAMILIES}")
    size = patch.shape[0]
    x = patch.astype(np.float64) / 255.0
    if family == "traditional":
        kind = rng.integers(4)
        if kind == 0:
            x = x + rng.normal(0, rng.uniform(0.02, 0.12), x.shape)
        elif kind == 1:
            x = ndimage.gaussian_filter(x, sigma=(rng.uniform(0.4, 1.6),) * 2 + (0,))
        elif kind == 2:
            import io

            buffer = io.BytesIO()
            Image.fromarray(patch).save(buffer, format="JPEG", quality=int(rng.integers(5, 40)))
            x = np.asarray(Image.open(buffer).convert("RGB"), np.float64) / 255.0
        else:
            x = (x - x.mean()) * rng.uniform(0.4, 1.8) + x.mean()
    elif family == "cnn":
        x = _random_cnn(patch, rng)
    elif family == "superres":
        factor = rng.uniform(1.5, 4.0)
        small = max(4, int(round(size / factor)))
        modes = (Image.NEAREST, Image.BILINEAR, Image.BICUBIC)
        down = Image.fromarray(patch).resize((small, small), Image.BILINEAR)
        x = np.asarray(down.resize((size, size), modes[rng.integers(3)]), np.float64) / 255.0
    elif family == "deblur":
        blurred = ndimage.gaussian_filter(x, sigma=(rng.uniform(0.5, 1.5),) * 2 + (0,))
        amount = rng.uniform(0.5, 2.5)
        x = blurred + amount * (blurred - ndimage.gaussian_filter(blurred, sigma=(1.0, 1.0, 0)))
    elif family == "frameinterp":
        shift = rng.integers(-3, 4, size=2)
        shifted = np.roll(x, tuple(shift), axis=(0, 1))
        alpha = rng.uniform(0.2, 0.6)
        x = (1 - alpha) * x + alpha * shifted
    else:                                                     # colorization: luminance kept, chroma replaced
        luminance = x @ np.array([0.299, 0.587, 0.114])
        chroma = x - luminance[..., None]
        mix = rng.uniform(0.0, 1.0)
        tint = rng.normal(0, 0.08, 3)
        rotated = chroma[..., rng.permutation(3)]
        x = luminance[..., None] + mix * chroma + (1 - mix) * 0.6 * rotated + tint
    return np.clip(np.rint(np.clip(x, 0, 1) * 255), 0, 255).astype(np.uint8)


def _photo_scales(photos: dict[str, np.ndarray], size: int) -> list[np.ndarray]:
    """Each photo at four scales (shorter side 2, 3, 4.5 and 7 patch sides), from which patches are cut."""
    from PIL import Image

    scaled = []
    for name in sorted(photos):
        photo = photos[name]
        for sides in (2.0, 3.0, 4.5, 7.0):
            factor = sides * size / min(photo.shape[:2])
            height, width = max(size, int(photo.shape[0] * factor)), max(size, int(photo.shape[1] * factor))
            scaled.append(np.asarray(Image.fromarray(photo).resize((width, height), Image.BILINEAR)))
    return scaled


def _patches(count: int, size: int, rng: np.random.Generator, scaled: list[np.ndarray]) -> tuple[np.ndarray, list]:
    out, origin = np.empty((count, size, size, 3), np.uint8), []
    for i in range(count):
        k = int(rng.integers(len(scaled)))
        image = scaled[k]
        top, left = rng.integers(image.shape[0] - size + 1), rng.integers(image.shape[1] - size + 1)
        out[i] = image[top:top + size, left:left + size]
        origin.append(k // 4)
    return out, origin


def _bapps_triplets(family: str, count: int, size: BenchmarkSize, rng, scaled, offset: int, judge_seed: int):
    """``count`` triplets of one family: images ``(3 count, S, S, 3)`` (ref, p0, p1 per triplet) and the set."""
    references, origin = _patches(count, size.patch_size, rng, scaled)
    p0 = np.stack([distort_patch(r, family, rng) for r in references])
    p1 = np.stack([distort_patch(r, family, rng) for r in references])
    bands0, bands1 = perceptual_band_errors(references, p0), perceptual_band_errors(references, p1)
    d0, d1 = bands0 @ _BAND_WEIGHTS, bands1 @ _BAND_WEIGHTS
    tau = _JUDGE_TEMPERATURE * np.median(np.abs(d0 - d1)) + 1e-9
    judge_rng = np.random.default_rng(judge_seed)

    def preference(judge_rng):
        jitter = _BAND_WEIGHTS * np.exp(0.35 * judge_rng.normal(size=len(_BAND_WEIGHTS)))
        e0, e1 = bands0 @ jitter, bands1 @ jitter
        return 1 / (1 + np.exp(-(e1 - e0) / tau))            # probability of judging p0 the more similar

    votes = np.stack([judge_rng.random(count) < preference(judge_rng) for _ in range(size.judges)])
    p0_wins = votes.mean(axis=0) > 0.5
    fresh = np.mean([preference(judge_rng) for _ in range(8)], axis=0)
    agreement_ = np.where(p0_wins, fresh, 1 - fresh)
    images = np.concatenate([references, p0, p1])
    base = offset + np.arange(count)
    query, first = base, np.where(p0_wins, base + count, base + 2 * count)
    second = np.where(p0_wins, base + 2 * count, base + count)
    info = pd.DataFrame({"role": ["reference"] * count + ["p0"] * count + ["p1"] * count,
                         "family": family, "photo": origin * 3,
                         "triplet": np.tile(np.arange(count), 3)})
    return images, info, TripletSet(f"BAPPS-2AFC-like {family}", "BAPPS-2AFC-like", family, query, first, second,
                                    agreement_)


def make_bapps_like(size: BenchmarkSize, *, seed: int = 0) -> SimilaritySource:
    """The BAPPS-2AFC-like source: per family of :data:`BAPPS_FAMILIES` a set of ``size.triplets`` triplets
    (reference patch, two distortions, reference 1 = the hidden judges' majority), plus fine-tuning
    triplets of new patches; quadruplets add a distortion from another triplet (a 2-rank-1 source)."""
    from domainknowledge.data.bundled import load_photos

    photos = load_photos()
    scaled = _photo_scales(photos, size.patch_size)
    rng = np.random.default_rng([seed, 303])
    images, infos, sets, tuning = [], [], {}, []
    offset = 0
    per_family = -(-size.finetune // len(BAPPS_FAMILIES))
    for part, count in (("evaluation", size.bapps_triplets), ("fine-tuning", per_family)):
        for k, family in enumerate(BAPPS_FAMILIES):
            block, info, triplets = _bapps_triplets(family, count, size, rng, scaled, offset,
                                                    judge_seed=seed * 1000 + 17 * k + (part == "fine-tuning"))
            info["part"] = part
            images.append(block)
            infos.append(info)
            offset += len(block)
            (sets.__setitem__(family, triplets) if part == "evaluation" else tuning.append(triplets))
    parts = []
    for triplets in tuning:
        n = len(triplets)
        other = (np.arange(n) + 1 + rng.integers(max(n - 1, 1), size=n)) % n
        parts.append((triplets, triplets.second[other]))
    finetune_triplets, quadruplets = _balanced_finetune("BAPPS-2AFC-like", parts, size.finetune, rng)
    info = pd.concat(infos, ignore_index=True)
    return SimilaritySource("BAPPS-2AFC-like", np.concatenate(images), info, sets, finetune_triplets, quadruplets,
                            _singletons([finetune_triplets], size.finetune, rng),
                            description=f"{size.patch_size} px patches of {len(photos)} bundled photos under six "
                                        "distortion families, 2-alternative judgements by five hidden judges",
                            labels=info["family"].to_numpy())


def make_similarity_benchmark(size: BenchmarkSize, *, seed: int = 0) -> dict[str, SimilaritySource]:
    """All three stand-in sources, keyed by name: 2 + 3 + 6 = 11 evaluation sets, 9 fine-tuning sets."""
    sources = [make_imagenet_like(size, seed=seed), make_birds_like(size, seed=seed), make_bapps_like(size, seed=seed)]
    return {s.name: s for s in sources}

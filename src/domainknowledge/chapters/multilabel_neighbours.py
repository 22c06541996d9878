"""Experiment drivers of the multi-label neighbour-search chapter (Bynke 2022, Ch. 3-4).

One code path for every profile:

1. :func:`load_images`: the rendered vehicle world (:mod:`domainknowledge.data.synthetic.vehicles`), or at the
   ``paper`` profile the public iMet collection from ``--data-root`` (:data:`IMET_LAYOUT`; Bynke's own FFI
   images are private, :data:`FFI_LAYOUT` reads them for those who have them), streamed from disk;
2. :func:`prepare`: the data preparation of Sec. 3.1.2 (drop unlabelled images, embed with the frozen
   encoder, duplicate thresholds by logistic regression at P = 1 % and 99 %, removal and merging, the 60/20/20
   split stratified on deciles of the maximum softmaxed similarity, keywords with fewer than
   ``min_keyword_count`` training occurrences dropped);
3. :func:`run_models`: every model of Sec. 3.2 on the cached embeddings, hyper-parameters and the global
   threshold chosen on validation with optuna (seeded TPE), test read once per model;
4. :func:`worked_example` (Tables 4.10-4.11) and :func:`scale_benchmark` (neighbour search over >= 100k
   references against ``faiss.IndexFlatIP``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from domainknowledge.data.synthetic import vehicles
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.models.encoders.aligned import aligned_encoder_name
from domainknowledge.principles import neighbour_search as ns

__all__ = ["CONFIGS", "ENGLISH_CONTEXTS", "EVERY_WORLD", "FINE_TUNE_BATCH_SIZES", "FFI_LAYOUT", "IMET_FOLDERS",
           "IMET_LAYOUT", "LANGUAGES", "NORWEGIAN_CONTEXTS", "PAPER_LAYOUT", "SOURCES", "Config", "Prepared",
           "PREDICTION_METRICS", "all_positive_f2", "best_by_validation", "chosen_settings", "describe_profiles",
           "keyword_group_auc", "keyword_statistics", "load_images", "paired_model_test", "prepare", "run_models",
           "scale_benchmark", "summarise_runs", "worked_example", "zero_shot_chance"]

# Table 4.1's contexts ("{}" = label), and the Norwegian ones used with the original labels
ENGLISH_CONTEXTS = (
    "a photo of {}", "a photo of a {}", "a picture of a {}", "a drawing of a {}", "an illustration of a {}",
    "a photo of a big {}", "a photo of a small {}", "a military photo of a {}", "a photo from the military of a {}",
    "a picture from the military of a {}", "this photo from the military contains a {}",
    "this photo from military contains a {}", "a photo of a {}, a type of military equipment",
    "a photo of a {}, a type of vehicle")
NORWEGIAN_CONTEXTS = (
    "et bilde av en {}", "et fotografi av {}", "et fotografi av en {}", "en tegning av en {}", "en illustrasjon av {}",
    "et fotografi av en stor {}", "et fotografi av en liten {}", "et militært fotografi av en {}",
    "et fotografi fra militæret av en {}", "et bilde fra militæret av en {}",
    "dette fotografiet fra militæret inneholder en {}", "et fotografi av {}, en type militært utstyr",
    "et fotografi av {}, en type kjøretøy")
LANGUAGES = ("original", "automatic", "manual")
FFI_LAYOUT = ("<data_root>/bynke/keywords.csv (columns file, keywords; keywords separated by ';'), "
              "<data_root>/bynke/images/<file> (any format PIL reads), "
              "<data_root>/bynke/duplicate_pairs.csv (columns file_a, file_b, duplicate: the hand-labelled "
              "(image, most similar image) pairs of Sec. 3.1.2), and "
              "<data_root>/bynke/translations.csv (columns keyword, automatic, manual)")
#: The Kaggle iMet Collection 2020 (FGVC7) archive unpacked; the 2019 (FGVC6) archive has the same files.
IMET_FOLDERS = ("imet-2020-fgvc7", "imet-2019-fgvc6")
IMET_LAYOUT = ("<data_root>/imet-2020-fgvc7/ (or imet-2019-fgvc6/) as the Kaggle iMet Collection archive unpacks: "
               "train.csv (columns id, attribute_ids; ids separated by spaces), labels.csv (columns attribute_id, "
               "attribute_name, e.g. 'culture::american'), train/<id>.png; optionally duplicate_pairs.csv "
               "(columns file_a, file_b, duplicate with file = <id>.png) if you labelled (image, most similar "
               "image) pairs as Sec. 3.1.2 does. Source: https://www.kaggle.com/c/imet-2020-fgvc7/data")
#: What the ``paper`` profile reads: the public iMet collection (the thesis' own FFI images are private).
PAPER_LAYOUT = IMET_LAYOUT
SOURCES = ("rendered", "imet", "ffi")


@dataclass(frozen=True)
class Config:
    """What one profile runs. Every field is shown on the chapter page.

    Data: ``images`` rendered at ``image_size`` px (``duplicate_rate``, ``junk_rate``: see the generator);
    ``labelled_pairs`` (image, nearest image) pairs "labelled by hand" for the duplicate thresholds;
    ``min_keyword_count`` (Bynke: 50 training occurrences; scaled with the data); ``stratify_temperature``
    (the softmax temperature of the stratification variable, not stated in the thesis; CLIP's 100).
    Encoders (registry names): ``image_encoder`` for the image-based models and the data preparation,
    ``text_encoder`` (image-text) for zero-shot; ``runs`` (split and tuning seeds); ``trials`` optuna trials per
    training-free model, ``fine_tune_trials`` per fine-tuned one, ``max_epochs`` their epoch cap;
    ``prototypes_per_class`` (Tip-Adapter's 16). Scale: ``scale_references`` references,
    ``scale_queries`` queries. ``source``: ``rendered`` (the stand-in world), ``imet`` (the public iMet
    collection, :data:`IMET_LAYOUT`) or ``ffi`` (Bynke's own data for those who have it, :data:`FFI_LAYOUT`).
    """

    images: int
    image_size: int
    duplicate_rate: float
    junk_rate: float
    labelled_pairs: int
    min_keyword_count: int
    stratify_temperature: float
    image_encoder: str
    text_encoder: str
    runs: int
    trials: int
    fine_tune_trials: int
    max_epochs: int
    prototypes_per_class: int
    scale_references: int
    scale_queries: int
    source: str = "rendered"

    def __post_init__(self):
        if self.images < 100 or self.image_size < 16:
            raise ValueError("need at least 100 images of at least 16 px")
        if min(self.runs, self.trials, self.fine_tune_trials, self.max_epochs, self.prototypes_per_class) < 1:
            raise ValueError("runs, trials, fine_tune_trials, max_epochs and prototypes_per_class must be >= 1")
        if self.min_keyword_count < 1 or self.labelled_pairs < 10:
            raise ValueError("min_keyword_count must be >= 1 and labelled_pairs >= 10")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES} (stand-in, iMet collection, Bynke's FFI data), got "
                             f"{self.source!r}")


#: The range of mini-batch sizes the fine-tuning search draws from (log-uniform). Bynke's Table 4.4 chose 33 to
#: 319; smaller batches only add optimiser steps (and CPU time) at the sizes of the stand-in.
FINE_TUNE_BATCH_SIZES = (32, 512)

#: The image-text model of the stand-in profiles: the aligned model (frozen EfficientNet-Lite0 and MiniLM with
#: heads trained on captioned images of every world of the book, vehicles included, never on this chapter's
#: images), the one tower of both halves as the thesis' CLIP. Heads that never saw a vehicle cannot name one:
#: the appendix's fitness table measures that.
EVERY_WORLD = {size: aligned_encoder_name(size, left_out=None) for size in ("smoke", "cpu")}

CONFIGS = {
    "smoke": Config(images=360, image_size=48, duplicate_rate=0.08, junk_rate=0.15, labelled_pairs=120,
                    min_keyword_count=4, stratify_temperature=100.0, image_encoder=EVERY_WORLD["smoke"],
                    text_encoder=EVERY_WORLD["smoke"], runs=1,
                    trials=4, fine_tune_trials=2, max_epochs=2, prototypes_per_class=4,
                    scale_references=20_000, scale_queries=64),
    "cpu": Config(images=2400, image_size=64, duplicate_rate=0.08, junk_rate=0.15, labelled_pairs=400,
                  min_keyword_count=12, stratify_temperature=100.0, image_encoder=EVERY_WORLD["cpu"],
                  text_encoder=EVERY_WORLD["cpu"], runs=3,
                  trials=25, fine_tune_trials=10, max_epochs=100, prototypes_per_class=16,
                  scale_references=100_000, scale_queries=256),
    "paper": Config(images=130_000, image_size=224, duplicate_rate=0.0, junk_rate=0.0, labelled_pairs=1000,
                    min_keyword_count=50, stratify_temperature=100.0, image_encoder="open_clip:ViT-B-32/openai",
                    text_encoder="open_clip:ViT-B-32/openai", runs=1,
                    trials=200, fine_tune_trials=60, max_epochs=100, prototypes_per_class=16,
                    scale_references=1_000_000, scale_queries=4096, source="imet"),
}


def describe_profiles():
    """The configurations of every profile as a table (one column per profile)."""
    return describe_config_profiles(CONFIGS)


# ------------------------------------------------------------------------------------------------- data
@dataclass
class Images:
    """Images (an array, or :class:`~domainknowledge.data.real.image_files.ImageFiles` read lazily), recorded
    keywords, translations (``has_translations``: whether they are real translations of the keywords, which the
    label-language claim needs) and (stand-in only) the generator's factors and duplicate groups; real data
    may bring hand-labelled duplicate pairs (``labelled_duplicates``)."""

    images: object
    keywords: list[list[str]]
    automatic: dict[str, str]
    manual: dict[str, str]
    duplicate_group: np.ndarray | None
    factors: pd.DataFrame | None
    data_key: str
    labelled_duplicates: pd.DataFrame | None = None
    has_translations: bool = True


def load_images(config: Config, seed: int = 0, data_root=None) -> Images:
    """The stand-in world (``source='rendered'``), the iMet collection (``'imet'``, :data:`IMET_LAYOUT`) or
    Bynke's FFI data (``'ffi'``, :data:`FFI_LAYOUT`). Real images are read lazily at ``config.image_size``
    (:class:`~domainknowledge.data.real.image_files.ImageFiles`), never held at native resolution."""
    if config.source == "rendered":
        world = vehicles.generate_vehicle_world(config.images, config.image_size, seed=seed,
                                                duplicate_rate=config.duplicate_rate, junk_rate=config.junk_rate)
        group = np.where(world.factors.duplicate_of.to_numpy() >= 0, world.factors.duplicate_of.to_numpy(),
                         np.arange(len(world)))
        import hashlib
        import inspect

        source = hashlib.sha256(inspect.getsource(vehicles).encode()).hexdigest()[:12]
        key = f"vehicles:n={config.images}:size={config.image_size}:dup={config.duplicate_rate}:junk=" \
              f"{config.junk_rate}:seed={seed}:generator={source}"
        return Images(world.images, world.keywords, vehicles.AUTOMATIC_TRANSLATION, vehicles.MANUAL_TRANSLATION,
                      group, world.factors, key)
    if config.source == "imet":
        return _imet_images(config, data_root)
    return _ffi_images(config, data_root)


def _labelled_pairs(path: Path, files) -> pd.DataFrame:
    """Hand-labelled duplicate pairs ``file_a, file_b, duplicate`` with the row numbers ``a, b`` of the files."""
    position = {f: i for i, f in enumerate(files)}
    return pd.read_csv(path).assign(a=lambda d: d.file_a.map(position), b=lambda d: d.file_b.map(position))


def _ffi_images(config: Config, data_root) -> Images:
    from domainknowledge.data.bundled import DataNotFoundError, data_root_folder
    from domainknowledge.data.real.image_files import ImageFiles, resize_center_crop

    folder = data_root_folder(data_root, "bynke", "Bynke's keyword-labelled images", FFI_LAYOUT)
    needed = [folder / "keywords.csv", folder / "duplicate_pairs.csv", folder / "translations.csv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DataNotFoundError(f"missing {missing}; expected {FFI_LAYOUT}")
    table = pd.read_csv(needed[0])
    translations = pd.read_csv(needed[2]).set_index("keyword")
    keywords = [[w.strip() for w in str(k).split(";") if w.strip()] if isinstance(k, str) else []
                for k in table.keywords]
    return Images(ImageFiles([folder / "images" / name for name in table.file], resize_center_crop(config.image_size),
                             config.image_size), keywords,
                  translations["automatic"].to_dict(), translations["manual"].to_dict(), None, None,
                  f"bynke-data-root:{Path(folder).resolve()}:{len(table)}:size={config.image_size}",
                  labelled_duplicates=_labelled_pairs(needed[1], table.file))


def _imet_images(config: Config, data_root) -> Images:
    """The iMet collection's training images and their attributes as keywords. Its labels are English already
    (``culture::american``): the keyword is the attribute name, its prompt text the part after ``::``, the same
    in every label language (``has_translations`` is False: the label-language claim needs Bynke's data)."""
    from domainknowledge.data.bundled import DataNotFoundError
    from domainknowledge.data.real.image_files import ImageFiles, resize_center_crop

    if data_root is None:
        raise DataNotFoundError(f"the iMet collection needs a data_root (run with --data-root DIR); expected "
                                f"{IMET_LAYOUT}")
    folder = next((Path(data_root).expanduser() / name for name in IMET_FOLDERS
                   if (Path(data_root).expanduser() / name).is_dir()), None)
    if folder is None:
        raise DataNotFoundError(f"no folder {' or '.join(IMET_FOLDERS)} under {data_root}; expected {IMET_LAYOUT}")
    missing = [name for name in ("train.csv", "labels.csv", "train") if not (folder / name).exists()]
    if missing:
        raise DataNotFoundError(f"{folder} lacks {', '.join(missing)}; expected {IMET_LAYOUT}")
    table = pd.read_csv(folder / "train.csv", dtype={"id": str, "attribute_ids": str})
    names = pd.read_csv(folder / "labels.csv").set_index("attribute_id")["attribute_name"].to_dict()
    if not {"id", "attribute_ids"} <= set(table.columns):
        raise DataNotFoundError(f"{folder / 'train.csv'} needs the columns id, attribute_ids; expected {IMET_LAYOUT}")
    unknown = sorted({int(a) for ids in table.attribute_ids.dropna() for a in ids.split()} - set(names))
    if unknown:
        raise ValueError(f"{folder / 'train.csv'} uses attribute ids {unknown[:5]} that labels.csv does not name")
    keywords = [[names[int(a)] for a in ids.split()] if isinstance(ids, str) else [] for ids in table.attribute_ids]
    files = [f"{image_id}.png" for image_id in table["id"]]
    readable = {name: name.split("::", 1)[-1] for name in names.values()}
    pairs = folder / "duplicate_pairs.csv"
    return Images(ImageFiles([folder / "train" / f for f in files], resize_center_crop(config.image_size),
                             config.image_size), keywords, readable,
                  readable, None, None, f"imet:{folder.resolve()}:{len(table)}:size={config.image_size}",
                  labelled_duplicates=_labelled_pairs(pairs, files) if pairs.is_file() else None,
                  has_translations=False)


def keyword_statistics(keyword_lists) -> tuple[pd.Series, pd.Series]:
    """``(occurrences per keyword, descending; keywords per labelled image)`` for Figs. 3.2-3.4."""
    counts = pd.Series([w for words in keyword_lists for w in words]).value_counts()
    per_image = pd.Series([len(words) for words in keyword_lists if words])
    return counts, per_image


@dataclass
class Prepared:
    """The prepared data set of one split seed: embeddings and 0/1 labels per split, the kept vocabulary
    (Norwegian) and its translations, and what the preparation measured."""

    embeddings: dict[str, np.ndarray]
    language: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    indices: dict[str, np.ndarray]
    vocabulary: list[str]
    translations: dict[str, list[str]]
    keywords: list[list[str]]
    statistics: dict[str, float]
    pairs: pd.DataFrame


def embed(images: Images, config: Config, device="cpu", cache_dir=None) -> tuple[np.ndarray, np.ndarray, object]:
    """Frozen embeddings of all images, cached: ``(image features (N, D_i), language-image embeddings (N, D_t),
    text encoder)``.

    The image features (``config.image_encoder``) serve the data preparation and every image-based model; the
    language-image embeddings (``config.text_encoder``) the zero-shot models. Every profile names one
    image-text model for both, as the thesis has one CLIP: then both are the same array, computed once.
    """
    from domainknowledge.models.encoders import cached_image_embeddings, load_encoder

    text_encoder = load_encoder(config.text_encoder, device=device, progress=False)
    language = cached_image_embeddings(text_encoder, images.images, data_key=images.data_key, cache_dir=cache_dir,
                                       progress=False)
    if config.image_encoder == config.text_encoder:
        return language, language, text_encoder
    image_encoder = load_encoder(config.image_encoder, device=device, progress=False)
    return (cached_image_embeddings(image_encoder, images.images, data_key=images.data_key, cache_dir=cache_dir,
                                    progress=False), language, text_encoder)


def prepare(images: Images, embeddings: np.ndarray, language: np.ndarray, config: Config, seed: int = 0) -> Prepared:
    """Sec. 3.1.2 on the embedded images: see the module docstring. ``embeddings`` (image features) decide the
    duplicates and the strata; ``language`` (language-image embeddings) are split alongside for zero-shot.
    ``seed`` draws the labelled pairs and the split."""
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero([len(k) > 0 for k in images.keywords])
    x = embeddings[labelled]
    keywords = [images.keywords[i] for i in labelled]
    if images.duplicate_group is not None:                         # the generator's truth stands in for a person
        nearest, similarity = ns.nearest_other(x)
        pick = rng.choice(len(x), size=min(config.labelled_pairs, len(x)), replace=False)
        group = images.duplicate_group[labelled]
        pairs = pd.DataFrame({"similarity": similarity[pick], "duplicate": group[pick] == group[nearest[pick]]})
    elif images.labelled_duplicates is not None:
        table = images.labelled_duplicates.dropna(subset=["a", "b"])
        a, b = table.a.astype(int).to_numpy(), table.b.astype(int).to_numpy()
        pairs = pd.DataFrame({"similarity": np.sum(embeddings[a] * embeddings[b], axis=1),
                              "duplicate": table.duplicate.astype(bool).to_numpy()})
    else:                                                          # nobody labelled pairs: no duplicate removal
        pairs = pd.DataFrame({"similarity": np.zeros(0, np.float32), "duplicate": np.zeros(0, bool)})
    if len(pairs):
        suspected, certain, _ = ns.duplicate_thresholds(pairs.similarity, pairs.duplicate)
        kept, merged = ns.deduplicate(x, keywords, suspected, certain)
    else:
        suspected = certain = float("nan")
        kept, merged = np.arange(len(x)), [list(words) for words in keywords]
    x = x[kept]
    x_language = language[labelled][kept]
    strata = ns.max_softmax_similarity(x, config.stratify_temperature)
    train, validation, test = ns.stratified_split(strata, seed=seed)
    counts = pd.Series([w for i in train for w in merged[i]]).value_counts()
    vocabulary = sorted(counts.index[counts >= config.min_keyword_count], key=lambda w: (-counts[w], w))
    labels = ns.keyword_matrix(merged, vocabulary)
    split = {"train": train, "validation": validation, "test": test}
    all_counts, _ = keyword_statistics(keywords)
    statistics = {"labelled images": len(labelled), "unlabelled images": len(images.keywords) - len(labelled),
                  "suspected threshold": suspected, "certain threshold": certain,
                  "removed duplicates": len(labelled) - len(kept), "keywords before filtering": len(all_counts),
                  "keywords used once": int((all_counts == 1).sum()), "keywords kept": len(vocabulary),
                  "test prevalence": float(labels[test].mean()),
                  "true duplicates among the labelled pairs": int(pairs.duplicate.sum()),
                  # images that re-render an earlier labelled one: what a perfect removal would take out
                  "re-renders among the labelled images": (
                      len(labelled) - len(np.unique(images.duplicate_group[labelled]))
                      if images.duplicate_group is not None else float("nan"))}
    translations = {"original": vocabulary, "automatic": [images.automatic.get(w, w) for w in vocabulary],
                    "manual": [images.manual.get(w, w) for w in vocabulary]}
    return Prepared({k: x[v] for k, v in split.items()}, {k: x_language[v] for k, v in split.items()},
                    {k: labels[v] for k, v in split.items()},
                    {k: labelled[kept][v] for k, v in split.items()}, vocabulary, translations,
                    [merged[i] for i in range(len(merged))], statistics, pairs)


# ---------------------------------------------------------------------------------------------- models
def _study(seed: int, trials: int):
    """An optuna study with TPE (Bergstra et al. 2011) whose random start-up is a quarter of the ``trials``
    (2 to 10): optuna's default start-up of 10 would spend a 10-trial search entirely on random draws."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = int(np.clip(trials // 4, 2, 10))
    return optuna.create_study(direction="maximize",
                               sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup))


@dataclass
class ModelResult:
    """One model: validation F2 of the chosen setting, its threshold and hyper-parameters, test scores."""

    name: str
    group: str
    validation_f2: float
    threshold: float
    parameters: dict
    test_scores: np.ndarray
    test_metrics: dict = field(default_factory=dict)


def _finish(name, group, validation_scores, test_scores, test_labels, validation_labels, parameters):
    threshold, f2 = ns.best_f2_threshold(validation_scores, validation_labels)
    return ModelResult(name, group, f2, threshold, parameters, test_scores,
                       ns.multilabel_metrics(test_scores, test_labels, threshold))


def _tune(objective, trials: int, seed: int):
    """Run ``trials`` optuna trials of ``objective(trial) -> (validation F2, payload)``; the best payload."""
    study = _study(seed, trials)
    payloads = {}

    def wrapped(trial):
        value, payload = objective(trial)
        payloads[trial.number] = payload
        return value

    study.optimize(wrapped, n_trials=trials)
    return study.best_params, payloads[study.best_trial.number]


def text_embeddings(encoder, translations: dict[str, list[str]], cache_dir=None) -> dict[str, tuple[np.ndarray, tuple]]:
    """Caption embeddings ``(C, K, D)`` and their contexts per label language (Norwegian contexts added for
    the original labels, as in Sec. 4.1.2)."""
    from domainknowledge.models.encoders import cached_text_embeddings

    out = {}
    for language, names in translations.items():
        contexts = ENGLISH_CONTEXTS + (NORWEGIAN_CONTEXTS if language == "original" else ())
        captions = [context.format(name) for name in names for context in contexts]
        e = cached_text_embeddings(encoder, captions, cache_dir=cache_dir)
        out[language] = (e.reshape(len(names), len(contexts), -1), contexts)
    return out


def run_models(prepared: Prepared, captions: dict, config: Config, seed: int = 0, device="cpu",
               progress=None) -> dict[str, ModelResult]:
    """Every model of Sec. 3.2 (and Tip-Adapter), tuned on validation, read once on test. Keys are model names."""
    x, xt, y = prepared.embeddings, prepared.language, prepared.labels
    results: dict[str, ModelResult] = {}
    say = progress or (lambda message: None)

    def evaluate(name, group, score, parameters):
        results[name] = _finish(name, group, score("validation"), score("test"), y["test"], y["validation"],
                                parameters)

    # zero-shot: context weights in [0, 100] by TPE, threshold exact (Sec. 3.2.1, Table 4.1)
    zero_shot_vectors = {}
    for language in LANGUAGES:
        embeddings, contexts = captions[language]

        def objective(trial, embeddings=embeddings, contexts=contexts):
            weights = np.array([trial.suggest_float(f"w{k}", 0, 100) for k in range(len(contexts))])
            if weights.sum() <= 0:
                weights = np.ones_like(weights)
            vectors = ns.weighted_prompt_classifier(embeddings, weights)
            return ns.best_f2_threshold(ns.rescaled_cosine_scores(xt["validation"], vectors), y["validation"])[1], \
                (vectors, weights)

        _, (vectors, weights) = _tune(objective, config.trials, seed)
        zero_shot_vectors[language] = vectors
        evaluate(f"zero-shot ({language})", "language-image",
                 lambda split, v=vectors: ns.rescaled_cosine_scores(xt[split], v),
                 {"context weights": dict(zip(contexts, np.round(weights, 1)))})
    say("zero-shot done")
    # best single context, manual labels (Table 4.5's last row)
    embeddings, contexts = captions["manual"]
    single = [ns.best_f2_threshold(ns.rescaled_cosine_scores(
        xt["validation"], ns.weighted_prompt_classifier(embeddings, np.eye(len(contexts))[k])), y["validation"])[1]
        for k in range(len(contexts))]
    best_context = int(np.argmax(single))
    vectors = ns.weighted_prompt_classifier(embeddings, np.eye(len(contexts))[best_context])
    evaluate("zero-shot (manual, single context)", "language-image",
             lambda split: ns.rescaled_cosine_scores(xt[split], vectors), {"context": contexts[best_context]})

    # 1-NN and neighbour search (Sec. 3.2.2)
    def search(split, **parameters):
        return ns.neighbour_search(x[split], x["train"], y["train"], device=device, **parameters).scores

    evaluate("1-NN", "image-based", lambda split: search(split, temperature=1.0, max_difference=0.0,
                                                           max_neighbours=1), {"M": 1})

    def objective(trial):
        parameters = {"temperature": trial.suggest_float("T", 1, 200, log=True),
                      "max_difference": trial.suggest_float("delta", 0, 8),
                      "max_neighbours": trial.suggest_int("M", 1, 200, log=True)}
        return ns.best_f2_threshold(search("validation", **parameters), y["validation"])[1], parameters

    _, best = _tune(objective, config.trials, seed)
    evaluate("neighbour search", "image-based", lambda split: search(split, **best), best)
    say("neighbour search done")

    # neighbour nets (Sec. 3.2.3, Table 4.7)
    def tune_temperature(make):
        def objective(trial):
            temperature = trial.suggest_float("T", 1, 300, log=True)
            net = make(temperature)
            return ns.best_f2_threshold(ns.net_scores(net, x["validation"]), y["validation"])[1], temperature

        return _tune(objective, config.trials, seed)[1]

    def tune_fine_tuning(make, temperature, self_keys):
        def objective(trial):
            parameters = {"epochs": trial.suggest_int("epochs", 1, config.max_epochs),
                          "batch_size": trial.suggest_int("batch", *FINE_TUNE_BATCH_SIZES, log=True),
                          "learning_rate": trial.suggest_float("lr", 1e-5, 100, log=True),
                          "momentum": trial.suggest_float("momentum", 0, 0.99)}
            net = ns.fine_tune(make(temperature), x["train"], y["train"], seed=seed, device=device,
                               keys_are_features=self_keys, **parameters)
            score = ns.net_scores(net, x["validation"])
            if not np.isfinite(score).all():
                return 0.0, (parameters, None)
            return ns.best_f2_threshold(score, y["validation"])[1], (parameters, net)

        parameters, net = _tune(objective, config.fine_tune_trials, seed)[1]
        if net is None:
            net = make(temperature)
        return parameters, net

    k = config.prototypes_per_class
    variants = [  # name, kind, prototypes, clustering, labels, fine-tune
        ("simple", "simple", None, None, None, False), ("simple, fine-tuned", "simple", None, None, None, True),
        (f"simple, {k} random prototypes, one-hot", "simple", k, False, "one-hot", False),
        (f"simple, {k} k-means prototypes, one-hot", "simple", k, True, "one-hot", False),
        (f"simple, {k} k-means prototypes, average", "simple", k, True, "average", False),
        (f"simple, {k} k-means prototypes, average, fine-tuned", "simple", k, True, "average", True),
        (f"class-wise, {k} k-means prototypes", "class-wise", k, True, "average", False),
        (f"class-wise, {k} k-means prototypes, fine-tuned", "class-wise", k, True, "average", True),
        (f"class-wise, {k} random prototypes, fine-tuned", "class-wise", k, False, "average", True),
    ]
    for name, kind, per_class, clustering, label_mode, tuned in variants:
        if per_class is None:
            keys, values, membership = x["train"], y["train"], y["train"]
        else:
            keys, values, membership = ns.class_prototypes(x["train"], y["train"], per_class, clustering=clustering,
                                                           label_mode=label_mode, seed=seed)

        def make(temperature, keys=keys, values=values, membership=membership, kind=kind):
            if kind == "simple":
                return ns.SimpleNeighbourNet(keys, values, temperature).to(device)
            return ns.ClassWiseNeighbourNet(keys, membership, temperature).to(device)

        temperature = tune_temperature(make)
        parameters = {"T": temperature}
        net = make(temperature)
        if tuned:
            fine, net = tune_fine_tuning(make, temperature, self_keys=per_class is None)
            parameters.update(fine)
        evaluate(f"neighbour net: {name}", "neighbour net", lambda split, net=net: ns.net_scores(net, x[split]),
                 parameters)
    say("neighbour nets done")

    # Tip-Adapter with its zero-shot residual (Sec. 6.3's extension), manual labels
    zero_shot = {split: ns.rescaled_cosine_scores(xt[split], zero_shot_vectors["manual"])
                 for split in ("validation", "test")}
    import torch

    cache_keys = torch.as_tensor(x["train"], dtype=torch.float32, device=device)       # moved once, not per trial
    cache_values = torch.as_tensor(y["train"], dtype=torch.float32, device=device)

    def tip_adapter(split, parameters):
        return ns.tip_adapter_scores(x[split], cache_keys, cache_values, zero_shot[split], device=device,
                                     **parameters)

    def objective(trial):
        parameters = {"alpha": trial.suggest_float("alpha", 0.01, 100, log=True),
                      "beta": trial.suggest_float("beta", 0.1, 100, log=True)}
        return ns.best_f2_threshold(tip_adapter("validation", parameters), y["validation"])[1], parameters

    _, best_tip = _tune(objective, config.trials, seed)
    evaluate("Tip-Adapter (zero-shot + cache)", "extension", lambda split: tip_adapter(split, best_tip), best_tip)
    return results


def best_by_validation(summary: pd.DataFrame, names) -> str:
    """The model of ``names`` with the highest mean validation F2 in ``summary`` (:func:`summarise_runs`): the
    "best variant" of a model that Table 4.8 compares, chosen without reading the test set."""
    names = list(names)
    if not names:
        raise ValueError("name at least one model to choose from")
    return max(names, key=lambda name: float(summary.loc[name, "validation F2"]))


def chosen_settings(runs: list[dict[str, ModelResult]], names) -> pd.DataFrame:
    """Table 4.4: the hyper-parameters the search chose for each model of ``names`` in each run, one row per
    ``(model, run)`` (a model without a setting has NaN there)."""
    rows = [{"model": name, "run": r, **runs[r][name].parameters} for r in range(len(runs)) for name in names]
    return pd.DataFrame(rows).set_index(["model", "run"])


def summarise_runs(runs: list[dict[str, ModelResult]]) -> pd.DataFrame:
    """Test metrics per model: mean and standard deviation over runs (columns ``<metric>``, ``<metric> sd``)."""
    rows = []
    for r, results in enumerate(runs):
        for name, result in results.items():
            rows.append({"model": name, "group": result.group, "run": r, "validation F2": result.validation_f2,
                         "threshold": result.threshold, **result.test_metrics})
    frame = pd.DataFrame(rows)
    metrics = [c for c in frame.columns if c not in ("model", "group", "run")]
    order = list(dict.fromkeys(frame.model))
    mean = frame.groupby("model")[metrics].mean().loc[order]
    sd = frame.groupby("model")[metrics].std(ddof=1).loc[order].add_suffix(" sd") if len(runs) > 1 else \
        frame.groupby("model")[metrics].mean().loc[order].mul(np.nan).add_suffix(" sd")
    groups = frame.drop_duplicates("model").set_index("model").group.loc[order]
    return pd.concat([groups, mean, sd], axis=1)


# ------------------------------------------------------------------------------------ paired tests
def _f2(predicted, labels) -> float:
    tp = float((predicted & labels).sum())
    return 5 * tp / max(5 * tp + 4 * float((~predicted & labels).sum()) + float((predicted & ~labels).sum()), 1)


def _precision(predicted, labels) -> float:
    return float((predicted & labels).sum()) / max(float(predicted.sum()), 1)


def _subset_accuracy(predicted, labels) -> float:
    return float(np.mean((predicted == labels).all(axis=1)))


# the micro metrics of Table 4.8 that depend on the thresholded suggestions, on boolean (N, C) arrays
PREDICTION_METRICS = {"F2": _f2, "precision": _precision, "subset accuracy": _subset_accuracy}


def paired_model_test(runs: list[dict[str, ModelResult]], test_labels: list[np.ndarray], first: str, second: str,
                      metric: str = "F2", *, iterations: int = 2000, seed: int = 0) -> dict:
    """Whether model ``first`` differs from model ``second`` on ``metric`` (a key of
    :data:`PREDICTION_METRICS`), paired by test image: Yeh's randomized matched-pair test, stratified over the
    split seeds (:func:`~domainknowledge.significance.stratified_matched_pair_test`; each image's suggestions
    are swapped whole). ``runs`` are :func:`run_models` results per split seed and ``test_labels`` their
    ``(N, C)`` test labels. Returns ``{"difference": mean over runs of first minus second, "p_value"}``."""
    from domainknowledge.significance import stratified_matched_pair_test

    strata = []
    for results, labels in zip(runs, test_labels):
        a, b = (results[name].test_scores >= results[name].threshold for name in (first, second))
        strata.append((a, b, np.asarray(labels) > 0))
    return stratified_matched_pair_test(strata, PREDICTION_METRICS[metric], iterations=iterations, seed=seed)


def all_positive_f2(labels) -> float:
    """Micro F2 of suggesting every keyword for every image, ``5 p / (4 p + 1)`` with ``p`` the prevalence:
    the F2 a model reaches by knowing nothing, when the threshold sits below all its scores."""
    p = float(np.mean(np.asarray(labels) > 0))
    return 5 * p / (4 * p + 1)


def zero_shot_chance(runs: list[dict[str, ModelResult]], test_labels: list[np.ndarray], name: str = "zero-shot (manual)",
                     *, resamples: int = 200, seed: int = 0) -> dict:
    """Is model ``name`` above chance? The micro ROC AUC over all (image, keyword) pairs, averaged over the
    split seeds, with a 95 % bootstrap interval over test images (each run resampled on its own), and its mean
    F2 against the mean F2 of suggesting everything (:func:`all_positive_f2`). Returns ``{"auc", "low",
    "high", "f2", "all_positive_f2"}``."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    observed, boot = [], []
    for results, labels in zip(runs, test_labels):
        scores, y = results[name].test_scores, np.asarray(labels) > 0
        observed.append(roc_auc_score(y.ravel(), scores.ravel()))
        values = []
        for _ in range(resamples):
            pick = rng.integers(0, len(y), len(y))
            if y[pick].all() or not y[pick].any():
                continue
            values.append(roc_auc_score(y[pick].ravel(), scores[pick].ravel()))
        boot.append(np.asarray(values[:resamples]))
    size = min(len(b) for b in boot)
    mean_boot = np.mean([b[:size] for b in boot], axis=0)
    low, high = np.percentile(mean_boot, [2.5, 97.5])
    return {"auc": float(np.mean(observed)), "low": float(low), "high": float(high),
            "f2": float(np.mean([r[name].test_metrics["F2"] for r in runs])),
            "all_positive_f2": float(np.mean([all_positive_f2(labels) for labels in test_labels]))}


def keyword_group_auc(runs: list[dict[str, ModelResult]], prepared_runs: list[Prepared], keywords,
                      name: str = "zero-shot (manual)") -> float:
    """Mean per-keyword ROC AUC of model ``name`` over the ``keywords`` (original labels) that each run kept and
    whose test labels are neither all 0 nor all 1, over all runs; NaN when none qualifies (e.g. a data set
    without those keywords)."""
    wanted, values = set(keywords), []
    for results, prepared in zip(runs, prepared_runs):
        columns = [c for c, word in enumerate(prepared.vocabulary) if word in wanted]
        auc = ns.per_class_roc_auc(results[name].test_scores[:, columns], prepared.labels["test"][:, columns])
        values.extend(auc[np.isfinite(auc)])
    return float(np.mean(values)) if values else float("nan")


def worked_example(prepared: Prepared, results: dict[str, ModelResult], parameters: dict, query: int,
                   top: int = 5) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Tables 4.10-4.11 for the test image ``query``: ``(matches, suggestions, match indices)``.

    ``matches``: its ``top`` neighbours with their softmax weights and (manual English) labels;
    ``suggestions``: per model, the classes at or above its threshold with their scores.
    """
    names = prepared.translations["manual"]
    x, y = prepared.embeddings, prepared.labels
    found = ns.neighbour_search(x["test"][query:query + 1], x["train"], y["train"], **parameters)
    rows = []
    for rank in range(top):
        n = found.indices[0, rank]
        if n < 0:
            break
        rows.append({"rank": rank + 1, "weight": found.weights[0, rank],
                     "labels": ", ".join(names[c] for c in np.flatnonzero(y["train"][n]))})
    suggestions = []
    for model, result in results.items():
        scores = result.test_scores[query]
        chosen = np.argsort(-scores)
        chosen = [c for c in chosen if scores[c] >= result.threshold]
        suggestions.append({"model": model, "threshold": result.threshold, "suggestions": ", ".join(
            f"{names[c]} {100 * scores[c]:.1f} %" + (" ✓" if y["test"][query, c] else "") for c in chosen[:8])
            + (f" (+{len(chosen) - 8} more)" if len(chosen) > 8 else "")})
    matches = found.indices[0, :len(rows)]
    return pd.DataFrame(rows), pd.DataFrame(suggestions), matches


def scale_benchmark(embeddings: np.ndarray, references: int, queries: int, k: int = 32, seed: int = 0,
                    device="cpu", chunk_size: int = 256) -> dict[str, float]:
    """Neighbour search over ``references`` reference embeddings (the real ones replicated with small noise,
    renormalised) against ``faiss.IndexFlatIP``: throughput of both and whether their top-``k`` agree."""
    rng = np.random.default_rng(seed)
    refs = embeddings[rng.integers(len(embeddings), size=references)].astype(np.float32)
    refs += 0.05 * rng.standard_normal(refs.shape, dtype=np.float32)
    refs /= np.linalg.norm(refs, axis=1, keepdims=True)
    q = refs[rng.choice(references, size=queries, replace=False)] + rng.normal(0, 0.05, (queries, refs.shape[1]))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    labels = (rng.random((references, 8)) < 0.1).astype(np.float32)
    start = time.perf_counter()
    ours = ns.neighbour_search(q, refs, labels, temperature=1.0, max_difference=1e9, max_neighbours=k, early_stop=1.0,
                               chunk_size=chunk_size, device=device)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    _, theirs = ns.faiss_neighbours(q, refs, k)
    faiss_seconds = time.perf_counter() - start
    same = np.mean([set(a) == set(b) for a, b in zip(ours.indices, theirs)])
    return {"references": references, "queries": queries, "k": k, "dimension": refs.shape[1],
            "neighbour search queries/s": queries / ours_seconds, "faiss IndexFlatIP queries/s": queries / faiss_seconds,
            "same top-k sets": float(same)}


# ---------------------------------------------------------------------------------------------- figures
def plot_keyword_statistics(keyword_lists, top: int = 45, translations: dict | None = None):
    """Figs. 3.2-3.4: the ``top`` most common keywords, occurrences per keyword, keywords per image."""
    import matplotlib.pyplot as plt

    counts, per_image = keyword_statistics(keyword_lists)
    fig = plt.figure(figsize=(11, 6.5))
    grid = fig.add_gridspec(2, 2, height_ratios=(1.25, 1))
    ax = fig.add_subplot(grid[0, :])
    shown = counts.iloc[:top]
    names = [f"{w} ({translations[w]})" if translations and w in translations and translations[w] != w else w
             for w in shown.index]
    ax.bar(range(len(shown)), shown.to_numpy(), color="#4c72b0")
    ax.set_xticks(range(len(shown)), names, rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("images")
    ax.set_title(f"The {len(shown)} most common keywords (Fig. 3.2 analogue)")
    ax = fig.add_subplot(grid[1, 0])
    ax.hist(counts.to_numpy(), bins=np.logspace(0, np.log10(max(counts.max(), 2)) + 0.01, 25), color="#55a868")
    ax.set_xscale("log")
    ax.set_xlabel("occurrences of a keyword")
    ax.set_ylabel("keywords")
    ax.set_title(f"Occurrences per keyword ({(counts == 1).sum()} of {len(counts)} used once; Fig. 3.3)")
    ax = fig.add_subplot(grid[1, 1])
    values = per_image.value_counts().sort_index().loc[lambda s: s.index <= 10]
    ax.bar(values.index, values.to_numpy(), color="#c44e52")
    ax.set_xlabel("keywords of a labelled image")
    ax.set_ylabel("images")
    ax.set_title("Keywords per image (Fig. 3.4)")
    return fig


def plot_model_comparison(summary: pd.DataFrame, models, metrics=("F2", "recall", "precision", "ROC AUC"),
                          title: str | None = None):
    """Table 4.8 as grouped bars: ``metrics`` of ``models`` (rows of :func:`summarise_runs`), with run spread."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.8))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        means = [summary.loc[model, m] for m in metrics]
        spread = [summary.loc[model, f"{m} sd"] for m in metrics]
        ax.bar(np.arange(len(metrics)) + (i - (len(models) - 1) / 2) * width, means, width,
               yerr=None if np.isnan(spread).all() else spread, capsize=2, label=model)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test value (micro)")
    ax.legend(fontsize=8, ncols=2, loc="upper left")
    if title:
        ax.set_title(title)
    return fig


def plot_per_class_auc(frame: pd.DataFrame, title: str | None = None):
    """Table 4.9 as a heat map: per-class ROC AUC, classes as rows, models as columns."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.35 * len(frame) + 1.5), layout="constrained")
    image = ax.imshow(frame.to_numpy(), cmap="viridis", vmin=0.4, vmax=1.0, aspect="auto")
    ax.set_xticks(range(frame.shape[1]), frame.columns, rotation=30, ha="right")
    ax.set_yticks(range(frame.shape[0]), frame.index)
    for (i, j), value in np.ndenumerate(frame.to_numpy()):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.75 else "white")
    fig.colorbar(image, ax=ax, label="ROC AUC")
    if title:
        ax.set_title(title)
    return fig

"""Experiment drivers of the SimLoss chapter (Kobs 2023, Ch. 14): configurations, data, sweeps and tests.

The chapter runs two sweeps through the same code at every profile:

* **ordinal** (Sec. 14.2, Table 14.1): age estimation with the Niu et al. CNN, SimLoss with the class-order
  matrix ``S = r^|i-j|`` (Eq. 14.10) for each reduction factor ``r``;
* **semantic** (Table 14.2): image classification with LeNet, SimLoss with the class-name matrix of
  Eq. 14.11 for each lower bound ``l``.

Each sweep trains one model per grid value and run seed (a value whose matrix equals an earlier value's,
such as every ``l`` above the largest class similarity, reuses those runs, which training would repeat
exactly), selects nothing on the test set (the best grid value is chosen on validation by
:func:`best_on_validation`) and returns a :class:`Sweep`: a tidy
``pandas.DataFrame`` of validation and test metrics plus the test predictions needed for the significance
tests (:func:`significance_tests`) and for Fig. 14.2 (:func:`mean_predicted_distribution`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from domainknowledge import metrics
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.data.splits import per_class_split, random_split
from domainknowledge.models.cnn import LeNet, NiuCNN, Standardize
from domainknowledge.principles.losses import SimLoss, ordinal_similarity
from domainknowledge.training import TrainingConfig, as_image_tensor, predict_proba, train_classifier

__all__ = ["AGE_DATASETS", "CONFIGS", "FASHION_SUPERCLASSES", "FOCUS_AGE", "SEMANTIC_DATASETS", "AgeTask",
           "Config", "FASHION_WORDNET_LEMMAS", "NAME_SIMILARITIES", "SemanticTask", "Sweep", "best_on_validation",
           "class_name_similarity", "sa_headroom",
           "collapse_statistics", "compare_with_baseline", "describe_profiles", "example_images",
           "label_distribution", "load_age_task", "load_semantic_task",
           "mean_predicted_distribution", "median_guess_mae", "miss_cause", "p_value_against_baseline", "results_table", "run_ordinal_sweep", "run_seeds",
           "run_semantic_sweep", "significance_tests", "summary_means", "superclass_similarity_contrast"]

AGE_DATASETS = ("ordinal_faces", "utkface", "afad")
SEMANTIC_DATASETS = ("fashion_mnist", "cifar100")
#: Where the class similarity of Eq. 14.11 comes from: WordNet's noun hierarchy (Wu-Palmer) or the cosine of
#: MiniLM sentence vectors or GoogleNews Word2Vec vectors of the class names (the thesis' choice).
NAME_SIMILARITIES = ("wordnet", "minilm", "word2vec")
FOCUS_AGE = 30   # Fig. 14.2b: the mean output for all examples of this age

# Superclasses of Fashion-MNIST for SA and FSA, grouped by what a garment is worn on / used for, as a shop's
# departments would: four upper-body garments, three kinds of footwear; trousers, dresses and bags have no
# sibling class and stay alone (for them SA equals accuracy).
FASHION_SUPERCLASSES = {
    "tops": ("T-shirt/top", "Pullover", "Coat", "Shirt"),
    "footwear": ("Sandal", "Sneaker", "Ankle boot"),
    "trousers": ("Trouser",),
    "dresses": ("Dress",),
    "bags": ("Bag",),
}

#: The WordNet lemma of each Fashion-MNIST class name that is not itself a WordNet noun ("Ankle boot": WordNet
#: has no ankle boot, and its "boot" is the footwear's most frequent sense).
FASHION_WORDNET_LEMMAS = {"T-shirt/top": "t-shirt", "Ankle boot": "boot"}

AGE_METRICS = {"accuracy": True, "mae": False, "mse": False}              # name -> higher is better
SEMANTIC_METRICS = {"accuracy": True, "sa": True, "fsa": True}


@dataclass(frozen=True)
class Config:
    """What one profile of the SimLoss chapter runs. Every field is shown on the chapter page.

    Age experiment: ``age_datasets`` (``ordinal_faces`` stand-in, ``utkface``, ``afad``), ``age_images``
    (images drawn or kept; ``None`` = all), ``image_size`` (px, square), ``niu_channels`` (convolution
    widths, (20, 40, 80) in the thesis), ``reduction_factors`` (the grid of ``r``), ``age_training``.
    Semantic experiment: ``semantic_dataset``, ``semantic_per_class`` (train, validation, test images per
    class; ``None`` = all; a float validation entry is a share of each class' training images, the rest
    training), ``lower_bounds`` (the grid of ``l``), ``semantic_training``, ``name_similarity`` (where the
    class similarity comes from: ``wordnet``, ``minilm`` or ``word2vec``, see :data:`NAME_SIMILARITIES`).
    Both: ``runs`` (seeds per grid value), ``significance`` (``per-example``
    or ``per-run`` pairing of the Wilcoxon test), ``max_age`` (oldest stand-in age).
    """

    age_datasets: tuple[str, ...]
    age_images: int | None
    image_size: int
    niu_channels: tuple[int, int, int]
    reduction_factors: tuple[float, ...]
    age_training: TrainingConfig
    semantic_dataset: str
    semantic_per_class: tuple[int | None, int | float, int | None]
    lower_bounds: tuple[float, ...]
    semantic_training: TrainingConfig
    name_similarity: str
    runs: int
    significance: str
    max_age: int = 79

    def __post_init__(self):
        unknown = set(self.age_datasets) - set(AGE_DATASETS)
        if unknown or not self.age_datasets:
            raise ValueError(f"age_datasets must be a non-empty subset of {AGE_DATASETS}, got {self.age_datasets}")
        if self.semantic_dataset not in SEMANTIC_DATASETS:
            raise ValueError(f"semantic_dataset must be one of {SEMANTIC_DATASETS}, got {self.semantic_dataset!r}")
        if self.name_similarity not in NAME_SIMILARITIES:
            raise ValueError(f"name_similarity must be one of {NAME_SIMILARITIES}, got {self.name_similarity!r}")
        if self.significance not in ("per-example", "per-run"):
            raise ValueError(f"significance must be 'per-example' or 'per-run', got {self.significance!r}")
        if 0.0 not in self.reduction_factors or 0.99 not in self.lower_bounds:
            raise ValueError("the grids must contain the cross-entropy baselines r = 0.0 and l = 0.99")
        if self.runs < 1:
            raise ValueError(f"runs must be at least 1, got {self.runs}")


R_GRID = tuple(round(0.1 * i, 1) for i in range(10))                   # 0.0, 0.1, ..., 0.9
L_GRID = tuple(round(0.1 * i, 1) for i in range(10)) + (0.99,)         # 0.0, ..., 0.9, 0.99

CONFIGS: dict[str, Config] = {
    "smoke": Config(
        age_datasets=("ordinal_faces",), age_images=1500, image_size=32, niu_channels=(8, 16, 32),
        reduction_factors=(0.0, 0.5, 0.9),
        age_training=TrainingConfig(max_epochs=2, batch_size=64, patience=10, monitor="mae"),
        semantic_dataset="fashion_mnist", semantic_per_class=(60, 20, 40), lower_bounds=(0.0, 0.5, 0.99),
        semantic_training=TrainingConfig(max_epochs=2, batch_size=128, patience=20, monitor="accuracy",
                                         learning_rate=3e-3),
        name_similarity="wordnet", runs=1, significance="per-example"),
    "cpu": Config(
        age_datasets=("ordinal_faces",), age_images=2200, image_size=32, niu_channels=(8, 16, 32),
        reduction_factors=R_GRID,
        age_training=TrainingConfig(max_epochs=60, batch_size=64, patience=10, monitor="mae"),
        semantic_dataset="fashion_mnist", semantic_per_class=(150, 100, 300), lower_bounds=L_GRID,
        semantic_training=TrainingConfig(max_epochs=60, batch_size=128, patience=5, monitor="accuracy",
                                         learning_rate=3e-3),
        name_similarity="wordnet", runs=2, significance="per-example"),
    "paper": Config(
        age_datasets=("utkface", "afad"), age_images=None, image_size=60, niu_channels=(20, 40, 80),
        reduction_factors=R_GRID,
        age_training=TrainingConfig(max_epochs=200, batch_size=1024, patience=10, monitor="mae"),
        # the thesis' 450 / 50 / 100 images per class, stated as shares so that any copy of CIFAR-100 splits
        # the same way: 10 % of each class' training images validate, the rest train, all test images test
        semantic_dataset="cifar100", semantic_per_class=(None, 0.1, None), lower_bounds=L_GRID,
        semantic_training=TrainingConfig(max_epochs=1000, batch_size=1024, patience=20, monitor="accuracy"),
        name_similarity="word2vec", runs=10, significance="per-run"),
}


def describe_profiles(configs: dict[str, Config] | None = None) -> pd.DataFrame:
    """A table of every Config field (rows) per profile (columns), to show what each profile changes."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


def run_seeds(seed: int, runs: int) -> tuple[int, ...]:
    """The training seeds of the runs of one grid value: ``1000 * seed + k`` for ``k < runs``."""
    return tuple(1000 * seed + k for k in range(runs))


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgeTask:
    """An age-estimation data set split 60/20/20: images ``(N, C, H, W)`` uint8 and classes ``age - min_age``."""

    name: str
    description: str
    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    min_age: int
    num_classes: int
    is_stand_in: bool

    @property
    def in_channels(self) -> int:
        return self.images["train"].shape[1]


@dataclass(frozen=True)
class SemanticTask:
    """A classification data set with superclasses: images ``(N, C, H, W)`` uint8, labels ``(N,)``."""

    name: str
    description: str
    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    class_names: tuple[str, ...]
    superclass_names: tuple[str, ...]
    superclass_of: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return self.images["train"].shape[1]


def _split_task(images: np.ndarray, labels: np.ndarray, indices: dict[str, np.ndarray]):
    tensors = as_image_tensor(images)
    return ({name: tensors[index] for name, index in indices.items()},
            {name: torch.from_numpy(np.asarray(labels[index], dtype=np.int64)) for name, index in indices.items()})


def load_age_task(config: Config, dataset: str, *, seed: int, data_root=None) -> AgeTask:
    """Load one age data set of ``config`` and split it 60/20/20 with ``seed`` (Sec. 14.2)."""
    if dataset == "ordinal_faces":
        from domainknowledge.data.synthetic.ordinal_faces import make_ordinal_faces

        images, ages = make_ordinal_faces(config.age_images, seed=seed, image_size=config.image_size,
                                          max_age=config.max_age)
        min_age, num_classes = 0, config.max_age + 1
        description = (f"ordinal faces (seeded synthetic stand-in for UTKFace), {len(ages):,} grey "
                       f"{config.image_size}x{config.image_size} images, ages 0-{config.max_age}")
    elif dataset in ("utkface", "afad"):
        from domainknowledge.data.real.ages import load_age_dataset

        images, ages = load_age_dataset(dataset, data_root, image_size=config.image_size,
                                        max_images=config.age_images, seed=seed)
        min_age, num_classes = int(ages.min()), int(ages.max() - ages.min() + 1)
        description = (f"{'UTKFace' if dataset == 'utkface' else 'AFAD'}, {len(ages):,} RGB images resized to "
                       f"{config.image_size}x{config.image_size}, ages {ages.min()}-{ages.max()}")
    else:
        raise ValueError(f"unknown age data set {dataset!r}; choose one of {AGE_DATASETS}")
    split_images, split_labels = _split_task(images, ages - min_age, random_split(len(ages), seed=seed))
    return AgeTask(dataset, description, split_images, split_labels, min_age, num_classes,
                   is_stand_in=dataset == "ordinal_faces")


def _fashion_superclasses(class_names) -> tuple[tuple[str, ...], np.ndarray]:
    names = tuple(FASHION_SUPERCLASSES)
    lookup = {member: index for index, members in enumerate(FASHION_SUPERCLASSES.values()) for member in members}
    return names, np.asarray([lookup[name] for name in class_names], dtype=np.int64)


def load_semantic_task(config: Config, *, seed: int, data_root=None, allow_download: bool = False) -> SemanticTask:
    """Load the semantic data set of ``config`` with ``semantic_per_class`` images per class and split."""
    train_count, validation_count, test_count = config.semantic_per_class
    if config.semantic_dataset == "fashion_mnist":
        from domainknowledge.data.bundled import FASHION_MNIST_CLASSES, load_fashion_mnist

        train_images, train_labels = load_fashion_mnist("train", data_root=data_root, allow_download=allow_download)
        test_images, test_labels = load_fashion_mnist("test", data_root=data_root, allow_download=allow_download)
        from_train = per_class_split(train_labels, {"train": train_count, "validation": validation_count}, seed=seed)
        test_index = per_class_split(test_labels, {"test": test_count}, seed=seed)["test"]
        images = {"train": train_images[from_train["train"]], "validation": train_images[from_train["validation"]],
                  "test": test_images[test_index]}
        labels = {"train": train_labels[from_train["train"]], "validation": train_labels[from_train["validation"]],
                  "test": test_labels[test_index]}
        class_names = FASHION_MNIST_CLASSES
        superclass_names, superclass_of = _fashion_superclasses(class_names)
        description = "Fashion-MNIST (Xiao et al. 2017), grey 28x28"
    else:
        from domainknowledge.data.real.cifar100 import load_cifar100

        cifar = load_cifar100(data_root, seed=seed, train_per_class=train_count,
                              validation_per_class=validation_count, test_per_class=test_count,
                              allow_download=allow_download)
        images = {name: split[0] for name, split in cifar.splits.items()}
        labels = {name: split[1] for name, split in cifar.splits.items()}
        class_names, superclass_names, superclass_of = cifar.class_names, cifar.superclass_names, cifar.superclass_of
        description = "CIFAR-100 without 4 classes (96 classes, 20 superclasses), RGB 32x32"
    sizes = ", ".join(f"{len(labels[name]):,} {name}" for name in ("train", "validation", "test"))
    return SemanticTask(config.semantic_dataset, f"{description}; {sizes} images",
                        {name: as_image_tensor(array) for name, array in images.items()},
                        {name: torch.from_numpy(np.asarray(array, dtype=np.int64)) for name, array in labels.items()},
                        tuple(class_names), tuple(superclass_names), superclass_of)


def class_name_similarity(task: SemanticTask, source: str, *, data_root=None, device: str = "cpu") -> np.ndarray:
    """The similarity ``(C, C)`` in ``[0, 1]`` (diagonal 1) of the class names of ``task``, the raw material of
    Eq. 14.11.

    ``source``: ``minilm`` / ``word2vec``: ``max(0, cos)`` of MiniLM sentence vectors or GoogleNews Word2Vec
    vectors (Sec. 14.2.1); ``wordnet``: the Wu-Palmer similarity of the classes' most frequent noun senses in
    WordNet 3.0 (:mod:`domainknowledge.data.real.wordnet`), the names mapped to WordNet lemmas by
    :data:`FASHION_WORDNET_LEMMAS` for Fashion-MNIST and by their own words otherwise.
    """
    from domainknowledge.principles.losses import cosine_similarity_matrix

    names = [name.replace("_", " ") for name in task.class_names]
    if source == "wordnet":
        from domainknowledge.data.real.wordnet import load_noun_hierarchy

        nouns = load_noun_hierarchy()
        synsets = [nouns.synset(FASHION_WORDNET_LEMMAS.get(name, name)) for name in task.class_names]
        similarity = np.array([[nouns.wup_similarity(a, b) for b in synsets] for a in synsets])
    elif source in ("minilm", "word2vec"):
        from domainknowledge.models.text import encode_texts, word2vec_embeddings

        embeddings = encode_texts(names, device=device) if source == "minilm" else word2vec_embeddings(names, data_root)
        similarity = np.maximum(cosine_similarity_matrix(embeddings), 0.0)
    else:
        raise ValueError(f"unknown class-name similarity {source!r}; choose one of {NAME_SIMILARITIES}")
    np.fill_diagonal(similarity, 1.0)
    return similarity


def example_images(task, classes: Sequence[int], per_class: int = 1, split: str = "train"
                   ) -> tuple[np.ndarray, list[int]]:
    """The first ``per_class`` images of each of ``classes`` in ``split``, for a figure.

    Returns images as NumPy ``(K, H, W)`` (one channel) or ``(K, H, W, 3)`` and their classes; classes
    absent from the split are skipped.
    """
    labels = task.labels[split].numpy()
    chosen = [index for label in classes for index in np.flatnonzero(labels == label)[:per_class]]
    images = task.images[split][chosen].permute(0, 2, 3, 1).numpy()
    return (images[..., 0] if images.shape[-1] == 1 else images), [int(labels[i]) for i in chosen]


def superclass_similarity_contrast(similarity: np.ndarray, superclass_of: np.ndarray) -> dict[str, float]:
    """Mean class similarity of pairs within a superclass vs pairs across superclasses (diagonal excluded).

    ``similarity``: ``(C, C)``; ``superclass_of``: ``(C,)``. A similarity source that agrees with the
    superclasses scores clearly higher within than across; SA rewards exactly those confusions.
    """
    same = np.equal.outer(superclass_of, superclass_of)
    off_diagonal = ~np.eye(len(superclass_of), dtype=bool)
    within, across = similarity[same & off_diagonal], similarity[~same]
    return {"within": float(within.mean()) if within.size else float("nan"), "across": float(across.mean())}


def sa_headroom(sa_baseline: float, test_examples: int, *, thesis_sa: tuple[float, float] = (49.22, 49.93),
                alpha: float = 0.05) -> dict[str, float | bool]:
    """Can a test set show the thesis' SA gain at all? The expected number of test examples that SimLoss moves
    into the target's superclass, against the fewest that a one-sided paired test could find significant.

    Cross-entropy leaves ``(1 - sa_baseline) * test_examples`` predictions outside the target's superclass.
    In Table 14.2 SimLoss moved ``(49.93 - 49.22) / (100 - 49.22)`` = 1.4 % of such mistakes into the right
    superclass (``thesis_sa``: cross-entropy's and SimLoss' test SA in %); the same share of ours is the
    ``expected`` shift. A one-sided sign or signed-rank test needs at least ``ceil(log2(1 / alpha))`` paired
    differences, all in one direction, to reach ``p < alpha`` (5 at 5 %: 1/2^5 = 0.031), so an ``expected``
    shift below that ``minimum`` cannot be significant, whatever the method does: the claim is not testable.
    """
    if not 0.0 <= sa_baseline <= 1.0 or test_examples < 1:
        raise ValueError(f"sa_baseline must be a share in [0, 1] and test_examples positive, got {sa_baseline}, "
                         f"{test_examples}")
    before, after = thesis_sa
    share = (after - before) / (100.0 - before)
    expected = share * (1.0 - sa_baseline) * test_examples
    minimum = float(np.ceil(np.log2(1.0 / alpha)))
    return {"converted_share": share, "cross_superclass_errors": (1.0 - sa_baseline) * test_examples,
            "expected": expected, "minimum": minimum, "testable": bool(expected >= minimum)}


def label_distribution(labels, num_classes: int) -> np.ndarray:
    """Relative frequency of each class ``(num_classes,)`` in ``labels`` ``(N,)``."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    return counts / counts.sum()


# --- sweeps ----------------------------------------------------------------------------------------------


@dataclass
class Sweep:
    """The outcome of one grid sweep.

    ``results``: one row per (grid value, run seed, split) with the split's metrics, the kept epoch and the
    training time. ``test_predictions[value]``: ``(runs, N_test)`` arg-max classes, in seed order.
    ``test_probabilities[value]``: ``(N_test, C)`` softmax outputs averaged over the runs.
    """

    dataset: str
    parameter: str
    metric_names: dict[str, bool]
    results: pd.DataFrame
    test_labels: np.ndarray
    test_predictions: dict[float, np.ndarray] = field(default_factory=dict)
    test_probabilities: dict[float, np.ndarray] = field(default_factory=dict)
    superclass_of: np.ndarray | None = None

    @property
    def values(self) -> list[float]:
        return sorted(self.test_predictions)


def _age_metrics(predicted: np.ndarray, labels: np.ndarray, superclass_of=None) -> dict[str, float]:
    return {"accuracy": metrics.accuracy(predicted, labels), "mae": metrics.mean_absolute_error(predicted, labels),
            "mse": metrics.mean_squared_error(predicted, labels)}


def _semantic_metrics(predicted: np.ndarray, labels: np.ndarray, superclass_of) -> dict[str, float]:
    return {"accuracy": metrics.accuracy(predicted, labels),
            "sa": metrics.superclass_accuracy(predicted, labels, superclass_of),
            "fsa": metrics.failed_superclass_accuracy(predicted, labels, superclass_of)}


def _run_sweep(*, dataset: str, parameter: str, values: Sequence[float], similarity_for: Callable[[float], torch.Tensor],
               build_model: Callable[[], torch.nn.Module], task, training: TrainingConfig,
               score: Callable[..., dict[str, float]], metric_names: dict[str, bool], seeds: Sequence[int],
               device, superclass_of=None, log: Callable[[str], None] = print) -> Sweep:
    rows, predictions, probabilities, trained = [], {}, {}, []
    test_labels = task.labels["test"].numpy()
    for value in values:
        started = time.perf_counter()
        similarity = similarity_for(value)
        twin = next((earlier for earlier, matrix in trained if torch.equal(matrix, similarity)), None)
        if twin is not None:   # e.g. every l above the largest class similarity gives the identity matrix
            rows += [{**row, parameter: value} for row in rows if row[parameter] == twin]
            predictions[value], probabilities[value] = predictions[twin], probabilities[twin]
            log(f"{dataset} {parameter} = {value:<4}: the same matrix as {parameter} = {twin}, its runs are reused")
            continue
        trained.append((value, similarity))
        loss = SimLoss(similarity)
        value_predictions, summed = [], None
        for seed in seeds:
            model, history = train_classifier(build_model, loss, (task.images["train"], task.labels["train"]),
                                              (task.images["validation"], task.labels["validation"]), training,
                                              seed=seed, device=device, log=log)
            outputs = {split: predict_proba(model, task.images[split], training.batch_size, device)
                       for split in ("validation", "test")}
            for split, split_probabilities in outputs.items():
                rows.append({"dataset": dataset, parameter: value, "seed": seed, "split": split,
                             **score(split_probabilities.argmax(axis=1), task.labels[split].numpy(), superclass_of),
                             "best_epoch": history.best_epoch, "epochs_run": len(history.epochs)})
            value_predictions.append(outputs["test"].argmax(axis=1))
            summed = outputs["test"] if summed is None else summed + outputs["test"]
        predictions[value] = np.stack(value_predictions)
        probabilities[value] = summed / len(seeds)
        validation = pd.DataFrame([r for r in rows if r[parameter] == value and r["split"] == "validation"])
        summary = ", ".join(f"{name} {validation[name].mean():.3f}" for name in metric_names)
        log(f"{dataset} {parameter} = {value:<4}: {len(seeds)} run(s), validation {summary} "
            f"({time.perf_counter() - started:.1f} s)")
    return Sweep(dataset, parameter, metric_names, pd.DataFrame(rows), test_labels, predictions, probabilities,
                 superclass_of)


def run_ordinal_sweep(config: Config, task: AgeTask, seeds: Sequence[int], *, device="cpu",
                      log: Callable[[str], None] = print) -> Sweep:
    """Train the Niu CNN with SimLoss(``r^|i-j|``) for every ``r`` of ``config`` and every seed (Table 14.1)."""
    standardize = Standardize.fit(task.images["train"], per_channel=True)

    def build_model():
        return NiuCNN(task.num_classes, in_channels=task.in_channels, image_size=config.image_size,
                      channels=config.niu_channels, standardize=standardize)

    return _run_sweep(dataset=task.name, parameter="r", values=config.reduction_factors,
                      similarity_for=lambda r: ordinal_similarity(task.num_classes, r), build_model=build_model,
                      task=task, training=config.age_training, score=_age_metrics, metric_names=AGE_METRICS,
                      seeds=seeds, device=device, log=log)


def run_semantic_sweep(config: Config, task: SemanticTask, name_similarity: np.ndarray, seeds: Sequence[int], *,
                       device="cpu", log: Callable[[str], None] = print) -> Sweep:
    """Train LeNet with SimLoss(Eq. 14.11 at lower bound ``l``) for every ``l`` of ``config`` (Table 14.2);
    ``name_similarity``: the ``(C, C)`` class similarity in ``[0, 1]`` (:func:`class_name_similarity`)."""
    from domainknowledge.principles.losses import bounded_similarity

    standardize = Standardize.fit(task.images["train"], per_channel=False)
    image_size = task.images["train"].shape[-1]

    def build_model():
        return LeNet(task.num_classes, in_channels=task.in_channels, image_size=image_size, standardize=standardize)

    return _run_sweep(dataset=task.name, parameter="l", values=config.lower_bounds,
                      similarity_for=lambda l: bounded_similarity(name_similarity, l), build_model=build_model,
                      task=task, training=config.semantic_training, score=_semantic_metrics,
                      metric_names=SEMANTIC_METRICS, seeds=seeds, device=device,
                      superclass_of=task.superclass_of, log=log)


# --- analysis ---------------------------------------------------------------------------------------------


def summary_means(sweep: Sweep) -> pd.DataFrame:
    """Mean over runs: rows = grid values, columns = (split, metric)."""
    frame = sweep.results.groupby([sweep.parameter, "split"])[list(sweep.metric_names)].mean()
    table = frame.unstack("split").swaplevel(axis=1)
    order = [(split, name) for split in ("validation", "test") for name in sweep.metric_names]
    return table[order]


def best_on_validation(sweep: Sweep, metric: str, baseline: float | None = None) -> float:
    """The grid value with the best mean validation ``metric``; the test set is not read.

    Ties (equal means, e.g. lower bounds above every class similarity, which all give cross-entropy) go to
    the value closest to ``baseline``, so a tie never counts as an improvement over it.
    """
    means = sweep.results[sweep.results.split == "validation"].groupby(sweep.parameter)[metric].mean()
    best = means.max() if sweep.metric_names[metric] else means.min()
    tied = [float(value) for value in means.index[means == best]]
    reference = tied[0] if baseline is None else baseline
    return min(tied, key=lambda value: abs(value - reference))


def _per_example(sweep: Sweep, metric: str, predictions: np.ndarray) -> np.ndarray:
    """``(runs, N)`` per-example quantity whose mean is ``metric`` (FSA has none: it conditions on errors)."""
    labels = sweep.test_labels
    if metric == "accuracy":
        return (predictions == labels).astype(np.float64)
    if metric == "mae":
        return np.abs(predictions - labels).astype(np.float64)
    if metric == "mse":
        return ((predictions - labels) ** 2).astype(np.float64)
    if metric == "sa":
        return (sweep.superclass_of[predictions] == sweep.superclass_of[labels]).astype(np.float64)
    raise ValueError(f"no per-example form of {metric!r}")


def _wilcoxon_p(differences: np.ndarray) -> float:
    from scipy.stats import wilcoxon

    if np.all(differences == 0):
        return 1.0
    return float(wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def significance_tests(sweep: Sweep, baseline: float, pairing: str = "per-example",
                       level: float = 0.05) -> pd.DataFrame:
    """Wilcoxon signed-rank tests (Wilcoxon 1945) of every grid value against ``baseline`` on the test set.

    ``pairing="per-run"`` (the thesis, 10 runs): pairs the runs' test metrics by seed; with ``n`` runs the
    smallest two-sided p-value is ``2 / 2^n``, so it needs ``n >= 6`` to reach 5 %. ``"per-example"`` (fewer
    runs): pairs the test examples, each with its quantity averaged over the runs (correct or not, absolute
    or squared error, superclass hit); FSA, which conditions on the errors, is not tested this way.
    Returns one row per (value, metric): means, difference, p-value, and a mark ``+``/``-`` when the value
    is significantly better/worse than the baseline.
    """
    rows = []
    test = sweep.results[sweep.results.split == "test"]
    for value in sweep.values:
        if value == baseline:
            continue
        for metric, higher_is_better in sweep.metric_names.items():
            if pairing == "per-run":
                ours = test[test[sweep.parameter] == value].sort_values("seed")[metric].to_numpy()
                theirs = test[test[sweep.parameter] == baseline].sort_values("seed")[metric].to_numpy()
            elif metric == "fsa":
                continue
            else:
                ours = _per_example(sweep, metric, sweep.test_predictions[value]).mean(axis=0)
                theirs = _per_example(sweep, metric, sweep.test_predictions[baseline]).mean(axis=0)
            p_value = _wilcoxon_p(ours - theirs) if ours.size > 1 else float("nan")
            difference = float(np.nanmean(ours) - np.nanmean(theirs))
            better = difference > 0 if higher_is_better else difference < 0
            significant = bool(p_value < level)
            rows.append({sweep.parameter: value, "metric": metric, "baseline": float(np.nanmean(theirs)),
                         "value": float(np.nanmean(ours)), "difference": difference, "p_value": p_value,
                         "pairs": int(ours.size), "significant": significant,
                         "mark": ("+" if better else "-") if significant and difference != 0 else ""})
    return pd.DataFrame(rows)


def p_value_against_baseline(tests: pd.DataFrame, parameter: str, value: float, metric: str,
                             baseline: float) -> float:
    """The p-value of ``value`` against ``baseline`` for ``metric`` from :func:`significance_tests`.

    The baseline compared with itself gives 1.0; so does a pair the tests skipped (e.g. FSA under
    per-example pairing), since no difference was shown.
    """
    if value == baseline or tests.empty:
        return 1.0
    match = tests[(tests[parameter] == value) & (tests["metric"] == metric)]
    return float(match["p_value"].iloc[0]) if len(match) else 1.0


def results_table(sweep: Sweep, tests: pd.DataFrame, scale: dict[str, float] | None = None):
    """The Table 14.1/14.2 analogue as a pandas ``Styler``: mean over runs, best validation value in bold,
    test values marked ``+``/``-`` where significantly better/worse than the baseline.

    ``scale`` multiplies metrics for display (e.g. ``{"accuracy": 100}`` for percent).
    """
    scale = scale or {}
    means = summary_means(sweep)
    marks = {(row[sweep.parameter], row["metric"]): row["mark"] for _, row in tests.iterrows()}
    shown = pd.DataFrame(index=means.index, columns=means.columns, dtype=object)
    for (split, metric) in means.columns:
        for value in means.index:
            number = means.loc[value, (split, metric)] * scale.get(metric, 1.0)
            mark = marks.get((value, metric), "") if split == "test" else ""
            shown.loc[value, (split, metric)] = f"{number:.2f}{mark}"
    best = {}
    for metric, higher_is_better in sweep.metric_names.items():
        column = means[("validation", metric)]
        best[("validation", metric)] = column.idxmax() if higher_is_better else column.idxmin()

    def bold_best(column):
        target = best.get(column.name)
        return ["font-weight: bold" if target is not None and index == target else "" for index in column.index]

    return shown.style.apply(bold_best, axis=0).format_index("{:g}", axis=0)


def mean_predicted_distribution(sweep: Sweep, value: float, label: int | None = None) -> np.ndarray:
    """Mean softmax output ``(C,)`` over the test set (or over its examples of class ``label``) and runs."""
    probabilities = sweep.test_probabilities[value]
    if label is not None:
        selected = sweep.test_labels == label
        if not selected.any():
            raise ValueError(f"the test set has no example of class {label}")
        probabilities = probabilities[selected]
    return probabilities.mean(axis=0)


def collapse_statistics(sweep: Sweep) -> pd.DataFrame:
    """How concentrated the predictions are, per grid value (Fig. 14.2's 'representative classes').

    ``distinct_predicted``: classes that are the arg-max of at least one test example (mean over runs);
    ``prediction_perplexity``: perplexity of the histogram of arg-max classes (mean over runs);
    ``output_perplexity``: perplexity of the mean predicted distribution (runs averaged).
    """
    num_classes = sweep.test_probabilities[sweep.values[0]].shape[1]
    rows = []
    for value in sweep.values:
        runs = sweep.test_predictions[value]
        rows.append({sweep.parameter: value,
                     "distinct_predicted": float(np.mean([np.unique(r).size for r in runs])),
                     "prediction_perplexity": float(np.mean([metrics.perplexity(np.bincount(r, minlength=num_classes))
                                                             for r in runs])),
                     "output_perplexity": metrics.perplexity(mean_predicted_distribution(sweep, value))})
    return pd.DataFrame(rows).set_index(sweep.parameter)


def compare_with_baseline(sweep: Sweep, tests: pd.DataFrame, metric: str, value: float,
                          baseline: float) -> dict[str, float | bool]:
    """One test-set comparison for a claim: grid ``value`` against ``baseline`` on ``metric``.

    Returns the two test means (over runs), their difference (the effect size, in the metric's units), the
    p-value of :func:`significance_tests` (1.0 when ``value`` is the baseline), and whether the difference
    goes the way that is better for the metric (``better``) and is significant at 5 % (``significant``).
    """
    means = summary_means(sweep)
    ours, theirs = float(means.loc[value, ("test", metric)]), float(means.loc[baseline, ("test", metric)])
    difference = ours - theirs
    better = difference > 0 if sweep.metric_names[metric] else difference < 0
    p_value = p_value_against_baseline(tests, sweep.parameter, value, metric, baseline=baseline)
    return {"value": ours, "baseline": theirs, "difference": difference, "p_value": p_value,
            "better": bool(value != baseline and better), "significant": bool(value != baseline and p_value < 0.05)}


def median_guess_mae(train_labels, test_labels) -> float:
    """Test MAE of the best constant guess, the median training label: what a model that ignores the image
    scores on the age task (a sanity floor for :func:`run_ordinal_sweep`'s models)."""
    guess = float(np.median(np.asarray(train_labels)))
    return float(np.mean(np.abs(np.asarray(test_labels, dtype=np.float64) - guess)))


def miss_cause(profile: str, *, in_thesis_direction: bool, substitute: str) -> str:
    """The cause (a key of ``experiment.CAUSES``) of a SimLoss claim that misses, chosen by the measurement.

    At ``smoke`` the runs last two epochs: ``budget``. At ``paper`` the thesis' data and settings run:
    ``genuine``. At ``cpu`` a difference in the thesis' direction that the test does not find significant
    is ``budget`` (three runs of a short schedule); one against the thesis' direction is put on the
    ``substitute`` (``stand-in`` for the synthetic faces, ``deviation`` for Fashion-MNIST with MiniLM).
    """
    if profile == "smoke":
        return "budget"
    if profile == "paper":
        return "genuine"
    return "budget" if in_thesis_direction else substitute

"""Experiment drivers of the attribution-map chapter (Kobs 2023, Ch. 9): comparing metric-learning models by
the image regions their embeddings depend on.

One code path for every profile:

1. load a training set and an analysis set of unseen classes per data set (:func:`load_image_set`): at
   ``smoke`` and ``cpu`` the procedural car renders of Ch. 7 (the Cars196 stand-in, where the background says
   nothing about the class) and the products-on-backgrounds set (the SOP stand-in, where each product's own
   background shows in most of its views); at ``paper`` Cars196, CUB200 and SOP from ``--data-root``
   (:func:`domainknowledge.data.real.dml_benchmarks.load_dml_benchmark`);
2. a positive control first (:func:`identifying_part_control`): one model trained where only the background
   identifies the product and one where only the object does; their maps must put clearly different shares on
   the object before any family or background claim is judged;
3. train one embedding network per loss and seed, plus the untrained "None" model, and compute the attribution
   map of every model for every analysis image (:func:`train_and_attribute`) with
   :func:`domainknowledge.principles.attribution.dml_attribution_maps` (Sec. 9.1, Eqs. 9.1-9.2) under each
   loss's own distance ``d_L``;
4. compare every pair of models per image by Pearson's r, averaged through Fisher's z, and by Jensen-Shannon
   divergence (Sec. 9.2; :func:`loss_tables` gives Tables 9.1-9.3 and A.1-A.3), summarise the agreement of
   trained models with each other and with "None", within and across the loss families
   (:func:`agreement_by_seed`), and test the family structure by permuting the family labels
   (:func:`family_permutation_test`);
5. the worked example on real weights: Integrated Gradients against SmoothGrad for the top ImageNet class of
   EfficientNet-Lite0 on bundled photos (:func:`photo_attributions`).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from domainknowledge import metric_learning
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.metric_learning import LOSSES, EmbeddingConfig
from domainknowledge.principles import attribution

__all__ = ["CONFIGS", "CONTROL_REGIMES", "DATASETS", "Config", "ControlResult", "DatasetInfo", "DatasetResult",
           "ImageNetClassifier", "ImageSet", "PhotoResult", "identifying_part_control", "plot_control_maps",
           "product_analysis_images", "product_training_set", "agreement_by_seed", "attribute_streaming", "picture", "train_models", "agreement_summary", "describe_profiles", "family_permutation_test",
           "jsd_in_nats", "load_image_set", "loss_tables", "model_seed", "object_share_by_family",
           "per_image_agreement", "photo_attributions", "plot_attribution_grid",
           "plot_comparison_heatmap", "plot_photo_attributions", "run_seeds", "train_and_attribute"]


@dataclass(frozen=True)
class DatasetInfo:
    """A data set of the chapter: its title on the page, whether its background carries class information
    (the Stanford Online Products regime), and whether it is a stand-in generated here."""

    title: str
    background_signal: bool
    stand_in: bool


DATASETS: dict[str, DatasetInfo] = {
    "cars": DatasetInfo("Rendered cars (Cars196 stand-in)", False, True),
    "products": DatasetInfo("Products on backgrounds (SOP stand-in)", True, True),
    "cars196": DatasetInfo("Cars196", False, False),
    "cub200": DatasetInfo("CUB200", False, False),
    "sop": DatasetInfo("Stanford Online Products", True, False),
}


@dataclass(frozen=True)
class Config:
    """What one profile runs. Every field is shown on the chapter page.

    Data: ``datasets`` (keys of :data:`DATASETS`), ``image_size`` (px); the car renders
    (``cars_training_images`` photo-like renders of ``6 x cars_variants_per_type`` car models, half of the
    models for training and the other half for analysis, as Cars196 splits its classes, ``supersample`` the
    anti-aliasing factor); the products (``product_classes`` training products with ``product_views`` views
    each, ``shortcut_rate`` the probability that a view shows its product's own background; at ``paper``
    they size the positive control's stand-in only). ``analysis_images`` per data set (``None``: the whole test split). Models: ``losses`` (keys of
    ``metric_learning.LOSSES``, with ``none``), ``runs`` (seeds per loss), ``embedding``; ``control_loss`` the
    loss of the positive control's two models (:func:`identifying_part_control`) and ``attribution_images`` the
    images it explains per model where the profile has no products analysis set of its own (``paper``). Attribution:
    ``smoothgrad_samples`` (l of Eq. 9.2) and ``sigma_fraction``. Real-weights example: ``photos`` (bundled
    photo names), ``photo_size`` (px) and ``ig_steps``.
    """

    datasets: tuple[str, ...]
    image_size: int
    cars_training_images: int
    cars_variants_per_type: int
    supersample: int
    product_classes: int
    product_views: int
    shortcut_rate: float
    analysis_images: int | None
    losses: tuple[str, ...]
    runs: int
    embedding: EmbeddingConfig
    smoothgrad_samples: int
    sigma_fraction: float
    photos: tuple[str, ...]
    photo_size: int
    ig_steps: int
    control_loss: str = "normalized_softmax"
    attribution_images: int = 64

    def __post_init__(self):
        unknown = set(self.datasets) - set(DATASETS)
        if unknown or not self.datasets:
            raise ValueError(f"unknown data sets {sorted(unknown)}; choose from {sorted(DATASETS)}")
        metric_learning.check_family_comparison(self.losses, "the chapter compares the families")
        if self.control_loss not in LOSSES or LOSSES[self.control_loss].family == "none":
            raise ValueError(f"control_loss must be a trained loss of metric_learning.LOSSES, got {self.control_loss!r}")
        if self.runs < 1 or self.smoothgrad_samples < 1 or self.ig_steps < 1:
            raise ValueError("runs, smoothgrad_samples and ig_steps must be at least 1")
        if self.analysis_images is not None and self.analysis_images < 2:
            raise ValueError("analysis_images must be None (the whole test split) or at least 2")
        if not 0.0 <= self.shortcut_rate <= 1.0 or self.sigma_fraction < 0:
            raise ValueError("shortcut_rate must lie in [0, 1] and sigma_fraction be >= 0")
        metric_learning.check_input_size(self.image_size, self.embedding,
                                         "the maps are computed at the network's input size")


#: the trainer at smoke and cpu: EfficientNet-Lite0 at 64 px, its top block and head convolution trained with
#: a linear 128-d embedding on globally pooled features (the lower blocks' maps cached), early stopping on
#: the MAP@R of held-out training classes
CPU_EMBEDDING = EmbeddingConfig(backbone="efficientnet_lite0", backbone_blocks=None, pool_grid=1, image_size=64,
                                trainable_blocks=1, head_hidden=0, epochs=6, validation_fraction=0.2, patience=2,
                                backbone_learning_rate=3e-4, head_learning_rate=1e-3)
_SMOKE_EMBEDDING = dataclasses.replace(CPU_EMBEDDING, epochs=2)
#: four losses of each family (the fewest for which the family split can beat every other split of the losses at
#: p <= 0.05: 35 splits) and None
CPU_LOSSES = ("contrastive", "triplet", "ntxent", "multi_similarity", "proxy_nca", "normalized_softmax", "cosface",
              "arcface", "none")

CONFIGS: dict[str, Config] = {
    "smoke": Config(
        datasets=("cars", "products"), image_size=64, cars_training_images=192, cars_variants_per_type=4,
        supersample=1, product_classes=24, product_views=8, shortcut_rate=0.8, analysis_images=3,
        losses=("contrastive", "triplet", "normalized_softmax", "arcface", "none"), runs=1,
        embedding=_SMOKE_EMBEDDING, smoothgrad_samples=6, sigma_fraction=0.15, photos=("chelsea",),
        photo_size=96, ig_steps=8),
    "cpu": Config(
        datasets=("cars", "products"), image_size=64, cars_training_images=640, cars_variants_per_type=8,
        supersample=2, product_classes=80, product_views=8, shortcut_rate=0.8, analysis_images=16,
        losses=CPU_LOSSES, runs=2, embedding=CPU_EMBEDDING,
        smoothgrad_samples=50, sigma_fraction=0.15, photos=("chelsea", "coffee", "rocket", "astronaut"),
        photo_size=224, ig_steps=50),
    "paper": Config(
        # the products stand-in (80 products x 8 views at 224 px) serves the positive control only
        datasets=("cars196", "cub200", "sop"), image_size=224, cars_training_images=0, cars_variants_per_type=8,
        supersample=1, product_classes=80, product_views=8, shortcut_rate=0.8, analysis_images=None,
        # the top four blocks and the head convolution train on cached 192 x 7 x 7 maps of the lower twelve
        losses=metric_learning.FAMILY_BALANCED_ORDER, runs=4, embedding=EmbeddingConfig(
            backbone="efficientnet_lite0", backbone_blocks=None, pool_grid=1, image_size=224, trainable_blocks=4,
            head_hidden=0, epochs=40, validation_fraction=0.2, patience=5, backbone_learning_rate=1e-5,
            head_learning_rate=1e-4),
        smoothgrad_samples=50, sigma_fraction=0.15,
        photos=("chelsea", "coffee", "rocket", "astronaut"), photo_size=224, ig_steps=50),
}


def describe_profiles(configs: dict[str, Config] | None = None) -> pd.DataFrame:
    """A table of every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


def run_seeds(seed: int, runs: int) -> tuple[int, ...]:
    """The replicate seeds of the chapter: ``1000 * seed + k`` for ``k < runs``; replicate ``k`` holds one model
    of every loss."""
    return tuple(1000 * seed + k for k in range(runs))


def model_seed(run_seed: int, loss_name: str) -> int:
    """The training seed of one model: ``100 * run_seed`` plus the loss's position in ``LOSSES``, so that no two
    models (of different losses, or of different replicates) start from the same embedding head. With a shared
    start, heads that training moves little would agree because of their common initialisation."""
    if loss_name not in LOSSES:
        raise ValueError(f"unknown loss {loss_name!r}; choose one of {sorted(LOSSES)}")
    return 100 * run_seed + list(LOSSES).index(loss_name)


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSet:
    """One data set: training images uint8 ``(N, S, S, 3)`` with labels ``(N,)`` in ``0 .. C-1``; analysis
    images ``(n, S, S, 3)`` of classes not seen in training, their labels ``(n,)`` and foreground masks
    ``(n, S, S)`` (``None`` where the data set has none); ``seconds`` it took to load. The real benchmarks'
    images are :class:`~domainknowledge.data.real.image_files.ImageFiles`, read from disk a batch at a
    time (``source[indices]`` is ``uint8 (B, 3, S, S)``; :func:`picture` gives one as ``(S, S, 3)``)."""

    key: str
    training_images: np.ndarray | metric_learning.ImageSource
    training_labels: np.ndarray
    analysis_images: np.ndarray | metric_learning.ImageSource
    analysis_labels: np.ndarray
    analysis_masks: np.ndarray | None
    seconds: float

    @property
    def info(self) -> DatasetInfo:
        return DATASETS[self.key]

    @property
    def num_classes(self) -> int:
        return int(self.training_labels.max()) + 1


def _spread_choice(labels: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    """``count`` indices (sorted) that cover as many classes as possible: one image per class in a seeded
    order of classes, then a second round, and so on."""
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = []
    by_class = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in rng.permutation(np.unique(labels))]
    while len(order) < count:
        for members in by_class:
            if members and len(order) < count:
                order.append(members.pop())
    return np.sort(np.asarray(order))


def load_image_set(key: str, config: Config, *, seed: int, data_root=None) -> ImageSet:
    """Training and analysis images of data set ``key`` (see :data:`DATASETS`).

    ``cars``: photo-like renders (Ch. 7's training renderer) of ``6 x cars_variants_per_type`` car models;
    the models with an even variant number are the training classes, those with an odd one the analysis
    classes (rendered independently with seed ``seed + 1``), so every body type is on both sides.
    ``products``: training products from Fashion-MNIST's training split, analysis products from its test
    split, both with ``shortcut_rate``. ``cars196``, ``cub200``, ``sop``: the real sets from ``data_root``.
    The analysis images are ``analysis_images`` images spread over as many classes as possible.
    """
    if key not in DATASETS:
        raise ValueError(f"unknown data set {key!r}; choose from {sorted(DATASETS)}")
    started = time.time()
    size = config.image_size
    if key == "cars":
        from domainknowledge.data.synthetic import cars

        variants = config.cars_variants_per_type
        if variants < 2:
            raise ValueError("cars_variants_per_type must be at least 2 (half the models train, half are analysed)")
        training = cars.make_training_set(config.cars_training_images, seed=seed, image_size=size,
                                          variants_per_type=variants, supersample=config.supersample)
        keep = training.properties["variant"].to_numpy() % 2 == 0
        analysis = cars.make_training_set(max(4 * (config.analysis_images or 64), 64), seed=seed + 1,
                                          image_size=size, variants_per_type=variants, supersample=config.supersample)
        held_out = np.flatnonzero(analysis.properties["variant"].to_numpy() % 2 == 1)
        chosen = held_out[_spread_choice(analysis.labels[held_out], config.analysis_images, seed)]
        labels = np.unique(training.labels[keep], return_inverse=True)[1].astype(np.int64)
        return ImageSet(key, training.images[keep], labels, analysis.images[chosen], analysis.labels[chosen],
                        analysis.masks[chosen], time.time() - started)
    if key == "products":
        training = product_training_set(config, seed=seed, data_root=data_root)
        images, labels, masks = product_analysis_images(config, seed=seed, data_root=data_root)
        return ImageSet(key, training.images, training.labels, images, labels, masks, time.time() - started)
    from domainknowledge.data.real.dml_benchmarks import benchmark_image_files, find_dml_benchmark

    train = find_dml_benchmark(data_root, key, "train")
    test = find_dml_benchmark(data_root, key, "test")
    chosen = _spread_choice(test.labels, config.analysis_images, seed)
    return ImageSet(key, benchmark_image_files(train.paths, size), train.labels,
                    benchmark_image_files([test.paths[i] for i in chosen], size), test.labels[chosen], None, time.time() - started)


def product_training_set(config: Config, *, seed: int, data_root=None, shortcut_rate: float | None = None,
                         shuffle_objects: bool = False):
    """The products stand-in's training products (``product_classes`` x ``product_views`` views from
    Fashion-MNIST's training split, seeded by ``seed``) at ``shortcut_rate`` (default the config's), objects
    shuffled across products if asked (:func:`domainknowledge.data.synthetic.products.make_product_set`)."""
    from domainknowledge.data.synthetic import products

    rate = config.shortcut_rate if shortcut_rate is None else shortcut_rate
    return products.make_product_set(config.product_classes, config.product_views, split="train", seed=seed,
                                     image_size=config.image_size, shortcut_rate=rate, data_root=data_root,
                                     shuffle_objects=shuffle_objects)


def product_analysis_images(config: Config, *, seed: int, data_root=None, count: int | None = None):
    """The products stand-in's analysis images: ``count`` (default ``analysis_images``, or
    ``attribution_images`` where the profile analyses whole test splits) views of unseen products
    (Fashion-MNIST's test split, seeded by ``seed + 1``, the config's shortcut rate), spread over as many
    products as possible. Returns images ``(n, S, S, 3)`` uint8, labels ``(n,)`` and masks ``(n, S, S)`` bool."""
    from domainknowledge.data.synthetic import products

    wanted = count or config.analysis_images or config.attribution_images
    analysis = products.make_product_set(max(wanted, 2), max(config.product_views, 2), split="test", seed=seed + 1,
                                         image_size=config.image_size, shortcut_rate=config.shortcut_rate,
                                         data_root=data_root)
    chosen = _spread_choice(analysis.labels, wanted, seed)
    return analysis.images[chosen], analysis.labels[chosen], analysis.masks[chosen]


def picture(images, index: int) -> np.ndarray:
    """Image ``index`` of an :class:`ImageSet`'s images (an array or a source read from disk) as
    ``uint8 (S, S, 3)``, for figures."""
    if isinstance(images, np.ndarray):
        return images[index]
    return images[np.array([index])][0].permute(1, 2, 0).numpy()


# --- training and attribution --------------------------------------------------------------------------


#: the analysis images whose maps are kept whole (for figures and exercises); every other map is compared and
#: dropped as soon as it is computed
KEPT_MAPS = 64
#: analysis images per step of the streamed attribution: every model maps them, every pair is compared
ATTRIBUTION_CHUNK = 32


@dataclass
class DatasetResult:
    """The models' attribution of one data set's analysis images: ``comparison`` of every pair of models on
    every image (:class:`~domainknowledge.principles.attribution.MapComparison`, JSD in nats), each model's
    per-image ``object_shares`` ``(n,)`` (Eq. 11.3; where the data set has masks), the maps ``(k, S, S)``
    (float32, in [0, 1]) of the first ``k = min(n, KEPT_MAPS)`` images per ``(loss, seed)`` model, training
    histories and timings (s)."""

    images: ImageSet
    maps: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    histories: dict[tuple[str, int], metric_learning.EmbeddingHistory] = field(default_factory=dict)
    comparison: attribution.MapComparison | None = None
    object_shares: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    training_seconds: float = 0.0
    attribution_seconds: float = 0.0
    backbone: str = ""


def _images_for_training(images):
    from domainknowledge.training import as_image_tensor

    return as_image_tensor(images) if isinstance(images, np.ndarray) else images


def train_models(config: Config, images: ImageSet, seeds, *, device="cpu", log: Callable[[str], None] = print,
                 result: DatasetResult | None = None) -> dict[tuple[str, int], metric_learning.EmbeddingNetwork]:
    """Train every loss of ``config`` once per replicate seed on ``images``' training set (each model with its
    own :func:`model_seed`); returns the networks per ``(loss, seed)`` (histories and timings go to
    ``result``). With a frozen backbone its features of the training images are computed once and shared."""
    training_images = _images_for_training(images.training_images)
    result = result if result is not None else DatasetResult(images)
    frozen = not config.embedding.train_backbone
    probe = metric_learning.build_embedding_network(config.embedding, seed=0)
    result.backbone = probe.backbone.name
    features = metric_learning.backbone_features(probe, training_images, device=device) if frozen else None
    networks = {}
    for loss_name in config.losses:
        for run_seed in seeds:
            begun = time.time()
            network, history = metric_learning.train_embedding_model(
                loss_name, training_images, images.training_labels, config=config.embedding,
                seed=model_seed(run_seed, loss_name), device=device, features=features)
            networks[(loss_name, run_seed)] = network
            result.histories[(loss_name, run_seed)] = history
            result.training_seconds += time.time() - begun
            last = f"last epoch loss {history.epoch_losses[-1]:.3f}" if history.epoch_losses else "untrained"
            log(f"{images.key:<9} {LOSSES[loss_name].title:<20} seed {run_seed}: trained {time.time() - begun:5.1f} s "
                f"({last})")
    return networks


def attribute_streaming(config: Config, images: ImageSet, networks, *, noise_seed: int = 0, device="cpu",
                        result: DatasetResult | None = None, chunk_size: int = ATTRIBUTION_CHUNK,
                        kept_maps: int = KEPT_MAPS) -> DatasetResult:
    """Every model's attribution maps of the analysis images under its loss's distance ``d_L`` (Sec. 9.1),
    computed on ``device`` ``chunk_size`` images at a time and compared pair by pair at once (Sec. 9.2), so
    memory holds one chunk's maps, never every map of every model: the result keeps the per-image
    correlations and divergences of every pair (``(M, M, n)``), each model's object shares where there are
    masks, and the maps of the first ``kept_maps`` images. SmoothGrad's noise for image ``i`` is seeded by
    ``noise_seed + i``, so every model sees the same noisy copies of an image."""
    from domainknowledge.principles import masking

    result = result if result is not None else DatasetResult(images)
    names = tuple(networks)
    if len(names) < 2:
        raise ValueError(f"need at least two models to compare, got {len(names)}")
    analysis, masks = images.analysis_images, images.analysis_masks
    count = len(analysis)
    correlations = np.ones((len(names), len(names), count))
    jsd = np.zeros((len(names), len(names), count))
    shares = {name: np.empty(count) for name in names} if masks is not None else {}
    kept = {name: [] for name in names}
    begun = time.time()
    for network in networks.values():
        network.to(device)
    for start in range(0, count, chunk_size):
        stop = min(start + chunk_size, count)
        batch = analysis[start:stop] if isinstance(analysis, np.ndarray) else analysis[np.arange(start, stop)]
        maps = {name: attribution.dml_attribution_maps(
                    networks[name], batch, distance=LOSSES[name[0]].distance, samples=config.smoothgrad_samples,
                    sigma_fraction=config.sigma_fraction, seed=noise_seed + start, device=device).astype(np.float32)
                for name in names}
        for i, j in itertools.combinations(range(len(names)), 2):
            correlations[i, j, start:stop] = correlations[j, i, start:stop] = attribution.map_correlations(
                maps[names[i]], maps[names[j]])
            jsd[i, j, start:stop] = jsd[j, i, start:stop] = attribution.jensen_shannon_divergence(
                maps[names[i]], maps[names[j]])
        for name in names:
            if masks is not None:
                shares[name][start:stop] = masking.attribution_share(masks[start:stop], maps[name])
            if start < kept_maps:
                kept[name].append(maps[name][:kept_maps - start])
    for network in networks.values():
        network.cpu()
    result.maps = {name: np.concatenate(parts) for name, parts in kept.items()}
    result.object_shares = shares
    result.comparison = jsd_in_nats(attribution.MapComparison(names, correlations, jsd))
    result.attribution_seconds += time.time() - begun
    return result


def train_and_attribute(config: Config, images: ImageSet, seeds, *, noise_seed: int = 0, device="cpu",
                        log: Callable[[str], None] = print) -> DatasetResult:
    """Train every loss of ``config`` once per replicate seed on ``images``' training set
    (:func:`train_models`), then compute and compare every model's attribution maps of the analysis images,
    streamed over the images on ``device`` (:func:`attribute_streaming`)."""
    result = DatasetResult(images)
    networks = train_models(config, images, seeds, device=device, log=log, result=result)
    attribute_streaming(config, images, networks, noise_seed=noise_seed, device=device, result=result)
    log(f"{images.key:<9} attribution maps of {len(images.analysis_images)} images x {len(networks)} models: "
        f"{result.attribution_seconds:5.1f} s")
    return result


#: the positive control's two training regimes of the products stand-in (arguments of
#: :func:`product_training_set`): only the background identifies the product (every view on the product's own
#: background, objects shuffled across products) or only the object does (every view on a random scene)
CONTROL_REGIMES: dict[str, dict] = {"background": {"shortcut_rate": 1.0, "shuffle_objects": True},
                                    "object": {"shortcut_rate": 0.0, "shuffle_objects": False}}
#: the control's pass mark: the two models' mean object shares differ by more than this (10 points)
CONTROL_MARGIN = 0.10


@dataclass
class ControlResult:
    """The positive control: the products stand-in's analysis ``images`` ``(n, S, S, 3)`` with their ``masks``
    ``(n, S, S)``, and per regime of :data:`CONTROL_REGIMES` the model's per-image object ``shares`` ``(n,)``
    (Eq. 11.3), its ``maps`` ``(n, S, S)`` and training ``histories``; ``correlation`` the Fisher-z mean
    correlation of the two models' maps, ``seconds`` the time it took."""

    loss: str
    images: np.ndarray
    masks: np.ndarray
    shares: dict[str, np.ndarray] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    histories: dict[str, metric_learning.EmbeddingHistory] = field(default_factory=dict)
    correlation: float = float("nan")
    seconds: float = 0.0

    @property
    def difference(self) -> float:
        """Mean object share of the object-trained model minus the background-trained model's."""
        return float(self.shares["object"].mean() - self.shares["background"].mean())

    @property
    def passes(self) -> bool:
        """Whether the maps follow the identifying part: the difference exceeds :data:`CONTROL_MARGIN`."""
        return self.difference > CONTROL_MARGIN


def identifying_part_control(config: Config, *, seed: int, device="cpu", data_root=None, noise_seed: int = 0,
                             analysis: tuple[np.ndarray, np.ndarray] | None = None,
                             log: Callable[[str], None] = print) -> ControlResult:
    """The chapter's positive control: does an attribution map show what a model uses, or only where the
    image has structure (object area, edges)?

    Two models of ``config.control_loss``, the chapter's network and trainer (``config.embedding``), the same
    initialisation (:func:`model_seed` of the first replicate), each trained on ``product_classes`` x
    ``product_views`` views of the products stand-in in one regime of :data:`CONTROL_REGIMES`: ``background``
    (only the background identifies the product) and ``object`` (only the object does). Both map the same
    analysis images of unseen products (``analysis``: images ``(n, S, S, 3)`` and masks ``(n, S, S)``; default
    :func:`product_analysis_images`), with the chapter's SmoothGrad (Eqs. 9.1-9.2, noise seeded by
    ``noise_seed + i``), computed on ``device`` a chunk at a time; each map's share on the object is Eq. 11.3.
    Maps that follow what the model uses put a clearly larger share on the object under the object-trained
    model (:attr:`ControlResult.passes`). The maps are those of :func:`attribute_streaming`."""
    begun = time.time()
    if analysis is None:
        images, _, masks = product_analysis_images(config, seed=seed, data_root=data_root,
                                                   count=config.attribution_images)
    else:
        images, masks = analysis
    if masks is None or len(masks) != len(images):
        raise ValueError("the control needs an object mask for every analysis image")
    loss = config.control_loss
    result = ControlResult(loss, np.asarray(images), np.asarray(masks, dtype=bool))
    networks = {}
    for regime, options in CONTROL_REGIMES.items():
        training = product_training_set(config, seed=seed, data_root=data_root, **options)
        networks[(loss, regime)], result.histories[regime] = metric_learning.train_embedding_model(
            loss, _images_for_training(training.images), training.labels, config=config.embedding,
            seed=model_seed(run_seeds(seed, 1)[0], loss), device=device)
    analysed = ImageSet("control", result.images[:0], np.zeros(0, dtype=np.int64), result.images,
                        np.zeros(len(result.images), dtype=np.int64), result.masks, 0.0)
    streamed = attribute_streaming(config, analysed, networks, noise_seed=noise_seed, device=device,
                                   kept_maps=len(result.images))
    for regime in CONTROL_REGIMES:
        result.maps[regime] = streamed.maps[(loss, regime)]
        result.shares[regime] = streamed.object_shares[(loss, regime)]
        history = result.histories[regime]
        log(f"control   {regime:<10} {LOSSES[loss].title}: validation MAP@R "
            f"{max(history.validation_map_at_r, default=float('nan')):.3f}, object share "
            f"{result.shares[regime].mean():.3f} ({history.seconds:4.1f} s training)")
    result.correlation = float(attribution.fisher_z_mean(streamed.comparison.correlations[0, 1]))
    result.seconds = time.time() - begun
    return result


def jsd_in_nats(comparison: attribution.MapComparison) -> attribution.MapComparison:
    """The comparison with its Jensen-Shannon divergences converted from bits to nats (times ln 2).

    :func:`domainknowledge.principles.attribution.jensen_shannon_divergence` uses base-2 logarithms, as the
    thesis' text says (Sec. 9.2: "bounded by 1, due to base 2 logarithm"); the authors' code, which produced
    Tables A.1-A.3, uses natural logarithms (bound ln 2). The chapter reports nats so that its values compare
    like for like with the tables."""
    return dataclasses.replace(comparison, jsd=comparison.jsd * np.log(2.0))


# --- analysis ------------------------------------------------------------------------------------------


def _loss_order(names) -> list[str]:
    present = {loss for loss, _ in names}
    return [loss for loss in LOSSES if loss in present]


def loss_tables(comparison: attribution.MapComparison, seeds=None) -> dict[str, pd.DataFrame]:
    """Tables 9.1-9.3 (and A.1-A.3) per loss: ``correlation`` and ``correlation_sd``, ``jsd`` and ``jsd_sd``,
    ``(L, L)`` DataFrames indexed by loss (``LOSSES`` order, "none" last).

    Models are ``(loss, seed)`` pairs. For two losses A and B each image's correlation is the Fisher-z mean over
    every pair of their seeds (only ``seeds`` if given); the table holds the Fisher-z mean over images and, as
    the spread, ``tanh`` of the standard deviation over images of the per-image Fisher z values (how the
    authors' code computes the thesis' "+-"; it is not the standard deviation of r). The diagonal compares
    different seeds of one loss (the seed-to-seed agreement; NaN with one seed). JSD (in whatever unit the
    comparison holds; :func:`train_and_attribute` gives nats) is averaged plainly, with its plain standard
    deviation.
    """
    names = [name for name in comparison.names if seeds is None or name[1] in seeds]
    index = {name: i for i, name in enumerate(comparison.names)}
    losses = _loss_order(names)
    members = {loss: [index[name] for name in names if name[0] == loss] for loss in losses}
    tables = {key: pd.DataFrame(np.nan, index=losses, columns=losses)
              for key in ("correlation", "correlation_sd", "jsd", "jsd_sd")}
    z = np.arctanh(np.clip(comparison.correlations, -1 + 1e-7, 1 - 1e-7))
    for a, b in itertools.product(losses, repeat=2):
        pairs = [(i, j) for i in members[a] for j in members[b] if i != j]
        if not pairs:
            continue
        per_image_z = np.nanmean(np.stack([z[i, j] for i, j in pairs]), axis=0)            # (n,)
        per_image_jsd = np.mean(np.stack([comparison.jsd[i, j] for i, j in pairs]), axis=0)
        tables["correlation"].loc[a, b] = float(np.tanh(np.nanmean(per_image_z)))
        tables["correlation_sd"].loc[a, b] = float(np.tanh(np.nanstd(per_image_z, ddof=1))) if len(per_image_z) > 1 else 0.0
        tables["jsd"].loc[a, b] = float(per_image_jsd.mean())
        tables["jsd_sd"].loc[a, b] = float(per_image_jsd.std(ddof=1)) if len(per_image_jsd) > 1 else 0.0
    return tables


def _pairs(losses, kind: str) -> list[tuple[str, str]]:
    trained = [loss for loss in losses if LOSSES[loss].family != "none"]
    if kind == "trained":
        return [(a, b) for a, b in itertools.combinations(trained, 2)]
    if kind == "none":
        return [(a, "none") for a in trained if "none" in losses]
    if kind == "within":
        return [(a, b) for a, b in itertools.combinations(trained, 2) if LOSSES[a].family == LOSSES[b].family]
    if kind == "across":
        return [(a, b) for a, b in itertools.combinations(trained, 2) if LOSSES[a].family != LOSSES[b].family]
    if kind in ("none_ranking", "none_classification"):
        family = kind.split("_", 1)[1]
        return [(a, "none") for a in trained if LOSSES[a].family == family and "none" in losses]
    if kind == "seeds":
        return [(a, a) for a in trained]
    raise ValueError(f"unknown kind of pair {kind!r}")


PAIR_KINDS = ("trained", "none", "within", "across", "none_ranking", "none_classification", "seeds")


def per_image_agreement(comparison: attribution.MapComparison, kind: str, *, value: str = "correlation",
                        seeds=None) -> np.ndarray:
    """Per analysis image, the agreement of one group of loss pairs (``kind`` in :data:`PAIR_KINDS`: every pair
    of different trained losses, each trained loss with "None", pairs within or across the families, "None"
    with the ranking or with the classification losses, or different seeds of one loss), pooled over every
    pair of models (``(loss, seed)``) of those losses: the Fisher-z mean correlation (``value="correlation"``)
    or the mean divergence (``"jsd"``). Returns ``(n,)``; these are the paired samples the claims test."""
    if value not in ("correlation", "jsd"):
        raise ValueError(f"value must be 'correlation' or 'jsd', got {value!r}")
    names = [name for name in comparison.names if seeds is None or name[1] in seeds]
    index = {name: i for i, name in enumerate(comparison.names)}
    losses = _loss_order(names)
    members = {loss: [index[name] for name in names if name[0] == loss] for loss in losses}
    pairs = list(dict.fromkeys((min(i, j), max(i, j)) for a, b in _pairs(losses, kind)
                               for i in members[a] for j in members[b] if i != j))
    if not pairs:
        raise ValueError(f"no pair of models of kind {kind!r} among {sorted(set(losses))}")
    if value == "jsd":
        return np.mean(np.stack([comparison.jsd[i, j] for i, j in pairs]), axis=0)
    z = np.arctanh(np.clip(np.stack([comparison.correlations[i, j] for i, j in pairs]), -1 + 1e-7, 1 - 1e-7))
    return np.tanh(np.nanmean(z, axis=0))


def object_share_by_family(shares: dict[tuple[str, int], np.ndarray], seeds) -> dict[str, np.ndarray]:
    """Per analysis image, the share of the attribution on the object (Eq. 11.3,
    :func:`domainknowledge.principles.masking.attribution_share`) averaged over the models of each family
    (``ranking``, ``classification`` and ``none``, every seed in ``seeds``): ``{family: (n,)}``, the paired
    samples of the background claim. ``shares``: each model's per-image shares ``(n,)``
    (:attr:`DatasetResult.object_shares`)."""
    grouped: dict[str, list[np.ndarray]] = {}
    for (loss, run_seed), values in shares.items():
        if run_seed in seeds:
            grouped.setdefault(LOSSES[loss].family, []).append(np.asarray(values, dtype=float))
    return {family: np.mean(np.stack(values), axis=0) for family, values in grouped.items()}


def agreement_summary(table: pd.DataFrame, *, value: str = "correlation") -> dict[str, float]:
    """Means over groups of loss pairs of a loss x loss table (correlations averaged through Fisher's z,
    JSD plainly): ``trained`` (every pair of different trained losses), ``none`` (each trained loss with
    "None"), ``within`` (pairs of one family), ``across`` (pairs of different families), ``within_ranking`` and
    ``within_classification`` (pairs inside each family), ``seeds`` (the diagonal: different seeds of one
    loss, NaN without), and ``gap`` = within - across."""
    losses = list(table.index)

    def mean(pairs):
        values = np.array([table.loc[a, b] for a, b in pairs], dtype=float)
        values = values[~np.isnan(values)]
        if not len(values):
            return float("nan")
        return attribution.fisher_z_mean(values) if value == "correlation" else float(values.mean())

    diagonal = [(loss, loss) for loss in losses if LOSSES[loss].family != "none"]
    summary = {kind: mean(_pairs(losses, kind)) for kind in ("trained", "none", "within", "across")}
    for family in ("ranking", "classification"):
        summary[f"within_{family}"] = mean([(a, b) for a, b in _pairs(losses, "within") if LOSSES[a].family == family])
    summary["seeds"] = mean(diagonal)
    summary["gap"] = summary["within"] - summary["across"]
    return summary


def agreement_by_seed(comparison: attribution.MapComparison, seeds) -> pd.DataFrame:
    """:func:`agreement_summary` of the correlation table of each seed on its own (the models of that seed,
    "None" included): one row per seed, the replicates the claims' seed spread uses."""
    rows = {}
    for run_seed in seeds:
        table = loss_tables(comparison, seeds={run_seed})["correlation"]
        rows[run_seed] = agreement_summary(table)
    frame = pd.DataFrame.from_dict(rows, orient="index").drop(columns=["seeds", "within_ranking",
                                                                        "within_classification"])
    frame.index.name = "seed"
    return frame


def family_permutation_test(table: pd.DataFrame) -> dict[str, float]:
    """Is the family structure of a loss x loss correlation table special? The statistic is the Fisher-z mean
    correlation within families minus across families (trained losses only). Every way of splitting the trained
    losses into two groups of the families' sizes is a permutation of the labels; the p-value is the share of
    splits whose statistic is at least the observed one (the observed split included, so p >= 1 / splits).

    Returns ``statistic``, ``p_value`` and ``splits`` (the number of distinct splits)."""
    trained = [loss for loss in table.index if LOSSES[loss].family != "none"]
    ranking = [loss for loss in trained if LOSSES[loss].family == "ranking"]
    if len(ranking) < 2 or len(trained) - len(ranking) < 2:
        raise ValueError("the permutation test needs at least two ranking and two classification losses")
    z = np.arctanh(np.clip(table.loc[trained, trained].to_numpy(float), -1 + 1e-7, 1 - 1e-7))

    def statistic(group: set[int]) -> float:
        within, across = [], []
        for i, j in itertools.combinations(range(len(trained)), 2):
            (within if (i in group) == (j in group) else across).append(z[i, j])
        return float(np.tanh(np.mean(within)) - np.tanh(np.mean(across)))

    observed_group = {trained.index(loss) for loss in ranking}
    observed = statistic(observed_group)
    values = [statistic(set(group)) for group in itertools.combinations(range(len(trained)), len(ranking))]
    at_least = sum(value >= observed - 1e-12 for value in values)
    return {"statistic": observed, "p_value": at_least / len(values), "splits": len(values)}


# --- the real-weights example --------------------------------------------------------------------------


class ImageNetClassifier(nn.Module):
    """EfficientNet-Lite0 with its real ImageNet weights as a function of 0-255 images:
    ``(B, 3, S, S)`` float -> logits ``(B, 1000)`` (the weights' TF-Lite input convention ``(x - 127) / 128``)."""

    def __init__(self, image_size: int = 224):
        super().__init__()
        from domainknowledge.models.backbones import load_efficientnet_lite

        self.network = load_efficientnet_lite(0, image_size=image_size).eval()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network((images.float() - 127.0) / 128.0)


PHOTO_BATCH = 10        # photos' path points / noisy copies per forward pass (bounds memory at 224 px)


@dataclass(frozen=True)
class PhotoResult:
    """The worked example: ``images`` uint8 ``(P, S, S, 3)``, their top class (``classes`` names,
    ``probabilities`` ``(P,)``), ``integrated_gradients`` and ``smoothgrad`` maps ``(P, S, S)`` post-processed
    alike (Sec. 9.1), their per-photo ``correlations`` ``(P,)``, Integrated Gradients' relative
    completeness gap ``(P,)`` and the number of path points each photo needed, ``ig_steps`` ``(P,)``."""

    names: tuple[str, ...]
    images: np.ndarray
    classes: tuple[str, ...]
    probabilities: np.ndarray
    integrated_gradients: np.ndarray
    smoothgrad: np.ndarray
    correlations: np.ndarray
    relative_gap: np.ndarray
    ig_steps: np.ndarray


def photo_attributions(config: Config, *, seed: int = 0) -> PhotoResult:
    """Integrated Gradients (black baseline, ``ig_steps`` Gauss-Legendre points, captum's default, for Eq. 8.1;
    four times as many for a photo whose completeness gap exceeds 5 %,
    :func:`~domainknowledge.principles.attribution.integrated_gradients_complete`) and SmoothGrad
    (``smoothgrad_samples`` samples, ``sigma_fraction``) of the top class's logit of the real ImageNet
    EfficientNet-Lite0 for each of ``config.photos`` (bundled photos, centre-cropped to ``photo_size``)."""
    from domainknowledge.data.bundled import load_photos
    from domainknowledge.models.encoders.base import resize_center_crop
    from domainknowledge.models.encoders.pretrained import imagenet_class_names

    photos = load_photos(config.photos)
    batch = torch.cat([resize_center_crop(torch.from_numpy(np.ascontiguousarray(photos[name].transpose(2, 0, 1)))
                                          [None].float(), config.photo_size) for name in config.photos])
    batch = batch.round().clamp(0, 255)
    model = ImageNetClassifier(config.photo_size)
    with torch.no_grad():
        probabilities = torch.softmax(model(batch), dim=1)
    top = probabilities.argmax(dim=1)
    integrated, steps = attribution.integrated_gradients_complete(
        model, batch, top, steps=config.ig_steps, method="gausslegendre", internal_batch_size=PHOTO_BATCH)
    ig_maps = attribution.postprocess_saliency(integrated.attributions[0])
    sg_maps = attribution.smoothgrad_class_maps(model, batch, top, samples=config.smoothgrad_samples,
                                                sigma_fraction=config.sigma_fraction, seed=seed,
                                                samples_batch_size=PHOTO_BATCH)
    names = imagenet_class_names()
    return PhotoResult(tuple(config.photos), batch.permute(0, 2, 3, 1).numpy().astype(np.uint8),
                       tuple(names[int(k)] for k in top), probabilities.gather(1, top[:, None])[:, 0].numpy(),
                       ig_maps, sg_maps, attribution.map_correlations(ig_maps, sg_maps),
                       integrated.relative_gap.numpy(), steps)


# --- figures -------------------------------------------------------------------------------------------


def plot_comparison_heatmap(mean: pd.DataFrame, sd: pd.DataFrame | None = None, *, value: str = "correlation",
                            title: str | None = None, ax=None):
    """Tables 9.1-9.3 (``value="correlation"``) or A.1-A.3 (``"jsd"``) as a heatmap: losses x losses in units
    of 10^-2, cells annotated "mean±sd", lines between the ranking losses, the classification losses and
    "None". The diagonal (different seeds of one loss) is outlined, since it compares a loss with itself."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    losses = list(mean.index)
    values = 100 * mean.to_numpy(float)
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 + 0.72 * len(losses), 0.9 + 0.55 * len(losses)))
    else:
        fig = ax.figure
    cmap = "Blues" if value == "correlation" else "Oranges"
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto")
    finite = values[np.isfinite(values)]
    high = float(finite.max()) if finite.size else 1.0
    low = float(finite.min()) if finite.size else 0.0
    for (row, column), cell in np.ndenumerate(values):
        if not np.isfinite(cell):
            continue
        text = f"{cell:.0f}" if sd is None else f"{cell:.0f}±{100 * sd.iloc[row, column]:.0f}"
        dark = cell > low + 0.6 * (high - low)
        ax.text(column, row, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
        if row == column:
            ax.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="0.3", linewidth=1.0,
                                   linestyle=":"))
    titles = [LOSSES[loss].title for loss in losses]
    ax.set_xticks(range(len(losses)), titles, rotation=40, ha="right")
    ax.set_yticks(range(len(losses)), titles)
    families = [LOSSES[loss].family for loss in losses]
    for k in range(1, len(losses)):
        if families[k] != families[k - 1]:
            ax.axhline(k - 0.5, color="black", linewidth=1.2)
            ax.axvline(k - 0.5, color="black", linewidth=1.2)
    label = "mean Pearson r (×10⁻²)" if value == "correlation" else "mean JSD (nats, ×10⁻²)"
    fig.colorbar(image, ax=ax, label=label, fraction=0.04)
    ax.grid(False)
    if title:
        ax.set_title(title)
    return fig, ax


def plot_attribution_grid(image: np.ndarray, maps: dict[str, np.ndarray], *, mask: np.ndarray | None = None,
                          title: str | None = None):
    """Figs. 9.2-9.4: one image and the attribution map of every model. The first column holds the image and
    the "None" model; the rows after it hold the ranking losses, then the classification losses. ``maps``:
    loss -> ``(H, W)`` map in [0, 1]; ``mask`` ``(H, W)``: the foreground's outline is drawn on every map."""
    import matplotlib.pyplot as plt

    ranking = [loss for loss in maps if LOSSES[loss].family == "ranking"]
    classification = [loss for loss in maps if LOSSES[loss].family == "classification"]
    columns = 1 + max(len(ranking), len(classification), 1)
    fig, axes = plt.subplots(2, columns, figsize=(1.55 * columns, 3.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")

    def show(ax, values, name):
        ax.imshow(values, cmap="inferno", vmin=0, vmax=1)
        if mask is not None and mask.any() and not mask.all():
            ax.contour(mask.astype(float), levels=[0.5], colors="cyan", linewidths=0.6)
        ax.set_title(name, fontsize=8)

    axes[0, 0].imshow(image)
    axes[0, 0].set_title("image", fontsize=8)
    if "none" in maps:
        show(axes[1, 0], maps["none"], "None (untrained)")
    for row, group in enumerate((ranking, classification)):
        for column, loss in enumerate(group, start=1):
            show(axes[row, column], maps[loss], f"{LOSSES[loss].title}")
    fig.suptitle((title + "\n" if title else "") + "top row: ranking losses, bottom row: classification losses",
                 fontsize=9)
    return fig, axes


def plot_photo_attributions(result: PhotoResult, *, title: str | None = None):
    """The worked example: per photo (one row) the photo with its top class, Integrated Gradients' map and
    SmoothGrad's map, with their correlation."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(result.names), 3, figsize=(6.6, 2.25 * len(result.names)), squeeze=False)
    for row, name in enumerate(result.names):
        axes[row, 0].imshow(result.images[row])
        axes[row, 0].set_title(f"{name}: {result.classes[row]} ({100 * result.probabilities[row]:.0f} %)", fontsize=8)
        axes[row, 1].imshow(result.integrated_gradients[row], cmap="inferno", vmin=0, vmax=1)
        axes[row, 1].set_title("Integrated Gradients", fontsize=8)
        axes[row, 2].imshow(result.smoothgrad[row], cmap="inferno", vmin=0, vmax=1)
        axes[row, 2].set_title(f"SmoothGrad (r = {result.correlations[row]:.2f})", fontsize=8)
        for ax in axes[row]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, axes


def plot_control_maps(control: ControlResult, *, count: int = 4, title: str | None = None):
    """The positive control on ``count`` analysis images (columns): the image, the map of the model trained
    where only the background identifies the product, and the map of the model trained where only the object
    does, each with its share on the object; the object's outline in cyan."""
    import matplotlib.pyplot as plt

    count = min(count, len(control.images))
    rows = (("image", None), ("background-trained", "background"), ("object-trained", "object"))
    fig, axes = plt.subplots(3, count, figsize=(1.7 * count, 5.4), squeeze=False)
    for column in range(count):
        for row, (label, regime) in enumerate(rows):
            ax = axes[row, column]
            ax.axis("off")
            if regime is None:
                ax.imshow(control.images[column])
                continue
            ax.imshow(control.maps[regime][column], cmap="inferno", vmin=0, vmax=1)
            ax.contour(control.masks[column].astype(float), levels=[0.5], colors="cyan", linewidths=0.6)
            ax.set_title(f"{label}\non object {100 * control.shares[regime][column]:.0f} %", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig, axes

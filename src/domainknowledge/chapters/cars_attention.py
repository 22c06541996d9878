"""Experiment drivers of the rendered-cars chapter (Kobs 2023, Ch. 7): what metric-learning losses attend to.

One code path for every profile:

1. render a photo-like training set (the Cars196 analogue: classes are car models) and an independent
   analysis set with solid backgrounds and every Table 7.2 property drawn independently
   (:func:`load_renders`, :mod:`domainknowledge.data.synthetic.cars`);
2. train one embedding network per loss of :data:`domainknowledge.metric_learning.LOSSES` and run seed, plus
   the untrained "None" model, and embed the analysis set (:func:`train_and_embed`);
3. compute Normalized R-Precision per property (Eq. 7.3) under each loss's distance (:func:`nr_precision_table`),
   the significance of each value against the binomial null and the Mann-Whitney U test between the ranking
   and classification families (:func:`family_comparison`), and how alike the losses order the properties
   (:func:`property_order_agreement`).

The thesis renders its own data, so there is no external data set: the ``paper`` profile renders at the
thesis' scale (and fine-tunes the whole ImageNet backbone) instead of reading ``--data-root``.
"""

from __future__ import annotations

import dataclasses

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from domainknowledge import metric_learning, metrics, significance
from domainknowledge.data.synthetic import cars
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.metric_learning import LOSSES, EmbeddingConfig

__all__ = ["CONFIGS", "PROPERTY_TITLES", "SIGNIFICANCE_Z", "THESIS_ANALYSIS_IMAGES", "THESIS_TABLE_7_3", "Config", "Renders", "TrainedRuns", "describe_profiles",
           "family_comparison", "family_means", "load_renders", "mean_table", "nr_precision_table",
           "plot_nr_precision_heatmap", "plot_property_sweeps", "plot_tsne_by_property", "property_order_agreement", "property_sweep",
           "run_seeds", "significance_threshold", "train_and_embed", "tsne_embedding"]

SIGNIFICANCE_Z = 2.576          # Sec. 7.1.2: NR-Prec above this is significant at the 1 % level
THESIS_ANALYSIS_IMAGES = 100_000  # Sec. 7.1.3: the renders behind Table 7.3 and the 2.576 threshold
PROPERTY_TITLES = {
    "model": "Car model", "rotation": "Car rotation", "car_hue": "Car hue", "car_saturation": "Car saturation",
    "car_value": "Car value", "background_hue": "Background hue", "background_saturation": "Background saturation",
    "background_value": "Background value", "camera_height": "Camera height", "sun_elevation": "Sun elevation",
    "sun_rotation": "Sun rotation",
}
ALL_LOSSES = tuple(LOSSES)

# Table 7.3 of the thesis (NR-Prec on 100,000 renders), rows in LOSSES order, columns in PROPERTY_TITLES order.
THESIS_TABLE_7_3 = pd.DataFrame(
    [[58.32, 39.60, 3.02, 3.28, 4.72, 1.52, 1.30, 2.09, 20.92, 8.23, 0.85],
     [57.36, 37.37, 3.25, 3.26, 4.69, 1.63, 1.43, 2.50, 19.50, 8.22, 0.74],
     [57.87, 38.22, 3.44, 3.30, 4.54, 1.57, 1.46, 2.18, 20.32, 8.55, 0.78],
     [57.91, 38.58, 3.50, 3.18, 4.76, 1.59, 1.29, 2.04, 21.21, 8.30, 0.78],
     [58.92, 39.65, 3.41, 3.36, 4.83, 1.89, 1.72, 2.25, 21.55, 8.82, 0.76],
     [55.84, 38.44, 2.81, 3.10, 4.87, 1.05, 1.24, 1.81, 20.49, 7.45, 0.71],
     [57.38, 39.88, 3.41, 3.37, 5.05, 1.69, 1.56, 2.22, 21.40, 8.66, 0.82],
     [59.81, 41.03, 3.18, 3.37, 4.95, 1.83, 1.74, 2.59, 21.14, 8.73, 0.87],
     [57.82, 38.86, 3.24, 3.13, 4.52, 1.84, 1.52, 2.03, 20.03, 7.66, 0.77],
     [57.68, 37.64, 4.73, 3.93, 5.72, 2.33, 2.09, 2.52, 19.82, 9.77, 0.84],
     [57.26, 37.76, 3.85, 3.97, 5.44, 1.68, 1.80, 2.31, 19.43, 8.81, 0.80],
     [56.50, 38.51, 4.00, 3.65, 5.32, 2.40, 2.39, 2.64, 19.10, 8.72, 0.83],
     [55.62, 37.20, 4.15, 3.72, 4.91, 2.90, 2.84, 2.93, 18.70, 8.98, 0.78],
     [57.36, 38.08, 3.63, 3.81, 5.37, 1.81, 2.00, 2.25, 19.72, 8.43, 0.77],
     [50.61, 36.25, 4.32, 3.92, 4.48, 4.81, 4.09, 6.80, 20.75, 8.64, 0.75]],
    index=pd.Index(list(LOSSES), name="loss"), columns=list(PROPERTY_TITLES))


def significance_threshold(images: int, null_sd: float | None = None) -> float:
    """The NR-Prec above which a property counts as attended to, on an analysis set of ``images`` renders.

    NR-Prec averages per-query z-scores whose size, for a given degree of clustering, grows with the square
    root of the number of images (a query's ``R`` grows with ``n``; a perfect embedding scores about
    ``sqrt(R (1 - p) / p)``). The thesis' 2.576 (Sec. 7.1.2) was read on 100,000 renders, so the same
    clustering on ``images`` renders crosses ``2.576 * sqrt((images - 1) / (100,000 - 1))``. With
    ``null_sd``, the standard deviation of NR-Prec under random embeddings on the same analysis set, the
    threshold is at least ``2.576 * null_sd``, the 1 % level of the noise at this size (which matters on
    small sets, where the scaled threshold falls into the noise)."""
    if images < 2:
        raise ValueError(f"need at least two images, got {images}")
    scaled = SIGNIFICANCE_Z * float(np.sqrt((images - 1) / (THESIS_ANALYSIS_IMAGES - 1)))
    return max(scaled, SIGNIFICANCE_Z * float(null_sd)) if null_sd is not None else scaled


@dataclass(frozen=True)
class Config:
    """What one profile runs. Every field is shown on the chapter page.

    Renders: ``training_renders`` (photo-like, the Cars196 analogue) with ``variants_per_type`` models per
    body type (classes = 6 x variants) and ``favourite_colour_rate``; ``analysis_renders`` (solid
    backgrounds, Table 7.2 grid); ``image_size`` (px) and ``supersample`` (anti-aliasing factor).
    Models: ``losses`` (keys of ``metric_learning.LOSSES``, with ``none``), ``runs`` (seeds per loss),
    ``embedding`` (backbone, head and schedule). Figures: ``tsne_points`` (Fig. 7.2).
    """

    training_renders: int
    analysis_renders: int
    image_size: int
    supersample: int
    variants_per_type: int
    favourite_colour_rate: float
    losses: tuple[str, ...]
    runs: int
    embedding: EmbeddingConfig
    tsne_points: int

    def __post_init__(self):
        metric_learning.check_family_comparison(self.losses, "the Mann-Whitney test compares the families")
        metric_learning.check_input_size(self.image_size, self.embedding,
                                         "the renders are drawn at the size the network reads")
        if self.runs < 1 or self.analysis_renders < 16 or self.training_renders < 16:
            raise ValueError("runs must be >= 1 and both image sets must hold at least 16 renders")


#: the trainer at smoke and cpu: EfficientNet-Lite0 at 64 px (cpu: 96 px, where the trained losses retrieve unseen
#: car models at 9.6 % MAP@R against the untrained 7.7 %; at 64 px 6.0 against 5.7 %), its top block and head
#: convolution trained with a linear 128-d embedding on globally pooled features (the lower blocks' maps cached),
#: early stopping on the MAP@R of held-out training car models
CPU_EMBEDDING = EmbeddingConfig(backbone="efficientnet_lite0", backbone_blocks=None, pool_grid=1, image_size=64,
                                trainable_blocks=1, head_hidden=0, epochs=14, validation_fraction=0.2, patience=3,
                                backbone_learning_rate=3e-4, head_learning_rate=1e-3)
CONFIGS: dict[str, Config] = {
    "smoke": Config(
        training_renders=240, analysis_renders=200, image_size=64, supersample=1, variants_per_type=4,
        favourite_colour_rate=0.5, losses=("contrastive", "triplet", "normalized_softmax", "arcface", "none"),
        runs=1, embedding=dataclasses.replace(CPU_EMBEDDING, epochs=2), tsne_points=100),
    "cpu": Config(
        training_renders=1200, analysis_renders=1600, image_size=96, supersample=2, variants_per_type=8,
        favourite_colour_rate=0.5, losses=ALL_LOSSES, runs=1,
        embedding=dataclasses.replace(CPU_EMBEDDING, image_size=96), tsne_points=1000),
    # the top four blocks (all but the first of the 1/32-resolution blocks: 2.0 of Lite0's 3.4 M trunk parameters)
    # and the 1280-channel head convolution train on cached 192 x 7 x 7 maps of the lower twelve (memory-mapped
    # from the data cache)
    "paper": Config(
        training_renders=16_000, analysis_renders=100_000, image_size=224, supersample=1, variants_per_type=16,
        favourite_colour_rate=0.5, losses=metric_learning.FAMILY_BALANCED_ORDER, runs=4,
        embedding=EmbeddingConfig(backbone="efficientnet_lite0", backbone_blocks=None, pool_grid=1, image_size=224,
                                  trainable_blocks=4, head_hidden=0, epochs=40, validation_fraction=0.2,
                                  patience=5, backbone_learning_rate=1e-5, head_learning_rate=1e-4),
        tsne_points=1000),
}


def describe_profiles(configs: dict[str, Config] | None = None) -> pd.DataFrame:
    """A table of every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


def run_seeds(seed: int, runs: int) -> tuple[int, ...]:
    """The training seeds of one loss: ``1000 * seed + k`` for ``k < runs``."""
    return tuple(1000 * seed + k for k in range(runs))


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Renders:
    """The chapter's two sets and how long they took to render (s)."""

    training: cars.CarRenders
    analysis: cars.CarRenders
    seconds: float

    @property
    def num_classes(self) -> int:
        return int(self.training.labels.max()) + 1


#: analysis sets larger than this are rendered into memory-mapped files of the data cache (the paper's 100,000
#: renders at 224 px are 15 GB) and read a batch at a time
IN_MEMORY_RENDERS = 20_000


def _rendered_analysis_set(config: Config, seed: int) -> cars.CarRenders:
    """The analysis set rendered into (or read back from) ``.npy`` files of the data cache, opened
    memory-mapped; written under temporary names and renamed when complete."""
    from domainknowledge.data.bundled import cache_dir

    n, size = config.analysis_renders, config.image_size
    stem = cache_dir() / "cars_attention" / f"analysis_{n}_{size}px_x{config.supersample}_seed{seed}"
    files = {"images": stem.with_name(stem.name + "_images.npy"), "masks": stem.with_name(stem.name + "_masks.npy")}
    if not all(path.is_file() for path in files.values()):
        stem.parent.mkdir(parents=True, exist_ok=True)
        partial = {key: path.with_name(path.name + ".partial") for key, path in files.items()}
        out = (np.lib.format.open_memmap(partial["images"], mode="w+", dtype=np.uint8, shape=(n, size, size, 3)),
               np.lib.format.open_memmap(partial["masks"], mode="w+", dtype=bool, shape=(n, size, size)))
        cars.make_analysis_set(n, seed=seed, image_size=size, supersample=config.supersample, out=out)
        for array in out:
            array.flush()
        del out
        for key in ("masks", "images"):
            partial[key].replace(files[key])
    properties = cars.sample_analysis_properties(n, seed=seed)
    labels = np.asarray([cars.BODY_TYPES.index(m) for m in properties["model"]], dtype=np.int64)
    return cars.CarRenders(np.load(files["images"], mmap_mode="r"), np.load(files["masks"], mmap_mode="r"),
                           properties, labels)


def load_renders(config: Config, *, seed: int) -> Renders:
    """Render the training set (seed ``seed``) and the analysis set (seed ``seed + 1``, independent); an
    analysis set above :data:`IN_MEMORY_RENDERS` renders is kept in memory-mapped files."""
    started = time.time()
    training = cars.make_training_set(config.training_renders, seed=seed, image_size=config.image_size,
                                      variants_per_type=config.variants_per_type,
                                      favourite_colour_rate=config.favourite_colour_rate,
                                      supersample=config.supersample)
    if config.analysis_renders > IN_MEMORY_RENDERS:
        analysis = _rendered_analysis_set(config, seed + 1)
    else:
        analysis = cars.make_analysis_set(config.analysis_renders, seed=seed + 1, image_size=config.image_size,
                                          supersample=config.supersample)
    return Renders(training, analysis, time.time() - started)


def property_sweep(base: dict, varied: str, values=None) -> pd.DataFrame:
    """Rows equal to ``base`` (a dict of every property) but with ``varied`` running through ``values``
    (default: its Table 7.2 grid): the rows of one line of Fig. 7.3."""
    if varied not in cars.ANALYSIS_GRID:
        raise ValueError(f"unknown property {varied!r}; choose one of {cars.PROPERTIES}")
    values = cars.ANALYSIS_GRID[varied] if values is None else values
    return pd.DataFrame([{**base, varied: value} for value in values])


# --- training and embedding ----------------------------------------------------------------------------


@dataclass
class TrainedRuns:
    """Embeddings of the analysis set ``(N, D)`` per ``(loss, seed)``, training histories and timings."""

    embeddings: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    histories: dict[tuple[str, int], metric_learning.EmbeddingHistory] = field(default_factory=dict)
    feature_seconds: float = 0.0
    backbone: str = ""


def train_and_embed(config: Config, renders: Renders, seeds, *, device="cpu",
                    log: Callable[[str], None] = print) -> TrainedRuns:
    """Train every loss of ``config`` with every seed on the training renders and embed the analysis renders.

    With a frozen backbone the backbone features of both sets are computed once and shared by all runs.
    """
    from domainknowledge.training import as_image_tensor

    training_images = as_image_tensor(renders.training.images)
    analysis_images = (metric_learning.ArrayImages(renders.analysis.images)
                       if isinstance(renders.analysis.images, np.memmap) else as_image_tensor(renders.analysis.images))
    runs = TrainedRuns()
    started = time.time()
    frozen = not config.embedding.train_backbone
    probe = metric_learning.build_embedding_network(config.embedding, seed=0)
    runs.backbone = probe.backbone.name
    training_features = analysis_features = None
    if frozen:
        training_features = metric_learning.backbone_features(probe, training_images, device=device)
        analysis_features = metric_learning.backbone_features(probe, analysis_images, device=device)
    runs.feature_seconds = time.time() - started
    for loss_name in config.losses:
        for run_seed in seeds:
            begun = time.time()
            network, history = metric_learning.train_embedding_model(
                loss_name, training_images, renders.training.labels, config=config.embedding, seed=run_seed,
                device=device, features=training_features)
            if frozen:
                embeddings = metric_learning.embed(network, features=analysis_features)
            else:
                embeddings = metric_learning.embed(network, analysis_images, device=device)
            runs.embeddings[(loss_name, run_seed)] = embeddings
            runs.histories[(loss_name, run_seed)] = history
            last = f", last epoch loss {history.epoch_losses[-1]:.3f}" if history.epoch_losses else ", untrained"
            log(f"{LOSSES[loss_name].title:<26} seed {run_seed}: {time.time() - begun:5.1f} s{last}")
    return runs


# --- analysis ------------------------------------------------------------------------------------------


def nr_precision_table(runs: TrainedRuns, properties: pd.DataFrame, metric: str = "nr_precision", *,
                       device="cpu") -> pd.DataFrame:
    """NR-Prec (Eq. 7.3) of every property (columns, :data:`PROPERTY_TITLES` order) per run (rows indexed by
    ``loss``, ``seed``), each under its loss's distance ``d_L`` (Table 7.1); the neighbour orders (``n x n``
    distances, a chunk of queries at a time) are computed on ``device``."""
    columns = [name for name in PROPERTY_TITLES if name in properties.columns]
    rows = {}
    for (loss_name, run_seed), embeddings in runs.embeddings.items():
        rows[(loss_name, run_seed)] = metrics.property_nr_precision(
            properties[columns], embeddings, distance=LOSSES[loss_name].distance, metric=metric, device=device)
    table = pd.DataFrame.from_dict(rows, orient="index")[columns]
    table.index = pd.MultiIndex.from_tuples(table.index, names=["loss", "seed"])
    return table


def mean_table(table: pd.DataFrame) -> pd.DataFrame:
    """The mean over seeds per loss (rows in ``LOSSES`` order), as the thesis averages its four folds."""
    means = table.groupby(level="loss").mean()
    return means.loc[[name for name in LOSSES if name in means.index]]


def family_means(means: pd.DataFrame) -> pd.DataFrame:
    """The ranking and classification means of a loss x property table (Table 7.3's last two rows)."""
    rows = {}
    for family in ("ranking", "classification"):
        members = [name for name in means.index if LOSSES[name].family == family]
        rows[f"{family.capitalize()} mean"] = means.loc[members].mean()
    return pd.DataFrame(rows).T


def family_comparison(means: pd.DataFrame, level: float = 0.01) -> pd.DataFrame:
    """Per property, the two-sided Mann-Whitney U test between ranking and classification losses (1 %)."""
    return significance.mann_whitney_families(means, {name: LOSSES[name].family for name in means.index},
                                              level=level)


def property_order_agreement(means: pd.DataFrame) -> pd.DataFrame:
    """How alike the trained losses order the properties: per loss, Spearman's rho between its NR-Prec
    values and the mean over all trained losses (the consensus order), and whether its order is identical."""
    from scipy.stats import spearmanr

    trained = means.loc[[name for name in means.index if LOSSES[name].family != "none"]]
    consensus = trained.mean()
    consensus_order = list(consensus.sort_values(ascending=False).index)
    rows = []
    for name, values in means.iterrows():
        rho = spearmanr(values.to_numpy(), consensus.to_numpy()).statistic
        order = list(values.sort_values(ascending=False).index)
        rows.append({"loss": name, "spearman_with_consensus": float(rho), "same_order": order == consensus_order,
                     "top_property": order[0]})
    return pd.DataFrame(rows).set_index("loss")


def tsne_embedding(embeddings: np.ndarray, points: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """t-SNE (scikit-learn, perplexity 30 or less) of ``points`` embeddings drawn with ``seed``; returns the
    chosen indices ``(P,)`` and the 2-d coordinates ``(P, 2)`` (Fig. 7.2)."""
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(embeddings), size=min(points, len(embeddings)), replace=False))
    perplexity = float(min(30, (len(chosen) - 1) / 3))
    coordinates = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                       metric="euclidean").fit_transform(embeddings[chosen])
    return chosen, coordinates


# --- figures -------------------------------------------------------------------------------------------


def plot_nr_precision_heatmap(means: pd.DataFrame, *, title: str | None = None, ax=None,
                              threshold: float = SIGNIFICANCE_Z):
    """Table 7.3 as a heatmap: losses (and the two family means) x properties, cells annotated with NR-Prec,
    values not significant against random embeddings (|NR-Prec| <= ``threshold``, by default the thesis'
    2.576 for 100,000 renders; see :func:`significance_threshold`) in grey italics."""
    import matplotlib.pyplot as plt

    shown = pd.concat([means, family_means(means)])
    labels = [LOSSES[name].title if name in LOSSES else name for name in shown.index]
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 + 0.8 * shown.shape[1], 0.9 + 0.38 * shown.shape[0]))
    else:
        fig = ax.figure
    image = ax.imshow(shown.to_numpy(), cmap="Blues", aspect="auto", vmin=min(0.0, float(shown.min().min())))
    for (row, column), value in np.ndenumerate(shown.to_numpy()):
        significant = abs(value) > threshold
        dark = value > 0.6 * float(shown.max().max())
        ax.text(column, row, f"{value:.1f}", ha="center", va="center", fontsize=7.5,
                color=("white" if dark else "black") if significant else "0.45",
                fontstyle="normal" if significant else "italic")
    ax.set_xticks(range(shown.shape[1]), [PROPERTY_TITLES.get(c, c) for c in shown.columns], rotation=40,
                  ha="right")
    ax.set_yticks(range(shown.shape[0]), labels)
    ax.axhline(len(means) - 0.5, color="black", linewidth=1.0)
    fig.colorbar(image, ax=ax, label="NR-Prec", fraction=0.03)
    ax.grid(False)
    if title:
        ax.set_title(title)
    return fig, ax


def plot_tsne_by_property(coordinates: np.ndarray, properties: pd.DataFrame, *, title: str | None = None):
    """One t-SNE scatter per property, points coloured by the property's value (Fig. 7.2)."""
    import matplotlib.pyplot as plt

    columns = [name for name in PROPERTY_TITLES if name in properties.columns]
    cols = 4
    rows = int(np.ceil(len(columns) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.8 * rows))
    for ax, name in zip(axes.flat, columns):
        values = properties[name].astype(str).to_numpy()
        categories = list(dict.fromkeys(sorted(set(values), key=lambda v: (len(v), v))))
        codes = np.array([categories.index(v) for v in values])
        cmap = "tab10" if len(categories) <= 10 else "viridis"
        ax.scatter(coordinates[:, 0], coordinates[:, 1], c=codes, cmap=cmap, s=4, linewidths=0,
                   vmin=0, vmax=max(len(categories) - 1, 1) if cmap == "viridis" else 9)
        ax.set_title(PROPERTY_TITLES[name], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig, axes


def plot_property_sweeps(base: dict, *, image_size: int = 64, columns: int = 8, title: str | None = None):
    """Fig. 7.3: one row per property, the car of ``base`` with only that property changed (up to ``columns``
    values, evenly spread over its Table 7.2 grid); returns the figure and the rendered images
    ``(properties, columns, S, S, 3)`` (blank where a property has fewer values)."""
    import matplotlib.pyplot as plt

    names = list(PROPERTY_TITLES)
    fig, axes = plt.subplots(len(names), columns, figsize=(1.0 * columns + 1.6, 1.05 * len(names)), squeeze=False)
    rendered = np.zeros((len(names), columns, image_size, image_size, 3), dtype=np.uint8)
    for row, name in enumerate(names):
        grid = cars.ANALYSIS_GRID[name]
        picks = [grid[i] for i in np.unique(np.linspace(0, len(grid) - 1, min(columns, len(grid))).round().astype(int))]
        images, _ = cars.render_cars(property_sweep(base, name, picks), image_size=image_size)
        rendered[row, :len(images)] = images
        for column, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if column < len(images):
                ax.imshow(images[column])
                ax.set_title(f"{picks[column]:g}" if not isinstance(picks[column], str) else picks[column], fontsize=7,
                             pad=2)
        axes[row, 0].set_ylabel(PROPERTY_TITLES[name], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig, rendered

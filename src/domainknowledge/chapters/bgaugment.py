"""Experiment drivers of the background-bias chapter (Kobs 2023, Ch. 11): BGAugment for metric learning.

One code path for every profile:

1. a *setting* is a training set and a test set of disjoint classes, each image with its foreground mask,
   and two disjoint background banks: bank A for BGAugment, bank B for the test corruption
   (:class:`SettingData`). At ``smoke`` and ``cpu`` a setting is the products-on-backgrounds stand-in at
   one shortcut rate rho (:func:`load_stand_in`); at ``paper`` Table 11.1's settings are Cars196, CUB200
   and SOP read from ``--data-root`` with their masks (:func:`load_real_setting`);
2. every loss is trained with every seed, once on the images as they are ("vanilla") and once with
   BGAugment (Sec. 11.1.2: each training image's background replaced by a random bank-A background in
   every epoch), with the shared :func:`domainknowledge.metric_learning.train_embedding_model`;
3. each model embeds the clean test set and ``corruption_repeats`` corrupted copies (Eq. 11.1 with bank B,
   the same copies for every model); MAP@R of each (:func:`evaluate_setting`) gives Table 11.1;
4. attribution maps (Ch. 9's method) of test images and the foreground score (Eqs. 11.2-11.4) give
   Table 11.2 (:func:`foreground_scores`).

With a frozen backbone, BGAugment's background draws are made up front: ``K = epochs`` draws per training
image, whose backbone features are computed once and shared by every loss and seed (epoch ``e`` trains on
draw ``e``). That is the same as replacing backgrounds in every batch with those draws, without a backbone
pass per batch. When the backbone is trained (``paper``), the replacement runs on every batch instead, as
a ``batch_transform``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from domainknowledge import metric_learning, metrics
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.metric_learning import LOSSES, EmbeddingConfig
from domainknowledge.principles import masking

__all__ = ["BGAUGMENT_FOLDER", "CONFIGS", "METHODS", "REAL_DATASETS", "CorruptedImages", "corrupted_test_sources", "mask_path", "THESIS_TABLE_11_1", "Config", "MaskedSplit", "SettingData", "SettingResult",
           "augmented_training_images", "augmented_version_transform", "chance_map_at_r", "corrupted_test_images", "describe_profiles", "evaluate_setting", "family_drop_gaps", "thesis_family_drop_gaps",
           "foreground_scores", "load_real_setting", "load_stand_in", "map_at_r", "paired_run_differences", "paired_score_test", "score_differences", "plot_attribution_pairs",
           "plot_rate_sweep", "plot_retrieval", "recovery_table", "retrieval_neighbours", "run_seeds", "embed_test_set",
           "setting_name", "summary_table", "table_11_1", "thesis_table_11_1"]

METHODS = ("vanilla", "bgaugment")
METHOD_TITLES = {"vanilla": "vanilla", "bgaugment": "+ BGAugment"}
# Table 11.1's data sets; at paper they are read from --data-root (see load_real_setting)
REAL_DATASETS = {"cars196": "Cars196", "cub200": "CUB200", "sop": "SOP"}
#: where Ch. 11's derived data live under the data root: the salient-object masks of every benchmark image and
#: the two background banks (neither ships with the benchmarks; the thesis made the masks with U^2-Net)
BGAUGMENT_FOLDER = "bgaugment"
REAL_LAYOUT = ("the benchmarks in their published layouts (see domainknowledge.data.real.dml_benchmarks: "
               "<data_root>/cars196/{car_ims/,cars_annos.mat}, <data_root>/CUB_200_2011/, "
               "<data_root>/Stanford_Online_Products/), the salient-object mask of every image as "
               "<data_root>/bgaugment/masks/<benchmark folder>/<image path inside it>.png (white = object, any "
               "resolution), e.g. bgaugment/masks/cars196/car_ims/000001.png, and the background banks "
               "<data_root>/bgaugment/backgrounds/augment/*.jpg (bank A, BGAugment) and "
               "<data_root>/bgaugment/backgrounds/corrupt/*.jpg (bank B, the test corruption), 100 images each "
               "in the thesis")


@dataclass(frozen=True)
class Config:
    """What one profile runs. Every field is shown on the chapter page.

    Stand-in data: ``train_products`` and ``test_products`` (disjoint classes), ``views_per_product``
    images each, ``image_size`` px, ``bank_size`` backgrounds per bank, ``scene_scale`` the size of a scene in
    views (each view shows a shifted window of its scene, as SOP's photos of one product share a setting).
    Settings: ``table_rates`` (the shortcut rates rho of the Table 11.1 analogue, weak to strong, the
    Cars196-, CUB200- and SOP-like regimes) and ``sweep_rates`` (the rho of the sweep; ``sweep_loss`` trains there, every loss of
    ``table_losses`` at the table rates and on ``real_datasets``, the ``paper`` profile's Table 11.1 data sets
    from ``--data-root``). Models: ``table_losses`` (keys of ``metric_learning.LOSSES``, at least one of each
    family), ``runs`` (seeds per loss and method),
    ``embedding`` (backbone, head and schedule). Evaluation: ``corruption_repeats`` (5 in the thesis).
    Attribution: ``attribution_images`` test images per model and ``attribution_samples`` SmoothGrad
    samples (50 in the thesis' code).
    """

    train_products: int
    test_products: int
    views_per_product: int
    image_size: int
    bank_size: int
    table_rates: tuple[float, ...]
    sweep_rates: tuple[float, ...]
    table_losses: tuple[str, ...]
    sweep_loss: str
    runs: int
    embedding: EmbeddingConfig
    corruption_repeats: int = 5
    attribution_images: int = 16
    attribution_samples: int = 16
    real_datasets: tuple[str, ...] = ()
    scene_scale: float = 1.5

    def __post_init__(self):
        metric_learning.check_input_size(self.image_size, self.embedding,
                                         "the object masks of the foreground scores are drawn at the network's size")
        unknown = set(self.table_losses) - (set(LOSSES) - {"none"})
        if unknown:
            raise ValueError(f"unknown or untrainable losses {sorted(unknown)}; choose from "
                             f"{sorted(set(LOSSES) - {'none'})}")
        families = [LOSSES[name].family for name in self.table_losses]
        if "ranking" not in families or "classification" not in families:
            raise ValueError("table_losses must hold at least one ranking and one classification loss (Table 11.1 "
                             "compares both families)")
        if self.sweep_loss not in self.table_losses:
            raise ValueError(f"sweep_loss {self.sweep_loss!r} must be one of table_losses {self.table_losses}")
        rates = self.table_rates + self.sweep_rates
        if not self.table_rates or any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError(f"shortcut rates must lie in [0, 1] and table_rates must not be empty, got {rates}")
        if list(self.table_rates) != sorted(self.table_rates):
            raise ValueError("table_rates must be sorted from the weakest to the strongest shortcut")
        if self.views_per_product < self.embedding.m_per_class:
            raise ValueError(f"views_per_product ({self.views_per_product}) must be at least m_per_class "
                             f"({self.embedding.m_per_class}), so a batch holds m views of a product")
        if self.runs < 1 or self.corruption_repeats < 2 or self.attribution_images < 1 or self.attribution_samples < 1:
            raise ValueError("runs and attribution sizes must be >= 1 and corruption_repeats >= 2 (a spread)")
        if self.train_products * self.views_per_product < self.embedding.batch_size:
            raise ValueError("the training set must hold at least one batch")
        unknown = set(self.real_datasets) - set(REAL_DATASETS)
        if unknown:
            raise ValueError(f"unknown real data sets {sorted(unknown)}; choose from {sorted(REAL_DATASETS)}")


#: the trainer at smoke and cpu: EfficientNet-Lite0 at 48 px, its top block and head convolution trained with
#: a linear 128-d embedding on globally pooled features (the lower blocks' maps cached, one version per
#: BGAugment draw), early stopping on the MAP@R of held-out training products
_STAND_IN_EMBEDDING = EmbeddingConfig(backbone="efficientnet_lite0", backbone_blocks=None, pool_grid=1, image_size=48,
                                      trainable_blocks=1, head_hidden=0, epochs=8, validation_fraction=0.2,
                                      patience=2, backbone_learning_rate=3e-4, head_learning_rate=1e-3)
CONFIGS: dict[str, Config] = {
    "smoke": Config(
        train_products=24, test_products=24, views_per_product=4, image_size=48, bank_size=24,
        table_rates=(0.1, 0.9), sweep_rates=(0.1, 0.9), table_losses=("contrastive", "normalized_softmax"),
        sweep_loss="contrastive", runs=1, embedding=dataclasses.replace(_STAND_IN_EMBEDDING, epochs=2),
        corruption_repeats=2, attribution_images=4, attribution_samples=4),
    # 96 px: at 48 px the object alone gave 5.4 % MAP@R (Lite0's last map is 2 x 2), at 96 px 19.1 %, Cars196's
    # level in Table 11.1; the three rates give vanilla relative drops near Cars196's, CUB200's and SOP's
    "cpu": Config(
        train_products=100, test_products=100, views_per_product=6, image_size=96, bank_size=100,
        table_rates=(0.0, 0.3, 0.9), sweep_rates=(0.0, 0.3, 0.9),     # the sweep: the table's rates only
        table_losses=("contrastive", "normalized_softmax"), sweep_loss="normalized_softmax",
        runs=2, embedding=dataclasses.replace(_STAND_IN_EMBEDDING, image_size=96), corruption_repeats=5,
        attribution_images=16, attribution_samples=16),
    "paper": Config(
        train_products=2000, test_products=2000, views_per_product=6, image_size=224, bank_size=100,
        table_rates=(0.0, 0.3, 0.9), sweep_rates=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9),
        # family-balanced (metric_learning.FAMILY_BALANCED_ORDER): a dry run keeping the first two still compares
        # a ranking with a classification loss
        table_losses=("contrastive", "normalized_softmax", "triplet", "arcface", "multi_similarity"),
        sweep_loss="normalized_softmax", runs=3,
        # the top four blocks and the head convolution train on cached 192 x 7 x 7 maps of the lower twelve;
        # BGAugment runs the lower blocks on every augmented batch (40 cached versions would not fit a disk)
        embedding=EmbeddingConfig(backbone="efficientnet_lite0", backbone_blocks=None, pool_grid=1, image_size=224,
                                  trainable_blocks=4, head_hidden=0, epochs=40, validation_fraction=0.2, patience=5,
                                  backbone_learning_rate=1e-5, head_learning_rate=1e-4),
        corruption_repeats=5, attribution_images=100, attribution_samples=50, real_datasets=tuple(REAL_DATASETS)),
}


def describe_profiles(configs: dict[str, Config] | None = None) -> pd.DataFrame:
    """A table of every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


def run_seeds(seed: int, runs: int) -> tuple[int, ...]:
    """The training seeds of one loss and method: ``1000 * seed + k`` for ``k < runs``."""
    return tuple(1000 * seed + k for k in range(runs))


def setting_name(rate: float) -> str:
    """The name of the stand-in setting with shortcut rate ``rate``, e.g. ``rho=0.9``."""
    return f"rho={rate:g}"


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskedSplit:
    """Images ``(N, S, S, 3)`` uint8, foreground masks ``(N, S, S)`` bool, class labels ``(N,)`` (0 .. C-1)."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.masks.shape != self.images.shape[:3] \
                or self.labels.shape != (n,):
            raise ValueError(f"a split needs images (N, S, S, 3), masks (N, S, S) and labels (N,); got "
                             f"{self.images.shape}, {self.masks.shape}, {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class SettingData:
    """One setting of Table 11.1: ``train`` and ``test`` splits (disjoint classes), background bank A
    ``augment_bank`` ``(A, S, S, 3)`` (BGAugment) and bank B ``corrupt_bank`` ``(B, S, S, 3)`` (the test
    corruption), a ``name``, a ``title`` for the page and the ``shortcut_rate`` (None for real data)."""

    name: str
    title: str
    train: MaskedSplit
    test: MaskedSplit
    augment_bank: np.ndarray
    corrupt_bank: np.ndarray
    shortcut_rate: float | None = None


def _split(products) -> MaskedSplit:
    labels = np.unique(np.asarray(products.labels), return_inverse=True)[1].astype(np.int64)
    return MaskedSplit(np.asarray(products.images), np.asarray(products.masks).astype(bool), labels)


def load_stand_in(config: Config, rate: float, *, seed: int, data_root=None) -> SettingData:
    """The products-on-backgrounds stand-in at shortcut rate ``rate`` (training products seeded by ``seed``,
    test products by ``seed + 1``; banks A and B by ``seed`` and shared by every rate)."""
    from domainknowledge.data.synthetic import products

    train = products.make_product_set(config.train_products, config.views_per_product, split="train", seed=seed,
                                      image_size=config.image_size, shortcut_rate=rate, data_root=data_root,
                                      scene_scale=config.scene_scale)
    test = products.make_product_set(config.test_products, config.views_per_product, split="test", seed=seed + 1,
                                     image_size=config.image_size, shortcut_rate=rate, data_root=data_root,
                                     scene_scale=config.scene_scale)
    augment = products.background_bank("augment", config.bank_size, image_size=config.image_size, seed=seed)
    corrupt = products.background_bank("corrupt", config.bank_size, image_size=config.image_size, seed=seed)
    return SettingData(setting_name(rate), f"stand-in, rho = {rate:g}", _split(train), _split(test), augment, corrupt,
                       shortcut_rate=float(rate))


def _read_bank(folder: Path, size: int) -> np.ndarray:
    from domainknowledge.data.bundled import DataNotFoundError
    from domainknowledge.data.real.dml_benchmarks import image_files, read_square_image

    files = image_files(folder) if folder.is_dir() else []
    if not files:
        raise DataNotFoundError(f"no background images in {folder}; expected {REAL_LAYOUT}")
    return np.stack([read_square_image(p, size) for p in files])


def mask_path(data_root, name: str, image: Path) -> Path:
    """Where the mask of benchmark ``name``'s ``image`` lies: ``<data_root>/bgaugment/masks/<benchmark
    folder>/<image path inside the benchmark folder>.png``."""
    from domainknowledge.data.real.dml_benchmarks import DML_BENCHMARKS

    folder = DML_BENCHMARKS[name].folder
    relative = Path(image).relative_to(Path(data_root).expanduser() / folder)
    return Path(data_root).expanduser() / BGAUGMENT_FOLDER / "masks" / folder / relative.with_suffix(".png")


def _decoded_split(data_root, name: str, split: str, image_size: int) -> MaskedSplit:
    """One split's images and masks decoded once into memory-mapped ``.npy`` files of the data cache
    (``(N, S, S, 3)`` uint8 and ``(N, S, S)`` bool, written under temporary names and renamed when complete)
    and opened read-only, so that the split is read from disk a batch at a time and never held in memory."""
    from PIL import Image

    from domainknowledge.data.bundled import DataNotFoundError, cache_dir
    from domainknowledge.data.real.dml_benchmarks import find_dml_benchmark, read_square_image

    found = find_dml_benchmark(data_root, name, split)
    masks = [mask_path(data_root, name, path) for path in found.paths]
    absent = next((m for m in masks if not m.is_file()), None)
    if absent is not None:
        raise DataNotFoundError(f"the mask {absent} is missing; expected {REAL_LAYOUT}")
    stem = cache_dir() / "bgaugment" / f"{name}_{image_size}_{split}_{len(found.paths)}"
    files = {"images": stem.with_name(stem.name + "_images.npy"), "masks": stem.with_name(stem.name + "_masks.npy")}
    if not all(path.is_file() for path in files.values()):
        stem.parent.mkdir(parents=True, exist_ok=True)
        count = len(found.paths)
        partial = {key: path.with_name(path.name + ".partial") for key, path in files.items()}
        images = np.lib.format.open_memmap(partial["images"], mode="w+", dtype=np.uint8,
                                           shape=(count, image_size, image_size, 3))
        decoded_masks = np.lib.format.open_memmap(partial["masks"], mode="w+", dtype=bool,
                                                  shape=(count, image_size, image_size))
        for k, (path, mask) in enumerate(zip(found.paths, masks)):
            with Image.open(path) as image:
                full_size = image.size
            images[k] = read_square_image(path, image_size)
            decoded_masks[k] = read_square_image(mask, image_size, "L", full_size=full_size) >= 128
        images.flush()
        decoded_masks.flush()
        del images, decoded_masks
        for key in ("masks", "images"):
            partial[key].replace(files[key])
    return MaskedSplit(np.load(files["images"], mmap_mode="r"), np.load(files["masks"], mmap_mode="r"), found.labels)


def load_real_setting(data_root, name: str, *, image_size: int) -> SettingData:
    """Cars196, CUB200 or SOP from ``data_root`` in their published layouts with the standard metric-learning
    split (:func:`domainknowledge.data.real.dml_benchmarks.find_dml_benchmark`), each image's salient-object
    mask and the two background banks (layout: :data:`REAL_LAYOUT`; the thesis computed the masks with
    U^2-Net, which is not available offline, so they must be on disk). Images and masks are centre-cropped to
    squares and resized to ``image_size``, decoded once into memory-mapped files of the data cache
    (:func:`_decoded_split`). Raises :class:`~domainknowledge.data.bundled.DataNotFoundError` naming what is
    missing and where it belongs."""
    from domainknowledge.data.bundled import data_root_folder

    if name not in REAL_DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(REAL_DATASETS)}")
    train = _decoded_split(data_root, name, "train", image_size)
    test = _decoded_split(data_root, name, "test", image_size)
    backgrounds = data_root_folder(data_root, f"{BGAUGMENT_FOLDER}/backgrounds", "background banks", REAL_LAYOUT)
    return SettingData(name, REAL_DATASETS[name], train, test, _read_bank(backgrounds / "augment", image_size),
                       _read_bank(backgrounds / "corrupt", image_size))


def _replace(images: np.ndarray, masks: np.ndarray, backgrounds: np.ndarray) -> np.ndarray:
    from domainknowledge.data.synthetic.products import replace_background

    return replace_background(images, masks, backgrounds)


class CorruptedImages(metric_learning.ImageSource):
    """One corrupted copy of a test set (Eq. 11.1), built a batch at a time: image ``i`` on bank-B background
    ``draws[i]``. ``images`` ``(N, S, S, 3)``, ``masks`` ``(N, S, S)``, ``bank`` ``(B, S, S, 3)``,
    ``draws`` ``(N,)``; ``source[indices]`` is ``uint8 (len, 3, S, S)``."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, bank: np.ndarray, draws: np.ndarray):
        self.images, self.masks, self.bank, self.draws = images, masks, bank, np.asarray(draws)
        self.size = int(images.shape[1])

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        copies = _replace(np.asarray(self.images[indices]), np.asarray(self.masks[indices]),
                          self.bank[self.draws[indices]])
        return torch.from_numpy(np.ascontiguousarray(copies.transpose(0, 3, 1, 2)))

    def numpy(self) -> np.ndarray:
        """The whole copy, ``(N, S, S, 3)`` uint8 (small sets only)."""
        return self[:].permute(0, 2, 3, 1).numpy()


def corrupted_test_sources(data: SettingData, repeats: int, *, seed: int) -> list[CorruptedImages]:
    """The corrupted test sets (Eq. 11.1) as :class:`CorruptedImages`: copy ``r`` puts every test image on a
    random bank-B background drawn with ``(seed, r)``, so every model sees the same copies, and none is held
    in memory."""
    return [CorruptedImages(data.test.images, data.test.masks, data.corrupt_bank,
                            np.random.default_rng([seed, 11, repeat]).integers(len(data.corrupt_bank),
                                                                               size=len(data.test)))
            for repeat in range(repeats)]


def corrupted_test_images(data: SettingData, repeats: int, *, seed: int) -> np.ndarray:
    """The corrupted test sets (Eq. 11.1) decoded: ``(repeats, N, S, S, 3)``, the same copies as
    :func:`corrupted_test_sources` (for figures and small sets)."""
    return np.stack([source.numpy() for source in corrupted_test_sources(data, repeats, seed=seed)])


def augmented_training_images(data: SettingData, versions: int, *, seed: int) -> np.ndarray:
    """BGAugment's training images drawn up front (Sec. 11.1.2): ``(versions, N, S, S, 3)``, version ``k``
    puts every training image on a random bank-A background drawn with ``(seed, k)``."""
    out = []
    for version in range(versions):
        draws = np.random.default_rng([seed, 12, version]).integers(len(data.augment_bank), size=len(data.train))
        out.append(_replace(data.train.images, data.train.masks, data.augment_bank[draws]))
    return np.stack(out)


def augmented_version_transform(data: SettingData, *, seed: int):
    """``transform(version, images (B, 3, S, S), indices (B,)) -> images``: version ``k`` of the training
    images ``indices`` as :func:`augmented_training_images` draws it (the same bank-A backgrounds), built a
    batch at a time for :func:`~domainknowledge.metric_learning.backbone_features`."""
    from domainknowledge.training import as_image_tensor

    draws = {}

    def transform(version: int, images: torch.Tensor, indices: np.ndarray) -> torch.Tensor:
        if version not in draws:
            draws[version] = np.random.default_rng([seed, 12, version]).integers(len(data.augment_bank),
                                                                                 size=len(data.train))
        pixels = images.permute(0, 2, 3, 1).numpy()
        return as_image_tensor(_replace(pixels, np.asarray(data.train.masks[indices]),
                                        data.augment_bank[draws[version][indices]]))

    return transform


# --- training and evaluation ----------------------------------------------------------------------------


def map_at_r(embeddings: np.ndarray, labels: np.ndarray, distance: str, *, device="cpu") -> float:
    """MAP@R (Musgrave et al. 2020) of the test classes ``labels`` ``(N,)`` under ``distance`` for embeddings
    ``(N, D)``, from a k-nearest-neighbour search with k = the largest class size
    (:func:`domainknowledge.metrics.knn_retrieval_scores`, on the GPU where faiss has one), never an
    ``N x N`` distance matrix."""
    return metrics.knn_retrieval_scores(embeddings, labels, distance, device=device)["map_at_r"]


@dataclass
class SettingResult:
    """One setting's runs: ``rows`` (one per loss, method, seed: MAP@R on the clean test set and on every
    corrupted copy), the trained ``networks`` per ``(loss, method, seed)``, timings (s) and ``test_features``:
    the frozen lower blocks' outputs ``(N, *frozen_shape)`` of the clean test set and of every corrupted copy
    (None when the whole trunk trains or they were not kept), which every network reads (:func:`embed_test_set`)."""

    data: SettingData
    rows: pd.DataFrame
    networks: dict[tuple[str, str, int], metric_learning.EmbeddingNetwork] = field(default_factory=dict)
    corrupted: list[CorruptedImages] = field(default_factory=list)
    feature_seconds: float = 0.0
    training_seconds: float = 0.0
    test_features: list | None = None

    @property
    def corrupted_images(self) -> np.ndarray:
        """The corrupted test sets every model was scored on, decoded: ``(repeats, N, S, S, 3)`` (small sets
        only; evaluation builds them a batch at a time)."""
        return np.stack([source.numpy() for source in self.corrupted])


def _bgaugment_batch_transform(data: SettingData, *, seed: int):
    """Online BGAugment for a trained backbone: each batch's images ``(B, 3, S, S)`` get fresh random bank-A
    backgrounds (Eq. 11.1 with the training masks), drawn by
    :func:`domainknowledge.data.synthetic.products.bgaugment_transform`."""
    from domainknowledge.data.synthetic.products import bgaugment_transform

    return bgaugment_transform(data.train.masks, bank=data.augment_bank, seed=seed)


def evaluate_setting(config: Config, data: SettingData, losses, seeds, *, methods=METHODS, device="cpu",
                     data_seed: int = 0, keep_networks: bool = True, keep_test_features: bool = True,
                     log: Callable[[str], None] = print) -> SettingResult:
    """Train every loss in ``losses`` with every method and seed on ``data``; MAP@R of each model on the clean
    test set and the ``config.corruption_repeats`` corrupted copies (all models see the same copies, drawn
    from ``data_seed``). With ``keep_networks`` the first seed's networks are kept (for attribution maps and
    retrieval figures), with ``keep_test_features`` the lower blocks' outputs of the test sets (for
    :func:`embed_test_set`; at SOP's size about 2 GB on disk per test set).

    The trunk's frozen part (its lower blocks) runs once per image: its outputs for the clean and corrupted
    test sets and the clean training set, and for ``epochs`` BGAugment versions of the training set, are
    computed once and shared by every run (memory-mapped from the data cache when large); where the versions
    would exceed :data:`~domainknowledge.metric_learning.IN_MEMORY_FEATURE_BYTES`, BGAugment instead draws
    fresh backgrounds for every batch and runs the lower blocks on it. Every model is validated on the clean
    training images of its held-out classes."""
    from domainknowledge.training import as_image_tensor

    seeds = tuple(seeds)
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    embedding = config.embedding
    cached = not embedding.train_backbone
    started = time.time()
    corrupted = corrupted_test_sources(data, config.corruption_repeats, seed=data_seed)
    train_images, test_images = (metric_learning.ArrayImages(split.images) if isinstance(split.images, np.memmap)
                                 else as_image_tensor(split.images) for split in (data.train, data.test))
    test_sets = [test_images] + corrupted
    features = {}
    if cached:
        probe = metric_learning.build_embedding_network(embedding, seed=0)
        test_features = [metric_learning.backbone_features(probe, images, device=device) for images in test_sets]
        features["vanilla"] = metric_learning.backbone_features(probe, train_images, device=device)
        versions = max(embedding.epochs, 1)
        version_bytes = 4 * versions * len(train_images) * int(np.prod(probe.frozen_shape))
        if "bgaugment" in methods and version_bytes <= metric_learning.IN_MEMORY_FEATURE_BYTES:
            features["bgaugment"] = metric_learning.backbone_features(
                probe, train_images, device=device, versions=versions,
                transform=augmented_version_transform(data, seed=data_seed))
    feature_seconds = time.time() - started
    rows, networks = [], {}
    for loss_name in losses:
        distance = LOSSES[loss_name].distance
        for method in methods:
            for run_seed in seeds:
                begun = time.time()
                transform = None
                if method == "bgaugment" and method not in features:
                    transform = _bgaugment_batch_transform(data, seed=run_seed)
                network, history = metric_learning.train_embedding_model(
                    loss_name, train_images, data.train.labels, config=embedding, seed=run_seed, device=device,
                    features=features.get(method), validation_features=features.get("vanilla"),
                    batch_transform=transform)
                if cached:
                    embedded = [metric_learning.embed(network, features=f, device=device) for f in test_features]
                else:
                    embedded = [metric_learning.embed(network, images, device=device) for images in test_sets]
                scores = [map_at_r(e, data.test.labels, distance, device=device) for e in embedded]
                rows.append({"setting": data.name, "loss": loss_name, "method": method, "seed": run_seed,
                             "clean": scores[0], **{f"corrupted_{r}": s for r, s in enumerate(scores[1:])},
                             "epochs": len(history.epoch_losses), "best_epoch": history.best_epoch + 1})
                if keep_networks and run_seed == seeds[0]:
                    networks[(loss_name, method, run_seed)] = network
                log(f"{data.name:<8} {LOSSES[loss_name].title:<20} {method:<9} seed {run_seed}: "
                    f"{time.time() - begun:4.1f} s, MAP@R clean {100 * scores[0]:.1f} %, corrupted "
                    f"{100 * np.mean(scores[1:]):.1f} %, last loss {history.epoch_losses[-1]:.3f}, "
                    f"best epoch {history.best_epoch + 1}/{len(history.epoch_losses)}")
    frame = pd.DataFrame(rows)
    corrupted_columns = [c for c in frame.columns if c.startswith("corrupted_")]
    frame["corrupted"] = frame[corrupted_columns].mean(axis=1)
    return SettingResult(data, frame, networks, corrupted, feature_seconds, time.time() - started - feature_seconds,
                         test_features if cached and keep_test_features else None)


# --- tables ----------------------------------------------------------------------------------------------


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per setting, loss and method: the mean over seeds of clean MAP@R, of corrupted MAP@R (each seed's
    mean over the corruption repeats), the standard deviation over the corruption repeats (mean over
    seeds, as Table 11.1's +-), the standard deviation over seeds of both, and the drop clean - corrupted
    (absolute and relative to clean)."""
    repeats = [c for c in rows.columns if c.startswith("corrupted_")]
    frame = rows.assign(repeat_std=rows[repeats].std(axis=1, ddof=1))
    grouped = frame.groupby(["setting", "loss", "method"], sort=False)
    out = grouped.agg(clean=("clean", "mean"), corrupted=("corrupted", "mean"), repeat_std=("repeat_std", "mean"),
                      clean_seed_std=("clean", "std"), corrupted_seed_std=("corrupted", "std"), seeds=("seed", "count"))
    out["drop"] = out["clean"] - out["corrupted"]
    out["relative_drop"] = out["drop"] / out["clean"]
    return out


def table_11_1(summary: pd.DataFrame, titles: dict[str, str] | None = None) -> pd.DataFrame:
    """Table 11.1's layout: rows loss / method, columns (setting, clean | corrupted), values in % as strings
    ``mean`` (clean) and ``mean +- std over repeats`` (corrupted); the better of vanilla and BGAugment per
    column in bold (Markdown ``**``)."""
    titles = titles or {}
    table = {}
    for setting in dict.fromkeys(summary.index.get_level_values("setting")):
        part = summary.xs(setting, level="setting")
        title = titles.get(setting, setting)
        for column in ("clean", "corrupted"):
            cells = {}
            for loss_name in dict.fromkeys(part.index.get_level_values("loss")):
                values = part.xs(loss_name, level="loss")
                best = values[column].idxmax() if len(values) > 1 else None
                for method, row in values.iterrows():
                    text = f"{100 * row[column]:.1f}"
                    if column == "corrupted":
                        text += f" ± {100 * row['repeat_std']:.1f}"
                    cells[(LOSSES[loss_name].title, METHOD_TITLES[method])] = f"**{text}**" if method == best else text
            table[(title, column)] = cells
    frame = pd.DataFrame(table)
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["loss", "method"])
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["setting", "test set"])
    return frame


def recovery_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per setting and loss: the vanilla drop (clean - corrupted), BGAugment's gain on the corrupted set,
    the share of the drop it recovers (gain / drop) and its change of clean MAP@R (BGAugment - vanilla)."""
    rows = {}
    for (setting, loss_name), part in summary.groupby(level=["setting", "loss"], sort=False):
        part = part.droplevel(["setting", "loss"])
        if not {"vanilla", "bgaugment"} <= set(part.index):
            continue
        vanilla, augmented = part.loc["vanilla"], part.loc["bgaugment"]
        drop = vanilla["clean"] - vanilla["corrupted"]
        gain = augmented["corrupted"] - vanilla["corrupted"]
        rows[(setting, loss_name)] = {"vanilla_drop": drop, "corrupted_gain": gain,
                                      "recovered_share": gain / drop if drop > 0 else np.nan,
                                      "clean_change": augmented["clean"] - vanilla["clean"]}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["setting", "loss"])
    return frame


#: Table 11.1 of the thesis (MAP@R in %), per loss and data set: (vanilla clean, vanilla corrupted,
#: BGAugment clean, BGAugment corrupted). The thesis' values of the claims are computed from these numbers.
THESIS_TABLE_11_1: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "contrastive": {"cars196": (15.22, 13.31, 16.43, 16.31), "cub200": (20.27, 12.47, 19.39, 15.46),
                    "sop": (37.98, 4.17, 31.52, 24.09)},
    "triplet": {"cars196": (15.33, 13.40, 15.28, 15.19), "cub200": (18.29, 10.94, 18.56, 15.33),
                "sop": (36.71, 6.05, 29.63, 21.39)},
    "multi_similarity": {"cars196": (18.80, 16.25, 15.61, 15.48), "cub200": (19.19, 12.21, 18.93, 15.65),
                         "sop": (39.65, 6.51, 32.67, 24.00)},
    "arcface": {"cars196": (16.25, 13.63, 16.19, 16.23), "cub200": (20.66, 12.87, 20.91, 17.92),
                "sop": (40.50, 6.98, 22.25, 16.53)},
    "normalized_softmax": {"cars196": (18.06, 15.36, 18.15, 18.12), "cub200": (20.18, 12.41, 20.60, 17.39),
                           "sop": (41.52, 7.67, 32.16, 24.60)},
}


def thesis_table_11_1() -> pd.DataFrame:
    """:data:`THESIS_TABLE_11_1` read as the page reads its own runs, one row per (data set, loss): the four
    MAP@R values (%), the vanilla ``drop`` (points) and ``relative_drop`` (share of clean), BGAugment's
    ``corrupted_gain`` and ``clean_change`` (points) and the ``recovered_share`` of the drop it wins back."""
    rows = []
    for loss_name, sets in THESIS_TABLE_11_1.items():
        for name, (clean, corrupted, bg_clean, bg_corrupted) in sets.items():
            drop = clean - corrupted
            rows.append({"dataset": name, "loss": loss_name, "clean": clean, "corrupted": corrupted,
                         "bgaugment_clean": bg_clean, "bgaugment_corrupted": bg_corrupted, "drop": drop,
                         "relative_drop": drop / clean, "corrupted_gain": bg_corrupted - corrupted,
                         "recovered_share": (bg_corrupted - corrupted) / drop, "clean_change": bg_clean - clean})
    return pd.DataFrame(rows).set_index(["dataset", "loss"]).sort_index(level="dataset", sort_remaining=False)


def paired_run_differences(rows: pd.DataFrame, column: str, settings=None) -> pd.Series:
    """BGAugment minus vanilla of ``column`` (``"clean"`` or ``"corrupted"``, the latter each run's mean over
    the corruption repeats) per (setting, loss, seed): the two runs of a pair share the loss, the seed (so the
    head's initialisation) and the test images, and differ only in BGAugment. ``settings`` restricts the
    settings. ``rows``: :attr:`SettingResult.rows`, concatenated."""
    frame = rows if settings is None else rows[rows["setting"].isin(list(settings))]
    if frame.empty:
        return pd.Series(dtype=float)
    wide = frame.pivot_table(index=["setting", "loss", "seed"], columns="method", values=column, sort=False)
    if not {"vanilla", "bgaugment"} <= set(wide.columns):
        raise ValueError("need vanilla and BGAugment runs to pair")
    return (wide["bgaugment"] - wide["vanilla"]).dropna()


def family_drop_gaps(rows: pd.DataFrame, settings=None) -> pd.Series:
    """Vanilla relative drop ``(clean - corrupted) / clean`` of the ranking losses minus that of the
    classification losses (each family's mean over its losses) per (setting, seed): pairs that share the data
    and the seed and differ only in the loss family (Sec. 11.3 compares the families). ``rows`` as for
    :func:`paired_run_differences`; needs at least one loss of each family."""
    frame = rows[rows["method"] == "vanilla"]
    frame = frame if settings is None else frame[frame["setting"].isin(list(settings))]
    families = frame["loss"].map(lambda name: LOSSES[name].family)
    if not {"ranking", "classification"} <= set(families):
        raise ValueError("need vanilla runs of a ranking and a classification loss")
    relative = (frame["clean"] - frame["corrupted"]) / frame["clean"]
    wide = relative.groupby([frame["setting"], frame["seed"], families], sort=False).mean().unstack()
    return (wide["ranking"] - wide["classification"]).dropna()


def thesis_family_drop_gaps() -> pd.DataFrame:
    """Table 11.1's relative-drop gap between the families per data set (ranking mean minus classification
    mean, as :func:`family_drop_gaps`), beside the data sets' mean relative drops: ``gap`` and ``mean``."""
    thesis = thesis_table_11_1()["relative_drop"].reset_index()
    thesis["family"] = thesis["loss"].map(lambda name: LOSSES[name].family)
    means = thesis.groupby(["dataset", "family"])["relative_drop"].mean().unstack()
    return pd.DataFrame({"gap": means["ranking"] - means["classification"],
                         "mean": thesis.groupby("dataset")["relative_drop"].mean()})


def chance_map_at_r(labels: np.ndarray, *, draws: int = 20, seed: int = 0, dimension: int = 128) -> np.ndarray:
    """MAP@R of ``draws`` random embeddings (standard normal, ``dimension``-d, cosine) of test classes ``labels``:
    what a model that has learned nothing scores on this test set, the chance level of the positive controls."""
    rng = np.random.default_rng(seed)
    return np.array([map_at_r(rng.standard_normal((len(labels), dimension)), labels, "cosine")
                     for _ in range(draws)])


# --- attribution ------------------------------------------------------------------------------------------


def foreground_scores(result: SettingResult, *, images: int, samples: int, seed: int,
                      losses=None, device="cpu") -> tuple[pd.DataFrame, dict]:
    """Table 11.2 for one setting: the foreground score (Eq. 11.4) of attribution maps (Ch. 9's method,
    under each loss's distance) of the first ``images`` clean test images (one per test class where
    possible), for the first seed's vanilla and BGAugment model of every loss. Returns one row per
    (loss, method, image) and the maps ``{(loss, method): (images, S, S)}`` with the chosen indices under
    key ``"indices"``."""
    from domainknowledge.principles.attribution import dml_attribution_maps

    data = result.data
    _, first = np.unique(data.test.labels, return_index=True)
    chosen = np.sort(first)[:images] if len(first) >= images else np.arange(min(images, len(data.test)))
    first_seed = min(key[2] for key in result.networks)
    losses = losses or list(dict.fromkeys(key[0] for key in result.networks))
    rows, maps = [], {"indices": chosen}
    for loss_name in losses:
        for method in METHODS:
            network = result.networks.get((loss_name, method, first_seed))
            if network is None:
                continue
            attribution = dml_attribution_maps(network.to(device), data.test.images[chosen],
                                               distance=LOSSES[loss_name].distance, samples=samples, seed=seed)
            network.cpu()
            attribution = np.asarray(attribution, dtype=np.float64)
            scores = masking.foreground_score(data.test.masks[chosen], attribution)
            maps[(loss_name, method)] = attribution
            rows += [{"setting": data.name, "loss": loss_name, "method": method, "image": int(i), "score": float(s)}
                     for i, s in zip(chosen, scores)]
    return pd.DataFrame(rows), maps


def score_differences(scores: pd.DataFrame) -> pd.Series:
    """BGAugment minus vanilla foreground score per (setting, loss, image): the same image under the two
    models of one loss. ``scores``: the rows of :func:`foreground_scores`."""
    wide = scores.pivot_table(index=["setting", "loss", "image"], columns="method", values="score", sort=False)
    return (wide["bgaugment"] - wide["vanilla"]).dropna()


def paired_score_test(scores: pd.DataFrame) -> pd.DataFrame:
    """Per setting, BGAugment against vanilla on the same images and losses: the mean paired difference of
    the foreground score, how many pairs BGAugment wins, the two-sided Wilcoxon signed-rank p-value and the
    matched-pairs rank-biserial correlation (:func:`domainknowledge.significance.paired_signed_rank`).
    ``scores``: the rows of :func:`foreground_scores` (columns setting, loss, method, image, score)."""
    from domainknowledge.significance import paired_signed_rank

    rows = {}
    for setting, part in score_differences(scores).groupby(level="setting", sort=False):
        test = paired_signed_rank(part.to_numpy(), alternative="two-sided")
        rows[setting] = {"mean_difference": test["mean"], "bgaugment_higher": test["wins"], "pairs": test["n"],
                         "rank_biserial": test["rank_biserial"], "p_value": test["p_value"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("setting")


# --- retrieval ------------------------------------------------------------------------------------------


def embed_test_set(result: SettingResult, network, index: int = 0, *, device="cpu") -> np.ndarray:
    """Embeddings ``(N, D)`` of one test set of ``result`` through one of its trained networks: ``index`` 0 the
    clean test images, ``r + 1`` the ``r``-th corrupted copy. Only the trained top runs, on the lower blocks'
    outputs, where the result kept them; otherwise the whole network runs on the images."""
    from domainknowledge.training import as_image_tensor

    if result.test_features is not None:
        return metric_learning.embed(network, features=result.test_features[index], device=device)
    if index > 0:                                    # built a batch at a time, as evaluation built them
        return metric_learning.embed(network, result.corrupted[index - 1], device=device)
    images = result.data.test.images
    images = metric_learning.ArrayImages(images) if isinstance(images, np.memmap) else as_image_tensor(images)
    return metric_learning.embed(network, images, device=device)


def retrieval_neighbours(database: np.ndarray, queries: np.ndarray, distance: str, k: int, *,
                         exclude=None) -> np.ndarray:
    """Indices ``(Q, k)`` of the ``k`` database embeddings ``(N, D)`` nearest to each query embedding
    ``(Q, D)`` under ``distance`` (:func:`embed_test_set` makes both, so a database is embedded once for all
    queries); ``exclude`` (an index, or ``(Q,)`` indices, one per query): a database item never returned for
    that query (the query's own)."""
    joined = np.concatenate([queries, database])
    distances = metric_learning.pairwise_distance(joined, distance, rows=np.arange(len(queries)))[:, len(queries):]
    if exclude is not None:
        excluded = np.broadcast_to(np.asarray(exclude), (len(queries),))
        distances[np.arange(len(queries)), excluded] = np.inf
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


# --- figures --------------------------------------------------------------------------------------------


def plot_rate_sweep(summary: pd.DataFrame, rates: dict[str, float], *, loss_name: str, title: str | None = None):
    """MAP@R against the shortcut rate rho: clean (solid) and corrupted (dashed), vanilla and BGAugment,
    mean over seeds with the seed standard deviation as a band."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    colours = {"vanilla": "tab:blue", "bgaugment": "tab:orange"}
    for method in METHODS:
        points = []
        for setting, rate in rates.items():
            key = (setting, loss_name, method)
            if key in summary.index:
                points.append((rate, *summary.loc[key, ["clean", "corrupted", "clean_seed_std", "corrupted_seed_std"]]))
        if not points:
            continue
        points = np.array(sorted(points), dtype=np.float64)
        for column, std_column, style, label in ((1, 3, "-", "clean"), (2, 4, "--", "corrupted")):
            mean, spread = 100 * points[:, column], 100 * np.nan_to_num(points[:, std_column])
            ax.plot(points[:, 0], mean, style, marker="o", color=colours[method],
                    label=f"{METHOD_TITLES[method]}, {label}")
            ax.fill_between(points[:, 0], mean - spread, mean + spread, color=colours[method], alpha=0.15)
    ax.set_xlabel("shortcut rate rho (share of a product's views on its own background)")
    ax.set_ylabel("MAP@R (%)")
    ax.legend(fontsize=8, ncol=2)
    if title:
        ax.set_title(title)
    return fig, ax


def plot_retrieval(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], *, title: str | None = None):
    """Fig. 11.1: one row per ``(label, query image (S, S, 3), neighbour images (k, S, S, 3), hits (k,) bool)``;
    the query first, then its nearest neighbours framed green (same product) or red."""
    import matplotlib.pyplot as plt

    k = max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(1.05 * (k + 1) + 1.6, 1.15 * len(rows)), squeeze=False)
    for (label, query, neighbours, hits), line in zip(rows, axes):
        for ax in line:
            ax.set_xticks([])
            ax.set_yticks([])
        line[0].imshow(query)
        line[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        for spine in line[0].spines.values():
            spine.set_linewidth(2.5)
        for ax, image, hit in zip(line[1:], neighbours, hits):
            ax.imshow(image)
            for spine in ax.spines.values():
                spine.set_color("tab:green" if hit else "tab:red")
                spine.set_linewidth(2.5)
    axes[0, 0].set_title("query", fontsize=8)
    for column in range(1, k + 1):
        axes[0, column].set_title(f"{column}.", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig, axes


def plot_attribution_pairs(images: np.ndarray, masks: np.ndarray, vanilla: np.ndarray, augmented: np.ndarray,
                           scores: tuple[np.ndarray, np.ndarray], *, title: str | None = None):
    """Fig. 11.3: per column an image ``(S, S, 3)`` with its mask outline, the vanilla model's attribution
    map and the BGAugment model's, each titled with its foreground score."""
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.25 * n + 1.2, 4.1), squeeze=False)
    for column in range(n):
        axes[0, column].imshow(images[column])
        axes[0, column].contour(masks[column].astype(float), levels=[0.5], colors="white", linewidths=0.6)
        for row, (maps, score) in enumerate(((vanilla, scores[0]), (augmented, scores[1])), start=1):
            axes[row, column].imshow(maps[column], cmap="gray", vmin=0, vmax=1)
            axes[row, column].set_title(f"{score[column]:.2f}", fontsize=7, pad=2)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, label in enumerate(("image", "vanilla", "BGAugment")):
        axes[row, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig, axes

"""Experiment drivers of the multitask-aesthetics chapter (Kobs 2023, Ch. 16): configurations, data, pretraining,
NIMA fine-tuning, tests and figures.

The chapter runs, at every profile through the same code:

1. **Pretraining** (Sec. 16.2.3-16.2.4) of a MobileNetV2 on "highly aesthetic" base images with the pretext
   tasks ``ranking``, ``ranking+classification`` and ``ranking+regression`` (Eqs. 16.1-16.5; distortions of
   Table 16.1 drawn afresh every epoch), and with the baselines RotNet and SimCLR on the same images
   (:func:`run_pretraining`);
2. **Fine-tuning** (Sec. 16.2.5) of every initialisation, plus a random one and the ImageNet-trained
   EfficientNet-Lite0, with NIMA's head and the EMD loss: head only until the first validation plateau, then
   all layers with the learning rate halved on plateaus and early stopping (:func:`finetune`,
   :func:`run_finetuning`), over several seeds and labelled-data fractions;
3. **Evaluation** (Sec. 16.2.6): Pearson, Spearman, accuracy of the score binarised at 5 and MAE of the mean
   score (:func:`domainknowledge.metrics.aesthetic_score_metrics`), one-sided Wilcoxon tests against the ImageNet initialisation
   (:func:`wilcoxon_against`), the distortion-classification accuracy of Table 16.4
   (:func:`distortion_classification_accuracy`) and the regression outputs of Fig. 16.4
   (:func:`regression_outputs`).

``smoke`` and ``cpu`` use bundled photos and seeded stand-ins (:mod:`domainknowledge.data.synthetic.aesthetics`);
``paper`` reads pexels-style photos, AVA and TID2013 from ``data_root`` (layouts in :data:`DATA_LAYOUT`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import stats

from domainknowledge import metrics, significance
from domainknowledge.data.bundled import DataNotFoundError, load_photos
from domainknowledge.data.real.ava import AVA_LAYOUT, read_ava
from domainknowledge.data.real.image_files import ImageFiles, fit_and_pad
from domainknowledge.data.real.tid2013 import TID2013_LAYOUT, read_tid2013
from domainknowledge.data.synthetic import aesthetics as aesthetics_data
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.models.backbones import (NimaModel, PretextNetwork, efficientnet_lite0_backbone,
                                              mobilenet_v2_backbone)
from domainknowledge.principles import distortions, pretext

__all__ = ["CONFIGS", "DATA_LAYOUT", "INITIALISATIONS", "PHOTOS", "PRETEXT_METHODS", "PRETRAINING_FOLDER",
           "PRETRAINING_SOURCE", "first_images", "AestheticsTask", "Config",
           "FinetuningConfig", "PretrainingConfig", "Pretrained", "compare_correlations", "errors_by_run",
           "constant_prediction_metrics", "constant_score_ranking_loss", "ranking_validation_loss", "describe_profiles",
           "deviations_markdown", "distortion_classification_accuracy",
           "finetune", "load_aesthetics", "load_pretraining_images", "load_tid2013", "make_distortion_groups",
           "regression_outputs", "run_finetuning", "run_pretraining", "run_seeds", "summary_table",
           "wilcoxon_against"]

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "china", "flower")
PRETEXT_METHODS = {"ranking": ("ranking",), "ranking+classification": ("ranking", "classification"),
                   "ranking+regression": ("ranking", "regression"), "rotnet": ("rotation",),
                   "simclr": ("projection",)}
INITIALISATIONS = ("random", "imagenet", "rotnet", "simclr", "ranking", "ranking+classification", "ranking+regression")
OURS = ("ranking", "ranking+classification", "ranking+regression")
LABELS = {"random": "random init", "imagenet": "ImageNet", "rotnet": "RotNet", "simclr": "SimCLR",
          "ranking": "ranking", "ranking+classification": "ranking + classification",
          "ranking+regression": "ranking + regression"}

#: Where the pretraining photos lie under the data root, and where they come from (the thesis crawled the most
#: popular pexels.com photos; no packaged release exists).
PRETRAINING_FOLDER = "pexels"
PRETRAINING_SOURCE = "https://www.pexels.com/ (the thesis' most popular photos; any photo collection in this layout)"

DATA_LAYOUT = {
    "pexels": "DATA_ROOT/pexels/ : the pretraining photos (*.jpg, *.jpeg, *.png, any sub-folders), e.g. the most "
              "popular pexels.com photos; split 100,000 / 15,000 / 15,000 at random with the run's seed",
    "ava": AVA_LAYOUT,
    "tid2013": TID2013_LAYOUT,
}


# --- configuration --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainingConfig:
    """Pretext training (Sec. 16.2.3): RMSProp (decay and momentum 0.9, weight decay 4e-5), the learning rate
    decayed by ``lr_decay`` per epoch, the epoch with the lowest validation loss kept.

    A batch holds ``batch_groups`` base images; each gets ``distortions_per_group`` distortions, each at
    ``levels_per_sign`` of its five levels on one sign (``both_signs``: on both signs where it has them). The
    thesis uses 8 base images with all their variants (1,384 images). ``loader_workers``: processes that read and
    distort the next batches while the network trains on the current one (0: in the training process).
    """

    epochs: int
    batch_groups: int
    learning_rate: float
    distortions_per_group: int
    levels_per_sign: int
    both_signs: bool
    lr_decay: float = 0.98
    weight_decay: float = 4e-5
    simclr_temperature: float = 0.5
    loader_workers: int = 0

    def __post_init__(self):
        if not 1 <= self.distortions_per_group <= len(distortions.CATALOGUE):
            raise ValueError(f"distortions_per_group must be in 1..{len(distortions.CATALOGUE)}")
        if not 1 <= self.levels_per_sign <= 5:
            raise ValueError("levels_per_sign must be in 1..5")
        if self.epochs < 1 or self.batch_groups < 2:
            raise ValueError("epochs must be at least 1 and batch_groups at least 2")
        if self.loader_workers < 0:
            raise ValueError(f"loader_workers must be >= 0, got {self.loader_workers}")


@dataclass(frozen=True)
class FinetuningConfig:
    """NIMA fine-tuning (Sec. 16.2.5): Adam with ``lr_backbone`` and ``lr_head``, weight decay 4e-5; only the head
    trains until the validation EMD has not improved for ``head_patience`` epochs (the first plateau); then all
    layers, the learning rates halved after ``lr_patience`` epochs without improvement, stopped after
    ``stop_patience`` (the thesis: 5 and 10). ``max_epochs`` caps head and full phases together. An epoch counts
    as an improvement only if it lowers the best validation EMD by more than the fraction ``min_improvement``
    (the thesis' "does not significantly improve"; Keras' ``min_delta`` in Lennan et al.'s code)."""

    max_epochs: int
    batch_size: int
    lr_backbone: float
    lr_head: float
    head_patience: int
    lr_patience: int
    stop_patience: int
    weight_decay: float = 4e-5
    dropout: float = 0.75
    min_improvement: float = 0.005

    def improves(self, loss: float, best: float | None) -> bool:
        return best is None or loss < best * (1.0 - self.min_improvement)


@dataclass(frozen=True)
class Config:
    """What one profile runs; every field is shown on the page.

    ``pretraining_data``: ``bundled`` (crops of :data:`PHOTOS` and well-composed synthetic scenes, half each)
    or ``pexels`` (photos from ``data_root``); ``pretraining_images``: base images for (train, validation,
    test). ``aesthetics_data``: ``stand-in`` or ``ava``; ``aesthetics_images``: (train, validation, test) for
    the stand-in, or ``None`` with ``aesthetics_split`` fractions for AVA. ``initialisations``: the rows of
    Table 16.3; ``runs``: fine-tuning seeds per row; ``label_fractions``: the labelled-data fractions of
    Fig. 16.5, trained for ``fraction_initialisations``. ``analysis_images``: test base images for Table 16.4 and
    Fig. 16.4 (``None``: all); ``analysis_levels``: Table 16.4's intensity levels per sign (5: every level; a
    paper dry run caps it, each level is a network pass). ``randomization_iterations``: rounds of the randomized
    matched-pair tests of Table 16.3's correlations. ``pretext_from_imagenet``: the pretext networks (ours, RotNet, SimCLR) start from
    torchvision's ImageNet MobileNetV2, as in the thesis (downloaded once), instead of random weights.
    """

    image_size: int
    width_mult: float
    pretraining_data: str
    pretraining_images: tuple[int, int, int] | None
    pretraining: PretrainingConfig
    aesthetics_data: str
    aesthetics_images: tuple[int, int, int] | None
    votes: int
    finetuning: FinetuningConfig
    initialisations: tuple[str, ...]
    runs: int
    label_fractions: tuple[float, ...]
    fraction_initialisations: tuple[str, ...]
    tid2013: bool
    analysis_images: int | None = None
    pretext_from_imagenet: bool = False
    aesthetics_split: tuple[float, float, float] = (0.8, 0.05, 0.15)
    alpha: float = 0.01
    analysis_levels: int = 5
    randomization_iterations: int = 1000

    @property
    def imagenet_is_reference(self) -> bool:
        """Whether the ImageNet row is only a reference: without ImageNet MobileNetV2 weights (smoke, cpu) it is the
        ImageNet EfficientNet-Lite0, another architecture, and the pretext models start from random weights."""
        return not self.pretext_from_imagenet

    def __post_init__(self):
        if self.pretraining_data not in ("bundled", "pexels"):
            raise ValueError(f"pretraining_data must be 'bundled' or 'pexels', got {self.pretraining_data!r}")
        if self.aesthetics_data not in ("stand-in", "ava"):
            raise ValueError(f"aesthetics_data must be 'stand-in' or 'ava', got {self.aesthetics_data!r}")
        unknown = set(self.initialisations) - set(INITIALISATIONS)
        if unknown:
            raise ValueError(f"unknown initialisation(s) {sorted(unknown)}; choose from {INITIALISATIONS}")
        if not 1 <= self.analysis_levels <= 5 or self.randomization_iterations < 1:
            raise ValueError(f"analysis_levels must be in 1..5 and randomization_iterations at least 1, got "
                             f"{self.analysis_levels} and {self.randomization_iterations}")
        if "imagenet" not in self.initialisations:
            raise ValueError("the initialisations must contain the 'imagenet' baseline")
        if 1.0 not in self.label_fractions or not set(self.fraction_initialisations) <= set(self.initialisations):
            raise ValueError("label_fractions must contain 1.0 and fraction_initialisations be initialisations")
        if self.pretext_from_imagenet and self.width_mult != 1.0:
            raise ValueError("pretext_from_imagenet needs width_mult 1.0 (the ImageNet MobileNetV2)")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 px (MobileNetV2 downsamples 32x), got {self.image_size}")


CONFIGS: dict[str, Config] = {
    "smoke": Config(
        image_size=32, width_mult=0.35, pretraining_data="bundled", pretraining_images=(48, 16, 24),
        pretraining=PretrainingConfig(epochs=1, batch_groups=8, learning_rate=1e-4, distortions_per_group=1,
                                      levels_per_sign=2, both_signs=False),
        aesthetics_data="stand-in", aesthetics_images=(96, 48, 96), votes=100,
        finetuning=FinetuningConfig(max_epochs=3, batch_size=32, lr_backbone=1e-3, lr_head=1e-2, head_patience=1,
                                    lr_patience=1, stop_patience=1),
        initialisations=INITIALISATIONS, runs=1, label_fractions=(0.5, 1.0),
        fraction_initialisations=("imagenet", "ranking+regression"), tid2013=False, analysis_images=24),
    "cpu": Config(
        image_size=48, width_mult=0.35, pretraining_data="bundled", pretraining_images=(300, 100, 200),
        pretraining=PretrainingConfig(epochs=12, batch_groups=16, learning_rate=1e-4, distortions_per_group=1,
                                      levels_per_sign=5, both_signs=True),
        aesthetics_data="stand-in", aesthetics_images=(400, 150, 400), votes=100,
        finetuning=FinetuningConfig(max_epochs=20, batch_size=32, lr_backbone=1e-4, lr_head=1e-3, head_patience=2,
                                    lr_patience=2, stop_patience=4),
        initialisations=("random", "imagenet", "rotnet", "simclr", "ranking+regression"), runs=2,
        label_fractions=(1.0,), fraction_initialisations=("imagenet", "ranking+regression"), tid2013=False,
        analysis_images=100),
    "paper": Config(
        image_size=224, width_mult=1.0, pretraining_data="pexels", pretraining_images=(100_000, 15_000, 15_000),
        pretraining=PretrainingConfig(epochs=20, batch_groups=8, learning_rate=1e-4,
                                      distortions_per_group=len(distortions.CATALOGUE), levels_per_sign=5,
                                      both_signs=True, loader_workers=8),
        aesthetics_data="ava", aesthetics_images=None, votes=0,
        finetuning=FinetuningConfig(max_epochs=500, batch_size=128, lr_backbone=1e-4, lr_head=1e-3, head_patience=5,
                                    lr_patience=5, stop_patience=10),
        initialisations=INITIALISATIONS, runs=3, label_fractions=(0.2, 0.4, 0.6, 0.8, 1.0),
        fraction_initialisations=("imagenet", "ranking+regression"), tid2013=True, pretext_from_imagenet=True),
}


def describe_profiles(configs: dict[str, Config] | None = None) -> pd.DataFrame:
    """Every Config field (rows) per profile (columns), to show what each profile changes."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


def run_seeds(seed: int, runs: int) -> tuple[int, ...]:
    """Fine-tuning seeds of one initialisation: ``1000 * seed + k`` for ``k < runs``."""
    return tuple(1000 * seed + k for k in range(runs))


# --- data ----------------------------------------------------------------------------------------------------


def _photo_crops(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    loaded = load_photos(tuple(name for name in PHOTOS if name not in ("china", "flower")))  # adds scikit-learn's two
    photos = [loaded[name] for name in PHOTOS]
    crops = []
    for _ in range(n):
        photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.LANCZOS)
        crops.append(np.asarray(crop))
    return np.stack(crops)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def load_pretraining_images(config: Config, *, seed: int, data_root: Path | None = None) -> dict:
    """Base images for the pretext tasks: ``{"train" | "validation" | "test": (N, H, W, 3) uint8}``.

    ``bundled``: half random square crops (60-100 % of the shorter side) of :data:`PHOTOS`, half well-composed
    synthetic scenes, shuffled (NumPy arrays). ``pexels``: the photos under ``data_root/pexels``, resized and
    padded as they are read (:class:`~domainknowledge.data.real.image_files.ImageFiles`: 130,000 photos at
    224 px would take 20 GB in memory).
    """
    counts = config.pretraining_images
    rng = np.random.default_rng(seed + 17)
    if config.pretraining_data == "bundled":
        total = sum(counts)
        photos = _photo_crops(total - total // 2, config.image_size, rng)
        scenes = aesthetics_data.generate_well_composed_scenes(total // 2, config.image_size, seed=seed + 23)
        images = np.concatenate([photos, scenes])[rng.permutation(total)]
    else:
        folder = Path(data_root) / PRETRAINING_FOLDER if data_root is not None else None
        files = _image_files(folder) if folder is not None and folder.is_dir() else []
        if not files:
            raise DataNotFoundError(
                f"no pretraining photos found in {folder if folder else 'DATA_ROOT/' + PRETRAINING_FOLDER}: put the "
                f"photos there ({DATA_LAYOUT['pexels']}; source: {PRETRAINING_SOURCE}) and pass --data-root DATA_ROOT")
        files = [files[i] for i in rng.permutation(len(files))]
        total = min(len(files), sum(counts or (len(files), 0, 0)))
        images = ImageFiles(files[:total], fit_and_pad(config.image_size), config.image_size)
        counts = (total - 2 * (total * 3 // 26), total * 3 // 26, total * 3 // 26)   # 100k / 15k / 15k proportions
        train, validation = counts[0], counts[0] + counts[1]
        return {"train": images.subset(slice(0, train)), "validation": images.subset(slice(train, validation)),
                "test": images.subset(slice(validation, validation + counts[2]))}
    train, validation = counts[0], counts[0] + counts[1]
    return {"train": images[:train], "validation": images[train:validation], "test": images[validation:validation + counts[2]]}


@dataclass(frozen=True)
class AestheticsTask:
    """A labelled aesthetics set split three ways: ``images[split]`` ``(N, 3, H, W)`` uint8, ``distributions[split]``
    ``(N, 10)`` normalised vote histograms, ``mean_scores[split]`` ``(N,)``."""

    name: str
    description: str
    images: dict[str, torch.Tensor]
    distributions: dict[str, torch.Tensor]
    mean_scores: dict[str, np.ndarray]
    is_stand_in: bool
    properties: pd.DataFrame | None = None

    def subset(self, fraction: float, seed: int) -> "AestheticsTask":
        """The same task with a seeded random ``fraction`` of the training split (Fig. 16.5)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
        n = self.images["train"].shape[0]
        keep = np.sort(np.random.default_rng(seed).permutation(n)[:max(2, round(fraction * n))])
        train = self.images["train"]
        train = train.subset(keep) if isinstance(train, ImageFiles) else train[torch.from_numpy(keep)]
        index = torch.from_numpy(keep)
        return dataclasses.replace(
            self, images={**self.images, "train": train},
            distributions={**self.distributions, "train": self.distributions["train"][index]},
            mean_scores={**self.mean_scores, "train": self.mean_scores["train"][keep]})


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _split_task(name, description, images, votes, is_stand_in, counts, properties=None) -> AestheticsTask:
    distributions = votes / votes.sum(axis=1, keepdims=True)
    means = (votes * np.arange(1, 11)).sum(axis=1) / votes.sum(axis=1)
    bounds = np.cumsum((0,) + tuple(counts))
    splits = dict(zip(("train", "validation", "test"), zip(bounds[:-1], bounds[1:])))
    return AestheticsTask(
        name, description,
        images={s: images.subset(slice(a, b)) if isinstance(images, ImageFiles) else _to_tensor(images[a:b])
                for s, (a, b) in splits.items()},
        distributions={s: torch.from_numpy(distributions[a:b].astype(np.float32)) for s, (a, b) in splits.items()},
        mean_scores={s: means[a:b].astype(np.float64) for s, (a, b) in splits.items()},
        is_stand_in=is_stand_in,
        properties=None if properties is None else properties.iloc[bounds[2]:bounds[3]].reset_index(drop=True))


def load_aesthetics(config: Config, *, seed: int, data_root: Path | None = None) -> AestheticsTask:
    """The labelled aesthetics task: the seeded stand-in, or AVA from ``data_root`` (layout in :data:`DATA_LAYOUT`)."""
    if config.aesthetics_data == "stand-in":
        counts = config.aesthetics_images
        data = aesthetics_data.generate_aesthetics(sum(counts), config.image_size, seed=seed + 101, votes=config.votes)
        return _split_task("aesthetic scenes (stand-in)",
                           f"seeded synthetic scenes, {config.votes} simulated votes each", data.images, data.votes,
                           True, counts, data.properties)
    ratings = read_ava(data_root)
    order = np.random.default_rng(seed + 101).permutation(len(ratings))
    images = ImageFiles([ratings.paths[i] for i in order], fit_and_pad(config.image_size), config.image_size,
                        channels_first=True)
    n = len(order)
    validation, test = round(n * config.aesthetics_split[1]), round(n * config.aesthetics_split[2])
    counts = (n - validation - test, validation, test)
    return _split_task("AVA", f"{n:,} AVA photos (read from disk batch by batch)", images, ratings.votes[order],
                       False, counts)


def load_tid2013(config: Config, *, data_root: Path | None) -> tuple[ImageFiles, np.ndarray]:
    """TID2013's distorted images (read lazily as ``(N, 3, H, W)`` uint8 batches, resized and padded) and their
    MOS ``(N,)`` from ``data_root/TID2013`` (:mod:`domainknowledge.data.real.tid2013`)."""
    paths, scores = read_tid2013(data_root)
    return ImageFiles(paths, fit_and_pad(config.image_size), config.image_size, channels_first=True), scores


# --- pretext batches ---------------------------------------------------------------------------------------------


@dataclass
class DistortionGroups:
    """A pretext batch: ``images`` ``(N, 3, H, W)`` uint8 and per image its ``group`` (base image), ``distortion``
    (-1 for the original), ``level``, ``aspect`` (-1 for the original) and ``aspect_class``; ``regression_rows``,
    ``regression_distortion`` and ``regression_target`` ``(M,)`` are the terms of Eq. 16.3 (the original counts
    once per distortion of its group, with target 0)."""

    images: torch.Tensor
    group: torch.Tensor
    distortion: torch.Tensor
    level: torch.Tensor
    aspect: torch.Tensor
    aspect_class: torch.Tensor
    regression_rows: torch.Tensor
    regression_distortion: torch.Tensor
    regression_target: torch.Tensor
    num_groups: int


def make_distortion_groups(base_images: np.ndarray, config: PretrainingConfig, rng: np.random.Generator) -> DistortionGroups:
    """Distort each base image ``(B, H, W, 3)`` into a group: the original plus the sampled variants."""
    images, group, dist, level, aspect, aspect_class = [], [], [], [], [], []
    reg_rows, reg_dist, reg_target = [], [], []
    for g, base in enumerate(base_images):
        original_row = len(images)
        images.append(base)
        group.append(g), dist.append(-1), level.append(0), aspect.append(-1), aspect_class.append(-1)
        for d in rng.choice(len(distortions.CATALOGUE), size=config.distortions_per_group, replace=False):
            spec = distortions.CATALOGUE[d]
            aspect_index, class_index = distortions.class_within_aspect(spec.name)
            signs = [s for s in (-1, 1) if any(np.sign(v) == s for v in spec.levels)]
            if not config.both_signs:
                signs = [signs[rng.integers(len(signs))]]
            reg_rows.append(original_row), reg_dist.append(d), reg_target.append(0.0)
            for sign in signs:
                chosen = np.sort(rng.choice(np.arange(1, 6), size=config.levels_per_sign, replace=False)) * sign
                for value in chosen:
                    reg_rows.append(len(images)), reg_dist.append(d)
                    reg_target.append(distortions.normalised_intensity(spec.name, int(value)))
                    images.append(distortions.apply_distortion(base, spec.name, int(value), rng))
                    group.append(g), dist.append(int(d)), level.append(int(value))
                    aspect.append(aspect_index), aspect_class.append(class_index)
    as_long = lambda values: torch.tensor(values, dtype=torch.int64)  # noqa: E731
    return DistortionGroups(_to_tensor(np.stack(images)), as_long(group), as_long(dist), as_long(level), as_long(aspect),
                            as_long(aspect_class), as_long(reg_rows), as_long(reg_dist),
                            torch.tensor(reg_target, dtype=torch.float32), len(base_images))


def pretext_losses(outputs: dict, batch: DistortionGroups, margin: float = pretext.RANKING_MARGIN) -> dict[str, torch.Tensor]:
    """The task losses of Eqs. 16.1-16.3 that the network's heads support, for one batch of groups."""
    losses = {}
    if "ranking" in outputs:
        better, worse = pretext.ranking_pairs(batch.group, batch.distortion, batch.level)
        losses["ranking"] = pretext.margin_ranking_loss(outputs["ranking"], better, worse, batch.num_groups, margin)
    if "classification" in outputs:
        losses["classification"] = pretext.distortion_classification_loss(
            outputs["classification"], batch.aspect, batch.aspect_class, batch.num_groups)
    if "regression" in outputs:
        losses["regression"] = pretext.intensity_regression_loss(
            outputs["regression"][batch.regression_rows], batch.regression_distortion, batch.regression_target,
            batch.num_groups)
    return losses


# --- pretraining ----------------------------------------------------------------------------------------------


@dataclass
class Pretrained:
    """A pretrained network (``PretextNetwork``), its per-epoch ``history`` and training seconds."""

    method: str
    network: PretextNetwork
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


class _PretextBatches(torch.utils.data.Dataset):
    """Batch ``i`` of one epoch: the base images ``order[i * step:(i + 1) * step]``, distorted into groups for our
    pretext tasks (:func:`make_distortion_groups`) or as they are for RotNet and SimCLR, with a random generator
    seeded by ``(seed, epoch, i)``, so that a batch is the same in any worker process."""

    def __init__(self, method: str, images, order: np.ndarray, config: PretrainingConfig, seed: int, epoch: int):
        step = config.batch_groups
        self.method, self.images, self.config, self.seed, self.epoch = method, images, config, seed, epoch
        self.slices = [order[s:s + step] for s in range(0, len(order), step) if len(order[s:s + step]) >= 2]

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        base = self.images[self.slices[index]]
        if self.method in OURS:
            return make_distortion_groups(base, self.config, rng)
        return _to_tensor(base), int(rng.integers(2**63))


def _pretext_batches(method: str, images, order: np.ndarray, config: PretrainingConfig, seed: int, epoch: int):
    """The batches of :class:`_PretextBatches` in order, prepared in ``config.loader_workers`` processes (at most
    one fewer than the cores this process may use, and at least one)."""
    batches = _PretextBatches(method, images, order, config, seed, epoch)
    if config.loader_workers == 0:
        return (batches[i] for i in range(len(batches)))
    workers = min(config.loader_workers, max(1, len(os.sched_getaffinity(0)) - 1))
    return torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=2)


def _method_loss(method: str, network: PretextNetwork, batch, config: PretrainingConfig,
                 device) -> tuple[torch.Tensor, dict[str, float]]:
    """One batch's training loss for ``method`` and its task losses (for ours, Eqs. 16.1-16.3 before balancing).
    ``batch``: :class:`DistortionGroups` for ours, else ``(images (B, 3, H, W) uint8, generator seed)``."""
    if method in OURS:
        outputs = network(batch.images.to(device).contiguous(memory_format=torch.channels_last))
        losses = pretext_losses(outputs, batch)
        total = losses["ranking"] if len(losses) == 1 else pretext.balanced_sum(losses.values())
        return total, {task: float(value.detach()) for task, value in losses.items()}
    images, generator_seed = batch
    images = images.to(device)        # rotations and SimCLR's views are made on the device
    if method == "rotnet":
        rotated, labels = pretext.rotation_batch(images)
        return pretext.rotation_loss(network(rotated)["rotation"], labels.to(device)), {}
    if method == "simclr":
        first, second = pretext.simclr_views(images, torch.Generator().manual_seed(generator_seed))
        return pretext.nt_xent_loss(network(first)["projection"], network(second)["projection"],
                                    config.simclr_temperature), {}
    raise ValueError(f"unknown pretext method {method!r}; choose from {tuple(PRETEXT_METHODS)}")


def pretrain(method: str, images: dict[str, np.ndarray], config: Config, *, seed: int, device="cpu",
             log: Callable[[str], None] = print) -> Pretrained:
    """Pretrain a MobileNetV2 with one pretext ``method`` on the base images (Sec. 16.2.3); keep the best
    validation epoch. The distortions are drawn afresh every epoch, batch ``i`` from a generator seeded by
    ``(seed, epoch, i)``; the validation batches are those of epoch 0 every time."""
    if method not in PRETEXT_METHODS:
        raise ValueError(f"unknown pretext method {method!r}; choose from {tuple(PRETEXT_METHODS)}")
    started = time.perf_counter()
    settings = config.pretraining
    torch.manual_seed(seed)
    backbone = mobilenet_v2_backbone(config.width_mult, pretrained=config.pretext_from_imagenet)
    network = PretextNetwork(backbone, PRETEXT_METHODS[method]).to(device)
    network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.RMSprop(network.parameters(), lr=settings.learning_rate, alpha=0.9, momentum=0.9,
                                    weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=settings.lr_decay)
    result = Pretrained(method, network)
    best_state, best_loss = None, None
    train, validation = images["train"], images["validation"]
    for epoch in range(1, settings.epochs + 1):
        network.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(train))
        total, batches = 0.0, 0
        for batch in _pretext_batches(method, train, order, settings, seed, epoch):
            loss, _ = _method_loss(method, network, batch, settings, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, batches = total + float(loss.detach()), batches + 1
        scheduler.step()
        network.eval()
        torch_state = torch.get_rng_state()
        torch.manual_seed(seed + 7)
        with torch.no_grad():
            losses = [_method_loss(method, network, batch, settings, device)
                      for batch in _pretext_batches(method, validation, np.arange(len(validation)), settings, seed, 0)]
        torch.set_rng_state(torch_state)
        validation_loss = float(np.mean([float(loss) for loss, _ in losses]))
        tasks = {f"validation_{task}": float(np.mean([parts[task] for _, parts in losses])) for task in losses[0][1]}
        result.history.append({"epoch": epoch, "train_loss": total / max(batches, 1), "validation_loss": validation_loss,
                               **tasks})
        if best_loss is None or validation_loss < best_loss:
            best_loss, result.best_epoch, best_state = validation_loss, epoch, copy.deepcopy(network.state_dict())
    network.load_state_dict(best_state)
    network.eval()
    result.seconds = time.perf_counter() - started
    log(f"pretrained {method}: kept epoch {result.best_epoch} of {settings.epochs}, validation loss "
        f"{best_loss:.4f} ({result.seconds:.0f} s)")
    return result


def run_pretraining(config: Config, images: dict[str, np.ndarray], *, seed: int, device="cpu",
                    log: Callable[[str], None] = print) -> dict[str, Pretrained]:
    """Pretrain every pretext method that an initialisation of the config needs."""
    return {method: pretrain(method, images, config, seed=seed, device=device, log=log)
            for method in PRETEXT_METHODS if method in config.initialisations}


# --- fine-tuning (NIMA) ---------------------------------------------------------------------------------------


def _backbone_for(initialisation: str, config: Config, pretrained: dict[str, Pretrained]):
    if initialisation == "random":
        return mobilenet_v2_backbone(config.width_mult)
    if initialisation == "imagenet":
        if config.pretext_from_imagenet:      # the thesis' baseline: the network every pretext model starts from
            return mobilenet_v2_backbone(config.width_mult, pretrained=True)
        return efficientnet_lite0_backbone(config.image_size)
    if initialisation not in pretrained:
        raise ValueError(f"initialisation {initialisation!r} needs a pretrained network; pretrained: {sorted(pretrained)}")
    return copy.deepcopy(pretrained[initialisation].network.backbone)


@torch.no_grad()
def _features(backbone, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    backbone.eval()
    return torch.cat([backbone(images[s:s + batch_size].to(device).contiguous(memory_format=torch.channels_last))
                      for s in range(0, images.shape[0], batch_size)])


@torch.no_grad()
def predict_distributions(model: NimaModel, images: torch.Tensor, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """Softmax score distributions ``(N, 10)`` of a NIMA model for images ``(N, 3, H, W)``."""
    model.eval()
    return torch.cat([torch.softmax(model(images[s:s + batch_size].to(device).contiguous(memory_format=torch.channels_last)), 1)
                      for s in range(0, images.shape[0], batch_size)]).cpu()


def finetune(initialisation: str, task: AestheticsTask, config: Config, pretrained: dict[str, Pretrained], *, seed: int,
             device="cpu", extra_tests: dict | None = None) -> dict:
    """Fine-tune one initialisation with NIMA's head and the EMD loss (Sec. 16.2.5); returns the test metrics, the
    epochs (head phase, total, best), the predicted mean scores ``(N_test,)`` and the model.

    ``extra_tests``: ``{name: (images (N, 3, H, W), scores (N,))}`` further test sets (TID2013 at ``paper``), scored
    with Pearson, Spearman and MAE of the predicted mean score; their metrics come back as ``name_metric``."""
    settings = config.finetuning
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = NimaModel(_backbone_for(initialisation, config, pretrained), dropout=settings.dropout).to(device)
    model = model.to(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = task.images["train"], task.distributions["train"].to(device)
    val_x, val_y = task.images["validation"], task.distributions["validation"].to(device)
    n = train_x.shape[0]
    epoch, best_loss, best_state, history = 0, None, None, []

    def validation_loss() -> float:
        return float(pretext.emd_loss(predict_distributions(model, val_x, device=device).to(device), val_y))

    # phase 1: only the head, on features computed once (the frozen backbone in inference mode)
    if initialisation != "random":
        train_features, val_features = (_features(model.backbone, x, 256, device) for x in (train_x, val_x))
    head_optimizer = torch.optim.Adam(model.head.parameters(), lr=settings.lr_head, weight_decay=settings.weight_decay)
    # a random network has no features to protect from a random head, and in inference mode its batch-norm layers
    # (running statistics still at their initial values) map every image to nearly the same features: it skips
    # the head-only phase
    since_best = settings.head_patience if initialisation == "random" else 0
    best_epoch = 0
    while epoch < settings.max_epochs and since_best < settings.head_patience:
        epoch += 1
        model.head.train()
        for batch in torch.randperm(n, generator=generator).split(settings.batch_size):
            loss = pretext.emd_loss(torch.softmax(model.head(train_features[batch]), 1), train_y[batch])
            head_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            head_optimizer.step()
        model.head.eval()
        with torch.no_grad():
            loss_value = float(pretext.emd_loss(torch.softmax(model.head(val_features), 1), val_y))
        history.append({"epoch": epoch, "phase": "head", "validation_emd": loss_value})
        if settings.improves(loss_value, best_loss):
            best_loss, best_epoch, best_state, since_best = loss_value, epoch, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
    head_epochs = epoch
    if best_state is not None:
        model.load_state_dict(best_state)
    # phase 2: all layers, learning rate halved on plateaus, early stopping
    optimizer = torch.optim.Adam([{"params": model.backbone.parameters(), "lr": settings.lr_backbone},
                                  {"params": model.head.parameters(), "lr": settings.lr_head}],
                                 weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=settings.lr_patience,
                                                           threshold=settings.min_improvement)
    since_best = 0
    while epoch < settings.max_epochs and since_best < settings.stop_patience:
        epoch += 1
        model.train()
        for batch in torch.randperm(n, generator=generator).split(settings.batch_size):
            if batch.numel() < 2:
                continue
            images = train_x[batch].to(device).contiguous(memory_format=torch.channels_last)
            loss = pretext.emd_loss(torch.softmax(model(images), 1), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        loss_value = validation_loss()
        scheduler.step(loss_value)
        history.append({"epoch": epoch, "phase": "all layers", "validation_emd": loss_value})
        if settings.improves(loss_value, best_loss):
            best_loss, best_epoch, best_state, since_best = loss_value, epoch, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
    model.load_state_dict(best_state)
    predicted = pretext.mean_score(predict_distributions(model, task.images["test"], device=device)).numpy().astype(np.float64)
    truth = task.mean_scores["test"]
    extra = {}
    for name, (images, scores) in (extra_tests or {}).items():
        predicted_scores = pretext.mean_score(predict_distributions(model, images, device=device)).numpy()
        values = metrics.aesthetic_score_metrics(predicted_scores, scores)
        extra.update({f"{name}_{metric}": values[metric] for metric in ("pearson", "spearman", "mae")})
    return {"initialisation": initialisation, "seed": seed, **metrics.aesthetic_score_metrics(predicted, truth), **extra,
            "epochs": epoch, "head_epochs": head_epochs, "best_epoch": best_epoch,
            "stopped_early": epoch < settings.max_epochs, "validation_emd": best_loss,
            "seconds": time.perf_counter() - started,
            "predicted": predicted, "model": model}


def run_finetuning(config: Config, task: AestheticsTask, pretrained: dict[str, Pretrained], seeds, *, device="cpu",
                   log: Callable[[str], None] = print, extra_tests: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Fine-tune every initialisation for every seed on the full training split, and the fraction initialisations on
    each smaller labelled fraction. Returns a tidy ``DataFrame`` (one row per run: initialisation, fraction, seed,
    metrics, epochs) and ``{(initialisation, fraction): (runs, N_test)}`` predicted mean scores of the test images."""
    rows, predictions = [], {}
    jobs = [(init, 1.0) for init in config.initialisations]
    jobs += [(init, f) for f in sorted(config.label_fractions) if f < 1.0 for init in config.fraction_initialisations]
    for initialisation, fraction in jobs:
        started = time.perf_counter()
        runs = []
        for run_seed in seeds:
            subset = task if fraction == 1.0 else task.subset(fraction, seed=run_seed)
            result = finetune(initialisation, subset, config, pretrained, seed=run_seed, device=device,
                              extra_tests=extra_tests if fraction == 1.0 else None)
            runs.append(result)
            rows.append({k: v for k, v in result.items() if k not in ("predicted", "model")}
                        | {"fraction": fraction, "train_images": int(subset.images["train"].shape[0])})
        predictions[(initialisation, fraction)] = np.stack([r["predicted"] for r in runs])
        frame = pd.DataFrame(rows[-len(runs):])
        log(f"{LABELS[initialisation]:32s} fraction {fraction:.2f}: MAE {frame['mae'].mean():.3f}, Pearson "
            f"{frame['pearson'].mean():.3f}, epochs {frame['epochs'].mean():.1f} ({time.perf_counter() - started:.0f} s)")
    return pd.DataFrame(rows), predictions


def errors_by_run(predictions: dict, truth: np.ndarray) -> dict:
    """``{key: (runs, N)}`` absolute errors of the predicted mean scores ``{key: (runs, N)}`` against the true
    ones ``(N,)``."""
    return {key: np.stack([metrics.absolute_errors(run, truth) for run in values]) for key, values in predictions.items()}


def compare_correlations(predictions: dict, truth: np.ndarray, candidate: str, baselines, *, fraction: float = 1.0,
                         iterations: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Is ``candidate``'s test correlation higher than each baseline's? Per baseline and for Pearson and Spearman:
    the mean over runs of the difference of correlations with the true mean scores ``truth`` ``(N,)``, and the
    one-sided p of Yeh's randomized matched-pair test stratified by run (runs of the same seed pair up; each round
    swaps the two models' predictions of an image with probability 1/2): half the two-sided p when the difference
    has the tested sign, else 1 - half of it; ``*_p_two_sided`` also decides a difference of the other sign."""
    rows = []
    for baseline in baselines:
        first, second = predictions[(candidate, fraction)], predictions[(baseline, fraction)]
        strata = list(zip(first, second, [truth] * len(first)))
        row = {"baseline": baseline}
        for name in ("pearson", "spearman"):
            test = significance.stratified_matched_pair_test(
                strata, lambda predicted, true, method=name: metrics.score_correlation(predicted, true, method),
                iterations=iterations, seed=seed)
            half = test["p_value"] / 2
            row[f"{name}_difference"] = test["difference"]
            row[f"{name}_p"] = half if test["difference"] > 0 else 1 - half
            row[f"{name}_p_two_sided"] = test["p_value"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("baseline")


def wilcoxon_against(errors: dict, candidates, *, baseline: str = "imagenet", fraction: float = 1.0) -> pd.DataFrame:
    """One-sided Wilcoxon signed-rank tests (Sec. 16.3): is a candidate's absolute error of the mean score smaller
    than the baseline's? Pairs test images (errors averaged over the runs); Bonferroni over the candidates."""
    base = errors[(baseline, fraction)].mean(axis=0)
    rows = []
    for candidate in candidates:
        errs = errors[(candidate, fraction)].mean(axis=0)
        difference = errs - base
        p = 1.0 if np.allclose(difference, 0) else float(stats.wilcoxon(errs, base, alternative="less").pvalue)
        rows.append({"initialisation": candidate, "mae": float(errs.mean()), "baseline_mae": float(base.mean()),
                     "p": p, "p_bonferroni": min(1.0, p * len(candidates))})
    return pd.DataFrame(rows).set_index("initialisation")


def summary_table(results: pd.DataFrame, tests: pd.DataFrame, alpha: float,
                  reference: dict[str, float] | None = None) -> pd.DataFrame:
    """Table 16.3 analogue: mean (and std over runs) of epochs, Pearson, Spearman, accuracy and MAE per initialisation
    at the full labelled set; a dagger marks MAEs significantly lower than ImageNet's (Bonferroni, ``alpha``)."""
    full = results[results["fraction"] == 1.0]
    order = [i for i in INITIALISATIONS if i in set(full["initialisation"])]
    grouped = full.groupby("initialisation")
    table = pd.DataFrame(index=pd.Index([LABELS[i] for i in order], name="initialisation"))
    for column, digits in (("epochs", 1), ("pearson", 4), ("spearman", 4), ("accuracy", 4), ("mae", 4)):
        mean, std = grouped[column].mean(), grouped[column].std().fillna(0.0)
        table[column] = [f"{mean[i]:.{digits}f} ± {std[i]:.{digits}f}" for i in order]
    table["mae"] = [value + (" †" if i in tests.index and tests.loc[i, "p_bonferroni"] < alpha else "")
                    for i, value in zip(order, table["mae"])]
    for column in ("tid2013_pearson", "tid2013_spearman", "tid2013_mae"):
        if column in full.columns:
            table[column.replace("_", " ")] = [f"{grouped[column].mean()[i]:.4f}" for i in order]
    table["p (MAE < ImageNet)"] = [f"{tests.loc[i, 'p_bonferroni']:.2g}" if i in tests.index else "" for i in order]
    if reference is not None:
        table.loc["(reference) training mean for every image"] = [
            "", "", "", f"{reference['accuracy']:.4f}", f"{reference['mae']:.4f}", ""] + [""] * (table.shape[1] - 6)
    return table


# --- analyses of the pretrained networks ----------------------------------------------------------------------


ANALYSIS_CHUNK = 256   # base images distorted and scored at a time when they are read from disk


def first_images(images, count: int | None):
    """The first ``count`` (``None``: all) base images, lazily for :class:`ImageFiles` (never decoding them all)."""
    if isinstance(images, ImageFiles):
        return images.subset(slice(0, count))
    return images[:count]


def _chunks(base_images):
    """Decoded chunks of base images: an in-memory array is one chunk; :class:`ImageFiles` yields
    :data:`ANALYSIS_CHUNK` images at a time, so memory does not grow with the number of base images."""
    if isinstance(base_images, ImageFiles):
        yield from base_images.batches(ANALYSIS_CHUNK)
    else:
        yield np.asarray(base_images)


def _predict_rows(network, images: np.ndarray, output: str, device, batch_size: int = 512):
    """``network(images)[output]`` for ``(N, H, W, 3)`` uint8 images in batches; a list of per-head NumPy arrays
    for the classification heads, else one NumPy array."""
    parts = []
    for start in range(0, len(images), batch_size):
        result = network(_to_tensor(images[start:start + batch_size]).to(device)
                         .contiguous(memory_format=torch.channels_last))[output]
        parts.append([head.argmax(1).cpu().numpy() for head in result] if output == "classification"
                     else result.float().cpu().numpy())
    if output == "classification":
        return [np.concatenate([part[k] for part in parts]) for k in range(len(parts[0]))]
    return np.concatenate(parts)


@torch.no_grad()
def distortion_classification_accuracy(network: PretextNetwork, base_images, *, seed: int, device="cpu",
                                       levels_per_sign: int = 5) -> pd.DataFrame:
    """Table 16.4: accuracy of each classification head on every distortion at every non-zero level of the test
    base images ``(N, H, W, 3)`` (an array or :class:`ImageFiles`), with the chance level ``1 / |D_a|``
    (``levels_per_sign`` < 5: only the levels ``1 <= |v| <= levels_per_sign``, as in a paper dry run).

    Streams: one chunk of base images and one distortion level are in memory at a time (the thesis' 15,000 test
    images at about 150 levels would be 2.7 million images), and only correct counts are kept."""
    if "classification" not in network.heads:
        raise ValueError("the network has no classification heads")
    network.eval()
    rng = np.random.default_rng(seed)
    correct = np.zeros(len(distortions.ASPECTS), dtype=np.int64)
    total = np.zeros(len(distortions.ASPECTS), dtype=np.int64)
    for chunk in _chunks(base_images):
        for spec in distortions.CATALOGUE:
            aspect_index, class_index = distortions.class_within_aspect(spec.name)
            for level in (v for v in spec.levels if 0 < abs(v) <= levels_per_sign):
                distorted = np.stack([distortions.apply_distortion(image, spec.name, level, rng) for image in chunk])
                predicted = _predict_rows(network, distorted, "classification", device)[aspect_index]
                correct[aspect_index] += int((predicted == class_index).sum())
                total[aspect_index] += len(distorted)
    rows = {aspect: {"accuracy": float(correct[index] / total[index]),
                     "chance": pretext.expected_chance_accuracy(len(distortions.aspect_names(aspect))),
                     "predictions": int(total[index]),
                     "p (binomial, > chance)": float(stats.binomtest(int(correct[index]), int(total[index]),
                                                                     1 / len(distortions.aspect_names(aspect)),
                                                                     alternative="greater").pvalue)}
            for index, aspect in enumerate(distortions.ASPECTS)}
    return pd.DataFrame(rows).T


@torch.no_grad()
def regression_outputs(network: PretextNetwork, base_images, *, distortion: str = "brightness",
                       outputs=("brightness", "contrast"), seed: int = 0, device="cpu") -> pd.DataFrame:
    """Fig. 16.4: the regression outputs ``outputs`` for every level of ``distortion`` applied to the test base
    images ``(N, H, W, 3)`` (an array or :class:`ImageFiles`, streamed in chunks).

    Returns a tidy frame: level, output (distortion name), value (predicted normalised intensity), and the RMS
    contrast of the distorted image (a pixel-level reference for the relation)."""
    if "regression" not in network.heads:
        raise ValueError("the network has no regression head")
    network.eval()
    rng = np.random.default_rng(seed)
    rows = []
    for chunk in _chunks(base_images):
        for level in distortions.distortion_levels(distortion):
            batch = np.stack([distortions.apply_distortion(image, distortion, level, rng) for image in chunk])
            predicted = _predict_rows(network, batch, "regression", device)
            contrast = [distortions.rms_contrast(image) for image in batch]
            for name in outputs:
                column = predicted[:, distortions.distortion_index(name)]
                rows += [{"level": level, "output": name, "value": float(v), "rms_contrast": float(c)}
                         for v, c in zip(column, contrast)]
    return pd.DataFrame(rows)


def relation_statistics(outputs: pd.DataFrame) -> dict[str, float]:
    """Spearman correlations behind the Fig. 16.4 claim: brightness output vs level (all levels), contrast output vs
    level over the brightness increases (levels 0..5, the claim's range) and over all levels, and the images' RMS
    contrast vs level over levels 0..5."""
    bright = outputs[outputs["output"] == "brightness"]
    contrast = outputs[(outputs["output"] == "contrast") & (outputs["level"] >= 0)]
    rho_b, p_b = stats.spearmanr(bright["level"], bright["value"])
    rho_c, p_c = stats.spearmanr(contrast["level"], contrast["value"])
    rho_pixels, _ = stats.spearmanr(contrast["level"], contrast["rms_contrast"])
    every_level = outputs[outputs["output"] == "contrast"]
    rho_all, p_all = stats.spearmanr(every_level["level"], every_level["value"])
    return {"brightness_rho": float(rho_b), "brightness_p": float(p_b), "contrast_rho": float(rho_c),
            "contrast_p": float(p_c), "pixel_contrast_rho": float(rho_pixels),
            "contrast_rho_all_levels": float(rho_all), "contrast_p_all_levels": float(p_all)}


# --- figures -----------------------------------------------------------------------------------------------------


def plot_regression_violins(outputs: pd.DataFrame, title: str | None = None):
    """Fig. 16.4: violins of the brightness (left) and contrast (right) outputs per brightness level."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(outputs["output"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names):
        rows = outputs[outputs["output"] == name]
        levels = sorted(rows["level"].unique())
        parts = ax.violinplot([rows.loc[rows["level"] == level, "value"].to_numpy() for level in levels],
                              positions=levels, showmedians=True, widths=0.8)
        for body in parts["bodies"]:
            body.set_alpha(0.45)
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.set_xlabel("brightness intensity level")
        ax.set_ylabel(f"predicted {name} intensity")
        ax.set_title(f"{name} output")
    if title:
        fig.suptitle(title)
    return fig, axes


def plot_fraction_curves(results: pd.DataFrame, initialisations, title: str | None = None):
    """Fig. 16.5: accuracy, Pearson, Spearman and MAE against the labelled fraction; band = min..max over runs."""
    import matplotlib.pyplot as plt

    from domainknowledge.plots import BOOK_COLORS

    panels = (("accuracy", "Accuracy"), ("pearson", "Pearson (LCC)"), ("spearman", "Spearman (SRCC)"), ("mae", "MAE"))
    fig, axes = plt.subplots(1, 4, figsize=(12.5, 3.0))
    for ax, (metric, label) in zip(axes, panels):
        for initialisation, color in zip(initialisations, BOOK_COLORS):
            rows = results[results["initialisation"] == initialisation].groupby("fraction")[metric]
            x = rows.mean().index.to_numpy(dtype=float) * 100
            ax.fill_between(x, rows.min(), rows.max(), color=color, alpha=0.18, linewidth=0)
            ax.plot(x, rows.mean(), marker="o", markersize=3.5, color=color, label=LABELS[initialisation])
        ax.set_xlabel("labelled training data (%)")
        ax.set_ylabel(label)
    axes[0].legend(loc="best")
    if title:
        fig.suptitle(title)
    return fig, axes


def plot_epochs(results: pd.DataFrame, initialisations, title: str | None = None):
    """Fig. 16.3: the epoch in which early stopping ended fine-tuning, per labelled-data size (dots: runs)."""
    import matplotlib.pyplot as plt

    from domainknowledge.plots import BOOK_COLORS

    fractions = sorted(results["fraction"].unique())
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    width = 0.8 / len(initialisations)
    for k, (initialisation, color) in enumerate(zip(initialisations, BOOK_COLORS)):
        rows = results[results["initialisation"] == initialisation]
        for j, fraction in enumerate(fractions):
            values = rows.loc[rows["fraction"] == fraction, "epochs"].to_numpy()
            x = j + (k - (len(initialisations) - 1) / 2) * width
            ax.bar(x, values.mean() if len(values) else 0, width=width * 0.9, color=color, alpha=0.7,
                   label=LABELS[initialisation] if j == 0 else None)
            ax.scatter(np.full(len(values), x), values, color="0.15", s=8, zorder=3)
    ax.set_xticks(range(len(fractions)), [f"{100 * f:.0f} %" for f in fractions])
    ax.set_xlabel("labelled training data")
    ax.set_ylabel("epochs until early stop")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig, ax


def plot_pretraining_histories(pretrained: dict[str, Pretrained]):
    """Training and validation loss per pretraining epoch for each method (each on its own objective's scale);
    for the multitask networks also the ranking task's validation loss (Eq. 16.1) before balancing."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pretrained), figsize=(2.6 * len(pretrained), 2.4))
    for ax, (method, result) in zip(np.atleast_1d(axes), pretrained.items()):
        frame = pd.DataFrame(result.history)
        ax.plot(frame["epoch"], frame["train_loss"], marker="o", markersize=3, label="train")
        ax.plot(frame["epoch"], frame["validation_loss"], marker="s", markersize=3, label="validation")
        if "validation_ranking" in frame and method != "ranking":
            ax.plot(frame["epoch"], frame["validation_ranking"], marker="^", markersize=3, linestyle="--",
                    label="validation, ranking task")
            ax.legend(fontsize=7)
        ax.set_title(LABELS[method], fontsize=9)
        ax.set_xlabel("epoch")
    np.atleast_1d(axes)[0].legend()
    return fig, axes


def deviations_markdown(config: Config, profile: str) -> str:
    """The chapter's "Deviations from the thesis" as Markdown bullets, with the numbers read from ``config``."""
    pre, fine = config.pretraining, config.finetuning
    stand_in = config.pretraining_data == "bundled"
    lines = []
    if stand_in:
        lines.append(
            f"- **Pretraining data (`{profile}`).** {config.pretraining_images[0]:,} training, "
            f"{config.pretraining_images[1]:,} validation and {config.pretraining_images[2]:,} test base images, half "
            f"crops of {len(PHOTOS)} bundled photos and half well-composed synthetic scenes, replace the 130,000 "
            "pexels.com photos (100,000 / 15,000 / 15,000); the test crops come from the same photos as the "
            "training crops. `paper` reads photos from `data_root/pexels/`.")
    if config.aesthetics_data == "stand-in":
        lines.append(
            f"- **Aesthetics data (`{profile}`).** The seeded stand-in of `dk.data.synthetic.aesthetics` "
            f"({config.aesthetics_images[0]:,} training, {config.aesthetics_images[1]:,} validation and "
            f"{config.aesthetics_images[2]:,} test images, {config.votes} simulated votes each) replaces AVA "
            "(about 255,000 photos, about 200 votes each). There is no stand-in for TID2013, so its columns of "
            "Table 16.3 are computed only at `paper` (from `data_root/TID2013/`).")
    lines.append(
        "- **Distortions.** Re-implemented in NumPy and Pillow instead of imagenet-c and darktable; the style "
        "filters use Table 16.1's ranges with five symmetric levels each way (the thesis' shadows, highlights, "
        "temperature and vibrance lists have uneven levels); the composition parameters (rotation up to 15 "
        "degrees, crops of up to 50 %, stretches up to 2x) are ours, as the thesis' are not legible. Images are "
        "resized and padded to squares, as in Sec. 16.2.1.")
    lines.append(
        f"- **Images and network.** {config.image_size} x {config.image_size} px instead of 224 x 224, MobileNetV2 "
        f"at width {config.width_mult:g} instead of 1.0. "
        + ("The pretext models start from torchvision's ImageNet MobileNetV2, which is also the ImageNet row, as in "
           "the thesis." if config.pretext_from_imagenet else
           "The pretext models start from random weights, not from ImageNet weights, as no ImageNet MobileNetV2 "
           "can be had offline; the ImageNet row is the ImageNet-trained EfficientNet-Lite0, a different, larger "
           "architecture, shown as a reference: the claims against it are not judged at this profile."))
    variants = ("all" if pre.levels_per_sign == 5 else f"{pre.levels_per_sign} random") + " of its five levels"
    signs = "on both signs" if pre.both_signs else "on one random sign"
    lines.append(
        f"- **Pretraining schedule.** Per epoch each base image gets {pre.distortions_per_group} random "
        f"distortion(s), {signs}, at {variants}, in batches of {pre.batch_groups} base images, for {pre.epochs} "
        "epoch(s); the thesis uses all 172 variants of 8 base images per batch for 20 epochs. With few pairs per "
        "group the task losses are small, so h(x) = exp(x/50) is close to 1 + x/50 and the balancing hardly "
        "reweights the tasks. RotNet and SimCLR use the same RMSProp schedule as the pretext tasks (the thesis "
        "ran their authors' code; SimCLR with LARS and a cosine schedule).")
    lines.append(
        f"- **Fine-tuning schedule.** Patiences of {fine.head_patience} (head-only plateau), {fine.lr_patience} "
        f"(halving the learning rates) and {fine.stop_patience} (early stopping) epochs instead of 5 and 10, a cap "
        f"of {fine.max_epochs} epochs, batches of {fine.batch_size}, learning rates {fine.lr_backbone:g} "
        f"(backbone) and {fine.lr_head:g} (head)"
        + ("" if (fine.lr_backbone, fine.lr_head) == (1e-4, 1e-3) else " instead of 1e-4 and 1e-3")
        + f"; an improvement must exceed "
        f"{100 * fine.min_improvement:g} % of the best validation EMD. The head-only phase runs on features computed "
        "once, which equals running the frozen backbone every epoch (no augmentation, frozen batch-norm "
        "statistics). The random initialisation (not in the thesis) skips the head-only phase: it has no features "
        "to protect, and its untrained batch-norm statistics give nearly constant features in inference mode. NIMA's "
        "random crops and flips are not used.")
    lines.append(
        f"- **Runs and tests.** {config.runs} fine-tuning run(s) per initialisation, one pretraining per method. "
        "The Wilcoxon tests pair test images (absolute errors averaged over the runs), one-sided, "
        f"Bonferroni-corrected over the compared initialisations at alpha = {100 * config.alpha:g} %; the thesis "
        "does not say how it paired. The thesis compares correlations by their means only; we add a randomized "
        "matched-pair test per comparison, as our test sets are a hundred times smaller.")
    if len(config.label_fractions) == 1:
        lines.append("- **Labelled fractions.** Only the full training split (the thesis: 20, 40, 60, 80 and 100 %): "
                     "the budget goes to longer pretraining of fewer networks; the fractions run at `paper`.")
    else:
        lines.append(
            "- **Labelled fractions.** " + ", ".join(f"{100 * f:g} %" for f in config.label_fractions)
            + " of the training split, for " + " and ".join(LABELS[i] for i in config.fraction_initialisations)
            + " (the thesis: 20, 40, 60, 80 and 100 %).")
    missing = [LABELS[i] for i in INITIALISATIONS if i not in config.initialisations]
    if missing:
        lines.append("- **Fewer networks.** " + ", ".join(missing) + " are not pretrained or fine-tuned at this "
                     "profile, so that the others train longer; the claims that need them are not run here.")
    lines.append(
        "- **Errata resolved.** Eq. 16.1 is printed as max(0, (f(I_i) - f(I_j)) - m) for |i| < |j|, which would "
        "push the less distorted image down; the code uses max(0, m - (f(I_i) - f(I_j))), as RankIQA and the "
        "thesis' text intend. The printed condition sign(i) = sign(j) would never pair the original (sign 0); the "
        "original is ranked above every variant. The thesis counts 173 variants per training image but 172 for "
        "validation and test (Sec. 16.2.3); with Table 16.1's levels we count 1 + 6 x 5 + 15 x 10 = 181 images "
        "per base image at `paper`, since our style levels are symmetric.")
    lines.append(
        "- **`paper` limits.** The `paper` profile reads the pretraining photos, AVA and TID2013 from disk a batch "
        "at a time and streams Table 16.4 and Fig. 16.4 over chunks of base images; SimCLR's views and RotNet's "
        "rotations are made on the device for the whole batch; the distortions are computed on the CPU (NumPy "
        f"and Pillow) in {pre.loader_workers} loader process(es) that prepare the next batches while the network "
        "trains, not on the device. The AVA split (80 / 5 / 15 %) is ours; the thesis "
        "does not state it.")
    return "\n".join(lines)


def constant_score_ranking_loss(config: PretrainingConfig, margin: float = pretext.RANKING_MARGIN) -> float:
    """Eq. 16.1 per group for a network that gives every image the same score: ``m`` times the number of pairs.

    A group holds the original and, per distortion and sign, ``levels_per_sign`` levels: the original pairs with
    each variant, and the variants of one sign pair among themselves."""
    signs_per_distortion = []
    for spec in distortions.CATALOGUE:
        has_negative = any(v < 0 for v in spec.levels)
        signs_per_distortion.append(2 if (config.both_signs and has_negative) else 1)
    levels = config.levels_per_sign
    mean_signs = float(np.mean(signs_per_distortion))
    per_sign = levels + levels * (levels - 1) / 2
    return margin * config.distortions_per_group * mean_signs * per_sign


def ranking_validation_loss(pretrained: dict[str, Pretrained]) -> tuple[str, float]:
    """The ranking task's validation loss (Eq. 16.1, before any balancing) at the kept epoch of the first of our
    pretext networks that was trained: ``(method, loss)``."""
    method = next((m for m in OURS if m in pretrained), None)
    if method is None:
        raise ValueError(f"no pretext network with the ranking task among {sorted(pretrained)}")
    result = pretrained[method]
    return method, float(result.history[result.best_epoch - 1]["validation_ranking"])


def constant_prediction_metrics(task: AestheticsTask) -> dict[str, float]:
    """The reference a model must beat: predict the training split's mean score for every test image.

    Its Pearson and Spearman correlations are undefined (reported as 0); its accuracy is the share of the test
    images on the training mean's side of 5, and its MAE the mean absolute deviation from that mean."""
    constant = np.full_like(task.mean_scores["test"], task.mean_scores["train"].mean())
    return metrics.aesthetic_score_metrics(constant, task.mean_scores["test"])

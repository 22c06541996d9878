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
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domainknowledge import metrics
from domainknowledge.experiment import describe_profiles as describe_config_profiles
from domainknowledge.models.cnn import Standardize
from domainknowledge.principles import decision_tree_hashing as ddtl
from domainknowledge.principles import hashing_baselines as baselines
from domainknowledge.training import as_image_tensor, train_epochs

__all__ = ["CONFIGS", "DDTL_FAMILY", "LEXICOGRAPHIC", "METHODS", "Config", "HashingNetwork", "HashingTask",
           "TrainedHasher", "augment", "brightness_contrast_jitter", "coarse_to_fine_accuracy", "code_retention",
           "coarse_task", "coarse_to_fine_predictions", "describe_profiles", "encode", "evaluate_retrieval", "load_transfer", "load_task",
           "occlude", "path_entropy_bits", "run_comparison", "superclass_majority_accuracy", "superclass_majority_predictions", "train_hasher", "transfer_scores",
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
    ``resnet34`` trained from scratch); ``train_images`` (training set = database) and
    ``query_images`` (test queries) in total, the same number from every class (``None`` = all); ``channels``
    are the backbone's three convolution widths and ``feature_dim`` its representation; ``tree_depth`` the
    number of tree decisions (12 in the thesis, about 12 training images per leaf on CIFAR-10; the small
    profiles keep that ratio rather than the depth, see :data:`CONFIGS`); ``epochs``, ``batch_size``, ``learning_rate`` (Adam with cosine annealing,
    1e-3 in the thesis); ``temperature`` of NT-Xent (1); ``methods`` trained, ``runs`` seeds each; ``map_k``
    the rank threshold of mAP@K."""

    dataset: str
    backbone: str
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

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        unknown = set(self.methods) - set(METHODS)
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods}")
        for name in ("feature_dim", "tree_depth", "epochs", "batch_size", "runs", "map_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


#: The profiles. Code quality (unique codes, entropy, bucket size) depends on how many training images share a
#: leaf: CIFAR-10's 50,000 images over the thesis' 2^12 leaves is about 12 per leaf, and the small profiles
#: choose the depth that keeps about that many (600 / 2^6, 2,000 / 2^7), so their codes are 4 + 6 and 4 + 7
#: bits long instead of 4 + 12.
CONFIGS: dict[str, Config] = {
    "smoke": Config(dataset="fashion_mnist", backbone="small_cnn", train_images=600, query_images=200, channels=(8, 16, 32),
                    feature_dim=32, tree_depth=6, epochs=1, batch_size=128, learning_rate=1e-3, temperature=1.0,
                    methods=("ddtl", "supervised_only", "dsh"), runs=1, map_k=100),
    "cpu": Config(dataset="fashion_mnist", backbone="small_cnn", train_images=2_000, query_images=500,
                  channels=(8, 16, 32), feature_dim=64, tree_depth=7, epochs=15, batch_size=256, learning_rate=2e-3,
                  temperature=1.0, methods=METHODS, runs=2, map_k=200),
    "paper": Config(dataset="cifar10", backbone="resnet34", train_images=None, query_images=None,
                    channels=(64, 128, 256), feature_dim=512, tree_depth=12, epochs=500, batch_size=512, learning_rate=1e-3,
                    temperature=1.0, runs=3, map_k=5_000,
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


def _per_class(labels: np.ndarray, count: int | None, rng: np.random.Generator) -> np.ndarray:
    if count is None:
        return np.arange(len(labels))
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:count // len(np.unique(labels))] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def load_task(config: Config, *, seed: int, data_root=None, allow_download: bool = False) -> HashingTask:
    """The data set's training and test sets (Fashion-MNIST, or CIFAR-10 from ``data_root``), each subsampled to ``train_images`` / ``query_images`` with an
    equal number per class (``seed``)."""
    if config.dataset == "cifar10":
        from domainknowledge.data.real.cifar10 import CIFAR10_CLASSES as classes
        from domainknowledge.data.real.cifar10 import load_cifar10 as load
        name = "CIFAR-10"
    else:
        from domainknowledge.data.bundled import FASHION_MNIST_CLASSES as classes
        from domainknowledge.data.bundled import load_fashion_mnist as load
        name = "Fashion-MNIST"
    rng = np.random.default_rng(seed)
    images, labels = {}, {}
    for split, count in (("train", config.train_images), ("test", config.query_images)):
        x, y = load(split, data_root=data_root, allow_download=allow_download)
        keep = _per_class(y, count, rng)
        images[split], labels[split] = as_image_tensor(x[keep]), torch.from_numpy(y[keep])
    return HashingTask(name, images["train"], labels["train"], images["test"], labels["test"], tuple(classes))


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
    """A trained network, its mean training loss per epoch, the seconds it took, and (``crpca`` only) the
    repeated-PCA tree fitted on its training features by :func:`train_hasher`."""

    network: HashingNetwork
    seed: int
    losses: list[float]
    seconds: float
    pca_tree: ddtl.RepeatedPCATree | None = None


def train_hasher(method: str, task: HashingTask, config: Config, *, seed: int, device="cpu",
                 progress: bool = False) -> TrainedHasher:
    """Train ``method`` on the task's training set with Adam and cosine annealing over ``epochs`` (Sec. 3.2.1)."""
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

    losses = train_epochs(network, batch_loss, examples=len(task.train_labels), epochs=config.epochs,
                          batch_size=config.batch_size, learning_rate=config.learning_rate, generator=generator,
                          progress=f"{method}, seed {seed}" if progress else None)
    trained = TrainedHasher(network, seed, losses, time.perf_counter() - started)
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


def load_transfer(task: HashingTask, *, seed: int, data_root=None, allow_download: bool = False):
    """Images of classes the network never saw, as CIFAR-100 is for a CIFAR-10 model (Table 3.4):
    ``(train_images, train_labels, test_images, test_labels)`` shaped like the task's images.

    Fashion-MNIST -> scikit-learn's 1,797 digits, upsampled to 28 px, split in half with ``seed``.
    CIFAR-10 -> CIFAR-100's training (transfer train) and test (transfer test) sets from ``data_root``.
    """
    if task.name == "CIFAR-10":
        from domainknowledge.data.real.cifar100 import _folder, read_cifar100_split

        folder = _folder(data_root, allow_download)
        (train_x, train_y, _), (test_x, test_y, _) = (read_cifar100_split(folder, s) for s in ("train", "test"))
        return (as_image_tensor(train_x), torch.from_numpy(train_y), as_image_tensor(test_x), torch.from_numpy(test_y))
    from domainknowledge.data.bundled import load_digits

    images, labels = load_digits()
    size = task.train_images.shape[-1]
    tensor = F.interpolate(torch.from_numpy(images)[:, None], size=(size, size), mode="bilinear", align_corners=False)
    tensor = (255 * tensor.clamp(0, 1)).round().to(torch.uint8)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(labels)))
    cut, labels = len(labels) // 2, torch.from_numpy(labels)
    return tensor[order[:cut]], labels[order[:cut]], tensor[order[cut:]], labels[order[cut:]]


def transfer_scores(trained: TrainedHasher, transfer, device="cpu") -> dict[str, float]:
    """Table 3.4's transfer columns on held-out classes: accuracy of a logistic regression on the frozen
    backbone features, and 1-NN accuracy in Hamming distance between the codes (train codes as database)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_images, train_labels, test_images, test_labels = transfer
    train, test = encode(trained, train_images, device), encode(trained, test_images, device)
    scaler = StandardScaler().fit(train["features"])
    probe = LogisticRegression(max_iter=2000).fit(scaler.transform(train["features"]), train_labels.numpy())
    return {"transfer_logistic_regression": float(probe.score(scaler.transform(test["features"]), test_labels.numpy())),
            "transfer_nearest_neighbour": metrics.hamming_nearest_neighbour_accuracy(
                test["codes"], test_labels.numpy(), train["codes"], train_labels.numpy())}


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
    """The task relabelled with the superclasses of :data:`SUPERCLASSES` (same images)."""
    groups = SUPERCLASSES[task.name]
    coarse_of = torch.zeros(task.num_classes, dtype=torch.long)
    for index, members in enumerate(groups.values()):
        for name in members:
            coarse_of[task.class_names.index(name)] = index
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
                   progress: bool = True):
    """Train every method of ``config`` with every seed and evaluate it (Tables 3.4-3.5): returns a tidy
    ``pandas.DataFrame`` (one row per method and seed) and the trained models keyed by ``(method, seed)``."""
    import pandas as pd

    rows, trained_models = [], {}
    for method in config.methods:
        for seed in seeds:
            trained = train_hasher(method, task, config, seed=seed, device=device, progress=False)
            database, queries = encode(trained, task.train_images, device), encode(trained, task.query_images, device)
            scores = evaluate_retrieval(method, database, task.train_labels, queries, task.query_labels, config.map_k)
            scores["map_all"] = metrics.mean_average_precision_at_k(
                queries["codes"], task.query_labels.numpy(), database["codes"], task.train_labels.numpy(),
                len(task.train_labels), order="lexicographic" if method in LEXICOGRAPHIC else "hamming")
            scores.update(transfer_scores(trained, transfer, device))
            rows.append({"method": method, "seed": seed, **scores, "seconds": trained.seconds})
            trained_models[(method, seed)] = trained
            if progress:
                print(f"{method:>16}, seed {seed}: mAP@{config.map_k} {scores['map_at_k']:.3f}, "
                      f"{scores['unique_percent']:.1f} % unique codes, {trained.seconds:.0f} s", flush=True)
    return pd.DataFrame(rows), trained_models

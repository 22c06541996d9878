"""Deep metric learning with the losses of Musgrave et al.'s benchmark: the training piece shared by the
chapters on rendered cars (Kobs 2023, Ch. 7), attribution maps (Ch. 9) and BGAugment (Ch. 11).

The thesis analyses the 14 losses of Musgrave et al.'s "reality check" (Table 7.1), each training an
ImageNet-pretrained BN-Inception with a 128-d linear embedding layer on Cars196, plus an untrained "None"
model. This module builds the same kind of model and trains it with the losses of
``pytorch-metric-learning`` (Musgrave's own library):

* :data:`LOSSES`: name -> :class:`LossSpec` (family ``ranking``/``classification``/``none``, the distance
  ``d_L`` of Table 7.1, and how to build the loss and its miner);
* :class:`EmbeddingConfig`: backbone, embedding size, schedule, batch composition (``m`` images per class);
* :class:`EmbeddingNetwork`: ``backbone (B, 3, H, W) uint8 -> (B, F)`` then ``head (B, F) -> (B, D)``;
* :func:`train_embedding_model`: trains one network with one loss and returns it with its
  :class:`EmbeddingHistory`; ``batch_transform(images, indices) -> images`` is applied to every training
  batch (BGAugment's hook). When the backbone is frozen and there is no batch transform, the backbone's
  features of the training images are computed once (or passed in as ``features``) and only the head sees
  batches; the result is the same as running the frozen backbone on every batch, only faster;
* :func:`embed`: embeddings ``(N, D)`` as NumPy, L2-normalised by default (as the losses see them);
* :func:`pairwise_distance`: ``(N, N)`` distances for ``euclidean``, ``squared_euclidean``, ``cosine``
  (1 - cosine similarity) or ``dot`` (negative dot product), so that smaller is always closer.

Batches are drawn by :class:`MPerClassBatchSampler` (``batch_size / m`` classes, ``m`` images each), as in
Musgrave et al.; it uses its own seeded generator, so a run is reproducible on CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["DISTANCES", "FAMILIES", "LOSSES", "ArrayImages", "EfficientNetLiteFeatures", "ImageSource", "EmbeddingConfig", "EmbeddingHistory", "EmbeddingNetwork", "LossSpec",
           "MPerClassBatchSampler", "SmallConvBackbone", "backbone_features", "build_embedding_network", "build_loss",
           "check_family_comparison",
           "embed", "pairwise_distance", "train_embedding_model"]

FAMILIES = ("ranking", "classification", "none")
DISTANCES = ("euclidean", "squared_euclidean", "cosine", "dot", "snr")


@dataclass(frozen=True)
class LossSpec:
    """One loss of Table 7.1: display ``title``, ``family``, ``distance`` (the ``d_L`` of Sec. 7.1.1) and
    ``build(num_classes, embedding_dim) -> (loss module, miner or None)``."""

    title: str
    family: str
    distance: str
    build: Callable[[int, int], tuple[nn.Module | None, object | None]]


def _pml():
    from pytorch_metric_learning import losses, miners
    from pytorch_metric_learning.distances import CosineSimilarity, LpDistance

    return losses, miners, LpDistance, CosineSimilarity


def _contrastive(num_classes, dim):
    losses, _, lp, _ = _pml()
    return losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0, distance=lp()), None


def _triplet(num_classes, dim):
    losses, _, lp, _ = _pml()
    return losses.TripletMarginLoss(margin=0.1, distance=lp(), triplets_per_anchor="all"), None


def _ntxent(num_classes, dim):
    losses, _, _, cos = _pml()
    return losses.NTXentLoss(temperature=0.07, distance=cos()), None


def _margin(num_classes, dim):
    losses, _, lp, _ = _pml()
    return losses.MarginLoss(margin=0.2, nu=0.0, beta=1.2, triplets_per_anchor="all", learn_beta=False,
                             distance=lp()), None


def _margin_per_class(num_classes, dim):
    losses, _, lp, _ = _pml()
    return losses.MarginLoss(margin=0.2, nu=0.0, beta=1.2, triplets_per_anchor="all", learn_beta=True,
                             num_classes=num_classes, distance=lp()), None


def _fastap(num_classes, dim):
    losses, _, lp, _ = _pml()
    return losses.FastAPLoss(num_bins=10, distance=lp(power=2)), None


def _snr_contrastive(num_classes, dim):
    from pytorch_metric_learning.distances import SNRDistance

    losses, _, _, _ = _pml()
    return losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0, distance=SNRDistance()), None


def _multi_similarity(num_classes, dim):
    losses, _, _, cos = _pml()
    return losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5, distance=cos()), None


def _multi_similarity_miner(num_classes, dim):
    losses, miners, _, cos = _pml()
    return (losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5, distance=cos()),
            miners.MultiSimilarityMiner(epsilon=0.1, distance=cos()))


def _proxy_nca(num_classes, dim):
    losses, _, _, _ = _pml()
    return losses.ProxyNCALoss(num_classes, dim, softmax_scale=3.0), None


def _normalized_softmax(num_classes, dim):
    losses, _, _, _ = _pml()
    return losses.NormalizedSoftmaxLoss(num_classes, dim, temperature=0.05), None


def _cosface(num_classes, dim):
    losses, _, _, _ = _pml()
    return losses.CosFaceLoss(num_classes, dim, margin=0.35, scale=64), None


def _arcface(num_classes, dim):
    losses, _, _, _ = _pml()
    return losses.ArcFaceLoss(num_classes, dim, margin=28.6, scale=64), None


def _soft_triple(num_classes, dim):
    losses, _, _, _ = _pml()
    return losses.SoftTripleLoss(num_classes, dim, centers_per_class=10, la=20, gamma=0.1, margin=0.01), None


# Table 7.1: the fourteen losses with the thesis' families and distances, plus the untrained "None" model.
LOSSES: dict[str, LossSpec] = {
    "contrastive": LossSpec("Contrastive", "ranking", "euclidean", _contrastive),
    "triplet": LossSpec("Triplet", "ranking", "euclidean", _triplet),
    "ntxent": LossSpec("NTXent", "ranking", "cosine", _ntxent),
    "margin": LossSpec("Margin", "ranking", "euclidean", _margin),
    "margin_per_class": LossSpec("Margin / class", "ranking", "euclidean", _margin_per_class),
    "fastap": LossSpec("FastAP", "ranking", "squared_euclidean", _fastap),
    "snr_contrastive": LossSpec("SNR Contrastive", "ranking", "snr", _snr_contrastive),
    "multi_similarity": LossSpec("Multi Similarity", "ranking", "cosine", _multi_similarity),
    "multi_similarity_miner": LossSpec("Multi Similarity + Miner", "ranking", "cosine", _multi_similarity_miner),
    "proxy_nca": LossSpec("ProxyNCA", "classification", "squared_euclidean", _proxy_nca),
    "normalized_softmax": LossSpec("Normalized Softmax", "classification", "dot", _normalized_softmax),
    "cosface": LossSpec("CosFace", "classification", "cosine", _cosface),
    "arcface": LossSpec("ArcFace", "classification", "cosine", _arcface),
    "soft_triple": LossSpec("SoftTriple", "classification", "cosine", _soft_triple),
    "none": LossSpec("None", "none", "euclidean", lambda num_classes, dim: (None, None)),
}


def check_family_comparison(losses, purpose: str) -> None:
    """Raise a ValueError unless ``losses`` are keys of :data:`LOSSES` that include ``"none"`` and at least two
    losses of each family, which a chapter comparing the ranking and classification families needs;
    ``purpose`` says why in the message (e.g. "the Mann-Whitney test compares the families")."""
    unknown = set(losses) - set(LOSSES)
    if unknown:
        raise ValueError(f"unknown losses {sorted(unknown)}; choose from {sorted(LOSSES)}")
    families = [LOSSES[name].family for name in losses]
    if "none" not in losses or families.count("ranking") < 2 or families.count("classification") < 2:
        raise ValueError(f"losses must contain 'none' and at least two ranking and two classification losses ({purpose})")


def build_loss(loss_name: str, num_classes: int, embedding_dim: int):
    """``(loss module or None, miner or None)`` of ``loss_name`` for ``num_classes`` training classes."""
    if loss_name not in LOSSES:
        raise ValueError(f"unknown loss {loss_name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[loss_name].build(num_classes, embedding_dim)


# --- the network ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingConfig:
    """How to build and train one embedding network.

    ``backbone``: ``efficientnet_lite0`` (real ImageNet weights) or ``small_cnn`` (random initialisation);
    ``backbone_blocks``: how many of EfficientNet-Lite0's 16 MBConv blocks to keep (``None``: all, then its
    1280-channel head convolution); ``pool_grid``: the feature map is average-pooled to ``g x g`` cells and
    flattened (1 = global average pooling; 2 keeps where in the image a feature fired);
    ``image_size``: the backbone's input size (images are resized to it); ``train_backbone``: fine-tune the
    backbone (thesis) or keep it frozen in evaluation mode; ``embedding_dim`` (128 in the thesis);
    ``head_hidden``: 0 for the thesis' single linear embedding layer, else the width of a hidden layer;
    ``epochs``, ``batch_size`` and ``m_per_class`` (batches of ``batch_size / m`` classes x ``m`` images,
    32 and 4 in Musgrave et al.); learning rates of the backbone, the head and the loss's own parameters
    (proxies, class weights), all with Adam; ``weight_decay`` on the network.
    """

    backbone: str = "efficientnet_lite0"
    backbone_blocks: int | None = None
    pool_grid: int = 1
    image_size: int = 64
    train_backbone: bool = False
    embedding_dim: int = 128
    head_hidden: int = 0
    epochs: int = 10
    batch_size: int = 32
    m_per_class: int = 4
    backbone_learning_rate: float = 1e-5
    head_learning_rate: float = 1e-3
    loss_learning_rate: float = 1e-2
    weight_decay: float = 1e-4

    def __post_init__(self):
        if self.backbone not in ("efficientnet_lite0", "small_cnn"):
            raise ValueError(f"backbone must be 'efficientnet_lite0' or 'small_cnn', got {self.backbone!r}")
        if self.batch_size % self.m_per_class or self.batch_size < 2 * self.m_per_class:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of m_per_class "
                             f"({self.m_per_class}) holding at least two classes")
        if self.epochs < 0 or self.embedding_dim < 1 or self.image_size < 16 or self.pool_grid < 1:
            raise ValueError("epochs must be >= 0, embedding_dim >= 1, image_size >= 16 and pool_grid >= 1")
        if self.backbone_blocks is not None and not 1 <= self.backbone_blocks <= 16:
            raise ValueError(f"backbone_blocks must be None or in 1..16, got {self.backbone_blocks}")


class SmallConvBackbone(nn.Module):
    """Four conv-BN-ReLU-pool blocks (32, 64, 128, 128 channels), average pooling to ``pool_grid`` squared
    cells; uint8 ``(B, 3, H, W)`` -> ``(B, 128 g^2)``. Randomly initialised; for tests and quick runs."""

    def __init__(self, pool_grid: int = 1):
        super().__init__()
        layers, channels = [], 3
        for width in (32, 64, 128, 128):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool_grid = pool_grid
        self.feature_dim = channels * pool_grid ** 2
        self.name = "small CNN (random initialisation)"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features(images.float() / 127.5 - 1.0)
        return nn.functional.adaptive_avg_pool2d(maps, self.pool_grid).flatten(1)


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite0 with its ImageNet weights, cut after ``blocks`` of its 16 MBConv blocks (``None``:
    all blocks and the 1280-channel head convolution), average-pooled to ``pool_grid`` squared cells;
    uint8 or 0-255 float ``(B, 3, H, W)`` -> ``(B, C g^2)``. Inputs are standardised with the ImageNet
    statistics."""

    def __init__(self, image_size: int, blocks: int | None = None, pool_grid: int = 1):
        super().__init__()
        from domainknowledge.models.backbones import IMAGENET_MEAN, IMAGENET_STD, load_efficientnet_lite

        network = load_efficientnet_lite(0, image_size=image_size)
        self.stem = nn.Sequential(network._conv_stem, network._bn0, network._swish)
        kept = len(network._blocks) if blocks is None else blocks
        self.blocks = nn.ModuleList(network._blocks[:kept])
        self.drop_connect_rate = network._global_params.drop_connect_rate
        self.total_blocks = len(network._blocks)
        self.head = (nn.Sequential(network._conv_head, network._bn1, network._swish) if blocks is None
                     else nn.Identity())
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1) * 255.0)
        self.pool_grid = pool_grid
        with torch.no_grad():
            channels = self._maps(torch.zeros(1, 3, image_size, image_size)).shape[1]
        self.feature_dim = channels * pool_grid ** 2
        self.name = (f"EfficientNet-Lite0 (ImageNet), {'all 16 blocks' if blocks is None else f'first {blocks} blocks'}"
                     f", {pool_grid}x{pool_grid} pooling")

    def _maps(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem((images.float() - self.mean) / self.std)
        for index, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * index / self.total_blocks if self.drop_connect_rate else None
            x = block(x, drop_connect_rate=rate)
        return self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(self._maps(images), self.pool_grid).flatten(1)


class EmbeddingNetwork(nn.Module):
    """``backbone`` (uint8 or 0-255 float ``(B, 3, H, W)`` -> ``(B, F)``, inputs resized to ``image_size``)
    followed by the embedding ``head`` (``(B, F)`` -> ``(B, D)``). ``forward`` returns unnormalised
    embeddings; the losses (and :func:`embed`) L2-normalise them."""

    def __init__(self, backbone: nn.Module, head: nn.Module, image_size: int, train_backbone: bool):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.image_size, self.train_backbone = image_size, train_backbone

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        images = images.float()
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = nn.functional.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                               align_corners=False, antialias=True)
        return self.backbone(images.contiguous())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.train_backbone:
            self.backbone.eval()          # a frozen backbone keeps its batch-norm statistics
        return self


def build_embedding_network(config: EmbeddingConfig, *, seed: int) -> EmbeddingNetwork:
    """The backbone of ``config`` and a head initialised from ``seed``."""
    if config.backbone == "efficientnet_lite0":
        backbone = EfficientNetLiteFeatures(config.image_size, config.backbone_blocks, config.pool_grid)
    else:
        torch.manual_seed(seed)
        backbone = SmallConvBackbone(config.pool_grid)
    torch.manual_seed(seed)
    # the head standardises its input features with batch statistics (running statistics in evaluation
    # mode; an untrained head's are the identity), then embeds them
    if config.head_hidden:
        head = nn.Sequential(nn.BatchNorm1d(backbone.feature_dim, affine=False),
                             nn.Linear(backbone.feature_dim, config.head_hidden), nn.ReLU(),
                             nn.Linear(config.head_hidden, config.embedding_dim))
    else:
        head = nn.Sequential(nn.BatchNorm1d(backbone.feature_dim, affine=False),
                             nn.Linear(backbone.feature_dim, config.embedding_dim))
    for parameter in backbone.parameters():
        parameter.requires_grad_(config.train_backbone)
    network = EmbeddingNetwork(backbone, head, config.image_size, config.train_backbone)
    return network.train()


# --- batches -------------------------------------------------------------------------------------------


class MPerClassBatchSampler:
    """Batches of ``batch_size`` indices: ``batch_size / m`` distinct classes, ``m`` images of each (drawn
    without replacement when the class has ``m`` images, else with). ``len(labels) // batch_size`` batches
    per pass; seeded by ``seed`` and the pass number, so a run is reproducible."""

    def __init__(self, labels, batch_size: int, m: int, seed: int):
        labels = np.asarray(labels)
        self.classes, inverse = np.unique(labels, return_inverse=True)
        self.members = [np.flatnonzero(inverse == k) for k in range(len(self.classes))]
        if batch_size % m:
            raise ValueError(f"batch_size {batch_size} must be a multiple of m {m}")
        if len(self.classes) < batch_size // m:
            raise ValueError(f"a batch needs {batch_size // m} classes but the labels have {len(self.classes)}; "
                             "lower batch_size or raise m_per_class")
        self.batch_size, self.m, self.seed, self.passes = batch_size, m, seed, 0
        self.batches_per_pass = max(1, len(labels) // batch_size)

    def __len__(self) -> int:
        return self.batches_per_pass

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.passes])
        self.passes += 1
        for _ in range(self.batches_per_pass):
            chosen = rng.choice(len(self.classes), size=self.batch_size // self.m, replace=False)
            yield np.concatenate([rng.choice(self.members[k], size=self.m, replace=len(self.members[k]) < self.m)
                                  for k in chosen])


# --- training ------------------------------------------------------------------------------------------


@dataclass
class EmbeddingHistory:
    """Per-epoch mean training loss of one run, its loss name, seed and wall time (s)."""

    loss_name: str
    seed: int
    epoch_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    from domainknowledge.experiment import resolve_device

    return resolve_device(device)


@torch.no_grad()
def backbone_features(network: EmbeddingNetwork, images: torch.Tensor, *, batch_size: int = 256,
                      device="cpu") -> torch.Tensor:
    """The backbone's features ``(N, F)`` (on the CPU) of uint8 images ``(N, 3, H, W)`` or an image source
    (:class:`ImageSource`), computed on ``device`` in batches of ``batch_size`` in evaluation mode."""
    device = _device(device)
    images = _as_images(images)
    was_training = network.training
    network.eval().to(device)
    out = [network.features(images[start:start + batch_size].to(device)).cpu()
           for start in range(0, len(images), batch_size)]
    network.train(was_training)
    return torch.cat(out)


class ImageSource:
    """Images produced a batch at a time: ``source[indices]`` (an index array or a slice) returns a uint8
    tensor ``(B, 3, S, S)``; ``len`` and ``shape`` (``(N, 3, S, S)``) as for the tensor of all of them.
    Training (:func:`train_embedding_model`), :func:`embed` and :func:`backbone_features` accept a source in
    place of the tensor, so a data set on disk (``ImageFiles`` of
    :mod:`domainknowledge.data.real.dml_benchmarks`), a memory-mapped array (:class:`ArrayImages`) or
    copies built on the fly (e.g. the corrupted test sets of Ch. 11) are never held in memory at once.
    Subclasses implement ``batch(indices (B,) int64) -> (B, 3, S, S)`` and ``__len__``."""

    size: int

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), 3, self.size, self.size)

    @property
    def ndim(self) -> int:
        return 4

    def __getitem__(self, indices) -> torch.Tensor:
        chosen = np.atleast_1d(np.arange(len(self))[indices])
        return self.batch(chosen.astype(np.int64))


class ArrayImages(ImageSource):
    """An ``(N, S, S, 3)`` uint8 array (e.g. a ``numpy.memmap`` of decoded images on disk) as an
    :class:`ImageSource`: only the rows a batch asks for are read and converted."""

    def __init__(self, array: np.ndarray):
        if array.ndim != 4 or array.shape[-1] != 3 or array.shape[1] != array.shape[2]:
            raise ValueError(f"images must have shape (N, S, S, 3), got {array.shape}")
        self.array, self.size = array, int(array.shape[1])

    def __len__(self) -> int:
        return len(self.array)

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(self.array[indices]).transpose(0, 3, 1, 2)))


def _is_source(images) -> bool:
    return isinstance(images, ImageSource) or (hasattr(images, "__getitem__") and hasattr(images, "shape")
                                               and not isinstance(images, (np.ndarray, torch.Tensor)))


def _as_images(images):
    """A uint8 tensor ``(N, 3, H, W)`` (from a tensor or an ``(N, H, W, 3)`` array), or an image source
    (:class:`ImageSource`, ``ImageFiles``) left as it is."""
    if isinstance(images, np.ndarray):
        from domainknowledge.training import as_image_tensor

        images = as_image_tensor(images) if images.ndim == 4 and images.shape[-1] == 3 else torch.from_numpy(images)
    if _is_source(images) and len(images.shape) == 4 and images.shape[1] == 3:
        return images
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError("images must be (N, 3, H, W) tensors, (N, H, W, 3) arrays or image sources, got "
                         f"{getattr(images, 'shape', type(images))}")
    return images


def train_embedding_model(loss_name: str, images, labels, *, config: EmbeddingConfig, seed: int, device="cpu",
                          batch_transform: Callable[[torch.Tensor, np.ndarray], torch.Tensor] | None = None,
                          progress: Callable[[str], None] | None = None,
                          features: torch.Tensor | None = None) -> tuple[EmbeddingNetwork, EmbeddingHistory]:
    """Train an :class:`EmbeddingNetwork` with the metric-learning loss ``loss_name`` (a key of :data:`LOSSES`).

    ``images``: uint8 ``(N, 3, H, W)`` tensor (or ``(N, H, W, 3)`` array); ``labels``: ``(N,)`` class indices
    (``0 .. C-1``; classification losses get ``C = max + 1`` classes). Every epoch draws ``N // batch_size``
    m-per-class batches; each batch passes through ``batch_transform(images (B, 3, H, W), indices (B,))`` if
    given (it must return uint8 or 0-255 float images of the same shape), then the network; the loss (with its
    miner, where the loss has one) is minimised with Adam, and losses with parameters (proxies, class
    weights) get their own Adam optimiser at ``config.loss_learning_rate``. ``features`` (``(N, F)``, from
    :func:`backbone_features`) can be passed when the backbone is frozen and there is no batch transform,
    to share one feature pass between runs. ``features`` may also be ``(K, N, F)``: K precomputed versions
    of every image's features (e.g. the frozen backbone's features of K BGAugment draws per image, Kobs
    2023, Sec. 11.1.2, computed once and shared by every loss and seed); epoch ``e`` then reads version
    ``e mod K``, so with ``K = epochs`` every image sees a fresh version each epoch, as a batch transform
    with the same draws would give. ``loss_name="none"`` returns the untrained network.

    Returns the network (in evaluation mode, on the CPU) and its :class:`EmbeddingHistory`.
    """
    if loss_name not in LOSSES:
        raise ValueError(f"unknown loss {loss_name!r}; choose one of {sorted(LOSSES)}")
    images = _as_images(images)
    labels = torch.as_tensor(np.array(labels, copy=True), dtype=torch.int64)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    device = _device(device)
    started = time.time()
    network = build_embedding_network(config, seed=seed)
    history = EmbeddingHistory(loss_name, seed)
    if loss_name == "none" or config.epochs == 0:
        history.seconds = time.time() - started
        return network.eval(), history

    use_cached = not config.train_backbone and batch_transform is None
    if use_cached and features is None:
        features = backbone_features(network, images, device=device)
    if use_cached and features.ndim == 2:
        features = features[None]       # one version of every image's features
    if use_cached and (features.ndim != 3 or tuple(features.shape[1:]) != (len(images), network.backbone.feature_dim)):
        raise ValueError(f"features must have shape ({len(images)}, {network.backbone.feature_dim}) (one row of "
                         f"backbone features per image, from backbone_features) or (K, {len(images)}, "
                         f"{network.backbone.feature_dim}) (K versions), got {tuple(features.shape)}")
    torch.manual_seed(seed)
    loss_module, miner = build_loss(loss_name, int(labels.max()) + 1, config.embedding_dim)
    network.to(device)
    loss_module.to(device)
    groups = [{"params": network.head.parameters(), "lr": config.head_learning_rate}]
    if config.train_backbone:
        groups.append({"params": network.backbone.parameters(), "lr": config.backbone_learning_rate})
    optimiser = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    loss_parameters = list(loss_module.parameters())
    loss_optimiser = torch.optim.Adam(loss_parameters, lr=config.loss_learning_rate) if loss_parameters else None
    sampler = MPerClassBatchSampler(labels.numpy(), config.batch_size, config.m_per_class, seed)
    network.train()
    for epoch in range(config.epochs):
        total, count = 0.0, 0
        for indices in sampler:
            batch_labels = labels[indices].to(device)
            if use_cached:
                embeddings = network.head(features[epoch % len(features)][indices].to(device))
            else:
                batch = images[indices].contiguous()
                if batch_transform is not None:
                    batch = batch_transform(batch, indices)
                    if not isinstance(batch, torch.Tensor) or batch.shape != (len(indices),) + images.shape[1:]:
                        raise ValueError("batch_transform must return a tensor of the batch's shape "
                                         f"{(len(indices),) + tuple(images.shape[1:])}")
                embeddings = network(batch.contiguous().to(device))
            if miner is not None:
                loss = loss_module(embeddings, batch_labels, miner(embeddings, batch_labels))
            else:
                loss = loss_module(embeddings, batch_labels)
            optimiser.zero_grad()
            if loss_optimiser is not None:
                loss_optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if loss_optimiser is not None:
                loss_optimiser.step()
            total += float(loss.detach())
            count += 1
        history.epoch_losses.append(total / max(count, 1))
        if progress is not None:
            progress(f"{loss_name} seed {seed}: epoch {epoch + 1}/{config.epochs}, loss {history.epoch_losses[-1]:.4f}")
    history.seconds = time.time() - started
    return network.cpu().eval(), history


# --- embedding and distances ---------------------------------------------------------------------------


@torch.no_grad()
def embed(network: EmbeddingNetwork, images=None, *, features: torch.Tensor | None = None, batch_size: int = 256,
          device="cpu", normalize: bool = True) -> np.ndarray:
    """Embeddings ``(N, D)`` (float32 NumPy) of uint8 ``images`` ``(N, 3, H, W)``, or of backbone ``features``
    ``(N, F)`` from :func:`backbone_features`; L2-normalised unless ``normalize=False`` (every loss of
    :data:`LOSSES` compares normalised embeddings, so their distances rank neighbours alike)."""
    if (images is None) == (features is None):
        raise ValueError("pass exactly one of images and features")
    device = _device(device)
    network.eval().to(device)
    if features is None:
        images = _as_images(images)
        out = torch.cat([network(images[start:start + batch_size].contiguous().to(device)).cpu()
                         for start in range(0, len(images), batch_size)])
    else:
        out = torch.cat([network.head(features[start:start + batch_size].to(device)).cpu()
                         for start in range(0, len(features), batch_size)])
    if normalize:
        out = nn.functional.normalize(out, dim=1)
    return out.numpy().astype(np.float32)


def pairwise_distance(embeddings, distance: str = "euclidean", rows=None) -> np.ndarray:
    """Distances ``(R, N)`` (float64) from the rows ``rows`` (default: all, ``R = N``) of ``embeddings``
    ``(N, D)`` to all of them; smaller is closer.

    ``euclidean`` ``||a - b||``; ``squared_euclidean``; ``cosine`` ``1 - cos(a, b)``; ``dot`` ``-a . b``;
    ``snr`` the signal-to-noise distance ``var(b - a) / var(a)`` of the anchor (row) ``a`` (Yuan et al. 2019).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {x.shape}")
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {DISTANCES}")
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    q = x[rows]
    if distance == "dot":
        return -(q @ x.T)
    if distance == "cosine":
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return 1.0 - unit[rows] @ unit.T
    squared_norms = (x * x).sum(axis=1)
    squared = np.maximum(squared_norms[rows, None] + squared_norms[None, :] - 2 * q @ x.T, 0.0)
    squared[np.arange(len(rows)), rows] = 0.0
    if distance == "snr":
        dim, means = x.shape[1], x.mean(axis=1)
        noise = np.maximum(squared / dim - (means[None, :] - means[rows, None]) ** 2, 0.0)
        signal = np.maximum(squared_norms[rows] / dim - means[rows] ** 2, 1e-12)
        return noise / signal[:, None]
    return squared if distance == "squared_euclidean" else np.sqrt(squared)

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
  :class:`EmbeddingHistory` (training loss and validation MAP@R per epoch). The top
  ``EmbeddingConfig.trainable_blocks`` MBConv blocks of the trunk train with the linear embedding layer on
  globally pooled features, batch-norm statistics frozen; the lower blocks' feature maps are computed once
  per image (or per augmented version of it) by :func:`backbone_features` (memory-mapped from disk at paper
  size) and only the trained part sees batches, which gives the same gradients as running the lower blocks
  on every batch. ``batch_transform(images, indices) -> images`` (BGAugment's hook) instead runs the lower
  blocks on each transformed batch. Early stopping on the MAP@R of held-out training classes keeps the
  best epoch;
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
           "check_family_comparison", "FAMILY_BALANCED_ORDER", "FEATURE_BATCH",
           "embed", "pairwise_distance", "train_embedding_model", "validation_split", "IN_MEMORY_FEATURE_BYTES"]

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


#: every key of :data:`LOSSES`, ordered so that its first five hold two ranking losses, two classification losses
#: and None: a loop over losses capped to its first five (a paper dry run, ``DRY_RUN_CAPS["losses"]``) still
#: compares the families
FAMILY_BALANCED_ORDER: tuple[str, ...] = ("contrastive", "normalized_softmax", "triplet", "arcface", "none") + tuple(
    name for name in LOSSES if name not in ("contrastive", "normalized_softmax", "triplet", "arcface", "none"))


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


def check_input_size(image_size: int, embedding, purpose: str) -> None:
    """Raise a ValueError unless the images a chapter draws (``image_size`` px) are the size its network reads
    (``embedding.image_size``, an :class:`EmbeddingConfig`); ``purpose`` says why they must agree."""
    if embedding.image_size != image_size:
        raise ValueError(f"embedding.image_size ({embedding.image_size}) must equal image_size ({image_size}): "
                         f"{purpose}")


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
    ``trainable_blocks``: how many of the kept MBConv blocks at the top of EfficientNet-Lite0 train with the
    head (with the 1280-channel head convolution when ``backbone_blocks`` is ``None``), on cached feature
    maps of the frozen blocks below them; 0 keeps the whole trunk frozen. With ``trainable_blocks > 0`` the
    features are globally average pooled (``pool_grid`` 1), as the thesis' BN-Inception feeds its linear
    embedding layer;
    ``epochs`` (the most epochs), ``batch_size`` and ``m_per_class`` (batches of ``batch_size / m`` classes
    x ``m`` images, 32 and 4 in Musgrave et al.); learning rates of the trained blocks (``backbone``), the
    head and the loss's own parameters (proxies, class weights), all with Adam; ``weight_decay`` on the
    network. Early stopping: ``validation_fraction`` of the training classes are held out (the same classes
    for every loss and seed) and their MAP@R is measured after every epoch; training stops after
    ``patience`` epochs without a better one and keeps the best epoch's state (``validation_fraction`` 0:
    no validation, all ``epochs`` run).
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
    trainable_blocks: int = 0
    validation_fraction: float = 0.0
    patience: int = 3

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
        kept = 16 if self.backbone_blocks is None else self.backbone_blocks
        if self.trainable_blocks and (self.backbone != "efficientnet_lite0" or self.train_backbone
                                      or self.pool_grid != 1 or not 0 < self.trainable_blocks <= kept):
            raise ValueError(f"trainable_blocks ({self.trainable_blocks}) needs backbone='efficientnet_lite0', "
                             f"train_backbone=False, pool_grid=1 and at most the {kept} kept blocks")
        if self.trainable_blocks < 0 or not 0.0 <= self.validation_fraction < 1.0 or self.patience < 1:
            raise ValueError("trainable_blocks must be >= 0, validation_fraction in [0, 1) and patience >= 1")


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
        self.frozen_shape = (self.feature_dim,)
        self.name = "small CNN (random initialisation)"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features(images.float() / 127.5 - 1.0)
        return nn.functional.adaptive_avg_pool2d(maps, self.pool_grid).flatten(1)

    lower = forward

    def upper(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def trainable_parameters(self):
        return []


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite0 with its ImageNet weights, cut after ``blocks`` of its 16 MBConv blocks (``None``:
    all blocks and the 1280-channel head convolution), average-pooled to ``pool_grid`` squared cells;
    uint8 or 0-255 float ``(B, 3, H, W)`` -> ``(B, C g^2)``. Inputs are standardised with the ImageNet
    statistics.

    The trunk is split in two: :meth:`lower` (stem and the first ``blocks - trainable_blocks`` blocks,
    ``(B, 3, H, W) -> (B, C', h, w)``, the part that stays frozen and whose maps can be cached) and
    :meth:`upper` (the top ``trainable_blocks`` blocks, the head convolution, pooling: ``(B, C', h, w) ->
    (B, F)``). With ``trainable_blocks=0`` :meth:`lower` is the whole trunk and :meth:`upper` the identity."""

    def __init__(self, image_size: int, blocks: int | None = None, pool_grid: int = 1, trainable_blocks: int = 0):
        super().__init__()
        from domainknowledge.models.backbones import IMAGENET_MEAN, IMAGENET_STD, load_efficientnet_lite

        network = load_efficientnet_lite(0, image_size=image_size).eval()     # batch norms frozen
        self.stem = nn.Sequential(network._conv_stem, network._bn0, network._swish)
        kept = len(network._blocks) if blocks is None else blocks
        if not 0 <= trainable_blocks <= kept:
            raise ValueError(f"trainable_blocks must lie in 0..{kept}, got {trainable_blocks}")
        self.blocks = nn.ModuleList(network._blocks[:kept])
        self.frozen_blocks = kept - trainable_blocks
        self.trainable_blocks = trainable_blocks
        self.drop_connect_rate = network._global_params.drop_connect_rate
        self.total_blocks = len(network._blocks)
        self.head = (nn.Sequential(network._conv_head, network._bn1, network._swish) if blocks is None
                     else nn.Identity())
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1) * 255.0)
        self.pool_grid = pool_grid
        with torch.no_grad():
            maps = self._run_blocks(self._stem(torch.zeros(1, 3, image_size, image_size)), 0, kept)
            channels = self.head(maps).shape[1]
            self.frozen_shape = (tuple(self._run_blocks(self._stem(torch.zeros(1, 3, image_size, image_size)), 0,
                                                        self.frozen_blocks).shape[1:])
                                 if trainable_blocks else (channels * pool_grid ** 2,))
        self.feature_dim = channels * pool_grid ** 2
        cut = 'all 16 blocks' if blocks is None else f'first {blocks} blocks'
        trained = f", top {trainable_blocks} trained" if trainable_blocks else ""
        self.name = f"EfficientNet-Lite0 (ImageNet), {cut}{trained}, {pool_grid}x{pool_grid} pooling"

    def trainable_parameters(self):
        """The parameters of the top blocks and the head convolution (none with ``trainable_blocks=0``)."""
        if not self.trainable_blocks:
            return []
        return [p for module in (*self.blocks[self.frozen_blocks:], self.head) for p in module.parameters()]

    def _stem(self, images: torch.Tensor) -> torch.Tensor:
        return self.stem((images.float() - self.mean) / self.std)

    def _run_blocks(self, x: torch.Tensor, first: int, stop: int) -> torch.Tensor:
        for index in range(first, stop):
            rate = self.drop_connect_rate * index / self.total_blocks if self.drop_connect_rate else None
            x = self.blocks[index](x, drop_connect_rate=rate)
        return x

    def _pool(self, maps: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(maps, self.pool_grid).flatten(1)

    def lower(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen part: images ``(B, 3, H, W)`` -> maps ``(B, *frozen_shape)`` (pooled features when no
        block trains)."""
        maps = self._run_blocks(self._stem(images), 0, self.frozen_blocks)
        return maps if self.trainable_blocks else self._pool(self.head(maps))

    def upper(self, maps: torch.Tensor) -> torch.Tensor:
        """The trained part: maps ``(B, *frozen_shape)`` -> pooled features ``(B, F)``."""
        if not self.trainable_blocks:
            return maps
        return self._pool(self.head(self._run_blocks(maps, self.frozen_blocks, len(self.blocks))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.upper(self.lower(images))


class EmbeddingNetwork(nn.Module):
    """``backbone`` (uint8 or 0-255 float ``(B, 3, H, W)`` -> ``(B, F)``, inputs resized to ``image_size``)
    followed by the embedding ``head`` (``(B, F)`` -> ``(B, D)``). ``forward`` returns unnormalised
    embeddings; the losses (and :func:`embed`) L2-normalise them.

    The network splits into a frozen part, :meth:`frozen_features` (images -> the backbone's lower maps
    ``(B, *frozen_shape)``, or its pooled features when no block trains), and a trained part,
    :meth:`from_frozen` (those -> embeddings), so that the frozen part's output can be cached. The backbone
    always runs in evaluation mode: its batch-norm statistics stay the ImageNet ones while its top blocks
    train (as Musgrave et al. and the thesis freeze them), and stochastic depth is off."""

    def __init__(self, backbone: nn.Module, head: nn.Module, image_size: int, train_backbone: bool):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.image_size, self.train_backbone = image_size, train_backbone

    @property
    def frozen_shape(self) -> tuple[int, ...]:
        """The shape of one image's :meth:`frozen_features`."""
        return tuple(self.backbone.frozen_shape)

    def _resized(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        images = images.float()
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = nn.functional.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                               align_corners=False, antialias=True)
        return images.contiguous()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``(B, F)`` of images ``(B, 3, H, W)``."""
        return self.backbone(self._resized(images))

    def frozen_features(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen part's output ``(B, *frozen_shape)`` of images ``(B, 3, H, W)``."""
        return self.backbone.lower(self._resized(images))

    def from_frozen(self, frozen: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, D)`` (unnormalised) from the frozen part's output ``(B, *frozen_shape)``."""
        return self.head(self.backbone.upper(frozen))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()          # batch-norm statistics of the trunk stay frozen
        return self


def build_embedding_network(config: EmbeddingConfig, *, seed: int) -> EmbeddingNetwork:
    """The backbone of ``config`` (its top ``trainable_blocks`` blocks trainable) and a head initialised from
    ``seed``."""
    if config.backbone == "efficientnet_lite0":
        backbone = EfficientNetLiteFeatures(config.image_size, config.backbone_blocks, config.pool_grid,
                                            config.trainable_blocks)
    else:
        torch.manual_seed(seed)
        backbone = SmallConvBackbone(config.pool_grid)
    torch.manual_seed(seed)
    # the head standardises its input features (with batch statistics while training; with the training set's
    # statistics, set by the trainer for every model, the untrained one included, in evaluation mode), then
    # embeds them linearly (or through one hidden layer)
    if config.head_hidden:
        head = nn.Sequential(nn.BatchNorm1d(backbone.feature_dim, affine=False),
                             nn.Linear(backbone.feature_dim, config.head_hidden), nn.ReLU(),
                             nn.Linear(config.head_hidden, config.embedding_dim))
    else:
        head = nn.Sequential(nn.BatchNorm1d(backbone.feature_dim, affine=False),
                             nn.Linear(backbone.feature_dim, config.embedding_dim))
    for parameter in backbone.parameters():
        parameter.requires_grad_(config.train_backbone)
    for parameter in backbone.trainable_parameters():
        parameter.requires_grad_(True)
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
    """One run's curves: per-epoch mean training loss and validation MAP@R (empty without a validation
    split), the epoch whose state was kept (``best_epoch``, 0-based; the last epoch without validation),
    whether training stopped early, the loss name, seed and wall time (s)."""

    loss_name: str
    seed: int
    epoch_losses: list[float] = field(default_factory=list)
    validation_map_at_r: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0


def _device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    from domainknowledge.experiment import resolve_device

    return resolve_device(device)


#: frozen-part outputs larger than this (bytes, float32) are written to a float16 memory-mapped file in the
#: data cache (``$DK_DATA_DIR/feature_maps``) instead of being held in memory: the paper's lower-block maps
#: (e.g. 112 x 14 x 14 per image at 224 px) of a whole data set are gigabytes
IN_MEMORY_FEATURE_BYTES = 512 * 2 ** 20


def _feature_file(shape: tuple[int, ...]) -> np.ndarray:
    """A float16 ``.npy`` memory map of ``shape`` in the data cache, unlinked at once: the space is freed
    when the last reference goes, and no file is left behind by a crash."""
    import os
    import tempfile

    from domainknowledge.data.bundled import cache_dir

    folder = cache_dir() / "feature_maps"
    folder.mkdir(parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(dir=folder, suffix=".npy")
    os.close(handle)
    try:
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
    finally:
        os.unlink(path)


def _take(array, indices) -> torch.Tensor:
    """Rows ``indices`` of a tensor or a (memory-mapped) array, as a float32 tensor."""
    if isinstance(array, torch.Tensor):
        return array[torch.as_tensor(np.asarray(indices), dtype=torch.int64)].float()
    return torch.from_numpy(np.asarray(array[np.asarray(indices)], dtype=np.float32))


#: images per pass of :func:`backbone_features` by device type: small batches are fastest on a CPU, where they
#: stay in its caches (EfficientNet-Lite0's lower blocks at 96 px, 2 threads: 1.6 s per 512 images in batches
#: of 16, 4.4 s in batches of 256, the same numbers); large ones on a GPU
FEATURE_BATCH = {"cpu": 16, "cuda": 256}


@torch.no_grad()
def backbone_features(network: EmbeddingNetwork, images, *, batch_size: int | None = None, device="cpu",
                      versions: int = 1, transform: Callable[[int, torch.Tensor, np.ndarray], torch.Tensor] | None = None,
                      max_in_memory_bytes: int = IN_MEMORY_FEATURE_BYTES):
    """The output of the network's frozen part (:meth:`EmbeddingNetwork.frozen_features`) for every image:
    ``(N, *frozen_shape)`` (the pooled features ``(N, F)`` of a frozen backbone, or the lower blocks' maps
    ``(N, C, h, w)`` when the top blocks train), computed on ``device`` in batches of ``batch_size`` (default:
    :data:`FEATURE_BATCH` of the device's type).

    ``images``: uint8 ``(N, 3, H, W)`` or an image source (:class:`ImageSource`). With ``versions = K > 1``
    the result is ``(K, N, *frozen_shape)``, version ``k`` of a batch being ``transform(k, batch, indices)``
    (e.g. K BGAugment draws per image). Returns a CPU float32 tensor, or, above ``max_in_memory_bytes``, a
    float16 memory-mapped array in the data cache, filled a batch at a time (never the whole set in memory).
    """
    device = _device(device)
    batch_size = batch_size or FEATURE_BATCH.get(device.type, FEATURE_BATCH["cuda"])
    images = _as_images(images)
    if versions < 1 or (versions > 1 and transform is None):
        raise ValueError("versions must be >= 1, and versions > 1 needs a transform(version, batch, indices)")
    shape = (versions, len(images), *network.frozen_shape)
    in_memory = 4 * int(np.prod(shape)) <= max_in_memory_bytes
    out = torch.empty(shape) if in_memory else _feature_file(shape)
    was_training = network.training
    network.eval().to(device)
    for start in range(0, len(images), batch_size):
        indices = np.arange(start, min(start + batch_size, len(images)))
        batch = images[start:start + batch_size]
        for version in range(versions):
            source = batch if transform is None else transform(version, batch, indices)
            maps = network.frozen_features(source.to(device)).cpu()
            out[version, start:start + len(indices)] = maps if in_memory else maps.numpy().astype(np.float16)
    network.train(was_training)
    if not in_memory:
        out.flush()
    return out[0] if versions == 1 else out


class ImageSource:
    """Images produced a batch at a time: ``source[indices]`` (an index array or a slice) returns a uint8
    tensor ``(B, 3, S, S)``; ``len`` and ``shape`` (``(N, 3, S, S)``) as for the tensor of all of them.
    Training (:func:`train_embedding_model`), :func:`embed` and :func:`backbone_features` accept a source in
    place of the tensor, so a data set on disk (``ImageFiles`` of
    :mod:`domainknowledge.data.real.image_files`), a memory-mapped array (:class:`ArrayImages`) or
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


#: the held-out validation classes are drawn with this seed, so every loss and seed of a chapter is validated on
#: the same classes
VALIDATION_SEED = 20_200


def validation_split(labels, fraction: float, *, min_classes: int = 2,
                     keep_classes: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training and validation images ``(n_train,), (n_val,)``: a ``fraction`` of the classes
    in ``labels`` (at least ``min_classes``) is held out for validation, drawn with :data:`VALIDATION_SEED`,
    leaving at least ``keep_classes`` for training (a batch's classes); none when ``fraction`` is 0 or too
    few classes remain. Classes with one image stay in training (MAP@R needs two)."""
    labels = np.asarray(labels)
    everything = np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= 2]
    count = min(len(eligible), len(classes) - keep_classes, max(min_classes, int(round(fraction * len(classes)))))
    if fraction <= 0 or count < min_classes:
        return everything, everything[:0]
    held_out = np.random.default_rng(VALIDATION_SEED).choice(eligible, size=count, replace=False)
    is_validation = np.isin(labels, held_out)
    return everything[~is_validation], everything[is_validation]


class _Inputs:
    """What the trained part of a network sees: cached frozen-part outputs (``(K, N, *frozen_shape)``;
    epoch ``e`` reads version ``e mod K``) or images run through the frozen part per batch (after an optional
    ``batch_transform``)."""

    def __init__(self, network: EmbeddingNetwork, images, features, validation_features, batch_transform, device):
        self.network, self.images, self.transform, self.device = network, images, batch_transform, device
        self.cached = features is not None
        shape = network.frozen_shape
        if self.cached and (tuple(features.shape[-len(shape):]) != shape or features.ndim not in (len(shape) + 1,
                                                                                                   len(shape) + 2)
                            or features.shape[-len(shape) - 1] != len(images)):
            raise ValueError(f"features must have shape ({len(images)}, {', '.join(map(str, shape))}) (the frozen "
                             f"part's output per image, from backbone_features) or (K, {len(images)}, ...) "
                             f"(K versions), got {tuple(features.shape)}")
        self.versions = (features[None] if self.cached and features.ndim == len(shape) + 1 else features)
        self.validation = validation_features
        if validation_features is not None and tuple(validation_features.shape) != (len(images), *shape):
            raise ValueError(f"validation_features must have shape ({len(images)}, {', '.join(map(str, shape))}), "
                             f"got {tuple(validation_features.shape)}")

    def frozen(self, indices: np.ndarray, epoch: int = 0, *, validation: bool = False) -> torch.Tensor:
        """The frozen part's output for ``indices`` ``(B,)``, on the device."""
        if self.cached:
            source = self.validation if validation and self.validation is not None else \
                self.versions[epoch % len(self.versions)]
            return _take(source, indices).to(self.device)
        batch = self.images[indices].contiguous()
        if self.transform is not None and not validation:
            batch = self.transform(batch, indices)
            if not isinstance(batch, torch.Tensor) or batch.shape != (len(indices),) + tuple(self.images.shape[1:]):
                raise ValueError("batch_transform must return a tensor of the batch's shape "
                                 f"{(len(indices),) + tuple(self.images.shape[1:])}")
        batch = batch.contiguous().to(self.device)
        if self.network.train_backbone:           # end to end: the whole trunk is in the graph
            return batch
        with torch.no_grad():
            return self.network.frozen_features(batch)

    def pooled(self, indices: np.ndarray) -> torch.Tensor:
        """Pooled backbone features ``(B, F)`` of ``indices`` (the head's input)."""
        frozen = self.frozen(indices)
        return self.network.features(frozen) if self.network.train_backbone and not self.cached else \
            self.network.backbone.upper(frozen)

    def embed(self, indices: np.ndarray, epoch: int = 0, *, validation: bool = False) -> torch.Tensor:
        """Unnormalised embeddings ``(B, D)`` of ``indices``, differentiable in the trained part."""
        frozen = self.frozen(indices, epoch, validation=validation)
        return self.network(frozen) if self.network.train_backbone and not self.cached else \
            self.network.from_frozen(frozen)


@torch.no_grad()
def _validation_map_at_r(inputs: _Inputs, rows: np.ndarray, labels: np.ndarray, distance: str, batch_size: int,
                         device) -> float:
    from domainknowledge.metrics import knn_retrieval_scores

    inputs.network.eval()
    embedded = torch.cat([inputs.embed(rows[start:start + batch_size], validation=True).cpu()
                          for start in range(0, len(rows), batch_size)])
    inputs.network.train()
    embedded = nn.functional.normalize(embedded, dim=1).numpy()
    return knn_retrieval_scores(embedded, labels[rows], distance, device=device)["map_at_r"]


@torch.no_grad()
def _standardise_head_inputs(inputs: _Inputs, rows: np.ndarray, batch_size: int) -> None:
    """Set the head's standardisation (its first, affine-free batch norm) to the mean and variance of the
    pooled features of the training images ``rows``, for every model alike (the untrained one included)."""
    network = inputs.network
    norm = network.head[0]
    if not isinstance(norm, nn.BatchNorm1d):
        return
    network.eval()
    total, squares, count = 0.0, 0.0, 0
    for start in range(0, len(rows), batch_size):
        pooled = inputs.pooled(rows[start:start + batch_size]).double()
        total, squares, count = total + pooled.sum(0), squares + (pooled ** 2).sum(0), count + len(pooled)
    mean = total / count
    variance = (squares - count * mean ** 2).clamp_min(0) / max(count - 1, 1)
    norm.running_mean.copy_(mean.float())
    norm.running_var.copy_(variance.float())


def train_embedding_model(loss_name: str, images, labels, *, config: EmbeddingConfig, seed: int, device="cpu",
                          batch_transform: Callable[[torch.Tensor, np.ndarray], torch.Tensor] | None = None,
                          progress: Callable[[str], None] | None = None,
                          features=None, validation_features=None) -> tuple[EmbeddingNetwork, EmbeddingHistory]:
    """Train an :class:`EmbeddingNetwork` with the metric-learning loss ``loss_name`` (a key of :data:`LOSSES`).

    ``images``: uint8 ``(N, 3, H, W)`` tensor (or ``(N, H, W, 3)`` array, or an :class:`ImageSource`);
    ``labels``: ``(N,)`` class indices (``0 .. C-1``; classification losses get ``C = max + 1`` classes).
    What trains: the head, and the top ``config.trainable_blocks`` blocks of the trunk (all of it with
    ``train_backbone``); the trunk's batch norms keep their statistics. The frozen part's output is cached:
    ``features`` (from :func:`backbone_features`, ``(N, *frozen_shape)``, or ``(K, N, *frozen_shape)``: K
    versions of every image, e.g. the lower blocks' maps of K BGAugment draws per image, Kobs 2023,
    Sec. 11.1.2; epoch ``e`` reads version ``e mod K``) or computed here once. With a ``batch_transform
    (images (B, 3, H, W), indices (B,)) -> images`` (uint8 or 0-255 float, same shape) nothing is cached:
    every batch is transformed and run through the frozen part on ``device``.

    Every epoch draws ``n // batch_size`` m-per-class batches of the training classes; the loss (with its
    miner, where it has one) is minimised with Adam, and losses with parameters (proxies, class weights) get
    their own Adam optimiser at ``config.loss_learning_rate``. With ``config.validation_fraction > 0`` a
    held-out set of classes (:func:`validation_split`; scored on ``validation_features`` where given, e.g.
    the clean images when the versions are augmented, else version 0) is scored with MAP@R after every
    epoch under the loss's distance; training stops after ``config.patience`` epochs without improvement and
    the best epoch's state is kept. At the end the head's input standardisation is set to the training
    features' statistics (:func:`_standardise_head_inputs`). ``loss_name="none"`` returns the untrained
    network, standardised alike.

    Returns the network (in evaluation mode, on the CPU) and its :class:`EmbeddingHistory`.
    """
    if loss_name not in LOSSES:
        raise ValueError(f"unknown loss {loss_name!r}; choose one of {sorted(LOSSES)}")
    images = _as_images(images)
    labels = np.array(labels, copy=True).astype(np.int64)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    device = _device(device)
    started = time.time()
    network = build_embedding_network(config, seed=seed)
    history = EmbeddingHistory(loss_name, seed)
    if batch_transform is None and not config.train_backbone and features is None:
        features = backbone_features(network, images, device=device)
    if batch_transform is not None or config.train_backbone:
        features = None
    network.to(device)
    inputs = _Inputs(network, images, features, validation_features, batch_transform, device)
    train_rows, validation_rows = validation_split(labels, config.validation_fraction,
                                                   keep_classes=config.batch_size // config.m_per_class)
    if loss_name != "none" and config.epochs > 0:
        _fit(network, inputs, loss_name, labels, train_rows, validation_rows, config, seed, device, history, progress)
    _standardise_head_inputs(inputs, train_rows, 256)
    history.seconds = time.time() - started
    return network.cpu().eval(), history


def _fit(network, inputs, loss_name, labels, train_rows, validation_rows, config, seed, device, history, progress):
    """The optimisation loop of :func:`train_embedding_model` (early stopping on validation MAP@R)."""
    import copy

    torch.manual_seed(seed)
    loss_module, miner = build_loss(loss_name, int(labels.max()) + 1, config.embedding_dim)
    loss_module.to(device)
    groups = [{"params": network.head.parameters(), "lr": config.head_learning_rate}]
    trunk = list(network.backbone.parameters()) if config.train_backbone else network.backbone.trainable_parameters()
    if trunk:
        groups.append({"params": trunk, "lr": config.backbone_learning_rate})
    optimiser = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    loss_parameters = list(loss_module.parameters())
    loss_optimiser = torch.optim.Adam(loss_parameters, lr=config.loss_learning_rate) if loss_parameters else None
    sampler = MPerClassBatchSampler(labels[train_rows], config.batch_size, config.m_per_class, seed)
    all_labels = torch.as_tensor(labels)
    best_state, best_score = None, -np.inf
    network.train()
    for epoch in range(config.epochs):
        total, count = 0.0, 0
        for positions in sampler:
            indices = train_rows[positions]
            batch_labels = all_labels[indices].to(device)
            embeddings = inputs.embed(indices, epoch)
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
        message = f"{loss_name} seed {seed}: epoch {epoch + 1}/{config.epochs}, loss {history.epoch_losses[-1]:.4f}"
        history.best_epoch = epoch
        if len(validation_rows):
            score = _validation_map_at_r(inputs, validation_rows, labels, LOSSES[loss_name].distance, 256, device)
            history.validation_map_at_r.append(score)
            message += f", validation MAP@R {score:.4f}"
            if score > best_score:
                best_score = score
                best_state = copy.deepcopy(network.state_dict())
            history.best_epoch = int(np.argmax(history.validation_map_at_r))
        if progress is not None:
            progress(message)
        if len(validation_rows) and epoch - history.best_epoch >= config.patience:
            history.stopped_early = epoch + 1 < config.epochs
            break
    if best_state is not None:
        network.load_state_dict(best_state)


# --- embedding and distances ---------------------------------------------------------------------------


@torch.no_grad()
def embed(network: EmbeddingNetwork, images=None, *, features: torch.Tensor | None = None, batch_size: int = 256,
          device="cpu", normalize: bool = True) -> np.ndarray:
    """Embeddings ``(N, D)`` (float32 NumPy) of uint8 ``images`` ``(N, 3, H, W)``, or of the frozen part's
    output ``features`` ``(N, *frozen_shape)`` from :func:`backbone_features`; L2-normalised unless ``normalize=False`` (every loss of
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
        out = torch.cat([network.from_frozen(_take(features, np.arange(start, min(start + batch_size, len(features))))
                                             .to(device)).cpu()
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

"""Predicting human similarity judgements from pretrained features (Margaritescu 2024, Sec. 3.2-3.4).

**Evaluation framework (Sec. 3.4.2, Fig. 3.3).** A feature extractor ``f`` maps the query ``q`` and the two
references ``r1`` (judged more similar by people) and ``r2`` of a triplet to vectors; the model answers with
the reference closer to the query, and triplet accuracy is the share of answers that agree with people:

    acc = 1/T sum_t 1[ sim(f(q_t), f(r1_t)) > sim(f(q_t), f(r2_t)) ],

with ``sim`` the cosine similarity (Eq. 3.10) or the negative L2 (Eq. 3.11) or L1 (Eq. 3.12) distance. A tie
counts one half (the thesis does not say). :func:`extract_features` returns the extractor's *unnormalised*
penultimate features: the registry's encoders normalise their embeddings to unit length, under which L2 and
cosine rank every pair identically, and the thesis compares the metrics on raw features.

**Fine-tuning framework (Sec. 3.4.3, Fig. 3.4).** A block is appended to the extractor, the whole is trained,
and the block is removed before evaluation. Here the pretrained extractor stays frozen (its features are
computed once) and a trainable *top* ``g(x) = x + B relu(A x)`` (``B`` initialised at zero, so ``g`` starts
as the identity) is fine-tuned together with the appended block ``h``; evaluation uses ``g(f(x))``. This is
the cheap version of "unfrozen fine-tuning": only the last layer of the extractor moves. The block ``h`` is
a linear projection to unit-length vectors for the supervised losses, a two-layer projection for SimCLR and
MoCo, and a linear classifier for rotation (4 classes) and jigsaw (36 permutations).

Supervised losses (Sec. 3.2.1), where ``D(x, y) = ||x - y||_2``. The thesis writes ``|x - y|^2`` and calls
it "the Euclidean distance"; we read it as ``D`` (not squared), which makes Eq. 3.8 Hadsell et al.'s loss
and Eq. 3.7 the triplet margin loss of Balntas et al. as cited:

* :func:`triplet_loss` (Eq. 3.7): ``max(D(a, p) - D(a, n) + m, 0)``;
* :func:`contrastive_loss` (Eq. 3.8): ``(1 - T) 1/2 D^2 + T 1/2 max(m - D, 0)^2`` on the pairs (a, p) with
  ``T = 0`` and (a, n) with ``T = 1``;
* :func:`quadruplet_loss` (Eq. 3.9): ``max(D(a,p) - D(a,n1) + m1, 0) + max(D(a,p) - D(p,n2) + m2, 0)`` as
  printed (``variant="thesis"``), and Chen et al.'s original (``variant="original"``), whose second term
  compares the positive pair with a pair of two *other* images, ``max(D(a,p) - D(n1,n2) + m2, 0)``.

Self-supervised pretexts (Sec. 3.2.2) on single images: rotation prediction (RotNet), jigsaw (3 x 3 tiles,
:data:`JIGSAW_PERMUTATIONS`, 36 permutations chosen far apart in Hamming distance), SimCLR (NT-Xent of two
augmented views, :func:`~domainknowledge.principles.pretext.nt_xent_loss`) and MoCo (:func:`moco_loss`, a
momentum copy of ``g`` and ``h`` and a queue of negatives). The transformed images are encoded once.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["JIGSAW_PERMUTATIONS", "METRICS", "PARADIGMS", "AdaptedExtractor", "FineTuneSettings", "ModuleEncoder",
           "PretextFeatures", "SmallConvNet", "augment_views", "contrastive_loss", "evaluate_triplets",
           "extract_features", "fine_tune", "jigsaw_images", "learn_diagonal_metric", "moco_loss", "pairwise_similarity", "quadruplet_loss",
           "rotated_images", "silhouette_by_label", "train_selfsupervised_cnn", "train_supervised_cnn", "triplet_accuracy", "triplet_outcomes",
           "triplet_loss", "accuracy_table", "augmented_images"]

METRICS = ("cosine", "L2", "L1")
PARADIGMS = ("triplet", "contrastive", "quadruplet", "quadruplet-original", "rotation", "jigsaw", "simclr", "moco")
SUPERVISED = ("triplet", "contrastive", "quadruplet", "quadruplet-original")


# ------------------------------------------------------------------------------------- evaluation
def pairwise_similarity(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise similarity of ``a (T, D)`` and ``b (T, D)``: cosine (Eq. 3.10), or minus the L2 (Eq. 3.11) or
    L1 (Eq. 3.12) distance, so that larger is always more similar. Returns ``(T,)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two (T, D) arrays of equal shape, got {a.shape} and {b.shape}")
    if metric == "cosine":
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
    if metric == "L2":
        return -np.linalg.norm(a - b, axis=1)
    if metric == "L1":
        return -np.abs(a - b).sum(axis=1)
    raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")


def triplet_outcomes(features: np.ndarray, query, first, second, metric: str = "cosine") -> np.ndarray:
    """Per triplet, 1 where reference 1 is more similar to the query than reference 2 under ``metric``, 0 where
    it is less, 1/2 on a tie: ``(T,)``; ``features (N, D)``, index arrays ``(T,)`` into it. Paired tests between
    extractors, metrics or fine-tuning paradigms compare these outcomes triplet by triplet."""
    features = np.asarray(features)
    near = pairwise_similarity(features[query], features[first], metric)
    far = pairwise_similarity(features[query], features[second], metric)
    return (near > far) + 0.5 * (near == far)


def triplet_accuracy(features: np.ndarray, query, first, second, metric: str = "cosine") -> float:
    """Share of triplets whose reference 1 is more similar to the query than reference 2 under ``metric``
    (ties count 1/2): the mean of :func:`triplet_outcomes`."""
    return float(np.mean(triplet_outcomes(features, query, first, second, metric)))


def evaluate_triplets(features: np.ndarray, source, metrics=METRICS) -> list[dict]:
    """Triplet accuracy of ``features (N, D)`` of ``source``'s images on each of its evaluation sets, per metric:
    rows ``{source, set, metric, accuracy, triplets, ceiling}``."""
    rows = []
    for name, triplets in source.sets.items():
        for metric in metrics:
            rows.append({"source": source.name, "set": name, "metric": metric, "triplets": len(triplets),
                         "accuracy": triplet_accuracy(features, triplets.query, triplets.first, triplets.second,
                                                      metric), "ceiling": triplets.ceiling})
    return rows


# --------------------------------------------------------------------------------------- features
def _images_key(images: np.ndarray) -> str:
    digest = hashlib.sha256()
    array = np.ascontiguousarray(images)
    digest.update(str((array.shape, array.dtype.str)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:32]


def extract_features(encoder, images: np.ndarray, *, image_size: int | None = None, batch_size: int = 64,
                     cache_dir=None, use_cache: bool = True) -> np.ndarray:
    """The encoder's penultimate features of ``images`` ``uint8 (N, H, W, 3)`` *before* the unit-length
    normalisation of :meth:`Encoder.encode_images`: ``float32 (N, D)``.

    ``image_size`` overrides the encoder's input size (the CNNs are fully convolutional with global pooling,
    so a smaller input only coarsens them; the chapter says where it does this). Results are cached with
    :func:`~domainknowledge.models.encoders.cached_embeddings`, keyed by the encoder, the size and the images.
    """
    from domainknowledge.models.encoders import cached_embeddings
    from domainknowledge.models.encoders.base import as_image_batches

    size = int(image_size or encoder.image_size)

    def compute():
        original = encoder.image_size
        encoder.image_size = size
        try:
            with torch.no_grad():
                parts = [encoder._embed_images(encoder.preprocess(batch.to(encoder.device))).float().cpu()
                         for batch in as_image_batches(images, batch_size)]
        finally:
            encoder.image_size = original
        return torch.cat(parts).numpy().astype(np.float32)

    if not use_cache:
        return compute()
    key = f"raw-penultimate|size={size}|{_images_key(images)}"
    return np.asarray(cached_embeddings(encoder, key, compute, cache_dir=cache_dir), np.float32)


# ------------------------------------------------------------------------------ small networks here
class SmallConvNet(nn.Module):
    """A four-block CNN for 32 px images: ``(B, 3, S, S)`` floats (standardised) -> features ``(B, width[-1])``
    by global average pooling; ``classifier`` (optional) maps the features to ``num_classes`` logits."""

    def __init__(self, widths=(16, 32, 64, 64), num_classes: int | None = None):
        super().__init__()
        layers, previous = [], 3
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            previous = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = widths[-1]
        self.classifier = nn.Linear(widths[-1], num_classes) if num_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        return self.classifier(z) if self.classifier is not None else z


def _standardise(images_uint8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float()
    return ((x / 255.0 - 0.5) / 0.25).contiguous()


def augment_views(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SimCLR-style augmentation of standardised images ``(B, 3, S, S)``: random resized crop (scale 0.35-1,
    aspect 3/4-4/3), horizontal flip, brightness, contrast and saturation jitter (+-40 %), grey with
    probability 0.2. Returns a contiguous ``(B, 3, S, S)``."""
    batch = x.shape[0]
    # drawn on the CPU generator (the same numbers on every device), then moved to the images' device
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(x.device)  # noqa: E731
    scale = 0.35 + 0.65 * rand(batch)
    ratio = torch.exp((rand(batch) - 0.5) * 2 * np.log(4 / 3))
    width, height = torch.sqrt(scale * ratio).clamp(max=1), torch.sqrt(scale / ratio).clamp(max=1)
    cx, cy = (rand(batch) * 2 - 1) * (1 - width), (rand(batch) * 2 - 1) * (1 - height)
    flip = torch.where(rand(batch) < 0.5, -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = width * flip, cx, height, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="reflection")
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = out * (0.6 + 0.8 * rand(batch, 1, 1, 1)) + (rand(batch, 1, 1, 1) - 0.5) * 0.8
    out = (out - mean) * (0.6 + 0.8 * rand(batch, 1, 1, 1)) + mean
    grey = out.mean(dim=1, keepdim=True)
    out = grey + (out - grey) * (0.6 + 0.8 * rand(batch, 1, 1, 1))
    out = torch.where(rand(batch, 1, 1, 1) < 0.2, grey.expand_as(out), out)
    return out.contiguous()


def _train(network: nn.Module, loss_of_batch, examples: int, epochs: int, batch_size: int, learning_rate: float,
           seed: int) -> list[float]:
    from domainknowledge.training import train_epochs

    return train_epochs(network, loss_of_batch, examples=examples, epochs=epochs, batch_size=batch_size,
                        learning_rate=learning_rate, generator=torch.Generator().manual_seed(seed))


def train_supervised_cnn(images: np.ndarray, labels: np.ndarray, *, epochs: int, seed: int = 0,
                         batch_size: int = 64, learning_rate: float = 2e-3,
                         device="cpu") -> tuple[SmallConvNet, list[float]]:
    """The "supervised pre-training" stand-in: :class:`SmallConvNet` trained with cross-entropy (Eq. 3.6) on
    ``images uint8 (N, S, S, 3)`` and class ``labels (N,)`` on ``device`` (images and network moved there).
    Returns the network (eval mode, on ``device``) and epoch losses."""
    torch.manual_seed(seed)
    labels = torch.as_tensor(labels, dtype=torch.int64).to(device)
    network = SmallConvNet(num_classes=int(labels.max()) + 1).to(device)
    x = _standardise(images).to(device)
    generator = torch.Generator().manual_seed(seed + 1)

    def loss(batch, step):
        views = augment_views(x[batch], generator)
        return F.cross_entropy(network(views), labels[batch])

    return network, _train(network, loss, len(x), epochs, batch_size, learning_rate, seed)


def train_selfsupervised_cnn(images: np.ndarray, *, epochs: int, seed: int = 0, batch_size: int = 64,
                             learning_rate: float = 2e-3, temperature: float = 0.5,
                             device="cpu") -> tuple[SmallConvNet, list[float]]:
    """The "self-supervised pre-training" stand-in: :class:`SmallConvNet` trained with SimCLR (NT-Xent of two
    augmented views through a two-layer projection, removed afterwards) on unlabelled ``images``, on
    ``device``."""
    from domainknowledge.principles.pretext import nt_xent_loss

    torch.manual_seed(seed)
    network = SmallConvNet()
    projection = nn.Sequential(nn.Linear(network.feature_dim, 128), nn.ReLU(), nn.Linear(128, 64))
    model = nn.ModuleDict({"network": network, "projection": projection}).to(device)
    x = _standardise(images).to(device)
    generator = torch.Generator().manual_seed(seed + 1)

    def loss(batch, step):
        first = projection(network(augment_views(x[batch], generator)))
        second = projection(network(augment_views(x[batch], generator)))
        return nt_xent_loss(first, second, temperature)

    losses = _train(model, loss, len(x), epochs, batch_size, learning_rate, seed)
    network.eval()
    return network, losses


class ModuleEncoder:
    """A network trained here behind the registry's encoder interface (enough for :func:`extract_features`):
    ``network.features`` of standardised images resized to ``image_size``."""

    has_text = False

    def __init__(self, network: SmallConvNet, name: str, provenance: str, image_size: int = 32):
        self.network = network.eval()
        self.name, self.provenance, self.image_size = name, provenance, image_size
        self.device = next(network.parameters()).device
        self.embedding_dim = network.feature_dim
        digest = hashlib.sha256()
        for key, value in network.state_dict().items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().numpy().tobytes())
        self.cache_key = f"{name}|{digest.hexdigest()[:24]}"

    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        from domainknowledge.models.encoders.base import resize_center_crop

        return ((resize_center_crop(batch, self.image_size) / 255.0 - 0.5) / 0.25).contiguous()

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network.features(batch)


# ------------------------------------------------------------------------------- pretext inputs
def _jigsaw_permutations(count: int = 36, seed: int = 0) -> np.ndarray:
    """``count`` permutations of 9 tiles, greedily chosen to be far apart in Hamming distance (as Noroozi and
    Favaro choose theirs), the identity excluded: ``(count, 9)``."""
    rng = np.random.default_rng(seed)
    pool = np.array([p for p in itertools.islice(
        (rng.permutation(9) for _ in itertools.count()), 3000)])
    pool = pool[(pool != np.arange(9)).any(axis=1)]
    chosen = [pool[0]]
    distance = (pool != pool[0]).sum(axis=1)
    for _ in range(count - 1):
        best = int(np.argmax(distance))
        chosen.append(pool[best])
        distance = np.minimum(distance, (pool != pool[best]).sum(axis=1))
    return np.stack(chosen)


JIGSAW_PERMUTATIONS = _jigsaw_permutations()


def jigsaw_images(images: np.ndarray, permutation_ids: np.ndarray) -> np.ndarray:
    """Cut each image ``uint8 (N, S, S, 3)`` into 3 x 3 tiles (the side cropped to a multiple of 3), reorder
    the tiles by ``JIGSAW_PERMUTATIONS[permutation_ids[n]]`` and put them back together: ``(N, S', S', 3)``."""
    images = np.asarray(images)
    side = (images.shape[1] // 3) * 3
    tile = side // 3
    out = np.empty((len(images), side, side, 3), images.dtype)
    for n, permutation in enumerate(JIGSAW_PERMUTATIONS[np.asarray(permutation_ids)]):
        for position, source in enumerate(permutation):
            r, c = divmod(position, 3)
            sr, sc = divmod(int(source), 3)
            out[n, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = images[n, sr * tile:(sr + 1) * tile,
                                                                             sc * tile:(sc + 1) * tile]
    return out


def rotated_images(images: np.ndarray) -> np.ndarray:
    """``uint8 (N, S, S, 3)`` at 0, 90, 180 and 270 degrees: ``(N, 4, S, S, 3)``."""
    return np.stack([np.rot90(images, k, axes=(1, 2)) for k in range(4)], axis=1)


def augmented_images(images: np.ndarray, views: int, seed: int) -> np.ndarray:
    """``views`` augmented copies (:func:`augment_views`) of each ``uint8`` image: ``(N, views, S, S, 3)``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    out = []
    for _ in range(views):
        standardised = (x - 0.5) / 0.25
        view = augment_views(standardised, generator) * 0.25 + 0.5
        out.append((view.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.stack(out, axis=1)


@dataclass
class PretextFeatures:
    """Frozen features of the transformed singleton images: ``rotations (N, 4, D)``, ``jigsaw (N, P, D)`` with
    ``jigsaw_ids (N, P)`` (rows of :data:`JIGSAW_PERMUTATIONS`), ``views (N, V, D)`` augmented views."""

    rotations: np.ndarray
    jigsaw: np.ndarray
    jigsaw_ids: np.ndarray
    views: np.ndarray

    @classmethod
    def compute(cls, extract, images: np.ndarray, *, jigsaw_per_image: int, views: int, seed: int) -> "PretextFeatures":
        """Encode the transformed versions of ``images uint8 (N, S, S, 3)`` with ``extract(images) -> (M, D)``."""
        rng = np.random.default_rng(seed)
        n = len(images)
        rotations = extract(rotated_images(images).reshape((-1,) + images.shape[1:])).reshape(n, 4, -1)
        ids = np.stack([rng.choice(len(JIGSAW_PERMUTATIONS), jigsaw_per_image, replace=False) for _ in range(n)])
        tiles = jigsaw_images(np.repeat(images, jigsaw_per_image, axis=0), ids.reshape(-1))
        jigsaw = extract(tiles).reshape(n, jigsaw_per_image, -1)
        augmented = augmented_images(images, views, seed)
        view_features = extract(augmented.reshape((-1,) + images.shape[1:])).reshape(n, views, -1)
        return cls(rotations, jigsaw, ids, view_features)


# ------------------------------------------------------------------------------------------ losses
def _distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2).sum(dim=-1).clamp_min(1e-12).sqrt()


def triplet_loss(anchor, positive, negative, margin: float = 0.2) -> torch.Tensor:
    """Eq. 3.7, ``mean max(D(a, p) - D(a, n) + margin, 0)`` over a batch of ``(B, E)`` embeddings."""
    return F.relu(_distance(anchor, positive) - _distance(anchor, negative) + margin).mean()


def contrastive_loss(anchor, positive, negative, margin: float = 1.0) -> torch.Tensor:
    """Eq. 3.8 on the pairs (a, p) (``T = 0``) and (a, n) (``T = 1``):
    ``mean [1/2 D(a, p)^2 + 1/2 max(margin - D(a, n), 0)^2]``."""
    return (0.5 * _distance(anchor, positive) ** 2 + 0.5 * F.relu(margin - _distance(anchor, negative)) ** 2).mean()


def quadruplet_loss(anchor, positive, negative, extra, margin1: float = 0.2, margin2: float = 0.1,
                    variant: str = "thesis") -> torch.Tensor:
    """Eq. 3.9: ``max(D(a,p) - D(a,n1) + m1, 0) + max(D(a,p) - D(x, n2) + m2, 0)``, averaged, where ``x = p``
    as the thesis prints it (``variant="thesis"``) or ``x = n1`` as in Chen et al. (2017) (``"original"``)."""
    if variant not in ("thesis", "original"):
        raise ValueError(f"variant must be 'thesis' or 'original', got {variant!r}")
    positive_distance = _distance(anchor, positive)
    first = F.relu(positive_distance - _distance(anchor, negative) + margin1)
    other = positive if variant == "thesis" else negative
    second = F.relu(positive_distance - _distance(other, extra) + margin2)
    return (first + second).mean()


def moco_loss(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo's InfoNCE: for unit ``query (B, E)`` and momentum ``key (B, E)`` of the same images, the positive
    logit ``q.k`` against the negatives ``q.queue`` (``queue (K, E)``), all divided by ``temperature``."""
    positive = (query * key).sum(dim=1, keepdim=True)
    negative = query @ queue.T
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.int64))


# ------------------------------------------------------------------------------------- fine-tuning
class AdaptedExtractor(nn.Module):
    """The trainable top of the extractor, ``g(x) = x + B relu(A x)`` with ``B`` zero-initialised
    (``(N, D) -> (N, D)``), and the appended block ``head`` (removed for evaluation)."""

    def __init__(self, dim: int, hidden: int, head: nn.Module):
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        self.head = head

    def top(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(F.relu(self.up(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.top(x))


@dataclass(frozen=True)
class FineTuneSettings:
    """``epochs``, ``batch_size``, ``learning_rate`` (Adam, cosine annealing), ``hidden`` width of ``g``,
    ``projection`` size of the appended block; margins of Eqs. 3.7-3.9; ``temperature`` (SimCLR, MoCo),
    ``queue`` size and ``momentum`` of MoCo."""

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    hidden: int = 256
    projection: int = 64
    triplet_margin: float = 0.2
    contrastive_margin: float = 1.0
    quadruplet_margins: tuple[float, float] = (0.2, 0.1)
    temperature: float = 0.2
    queue: int = 256
    momentum: float = 0.99


def _normalised(module: nn.Module) -> nn.Module:
    class Normalised(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x):
            return F.normalize(self.inner(x), dim=-1)

    return Normalised()


def fine_tune(paradigm: str, features: np.ndarray, source, settings: FineTuneSettings, *, seed: int,
              pretext: PretextFeatures | None = None) -> np.ndarray:
    """Fine-tune ``g`` and an appended block with ``paradigm`` (one of :data:`PARADIGMS`) on ``source``'s
    fine-tuning set, from the frozen ``features (N, D)`` of its images (scaled by their mean norm), and return
    the evaluation features ``g(f(x))`` ``(N, D)`` with the block removed. Self-supervised paradigms need
    ``pretext`` (features of the transformed singleton images, in the order of ``source.singletons``)."""
    if paradigm not in PARADIGMS:
        raise ValueError(f"unknown paradigm {paradigm!r}; choose one of {PARADIGMS}")
    if paradigm not in SUPERVISED and pretext is None:
        raise ValueError(f"the self-supervised paradigm {paradigm!r} needs the pretext features (PretextFeatures)")
    torch.manual_seed(seed)
    scale = float(np.linalg.norm(features, axis=1).mean()) or 1.0
    base = torch.as_tensor(features / scale, dtype=torch.float32)
    dim, s = base.shape[1], settings
    generator = torch.Generator().manual_seed(seed + 7)
    if paradigm in SUPERVISED:
        data = source.finetune_quadruplets if paradigm.startswith("quadruplet") else source.finetune_triplets
        idx = {k: torch.as_tensor(getattr(data, k), dtype=torch.int64) for k in ("query", "first", "second")}
        if paradigm.startswith("quadruplet"):
            idx["extra"] = torch.as_tensor(data.extra, dtype=torch.int64)
        model = AdaptedExtractor(dim, s.hidden, _normalised(nn.Linear(dim, s.projection)))
        variant = "original" if paradigm == "quadruplet-original" else "thesis"

        def loss(batch, step):
            a, p, n = (model(base[idx[k][batch]]) for k in ("query", "first", "second"))
            if paradigm == "triplet":
                return triplet_loss(a, p, n, s.triplet_margin)
            if paradigm == "contrastive":
                return contrastive_loss(a, p, n, s.contrastive_margin)
            return quadruplet_loss(a, p, n, model(base[idx["extra"][batch]]), *s.quadruplet_margins, variant=variant)

        examples = len(data)
    else:
        scaled = {k: torch.as_tensor(getattr(pretext, k) / scale, dtype=torch.float32)
                  for k in ("rotations", "jigsaw", "views")}
        examples = scaled["rotations"].shape[0]
        if paradigm == "rotation":
            model = AdaptedExtractor(dim, s.hidden, nn.Linear(dim, 4))

            def loss(batch, step):
                x = scaled["rotations"][batch].reshape(-1, dim)
                return F.cross_entropy(model(x), torch.arange(4).repeat(len(batch)))
        elif paradigm == "jigsaw":
            model = AdaptedExtractor(dim, s.hidden, nn.Linear(dim, len(JIGSAW_PERMUTATIONS)))
            ids = torch.as_tensor(pretext.jigsaw_ids, dtype=torch.int64)

            def loss(batch, step):
                pick = torch.randint(ids.shape[1], (len(batch),), generator=generator)
                return F.cross_entropy(model(scaled["jigsaw"][batch, pick]), ids[batch, pick])
        else:
            projection = nn.Sequential(nn.Linear(dim, s.hidden), nn.ReLU(), nn.Linear(s.hidden, s.projection))
            model = AdaptedExtractor(dim, s.hidden, _normalised(projection))
            views = scaled["views"]
            momentum_model = copy.deepcopy(model).requires_grad_(False) if paradigm == "moco" else None
            queue = F.normalize(torch.randn(s.queue, s.projection, generator=generator), dim=1)
            state = {"queue": queue, "pointer": 0}

            def loss(batch, step):
                order = torch.stack([torch.randperm(views.shape[1], generator=generator)[:2] for _ in batch])
                first, second = views[batch, order[:, 0]], views[batch, order[:, 1]]
                if paradigm == "simclr":
                    from domainknowledge.principles.pretext import nt_xent_loss

                    return nt_xent_loss(model(first), model(second), temperature=0.5)
                with torch.no_grad():
                    for target, online in zip(momentum_model.parameters(), model.parameters()):
                        target.mul_(s.momentum).add_(online.detach(), alpha=1 - s.momentum)
                    key = momentum_model(second)
                value = moco_loss(model(first), key, state["queue"].clone(), s.temperature)
                start = state["pointer"]
                positions = (torch.arange(len(key)) + start) % s.queue
                state["queue"][positions] = key
                state["pointer"] = int((start + len(key)) % s.queue)
                return value
    _train(model, loss, examples, s.epochs, s.batch_size, s.learning_rate, seed)
    with torch.no_grad():
        return (model.top(base) * scale).numpy()


def learn_diagonal_metric(features: np.ndarray, query, first, second, *, steps: int = 200,
                          learning_rate: float = 0.05) -> np.ndarray:
    """Per-dimension weights ``exp(w)`` ``(D,)`` of the metric ``d(x, y) = ||exp(w) * (x - y)||`` learned from
    triplets whose reference ``first`` was judged closer to ``query`` than ``second`` (index arrays ``(T,)`` into
    ``features (N, D)``): full-batch Adam from ``w = 0`` on the logistic choice loss
    ``mean log(1 + exp(d(q, r1)^2 - d(q, r2)^2))``, the negative log-likelihood of an observer who picks the
    closer reference with a logistic probability. With one weight per dimension it can reweight what the
    features hold but not memorise particular triplets, so it measures what the triplets teach about the
    observers' metric (the chapter's check of the fine-tuning sets)."""
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    q, a, b = (torch.as_tensor(np.asarray(i), dtype=torch.int64) for i in (query, first, second))
    log_weights = torch.zeros(x.shape[1], requires_grad=True)
    optimizer = torch.optim.Adam([log_weights], lr=learning_rate)
    for _ in range(steps):
        z = x * torch.exp(log_weights)
        near, far = (z[q] - z[a]).pow(2).sum(1), (z[q] - z[b]).pow(2).sum(1)
        loss = F.softplus(near - far).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.exp(log_weights).detach().numpy()


def silhouette_by_label(features: np.ndarray, labels) -> float:
    """Silhouette score of ``labels`` in ``features (N, D)`` under the cosine distance (how well the
    categories separate; Fig. 5.2 shows the same by eye)."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(np.asarray(features, np.float64), np.asarray(labels), metric="cosine"))


def accuracy_table(rows: list[dict]) -> pd.DataFrame:
    """Rows of :func:`evaluate_triplets` (with an ``extractor`` key) as a DataFrame."""
    return pd.DataFrame(rows)

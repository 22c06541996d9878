"""A stand-in CLIP trained here from scratch, with open_clip's own model class and loss.

No CLIP weights can be had offline. So that the feature-extraction chapters run a *real CLIP training
recipe* on every machine, this module trains open_clip's ``CLIP`` (a small ViT image tower and a small causal
text transformer, projected to a joint space of ``embed_dim``) with ``open_clip.ClipLoss``, the symmetric
InfoNCE loss of Radford et al. (2021),

    L = 1/2 [ CE(s * I T^T, diag) + CE(s * T I^T, diag) ],

where ``I`` (B, D) and ``T`` (B, D) are the unit-length image and caption embeddings of a batch and ``s`` the
learned logit scale (initialised at 1/0.07, clamped at 100), on the seeded captioned world of
:mod:`domainknowledge.data.synthetic.captioned_world`.

**Tokenisation.** Captions are split by open_clip's own byte-pair ``SimpleTokenizer`` (its vocabulary file
ships inside the open_clip wheel). The stand-in's embedding table holds only the word pieces that occur in its
training captions: ids ``0..3`` are padding, start, end and *unknown*; every other piece maps to a compact id
(:class:`CompactBpeTokenizer`). A prompt with words the stand-in never saw still tokenises; the unseen pieces
become *unknown* (:meth:`StandInClipEncoder.vocabulary_coverage` reports how many).

**Optimisation.** AdamW (betas 0.9/0.98, eps 1e-6 as CLIP; weight decay on matrices only), linear warm-up then
cosine decay of the learning rate, seeded batch order. On CPU, the same seed gives the same weights.

**Cache.** A trained model is stored under ``<cache_dir>/standin-clip/<size>-<key>.pt``, where the key hashes
the configuration, the source code of this module and of the generator, and the open_clip and torch versions.
The file is written under a temporary name and renamed (atomic); a model is trained again only when its key
changes (or ``retrain=True``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torch import nn

from domainknowledge.models.encoders.base import Encoder, import_open_clip, resize_center_crop

__all__ = ["STANDIN_SIZES", "CompactBpeTokenizer", "dry_run_standin_config", "ConvImageTower", "StandInClipConfig", "StandInClipEncoder", "build_clip_model",
           "load_standin_clip", "standin_cache_key", "standin_cache_path", "train_standin_clip"]

PAD, START, END, UNKNOWN = 0, 1, 2, 3
_MEAN, _STD = 0.5 * 255, 0.25 * 255


@dataclass(frozen=True)
class StandInClipConfig:
    """Everything that defines a trained stand-in CLIP; any change gives another cache key.

    Data: ``train_images`` captioned images of ``image_size`` px drawn with ``seed`` (split ``train``).
    Image tower (``vision_tower``): ``vit``, open_clip's ViT with ``vision_layers`` blocks of width
    ``vision_width`` (heads of 32 channels) on ``patch_size`` px patches; or ``cnn``, a small convolutional
    tower (:class:`ConvImageTower`, stage widths ``cnn_widths``) put in place of the ViT inside the same
    ``CLIP`` module. Text tower: ``text_layers`` causal blocks of width ``text_width`` and
    ``text_heads`` heads over ``context_length`` tokens. Joint space: ``embed_dim``. Training: ``steps``
    AdamW steps of ``batch_size`` pairs, peak ``learning_rate`` after ``warmup_steps``, ``weight_decay``.
    """

    train_images: int = 20000
    image_size: int = 32
    patch_size: int = 4
    vision_width: int = 64
    vision_layers: int = 2
    text_width: int = 64
    text_layers: int = 1
    text_heads: int = 2
    context_length: int = 32
    embed_dim: int = 64
    steps: int = 1000
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.1
    seed: int = 0
    vision_tower: str = "vit"
    cnn_widths: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self):
        if self.vision_tower not in ("vit", "cnn"):
            raise ValueError(f"vision_tower must be 'vit' or 'cnn', got {self.vision_tower!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.vision_width % 32:
            raise ValueError(f"vision_width must be a multiple of 32 (heads of 32 channels), got {self.vision_width}")
        if self.text_width % self.text_heads:
            raise ValueError(f"text_width ({self.text_width}) must be divisible by text_heads ({self.text_heads})")
        if min(self.train_images, self.steps, self.batch_size) < 1 or self.batch_size > self.train_images:
            raise ValueError("train_images, steps and batch_size must be positive, batch_size <= train_images")


STANDIN_SIZES: dict[str, StandInClipConfig] = {
    # seconds on one CPU thread: for the tests and the smoke profile
    "smoke": StandInClipConfig(train_images=2000, steps=150, batch_size=64, warmup_steps=15, vision_width=64,
                               learning_rate=3e-3),
    # about two to three minutes on one CPU thread: the book's default build
    "cpu": StandInClipConfig(train_images=20000, steps=900, batch_size=128, warmup_steps=50),
    # a larger model on larger images, for a GPU
    "paper": StandInClipConfig(train_images=100000, image_size=64, patch_size=8, vision_width=256, vision_layers=6,
                               text_width=256, text_layers=4, text_heads=4, embed_dim=256, steps=20000,
                               batch_size=512, learning_rate=5e-4, warmup_steps=1000),
}


def dry_run_standin_config(size: str) -> StandInClipConfig:
    """The stand-in CLIP of ``size`` as a paper dry run trains it: the same architecture and image size, two
    steps of 64 (after one warm-up step) on 1,024 generated images. Every chapter's dry run loads this one
    model, so it is trained once and then read from the cache (two of the paper's batches of 512 took a
    minute on a CPU thread)."""
    from domainknowledge.experiment import dry_run_config

    return dry_run_config(STANDIN_SIZES[size], {"steps": 2, "warmup_steps": 1, "train_images": 1024, "batch_size": 64})


class CompactBpeTokenizer:
    """open_clip's byte-pair ``SimpleTokenizer`` restricted to a known set of word pieces.

    ``__call__(texts) -> LongTensor (N, context_length)``: ``START``, the compact ids of the pieces (unknown
    pieces -> ``UNKNOWN``), ``END``, then ``PAD``; a text longer than the context is cut and still ends in END.
    """

    def __init__(self, pieces, context_length: int):
        import_open_clip()
        from open_clip.tokenizer import SimpleTokenizer

        self._bpe = SimpleTokenizer()
        self.pieces = [int(p) for p in pieces]
        self.context_length = int(context_length)
        self._index = {piece: i + 4 for i, piece in enumerate(self.pieces)}

    @classmethod
    def from_corpus(cls, texts, context_length: int) -> CompactBpeTokenizer:
        import_open_clip()
        from open_clip.tokenizer import SimpleTokenizer

        bpe = SimpleTokenizer()
        pieces = sorted({piece for text in texts for piece in bpe.encode(text)})
        return cls(pieces, context_length)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces) + 4

    def pieces_of(self, text: str) -> list[int]:
        return self._bpe.encode(text)

    def __call__(self, texts) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        tokens = torch.full((len(texts), self.context_length), PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self._index.get(p, UNKNOWN) for p in self._bpe.encode(text)][: self.context_length - 2]
            ids = [START, *ids, END]
            tokens[row, :len(ids)] = torch.tensor(ids)
        return tokens

    def coverage(self, texts) -> float:
        """Fraction of the word pieces of ``texts`` that the vocabulary knows (1.0: no unknown piece)."""
        pieces = [p for text in ([texts] if isinstance(texts, str) else texts) for p in self._bpe.encode(text)]
        return float(np.mean([p in self._index for p in pieces])) if pieces else 1.0


class ConvImageTower(nn.Module):
    """A small CNN image tower: per stage a 3x3 convolution (stride 2 from the second stage on) and a second
    3x3 convolution, each with batch normalisation and ReLU; global average pooling and a linear projection
    to ``embed_dim``. ``forward(images (B, 3, S, S)) -> (B, embed_dim)``.

    Convolutions share weights over positions, so they learn the shape of a few-pixel object from far fewer
    examples than a ViT's patch tokens do; on a CPU budget this is what lets the stand-in learn shape.
    """

    def __init__(self, embed_dim: int, widths=(16, 32, 64, 128)):
        super().__init__()
        layers, channels = [], 3
        for stage, width in enumerate(widths):
            for stride in ((1 if stage == 0 else 2), 1):
                layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.projection = nn.Linear(channels, embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(images).mean(dim=(2, 3)))


def build_clip_model(config: StandInClipConfig, vocab_size: int):
    """open_clip's ``CLIP`` at the stand-in's size (random initialisation; seed torch before calling); with
    ``vision_tower == "cnn"`` its ``visual`` module is a :class:`ConvImageTower`."""
    import_open_clip()
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(layers=config.vision_layers, width=config.vision_width, head_width=32,
                           patch_size=config.patch_size, image_size=config.image_size)
    text = CLIPTextCfg(context_length=config.context_length, vocab_size=vocab_size, width=config.text_width,
                       heads=config.text_heads, layers=config.text_layers, pad_id=PAD, eos_id=END, pool_type="eos")
    model = CLIP(embed_dim=config.embed_dim, vision_cfg=vision, text_cfg=text, output_dict=True)
    if config.vision_tower == "cnn":
        model.visual = ConvImageTower(config.embed_dim, config.cnn_widths)
    return model


def _standardise(images: torch.Tensor) -> torch.Tensor:
    return (images - _MEAN) / _STD


def _learning_rate(step: int, config: StandInClipConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * config.learning_rate * (1 + math.cos(math.pi * progress))


def train_standin_clip(config: StandInClipConfig, *, device="cpu", progress: bool = True):
    """Train the stand-in from scratch. Returns ``(model, tokenizer, history)``; ``history`` holds the loss
    of every step (``loss``), the logit scale at the end and the training time in seconds."""
    from domainknowledge.data.synthetic.captioned_world import generate_captioned_world

    open_clip = import_open_clip()

    device = torch.device(device)
    started = time.time()
    used = min(config.train_images, config.steps * config.batch_size)     # no image that no step would draw
    world = generate_captioned_world(used, seed=config.seed, split="train", image_size=config.image_size)
    tokenizer = CompactBpeTokenizer.from_corpus(world.captions, config.context_length)
    tokens = tokenizer(world.captions)
    images = torch.from_numpy(world.images).permute(0, 3, 1, 2).contiguous()
    generated = time.time() - started

    torch.manual_seed(config.seed)
    model = build_clip_model(config, tokenizer.vocab_size).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit_scale" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = open_clip.ClipLoss()
    order = torch.Generator().manual_seed(config.seed)
    permutation, cursor = torch.randperm(len(tokens), generator=order), 0
    losses = []
    model.train()
    for step in range(config.steps):
        if cursor + config.batch_size > len(permutation):
            permutation, cursor = torch.randperm(len(tokens), generator=order), 0
        index = permutation[cursor:cursor + config.batch_size]
        cursor += config.batch_size
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        batch_images = _standardise(images[index].float().to(device)).contiguous()
        output = model(batch_images, tokens[index].to(device))
        loss = loss_fn(output["image_features"], output["text_features"], output["logit_scale"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if progress and ((step + 1) % max(1, config.steps // 10) == 0 or step + 1 == config.steps):
            print(f"[stand-in CLIP] step {step + 1}/{config.steps}: loss {np.mean(losses[-20:]):.3f} "
                  f"({time.time() - started:.0f} s)", file=sys.stdout, flush=True)
    model.eval()
    history = {"loss": losses, "logit_scale": model.logit_scale.detach().exp().item(), "seconds": time.time() - started,
               "data_seconds": generated, "vocab_size": tokenizer.vocab_size, "device": str(device)}
    return model, tokenizer, history


def standin_cache_key(config: StandInClipConfig) -> str:
    """sha256 over the configuration, the training and generator source code, and the open_clip/torch versions."""
    from importlib import metadata

    from domainknowledge.data.synthetic import captioned_world

    digest = hashlib.sha256()
    digest.update(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    for module in (sys.modules[__name__], captioned_world):
        digest.update(inspect.getsource(module).encode())
    digest.update(metadata.version("open_clip_torch").encode())
    digest.update(torch.__version__.split("+")[0].encode())
    return digest.hexdigest()


def standin_cache_path(config: StandInClipConfig, cache_dir, size: str = "custom") -> Path:
    return Path(cache_dir) / "standin-clip" / f"{size}-{standin_cache_key(config)[:20]}.pt"


def _atomic_save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class StandInClipEncoder(Encoder):
    """The trained stand-in as an :class:`~domainknowledge.models.encoders.base.Encoder` (image-text)."""

    has_text = True
    image_batch_size = 512

    def __init__(self, model, tokenizer: CompactBpeTokenizer, config: StandInClipConfig, *, key: str,
                 history: dict, name: str, device="cpu", loaded_from_cache: bool = False):
        super().__init__(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.key = key
        self.history = history
        self.name = name
        self.loaded_from_cache = loaded_from_cache
        self.embedding_dim = config.embed_dim
        self.image_size = config.image_size
        tower = (f"CNN {'-'.join(map(str, config.cnn_widths))}" if config.vision_tower == "cnn"
                 else f"ViT {config.vision_layers}x{config.vision_width}")
        self.provenance = (f"stand-in trained here: open_clip CLIP ({tower}, "
                           f"text {config.text_layers}x{config.text_width}) with ClipLoss on {config.train_images:,} "
                           f"synthetic captioned images, {config.steps:,} steps, seed {config.seed}")

    @property
    def cache_key(self) -> str:
        return f"{self.name}|{self.key}"

    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        return _standardise(resize_center_crop(batch, self.image_size))

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(batch)

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))

    def vocabulary_coverage(self, texts) -> float:
        """Fraction of the word pieces of ``texts`` seen in training (pieces it never saw embed as *unknown*)."""
        return self.tokenizer.coverage(texts)


def load_standin_clip(size: str | StandInClipConfig = "cpu", *, cache_dir=None, device="cpu", retrain: bool = False,
                      progress: bool = True, label: str | None = None) -> StandInClipEncoder:
    """The stand-in CLIP of ``size`` (``smoke``, ``cpu``, ``paper`` or a :class:`StandInClipConfig`), loaded
    from ``cache_dir`` (default ``<dk cache>/encoders``) when its key is there, else trained and stored."""
    from domainknowledge.data.bundled import cache_dir as default_cache_dir

    if isinstance(size, StandInClipConfig):
        config, label = size, label or "custom"
    elif size in STANDIN_SIZES:
        config, label = STANDIN_SIZES[size], size
    else:
        raise ValueError(f"unknown stand-in size {size!r}: choose one of {', '.join(STANDIN_SIZES)} "
                         "or pass a StandInClipConfig")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "encoders"
    name = f"standin-clip-{label}"
    key = standin_cache_key(config)
    path = standin_cache_path(config, cache_dir, label)
    device = torch.device(device)
    if path.is_file() and not retrain:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("key") == key:
            tokenizer = CompactBpeTokenizer(payload["pieces"], config.context_length)
            model = build_clip_model(config, tokenizer.vocab_size)
            model.load_state_dict(payload["state_dict"])
            return StandInClipEncoder(model, tokenizer, config, key=key, history=payload["history"], name=name,
                                      device=device, loaded_from_cache=True)
    if progress:
        print(f"[stand-in CLIP] training {name} (key {key[:12]}); it is cached in {path}", flush=True)
    model, tokenizer, history = train_standin_clip(config, device=device, progress=progress)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _atomic_save({"key": key, "config": dataclasses.asdict(config), "pieces": tokenizer.pieces,
                  "state_dict": state, "history": history}, path)
    return StandInClipEncoder(model, tokenizer, config, key=key, history=history, name=name, device=device)

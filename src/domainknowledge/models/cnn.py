"""Small image classifiers of the thesis experiments, and the input standardisation they share.

* :class:`NiuCNN`: the age-estimation CNN of Niu et al. (2016) as used for SimLoss (Kobs 2023, Sec. 14.2.2).
* :class:`LeNet`: LeNet (LeCun et al. 1998) as used for CIFAR-100 in Sec. 14.2.2.
* :class:`Standardize`: a first layer that turns ``uint8`` images into standardised floats with statistics
  fitted on the training set, so a model takes raw images and the data can stay compact in memory.

All models map images ``(B, C_in, H, W)`` (``uint8`` or float) to logits ``(B, num_classes)``; the
softmax belongs to the loss. ReLU is applied after max-pooling, which gives the same numbers as before it
(``max`` and ``relu`` commute) at a quarter of the cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LeNet", "NiuCNN", "Standardize", "count_parameters"]


class Standardize(nn.Module):
    """``(x - mean) / std`` with statistics kept as buffers; ``uint8`` input is cast to float first.

    ``mean`` and ``std`` have shape ``(C_in,)`` (per-channel standardisation, as the age CNN's input) or
    ``(1,)`` (global standardisation, as LeNet's input in Sec. 14.2.2).
    """

    def __init__(self, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if torch.any(std <= 0):
            raise ValueError("standard deviations must be positive (is an image channel constant?)")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    #: Values per chunk when :meth:`fit` reads the training images in pieces (256 MiB of float64): a data set
    #: this size or smaller is fitted in one piece, as before; a larger one never exists as float64 at once.
    FIT_CHUNK_VALUES = 1 << 25

    @classmethod
    def fit(cls, images, per_channel: bool = True) -> "Standardize":
        """Fit to training images ``(N, C_in, H, W)``: per channel, or one global mean and std (unbiased).

        ``images`` is a tensor or any lazy reader indexed like one (e.g. :class:`~domainknowledge.data.real.
        image_files.ImageFiles` with ``channels_first``): a data set of more than :attr:`FIT_CHUNK_VALUES`
        values is read in chunks of images, two passes (the sums, then the squared deviations from the mean,
        in float64), so memory does not grow with the data set."""
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        dims = (0, 2, 3) if per_channel else (0, 1, 2, 3)
        count, channels = images.shape[0], images.shape[1]
        per_image = channels * images.shape[2] * images.shape[3]
        if isinstance(images, torch.Tensor) and images.numel() <= cls.FIT_CHUNK_VALUES:
            values = images.double()
            return cls(values.mean(dim=dims).float(), values.std(dim=dims).float())
        step = max(1, cls.FIT_CHUNK_VALUES // per_image)

        def chunks():
            for start in range(0, count, step):
                yield torch.as_tensor(images[start:start + step]).double()

        values_per_statistic = count * per_image // (channels if per_channel else 1)
        mean = sum(chunk.sum(dim=dims) for chunk in chunks()) / values_per_statistic
        centre = mean.reshape(1, -1, 1, 1)
        squares = sum(((chunk - centre) ** 2).sum(dim=dims) for chunk in chunks())
        return cls(mean.float(), (squares / (values_per_statistic - 1)).sqrt().float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std


def _output_size(size: int, kernel: int) -> int:
    return size - kernel + 1


class NiuCNN(nn.Module):
    """The age-estimation CNN of Niu et al. (2016), with ``num_classes`` outputs (Sec. 14.2.2).

    conv ``c1`` @ 5x5 -> max-pool 2 -> conv ``c2`` @ 7x7 -> max-pool 2 -> conv ``c3`` @ 11x11 -> FC 120 ->
    FC ``num_classes``, ReLU between layers, ``channels = (c1, c2, c3) = (20, 40, 80)`` in the thesis.

    At the thesis' 60 x 60 input the map before the last convolution is exactly 11 x 11, so that
    convolution sees the whole map and outputs 1 x 1 x ``c3``. Other sizes keep this role: a smaller map
    (4 x 4 at 32 x 32 input) is zero-padded around its centre to 11 x 11 (which makes the layer a fully
    connected one over the whole map, as at 60 x 60); a larger map gives a larger output, which is
    averaged over space. Input: ``(B, in_channels, image_size, image_size)``; output: logits
    ``(B, num_classes)``.
    """

    def __init__(self, num_classes: int, *, in_channels: int = 3, image_size: int = 60,
                 channels: tuple[int, int, int] = (20, 40, 80), standardize: Standardize | None = None):
        super().__init__()
        first, second, third = channels
        map_size = _output_size(_output_size(image_size, 5) // 2, 7) // 2
        if map_size < 1:
            raise ValueError(f"image_size {image_size} is too small for the Niu CNN (needs at least 18 px)")
        self.standardize = standardize if standardize is not None else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, first, kernel_size=5)
        self.conv2 = nn.Conv2d(first, second, kernel_size=7)
        self.conv3 = nn.Conv2d(second, third, kernel_size=11)
        missing = max(0, 11 - map_size)
        self.padding = (missing // 2, missing - missing // 2) * 2   # (left, right, top, bottom)
        self.dense1 = nn.Linear(third, 120)
        self.dense2 = nn.Linear(120, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.standardize(images)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.conv3(F.pad(x, self.padding)))
        x = x.mean(dim=(2, 3))
        return self.dense2(F.relu(self.dense1(x)))


class LeNet(nn.Module):
    """LeNet (LeCun et al. 1998) as in Sec. 14.2.2: conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> FC 120 ->
    FC 84 -> FC ``num_classes``.

    Works for any square input of at least 16 px: the first fully connected layer is sized from
    ``image_size`` (``16 * 5 * 5`` at CIFAR's 32 px, ``16 * 4 * 4`` at Fashion-MNIST's 28 px). Input:
    ``(B, in_channels, image_size, image_size)``; output: logits ``(B, num_classes)``.
    """

    def __init__(self, num_classes: int, *, in_channels: int = 3, image_size: int = 32,
                 standardize: Standardize | None = None):
        super().__init__()
        map_size = _output_size(_output_size(image_size, 5) // 2, 5) // 2
        if map_size < 1:
            raise ValueError(f"image_size {image_size} is too small for LeNet (needs at least 16 px)")
        self.standardize = standardize if standardize is not None else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * map_size * map_size, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.standardize(images)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc3(F.relu(self.fc2(x)))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


"""Image files decoded on demand: a data set of 255,000 AVA photos or 130,000 pretraining photos indexed like an
array, so that training and evaluation loops read one batch at a time and never hold the data set in memory.

:class:`ImageFiles` holds paths and a ``prepare`` function (decoded ``(h, w, 3)`` uint8 -> ``(S, S, 3)`` uint8);
``files[i]`` decodes one image, ``files[index_array]`` or ``files[a:b]`` a batch (threads decode in parallel; PIL
releases the GIL). ``channels_first=True`` returns torch ``uint8`` tensors ``(B, 3, S, S)`` instead of NumPy
``(B, S, S, 3)``, as the chapters' tensors are laid out. :meth:`ImageFiles.subset` is a lazy view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

__all__ = ["ImageFiles", "fit_and_pad", "resize_center_crop", "square_crop"]


def fit_and_pad(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """``prepare`` that resizes keeping the aspect ratio and pads to ``size x size`` (Kobs 2023 Sec. 16.2.1)."""
    from domainknowledge.principles.distortions import _fit_and_pad

    return lambda image: _fit_and_pad(np.ascontiguousarray(image[..., :3]), size, size)


def resize_center_crop(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """``prepare`` that scales the shorter side to ``size`` (bicubic) and crops the centre square."""
    from PIL import Image

    def prepare(image: np.ndarray) -> np.ndarray:
        photo = Image.fromarray(image)
        scale = size / min(photo.size)
        photo = photo.resize((max(size, round(photo.width * scale)), max(size, round(photo.height * scale))),
                             Image.BICUBIC)
        left, top = (photo.width - size) // 2, (photo.height - size) // 2
        return np.asarray(photo.crop((left, top, left + size, top + size)))
    return prepare


def square_crop(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """``prepare`` that crops the centre square of an image ``(h, w, 3)`` (or a mask ``(h, w)``) and resizes it
    to ``size`` (bilinear), as the metric-learning benchmarks are read."""
    from PIL import Image

    def prepare(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return np.asarray(Image.fromarray(image[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR))
    return prepare


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


class ImageFiles:
    """``N`` image files read lazily as ``(N, S, S, 3)`` uint8 (or ``(N, 3, S, S)`` tensors with
    ``channels_first``); ``size`` is the side ``prepare`` returns. ``workers`` threads decode a batch."""

    def __init__(self, paths: Sequence[Path], prepare: Callable[[np.ndarray], np.ndarray], size: int, *,
                 channels_first: bool = False, workers: int = 8):
        self.paths = [Path(path) for path in paths]
        self.prepare, self.size, self.channels_first, self.workers = prepare, int(size), channels_first, workers

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), 3, self.size, self.size) if self.channels_first else (len(self), self.size, self.size, 3)

    @property
    def ndim(self) -> int:
        return 4

    def _load(self, path: Path) -> np.ndarray:
        image = self.prepare(_decode(path))
        if image.shape != (self.size, self.size, 3):
            raise ValueError(f"prepare returned {image.shape} for {path}; expected ({self.size}, {self.size}, 3)")
        return image

    def _indices(self, index) -> np.ndarray:
        if isinstance(index, slice):
            return np.arange(len(self))[index]
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        index = np.asarray(index)
        if index.dtype == bool:
            return np.flatnonzero(index)
        return index.astype(np.int64).reshape(-1)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            image = self._load(self.paths[int(index)])
            return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))) if self.channels_first else image
        rows = self._indices(index)
        batch = np.empty((len(rows), self.size, self.size, 3), dtype=np.uint8)
        if len(rows):
            with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(rows)))) as pool:
                for k, image in enumerate(pool.map(self._load, (self.paths[i] for i in rows))):
                    batch[k] = image
        if self.channels_first:
            return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        return batch

    def subset(self, index) -> "ImageFiles":
        """A lazy view of the rows ``index`` (slice, integer or boolean array)."""
        return ImageFiles([self.paths[i] for i in self._indices(index)], self.prepare, self.size,
                          channels_first=self.channels_first, workers=self.workers)

    def batches(self, batch_size: int):
        """Yield consecutive decoded batches of at most ``batch_size`` images."""
        for start in range(0, len(self), batch_size):
            yield self[start:start + batch_size]

    def __repr__(self) -> str:
        layout = "(N, 3, S, S) tensors" if self.channels_first else "(N, S, S, 3) arrays"
        return f"ImageFiles({len(self):,} files, S = {self.size}, {layout})"

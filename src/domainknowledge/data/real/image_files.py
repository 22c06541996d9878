"""Images on disk, read on demand and resized on read: a data set of any size streams into an encoder.

A real data set of the ``paper`` profile can hold 100k photos at their native resolution; a list of decoded
arrays would hold tens of gigabytes. :class:`ImageFiles` keeps only the paths. Indexing reads the file(s),
scales the shorter side to ``size`` and crops the centre square (the CLIP resize of
:func:`domainknowledge.models.encoders.base.resize_center_crop`), so one item is ``uint8 (size, size, 3)``
and a slice or an index array is ``uint8 (n, size, size, 3)``. The encoders'
:func:`~domainknowledge.models.encoders.base.as_image_batches` reads it one batch at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["ImageFiles", "read_resized"]


def read_resized(path: Path, size: int) -> np.ndarray:
    """One image file as RGB, its shorter side scaled to ``size`` (antialiased bilinear) and the centre square
    cropped: ``uint8 (size, size, 3)``. JPEG files are decoded at a reduced scale when that is still >= ``size``."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (size, size))                 # JPEG: decode at 1/2, 1/4, 1/8 when large enough
        image = image.convert("RGB")
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        if (width, height) != image.size:
            image = image.resize((width, height), Image.BILINEAR, reducing_gap=None)
        left, top = (width - size) // 2, (height - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)))


class ImageFiles(Sequence):
    """``paths`` read lazily at ``size`` px (see the module docstring). ``len`` is the number of files."""

    def __init__(self, paths, size: int):
        if size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.paths, self.size = [Path(p) for p in paths], int(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return read_resized(self.paths[index], self.size)
        chosen = range(len(self))[index] if isinstance(index, slice) else np.asarray(index).ravel()
        if len(chosen) == 0:
            return np.empty((0, self.size, self.size, 3), np.uint8)
        return np.stack([read_resized(self.paths[int(i)], self.size) for i in chosen])

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files at {self.size} px)"

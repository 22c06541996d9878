"""Data sources: bundled real data (``bundled``), seeded stand-ins (``synthetic``), thesis data sets (``real``)."""

from domainknowledge.data.bundled import (
    FASHION_MNIST_CLASSES,
    DataNotFoundError,
    cache_dir,
    load_digits,
    load_fashion_mnist,
    load_photos,
    read_idx,
)

__all__ = ["FASHION_MNIST_CLASSES", "DataNotFoundError", "cache_dir", "load_digits", "load_fashion_mnist",
           "load_photos", "read_idx"]

"""Deep learning with domain knowledge, reproduced: the library behind the book.

``import domainknowledge as dk`` has no side effects: it seeds nothing, downloads nothing and changes no
plotting style. Submodules load on first use (``dk.experiment``, ``dk.data``, ``dk.metrics``, ...), so the
command-line pipeline starts without importing torch.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("book", "chapters", "data", "experiment", "metric_learning", "metrics", "models", "plots", "principles",
               "significance", "training")
__all__ = list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))

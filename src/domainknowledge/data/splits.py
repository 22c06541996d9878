"""Seeded train/validation/test splits shared by the data sources.

* :func:`random_split`: a random split by fractions (UTKFace and AFAD: 60/20/20, Kobs 2023 Sec. 14.2).
* :func:`per_class_split`: a fixed number of examples per class (CIFAR-100: 450/50 per class from the
  training set, Sec. 14.2).

Both return index arrays, so images stay where they are; the same seed gives the same split.
"""

from __future__ import annotations

import numpy as np

__all__ = ["per_class_split", "random_split"]


def random_split(n: int, *, seed: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
                 ) -> dict[str, np.ndarray]:
    """Split ``range(n)`` at random into ``{"train", "validation", "test"}`` index arrays.

    Sizes are ``floor(f0 n)``, ``floor((f0 + f1) n) - floor(f0 n)`` and the rest.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if n < 3:
        raise ValueError(f"need at least 3 examples to split, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    first = int(fractions[0] * n)
    second = int((fractions[0] + fractions[1]) * n)
    return {"train": order[:first], "validation": order[first:second], "test": order[second:]}


def per_class_split(labels: np.ndarray, counts: dict[str, int | None], *, seed: int) -> dict[str, np.ndarray]:
    """Draw disjoint index sets with ``counts[split]`` examples of every class (``None``: all that remain).

    ``labels``: ``(N,)`` integer classes. Splits are filled in the order of ``counts``; each class is shuffled
    once with ``seed``. A class with too few examples is an error, not a silently smaller split.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[np.ndarray]] = {name: [] for name in counts}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        offset = 0
        for name, count in counts.items():
            take = members.size - offset if count is None else count
            if offset + take > members.size:
                raise ValueError(f"class {label} has {members.size} examples, too few for {dict(counts)}")
            chosen[name].append(members[offset:offset + take])
            offset += take
    return {name: np.sort(np.concatenate(parts)) for name, parts in chosen.items()}

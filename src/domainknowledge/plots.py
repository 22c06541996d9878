"""Figures of the book. Every function draws on a new figure (or the ``ax`` given) and returns ``(fig, ax)``.

Nothing here changes matplotlib's global state on import: a chapter calls :func:`use_book_style` once.

SimLoss chapter (Kobs 2023, Ch. 14):

* :func:`plot_sweep`: validation and test metrics against a loss hyperparameter, with the spread over runs;
* :func:`plot_mean_distributions`: mean predicted class distributions (Fig. 14.2a/b);
* :func:`plot_similarity_matrix`: a class-similarity matrix as a heat map with class names;
* :func:`plot_image_grid`: example images with titles (e.g. a stand-in data set by age).

Decision-tree hashing chapter (Darlow 2022, Ch. 3):

* :func:`plot_tree_exploration`: a hashing tree read as a map of the data (Figs. 3.10-3.11).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["BOOK_COLORS", "plot_training_curves", "plot_image_grid", "plot_mean_distributions", "plot_similarity_matrix", "plot_sweep",
           "plot_tree_exploration", "relplot", "use_book_style"]

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies
BOOK_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def use_book_style() -> None:
    """Set the book's matplotlib style (sizes, colours, light grid). Call once per chapter."""
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "figure.constrained_layout.use": True,
        "font.size": 10, "axes.titlesize": 10.5, "axes.labelsize": 10, "legend.fontsize": 8.5,
        "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
        "axes.prop_cycle": mpl.cycler(color=list(BOOK_COLORS)), "image.cmap": "viridis",
    })


def relplot(**kwargs):
    """``seaborn.relplot(**kwargs)`` under the book style. A seaborn grid lays itself out with
    ``tight_layout``, which clashes with the constrained layout that :func:`use_book_style` turns on (matplotlib
    then warns on the page); the grid is drawn with constrained layout off. Returns the ``FacetGrid``."""
    import matplotlib as mpl
    import seaborn as sns

    with mpl.rc_context({"figure.constrained_layout.use": False}):
        return sns.relplot(**kwargs)


def _figure_and_axes(ax, nrows: int = 1, ncols: int = 1, size=(6.0, 3.5)):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure if not isinstance(ax, np.ndarray) else ax.flat[0].figure, ax
    return plt.subplots(nrows, ncols, figsize=size, squeeze=False if nrows * ncols > 1 else True)


def plot_sweep(results, parameter: str, metrics: Sequence[str], *, labels: Mapping[str, str] | None = None,
               scale: Mapping[str, float] | None = None, chosen: float | None = None, baseline: float | None = None,
               title: str | None = None, axes=None):
    """Metrics against a grid parameter (e.g. ``r`` or ``l``): mean over runs, band = min..max over runs.

    ``results``: a tidy ``DataFrame`` with columns ``parameter``, ``"split"`` (validation/test) and the
    metrics, one row per run. ``chosen`` (selected on validation) and ``baseline`` are marked by vertical
    lines. Returns ``(fig, axes)`` with one panel per metric.
    """
    labels, scale = dict(labels or {}), dict(scale or {})
    fig, axes = _figure_and_axes(axes, 1, len(metrics), size=(3.2 * len(metrics), 3.0))
    axes = np.atleast_1d(axes).ravel()
    for ax, metric in zip(axes, metrics):
        for split, color, marker in (("validation", BOOK_COLORS[0], "o"), ("test", BOOK_COLORS[1], "s")):
            rows = results[results["split"] == split]
            grouped = rows.groupby(parameter)[metric]
            x = np.asarray(grouped.mean().index, dtype=float)
            factor = scale.get(metric, 1.0)
            ax.fill_between(x, grouped.min().to_numpy() * factor, grouped.max().to_numpy() * factor,
                            color=color, alpha=0.18, linewidth=0)
            ax.plot(x, grouped.mean().to_numpy() * factor, marker=marker, markersize=3.5, color=color, label=split)
        if baseline is not None:
            ax.axvline(baseline, color="0.5", linestyle=":", linewidth=1, label=f"cross-entropy ({parameter} = {baseline:g})")
        if chosen is not None:
            ax.axvline(chosen, color="0.2", linestyle="--", linewidth=1, label=f"chosen on validation ({parameter} = {chosen:g})")
        ax.set_xlabel(parameter)
        ax.set_ylabel(labels.get(metric, metric))
    axes[0].legend(loc="best")
    if title:
        fig.suptitle(title)
    return fig, axes


def plot_mean_distributions(distributions: Mapping[str, np.ndarray], class_values: Sequence[float], *,
                            reference: np.ndarray | None = None, reference_label: str = "true distribution",
                            target: float | None = None, xlabel: str = "class", title: str | None = None,
                            ax=None):
    """Mean predicted distributions over classes, one line per label (Fig. 14.2 of Kobs 2023).

    ``distributions``: ``{label: (C,) probabilities}``; ``class_values``: ``(C,)`` x positions (e.g. ages);
    ``reference``: a ``(C,)`` distribution drawn as grey bars (e.g. the true label frequencies);
    ``target``: a class value marked by a vertical line (Fig. 14.2b).
    """
    fig, ax = _figure_and_axes(ax, size=(7.0, 3.4))
    x = np.asarray(class_values, dtype=float)
    if reference is not None:
        ax.bar(x, reference, width=1.0, color="0.82", label=reference_label)
    for (label, distribution), color in zip(distributions.items(), BOOK_COLORS):
        ax.plot(x, distribution, color=color, linewidth=1.3, label=label)
    if target is not None:
        ax.axvline(target, color="0.4", linewidth=1.2, label=f"target {target:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean probability")
    ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
    ax.legend(loc="upper right", ncols=2)
    if title:
        ax.set_title(title)
    return fig, ax


def plot_similarity_matrix(similarity, class_names: Sequence[str] | None = None, *, title: str | None = None,
                           annotate: bool | None = None, ax=None):
    """A ``(C, C)`` similarity matrix as a heat map on ``[0, 1]``; class names on the axes when given.

    ``annotate`` writes the values in the cells (default: when ``C <= 12``).
    """
    matrix = np.asarray(similarity.detach().cpu() if hasattr(similarity, "detach") else similarity, dtype=float)
    size = matrix.shape[0]
    fig, ax = _figure_and_axes(ax, size=(4.2, 3.8))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.grid(False)
    fig.colorbar(image, ax=ax, shrink=0.8)
    if class_names is not None:
        ax.set_xticks(range(size), class_names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(size), class_names, fontsize=8)
    if annotate if annotate is not None else size <= 12:
        for i in range(size):
            for j in range(size):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                        color="black" if matrix[i, j] > 0.6 else "white")
    if title:
        ax.set_title(title)
    return fig, ax


def plot_image_grid(images: np.ndarray, titles: Sequence[str], *, columns: int, title: str | None = None,
                    cmap: str = "gray"):
    """Images ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` (RGB), integer or float in the range 0..255, in a grid of
    ``columns``, each with its title."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.05 * columns, 1.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, titles):
        if image.ndim == 3:       # matplotlib reads float RGB as 0..1 and ignores vmin / vmax for RGB
            image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        ax.imshow(image, cmap=cmap if image.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig, axes


def plot_tree_exploration(images: np.ndarray, path_bits: np.ndarray, *, levels: int, samples: int = 4, seed: int = 0,
                          title: str | None = None):
    """Darlow (2022), Figs. 3.10-3.11: the first ``levels`` decisions of a hashing tree as a map of the data.

    ``images`` ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB, uint8 range; ``path_bits`` ``(N, d)`` with
    ``d >= levels``, root decision first. Row ``l = 1 .. levels - 1`` holds the ``2^l`` nodes at depth ``l``,
    each spanning the leaf columns below it and showing the mean of the images whose path starts at that
    node; the bottom ``samples`` rows show up to ``samples`` member images (drawn with ``seed``) of each of
    the ``2^levels`` nodes at depth ``levels``. Every non-empty node is titled with its image count; empty
    nodes stay blank and untitled. Returns ``(fig, axes)`` with ``axes`` a list of the drawn axes.
    """
    import matplotlib.pyplot as plt

    from domainknowledge.principles.decision_tree_hashing import leaf_index

    images, bits = np.asarray(images), np.asarray(path_bits)
    if bits.ndim != 2 or bits.shape[1] < levels or levels < 1:
        raise ValueError(f"path_bits must be (N, d) with d >= levels >= 1, got shape {bits.shape} and levels={levels}")
    if len(images) != len(bits) or images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, 3) with N = {len(bits)}, got {images.shape}")
    grey = images.ndim == 3

    def show(ax, image):
        ax.imshow(image if grey else image / 255.0, cmap="gray" if grey else None, vmin=0, vmax=255 if grey else 1)

    leaves, rng = 2 ** levels, np.random.default_rng(seed)
    fig = plt.figure(figsize=(max(6.0, 0.36 * leaves), 0.5 * (levels - 1 + samples) + 0.5))
    grid = fig.add_gridspec(levels - 1 + samples, leaves, hspace=0.45, wspace=0.06)
    axes = []
    for level in range(1, levels + 1):
        node_of, span = leaf_index(bits[:, :level]), 2 ** (levels - level)
        for node in range(2 ** level):
            members = np.flatnonzero(node_of == node)
            if level < levels:
                cells = [fig.add_subplot(grid[level - 1, node * span:(node + 1) * span])]
                if len(members):
                    show(cells[0], images[members].astype(float).mean(axis=0))
            else:
                chosen = rng.choice(members, size=min(samples, len(members)), replace=False)
                cells = [fig.add_subplot(grid[levels - 1 + row, node]) for row in range(samples)]
                for ax, index in zip(cells, chosen):
                    show(ax, images[index])
            if len(members):
                cells[0].set_title(str(len(members)), fontsize=6, pad=1)
            for ax in cells:
                ax.axis("off")
            axes += cells
    if title:
        fig.suptitle(title)
    return fig, axes


def plot_training_curves(histories: Mapping, *, labels: Mapping | None = None, title: str | None = None, ax=None):
    """Training curves of metric-learning runs (:class:`~domainknowledge.metric_learning.EmbeddingHistory`
    per key): left the mean training loss per epoch (divided by its first epoch's, so losses of different
    scales share an axis), right the validation MAP@R per epoch with the kept (best) epoch marked.
    ``labels`` maps a key to its legend text (default ``str(key)``). Returns ``(figure, axes)``."""
    fig, axes = _figure_and_axes(ax, 1, 2, size=(10.0, 3.6))
    axes = np.ravel(axes)
    labels = labels or {}
    for key, history in histories.items():
        if not history.epoch_losses:
            continue
        epochs = np.arange(1, len(history.epoch_losses) + 1)
        first = history.epoch_losses[0] if history.epoch_losses[0] else 1.0
        line, = axes[0].plot(epochs, np.asarray(history.epoch_losses) / first, lw=1)
        if history.validation_map_at_r:
            axes[1].plot(epochs[:len(history.validation_map_at_r)], history.validation_map_at_r, lw=1,
                         color=line.get_color(), label=labels.get(key, str(key)))
            axes[1].plot(history.best_epoch + 1, history.validation_map_at_r[history.best_epoch], "o", ms=3,
                         color=line.get_color())
    axes[0].set(xlabel="epoch", ylabel="training loss / first epoch's")
    axes[1].set(xlabel="epoch", ylabel="validation MAP@R (dot: kept epoch)")
    if axes[1].lines:
        axes[1].legend(fontsize=6, ncol=2, frameon=False)
    if title:
        fig.suptitle(title)
    return fig, axes

"""Gradient-based attribution (Kobs 2023, Sec. 5.2): which parts of an input move a model's output.

The principle needs a differentiable model, an input, and an output to explain; the helpers here take
exactly that (``forward, inputs, target -> attributions``) and know nothing about a particular model:

* :func:`integrated_gradients`: Integrated Gradients (Sundararajan et al. 2017; Eq. 8.1) through captum,
  on the input itself or, with ``layer=``, on the output of an inner layer (e.g. token embeddings, Ch. 8),
  with the completeness gap of every example;
* :func:`integrated_gradients_per_input`: Integrated Gradients of one input (or one of a layer's outputs)
  at a time, the others held at their real values (what the authors' code of Ch. 8 does per text field);
* :func:`integrated_gradients_reference`: Eq. 8.1 written out in plain torch (the right Riemann sum), the
  known answer the captum path is tested against;
* :func:`probability_output`: a model's softmax output as the function to explain (Ch. 8 explains the
  predicted class distribution, Sec. 8.1);
* :func:`token_scores`: one score per token, the mean over the embedding dimensions (Sec. 8.1);
* :func:`tokens_html`: tokens coloured by their scores with a diverging colour map (Figs. 8.2-8.3);
* :func:`dml_attribution_maps`: attribution maps of a metric-learning (embedding) model, the method of
  Kobs Sec. 9.1: SmoothGrad of the distance between an image's embedding and a black image's embedding
  (Eqs. 9.1-9.2), post-processed by :func:`postprocess_saliency`; :func:`embedding_distance` is the
  loss-specific distance ``d_L`` in torch.

Completeness: for a baseline ``x'`` the exact integral satisfies ``sum(IG(x)) = F(x) - F(x')``. A sum with
``m`` steps only approximates the integral; the gap ``sum(IG(x)) - (F(x) - F(x'))`` measures that error
and is reported per example. For a model linear in the attributed tensor, ``IG(x) = (x - x') * w`` exactly
for every ``m``.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["METHODS", "Attribution", "MapComparison", "compare_attribution_maps", "dml_attribution_maps",
           "embedding_distance", "fisher_z_mean", "integrated_gradients", "integrated_gradients_complete",
           "integrated_gradients_per_input", "COMPLETENESS_TOLERANCE",
           "integrated_gradients_reference",
           "jensen_shannon_divergence", "map_correlations", "postprocess_saliency", "probability_output",
           "smoothgrad_class_maps", "token_scores", "tokens_html"]

# captum's names: the right Riemann sum is Eq. 8.1 as printed; Gauss-Legendre is captum's default, which
# the thesis says it used (m = 50).
METHODS = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")
THESIS_STEPS = 50


@dataclass(frozen=True)
class Attribution:
    """Integrated Gradients of a batch.

    ``attributions``: a tuple with one tensor per attributed tensor (inputs, or the layer's outputs), each of
    that tensor's shape, e.g. ``(B, L, D)`` for token embeddings. ``output`` ``(B,)``: F(x) of the target;
    ``baseline_output`` ``(B,)``: F(x'); ``gap`` ``(B,)``: ``sum of attributions - (F(x) - F(x'))``, the
    completeness gap (0 for the exact integral).
    """

    attributions: tuple[torch.Tensor, ...]
    output: torch.Tensor
    baseline_output: torch.Tensor
    gap: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """``(B,)``: the sum of all attributions of each example."""
        return sum(a.flatten(1).sum(dim=1) for a in self.attributions)

    @property
    def relative_gap(self) -> torch.Tensor:
        """``(B,)``: ``|gap| / |F(x) - F(x')|`` (infinite where the output does not change)."""
        return self.gap.abs() / (self.output - self.baseline_output).abs()


def probability_output(model: nn.Module) -> Callable[..., torch.Tensor]:
    """``forward(*inputs) -> softmax(model(*inputs))`` ``(B, C)``: the class distribution as the function
    to explain ("f maps the input embedding matrix to a class distribution", Sec. 8.1)."""

    def forward(*inputs):
        return torch.softmax(model(*inputs), dim=-1)

    return forward


def _as_tuple(values) -> tuple:
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


def _target_output(forward: Callable, inputs: tuple, target: torch.Tensor, extra: tuple) -> torch.Tensor:
    with torch.no_grad():
        out = forward(*inputs, *extra)
    return out.gather(1, target.view(-1, 1)).squeeze(1).detach()


def integrated_gradients(forward: Callable[..., torch.Tensor], inputs, target, *, baselines=None,
                         layer: nn.Module | Sequence[nn.Module] | None = None, steps: int = THESIS_STEPS,
                         method: str = "riemann_right", additional_forward_args=None,
                         internal_batch_size: int | None = None) -> Attribution:
    """Integrated Gradients (Eq. 8.1) of ``forward``'s output ``target`` with respect to ``inputs`` or, with
    ``layer``, with respect to that layer's output.

    ``forward(*inputs, *additional_forward_args) -> (B, C)``; ``inputs`` a tensor or tuple of tensors with
    batch dimension ``B``; ``target`` an int or ``(B,)`` int64 class per example; ``baselines`` like
    ``inputs`` (default zeros). With ``layer`` (captum's ``LayerIntegratedGradients``), ``baselines`` are
    *inputs* whose layer output is the baseline: for token ids, ids whose embedding is the zero vector give
    Ch. 8's zero-embedding baseline. The path is interpolated in the layer's output while the rest of the
    forward pass sees the real inputs.

    ``method``: the quadrature over the ``steps`` points of the path (:data:`METHODS`); ``riemann_right``
    is Eq. 8.1 as printed: ``(X - X') * sum_{k=1..m} grad F(X' + k/m (X - X')) / m``.

    Returns an :class:`Attribution` with the completeness gap of every example.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")     # captum imports tqdm.auto
        from captum.attr import IntegratedGradients, LayerIntegratedGradients

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    inputs = _as_tuple(inputs)
    batch = inputs[0].shape[0]
    if any(t.shape[0] != batch for t in inputs):
        raise ValueError(f"every input needs the same batch size, got {[tuple(t.shape) for t in inputs]}")
    baselines = tuple(torch.zeros_like(t) for t in inputs) if baselines is None else _as_tuple(baselines)
    if len(baselines) != len(inputs) or any(b.shape != t.shape for b, t in zip(baselines, inputs)):
        raise ValueError("baselines must match the inputs in number and shape")
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    target = target.expand(batch) if target.numel() == 1 else target
    if target.shape != (batch,):
        raise ValueError(f"target must be one class or one per example ({batch}), got {tuple(target.shape)}")
    extra = _as_tuple(additional_forward_args) if additional_forward_args is not None else ()
    explainer = IntegratedGradients(forward) if layer is None else LayerIntegratedGradients(forward, layer)
    attributions, _ = explainer.attribute(
        inputs if len(inputs) > 1 else inputs[0], baselines=baselines if len(baselines) > 1 else baselines[0],
        target=target, additional_forward_args=extra or None, n_steps=steps, method=method,
        internal_batch_size=internal_batch_size, return_convergence_delta=True)
    attributions = tuple(a.detach() for a in _flatten(attributions))
    output = _target_output(forward, inputs, target, extra)
    baseline_output = _target_output(forward, baselines, target, extra)
    total = sum(a.flatten(1).sum(dim=1) for a in attributions)
    return Attribution(attributions, output, baseline_output, total - (output - baseline_output))


#: Sundararajan et al. (2017) check that the attributions add up to the change of the output within 5 % and
#: raise the number of steps otherwise (:func:`integrated_gradients_complete`)
COMPLETENESS_TOLERANCE = 0.05


def integrated_gradients_complete(forward: Callable[..., torch.Tensor], inputs: torch.Tensor, target, *,
                                  steps: int, refinement: int = 4, tolerance: float = COMPLETENESS_TOLERANCE,
                                  **options) -> tuple[Attribution, np.ndarray]:
    """:func:`integrated_gradients` of one input tensor ``(B, ...)`` with ``steps`` points, then once more
    with ``refinement * steps`` points for the examples whose relative completeness gap exceeds ``tolerance``
    (Sundararajan et al.'s check decides the number of steps; only those examples pay for the finer path).
    ``options`` go to :func:`integrated_gradients` (``method``, ``internal_batch_size``, ``baselines`` of
    the same shape). Returns the attribution of every example and the steps each one used ``(B,)`` int."""
    if refinement < 1:
        raise ValueError(f"refinement must be at least 1, got {refinement}")
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(inputs.shape[0])
    first = integrated_gradients(forward, inputs, target, steps=steps, **options)
    used = np.full(inputs.shape[0], steps)
    redo = torch.nonzero(first.relative_gap > tolerance).flatten()
    if not len(redo) or refinement == 1:
        return first, used
    baselines = options.pop("baselines", None)
    finer = integrated_gradients(forward, inputs[redo], target[redo], steps=refinement * steps,
                                 baselines=None if baselines is None else baselines[redo], **options)
    attributions = first.attributions[0].clone()
    attributions[redo] = finer.attributions[0]
    output, baseline_output, gap = first.output.clone(), first.baseline_output.clone(), first.gap.clone()
    output[redo], baseline_output[redo], gap[redo] = finer.output, finer.baseline_output, finer.gap
    used[redo.numpy()] = refinement * steps
    return Attribution((attributions,), output, baseline_output, gap), used


def integrated_gradients_per_input(forward: Callable[..., torch.Tensor], inputs, target, *, baselines=None,
                                   layer: nn.Module | Sequence[nn.Module] | None = None, steps: int = THESIS_STEPS,
                                   method: str = "riemann_right",
                                   internal_batch_size: int | None = None) -> tuple[Attribution, ...]:
    """Integrated Gradients of each input on its own: for input ``i`` the path runs from ``inputs`` with
    input ``i`` replaced by its baseline to ``inputs``, every other input held at its real value.

    Arguments as in :func:`integrated_gradients` (``inputs`` a tuple of tensors, with ``layer`` the layer
    whose outputs are interpolated, one output per input). Returns one :class:`Attribution` per input,
    whose ``attributions`` hold that input's tensor only and whose ``baseline_output`` is ``F`` with only
    that input at its baseline, so completeness reads ``sum(IG_i) = F(x) - F(x with x_i at x'_i)``.

    This is how the authors' code of Kobs Ch. 8 explains the three text fields (one
    ``IntegratedGradients.attribute`` call per field, the other fields' embeddings passed as extra
    arguments). All inputs run as one batch of ``len(inputs) * B`` examples: copy ``i`` of the batch gets
    the baseline in input ``i`` only, so its other inputs' attributions are exactly zero."""
    inputs = _as_tuple(inputs)
    count, batch = len(inputs), inputs[0].shape[0]
    baselines = tuple(torch.zeros_like(t) for t in inputs) if baselines is None else _as_tuple(baselines)
    if len(baselines) != count or any(b.shape != t.shape for b, t in zip(baselines, inputs)):
        raise ValueError("baselines must match the inputs in number and shape")
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    target = target.expand(batch) if target.numel() == 1 else target
    stacked = tuple(t.repeat(count, *([1] * (t.ndim - 1))) for t in inputs)
    stacked_baselines = tuple(torch.cat([baselines[i] if copy == i else inputs[i] for copy in range(count)])
                              for i in range(count))
    joint = integrated_gradients(forward, stacked, target.repeat(count), baselines=stacked_baselines, layer=layer,
                                 steps=steps, method=method, internal_batch_size=internal_batch_size)
    if len(joint.attributions) != count:
        raise ValueError(f"expected one attributed tensor per input ({count}), got {len(joint.attributions)}")
    results = []
    for i in range(count):
        rows = slice(i * batch, (i + 1) * batch)
        own = joint.attributions[i][rows]
        output, baseline_output = joint.output[rows], joint.baseline_output[rows]
        results.append(Attribution((own,), output, baseline_output,
                                   own.flatten(1).sum(dim=1) - (output - baseline_output)))
    return tuple(results)


def _flatten(values) -> list[torch.Tensor]:
    if isinstance(values, torch.Tensor):
        return [values]
    return [t for v in values for t in _flatten(v)]


def integrated_gradients_reference(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                                   target: int, baseline: torch.Tensor | None = None,
                                   steps: int = THESIS_STEPS) -> torch.Tensor:
    """Eq. 8.1 in plain torch for one input tensor ``(B, ...)`` and one ``target`` class:
    ``(X - X') * (1/m) * sum_{k=1..m} d F(X' + k/m (X - X'))_c / d X``. Returns ``inputs``' shape.
    Slow (one backward pass per step); for tests and for reading."""
    baseline = torch.zeros_like(inputs) if baseline is None else baseline
    total = torch.zeros_like(inputs)
    for k in range(1, steps + 1):
        point = (baseline + k / steps * (inputs - baseline)).detach().requires_grad_(True)
        forward(point)[:, target].sum().backward()
        total += point.grad
    return (inputs - baseline) * total / steps


def token_scores(attributions: torch.Tensor) -> torch.Tensor:
    """One score per token: ``(B, L, D)`` attributions of token embeddings averaged over the ``D`` embedding
    dimensions -> ``(B, L)`` (Sec. 8.1). Positive scores push the explained output up, negative down."""
    if attributions.ndim != 3:
        raise ValueError(f"attributions must be (B, L, D), got {tuple(attributions.shape)}")
    return attributions.mean(dim=2)


def tokens_html(tokens: Sequence[str], scores, *, scale: float | None = None, colormap: str = "RdYlGn") -> str:
    """Tokens as HTML ``<span>``s whose background colour shows their score with a diverging colour map
    (default red-yellow-green: red lowers the explained output, green raises it, pale is near zero; the
    thesis' Figs. 8.2-8.3 use red and green text). ``scale`` maps ``|score| = scale`` to the ends of the map
    (default: the largest ``|score|`` given), so several texts coloured with one ``scale`` compare. Each
    span's title shows the score."""
    import matplotlib

    scores = np.asarray(scores, dtype=float).ravel()
    if len(tokens) != scores.size:
        raise ValueError(f"{len(tokens)} tokens but {scores.size} scores")
    if scale is None:
        scale = float(np.abs(scores).max()) if scores.size else 1.0
    scale = scale if scale > 0 else 1.0
    cmap = matplotlib.colormaps[colormap]
    spans = []
    for token, score in zip(tokens, scores):
        red, green, blue, _ = cmap(0.5 + 0.5 * float(np.clip(score / scale, -1, 1)))
        spans.append(f'<span style="background-color: rgb({int(255 * red)}, {int(255 * green)}, {int(255 * blue)}); '
                     f'padding: 0 2px; border-radius: 2px" title="{score:+.2e}">{html.escape(token)}</span>')
    return " ".join(spans)


# --- attribution maps of embedding models (Kobs Ch. 9) ----------------------------------------------------

SMOOTHGRAD_SAMPLES = 50          # l of Eq. 9.2; the thesis gives none, its published code uses 50
SMOOTHGRAD_SIGMA_FRACTION = 0.15  # sigma = 0.15 (max - min) of the input, as in the published code
EMBEDDING_DISTANCES = ("euclidean", "squared_euclidean", "cosine", "dot", "snr")


def embedding_distance(embeddings: torch.Tensor, reference: torch.Tensor, distance: str) -> torch.Tensor:
    """The loss-specific distance ``d_L`` of Table 7.1 between each row of ``embeddings`` ``(B, D)`` and
    ``reference`` ``(D,)`` or ``(B, D)``, after L2-normalising both (the losses and
    :func:`domainknowledge.metric_learning.embed` work on unit vectors). Returns ``(B,)``, differentiable.

    Matches :func:`domainknowledge.metric_learning.pairwise_distance`: ``euclidean`` ``||a - b||`` (with a
    1e-12 floor under the root, so the gradient exists at ``a = b``), ``squared_euclidean``, ``cosine``
    ``1 - cos(a, b)``, ``dot`` ``-a . b``, ``snr`` ``var(b - a) / var(a)`` with ``a`` the reference.
    """
    if distance not in EMBEDDING_DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {EMBEDDING_DISTANCES}")
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (B, D), got {tuple(embeddings.shape)}")
    b = nn.functional.normalize(embeddings, dim=1)
    a = nn.functional.normalize(reference.reshape(-1, embeddings.shape[1]), dim=1).expand_as(b)
    if distance == "dot":
        return -(a * b).sum(dim=1)
    if distance == "cosine":
        return 1.0 - (a * b).sum(dim=1)
    if distance == "snr":
        return (b - a).var(dim=1, unbiased=False) / a.var(dim=1, unbiased=False).clamp_min(1e-12)
    squared = ((b - a) ** 2).sum(dim=1)
    return squared if distance == "squared_euclidean" else torch.sqrt(squared.clamp_min(1e-12))


def postprocess_saliency(gradients, *, clip_percentile: float = 99.0) -> np.ndarray:
    """Sec. 9.1's post-processing, in the thesis' order: absolute value, mean over the colour channels,
    clipping above the ``clip_percentile``-th percentile of each map, min-max scaling of each map to [0, 1].

    ``gradients``: ``(N, C, H, W)`` (tensor or array). Returns float64 maps ``(N, H, W)``; a map with no
    variation (e.g. all-zero gradients) becomes all zeros.
    """
    values = gradients.detach().cpu().numpy() if isinstance(gradients, torch.Tensor) else np.asarray(gradients)
    if values.ndim != 4:
        raise ValueError(f"gradients must have shape (N, C, H, W), got {values.shape}")
    if not 0 < clip_percentile <= 100:
        raise ValueError(f"clip_percentile must be in (0, 100], got {clip_percentile}")
    maps = np.abs(values.astype(np.float64)).mean(axis=1)
    ceiling = np.percentile(maps.reshape(len(maps), -1), clip_percentile, axis=1)
    maps = np.minimum(maps, ceiling[:, None, None])
    low = maps.reshape(len(maps), -1).min(axis=1)[:, None, None]
    span = maps.reshape(len(maps), -1).max(axis=1)[:, None, None] - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0)


def _smoothgrad_noise(image: torch.Tensor, samples: int, sigma_fraction: float, seed: int) -> torch.Tensor:
    """The ``samples`` noisy copies ``(samples, C, H, W)`` of one ``image`` ``(C, H, W)`` that SmoothGrad
    averages over: ``N(0, sigma^2)`` noise with ``sigma = sigma_fraction (max - min)``, drawn on the CPU from a
    generator seeded by ``seed`` (the draws of captum's ``NoiseTunnel`` after ``torch.manual_seed(seed)``), so
    a map does not depend on the device or on which other images share its batch."""
    sigma = sigma_fraction * float(image.max() - image.min())
    generator = torch.Generator().manual_seed(int(seed))
    spread = torch.tensor(sigma).repeat((samples,) + tuple(image.shape))
    return image.cpu()[None] + torch.normal(0, spread, generator=generator)


def dml_attribution_maps(network: nn.Module, images, *, distance: str, samples: int = SMOOTHGRAD_SAMPLES,
                         sigma_fraction: float = SMOOTHGRAD_SIGMA_FRACTION, clip_percentile: float = 99.0,
                         seed: int = 0, samples_batch_size: int | None = None, device=None,
                         return_gradients: bool = False):
    """Attribution maps of an embedding model (Kobs Sec. 9.1, Eqs. 9.1-9.2).

    For each image ``I_i`` the explained quantity is ``d_L(f(I_i), f(I_base))``, the loss-specific
    ``distance`` (:func:`embedding_distance`) between its embedding and the embedding of a black image
    ``I_base = 0``. Its input gradient (Eq. 9.1, plain saliency) is averaged over ``samples`` noisy copies
    ``I_i + N(0, sigma^2)`` with ``sigma = sigma_fraction * (max(I_i) - min(I_i))`` (SmoothGrad, Eq. 9.2, as
    captum's ``NoiseTunnel`` around ``Saliency`` computes it, with the sign kept, so the absolute value is
    taken after averaging as the thesis orders it), then post-processed by :func:`postprocess_saliency`.

    ``network``: ``(B, 3, H, W)`` float images in the network's own input scale (for
    :class:`~domainknowledge.metric_learning.EmbeddingNetwork`, 0-255) ``-> (B, D)`` embeddings;
    ``images``: ``(N, 3, H, W)`` tensor or ``(N, H, W, 3)`` uint8 array. The noisy copies of several images
    go through the network together on ``device`` (default: where the network is), ``samples_batch_size``
    copies per pass (default ``max(samples, 64)``); every image's noise is drawn from a generator seeded by
    ``seed + i`` for image ``i``, so a map depends neither on the batch nor on the device.

    Returns maps ``(N, H, W)`` in [0, 1] (and, with ``return_gradients``, also the averaged raw gradients
    ``(N, 3, H, W)``, on the CPU).
    """
    if samples < 1 or sigma_fraction < 0:
        raise ValueError(f"samples must be >= 1 and sigma_fraction >= 0, got {samples} and {sigma_fraction}")
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"image arrays must have shape (N, H, W, 3), got {images.shape}")
        images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) tensors or (N, H, W, 3) arrays, got "
                         f"{getattr(images, 'shape', type(images))}")
    images = images.float().cpu()
    if device is None:
        device = next((p.device for p in network.parameters()), torch.device("cpu"))
    device = torch.device(device)
    per_pass = max(int(samples_batch_size or max(samples, 64)), 1)
    was_training = network.training
    network.eval()
    parameter_flags = [p.requires_grad for p in network.parameters()]
    for parameter in network.parameters():
        parameter.requires_grad_(False)           # gradients w.r.t. the input only
    gradients = torch.zeros_like(images)
    try:
        with torch.no_grad():
            base = network(torch.zeros_like(images[:1]).to(device))[0]
        # the (image, sample) pairs in order, cut into passes of per_pass noisy copies
        pairs = [(i, k) for i in range(len(images)) for k in range(samples)]
        noise_of = {}
        for start in range(0, len(pairs), per_pass):
            chunk = pairs[start:start + per_pass]
            rows = []
            for i, k in chunk:
                if i not in noise_of:
                    noise_of.clear()
                    noise_of[i] = _smoothgrad_noise(images[i], samples, sigma_fraction, seed + i)
                rows.append(noise_of[i][k])
            batch = torch.stack(rows).to(device).requires_grad_(True)
            explained = embedding_distance(network(batch), base, distance)
            (grad,) = torch.autograd.grad(explained.sum(), batch)
            owners = torch.tensor([i for i, _ in chunk])
            gradients.index_add_(0, owners, grad.detach().cpu())
    finally:
        for parameter, flag in zip(network.parameters(), parameter_flags):
            parameter.requires_grad_(flag)
        network.train(was_training)
    gradients = gradients / samples
    maps = postprocess_saliency(gradients, clip_percentile=clip_percentile)
    return (maps, gradients) if return_gradients else maps


# --- comparing attribution maps (Kobs Sec. 9.2) -----------------------------------------------------------

_FISHER_CLIP = 1.0 - 1e-7       # |r| = 1 has an infinite Fisher z; clip just below it


def _as_maps(maps, name: str) -> np.ndarray:
    values = np.asarray(maps, dtype=np.float64)
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3:
        raise ValueError(f"{name} must be maps (N, H, W) or one map (H, W), got shape {values.shape}")
    return values


def map_correlations(maps_a, maps_b) -> np.ndarray:
    """Pearson's product-moment correlation between the two maps of each image over its pixels (Sec. 9.2).

    ``maps_a``, ``maps_b``: ``(N, H, W)`` (or one map ``(H, W)``), the same image's maps from two models.
    Returns ``(N,)`` float64 in [-1, 1]; an image where either map is constant (no variation, e.g. all zeros)
    has no correlation and gets NaN, which :func:`fisher_z_mean` skips.
    """
    a, b = _as_maps(maps_a, "maps_a"), _as_maps(maps_b, "maps_b")
    if a.shape != b.shape:
        raise ValueError(f"maps_a {a.shape} and maps_b {b.shape} must have the same shape (one map per image)")
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(norm > 0, (a * b).sum(axis=1) / np.where(norm > 0, norm, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def fisher_z_mean(correlations, axis=None):
    """The mean of correlations taken in Fisher's z space (Silver and Dunlap 1987; Sec. 9.2):
    ``tanh(mean(arctanh(r)))``. NaNs are skipped; ``|r| = 1`` is clipped to ``1 - 1e-7`` first.

    ``correlations``: any shape; ``axis`` as in NumPy (``None``: all values, a float). Equal correlations
    average to themselves, and ``r`` and ``-r`` to 0; because ``arctanh`` stretches values near 1, the result
    lies between the plain mean and the largest value when the values are positive."""
    r = np.clip(np.asarray(correlations, dtype=np.float64), -_FISHER_CLIP, _FISHER_CLIP)
    if r.size == 0 or np.all(np.isnan(r)):
        raise ValueError("fisher_z_mean needs at least one correlation that is not NaN")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # an all-NaN slice along ``axis`` gives NaN
        z = np.nanmean(np.arctanh(r), axis=axis)
    return float(np.tanh(z)) if np.ndim(z) == 0 else np.tanh(z)


def jensen_shannon_divergence(maps_a, maps_b) -> np.ndarray:
    """Jensen-Shannon divergence with base-2 logarithms between the two maps of each image (Sec. 9.2, Eq. 2.30),
    each map divided by its sum to make it a distribution over pixels.

    ``JSD(P, Q) = KL(P || M) / 2 + KL(Q || M) / 2`` with ``M = (P + Q) / 2`` and ``0 log 0 = 0``: 0 for equal
    maps, 1 (the bound) for maps without a common pixel. ``maps_a``, ``maps_b``: ``(N, H, W)`` or ``(H, W)``,
    non-negative, each with a positive sum. Returns ``(N,)`` float64.
    """
    a, b = _as_maps(maps_a, "maps_a"), _as_maps(maps_b, "maps_b")
    if a.shape != b.shape:
        raise ValueError(f"maps_a {a.shape} and maps_b {b.shape} must have the same shape (one map per image)")
    if (a < 0).any() or (b < 0).any():
        raise ValueError("attribution maps must be non-negative to be read as distributions (post-process them first)")
    p, q = a.reshape(len(a), -1), b.reshape(len(b), -1)
    sums_p, sums_q = p.sum(axis=1, keepdims=True), q.sum(axis=1, keepdims=True)
    if (sums_p <= 0).any() or (sums_q <= 0).any():
        raise ValueError("every map needs a positive sum to be normalised into a distribution; an all-zero map "
                         "(no gradient at all) cannot be compared by Jensen-Shannon divergence")
    p, q = p / sums_p, q / sums_q
    m = (p + q) / 2

    def kl(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0) / np.where(y > 0, y, 1.0)), 0.0)
        return terms.sum(axis=1)

    return np.clip(kl(p, m) / 2 + kl(q, m) / 2, 0.0, 1.0)


@dataclass(frozen=True)
class MapComparison:
    """Every pair of models compared on the same images (Sec. 9.2).

    ``names``: the ``M`` models (any hashable keys, in order); ``correlations`` ``(M, M, N)``: Pearson's r
    per image (:func:`map_correlations`; the diagonal is 1); ``jsd`` ``(M, M, N)``: Jensen-Shannon divergence
    per image (:func:`jensen_shannon_divergence`; the diagonal is 0). Both are symmetric in the first two axes.
    """

    names: tuple
    correlations: np.ndarray
    jsd: np.ndarray

    def _frame(self, values):
        import pandas as pd

        return pd.DataFrame(values, index=list(self.names), columns=list(self.names))

    def mean_correlation(self):
        """``(M, M)`` DataFrame: the mean correlation over images, averaged through Fisher's z (Tables 9.1-9.3)."""
        return self._frame(fisher_z_mean(self.correlations, axis=2))

    def correlation_sd(self):
        """``(M, M)`` DataFrame: the standard deviation of the correlations over images (ddof 1; the thesis' +-)."""
        return self._frame(np.nanstd(self.correlations, axis=2, ddof=1) if self.correlations.shape[2] > 1
                           else np.zeros(self.correlations.shape[:2]))

    def mean_jsd(self):
        """``(M, M)`` DataFrame: the mean Jensen-Shannon divergence over images (Tables A.1-A.3)."""
        return self._frame(self.jsd.mean(axis=2))

    def jsd_sd(self):
        """``(M, M)`` DataFrame: the standard deviation of the divergences over images (ddof 1)."""
        return self._frame(self.jsd.std(axis=2, ddof=1) if self.jsd.shape[2] > 1 else np.zeros(self.jsd.shape[:2]))


def compare_attribution_maps(maps) -> MapComparison:
    """Compare the attribution maps of every pair of models on the same images (Sec. 9.2).

    ``maps``: a mapping ``name -> (N, H, W)`` non-negative maps of the same ``N`` images (e.g. from
    :func:`dml_attribution_maps`), at least two models. Returns a :class:`MapComparison`.
    """
    names = tuple(maps)
    if len(names) < 2:
        raise ValueError(f"need the maps of at least two models to compare, got {len(names)}")
    arrays = [_as_maps(maps[name], f"maps[{name!r}]") for name in names]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("every model needs maps of the same images and size, got shapes "
                         f"{[a.shape for a in arrays]}")
    count, images = len(names), arrays[0].shape[0]
    correlations = np.ones((count, count, images))
    jsd = np.zeros((count, count, images))
    for i in range(count):
        for j in range(i + 1, count):
            correlations[i, j] = correlations[j, i] = map_correlations(arrays[i], arrays[j])
            jsd[i, j] = jsd[j, i] = jensen_shannon_divergence(arrays[i], arrays[j])
    return MapComparison(names, correlations, jsd)


def smoothgrad_class_maps(model: nn.Module, images, target, *, samples: int = SMOOTHGRAD_SAMPLES,
                          sigma_fraction: float = SMOOTHGRAD_SIGMA_FRACTION, clip_percentile: float = 99.0,
                          seed: int = 0, samples_batch_size: int | None = None) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017; Eq. 9.2) of a classifier's output ``target`` (the usual setting of
    the method, which Ch. 9 transfers to embeddings), post-processed as in Sec. 9.1.

    ``model``: ``(B, 3, H, W)`` float images in its input scale -> ``(B, C)`` outputs; ``images``
    ``(N, 3, H, W)`` tensor; ``target``: one class or ``(N,)`` classes. The noise's standard deviation is
    ``sigma_fraction * (max - min)`` of each image, its generator seeded by ``seed + i`` for image ``i``;
    ``samples_batch_size`` noisy copies go through the model at once (default: all ``samples``; lower it for
    large inputs to bound memory). Returns maps ``(N, H, W)`` in [0, 1].
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        from captum.attr import NoiseTunnel, Saliency

    if samples < 1 or sigma_fraction < 0:
        raise ValueError(f"samples must be >= 1 and sigma_fraction >= 0, got {samples} and {sigma_fraction}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be an (N, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    images = images.float()
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    target = target.expand(len(images)) if target.numel() == 1 else target
    if target.shape != (len(images),):
        raise ValueError(f"target must be one class or one per image ({len(images)}), got {tuple(target.shape)}")
    was_training = model.training
    model.eval()
    tunnel = NoiseTunnel(Saliency(model))
    gradients = torch.empty_like(images)
    try:
        for i in range(len(images)):
            image = images[i:i + 1]
            torch.manual_seed(seed + i)
            gradients[i] = tunnel.attribute(image, nt_type="smoothgrad", nt_samples=samples,
                                            stdevs=sigma_fraction * float(image.max() - image.min()),
                                            target=int(target[i]), abs=False,
                                            nt_samples_batch_size=samples_batch_size or samples)[0]
    finally:
        model.train(was_training)
    return postprocess_saliency(gradients, clip_percentile=clip_percentile)

"""Latent adversarial debiasing (LAD, Darlow 2022, Ch. 5) and the one-pixel problem (Sec. 5.3).

* :func:`add_class_pixels`: the one-pixel problem (Sec. 5.3.2): pixel ``k`` of the first row of every
  training image of class ``k`` is set to a fixed value, a spurious signal that encodes the label.
* :func:`gradient_ratio`: Eq. 5.1, the mean over examples of ``||dL/dz+||_2 / ||dL/dz-||_2``, the norm of the
  loss gradient on the causal pixels over that on the spurious pixels.
* :class:`LatentClassifier`: the constrained "simple" classifier ``f`` on the quantised latents (Eq. 5.3),
  one hidden layer of 100 units (Sec. 5.6.1).
* :func:`prediction_entropy`, :func:`standardised_step` (Eq. 5.6) and :func:`qe_walk` (Algorithm 1, the
  quantisation-constrained entropy-targeted walk maximising Eq. 5.5).
* :func:`debias_images`: encode, walk, decode (Eq. 5.7): the images ``x_delta`` a strong classifier trains on.
* Diagnostics of a walk: :func:`changed_code_fractions` (codes changed at digit vs background positions of
  the latent grid) and :func:`colour_predictability` (how well colour statistics alone still tell the class).
* Where the failure of a walk lies: :func:`code_attribute_information` (does a code at a digit position also
  carry the colour?), :func:`entropy_gradient_location` (where on the grid the walk's gradient is),
  :func:`masked_position_accuracies` (where ``f`` reads the class from) and :func:`cell_palette_colours`
  (which palette colour each cell of a decoded image shows).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ONE_PIXEL_NETWORKS", "WALK_VARIANTS", "LatentClassifier", "one_pixel_network", "add_class_pixels",
           "cell_palette_colours", "code_attribute_information", "entropy_gradient_location",
           "masked_position_accuracies", "changed_code_fractions", "class_pixel_mask", "code_margins", "colour_predictability", "debias_images", "digit_cells",
           "gradient_ratio", "input_gradient_norms", "prediction_entropy", "qe_walk", "standardised_step",
           "train_latent_classifier", "walk_latents"]

#: The two readings of Algorithm 1: ``per-step`` quantises ``h_delta`` after every step, as Algorithm 1
#: writes it (the default); ``accumulate`` adds the steps up in a continuous ``h + delta`` and quantises it
#: only where ``f`` reads it and at the end, as Eq. 5.5 can be read.
WALK_VARIANTS = ("per-step", "accumulate")


def class_pixel_mask(num_classes: int, height: int, width: int) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the spurious pixels of the one-pixel problem: the first ``num_classes``
    pixels of the first row."""
    if num_classes > width:
        raise ValueError(f"the first row has {width} pixels, too few to encode {num_classes} classes; use wider images")
    mask = np.zeros((height, width), dtype=bool)
    mask[0, :num_classes] = True
    return mask


def add_class_pixels(images: np.ndarray, labels: np.ndarray, num_classes: int, value: float = 1.0) -> np.ndarray:
    """The one-pixel problem (Sec. 5.3.2): a copy of float images ``(N, H, W)`` or ``(N, C, H, W)`` with pixel
    ``k`` of the first row set to ``value`` (all channels) for every image of class ``k``. Labels ``(N,)``."""
    images, labels = np.array(images, dtype=np.float32, copy=True), np.asarray(labels)
    if images.ndim not in (3, 4) or labels.shape != (images.shape[0],):
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W) with labels (N,), got {images.shape}, {labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    class_pixel_mask(num_classes, images.shape[-2], images.shape[-1])       # validates the width
    images[np.arange(len(labels)), ..., 0, labels] = value
    return images


def input_gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         spurious_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example L2 norms of the cross-entropy gradient w.r.t. the causal pixels (outside ``spurious_mask``)
    and the spurious pixels (inside): two ``(B,)`` tensors. ``images`` ``(B, C, H, W)``, ``spurious_mask``
    ``(H, W)`` bool. The loss is summed over the batch, so each example's gradient is its own (the model must
    not mix examples, e.g. no batch normalisation in training mode)."""
    images = images.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(images), labels, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, images)
    squared = gradient.pow(2).sum(dim=1)                                    # (B, H, W)
    mask = spurious_mask.to(squared.device)
    return squared[:, ~mask].sum(1).sqrt(), squared[:, mask].sum(1).sqrt()


def gradient_ratio(causal_norms: torch.Tensor, spurious_norms: torch.Tensor, eps: float = 1e-12) -> float:
    """Eq. 5.1: ``GR(z+, z-) = mean_i ||dL/dz+_i|| / ||dL/dz-_i||``. Above 1 the gradient favours the causal
    signal, below 1 the spurious one."""
    if causal_norms.shape != spurious_norms.shape or causal_norms.ndim != 1:
        raise ValueError("causal and spurious norms must be (B,) tensors of the same length")
    return float((causal_norms / spurious_norms.clamp_min(eps)).mean())


ONE_PIXEL_NETWORKS = ("mlp", "cnn")


def one_pixel_network(kind: str, image_size: int, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A network for the one-pixel problem (the thesis does not name its own): ``mlp``, one hidden layer of
    100 units; ``cnn``, three 3x3 convolutions (16, 32, 64 channels, the last two with stride 2, no pooling and
    no batch normalisation, so that per-example input gradients stay separate) and a linear layer. Input
    ``(B, C, S, S)``, logits ``(B, num_classes)``."""
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, 100), nn.ReLU(),
                             nn.Linear(100, num_classes))
    if kind == "cnn":
        reduced = -(-(-(-image_size // 2)) // 2)
        return nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                             nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                             nn.Flatten(), nn.Linear(64 * reduced ** 2, num_classes))
    raise ValueError(f"unknown one-pixel network {kind!r}; choose one of {ONE_PIXEL_NETWORKS}")


class LatentClassifier(nn.Module):
    """The "simple" classifier ``f`` of Eq. 5.3: flatten the latent grid ``(B, D, H, W)``, one hidden layer of
    ``hidden`` units (100 in Sec. 5.6.1) with ReLU, logits ``(B, num_classes)``."""

    def __init__(self, latent_shape: tuple[int, int, int], num_classes: int = 10, hidden: int = 100):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(latent_shape)), hidden), nn.ReLU(),
                                    nn.Linear(hidden, num_classes))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if tuple(latents.shape[1:]) != self.latent_shape:
            raise ValueError(f"latents must be (B, {self.latent_shape}), got {tuple(latents.shape)}")
        return self.layers(latents)


def train_latent_classifier(latents: torch.Tensor, labels: torch.Tensor, *, hidden: int = 100, epochs: int = 10,
                            batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0,
                            sparsity: float = 0.0) -> LatentClassifier:
    """Fit :class:`LatentClassifier` on quantised latents ``(N, D, H, W)`` with cross-entropy (Adam).

    ``sparsity``: weight ``lambda`` of an L1 penalty ``lambda * sum |W_1|`` on the first layer's weights, one
    way to "constrain" ``f`` (Sec. 5.5; the thesis does not say how): it drives to 0 the weights on inputs that
    ``f`` does not need, so that ``f`` and its entropy gradient rest on the fewest, easiest inputs."""
    from domainknowledge.training import train_epochs

    if sparsity < 0:
        raise ValueError(f"sparsity must be >= 0, got {sparsity}")
    torch.manual_seed(seed)
    model = LatentClassifier(tuple(latents.shape[1:]), int(labels.max()) + 1, hidden)
    first_layer = model.layers[1].weight

    def batch_loss(batch, step):
        loss = F.cross_entropy(model(latents[batch]), labels[batch])
        return loss + sparsity * first_layer.abs().sum() if sparsity else loss

    train_epochs(model, batch_loss, examples=len(latents), epochs=epochs, batch_size=batch_size,
                 learning_rate=learning_rate, generator=torch.Generator().manual_seed(seed))
    return model


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the softmax of logits ``(B, K)``: ``(B,)``, between 0 and ``log K``."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def standardised_step(gradient: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 5.6: ``alpha * (g - mean(g)) / std(g)`` with mean and std over each example's whole gradient
    ``(B, ...)``, so every example moves by about the same length. The thesis' Algorithm 1 multiplies by
    ``alpha`` a second time; the erratum is resolved by applying ``alpha`` once, here."""
    flat = gradient.reshape(gradient.shape[0], -1)
    standardised = (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True).clamp_min(1e-12)
    return alpha * standardised.reshape(gradient.shape)


def qe_walk(latents: torch.Tensor, classifier: nn.Module, quantise, *, steps: int, alpha: float,
            accumulate: bool = False, return_entropies: bool = False):
    """Algorithm 1, the quantisation-constrained entropy-targeted walk (QE-walk), maximising Eq. 5.5.

    ``latents`` ``(B, D, H, W)``: the quantised latents ``h`` of a batch; ``classifier``: ``f``;
    ``quantise``: maps a latent grid to its nearest codes (the VQ-VAE's quantiser). Each of ``steps`` steps
    computes the entropy ``H(f(quantise(h + delta)))`` and its gradient at the quantised point, and adds the
    standardised step of Eq. 5.6.

    ``accumulate=False`` (the default, ``per-step`` in :data:`WALK_VARIANTS`, Algorithm 1 as written):
    ``h_delta`` is snapped back to the codebook after every step, so a step shorter than half the distance to
    the next code is undone; only positions where the standardised gradient is large move.
    ``accumulate=True`` (``accumulate``, a reading of Eq. 5.5): the steps add up in a continuous ``h + delta``
    that is quantised before every evaluation of ``f`` and at the end, so that many small steps can together
    cross to another code.

    Returns ``h_delta`` ``(B, D, H, W)`` on the codebook (and, with ``return_entropies``, the mean entropy
    before each step and after the last: ``steps + 1`` floats). The classifier's weights are not changed.
    """
    if steps < 0 or alpha <= 0:
        raise ValueError(f"need steps >= 0 and alpha > 0, got steps={steps}, alpha={alpha}")
    was_training = classifier.training
    classifier.eval()
    position = latents.detach().clone()
    entropies = []
    for _ in range(steps):
        snapped = quantise(position).detach().requires_grad_(True)
        entropy = prediction_entropy(classifier(snapped))
        (gradient,) = torch.autograd.grad(entropy.sum(), snapped)
        entropies.append(entropy.mean().item())
        with torch.no_grad():
            position = (position if accumulate else snapped.detach()) + standardised_step(gradient, alpha)
    with torch.no_grad():
        walked = quantise(position)
        entropies.append(prediction_entropy(classifier(walked)).mean().item())
    classifier.train(was_training)
    return (walked, entropies) if return_entropies else walked


@torch.no_grad()
def _encode_quantised(vqvae, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([vqvae.quantise(vqvae.encode(images[i:i + batch_size])) for i in range(0, len(images), batch_size)])


def walk_latents(latents: torch.Tensor, classifier: nn.Module, quantise, *, steps: int, alpha: float,
                 accumulate: bool = False, batch_size: int = 256) -> tuple[torch.Tensor, float, float]:
    """:func:`qe_walk` over quantised latents ``(N, D, H, W)`` in batches: ``(h_delta (N, D, H, W), mean
    entropy of f before, after the walk)``."""
    walked, before, after = [], 0.0, 0.0
    for start in range(0, len(latents), batch_size):
        batch = latents[start:start + batch_size]
        moved, entropies = qe_walk(batch, classifier, quantise, steps=steps, alpha=alpha, accumulate=accumulate,
                                   return_entropies=True)
        walked.append(moved)
        before += entropies[0] * len(batch)
        after += entropies[-1] * len(batch)
    return torch.cat(walked), before / len(latents), after / len(latents)


def debias_images(vqvae, classifier: nn.Module, images: torch.Tensor, *, steps: int, alpha: float,
                  accumulate: bool = False, batch_size: int = 256) -> tuple[torch.Tensor, float, float]:
    """LAD's data (Eq. 5.7): ``x_delta = dec(QE-walk(quantise(enc(x))))`` for float images ``(N, C, S, S)`` in
    [0, 1]. Returns ``(x_delta (N, C, S, S) in [0, 1], mean entropy of f before, after the walk)``."""
    quantise = lambda latents: vqvae.quantizer(latents)[1]                  # noqa: E731  (nearest codes)
    latents = _encode_quantised(vqvae, images, batch_size)
    walked, before, after = walk_latents(latents, classifier, quantise, steps=steps, alpha=alpha,
                                         accumulate=accumulate, batch_size=batch_size)
    with torch.no_grad():
        decoded = torch.cat([vqvae.decode(walked[i:i + batch_size]) for i in range(0, len(walked), batch_size)])
    return decoded, before, after

def digit_cells(glyphs: np.ndarray, grid: int, threshold: float = 0.5) -> np.ndarray:
    """Boolean ``(N, grid, grid)``: latent positions whose patch of the glyph ``(N, S, S)`` in [0, 1] holds a
    stroke pixel (above ``threshold``); ``S`` must be a multiple of ``grid`` (a 28-px digit on the 7 x 7 grid of
    a two-step VQ-VAE: 4 x 4 px patches). The rest are background positions."""
    glyphs = np.asarray(glyphs)
    if glyphs.ndim != 3 or glyphs.shape[1] != glyphs.shape[2] or glyphs.shape[1] % grid:
        raise ValueError(f"glyphs must be (N, S, S) with S a multiple of {grid}, got {glyphs.shape}")
    patch = glyphs.shape[1] // grid
    return (glyphs.reshape(len(glyphs), grid, patch, grid, patch) > threshold).any(axis=(2, 4))


def changed_code_fractions(before: torch.Tensor, after: torch.Tensor, digit_mask: np.ndarray) -> dict[str, float]:
    """Fraction of latent positions whose code the walk changed, at digit and at background positions:
    code indices ``before`` and ``after`` ``(N, H, W)``, ``digit_mask`` ``(N, H, W)`` bool (:func:`digit_cells`).
    A walk that removes a background colour and keeps the digit changes background positions and leaves
    digit positions alone."""
    changed = (torch.as_tensor(before) != torch.as_tensor(after)).numpy()
    mask = np.asarray(digit_mask, dtype=bool)
    if changed.shape != mask.shape:
        raise ValueError(f"code grids {changed.shape} and digit mask {mask.shape} differ")
    return {"digit": float(changed[mask].mean()) if mask.any() else float("nan"),
            "background": float(changed[~mask].mean()) if (~mask).any() else float("nan")}


def code_margins(codebook: torch.Tensor, indices: torch.Tensor, digit_mask: np.ndarray) -> dict[str, float]:
    """How far a per-step walk must move a code to change it: for each latent position, the Euclidean
    distance from its code to the nearest other code of ``codebook`` ``(K, D)``, averaged over the digit and
    the background positions of ``indices`` ``(N, H, W)`` (``digit_mask`` as in :func:`changed_code_fractions`).
    Codes with small margins flip first under Algorithm 1's snap."""
    with torch.no_grad():
        distances = torch.cdist(codebook, codebook)
        distances.fill_diagonal_(float("inf"))
        margins = distances.min(1).values[torch.as_tensor(indices)].numpy()
    mask = np.asarray(digit_mask, dtype=bool)
    return {"digit": float(margins[mask].mean()) if mask.any() else float("nan"),
            "background": float(margins[~mask].mean()) if (~mask).any() else float("nan")}


def colour_predictability(images: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> float:
    """How well colour alone tells the class: the 2-fold cross-validated accuracy of a logistic regression
    on each image's colour statistics (per channel: mean and the 10, 50 and 90 % quantiles; 12 numbers, no
    shape), for float images ``(N, S, S, 3)`` and labels ``(N,)``. Chance is ``1 / classes``; on 100 %
    colour-biased data it is near 1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pixels = np.asarray(images, dtype=np.float32).reshape(len(images), -1, 3)
    features = np.concatenate([pixels.mean(1), np.quantile(pixels, [0.1, 0.5, 0.9], axis=1).transpose(1, 0, 2)
                               .reshape(len(images), -1)], axis=1)
    folds = StratifiedKFold(2, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(cross_val_score(model, features, np.asarray(labels), cv=folds).mean())


def _split_by_mask(values: np.ndarray, digit_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(digit_mask, dtype=bool)
    if values.shape[:mask.ndim] != mask.shape:
        raise ValueError(f"values {values.shape} and digit mask {mask.shape} differ")
    return values[mask], values[~mask]


def _mutual_information(first: np.ndarray, second: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two paired arrays of non-negative integers ``(M,)``."""
    if not len(first):
        return float("nan")
    joint = np.zeros((int(first.max()) + 1, int(second.max()) + 1))
    np.add.at(joint, (first, second), 1.0)
    joint /= joint.sum()
    product = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
    present = joint > 0
    return float((joint[present] * np.log(joint[present] / product[present])).sum())


def code_attribute_information(codes, attributes, digit_mask: np.ndarray) -> dict[str, float]:
    """How much a latent code says about the image's spurious attribute, at digit and at background positions:
    the mutual information (nats; at most ``ln 10`` for ten colours) between the code index at a position and
    the attribute (colour) index of its image, pooled over the positions of each kind. Code indices ``(N, H,
    W)``, attributes ``(N,)`` non-negative ints, ``digit_mask`` ``(N, H, W)`` bool (:func:`digit_cells`).

    On background-coloured digits a background code must carry the colour (near ``ln 10``). If codes at digit
    positions carry it too ("stroke on red"), no code change can recolour a digit position without also
    redrawing its stroke; near 0 they are colour-free strokes and the decoder takes the colour from the
    neighbours."""
    codes = np.asarray(torch.as_tensor(codes)).astype(np.int64)
    attributes = np.asarray(attributes).astype(np.int64)
    if codes.ndim != 3 or attributes.shape != (codes.shape[0],) or attributes.min() < 0:
        raise ValueError(f"need code indices (N, H, W) and non-negative attributes (N,), got {codes.shape}, {attributes.shape}")
    per_position = np.broadcast_to(attributes[:, None, None], codes.shape)
    (digit_codes, background_codes), (digit_attributes, background_attributes) = (
        _split_by_mask(codes, digit_mask), _split_by_mask(per_position, digit_mask))
    return {"digit": _mutual_information(digit_codes, digit_attributes),
            "background": _mutual_information(background_codes, background_attributes)}


def entropy_gradient_location(classifier: nn.Module, latents: torch.Tensor, digit_mask: np.ndarray) -> dict[str, float]:
    """Where the walk's first step goes: the gradient ``dH/dh`` of ``f``'s entropy (Eq. 5.5) at quantised
    latents ``(N, D, H, W)``, its squared norm per position summed over ``D``. Returns ``{"digit": share of the
    summed squared gradient at digit positions, "digit positions": share of positions that are digit positions,
    "ratio": mean squared gradient per digit position / per background position}``. A ``ratio`` above 1 means
    that the standardised step of Eq. 5.6 is larger at a digit position than at a background one."""
    was_training = classifier.training
    classifier.eval()
    point = latents.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(prediction_entropy(classifier(point)).sum(), point)
    classifier.train(was_training)
    squared = gradient.pow(2).sum(1).numpy()                                 # (N, H, W)
    digit, background = _split_by_mask(squared, digit_mask)
    total = squared.sum()
    return {"digit": float(digit.sum() / total) if total > 0 else float("nan"),
            "digit positions": float(np.asarray(digit_mask, dtype=bool).mean()),
            "ratio": float(digit.mean() / background.mean()) if len(digit) and background.mean() > 0 else float("nan")}


@torch.no_grad()
def masked_position_accuracies(classifier: nn.Module, latents: torch.Tensor, labels, digit_mask: np.ndarray,
                               fill: torch.Tensor) -> dict[str, float]:
    """Where ``f`` reads the class from: its accuracy on latents ``(N, D, H, W)`` with every digit position
    replaced by the vector ``fill`` ``(D,)`` (``"background only"``), with every background position replaced
    (``"digit only"``), and unchanged (``"all"``). Labels ``(N,)``; ``digit_mask`` ``(N, H, W)`` bool."""
    mask = torch.as_tensor(np.asarray(digit_mask, dtype=bool))[:, None]
    if mask.shape[0] != latents.shape[0] or mask.shape[2:] != latents.shape[2:]:
        raise ValueError(f"digit mask {tuple(mask.shape)} does not match latents {tuple(latents.shape)}")
    fill = torch.as_tensor(fill, dtype=latents.dtype).reshape(1, -1, 1, 1)
    labels = torch.as_tensor(labels)
    accuracy = lambda grid: float((classifier(grid).argmax(1) == labels).float().mean())    # noqa: E731
    return {"all": accuracy(latents), "background only": accuracy(torch.where(mask, fill, latents)),
            "digit only": accuracy(torch.where(mask, latents, fill))}


def cell_palette_colours(images: np.ndarray, grid: int, palette: np.ndarray) -> np.ndarray:
    """The palette colour each latent cell of a decoded image shows: images ``(N, S, S, 3)`` in [0, 1], cut into
    ``grid x grid`` patches; each patch's mean colour is mapped to the nearest of ``palette`` ``(K, 3)``.
    Returns palette indices ``(N, grid, grid)``. On background cells of background-coloured digits this says
    whether the walk recoloured the background or left the class colour."""
    images, palette = np.asarray(images, dtype=np.float32), np.asarray(palette, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] % grid or palette.ndim != 2:
        raise ValueError(f"images must be (N, S, S, 3) with S a multiple of {grid} and palette (K, 3)")
    patch = images.shape[1] // grid
    means = images.reshape(len(images), grid, patch, grid, patch, 3).mean(axis=(2, 4))
    return np.linalg.norm(means[..., None, :] - palette, axis=-1).argmin(-1)

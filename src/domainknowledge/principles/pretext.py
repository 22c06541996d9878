"""Self-supervised pretext objectives and the fine-tuning loss of Kobs (2023), Ch. 16.

Aesthetic-aware pretext tasks (Sec. 16.1.3), on a batch of ``N`` images made of *groups*: one base image
(the original, distortion ``-1``, level 0) and distorted variants of it, each with a distortion index ``d``
(the position in :data:`~domainknowledge.principles.distortions.CATALOGUE`) and an intensity level ``i``:

* :func:`ranking_pairs` and :func:`margin_ranking_loss`: Eq. 16.1 with its sign corrected (see below);
* :func:`distortion_classification_loss`: Eq. 16.2, three heads (technical, style, composition);
* :func:`intensity_regression_loss`: Eq. 16.3, squared error only at the applied distortion's output;
* :func:`balanced_sum`: the balanced multitask loss of Liang and Zhang, ``h(x) = exp(x / t)`` (Eqs. 16.4-16.5).

Each task loss is a sum over the images (or pairs) of one group, as the thesis writes it "for one image",
averaged over the groups of the batch.

**Erratum, Eq. 16.1.** The thesis prints ``max(0, (f(I_i) - f(I_j)) - m)`` for ``|i| < |j|``, which would
push the *less* distorted image down. RankIQA (Liu et al. 2017), which the thesis follows, and the thesis' own
text ("output higher scores for less distorted pictures") need ``max(0, m - (f(I_i) - f(I_j)))``: zero once the
less distorted image outscores the more distorted one by the margin ``m``. The printed condition
``sign(i) = sign(j)`` would also exclude the original (``i = 0``, sign 0); the original is ranked above every
variant, as in the thesis' code.

Baselines (Sec. 16.2.4): :func:`rotation_batch` and :func:`rotation_loss` (RotNet, Gidaris et al. 2018) and
:func:`nt_xent_loss` with :func:`simclr_views` (SimCLR, Chen et al. 2020).

Fine-tuning (Sec. 16.2.5): :func:`emd_loss`, the Earth Mover's Distance loss of NIMA (Talebi and Milanfar
2018) with ``r = 2`` over the ten score bins, and :func:`mean_score`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["BALANCE_TEMPERATURE", "RANKING_MARGIN", "balanced_sum", "distortion_classification_loss", "emd_loss", "expected_chance_accuracy",
           "intensity_regression_loss", "margin_ranking_loss", "mean_score", "nt_xent_loss", "ranking_pairs",
           "rotation_batch", "rotation_loss", "simclr_views"]

RANKING_MARGIN = 0.2          # m, Sec. 16.2.3
BALANCE_TEMPERATURE = 50.0    # t in h(x) = exp(x / t), Sec. 16.1.4
ORIGINAL = -1                 # distortion index of an undistorted image


def _check_vector(name: str, tensor: torch.Tensor, length: int | None = None) -> None:
    if tensor.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (N,), got shape {tuple(tensor.shape)}")
    if length is not None and tensor.shape[0] != length:
        raise ValueError(f"{name} has {tensor.shape[0]} entries, expected {length}")


def ranking_pairs(group: torch.Tensor, distortion: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs of Eq. 16.1 (corrected): ``(better, worse)`` index tensors ``(P,)`` into a batch of ``N`` images.

    ``group``, ``distortion``, ``level``: ``(N,)`` int tensors (``distortion = -1`` marks the original).
    A pair is two images of the same group where either the first is the original and the second any
    variant, or both carry the same distortion with the same sign and ``|level_first| < |level_second|``.
    """
    for name, tensor in (("group", group), ("distortion", distortion), ("level", level)):
        _check_vector(name, tensor, group.shape[0])
    same_group = group[:, None] == group[None, :]
    original_first = (distortion[:, None] == ORIGINAL) & (distortion[None, :] != ORIGINAL)
    same_distortion = (distortion[:, None] == distortion[None, :]) & (distortion[:, None] != ORIGINAL)
    same_sign = torch.sign(level)[:, None] == torch.sign(level)[None, :]
    weaker = level.abs()[:, None] < level.abs()[None, :]
    mask = same_group & (original_first | (same_distortion & same_sign & weaker))
    better, worse = mask.nonzero(as_tuple=True)
    return better, worse


def margin_ranking_loss(scores: torch.Tensor, better: torch.Tensor, worse: torch.Tensor, num_groups: int,
                        margin: float = RANKING_MARGIN) -> torch.Tensor:
    """Eq. 16.1, sign corrected: ``sum over pairs max(0, m - (f(I_better) - f(I_worse)))``, per group averaged.

    ``scores``: ``(N,)`` ranking outputs in [0, 1] (sigmoid); ``better``, ``worse``: ``(P,)`` from
    :func:`ranking_pairs`; ``num_groups``: the number of base images in the batch. Returns a scalar.
    """
    _check_vector("scores", scores)
    if num_groups < 1:
        raise ValueError(f"num_groups must be at least 1, got {num_groups}")
    hinge = torch.clamp(margin - (scores[better] - scores[worse]), min=0.0)
    return hinge.sum() / num_groups


def distortion_classification_loss(logits: list[torch.Tensor] | tuple[torch.Tensor, ...], aspect: torch.Tensor,
                                   target: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Eq. 16.2: cross-entropy of each distorted image's aspect head against its distortion, per group averaged.

    ``logits``: three tensors ``(N, |D_a|)`` (technical, style, composition heads); ``aspect``: ``(N,)`` the
    aspect index of each image's distortion (-1 for originals, which no head is trained on); ``target``:
    ``(N,)`` the class within the aspect.
    """
    _check_vector("aspect", aspect)
    _check_vector("target", target, aspect.shape[0])
    total = logits[0].new_zeros(())
    for index, head in enumerate(logits):
        rows = aspect == index
        if rows.any():
            if int(target[rows].max()) >= head.shape[1]:
                raise ValueError(f"a target class exceeds the {head.shape[1]} outputs of head {index}")
            total = total + F.cross_entropy(head[rows], target[rows], reduction="sum")
    return total / num_groups


def intensity_regression_loss(outputs: torch.Tensor, distortion: torch.Tensor, intensity: torch.Tensor,
                              num_groups: int) -> torch.Tensor:
    """Eq. 16.3: ``sum (f_regr(I)_d - norm(i))^2`` over images, only at the applied distortion's output ``d``.

    ``outputs``: ``(N, |D_all|)``; ``distortion``: ``(N,)`` indices (the original of a group carries the
    group's distortion with ``norm(0) = 0``); ``intensity``: ``(N,)`` normalised intensities in [-1, 1].
    """
    if outputs.ndim != 2:
        raise ValueError(f"outputs must have shape (N, |D_all|), got {tuple(outputs.shape)}")
    _check_vector("distortion", distortion, outputs.shape[0])
    _check_vector("intensity", intensity, outputs.shape[0])
    if (distortion < 0).any() or (distortion >= outputs.shape[1]).any():
        raise ValueError(f"distortion indices must lie in 0..{outputs.shape[1] - 1}")
    predicted = outputs.gather(1, distortion[:, None]).squeeze(1)
    return ((predicted - intensity) ** 2).sum() / num_groups


def balanced_sum(losses, temperature: float = BALANCE_TEMPERATURE) -> torch.Tensor:
    """Liang and Zhang's balanced multitask loss: ``sum_k h(L_k)`` with ``h(x) = exp(x / t)`` (Eqs. 16.4-16.5).

    The gradient of task ``k`` is weighted by ``h'(L_k) = exp(L_k / t) / t``: tasks with larger losses get
    larger weights. ``losses``: an iterable of scalar tensors.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    losses = list(losses)
    if not losses:
        raise ValueError("balanced_sum needs at least one loss")
    return torch.stack([torch.exp(loss / temperature) for loss in losses]).sum()


def rotation_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RotNet's input: every image ``(B, C, H, W)`` (square) at 0, 90, 180 and 270 degrees -> ``(4B, C, H, W)``
    and the rotation classes ``(4B,)`` int64 in 0..3."""
    if images.ndim != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be square (B, C, H, H), got {tuple(images.shape)}")
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4).repeat_interleave(images.shape[0])
    return rotated, labels


def rotation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """RotNet's objective: cross-entropy of the 4-way rotation logits ``(4B, 4)`` against ``(4B,)`` labels."""
    return F.cross_entropy(logits, labels)


def nt_xent_loss(first: torch.Tensor, second: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy for projections of two views ``(B, D)`` each.

    For each of the ``2B`` views the positive is the other view of its image and the negatives are the other
    ``2B - 2`` views; cosine similarities are divided by ``temperature``.
    """
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"the two views must be (B, D) of equal shape, got {tuple(first.shape)} and {tuple(second.shape)}")
    batch = first.shape[0]
    z = F.normalize(torch.cat([first, second]), dim=1)
    similarity = z @ z.T / temperature
    similarity = similarity.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(similarity, positives)


def _uniform(generator: torch.Generator, n: int, low: float, high: float, device) -> torch.Tensor:
    return (low + (high - low) * torch.rand(n, generator=generator)).to(device)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of ``(B, 3, H, W)`` images as ``(B, 1, H, W)`` (torchvision's ``rgb_to_grayscale``)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _random_resized_crops(x: torch.Tensor, generator: torch.Generator, scale=(0.2, 1.0),
                          ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Per image a crop of a random share ``scale`` of the area and aspect ratio ``ratio`` (log-uniform),
    mirrored with probability 1/2, resampled bilinearly to the input size: ``(B, C, H, W)`` -> same shape."""
    b, device = x.shape[0], x.device
    area = _uniform(generator, b, *scale, device)
    aspect = torch.exp(_uniform(generator, b, math.log(ratio[0]), math.log(ratio[1]), device))
    width, height = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    centre_x = (1 - width) * (2 * _uniform(generator, b, 0, 1, device) - 1)
    centre_y = (1 - height) * (2 * _uniform(generator, b, 0, 1, device) - 1)
    mirror = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0).to(device)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _colour_jitter(x: torch.Tensor, generator: torch.Generator, strength=(0.4, 0.4, 0.4, 0.1)) -> torch.Tensor:
    """Brightness, contrast and saturation factors in ``[1 - s, 1 + s]`` and a hue rotation of up to ``0.1``
    turns (in YIQ space), each drawn per image, on ``(B, 3, H, W)`` images in [0, 1]."""
    b, device = x.shape[0], x.device
    brightness, contrast, saturation, hue = strength
    view = lambda values: values.view(b, 1, 1, 1)  # noqa: E731
    x = (x * view(_uniform(generator, b, 1 - brightness, 1 + brightness, device))).clamp(0, 1)
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * view(_uniform(generator, b, 1 - contrast, 1 + contrast, device)) + mean).clamp(0, 1)
    grey = _grey(x)
    x = ((x - grey) * view(_uniform(generator, b, 1 - saturation, 1 + saturation, device)) + grey).clamp(0, 1)
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=device)
    angle = 2 * math.pi * _uniform(generator, b, -hue, hue, device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(b, 3, 3, device=device)
    rotation[:, 0, 0], rotation[:, 1, 1], rotation[:, 2, 2] = 1.0, cos, cos
    rotation[:, 1, 2], rotation[:, 2, 1] = -sin, sin
    transform = torch.linalg.inv(to_yiq) @ rotation @ to_yiq                       # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", transform, x).clamp(0, 1)


def _simclr_view(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    x = _random_resized_crops(x, generator)
    jitter = (torch.rand(b, generator=generator) < 0.8).to(x.device).view(b, 1, 1, 1)
    x = torch.where(jitter, _colour_jitter(x, generator), x)
    grey = (torch.rand(b, generator=generator) < 0.2).to(x.device).view(b, 1, 1, 1)
    return torch.where(grey, _grey(x).expand_as(x), x)


def simclr_views(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCLR's two augmented views of every image, made for the whole batch at once on the images' device.

    ``images``: ``(B, 3, H, W)``, uint8 or float in 0..255 -> two float ``(B, 3, H, W)`` in 0..255. Each view is
    a random resized crop (20-100 % of the area, aspect 3/4-4/3) mirrored with probability 1/2, colour jitter
    (brightness, contrast, saturation 0.4, hue 0.1) with probability 0.8 and greyscale with probability 0.2,
    as in Chen et al. (2020) without the blur they use on ImageNet (and a crop of at least 20 %, not 8 %, of
    the small images). Every random draw comes from ``generator`` (a CPU generator), so the views are
    reproducible on any device. The jitter applies its four changes in a fixed order (torchvision draws the
    order per call).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    x = images.float() / 255.0
    return _simclr_view(x, generator) * 255.0, _simclr_view(x, generator) * 255.0


def emd_loss(predicted: torch.Tensor, target: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    """NIMA's Earth Mover's Distance loss, averaged over the batch.

    ``EMD(p, p_hat) = ( (1/K) sum_k |CDF_p(k) - CDF_p_hat(k)|^r )^(1/r)`` with ``K = 10`` score bins and
    ``r = 2`` (Talebi and Milanfar 2018, Eq. 1). ``predicted``, ``target``: ``(B, K)`` distributions (rows
    summing to one). Two point masses ``k`` bins apart are ``(k / K)^(1/r)`` apart.
    """
    if predicted.shape != target.shape or predicted.ndim != 2:
        raise ValueError(f"predicted and target must both be (B, K), got {tuple(predicted.shape)} and {tuple(target.shape)}")
    if r <= 0:
        raise ValueError(f"r must be positive, got {r}")
    difference = torch.cumsum(predicted, dim=1) - torch.cumsum(target, dim=1)
    per_example = difference.abs().pow(r).mean(dim=1).clamp_min(1e-12).pow(1.0 / r)
    return per_example.mean()


def mean_score(distribution: torch.Tensor) -> torch.Tensor:
    """Expected score ``sum_k k p_k`` of distributions ``(B, 10)`` over scores 1..10 -> ``(B,)`` (Sec. 16.2.6)."""
    if distribution.ndim != 2:
        raise ValueError(f"distribution must be (B, K), got {tuple(distribution.shape)}")
    scores = torch.arange(1, distribution.shape[1] + 1, dtype=distribution.dtype, device=distribution.device)
    return distribution @ scores


def expected_chance_accuracy(num_classes: int) -> float:
    """Accuracy of a uniform random guess among ``num_classes`` (the random baseline of Table 16.4)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    return 1.0 / num_classes


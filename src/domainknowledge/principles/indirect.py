"""InDiReCT: language-guided zero-shot deep metric learning (Kobs 2023, Ch. 13; Kobs et al., WACV 2023).

A similarity notion ("two cars are similar if they have the same colour") is described by ``n`` text prompts
that vary only in that notion ("a red car", "a blue car", ...). A frozen image-text encoder embeds them as
rows ``t_i`` (1 x r). InDiReCT learns a matrix ``U`` (r x r') that keeps the directions in which the prompts
vary, by reconstructing the prompts through ``U`` on the unit sphere:

    t_i^norm  = t_i / ||t_i||                                              (Eq. 13.1)
    t'_i      = t_i^norm U / ||t_i^norm U||                                (Eq. 13.2)
    t_i^recon = t'_i U^T / ||t'_i U^T||                                    (Eq. 13.3)
    L         = 1/n sum_i arccos(t_i^norm . t_i^recon)                     (Eq. 13.4)

Images are embedded by the frozen image tower and projected by the same ``U`` (Eqs. 13.5-13.6):
``v'_i = v_i^norm U / ||v_i^norm U||``. No image and no label is used for training.

Training (Sec. 13.2): ``U ~ N(0, 0.1)`` (0.1 read as the standard deviation), Adam with learning rate 0.01 on
all prompts at once, stopped when ``L`` has not improved for 100 consecutive iterations; the best ``U`` is kept.
``arccos`` is evaluated on the cosine clamped to ``[-1 + 1e-7, 1 - 1e-7]`` (the authors' ``acos_safe``), so
its gradient stays finite at a perfect reconstruction.

Baselines of Table 13.2, all mapping image embeddings ``(m, r)`` to unit rows ``(m, r')``:

* :func:`random_embeddings`: unit vectors drawn uniformly on the sphere, ignoring the images;
* raw embeddings: the encoder's own ``(m, r)`` unit rows (no function needed);
* :func:`random_projection`: ``U`` as initialised, never trained;
* :func:`fit_pca`: principal components of the normalised prompt embeddings (needs ``r' < n``);
* :func:`fit_linear_autoencoder`: Eq. 13.7's linear autoencoder; images are encoded by Eq. 13.8;
* :func:`fit_autoencoder`: the same loss through two-layer encoder and decoder (512 hidden units, leaky ReLU)
  with weight decay 0.01;
* :func:`fit_oracle`: ``U`` and unit class prototypes trained with the Normalized Softmax loss (Eq. 13.9) on the
  *evaluation images and their labels*: an optimistic upper bound, not a zero-shot method.

Conventions: every function takes NumPy arrays or tensors, works in float32 on the CPU, and returns NumPy
arrays; seeds are explicit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ACOS_EPS", "FitResult", "apply_projection", "fit_autoencoder", "fit_indirect",
           "fit_linear_autoencoder", "fit_oracle", "fit_pca", "indirect_loss", "normalised_softmax_loss",
           "random_embeddings", "random_matrix", "random_projection", "retrieval_scores"]

ACOS_EPS = 1e-7
THESIS_LEARNING_RATE = 0.01
THESIS_PATIENCE = 100
THESIS_INIT_STD = 0.1
ORACLE_TEMPERATURE = 0.05


def _matrix(values, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float32) if not isinstance(values, torch.Tensor) else values)
    if tensor.ndim != 2 or tensor.shape[0] < 1 or tensor.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty 2-d array (rows x dimensions), got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return tensor.detach().float().cpu()


def _check_dim(dim: int, available: int, what: str) -> int:
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"the target dimension r' must be a positive int, got {dim!r}")
    if dim > available:
        raise ValueError(f"the target dimension r' = {dim} exceeds {what} ({available}); choose r' <= {available}")
    return int(dim)


def indirect_loss(texts: torch.Tensor, projection: torch.Tensor, eps: float = ACOS_EPS) -> torch.Tensor:
    """Eq. 13.4: the mean spherical distance between the prompts and their reconstructions through ``U``.

    ``texts`` ``(n, r)`` (normalised inside, Eq. 13.1), ``projection`` ``U`` ``(r, r')``; returns a scalar in
    radians (0: perfect reconstruction, pi/2: orthogonal). The cosine is clamped to ``[-1 + eps, 1 - eps]``.
    """
    normalised = F.normalize(texts, dim=-1)                                   # (n, r)     Eq. 13.1
    reduced = F.normalize(normalised @ projection, dim=-1)                    # (n, r')    Eq. 13.2
    reconstructed = F.normalize(reduced @ projection.T, dim=-1)               # (n, r)     Eq. 13.3
    cosine = (normalised * reconstructed).sum(dim=-1).clamp(-1 + eps, 1 - eps)
    return torch.arccos(cosine).mean()                                        # Eq. 13.4


@dataclass
class FitResult:
    """A trained transformation: ``transform`` maps image embeddings ``(m, r)`` to unit rows ``(m, r')``;
    ``losses`` holds the training loss of every iteration, ``iterations`` their count, ``best_loss`` the kept
    one; ``matrix`` the ``(r, r')`` projection where there is one."""

    name: str
    transform: Callable[[np.ndarray], np.ndarray]
    losses: list[float] = field(default_factory=list)
    matrix: np.ndarray | None = None

    @property
    def iterations(self) -> int:
        return len(self.losses)

    @property
    def best_loss(self) -> float:
        return float(min(self.losses)) if self.losses else float("nan")

    def __call__(self, images) -> np.ndarray:
        return self.transform(images)


def apply_projection(images, projection) -> np.ndarray:
    """Eqs. 13.5-13.6: ``v'_i = v_i^norm U / ||v_i^norm U||`` for image embeddings ``(m, r)`` and ``U`` ``(r, r')``;
    returns ``(m, r')`` float32 unit rows (a row that ``U`` maps to zero stays zero)."""
    images, projection = _matrix(images, "image embeddings"), _matrix(projection, "U")
    if images.shape[1] != projection.shape[0]:
        raise ValueError(f"image embeddings have {images.shape[1]} dimensions but U has {projection.shape[0]} rows; "
                         "project with the U learnt on the same encoder's text embeddings")
    return F.normalize(F.normalize(images, dim=-1) @ projection, dim=-1).numpy()


def random_matrix(dim_in: int, dim_out: int, *, seed: int, std: float = THESIS_INIT_STD) -> torch.Tensor:
    """``U`` ``(dim_in, dim_out)`` with entries drawn from ``N(0, std^2)`` by a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(dim_in, dim_out, generator=generator) * std


def _optimise(parameters, loss_fn: Callable[[], torch.Tensor], *, lr: float, patience: int, max_iterations: int,
              weight_decay: float = 0.0) -> tuple[list[float], list[torch.Tensor]]:
    """Full-batch Adam on ``loss_fn`` until the loss has not improved for ``patience`` iterations (or
    ``max_iterations``); returns the loss history and copies of the parameters at the best loss."""
    if patience < 1 or max_iterations < 1 or lr <= 0:
        raise ValueError("patience and max_iterations must be positive and lr > 0")
    optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    best, best_state, since, losses = float("inf"), [p.detach().clone() for p in parameters], 0, []
    for _ in range(max_iterations):
        loss = loss_fn()
        value = float(loss.detach())
        losses.append(value)
        if value < best:
            best, best_state, since = value, [p.detach().clone() for p in parameters], 0
        else:
            since += 1
            if since >= patience:
                break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return losses, best_state


def fit_indirect(texts, dim: int, *, seed: int, lr: float = THESIS_LEARNING_RATE, patience: int = THESIS_PATIENCE,
                 max_iterations: int = 20_000, init_std: float = THESIS_INIT_STD) -> FitResult:
    """Learn InDiReCT's ``U`` ``(r, dim)`` from the prompt embeddings ``texts`` ``(n, r)`` (Eqs. 13.1-13.4).

    ``U`` starts from ``N(0, init_std^2)`` (seeded) and is trained by Adam (``lr``) on all prompts at once until the
    loss has not improved for ``patience`` iterations; the best ``U`` is returned inside a :class:`FitResult`
    whose ``transform`` is :func:`apply_projection`. ``dim`` may be as large as ``r`` (Fig. 13.4 goes to 512).
    """
    texts = _matrix(texts, "text embeddings")
    dim = _check_dim(dim, texts.shape[1], "the text embeddings' dimension r")
    projection = random_matrix(texts.shape[1], dim, seed=seed, std=init_std).requires_grad_(True)
    losses, (best,) = _optimise([projection], lambda: indirect_loss(texts, projection), lr=lr, patience=patience,
                                max_iterations=max_iterations)
    matrix = best.numpy()
    return FitResult("InDiReCT", lambda images, m=matrix: apply_projection(images, m), losses, matrix)


def random_projection(dim_in: int, dim: int, *, seed: int, std: float = THESIS_INIT_STD) -> FitResult:
    """The "random transformation" baseline: InDiReCT's ``U`` as initialised (same seed, same law), untrained."""
    _check_dim(dim, dim_in, "the embeddings' dimension r")
    matrix = random_matrix(dim_in, dim, seed=seed, std=std).numpy()
    return FitResult("random U", lambda images, m=matrix: apply_projection(images, m), [], matrix)


def random_embeddings(count: int, dim: int, *, seed: int) -> np.ndarray:
    """The random baseline: ``count`` unit vectors ``(count, dim)`` uniform on the sphere (normalised
    ``N(0, 1)`` draws), independent of the images."""
    if count < 1 or dim < 1:
        raise ValueError(f"count and dim must be positive, got {count} and {dim}")
    draws = np.random.default_rng(seed).standard_normal((count, dim))
    return (draws / np.linalg.norm(draws, axis=1, keepdims=True)).astype(np.float32)


def fit_pca(texts, dim: int) -> FitResult:
    """PCA of the normalised prompt embeddings ``(n, r)``: the ``dim`` leading principal axes ``W`` ``(r, dim)``.

    Images are mapped to ``normalise((v^norm - mean) W)``, the principal coordinates made unit length for cosine
    retrieval. PCA finds at most ``n - 1`` axes of a centred set of ``n`` points, so ``dim`` must be smaller
    than ``n`` (the thesis could run it only where it had more than 128 prompts).
    """
    texts = F.normalize(_matrix(texts, "text embeddings"), dim=-1).double()
    n = texts.shape[0]
    if not isinstance(dim, (int, np.integer)) or dim < 1 or dim >= n or dim > texts.shape[1]:
        raise ValueError(f"PCA needs 1 <= r' < n prompts (and r' <= r); got r' = {dim} with n = {n} prompts of "
                         f"dimension {texts.shape[1]}. Use more prompts or a smaller r'.")
    mean = texts.mean(dim=0, keepdim=True)
    _, _, right = torch.linalg.svd(texts - mean, full_matrices=False)
    axes = right[:dim].T.float()                                              # (r, dim)
    mean = mean.float()

    def transform(images, axes=axes, mean=mean):
        images = F.normalize(_matrix(images, "image embeddings"), dim=-1)
        return F.normalize((images - mean) @ axes, dim=-1).numpy()

    return FitResult("PCA", transform, [], axes.numpy())


class _Autoencoder(nn.Module):
    def __init__(self, dim_in: int, dim: int, hidden: int | None):
        super().__init__()
        if hidden is None:                                                    # Eq. 13.7: W1, b1, W2, b2
            self.encoder, self.decoder = nn.Linear(dim_in, dim), nn.Linear(dim, dim_in)
        else:                                                                 # two layers each, leaky ReLU
            self.encoder = nn.Sequential(nn.Linear(dim_in, hidden), nn.LeakyReLU(), nn.Linear(hidden, dim))
            self.decoder = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, dim_in))

    def forward(self, x):
        return self.decoder(self.encoder(x))


def _fit_autoencoder(texts, dim: int, *, seed: int, hidden: int | None, weight_decay: float, lr: float,
                     patience: int, max_iterations: int, name: str) -> FitResult:
    texts = F.normalize(_matrix(texts, "text embeddings"), dim=-1)
    dim = _check_dim(dim, texts.shape[1], "the text embeddings' dimension r")
    torch.manual_seed(int(seed))
    model = _Autoencoder(texts.shape[1], dim, hidden)
    parameters = list(model.parameters())
    losses, best = _optimise(parameters, lambda: ((texts - model(texts)) ** 2).sum(), lr=lr, patience=patience,
                             max_iterations=max_iterations, weight_decay=weight_decay)
    with torch.no_grad():
        for parameter, value in zip(parameters, best):
            parameter.copy_(value)
    encoder = model.encoder.eval()

    def transform(images, encoder=encoder):
        with torch.no_grad():
            return F.normalize(encoder(F.normalize(_matrix(images, "image embeddings"), dim=-1)), dim=-1).numpy()

    matrix = model.encoder.weight.detach().T.numpy().copy() if hidden is None else None
    return FitResult(name, transform, losses, matrix)


def fit_linear_autoencoder(texts, dim: int, *, seed: int, lr: float = THESIS_LEARNING_RATE,
                           patience: int = THESIS_PATIENCE, max_iterations: int = 20_000) -> FitResult:
    """The linear autoencoder (LAE) of Eq. 13.7 on the normalised prompts ``(n, r)``: ``W1`` ``(r x r')``, ``b1``,
    ``W2``, ``b2`` minimise the summed squared reconstruction error (Adam, ``lr`` 0.01, patience 100). Images are
    encoded by Eq. 13.8, ``v' = v^norm W1 + b1``, and made unit length for cosine retrieval."""
    return _fit_autoencoder(texts, dim, seed=seed, hidden=None, weight_decay=0.0, lr=lr, patience=patience,
                            max_iterations=max_iterations, name="LAE")


def fit_autoencoder(texts, dim: int, *, seed: int, hidden: int = 512, weight_decay: float = 1e-2,
                    lr: float = THESIS_LEARNING_RATE, patience: int = THESIS_PATIENCE,
                    max_iterations: int = 20_000) -> FitResult:
    """The nonlinear autoencoder (AE) baseline: Eq. 13.7's loss through a two-layer encoder ``r -> hidden -> r'``
    and decoder ``r' -> hidden -> r`` with leaky ReLU, Adam (``lr`` 0.01, patience 100) with weight decay 0.01;
    images are encoded by the encoder and made unit length."""
    return _fit_autoencoder(texts, dim, seed=seed, hidden=hidden, weight_decay=weight_decay, lr=lr,
                            patience=patience, max_iterations=max_iterations, name="AE")


def normalised_softmax_loss(embeddings: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor,
                            temperature: float = ORACLE_TEMPERATURE) -> torch.Tensor:
    """Eq. 13.9 (Normalized Softmax, Zhai and Wu 2019): cross-entropy of ``v'_i c_j / temperature`` over the unit
    class prototypes ``c_j``. ``embeddings`` ``(m, r')`` unit rows, ``labels`` ``(m,)`` in ``0..C-1``,
    ``prototypes`` ``(C, r')`` (normalised inside). ``temperature = 1`` is Eq. 13.9 as printed."""
    logits = embeddings @ F.normalize(prototypes, dim=-1).T / temperature
    return F.cross_entropy(logits, labels)


def fit_oracle(images, labels, dim: int, *, seed: int, lr: float = THESIS_LEARNING_RATE,
               patience: int = THESIS_PATIENCE, max_iterations: int = 5_000, init_std: float = THESIS_INIT_STD,
               temperature: float = ORACLE_TEMPERATURE) -> FitResult:
    """The Oracle: ``U`` ``(r, dim)`` and unit class prototypes trained with the Normalized Softmax loss (Eq. 13.9)
    on the image embeddings ``(m, r)`` *and their labels* ``(m,)`` (the evaluation images themselves), full batch,
    Adam (``lr`` 0.01) with patience 100; images are then projected by Eqs. 13.5-13.6 with the learnt ``U``."""
    images = F.normalize(_matrix(images, "image embeddings"), dim=-1)
    codes = torch.as_tensor(np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1), dtype=torch.long)
    if len(codes) != len(images):
        raise ValueError(f"got {len(images)} image embeddings but {len(codes)} labels")
    dim = _check_dim(dim, images.shape[1], "the image embeddings' dimension r")
    projection = random_matrix(images.shape[1], dim, seed=seed, std=init_std).requires_grad_(True)
    generator = torch.Generator().manual_seed(int(seed) + 1)
    prototypes = torch.randn(int(codes.max()) + 1, dim, generator=generator).requires_grad_(True)
    losses, (best, _) = _optimise(
        [projection, prototypes],
        lambda: normalised_softmax_loss(F.normalize(images @ projection, dim=-1), codes, prototypes, temperature),
        lr=lr, patience=patience, max_iterations=max_iterations)
    matrix = best.numpy()
    return FitResult("Oracle", lambda x, m=matrix: apply_projection(x, m), losses, matrix)


#: Above this many images, :func:`retrieval_scores` ranks only each image's nearest neighbours (memory
#: ``O(m k)``, ``k`` the largest class size) instead of ordering all ``m x m`` pairs (DeepFashion's 40,000 test
#: images would need 25 GB for that).
EXACT_ORDER_LIMIT = 10_000


def retrieval_scores(embeddings, labels, *, exact_limit: int = EXACT_ORDER_LIMIT) -> dict[str, float]:
    """MAP@R and Prec@1 (Kobs 2023, Sec. 2.5.3) of ``embeddings`` ``(m, D)`` for the class ``labels`` ``(m,)``:
    every image queries all others by cosine similarity (Euclidean distance of unit rows). Rows are normalised
    first; an all-zero row stays zero. For ``m > exact_limit`` the same numbers come from the ``k`` nearest
    neighbours (:func:`domainknowledge.metrics.knn_retrieval_scores`), never an ``m x m`` matrix."""
    from domainknowledge import metrics

    embeddings = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(f"need embeddings (m, D) and m labels; got {embeddings.shape} and {labels.shape}")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    embeddings = embeddings / np.where(norms > 0, norms, 1.0)
    if len(embeddings) > exact_limit:
        nearest = metrics.knn_neighbour_order(embeddings, 1, "euclidean")[:, 0]
        return {"map_at_r": metrics.knn_retrieval_scores(embeddings, labels, "euclidean")["map_at_r"],
                "precision_at_1": float(np.mean(labels[nearest] == labels))}
    order = metrics.neighbour_order(embeddings, "euclidean")
    return {"map_at_r": float(metrics.map_at_r(labels, order)),
            "precision_at_1": float(np.mean(labels[order[:, 0]] == labels))}

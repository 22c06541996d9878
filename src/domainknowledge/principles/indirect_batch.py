"""Batched fits of InDiReCT and its baselines (Kobs 2023, Ch. 13): many small independent problems at once.

Every fit of Table 13.2 and of its sweeps is a small independent problem (one seed, notion and r'), and run one
after another they spend their time in Python, not arithmetic. Here the members of one kind share a leading
batch dimension: their parameters are stacked, ``(B, ...)``, one loss per member is computed with batched
matrix products and the sum of the members' losses is minimised by one Adam. Adam works element by element and
the members share no parameter, so each member follows exactly the steps of its own sequential fit
(:mod:`domainknowledge.principles.indirect`), up to floating-point noise; early stopping is decided per member,
and a member whose loss has not improved for ``patience`` iterations leaves the batch (its rows of the
parameters and of Adam's moments are dropped). Members whose r' lie in one power-of-4 bucket share a batch and
are padded to its largest r' with masked (always zero) columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from domainknowledge.principles import indirect

__all__ = ["ADAM_BETAS", "ADAM_EPS", "Member", "fit_autoencoder_batch", "fit_indirect_batch", "fit_linear_autoencoder_batch",
           "fit_oracle_batch", "optimise_members"]


#: Adam's constants (PyTorch's defaults, which the thesis' code used).
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


def optimise_members(initial: list[torch.Tensor], member_losses, *, lr: float, patience: int, max_iterations: int,
                     weight_decay: float = 0.0, min_improvement: float = 0.0) -> tuple[list[list[float]], list[torch.Tensor]]:
    """Full-batch Adam on ``B`` independent problems at once, with the thesis' early stopping per member.

    ``initial``: the members' starting parameters, tensors ``(B, ...)`` (one row per member, on the device the
    work runs on). ``member_losses(parameters, members)`` returns the losses ``(b,)`` of the ``b`` members still
    training, given their parameters ``(b, ...)`` and their indices ``members`` ``(b,)`` into the batch. The step
    is PyTorch's Adam (L2 ``weight_decay`` added to the gradient) applied to every member with its own learning
    rate. Every member stops once its loss has not improved for ``patience`` iterations (or at
    ``max_iterations``), as :func:`domainknowledge.principles.indirect._optimise` does; it then leaves the batch.
    ``min_improvement``: the share of the loss by which it must fall below the loss of the member's last
    improvement to count as one for the patience (0: any decrease, as in the thesis); the parameters kept are
    those at the lowest loss either way.
    Returns each member's loss history and the parameters ``(B, ...)`` at each member's best loss."""
    if patience < 1 or max_iterations < 1 or lr <= 0:
        raise ValueError("patience and max_iterations must be positive and lr > 0")
    count = int(initial[0].shape[0])
    if any(int(p.shape[0]) != count for p in initial):
        raise ValueError("every parameter needs the same leading batch dimension (one row per member)")
    device = initial[0].device
    members = torch.arange(count, device=device)
    parameters = [p.detach().clone().requires_grad_(True) for p in initial]
    first, second = [torch.zeros_like(p) for p in initial], [torch.zeros_like(p) for p in initial]
    rates = torch.full((count,), float(lr), device=device)
    best_state = [p.detach().clone() for p in initial]
    best, anchor, since = np.full(count, np.inf), np.full(count, np.inf), np.zeros(count, dtype=int)
    histories: list[list[float]] = [[] for _ in range(count)]
    for step in range(1, max_iterations + 1):
        losses = member_losses(parameters, members)
        values, index = losses.detach().cpu().numpy().astype(np.float64), members.cpu().numpy()
        for value, member in zip(values, index):
            histories[member].append(float(value))
        improved = values < best[index]
        best[index[improved]] = values[improved]
        previous = anchor[index]
        margin = min_improvement * np.abs(np.where(np.isfinite(previous), previous, 0.0))
        counted = values < previous - margin
        anchor[index[counted]] = values[counted]
        since[index] = np.where(counted, 0, since[index] + 1)
        if improved.any():
            rows = torch.as_tensor(np.flatnonzero(improved), device=device)
            for saved, parameter in zip(best_state, parameters):
                saved[members[rows]] = parameter.detach()[rows]
        finished = since[index] >= patience
        if finished.all():
            break
        gradients = torch.autograd.grad(losses.sum(), parameters)
        with torch.no_grad():
            _adam_step(parameters, gradients, first, second, rates, step, weight_decay)
        if finished.any():
            keep = torch.as_tensor(np.flatnonzero(~finished), device=device)
            parameters = [p.detach()[keep].requires_grad_(True) for p in parameters]
            first, second = [m[keep] for m in first], [v[keep] for v in second]
            members, rates = members[keep], rates[keep]
    return histories, best_state


def _adam_step(parameters, gradients, first, second, rates, step: int, weight_decay: float) -> None:
    """One step of PyTorch's Adam in place, with a learning rate per member ``rates`` ``(b,)``."""
    (beta1, beta2), correction1, correction2 = ADAM_BETAS, 1 - ADAM_BETAS[0] ** step, 1 - ADAM_BETAS[1] ** step
    for parameter, gradient, m, v in zip(parameters, gradients, first, second):
        if weight_decay:
            gradient = gradient + weight_decay * parameter
        m.lerp_(gradient, 1 - beta1)
        v.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
        denominator = (v.sqrt() / correction2 ** 0.5).add_(ADAM_EPS)
        size = (rates / correction1).view(-1, *([1] * (parameter.ndim - 1)))
        parameter.sub_(size * m / denominator)


@dataclass(frozen=True)
class Member:
    """One fit of a batch: ``texts`` ``(n, r)`` prompt embeddings (for the Oracle: the image embeddings ``(m, r)``),
    ``labels`` ``(m,)`` (Oracle only), the target dimension ``dim`` r' and the ``seed``."""

    texts: np.ndarray
    dim: int
    seed: int
    labels: np.ndarray | None = None


def _column_mask(dims: list[int], width: int, device) -> torch.Tensor:
    """``(B, 1, width)``: 1 in the first ``dims[b]`` columns of member ``b``, 0 in its padding."""
    return (torch.arange(width, device=device)[None, None, :] < torch.as_tensor(dims, device=device)[:, None, None]
            ).float()


def _padded(matrices: list[torch.Tensor], width: int) -> torch.Tensor:
    """Stack ``(rows, d_b)`` matrices as ``(B, rows, width)``, zero-padded on the right."""
    return torch.stack([F.pad(m, (0, width - m.shape[1])) for m in matrices])


def _dim_bucket(dim: int) -> int:
    """The smallest power of 4 at or above ``dim``: members of one bucket are padded to the same r', so padding
    costs at most a factor 4 of a member's width (an r' sweep from 2 to 384 in one batch would pad every member
    to 384)."""
    bucket = 1
    while bucket < dim:
        bucket *= 4
    return bucket


def _shape_groups(members: list[Member]) -> dict[tuple[int, ...], list[int]]:
    """Indices of ``members`` grouped by the shape ``(n, r)`` of their ``texts`` and the bucket of their r'
    (:func:`_dim_bucket`), keys ``(n, r, bucket)``; the members of one group are stacked."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, member in enumerate(members):
        groups.setdefault((*np.shape(member.texts), _dim_bucket(member.dim)), []).append(i)
    return groups


def _stacked_texts(members: list[Member], device) -> torch.Tensor:
    """The members' normalised ``texts`` as ``(B, n, r)`` float32 on ``device`` (Eq. 13.1)."""
    return F.normalize(torch.stack([indirect._matrix(m.texts, "text embeddings") for m in members]).to(device), dim=-1)


def fit_indirect_batch(members: list[Member], *, max_iterations: int, device="cpu",
                       lr: float = indirect.THESIS_LEARNING_RATE, patience: int = indirect.THESIS_PATIENCE,
                       init_std: float = indirect.THESIS_INIT_STD, min_improvement: float = 0.0) -> list[indirect.FitResult]:
    """:func:`~domainknowledge.principles.indirect.fit_indirect` for every member at once (members with prompt
    embeddings of the same shape share one batch). Member ``b`` learns ``U_b`` ``(r, r'_b)`` from its ``texts``
    ``(n, r)`` with Eq. 13.4, starting from the same seeded draw as the sequential fit; ``U`` of a batch is
    ``(B, r, max r')`` with the columns beyond ``r'_b`` masked. Returns one FitResult per member, in order."""
    results: list[indirect.FitResult | None] = [None] * len(members)
    for (_, width, _), indices in _shape_groups(members).items():
        group = [members[i] for i in indices]
        dims = [indirect._check_dim(m.dim, width, "the text embeddings' dimension r") for m in group]
        texts = _stacked_texts(group, device)                                          # (B, n, r)
        mask = _column_mask(dims, max(dims), device)                                   # (B, 1, r')
        initial = _padded([indirect.random_matrix(width, d, seed=m.seed, std=init_std) for m, d in zip(group, dims)],
                          max(dims)).to(device)

        def member_losses(parameters, rows, texts=texts, mask=mask):
            projection = parameters[0] * mask[rows]                                    # (b, r, r')
            normalised = texts[rows]                                                   # (b, n, r)   Eq. 13.1
            reduced = F.normalize(normalised @ projection, dim=-1)                     # (b, n, r')  Eq. 13.2
            reconstructed = F.normalize(reduced @ projection.transpose(1, 2), dim=-1)  # (b, n, r)   Eq. 13.3
            cosine = (normalised * reconstructed).sum(-1).clamp(-1 + indirect.ACOS_EPS, 1 - indirect.ACOS_EPS)
            return torch.arccos(cosine).mean(dim=1)                                    # (b,)        Eq. 13.4

        histories, (best,) = optimise_members([initial], member_losses, lr=lr, patience=patience,
                                              max_iterations=max_iterations, min_improvement=min_improvement)
        for row, (i, d) in enumerate(zip(indices, dims)):
            matrix = best[row, :, :d].cpu().numpy()
            results[i] = indirect.FitResult("InDiReCT", lambda images, m=matrix: indirect.apply_projection(images, m),
                                            histories[row], matrix)
    return results


def _autoencoder_layers(width: int, dim: int, hidden: int | None, seed: int) -> list[torch.Tensor]:
    """The initial layers of the sequential autoencoder of ``seed`` (same draws), in row-vector form: per layer
    the weight ``(in, out)`` and the bias ``(1, out)``; encoder first, the code layer's ``out`` is ``dim``."""
    torch.manual_seed(int(seed))
    model = indirect._Autoencoder(width, dim, hidden)                                # the sequential fit's draws
    layers = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    return [t for layer in layers for t in (layer.weight.detach().T.clone(), layer.bias.detach()[None].clone())]


def _pad_code(tensors: list[torch.Tensor], code_layer: int, width: int) -> list[torch.Tensor]:
    """Pad the code dimension r' of one member's layers to ``width``: the code layer's weight columns and bias,
    and the next layer's weight rows."""
    padded = list(tensors)
    weight, bias, following = 2 * code_layer, 2 * code_layer + 1, 2 * code_layer + 2
    padded[weight] = F.pad(padded[weight], (0, width - padded[weight].shape[1]))
    padded[bias] = F.pad(padded[bias], (0, width - padded[bias].shape[1]))
    padded[following] = F.pad(padded[following], (0, 0, 0, width - padded[following].shape[0]))
    return padded


def _fit_autoencoder_batch(members: list[Member], *, hidden: int | None, weight_decay: float, name: str,
                           max_iterations: int, device, lr: float, patience: int,
                           min_improvement: float) -> list[indirect.FitResult]:
    results: list[indirect.FitResult | None] = [None] * len(members)
    code_layer = 0 if hidden is None else 1                                        # the layer that outputs r'
    layers_per_side = code_layer + 1
    for (_, width, _), indices in _shape_groups(members).items():
        group = [members[i] for i in indices]
        dims = [indirect._check_dim(m.dim, width, "the text embeddings' dimension r") for m in group]
        code = max(dims)
        texts = _stacked_texts(group, device)                                          # (B, n, r)
        mask = _column_mask(dims, code, device)                                        # (B, 1, r')
        per_member = [_pad_code(_autoencoder_layers(width, d, hidden, m.seed), code_layer, code)
                      for m, d in zip(group, dims)]
        initial = [torch.stack(parts).to(device) for parts in zip(*per_member)]

        def encode(parameters, inputs, rows, mask=mask):
            x = inputs
            for layer in range(layers_per_side):
                x = x @ parameters[2 * layer] + parameters[2 * layer + 1]
                x = x * mask[rows] if layer == code_layer else F.leaky_relu(x)
            return x

        def member_losses(parameters, rows, texts=texts):
            normalised = texts[rows]                                                   # (b, n, r)
            x = encode(parameters, normalised, rows)
            for layer in range(layers_per_side, 2 * layers_per_side):
                x = x @ parameters[2 * layer] + parameters[2 * layer + 1]
                if layer < 2 * layers_per_side - 1:
                    x = F.leaky_relu(x)
            return ((normalised - x) ** 2).sum(dim=(1, 2))                             # Eq. 13.7 per member

        histories, best = optimise_members(initial, member_losses, lr=lr, patience=patience,
                                           max_iterations=max_iterations, weight_decay=weight_decay,
                                           min_improvement=min_improvement)
        for row, (i, d) in enumerate(zip(indices, dims)):
            kept = [p[row:row + 1].clone() for p in best]
            rows = torch.tensor([0], device=device)

            def transform(images, kept=kept, rows=rows, d=d, mask=mask[row:row + 1]):
                x = F.normalize(indirect._matrix(images, "image embeddings").to(device), dim=-1)[None]
                with torch.no_grad():
                    return F.normalize(encode(kept, x, rows, mask=mask)[0, :, :d], dim=-1).cpu().numpy()

            matrix = best[0][row, :, :d].cpu().numpy() if hidden is None else None
            results[i] = indirect.FitResult(name, transform, histories[row], matrix)
    return results


def fit_linear_autoencoder_batch(members: list[Member], *, max_iterations: int, device="cpu",
                                 lr: float = indirect.THESIS_LEARNING_RATE,
                                 patience: int = indirect.THESIS_PATIENCE,
                                 min_improvement: float = 0.0) -> list[indirect.FitResult]:
    """:func:`~domainknowledge.principles.indirect.fit_linear_autoencoder` (Eqs. 13.7-13.8) for every member at
    once: ``W1`` ``(B, r, r')``, ``b1`` ``(B, 1, r')``, ``W2`` ``(B, r', r)``, ``b2`` ``(B, 1, r)``, the sum of each
    member's squared reconstruction errors minimised by one Adam."""
    return _fit_autoencoder_batch(members, hidden=None, weight_decay=0.0, name="LAE", max_iterations=max_iterations,
                                  device=device, lr=lr, patience=patience, min_improvement=min_improvement)


def fit_autoencoder_batch(members: list[Member], *, max_iterations: int, device="cpu", hidden: int = 512,
                          weight_decay: float = 1e-2, lr: float = indirect.THESIS_LEARNING_RATE,
                          patience: int = indirect.THESIS_PATIENCE,
                          min_improvement: float = 0.0) -> list[indirect.FitResult]:
    """:func:`~domainknowledge.principles.indirect.fit_autoencoder` (two layers of ``hidden`` units with leaky ReLU
    each side, weight decay 0.01) for every member at once, with weights ``(B, in, out)``."""
    return _fit_autoencoder_batch(members, hidden=hidden, weight_decay=weight_decay, name="AE",
                                  max_iterations=max_iterations, device=device, lr=lr, patience=patience,
                                  min_improvement=min_improvement)


def fit_oracle_batch(images, members: list[Member], *, max_iterations: int, device="cpu",
                     lr: float = indirect.THESIS_LEARNING_RATE, patience: int = indirect.THESIS_PATIENCE,
                     init_std: float = indirect.THESIS_INIT_STD,
                     temperature: float = indirect.ORACLE_TEMPERATURE,
                     min_improvement: float = 0.0) -> list[indirect.FitResult]:
    """:func:`~domainknowledge.principles.indirect.fit_oracle` (Eq. 13.9) for every member at once, all on the
    same image embeddings ``images`` ``(m, r)`` with each member's ``labels`` ``(m,)`` (e.g. the notions of one
    data set, every seed). ``U`` ``(B, r, max r')`` and the prototypes ``(B, max C, max r')`` are padded; a
    member's missing classes get logit ``-inf``. The members' ``texts`` are ignored."""
    x = F.normalize(indirect._matrix(images, "image embeddings"), dim=-1).to(device)         # (m, r)
    m_rows, width = x.shape
    codes, classes = [], []
    for member in members:
        labels = np.asarray(member.labels).reshape(-1)
        if len(labels) != m_rows:
            raise ValueError(f"got {m_rows} image embeddings but {len(labels)} labels")
        code = np.unique(labels, return_inverse=True)[1].reshape(-1)
        codes.append(torch.as_tensor(code, dtype=torch.long))
        classes.append(int(code.max()) + 1)
    dims = [indirect._check_dim(m.dim, width, "the image embeddings' dimension r") for m in members]
    codes = torch.stack(codes).to(device)                                                     # (B, m)
    mask = _column_mask(dims, max(dims), device)                                              # (B, 1, r')
    present = (torch.arange(max(classes), device=device)[None] < torch.as_tensor(classes, device=device)[:, None])
    projection = _padded([indirect.random_matrix(width, d, seed=m.seed, std=init_std) for m, d in zip(members, dims)],
                         max(dims))
    prototypes = torch.stack([F.pad(torch.randn(c, d, generator=torch.Generator().manual_seed(int(m.seed) + 1)),
                                    (0, max(dims) - d, 0, max(classes) - c))
                              for m, c, d in zip(members, classes, dims)])

    def member_losses(parameters, rows):
        u, c = parameters[0] * mask[rows], parameters[1] * mask[rows]
        embedded = F.normalize(x @ u, dim=-1)                                                 # (b, m, r')
        logits = embedded @ F.normalize(c, dim=-1).transpose(1, 2) / temperature              # (b, m, C)
        logits = logits.masked_fill(~present[rows][:, None, :], float("-inf"))
        per_image = F.cross_entropy(logits.transpose(1, 2), codes[rows], reduction="none")    # (b, m)
        return per_image.mean(dim=1)                                                          # Eq. 13.9

    histories, (best, _) = optimise_members([projection.to(device), prototypes.to(device)], member_losses, lr=lr,
                                            patience=patience, max_iterations=max_iterations,
                                            min_improvement=min_improvement)
    results = []
    for row, d in enumerate(dims):
        matrix = best[row, :, :d].cpu().numpy()
        results.append(indirect.FitResult("Oracle", lambda v, m=matrix: indirect.apply_projection(v, m),
                                          histories[row], matrix))
    return results

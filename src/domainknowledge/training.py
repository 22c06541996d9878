"""The book's training loops: :func:`train_classifier` and :func:`train_regressor` (Adam, mini-batches, early
stopping on a validation metric, one shared loop) and :func:`train_epochs` (a fixed number of epochs with a
cosine-annealed learning rate).

The thesis trains every classifier of Ch. 14 the same way (Sec. 14.2.2): Adam (Kingma and Ba 2015) with
learning rate 0.001, batch size 1024, early stopping with a patience (10 epochs on validation MAE for ages,
20 epochs on validation accuracy for CIFAR-100), reporting the epoch that was best on validation.
:func:`train_classifier` does this for any model and loss; later chapters reuse it.

Images travel as tensors ``(N, C, H, W)`` (``uint8`` is fine: a :class:`~domainknowledge.models.cnn.Standardize`
first layer converts them), labels as ``int64`` ``(N,)``. On CPU a seed fixes the initial weights and the
batch order, so the same seed gives identical weights.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from domainknowledge import metrics

__all__ = ["MONITORS", "Monitor", "TrainingConfig", "TrainingHistory", "as_image_tensor", "predict_classes",
           "predict_proba", "predict_values", "random_dihedral", "train_classifier", "train_epochs", "train_regressor"]


@dataclass(frozen=True)
class Monitor:
    """A validation metric for early stopping: ``function(predicted classes (N,), labels (N,)) -> float``."""

    name: str
    function: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool

    def improves(self, score: float, best: float | None) -> bool:
        if best is None:
            return True
        return score > best if self.higher_is_better else score < best


MONITORS: dict[str, Monitor] = {
    "accuracy": Monitor("accuracy", metrics.accuracy, higher_is_better=True),
    "mae": Monitor("mae", metrics.mean_absolute_error, higher_is_better=False),
    "mse": Monitor("mse", metrics.mean_squared_error, higher_is_better=False),
}


@dataclass(frozen=True)
class TrainingConfig:
    """How to train: the thesis' values are ``max_epochs`` large, ``batch_size=1024``, ``learning_rate=1e-3``.

    ``patience``: stop after this many epochs without a better validation ``monitor`` (a key of
    :data:`MONITORS`). ``log_every``: print one line every this many epochs (0: silent).
    """

    max_epochs: int
    batch_size: int
    patience: int
    monitor: str = "accuracy"
    learning_rate: float = 1e-3
    log_every: int = 0

    def __post_init__(self):
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {self.monitor!r}")
        for name in ("max_epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


@dataclass
class TrainingHistory:
    """Per-epoch record of one training run; ``best_epoch`` is the epoch whose weights were kept."""

    monitor: str
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("nan")
    stopped_early: bool = False

    def to_frame(self):
        """The per-epoch record as a ``pandas.DataFrame`` (epoch, train_loss, validation score, seconds)."""
        import pandas as pd

        return pd.DataFrame(self.epochs)

    def as_dict(self) -> dict:
        return asdict(self)


def as_image_tensor(images: np.ndarray) -> torch.Tensor:
    """NumPy images ``(N, H, W)`` (grey) or ``(N, H, W, C)`` to a tensor ``(N, C, H, W)`` of the same dtype."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4:
        array = array.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _check_pair(images: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if images.ndim != 4:
        raise ValueError(f"{name} images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{name} labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if labels.dtype != torch.int64:
        raise ValueError(f"{name} labels must be int64 class indices, got {labels.dtype}")


def _resident(images, device: torch.device):
    """A tensor moved to ``device`` once; a lazy reader (e.g. :class:`~domainknowledge.data.real.image_files.
    ImageFiles` with ``channels_first``, indexed like a ``(N, C, H, W)`` tensor) stays on disk, and each batch
    is decoded when it is drawn (:func:`_rows`), so host memory does not grow with the data set."""
    return images.to(device) if isinstance(images, torch.Tensor) else images


def _rows(images, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``images[index]`` on ``device``: a tensor is indexed where it is, a lazy reader decodes the rows."""
    if isinstance(images, torch.Tensor):
        return images[index]
    return torch.as_tensor(images[index.cpu()]).to(device, non_blocking=True)


def _to_model_layout(images: torch.Tensor) -> torch.Tensor:
    """Channels-last memory layout: the same numbers, and about 1.5x faster convolutions on CPU (oneDNN)."""
    return images.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def _predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    was_training = model.training
    model.eval()
    outputs = [model(_to_model_layout(images[start:start + batch_size].to(device, non_blocking=True))).float().cpu()
               for start in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(outputs)


def predict_proba(model: nn.Module, images: torch.Tensor, batch_size: int = 1024,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """Softmax outputs of ``model`` for ``images`` ``(N, C, H, W)``: a float32 array ``(N, num_classes)``."""
    logits = _predict_logits(model, images, batch_size, torch.device(device))
    return torch.softmax(logits, dim=1).numpy()


def predict_classes(model: nn.Module, images: torch.Tensor, batch_size: int = 1024,
                    device: str | torch.device = "cpu") -> np.ndarray:
    """Arg-max classes of ``model`` for ``images`` ``(N, C, H, W)``: an int64 array ``(N,)``."""
    return _predict_logits(model, images, batch_size, torch.device(device)).argmax(dim=1).numpy()


def _fit_with_early_stopping(model: nn.Module, batch_loss: Callable[[torch.Tensor], torch.Tensor],
                             validate: Callable[[], float], monitor: Monitor, config: TrainingConfig, *,
                             num_train: int, order_generator: torch.Generator, device: torch.device,
                             min_batch: int, loss_name: str, log: Callable[[str], None]) -> TrainingHistory:
    """The early-stopping loop that :func:`train_classifier` and :func:`train_regressor` share.

    Each epoch visits the ``num_train`` training examples once in a fresh order drawn from
    ``order_generator``; ``batch_loss(indices (B,) int64)`` returns the scalar loss of one batch, which Adam
    (``config.learning_rate``) minimises; batches smaller than ``min_batch`` are skipped. After each epoch
    ``validate()`` scores the model; the weights of the best epoch under ``monitor`` are restored at the
    end (the thesis reports the epoch that was best on validation), and training stops after
    ``config.patience`` epochs without improvement or after ``config.max_epochs``. Leaves ``model`` in
    eval mode.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    history = TrainingHistory(monitor=monitor.name)
    best_state, best_score = None, None
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(num_train, generator=order_generator).to(device)
        total_loss = torch.zeros((), device=device)
        for start in range(0, num_train, config.batch_size):
            batch = order[start:start + config.batch_size]
            if batch.shape[0] < min_batch:
                continue
            loss = batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * batch.shape[0]
        score = validate()
        train_loss = float(total_loss) / num_train
        history.epochs.append({"epoch": epoch, "train_loss": train_loss, f"validation_{monitor.name}": score,
                               "seconds": time.perf_counter() - started})
        if monitor.improves(score, best_score):
            best_score, history.best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        if config.log_every and epoch % config.log_every == 0:
            log(f"epoch {epoch:3d}: train {loss_name} {train_loss:.4f}, validation {monitor.name} {score:.4f} "
                f"(best {best_score:.4f} at epoch {history.best_epoch})")
        if epoch - history.best_epoch >= config.patience:
            history.stopped_early = epoch < config.max_epochs
            break
    model.load_state_dict(best_state)
    model.eval()
    history.best_score = float(best_score)
    if config.log_every:
        log(f"kept epoch {history.best_epoch} of {len(history.epochs)}: validation {monitor.name} {best_score:.4f}")
    return history


def train_classifier(build_model: Callable[[], nn.Module], loss_fn: nn.Module,
                     train: tuple[torch.Tensor, torch.Tensor], validation: tuple[torch.Tensor, torch.Tensor],
                     config: TrainingConfig, *, seed: int, device: str | torch.device = "cpu",
                     log: Callable[[str], None] = print) -> tuple[nn.Module, TrainingHistory]:
    """Train a classifier with Adam and early stopping; return the best-on-validation model and its history.

    Args:
        build_model: a zero-argument callable returning a fresh model that maps ``(B, C, H, W)`` images to
            logits ``(B, num_classes)``. It is called right after ``torch.manual_seed(seed)``, so the seed
            fixes the initial weights.
        loss_fn: ``loss_fn(logits (B, K), labels (B,)) -> scalar``, e.g. ``SimLoss(S)`` or
            ``nn.CrossEntropyLoss()``.
        train, validation: ``(images (N, C, H, W), labels (N,) int64)``.
        config: epochs, batch size, learning rate, patience and the validation metric to monitor.
        seed: fixes initial weights and the order of the mini-batches.
        device: where to train; data is moved there once.
        log: receives at most one line every ``config.log_every`` epochs, and one at the end.

    Each epoch visits the training set once in a fresh random order. After it the validation metric is
    computed from arg-max predictions; the weights of the best epoch are restored at the end (the thesis
    reports the metrics of the epoch that was best on validation). Training stops after ``patience``
    epochs without improvement, or after ``max_epochs``.
    """
    _check_pair(*train, "training")
    _check_pair(*validation, "validation")
    device = torch.device(device)
    monitor = MONITORS[config.monitor]
    torch.manual_seed(seed)
    model = build_model().to(device=device, memory_format=torch.channels_last)
    loss_fn = loss_fn.to(device)
    train_images, train_labels = (t.to(device) for t in train)
    val_images, val_labels = validation

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        return loss_fn(model(_to_model_layout(train_images[batch])), train_labels[batch])

    def validate() -> float:
        predicted = _predict_logits(model, val_images, config.batch_size, device).argmax(dim=1).numpy()
        return monitor.function(predicted, val_labels.numpy())

    history = _fit_with_early_stopping(model, batch_loss, validate, monitor, config, num_train=train_images.shape[0],
                                       order_generator=torch.Generator().manual_seed(seed), device=device,
                                       min_batch=1, loss_name="loss", log=log)
    return model, history


def train_epochs(network: nn.Module, batch_loss: Callable[[torch.Tensor, int], torch.Tensor], *, examples: int,
                 epochs: int, batch_size: int, learning_rate: float, generator: torch.Generator,
                 progress: str | None = None, after_epoch: Callable[[int], None] | None = None) -> list[float]:
    """A fixed schedule without validation: Adam with cosine annealing of the learning rate (one scheduler
    step per batch, to zero after ``epochs``), batches of ``batch_size`` example indices in a fresh random
    order each epoch drawn from ``generator``. ``batch_loss(indices (B,) int64, step)`` returns the scalar loss of
    one batch. Batches of fewer than two examples are skipped (pairwise losses and batch normalisation need
    two). Returns the mean loss per epoch and leaves ``network`` in eval mode. Darlow (2022) trains the DDTL
    (Sec. 3.2.1) and DHOG (Sec. 4.3.3) this way; ``progress`` names the run in one line per epoch.
    ``after_epoch(epoch)`` (0-based), if given, runs after every epoch, e.g. to record a training curve; it
    may switch the network to eval mode (the next epoch switches it back).
    """
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    batches = max(1, -(-examples // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * batches)
    losses, step = [], 0
    for epoch in range(epochs):
        network.train()
        order = torch.randperm(examples, generator=generator)
        total = 0.0
        for start in range(0, examples, batch_size):
            batch = order[start:start + batch_size]
            if len(batch) < 2:
                continue
            loss = batch_loss(batch, step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
            step += 1
        losses.append(total / examples)
        if progress:
            print(f"  {progress}: epoch {epoch + 1}/{epochs}, loss {losses[-1]:.4f}", flush=True)
        if after_epoch is not None:
            after_epoch(epoch)
    network.eval()
    return losses


def random_dihedral(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip and transpose each square image ``(B, C, S, S)`` at random (a horizontal flip, a vertical flip and
    a transpose, each with probability 1/2: the eight symmetries of the square, equally likely). Returns a
    contiguous tensor of the same shape."""
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be square (B, C, S, S), got {tuple(images.shape)}")
    draws = torch.rand(3, images.shape[0], generator=generator) < 0.5
    out = images
    for draw, transform in zip(draws, (lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.transpose(-1, -2))):
        out = torch.where(draw.to(images.device)[:, None, None, None], transform(out), out)
    return out.contiguous()


@torch.no_grad()
def predict_values(model: nn.Module, images: torch.Tensor, batch_size: int = 1024,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Outputs of a regression ``model`` (images ``(B, C, H, W)`` to ``(B,)``) for ``images``: float64 ``(N,)``."""
    return _predict_logits(model, images, batch_size, torch.device(device)).reshape(-1).double().numpy()


def train_regressor(build_model: Callable[[], nn.Module], train: tuple[torch.Tensor, torch.Tensor],
                    validation: tuple[torch.Tensor, torch.Tensor], config: TrainingConfig, *, seed: int,
                    device: str | torch.device = "cpu",
                    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                    log: Callable[[str], None] = print) -> tuple[nn.Module, TrainingHistory]:
    """Train a regression network with the mean squared error, Adam and early stopping on validation MSE.

    ``train`` and ``validation`` are ``(images (N, C, H, W), targets (N,) float)``; the model maps a batch to
    ``(B,)``. Images are a tensor (moved to ``device`` once) or a lazy reader indexed like one, e.g.
    :class:`~domainknowledge.data.real.image_files.ImageFiles` (each batch decoded when drawn). ``augment(batch, generator)`` (e.g. :func:`random_dihedral`) transforms each training batch.
    ``torch.manual_seed(seed)`` precedes ``build_model()``, and a generator seeded with ``seed`` orders the
    batches and draws the augmentations, so on CPU a seed fixes the whole run. After each epoch the
    validation MSE decides: the best epoch's weights are restored at the end, and training stops after
    ``config.patience`` epochs without a lower validation MSE or after ``config.max_epochs`` (Kobs 2023,
    Sec. 6: Adam, learning rate 1e-4, batch 400, at most 2000 epochs, patience 20).
    """
    for (images, targets), name in ((train, "training"), (validation, "validation")):
        if images.ndim != 4 or targets.ndim != 1 or targets.shape[0] != images.shape[0]:
            raise ValueError(f"{name} data must be images (N, C, H, W) and targets (N,), got "
                             f"{tuple(images.shape)} and {tuple(targets.shape)}")
    device = torch.device(device)
    torch.manual_seed(seed)
    model = build_model().to(device=device, memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(seed)
    train_images, train_targets = _resident(train[0], device), train[1].to(device=device, dtype=torch.float32)
    val_images, val_targets = validation[0], validation[1].double().numpy()

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        images = _rows(train_images, batch, device)
        if augment is not None:
            images = augment(images, generator)
        return torch.mean((model(_to_model_layout(images)) - train_targets[batch]) ** 2)

    def validate() -> float:
        return float(np.mean((predict_values(model, val_images, config.batch_size, device) - val_targets) ** 2))

    # batch normalisation needs two examples per batch
    history = _fit_with_early_stopping(model, batch_loss, validate, MONITORS["mse"], config,
                                       num_train=train_images.shape[0], order_generator=generator, device=device,
                                       min_batch=2, loss_name="MSE", log=log)
    return model, history

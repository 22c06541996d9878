"""The one interface of every encoder: images (and, for image-text models, texts) to unit-length embeddings.

An :class:`Encoder` carries its preprocessing: :meth:`Encoder.encode_images` takes raw pictures, in any of

* a ``uint8`` array or tensor ``(N, H, W, 3)`` (channels last, 0..255) or ``(N, 3, H, W)``;
* a float array or tensor of the same shapes with values in [0, 1];
* grey images ``(N, H, W)`` (repeated over three channels);
* a list of ``(H_i, W_i, 3)`` arrays of different sizes (bundled photos),
* a lazy sequence whose slices are ``(b, H, W, 3)`` arrays (images on disk read one batch at a time),

and returns a ``float32`` NumPy array ``(N, D)`` whose rows have unit L2 norm. :meth:`Encoder.encode_texts`
maps a list of ``N`` strings to ``(N, D)`` in the same space, or raises :class:`NoTextTowerError` for an
image-only encoder (``has_text`` is ``False``). Both run in batches on the encoder's ``device`` and print
progress lines for long runs (``progress=True``, or automatically above ``PROGRESS_THRESHOLD`` inputs).

The standard resize is the CLIP one: scale the shorter side to ``image_size`` (bilinear, antialiased), then
crop the centre square.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PROGRESS_THRESHOLD", "Encoder", "EncoderNotAvailableError", "NoTextTowerError", "as_image_batches",
           "import_open_clip", "resize_center_crop"]

PROGRESS_THRESHOLD = 5000


def import_open_clip():
    """``import open_clip`` without the warning its progress bars print in a notebook without widgets."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import open_clip
    return open_clip


class EncoderNotAvailableError(FileNotFoundError):
    """An encoder's weights (or package) are not on this machine; the message says how to get them."""


class NoTextTowerError(ValueError):
    """``encode_texts`` was called on an image-only encoder."""


def _to_float_chw(image, batched: bool) -> torch.Tensor:
    """Images to float ``(N, 3, H, W)`` in 0..255. ``batched``: the first axis counts images."""
    tensor = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image))
    if tensor.dtype == torch.bool:
        tensor = tensor.to(torch.uint8) * 255
    is_integer = not torch.is_floating_point(tensor)
    tensor = tensor.float()
    if not is_integer:
        if tensor.numel() and (tensor.min() < -1e-3 or tensor.max() > 1 + 1e-3):
            raise ValueError("float images must hold values in [0, 1] (pass uint8 for 0..255); got "
                             f"values in [{tensor.min():.3g}, {tensor.max():.3g}]")
        tensor = tensor * 255.0
    if not batched:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim == 3:                                            # grey (N, H, W)
        return tensor.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    if tensor.ndim == 4 and tensor.shape[-1] in (3, 4):             # (N, H, W, 3 or 4): drop alpha
        return tensor[..., :3].permute(0, 3, 1, 2).contiguous()
    if tensor.ndim == 4 and tensor.shape[-1] == 1:
        return tensor.permute(0, 3, 1, 2).expand(-1, 3, -1, -1).contiguous()
    if tensor.ndim == 4 and tensor.shape[1] == 3:                   # (N, 3, H, W)
        return tensor.contiguous()
    shape = tuple(tensor.shape[1:] if not batched else tensor.shape)
    raise ValueError(f"images must be (N, H, W, 3), (N, 3, H, W) or grey (N, H, W); got shape {shape}")


def resize_center_crop(images: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Scale the shorter side of ``(B, 3, H, W)`` images to ``size`` (``mode``: bilinear or bicubic, antialiased)
    and crop the centre: ``(B, 3, size, size)``."""
    height, width = images.shape[-2:]
    if (height, width) != (size, size):
        scale = size / min(height, width)
        new = (max(size, round(height * scale)), max(size, round(width * scale)))
        if new != (height, width):
            images = F.interpolate(images, size=new, mode=mode, antialias=True, align_corners=False)
        top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
        images = images[..., top:top + size, left:left + size]
    return images.contiguous()


def as_image_batches(images, batch_size: int):
    """Yield float ``(b, 3, H, W)`` batches in 0..255 from any accepted image input (see the module docstring);
    a list of differently sized images yields single images; any other sequence (a lazy reader such as
    :class:`~domainknowledge.data.real.image_files.ImageFiles`, whose slices are ``(b, H, W, 3)`` arrays) is
    read one batch at a time."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images were given")
        shapes = {tuple(np.shape(image)) for image in images}
        if len(shapes) > 1:
            for image in images:
                yield _to_float_chw(image, batched=False)
            return
        images = np.stack([np.asarray(image) for image in images])
    if hasattr(images, "batches") and hasattr(images, "shape"):     # files read a batch at a time (ImageFiles)
        if len(images) == 0:
            raise ValueError("no images were given")
        for batch in images.batches(batch_size):
            yield _to_float_chw(batch, batched=True)
        return
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise TypeError(f"images must be an array, a tensor or a list of arrays, got {type(images).__name__}")
    if images.ndim not in (3, 4) or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty batch (N, H, W, 3), (N, 3, H, W) or (N, H, W); got shape "
                         f"{tuple(images.shape)}")
    for start in range(0, images.shape[0], batch_size):
        yield _to_float_chw(images[start:start + batch_size], batched=True)


def _count(images) -> int:
    return len(images) if isinstance(images, Sequence) else int(images.shape[0])


class _Progress:
    def __init__(self, what: str, total: int, enabled: bool | None, name: str):
        self.enabled = total >= PROGRESS_THRESHOLD if enabled is None else enabled
        self.what, self.total, self.name = what, total, name
        self.done, self.start, self.next_report = 0, time.time(), 0.1

    def update(self, count: int):
        self.done += count
        if self.enabled and (self.done / self.total >= self.next_report or self.done == self.total):
            seconds = time.time() - self.start
            print(f"[{self.name}] {self.done:,}/{self.total:,} {self.what} encoded ({seconds:.1f} s)",
                  file=sys.stdout, flush=True)
            self.next_report = np.floor(self.done / self.total * 10 + 1) / 10


class Encoder:
    """Base class of every encoder of the registry.

    Attributes: ``name`` (the registry name), ``provenance`` (a short statement of where the weights come
    from and their licence, or "stand-in trained here"), ``embedding_dim`` (``D``), ``has_text`` (whether
    :meth:`encode_texts` works), ``image_size`` (side of the square the images are resized to), ``device``
    (a ``torch.device``), ``cache_key`` (a string that changes whenever the weights do; used by the
    embedding cache).

    Subclasses implement ``_embed_images(batch (B, 3, S, S) float 0..255 on device) -> (B, D)`` and, for
    image-text models, ``_embed_texts(texts: list[str]) -> (B, D)``; normalisation, batching, device
    handling and progress are done here.
    """

    name: str = "encoder"
    provenance: str = ""
    embedding_dim: int = 0
    has_text: bool = False
    image_size: int = 224
    image_batch_size: int = 64
    text_batch_size: int = 256

    def __init__(self, device="cpu"):
        self.device = torch.device(device)

    @property
    def cache_key(self) -> str:
        return f"{self.name}|{self.provenance}"

    def __repr__(self) -> str:
        kind = "image-text" if self.has_text else "image-only"
        return f"<{type(self).__name__} {self.name!r}: {kind}, D = {self.embedding_dim}, {self.device}>"

    # -- subclass hooks
    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        """Float ``(B, 3, H, W)`` 0..255 (already on ``device``) to the model's input ``(B, 3, S, S)`` (default:
        resize and crop only)."""
        return resize_center_crop(batch, self.image_size)

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        raise NoTextTowerError(self._no_text_message())

    def _no_text_message(self) -> str:
        from domainknowledge.models.encoders.registry import text_encoder_names

        return (f"encoder {self.name!r} is image-only and cannot embed texts; the image-text encoders are: "
                f"{', '.join(text_encoder_names())}")

    # -- the interface
    @torch.no_grad()
    def encode_images(self, images, *, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """Embed images: ``float32 (N, D)``, unit L2 norm per row (see the module docstring for inputs)."""
        batch_size = batch_size or self.image_batch_size
        total = _count(images)
        tracker = _Progress("images", total, progress, self.name)
        chunks = []
        pending: list[torch.Tensor] = []

        def flush():
            if pending:
                batch = torch.cat(pending)
                chunks.append(F.normalize(self._embed_images(batch).float(), dim=-1).cpu())
                tracker.update(batch.shape[0])
                pending.clear()

        for batch in as_image_batches(images, batch_size):
            pending.append(self.preprocess(batch.to(self.device)))
            if sum(p.shape[0] for p in pending) >= batch_size:
                flush()
        flush()
        return torch.cat(chunks).numpy().astype(np.float32)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], *, batch_size: int | None = None,
                     progress: bool | None = None) -> np.ndarray:
        """Embed texts: ``float32 (N, D)``, unit L2 norm per row; :class:`NoTextTowerError` if image-only."""
        if not self.has_text:
            raise NoTextTowerError(self._no_text_message())
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a non-empty list of strings")
        batch_size = batch_size or self.text_batch_size
        tracker = _Progress("texts", len(texts), progress, self.name)
        chunks = []
        for start in range(0, len(texts), batch_size):
            part = texts[start:start + batch_size]
            chunks.append(F.normalize(torch.as_tensor(self._embed_texts(part)).float(), dim=-1).cpu())
            tracker.update(len(part))
        return torch.cat(chunks).numpy().astype(np.float32)

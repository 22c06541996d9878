"""Vector-quantised variational autoencoder (VQ-VAE, van den Oord et al. 2017), LAD's latent space.

Darlow (2022, Sec. 5.5.1, Eq. 5.2) reconstructs an image as ``x_hat = dec(h)``, ``h = quantise(enc(x))``:

* :class:`VectorQuantizer` snaps each latent vector to its nearest codebook vector (``codes`` vectors of
  length ``code_dim``; 20 x 64 for the coloured-digit sets of Sec. 5.6.1) and passes gradients straight
  through the non-differentiable snap (``z + (q - z).detach()``, Bengio et al. 2013);
* :class:`VQVAE` is a small convolutional encoder and decoder around it. Images ``(B, C, S, S)`` in [0, 1]
  map to a latent grid ``(B, code_dim, S / 2^d, S / 2^d)`` with ``d = downsamplings``.

The training loss is the reconstruction error (binary cross-entropy of the decoder's logits, see
:func:`reconstruction_loss`) plus the codebook and commitment terms of van den Oord et al. (their Eq. 3,
``beta = 0.25``); :func:`train_vqvae` fits one with Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VQVAE", "VectorQuantizer", "VQVAEConfig", "reconstruction_loss", "spread_sample", "train_vqvae",
           "vq_loss"]


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation of a latent grid ``(B, D, H, W)`` with a codebook ``(K, D)``."""

    def __init__(self, codes: int, code_dim: int):
        super().__init__()
        if codes < 2 or code_dim < 1:
            raise ValueError(f"need at least 2 codes of length >= 1, got {codes} x {code_dim}")
        self.codebook = nn.Parameter(torch.empty(codes, code_dim).uniform_(-1.0 / codes, 1.0 / codes))

    def indices(self, latents: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean distance) per position: ``(B, D, H, W) -> (B, H, W)``."""
        if latents.ndim != 4 or latents.shape[1] != self.codebook.shape[1]:
            raise ValueError(f"latents must be (B, {self.codebook.shape[1]}, H, W), got {tuple(latents.shape)}")
        flat = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t()
                     + self.codebook.pow(2).sum(1)[None, :])
        return distances.argmin(dim=1).reshape(latents.shape[0], *latents.shape[2:])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes of an index grid ``(B, H, W) -> (B, D, H, W)``."""
        return self.codebook[indices].permute(0, 3, 1, 2).contiguous()

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(quantised with straight-through gradient (B, D, H, W), nearest codes without it (B, D, H, W))``."""
        codes = self.lookup(self.indices(latents))
        return latents + (codes - latents).detach(), codes


def vq_loss(latents: torch.Tensor, codes: torch.Tensor, beta: float = 0.25) -> torch.Tensor:
    """Codebook plus commitment loss: ``||sg[z] - e||^2 + beta ||z - sg[e]||^2`` (van den Oord et al., Eq. 3)."""
    return F.mse_loss(codes, latents.detach()) + beta * F.mse_loss(latents, codes.detach())


class VQVAE(nn.Module):
    """Encoder (``downsamplings`` stride-2 convolutions and a residual 3x3 layer) -> quantiser -> mirrored decoder.

    ``encode``: images ``(B, C, S, S)`` in [0, 1] -> continuous latents ``(B, D, S', S')``;
    ``quantise``: latents -> nearest codes (straight-through); ``decode``: codes -> images in [0, 1].
    """

    def __init__(self, *, in_channels: int = 3, codes: int = 20, code_dim: int = 64, hidden: int = 64,
                 downsamplings: int = 2):
        super().__init__()
        if downsamplings < 1:
            raise ValueError(f"downsamplings must be >= 1, got {downsamplings}")
        encoder, channels = [], in_channels
        for _ in range(downsamplings):
            encoder += [nn.Conv2d(channels, hidden, 4, stride=2, padding=1), nn.ReLU()]
            channels = hidden
        encoder += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, code_dim, 1)]
        self.encoder = nn.Sequential(*encoder)
        self.quantizer = VectorQuantizer(codes, code_dim)
        decoder = [nn.Conv2d(code_dim, hidden, 3, padding=1), nn.ReLU()]
        for step in range(downsamplings):
            last = step == downsamplings - 1
            decoder += [nn.ConvTranspose2d(hidden, in_channels if last else hidden, 4, stride=2, padding=1)]
            if not last:
                decoder.append(nn.ReLU())
        self.decoder = nn.Sequential(*decoder)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images.float() - 0.5)

    def quantise(self, latents: torch.Tensor) -> torch.Tensor:
        return self.quantizer(latents)[0]

    def decode_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D, H', W')`` -> pre-sigmoid images ``(B, C, S, S)``."""
        return self.decoder(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(codes))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction (B, C, S, S), VQ loss scalar)``."""
        latents = self.encode(images)
        quantised, codes = self.quantizer(latents)
        return self.decode(quantised), vq_loss(latents, codes)


@dataclass(frozen=True)
class VQVAEConfig:
    """Codebook (``codes`` x ``code_dim``), widths and the training schedule of :func:`train_vqvae`."""

    codes: int = 20
    code_dim: int = 64
    hidden: int = 64
    downsamplings: int = 2
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3


def reconstruction_loss(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the decoder's logits ``(B, C, S, S)`` against images in [0, 1], per pixel and
    channel. Unlike the squared error of ``sigmoid(logits)``, its gradient ``sigmoid(logits) - x`` does not vanish
    where the sigmoid saturates: with the squared error, a VQ-VAE on thin coloured strokes on black settled on
    an all-black output (a loss of 0.047, the strokes' energy) whose saturated sigmoid passed no gradient back,
    and its encoder and codes collapsed to one point."""
    return F.binary_cross_entropy_with_logits(logits, images)


def spread_sample(vectors: torch.Tensor, count: int, generator: torch.Generator,
                  chosen: torch.Tensor | None = None) -> torch.Tensor:
    """``count`` rows of ``vectors`` ``(M, D)`` drawn one at a time with probability proportional to the squared
    distance to the nearest row drawn so far or of ``chosen`` ``(K, D)`` (k-means++ seeding, Arthur and
    Vassilvitskii 2007): ``(count, D)``. Unlike a uniform draw it does not put every code on the most common
    vector (a black background covers most positions of a foreground-coloured digit)."""
    picked = []
    nearest = (torch.cdist(vectors, chosen).min(1).values.pow(2) if chosen is not None and len(chosen)
               else torch.full((len(vectors),), 1.0, device=vectors.device))
    for _ in range(count):
        weights = nearest.clamp_min(0).cpu().double()
        index = (torch.multinomial(weights, 1, generator=generator) if float(weights.sum()) > 0
                 else torch.randint(len(vectors), (1,), generator=generator)).item()
        picked.append(vectors[index])
        nearest = torch.minimum(nearest, (vectors - vectors[index]).pow(2).sum(1))
    return torch.stack(picked)


def train_vqvae(images: torch.Tensor, config: VQVAEConfig, *, seed: int, device="cpu") -> tuple[VQVAE, list[float]]:
    """Fit a :class:`VQVAE` to float images ``(N, C, S, S)`` in [0, 1] with Adam (cosine-annealed learning
    rate); returns the model (eval mode) and the mean loss per epoch. The codes start at encoder outputs of
    the untrained encoder drawn by :func:`spread_sample`, and unused codes are restarted at encoder outputs
    drawn the same way (far from the codes in use) after each epoch but the last (a common remedy for dead
    codes, which a small codebook is prone to)."""
    if images.ndim != 4 or images.dtype == torch.uint8 or float(images.max()) > 1.0 + 1e-6:
        raise ValueError("images must be float (N, C, S, S) in [0, 1]")
    torch.manual_seed(seed)
    model = VQVAE(in_channels=images.shape[1], codes=config.codes, code_dim=config.code_dim, hidden=config.hidden,
                  downsamplings=config.downsamplings).to(device)
    images = images.to(device)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():                       # data-dependent start: codes at random encoder outputs
        first = model.encode(images[torch.randperm(len(images), generator=generator)[:512].to(device)])
        flat = first.permute(0, 2, 3, 1).reshape(-1, first.shape[1])
        model.quantizer.codebook.data.copy_(spread_sample(flat, config.codes, generator))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    batches = -(-len(images) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * batches)
    losses = []
    for epoch in range(config.epochs):
        model.train()
        order, total = torch.randperm(len(images), generator=generator), 0.0
        for start in range(0, len(images), config.batch_size):
            batch = images[order[start:start + config.batch_size]]
            latents = model.encode(batch)
            quantised, codes = model.quantizer(latents)
            loss = reconstruction_loss(model.decode_logits(quantised), batch) + vq_loss(latents, codes)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        losses.append(total / len(images))
        if epoch < config.epochs - 1:
            with torch.no_grad():
                latents = torch.cat([model.encode(images[i:i + 512]) for i in range(0, len(images), 512)])
                used = torch.bincount(model.quantizer.indices(latents).reshape(-1), minlength=config.codes)
                dead = (used == 0).nonzero().reshape(-1)
                if len(dead):
                    flat = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
                    flat = flat[torch.randperm(len(flat), generator=generator)[:20000].to(flat.device)]
                    alive = model.quantizer.codebook.data[used > 0]
                    model.quantizer.codebook.data[dead] = spread_sample(flat, len(dead), generator, chosen=alive)
    model.eval()
    return model, losses

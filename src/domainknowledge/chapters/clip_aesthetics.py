"""Experiment drivers of the chapter "CLIP knows image aesthetics" (Kobs 2023, Ch. 12).

At every profile, through the same code:

1. **Data** (:func:`load_task`): the stand-in aesthetics set (synthetic scenes and crops of the bundled real
   photos with a hidden, documented quality function and simulated votes;
   :func:`domainknowledge.data.synthetic.aesthetics.generate_mixed_aesthetics`) at ``smoke`` and ``cpu``, AVA
   from ``data_root`` at ``paper`` (layout in :data:`AVA_LAYOUT`).
2. **Embeddings** (:func:`embed_task`): every encoder of the profile embeds every image once, through the
   registry's embedding cache.
3. **Prompting** (:func:`prompting_results`): fixed, context-aware and ensemble prompts with the adjective pair
   chosen on the training images of each run (Sec. 12.2), Eq. 12.1 for the continuous score, and the thesis'
   own pairs for comparison (:func:`thesis_pair_results`).
4. **Linear probing** (:func:`probe_results`) of every encoder's frozen image embeddings, over ``runs`` seeded
   train/test splits of the same pool.
5. **Fine-tuning** (:func:`finetune_emd`, :func:`finetuning_results`) of an image tower with a ten-way head
   and the EMD loss, the thesis' upper bound, over several seeds.

Every result row names its encoder; :func:`summary_table` gives the Table 12.1 and 12.2 analogues.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from domainknowledge import metrics
from domainknowledge.data.real.ava import AVA_LAYOUT, AVA_TEST_LIST, read_ava, standard_test_mask
from domainknowledge.data.real.image_files import ImageFiles, resize_center_crop
from domainknowledge.data.synthetic import aesthetics as aesthetics_data
from domainknowledge.principles import aesthetic_prompts as prompts
from domainknowledge.principles.pretext import emd_loss, mean_score

__all__ = ["AVA_LAYOUT", "CAPTION_DATA_SIZES", "CONFIGS", "QUALITY_NEGATIVE", "QUALITY_POSITIVE", "Config", "FinetuningConfig", "Task",
           "conse_and_lite0_embeddings", "embed_all", "embed_task", "encoder_roles", "finetune_emd", "finetuning_results", "load_ava", "load_task", "majority_accuracy",
           "plot_probe_weights", "probe_results", "property_probes", "prompt_embeddings", "prompting_results", "split_indices", "trunk_encoders",
           "summary_table", "thesis_pair_results", "training_data"]

# Words the captioned world's captions use for photographic quality (captioned_world.SYNONYMS), which the aligned
# model learnt from: our extension, a prompt vocabulary it has seen; not the thesis' adjectives.
QUALITY_POSITIVE = ("sharp", "crisp", "in-focus", "clean", "noise-free", "well exposed", "correctly exposed")
QUALITY_NEGATIVE = ("blurry", "out-of-focus", "grainy", "noisy", "dim", "underexposed", "overexposed", "washed-out")


@dataclass(frozen=True)
class FinetuningConfig:
    """Fine-tuning with a ten-way head and the EMD loss (Sec. 12.2): SGD with ``momentum``, ``lr_head`` for the
    head and ``lr_backbone`` for the tower, batches of ``batch_size``; early stopping when the EMD on a held-out
    ``validation_fraction`` of the training images has not improved for ``patience`` epochs (at most
    ``max_epochs``). ``towers``: the encoders fine-tuned; ``image_size``: the input side for EfficientNet towers
    (the stand-in CLIP always sees its own 32 px); ``runs``: seeds. ``top_blocks``: ``None`` fine-tunes the
    whole tower (the thesis); a number trains only that many top MBConv blocks of an EfficientNet-Lite or
    aligned tower (with everything above them) on cached maps of the frozen blocks below, so that a small
    profile can train to convergence."""

    towers: tuple[str, ...]
    max_epochs: int
    patience: int
    batch_size: int
    runs: int
    image_size: int = 224
    lr_head: float = 0.01
    lr_backbone: float = 1e-4
    momentum: float = 0.5
    validation_fraction: float = 0.1
    top_blocks: int | None = None


@dataclass(frozen=True)
class Config:
    """What one profile runs (every field is shown on the page).

    ``data``: ``stand-in`` (scenes and photo crops, ``photo_fraction`` photos, ``votes`` simulated votes each,
    ``image_size`` px) or ``ava``; ``train_images`` and ``test_images`` per run (``None`` at AVA: 90 % / 10 % of
    all listed images); ``runs``: seeded train/test splits of the pool. ``multimodal``: image-text encoders
    (prompting and probing), the primary first; ``content``: image-only encoders (probing), the ImageNet
    network the claims compare with first; ``content_classes``: how many ImageNet class names (evenly spaced
    over the 1,000) the context-aware prompts use. ``label_counterpart``: the primary's twin trained on the same
    images with class labels instead of captions (Table 12.2 at equal size; ``None``: the profile's encoders
    answer it). ``trunk_blocks``: the top MBConv blocks of the image tower that a second pair of the primary's
    twins trains with their heads, one on captions and one on class labels (trunks trained under each
    supervision: Table 12.2 and Fig. 12.3 at ``smoke`` and ``cpu``; ``None``: the profile's RN50 CLIPs answer
    them); ``smaller_caption_data``: images per world of a third, caption-trained one (Table 12.2's amount of
    caption data).
    """

    data: str
    image_size: int
    photo_fraction: float
    votes: int
    train_images: int | None
    test_images: int | None
    runs: int
    multimodal: tuple[str, ...]
    content: tuple[str, ...]
    content_classes: int
    finetuning: FinetuningConfig
    label_counterpart: str | None = None
    trunk_blocks: int | None = None
    smaller_caption_data: int | None = None

    def __post_init__(self):
        if self.data not in ("stand-in", "ava"):
            raise ValueError(f"data must be 'stand-in' or 'ava', got {self.data!r}")
        if not 1 <= self.content_classes <= 1000:
            raise ValueError(f"content_classes must lie in 1..1000, got {self.content_classes}")
        if self.runs < 1 or not self.multimodal:
            raise ValueError("need at least one run and one multimodal encoder")
        if self.smaller_caption_data is not None and not self.trunk_blocks:
            raise ValueError("smaller_caption_data sizes a trunk-trained twin: set trunk_blocks too")


#: The aligned model's heads that never saw the aesthetic world (its captions and images), per size: the
#: caption-supervised primary and its class-label twin (:mod:`domainknowledge.models.encoders.aligned`).
_CAPTIONS = "aligned-lite0-minilm-{}-without-aesthetics"
_LABELS = "aligned-lite0-minilm-{}-class-labels-without-aesthetics"

CONFIGS: dict[str, Config] = {
    "smoke": Config(data="stand-in", image_size=64, photo_fraction=0.5, votes=100, train_images=90, test_images=60,
                    runs=1, multimodal=(_CAPTIONS.format("smoke"),), content=("efficientnet-lite0-96px", "raw-pixels-32"),
                    content_classes=10, label_counterpart=_LABELS.format("smoke"), trunk_blocks=2,
                    finetuning=FinetuningConfig(towers=(_CAPTIONS.format("smoke"),), max_epochs=2, patience=1,
                                                batch_size=32, runs=1, image_size=96, lr_head=0.1, lr_backbone=1e-3,
                                                top_blocks=2)),
    "cpu": Config(data="stand-in", image_size=64, photo_fraction=0.5, votes=100, train_images=450, test_images=250,
                  runs=3, multimodal=(_CAPTIONS.format("cpu"), "aligned-lite0-minilm-cpu-all-worlds"),
                  content=("efficientnet-lite0-96px", "raw-pixels-32"), content_classes=100,
                  label_counterpart=_LABELS.format("cpu"), trunk_blocks=2, smaller_caption_data=150,
                  # the top two blocks train on cached maps, to convergence (the thesis' patience of 10 epochs)
                  finetuning=FinetuningConfig(towers=(_CAPTIONS.format("cpu"), "efficientnet-lite0-96px"),
                                              max_epochs=100, patience=10, batch_size=32, runs=1, image_size=96,
                                              lr_head=0.1, lr_backbone=1e-3, top_blocks=2)),
    "paper": Config(data="ava", image_size=224, photo_fraction=0.0, votes=0, train_images=None, test_images=None,
                    runs=1, multimodal=("open_clip:ViT-B-32/openai", "open_clip:RN50/openai", "open_clip:RN50/cc12m",
                                        "open_clip:RN50/yfcc15m", "conse-lite0-minilm"),
                    # a paper dry run (DRY_RUN_CAPS) loads the first of each list: ViT-B/32 CLIP and EfficientNet-Lite0
                    content=("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
                             "torchvision-vit_b_16-imagenet", "torchvision-resnet50-imagenet"),
                    content_classes=1000,
                    finetuning=FinetuningConfig(towers=("open_clip:ViT-B-32/openai", "efficientnet-lite0"),
                                                max_epochs=100, patience=10, batch_size=128, runs=1)),
}

#: Table 12.2's CLIPs and the captioned images each learnt from (Kobs 2023): the ``paper`` answer to "more caption
#: data gives a better probe".
CAPTION_DATA_SIZES = {"open_clip:RN50/cc12m": 12_000_000, "open_clip:RN50/yfcc15m": 15_000_000,
                      "open_clip:RN50/openai": 400_000_000}


#: How the trunk-trained twins train, per aligned-model size: shorter and in smaller batches than the frozen
#: tower's heads (each step runs the top blocks), for the whole cosine schedule. At ``paper`` the RN50 CLIPs
#: answer Table 12.2, so there is no paper schedule.
TRUNK_SCHEDULES = {"smoke": {"steps": 20, "batch_size": 32}, "cpu": {"steps": 100, "batch_size": 128}}
TRUNK_ROLES = {"captions": "captions, trunk trained (Table 12.2 pair)",
               "class-labels": "class labels, trunk trained (Table 12.2 pair, ImageNet analogue)"}


def trunk_encoders(config: Config, *, device="cpu") -> dict[str, object]:
    """The primary's twins whose top ``config.trunk_blocks`` image blocks train with their heads
    (:class:`~domainknowledge.models.encoders.aligned.TrunkHeads`), keyed by role: ``captions``,
    ``class-labels`` (same images, trunk and steps) and, with ``config.smaller_caption_data``, ``smaller``
    (captions, that many images per world). Each never saw the primary's left-out world. Their probes read
    :meth:`~domainknowledge.models.encoders.aligned.AlignedEncoder.image_features`, the activations before the
    projection, as the thesis probes CLIP (Table 12.2, Fig. 12.3 at ``smoke`` and ``cpu``)."""
    from domainknowledge.models.encoders.aligned import ALIGNED_SIZES, load_aligned, parse_aligned_name

    parsed = parse_aligned_name(config.multimodal[0])
    if parsed is None or not config.trunk_blocks:
        raise ValueError("trunk-trained twins need an aligned primary encoder and trunk_blocks")
    size, left_out, _ = parsed
    if size not in TRUNK_SCHEDULES:
        raise ValueError(f"no trunk schedule for the aligned size {size!r}; TRUNK_SCHEDULES has "
                         f"{', '.join(TRUNK_SCHEDULES)}")
    trained = dataclasses.replace(ALIGNED_SIZES[size], trained_blocks=config.trunk_blocks, **TRUNK_SCHEDULES[size])
    label = f"{size}-top{config.trunk_blocks}"
    twins = {supervision: load_aligned(trained, left_out, device=device, label=label, supervision=supervision)
             for supervision in TRUNK_ROLES}
    if config.smaller_caption_data:
        smaller = dataclasses.replace(trained, images_per_world=config.smaller_caption_data)
        twins["smaller"] = load_aligned(smaller, left_out, device=device,
                                        label=f"{label}-{config.smaller_caption_data}")
    return twins


def encoder_roles(config: Config, names, trunk_twins: dict[str, str] | None = None) -> dict[str, str]:
    """What each loaded encoder stands for on the page (the claims use the roles, not the names).
    ``trunk_twins``: the names of :func:`trunk_encoders`' twins keyed by their role there (``captions``,
    ``class-labels``, ``smaller``)."""
    twin_roles = {name: role for role, name in (trunk_twins or {}).items()}
    roles = {}
    for name in names:
        if name in twin_roles:
            roles[name] = (TRUNK_ROLES[twin_roles[name]] if twin_roles[name] in TRUNK_ROLES else
                           f"captions, trunk trained, {config.smaller_caption_data} images per world (Table 12.2)")
        elif name == config.multimodal[0]:
            roles[name] = "primary image-text encoder" + (
                " (its heads never saw the aesthetic world)" if name.endswith("-without-aesthetics") else "")
        elif name == config.label_counterpart:
            roles[name] = "the primary's twin trained on class labels, not captions (ImageNet analogue)"
        elif name.endswith("-all-worlds"):
            roles[name] = "upper bound: its heads saw the aesthetic world's captions (never the thesis' adjectives)"
        elif name == config.content[0]:
            roles[name] = "the ImageNet network the claims compare with"
        elif name.startswith("raw-pixels"):
            roles[name] = "floor: no model"
        else:
            roles[name] = "diagnostic"
    return roles


def training_data(encoder) -> str:
    """The images an encoder's weights learnt from, for the Table 12.2 analogue."""
    from domainknowledge.models.encoders.aligned import AlignedEncoder

    name = encoder.name
    if isinstance(encoder, AlignedEncoder):
        pairs = encoder.config.images_per_world * len(encoder.history["worlds"])
        kind = "captioned" if encoder.config.supervision == "captions" else "class-labelled"
        trunk = (f"an ImageNet-1k trunk whose top {encoder.config.trained_blocks} blocks train on them"
                 if encoder.config.trained_blocks else "a frozen ImageNet-1k trunk")
        return f"{pairs:,} {kind} synthetic images on {trunk}"
    if name.startswith(("efficientnet", "torchvision")):
        return "ImageNet-1k (1.28 M labelled images)"
    if name.startswith("conse"):
        return "ImageNet-1k (1.28 M labelled images) + MiniLM's sentence pairs"
    if name.startswith("raw-pixels"):
        return "none"
    if name in CAPTION_DATA_SIZES:
        return f"{CAPTION_DATA_SIZES[name] / 1e6:,.0f} M captioned web images"
    if name.startswith("open_clip:"):
        return "captioned web images (see provenance)"
    return "see provenance"


# --- data -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A pool of rated images: ``images`` ``(N, H, W, 3)`` uint8 (an array, or AVA's files read a batch at a time),
    ``distributions`` ``(N, 10)`` normalised votes, ``mean_scores`` ``(N,)``, ``properties`` (stand-in only), a
    ``data_key`` naming the pool for the embedding cache, ``test_fraction`` (used when a config gives no sizes
    and the pool has no published partition) and ``standard_test`` ``(N,)`` bool, AVA's standard test partition."""

    name: str
    description: str
    images: np.ndarray | ImageFiles
    distributions: np.ndarray
    mean_scores: np.ndarray
    is_stand_in: bool
    data_key: str
    properties: pd.DataFrame | None = None
    test_fraction: float = 0.1
    standard_test: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


def load_ava(data_root, size: int, *, limit: int | None = None) -> tuple[ImageFiles, np.ndarray]:
    """AVA's images (resized and centre-cropped to ``size`` as they are read) ``(N, size, size, 3)`` uint8 and
    votes ``(N, 10)`` from ``data_root/AVA`` (:data:`~domainknowledge.data.real.ava.AVA_LAYOUT`), in the order
    of ``AVA.txt``; images missing on disk are skipped, none present is an error."""
    ratings = read_ava(data_root)
    count = len(ratings) if limit is None else min(limit, len(ratings))
    return ImageFiles(ratings.paths[:count], resize_center_crop(size), size), ratings.votes[:count]


def load_task(config: Config, *, seed: int, data_root=None) -> Task:
    """The pool of rated images of ``config`` (module docstring)."""
    if config.data == "stand-in":
        total = config.train_images + config.test_images
        data = aesthetics_data.generate_mixed_aesthetics(total, config.image_size, seed=seed + 1201, votes=config.votes,
                                                         photo_fraction=config.photo_fraction)
        key = (f"clip-aesthetics|mixed|n={total}|size={config.image_size}|photos={config.photo_fraction}|"
               f"votes={config.votes}|seed={seed + 1201}")
        return Task("aesthetic scenes and photo crops (stand-in)",
                    f"{total:,} seeded stand-in images ({config.photo_fraction:.0%} crops of bundled real photos, the "
                    f"rest synthetic scenes), {config.votes} simulated votes each", data.images, data.distributions,
                    data.mean_score, True, key, data.properties)
    ratings = read_ava(data_root)
    images = ImageFiles(ratings.paths, resize_center_crop(config.image_size), config.image_size)
    test = standard_test_mask(ratings)
    return Task("AVA", f"{len(ratings):,} AVA photos read from disk batch by batch; the standard partition "
                f"({AVA_TEST_LIST}, as in RAPID, A-LAMP and MP_ada): {int((~test).sum()):,} training and "
                f"{int(test.sum()):,} test photos", images, ratings.distributions, ratings.mean_scores, False,
                f"clip-aesthetics|ava|n={len(ratings)}|ids={int(ratings.image_ids.sum())}|size={config.image_size}",
                standard_test=test)


def split_indices(task: Task, config: Config, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train, test)`` index arrays into the pool: ``config.train_images`` and ``config.test_images``, or
    when they are ``None`` the pool's published partition (AVA's standard one, the same for every seed) or a
    ``task.test_fraction`` test share."""
    n = len(task)
    if (config.train_images is None or config.test_images is None) and task.standard_test is not None:
        return np.flatnonzero(~task.standard_test), np.flatnonzero(task.standard_test)
    if config.train_images is None or config.test_images is None:
        test = max(1, round(task.test_fraction * n))
        train = n - test
    else:
        train, test = config.train_images, config.test_images
    if train + test > n or min(train, test) < 3:
        raise ValueError(f"cannot split {n} images into {train} training and {test} test images")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:train]), np.sort(order[train:train + test])


def majority_accuracy(train_scores, test_scores, threshold: float = 5.0) -> float:
    """Accuracy on the test images of always predicting the class that is the majority among training images."""
    majority = np.mean(np.asarray(train_scores) > threshold) >= 0.5
    return float(np.mean((np.asarray(test_scores) > threshold) == majority))


# --- embeddings -------------------------------------------------------------------------------------------


def embed_task(encoder, task: Task, *, cache_dir=None) -> np.ndarray:
    """The encoder's image embeddings of the whole pool ``(N, D)``, through the registry's cache."""
    from domainknowledge.models.encoders import cached_image_embeddings

    return cached_image_embeddings(encoder, task.images, data_key=task.data_key, cache_dir=cache_dir)


SHARED_PASS = ("conse-lite0-minilm", "efficientnet-lite0")


@torch.no_grad()
def conse_and_lite0_embeddings(conse, images, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """ConSE's and EfficientNet-Lite0's image embeddings ``(N, 384)`` and ``(N, 1280)`` (unit rows) from one pass
    of ConSE's EfficientNet-Lite0: its pooled penultimate features are the Lite0 encoder's embedding, its
    ImageNet probabilities the input of ConSE (both encoders use the same network, weights and preprocessing)."""
    from domainknowledge.models.encoders import conse_embedding
    from domainknowledge.models.encoders.base import as_image_batches

    network = conse.network.eval()
    conse_parts, lite_parts = [], []
    for batch in as_image_batches(images, batch_size):
        pooled = network.extract_features(conse.preprocess(batch.to(conse.device))).mean(dim=(2, 3))
        probabilities = torch.softmax(network._fc(pooled), dim=1)
        conse_parts.append(conse_embedding(probabilities, conse.class_embeddings, conse.top_t).cpu())
        lite_parts.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
    return torch.cat(conse_parts).numpy().astype(np.float32), torch.cat(lite_parts).numpy().astype(np.float32)


def embed_all(loaded: dict, task: Task, *, cache_dir=None) -> dict[str, np.ndarray]:
    """:func:`embed_task` for every encoder of ``loaded`` (``{name: encoder}``); when ConSE and EfficientNet-Lite0
    are both asked for and neither is cached, one network pass fills both caches
    (:func:`conse_and_lite0_embeddings`)."""
    from domainknowledge.data.bundled import cache_dir as default_cache
    from domainknowledge.models.encoders import cached_embeddings
    from domainknowledge.models.encoders.zero_shot import embedding_cache_path

    root = Path(cache_dir) if cache_dir is not None else default_cache() / "encoders"
    out = {}
    if all(name in loaded for name in SHARED_PASS) and not any(
            embedding_cache_path(loaded[name], task.data_key, root).is_file() for name in SHARED_PASS):
        conse_embeddings, lite_embeddings = conse_and_lite0_embeddings(loaded[SHARED_PASS[0]], task.images)
        for name, values in zip(SHARED_PASS, (conse_embeddings, lite_embeddings)):
            out[name] = cached_embeddings(loaded[name], task.data_key, lambda v=values: v, cache_dir=root)
    for name, encoder in loaded.items():
        if name not in out:
            out[name] = embed_task(encoder, task, cache_dir=root)
    return out


def _content_classes(count: int) -> list[str]:
    from domainknowledge.models.encoders import imagenet_class_names

    names = imagenet_class_names()
    index = np.linspace(0, len(names) - 1, count).round().astype(int)
    return [prompts.content_class_name(names[i]) for i in index]


def prompt_embeddings(encoder, words, method: str, content_classes: int, *, cache_dir=None) -> dict[str, np.ndarray]:
    """``{word: (K, D)}`` prompt embeddings of ``method`` (``fixed``: K = 1; ``context``: K = ``content_classes``
    ImageNet names; ``ensemble``: the normalised mean of the context prompts, K = 1), through the text cache."""
    from domainknowledge.models.encoders import cached_text_embeddings

    words = list(words)
    if method == "fixed":
        embeddings = cached_text_embeddings(encoder, [prompts.fixed_prompt(w) for w in words], cache_dir=cache_dir)
        return {w: embeddings[i:i + 1] for i, w in enumerate(words)}
    if method not in ("context", "ensemble"):
        raise ValueError(f"method must be 'fixed', 'context' or 'ensemble', got {method!r}")
    classes = _content_classes(content_classes)
    texts = [text for w in words for text in prompts.context_prompts(w, classes)]
    embeddings = cached_text_embeddings(encoder, texts, cache_dir=cache_dir).reshape(len(words), len(classes), -1)
    if method == "ensemble":
        return {w: prompts.ensemble_vector(embeddings[i]) for i, w in enumerate(words)}
    return {w: embeddings[i] for i, w in enumerate(words)}


# --- prompting and probing --------------------------------------------------------------------------------


def prompting_results(encoder, embeddings: np.ndarray, task: Task, config: Config, seeds, *,
                      positive=prompts.POSITIVE_ADJECTIVES, negative=prompts.NEGATIVE_ADJECTIVES,
                      methods=prompts.METHODS, label: str = "thesis adjectives", cache_dir=None) -> pd.DataFrame:
    """One row per (method, task, seed): the pair chosen on the run's training images and its test metrics
    (``accuracy`` for the binary task; ``spearman``, ``pearson`` for the continuous one)."""
    rows = []
    for method in methods:
        words = prompt_embeddings(encoder, [*positive, *negative], method, config.content_classes, cache_dir=cache_dir)
        for seed in seeds:
            train, test = split_indices(task, config, seed)
            search = prompts.search_adjective_pairs(embeddings[train], task.mean_scores[train], words, positive, negative)
            for kind in ("binary", "continuous"):
                pair = prompts.best_pair(search, kind)
                values = prompts.evaluate_prompts(embeddings[test], task.mean_scores[test], words[pair[0]],
                                                  words[pair[1]])
                keep = ("accuracy",) if kind == "binary" else ("spearman", "pearson")
                rows.append({"encoder": encoder.name, "method": method, "words": label, "task": kind, "seed": seed,
                             "pair": f"{pair[0]} / {pair[1]}", **{k: values[k] for k in keep}})
    return pd.DataFrame(rows)


def thesis_pair_results(encoder, embeddings: np.ndarray, task: Task, config: Config, seeds, *,
                        cache_dir=None) -> pd.DataFrame:
    """The thesis' own chosen pairs (:data:`~domainknowledge.principles.aesthetic_prompts.THESIS_BEST_PAIRS`)
    on the test images of every run, with the vocabulary coverage of their prompts where the encoder reports it."""
    rows = []
    for (method, kind), pair in prompts.THESIS_BEST_PAIRS.items():
        words = prompt_embeddings(encoder, pair, method, config.content_classes, cache_dir=cache_dir)
        for seed in seeds:
            _, test = split_indices(task, config, seed)
            values = prompts.evaluate_prompts(embeddings[test], task.mean_scores[test], words[pair[0]], words[pair[1]])
            keep = ("accuracy",) if kind == "binary" else ("spearman", "pearson")
            rows.append({"encoder": encoder.name, "method": method, "task": kind, "seed": seed,
                         "pair": f"{pair[0]} / {pair[1]}", **{k: values[k] for k in keep}})
    return pd.DataFrame(rows)


def probe_results(name: str, embeddings: np.ndarray, task: Task, config: Config, seeds, *,
                  components: int | None = None) -> tuple[pd.DataFrame, dict]:
    """A linear probe per seeded split: rows with ``encoder``, ``seed``, ``alpha``, ``dimensions`` and the test
    metrics of :func:`~domainknowledge.metrics.aesthetic_score_metrics`; and ``{seed: LinearProbe}``. With
    ``components``, features of more dimensions are first projected onto the first ``components`` principal
    components of the run's training features (a probe at equal dimension)."""
    rows, probes = [], {}
    for seed in seeds:
        train, test = split_indices(task, config, seed)
        features = np.asarray(embeddings, dtype=np.float64)
        if components is not None and features.shape[1] > components:
            project, _ = prompts.principal_projection(features[train], min(components, len(train) - 1))
            features = project(features)
        probe = prompts.fit_linear_probe(features[train], task.mean_scores[train])
        values = metrics.aesthetic_score_metrics(probe.predict(features[test]), task.mean_scores[test])
        rows.append({"encoder": name, "seed": seed, "alpha": probe.alpha, "dimensions": features.shape[1], **values})
        probes[seed] = probe
    return pd.DataFrame(rows), probes


QUALITY_PROPERTIES = {"exposure (signed)": ("exposure", False), "|exposure|": ("exposure", True),
                      "|contrast|": ("contrast", True), "|saturation|": ("saturation", True), "blur": ("blur", False),
                      "noise": ("noise", False)}


def property_probes(embeddings: dict[str, np.ndarray], task: Task, train: np.ndarray, test: np.ndarray) -> pd.DataFrame:
    """What each encoder's features hold of the hidden quality function: the test Spearman correlation of a linear
    probe (:func:`~domainknowledge.principles.aesthetic_prompts.fit_linear_probe`) from ``embeddings[name]``
    ``(N, D)`` to each property of :data:`QUALITY_PROPERTIES` (the absolute value where the score penalises both
    directions), one row per encoder. Needs a stand-in task (its ``properties``)."""
    from scipy import stats

    if task.properties is None:
        raise ValueError("property probes need the stand-in's hidden properties; AVA has none")
    rows = {}
    for name, features in embeddings.items():
        row = {}
        for label, (column, absolute) in QUALITY_PROPERTIES.items():
            target = task.properties[column].to_numpy(float)
            target = np.abs(target) if absolute else target
            probe = prompts.fit_linear_probe(features[train], target[train])
            row[label] = float(stats.spearmanr(probe.predict(features[test]), target[test])[0])
        rows[name] = row
    return pd.DataFrame(rows).T


# --- fine-tuning ------------------------------------------------------------------------------------------


class _ImageTower(nn.Module):
    """``forward(uint8 or float 0..255 images (B, 3, H, W)) -> (B, F)``: resize, standardise, the tower.

    A tower split for training its top on cached inputs (``split=True``) also has :meth:`lower` (images -> a
    tuple of tensors from the frozen part, no gradients) and :meth:`upper` (that tuple -> ``(B, F)``, the
    trained part); the tower is then a module with ``lower(images)`` and ``upper(*parts)``."""

    def __init__(self, tower: nn.Module, feature_dim: int, image_size: int, standardise, name: str,
                 split: bool = False):
        super().__init__()
        self.tower, self.feature_dim, self.image_size, self.standardise, self.name = (
            tower, feature_dim, image_size, standardise, name)
        self.split = split

    def _prepared(self, images: torch.Tensor) -> torch.Tensor:
        from domainknowledge.models.encoders.base import resize_center_crop

        return self.standardise(resize_center_crop(images.float(), self.image_size))

    def lower(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            return tuple(self.tower.lower(self._prepared(images)))

    def upper(self, *parts: torch.Tensor) -> torch.Tensor:
        return self.tower.upper(*parts)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.upper(*self.lower(images)) if self.split else self.tower(self._prepared(images))


class _EfficientNetSplit(nn.Module):
    """EfficientNet-Lite with its top ``top_blocks`` blocks trainable: ``lower`` (standardised images ->
    ``(maps,)``) and ``upper`` (maps -> pooled ``(B, 1280)``) of
    :class:`~domainknowledge.models.backbones.EfficientNetTop`."""

    def __init__(self, network: nn.Module, top_blocks: int):
        super().__init__()
        from domainknowledge.models.backbones import EfficientNetTop

        self.top = EfficientNetTop(network, top_blocks)
        self.frozen = network.eval()           # a submodule so that it moves with the tower; never trained
        for parameter in network.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen.eval()
        self.top.train(mode)
        return self

    @torch.no_grad()
    def lower(self, standardised: torch.Tensor) -> tuple[torch.Tensor]:
        from domainknowledge.models.backbones import efficientnet_lower

        return (efficientnet_lower(self.frozen, standardised, self.top.cut)[0],)

    def upper(self, maps: torch.Tensor) -> torch.Tensor:
        return self.top(maps)


def _tower_for(name: str, image_size: int, device, top_blocks: int | None = None) -> _ImageTower:
    """A trainable copy of the image tower of encoder ``name`` (a stand-in CLIP, an open_clip model, the aligned
    model or an EfficientNet-Lite), returning its pooled features (the input of the new head). An
    EfficientNet-Lite named with a size (``efficientnet-lite0-96px``) is fine-tuned at that size, else at
    ``image_size``; the aligned model at its own input size. ``top_blocks``: split the tower so that only its
    top blocks train (:class:`_ImageTower`; EfficientNet-Lite and aligned towers only)."""
    from domainknowledge.models.encoders import load_encoder
    from domainknowledge.models.encoders.aligned import AlignedEncoder
    from domainknowledge.models.encoders.registry import parse_efficientnet_name

    efficientnet = parse_efficientnet_name(name)
    if efficientnet is not None:
        from domainknowledge.models.backbones import load_efficientnet_lite

        variant, size = efficientnet
        image_size = size or image_size
        network = load_efficientnet_lite(variant, image_size=image_size)
        if top_blocks:
            return _ImageTower(_EfficientNetSplit(network, top_blocks), 1280, image_size,
                               lambda x: (x - 127.0) / 128.0, name, split=True)

        class _Pooled(nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                return self.net.extract_features(x).mean(dim=(2, 3))

        return _ImageTower(_Pooled(network), 1280, image_size, lambda x: (x - 127.0) / 128.0, name)
    encoder = load_encoder(name, device=device)
    if isinstance(encoder, AlignedEncoder):
        if top_blocks:
            return _ImageTower(encoder.split_image_tower(top_blocks), encoder.embedding_dim, encoder.image_size,
                               lambda x: x, name, split=True)
        return _ImageTower(encoder.trainable_image_tower(), encoder.embedding_dim, encoder.image_size,
                           lambda x: x, name)
    if top_blocks:
        raise ValueError(f"top_blocks needs an EfficientNet-Lite or aligned tower, not {name!r}")
    if not hasattr(encoder, "model"):
        raise ValueError(f"encoder {name!r} has no trainable image tower to fine-tune; choose a stand-in CLIP, an "
                         "open_clip model or an efficientnet-lite")
    visual = copy.deepcopy(encoder.model.visual).float()
    preprocess = encoder.preprocess

    def standardise(x, size=encoder.image_size):      # the encoder's own preprocessing, minus the resize done above
        return preprocess(x)

    return _ImageTower(visual, encoder.embedding_dim, encoder.image_size, standardise, name)


def _image_batch(task: Task, index: np.ndarray, device) -> torch.Tensor:
    """The pool's images ``index`` as a ``(B, 3, H, W)`` uint8 tensor on ``device`` (read from disk for AVA)."""
    return torch.from_numpy(np.ascontiguousarray(task.images[np.asarray(index)].transpose(0, 3, 1, 2))).to(device)


class _TowerInputs:
    """What the fine-tuned model reads for pool indices: the images (the whole tower trains) or, for a split
    tower, the frozen part's outputs, computed once for ``indices`` on ``device`` and kept."""

    def __init__(self, backbone: _ImageTower, task: Task, indices: np.ndarray, device, batch_size: int = 64):
        self.backbone, self.task, self.device = backbone, task, device
        self.indices = np.unique(np.asarray(indices))
        self.parts = None
        if backbone.split:
            chunks = [backbone.lower(_image_batch(task, self.indices[s:s + batch_size], device))
                      for s in range(0, len(self.indices), batch_size)]
            self.parts = [torch.cat(column).to(device) for column in zip(*chunks)]

    def features(self, index: np.ndarray) -> torch.Tensor:
        """The tower's features ``(B, F)`` of pool indices ``index`` ``(B,)``."""
        if self.parts is None:
            return self.backbone(_image_batch(self.task, index, self.device))
        rows = torch.as_tensor(np.searchsorted(self.indices, index), device=self.parts[0].device)
        return self.backbone.upper(*(part[rows] for part in self.parts))


class _ScoreHead(nn.Module):
    """NIMA's new last layer, ``(B, F) -> (B, 10)`` score logits, reading the tower's features standardised with
    their mean and standard deviation over the training images when fine-tuning starts (:meth:`fit_scale`,
    then fixed). The towers here differ about thirtyfold in feature scale (a unit-length image-text
    embedding, pooled CNN activations); the thesis' two towers both feed their head layer-normalised
    features, so that one pair of learning rates serves both. Standardising keeps it so."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.linear = nn.Linear(dim, 10)

    @torch.no_grad()
    def fit_scale(self, features: torch.Tensor) -> None:
        """Set the standardisation from features ``(N, F)``."""
        self.mean.copy_(features.mean(dim=0))
        self.std.copy_(features.std(dim=0).clamp_min(1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.std)


@torch.no_grad()
def _predict(model: nn.Module, inputs: _TowerInputs, index: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """Softmax score distributions ``(len(index), 10)`` of the tower and ``head`` ``model``, one batch at a time."""
    model.eval()
    return torch.cat([torch.softmax(model[1](inputs.features(index[s:s + batch_size])), dim=1)
                      for s in range(0, len(index), batch_size)])


def finetune_emd(tower: str, task: Task, train: np.ndarray, test: np.ndarray, settings: FinetuningConfig, *, seed: int,
                 device="cpu") -> dict:
    """Fine-tune the image tower of encoder ``tower`` with a new linear head of ten outputs, softmax and the EMD
    loss (Sec. 12.2; NIMA) on the ``train`` indices, early-stopped on a held-out share of them; return the test
    metrics of the predicted mean score, the epochs, the parameter count and the seconds taken. The head reads
    standardised features (:class:`_ScoreHead`). With ``settings.top_blocks`` only the tower's top blocks
    train, on its frozen part's outputs computed once."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    backbone = _tower_for(tower, settings.image_size, device, settings.top_blocks)
    model = nn.Sequential(backbone, _ScoreHead(backbone.feature_dim)).to(device)
    inputs = _TowerInputs(backbone, task, np.concatenate([train, test]), device)
    model.eval()
    with torch.no_grad():
        model[1].fit_scale(torch.cat([inputs.features(train[s:s + 256]) for s in range(0, len(train), 256)]))
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(train)
    held = max(2, round(settings.validation_fraction * len(train)))
    validation, fit = shuffled[:held], shuffled[held:]
    to_targets = lambda index: torch.from_numpy(task.distributions[index]).float().to(device)  # noqa: E731
    y_fit, y_val = to_targets(fit), to_targets(validation)
    trained = list(backbone.tower.parameters()) if not backbone.split else [
        p for p in backbone.tower.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD([{"params": trained, "lr": settings.lr_backbone},
                                 {"params": model[1].parameters(), "lr": settings.lr_head}], momentum=settings.momentum)
    generator = torch.Generator().manual_seed(seed)
    best, best_state, best_epoch, since, epoch, history = None, None, 0, 0, 0, []
    while epoch < settings.max_epochs and since < settings.patience:
        epoch += 1
        model.train()
        for batch in torch.randperm(len(fit), generator=generator).split(settings.batch_size):
            if len(batch) < 2:
                continue
            loss = emd_loss(torch.softmax(model[1](inputs.features(fit[batch.numpy()])), dim=1),
                            y_fit[batch.to(y_fit.device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        value = float(emd_loss(_predict(model, inputs, validation), y_val))
        history.append(value)
        if best is None or value < best:
            best, best_state, best_epoch, since = value, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            since += 1
    model.load_state_dict(best_state)
    predicted = mean_score(_predict(model, inputs, test)).cpu().numpy().astype(np.float64)
    return {"encoder": tower, "seed": seed, **metrics.aesthetic_score_metrics(predicted, task.mean_scores[test]),
            "epochs": epoch, "best_epoch": best_epoch, "validation_emd": best, "history": history,
            "parameters": sum(p.numel() for p in trained) + sum(p.numel() for p in model[1].parameters()),
            "seconds": time.perf_counter() - started}


def finetuning_results(task: Task, config: Config, seeds, *, device="cpu") -> pd.DataFrame:
    """:func:`finetune_emd` for every tower of the config and the first ``config.finetuning.runs`` of ``seeds``
    (the split of each seed as for probing)."""
    rows = []
    for tower in config.finetuning.towers:
        for seed in list(seeds)[:config.finetuning.runs]:
            train, test = split_indices(task, config, seed)
            rows.append(finetune_emd(tower, task, train, test, config.finetuning, seed=seed, device=device))
    return pd.DataFrame(rows)


# --- tables and figures -----------------------------------------------------------------------------------


def _mean_sd(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    return f"{values.mean():.3f}" if len(values) == 1 else f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def summary_table(prompting: pd.DataFrame, probing: pd.DataFrame, finetuning: pd.DataFrame,
                  majority: list[float]) -> pd.DataFrame:
    """The Table 12.1 analogue: one row per method and encoder with ``accuracy``, ``spearman`` and ``pearson`` as
    mean ± sd over runs (binary rows carry accuracy only, continuous rows the correlations)."""
    rows = [{"method": "majority vote", "encoder": "–", "accuracy": _mean_sd(pd.Series(majority)), "spearman": "–",
             "pearson": "–"}]
    names = {"fixed": "fixed prompt", "context": "context-aware prompts", "ensemble": "prompt ensemble"}
    for (words, method, encoder), group in prompting.groupby(["words", "method", "encoder"], sort=False):
        binary, continuous = group[group.task == "binary"], group[group.task == "continuous"]
        label = names[method] + ("" if words == "thesis adjectives" else f" ({words})")
        rows.append({"method": label, "encoder": encoder, "accuracy": _mean_sd(binary["accuracy"]),
                     "spearman": _mean_sd(continuous["spearman"]), "pearson": _mean_sd(continuous["pearson"])})
    for encoder, group in probing.groupby("encoder", sort=False):
        rows.append({"method": "linear probe", "encoder": encoder, "accuracy": _mean_sd(group["accuracy"]),
                     "spearman": _mean_sd(group["spearman"]), "pearson": _mean_sd(group["pearson"])})
    for encoder, group in finetuning.groupby("encoder", sort=False):
        rows.append({"method": "fine-tuned (EMD)", "encoder": encoder, "accuracy": _mean_sd(group["accuracy"]),
                     "spearman": _mean_sd(group["spearman"]), "pearson": _mean_sd(group["pearson"])})
    return pd.DataFrame(rows)


def plot_probe_weights(scaled: dict[str, np.ndarray], title: str | None = None):
    """Fig. 12.3: the scaled probe weights ``|w_d| sd_d`` per dimension, one panel per encoder, each normalised
    by its largest value so that panels of different dimension compare."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(scaled), 1, figsize=(7.2, 1.6 * len(scaled) + 0.6), squeeze=False)
    for ax, (name, weights) in zip(axes[:, 0], scaled.items()):
        values = np.abs(np.asarray(weights))
        ax.fill_between(np.arange(len(values)), values / values.max(), step="mid", color="C0", linewidth=0)
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("|w| sd\n(rel.)", fontsize=8)
        ax.set_title(f"{name} ({len(values)} dimensions)", fontsize=9)
    axes[-1, 0].set_xlabel("feature dimension")
    if title:
        fig.suptitle(title)
    return fig

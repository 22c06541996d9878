"""Experiment drivers of the human-similarity chapter (Margaritescu 2024): configurations, extractors, the
pretrained-feature grid (Fig. 5.1), fine-tuning (Fig. 5.3), feature maps (Fig. 5.2) and the nine hypotheses
of Sec. 5.2.

* :func:`load_sources`: the stand-in benchmark (``smoke``, ``cpu``) or the thesis' data sets (``paper``);
* :func:`build_extractors`: every extractor of the profile, loaded from the encoder registry or trained here
  (a small CNN, randomly initialised, supervised and self-supervised, on the captioned world);
* :func:`evaluate_all`: triplet accuracy of every extractor on every set under cosine, L2 and L1;
* :func:`run_fine_tuning`: every paradigm on every fine-tuned backbone and source, over several seeds;
* :func:`hypotheses`: the verdicts of Sec. 5.2 from those numbers, by rules fixed in the code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from domainknowledge.data.synthetic.similarity_judgements import BenchmarkSize, make_similarity_benchmark
from domainknowledge.principles import similarity_judgements as sj

__all__ = ["CONFIGS", "EXTRACTOR_KINDS", "SEEN", "THESIS_VERDICTS", "Config", "build_extractors", "cosine_is_best",
           "evaluate_all", "factor_silhouettes",
           "feature_maps", "fine_tuning_summary", "hypotheses", "load_sources", "run_fine_tuning", "set_label"]

# What each extractor stands in for: architecture, pre-training supervision, language, role.
EXTRACTOR_KINDS = {
    "raw-pixels-32": ("pixels", "none", False, "baseline"),
    "small-cnn-random": ("CNN", "none (random init.)", False, "baseline"),
    "small-cnn-supervised": ("CNN", "supervised", False, "trained here"),
    "small-cnn-selfsupervised": ("CNN", "self-supervised", False, "trained here"),
    "standin-clip-smoke": ("ViT", "language-image", True, "large-model stand-in"),
    "standin-clip-cpu": ("ViT", "language-image", True, "large-model stand-in"),
    "standin-clip-paper": ("ViT", "language-image", True, "large-model stand-in"),
    "conse-lite0-minilm": ("CNN", "supervised + language", True, "real weights"),
    "efficientnet-lite0": ("CNN", "supervised", False, "real weights"),
    "efficientnet-lite1": ("CNN", "supervised", False, "real weights"),
    "efficientnet-lite2": ("CNN", "supervised", False, "real weights"),
    "torchvision-resnet50-imagenet": ("CNN", "supervised", False, "Table 3.1"),
    "torchvision-efficientnet_v2_m-imagenet": ("CNN", "supervised", False, "Table 3.1"),
    "torchvision-vit_b_16-imagenet": ("ViT", "supervised", False, "Table 3.1"),
    "torchvision-alexnet-imagenet": ("CNN", "supervised", False, "Table 3.1"),
    "open_clip:ViT-B-16/openai": ("ViT", "language-image", True, "Table 3.1"),
    "open_clip:RN50/openai": ("CNN", "language-image", True, "Table 3.1"),
    "open_clip:RN50x4/openai": ("CNN", "language-image", True, "Table 3.1"),
    "open_clip:RN50x16/openai": ("CNN", "language-image", True, "Table 3.1"),
    "open_clip:RN50x64/openai": ("CNN", "language-image", True, "Table 3.1"),
}
SEEN = "fine-tuning triplets (seen)"
SCALING_SERIES = {"cpu": ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"),
                  "paper": ("open_clip:RN50/openai", "open_clip:RN50x4/openai", "open_clip:RN50x16/openai",
                            "open_clip:RN50x64/openai")}

THESIS_VERDICTS = {
    "5.2.1": ("Large vision model features align better with human judgements", "proven"),
    "5.2.2": ("One pre-training supervision type aligns best", "inconclusive"),
    "5.2.3": ("One similarity metric (cosine) is best for all models", "proven"),
    "5.2.4": ("Language in pre-training closes the gap on every set", "disproven"),
    "5.2.5": ("More CNN filters close the gap", "disproven"),
    "5.2.6": ("Transformers separate categories better than CNNs", "proven"),
    "5.2.7": ("The best fine-tuning supervision depends on the pre-training supervision", "disproven"),
    "5.2.8": ("A universally best fine-tuning loss exists (quadruplet > triplet > contrastive)", "proven"),
    "5.2.9": ("The best fine-tuning paradigm depends on the triplet type", "disproven"),
}


@dataclass(frozen=True)
class Config:
    """What one profile of the chapter runs.

    ``data``: ``stand-in`` (simulated observers) or ``real`` (the thesis' sets from ``--data-root``);
    ``benchmark``: sizes of the sets; ``extractors``: names evaluated (registry names, or ``small-cnn-*``
    trained here); ``cnn_input_scale``: the real ImageNet CNNs see images at this fraction of their native
    input size; ``pretrain_images``, ``pretrain_epochs``: the small CNNs' training; ``finetune_backbones``,
    ``finetune``, ``seeds``: fine-tuning; ``jigsaw_per_image``, ``views``: pretext inputs encoded per
    singleton; ``projection``: ``umap`` or ``pca`` for Fig. 5.2; ``map_extractors``: extractors drawn there.
    """

    data: str
    benchmark: BenchmarkSize
    extractors: tuple[str, ...]
    cnn_input_scale: float
    pretrain_images: int
    pretrain_epochs: int
    finetune_backbones: tuple[str, ...]
    finetune: sj.FineTuneSettings
    seeds: int
    jigsaw_per_image: int
    views: int
    projection: str
    map_extractors: tuple[str, ...]
    scaling_series: tuple[str, ...] = field(default=SCALING_SERIES["cpu"])

    def __post_init__(self):
        if self.data not in ("stand-in", "real"):
            raise ValueError(f"data must be 'stand-in' or 'real', got {self.data!r}")
        if self.projection not in ("umap", "pca"):
            raise ValueError(f"projection must be 'umap' or 'pca', got {self.projection!r}")
        unknown = [e for e in self.extractors if e not in EXTRACTOR_KINDS]
        if unknown:
            raise ValueError(f"unknown extractors {unknown}; known: {sorted(EXTRACTOR_KINDS)}")
        missing = [e for e in (*self.finetune_backbones, *self.map_extractors) if e not in self.extractors]
        if missing:
            raise ValueError(f"fine-tuned and mapped extractors must be evaluated too: {missing}")
        if self.seeds < 1 or not 0 < self.cnn_input_scale <= 1:
            raise ValueError("seeds must be >= 1 and cnn_input_scale in (0, 1]")


_SMALL = ("raw-pixels-32", "small-cnn-random", "small-cnn-supervised", "small-cnn-selfsupervised")
CONFIGS: dict[str, Config] = {
    "smoke": Config(
        data="stand-in", benchmark=BenchmarkSize(triplets=40, finetune=60, imagenet_images=150),
        extractors=(*_SMALL, "standin-clip-smoke", "efficientnet-lite0"), cnn_input_scale=0.3,
        pretrain_images=300, pretrain_epochs=1, finetune_backbones=("small-cnn-supervised",),
        finetune=sj.FineTuneSettings(epochs=2, hidden=64), seeds=1, jigsaw_per_image=2, views=2,
        projection="pca", map_extractors=("small-cnn-supervised", "standin-clip-smoke"),
        scaling_series=("efficientnet-lite0",)),
    "cpu": Config(
        data="stand-in", benchmark=BenchmarkSize(triplets=200, finetune=240, imagenet_images=400, patch_triplets=80),
        extractors=(*_SMALL, "standin-clip-cpu", "conse-lite0-minilm", "efficientnet-lite0", "efficientnet-lite1",
                    "efficientnet-lite2"), cnn_input_scale=0.35,
        pretrain_images=1500, pretrain_epochs=4,
        finetune_backbones=("small-cnn-supervised", "small-cnn-selfsupervised"),
        finetune=sj.FineTuneSettings(epochs=20, learning_rate=3e-3, hidden=128), seeds=3, jigsaw_per_image=4, views=4,
        projection="umap", map_extractors=("small-cnn-supervised", "small-cnn-selfsupervised", "standin-clip-cpu",
                                           "efficientnet-lite0")),
    "paper": Config(
        data="real", benchmark=BenchmarkSize(triplets=1000, finetune=1000, image_size=224, patch_size=64),
        extractors=("torchvision-resnet50-imagenet", "torchvision-efficientnet_v2_m-imagenet",
                    "torchvision-vit_b_16-imagenet", "torchvision-alexnet-imagenet", "open_clip:ViT-B-16/openai",
                    "open_clip:RN50/openai", "open_clip:RN50x4/openai", "open_clip:RN50x16/openai",
                    "open_clip:RN50x64/openai", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
                    *_SMALL, "standin-clip-paper"), cnn_input_scale=1.0,
        pretrain_images=20000, pretrain_epochs=30,
        finetune_backbones=("torchvision-resnet50-imagenet", "torchvision-vit_b_16-imagenet",
                            "open_clip:ViT-B-16/openai", "open_clip:RN50/openai"),
        finetune=sj.FineTuneSettings(epochs=25, batch_size=32, learning_rate=1e-4, hidden=512, projection=128),
        seeds=3, jigsaw_per_image=12, views=8, projection="umap",
        map_extractors=("open_clip:ViT-B-16/openai", "open_clip:RN50/openai", "torchvision-vit_b_16-imagenet",
                        "torchvision-resnet50-imagenet"), scaling_series=SCALING_SERIES["paper"]),
}


def set_label(source: str, name: str) -> str:
    """A short label for one evaluation set, e.g. ``Birds 8r2 similar`` or ``BAPPS deblur``."""
    short = source.split("-")[0].replace("ImageNet", "ImageNet").replace("Birds", "Birds")
    words = name.replace("8rank2-", "8r2 ").replace("2rank1-", "2r1 ")
    return f"{short} {words}"


# ------------------------------------------------------------------------------------------- data
def load_sources(config: Config, *, seed: int, data_root=None) -> dict:
    """The three sources of ``config``: simulated (``stand-in``) or read from ``data_root`` (``real``)."""
    if config.data == "stand-in":
        return make_similarity_benchmark(config.benchmark, seed=seed)
    from domainknowledge.data.real.human_similarity import load_human_similarity_sources

    return load_human_similarity_sources(data_root, config.benchmark, seed=seed)


def evaluation_mask(source) -> np.ndarray:
    """Which images of ``source`` the evaluation sets use ``(N,)`` bool."""
    mask = np.zeros(len(source.images), bool)
    for triplets in source.sets.values():
        mask[np.concatenate([triplets.query, triplets.first, triplets.second])] = True
    return mask


# ------------------------------------------------------------------------------------- extractors
@dataclass
class Extractor:
    """An extractor: the ``encoder`` (registry encoder or :class:`~domainknowledge.principles.
    similarity_judgements.ModuleEncoder`), the input ``image_size`` used, and its ``kind`` row."""

    name: str
    encoder: object
    image_size: int
    kind: tuple
    seconds: float = 0.0

    def features(self, images: np.ndarray) -> np.ndarray:
        return sj.extract_features(self.encoder, images, image_size=self.image_size)


def _pretraining_data(config: Config, seed: int):
    from domainknowledge.data.synthetic.captioned_world import generate_captioned_world

    world = generate_captioned_world(config.pretrain_images, seed=seed, split="similarity-pretraining",
                                     image_size=config.benchmark.image_size)
    return world.images, world.labels("shape") * 6 + world.labels("colour")


def build_extractors(config: Config, *, seed: int, device="cpu", allow_download: bool = False, log=print) -> dict:
    """Every extractor of ``config``: registry encoders (missing weights raise the registry's
    :class:`~domainknowledge.models.encoders.EncoderNotAvailableError`) and the small CNNs trained here."""
    import torch

    from domainknowledge.models.encoders import load_encoder

    extractors, pretraining = {}, None
    for name in config.extractors:
        start = time.time()
        if name.startswith("small-cnn-"):
            if pretraining is None:
                pretraining = _pretraining_data(config, seed)
            images, labels = pretraining
            if name == "small-cnn-random":
                torch.manual_seed(seed)
                network, how = sj.SmallConvNet(), "random initialisation"
            elif name == "small-cnn-supervised":
                network, _ = sj.train_supervised_cnn(images, labels, epochs=config.pretrain_epochs, seed=seed)
                how = f"cross-entropy on 36 classes (shape x colour), {len(images)} images"
            else:
                network, _ = sj.train_selfsupervised_cnn(images, epochs=config.pretrain_epochs, seed=seed)
                how = f"SimCLR on {len(images)} unlabelled images"
            encoder = sj.ModuleEncoder(network, name, f"small CNN trained here: {how}",
                                       image_size=config.benchmark.image_size)
            size = config.benchmark.image_size
        else:
            encoder = load_encoder(name, device=device, allow_download=allow_download, progress=False)
            scale = config.cnn_input_scale if name.startswith(("efficientnet", "conse", "torchvision")) else 1.0
            size = max(32, int(round(encoder.image_size * scale)))
        extractors[name] = Extractor(name, encoder, size, EXTRACTOR_KINDS[name], time.time() - start)
        if log:
            log(f"{name}: ready in {time.time() - start:.1f} s (input {size} px)", flush=True)
    return extractors


def source_features(extractor: Extractor, source, mask: np.ndarray | None = None) -> np.ndarray:
    """Features ``(N, D)`` of ``source``'s images under ``extractor`` (rows outside ``mask`` left at zero)."""
    mask = np.ones(len(source.images), bool) if mask is None else mask
    computed = extractor.features(source.images[mask])
    out = np.zeros((len(source.images), computed.shape[1]), np.float32)
    out[mask] = computed
    return out


def evaluate_all(extractors: dict, sources: dict, *, log=print) -> tuple[pd.DataFrame, dict]:
    """Triplet accuracy of every extractor on every evaluation set under every metric (Fig. 5.1): a tidy
    DataFrame, and the features ``{(extractor, source): (N, D)}`` for later use."""
    rows, features = [], {}
    for name, extractor in extractors.items():
        start = time.time()
        for source in sources.values():
            features[name, source.name] = source_features(extractor, source, evaluation_mask(source))
            for row in sj.evaluate_triplets(features[name, source.name], source):
                rows.append({"extractor": name, **row})
        if log:
            log(f"{name}: evaluated in {time.time() - start:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    table["label"] = [set_label(s, n) for s, n in zip(table["source"], table["set"])]
    return table, features


# ------------------------------------------------------------------------------------ fine-tuning
def run_fine_tuning(config: Config, extractors: dict, sources: dict, *, seed: int, log=print) -> pd.DataFrame:
    """Every paradigm of :data:`~domainknowledge.principles.similarity_judgements.PARADIGMS` on every
    fine-tuned backbone and source, ``config.seeds`` seeds each; evaluation with cosine after removing the
    appended block. Rows: backbone, source, set, paradigm (``none`` = the frozen extractor), seed, accuracy.
    The set :data:`SEEN` is the fine-tuning triplets themselves (the thesis' protocol evaluates on sets its
    fine-tuning sets were drawn from); every other set is held out."""
    rows = []
    for backbone in config.finetune_backbones:
        extractor = extractors[backbone]
        for source in sources.values():
            start = time.time()
            base = source_features(extractor, source)
            singles = source.images[source.singletons]
            pretext = sj.PretextFeatures.compute(extractor.features, singles, jigsaw_per_image=config.jigsaw_per_image,
                                                 views=config.views, seed=seed)
            evaluated = {**source.sets, SEEN: source.finetune_triplets}
            for name, triplets in evaluated.items():
                rows.append({"backbone": backbone, "source": source.name, "set": name, "paradigm": "none", "seed": -1,
                             "accuracy": sj.triplet_accuracy(base, triplets.query, triplets.first, triplets.second)})
            for paradigm in sj.PARADIGMS:
                for k in range(config.seeds):
                    tuned = sj.fine_tune(paradigm, base, source, config.finetune, seed=1000 * seed + k,
                                         pretext=pretext)
                    for name, triplets in evaluated.items():
                        rows.append({"backbone": backbone, "source": source.name, "set": name, "paradigm": paradigm,
                                     "seed": k, "accuracy": sj.triplet_accuracy(tuned, triplets.query, triplets.first,
                                                                                triplets.second)})
            if log:
                log(f"fine-tuning {backbone} on {source.name}: {time.time() - start:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    table["label"] = [set_label(s, n) for s, n in zip(table["source"], table["set"])]
    return table


def fine_tuning_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every (backbone, source, set, paradigm)."""
    return (table.groupby(["backbone", "source", "set", "label", "paradigm"])["accuracy"]  # SEEN included
            .agg(["mean", "std", "count"]).reset_index())


# ---------------------------------------------------------------------------------- feature maps
def feature_maps(features: dict, source, extractor_names, projection: str, seed: int) -> dict:
    """2-D maps of the features of ``source`` (the Birds-16-like set) for each extractor (UMAP or PCA) and the
    silhouette of ``source.labels`` (families) in the features: ``{name: (points (N, 2), silhouette)}``."""
    out = {}
    for name in extractor_names:
        x = features[name, source.name]
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if projection == "umap":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import umap

                points = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed).fit_transform(x)
        else:
            from sklearn.decomposition import PCA

            points = PCA(2, random_state=seed).fit_transform(x)
        out[name] = (points, sj.silhouette_by_label(x, source.labels))
    return out


def factor_silhouettes(features: dict, source, extractor_names, factors=("shape", "colour", "texture",
                                                                          "background")) -> pd.DataFrame:
    """Silhouette (cosine) of each generating factor of ``source``'s images (a stand-in source with a factor
    table) in each extractor's features: which factor organises the feature space. Rows extractors, columns
    factors; for the Birds-16-like set, shape is the family and colour the species."""
    missing = [f for f in factors if f not in source.info]
    if missing:
        raise ValueError(f"{source.name} has no factor columns {missing} (a real data set has no factor table)")
    rows = {name: {f: sj.silhouette_by_label(features[name, source.name], source.info[f].to_numpy()) for f in factors}
            for name in extractor_names}
    return pd.DataFrame(rows).T


# ------------------------------------------------------------------------------------ hypotheses
def _cosine(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["metric"] == "cosine"].pivot_table(index="label", columns="extractor", values="accuracy")


def cosine_is_best(grid: pd.DataFrame) -> pd.Series:
    """Per extractor, whether cosine's mean accuracy over the sets is at least that of L2 and of L1 (a tie
    counts for cosine: on unit-length features L2 and cosine agree exactly)."""
    means = grid.groupby(["extractor", "metric"])["accuracy"].mean().unstack()
    return means["cosine"] >= means[["L2", "L1"]].max(axis=1) - 1e-12


def hypotheses(config: Config, grid: pd.DataFrame, tuning: pd.DataFrame, maps: dict, sources: dict) -> pd.DataFrame:
    """Our verdict on each hypothesis of Sec. 5.2 from the grid (Fig. 5.1), the fine-tuning runs (Fig. 5.3)
    and the feature maps (Fig. 5.2), with the evidence in words. Rules: a set's winner is its best extractor
    under cosine; "proven" needs the pattern on every set (or every backbone) unless stated; fine-tuning
    paradigms are compared on held-out sets, and a difference counts only beyond the seed spread
    (:func:`~domainknowledge.significance.exceeds_seed_spread`, or the paired rule for the loss ordering),
    otherwise the verdict is "inconclusive"."""
    cosine = _cosine(grid)
    kinds = {name: EXTRACTOR_KINDS[name] for name in cosine.columns}
    patches = [label for label in cosine.index if label.startswith("BAPPS")]
    full = [label for label in cosine.index if not label.startswith("BAPPS")]
    winners = cosine.idxmax(axis=1)
    large = [n for n, k in kinds.items() if k[3] in ("large-model stand-in",) or (k[2] and k[1] == "language-image")]
    rows = []

    def add(section, verdict, evidence):
        statement, thesis = THESIS_VERDICTS[section]
        rows.append({"section": section, "hypothesis": statement, "thesis": thesis, "ours": verdict,
                     "agrees": verdict == thesis, "evidence": evidence})

    # 5.2.1: large models top most sets and lose less when leaving cosine
    top_large = int(winners.isin(large).sum())
    drop = grid.pivot_table(index=["extractor", "label"], columns="metric", values="accuracy")
    drop = (drop["cosine"] - drop[["L2", "L1"]].mean(axis=1)).groupby(level=0).mean()
    regular = [n for n, k in kinds.items() if k[3] in ("real weights", "trained here", "Table 3.1") and n not in large]
    robust = bool(large) and drop[large].mean() < drop[regular].mean() if regular else False
    add("5.2.1", "proven" if large and top_large > len(winners) / 2 and robust else "disproven",
        f"a large-model stand-in is top on {top_large} of {len(winners)} sets; mean loss from cosine to L2/L1: "
        f"{100 * drop[large].mean():.1f} points for large models vs {100 * drop[regular].mean():.1f} for the others"
        if large and regular else "no large-model extractor at this profile")

    # 5.2.2: supervised vs self-supervised pre-training (same small CNN, same images)
    pair = ("small-cnn-supervised", "small-cnn-selfsupervised")
    if all(p in cosine for p in pair):
        sup_wins = int((cosine[pair[0]] > cosine[pair[1]]).sum())
        verdict = "proven" if sup_wins in (0, len(cosine)) else "inconclusive"
        add("5.2.2", verdict, f"supervised beats self-supervised pre-training (same CNN, same images) on {sup_wins} "
                              f"of {len(cosine)} sets")
    else:
        add("5.2.2", "not tested", "no matched supervised / self-supervised pair at this profile")

    # 5.2.3: cosine best for every model (mean over sets)
    cosine_best = cosine_is_best(grid)
    cells = grid.pivot_table(index=["extractor", "label"], columns="metric", values="accuracy")
    cell_share = float((cells["cosine"] >= cells[["L2", "L1"]].max(axis=1)).mean())
    add("5.2.3", "proven" if cosine_best.all() else "disproven",
        f"cosine has the best (or a tied best) mean for {int(cosine_best.sum())} of {len(cosine_best)} extractors; "
        f"it is best or tied in {100 * cell_share:.0f} % of the (extractor, set) cells")

    # 5.2.4: language everywhere?
    language = [n for n, k in kinds.items() if k[2]]
    if language:
        best_language = cosine[language].max(axis=1)
        best_other = cosine[[c for c in cosine.columns if c not in language]].max(axis=1)
        wins = int((best_language > best_other).sum())
        add("5.2.4", "proven" if wins == len(cosine) else "disproven",
            f"a language-trained extractor is best on {wins} of {len(cosine)} sets "
            f"({int((best_language > best_other)[full].sum())} of {len(full)} full-image sets, "
            f"{int((best_language > best_other)[patches].sum())} of {len(patches)} patch sets)")
    else:
        add("5.2.4", "not tested", "no language-trained extractor at this profile")

    # 5.2.5: more filters (scaling series)
    series = [s for s in config.scaling_series if s in cosine]
    if len(series) >= 2:
        gain_patch = float((cosine.loc[patches, series[-1]] - cosine.loc[patches, series[0]]).mean())
        gain_full = float((cosine.loc[full, series[-1]] - cosine.loc[full, series[0]]).mean())
        largest_tops = int((winners == series[-1]).sum())
        add("5.2.5", "proven" if gain_full > 0.01 and gain_patch > 0.01 else "disproven",
            f"{series[-1]} vs {series[0]}: {100 * gain_patch:+.1f} points on patches, {100 * gain_full:+.1f} on full "
            f"images; the largest is top on {largest_tops} sets")
    else:
        add("5.2.5", "not tested", "no scaling series at this profile")

    # 5.2.6: ViT vs CNN category separation (silhouette on the 208-image set)
    vit = [n for n in maps if EXTRACTOR_KINDS[n][0] == "ViT"]
    cnn = [n for n in maps if EXTRACTOR_KINDS[n][0] == "CNN"]
    if vit and cnn:
        best_vit, best_cnn = max(maps[n][1] for n in vit), max(maps[n][1] for n in cnn)
        vit_tops = int(winners.map(lambda n: EXTRACTOR_KINDS[n][0] == "ViT").sum())
        add("5.2.6", "proven" if best_vit > best_cnn and vit_tops > len(winners) / 2 else "disproven",
            f"family silhouette: best ViT {best_vit:.2f} vs best CNN {best_cnn:.2f}; a ViT is top on {vit_tops} of "
            f"{len(winners)} sets (the only ViT here is the language-image stand-in, so architecture and "
            "pre-training are confounded)")
    else:
        add("5.2.6", "not tested", "the feature maps hold no ViT and CNN pair at this profile")

    # fine-tuning hypotheses, on held-out sets
    from domainknowledge.significance import exceeds_seed_spread, paired_gap_exceeds_spread

    tuning = tuning[(tuning["set"] != SEEN) & (tuning["paradigm"] != "none")]
    selfsup = [p for p in ("rotation", "jigsaw", "simclr", "moco") if p in set(tuning["paradigm"])]
    supervised = [p for p in sj.SUPERVISED if p in set(tuning["paradigm"])]
    per_run = tuning.groupby(["backbone", "paradigm", "seed"])["accuracy"].mean()
    winners_by_backbone, notes = {}, []
    for backbone in dict.fromkeys(tuning["backbone"]):
        runs = per_run.loc[backbone].unstack("paradigm")
        best_sup, best_ssl = runs[supervised].mean().idxmax(), runs[selfsup].mean().idxmax()
        if exceeds_seed_spread(runs[best_sup], runs[best_ssl]):
            winners_by_backbone[backbone] = "supervised"
        elif exceeds_seed_spread(runs[best_ssl], runs[best_sup]):
            winners_by_backbone[backbone] = "self-supervised"
        else:
            winners_by_backbone[backbone] = "tie"
        notes.append(f"{backbone}: {best_sup} {100 * runs[best_sup].mean():.1f} vs {best_ssl} "
                     f"{100 * runs[best_ssl].mean():.1f} ({winners_by_backbone[backbone]})")
    pretrained_ssl = {b: "self-supervised" in EXTRACTOR_KINDS[b][1] for b in winners_by_backbone}
    clear = {b: w for b, w in winners_by_backbone.items() if w != "tie"}
    if clear and len(set(clear.values())) == 1 and len(clear) == len(winners_by_backbone):
        verdict = "disproven"
    elif clear and all((w == "self-supervised") == pretrained_ssl[b] for b, w in clear.items()) \
            and len(set(clear.values())) > 1:
        verdict = "proven"
    else:
        verdict = "inconclusive"
    add("5.2.7", verdict, "best supervised vs best self-supervised fine-tuning per backbone (mean over seeds; a "
                          "winner must lead by more than the seed spread): " + "; ".join(notes))

    runs = tuning[tuning["paradigm"].isin(["quadruplet", "triplet", "contrastive"])].groupby(
        ["backbone", "source", "seed", "paradigm"])["accuracy"].mean().unstack()
    q_t, t_c = (runs["quadruplet"] - runs["triplet"]).to_numpy(), (runs["triplet"] - runs["contrastive"]).to_numpy()
    ordered = paired_gap_exceeds_spread(q_t) and paired_gap_exceeds_spread(t_c)
    add("5.2.8", "proven" if ordered else "disproven",
        f"paired gaps over {len(q_t)} (backbone, source, seed) runs: quadruplet - triplet {100 * q_t.mean():+.1f} "
        f"(sd {100 * q_t.std(ddof=1) if len(q_t) > 1 else 0:.1f}), triplet - contrastive {100 * t_c.mean():+.1f} "
        f"(sd {100 * t_c.std(ddof=1) if len(t_c) > 1 else 0:.1f}) points")

    kind_of = lambda label: ("patches" if label.startswith("BAPPS") else  # noqa: E731
                             "similar" if "similar" in label and "dissimilar" not in label else "dissimilar")
    typed = tuning.assign(kind=tuning["label"].map(kind_of))
    per_kind = typed.groupby(["kind", "paradigm", "seed"])["accuracy"].mean()
    best_by_kind, clear_best = {}, True
    for kind in dict.fromkeys(typed["kind"]):
        table = per_kind.loc[kind].unstack("paradigm")
        order = table.mean().sort_values(ascending=False)
        best_by_kind[kind] = order.index[0]
        clear_best &= exceeds_seed_spread(table[order.index[0]], table[order.index[1]])
    if not clear_best:
        verdict = "inconclusive"
    else:
        verdict = "disproven" if len(set(best_by_kind.values())) == 1 else "proven"
    add("5.2.9", verdict, "best paradigm per triplet type: " + ", ".join(f"{k}: {v}" for k, v in best_by_kind.items())
        + ("" if clear_best else " (not all ahead of the runner-up by more than the seed spread)"))
    return pd.DataFrame(rows).set_index("section")


# ----------------------------------------------------------------------------------------- figures
def set_table(sources: dict) -> pd.DataFrame:
    """One row per evaluation set: source, trial kind, triplets and the observers' own accuracy (ceiling)."""
    rows = [{"set": set_label(s.name, name), "source": s.name, "kind": t.kind, "triplets": len(t),
             "observers' accuracy": t.ceiling, "ideal predictor": t.ideal}
            for s in sources.values() for name, t in s.sets.items()]
    return pd.DataFrame(rows).set_index("set")


def extractor_table(extractors: dict) -> pd.DataFrame:
    """Architecture, pre-training supervision, language, role, input size and provenance of each extractor."""
    rows = [{"extractor": name, "architecture": e.kind[0], "pre-training": e.kind[1],
             "language": "yes" if e.kind[2] else "no", "role": e.kind[3], "input px": e.image_size,
             "provenance": e.encoder.provenance} for name, e in extractors.items()]
    return pd.DataFrame(rows).set_index("extractor")


def plot_accuracy_grid(grid: pd.DataFrame, sources: dict):
    """Fig. 5.1 analogue: one heat map per metric (sets x extractors, accuracy in %), the accuracy of a fresh
    observer and of the ideal predictor as the last two columns, each set's top extractor marked."""
    import matplotlib.pyplot as plt

    table = set_table(sources)
    extractors = list(dict.fromkeys(grid["extractor"]))
    labels = list(dict.fromkeys(grid["label"]))
    fig, axes = plt.subplots(1, 3, figsize=(4.2 * 3, 0.42 * len(labels) + 2.6), sharey=True)
    for ax, metric in zip(axes, sj.METRICS):
        values = grid[grid["metric"] == metric].pivot_table(index="label", columns="extractor",
                                                            values="accuracy").loc[labels, extractors]
        shown = np.column_stack([values.to_numpy(), table.loc[labels, "observers' accuracy"].to_numpy(),
                                 table.loc[labels, "ideal predictor"].to_numpy()]) * 100
        image = ax.imshow(shown, cmap="viridis", vmin=40, vmax=100, aspect="auto")
        for (r, c), v in np.ndenumerate(shown):
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 70 else "black")
        best = values.to_numpy().argmax(axis=1)
        ax.scatter(best + 0.38, np.arange(len(labels)), marker="<", s=28, color="#009E73", edgecolor="black",
                   linewidth=0.4, zorder=3)
        ax.axvline(len(extractors) - 0.5, color="white", linewidth=2)
        ax.set_xticks(range(len(extractors) + 2), [*extractors, "observers", "ideal"], rotation=60, ha="right",
                      fontsize=7.5)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(f"{metric}")
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.7, label="triplet accuracy (%)")
    return fig, axes


def plot_fine_tuning(tuning: pd.DataFrame):
    """Fig. 5.3 analogue: per source, the mean accuracy over its sets of every paradigm on every backbone (bars),
    the spread over seeds (error bars: one standard deviation of the per-seed means) and the frozen extractor
    (black line)."""
    import matplotlib.pyplot as plt

    tuning = tuning[tuning["set"] != SEEN]
    sources = list(dict.fromkeys(tuning["source"]))
    backbones = list(dict.fromkeys(tuning["backbone"]))
    paradigms = [p for p in sj.PARADIGMS if p in set(tuning["paradigm"])]
    per_seed = tuning.groupby(["source", "backbone", "paradigm", "seed"])["accuracy"].mean()
    fig, axes = plt.subplots(1, len(sources), figsize=(4.4 * len(sources), 3.6), squeeze=False)
    width = 0.8 / len(paradigms)
    colours = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if c.lower() != "#000000"] + ["#999999"]
    for ax, source in zip(axes[0], sources):
        for b, backbone in enumerate(backbones):
            frozen = per_seed.loc[(source, backbone, "none")].mean()
            ax.hlines(100 * frozen, b - 0.42, b + 0.42, color="black", linewidth=1.2,
                      label="frozen extractor" if b == 0 else None)
            for k, paradigm in enumerate(paradigms):
                values = per_seed.loc[(source, backbone, paradigm)].to_numpy() * 100
                ax.bar(b - 0.4 + (k + 0.5) * width, values.mean(), width, yerr=values.std(ddof=1) if len(values) > 1
                       else None, color=colours[k % len(colours)], hatch="//" if paradigm in ("rotation", "jigsaw",
                       "simclr", "moco") else None, edgecolor="white", linewidth=0.3, capsize=1.5,
                       label=paradigm if b == 0 else None)
        ax.set_xticks(range(len(backbones)), [b.replace("small-cnn-", "CNN ") for b in backbones], fontsize=8)
        ax.set_title(source)
        low = per_seed.loc[source].min() * 100
        ax.set_ylim(max(0, low - 5), min(100, per_seed.loc[source].max() * 100 + 4))
    axes[0, 0].set_ylabel("triplet accuracy, cosine (%)")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig, axes


def plot_feature_maps(maps: dict, labels, projection: str):
    """Fig. 5.2 analogue: the 2-D maps of :func:`feature_maps`, coloured by family, silhouette in the title."""
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.3), squeeze=False)
    for ax, (name, (points, silhouette)) in zip(axes[0], maps.items()):
        for family in dict.fromkeys(labels):
            chosen = labels == family
            ax.scatter(points[chosen, 0], points[chosen, 1], s=9, label=family)
        ax.set_title(f"{name}\nsilhouette {silhouette:.2f} ({EXTRACTOR_KINDS[name][0]})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(title="family", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"{projection.upper()} of the features of the 208-image set")
    return fig, axes


def trial_examples(source, kind: str = "8rank2-similar", count: int = 3):
    """Images and titles of ``count`` triplets of one set: (query, reference 1, reference 2) per row."""
    triplets = source.sets[kind]
    images, titles = [], []
    for t in range(count):
        images += [source.images[triplets.query[t]], source.images[triplets.first[t]], source.images[triplets.second[t]]]
        titles += ["query", "reference 1", "reference 2"]
    return np.stack(images), titles

"""Drivers of the appendix chapter on the encoder registry: the stand-in CLIP's zero-shot accuracy per factor
and retrieval on held-out captioned images, and zero-shot labels of the bundled real photos.

* :func:`zero_shot_by_factor`: for every factor of the captioned world, prompt-ensemble zero-shot
  classification (:func:`~domainknowledge.models.encoders.zero_shot_classifier`) of held-out images, against
  chance (``1/C``) with a one-sided binomial test;
* :func:`retrieval_recall`: image -> caption and caption -> image Recall@k over the held-out set, where a hit
  is any item with the same caption text (captions repeat because they describe images partly), against the
  exact chance level of a random ranking;
* :func:`photo_zero_shot`: zero-shot labels of the bundled real photos among :data:`PHOTO_LABELS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from domainknowledge.data.synthetic.captioned_world import FACTORS, CaptionedWorld, zero_shot_prompts
from domainknowledge.models.encoders import (
    recall_at_k,
    recall_at_k_chance,
    zero_shot_classifier,
    zero_shot_predict,
)
from domainknowledge.significance import balanced_accuracy_p_value

__all__ = ["CONFIGS", "PHOTO_LABELS", "PHOTO_TEMPLATES", "Config", "linear_probe_by_factor", "photo_zero_shot",
           "retrieval_recall",
           "smoothed", "NEEDED_FACTORS", "aligned_fitness", "balanced_accuracy_p_value", "world_fitness",
           "zero_shot_by_factor"]


@dataclass(frozen=True)
class Config:
    """What one profile of the encoders appendix runs.

    ``standin_size``: which stand-in CLIP of the registry is trained (or loaded from the cache);
    ``heldout_images``: held-out captioned images for zero-shot accuracy; ``retrieval_images``: the gallery
    size for retrieval; ``real_clip``: a real open_clip model evaluated next to the stand-in and ConSE (its
    weights must be in the cache, or downloadable at this profile), or ``None``; ``aligned_size``: which
    aligned model (:mod:`~domainknowledge.models.encoders.aligned`) is trained (or loaded from the cache);
    ``fitness_images``: its test images, and as many probe-training images, per world.
    """

    standin_size: str
    heldout_images: int
    retrieval_images: int
    real_clip: str | None
    aligned_size: str
    fitness_images: int


CONFIGS: dict[str, Config] = {
    "smoke": Config(standin_size="smoke", heldout_images=600, retrieval_images=300, real_clip=None,
                    aligned_size="smoke", fitness_images=40),
    "cpu": Config(standin_size="cpu", heldout_images=3000, retrieval_images=1000, real_clip=None,
                  aligned_size="cpu", fitness_images=200),
    "paper": Config(standin_size="paper", heldout_images=10000, retrieval_images=5000,
                    real_clip="open_clip:ViT-B-32/openai",  # OpenAI's CLIP, as the chapters that use it
                    aligned_size="paper", fitness_images=2000),
}

# The bundled real photos with a one-phrase description of what they show (ours); the candidate labels of
# the zero-shot task are all these phrases.
PHOTO_LABELS = {
    "astronaut": "astronaut", "chelsea": "cat", "coffee": "cup of coffee", "rocket": "rocket",
    "camera": "man with a camera", "coins": "coins", "moon": "moon surface", "text": "handwritten text",
    "hubble_deep_field": "galaxies in space", "brick": "brick wall", "grass": "grass", "gravel": "gravel",
    "china": "temple", "flower": "flower", "clock": "clock",
}
PHOTO_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of {}.")


def zero_shot_by_factor(encoder, world: CaptionedWorld) -> pd.DataFrame:
    """Zero-shot accuracy of ``encoder`` on each factor of ``world`` (one row per factor): ``classes``,
    ``accuracy``, ``chance`` (1/C), ``p_value`` (one-sided binomial test against chance)."""
    from scipy.stats import binomtest

    image_embeddings = encoder.encode_images(world.images)
    rows = []
    for factor, values in FACTORS.items():
        phrases, templates = zero_shot_prompts(factor)
        predicted = zero_shot_predict(image_embeddings, zero_shot_classifier(encoder, phrases, templates))
        correct = int((predicted == world.labels(factor)).sum())
        chance = 1 / len(values)
        rows.append({"factor": factor, "classes": len(values), "accuracy": correct / len(world),
                     "chance": chance,
                     "p_value": binomtest(correct, len(world), chance, alternative="greater").pvalue})
    return pd.DataFrame(rows).set_index("factor")


def linear_probe_by_factor(encoder, train: CaptionedWorld, test: CaptionedWorld) -> pd.Series:
    """Test accuracy of a logistic-regression probe per factor on ``encoder``'s image embeddings, trained on
    ``train`` with its factor labels: what the embedding holds, whether or not prompts can reach it."""
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = encoder.encode_images(train.images), encoder.encode_images(test.images)
    accuracy = {}
    for factor in FACTORS:
        probe = LogisticRegression(max_iter=2000, C=10.0).fit(x_train, train.labels(factor))
        accuracy[factor] = float(probe.score(x_test, test.labels(factor)))
    return pd.Series(accuracy, name="linear probe")


def retrieval_recall(encoder, world: CaptionedWorld, ks=(1, 5)) -> pd.DataFrame:
    """Recall@k in both directions over ``world`` (see the module docstring); columns ``recall`` and ``chance``.

    Image -> text ranks the distinct caption texts for each image; text -> image ranks all images for each
    distinct caption.
    """
    captions = np.asarray(world.captions, dtype=object)
    distinct, owner = np.unique(captions, return_inverse=True)
    images = encoder.encode_images(world.images)
    texts = encoder.encode_texts(list(distinct))
    similarity = images @ texts.T                                         # (N images, U captions)
    relevant = owner[:, None] == np.arange(len(distinct))[None, :]        # (N, U)
    rows = []
    for k in ks:
        rows.append({"direction": "image → text", "k": k, "recall": recall_at_k(similarity, relevant, k),
                     "chance": recall_at_k_chance(relevant, k), "queries": len(images), "gallery": len(distinct)})
        rows.append({"direction": "text → image", "k": k, "recall": recall_at_k(similarity.T, relevant.T, k),
                     "chance": recall_at_k_chance(relevant.T, k), "queries": len(distinct), "gallery": len(images)})
    return pd.DataFrame(rows).set_index(["direction", "k"]).sort_index()


def photo_zero_shot(encoder, photos: dict[str, np.ndarray], labels: dict[str, str] = PHOTO_LABELS) -> pd.DataFrame:
    """Zero-shot labels of real photos among the phrases of ``labels``: one row per photo with ``truth``,
    ``predicted``, ``cosine`` (of the predicted label) and ``correct``."""
    names = [name for name in labels if name in photos]
    if not names:
        raise ValueError(f"none of the photos {sorted(labels)} were given")
    candidates = sorted(set(labels.values()))
    weights = zero_shot_classifier(encoder, candidates, PHOTO_TEMPLATES)
    embeddings = encoder.encode_images([photos[name] for name in names])
    similarity = embeddings @ weights.T
    best = similarity.argmax(axis=1)
    table = pd.DataFrame({"truth": [labels[n] for n in names], "predicted": [candidates[i] for i in best],
                          "cosine": similarity[np.arange(len(names)), best]}, index=pd.Index(names, name="photo"))
    table["correct"] = table["truth"] == table["predicted"]
    return table


def smoothed(values, window: int = 25) -> np.ndarray:
    """Running mean of a loss curve (``window`` steps, shorter at the start)."""
    values = np.asarray(values, float)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def world_fitness(encoder, world: str, test, probe_train=None, *, test_embeddings=None,
                  probe_embeddings=None) -> pd.DataFrame:
    """What ``encoder`` can tell of each factor of a captioned ``world``: one row per factor of
    :func:`~domainknowledge.data.synthetic.world_captions.zero_shot_factors` with ``classes``, ``images``,
    ``zero_shot``: the balanced accuracy (mean recall over the values present) of prompt-ensemble zero-shot
    classification, ``chance`` (1 / the number of values present: what a constant or random guess scores),
    ``p_value`` (:func:`balanced_accuracy_p_value`) and, given ``probe_train`` (a
    :class:`~domainknowledge.data.synthetic.world_captions.CaptionedSet` of another split), ``probe``: the
    balanced test accuracy of a class-balanced logistic-regression probe on the image embeddings (what the
    embedding holds, whether or not words reach it). ``test`` is a ``CaptionedSet`` of ``world``;
    ``test_embeddings`` and ``probe_embeddings`` (``(N, D)``) are the encoder's image embeddings of those sets
    when already computed. Balanced accuracy keeps the factors with uneven values (a blur level, a body type)
    comparable with chance."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    from domainknowledge.data.synthetic.world_captions import zero_shot_factors

    if test.world != world or (probe_train is not None and probe_train.world != world):
        raise ValueError(f"the captioned sets must be of the world {world!r}")
    x_test = test_embeddings if test_embeddings is not None else encoder.encode_images(test.images)
    x_train = None
    if probe_train is not None:
        x_train = probe_embeddings if probe_embeddings is not None else encoder.encode_images(probe_train.images)
    rows = []
    for factor, (values, phrases, templates) in zero_shot_factors(world).items():
        truth = test.factors[factor].to_numpy(str)
        keep = np.isin(truth, values)
        labels = np.asarray([values.index(value) for value in truth[keep]], dtype=np.int64)
        predicted = zero_shot_predict(x_test[keep], zero_shot_classifier(encoder, list(phrases), list(templates)))
        present = len(np.unique(labels))
        row = {"world": world, "factor": factor, "classes": len(values), "images": int(keep.sum()),
               "zero_shot": float(balanced_accuracy_score(labels, predicted)) if present else np.nan,
               "chance": 1 / max(present, 1), "p_value": balanced_accuracy_p_value(labels, predicted)}
        if x_train is not None:
            train_truth = probe_train.factors[factor].to_numpy(str)
            train_keep = np.isin(train_truth, values)
            row["probe"] = np.nan
            if len(set(train_truth[train_keep])) >= 2:
                probe = LogisticRegression(max_iter=2000, C=1.0, class_weight="balanced").fit(
                    x_train[train_keep], train_truth[train_keep])
                row["probe"] = float(balanced_accuracy_score(truth[keep], probe.predict(x_test[keep])))
        rows.append(row)
    return pd.DataFrame(rows).set_index(["world", "factor"])


#: The factors each chapter needs an image-text encoder to read, with the world whose head never saw them.
NEEDED_FACTORS = {("captioned", "shape"): "human similarity, which probes features, not prompts",
                  ("aesthetics", "blur"): "Ch. 12",
                  ("aesthetics", "noise"): "Ch. 12", ("aesthetics", "exposure"): "Ch. 12",
                  ("cars", "body type"): "Ch. 13", ("cars", "paint"): "Ch. 13",
                  ("vehicles", "body type"): "multi-label keywords, which prompts the every-world heads"}


def aligned_fitness(size: str, worlds, *, images: int, seed: int = 0, device="cpu", dry_run: bool = False
                    ) -> pd.DataFrame:
    """The fitness table of the aligned model (:mod:`~domainknowledge.models.encoders.aligned`) of ``size``: for
    every factor of each of ``worlds``, zero-shot accuracy with the heads that never saw that world
    (``left out``), with untrained heads (``untrained``, ConSE at the model's image size) and with the heads
    that saw every world (``all worlds``, an upper bound), the ``chance`` share, the one-sided binomial
    ``p_value`` of the left-out heads, and the linear-probe accuracy on the left-out heads' embeddings (all
    balanced accuracies, see :func:`world_fitness`).
    ``images`` test and as many probe-training images per world; one pass of the frozen tower serves every
    head."""
    from domainknowledge.data.synthetic.world_captions import captioned_set
    from domainknowledge.models.encoders import load_encoder
    from domainknowledge.models.encoders.aligned import aligned_encoder_name

    upper = load_encoder(aligned_encoder_name(size, None), device=device, dry_run=dry_run)
    tables = []
    for world in worlds:
        held_out = load_encoder(aligned_encoder_name(size, world), device=device, dry_run=dry_run)
        test = captioned_set(world, images, seed=seed, split="fitness-test", image_size=held_out.config.render_size)
        probe = captioned_set(world, images, seed=seed, split="fitness-probe", image_size=held_out.config.render_size)
        outputs = {"test": held_out.tower_outputs(test.images), "probe": held_out.tower_outputs(probe.images)}
        columns = {}
        for label, encoder in (("left out", held_out), ("untrained", held_out.untrained()), ("all worlds", upper)):
            embedded = {part: encoder.embed_tower_outputs(*outputs[part]) for part in outputs}
            columns[label] = world_fitness(encoder, world, test, probe if label == "left out" else None,
                                           test_embeddings=embedded["test"], probe_embeddings=embedded["probe"])
        table = columns["left out"].rename(columns={"zero_shot": "left out"})
        table.insert(table.columns.get_loc("left out"), "untrained", columns["untrained"]["zero_shot"])
        table["all worlds"] = columns["all worlds"]["zero_shot"]
        tables.append(table)
    table = pd.concat(tables)
    table["needed by"] = [NEEDED_FACTORS.get(index, "") for index in table.index]
    return table

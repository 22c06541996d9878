"""Experiment drivers of the chapter "Language-guided zero-shot metric learning: InDiReCT" (Kobs 2023, Ch. 13).

One code path for every profile:

1. **Data** (:func:`load_datasets`): image sets with one label column per *similarity notion* and, per notion,
   the prompt template and aspect words of Table 13.1. ``smoke`` and ``cpu``: the rendered cars of Ch. 7
   (:func:`domainknowledge.data.synthetic.cars.make_analysis_set`; notions car model, car colour, background
   colour, as the thesis' Synthetic Cars) and the captioned world (a split no encoder was trained on; notions
   shape, colour, texture, background). ``paper``: those two plus Cars196, CUB200, DeepFashion
   and Movie Posters read from ``data_root`` in their published layouts (:data:`REAL_LAYOUT`), the images
   decoded on demand, a batch at a time (:func:`load_real_dataset`). The notions' classes come from the
   published annotations (e.g. a Cars196 car's manufacturer is the make in its class name,
   :func:`car_make`); an image without a class under a notion (:data:`UNLABELLED`) is left out of that
   notion's evaluation.
2. **Embeddings** (:func:`embed_dataset`, :func:`prompt_embeddings`): each encoder embeds the images and
   prompts of the data sets it is paired with (:func:`evaluated_pairs`) once, through the registry's caches.
   ``smoke`` and ``cpu`` use the aligned image-text model of the registry (frozen EfficientNet-Lite0 and
   MiniLM with trained heads), with heads that saw every captioned world and heads that never saw the data
   set's world.
3. **Table 13.2** (:func:`evaluate_notion`, :func:`table_13_2`): InDiReCT and every baseline, MAP@R and Prec@1
   over ``runs`` seeds.
4. **Analyses**: the embedding-size sweep (:func:`dimension_sweep`, Fig. 13.4), the prompt-count sweep
   (:func:`prompt_count_sweep`, Fig. 13.6), 2-d views (:func:`tsne_views`, Fig. 13.2) and attribution
   differences at r' = 2 through the encoder's image side (:func:`attribution_maps`, Fig. 13.3).

The method and baselines live in :mod:`domainknowledge.principles.indirect`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from domainknowledge.data.bundled import DataNotFoundError
from domainknowledge.principles import indirect
from domainknowledge.principles.indirect_batch import (Member, fit_autoencoder_batch, fit_indirect_batch,
                                                    fit_linear_autoencoder_batch, fit_oracle_batch, optimise_members)

__all__ = ["CAR_BODY_TYPES", "CAR_MODEL_NAMES", "CONFIGS", "CSS21_COLOURS", "FILM_COUNTRIES", "IMDB_GENRES", "METHODS",
           "REAL_DATASETS", "REAL_LAYOUT", "UNLABELLED", "Config", "Dataset", "Notion", "car_body_type", "car_make",
           "cub_species", "labelled", "THESIS_MAP_AT_R", "ordering", "orderings", "BATCHED_FITS", "Member", "Problem", "evaluate_problems", "fit_autoencoder_batch",
           "fit_indirect_batch", "fit_jobs", "fit_linear_autoencoder_batch", "fit_oracle_batch", "optimise_members", "load_real_dataset", "attribution_maps", "attribution_share", "world_object_masks", "css_colour_names", "dimension_sweep", "embed_dataset",
           "evaluate_notion", "evaluate_table", "zero_shot_naming", "naming_table", "NAMED_P_VALUE", "DIAGNOSTIC_CORE", "load_datasets", "method_embeddings", "notion_findings", "parse_target", "plot_attribution_maps", "plot_dimension_sweep",
           "plot_prompt_count_sweep", "plot_views", "differentiable_image_tower", "evaluated_pairs", "prompt_count_sweep", "prompt_embeddings", "reduced_dim",
           "summary_table", "table_13_2", "tsne_views"]

METHODS = ("Random", "Raw", "InDiReCT", "Random U", "PCA", "LAE", "AE", "Oracle")
#: The methods every evaluated pair runs: the floor, the raw embeddings, InDiReCT and the Oracle.
DIAGNOSTIC_CORE = ("Random", "Raw", "InDiReCT", "Oracle")

# CSS 2.1's 17 colour keywords with their sRGB values (the thesis takes its colour aspects from CSS 2.1).
CSS21_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "silver": (192, 192, 192), "gray": (128, 128, 128), "white": (255, 255, 255),
    "maroon": (128, 0, 0), "red": (255, 0, 0), "purple": (128, 0, 128), "fuchsia": (255, 0, 255),
    "green": (0, 128, 0), "lime": (0, 255, 0), "olive": (128, 128, 0), "yellow": (255, 255, 0),
    "navy": (0, 0, 128), "blue": (0, 0, 255), "teal": (0, 128, 128), "aqua": (0, 255, 255),
    "orange": (255, 165, 0),
}

# Real car model names, the "car model" aspects (the thesis took 569 names from an online car dealer).
CAR_MODEL_NAMES = (
    "Volvo S60", "Volvo XC90", "Volvo V70", "BMW X5 M", "BMW 3 Series", "BMW 5 Series", "BMW M3", "BMW Z4", "BMW i3",
    "Audi A4", "Audi A6", "Audi Q5", "Audi Q7", "Audi TT", "Audi R8", "Mercedes-Benz C-Class", "Mercedes-Benz E-Class",
    "Mercedes-Benz S-Class", "Mercedes-Benz G-Class", "Mercedes-Benz Sprinter", "Mercedes-Benz SLK",
    "Volkswagen Golf", "Volkswagen Passat", "Volkswagen Polo", "Volkswagen Tiguan", "Volkswagen Touareg",
    "Volkswagen Transporter", "Volkswagen Beetle", "Porsche 911", "Porsche Cayenne", "Porsche Boxster",
    "Porsche Panamera", "Ford Focus", "Ford Fiesta", "Ford Mustang", "Ford F-150", "Ford Ranger", "Ford Explorer",
    "Ford Transit", "Ford Escape", "Chevrolet Silverado", "Chevrolet Corvette", "Chevrolet Camaro",
    "Chevrolet Malibu", "Chevrolet Tahoe", "Chevrolet Express", "Chevrolet Spark", "Dodge Ram", "Dodge Charger",
    "Dodge Challenger", "Dodge Viper", "Dodge Caravan", "Dodge Durango", "Jeep Wrangler", "Jeep Grand Cherokee",
    "Jeep Compass", "Toyota Corolla", "Toyota Camry", "Toyota Prius", "Toyota RAV4", "Toyota Land Cruiser",
    "Toyota Hilux", "Toyota Tacoma", "Toyota Sienna", "Toyota Yaris", "Toyota Supra", "Honda Civic", "Honda Accord",
    "Honda CR-V", "Honda Jazz", "Honda Odyssey", "Honda Ridgeline", "Honda S2000", "Nissan Micra", "Nissan Qashqai",
    "Nissan GT-R", "Nissan Navara", "Nissan Altima", "Nissan Leaf", "Mazda MX-5", "Mazda 3", "Mazda CX-5",
    "Hyundai i30", "Hyundai Tucson", "Hyundai Santa Fe", "Hyundai Elantra", "Kia Sportage", "Kia Rio",
    "Kia Sorento", "Kia Carnival", "Renault Clio", "Renault Megane", "Renault Kangoo", "Renault Espace",
    "Peugeot 208", "Peugeot 308", "Peugeot 3008", "Citroen C3", "Citroen Berlingo", "Fiat 500", "Fiat Panda",
    "Fiat Ducato", "Opel Astra", "Opel Corsa", "Opel Zafira", "Skoda Octavia", "Skoda Fabia", "Seat Leon",
    "Ferrari 458 Italia", "Ferrari California", "Lamborghini Aventador", "Lamborghini Gallardo", "McLaren MP4-12C",
    "Aston Martin Vantage", "Bentley Continental GT", "Rolls-Royce Phantom", "Jaguar XF", "Jaguar F-Type",
    "Land Rover Defender", "Range Rover Evoque", "Mini Cooper", "Smart Fortwo", "Tesla Model S", "Tesla Model X",
    "Subaru Impreza", "Subaru Forester", "Mitsubishi L200", "Mitsubishi Pajero", "Suzuki Swift", "Suzuki Jimny",
    "Lexus RX", "Cadillac Escalade", "Lincoln Town Car", "GMC Sierra", "Hummer H2", "Chrysler Town and Country",
)

#: The published layouts the paper profile reads under DATA_ROOT (each reader's docstring has the details).
REAL_LAYOUT = ("DATA_ROOT/cars196/ (car_ims/ and cars_annos.mat, https://ai.stanford.edu/~jkrause/cars/"
               "car_dataset.html), DATA_ROOT/CUB_200_2011/ (images/, images.txt, image_class_labels.txt, "
               "train_test_split.txt, classes.txt, https://www.vision.caltech.edu/datasets/cub_200_2011/), "
               "DATA_ROOT/DeepFashion/ (the Category and Attribute Prediction Benchmark: Anno/list_category_cloth.txt, "
               "Anno/list_category_img.txt, Anno/list_attr_cloth.txt, Anno/list_attr_img.txt, "
               "Eval/list_eval_partition.txt, img/; http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/"
               "AttributePrediction.html) and DATA_ROOT/MoviePosters/ (Movie_Poster_Dataset/<year>/<imdbID>.jpg and "
               "Movie_Poster_Metadata/groundtruth/<year>.txt, https://www.cs.ccu.edu.tw/~wtchu/projects/MoviePoster/)")
#: The side of the square the real images are decoded to (CLIP ViT-B/32's input).
REAL_IMAGE_SIZE = 224
#: The label of an image that has no class under a notion; it is left out of that notion's evaluation.
UNLABELLED = ""
#: Cars196's body-type words (the word before the year in a class name, "Cab" for its pickups) -> car type.
CAR_BODY_TYPES = {"Sedan": "sedan", "SUV": "SUV", "Coupe": "coupe", "Convertible": "convertible",
                  "Hatchback": "hatchback", "Wagon": "wagon", "Van": "van", "Minivan": "minivan",
                  "Cab": "pickup truck"}
#: Makes of more than one word that open a car name (Cars196's, and the Range Rover of our list) -> the make.
MULTI_WORD_MAKES = {"AM General": "AM General", "Aston Martin": "Aston Martin", "Land Rover": "Land Rover",
                    "Range Rover": "Land Rover"}
#: IMDb's genre vocabulary (the genre aspects of the Movie Posters notions; OMDb spells the posters' genres so).
IMDB_GENRES = ("Action", "Adult", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama",
               "Family", "Fantasy", "Film-Noir", "Game-Show", "History", "Horror", "Music", "Musical", "Mystery",
               "News", "Reality-TV", "Romance", "Sci-Fi", "Short", "Sport", "Talk-Show", "Thriller", "War", "Western")
#: Film-producing countries as OMDb names them (the production-country aspects; not read from the test labels).
FILM_COUNTRIES = (
    "USA", "UK", "Canada", "France", "Germany", "West Germany", "East Germany", "Italy", "Spain", "Portugal",
    "India", "Japan", "China", "Hong Kong", "Taiwan", "South Korea", "Australia", "New Zealand", "Ireland",
    "Belgium", "Netherlands", "Luxembourg", "Denmark", "Sweden", "Norway", "Finland", "Iceland", "Switzerland",
    "Austria", "Poland", "Czech Republic", "Czechoslovakia", "Hungary", "Romania", "Bulgaria", "Greece", "Turkey",
    "Russia", "Soviet Union", "Ukraine", "Yugoslavia", "Serbia", "Croatia", "Slovenia", "Slovakia", "Estonia",
    "Latvia", "Lithuania", "Georgia", "Kazakhstan", "Israel", "Iran", "Lebanon", "Jordan", "United Arab Emirates",
    "Qatar", "Egypt", "Morocco", "Tunisia", "Algeria", "Nigeria", "Kenya", "South Africa", "Mexico", "Cuba",
    "Puerto Rico", "Jamaica", "Brazil", "Argentina", "Chile", "Colombia", "Peru", "Venezuela", "Uruguay",
    "Bolivia", "Ecuador", "Thailand", "Philippines", "Indonesia", "Malaysia", "Singapore", "Vietnam", "Pakistan",
    "Bangladesh", "Sri Lanka", "Nepal", "Malta", "Cyprus",
)


@dataclass(frozen=True)
class Notion:
    """A similarity notion of Table 13.1: ``title``, the prompt ``templates`` (each with one ``{}``) and the
    ``aspects`` put into them (every template x every aspect is one prompt). ``aspect_classes``: the class label
    each aspect names, where the aspects name the evaluation classes (synonyms may share a class); ``None`` where
    they do not (car model names for body types, as the thesis' 569 names for 98 classes)."""

    title: str
    templates: tuple[str, ...]
    aspects: tuple[str, ...]
    aspect_classes: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.aspect_classes is not None and len(self.aspect_classes) != len(self.aspects):
            raise ValueError(f"{self.title}: {len(self.aspect_classes)} aspect classes for {len(self.aspects)} aspects")

    @property
    def prompts(self) -> list[str]:
        return [template.format(aspect) for template in self.templates for aspect in self.aspects]


# Table 13.1 (the real data sets of the paper profile): notion -> prompt template; the aspects are chosen in
# :func:`load_real_dataset`.
REAL_DATASETS: dict[str, dict[str, str]] = {
    "Cars196": {"car model": "a photo of a {}", "manufacturer": "a photo of a car produced by {}",
                "car type": "a photo of a {}"},
    "CUB200": {"bird species": "a photo of a {}"},
    "DeepFashion": {"clothing category": "a photo of a person wearing a {}",
                    "texture": "a photo of a person wearing clothes with a {} texture",
                    "fabric": "a photo of a person wearing clothes made out of {}",
                    "fit": "a photo of a person wearing clothes with a {} fit"},
    "MoviePosters": {"genre": "a poster of a {} movie", "production country": "a poster of a movie produced in {}"},
}


#: ``Config.aspects_per_notion`` of every profile: more than any aspect list holds (all aspects are used).
EVERY_ASPECT = 100_000


@dataclass(frozen=True)
class Config:
    """What one profile runs (every field is shown on the page).

    Data: ``rendered_cars`` renders of cars (``car_image_size`` px) and ``world_images`` captioned-world images
    (``world_image_size`` px) of a split no encoder saw in training (both generated; a dry run caps the counts,
    not the sizes);
    ``aspects_per_notion``: at most this many aspects of each notion's list are put into prompts (the first
    ones; every profile uses whole lists, a paper dry run caps the passes through the text tower);
    ``real``: whether the real data sets of :data:`REAL_DATASETS` are read from ``data_root``. ``encoders``:
    image-text encoders of the registry; ``pairs``: the ``"<data set>|<encoder>"`` pairs that are evaluated
    (empty: every data set with every encoder), so that an encoder meets only the data it may be judged on.
    Method: ``embedding_dim`` r' (the thesis' 128), capped at
    ``dim_fraction`` of the encoder's dimension (the thesis' 128 of 512 = 1/4); ``runs`` seeds;
    ``max_iterations`` caps every Adam fit (patience 100 stops them earlier); ``oracle_iterations`` caps the
    Oracle; ``min_improvement``: the share of its loss by which a fit must improve within the patience to go on
    (0: any decrease, the thesis' rule; a positive share ends fits whose loss only creeps, see
    :func:`optimise_members`). Analyses, each on ``"<data set>|<encoder>"`` pairs (or ``"<data set>|<encoder>|<notion>"``):
    ``sweep_dims`` and ``sweep_methods`` on ``sweep_on`` (Fig. 13.4), ``prompt_counts`` on ``prompt_sweep_on``
    (Fig. 13.6) at r' = ``prompt_sweep_dim`` (``None``: the r' of Table 13.2), both over ``sweep_runs`` seeds; ``view_points`` t-SNE points per panel on ``views_on``
    (Fig. 13.2); ``attributed_images`` and ``attribution_steps`` (Integrated Gradients) on ``attribution_on``
    (Fig. 13.3; the encoder needs a differentiable image tower). ``primary``: the ``"<data set>|<encoder>"`` pair
    on which each thesis claim is judged once (the other pairs are diagnostics, :func:`notion_findings`);
    ``diagnostic_methods``: the methods of Table 13.2 run on those other pairs (empty: all of :data:`METHODS`;
    the primary pair always runs all).
    """

    rendered_cars: int
    car_image_size: int
    world_images: int
    world_image_size: int
    real: bool
    aspects_per_notion: int
    encoders: tuple[str, ...]
    embedding_dim: int
    dim_fraction: float
    runs: int
    max_iterations: int
    oracle_iterations: int
    sweep_dims: tuple[int, ...]
    sweep_on: tuple[str, ...]
    sweep_methods: tuple[str, ...]
    sweep_runs: int
    prompt_counts: tuple[int, ...]
    prompt_sweep_on: tuple[str, ...]
    prompt_sweep_dim: int | None
    view_points: int
    views_on: str
    attributed_images: int
    attribution_steps: int
    attribution_on: str
    primary: str
    min_improvement: float = 0.0
    pairs: tuple[str, ...] = ()
    diagnostic_methods: tuple[str, ...] = ()

    def __post_init__(self):
        if self.rendered_cars < 20 or self.world_images < 20:
            raise ValueError(f"need at least 20 car and 20 world images, got {self.rendered_cars} and "
                             f"{self.world_images}")
        if not self.encoders:
            raise ValueError("name at least one image-text encoder")
        if self.embedding_dim < 1 or not 0 < self.dim_fraction <= 1:
            raise ValueError("embedding_dim must be positive and dim_fraction in (0, 1]")
        if self.aspects_per_notion < 2:
            raise ValueError(f"aspects_per_notion must be at least 2, got {self.aspects_per_notion}")
        if self.runs < 1 or self.sweep_runs < 1 or self.max_iterations < 1 or self.oracle_iterations < 1:
            raise ValueError("runs, sweep_runs, max_iterations and oracle_iterations must be positive")
        if any(d < 1 for d in self.sweep_dims) or any(c < 2 for c in self.prompt_counts):
            raise ValueError("sweep_dims must be positive and prompt_counts at least 2")
        unknown = set(self.sweep_methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown sweep methods {sorted(unknown)}; choose from {METHODS}")
        if self.diagnostic_methods and not set(DIAGNOSTIC_CORE) <= set(self.diagnostic_methods) <= set(METHODS):
            raise ValueError(f"diagnostic_methods must be methods of {METHODS} and include {DIAGNOSTIC_CORE} (the "
                             f"held-notion check and the figure read them), got {self.diagnostic_methods}")
        for pair in self.pairs:
            if len(pair.split("|")) != 2 or pair.split("|")[1] not in self.encoders:
                raise ValueError(f"pair {pair!r} must read '<data set>|<encoder>' with an encoder of this profile "
                                 f"({', '.join(self.encoders)})")
        for target in (*self.sweep_on, *self.prompt_sweep_on, self.views_on, self.attribution_on, self.primary):
            parts = target.split("|")
            if len(parts) not in (2, 3) or parts[1] not in self.encoders:
                raise ValueError(f"analysis target {target!r} must read '<data set>|<encoder>[|<notion>]' with an "
                                 f"encoder of this profile ({', '.join(self.encoders)})")
            if self.pairs and "|".join(parts[:2]) not in self.pairs:
                raise ValueError(f"analysis target {target!r} is not among the evaluated pairs "
                                 f"({', '.join(self.pairs)})")


#: The aligned image-text models of the registry (:mod:`domainknowledge.models.encoders.aligned`) that the
#: generated data sets are judged with: heads trained on every captioned world, and heads that never saw the
#: world of the data set (the captioned world or the rendered cars).
_ALIGNED = "aligned-lite0-minilm-{size}-{heads}"


def _aligned(size: str, heads: str) -> str:
    return _ALIGNED.format(size=size, heads=heads)


CONFIGS: dict[str, Config] = {
    "smoke": Config(rendered_cars=80, car_image_size=48, world_images=80, world_image_size=32, real=False,
                    aspects_per_notion=EVERY_ASPECT,
                    encoders=(_aligned("smoke", "all-worlds"), _aligned("smoke", "without-cars")),
                    pairs=(f"world|{_aligned('smoke', 'all-worlds')}", f"cars|{_aligned('smoke', 'without-cars')}"),
                    embedding_dim=128, dim_fraction=0.25,
                    runs=2, max_iterations=200, oracle_iterations=100, sweep_dims=(2, 8, 32),
                    sweep_on=(f"world|{_aligned('smoke', 'all-worlds')}",),
                    sweep_methods=("InDiReCT", "Random U", "PCA"), sweep_runs=1, prompt_counts=(4, 16),
                    prompt_sweep_on=(f"world|{_aligned('smoke', 'all-worlds')}|colour",
                                     f"cars|{_aligned('smoke', 'without-cars')}|car model"),
                    prompt_sweep_dim=4, view_points=50, views_on=f"world|{_aligned('smoke', 'all-worlds')}",
                    attributed_images=2, attribution_steps=8, attribution_on=f"world|{_aligned('smoke', 'all-worlds')}",
                    primary=f"world|{_aligned('smoke', 'all-worlds')}", min_improvement=1e-3),
    "cpu": Config(rendered_cars=400, car_image_size=64, world_images=400, world_image_size=64, real=False,
                  aspects_per_notion=EVERY_ASPECT,
                  encoders=(_aligned("cpu", "all-worlds"), _aligned("cpu", "without-captioned"),
                            _aligned("cpu", "without-cars")),
                  pairs=(f"world|{_aligned('cpu', 'all-worlds')}", f"world|{_aligned('cpu', 'without-captioned')}",
                         f"cars|{_aligned('cpu', 'all-worlds')}", f"cars|{_aligned('cpu', 'without-cars')}"),
                  embedding_dim=128, dim_fraction=0.25,
                  runs=5, max_iterations=1000, oracle_iterations=1500, sweep_dims=(2, 4, 8, 16, 32, 96, 384),
                  sweep_on=(f"world|{_aligned('cpu', 'all-worlds')}",),
                  sweep_methods=("InDiReCT", "Random U", "PCA", "LAE"), sweep_runs=3,
                  prompt_counts=(2, 4, 8, 16, 32, 64, 136),
                  prompt_sweep_on=(f"world|{_aligned('cpu', 'all-worlds')}|colour",
                                   f"world|{_aligned('cpu', 'all-worlds')}|background",
                                   f"cars|{_aligned('cpu', 'all-worlds')}|car model"), prompt_sweep_dim=4,
                  view_points=300, views_on=f"world|{_aligned('cpu', 'all-worlds')}", attributed_images=4,
                  attribution_steps=24, attribution_on=f"world|{_aligned('cpu', 'all-worlds')}",
                  primary=f"world|{_aligned('cpu', 'all-worlds')}", min_improvement=1e-3,
                  diagnostic_methods=(*DIAGNOSTIC_CORE, "Random U")),
    "paper": Config(rendered_cars=10000, car_image_size=128, world_images=10000, world_image_size=64, real=True,
                    aspects_per_notion=EVERY_ASPECT,
                    encoders=("open_clip:ViT-B-32/openai", _aligned("paper", "all-worlds"),
                              _aligned("paper", "without-captioned"), _aligned("paper", "without-cars")),
                    pairs=(*(f"{key}|open_clip:ViT-B-32/openai" for key in ("cars", "world", *REAL_DATASETS)),
                           f"world|{_aligned('paper', 'all-worlds')}",
                           f"world|{_aligned('paper', 'without-captioned')}",
                           f"cars|{_aligned('paper', 'all-worlds')}", f"cars|{_aligned('paper', 'without-cars')}"),
                    embedding_dim=128, dim_fraction=1.0, runs=5, max_iterations=100_000, oracle_iterations=100_000,
                    sweep_dims=(2, 4, 8, 16, 32, 64, 128, 256, 512), sweep_on=("Cars196|open_clip:ViT-B-32/openai",),
                    sweep_methods=("InDiReCT", "Random U", "PCA", "LAE", "AE", "Oracle"), sweep_runs=5,
                    prompt_counts=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150),
                    prompt_sweep_on=("Cars196|open_clip:ViT-B-32/openai|car model",), prompt_sweep_dim=None,
                    view_points=2000,
                    views_on="Cars196|open_clip:ViT-B-32/openai", attributed_images=5, attribution_steps=50,
                    attribution_on="Cars196|open_clip:ViT-B-32/openai", primary="Cars196|open_clip:ViT-B-32/openai"),
}


def parse_target(target: str) -> tuple[str, ...]:
    """``"<data set>|<encoder>[|<notion>]"`` -> its parts (encoder names may contain ``/`` and ``:``)."""
    return tuple(target.split("|"))


def evaluated_pairs(config: Config, dataset_keys) -> list[tuple[str, str]]:
    """The ``(data set key, encoder)`` pairs of ``config`` (:attr:`Config.pairs`; empty: every key of
    ``dataset_keys`` with every encoder) whose data set was loaded."""
    if not config.pairs:
        return [(key, name) for name in config.encoders for key in dataset_keys]
    pairs = [tuple(pair.split("|")) for pair in config.pairs]
    return [(key, name) for key, name in pairs if key in dataset_keys]


def reduced_dim(config: Config, encoder_dim: int) -> int:
    """r' for an encoder of dimension ``encoder_dim``: ``min(embedding_dim, dim_fraction * encoder_dim)``, at least 2."""
    return int(max(2, min(config.embedding_dim, int(config.dim_fraction * encoder_dim))))


# --- data -----------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """An evaluation image set: ``images`` (``(N, S, S, 3)`` uint8, or files decoded on demand whose slices are
    such arrays), ``labels`` ``{notion: (N,) array}`` (:data:`UNLABELLED` where an image has no class), ``notions`` ``{notion: Notion}``, a ``data_key`` naming it for the embedding cache,
    and ``masks`` ``(N, S, S)`` bool where the object's pixels are known (rendered cars)."""

    name: str
    description: str
    images: object
    labels: dict[str, np.ndarray]
    notions: dict[str, Notion]
    data_key: str
    is_stand_in: bool
    masks: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.labels.values())))


def css_colour_names(rgb) -> np.ndarray:
    """The nearest CSS 2.1 colour keyword (Euclidean distance in sRGB, 0..1) of each colour ``(N, 3)``: ``(N,)`` str."""
    rgb = np.asarray(rgb, dtype=float).reshape(-1, 3)
    if rgb.size and (rgb.min() < -1e-6 or rgb.max() > 1 + 1e-6):
        raise ValueError("colours must be sRGB values in [0, 1]")
    names = list(CSS21_COLOURS)
    palette = np.asarray([CSS21_COLOURS[n] for n in names], dtype=float) / 255.0
    distance = ((rgb[:, None, :] - palette[None]) ** 2).sum(axis=2)
    return np.asarray(names, dtype=object)[distance.argmin(axis=1)].astype(str)


def _car_dataset(config: Config, seed: int) -> Dataset:
    from domainknowledge.data.synthetic import cars

    renders = cars.make_analysis_set(config.rendered_cars, seed=seed, image_size=config.car_image_size)
    p = renders.properties
    paint = cars.hsv_factors_to_rgb(p["car_hue"], p["car_saturation"], p["car_value"])
    backdrop = cars.hsv_factors_to_rgb(p["background_hue"], p["background_saturation"], p["background_value"])
    colours = tuple(CSS21_COLOURS)
    notions = {"car model": Notion("Car model", ("a photo of a {}",), CAR_MODEL_NAMES),
               "car colour": Notion("Car colour", ("a {} car",), colours, colours),
               "background colour": Notion("Background colour", ("a car in front of a {} background",), colours,
                                           colours)}
    labels = {"car model": p["model"].to_numpy(str), "car colour": css_colour_names(paint),
              "background colour": css_colour_names(backdrop)}
    return Dataset("Rendered cars", f"{len(p):,} renders of Ch. 7's analysis set ({config.car_image_size} px, solid "
                   "backgrounds, every property independent)", renders.images, labels, notions,
                   f"indirect|cars-analysis|n={len(p)}|size={config.car_image_size}|seed={seed}", True,
                   masks=renders.masks, extra={"properties": p})


WORLD_NOTIONS = ("shape", "colour", "texture", "background")


def _world_dataset(config: Config, seed: int) -> Dataset:
    from domainknowledge.data.synthetic.captioned_world import SYNONYMS, generate_captioned_world, zero_shot_prompts

    world = generate_captioned_world(config.world_images, seed=seed, split="indirect-evaluation",
                                     image_size=config.world_image_size)
    notions, labels = {}, {}
    for factor in WORLD_NOTIONS:
        _, templates = zero_shot_prompts(factor)
        named = [(word, value) for value, words in SYNONYMS[factor].items() for word in words]
        notions[factor] = Notion(factor.capitalize(), templates, tuple(w for w, _ in named),
                                 tuple(v for _, v in named))
        labels[factor] = world.factors[factor].to_numpy(str)
    return Dataset("Captioned world", f"{len(world):,} images of the captioned world (a split no encoder saw in "
                   f"training, {config.world_image_size} px)", world.images, labels, notions,
                   f"indirect|captioned-world|n={len(world)}|size={config.world_image_size}|seed={seed}", True,
                   extra={"factors": world.factors})


def car_make(name: str) -> str:
    """The manufacturer that opens a car name: ``"Aston Martin V8 Vantage Coupe 2012"`` -> ``"Aston Martin"``,
    ``"BMW M3 Coupe 2012"`` -> ``"BMW"`` (makes of several words: :data:`MULTI_WORD_MAKES`)."""
    for prefix, make in MULTI_WORD_MAKES.items():
        if name == prefix or name.startswith(prefix + " "):
            return make
    return name.split()[0] if name.split() else UNLABELLED


def car_body_type(name: str) -> str:
    """The car type of a Cars196 class name: its last body-type word (:data:`CAR_BODY_TYPES`), e.g.
    ``"Ram C/V Cargo Van Minivan 2012"`` -> ``"minivan"``, ``"Ford F-150 Regular Cab 2012"`` ->
    ``"pickup truck"``; :data:`UNLABELLED` for a name without one (``"Acura TL Type-S 2008"``)."""
    for word in reversed(name.split()):
        if word in CAR_BODY_TYPES:
            return CAR_BODY_TYPES[word]
    return UNLABELLED


def cub_species(class_folder: str) -> str:
    """A CUB-200-2011 class folder name as a species name: ``"001.Black_footed_Albatross"`` ->
    ``"Black footed Albatross"``."""
    return class_folder.split(".", 1)[-1].replace("_", " ").strip()


def labelled(labels) -> np.ndarray:
    """``(N,)`` bool: the images that have a class under a notion (label not :data:`UNLABELLED`)."""
    return np.asarray(labels).astype(str) != UNLABELLED


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


def _real_images(paths) -> object:
    from domainknowledge.data.real.image_files import ImageFiles, resize_center_crop

    return ImageFiles(paths, resize_center_crop(REAL_IMAGE_SIZE), REAL_IMAGE_SIZE)


def _files_key(name: str, paths, root) -> str:
    import hashlib

    listed = "\n".join(str(Path(p).relative_to(root)) for p in paths)
    return (f"indirect|{name}|n={len(paths)}|size={REAL_IMAGE_SIZE}|"
            f"files={hashlib.sha256(listed.encode()).hexdigest()[:16]}")


def _notions(name: str, aspects: dict[str, tuple[str, ...]]) -> dict[str, Notion]:
    return {notion: Notion(notion.capitalize(), (REAL_DATASETS[name][notion],), tuple(dict.fromkeys(aspects[notion])))
            for notion in REAL_DATASETS[name]}


def _cars196(data_root) -> Dataset:
    from domainknowledge.data.real.dml_benchmarks import benchmark_class_names, find_dml_benchmark

    test = find_dml_benchmark(data_root, "cars196", "test")                  # the 98 test car models (99-196)
    names = benchmark_class_names(data_root, "cars196")
    model = np.asarray([names[int(test.class_ids[k])] for k in test.labels], dtype=str)
    labels = {"car model": model, "manufacturer": np.asarray([car_make(m) for m in model], dtype=str),
              "car type": np.asarray([car_body_type(m) for m in model], dtype=str)}
    aspects = {"car model": CAR_MODEL_NAMES, "manufacturer": tuple(car_make(m) for m in CAR_MODEL_NAMES),
               "car type": tuple(CAR_BODY_TYPES.values())}
    return Dataset("Cars196", f"{len(model):,} test images of Cars196 ({len(set(model))} car models)",
                   _real_images(test.paths), labels, _notions("Cars196", aspects),
                   _files_key("Cars196", test.paths, data_root), False)


def _cub200(data_root) -> Dataset:
    from domainknowledge.data.real.dml_benchmarks import CUB200, benchmark_class_names, find_dml_benchmark

    test = find_dml_benchmark(data_root, "cub200", "test")                   # the 100 test species (101-200)
    names = benchmark_class_names(data_root, "cub200")
    species = np.asarray([cub_species(names[int(test.class_ids[k])]) for k in test.labels], dtype=str)
    training_species = tuple(cub_species(names[c]) for c in sorted(names) if c <= CUB200.train_classes)
    return Dataset("CUB200", f"{len(species):,} test images of CUB-200-2011 ({len(set(species))} species)",
                   _real_images(test.paths), {"bird species": species},
                   _notions("CUB200", {"bird species": training_species}),
                   _files_key("CUB200", test.paths, data_root), False)


def _deepfashion(data_root) -> Dataset:
    from domainknowledge.data.real.deepfashion import read_deepfashion

    test = read_deepfashion(data_root, "test")
    kinds = {"texture": 1, "fabric": 2, "fit": 3}                            # fit: the shape attributes
    labels = {"clothing category": test.categories, **{n: test.attributes[k] for n, k in kinds.items()}}
    aspects = {"clothing category": tuple(_words(c).lower() for c in test.category_names),
               **{n: tuple(_words(a) for a in test.attribute_names[k]) for n, k in kinds.items()}}
    return Dataset("DeepFashion", f"{len(test.paths):,} test images of DeepFashion's Category and Attribute "
                   f"Prediction Benchmark ({test.annotations.name}/)", _real_images(test.paths), labels,
                   _notions("DeepFashion", aspects), _files_key("DeepFashion", test.paths, data_root), False)


def _movie_posters(data_root) -> Dataset:
    from domainknowledge.data.real.movie_posters import read_movie_posters

    posters = read_movie_posters(data_root)
    labels = {"genre": posters.genres, "production country": posters.countries}
    aspects = {"genre": IMDB_GENRES, "production country": FILM_COUNTRIES}
    return Dataset("MoviePosters", f"{len(posters.paths):,} movie posters of Chu and Guo ({posters.skipped} "
                   f"undecodable records, {posters.no_poster} without a poster file)", _real_images(posters.paths),
                   labels, _notions("MoviePosters", aspects), _files_key("MoviePosters", posters.paths, data_root),
                   False, extra={"imdb_ids": posters.imdb_ids})


_REAL_READERS = {"Cars196": _cars196, "CUB200": _cub200, "DeepFashion": _deepfashion, "MoviePosters": _movie_posters}


def load_real_dataset(name: str, data_root) -> Dataset:
    """The evaluation set ``name`` of Table 13.1 (a key of :data:`REAL_DATASETS`) from its published layout under
    ``data_root`` (:data:`REAL_LAYOUT`): the test classes per notion, the images as lazily decoded
    ``(N, 224, 224, 3)`` files (:class:`~domainknowledge.data.real.image_files.ImageFiles`), and per notion the
    prompt template of Table 13.1 with aspects taken, as in the thesis, from elsewhere than the test labels:
    Cars196's car models and manufacturers from :data:`CAR_MODEL_NAMES` (the thesis: a car dealer's list), its
    car types from :data:`CAR_BODY_TYPES`; CUB200's species from the training classes 1-100; DeepFashion's
    categories and attributes from the benchmark's published lists; the posters' genres and countries from
    :data:`IMDB_GENRES` and :data:`FILM_COUNTRIES`. A missing file raises
    :class:`~domainknowledge.data.bundled.DataNotFoundError` naming it and the data set's source."""
    if name not in _REAL_READERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(_REAL_READERS)}")
    if data_root is None:
        raise DataNotFoundError(f"the paper profile reads {name} from a data_root (run with --data-root DIR); "
                                f"expected {REAL_LAYOUT}")
    return _REAL_READERS[name](Path(data_root).expanduser())


def load_datasets(config: Config, *, seed: int, data_root=None) -> dict[str, Dataset]:
    """The evaluation sets of ``config`` (module docstring), seeded by ``seed`` (the same images for every run)."""
    sets = {"cars": _car_dataset(config, seed + 1301), "world": _world_dataset(config, seed + 1302)}
    if config.real:
        for name in REAL_DATASETS:
            sets[name] = load_real_dataset(name, data_root)
    for dataset in sets.values():
        dataset.notions = {notion: dataclasses.replace(
            spec, aspects=spec.aspects[:config.aspects_per_notion],
            aspect_classes=None if spec.aspect_classes is None else spec.aspect_classes[:config.aspects_per_notion])
            for notion, spec in dataset.notions.items()}
    return sets


# --- embeddings -------------------------------------------------------------------------------------------


def embed_dataset(encoder, dataset: Dataset, *, cache_dir=None) -> np.ndarray:
    """The encoder's image embeddings ``(N, D)`` of the data set, through the registry's cache."""
    from domainknowledge.models.encoders import cached_image_embeddings

    return cached_image_embeddings(encoder, dataset.images, data_key=dataset.data_key, cache_dir=cache_dir)


def prompt_embeddings(encoder, notion: Notion, *, cache_dir=None) -> np.ndarray:
    """The encoder's text embeddings ``(n, D)`` of the notion's prompts, through the registry's cache."""
    from domainknowledge.models.encoders import cached_text_embeddings

    return cached_text_embeddings(encoder, notion.prompts, cache_dir=cache_dir)


# --- batched fits: :mod:`domainknowledge.principles.indirect_batch` ------------------------------------------


# --- Table 13.2 -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One (data set, encoder, notion) of Table 13.2: the image embeddings ``(m, r)`` of the images that have a class
    under the notion, their ``labels`` ``(m,)`` and the notion's prompt embeddings ``texts`` ``(n, r)``."""

    dataset: str
    encoder: str
    notion: str
    images: np.ndarray
    texts: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, dataset: str, encoder: str, notion: str, images, texts, labels) -> "Problem":
        """The problem with the images that have no class under the notion (:data:`UNLABELLED`) left out."""
        images, labels = _labelled_rows(images, labels)
        return cls(dataset, encoder, notion, np.asarray(images, np.float32), np.asarray(texts, np.float32), labels)


#: The methods of :data:`METHODS` that are trained by Adam, and their batched fits.
BATCHED_FITS = {"InDiReCT": fit_indirect_batch, "LAE": fit_linear_autoencoder_batch, "AE": fit_autoencoder_batch}


def _direct_embeddings(method: str, problem: Problem, dim: int, seed: int) -> tuple[np.ndarray | None, dict]:
    """The embeddings of the methods without training (Random, Raw, Random U, PCA)."""
    images, texts = problem.images, problem.texts
    if method == "Random":
        return indirect.random_embeddings(len(images), dim, seed=seed), {}
    if method == "Raw":
        return images, {}
    if method == "Random U":
        return indirect.random_projection(images.shape[1], dim, seed=seed)(images), {}
    if method == "PCA":
        if dim >= len(texts):
            return None, {"note": f"r' = {dim} >= {len(texts)} prompts"}
        return indirect.fit_pca(texts, dim)(images), {}
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def fit_jobs(jobs: list[tuple[Problem, str, int, int]], config: Config, *, device="cpu") -> list[tuple]:
    """The embeddings of every job ``(problem, method, r', seed)``: ``(embeddings (m, r') or None, facts)`` in job
    order. The Adam fits run batched, one batch per method (and per data set and encoder for the Oracle, whose
    members share the image embeddings): :func:`fit_indirect_batch`, :func:`fit_linear_autoencoder_batch`,
    :func:`fit_autoencoder_batch`, :func:`fit_oracle_batch`. ``facts``: ``iterations``, ``loss`` (the best) and
    ``seconds`` (the member's share of its batch's time) for the trained methods."""
    out: list[tuple | None] = [None] * len(jobs)
    trained: dict[tuple, list[int]] = {}
    for i, (problem, method, dim, seed) in enumerate(jobs):
        if method in BATCHED_FITS:
            trained.setdefault((method,), []).append(i)
        elif method == "Oracle":
            trained.setdefault((method, id(problem.images)), []).append(i)
        else:
            started = time.perf_counter()
            embeddings, facts = _direct_embeddings(method, problem, dim, seed)
            out[i] = (embeddings, {**facts, "seconds": time.perf_counter() - started})
    for key, indices in trained.items():
        started = time.perf_counter()
        if key[0] == "Oracle":
            members = [Member(None, jobs[i][2], jobs[i][3], labels=jobs[i][0].labels) for i in indices]
            fits = fit_oracle_batch(jobs[indices[0]][0].images, members, max_iterations=config.oracle_iterations,
                                    min_improvement=config.min_improvement, device=device)
        else:
            members = [Member(jobs[i][0].texts, jobs[i][2], jobs[i][3]) for i in indices]
            fits = BATCHED_FITS[key[0]](members, max_iterations=config.max_iterations, device=device,
                                        min_improvement=config.min_improvement)
        share = (time.perf_counter() - started) / len(indices)
        for i, fit in zip(indices, fits):
            out[i] = (fit(jobs[i][0].images), {"iterations": fit.iterations, "loss": fit.best_loss, "seconds": share})
    return out


def method_embeddings(method: str, images: np.ndarray, texts: np.ndarray, labels: np.ndarray, dim: int, *,
                      seed: int, config: Config, device="cpu") -> tuple[np.ndarray | None, dict]:
    """The evaluation embeddings of ``method`` (one of :data:`METHODS`) at r' = ``dim`` and ``seed``, and facts about
    the fit (iterations, final loss); ``None`` where the method does not apply (PCA with r' >= n prompts)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    problem = Problem("", "", "", np.asarray(images, np.float32), np.asarray(texts, np.float32), np.asarray(labels))
    return fit_jobs([(problem, method, dim, seed)], config, device=device)[0]


def _labelled_rows(images: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``images`` ``(N, D)`` and ``labels`` ``(N,)`` that have a class under the notion."""
    labels = np.asarray(labels)
    keep = labelled(labels)
    if keep.all():
        return np.asarray(images), labels
    if keep.sum() < 2:
        raise ValueError(f"only {int(keep.sum())} of {len(labels)} images have a class under this notion")
    return np.asarray(images)[keep], labels[keep]


def evaluate_problems(problems: list[Problem], config: Config, seeds, *, methods=METHODS, dims=None,
                      device="cpu") -> pd.DataFrame:
    """Table 13.2 rows for every problem: one row per (problem, r', method, seed) with ``map_at_r``,
    ``precision_at_1``, ``dim`` (r'), ``prompts``, fit facts and seconds. ``dims``: the r' values (those above an
    encoder's dimension are skipped); ``None``: each encoder's :func:`reduced_dim`. The raw embeddings are
    deterministic and evaluated once per problem. All fits of one method run as one batch (:func:`fit_jobs`)."""
    seeds = list(seeds)
    jobs = []
    for problem in problems:
        width = problem.images.shape[1]
        for dim in ([reduced_dim(config, width)] if dims is None else [d for d in dims if d <= width]):
            for method in methods:
                jobs.extend((problem, method, dim, seed) for seed in (seeds[:1] if method == "Raw" else seeds))
    rows = []
    for (problem, method, dim, seed), (embeddings, facts) in zip(jobs, fit_jobs(jobs, config, device=device)):
        if embeddings is None:
            continue
        started = time.perf_counter()
        scores = indirect.retrieval_scores(embeddings, problem.labels)
        facts = {**facts, "seconds": facts["seconds"] + time.perf_counter() - started}
        rows.append({"dataset": problem.dataset, "encoder": problem.encoder, "notion": problem.notion,
                     "method": method, "seed": seed, "dim": embeddings.shape[1], "prompts": len(problem.texts),
                     **scores, **facts})
    return pd.DataFrame(rows)


def zero_shot_naming(images: np.ndarray, texts: np.ndarray, notion: Notion, labels, *, rounds: int = 2000,
                     seed: int = 0) -> dict:
    """Whether the notion's words reach its classes in the encoder (the second ingredient of InDiReCT besides the
    Oracle's): zero-shot classification of the images by their nearest class, a class being the mean of the
    normalised embeddings of its prompts, normalised (the prompt ensemble of
    :mod:`~domainknowledge.models.encoders.zero_shot`; every template with every aspect that names it,
    :attr:`Notion.aspect_classes`). ``images`` ``(N, r)``, ``texts`` ``(n, r)`` in :attr:`Notion.prompts` order,
    ``labels`` ``(N,)``; images whose class no aspect names are left out.

    Returns ``accuracy`` (balanced over the classes present), ``chance`` (1 / the classes the aspects name),
    ``p_value`` (one-sided permutation test of the balanced accuracy) and ``images``; all NaN where the aspects
    do not name the classes."""
    from sklearn.metrics import balanced_accuracy_score

    from domainknowledge.models.encoders.zero_shot import zero_shot_predict
    from domainknowledge.significance import balanced_accuracy_p_value

    nan = {"accuracy": float("nan"), "chance": float("nan"), "p_value": float("nan"), "images": 0}
    if notion.aspect_classes is None:
        return nan
    per_prompt = np.tile(np.asarray(notion.aspect_classes), len(notion.templates))
    classes = np.unique(per_prompt)
    texts = np.asarray(texts, np.float64)
    texts = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    centres = np.stack([texts[per_prompt == c].mean(axis=0) for c in classes])           # (C, r)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)                            # the prompt ensemble
    labels = np.asarray(labels).astype(str)
    keep = np.isin(labels, classes)
    if len(np.unique(labels[keep])) < 2:
        return nan
    truth = np.searchsorted(classes, labels[keep])
    predicted = zero_shot_predict(np.asarray(images, np.float64)[keep], centres)
    return {"accuracy": float(balanced_accuracy_score(truth, predicted)), "chance": 1.0 / len(classes),
            "p_value": balanced_accuracy_p_value(truth, predicted, rounds=rounds, seed=seed),
            "images": int(keep.sum())}


#: A notion's words reach it when zero-shot naming beats chance at this one-sided permutation p-value.
NAMED_P_VALUE = 0.01


def naming_table(datasets: dict[str, Dataset], pairs, image_embeddings: dict, text_embeddings: dict, *,
                 seed: int = 0) -> pd.DataFrame:
    """:func:`zero_shot_naming` for every evaluated pair (``(data set key, encoder)``) and notion, indexed like
    :func:`notion_findings`; ``named``: p <= :data:`NAMED_P_VALUE` (NaN where the aspects do not name the classes)."""
    rows = []
    for key, name in pairs:
        for notion, spec in datasets[key].notions.items():
            reading = zero_shot_naming(image_embeddings[(key, name)], text_embeddings[(key, name, notion)], spec,
                                       datasets[key].labels[notion], seed=seed)
            named = reading["p_value"] <= NAMED_P_VALUE if reading["p_value"] == reading["p_value"] else float("nan")
            rows.append({"dataset": datasets[key].name, "encoder": name, "notion": notion,
                         **{f"naming {k}": v for k, v in reading.items()}, "named": named})
    return pd.DataFrame(rows).set_index(["dataset", "encoder", "notion"])


def evaluate_table(problems: dict[tuple[str, str, str], Problem], config: Config, seeds, *,
                   device="cpu") -> pd.DataFrame:
    """Table 13.2 rows (:func:`evaluate_problems`) for ``problems`` keyed ``(data set key, encoder, notion)``:
    every method of :data:`METHODS` on the primary pair, :attr:`Config.diagnostic_methods` on the others."""
    primary = [p for (key, name, _), p in problems.items() if f"{key}|{name}" == config.primary]
    others = [p for (key, name, _), p in problems.items() if f"{key}|{name}" != config.primary]
    parts = [evaluate_problems(primary, config, seeds, device=device)]
    if others:
        parts.append(evaluate_problems(others, config, seeds, methods=config.diagnostic_methods or METHODS,
                                       device=device))
    return pd.concat(parts, ignore_index=True)


def evaluate_notion(dataset: str, encoder: str, notion: str, images: np.ndarray, texts: np.ndarray,
                    labels: np.ndarray, config: Config, seeds, *, methods=METHODS, dim: int | None = None,
                    device="cpu") -> pd.DataFrame:
    """:func:`evaluate_problems` for one notion at one r' (``None``: :func:`reduced_dim`). Images without a class
    under the notion (:data:`UNLABELLED`) are left out, for the Oracle's training too."""
    problem = Problem.of(dataset, encoder, notion, images, texts, labels)
    return evaluate_problems([problem], config, seeds, methods=methods, dims=None if dim is None else [dim],
                             device=device)


def table_13_2(results: pd.DataFrame, metric_names=("map_at_r", "precision_at_1")) -> pd.DataFrame:
    """Table 13.2: rows (dataset, encoder, notion, metric), columns :data:`METHODS`, cells "mean ± sd" in percent
    over seeds ("–" where a method did not run)."""
    rows = []
    for (dataset, encoder, notion), group in results.groupby(["dataset", "encoder", "notion"], sort=False):
        for metric in metric_names:
            row = {"dataset": dataset, "encoder": encoder, "notion": notion,
                   "metric": {"map_at_r": "MAP@R", "precision_at_1": "Prec@1"}[metric]}
            for method in METHODS:
                values = 100 * group.loc[group.method == method, metric].to_numpy(float)
                row[method] = ("–" if values.size == 0 else f"{values[0]:.1f}" if values.size == 1
                               else f"{values.mean():.1f} ± {values.std(ddof=1):.1f}")
            rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "encoder", "notion", "metric"])


#: The Oracle must recover at least this share of the headroom above the random floor, (O - R) / (1 - R), for a
#: notion to count as held by the encoder; Table 13.2's smallest is 0.16 (Movie Posters, genre).
HELD_HEADROOM_SHARE = 0.05
#: PCA "performs similarly" to InDiReCT when their MAP@R differ by at most this share of InDiReCT's gain over the
#: random floor; Table 13.2's two PCA rows differ by 2.2 % (Synthetic Cars) and 0.3 % (Cars196) of it.
PCA_SIMILAR_SHARE = 0.05


def notion_findings(results: pd.DataFrame, metric: str = "map_at_r") -> pd.DataFrame:
    """Per (dataset, encoder, notion) of :func:`evaluate_notion` rows: whether each comparison of Table 13.2 goes the
    thesis' way, by the rules the chapter's claims use (mean over seeds; "beyond the spread" = by more than the
    seed standard deviation of the method that has one; the raw embeddings are deterministic).

    ``held``: the encoder holds the notion, i.e. the Oracle beats the random floor, paired over seeds, by more
    than twice the spread of the differences and by at least :data:`HELD_HEADROOM_SHARE` of the headroom above
    random (a ceiling tied at chance tells nothing). ``indirect_beats_raw``; ``oracle_above_indirect`` (strictly);
    ``random_u_below_raw`` (beyond its spread); ``pca_gap_share`` = |PCA - InDiReCT| / (InDiReCT - Random) and
    ``pca_similar`` (NaN where PCA did not run); ``lae_not_above_indirect``, ``lae_above_raw``; ``ae_below_raw``,
    ``ae_spread_above_indirect``; plus the means and seed spreads behind them."""
    from domainknowledge.significance import paired_gap_exceeds_spread

    rows = []
    for (dataset, encoder, notion), group in results.groupby(["dataset", "encoder", "notion"], sort=False):
        per = {m: group[group.method == m].set_index("seed")[metric].astype(float) for m in METHODS
               if (group.method == m).any()}
        mean = {m: float(v.mean()) for m, v in per.items()}
        sd = {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in per.items()}
        nan = float("nan")
        row = {"dataset": dataset, "encoder": encoder, "notion": notion,
               **{f"{m} mean": mean.get(m, nan) for m in METHODS}, **{f"{m} sd": sd.get(m, nan) for m in METHODS}}
        oracle_gap = (per["Oracle"] - per["Random"]).dropna() if {"Oracle", "Random"} <= set(per) else pd.Series([])
        headroom = 1.0 - mean.get("Random", nan)
        row["oracle_headroom_share"] = (mean["Oracle"] - mean["Random"]) / headroom if len(oracle_gap) else nan
        row["held"] = bool(len(oracle_gap) and paired_gap_exceeds_spread(oracle_gap.to_numpy())
                           and row["oracle_headroom_share"] >= HELD_HEADROOM_SHARE)
        has = lambda *methods: all(m in mean for m in methods)  # noqa: E731
        row["indirect_beats_raw"] = (mean["InDiReCT"] - mean["Raw"] > sd["InDiReCT"]) if has("InDiReCT", "Raw") else nan
        row["oracle_above_indirect"] = (mean["Oracle"] > mean["InDiReCT"]) if has("Oracle", "InDiReCT") else nan
        row["random_u_below_raw"] = (mean["Raw"] - mean["Random U"] > sd["Random U"]) if has("Raw", "Random U") else nan
        gain = mean["InDiReCT"] - mean["Random"] if has("InDiReCT", "Random") else nan
        row["pca_gap_share"] = (abs(mean["PCA"] - mean["InDiReCT"]) / gain if has("PCA", "InDiReCT", "Random") and gain > 0
                                else nan)
        row["pca_similar"] = (row["pca_gap_share"] <= PCA_SIMILAR_SHARE) if row["pca_gap_share"] == row["pca_gap_share"] else nan
        row["lae_not_above_indirect"] = (mean["LAE"] <= mean["InDiReCT"]) if has("LAE", "InDiReCT") else nan
        row["lae_above_raw"] = (mean["LAE"] > mean["Raw"]) if has("LAE", "Raw") else nan
        row["ae_below_raw"] = (mean["AE"] < mean["Raw"]) if has("AE", "Raw") else nan
        row["ae_spread_above_indirect"] = (sd["AE"] > sd["InDiReCT"]) if has("AE", "InDiReCT") else nan
        rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "encoder", "notion"])


#: Table 13.2's MAP@R means (%) per (data set, notion) and method (Raw = the CLIP column; PCA only where it ran),
#: Kobs (2023), for the orderings of the baselines the chapter's claims do not test one by one.
THESIS_MAP_AT_R: dict[tuple[str, str], dict[str, float]] = {
    ("Synthetic Cars", "car model"): {"Random": 3.3, "Raw": 43.5, "InDiReCT": 57.4, "Random U": 39.1, "PCA": 56.2,
                                      "LAE": 52.5, "AE": 39.5, "Oracle": 100.0},
    ("Synthetic Cars", "car colour"): {"Random": 5.0, "Raw": 6.2, "InDiReCT": 9.1, "Random U": 6.1, "LAE": 7.3,
                                       "AE": 8.6, "Oracle": 57.9},
    ("Synthetic Cars", "background colour"): {"Random": 5.4, "Raw": 6.2, "InDiReCT": 7.1, "Random U": 6.1,
                                              "LAE": 6.3, "AE": 6.1, "Oracle": 74.0},
    ("Cars196", "car model"): {"Random": 0.1, "Raw": 23.5, "InDiReCT": 37.4, "Random U": 19.2, "PCA": 37.5,
                               "LAE": 33.2, "AE": 20.0, "Oracle": 41.8},
    ("Cars196", "manufacturer"): {"Random": 0.5, "Raw": 24.4, "InDiReCT": 33.6, "Random U": 21.2, "LAE": 24.2,
                                  "AE": 18.0, "Oracle": 51.4},
    ("Cars196", "car type"): {"Random": 3.5, "Raw": 25.1, "InDiReCT": 36.1, "Random U": 22.1, "LAE": 27.7,
                              "AE": 24.4, "Oracle": 73.8},
}


def ordering(means: dict[str, float]) -> str:
    """The methods from the lowest to the highest mean, e.g. ``"Random < Raw < InDiReCT"`` (NaN means left out)."""
    ranked = sorted((value, method) for method, value in means.items() if value == value)
    return " < ".join(method for _, method in ranked)


def orderings(results: pd.DataFrame, thesis_dataset: str, dataset: str, encoder: str,
              metric: str = "map_at_r") -> pd.DataFrame:
    """Per notion of ``dataset`` that Table 13.2 has under ``thesis_dataset`` (:data:`THESIS_MAP_AT_R`): the
    thesis' ordering of the methods by MAP@R, ours (means over seeds, same methods), and the pairs of methods
    whose order agrees (share of the pairs both have)."""
    rows = []
    part = results[(results.dataset == dataset) & (results.encoder == encoder)]
    for (name, notion), thesis in THESIS_MAP_AT_R.items():
        if name != thesis_dataset or notion not in set(part.notion):
            continue
        ours = part[part.notion == notion].groupby("method")[metric].mean()
        shared = [m for m in thesis if m in ours.index]
        pairs = [(a, b) for i, a in enumerate(shared) for b in shared[i + 1:] if thesis[a] != thesis[b]]
        agree = sum((thesis[a] < thesis[b]) == (ours[a] < ours[b]) for a, b in pairs)
        rows.append({"notion": notion, "thesis": ordering({m: thesis[m] for m in shared}),
                     "measured": ordering({m: float(ours[m]) for m in shared}),
                     "pairs in the thesis' order": f"{agree} of {len(pairs)}"})
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame, metric: str = "map_at_r") -> pd.DataFrame:
    """Mean of ``metric`` per (dataset, encoder, notion) and method, columns in :data:`METHODS` order."""
    means = results.groupby(["dataset", "encoder", "notion", "method"], sort=False)[metric].mean().unstack("method")
    return means[[m for m in METHODS if m in means.columns]]


# --- analyses ---------------------------------------------------------------------------------------------


def dimension_sweep(problems: list[Problem], config: Config, seeds,
                    methods=("InDiReCT", "Random U", "PCA", "LAE", "Oracle"), *, device="cpu") -> pd.DataFrame:
    """Fig. 13.4: :func:`evaluate_problems` for every r' of ``config.sweep_dims`` up to the encoder's dimension, all
    r' values, seeds and notions of one method in one batch."""
    return evaluate_problems(problems, config, seeds, methods=methods, dims=config.sweep_dims, device=device)


def prompt_count_sweep(problems: list[Problem], config: Config, seeds, *, dim: int | None = None,
                       device="cpu") -> pd.DataFrame:
    """Fig. 13.6: InDiReCT trained on a random subset of ``count`` prompts (a different subset per seed) for every
    ``count`` of ``config.prompt_counts`` (capped at the number of prompts), at r' = ``dim`` (``None``:
    :func:`reduced_dim`); MAP@R and Prec@1 per row. All fits in one batched call (:func:`fit_indirect_batch`)."""
    jobs, members = [], []
    for problem in problems:
        texts = np.asarray(problem.texts)
        r_prime = reduced_dim(config, problem.images.shape[1]) if dim is None else dim
        for count in sorted({min(c, len(texts)) for c in config.prompt_counts}):
            for seed in seeds:
                chosen = np.random.default_rng([seed, count]).choice(len(texts), size=count, replace=False)
                jobs.append((problem, count, seed, r_prime))
                members.append(Member(texts[chosen], r_prime, seed))
    fits = fit_indirect_batch(members, max_iterations=config.max_iterations, device=device,
                              min_improvement=config.min_improvement)
    return pd.DataFrame([{"dataset": p.dataset, "encoder": p.encoder, "notion": p.notion, "prompts": count,
                          "seed": seed, "dim": r_prime, "final_loss": fit.best_loss, "iterations": fit.iterations,
                          **indirect.retrieval_scores(fit(p.images), p.labels)}
                         for (p, count, seed, r_prime), fit in zip(jobs, fits)])


def tsne_views(embeddings: dict[str, np.ndarray], count: int, *, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """2-d t-SNE coordinates ``(count, 2)`` of the same ``count`` randomly chosen rows of each embedding (Fig. 13.2
    uses TriMap); returns the chosen row indices and ``{name: coordinates}``."""
    from sklearn.manifold import TSNE

    n = len(next(iter(embeddings.values())))
    chosen = np.sort(np.random.default_rng(seed).choice(n, size=min(count, n), replace=False))
    views = {}
    for name, values in embeddings.items():
        perplexity = float(min(30, max(2, (len(chosen) - 1) / 3)))
        views[name] = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                           metric="cosine").fit_transform(np.asarray(values, np.float64)[chosen])
    return chosen, views


def differentiable_image_tower(encoder):
    """``embed(x (B, 3, S, S) float 0..255) -> (B, D)``, differentiable in the pixels: the aligned model's whole
    image side (:meth:`~domainknowledge.models.encoders.aligned.AlignedEncoder.trainable_image_tower`, in eval
    mode) or an open_clip-style ``model.encode_image`` after the encoder's preprocessing."""
    if hasattr(encoder, "trainable_image_tower"):
        return encoder.trainable_image_tower().eval()
    if hasattr(encoder, "model") and hasattr(encoder.model, "encode_image"):
        model = encoder.model.eval()
        return lambda x: model.encode_image(encoder.preprocess(x))
    raise ValueError(f"encoder {encoder.name!r} has no differentiable image tower; use the aligned model, a "
                     "stand-in CLIP or an open_clip model for attribution maps")


def attribution_maps(encoder, images: np.ndarray, projections: dict[str, np.ndarray], *, steps: int) -> dict[str, np.ndarray]:
    """Fig. 13.3: Integrated Gradients (black baseline) of each embedding's similarity to its own value,
    ``s(x) = <f(x), f(x_0)>`` with ``f(x_0)`` fixed, with respect to the pixels, through the encoder's
    differentiable image tower (:func:`differentiable_image_tower`): ``f`` is the raw embedding for the key
    ``"Raw"`` and ``normalise(normalise(E(x)) U)`` (Eqs. 13.5-13.6) for every other key with ``U`` ``(D, r')``.

    ``images`` ``(B, S, S, 3)`` uint8. Returns ``{name: (B, S, S)}`` maps: the absolute attribution summed over
    colour channels, each image's map divided by its sum (so maps of different embeddings compare)."""
    from domainknowledge.principles.attribution import integrated_gradients

    tower = differentiable_image_tower(encoder)
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()

    def embed(x, matrix):
        features = torch.nn.functional.normalize(tower(x).float(), dim=-1)
        if matrix is not None:
            features = torch.nn.functional.normalize(features @ matrix, dim=-1)
        return features

    maps = {}
    for name, matrix in projections.items():
        matrix = None if matrix is None else torch.as_tensor(np.asarray(matrix), dtype=torch.float32)
        with torch.no_grad():
            reference = embed(pixels, matrix)

        values = []
        for i in range(len(pixels)):                               # one image at a time: the reference matches
            single = pixels[i:i + 1]
            reference_i = reference[i:i + 1]

            def forward_i(x, matrix=matrix, reference_i=reference_i):
                return (embed(x, matrix) * reference_i).sum(dim=1, keepdim=True)

            result = integrated_gradients(forward_i, single, 0, steps=steps, method="riemann_trapezoid")
            values.append(result.attributions[0][0].abs().sum(dim=0))
        stacked = torch.stack(values).numpy()
        maps[name] = stacked / np.maximum(stacked.sum(axis=(1, 2), keepdims=True), 1e-12)
    return maps


def world_object_masks(factors: pd.DataFrame, size: int) -> np.ndarray:
    """Approximate object masks ``(N, size, size)`` bool of captioned-world images: the disc of the object's radius
    around its centre (the generator's ``x``, ``y``, ``radius`` columns, fractions of the side)."""
    grid = (np.arange(size) + 0.5) / size
    px, py = np.meshgrid(grid, grid)
    x, y, r = (factors[c].to_numpy(float)[:, None, None] for c in ("x", "y", "radius"))
    return (px[None] - x) ** 2 + (py[None] - y) ** 2 <= r ** 2


def attribution_share(maps: dict[str, np.ndarray], masks: np.ndarray) -> pd.Series:
    """The mean share of each normalised attribution map ``(B, S, S)`` that falls inside ``masks`` ``(B, S, S)``."""
    return pd.Series({name: float((values * masks).sum(axis=(1, 2)).mean()) for name, values in maps.items()})


# --- figures ----------------------------------------------------------------------------------------------


def plot_dimension_sweep(sweep: pd.DataFrame, raw: dict[str, float], title: str | None = None):
    """Fig. 13.4: MAP@R mean ± sd over seeds against r' (log scale), one panel per notion, the raw embeddings as a
    dashed line (``raw``: ``{notion: MAP@R}``)."""
    import matplotlib.pyplot as plt

    notions = list(dict.fromkeys(sweep["notion"]))
    fig, axes = plt.subplots(1, len(notions), figsize=(3.6 * len(notions), 3.2), squeeze=False)
    for ax, notion in zip(axes[0], notions):
        part = sweep[sweep.notion == notion]
        for i, (method, group) in enumerate(part.groupby("method", sort=False)):
            stats = group.groupby("dim")["map_at_r"].agg(["mean", "std"]).fillna(0.0)
            ax.errorbar(stats.index, 100 * stats["mean"], yerr=100 * stats["std"], marker="o", ms=3, capsize=2,
                        label=method, color=f"C{i}")
        ax.axhline(100 * raw[notion], color="black", linestyle="--", linewidth=1, label="raw embeddings")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("r'")
        ax.set_title(notion, fontsize=10)
    axes[0, 0].set_ylabel("MAP@R (%)")
    axes[0, -1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_prompt_count_sweep(sweep: pd.DataFrame, raw: float, title: str | None = None):
    """Fig. 13.6: MAP@R and Prec@1 of InDiReCT (mean ± sd over prompt samples) against the number of prompts."""
    import matplotlib.pyplot as plt

    stats = sweep.groupby("prompts")[["map_at_r", "precision_at_1"]].agg(["mean", "std"]).fillna(0.0)
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.0))
    for ax, metric, label in zip(axes, ("map_at_r", "precision_at_1"), ("MAP@R (%)", "Prec@1 (%)")):
        ax.errorbar(stats.index, 100 * stats[(metric, "mean")], yerr=100 * stats[(metric, "std")], marker="o",
                    ms=3, capsize=2, label="InDiReCT")
        ax.axhline(100 * raw[metric], color="black", linestyle="--", linewidth=1, label="raw embeddings")
        ax.set_xlabel("number of prompts")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_views(views: dict[str, np.ndarray], labels: dict[str, np.ndarray], title: str | None = None):
    """Fig. 13.2: one t-SNE panel per view, points coloured by that view's notion labels (``labels[name]``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(views), figsize=(3.2 * len(views), 3.2), squeeze=False)
    for ax, (name, coordinates) in zip(axes[0], views.items()):
        values = np.asarray(labels[name])
        classes = list(dict.fromkeys(sorted(values)))
        cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
        for i, value in enumerate(classes):
            chosen = values == value
            ax.scatter(*coordinates[chosen].T, s=6, color=cmap(i % cmap.N), label=value if len(classes) <= 8 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if len(classes) <= 8:
            ax.legend(fontsize=6, markerscale=1.5, loc="best", frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_attribution_maps(images: np.ndarray, maps: dict[str, np.ndarray], reference: str = "Raw", title=None):
    """Fig. 13.3: the images, then per notion the difference of its normalised attribution map and the
    ``reference`` map (yellow: InDiReCT attends more, blue: the raw embedding attends more)."""
    import matplotlib.pyplot as plt

    notions = [name for name in maps if name != reference]
    fig, axes = plt.subplots(len(images), 1 + len(notions), figsize=(1.7 * (1 + len(notions)), 1.7 * len(images)),
                             squeeze=False)
    for row, image in enumerate(images):
        axes[row, 0].imshow(image)
        for col, name in enumerate(notions, start=1):
            difference = maps[name][row] - maps[reference][row]
            scale = float(np.abs(difference).max()) or 1.0
            axes[row, col].imshow(difference, cmap="cividis", vmin=-scale, vmax=scale)
            if row == 0:
                axes[row, col].set_title(f"{name}\nminus raw", fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig

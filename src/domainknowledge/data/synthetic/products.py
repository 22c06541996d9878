"""Products on backgrounds: a retrieval set in the image of Stanford Online Products, from real Fashion-MNIST items.

Kobs (2023) finds that metric-learning models trained on Stanford Online Products (SOP) lean on the image
background (Ch. 9) and collapse when it is exchanged (Ch. 11): the photos of one product tend to share a
setting, so the background identifies the product. This module builds the offline analogue, with the
background's information content as a knob:

* a **product** is one real Fashion-MNIST item (Xiao et al. 2017) with a colour of its own; it is shown in
  ``views_per_product`` views (scale, position, mirror, brightness) and is one class, as in SOP. Training and
  test products come from Fashion-MNIST's training and test splits, so the class sets are disjoint, as in the
  metric-learning protocol;
* every view has an **exact foreground mask**: the item's own pixels (the thesis computes masks with a
  salient-object detector, Sec. 11.1.2);
* each product has an **own background**; a view shows it with probability ``shortcut_rate`` (rho) and a
  random background otherwise. ``rho = 0`` is the Cars196 regime (the background says nothing about the
  class), ``rho = 1`` the extreme SOP regime (it says everything);
* for positive controls, ``shuffle_objects=True`` gives each view the object of a random product of the set:
  the class is then its background alone (with ``rho = 1``), while ``rho = 0`` leaves the object alone;
* three disjoint background banks (:data:`BANK_SOURCES`): ``scene`` (the settings the products are
  "photographed" in), ``augment`` (the thesis' second set of 100 backgrounds that BGAugment draws from in
  training) and ``corrupt`` (the 100 backgrounds of the test corruption ``I' = M * I + (1 - M) * B``).
  Each bank mixes crops of different real photos bundled with scikit-image and scikit-learn with procedural
  patterns of its own families, so no image, photo or pattern family is shared between banks.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from domainknowledge.data.bundled import load_fashion_mnist, load_photos

__all__ = ["BANK_SOURCES", "BANK_SIZE", "ProductImages", "background_bank", "bgaugment_transform",
           "corrupted_copies", "make_product_set", "replace_background"]

BANK_SOURCES: dict[str, dict[str, tuple[str, ...]]] = {
    "scene": {"photos": ("astronaut", "coffee", "rocket", "china", "brick", "page"),
              "patterns": ("gradient", "blobs")},
    "augment": {"photos": ("chelsea", "camera", "coins", "flower", "grass", "text"),
                "patterns": ("stripes", "checker")},
    "corrupt": {"photos": ("moon", "clock", "hubble_deep_field", "immunohistochemistry", "retina", "gravel"),
                "patterns": ("rings", "noise")},
}
BANK_SIZE = 100                 # Sec. 11.1: 100 backgrounds for the test corruption, 100 more for BGAugment
PHOTO_FRACTION = 0.6            # the rest of a bank are procedural patterns
MASK_THRESHOLD = 0.1            # an upsampled item pixel above 10 % of full intensity is foreground


@dataclass(frozen=True)
class ProductImages:
    """Views of products composited on backgrounds.

    ``images`` uint8 ``(N, S, S, 3)``; ``masks`` bool ``(N, S, S)``, True on the product; ``labels`` int64
    ``(N,)`` product index ``0 .. P-1`` (the retrieval class); ``categories`` int64 ``(N,)`` the item's
    Fashion-MNIST class; ``item_ids`` int64 ``(P,)`` each product's index in the Fashion-MNIST ``split``;
    ``own_background`` bool ``(N,)``: the view shows its product's own background; ``shortcut_rate`` the
    probability of that; ``object_products`` int64 ``(N,)`` the product whose object (item and colour) the view
    shows: its own label, unless the objects were shuffled across products.
    """

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    categories: np.ndarray
    item_ids: np.ndarray
    own_background: np.ndarray
    shortcut_rate: float
    split: str
    object_products: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def backgrounds_only(self) -> np.ndarray:
        """``(N, S, S, 3)`` uint8: the images with the products blacked out (what the background alone shows)."""
        return np.where(self.masks[..., None], 0, self.images).astype(np.uint8)


@lru_cache(maxsize=1)
def _bank_photos() -> dict[str, np.ndarray]:
    """Every bank's photos; ``load_photos`` adds scikit-learn's ``china`` and ``flower`` by itself."""
    names = sorted({name for bank in BANK_SOURCES.values() for name in bank["photos"]} - {"china", "flower"})
    return load_photos(names)


def _resize(image: np.ndarray, size: int, resample=Image.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), resample))


def _photo_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    height, width = photo.shape[:2]
    side = int(rng.uniform(0.25, 0.7) * min(height, width))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = _resize(np.ascontiguousarray(photo[top:top + side, left:left + side]), size)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 1.0)))


def _pattern(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One procedural background ``(S, S, 3)`` uint8 of the family ``kind``, two random colours."""
    v, u = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, np.pi)
    along = u * np.cos(angle) + v * np.sin(angle)
    if kind == "gradient":
        weight = np.clip(along / max(np.cos(angle) + np.sin(angle), 1e-6), 0, 1)
    elif kind == "blobs":
        centres, widths = rng.random((5, 2)), rng.uniform(0.08, 0.25, 5)
        field = sum(np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * w ** 2)) for (cx, cy), w in zip(centres, widths))
        weight = np.clip(field, 0, 1)
    elif kind == "stripes":
        weight = (np.sin(2 * np.pi * rng.uniform(3, 10) * along) > 0).astype(float)
    elif kind == "checker":
        cells = rng.integers(3, 9)
        weight = ((np.floor(u * cells) + np.floor(v * cells)) % 2).astype(float)
    elif kind == "rings":
        cx, cy = rng.random(2)
        weight = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(4, 12) * np.hypot(u - cx, v - cy))
    elif kind == "noise":
        coarse = rng.random((rng.integers(4, 9),) * 2)
        weight = _resize((255 * coarse).astype(np.uint8), size, Image.BICUBIC) / 255.0
    else:
        raise ValueError(f"unknown pattern family {kind!r}")
    first, second = _random_colour(rng), _random_colour(rng)
    image = first * (1 - weight[..., None]) + second * weight[..., None]
    return (255 * np.clip(image, 0, 1)).astype(np.uint8)


def background_bank(name: str, n: int = BANK_SIZE, *, image_size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` backgrounds ``(n, S, S, 3)`` uint8 from the bank ``name`` (a key of :data:`BANK_SOURCES`):
    a ``PHOTO_FRACTION`` of random square crops of the bank's real photos (random size and position, mirrored
    at random), the rest procedural patterns of the bank's own families. Seeded and deterministic."""
    if name not in BANK_SOURCES:
        raise ValueError(f"unknown background bank {name!r}; choose one of {sorted(BANK_SOURCES)}")
    if n < 1 or image_size < 8:
        raise ValueError(f"n must be >= 1 and image_size >= 8, got {n} and {image_size}")
    rng = np.random.default_rng([seed, sorted(BANK_SOURCES).index(name)])
    photos = [_bank_photos()[photo] for photo in BANK_SOURCES[name]["photos"]]
    patterns = BANK_SOURCES[name]["patterns"]
    bank = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for i in range(n):
        if rng.random() < PHOTO_FRACTION:
            bank[i] = _photo_crop(photos[rng.integers(len(photos))], image_size, rng)
        else:
            bank[i] = _pattern(patterns[rng.integers(len(patterns))], image_size, rng)
    return bank


def _product_colour(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.35, 0.95), rng.uniform(0.75, 1.0)))


def _view(item: np.ndarray, colour: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One view of an item ``(28, 28)`` uint8 on a transparent canvas: RGB float ``(S, S, 3)`` and mask."""
    side = max(8, int(round(rng.uniform(0.55, 0.85) * size)))
    intensity = _resize(item, side) / 255.0
    if rng.random() < 0.5:
        intensity = intensity[:, ::-1]
    top, left = rng.integers(0, size - side + 1, size=2)
    canvas = np.zeros((size, size))
    canvas[top:top + side, left:left + side] = intensity
    mask = canvas > MASK_THRESHOLD
    shade = np.clip(rng.uniform(0.85, 1.15) * (0.35 + 0.65 * canvas), 0, 1)
    return colour * shade[..., None], mask


def make_product_set(n_products: int, views_per_product: int, *, split: str = "train", seed: int = 0,
                     image_size: int = 64, shortcut_rate: float = 0.5, data_root=None,
                     random_backgrounds: int | None = None, shuffle_objects: bool = False,
                     scene_scale: float = 1.0) -> ProductImages:
    """``n_products`` products from Fashion-MNIST's ``split`` ("train" or "test"), ``views_per_product``
    views each, on ``image_size`` px backgrounds of the ``scene`` bank.

    Each product gets its own colour and own background; each view shows the own background with
    probability ``shortcut_rate`` and otherwise one of ``random_backgrounds`` shared scene backgrounds
    (default ``max(100, n_products)``). Views are ordered product by product. Fashion-MNIST is read with
    :func:`~domainknowledge.data.bundled.load_fashion_mnist` (``data_root`` as there).

    ``scene_scale`` > 1 draws every scene at ``round(scene_scale * image_size)`` px and shows a random
    ``image_size`` window of it in each view (seeded, from a generator of its own): the views of a product on
    its own background show the same place from shifted viewpoints, as SOP's photos of one product share a
    setting, rather than identical pixels (``scene_scale = 1``).

    ``shuffle_objects=True`` (a positive control): each view shows the object, item and colour, of a product
    drawn uniformly from the set (seeded), not its own, so the object carries no information about the view's
    class; the background keeps its rule. ``object_products`` records whose object each view shows.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test' (disjoint Fashion-MNIST items), got {split!r}")
    if not 0.0 <= shortcut_rate <= 1.0:
        raise ValueError(f"shortcut_rate is a probability, got {shortcut_rate}")
    if scene_scale < 1.0:
        raise ValueError(f"scene_scale is the scene's size in views (>= 1), got {scene_scale}")
    if n_products < 2 or views_per_product < 2:
        raise ValueError("retrieval needs at least 2 products with at least 2 views each, got "
                         f"{n_products} products and {views_per_product} views")
    items, categories = load_fashion_mnist(split, data_root=data_root)
    if n_products > len(items):
        raise ValueError(f"Fashion-MNIST's {split} split has {len(items)} items, asked for {n_products} products")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    item_ids = np.sort(rng.choice(len(items), size=n_products, replace=False))
    pool = random_backgrounds or max(BANK_SIZE, n_products)
    scene_size = max(image_size, int(round(scene_scale * image_size)))
    scene = background_bank("scene", n_products + pool, image_size=scene_size,
                            seed=seed * 2 + (0 if split == "train" else 1))
    windows = np.random.default_rng([seed, 0 if split == "train" else 1, 5]).integers(
        0, scene_size - image_size + 1, size=(n_products * views_per_product, 2))
    total = n_products * views_per_product
    images = np.empty((total, image_size, image_size, 3), dtype=np.uint8)
    masks = np.empty((total, image_size, image_size), dtype=bool)
    own = rng.random(total) < shortcut_rate
    labels = np.repeat(np.arange(n_products, dtype=np.int64), views_per_product)
    if shuffle_objects:             # a generator of its own, so that the unshuffled set's stream is unchanged
        control = np.random.default_rng([seed, 0 if split == "train" else 1, 3])
        shown = control.integers(n_products, size=total).astype(np.int64)
        colours = [_product_colour(control) for _ in range(n_products)]
    else:
        shown = labels
    for product in range(n_products):
        colour = None if shuffle_objects else _product_colour(rng)
        for view in range(views_per_product):
            index = product * views_per_product + view
            source = shown[index]
            foreground, mask = _view(items[item_ids[source]], colours[source] if shuffle_objects else colour,
                                     image_size, rng)
            background = scene[product] if own[index] else scene[n_products + rng.integers(pool)]
            top, left = windows[index]
            background = background[top:top + image_size, left:left + image_size]
            images[index] = np.where(mask[..., None], (255 * foreground).astype(np.uint8), background)
            masks[index] = mask
    return ProductImages(images, masks, labels, categories[item_ids][shown], item_ids.astype(np.int64), own,
                         float(shortcut_rate), split, shown)


def replace_background(images, masks, backgrounds):
    """``I' = M * I + (1 - M) * B`` (Sec. 11.1.1): keep the masked foreground, take the rest from ``backgrounds``.

    numpy ``images``/``backgrounds`` ``(N, S, S, 3)`` with ``masks`` ``(N, S, S)``, or torch ``(B, 3, S, S)``
    with masks ``(B, S, S)``; ``backgrounds`` may be one image for all. Returns the input's type and dtype.
    """
    if isinstance(images, torch.Tensor):
        masks = torch.as_tensor(masks, dtype=torch.bool, device=images.device)
        backgrounds = torch.as_tensor(backgrounds, device=images.device).to(images.dtype)
        if masks.shape != (images.shape[0],) + images.shape[2:]:
            raise ValueError(f"masks must have shape {(images.shape[0],) + tuple(images.shape[2:])}, got {tuple(masks.shape)}")
        return torch.where(masks[:, None], images, backgrounds.expand_as(images))
    images, masks = np.asarray(images), np.asarray(masks, dtype=bool)
    if masks.shape != images.shape[:-1]:
        raise ValueError(f"masks must have shape {images.shape[:-1]}, got {masks.shape}")
    return np.where(masks[..., None], images, np.broadcast_to(np.asarray(backgrounds), images.shape)).astype(images.dtype)


def corrupted_copies(products: ProductImages, *, repeats: int = 5, bank_size: int = BANK_SIZE,
                     seed: int = 0) -> list[np.ndarray]:
    """The corrupted test sets of Sec. 11.1.1: ``repeats`` copies of ``products.images``, each view's
    background replaced by a random image of the ``corrupt`` bank (``bank_size`` backgrounds). Returns a list
    of ``(N, S, S, 3)`` uint8 arrays."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    bank = background_bank("corrupt", bank_size, image_size=products.images.shape[1], seed=seed)
    rng = np.random.default_rng([seed, 2])
    return [replace_background(products.images, products.masks, bank[rng.integers(bank_size, size=len(products))])
            for _ in range(repeats)]


def bgaugment_transform(masks, *, bank_size: int = BANK_SIZE, seed: int = 0,
                        bank: np.ndarray | None = None) -> Callable[[torch.Tensor, np.ndarray], torch.Tensor]:
    """BGAugment (Sec. 11.1.2) as a ``batch_transform`` for
    :func:`domainknowledge.metric_learning.train_embedding_model`: every time a batch is drawn, each image's
    background is replaced by a random image of the ``augment`` bank (or of ``bank``, ``(K, S, S, 3)``
    uint8), using the training set's ``masks`` ``(N, S, S)`` at the batch's ``indices``.

    The returned ``transform(images (B, 3, S, S) uint8, indices (B,)) -> (B, 3, S, S)`` draws from its own
    generator seeded by ``seed``, so a training run is reproducible.
    """
    masks = torch.as_tensor(np.array(masks, dtype=bool))          # a copy: the masks may be a read-only memmap
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, S, S), got {tuple(masks.shape)}")
    if bank is None:
        bank = background_bank("augment", bank_size, image_size=masks.shape[1], seed=seed)
    bank = torch.from_numpy(np.ascontiguousarray(np.asarray(bank).transpose(0, 3, 1, 2)))
    if bank.shape[-2:] != masks.shape[1:]:
        raise ValueError(f"bank images are {tuple(bank.shape[-2:])} px but masks are {tuple(masks.shape[1:])}")
    generator = torch.Generator().manual_seed(seed)

    def transform(images: torch.Tensor, indices) -> torch.Tensor:
        chosen = bank[torch.randint(len(bank), (len(images),), generator=generator)]
        return replace_background(images, masks[torch.as_tensor(np.asarray(indices))], chosen.to(images.dtype))

    return transform

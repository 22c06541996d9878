"""Aesthetic-aware image distortions of Kobs (2023), Table 16.1, re-implemented in NumPy, SciPy and Pillow.

The thesis applies *technical* distortions with imagenet-c (Hendrycks and Dietterich 2019), *style*
distortions with the darktable photo editor and *composition* distortions with Pillow (Sec. 16.2.1). None of
those tools is used here: every distortion is one small function below, written from the tools' documented
behaviour, with a continuous parameter. :data:`CATALOGUE` maps each distortion's *intensity levels* to that
parameter:

* technical (levels 0..5, imagenet-c's severities; the parameters of imagenet-c are quoted for 224 px images
  and spatial ones are scaled with the image size): JPEG compression, defocus blur, motion blur, pixelate,
  Gaussian noise, impulse noise;
* style (levels -5..+5, the thesis' darktable ranges of Table 16.1): brightness, contrast, saturation,
  exposure, shadows, highlights, temperature, tint, vibrance;
* composition (levels -5..+5): rotation, horizontal crop, vertical crop, left-diagonal crop,
  right-diagonal crop, image ratio. As in Sec. 16.2.1, a crop or ratio change is resized and padded back to a
  square so that the frame is not cropped a second time.

Level 0 is the original image for every distortion (:math:`\\mathbf{I}^{(d)}_0 = \\mathbf{I}`).
:func:`normalised_intensity` maps a level to the regression target of Eq. 16.3: non-negative levels to
[0, 1], non-positive ones to [-1, 0].

Images are ``uint8`` arrays ``(H, W, 3)`` (RGB); every distortion returns an array of the same shape and
dtype. Randomness (noise, JPEG is deterministic) comes from an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["ASPECTS", "CATALOGUE", "DISTORTION_NAMES", "Distortion", "apply_distortion", "catalogue_table",
           "aspect_names", "class_within_aspect", "distortion_index", "distortion_levels", "normalised_intensity", "check_image", "rms_contrast",
           "luminance"]

ASPECTS = ("technical", "style", "composition")
REFERENCE_SIZE = 224   # imagenet-c's spatial parameters are given for 224 x 224 images


# --- helpers ------------------------------------------------------------------------------------------


def check_image(image) -> np.ndarray:
    """Validate an RGB image: a ``uint8`` array ``(H, W, 3)`` with ``H, W >= 8``; returns it as an array."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"an image must be an RGB array of shape (H, W, 3), got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"an image must have dtype uint8 (values 0..255), got {array.dtype}")
    if min(array.shape[:2]) < 8:
        raise ValueError(f"an image must be at least 8 x 8 px, got {array.shape[0]} x {array.shape[1]}")
    return array


def _to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def luminance(image) -> np.ndarray:
    """Rec. 709 luma ``(H, W)`` in [0, 1] of a ``uint8`` RGB image ``(H, W, 3)`` (or of floats in [0, 1])."""
    values = _to_float(image) if np.asarray(image).dtype == np.uint8 else np.asarray(image, dtype=np.float32)
    return values @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def rms_contrast(image) -> float:
    """RMS contrast: the standard deviation of the luma of an RGB image ``(H, W, 3)``, in [0, 0.5]."""
    return float(luminance(image).std())


def _srgb_to_linear(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(values: np.ndarray) -> np.ndarray:
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.0031308, 12.92 * values, 1.055 * values ** (1 / 2.4) - 0.055)


def _scaled(length: float, image: np.ndarray) -> float:
    """A length given for 224 px images, scaled to this image's shorter side."""
    return length * min(image.shape[:2]) / REFERENCE_SIZE


def _resize(image: np.ndarray, height: int, width: int, resample=Image.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((max(1, width), max(1, height)), resample))


def _fit_and_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize keeping the aspect ratio so that the image fits ``height x width``, then pad with black (centred)."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = _resize(image, new_h, new_w, Image.LANCZOS)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas


# --- technical distortions (imagenet-c severities) ------------------------------------------------------


def jpeg_compression(image, quality: int, rng=None) -> np.ndarray:
    """Encode and decode as JPEG with the given ``quality`` (1..100; 100 and above: the original)."""
    image = check_image(image)
    if quality >= 100:
        return image.copy()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def defocus_blur(image, radius: float, rng=None) -> np.ndarray:
    """Convolve with a disc of ``radius`` px (as imagenet-c, with a mild Gaussian alias filter); 0: original."""
    image = check_image(image)
    if radius <= 0:
        return image.copy()
    extent = int(np.ceil(radius))
    y, x = np.mgrid[-extent:extent + 1, -extent:extent + 1]
    kernel = ((x ** 2 + y ** 2) <= radius ** 2 + 0.5).astype(np.float32)
    kernel = ndimage.gaussian_filter(kernel, 0.5 * radius / 3 + 1e-6)
    kernel /= kernel.sum()
    values = _to_float(image)
    out = np.stack([ndimage.convolve(values[..., c], kernel, mode="reflect") for c in range(3)], axis=-1)
    return _to_uint8(out)


def motion_blur(image, length: float, rng=None, angle: float | None = None) -> np.ndarray:
    """Average along a line of ``length`` px at ``angle`` degrees (random in [-45, 45] from ``rng``); 0: original."""
    image = check_image(image)
    if length <= 0:
        return image.copy()
    if angle is None:
        angle = float((rng or np.random.default_rng(0)).uniform(-45, 45))
    extent = int(np.ceil(length / 2))
    size = 2 * extent + 1
    kernel = np.zeros((size, size), dtype=np.float32)
    theta = np.deg2rad(angle)
    for t in np.linspace(-length / 2, length / 2, max(2, int(np.ceil(4 * length)))):
        kernel[int(round(extent - t * np.sin(theta))), int(round(extent + t * np.cos(theta)))] = 1.0
    kernel /= kernel.sum()
    values = _to_float(image)
    out = np.stack([ndimage.convolve(values[..., c], kernel, mode="reflect") for c in range(3)], axis=-1)
    return _to_uint8(out)


def pixelate(image, factor: float, rng=None) -> np.ndarray:
    """Downsample by ``factor`` (box filter) and upsample back (nearest), as imagenet-c; factor 1: original."""
    image = check_image(image)
    if factor >= 1:
        return image.copy()
    h, w = image.shape[:2]
    small = _resize(image, max(1, round(h * factor)), max(1, round(w * factor)), Image.BOX)
    return _resize(small, h, w, Image.NEAREST)


def gaussian_noise(image, sigma: float, rng=None) -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``sigma`` (image in [0, 1]); 0: original."""
    image = check_image(image)
    if sigma <= 0:
        return image.copy()
    rng = rng or np.random.default_rng(0)
    return _to_uint8(_to_float(image) + rng.normal(0.0, sigma, image.shape).astype(np.float32))


def impulse_noise(image, amount: float, rng=None) -> np.ndarray:
    """Salt-and-pepper noise: a fraction ``amount`` of the pixel values set to 0 or 255 (per channel); 0: original."""
    image = check_image(image)
    if amount <= 0:
        return image.copy()
    rng = rng or np.random.default_rng(0)
    out = image.copy()
    hit = rng.random(image.shape) < amount
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)
    return out


# --- style distortions (darktable-like colour correction) ------------------------------------------------


def brightness(image, amount: float, rng=None) -> np.ndarray:
    """Shift all values by ``0.4 * amount`` (``amount`` in [-1, 1], clipped); raises mean luma monotonically.

    Clipping at 0 and 1 flattens the shadows (``amount < 0``) or the highlights (``amount > 0``), as a
    strong brightness change does in an editor.
    """
    image = check_image(image)
    return _to_uint8(_to_float(image) + 0.4 * float(amount))


def contrast(image, amount: float, rng=None) -> np.ndarray:
    """Scale deviations from the mean luma by ``3 ** amount`` (``amount`` in [-1, 1]; 0: original)."""
    image = check_image(image)
    values = _to_float(image)
    mean = luminance(values).mean()
    return _to_uint8(mean + (values - mean) * 3.0 ** float(amount))


def saturation(image, amount: float, rng=None) -> np.ndarray:
    """Blend with the grey (luma) image: factor ``1 + amount``; -1: grey, 0: original, +1: double saturation."""
    image = check_image(image)
    values = _to_float(image)
    grey = luminance(values)[..., None]
    return _to_uint8(grey + (values - grey) * (1.0 + float(amount)))


def exposure(image, stops: float, rng=None) -> np.ndarray:
    """Multiply linear-light values by ``2 ** stops`` (exposure in EV, [-3, 3] in Table 16.1)."""
    image = check_image(image)
    linear = _srgb_to_linear(_to_float(image)) * 2.0 ** float(stops)
    return _to_uint8(_linear_to_srgb(linear))


def shadows(image, amount: float, rng=None) -> np.ndarray:
    """Lift (``amount > 0``) or deepen the dark tones, weight ``(1 - luma)^2``; ``amount`` in [-100, 100]."""
    image = check_image(image)
    values = _to_float(image)
    weight = (1.0 - luminance(values))[..., None] ** 2
    return _to_uint8(values + 0.35 * float(amount) / 100.0 * weight)


def highlights(image, amount: float, rng=None) -> np.ndarray:
    """Brighten (``amount > 0``) or recover the bright tones, weight ``luma^2``; ``amount`` in [-100, 100]."""
    image = check_image(image)
    values = _to_float(image)
    weight = luminance(values)[..., None] ** 2
    return _to_uint8(values + 0.35 * float(amount) / 100.0 * weight)


def blackbody_rgb(kelvin: float) -> np.ndarray:
    """Approximate sRGB colour ``(3,)`` in [0, 1] of a black body at ``kelvin`` (Tanner Helland's fit)."""
    t = float(kelvin) / 100.0
    red = 1.0 if t <= 66 else np.clip(329.698727446 * (t - 60) ** -0.1332047592 / 255, 0, 1)
    green = (np.clip((99.4708025861 * np.log(t) - 161.1195681661) / 255, 0, 1) if t <= 66
             else np.clip(288.1221695283 * (t - 60) ** -0.0755148492 / 255, 0, 1))
    blue = 1.0 if t >= 66 else (0.0 if t <= 19 else np.clip((138.5177312231 * np.log(t - 10) - 305.0447927307) / 255, 0, 1))
    return np.array([red, green, blue], dtype=np.float32)


def temperature(image, kelvin: float, rng=None) -> np.ndarray:
    """Render as lit by ``kelvin`` instead of 6,500 K: channel gains ``rgb(kelvin) / rgb(6500)`` in linear light.

    Low temperatures (2,000 K) give an orange cast, high ones (18,000 K) a blue cast; 6,500 K is the original.
    """
    image = check_image(image)
    gains = blackbody_rgb(kelvin) / blackbody_rgb(6500.0)
    linear = _srgb_to_linear(_to_float(image)) * gains / gains.mean()
    return _to_uint8(_linear_to_srgb(linear))


def tint(image, factor: float, rng=None) -> np.ndarray:
    """Green-magenta tint: multiply the green channel by ``factor`` in linear light (1: original)."""
    image = check_image(image)
    linear = _srgb_to_linear(_to_float(image))
    linear[..., 1] *= float(factor)
    return _to_uint8(_linear_to_srgb(linear))


def vibrance(image, amount: float, rng=None) -> np.ndarray:
    """Saturation change weighted towards muted colours: factor ``1 + amount/100 * (1 - s)``, ``s`` = chroma.

    ``amount`` in [-100, 100]; positive values boost the weakly saturated pixels most, negative ones mute them.
    """
    image = check_image(image)
    values = _to_float(image)
    chroma = (values.max(axis=-1) - values.min(axis=-1))[..., None]
    grey = luminance(values)[..., None]
    return _to_uint8(grey + (values - grey) * (1.0 + float(amount) / 100.0 * (1.0 - chroma)))


# --- composition distortions (Pillow) ------------------------------------------------------------------


def rotation(image, degrees: float, rng=None) -> np.ndarray:
    """Rotate by ``degrees`` about the centre (bilinear, black corners, frame kept); 0: original."""
    image = check_image(image)
    if degrees == 0:
        return image.copy()
    return np.asarray(Image.fromarray(image).rotate(float(degrees), resample=Image.BILINEAR, fillcolor=(0, 0, 0)))


def _crop(image: np.ndarray, keep_y: float, keep_x: float, anchor_y: float, anchor_x: float) -> np.ndarray:
    """Keep fractions of the height/width; anchors 0 = top/left edge, 1 = bottom/right edge; then fit and pad."""
    h, w = image.shape[:2]
    new_h, new_w = max(1, round(h * keep_y)), max(1, round(w * keep_x))
    top, left = round((h - new_h) * anchor_y), round((w - new_w) * anchor_x)
    return _fit_and_pad(image[top:top + new_h, left:left + new_w], h, w)


def horizontal_crop(image, amount: float, rng=None) -> np.ndarray:
    """Cut ``|amount|`` of the width (``amount`` in [-0.5, 0.5]) from the right (< 0: keep the left part) or left."""
    image = check_image(image)
    if amount == 0:
        return image.copy()
    return _crop(image, 1.0, 1.0 - abs(amount), 0.5, 0.0 if amount < 0 else 1.0)


def vertical_crop(image, amount: float, rng=None) -> np.ndarray:
    """Cut ``|amount|`` of the height from the bottom (< 0: keep the top part) or the top (> 0)."""
    image = check_image(image)
    if amount == 0:
        return image.copy()
    return _crop(image, 1.0 - abs(amount), 1.0, 0.0 if amount < 0 else 1.0, 0.5)


def left_diagonal_crop(image, amount: float, rng=None) -> np.ndarray:
    """Keep ``1 - |amount|`` of both sides, anchored top-left (< 0) or bottom-right (> 0)."""
    image = check_image(image)
    if amount == 0:
        return image.copy()
    anchor = 0.0 if amount < 0 else 1.0
    return _crop(image, 1.0 - abs(amount), 1.0 - abs(amount), anchor, anchor)


def right_diagonal_crop(image, amount: float, rng=None) -> np.ndarray:
    """Keep ``1 - |amount|`` of both sides, anchored top-right (< 0) or bottom-left (> 0)."""
    image = check_image(image)
    if amount == 0:
        return image.copy()
    return _crop(image, 1.0 - abs(amount), 1.0 - abs(amount), 0.0 if amount < 0 else 1.0, 1.0 if amount < 0 else 0.0)


def image_ratio(image, amount: float, rng=None) -> np.ndarray:
    """Stretch the width (``amount > 0``) or the height (``< 0``) by ``1 + |amount|``, then fit and pad to the frame."""
    image = check_image(image)
    if amount == 0:
        return image.copy()
    h, w = image.shape[:2]
    stretch = 1.0 + abs(amount)
    new_h, new_w = (h, round(w * stretch)) if amount > 0 else (round(h * stretch), w)
    return _fit_and_pad(_resize(image, new_h, new_w, Image.BILINEAR), h, w)


# --- the catalogue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distortion:
    """One row of Table 16.1: ``function(image, parameter, rng)`` and the parameter of each intensity level.

    ``levels`` are the intensity values ``V^(d)`` (integers, 0 included); ``parameters[k]`` is the function's
    parameter at ``levels[k]``. ``spatial`` parameters are lengths for 224 px images and are scaled to the
    image size.
    """

    name: str
    aspect: str
    function: Callable
    levels: tuple[int, ...]
    parameters: tuple[float, ...]
    spatial: bool = False
    description: str = ""

    def parameter(self, level: int, image_size: int = REFERENCE_SIZE) -> float:
        if level not in self.levels:
            raise ValueError(f"intensity {level!r} is out of range for {self.name!r}: allowed levels are "
                             f"{min(self.levels)}..{max(self.levels)}")
        value = self.parameters[self.levels.index(level)]
        return value * image_size / REFERENCE_SIZE if self.spatial else value


def _symmetric(maximum: float) -> tuple[float, ...]:
    return tuple(maximum * level / 5 for level in range(-5, 6))


TECHNICAL_LEVELS = tuple(range(0, 6))
SIGNED_LEVELS = tuple(range(-5, 6))

CATALOGUE: tuple[Distortion, ...] = (
    # technical: imagenet-c severities 1..5 (level 0 = original)
    Distortion("jpeg_compression", "technical", jpeg_compression, TECHNICAL_LEVELS, (100, 25, 18, 15, 10, 7),
               description="JPEG quality 25, 18, 15, 10, 7"),
    Distortion("defocus_blur", "technical", defocus_blur, TECHNICAL_LEVELS, (0, 3, 4, 6, 8, 10), spatial=True,
               description="disc radius 3, 4, 6, 8, 10 px at 224 px"),
    Distortion("motion_blur", "technical", motion_blur, TECHNICAL_LEVELS, (0, 10, 15, 15, 15, 20), spatial=True,
               description="line length 10, 15, 15, 15, 20 px at 224 px, random angle"),
    Distortion("pixelate", "technical", pixelate, TECHNICAL_LEVELS, (1.0, 0.6, 0.5, 0.4, 0.3, 0.25),
               description="downsampling factor 0.6, 0.5, 0.4, 0.3, 0.25"),
    Distortion("gaussian_noise", "technical", gaussian_noise, TECHNICAL_LEVELS, (0, 0.08, 0.12, 0.18, 0.26, 0.38),
               description="noise sigma 0.08, 0.12, 0.18, 0.26, 0.38"),
    Distortion("impulse_noise", "technical", impulse_noise, TECHNICAL_LEVELS, (0, 0.03, 0.06, 0.09, 0.17, 0.27),
               description="salt-and-pepper fraction 0.03, 0.06, 0.09, 0.17, 0.27"),
    # style: Table 16.1's darktable ranges, five levels each way
    Distortion("brightness", "style", brightness, SIGNED_LEVELS, _symmetric(1.0), description="-1.0, -0.8, ..., 1.0"),
    Distortion("contrast", "style", contrast, SIGNED_LEVELS, _symmetric(1.0), description="-1.0, -0.8, ..., 1.0"),
    Distortion("saturation", "style", saturation, SIGNED_LEVELS, _symmetric(1.0), description="-1.0, -0.8, ..., 1.0"),
    Distortion("exposure", "style", exposure, SIGNED_LEVELS, _symmetric(3.0), description="-3.0, -2.4, ..., 3.0 EV"),
    Distortion("shadows", "style", shadows, SIGNED_LEVELS, _symmetric(100.0), description="-100, -80, ..., 100"),
    Distortion("highlights", "style", highlights, SIGNED_LEVELS, _symmetric(100.0), description="-100, -80, ..., 100"),
    Distortion("temperature", "style", temperature, SIGNED_LEVELS,
               (2000, 3000, 4000, 5000, 6000, 6500, 7000, 8000, 10000, 14000, 18000),
               description="2,000 ... 18,000 K (6,500 K = original)"),
    Distortion("tint", "style", tint, SIGNED_LEVELS, tuple(1.0 + 0.05 * level for level in range(-5, 6)),
               description="0.75, 0.80, ..., 1.25"),
    Distortion("vibrance", "style", vibrance, SIGNED_LEVELS, _symmetric(100.0), description="-100, -80, ..., 100"),
    # composition: Pillow, five levels each way
    Distortion("rotation", "composition", rotation, SIGNED_LEVELS, _symmetric(15.0), description="-15 ... 15 degrees"),
    Distortion("horizontal_crop", "composition", horizontal_crop, SIGNED_LEVELS, _symmetric(0.5),
               description="cut 10 ... 50 % of the width (left or right)"),
    Distortion("vertical_crop", "composition", vertical_crop, SIGNED_LEVELS, _symmetric(0.5),
               description="cut 10 ... 50 % of the height (top or bottom)"),
    Distortion("left_diagonal_crop", "composition", left_diagonal_crop, SIGNED_LEVELS, _symmetric(0.5),
               description="keep 90 ... 50 % of both sides, top-left or bottom-right"),
    Distortion("right_diagonal_crop", "composition", right_diagonal_crop, SIGNED_LEVELS, _symmetric(0.5),
               description="keep 90 ... 50 % of both sides, top-right or bottom-left"),
    Distortion("image_ratio", "composition", image_ratio, SIGNED_LEVELS, _symmetric(1.0),
               description="stretch width (+) or height (-) by 1.2 ... 2.0, then fit and pad"),
)
DISTORTION_NAMES = tuple(d.name for d in CATALOGUE)
_BY_NAME = {d.name: d for d in CATALOGUE}


def _distortion(name: str) -> Distortion:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown distortion {name!r}; the distortions of Table 16.1 are: "
                         f"{', '.join(DISTORTION_NAMES)}") from None


def distortion_index(name: str) -> int:
    """Position of a distortion in :data:`CATALOGUE` (the regression output index of Eq. 16.3)."""
    _distortion(name)
    return DISTORTION_NAMES.index(name)


def distortion_levels(name: str) -> tuple[int, ...]:
    """The intensity levels ``V^(d)`` of a distortion, 0 included."""
    return _distortion(name).levels


def aspect_names(aspect: str) -> tuple[str, ...]:
    """The distortions of one aspect (``technical``, ``style``, ``composition``) in catalogue order: ``D_a``."""
    if aspect not in ASPECTS:
        raise ValueError(f"unknown aspect {aspect!r}; choose one of {ASPECTS}")
    return tuple(d.name for d in CATALOGUE if d.aspect == aspect)


def class_within_aspect(name: str) -> tuple[int, int]:
    """``(aspect index, class index within the aspect)`` of a distortion: the targets of Eq. 16.2's heads."""
    distortion = _distortion(name)
    return ASPECTS.index(distortion.aspect), aspect_names(distortion.aspect).index(name)


def normalised_intensity(name: str, level: int) -> float:
    """``norm(i)`` of Eq. 16.3: positive levels divided by the largest level, negative ones by ``|smallest|``.

    Non-negative intensities land in [0, 1], non-positive ones in [-1, 0]; level 0 gives 0.
    """
    levels = distortion_levels(name)
    if level not in levels:
        raise ValueError(f"intensity {level!r} is out of range for {name!r}: allowed levels are "
                         f"{min(levels)}..{max(levels)}")
    if level > 0:
        return level / max(levels)
    if level < 0:
        return level / abs(min(levels))
    return 0.0


def apply_distortion(image, name: str, level: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Apply distortion ``name`` at intensity ``level`` to a ``uint8`` image ``(H, W, 3)``; same shape and dtype.

    Level 0 returns a copy of the image. ``rng`` drives the random parts (noise, motion-blur angle).
    """
    image = check_image(image)
    distortion = _distortion(name)
    parameter = distortion.parameter(level, min(image.shape[:2]))
    if level == 0:
        return image.copy()
    return distortion.function(image, parameter, rng=rng if rng is not None else np.random.default_rng(0))


def catalogue_table():
    """Table 16.1 as a ``pandas.DataFrame``: aspect, distortion, levels and the parameters used here."""
    import pandas as pd

    return pd.DataFrame([{"aspect": d.aspect, "distortion": d.name,
                          "levels": f"{min(d.levels):+d} ... {max(d.levels):+d}" if min(d.levels) < 0 else "0 ... 5",
                          "parameters": d.description} for d in CATALOGUE])

"""A built image-retrieval benchmark: distorted views of known sources on distracting backgrounds.

Each source is a scikit-image photograph or a procedural texture
(`ops.render.procedural_backgrounds`). Each view of a source is a random
square crop of it, randomly flipped, rotated by a few degrees and colour
jittered (brightness, contrast, saturation, hue: `ops.color`), then pasted at
a random position onto a random crop of a *distracting* background (other
photographs and procedural textures, never a source). The paste mask comes
with every view, so retrieval can be scored with the background masked out,
with no mask, or with a mask computed from features.

A query's relevant items are the other views of its own source; with N
sources and V views each, a random ranking scores a mean average precision of
about (V - 1) / (N V - 1).

Everything is a pure function of the seed (NumPy on the host, no download).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from neural_synth import io
from neural_synth.ops import color, render

SOURCE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass")
DISTRACTOR_PHOTOS = (
    "camera",
    "coins",
    "gravel",
    "moon",
    "page",
    "text",
    "retina",
    "hubble_deep_field",
)
PHOTO_SIDE = 384  # Longest side the photographs are loaded at.
TEXTURE_SIDE = 256
NUM_DISTRACTOR_TEXTURES = 4
_procedural = jax.jit(render.procedural_backgrounds, static_argnums=(1, 2))  # One compilation.


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """Views [N, S, S, 3] in [0, 1], paste masks [N, S, S] in {0, 1}, source labels [N]."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    source_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Jitter:
    """Ranges of the per-view distortions (each drawn uniformly in +- the value)."""

    max_rotation: float = 12.0  # degrees
    brightness: float = 0.08
    contrast: float = 0.15  # factor 1 +- this
    saturation: float = 0.2  # factor 1 +- this
    hue: float = 0.15  # radians


def _textures(num: int, seed: int) -> list[np.ndarray]:
    """`num` procedural textures [TEXTURE_SIDE, TEXTURE_SIDE, 3] (noise, stripes or blobs)."""
    if num == 0:
        return []
    return list(np.asarray(_procedural(jax.random.key(seed), num, TEXTURE_SIDE)))


@jax.jit
def _color_jitter(image: jax.Array, amounts: jax.Array) -> jax.Array:
    """Brightness, contrast, saturation and hue changes of [1, H, W, 3] by `amounts` [4]."""
    x = color.adjust_brightness(image, amounts[0])
    x = color.adjust_contrast(x, 1.0 + amounts[1])
    x = color.adjust_saturation(x, 1.0 + amounts[2])
    return color.adjust_hue(x, amounts[3])


def _banks(photos, num_textures: int, seed: int) -> tuple[list, tuple, list]:
    """(source images, source names, distractor images); textures drawn in one call."""
    textures = _textures(num_textures + NUM_DISTRACTOR_TEXTURES, seed)
    sources = [io.sample_image(n, max_side=PHOTO_SIDE) for n in photos] + textures[:num_textures]
    names = tuple(photos) + tuple(f"texture{i}" for i in range(num_textures))
    distractors = [io.sample_image(n, max_side=PHOTO_SIDE) for n in DISTRACTOR_PHOTOS]
    return sources, names, distractors + textures[num_textures:]


def _crop(image: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    if min(h, w) < size:
        raise ValueError(f"An image of {w}x{h} px is smaller than the crop size {size}.")
    y, x = rng.integers(h - size + 1), rng.integers(w - size + 1)
    return image[y : y + size, x : x + size]


def _jittered_object(
    source: np.ndarray, rng: np.random.Generator, side: int, jitter: Jitter
) -> np.ndarray:
    """A side x side crop of `source`: flipped, rotated, colour jittered."""
    margin = int(np.ceil(side * 0.21))  # Room for rotations up to ~12 degrees.
    patch = _crop(source, rng, side + 2 * margin)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    angle = rng.uniform(-jitter.max_rotation, jitter.max_rotation)
    patch = ndimage.rotate(patch, angle, axes=(1, 0), reshape=False, order=1, mode="reflect")
    patch = patch[margin : margin + side, margin : margin + side]
    ranges = np.array([jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue])
    amounts = (ranges * rng.uniform(-1.0, 1.0, 4)).astype(np.float32)
    return np.asarray(_color_jitter(jnp.asarray(np.clip(patch, 0.0, 1.0))[None], amounts)[0])


def build_benchmark(
    *,
    photos=SOURCE_PHOTOS,
    num_textures: int = 3,
    views_per_source: int = 4,
    size: int = 128,
    object_fraction: float = 0.5,
    jitter: Jitter = Jitter(),
    seed: int = 0,
) -> Benchmark:
    """Builds the benchmark: len(photos) + num_textures sources, `views_per_source` views each.

    Args:
      photos: scikit-image sample names used as sources.
      num_textures: procedural texture sources added to the photos.
      views_per_source: V views per source (>= 2, so every query has a match).
      size: S, the side of every view.
      object_fraction: side of the pasted object as a fraction of S (the rest
        of the view is distracting background).
      jitter: ranges of the distortions.
      seed: everything is a function of it.
    """
    if views_per_source < 2 or not 0.1 <= object_fraction <= 1.0:
        raise ValueError("Need views_per_source >= 2 and object_fraction in [0.1, 1].")
    rng = np.random.default_rng(seed)
    sources, names, distractors = _banks(photos, num_textures, seed)
    side = int(round(object_fraction * size))
    images, masks, labels = [], [], []
    for label, source in enumerate(sources):
        for _ in range(views_per_source):
            view = _crop(distractors[rng.integers(len(distractors))], rng, size).copy()
            mask = np.zeros((size, size), np.float32)
            y, x = rng.integers(size - side + 1), rng.integers(size - side + 1)
            view[y : y + side, x : x + side] = _jittered_object(source, rng, side, jitter)
            mask[y : y + side, x : x + side] = 1.0
            images.append(view)
            masks.append(mask)
            labels.append(label)
    return Benchmark(np.stack(images), np.stack(masks), np.asarray(labels), names)

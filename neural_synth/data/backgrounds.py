"""Background images for rendering markers: random crops of natural images.

Sources (`source` strings, as in configs):
  'skimage'            the photographs bundled with scikit-image (default; no download)
  'folder:/path'       every image Pillow reads under a folder
  'tfds:NAME[:SPLIT]'  a tensorflow-datasets dataset already prepared in the local
                       data dir (never downloaded: download=False)

The bank holds a few images in memory; crops are drawn with NumPy on the host
from a per-step generator, so the stream is reproducible from (seed, step).
"""

import os

import numpy as np

from neural_synth import io

SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "coins",
    "moon",
    "page",
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_bank(source: str, *, max_side: int, max_images: int = 64) -> list[np.ndarray]:
    """Loads up to `max_images` float32 [H, W, 3] images, longest side `max_side`."""
    if source == "skimage":
        return [io.sample_image(n, max_side=max_side) for n in SKIMAGE_PHOTOS[:max_images]]
    if source.startswith("folder:"):
        return _folder_bank(source[len("folder:") :], max_side, max_images)
    if source.startswith("tfds:"):
        return _tfds_bank(source[len("tfds:") :], max_side, max_images)
    raise ValueError(
        f"Unknown background source {source!r}; use 'skimage', "
        "'folder:/path' or 'tfds:NAME[:SPLIT]'."
    )


def _folder_bank(folder: str, max_side: int, max_images: int) -> list[np.ndarray]:
    paths = sorted(
        os.path.join(root, f)
        for root, _, files in os.walk(folder)
        for f in files
        if f.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not paths:
        raise ValueError(f"No images found under background folder {folder!r}.")
    return [io.load_image(p, max_side=max_side) for p in paths[:max_images]]


def _tfds_bank(spec: str, max_side: int, max_images: int) -> list[np.ndarray]:
    import tensorflow_datasets as tfds  # Lazy: heavy import, optional source.

    name, _, split = spec.partition(":")
    try:
        ds = tfds.data_source(name, split=split or "train", download=False)
    except Exception as e:  # tfds raises several types for a missing dataset.
        raise ValueError(
            f"tfds dataset {name!r} is not prepared locally ({e}); prepare it "
            "with `tfds build` or use 'skimage' / 'folder:'."
        ) from e
    out = []
    for i in range(min(max_images, len(ds))):
        out.append(io.resize(np.asarray(ds[i]["image"], np.float32) / 255.0, max_side=max_side))
    return out


def random_crops(
    bank: list[np.ndarray], rng: np.random.Generator, num: int, size: int
) -> np.ndarray:
    """`num` random size x size crops (random image, position, flip): [num, size, size, 3]."""
    out = np.empty((num, size, size, 3), np.float32)
    for i in range(num):
        image = bank[rng.integers(len(bank))]
        h, w = image.shape[:2]
        if min(h, w) < size:
            raise ValueError(f"Background image {h}x{w} is smaller than the crop size {size}.")
        y, x = rng.integers(h - size + 1), rng.integers(w - size + 1)
        crop = image[y : y + size, x : x + size]
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out

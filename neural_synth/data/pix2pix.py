"""Paired images for pix2pix: datasets through tensorflow-datasets, edge maps, random jitter.

Sources (`source` strings of `load_pairs`, as in configs):
  'edges2x:skimage'        (edges, photo) pairs from the colour photographs bundled
                           with scikit-image (default; random crops; chelsea and
                           coffee are held out as the test split)
  'edges2x:folder:/path'   (edges, photo) pairs from every image under a folder
                           (every 10th file, in sorted order, is a test image)
  'edges2x:tfds:NAME'      (edges, photo) pairs from a tensorflow-datasets image
                           dataset already prepared in the local data dir (e.g.
                           oxford_iiit_pet for edges2cats)
  'paired:/path'           a folder in the pix2pix layout: train/ val/ test/ folders
                           of images holding A | B side by side
  'tfds:NAME'              a prepared tfds dataset with image features 'a'/'b'
                           (or 'input'/'target'), read as is

The first three prepare an `Edges2X` dataset and 'paired:' a `PairedImages`
dataset (builders in `pix2pix_builders`, imported lazily because tensorflow-
datasets is slow to import) into the tfds data dir on first use; later calls
read the prepared ArrayRecord files. Nothing is ever downloaded.

Edge maps are black lines on white (like edges2shoes / edges2cats) from the
Canny detector on the grey image; photos are fitted to the requested size by
resizing the short side and cropping the centre, so any (height, width) works.

References:
  Isola, Zhu, Zhou & Efros, "Image-to-Image Translation with Conditional
    Adversarial Networks", CVPR 2017 (layout, edges2X datasets, random jitter).
  Canny, "A Computational Approach to Edge Detection", TPAMI 1986.
"""

import numpy as np
from PIL import Image

from neural_synth import io

DIRECTIONS = ("AtoB", "BtoA")
# Pairs of image features that `load_pairs` reads from a tfds dataset, in order.
FEATURE_PAIRS = (("a", "b"), ("input", "target"))
_BUILDER_NAMES = ("PairedImages", "PairedImagesConfig", "Edges2X", "Edges2XConfig")


def __getattr__(name: str):
    """Lazy access to the tfds builder classes (`pix2pix.Edges2X`, ...)."""
    if name in _BUILDER_NAMES:
        from neural_synth.data import pix2pix_builders  # Lazy: imports tensorflow-datasets.

        return getattr(pix2pix_builders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- images


def edges(image: np.ndarray, *, sigma: float = 2.0) -> np.ndarray:
    """Edge map of an RGB image: black lines on white, float32 [H, W, 3].

    Args:
      image: float [H, W, 3] in [0, 1].
      sigma: width of the Canny detector's Gaussian; larger gives fewer, smoother edges.

    References: Canny, "A Computational Approach to Edge Detection", TPAMI 1986.
    """
    from skimage import color, feature  # Lazy: scikit-image is slow to import.

    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"edges expects an RGB image [H, W, 3], got shape {image.shape}.")
    grey = color.rgb2gray(np.clip(image, 0.0, 1.0))  # [H, W]
    lines = feature.canny(grey, sigma=sigma)  # [H, W] bool
    return np.repeat(np.where(lines, 0.0, 1.0).astype(np.float32)[..., None], 3, axis=-1)


def fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes (Lanczos) so the image covers `size`, then crops the centre: float32 [h, w, C].

    The aspect ratio is kept: the short side (relative to `size`) is scaled to
    fit and the excess of the other side is cut equally on both ends.
    """
    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    out_h, out_w = check_size(size)
    scale = max(out_h / height, out_w / width)
    cover = (max(out_h, round(height * scale)), max(out_w, round(width * scale)))
    image = io.resize(image, size=cover)
    top, left = (cover[0] - out_h) // 2, (cover[1] - out_w) // 2
    return image[top : top + out_h, left : left + out_w]


def fit_uint8(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """`fit` for uint8 [H, W, 3] images (None or the same size: unchanged)."""
    if size is None or tuple(image.shape[:2]) == tuple(size):
        return image
    return io.to_uint8(fit(image.astype(np.float32) / 255.0, size))


def check_size(size) -> tuple[int, int]:
    """(height, width) of positive integers, or a ValueError naming the fix."""
    ok = (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(isinstance(s, int | np.integer) and s >= 1 for s in size)
    )
    if not ok:
        raise ValueError(f"size must be (height, width), two positive integers; got {size!r}.")
    return int(size[0]), int(size[1])


# ----------------------------------------------------------------------------- jitter


def jitter(
    rng: np.random.Generator,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    crop: tuple[int, int],
    load: tuple[int, int],
    mirror: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """pix2pix random jitter of a batch of pairs: resize, the same random crop and mirror.

    Each pair is resized (bilinear) to `load` unless it already has that size,
    cropped at one random position to `crop` (the same window for input and
    target) and, with `mirror`, flipped left-right with probability 1/2 (both
    or neither). With load == crop and images of that size this only mirrors.

    Args:
      rng: NumPy generator (the stream is reproducible from its seed).
      inputs, targets: uint8 [B, H, W, 3] (or float in [0, 1]) of the same shape.
      crop: (height, width) of the output, at most `load`.
      load: (height, width) to resize to before cropping, e.g. (286, 286).
      mirror: random horizontal flips.

    Returns:
      (inputs, targets), float32 [B, crop_h, crop_w, 3] in [0, 1].

    References: Isola et al., "Image-to-Image Translation with Conditional
      Adversarial Networks", CVPR 2017 (section 6.2: resize to 286, crop 256).
    """
    crop_h, crop_w = check_size(crop)
    load_h, load_w = check_size(load)
    if crop_h > load_h or crop_w > load_w:
        raise ValueError(f"crop {crop} must not exceed load {load}; make load at least crop.")
    inputs, targets = _as_uint8_batch(inputs), _as_uint8_batch(targets)
    if inputs.shape != targets.shape:
        raise ValueError(f"inputs {inputs.shape} and targets {targets.shape} differ in shape.")
    out = np.empty((2, len(inputs), crop_h, crop_w, 3), np.float32)
    for i in range(len(inputs)):
        pair = [_resize_bilinear(x[i], (load_h, load_w)) for x in (inputs, targets)]
        top, left = rng.integers(load_h - crop_h + 1), rng.integers(load_w - crop_w + 1)
        flip = mirror and rng.random() < 0.5
        for j, image in enumerate(pair):
            window = image[top : top + crop_h, left : left + crop_w]  # [crop_h, crop_w, 3]
            out[j, i] = window[:, ::-1] if flip else window
    out /= 255.0
    return out[0], out[1]


def _as_uint8_batch(images) -> np.ndarray:
    """[B, H, W, 3] uint8 or float in [0, 1] -> uint8 [B, H, W, 3]."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"Expected a batch of RGB images [B, H, W, 3], got shape {x.shape}.")
    if x.dtype == np.uint8:
        return x
    return np.round(np.clip(x.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [h, w, 3] with Pillow's bilinear filter (as pix2pix does)."""
    if image.shape[:2] == size:
        return image
    resized = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized)


# ----------------------------------------------------------------------------- loading


def load_pairs(
    source: str,
    split: str,
    *,
    data_dir: str | None = None,
    size: tuple[int, int] | None = None,
    max_examples: int | None = None,
    direction: str = "AtoB",
    sigma: float = 2.0,
    rebuild: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one split: uint8 [N, H, W, 3] arrays, in the dataset's stored order.

    On first use the dataset is prepared in `data_dir` from local files (see the
    module docstring for `source`); later calls only read it. Nothing is
    downloaded.

    Args:
      source: 'edges2x:skimage' | 'edges2x:folder:/path' | 'edges2x:tfds:NAME'
        (size required), 'paired:/path' or 'tfds:NAME'.
      split: e.g. 'train', 'val', 'test' (whatever the dataset has).
      data_dir: tfds data dir (tfds' default, $TFDS_DATA_DIR or
        ~/tensorflow_datasets, when None).
      size: (height, width). Edges2X prepares pairs of this size; other sources
        are fitted to it when read (short side resized, centre cropped).
      max_examples: read at most this many pairs.
      direction: 'AtoB' (inputs = a, e.g. edges) or 'BtoA' (swapped).
      sigma: Canny sigma of Edges2X edge maps.
      rebuild: prepare the dataset again even if it exists (e.g. after the
        source folder changed).

    Raises:
      ValueError: unknown source, missing folder, no images, missing split,
        tfds dataset not prepared, or images of different sizes with size=None.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}.")
    if size is not None:
        size = check_size(size)
    from neural_synth.data import pix2pix_builders  # Lazy: imports tensorflow-datasets.

    builder = pix2pix_builders.prepare(
        source, data_dir=data_dir, size=size, sigma=sigma, rebuild=rebuild
    )
    examples = pix2pix_builders.read_split(builder, split, max_examples=max_examples)
    keys = _feature_pair(builder, source)
    inputs = _stack([ex[keys[0]] for ex in examples], size, source, split)
    targets = _stack([ex[keys[1]] for ex in examples], size, source, split)
    return (targets, inputs) if direction == "BtoA" else (inputs, targets)


def _feature_pair(builder, source: str) -> tuple[str, str]:
    """Names of the (input, target) image features of a prepared dataset."""
    features = set(builder.info.features.keys())
    for pair in FEATURE_PAIRS:
        if set(pair) <= features:
            return pair
    raise ValueError(
        f"{source!r} has features {sorted(features)}; pix2pix needs image features "
        "'a' and 'b' (or 'input' and 'target'). Use 'edges2x:tfds:NAME' for a photo dataset."
    )


def _stack(images: list[np.ndarray], size, source: str, split: str) -> np.ndarray:
    """Decoded images -> uint8 [N, H, W, 3], fitted to `size` when given."""
    images = [fit_uint8(_rgb(np.asarray(x)), size) for x in images]
    if not images:
        shape = (0, *(size or (0, 0)), 3)
        return np.zeros(shape, np.uint8)
    shapes = sorted({x.shape[:2] for x in images})
    if len(shapes) > 1:
        raise ValueError(
            f"Images of {source!r} split {split!r} have different sizes {shapes[:4]}; "
            "pass size=(height, width) to resize them."
        )
    return np.stack(images)


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, C] with C in 1, 3, 4 (alpha dropped) -> uint8 [H, W, 3]."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    return image[..., :3]

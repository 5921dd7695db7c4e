"""Paired images for pix2pix: edge maps, fitting, random jitter (in memory, NumPy).

The datasets themselves are read by `pix2pix_builders.load_pairs`. Sources
(`source` strings of `load_pairs`, as in configs):
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
dataset (`pix2pix_builders`; import it only where data are read, since
tensorflow-datasets is slow to import) into the tfds data dir on first use;
later calls read the prepared ArrayRecord files. Nothing is ever downloaded.

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
from neural_synth.models import layers

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
    if not (isinstance(size, tuple | list) and len(size) == 2):
        raise ValueError(f"size must be (height, width), two positive integers; got {size!r}.")
    return layers.check_image_size(*size, what="size")


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

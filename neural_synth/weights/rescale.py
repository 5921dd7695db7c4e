"""Rescales VGG weights so every conv filter's mean activation is one (Gatys et al.).

ReLU, max pooling and average pooling are positively homogeneous per channel, so
with m_l[c] the mean of relu_l's channel c (over images and positions) on the
original network, the weights

    W_l'[..., cin, cout] = W_l[..., cin, cout] * m_{l-1}[cin] / m_l[cout]
    b_l'[cout]           = b_l[cout] / m_l[cout]                  (m_0 = 1)

give relu_l' = relu_l / m_l at every layer, so all means become one, from a single
forward pass. Dead filters (m = 0) keep m = 1. When the classifier head exists,
fc6's input rows are multiplied by m of the last conv layer (repeated over the 7x7
positions), which leaves fc6 and everything after it unchanged.

References: Gatys, Ecker & Bethge, "Texture Synthesis Using Convolutional Neural
Networks", NeurIPS 2015; "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import skimage.data

from neural_synth import io
from neural_synth.models import vgg
from neural_synth.weights import errors

# Photos bundled with scikit-image (no download; public domain or CC0), uint8 [H, W, 3].
SAMPLE_IMAGES = {
    "astronaut": skimage.data.astronaut,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "rocket": skimage.data.rocket,
    "hubble_deep_field": skimage.data.hubble_deep_field,
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crops to a square and resizes: uint8 [H, W, 3] -> float32 [size, size, 3]."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = PIL.Image.fromarray(image[top : top + side, left : left + side])
    resized = crop.resize((size, size), PIL.Image.Resampling.BICUBIC)
    return np.asarray(resized, np.float32) / 255.0


def sample_images(*, size: int = 224) -> np.ndarray:
    """scikit-image's bundled photos (`SAMPLE_IMAGES`) as float32 [N, size, size, 3] in [0, 1]."""
    return np.stack([_square(load(), size) for load in SAMPLE_IMAGES.values()])


def folder_images(path: str | os.PathLike, *, size: int = 224, max_images: int = 256) -> np.ndarray:
    """Up to `max_images` images of a folder (sorted by name) as float32 [N, size, size, 3]."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise errors.WeightFormatError(f"rescale image folder {path} does not exist")
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise errors.WeightFormatError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) in rescale image folder {path}"
        )
    # io.load_image applies EXIF orientation and the decompression-bomb limit, and
    # names the file at fault; 8-bit images round-trip exactly through to_uint8.
    pixels = [io.to_uint8(io.load_image(os.path.join(path, n))) for n in names[:max_images]]
    return np.stack([_square(p, size) for p in pixels])


def load_images(folder: str | None = None, *, size: int = 224) -> tuple[np.ndarray, str]:
    """(images [N, size, size, 3], description): a folder's images, or the sample photos."""
    if folder:
        images = folder_images(folder, size=size)
        return images, f"{len(images)} images from {os.path.abspath(folder)} at {size}x{size}"
    return sample_images(size=size), f"skimage.data {', '.join(SAMPLE_IMAGES)} at {size}x{size}"


def _relu_names(arch: str) -> list[str]:
    return ["relu" + name[4:] for name in vgg.conv_layer_names(arch)]


def mean_activations(
    module: vgg.VGG, params: dict, images: np.ndarray, *, batch_size: int = 8
) -> dict[str, np.ndarray]:
    """{'relu1_1': [C], ...}: each conv filter's mean ReLU output over images and positions.

    images: [N, H, W, 3] in [0, 1]. One forward pass, `batch_size` images at a time,
    accumulating float64 sums. Runs op by op (no whole-network compile): this is
    done once per conversion, and the per-op dispatch cost is negligible.
    """
    relus = tuple(_relu_names(module.arch))
    images = np.asarray(images, np.float32)
    params = jax.tree.map(jnp.asarray, params)  # Copied to the device once, not per op.
    sums, counts = dict.fromkeys(relus, 0.0), dict.fromkeys(relus, 0)
    for start in range(0, len(images), batch_size):
        acts = module.apply({"params": params}, images[start : start + batch_size], layers=relus)
        for name, a in acts.items():  # [B, h, w, C]; h, w shrink with depth.
            sums[name] = sums[name] + np.asarray(a.sum(axis=(0, 1, 2)), np.float64)
            counts[name] += a.shape[0] * a.shape[1] * a.shape[2]
    return {name: sums[name] / counts[name] for name in relus}


def scale_params(params: dict, means: dict[str, np.ndarray], arch: str) -> dict:
    """Applies the rescaling for given per-filter means; returns float32 NumPy params."""
    out = {name: {k: np.asarray(v) for k, v in p.items()} for name, p in params.items()}
    prev = np.ones(3)  # m_0: the image channels are not scaled.
    for conv in vgg.conv_layer_names(arch):
        m = np.asarray(means["relu" + conv[4:]], np.float64)
        m = np.where(m > 0, m, 1.0)  # Dead filters stay as they are.
        kernel = np.asarray(params[conv]["kernel"], np.float64)  # [3, 3, in, out]
        out[conv]["kernel"] = (kernel * prev[:, None] / m).astype(np.float32)
        out[conv]["bias"] = (np.asarray(params[conv]["bias"], np.float64) / m).astype(np.float32)
        prev = m
    if "fc6" in params:
        # fc6 rows are the 7x7x512 NHWC flatten: channel c sits at rows p * 512 + c.
        row_scale = np.tile(prev, vgg.HEAD_GRID * vgg.HEAD_GRID)[:, None]
        out["fc6"]["kernel"] = (np.asarray(params["fc6"]["kernel"], np.float64) * row_scale).astype(
            np.float32
        )
    return out


def rescale_mean_activation(
    module: vgg.VGG, params: dict, images: np.ndarray, *, batch_size: int = 8
) -> dict:
    """Weights whose conv filters have mean activation one over `images` [N, H, W, 3].

    Uses `module` (its arch, pooling and input convention) to measure the means in
    one forward pass, then `scale_params`. Returns float32 NumPy params of the same
    structure; every relu output equals the original one divided by its filter's
    mean, and the head's outputs (fc6 onwards) are unchanged.
    """
    means = mean_activations(module, params, images, batch_size=batch_size)
    return scale_params(params, means, module.arch)

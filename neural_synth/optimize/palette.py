"""Palette reduction of style images: fewer, purer colours (host side, Pillow).

Quantizing a style image to a few colours concentrates its colour histogram on
a few sharp peaks; the Gram statistics of the first layers then ask for those
flat colours instead of every intermediate shade, which gives posterized,
poster-like transfers. `reduce_palette` uses Pillow's median cut followed by
k-means refinement of the palette (no dithering).

References: Heckbert, "Color Image Quantization for Frame Buffer Display",
SIGGRAPH 1982 (median cut); Lloyd, "Least squares quantization in PCM", 1982
(k-means).
"""

import numpy as np
from PIL import Image

from neural_synth import io

MAX_COLORS = 256


def reduce_palette(image, *, num_colors: int, kmeans_iterations: int = 8) -> np.ndarray:
    """Maps every pixel of an [H, W, 3] image in [0, 1] to one of `num_colors` colours.

    Args:
      image: float [H, W, 3] in [0, 1] (quantized through 8 bits).
      num_colors: palette size, 2..256.
      kmeans_iterations: k-means passes that refine the median-cut palette.

    Returns:
      float32 [H, W, 3] with at most `num_colors` distinct colours.
    """
    if not 2 <= num_colors <= MAX_COLORS:
        raise ValueError(f"num_colors must be in [2, {MAX_COLORS}], got {num_colors}.")
    pil = Image.fromarray(io.to_uint8(image))
    quantized = pil.quantize(
        colors=num_colors,
        method=Image.Quantize.MEDIANCUT,
        kmeans=kmeans_iterations,
        dither=Image.Dither.NONE,
    )
    return np.asarray(quantized.convert("RGB"), np.float32) / 255.0

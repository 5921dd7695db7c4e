"""Coarse-to-fine schedules: optimize small, enlarge the result, continue at full size.

Large outputs converge in far fewer full-resolution steps when started from an
enlarged low-resolution solution: the coarse levels settle the large-scale
layout cheaply (a level at half the size costs about a quarter per step), the
fine levels add detail. `pyramid_sizes` gives the (height, width) of each
level, coarsest first; `upsample` enlarges a level's parameters to the next.

References: Gatys et al., "Controlling Perceptual Factors in Neural Style
Transfer", CVPR 2017, Sec. 5 (coarse-to-fine for high resolutions).
"""

import jax
import jax.numpy as jnp


def pyramid_sizes(
    height: int, width: int, *, num_scales: int, factor: float = 2.0, min_side: int = 1
) -> list[tuple[int, int]]:
    """Sizes of `num_scales` levels ending at (height, width), each `factor` times the last.

    Raises ValueError when the coarsest level would be smaller than `min_side`
    (e.g. the 16 pixels VGG needs for relu5_1); use fewer scales then.
    """
    if num_scales < 1:
        raise ValueError(f"num_scales must be >= 1, got {num_scales}.")
    if factor <= 1:
        raise ValueError(f"factor must be > 1, got {factor}.")
    sizes = []
    for level in reversed(range(num_scales)):
        shrink = factor**level
        sizes.append((max(1, round(height / shrink)), max(1, round(width / shrink))))
    if min(sizes[0]) < min_side:
        raise ValueError(
            f"With {num_scales} scales the coarsest level is {sizes[0][0]}x{sizes[0][1]}, smaller "
            f"than the {min_side} pixels the chosen layers need; use fewer scales."
        )
    return sizes


def upsample(images: jax.Array, height: int, width: int) -> jax.Array:
    """[B, h, w, C] -> [B, height, width, C], bilinear (half-pixel centres)."""
    batch, _, _, channels = images.shape
    return jax.image.resize(images, (batch, height, width, channels), "linear").astype(jnp.float32)

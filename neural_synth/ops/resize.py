"""Bicubic resizing inside jit, and the standard low-resolution degradation of super-resolution.

- `bicubic_resize`: Keys' cubic convolution (a = -0.5) with antialiasing when
  shrinking: the kernel is widened by the scale factor, as MATLAB's `imresize`
  and Pillow's BICUBIC do (`jax.image.resize(..., 'bicubic', antialias=True)`).
  Near the borders the kernel is cut at the image edge and renormalised.
- `low_resolution`: the degradation super-resolution networks learn to invert:
  an optional Gaussian blur (Johnson et al. use sigma = 1), then bicubic
  downsampling by an integer factor.
- `modcrop`: crops an image's sides down to multiples of the factor, so the
  low-resolution image has exactly 1/factor of the pixels (the usual protocol).

Images are [B, H, W, C] float in [0, 1]; outputs are not clipped (cubic
interpolation over- and undershoots at edges; callers clip when they display).

References: Keys, "Cubic Convolution Interpolation for Digital Image
Processing", IEEE TASSP 1981; Johnson, Alahi & Fei-Fei, "Perceptual Losses for
Real-Time Style Transfer and Super-Resolution", ECCV 2016 (blur + bicubic
downsampling).
"""

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.ops import _common, filters


def _check_factor(factor: int) -> int:
    if not isinstance(factor, int | np.integer) or factor < 1:
        raise ValueError(f"The scale factor must be a positive integer, got {factor!r}.")
    return int(factor)


def bicubic_resize(images: jax.Array, *, height: int, width: int) -> jax.Array:
    """Bicubic resize of [B, H, W, C] to [B, height, width, C] (antialiased when shrinking)."""
    _common.check_images(images)
    shape = (images.shape[0], height, width, images.shape[-1])
    return jax.image.resize(images.astype(jnp.float32), shape, "bicubic", antialias=True)


def low_resolution(images: jax.Array, *, factor: int, blur_sigma: float = 0.0) -> jax.Array:
    """[B, H, W, C] -> [B, H / factor, W / factor, C]: optional Gaussian blur, bicubic down.

    Args:
      images: [B, H, W, C] with H and W multiples of `factor` (see `modcrop`).
      factor: integer downsampling factor (4 or 8 for super-resolution).
      blur_sigma: Gaussian blur in high-resolution pixels before downsampling
        (0: none, the plain bicubic protocol; 1.0: Johnson et al.).

    Returns:
      [B, H / factor, W / factor, C], clipped to [0, 1] (a camera's pixels).
    """
    factor = _check_factor(factor)
    _common.check_images(images)
    height, width = images.shape[1:3]
    if height % factor or width % factor:
        raise ValueError(
            f"low_resolution needs sides that are multiples of {factor}, got {width}x{height}; "
            "crop them first with modcrop."
        )
    if blur_sigma > 0:
        images = filters.gaussian_blur(images, blur_sigma)
    small = bicubic_resize(images, height=height // factor, width=width // factor)
    return jnp.clip(small, 0.0, 1.0)


def modcrop(images, factor: int):
    """Crops [..., H, W, C] (NumPy or JAX) to the largest sides that are multiples of `factor`.

    Keeps the top-left corner, so pixel (i, j) of the result is pixel (i, j) of
    the input.
    """
    factor = _check_factor(factor)
    height, width = images.shape[-3:-1]
    if height < factor or width < factor:
        raise ValueError(
            f"An image of {width}x{height} px is smaller than the scale factor {factor}."
        )
    return images[..., : height - height % factor, : width - width % factor, :]

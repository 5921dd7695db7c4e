"""Image parameterisations for visualization by optimization, and jitter.

- 'pixel': the parameters are the [B, H, W, 3] pixels in [0, 1] (kept there by
  projection after each step).
- 'fourier': decorrelated colour and space (Olah, Mordvintsev & Schubert 2017):
  the parameters are the 2-D real FFT coefficients [B, 3, H, W//2+1, 2] of
  three decorrelated colour channels, scaled by 1 / frequency so that all
  frequencies start with equal energy per unit of parameter change; the image
  is sigmoid(colour_matrix @ irfft2(scale * coefficients)). Gradient steps in
  this space are whitened, which suppresses the high-frequency patterns that
  plain pixel ascent produces. `from_images` inverts the map exactly (up to
  the clipping of pixels into (0, 1)), so any starting image can be used. For
  odd widths the coefficient axis has a third, unused slot that records it.

`roll` is the jitter of DeepDream and of class-model visualization: a random
circular shift, so that the optimized image cannot depend on exact pixel
alignment with the network's strides.

References: Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017;
Mordvintsev, Olah & Tyka, "Inceptionism: Going Deeper into Neural Networks",
Google Research blog, 2015.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

PARAMETERIZATIONS = ("pixel", "fourier")
# Square root of ImageNet's colour correlation (lucid's color_correlation_svd_sqrt).
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
COLOR_MATRIX = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))
FOURIER_GAIN = 4.0  # Coefficients are divided by this so unit steps stay moderate.
EPS = 1e-4


def check(parameterization: str) -> None:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"Unknown parameterization {parameterization!r}; expected one of {PARAMETERIZATIONS}"
        )


@functools.cache
def frequency_scale(height: int, width: int) -> np.ndarray:
    """[H, W//2+1] per-coefficient scale: sqrt(H*W) / max(|f|, 1/max(H, W))."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    return (np.sqrt(height * width) / np.maximum(freqs, 1.0 / max(height, width))).astype(
        np.float32
    )


def _width(params: jax.Array) -> int:
    """Image width of Fourier parameters: the last axis has 3 slots for odd widths."""
    return params.shape[3] * 2 - 2 + int(params.shape[-1] == 3)


def _fourier_to_images(params: jax.Array) -> jax.Array:
    height, width = params.shape[2], _width(params)
    scale = jnp.asarray(frequency_scale(height, width))
    spectrum = (params[..., 0] + 1j * params[..., 1]) * scale  # [B, 3, H, W//2+1]
    linear = jnp.fft.irfft2(spectrum, s=(height, width)) / FOURIER_GAIN  # [B, 3, H, W]
    linear = jnp.transpose(linear, (0, 2, 3, 1)) @ jnp.asarray(COLOR_MATRIX.T)
    return jax.nn.sigmoid(linear)


def to_images(params: jax.Array, parameterization: str) -> jax.Array:
    """Parameters -> images [B, H, W, 3] in [0, 1]."""
    check(parameterization)
    if parameterization == "pixel":
        return params
    return _fourier_to_images(params)


def from_images(images: np.ndarray, parameterization: str) -> jax.Array:
    """Images [B, H, W, 3] in [0, 1] -> parameters that `to_images` maps back to them."""
    check(parameterization)
    images = np.asarray(images, np.float32)
    if parameterization == "pixel":
        return jnp.asarray(images)
    x = np.clip(images, EPS, 1 - EPS).astype(np.float64)
    linear = np.log(x / (1 - x)) @ np.linalg.inv(COLOR_MATRIX.T.astype(np.float64))
    height, width = images.shape[1:3]
    spectrum = np.fft.rfft2(np.transpose(linear, (0, 3, 1, 2)) * FOURIER_GAIN)
    spectrum = spectrum / frequency_scale(height, width)
    parts = [spectrum.real, spectrum.imag]
    if width % 2:  # Odd width: a third (unused) slot records the parity.
        parts.append(np.zeros_like(spectrum.real))
    return jnp.asarray(np.stack(parts, -1).astype(np.float32))


def project(params: jax.Array, parameterization: str) -> jax.Array:
    """Keeps pixel parameters in [0, 1]; Fourier parameters need nothing."""
    return jnp.clip(params, 0.0, 1.0) if parameterization == "pixel" else params


def roll(images: jax.Array, key: jax.Array, max_shift: int) -> jax.Array:
    """Images shifted circularly by one random (dy, dx) in [-max_shift, max_shift]^2."""
    if max_shift <= 0:
        return images
    shift = jax.random.randint(key, (2,), -max_shift, max_shift + 1)
    return jnp.roll(images, (shift[0], shift[1]), axis=(1, 2))

"""Differentiable approximation of JPEG compression (baseline, IJG quality scaling).

Pipeline per image: RGB -> YCbCr (JFIF, full range) -> optional 4:2:0 chroma
subsampling (2 x 2 mean) -> level shift and 8 x 8 block DCT (orthonormal
DCT-II as two matrix products, identical to JPEG's FDCT) -> quantization
q * round(c / q) with the standard luminance / chrominance tables of the JPEG
standard (Annex K) scaled by quality as libjpeg does -> dequantization ->
inverse DCT -> chroma upsampling ("fancy" triangle filter, as libjpeg's
decoder) -> RGB, clipped to [0, 1]. Images whose sides are not multiples of 8
(16 with subsampling) are edge-padded inside and cropped back.

Rounding is replaced by a differentiable stand-in: `cubic` (Shin & Song),
round(x) + (x - round(x))^3, whose forward value is close to rounding and
whose gradient is 3 (x - round(x))^2; `straight_through` (forward exact
rounding, gradient 1); or `round` (exact, zero gradient; for evaluation).

Quality: IJG scaling s = 5000 / q for q < 50 and 200 - 2 q otherwise; steps
clip(floor((table * s + 50) / 100), 1, 255). With `continuous_tables=True`
the steps are table * s / 100 without integer rounding or the lower bound of 1,
so they shrink to 0 at quality 100 and the op becomes exactly the identity
there: use that form to ramp the distortion from nothing (`render` does).

References: Shin & Song, "JPEG-resistant Adversarial Images", NeurIPS 2017
Workshop (differentiable rounding); Zhu et al., "HiDDeN: Hiding Data with Deep
Networks", ECCV 2018; ITU-T T.81 / ISO 10918-1 Annex K (tables); Independent
JPEG Group libjpeg jcparam.c (quality scaling).
"""

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.ops import _common, color

_HIGHEST = jax.lax.Precision.HIGHEST
ROUNDINGS = ("cubic", "straight_through", "round")

LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    np.float32,
)
CHROMA_TABLE = np.full((8, 8), 99, np.float32)
CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

# JFIF full-range YCbCr on [0, 1] values (chroma centred at 0.5); the inverse is
# the exact matrix inverse so the colour round trip is lossless.
RGB_TO_YCBCR = np.array(
    [(0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312)], np.float64
)
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)
_CHROMA_OFFSET = np.array([0.0, 0.5, 0.5], np.float32)


def dct_matrix(size: int = 8) -> np.ndarray:
    """Orthonormal DCT-II matrix D [size, size]: coefficients = D @ x, x = D.T @ coefficients."""
    n = np.arange(size)
    d = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * np.sqrt(2.0 / size)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def rgb_to_ycbcr(images: jax.Array) -> jax.Array:
    """[..., 3] RGB in [0, 1] -> JFIF YCbCr in [0, 1] (Cb, Cr centred at 0.5)."""
    return color.mix_channels(images, RGB_TO_YCBCR) + _CHROMA_OFFSET


def ycbcr_to_rgb(images: jax.Array) -> jax.Array:
    """Inverse of `rgb_to_ycbcr` (no clipping)."""
    return color.mix_channels(images - _CHROMA_OFFSET, YCBCR_TO_RGB)


def block_dct(planes: jax.Array) -> jax.Array:
    """8 x 8 block DCT of [B, H, W] planes (H, W multiples of 8) -> [B, H/8, W/8, 8, 8]."""
    batch, height, width = planes.shape
    if height % 8 or width % 8:
        raise ValueError(f"block_dct needs sides that are multiples of 8, got {height}x{width}.")
    blocks = planes.reshape(batch, height // 8, 8, width // 8, 8)
    d = jnp.asarray(dct_matrix())
    return jnp.einsum("uk,bykxl,vl->byxuv", d, blocks, d, precision=_HIGHEST)


def block_idct(coefficients: jax.Array) -> jax.Array:
    """Inverse of `block_dct`: [B, H/8, W/8, 8, 8] -> [B, H, W]."""
    batch, rows, cols = coefficients.shape[:3]
    d = jnp.asarray(dct_matrix())
    blocks = jnp.einsum("uk,byxuv,vl->bykxl", d, coefficients, d, precision=_HIGHEST)
    return blocks.reshape(batch, rows * 8, cols * 8)


def differentiable_round(x: jax.Array, *, mode: str = "cubic") -> jax.Array:
    """Rounding with a usable gradient; `mode` is one of ROUNDINGS (see the module docstring)."""
    if mode == "cubic":
        rounded = jnp.round(x)
        return rounded + (x - rounded) ** 3
    if mode == "straight_through":
        return x + jax.lax.stop_gradient(jnp.round(x) - x)
    if mode == "round":
        return jnp.round(x)
    raise ValueError(f"Unknown rounding mode {mode!r}; expected one of {ROUNDINGS}.")


def quantization_steps(quality, *, continuous: bool = False) -> tuple[jax.Array, jax.Array]:
    """Quantization steps for quality in [1, 100] (scalar or [B]): (luma, chroma), [..., 8, 8].

    libjpeg's `jpeg_set_quality(quality, force_baseline=TRUE)` unless
    `continuous` (steps table * scale / 100, reaching 0 at quality 100).
    """
    quality = jnp.clip(jnp.asarray(quality, jnp.float32), 1.0, 100.0)[..., None, None]
    scale = jnp.where(quality < 50.0, 5000.0 / quality, 200.0 - 2.0 * quality)

    def steps(table):
        if continuous:
            return jnp.minimum(table * scale / 100.0, 255.0)
        return jnp.clip(jnp.floor((table * scale + 50.0) / 100.0), 1.0, 255.0)

    return steps(LUMA_TABLE), steps(CHROMA_TABLE)


def _quantize(coefficients: jax.Array, steps: jax.Array, rounding: str) -> jax.Array:
    """q * round(c / q) per coefficient; steps [B, 8, 8]; a zero step leaves c unchanged."""
    steps = steps[:, None, None]  # [B, 1, 1, 8, 8]
    positive = steps > 0
    safe = jnp.where(positive, steps, 1.0)
    quantized = safe * differentiable_round(coefficients / safe, mode=rounding)
    return jnp.where(positive, quantized, coefficients)


def _compress_plane(plane: jax.Array, steps: jax.Array, rounding: str) -> jax.Array:
    """[B, H, W] plane in [0, 1] -> quantized and reconstructed plane (0..255 arithmetic)."""
    coefficients = block_dct(plane * 255.0 - 128.0)
    restored = block_idct(_quantize(coefficients, steps, rounding))
    return (restored + 128.0) / 255.0


def _subsample(plane: jax.Array) -> jax.Array:
    """2 x 2 mean: [B, H, W] -> [B, H/2, W/2]."""
    batch, height, width = plane.shape
    return plane.reshape(batch, height // 2, 2, width // 2, 2).mean(axis=(2, 4))


def _upsample_axis(plane: jax.Array, axis: int) -> jax.Array:
    """Doubles one axis with libjpeg's triangle ("fancy") filter: 3/4 nearest + 1/4 next."""
    size = plane.shape[axis]
    prev = jnp.take(plane, jnp.maximum(jnp.arange(size) - 1, 0), axis=axis)
    nxt = jnp.take(plane, jnp.minimum(jnp.arange(size) + 1, size - 1), axis=axis)
    even, odd = 0.75 * plane + 0.25 * prev, 0.75 * plane + 0.25 * nxt
    stacked = jnp.stack([even, odd], axis=axis + 1)
    shape = list(plane.shape)
    shape[axis] *= 2
    return stacked.reshape(shape)


def _upsample(plane: jax.Array) -> jax.Array:
    return _upsample_axis(_upsample_axis(plane, 1), 2)


def jpeg_compress(
    images: jax.Array,
    quality,
    *,
    chroma_subsampling: bool = False,
    rounding: str = "cubic",
    continuous_tables: bool = False,
) -> jax.Array:
    """Differentiable JPEG round trip (encode + decode) of a batch.

    Args:
      images: [B, H, W, 3] RGB in [0, 1]; any H, W (edge-padded internally).
      quality: scalar or [B] JPEG quality in [1, 100] (per example, may be traced).
      chroma_subsampling: 4:2:0 (as Pillow's default) instead of 4:4:4.
      rounding: one of ROUNDINGS.
      continuous_tables: steps without integer rounding, exact identity at
        quality 100 (see the module docstring).

    Returns:
      [B, H, W, 3] in [0, 1].
    """
    _common.check_images(images, channels=3)
    if rounding not in ROUNDINGS:
        raise ValueError(f"Unknown rounding mode {rounding!r}; expected one of {ROUNDINGS}.")
    batch, height, width, _ = images.shape
    quality = _common.per_example(quality, batch, name="quality")
    luma_steps, chroma_steps = quantization_steps(quality, continuous=continuous_tables)
    block = 16 if chroma_subsampling else 8
    pad = ((0, 0), (0, -height % block), (0, -width % block), (0, 0))
    ycbcr = rgb_to_ycbcr(jnp.pad(images, pad, mode="edge"))
    planes = [_compress_plane(ycbcr[..., 0], luma_steps, rounding)]
    for channel in (1, 2):
        plane = ycbcr[..., channel]
        if chroma_subsampling:
            plane = _upsample(_compress_plane(_subsample(plane), chroma_steps, rounding))
        else:
            plane = _compress_plane(plane, chroma_steps, rounding)
        planes.append(plane)
    rgb = ycbcr_to_rgb(jnp.stack(planes, axis=-1))[:, :height, :width]
    return jnp.clip(rgb, 0.0, 1.0)

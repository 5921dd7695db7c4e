"""Keeping the content's colours in style transfer: luminance-only transfer, colour matching.

Two methods of Gatys et al. (2016):

- Luminance-only transfer (`style_luminance`, `combine_luminance`): style
  transfer runs on the luma channel Y only (the style's luma first matched to
  the content's mean and standard deviation), then the result's Y is combined
  with the content's chroma (I, Q of YIQ) and converted back to RGB.
- Colour histogram matching (`match_color`): before transfer, the style image's
  colours are mapped by an affine transform x -> A x + b chosen so that their
  mean and 3x3 covariance equal the content's; A from Cholesky factors
  (A = L_c L_s^-1) or from symmetric matrix square roots
  (A = S_c^1/2 S_s^-1/2, as in Image Analogies).

Images are float [H, W, 3] (or [B, H, W, 3] where stated) RGB in [0, 1]; the
colour space is `neural_synth.ops.color`'s YIQ.

References: Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in Neural
Artistic Style Transfer", arXiv:1606.05897, 2016; Hertzmann et al., "Image
Analogies", SIGGRAPH 2001.
"""

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.ops import color

MATCH_MODES = ("cholesky", "sym")
_COV_EPS = 1e-8  # Keeps flat (e.g. grey, rank-deficient) colour distributions invertible.


def _check_rgb(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image, np.float64)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name} must be an RGB image [H, W, 3], got shape {image.shape}.")
    return image


def color_stats(image) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean [3] and 3x3 covariance of the pixels of an [H, W, 3] image (float64)."""
    pixels = _check_rgb(image, "image").reshape(-1, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


def _sqrt_psd(matrix: np.ndarray, power: float) -> np.ndarray:
    """matrix ** power for a symmetric positive definite 3x3 matrix (eigendecomposition)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.maximum(values, _COV_EPS) ** power) @ vectors.T


def match_color(source, reference, *, mode: str = "cholesky", clip: bool = True) -> np.ndarray:
    """Recolours `source` so its colour mean and covariance equal those of `reference`.

    x' = A (x - mu_s) + mu_r per pixel, with A S_s A^T = S_r (S = covariance,
    regularized by 1e-8 I). Without clipping, the result's mean and covariance
    equal the reference's exactly (to float rounding); clipping to [0, 1] moves
    them only where the mapping leaves the range.

    Args:
      source: [H, W, 3] image to recolour (the style image).
      reference: [H', W', 3] image whose colour statistics to take (the content).
      mode: 'cholesky' (A = L_r L_s^-1) or 'sym' (A = S_r^1/2 S_s^-1/2).
      clip: clip the result to [0, 1].

    Returns:
      float32 [H, W, 3].

    References: Gatys et al., "Preserving Color in Neural Artistic Style
    Transfer", 2016, Sec. 2 (colour histogram matching).
    """
    if mode not in MATCH_MODES:
        raise ValueError(f"Unknown colour matching mode {mode!r}; expected one of {MATCH_MODES}.")
    src = _check_rgb(source, "source")
    mu_s, cov_s = color_stats(src)
    mu_r, cov_r = color_stats(reference)
    eye = _COV_EPS * np.eye(3)
    if mode == "cholesky":
        a = np.linalg.cholesky(cov_r + eye) @ np.linalg.inv(np.linalg.cholesky(cov_s + eye))
    else:
        a = _sqrt_psd(cov_r + eye, 0.5) @ _sqrt_psd(cov_s + eye, -0.5)
    out = (src - mu_s) @ a.T + mu_r
    return (np.clip(out, 0.0, 1.0) if clip else out).astype(np.float32)


def luma(image) -> np.ndarray:
    """Luma Y of an RGB image: [..., 3] -> [..., 1] (float32)."""
    return np.asarray(color.luminance(jnp.asarray(image, jnp.float32)))


def style_luminance(style, content) -> np.ndarray:
    """The style's luma, matched to the content luma's mean and std: [H, W, 3] -> [H, W, 1].

    y' = (sigma_c / sigma_s) (y_s - mu_s) + mu_c, clipped to [0, 1]; this keeps the
    style's luminance histogram in the content's range.

    References: Gatys et al., "Preserving Color in Neural Artistic Style
    Transfer", 2016, Sec. 3 (luminance-only transfer).
    """
    y_s = luma(_check_rgb(style, "style"))
    y_c = luma(_check_rgb(content, "content"))
    scale = y_c.std() / max(float(y_s.std()), 1e-6)
    return np.clip((y_s - y_s.mean()) * scale + y_c.mean(), 0.0, 1.0).astype(np.float32)


def gray_to_rgb(y: jax.Array) -> jax.Array:
    """[..., 1] luma -> [..., 3] grey RGB (R = G = B = Y, whose luma is Y again)."""
    return jnp.repeat(y, 3, axis=-1)


def combine_luminance(y: jax.Array, content: jax.Array) -> jax.Array:
    """RGB image with luma `y` and the chroma (I, Q) of `content`, clipped to [0, 1].

    Args:
      y: [B, H, W, 1] luma (the result of luminance-only transfer).
      content: [B or 1, H, W, 3] RGB content images.

    Returns:
      [B, H, W, 3] float32. Before clipping, its YIQ equals (y, I_content,
      Q_content) exactly (up to float rounding).
    """
    yiq = color.rgb_to_yiq(jnp.asarray(content, jnp.float32))
    yiq = jnp.broadcast_to(yiq, y.shape[:-1] + (3,))
    rgb = color.yiq_to_rgb(jnp.concatenate([y, yiq[..., 1:]], axis=-1))
    return jnp.clip(rgb, 0.0, 1.0)

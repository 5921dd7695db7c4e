"""Image-quality metrics: PSNR and SSIM of image batches (NHWC, values in [0, data_range]).

Every metric returns one value per image ([B]); average over a data set on the
host. `image_metrics` gives L1, PSNR and SSIM together (pix2pix's evaluation);
with `luminance=True, border=scale` it follows the super-resolution protocol:
the Y channel of ITU-R BT.601 YCbCr (16-235, as MATLAB's `rgb2ycbcr`), with
`scale` pixels cropped from every side. `mask_iou` compares segmentation masks.

References: Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From
Error Visibility to Structural Similarity", IEEE TIP 2004 (SSIM); Dong, Loy,
He & Tang, "Image Super-Resolution Using Deep Convolutional Networks", TPAMI
2016 (PSNR / SSIM on Y with the border cropped).
"""

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.ops import color


def psnr(images: jax.Array, targets: jax.Array, *, data_range: float = 1.0) -> jax.Array:
    """Peak signal-to-noise ratio in dB of each image [B, H, W, C]: [B]."""
    mse = jnp.mean(jnp.square(images - targets), axis=(1, 2, 3))
    return 10.0 * jnp.log10(data_range**2 / mse)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps, as scipy.ndimage.gaussian_filter uses (11 for 1.5)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def ssim(
    images: jax.Array,
    targets: jax.Array,
    *,
    data_range: float = 1.0,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = True,
) -> jax.Array:
    """Mean structural similarity of each image pair [B, H, W, C]: [B].

    Gaussian-weighted local statistics (11x11 window for sigma 1.5), averaged
    over the positions whose window lies inside the image and over channels:
    the same as scikit-image's `structural_similarity(gaussian_weights=True,
    data_range=data_range, channel_axis=-1)` (which also rescales the local
    (co)variances by N / (N - 1), N = 121, unless `sample_covariance=False`).

    References: Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment:
      From Error Visibility to Structural Similarity", IEEE TIP 2004.
    """
    taps = gaussian_window(sigma)
    n = taps.size
    if images.shape != targets.shape or images.ndim != 4 or min(images.shape[1:3]) < n:
        raise ValueError(
            f"ssim needs two image batches [B, H, W, C] of one shape with H, W >= {n}; "
            f"got {images.shape} and {targets.shape}."
        )
    a, b = images.astype(jnp.float32), targets.astype(jnp.float32)
    stats = _local_means(jnp.concatenate([a, b, a * a, b * b, a * b], axis=-1), taps)
    mu_a, mu_b, aa, bb, ab = jnp.split(stats, 5, axis=-1)  # Each [B, H - n + 1, W - n + 1, C].
    cov_norm = n * n / (n * n - 1.0) if sample_covariance else 1.0
    var_a, var_b = cov_norm * (aa - mu_a * mu_a), cov_norm * (bb - mu_b * mu_b)
    cov = cov_norm * (ab - mu_a * mu_b)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    )
    return jnp.mean(s, axis=(1, 2, 3))


def _local_means(x: jax.Array, taps: np.ndarray) -> jax.Array:
    """Separable Gaussian filter without padding (VALID) of every channel of [B, H, W, C]."""
    c, n = x.shape[-1], taps.size
    conv = lambda y, k: jax.lax.conv_general_dilated(
        y, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c
    )
    k = jnp.tile(jnp.asarray(taps)[:, None, None, None], (1, 1, 1, c))  # [n, 1, 1, C]
    return conv(conv(x, k), k.reshape(1, n, 1, c))


def _y_channel(images: jax.Array) -> jax.Array:
    """[B, H, W, 3] RGB in [0, 1] -> [B, H, W, 1] BT.601 studio-range Y (16/255 .. 235/255)."""
    return 16.0 / 255.0 + (219.0 / 255.0) * color.luminance(images)


def image_metrics(
    outputs: jax.Array, targets: jax.Array, *, luminance: bool = False, border: int = 0
) -> dict[str, jax.Array]:
    """Per-image L1, PSNR and SSIM of [B, H, W, 3] batches in [0, 1]: {name: [B]}.

    Args:
      outputs, targets: [B, H, W, 3] in [0, 1].
      luminance: compare only the Y channel of BT.601 YCbCr (studio range, as
        MATLAB's `rgb2ycbcr`, the super-resolution convention).
      border: pixels cropped from every side first (the scale factor in
        super-resolution, whose borders no method can reconstruct).
    """
    if border < 0 or 2 * border >= min(outputs.shape[1:3]):
        raise ValueError(
            f"border={border} leaves nothing of {outputs.shape[2]}x{outputs.shape[1]} images."
        )
    if border:
        outputs = outputs[:, border:-border, border:-border]
        targets = targets[:, border:-border, border:-border]
    if luminance:
        outputs, targets = _y_channel(outputs), _y_channel(targets)
    return {
        "l1": jnp.mean(jnp.abs(outputs - targets), axis=(1, 2, 3)),
        "psnr": psnr(outputs, targets),
        "ssim": ssim(outputs, targets),
    }


def mask_iou(masks: jax.Array, targets: jax.Array, *, threshold: float = 0.5) -> jax.Array:
    """Intersection over union of each pair of masks [B, H, W, 1] (values > threshold): [B].

    Two empty masks agree perfectly (IoU 1).

    References: Everingham et al., "The PASCAL Visual Object Classes (VOC)
      Challenge", IJCV 2010 (segmentation accuracy as intersection over union).
    """
    a, b = masks > threshold, targets > threshold
    inter = jnp.sum(a & b, axis=(1, 2, 3))
    union = jnp.sum(a | b, axis=(1, 2, 3))
    return jnp.where(union > 0, inter / jnp.maximum(union, 1), 1.0)

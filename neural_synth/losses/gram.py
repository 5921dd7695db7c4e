"""Style statistics of NHWC feature maps: Gram matrices, means, means and stds.

Every statistic averages over spatial positions, so its value does not grow with
the image size. Masked variants weight each position by a mask in [0, 1] given at
any resolution (`resize_mask` brings it to the feature map's size), which gives
region-wise statistics for spatial style control and Gram-based retrieval.

`style_statistic(features, kind, mask=...)` is the single entry point the rest of
the library calls to compute "the style statistic" of a layer; `kind` is one of
`KINDS`. It returns a pytree: an array for 'gram' and 'mean', a (mean, std) tuple
for 'mean_std'.

All functions are pure and jit-able; shapes are checked at trace time.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016 (Gram matrices); Huang & Belongie, "Arbitrary Style Transfer
in Real-time with Adaptive Instance Normalization", ICCV 2017 (mean and std);
Gatys et al., "Controlling Perceptual Factors in Neural Style Transfer", CVPR 2017
(masked, region-wise statistics).
"""

import jax
import jax.numpy as jnp
import numpy as np

KINDS = ("gram", "mean", "mean_std")
MASK_EPS = 1e-8  # Guards the mask-sum denominator; an empty mask gives zero statistics.


def _check_features(features: jax.Array) -> None:
    if features.ndim != 4:
        raise ValueError(
            f"Expected features of shape [B, H, W, C] (NHWC), got shape {features.shape}; "
            "add a batch axis with features[None] for a single image."
        )


def _axis_weights(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] resampling weights along one axis; every row sums to 1.

    Shrinking uses exact area weights (the overlap of each output cell with each
    input pixel), so an integer factor is a block mean. Enlarging uses bilinear
    weights with half-pixel centres, clamped at the borders.
    """
    weights = np.zeros((size_out, size_in))
    if size_out <= size_in:
        scale = size_in / size_out
        for i in range(size_out):
            lo, hi = i * scale, (i + 1) * scale
            for k in range(int(np.floor(lo)), min(int(np.ceil(hi)), size_in)):
                weights[i, k] = min(hi, k + 1) - max(lo, k)
        return weights / scale
    centres = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = centres - lo
    np.add.at(weights, (np.arange(size_out), lo), 1 - frac)
    np.add.at(weights, (np.arange(size_out), hi), frac)
    return weights


def resize_mask(mask: jax.Array, *, height: int, width: int) -> jax.Array:
    """Resizes a mask to a feature map's spatial size.

    Args:
      mask: [B, h, w] or [B, h, w, 1], values in [0, 1], any resolution.
      height, width: the target size (the feature map's H and W).

    Returns:
      [B, height, width] float32. Shrinking averages exact pixel areas (an integer
      factor is a block mean, as average pooling would do); enlarging is bilinear.
      A mask already at the target size is returned unchanged.
    """
    if mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 3:
        raise ValueError(
            f"Expected a mask of shape [B, h, w] or [B, h, w, 1], got shape {mask.shape}; "
            "add a batch axis with mask[None] for a single mask."
        )
    mask = jnp.asarray(mask, jnp.float32)
    if mask.shape[1:] == (height, width):
        return mask
    weights_h = jnp.asarray(_axis_weights(mask.shape[1], height), jnp.float32)  # [H, h]
    weights_w = jnp.asarray(_axis_weights(mask.shape[2], width), jnp.float32)  # [W, w]
    return jnp.einsum("Hh,bhw,Ww->bHW", weights_h, mask, weights_w, precision="highest")


def _prepare_mask(mask: jax.Array, features: jax.Array) -> jax.Array:
    """Mask resized to the features and broadcastable against them: [B or 1, H, W, 1]."""
    _check_features(features)
    batch, height, width, _ = features.shape
    mask = resize_mask(mask, height=height, width=width)
    if mask.shape[0] not in (1, batch):
        raise ValueError(
            f"Mask batch size {mask.shape[0]} does not match features batch size {batch}; "
            "pass one mask per image or a single mask with batch size 1."
        )
    return mask[..., None]


def _masked_average(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Average of [B, H, W, ...] over positions, weighted by mask [B or 1, H, W, 1]."""
    if mask is None:
        return jnp.mean(values, axis=(1, 2))
    mask = mask.reshape(mask.shape + (1,) * (values.ndim - 4))
    total = jnp.maximum(jnp.sum(mask, axis=(1, 2)), MASK_EPS)
    return jnp.sum(values * mask, axis=(1, 2)) / total


def gram(features: jax.Array, *, normalize: bool = True) -> jax.Array:
    """Gram matrix of each feature map: [B, H, W, C] -> [B, C, C].

    G[b, c, d] = sum_p F[b, p, c] F[b, p, d] / (H * W) over the H * W positions p
    when `normalize`, else the raw sum. Normalizing by the number of positions keeps
    Gram values independent of image size, so one set of style layer weights works
    at every resolution and a style image of one size can guide a synthesis at
    another. Gatys et al.'s per-layer factor 1 / (4 N_l^2 M_l^2) (N_l channels,
    M_l positions) is then a layer weight: their E_l equals
    `perceptual.style_loss` with layer weight 1/4 for batch size 1 (see there).

    References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
    Neural Networks", CVPR 2016.
    """
    _check_features(features)
    _, height, width, _ = features.shape
    g = _gram_sum(features)
    return g / (height * width) if normalize else g


@jax.custom_vjp
def _gram_sum(features: jax.Array) -> jax.Array:
    """sum_p f_p f_p^T: [B, H, W, C] -> [B, C, C].

    Its hand-written VJP, f (dG + dG^T), is one matrix product; autodiff of the
    einsum forms two and a transpose, 3x slower on XLA:CPU (see
    `neural_synth/optimize/statistics.py`).
    """
    b, h, w, c = features.shape
    flat = features.reshape(b, h * w, c)
    return jnp.einsum("bpc,bpd->bcd", flat, flat)


def _gram_sum_fwd(features):
    return _gram_sum(features), features


def _gram_sum_bwd(features, cotangent):
    b, h, w, c = features.shape
    symmetric = cotangent + jnp.swapaxes(cotangent, 1, 2)  # [B, C, C]
    flat = features.reshape(b, h * w, c)
    return (jnp.einsum("bpc,bcd->bpd", flat, symmetric).reshape(features.shape),)


_gram_sum.defvjp(_gram_sum_fwd, _gram_sum_bwd)


def masked_gram(features: jax.Array, mask: jax.Array, *, normalize: bool = True) -> jax.Array:
    """Gram matrix over a soft region: [B, H, W, C], mask -> [B, C, C].

    G[b] = sum_p m_p f_p f_p^T / sum_p m_p when `normalize` (else without the
    division), with f_p the C-vector at position p and m_p the mask resized to
    H x W by `resize_mask`. An all-ones mask gives `gram(features)`. The
    denominator is clamped at `MASK_EPS`, so an empty mask gives a zero matrix
    (and zero gradients) instead of NaN.

    Args:
      features: [B, H, W, C].
      mask: [B, h, w] or [B, h, w, 1] in [0, 1], any resolution; batch 1 broadcasts.

    References: Gatys et al., "Controlling Perceptual Factors in Neural Style
    Transfer", CVPR 2017 (guided Gram matrices).
    """
    mask = _prepare_mask(mask, features)  # [B or 1, H, W, 1]
    batch, height, width, channels = features.shape
    weighted = (features * mask).reshape(batch, height * width, channels)
    flat = features.reshape(batch, height * width, channels)
    g = jnp.einsum("bpc,bpd->bcd", weighted, flat)  # [B, C, C]
    if not normalize:
        return g
    total = jnp.maximum(jnp.sum(mask, axis=(1, 2, 3)), MASK_EPS)  # [B or 1]
    return g / total[:, None, None]


def mean(features: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
    """Per-channel mean over positions: [B, H, W, C] -> [B, C].

    With `mask` ([B, h, w] or [B, h, w, 1] in [0, 1], any resolution), the mean is
    weighted: sum_p m_p f_p / sum_p m_p (zero for an empty mask).

    References: Huang & Belongie, "Arbitrary Style Transfer in Real-time with
    Adaptive Instance Normalization", ICCV 2017.
    """
    _check_features(features)
    mask = None if mask is None else _prepare_mask(mask, features)
    return _masked_average(features, mask)


def mean_std(
    features: jax.Array, *, mask: jax.Array | None = None, eps: float = 1e-5
) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and standard deviation: [B, H, W, C] -> ([B, C], [B, C]).

    std = sqrt(var + eps) with the biased (population) variance over positions,
    var = mean_p (f_p - mean)^2; `eps` keeps the gradient finite for constant
    channels. With `mask`, both averages are mask-weighted as in `mean`.

    References: Huang & Belongie, "Arbitrary Style Transfer in Real-time with
    Adaptive Instance Normalization", ICCV 2017.
    """
    _check_features(features)
    mask = None if mask is None else _prepare_mask(mask, features)
    mu = _masked_average(features, mask)  # [B, C]
    var = _masked_average(jnp.square(features - mu[:, None, None, :]), mask)
    return mu, jnp.sqrt(var + eps)


def check_kind(kind: str) -> None:
    """Raises ValueError unless `kind` is one of `KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"Unknown style statistic kind {kind!r}; expected one of {KINDS}.")


def style_statistic(features: jax.Array, kind: str, *, mask: jax.Array | None = None):
    """The style statistic of one layer's features, as a pytree.

    Args:
      features: [B, H, W, C].
      kind: 'gram' -> [B, C, C] (`gram` / `masked_gram`, normalized by positions);
        'mean' -> [B, C]; 'mean_std' -> ([B, C], [B, C]) with the default eps.
      mask: optional [B, h, w] or [B, h, w, 1] region mask in [0, 1], any resolution.

    References: Gatys et al., CVPR 2016 (Gram); Huang & Belongie, ICCV 2017
    (mean and std).
    """
    check_kind(kind)
    if kind == "gram":
        return gram(features) if mask is None else masked_gram(features, mask)
    if kind == "mean":
        return mean(features, mask=mask)
    return mean_std(features, mask=mask)

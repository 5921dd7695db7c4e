"""Style statistics and losses for the optimization loop, with a fast Gram gradient.

`gram_sums` is sum_p w_p f_p f_p^T with a hand-written VJP: the cotangent of the
features is w_p f_p (dG + dG^T), one matrix product. Autodiff of the einsum
instead forms two products and transposes, which on XLA:CPU took 3x as long
(fwd + bwd of relu1_1's Gram at 256^2: 66 ms -> 21 ms) and made the Gram
matrices ~9% of a whole VGG19 style-transfer step. Values are those of
`losses.gram` (same normalization: averages over positions, mask-weighted).

`style_loss` computes the blended or region-wise loss from statistics, so the
whole-image path (`gatys`) and the tiled path (`tiling`) share it; it equals
`losses.perceptual.style_loss` / `spatial_style_loss` (tested).

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016; Gatys et al., "Controlling Perceptual Factors in
Neural Style Transfer", CVPR 2017 (masked Gram matrices).
"""

import jax
import jax.numpy as jnp

from neural_synth.losses import gram, perceptual


@jax.custom_vjp
def gram_sums(features: jax.Array, weights: jax.Array) -> jax.Array:
    """sum_p w_p f_p f_p^T: features [B, H, W, C], weights [B or 1, H, W] -> [B, C, C]."""
    b, h, w, c = features.shape
    flat = features.reshape(b, h * w, c)
    weighted = (features * weights[..., None]).reshape(b, h * w, c)
    return jnp.einsum("bpc,bpd->bcd", weighted, flat)


def _gram_sums_fwd(features, weights):
    return gram_sums(features, weights), (features, weights)


def _gram_sums_bwd(residuals, cotangent):
    features, weights = residuals
    b, h, w, c = features.shape
    symmetric = cotangent + jnp.swapaxes(cotangent, 1, 2)  # [B, C, C]
    flat = features.reshape(b, h * w, c)
    grad = jnp.einsum("bpc,bcd->bpd", flat, symmetric).reshape(features.shape)
    return grad * weights[..., None], jnp.zeros_like(weights)  # Masks are constants.


gram_sums.defvjp(_gram_sums_fwd, _gram_sums_bwd)


def style_statistic(features: jax.Array, kind: str, *, mask: jax.Array | None = None):
    """`losses.gram.style_statistic` with the fast Gram gradient for kind 'gram'."""
    if kind != "gram":
        return gram.style_statistic(features, kind, mask=mask)
    _, height, width, _ = features.shape
    if mask is None:
        ones = jnp.ones((1, height, width), features.dtype)
        return gram_sums(features, ones) / (height * width)
    weights = gram.resize_mask(mask, height=height, width=width)  # [B or 1, H, W]
    total = jnp.maximum(jnp.sum(weights, axis=(1, 2)), gram.MASK_EPS)
    return gram_sums(features, weights) / total[:, None, None]


def style_loss(stats: list[dict], targets: list[dict], *, layer_weights: dict, blend=None):
    """Style loss from statistics.

    Args:
      stats: one dict layer -> statistic per region (a single entry without
        spatial control).
      targets: one dict layer -> target statistic per style image.
      layer_weights: layer -> weight (traced scalars allowed).
      blend: [S] blend weights (normalized here) when `stats` has one entry;
        None for spatial control, where region s is matched to style s.

    Returns:
      sum_s b_s sum_l w_l mse(stats_l, T_{s,l}) (blended) or
      sum_s sum_l w_l mse(stats_{s,l}, T_{s,l}) (regions).
    """
    if blend is None:
        pairs = list(zip([1.0] * len(targets), stats, targets, strict=True))
    else:
        factors = blend / jnp.sum(blend)
        pairs = [(factors[s], stats[0], target) for s, target in enumerate(targets)]
    total = jnp.zeros((), jnp.float32)
    for factor, stat, target in pairs:
        per_style = sum(
            w * perceptual.mse(stat[name], target[name]) for name, w in layer_weights.items()
        )
        total = total + factor * per_style
    return total

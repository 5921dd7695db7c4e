"""Losses of point localization from heat maps (a marker's four corners in a photo).

Points are (x, y) in input pixel coordinates (pixel centres at integers, as in
`neural_synth/ops/sampler.py`); heat maps are [B, h, w, K] logits whose cells
span `stride` input pixels. Each loss averages over the examples whose
`weights` are 1 (e.g. photos that contain a marker).

References: Sun et al., "Integral Human Pose Regression", ECCV 2018 (L1 on the
soft-argmax); Tompson et al., "Joint Training of a Convolutional Network and a
Graphical Model for Human Pose Estimation", NeurIPS 2014 (Gaussian heat-map
targets).
"""

import jax
import jax.numpy as jnp

from neural_synth.ops import sampler


def _weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Mean of [B] values over the examples with weight 1 (0 when there are none)."""
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def corner_loss(points: jax.Array, targets: jax.Array, weights: jax.Array, *, scale: float):
    """Mean absolute error of points [B, K, 2] against targets [B, K, 2], divided by `scale`.

    `weights` [B] in {0, 1} selects the examples; `scale` (e.g. the photo side)
    makes the loss independent of the resolution. Returns a scalar.
    """
    per_example = jnp.mean(jnp.abs(points - targets), axis=(1, 2)) / scale  # [B]
    return _weighted_mean(per_example, weights)


def heatmap_loss(
    logits: jax.Array, targets: jax.Array, weights: jax.Array, *, stride: int, sigma: float
):
    """Cross-entropy of the heat maps' softmax against Gaussians at the target points.

    Args:
      logits: [B, h, w, K] heat-map logits.
      targets: [B, K, 2] (x, y) target points in input pixels.
      weights: [B] in {0, 1}.
      stride: input pixels per cell.
      sigma: the Gaussian's standard deviation in cells.

    Returns:
      A scalar: the mean over selected examples and points of the cross-entropy.
    """
    batch, height, width, num = logits.shape
    centres = (sampler.pixel_grid((height, width)) + 0.5) * stride - 0.5  # [h, w, 2]
    cells = (targets[:, None, None] - centres[None, :, :, None]) / stride  # [B, h, w, K, 2]
    target = jax.nn.softmax(
        -jnp.sum(jnp.square(cells), -1).reshape(batch, -1, num) / (2 * sigma**2), axis=1
    )
    log_probs = jax.nn.log_softmax(logits.reshape(batch, -1, num), axis=1)
    per_example = -jnp.mean(jnp.sum(target * log_probs, axis=1), axis=1)  # [B]
    return _weighted_mean(per_example, weights)


def corner_errors(points: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean distance [B] between predicted and true points [B, K, 2] (input pixels)."""
    return jnp.mean(jnp.linalg.norm(points - targets, axis=-1), axis=-1)

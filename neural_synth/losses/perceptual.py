"""Perceptual losses on feature maps: the mean squared error, content, TV, diversity.

Features are dicts `layer name -> [B, H, W, C]` as returned by
`vgg.VGG.apply(..., layers=...)` (style losses: `style`). Every comparison of
features or statistics with a target is `mse`.

Normalization, throughout: `mse` is the mean over all elements (per pytree leaf,
summed over leaves), statistics are averages over positions (`gram`), so no loss
grows with image size, batch size or channel count; weights carry the scale.
Target normalization: `relative_weight` divides a loss weight by the mean
square of the target (`target_mean_square`), so that a weight of 1 means "as
large as the target itself" whatever the feature scale of the VGG weights
(random, torchvision or Caffe differ by orders of magnitude);
`relative_content_loss` does the same per batch for targets that change with
every batch.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016; Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time
Style Transfer and Super-Resolution", ECCV 2016; Mahendran & Vedaldi,
"Understanding Deep Image Representations by Inverting Them", CVPR 2015; Ulyanov,
Vedaldi & Lempitsky, "Improved Texture Networks", CVPR 2017.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

TV_KINDS = ("l2", "l1")
NORM_FLOOR = 1e-12  # Smallest target mean square `relative_weight` divides by.
CONTENT_NORM_EPS = 1e-8  # Added to the per-batch target mean square of `relative_content_loss`.


def _check_broadcastable(x: jax.Array, target: jax.Array) -> None:
    if target.shape == x.shape or (
        target.ndim == x.ndim
        and x.ndim > 0
        and target.shape[0] == 1
        and target.shape[1:] == x.shape[1:]
    ):
        return
    raise ValueError(
        f"Target shape {target.shape} does not match shape {x.shape}; the target must have "
        "the same shape, or batch size 1 to apply to every image of the batch. Check that "
        "targets were computed from the same layers and with the same statistic kind."
    )


def mse(x, target, *, per_example: bool = False) -> jax.Array:
    """Mean squared error between two pytrees of arrays with the same structure.

    For each leaf, mean over all elements of (x - target)^2; the leaf values are
    summed (so a ('mean_std') pair gives mse(mean) + mse(std)). A target leaf with
    batch size 1 applies to every batch element of x (the mean then runs over x's
    shape), which is how one style target serves a batch of generated images.

    Args:
      x, target: pytrees of arrays [B, ...] (target leaves [B, ...] or [1, ...]).
      per_example: average over all axes but the first: one value per example.

    Returns:
      A float32 scalar, or [B] with `per_example`.
    """
    leaves, treedef = jax.tree.flatten(x)
    try:
        target_leaves = treedef.flatten_up_to(target)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"Target structure {jax.tree.structure(target)} does not match {treedef}; "
            "check that targets were computed with the same statistic kind."
        ) from err
    total = jnp.zeros((), jnp.float32)
    for leaf, target_leaf in zip(leaves, target_leaves, strict=True):
        _check_broadcastable(leaf, target_leaf)
        axes = tuple(range(1, leaf.ndim)) if per_example else None
        total = total + jnp.mean(jnp.square(leaf - target_leaf), axis=axes)
    return total


def content_loss(features: jax.Array, target: jax.Array, *, per_example: bool = False):
    """Content loss: mean squared error between one layer's features and a target.

    Args:
      features: [B, H, W, C] features of the image being synthesized.
      target: [B, H, W, C] (or [1, H, W, C], broadcast) features of the content image.
      per_example: return [B] (each example's mean) instead of the batch mean.

    Returns:
      Scalar mean over all B * H * W * C elements of (features - target)^2. Gatys
      et al.'s content loss 1/2 sum (F - P)^2 equals this times B * H * W * C / 2.

    References: Gatys, Ecker & Bethge, CVPR 2016, eq. 1.
    """
    if features.ndim != 4:
        raise ValueError(f"Expected features of shape [B, H, W, C], got shape {features.shape}.")
    return mse(features, target, per_example=per_example)


# ----------------------------------------------------------------------------- target normalization


def mean_square(tree) -> jax.Array:
    """mse(tree, 0): the mean of the squares of each leaf, summed over leaves (jit-able)."""
    return sum(jnp.mean(jnp.square(leaf)) for leaf in jax.tree.leaves(tree))


def target_mean_square(targets: Sequence, *, blend_weights=None) -> float:
    """n = sum_s b_s mean_square(T_s): the (blend-weighted) size of one layer's targets.

    Computed once on the host, in float64 over leaves and styles.

    Args:
      targets: one target pytree per style (e.g. one layer's Gram matrices).
      blend_weights: [S] weights summing to 1 (`style.normalize_blend`); default 1 each.
    """
    blend = [1.0] * len(targets) if blend_weights is None else blend_weights
    return sum(
        b * sum(float(mean_square(leaf)) for leaf in jax.tree.leaves(t))
        for b, t in zip(blend, targets, strict=True)
    )


def relative_weight(weight: float, targets: Sequence, *, blend_weights=None) -> float:
    """weight / n, n = `target_mean_square(targets, blend_weights=...)` floored at NORM_FLOOR.

    Each loss term then is a relative squared error: a weight of 1 means "as
    large as the target itself", with random, torchvision or Caffe VGG weights
    alike.
    """
    n = target_mean_square(targets, blend_weights=blend_weights)
    return weight / max(n, NORM_FLOOR)


def relative_content_loss(
    features: Mapping[str, jax.Array],
    targets: Mapping[str, jax.Array],
    *,
    layer_weights: Mapping[str, float],
) -> jax.Array:
    """Per-example content loss [B]: sum_l w_l mse_b(F_l, P_l) / (mean(P_l^2) + eps).

    For targets that change with every batch (content photos of a trained
    stylization network): the normalizer is the batch's target mean square,
    eps = CONTENT_NORM_EPS, and the targets are constants (no gradient).

    References: Johnson, Alahi & Fei-Fei, ECCV 2016 (feature reconstruction loss).
    """
    total = 0.0
    for name, w in layer_weights.items():
        target = jax.lax.stop_gradient(targets[name])
        scale = mean_square(target) + CONTENT_NORM_EPS
        total = total + w * content_loss(features[name], target, per_example=True) / scale
    return total


# ----------------------------------------------------------------------------- image terms


def total_variation(images: jax.Array, *, kind: str = "l2") -> jax.Array:
    """Total variation of images: [B, H, W, C] -> scalar.

    With d_y = x[:, 1:] - x[:, :-1] ([B, H-1, W, C]) and d_x = x[:, :, 1:] -
    x[:, :, :-1] ([B, H, W-1, C]):
      'l2': mean(d_y^2) + mean(d_x^2)
      'l1': mean(|d_y|) + mean(|d_x|)
    each mean over all elements of its difference array (so the value does not
    grow with image size). 'l2' is the smooth (beta = 2) regularizer of Mahendran
    & Vedaldi; 'l1' is the anisotropic total variation.

    References: Mahendran & Vedaldi, "Understanding Deep Image Representations by
    Inverting Them", CVPR 2015; Rudin, Osher & Fatemi, Physica D 1992.
    """
    if kind not in TV_KINDS:
        raise ValueError(f"Unknown total variation kind {kind!r}; expected one of {TV_KINDS}.")
    if images.ndim != 4 or images.shape[1] < 2 or images.shape[2] < 2:
        raise ValueError(
            f"Expected images of shape [B, H, W, C] with H, W >= 2, got shape {images.shape}."
        )
    d_y = images[:, 1:] - images[:, :-1]
    d_x = images[:, :, 1:] - images[:, :, :-1]
    penalty = jnp.square if kind == "l2" else jnp.abs
    return jnp.mean(penalty(d_y)) + jnp.mean(penalty(d_x))


def diversity_loss(features: jax.Array) -> jax.Array:
    """Negative mean L1 distance between each sample's features and the next one's.

    Improved Texture Networks add  -lambda * this  so that the generator does not
    collapse to one texture: [B, H, W, C] features (B >= 2) -> scalar, normalised
    by the features' mean absolute value.

    References: Ulyanov, Vedaldi & Lempitsky, "Improved Texture Networks:
    Maximizing Quality and Diversity in Feed-forward Stylization and Texture
    Synthesis", CVPR 2017, eq. 7.
    """
    if features.shape[0] < 2:
        raise ValueError("The diversity term needs a batch of at least 2 samples.")
    scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(features))) + 1e-8
    return -jnp.mean(jnp.abs(features - jnp.roll(features, 1, axis=0))) / scale


def masked_mse(images: jax.Array, targets: jax.Array, masks: jax.Array) -> jax.Array:
    """Mean squared error of images [B, H, W, C] over the pixels where masks [B, H, W, 1] are 1.

    The mean runs over the masked pixels of the whole batch (and channels),
    so objects covering a small part of the image are not drowned by the
    background. Soft masks weight the pixels; an empty mask gives 0.

    References: Dosovitskiy, Springenberg & Brox, "Learning to Generate Chairs
    with Convolutional Neural Networks", CVPR 2015 (the RGB loss inside the
    segmentation mask).
    """
    num = jnp.maximum(jnp.sum(masks) * images.shape[-1], 1.0)
    return jnp.sum(masks * jnp.square(images - targets)) / num

"""Perceptual losses on feature maps: content, style (blended, spatial) and total variation.

Features are dicts `layer name -> [B, H, W, C]` as returned by
`vgg.VGG.apply(..., layers=...)`. Style targets are computed once, outside any
optimization loop, with `style_targets`: a list with one dict per style image,
`layer name -> statistic` (see `gram.style_statistic`). Losses compare the
statistics of the current features with those targets by `mse`.

Normalization, throughout: `mse` is the mean over all elements (per pytree leaf,
summed over leaves), statistics are averages over positions (`gram`), so no loss
grows with image size, batch size or channel count; weights carry the scale.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016; Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time
Style Transfer and Super-Resolution", ECCV 2016; Gatys et al., "Controlling
Perceptual Factors in Neural Style Transfer", CVPR 2017; Mahendran & Vedaldi,
"Understanding Deep Image Representations by Inverting Them", CVPR 2015.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.losses import gram

TV_KINDS = ("l2", "l1")


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


def mse(x, target) -> jax.Array:
    """Mean squared error between two pytrees of arrays with the same structure.

    For each leaf, mean over all elements of (x - target)^2; the leaf values are
    summed (so a ('mean_std') pair gives mse(mean) + mse(std)). A target leaf with
    batch size 1 applies to every batch element of x (the mean then runs over x's
    shape), which is how one style target serves a batch of generated images.

    Returns:
      A float32 scalar.
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
        total = total + jnp.mean(jnp.square(leaf - target_leaf))
    return total


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
    """Content loss: mean squared error between one layer's features and a target.

    Args:
      features: [B, H, W, C] features of the image being synthesized.
      target: [B, H, W, C] (or [1, H, W, C], broadcast) features of the content image.

    Returns:
      Scalar mean over all B * H * W * C elements of (features - target)^2. Gatys
      et al.'s content loss 1/2 sum (F - P)^2 equals this times B * H * W * C / 2.

    References: Gatys, Ecker & Bethge, CVPR 2016, eq. 1.
    """
    if features.ndim != 4:
        raise ValueError(f"Expected features of shape [B, H, W, C], got shape {features.shape}.")
    return mse(features, target)


def _as_style_list(style_dicts, what: str) -> list:
    """A single dict means one style image; otherwise a non-empty sequence of dicts."""
    if isinstance(style_dicts, Mapping):
        return [style_dicts]
    if not isinstance(style_dicts, Sequence) or not style_dicts:
        raise ValueError(f"Expected {what} as a non-empty list of dicts (one per style image).")
    for i, item in enumerate(style_dicts):
        if not isinstance(item, Mapping):
            raise ValueError(
                f"{what}[{i}] is a {type(item).__name__}; expected a dict layer -> array."
            )
    return list(style_dicts)


def _check_layers(layers, available: Mapping, what: str) -> None:
    missing = [name for name in layers if name not in available]
    if missing:
        raise ValueError(
            f"Layers {missing} are missing from {what} (it has {sorted(available)}); "
            "compute the features and targets for every layer that has a weight."
        )


def _check_layer_weights(layer_weights) -> None:
    if not isinstance(layer_weights, Mapping) or not layer_weights:
        raise ValueError(
            "layer_weights must be a non-empty dict layer name -> weight, "
            "e.g. {'relu1_1': 1.0, 'relu2_1': 1.0}."
        )


def style_targets(
    style_features, *, layers: Sequence[str], kind: str = "gram", masks=None
) -> list[dict]:
    """Style statistics of one or several style images; compute once, outside the loop.

    Args:
      style_features: list with one dict per style image, layer -> [B_s, H, W, C]
        (images may differ in size; B_s is usually 1). A single dict is one image.
      layers: the layers to keep statistics for.
      kind: statistic kind, one of `gram.KINDS`.
      masks: optional list (one entry per style image) of None or a region mask
        [B_s, h, w] in [0, 1] at any resolution: statistics of that region only.

    Returns:
      List of dicts layer -> statistic pytree (`gram.style_statistic`), one per style.

    References: Gatys, Ecker & Bethge, CVPR 2016.
    """
    gram.check_kind(kind)
    style_features = _as_style_list(style_features, "style_features")
    if masks is None:
        masks = [None] * len(style_features)
    if len(masks) != len(style_features):
        raise ValueError(
            f"Got {len(masks)} masks for {len(style_features)} style images; pass one "
            "mask (or None) per style image."
        )
    targets = []
    for features, mask in zip(style_features, masks, strict=True):
        _check_layers(layers, features, "style_features")
        targets.append(
            {name: gram.style_statistic(features[name], kind, mask=mask) for name in layers}
        )
    return targets


def _blend_weights(blend_weights, num_styles: int) -> jax.Array:
    """[S] non-negative weights normalized to sum 1 (uniform when None)."""
    if blend_weights is None:
        return jnp.full((num_styles,), 1.0 / num_styles, jnp.float32)
    weights = jnp.asarray(blend_weights, jnp.float32)
    if weights.shape != (num_styles,):
        raise ValueError(
            f"blend_weights has shape {weights.shape} but there are {num_styles} style "
            "targets; pass one weight per style."
        )
    try:
        concrete = np.asarray(weights)
    except jax.errors.TracerArrayConversionError:
        concrete = None  # Traced weights (e.g. interpolated under jit): unchecked.
    if concrete is not None and (np.any(concrete < 0) or concrete.sum() <= 0):
        raise ValueError(f"blend_weights must be non-negative with a positive sum, got {concrete}.")
    return weights / jnp.sum(weights)


def style_loss(
    features: Mapping[str, jax.Array],
    targets,
    *,
    layer_weights: Mapping[str, float],
    blend_weights=None,
    kind: str = "gram",
    mask: jax.Array | None = None,
) -> jax.Array:
    """Style loss against one or several (blended) style targets.

    loss = sum_s b_s * sum_l w_l * mse(stat(F_l), T_{s,l})

    with b = blend_weights / sum(blend_weights) (uniform by default), w_l =
    layer_weights[l], stat = `gram.style_statistic(., kind, mask=mask)` and `mse`
    the mean over elements. For batch size 1 and kind 'gram', Gatys et al.'s
    E_l = 1/(4 N_l^2 M_l^2) sum (G_raw - A_raw)^2 equals mse(G_l, A_l) / 4, i.e.
    their weights w_l correspond to layer weights w_l / 4 here.

    Blending losses vs blending targets: sum_s b_s ||G - T_s||^2 =
    ||G - sum_s b_s T_s||^2 + (a term that does not depend on G), so this loss has
    the same gradients as the single-target loss against the weighted average of
    the targets. The loss form is implemented so that targets stay exactly as
    `style_targets` computed them and the blend can change (even traced under jit)
    without recomputing anything; the loss value differs by that constant.

    Args:
      features: dict layer -> [B, H, W, C] of the image(s) being synthesized.
      targets: list of per-style dicts layer -> statistic (from `style_targets`);
        target batch size 1 applies to the whole batch. A single dict is one style.
      layer_weights: dict layer -> weight; exactly these layers enter the loss.
      blend_weights: optional [S] non-negative weights, one per style target.
      kind: the statistic the targets were computed with (`gram.KINDS`).
      mask: optional [B, h, w] region of the features whose statistics are matched.

    Returns:
      A float32 scalar.

    References: Gatys, Ecker & Bethge, CVPR 2016, eqs. 3-5 (and Sec. 4 for style
    blending).
    """
    gram.check_kind(kind)
    _check_layer_weights(layer_weights)
    targets = _as_style_list(targets, "targets")
    _check_layers(layer_weights, features, "features")
    for target in targets:
        _check_layers(layer_weights, target, "targets")
    blend = _blend_weights(blend_weights, len(targets))  # [S]
    stats = {name: gram.style_statistic(features[name], kind, mask=mask) for name in layer_weights}
    total = jnp.zeros((), jnp.float32)
    for s, target in enumerate(targets):
        per_style = sum(w * mse(stats[name], target[name]) for name, w in layer_weights.items())
        total = total + blend[s] * per_style
    return total


def _split_masks(masks: jax.Array, num_styles: int) -> list[jax.Array]:
    """[S, h, w] / [S, B, h, w] / [S, B, h, w, 1] -> S masks of shape [B or 1, h, w]."""
    masks = jnp.asarray(masks, jnp.float32)
    if masks.ndim == 5 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim == 3:
        masks = masks[:, None]
    if masks.ndim != 4 or masks.shape[0] != num_styles:
        raise ValueError(
            f"Expected masks of shape [S, h, w] or [S, B, h, w] with S = {num_styles} "
            f"(one region per style target), got shape {masks.shape}."
        )
    return [masks[s] for s in range(num_styles)]


def spatial_style_loss(
    features: Mapping[str, jax.Array],
    targets,
    masks: jax.Array,
    *,
    layer_weights: Mapping[str, float],
    kind: str = "gram",
) -> jax.Array:
    """Region-wise style loss: each style target applies inside its own mask.

    loss = sum_s sum_l w_l * mse(stat(F_l; m_s), T_{s,l})

    where stat(F_l; m_s) is the mask-weighted statistic (`gram.masked_gram` for
    'gram') of region s, with the mask resized to each layer's resolution. Each
    region's statistic is normalized by its own area, so regions count equally
    whatever their size; an empty region contributes a constant (no gradient).

    Args:
      features: dict layer -> [B, H, W, C].
      targets: list of S per-style dicts layer -> statistic (`style_targets`,
        optionally computed with masks over the style images).
      masks: [S, h, w] (shared by the batch) or [S, B, h, w], values in [0, 1],
        typically at image resolution.
      layer_weights: dict layer -> weight.
      kind: statistic kind, one of `gram.KINDS`.

    Returns:
      A float32 scalar.

    References: Gatys et al., "Controlling Perceptual Factors in Neural Style
    Transfer", CVPR 2017, Sec. 4 (spatial control with guided Gram matrices).
    """
    gram.check_kind(kind)
    _check_layer_weights(layer_weights)
    targets = _as_style_list(targets, "targets")
    region_masks = _split_masks(masks, len(targets))
    total = jnp.zeros((), jnp.float32)
    for target, mask in zip(targets, region_masks, strict=True):
        total = total + style_loss(
            features, [target], layer_weights=layer_weights, kind=kind, mask=mask
        )
    return total


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

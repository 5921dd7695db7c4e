"""Style losses: statistics of the synthesized features matched to style targets.

Features are dicts `layer name -> [B, H, W, C]` as returned by
`vgg.VGG.apply(..., layers=...)`. Style targets are computed once, outside any
optimization loop, with `style_targets`: a list with one dict per style image,
`layer name -> statistic` (see `gram.style_statistic`). Every style loss is one
function, `statistics_loss`, which compares statistics with targets by
`perceptual.mse`, weighted per layer (`layer_weights`) and per style
(`blend_weights`), or region by region (spatial control). `style_loss` and
`spatial_style_loss` compute the statistics from features first; image
optimization (`neural_synth.optimize`) computes them itself (in tiles if need
be) and calls `statistics_loss` directly. `StackedTargets` serves networks
trained against one or several styles (per-example losses).

Names: `layer_weights` always weight the layers, `blend_weights` always mix the
styles.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016; Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time
Style Transfer and Super-Resolution", ECCV 2016; Gatys et al., "Controlling
Perceptual Factors in Neural Style Transfer", CVPR 2017.
"""

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth.losses import gram, perceptual


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


def normalize_blend(blend_weights, num_styles: int) -> np.ndarray:
    """[S] float64 blend weights normalized to sum 1 (uniform when None), on the host.

    Raises ValueError unless there is one non-negative weight per style, with a
    positive sum.
    """
    if blend_weights is None:
        return np.full((num_styles,), 1.0 / num_styles)
    weights = np.asarray(blend_weights, np.float64)
    if weights.shape != (num_styles,) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            f"Got style blend weights {[float(w) for w in np.ravel(weights)]} for {num_styles} "
            "style(s); pass one weight per style (blend_weights), each non-negative, with a "
            "positive sum."
        )
    return weights / weights.sum()


def blend_factors(blend_weights, num_styles: int) -> jax.Array:
    """[S] float32 blend weights normalized to sum 1 (uniform when None).

    Concrete weights are checked and normalized by `normalize_blend`; traced
    weights (e.g. interpolated under jit) are normalized in float32, unchecked.
    """
    try:
        return jnp.asarray(normalize_blend(blend_weights, num_styles), jnp.float32)
    except jax.errors.TracerArrayConversionError:
        pass
    weights = jnp.asarray(blend_weights, jnp.float32)
    if weights.shape != (num_styles,):
        raise ValueError(
            f"Got style blend weights of shape {weights.shape} for {num_styles} style(s); "
            "pass one weight per style (blend_weights)."
        )
    return weights / jnp.sum(weights)


def statistics_loss(
    stats,
    targets,
    *,
    layer_weights: Mapping[str, float],
    blend_weights=None,
    per_example: bool = False,
) -> jax.Array:
    """Style loss from statistics: blended over styles, or region by region.

    blended (one dict of statistics):  sum_s b_s sum_l w_l mse(S_l, T_{s,l})
    regions (one dict per target):     sum_s     sum_l w_l mse(S_{s,l}, T_{s,l})

    with b = `blend_factors(blend_weights)` (uniform by default) and w_l =
    layer_weights[l]; `perceptual.mse` is the mean over elements.

    Args:
      stats: one dict layer -> statistic (of the image(s) being synthesized),
        or one such dict per style target (statistics of region s, matched to
        target s: spatial control). A single dict is a list of one.
      targets: list of per-style dicts layer -> statistic (from `style_targets`);
        target batch size 1 applies to the whole batch.
      layer_weights: dict layer -> weight (traced scalars allowed); exactly these
        layers enter the loss.
      blend_weights: optional [S] non-negative weights, one per style target
        (blended form only); traced values allowed.
      per_example: return [B] losses (means over each example's elements)
        instead of the scalar mean over the batch.

    Returns:
      A float32 scalar, or [B] with `per_example`.

    References: Gatys, Ecker & Bethge, CVPR 2016, eqs. 3-5 (and Sec. 4 for style
    blending); Gatys et al., CVPR 2017, Sec. 4 (spatial control).
    """
    stats, targets = _as_style_list(stats, "stats"), _as_style_list(targets, "targets")
    if len(stats) == 1:
        factors = blend_factors(blend_weights, len(targets))  # [S]
        pairs = [(factors[s], stats[0], target) for s, target in enumerate(targets)]
    elif len(stats) == len(targets) and blend_weights is None:
        pairs = [(1.0, stat, target) for stat, target in zip(stats, targets, strict=True)]
    else:
        raise ValueError(
            f"Got {len(stats)} sets of statistics for {len(targets)} style targets; pass one "
            "set (blended with blend_weights) or one per target (regions, no blend_weights)."
        )
    total = jnp.zeros((), jnp.float32)
    for factor, stat, target in pairs:
        per_style = sum(
            w * perceptual.mse(stat[name], target[name], per_example=per_example)
            for name, w in layer_weights.items()
        )
        total = total + factor * per_style
    return total


def style_loss(
    features: Mapping[str, jax.Array],
    targets,
    *,
    layer_weights: Mapping[str, float],
    blend_weights=None,
    kind: str = "gram",
    mask: jax.Array | None = None,
) -> jax.Array:
    """Style loss of features against one or several (blended) style targets.

    loss = sum_s b_s * sum_l w_l * mse(stat(F_l), T_{s,l})

    with b = blend_weights / sum(blend_weights) (uniform by default), w_l =
    layer_weights[l], stat = `gram.style_statistic(., kind, mask=mask)` and `mse`
    the mean over elements (`statistics_loss`). For batch size 1 and kind 'gram',
    Gatys et al.'s E_l = 1/(4 N_l^2 M_l^2) sum (G_raw - A_raw)^2 equals
    mse(G_l, A_l) / 4, i.e. their weights w_l correspond to layer weights w_l / 4
    here.

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
    stats = {name: gram.style_statistic(features[name], kind, mask=mask) for name in layer_weights}
    return statistics_loss(stats, targets, layer_weights=layer_weights, blend_weights=blend_weights)


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
    _check_layers(layer_weights, features, "features")
    for target in targets:
        _check_layers(layer_weights, target, "targets")
    stats = [
        {name: gram.style_statistic(features[name], kind, mask=mask) for name in layer_weights}
        for mask in region_masks
    ]
    return statistics_loss(stats, targets, layer_weights=layer_weights)


# ----------------------------------------------------------------------------- trained networks


@dataclasses.dataclass(frozen=True)
class StackedTargets:
    """Gram targets of N style images stacked per layer, with normalized layer weights.

    For networks trained against fixed styles (texture networks, stylization
    networks, texture-styled markers): `grams[layer]` is [N, C, C];
    `layer_weights[layer]` is the configured layer weight divided by the mean
    square of that layer's targets over all styles (`perceptual.relative_weight`),
    so a weight of 1 means "as large as the target itself" for random,
    torchvision or Caffe VGG weights alike. Build it with `stacked_targets`.
    """

    grams: dict
    layer_weights: dict

    @property
    def num_styles(self) -> int:
        return next(iter(self.grams.values())).shape[0]

    def loss(self, features: Mapping[str, jax.Array], style_ids: jax.Array | None = None):
        """Per-example Gram loss [B]: example b is matched to style `style_ids[b]` (0 if None).

        sum_l w_l mean_{c,d} (G_l[b] - T_l[style_ids[b]])^2 (`statistics_loss`).
        """
        stats = {name: gram.gram(features[name]) for name in self.layer_weights}
        chosen = slice(0, 1) if style_ids is None else style_ids
        targets = {name: self.grams[name][chosen] for name in self.layer_weights}
        return statistics_loss(stats, [targets], layer_weights=self.layer_weights, per_example=True)


def stacked_targets(
    style_features: Sequence[Mapping[str, jax.Array]], layer_weights: Mapping[str, float]
) -> StackedTargets:
    """`StackedTargets` from the features of N style images (dicts layer -> [1, H, W, C]).

    Styles may differ in size. Computed once, on the host.

    References: Johnson, Alahi & Fei-Fei, ECCV 2016 (Gram targets for trained
    networks); Dumoulin, Shlens & Kudlur, "A Learned Representation for
    Artistic Style", ICLR 2017 (several styles in one network).
    """
    _check_layer_weights(layer_weights)
    style_features = _as_style_list(style_features, "style_features")
    for features in style_features:
        _check_layers(layer_weights, features, "style_features")
    grams = {
        name: jnp.concatenate([gram.gram(f[name]) for f in style_features])
        for name in layer_weights
    }
    weights = {
        name: perceptual.relative_weight(float(w), [grams[name]])
        for name, w in layer_weights.items()
    }
    return StackedTargets(grams=grams, layer_weights=weights)

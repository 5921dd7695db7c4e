"""The Gatys objective: what `loop` minimises, from a static spec and its array data.

Loss, for images x (all terms averaged over the batch):

  L = style_weight * sum_l w_l mse(S(F_l(x)), T_l) / n_l       (style)
    + content_weight * sum_c mse(F_c(x), P_c) / m_c              (content)
    + tv_weight * TV(x) + range_weight * mean(dist(x, [0, 1])^2)

with S the style statistic ('gram' | 'mean' | 'mean_std', `losses.gram`), T the
targets (several style images are blended with `blend_weights`, or each applied
to its own region with `region_masks`), and with `GatysOptions.normalize` the
per-layer normalizers n_l = mean(T_l^2) (blend-weighted over styles) and m_c =
mean(P_c^2) (`perceptual.relative_weight`): each term is then a relative squared
error, so the weights mean the same with random, torchvision or Caffe VGG
weights, whose feature scales differ by orders of magnitude. Without it, n_l =
m_c = 1 and the loss is exactly `style.style_loss` / `perceptual.content_loss`
times the weights. The normalizers are folded into the per-layer weights of
`LossData` once, when the problem is built (`problem`).

`LossSpec` is the static part (hashable; part of the traced function); `LossData`
holds the arrays (a pytree passed to the compiled loop, computed once per
scale). With `LossSpec.tile_size`, the style and content terms and their
gradient are computed window by window (`tiling`), exactly.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016; Gatys et al., "Controlling Perceptual Factors in
Neural Style Transfer", CVPR 2017; Mahendran & Vedaldi, "Understanding Deep
Image Representations by Inverting Them", CVPR 2015 (total variation).
"""

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp

from neural_synth.losses import gram, perceptual, style
from neural_synth.models import vgg
from neural_synth.optimize import color_transfer, tiling


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """The static part of the loss (hashable; part of the traced function).

    Attributes:
      module: the VGG; layers: every layer it returns (style and content).
      style_layers, content_layers: the layers of each term (content: () without).
      statistic: the style statistic (`gram.KINDS`).
      spatial: each style target applies inside its own region mask.
      luminance: the parameters are luma [B, H, W, 1] (shown to VGG as grey RGB).
      tv_weight, range_weight: weights of the pixel terms (0: off).
      tile_size: core size of the windows of `tiling` (0: whole image at once).
    """

    module: vgg.VGG
    layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    statistic: str
    spatial: bool
    luminance: bool
    tv_weight: float
    range_weight: float
    tile_size: int = 0


@flax.struct.dataclass
class LossData:
    """The loss's array arguments (a pytree), computed once per scale by `problem`.

    Attributes:
      vgg: frozen VGG variables (`vgg.freeze`).
      style_targets: one dict layer -> target statistic per style image.
      style_layer_weights: layer -> style_weight * w_l / n_l (float32 scalars).
      blend_weights: [S] per-style weights, summing to 1 (unused with regions).
      region_masks: [S, H, W] region of each style (spatial control) or None.
      content_targets: layer -> [B, h, w, C] content features ({} for textures).
      content_layer_weights: layer -> content_weight / m_c (float32 scalars).
    """

    vgg: dict
    style_targets: list
    style_layer_weights: dict
    blend_weights: jax.Array
    region_masks: jax.Array | None = None
    content_targets: dict = dataclasses.field(default_factory=dict)
    content_layer_weights: dict = dataclasses.field(default_factory=dict)

    def style_term(self, stats: list[dict], *, spatial: bool) -> jax.Array:
        """The weighted style term from statistics: of the image, or of each region (spatial)."""
        return style.statistics_loss(
            stats,
            self.style_targets,
            layer_weights=self.style_layer_weights,
            blend_weights=None if spatial else self.blend_weights,
        )


def uses_tiles(params: jax.Array, spec: LossSpec) -> bool:
    """Whether the features of `params` [B, H, W, C] are computed window by window."""
    return bool(spec.tile_size) and min(params.shape[1:3]) > spec.tile_size


def loss_terms(params: jax.Array, data: LossData, spec: LossSpec) -> dict[str, jax.Array]:
    """Weighted loss terms {'style', 'content', 'tv', 'range'} of images `params`.

    Args:
      params: [B, H, W, 3] images (or [B, H, W, 1] luma in luminance mode).
      data: the targets and weights (`LossData`).
      spec: the static configuration.
    """
    if uses_tiles(params, spec):
        terms = tiling.terms(params, data, spec)
    else:
        terms = _feature_terms(params, data, spec)
    return {**terms, **_pixel_terms(params, spec)}


def total_loss(params: jax.Array, data: LossData, spec: LossSpec) -> jax.Array:
    """The scalar objective: the sum of `loss_terms` (tiled gradient with `tile_size`)."""
    if uses_tiles(params, spec):
        return tiling.loss(params, data, spec) + sum(_pixel_terms(params, spec).values())
    return sum(loss_terms(params, data, spec).values())


def _feature_terms(params: jax.Array, data: LossData, spec: LossSpec) -> dict[str, jax.Array]:
    """Style and content terms from the features of the whole image."""
    images = color_transfer.gray_to_rgb(params) if spec.luminance else params
    feats = spec.module.apply(data.vgg, images, layers=spec.layers)
    regions = [None] if not spec.spatial else [m[None] for m in data.region_masks]
    stats = [
        {
            name: gram.style_statistic(feats[name], spec.statistic, mask=mask)
            for name in spec.style_layers
        }
        for mask in regions
    ]
    terms = {"style": data.style_term(stats, spatial=spec.spatial)}
    if spec.content_layers:
        terms["content"] = sum(
            data.content_layer_weights[name] * perceptual.content_loss(feats[name], target)
            for name, target in data.content_targets.items()
        )
    return terms


def _pixel_terms(params: jax.Array, spec: LossSpec) -> dict[str, jax.Array]:
    """Smoothness and range terms of the images themselves."""
    terms = {}
    if spec.tv_weight:
        terms["tv"] = spec.tv_weight * perceptual.total_variation(params)
    if spec.range_weight:
        outside = params - jnp.clip(params, 0.0, 1.0)
        terms["range"] = spec.range_weight * jnp.mean(jnp.square(outside))
    return terms

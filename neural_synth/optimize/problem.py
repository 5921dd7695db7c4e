"""One scale of a Gatys synthesis as a `Problem`: style and content targets, weights, spec.

`build_problem` runs once per scale, outside the compiled loop: it brings the
style images to this scale (resized, recoloured, palette-reduced, luma only:
`GatysOptions`), computes their style statistics and the content features (in
windows when they are large, `tiling`), folds the target normalizers into the
per-layer weights (`perceptual.relative_weight`) and returns the static
`objective.LossSpec` with the `objective.LossData` arrays that the loop takes.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016; Gatys et al., "Preserving Color in Neural Artistic
Style Transfer", arXiv:1606.05897, 2016; Gatys et al., "Controlling Perceptual
Factors in Neural Style Transfer", CVPR 2017.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth import io
from neural_synth.losses import perceptual, style
from neural_synth.models import vgg
from neural_synth.optimize import color_transfer, objective, palette, tiling
from neural_synth.optimize import options as options_lib


@dataclasses.dataclass
class Problem:
    """Everything one scale's optimization needs.

    Attributes:
      spec: static loss configuration; data: the loss's array arguments, computed
        once; content: [B, h, w, 3] content images at this scale (None for
        textures); size: (h, w).
    """

    spec: objective.LossSpec
    data: objective.LossData
    content: np.ndarray | None
    size: tuple[int, int]


def make_features_fn(module: vgg.VGG, layers: tuple[str, ...]) -> Callable:
    """Jitted features_fn(variables, images) -> {layer: features} (reusable across scales)."""
    return jax.jit(functools.partial(module.apply, layers=layers))


def build_problem(
    module: vgg.VGG,
    variables: dict,
    *,
    styles: Sequence[np.ndarray],
    content: np.ndarray | None,
    size: tuple[int, int],
    full_size: tuple[int, int],
    options: options_lib.GatysOptions,
    blend_weights=None,
    region_masks: np.ndarray | None = None,
    features_fn: Callable | None = None,
) -> Problem:
    """Targets and the static loss spec for output `size` (one scale of `full_size`).

    Args:
      module, variables: VGG and its (frozen, `vgg.freeze`) variables.
      styles: style images [h, w, 3] at their own resolution.
      content: [B, H, W, 3] content images (any size; resized to `size`) or None.
      size: this scale's output (height, width); full_size: the final one.
      options: `GatysOptions`; blend_weights: [S] (None: uniform);
      region_masks: [S, H, W] masks in [0, 1] (spatial control) or None.
      features_fn: optional jitted features_fn(variables, images) to reuse.
    """
    layers, content_layers = options_lib.loss_layers(options, content is not None)
    features_fn = features_fn or make_features_fn(module, layers)
    content = None if content is None else np.stack([_resize_to(c, *size) for c in content])
    batches = _style_batches(styles, content, options, size, full_size, module.arch)
    targets = _style_targets(features_fn, variables, batches, options, module)
    blend = style.normalize_blend(blend_weights if region_masks is None else None, len(styles))
    data = objective.LossData(
        vgg=variables,
        style_targets=targets,
        style_layer_weights=_style_layer_weights(targets, blend, options),
        blend_weights=jnp.asarray(blend, jnp.float32),
    )
    if region_masks is not None:
        resized = _resize_to(np.moveaxis(region_masks, 0, -1), *size)  # [h, w, S]
        data = data.replace(region_masks=jnp.asarray(np.moveaxis(resized, -1, 0)))
    if content_layers:
        targets = _content_targets(features_fn, variables, content, options, module, content_layers)
        weights = _content_layer_weights(targets, options)
        data = data.replace(content_targets=targets, content_layer_weights=weights)
    spec = _loss_spec(module, layers, content_layers, options, spatial=region_masks is not None)
    return Problem(spec=spec, data=data, content=content, size=tuple(size))


def _loss_spec(module, layers, content_layers, options, *, spatial: bool) -> objective.LossSpec:
    return objective.LossSpec(
        module=module,
        layers=layers,
        style_layers=tuple(options.style_layers),
        content_layers=content_layers,
        statistic=options.statistic,
        spatial=spatial,
        luminance=options.preserve_color == "luminance",
        tv_weight=float(options.tv_weight),
        range_weight=float(options.range_weight) if options.optimizer == "lbfgs" else 0.0,
        tile_size=int(options.tile_size),
    )


# ----------------------------------------------------------------------------- images per scale


def _resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return io.resize(image, size=(height, width))


def _style_size(style_image: np.ndarray, level: tuple, full: tuple, scale: float | None) -> tuple:
    """(height, width) of a style image at a level of the pyramid."""
    height, width = style_image.shape[:2]
    zoom = level[0] / full[0]  # This level's size relative to the final output.
    if scale is not None:
        zoom *= scale * max(full) / max(height, width)
    return max(1, round(height * zoom)), max(1, round(width * zoom))


def _style_batches(styles, content, options, size, full_size, arch: str) -> list[np.ndarray]:
    """Each style image as VGG input at this scale; an error if one gets too small."""
    need = vgg.pooling_stride(arch, options.style_layers)
    batches = []
    for i, style_image in enumerate(styles):
        style_size = _style_size(style_image, size, full_size, options.style_scale)
        if min(style_size) < need:
            raise ValueError(
                f"Style image {i} would be {style_size[0]}x{style_size[1]} at output size "
                f"{size[0]}x{size[1]}, smaller than the {need} pixels layers "
                f"{list(options.style_layers)} need; raise the style scale or use fewer scales."
            )
        batches.append(style_batch(style_image, content, options, style_size))
    return batches


def style_batch(style_image, content, options: options_lib.GatysOptions, size: tuple) -> np.ndarray:
    """One style image as VGG input at `size`: [1 or B, h, w, 3] (B: one per content image)."""
    style_image = _resize_to(style_image, *size)
    if options.preserve_color == "histogram":
        batch = [
            color_transfer.match_color(style_image, c, mode=options.color_match) for c in content
        ]
    else:
        batch = [style_image]
    if options.palette_colors:
        batch = [palette.reduce_palette(s, num_colors=options.palette_colors) for s in batch]
    if options.preserve_color == "luminance":
        batch = [color_transfer.style_luminance(s, c) for s in batch for c in content]
        batch = [np.repeat(y, 3, axis=-1) for y in batch]
    return np.stack(batch)


def _content_input(content: np.ndarray | None, options: options_lib.GatysOptions):
    """Content images as VGG sees them: RGB, or grey (R = G = B = Y) for luminance mode."""
    if content is None or options.preserve_color != "luminance":
        return content
    return np.repeat(color_transfer.luma(content), 3, axis=-1)


# ----------------------------------------------------------------------------- targets and weights


def _style_targets(features_fn, variables, style_batches, options, module) -> list:
    """One dict layer -> statistic per style image, computed once (in tiles if large)."""
    targets, layers = [], tuple(options.style_layers)
    for batch in style_batches:
        if tiling.fits(*batch.shape[1:3], options.tile_size, module.arch, layers):
            stats = tiling.style_statistics(
                module,
                variables,
                jnp.asarray(batch),
                layers=layers,
                kind=options.statistic,
                tile_size=options.tile_size,
            )
            targets.append(stats)
            continue
        feats = features_fn(variables, jnp.asarray(batch))
        targets += style.style_targets([feats], layers=layers, kind=options.statistic)
    return targets


def _content_targets(features_fn, variables, content, options, module, layers) -> dict:
    """layer -> content features [B, h, w, C] (in tiles if large)."""
    images = jnp.asarray(_content_input(content, options))
    if tiling.fits(*images.shape[1:3], options.tile_size, module.arch, layers):
        return tiling.features(
            module, variables, images, layers=layers, tile_size=options.tile_size
        )
    feats = features_fn(variables, images)
    return {name: feats[name] for name in layers}


def _style_layer_weights(targets, blend: np.ndarray, options: options_lib.GatysOptions) -> dict:
    """layer -> style_weight * w_l / n_l (n_l: blend-weighted mean square of the targets)."""
    raw = options.style_layer_weights or (1.0,) * len(options.style_layers)
    weights = {}
    for name, w in zip(options.style_layers, raw, strict=True):
        weight = options.style_weight * w
        if options.normalize:
            layer_targets = [t[name] for t in targets]
            weight = perceptual.relative_weight(weight, layer_targets, blend_weights=blend)
        weights[name] = jnp.float32(weight)
    return weights


def _content_layer_weights(content_targets: dict, options: options_lib.GatysOptions) -> dict:
    """layer -> content_weight / m_c (m_c: mean square of the content features)."""
    weights = {}
    for name, target in content_targets.items():
        weight = options.content_weight
        if options.normalize:
            weight = perceptual.relative_weight(weight, [target])
        weights[name] = jnp.float32(weight)
    return weights

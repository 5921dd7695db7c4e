"""Texture synthesis and style transfer by optimizing the image (Gatys et al.).

One entry point, `synthesize`, does both: with `content` it is style transfer
(content loss on `content_layers` plus style loss), without it texture synthesis
(style loss only). The image starts from noise, the content or a given image and
is optimized by L-BFGS or Adam, every step compiled (`loop.Loop`): VGG weights
frozen (`vgg.freeze`, no weight gradients, XLA's fast convolution path inside the
loop), style and content targets computed once per scale, outside the loop.

Loss, for images x (all terms averaged over the batch):

  L = style_weight * sum_l w_l mse(S(F_l(x)), T_l) / n_l       (style)
    + content_weight * sum_c mse(F_c(x), P_c) / m_c              (content)
    + tv_weight * TV(x) + range_weight * mean(dist(x, [0, 1])^2)

with S the style statistic ('gram' | 'mean' | 'mean_std', `losses.gram`), T the
targets (several style images are blended with `blend_weights`, or each applied
to its own region with `masks`), and with `normalize=True` the per-layer
normalizers n_l = mean(T_l^2) (blend-weighted over styles) and m_c = mean(P_c^2):
each term is then a relative squared error, so the weights mean the same with
random, torchvision or Caffe VGG weights, whose feature scales differ by orders
of magnitude. With `normalize=False`, n_l = m_c = 1 and the loss is exactly
`perceptual.style_loss` / `content_loss` times the weights.

Range: Adam steps are projected to [0, 1]; L-BFGS is kept near the range by the
smooth `range_weight` penalty and the result is clipped (see `loop`).

Colour (`preserve_color`): 'luminance' optimizes the luma only (the style's luma
matched to the content's mean and std), then takes the chroma from the content;
'histogram' recolours the style images to the content's colour mean and
covariance first (`color_transfer`). Style images can be rescaled relative to the
output (`style_scale`) and reduced to a few colours (`palette_colors`).

Several content images (or, for textures, several seeds) are optimized as one
batch, split over the devices of a 1-D `data` mesh (1 device works the same).
Images of a batch never interact with Adam; L-BFGS shares its line search (one
step size) across the batch, so batch members influence each other's steps.

References: Gatys, Ecker & Bethge, "Texture Synthesis Using Convolutional Neural
Networks", NeurIPS 2015; Gatys, Ecker & Bethge, "Image Style Transfer Using
Convolutional Neural Networks", CVPR 2016; Gatys et al., "Preserving Color in
Neural Artistic Style Transfer", arXiv:1606.05897, 2016; Gatys et al.,
"Controlling Perceptual Factors in Neural Style Transfer", CVPR 2017.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neural_synth import io
from neural_synth.losses import gram, perceptual
from neural_synth.models import vgg
from neural_synth.optimize import (
    color_transfer,
    loop,
    masks,
    multiscale,
    palette,
    statistics,
    tiling,
)
from neural_synth.train import mesh as mesh_lib

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
INITS = ("noise", "content", "image")
COLOR_MODES = ("none", "luminance", "histogram")
_NORM_FLOOR = 1e-12


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    """Everything about a synthesis except the images.

    Attributes:
      style_layers / style_layer_weights: layers of the style loss and their
        weights w_l (default 1 each).
      content_layers: layers of the content loss (style transfer only).
      content_weight, style_weight, tv_weight, range_weight: loss weights.
      statistic: style statistic, one of `gram.KINDS`.
      normalize: divide each term by the mean square of its target (module doc).
      optimizer: 'lbfgs' or 'adam'; learning_rate is Adam's (pixel units);
        lbfgs_memory the L-BFGS history length.
      num_steps: steps at the final (full) scale; coarse_steps: steps at each
        coarser scale (default num_steps); num_scales: coarse-to-fine levels,
        each twice the size of the previous.
      chunk_size: steps per compiled dispatch (progress is reported between).
      init: 'noise' (uniform in [0, 1]), 'content' or 'image' (the init image).
      seed: seeds the noise; image b of a batch uses fold_in(key(seed), b).
      preserve_color: 'none', 'luminance' or 'histogram' (needs content).
      color_match: the matrix of 'histogram' matching ('cholesky' or 'sym').
      style_scale: style image's longer side as a multiple of the output's
        longer side; None keeps its own resolution.
      palette_colors: reduce each style image to this many colours (0: off).
      tile_size: compute loss and gradient in windows of this core size plus a
        halo (`tiling`): exact, ~1.5-2x slower, memory of one window; for
        outputs too large otherwise (0: whole image at once).
    """

    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 0.0
    range_weight: float = 100.0
    statistic: str = "gram"
    normalize: bool = True
    optimizer: str = "lbfgs"
    learning_rate: float = 0.02
    lbfgs_memory: int = 10
    num_steps: int = 200
    coarse_steps: int | None = None
    num_scales: int = 1
    chunk_size: int = 20
    init: str = "noise"
    seed: int = 0
    preserve_color: str = "none"
    color_match: str = "cholesky"
    style_scale: float | None = None
    palette_colors: int = 0
    tile_size: int = 0


def min_side(arch: str, layers: Sequence[str]) -> int:
    """Smallest image side VGG `arch` accepts for `layers` (2 ** pools before the deepest)."""
    return tiling.alignment(arch, layers)


def check_size(size: tuple[int, int], arch: str, layers: Sequence[str]) -> None:
    """Raises ValueError when an output of `size` (height, width) is too small for `layers`."""
    need = min_side(arch, layers)
    if min(size) < need:
        raise ValueError(
            f"Output {size[1]}x{size[0]} is too small for layers {list(layers)}: they need at "
            f"least {need} pixels per side; make the image larger or use shallower layers."
        )


def check_options(options: Options, arch: str, *, has_content: bool) -> tuple[str, ...]:
    """Raises ValueError naming the fix for bad options; returns the VGG layers needed."""
    valid = vgg.layer_names(arch)
    for what, layers in (("style", options.style_layers), ("content", options.content_layers)):
        unknown = [name for name in layers if name not in valid]
        if unknown or (what == "style" and not layers):
            raise ValueError(
                f"Unknown {arch} {what} layer(s) {unknown or '(none given)'}; "
                f"valid: {', '.join(valid)}."
            )
    weights = options.style_layer_weights
    if weights is not None and len(weights) != len(options.style_layers):
        raise ValueError(
            f"Got {len(weights)} style layer weights for {len(options.style_layers)} style "
            "layers; give one weight per layer."
        )
    gram.check_kind(options.statistic)
    _check_choice("optimizer", options.optimizer, loop.OPTIMIZERS)
    _check_choice("init", options.init, INITS)
    _check_choice("preserve_color", options.preserve_color, COLOR_MODES)
    _check_choice("color_match", options.color_match, color_transfer.MATCH_MODES)
    if not has_content and (options.init == "content" or options.preserve_color != "none"):
        raise ValueError("init='content' and preserve_color need a content image.")
    if options.num_steps < 0 or options.num_scales < 1 or options.chunk_size < 1:
        raise ValueError("Need num_steps >= 0, num_scales >= 1 and chunk_size >= 1.")
    if options.style_scale is not None and options.style_scale <= 0:
        raise ValueError(f"style_scale must be positive, got {options.style_scale}.")
    if options.palette_colors and not 2 <= options.palette_colors <= palette.MAX_COLORS:
        raise ValueError(f"palette_colors must be 0 (off) or in [2, {palette.MAX_COLORS}].")
    layers = _layers(options, has_content)[0]
    align = tiling.alignment(arch, layers)
    if options.tile_size < 0 or options.tile_size % align:
        raise ValueError(
            f"tile_size must be 0 (off) or a positive multiple of {align} (the pooling stride "
            f"of layers {list(layers)}), got {options.tile_size}."
        )
    return layers


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; expected one of {tuple(choices)}.")


# ----------------------------------------------------------------------------- images per scale


def _resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return io.resize(image, size=(height, width))


def _style_size(style: np.ndarray, level: tuple, full: tuple, scale: float | None) -> tuple:
    """(height, width) of a style image at a level of the pyramid."""
    height, width = style.shape[:2]
    zoom = level[0] / full[0]  # This level's size relative to the final output.
    if scale is not None:
        zoom *= scale * max(full) / max(height, width)
    return max(1, round(height * zoom)), max(1, round(width * zoom))


def _style_batch(style, content, options: Options, size: tuple) -> np.ndarray:
    """One style image as VGG input at `size`: [1 or B, h, w, 3] (B: one per content image)."""
    style = _resize_to(style, *size)
    if options.preserve_color == "histogram":
        batch = [color_transfer.match_color(style, c, mode=options.color_match) for c in content]
    else:
        batch = [style]
    if options.palette_colors:
        batch = [palette.reduce_palette(s, num_colors=options.palette_colors) for s in batch]
    if options.preserve_color == "luminance":
        batch = [color_transfer.style_luminance(s, c) for s in batch for c in content]
        batch = [np.repeat(y, 3, axis=-1) for y in batch]
    return np.stack(batch)


def _content_input(content: np.ndarray | None, options: Options) -> np.ndarray | None:
    """Content images as VGG sees them: RGB, or grey (R = G = B = Y) for luminance mode."""
    if content is None or options.preserve_color != "luminance":
        return content
    return np.repeat(color_transfer.luma(content), 3, axis=-1)


# ----------------------------------------------------------------------------- targets and loss


@dataclasses.dataclass(frozen=True)
class _Spec:
    """The static part of the loss (hashable; part of the traced function)."""

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


def _features_fn(module: vgg.VGG, layers: tuple[str, ...]) -> Callable:
    return jax.jit(functools.partial(module.apply, layers=layers))


def _style_targets(features_fn, variables, style_batches, options: Options, module) -> list:
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
        targets += perceptual.style_targets([feats], layers=layers, kind=options.statistic)
    return targets


def _content_targets(features_fn, variables, content, options: Options, module, layers) -> dict:
    """layer -> content features [B, h, w, C] (in tiles if large)."""
    images = jnp.asarray(_content_input(content, options))
    if tiling.fits(*images.shape[1:3], options.tile_size, module.arch, layers):
        return tiling.features(
            module, variables, images, layers=layers, tile_size=options.tile_size
        )
    feats = features_fn(variables, images)
    return {name: feats[name] for name in layers}


def _style_layer_weights(targets, blend: np.ndarray, options: Options) -> dict:
    """layer -> style_weight * w_l / n_l (n_l: blend-weighted mean square of the targets)."""
    raw = options.style_layer_weights or (1.0,) * len(options.style_layers)
    weights = {}
    for name, w in zip(options.style_layers, raw, strict=True):
        norm = 1.0
        if options.normalize:
            norm = sum(b * _mean_square(t[name]) for b, t in zip(blend, targets, strict=True))
        weights[name] = jnp.float32(options.style_weight * w / max(norm, _NORM_FLOOR))
    return weights


def _mean_square(tree) -> float:
    """mse(tree, 0): the mean of squares of each leaf, summed over leaves."""
    return sum(float(jnp.mean(jnp.square(leaf))) for leaf in jax.tree.leaves(tree))


def _content_weights(content_targets: dict, options: Options) -> dict:
    weights = {}
    for name, target in content_targets.items():
        norm = _mean_square(target) if options.normalize else 1.0
        weights[name] = jnp.float32(options.content_weight / max(norm, _NORM_FLOOR))
    return weights


def loss_terms(params: jax.Array, data: dict, spec: _Spec) -> dict[str, jax.Array]:
    """Weighted loss terms {'style', 'content', 'tv', 'range'} of images `params`.

    Args:
      params: [B, H, W, 3] images (or [B, H, W, 1] luma in luminance mode).
      data: 'vgg' (frozen variables), 'style' (list of per-style target dicts),
        'style_weights' / 'content_weights' (layer -> scalar), 'blend' [S],
        'masks' ([S, H, W] or None), 'content' (layer -> [B, h, w, C] targets).
      spec: the static configuration.
    """
    if spec.tile_size and min(params.shape[1:3]) > spec.tile_size:
        terms = tiling.terms(params, data, spec)
    else:
        terms = _feature_terms(params, data, spec)
    return {**terms, **_pixel_terms(params, spec)}


def _feature_terms(params: jax.Array, data: dict, spec: _Spec) -> dict[str, jax.Array]:
    """Style and content terms from the features of the whole image."""
    images = color_transfer.gray_to_rgb(params) if spec.luminance else params
    feats = spec.module.apply(data["vgg"], images, layers=spec.layers)
    kind, weights = spec.statistic, data["style_weights"]
    regions = [None] if not spec.spatial else [m[None] for m in data["masks"]]
    stats = [
        {name: statistics.style_statistic(feats[name], kind, mask=m) for name in spec.style_layers}
        for m in regions
    ]
    blend = None if spec.spatial else data["blend"]
    style = statistics.style_loss(stats, data["style"], layer_weights=weights, blend=blend)
    terms = {"style": style}
    if spec.content_layers:
        terms["content"] = sum(
            data["content_weights"][name] * perceptual.content_loss(feats[name], target)
            for name, target in data["content"].items()
        )
    return terms


def _pixel_terms(params: jax.Array, spec: _Spec) -> dict[str, jax.Array]:
    """Smoothness and range terms of the images themselves."""
    terms = {}
    if spec.tv_weight:
        terms["tv"] = spec.tv_weight * perceptual.total_variation(params)
    if spec.range_weight:
        outside = params - jnp.clip(params, 0.0, 1.0)
        terms["range"] = spec.range_weight * jnp.mean(jnp.square(outside))
    return terms


def total_loss(params: jax.Array, data: dict, spec: _Spec) -> jax.Array:
    """The scalar objective: the sum of `loss_terms` (tiled gradient with `tile_size`)."""
    if spec.tile_size and min(params.shape[1:3]) > spec.tile_size:
        return tiling.loss(params, data, spec) + sum(_pixel_terms(params, spec).values())
    return sum(loss_terms(params, data, spec).values())


# ----------------------------------------------------------------------------- one scale


@dataclasses.dataclass
class Problem:
    """Everything one scale's optimization needs.

    Attributes:
      spec: static loss configuration; data: the loss's array arguments (see
        `loss_terms`), computed once; content: [B, h, w, 3] content images at
        this scale (None for textures); size: (h, w).
    """

    spec: _Spec
    data: dict
    content: np.ndarray | None
    size: tuple[int, int]


def _layers(options: Options, has_content: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(all layers VGG must return, content layers in the loss)."""
    use_content = has_content and options.content_weight > 0
    content_layers = tuple(options.content_layers) if use_content else ()
    return tuple(dict.fromkeys(tuple(options.style_layers) + content_layers)), content_layers


def _blend(blend_weights, num_styles: int) -> np.ndarray:
    if blend_weights is None:
        return np.full((num_styles,), 1.0 / num_styles)
    weights = np.asarray(blend_weights, np.float64)
    if weights.shape != (num_styles,) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            f"Got style blend weights {[float(w) for w in np.ravel(weights)]} for {num_styles} "
            "style image(s); give one non-negative weight per style, with a positive sum."
        )
    return weights / weights.sum()


def build_problem(
    module: vgg.VGG,
    variables: dict,
    *,
    styles: Sequence[np.ndarray],
    content: np.ndarray | None,
    size: tuple[int, int],
    full_size: tuple[int, int],
    options: Options,
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
      options: `Options`; blend_weights: [S] (None: uniform);
      region_masks: [S, H, W] masks in [0, 1] (spatial control) or None.
      features_fn: optional jitted features_fn(variables, images) to reuse.
    """
    layers, content_layers = _layers(options, content is not None)
    features_fn = features_fn or _features_fn(module, layers)
    content = None if content is None else np.stack([_resize_to(c, *size) for c in content])
    need = min_side(module.arch, options.style_layers)
    style_batches = []
    for i, style in enumerate(styles):
        style_size = _style_size(style, size, full_size, options.style_scale)
        if min(style_size) < need:
            raise ValueError(
                f"Style image {i} would be {style_size[0]}x{style_size[1]} at output size "
                f"{size[0]}x{size[1]}, smaller than the {need} pixels layers "
                f"{list(options.style_layers)} need; raise the style scale or use fewer scales."
            )
        style_batches.append(_style_batch(style, content, options, style_size))
    targets = _style_targets(features_fn, variables, style_batches, options, module)
    blend = _blend(blend_weights if region_masks is None else None, len(styles))
    data = {
        "vgg": variables,
        "style": targets,
        "style_weights": _style_layer_weights(targets, blend, options),
        "blend": jnp.asarray(blend, jnp.float32),
        "masks": None,
        "content": {},
        "content_weights": {},
    }
    if region_masks is not None:
        resized = _resize_to(np.moveaxis(region_masks, 0, -1), *size)  # [h, w, S]
        data["masks"] = jnp.asarray(np.moveaxis(resized, -1, 0))
    if content_layers:
        data["content"] = _content_targets(
            features_fn, variables, content, options, module, content_layers
        )
        data["content_weights"] = _content_weights(data["content"], options)
    spec = _Spec(
        module=module,
        layers=layers,
        style_layers=tuple(options.style_layers),
        content_layers=content_layers,
        statistic=options.statistic,
        spatial=region_masks is not None,
        luminance=options.preserve_color == "luminance",
        tv_weight=float(options.tv_weight),
        range_weight=float(options.range_weight) if options.optimizer == "lbfgs" else 0.0,
        tile_size=int(options.tile_size),
    )
    return Problem(spec=spec, data=data, content=content, size=tuple(size))


def initial_params(
    options: Options,
    *,
    batch: int,
    size: tuple[int, int],
    content: np.ndarray | None = None,
    init_image: np.ndarray | None = None,
) -> jax.Array:
    """Starting images [B, h, w, C] (C = 1 in luminance mode) for `options.init`."""
    channels = 1 if options.preserve_color == "luminance" else 3
    if options.init == "noise":
        key = jax.random.key(options.seed)
        shape = (*size, channels)
        return jnp.stack(
            [jax.random.uniform(jax.random.fold_in(key, b), shape) for b in range(batch)]
        )
    if options.init == "content":
        images = content
    else:
        images = np.broadcast_to(_resize_to(init_image, *size), (batch, *size, 3))
    if channels == 1:
        images = color_transfer.luma(images)
    return jnp.asarray(images, jnp.float32)


def to_rgb(params: jax.Array, problem: Problem) -> jax.Array:
    """Images [B, h, w, 3] in [0, 1] from the parameters of `problem`."""
    if problem.spec.luminance:
        return color_transfer.combine_luminance(jnp.clip(params, 0.0, 1.0), problem.content)
    return jnp.clip(params, 0.0, 1.0)


def data_mesh(batch: int) -> jax.sharding.Mesh:
    """A 1-D `data` mesh over the most devices that divide `batch` evenly."""
    devices = jax.devices()
    count = max(d for d in range(1, len(devices) + 1) if batch % d == 0)
    return mesh_lib.make_mesh(devices[:count])


def place(params: jax.Array, problem: Problem, mesh) -> tuple[jax.Array, dict]:
    """Batch-sharded parameters and content targets; everything else replicated."""
    split, whole = mesh_lib.batch_sharding(mesh), mesh_lib.replicated(mesh)
    data = dict(problem.data)
    content = data.pop("content")
    data = jax.device_put(data, whole)
    data["content"] = jax.device_put(content, split)
    return jax.device_put(params, split), data


def optimize(
    params: jax.Array,
    problem: Problem,
    options: Options,
    *,
    num_steps: int,
    mesh=None,
    callback: Callable | None = None,
) -> jax.Array:
    """Runs `num_steps` compiled steps of `problem` from `params`; returns the parameters.

    `params` are donated. `callback(report)` gets a `loop.Report` per chunk.
    """
    mesh = mesh or data_mesh(params.shape[0])
    params, data = place(params, problem, mesh)
    runner = loop.Loop(
        functools.partial(total_loss, spec=problem.spec),
        loop.make_optimizer(
            options.optimizer,
            learning_rate=options.learning_rate,
            memory_size=options.lbfgs_memory,
        ),
        is_lbfgs=options.optimizer == "lbfgs",
        clip=options.optimizer == "adam",
        chunk_size=options.chunk_size,
        terms_fn=functools.partial(_report_terms, spec=problem.spec),
        scale=loop.lbfgs_scale(params.size) if options.optimizer == "lbfgs" else 1.0,
    )
    return runner.run(params, data, num_steps=num_steps, callback=callback)


def _report_terms(params, data, spec):
    terms = loss_terms(params, data, spec)
    return {**terms, "total": sum(terms.values())}


# ----------------------------------------------------------------------------- entry point


def _as_batch(content) -> np.ndarray | None:
    if content is None:
        return None
    content = np.asarray(content, np.float32)
    if content.ndim == 3:
        content = content[None]
    if content.ndim != 4 or content.shape[-1] != 3:
        raise ValueError(f"content must be [H, W, 3] or [B, H, W, 3], got {content.shape}.")
    return content


def _output_size(content, size, styles) -> tuple[int, int]:
    if size is not None:
        return int(size[0]), int(size[1])
    if content is not None:
        return content.shape[1:3]
    return styles[0].shape[:2]


def synthesize(
    module: vgg.VGG,
    params: dict,
    *,
    styles: Sequence[np.ndarray],
    content: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    batch_size: int = 1,
    blend_weights: Sequence[float] | None = None,
    region_masks: np.ndarray | None = None,
    init_image: np.ndarray | None = None,
    options: Options = Options(),
    callback: Callable | None = None,
) -> np.ndarray:
    """Style transfer (with `content`) or texture synthesis (without): returns [B, H, W, 3].

    Args:
      module, params: a VGG (`vgg.init` or `weights.load_vgg`) and its params.
      styles: one or more style / texture images, float [h, w, 3] in [0, 1].
      content: [H, W, 3] or [B, H, W, 3] content images (a batch is optimized at once).
      size: output (height, width); default the content's size, or the first
        style image's for textures (content is resized to it).
      batch_size: number of textures (seeds) to make without content.
      blend_weights: one non-negative weight per style (default uniform).
      region_masks: [S, H, W] masks in [0, 1], one per style: spatial control
        (each style's statistics are matched inside its region; excludes blend).
      init_image: [h, w, 3] starting image for options.init == 'image'.
      options: `Options`.
      callback: called with a `loop.Report` after every chunk of steps.

    Returns:
      float32 NumPy [B, H, W, 3] in [0, 1].
    """
    styles = [np.asarray(s, np.float32) for s in styles]
    if not styles or any(s.ndim != 3 or s.shape[-1] != 3 for s in styles):
        raise ValueError("styles must be a non-empty list of [h, w, 3] images.")
    content = _as_batch(content)
    check_options(options, module.arch, has_content=content is not None)
    if options.init == "image" and init_image is None:
        raise ValueError("init='image' needs an init_image.")
    if region_masks is not None:
        if blend_weights is not None:
            raise ValueError("Give either style blend weights or region masks, not both.")
        region_masks = masks.check(region_masks, len(styles))
    full = _output_size(content, size, styles)
    batch = content.shape[0] if content is not None else batch_size
    layers, _ = _layers(options, content is not None)
    check_size(full, module.arch, layers)
    levels = multiscale.pyramid_sizes(
        *full, num_scales=options.num_scales, min_side=min_side(module.arch, layers)
    )
    variables = vgg.freeze({"params": params})
    features_fn = _features_fn(module, layers)
    mesh, x, problem = data_mesh(batch), None, None
    for index, level in enumerate(levels):
        problem = build_problem(
            module,
            variables,
            styles=styles,
            content=content,
            size=level,
            full_size=full,
            options=options,
            blend_weights=blend_weights,
            region_masks=region_masks,
            features_fn=features_fn,
        )
        if x is None:
            x = initial_params(
                options, batch=batch, size=level, content=problem.content, init_image=init_image
            )
        else:
            x = multiscale.upsample(x, *level)
        last = index == len(levels) - 1
        steps = options.num_steps if last or options.coarse_steps is None else options.coarse_steps
        x = optimize(
            x,
            problem,
            options,
            num_steps=steps,
            mesh=mesh,
            callback=_level_callback(callback, problem, index, len(levels)),
        )
    return np.asarray(to_rgb(x, problem))


def _level_callback(callback, problem: Problem, index: int, count: int):
    if callback is None:
        return None

    def wrapped(report: loop.Report) -> None:
        params = report.params
        images_fn = lambda: np.asarray(to_rgb(params, problem))
        callback(
            dataclasses.replace(
                report, scale=index, num_scales=count, size=problem.size, images_fn=images_fn
            )
        )

    return wrapped


def format_report(report: loop.Report) -> str:
    """One progress line: scale, step, rate, ETA and the loss terms."""
    from neural_synth.train import reporting  # Only for its duration formatting.

    scale = ""
    if report.num_scales > 1:
        h, w = report.size
        scale = f"scale {report.scale + 1}/{report.num_scales} ({h}x{w}) | "
    terms = " ".join(f"{k}={v:.4g}" for k, v in report.terms.items())
    return (
        f"{scale}step {report.step}/{report.num_steps} | {report.steps_per_second:.2f} it/s | "
        f"ETA {reporting.format_duration(report.eta_seconds)} | {terms}"
    )

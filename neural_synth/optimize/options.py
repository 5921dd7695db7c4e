"""What a Gatys synthesis is asked to do: `GatysOptions`, their defaults and their checks.

Everything about a synthesis except the images is one frozen dataclass,
`GatysOptions`; `check_options` raises an error naming the fix for a bad one, before
any slow work. `loss_layers` says which VGG layers the loss needs.

References: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
Neural Networks", CVPR 2016; Gatys et al., "Controlling Perceptual Factors in
Neural Style Transfer", CVPR 2017.
"""

import dataclasses
from collections.abc import Sequence

from neural_synth.losses import gram
from neural_synth.models import vgg
from neural_synth.optimize import color_transfer, loop, palette

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
INITS = ("noise", "content", "image")
COLOR_MODES = ("none", "luminance", "histogram")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatysOptions:
    """Everything about a synthesis except the images.

    Attributes:
      style_layers / style_layer_weights: layers of the style loss and their
        weights w_l (default 1 each).
      content_layers: layers of the content loss (style transfer only).
      content_weight, style_weight, tv_weight, range_weight: loss weights.
      statistic: style statistic, one of `gram.KINDS`.
      normalize: divide each term by the mean square of its target (`objective`).
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


def loss_layers(
    options: GatysOptions, has_content: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(all layers VGG must return, content layers in the loss)."""
    use_content = has_content and options.content_weight > 0
    content_layers = tuple(options.content_layers) if use_content else ()
    return tuple(dict.fromkeys(tuple(options.style_layers) + content_layers)), content_layers


def check_output_size(size: tuple[int, int], arch: str, layers: Sequence[str]) -> None:
    """Raises ValueError when an output of `size` (height, width) is too small for `layers`."""
    need = vgg.pooling_stride(arch, layers)
    if min(size) < need:
        raise ValueError(
            f"Output {size[1]}x{size[0]} is too small for layers {list(layers)}: they need at "
            f"least {need} pixels per side; make the image larger or use shallower layers."
        )


def check_options(options: GatysOptions, arch: str, *, has_content: bool) -> tuple[str, ...]:
    """Raises ValueError naming the fix for bad options; returns the VGG layers needed."""
    _check_layers(options, arch)
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
    layers = loss_layers(options, has_content)[0]
    align = vgg.pooling_stride(arch, layers)
    if options.tile_size < 0 or options.tile_size % align:
        raise ValueError(
            f"tile_size must be 0 (off) or a positive multiple of {align} (the pooling stride "
            f"of layers {list(layers)}), got {options.tile_size}."
        )
    return layers


def _check_layers(options: GatysOptions, arch: str) -> None:
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


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; expected one of {tuple(choices)}.")

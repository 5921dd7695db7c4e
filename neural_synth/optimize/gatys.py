"""Texture synthesis and style transfer by optimizing the image (Gatys et al.).

One entry point, `synthesize`, does both: with `content` it is style transfer
(content loss on `content_layers` plus style loss), without it texture synthesis
(style loss only). The image starts from noise, the content or a given image and
is optimized by L-BFGS or Adam, every step compiled (`loop.Loop`): VGG weights
frozen (`vgg.freeze`, no weight gradients, XLA's fast convolution path inside the
loop), style and content targets computed once per scale, outside the loop.

The phases, one module each:
  `options`    what is asked (`GatysOptions`) and its checks;
  `problem`    one scale: images, targets and weights (`build_problem`);
  `objective`  the loss of a problem (`total_loss`; formula there);
  this module  starting images, devices, the compiled run of one scale
               (`optimize_scale`) and the coarse-to-fine driver (`synthesize`).

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
from jax.sharding import Mesh

from neural_synth import io, progress
from neural_synth import mesh as mesh_lib
from neural_synth.models import vgg
from neural_synth.optimize import color_transfer, loop, masks, multiscale, objective
from neural_synth.optimize import options as options_lib
from neural_synth.optimize import problem as problem_lib

_DEFAULT_OPTIONS = options_lib.GatysOptions()


# ----------------------------------------------------------------------------- one scale


def initial_params(
    options: options_lib.GatysOptions,
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
        images = np.broadcast_to(io.resize(init_image, size=size), (batch, *size, 3))
    if channels == 1:
        images = color_transfer.luma(images)
    return jnp.asarray(images, jnp.float32)


def to_rgb(params: jax.Array, problem: problem_lib.Problem) -> jax.Array:
    """Images [B, h, w, 3] in [0, 1] from the parameters of `problem`."""
    if problem.spec.luminance:
        return color_transfer.combine_luminance(jnp.clip(params, 0.0, 1.0), problem.content)
    return jnp.clip(params, 0.0, 1.0)


def data_mesh(batch: int) -> Mesh:
    """A 1-D `data` mesh over the most devices that divide `batch` evenly."""
    devices = jax.devices()
    count = max(d for d in range(1, len(devices) + 1) if batch % d == 0)
    return mesh_lib.make_mesh(devices[:count])


def place(
    params: jax.Array, problem: problem_lib.Problem, mesh: Mesh
) -> tuple[jax.Array, objective.LossData]:
    """Batch-sharded parameters and content targets; everything else replicated."""
    split, whole = mesh_lib.batch_sharding(mesh), mesh_lib.replicated(mesh)
    content = problem.data.content_targets
    data = jax.device_put(problem.data.replace(content_targets={}), whole)
    data = data.replace(content_targets=jax.device_put(content, split))
    return jax.device_put(params, split), data


def optimize_scale(
    params: jax.Array,
    problem: problem_lib.Problem,
    options: options_lib.GatysOptions,
    *,
    num_steps: int,
    mesh: Mesh | None = None,
    callback: Callable | None = None,
) -> jax.Array:
    """Runs `num_steps` compiled steps of `problem` from `params`; returns the parameters.

    `params` are donated. `callback(report)` gets a `loop.Report` per chunk.
    """
    mesh = mesh or data_mesh(params.shape[0])
    params, data = place(params, problem, mesh)
    runner = loop.Loop(
        functools.partial(objective.total_loss, spec=problem.spec),
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
    terms = objective.loss_terms(params, data, spec)
    return {**terms, "total": sum(terms.values())}


# ----------------------------------------------------------------------------- entry point


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
    options: options_lib.GatysOptions = _DEFAULT_OPTIONS,
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
      options: `options.GatysOptions`.
      callback: called with a `loop.Report` after every chunk of steps.

    Returns:
      float32 NumPy [B, H, W, 3] in [0, 1].
    """
    styles, content, region_masks = _checked_inputs(
        module, styles, content, blend_weights, region_masks, init_image, options
    )
    full = _output_size(content, size, styles)
    layers, _ = options_lib.loss_layers(options, content is not None)
    options_lib.check_output_size(full, module.arch, layers)
    levels = multiscale.pyramid_sizes(
        *full, num_scales=options.num_scales, min_side=vgg.pooling_stride(module.arch, layers)
    )
    build = functools.partial(
        problem_lib.build_problem,
        module,
        vgg.freeze({"params": params}),
        styles=styles,
        content=content,
        full_size=full,
        options=options,
        blend_weights=blend_weights,
        region_masks=region_masks,
        features_fn=problem_lib.make_features_fn(module, layers),
    )
    batch = content.shape[0] if content is not None else batch_size
    x, problem = _coarse_to_fine(build, levels, batch, init_image, options, callback)
    return np.asarray(to_rgb(x, problem))


def _coarse_to_fine(build, levels, batch: int, init_image, options, callback):
    """Optimizes each level in turn from the previous result enlarged: (params, last problem)."""
    mesh, x, problem = data_mesh(batch), None, None
    for index, level in enumerate(levels):
        problem = build(size=level)
        if x is None:
            x = initial_params(
                options, batch=batch, size=level, content=problem.content, init_image=init_image
            )
        else:
            x = multiscale.upsample(x, *level)
        last = index == len(levels) - 1
        steps = options.num_steps if last or options.coarse_steps is None else options.coarse_steps
        x = optimize_scale(
            x,
            problem,
            options,
            num_steps=steps,
            mesh=mesh,
            callback=_level_callback(callback, problem, index, len(levels)),
        )
    return x, problem


def _checked_inputs(module, styles, content, blend_weights, region_masks, init_image, options):
    """(styles, content batch, region masks) as arrays; ValueError naming the fix if bad."""
    styles = [np.asarray(s, np.float32) for s in styles]
    if not styles or any(s.ndim != 3 or s.shape[-1] != 3 for s in styles):
        raise ValueError("styles must be a non-empty list of [h, w, 3] images.")
    content = _as_batch(content)
    options_lib.check_options(options, module.arch, has_content=content is not None)
    if options.init == "image" and init_image is None:
        raise ValueError("init='image' needs an init_image.")
    if region_masks is not None:
        if blend_weights is not None:
            raise ValueError("Give either style blend weights or region masks, not both.")
        region_masks = masks.check_masks(region_masks, len(styles))
    return styles, content, region_masks


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


def _level_callback(callback, problem: problem_lib.Problem, index: int, count: int):
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
    scale = ""
    if report.num_scales > 1:
        h, w = report.size
        scale = f"scale {report.scale + 1}/{report.num_scales} ({w}x{h}) | "
    return progress.format_line(
        report.step, report.num_steps, report.steps_per_second, prefix=scale, metrics=report.terms
    )

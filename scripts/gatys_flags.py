"""Flags shared by `scripts/stylize.py` and `scripts/texture.py` (Gatys optimization).

`define_flags` declares the flags both tools take (loss, optimizer, schedule,
style preprocessing, weights); `options_from_flags` turns them into
`options.GatysOptions`; `load_model` loads ported weights or announces random ones.
"""

import pathlib
from collections.abc import Callable

import numpy as np
from absl import flags

from neural_synth import io
from neural_synth.losses import gram
from neural_synth.models import vgg
from neural_synth.optimize import gatys, loop, masks
from neural_synth.optimize import options as options_lib
from scripts import common

_IMAGE_HELP = f"a file path, or skimage:NAME for a bundled sample ({', '.join(io.SAMPLE_NAMES)})"


def define_flags(*, steps: int, init: str, style_weight: float) -> dict:
    """Defines the shared flags (once per program); returns {name: FlagHolder}."""
    f = {}
    _style_image_flags(f)
    _loss_flags(f, style_weight=style_weight)
    _optimizer_flags(f, steps=steps, init=init)
    _network_flags(f)
    return f


def _style_image_flags(f: dict) -> None:
    """Style images: blending, size, palette, masks."""
    f["blend_weights"] = flags.DEFINE_list(
        "blend_weights",
        None,
        "How much of each style image to mix in, one weight per style (default: equal).",
    )
    f["style_scale"] = flags.DEFINE_float(
        "style_scale",
        None,
        "Resize each style image so its longer side is this multiple of the output's "
        "longer side (default: keep its own size, after --style_max_side).",
    )
    f["style_max_side"] = flags.DEFINE_integer(
        "style_max_side",
        512,
        "Shrink style images to at most this many pixels per side first.",
        lower_bound=1,
    )
    f["palette_colors"] = flags.DEFINE_integer(
        "palette_colors",
        0,
        "Reduce each style image to this many colours (0: off).",
        lower_bound=0,
    )
    f["masks"] = flags.DEFINE_list(
        "masks",
        None,
        "Spatial control: one mask image per style (white = where that style goes), or "
        f"one of {masks.LAYOUTS} to split the output into equal stripes, one per style.",
    )


def _loss_flags(f: dict, *, style_weight: float) -> None:
    """Loss layers, weights and statistic."""
    f["style_layers"] = flags.DEFINE_list(
        "style_layers", list(options_lib.DEFAULT_STYLE_LAYERS), "VGG layers of the style loss."
    )
    f["style_layer_weights"] = flags.DEFINE_list(
        "style_layer_weights", None, "Weights of the style layers, one each (default: 1 each)."
    )
    f["style_weight"] = flags.DEFINE_float("style_weight", style_weight, "Style loss weight.")
    f["tv_weight"] = flags.DEFINE_float("tv_weight", 0.0, "Total variation (smoothness) weight.")
    f["statistic"] = flags.DEFINE_enum(
        "statistic", "gram", gram.KINDS, "Style statistic: Gram matrix, mean, or mean and std."
    )
    f["no_normalize"] = flags.DEFINE_bool(
        "no_normalize",
        False,
        "Use raw squared errors instead of errors relative to each target's mean square.",
    )


def _optimizer_flags(f: dict, *, steps: int, init: str) -> None:
    """Optimizer, schedule, coarse-to-fine, tiling, start image, snapshots."""
    f["optimizer"] = flags.DEFINE_enum(
        "optimizer", "lbfgs", loop.OPTIMIZERS, "L-BFGS (line search) or Adam."
    )
    f["learning_rate"] = flags.DEFINE_float("learning_rate", 0.02, "Adam step size (pixels).")
    f["steps"] = flags.DEFINE_integer(
        "steps", steps, "Optimization steps at the full size.", lower_bound=0
    )
    f["num_scales"] = flags.DEFINE_integer(
        "num_scales", 1, "Coarse-to-fine levels, each twice the previous size.", lower_bound=1
    )
    f["coarse_steps"] = flags.DEFINE_integer(
        "coarse_steps", None, "Steps at each coarser level (default: --steps).", lower_bound=0
    )
    f["chunk_size"] = flags.DEFINE_integer(
        "chunk_size", 20, "Steps per compiled chunk; progress is printed between.", lower_bound=1
    )
    f["tile_size"] = flags.DEFINE_integer(
        "tile_size",
        0,
        "Compute loss and gradient in tiles of this size (a multiple of 16) plus a halo "
        "(96 px for relu5_1): exact, ~1.5-2x slower, memory of one tile; for outputs that "
        "do not fit otherwise (about 2.3 KB per pixel untiled). 0: whole image.",
        lower_bound=0,
    )
    f["init"] = flags.DEFINE_enum(
        "init", init, options_lib.INITS, "Start from noise, the content or --init_image."
    )
    f["init_image"] = flags.DEFINE_string("init_image", None, f"Starting image: {_IMAGE_HELP}.")
    f["seed"] = flags.DEFINE_integer("seed", 0, "Seed of the noise (and of random weights).")
    f["snapshot_every"] = flags.DEFINE_integer(
        "snapshot_every",
        0,
        "Also write the current image as OUT_stepN.png about every this many steps (0: off).",
        lower_bound=0,
    )


def _network_flags(f: dict) -> None:
    """The VGG features: ported weights or random ones."""
    f["vgg"] = flags.DEFINE_string(
        "vgg",
        None,
        "Folder of converted pretrained VGG weights (scripts/convert_vgg.py); "
        "without it, random-weight features are used.",
    )
    f["arch"] = flags.DEFINE_enum(
        "arch", "vgg19", sorted(vgg.ARCHS), "Architecture of random weights (ignored with --vgg)."
    )
    f["pooling"] = flags.DEFINE_enum(
        "pooling", "avg", vgg.POOLINGS, "Pooling between VGG blocks (Gatys et al.: avg)."
    )


def options_from_flags(f: dict, **extra) -> options_lib.GatysOptions:
    """`options.GatysOptions` from the shared flags plus script-specific fields in `extra`."""
    return options_lib.GatysOptions(
        style_layers=tuple(f["style_layers"].value),
        style_layer_weights=common.parse_floats(
            f["style_layer_weights"].value, "style_layer_weights"
        ),
        style_weight=f["style_weight"].value,
        tv_weight=f["tv_weight"].value,
        statistic=f["statistic"].value,
        normalize=not f["no_normalize"].value,
        optimizer=f["optimizer"].value,
        learning_rate=f["learning_rate"].value,
        num_steps=f["steps"].value,
        coarse_steps=f["coarse_steps"].value,
        num_scales=f["num_scales"].value,
        chunk_size=f["chunk_size"].value,
        init=f["init"].value,
        seed=f["seed"].value,
        style_scale=f["style_scale"].value,
        palette_colors=f["palette_colors"].value,
        tile_size=f["tile_size"].value,
        **extra,
    )


def load_model(f: dict, layers) -> tuple[vgg.VGG, dict]:
    """(module, params): ported weights from --vgg, or random weights for `layers` (says so)."""
    if f["vgg"].value:
        from neural_synth import weights  # Lazy: only needed for pretrained weights.

        module, params = weights.load_vgg(f["vgg"].value, pooling=f["pooling"].value)
        print(f"Using pretrained {module.arch} weights from {f['vgg'].value}.")
        return module, params
    arch, seed = f["arch"].value, f["seed"].value
    print(
        f"Using random-weight {arch} features (seed {seed}): textures are cruder than with "
        "pretrained weights; pass --vgg DIR (scripts/convert_vgg.py) for those."
    )
    module = vgg.VGG(arch=arch, pooling=f["pooling"].value)
    return module, vgg.random_params(arch, layers, seed)


def load_styles(paths, max_side: int) -> list[np.ndarray]:
    return [io.load_image_or_sample(p, max_side=max_side) for p in paths]


def region_masks(spec, num_styles: int, height: int, width: int) -> np.ndarray | None:
    """--masks as [S, H, W]: a stripe layout name, or one file per style."""
    if not spec:
        return None
    if len(spec) == 1 and spec[0] in masks.LAYOUTS:
        return masks.split(spec[0], num_styles, height=height, width=width)
    if len(spec) != num_styles:
        raise ValueError(f"--masks needs one mask per style ({num_styles}), got {len(spec)}")
    return masks.load_masks(spec, height=height, width=width)


def check_out(out: str) -> pathlib.Path:
    path = pathlib.Path(out)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"--out must end in .png, .jpg or .jpeg, got {out!r}")
    return io.check_save_path(path)


def output_paths(out: pathlib.Path, count: int, tag: str = "") -> list[pathlib.Path]:
    """OUT itself for one image, else OUT_0, OUT_1, ... (with an optional _TAG)."""
    if count == 1 and not tag:
        return [out]
    names = [f"{out.stem}{tag}" + (f"_{i}" if count > 1 else "") for i in range(count)]
    return [out.with_name(name + out.suffix) for name in names]


def progress_callback(out: pathlib.Path, snapshot_every: int) -> Callable:
    """Prints a progress line per chunk and writes snapshots every ~N steps."""
    state = {"next": snapshot_every}

    def callback(report: loop.Report) -> None:
        print(gatys.format_report(report), flush=True)
        final = report.scale == report.num_scales - 1
        if snapshot_every and final and report.step >= state["next"]:
            state["next"] = (report.step // snapshot_every + 1) * snapshot_every
            images = report.images_fn()
            for path, image in zip(
                output_paths(out, len(images), f"_step{report.step}"), images, strict=True
            ):
                io.save_image(path, image)

    return callback


def save_outputs(out: pathlib.Path, images: np.ndarray) -> None:
    for path, image in zip(output_paths(out, len(images)), images, strict=True):
        io.save_image(path, image)
        print(f"Wrote {path} ({image.shape[1]}x{image.shape[0]}).")

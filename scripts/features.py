r"""Writes per-filter VGG activation grids for one image.

  python -m scripts.features --image photo.jpg --layers relu1_1,relu5_2 \
      --out grid.png [--vgg DIR] [--arch vgg19] [--max_side 256] [--max_filters 64]

One PNG/JPEG per layer: with one layer it is written to --out itself; with
several, `--out grid.png` becomes grid_relu1_1.png, grid_relu5_2.png, ... Each
filter's map is normalised to [0, 1] on its own and enlarged back to the input
resolution (see neural_synth/viz/features.py). Without --vgg the features come
from a random-weight VGG (seeded), which the script says.
"""

import pathlib

import jax
from absl import flags

from neural_synth import io
from neural_synth.models import vgg
from neural_synth.viz import features
from scripts import common

_IMAGE = flags.DEFINE_string(
    "image",
    "skimage:astronaut",
    "Input image: a file path, or skimage:NAME for a bundled scikit-image sample "
    f"({', '.join(io.SAMPLE_NAMES)}).",
)
_LAYERS = flags.DEFINE_list(
    "layers",
    ["relu1_1", "relu3_1", "relu5_1"],
    "Comma-separated VGG layers to show (conv*, relu*, pool*; e.g. relu1_1,relu5_2).",
)
_OUT = flags.DEFINE_string(
    "out",
    "features.png",
    "Output image (.png/.jpg). With several layers, one file per layer is written, "
    "named by inserting _LAYER before the extension: grid.png -> grid_relu1_1.png, ...",
)
_VGG = flags.DEFINE_string(
    "vgg",
    None,
    "Folder of converted pretrained VGG weights (scripts/convert_vgg.py). "
    "If omitted, random He-normal weights are used.",
)
_ARCH = flags.DEFINE_enum(
    "arch", "vgg19", sorted(vgg.ARCHS), "Architecture of random weights (ignored with --vgg)."
)
_MAX_SIDE = flags.DEFINE_integer(
    "max_side",
    256,
    "Shrink the image so its longer side is at most this many pixels.",
    lower_bound=1,
)
_MAX_FILTERS = flags.DEFINE_integer(
    "max_filters", 64, "Show at most this many filters per layer (the first ones).", lower_bound=1
)
_POOLING = flags.DEFINE_enum("pooling", "max", vgg.POOLINGS, "Pooling between VGG blocks.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed of the random weights (without --vgg).")


def output_paths(out: str, layers: list[str]) -> dict[str, pathlib.Path]:
    """{layer: path}: --out itself for one layer, else `stem_LAYER.ext` beside it."""
    out_path = pathlib.Path(out)
    if len(layers) == 1:
        return {layers[0]: out_path}
    return {name: out_path.with_name(f"{out_path.stem}_{name}{out_path.suffix}") for name in layers}


def build_model():
    """(module, params): pretrained from --vgg, or random weights (announced)."""
    if _VGG.value:
        from neural_synth import weights  # Lazy: only needed for pretrained weights.

        if not hasattr(weights, "load_vgg"):
            raise ImportError("neural_synth.weights.load_vgg is not available in this install")
        module, params = weights.load_vgg(_VGG.value, pooling=_POOLING.value)
        print(f"Using pretrained {module.arch} weights from {_VGG.value}.")
        return module, params
    print(
        f"Using random-weight {_ARCH.value} features (seed {_SEED.value}); "
        "pass --vgg DIR for pretrained weights."
    )
    return vgg.init(jax.random.key(_SEED.value), _ARCH.value, pooling=_POOLING.value)


def check_layers(layers: list[str], arch: str) -> None:
    """Rejects names that are not spatial layers of `arch` before any work is done."""
    valid = vgg.layer_names(arch)
    unknown = [name for name in layers if name not in valid]
    if not layers or unknown:
        raise ValueError(
            f"unknown {arch} layer(s) {unknown or '(none given)'}; valid: {', '.join(valid)}"
        )


def run() -> list[pathlib.Path]:
    """Loads the image and model, writes one grid per layer, returns the paths."""
    layers = list(dict.fromkeys(_LAYERS.value))  # Drop duplicates, keep order.
    # Early check before slow work; with --vgg the arch is only known after loading,
    # so check against VGG19 (whose names include VGG16's) now and exactly later.
    check_layers(layers, "vgg19" if _VGG.value else _ARCH.value)
    paths = output_paths(_OUT.value, layers)
    for path in paths.values():
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise ValueError(f"--out must end in .png, .jpg or .jpeg, got {str(path)!r}")
        io.check_save_path(path)
    image = io.load_image_or_sample(_IMAGE.value, max_side=_MAX_SIDE.value)
    module, params = build_model()
    check_layers(layers, getattr(module, "arch", _ARCH.value))
    grids = features.layer_grids(module, params, image, layers, max_filters=_MAX_FILTERS.value)
    for name, grid in grids.items():
        io.save_image(paths[name], grid)
        print(f"{name}: wrote {paths[name]} ({grid.shape[0]}x{grid.shape[1]})")
    return list(paths.values())


if __name__ == "__main__":
    common.run(run)

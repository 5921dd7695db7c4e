r"""Style transfer by image optimization (Gatys et al.).

  python -m scripts.stylize --content c.jpg --style s.jpg --out out.png
  python -m scripts.stylize --content c.jpg --style s1.jpg --style s2.jpg \
      --blend_weights 0.7,0.3 --preserve_color luminance --out out.png
  python -m scripts.stylize --style a.jpg --style b.jpg --masks vertical   # left/right
  python -m scripts.stylize --max_side 1024 --num_scales 3 --coarse_steps 100   # large

Several --content images are optimized together as one batch (split over the
devices) and written as OUT_0.png, OUT_1.png, ... Without --vgg the features come
from a random-weight VGG, which the script says. Defaults run out of the box on
scikit-image samples at 256 pixels. See neural_synth/optimize/gatys.py.
"""

import numpy as np
from absl import flags

from neural_synth import io
from neural_synth.optimize import color_transfer, gatys
from neural_synth.optimize import options as options_lib
from scripts import common, gatys_flags

RANDOM_WEIGHTS_CONTENT_LAYER = "relu2_2"
_CONTENT = flags.DEFINE_multi_string(
    "content",
    ["skimage:astronaut"],
    "Content image(s) (repeat the flag for several): a file path or skimage:NAME. All are "
    "resized to the first one's size.",
)
_STYLE = flags.DEFINE_multi_string(
    "style", ["skimage:immunohistochemistry"], "Style image(s) (repeat for several)."
)
_OUT = flags.DEFINE_string("out", "stylized.png", "Output image (.png/.jpg).")
_MAX_SIDE = flags.DEFINE_integer(
    "max_side", 256, "Shrink the content so its longer side is at most this.", lower_bound=1
)
_CONTENT_LAYERS = flags.DEFINE_list(
    "content_layers",
    None,
    "VGG layers of the content loss. Default: relu4_2 (Gatys et al.) with --vgg weights, "
    f"{RANDOM_WEIGHTS_CONTENT_LAYER} with random weights, whose deeper features keep little "
    "of the image layout.",
)
_CONTENT_WEIGHT = flags.DEFINE_float("content_weight", 1.0, "Content loss weight.")
_PRESERVE_COLOR = flags.DEFINE_enum(
    "preserve_color",
    "none",
    options_lib.COLOR_MODES,
    "Keep the content's colours: 'luminance' (transfer luma only) or 'histogram' (recolour "
    "the style to the content's colour mean and covariance first).",
)
_MATCH = flags.DEFINE_enum(
    "color_match", "cholesky", color_transfer.MATCH_MODES, "Matrix of --preserve_color=histogram."
)
_FLAGS = gatys_flags.define_flags(steps=100, init="content", style_weight=3.0)
flags.adopt_module_key_flags(gatys_flags)  # --help lists the shared optimization flags too.


def content_layers() -> tuple[str, ...]:
    """--content_layers, or the default for the kind of weights."""
    if _CONTENT_LAYERS.value:
        return tuple(_CONTENT_LAYERS.value)
    if _FLAGS["vgg"].value:
        return options_lib.DEFAULT_CONTENT_LAYERS
    return (RANDOM_WEIGHTS_CONTENT_LAYER,)


def run() -> None:
    """Loads the images and weights, runs the optimization, writes the result(s)."""
    out = gatys_flags.check_out(_OUT.value)
    options = gatys_flags.options_from_flags(
        _FLAGS,
        content_layers=content_layers(),
        content_weight=_CONTENT_WEIGHT.value,
        preserve_color=_PRESERVE_COLOR.value,
        color_match=_MATCH.value,
    )
    arch = "vgg19" if _FLAGS["vgg"].value else _FLAGS["arch"].value
    layers = options_lib.check_options(options, arch, has_content=True)  # Early, before slow work.
    first = io.load_image_or_sample(_CONTENT.value[0], max_side=_MAX_SIDE.value)
    size = first.shape[:2]
    options_lib.check_output_size(size, arch, layers)
    rest = [io.load_image_or_sample(c, size=size) for c in _CONTENT.value[1:]]
    content = np.stack([first, *rest])
    styles = gatys_flags.load_styles(_STYLE.value, _FLAGS["style_max_side"].value)
    init = _FLAGS["init_image"].value
    init_image = io.load_image_or_sample(init) if init else None
    masks = gatys_flags.region_masks(_FLAGS["masks"].value, len(styles), *size)
    module, params = gatys_flags.load_model(_FLAGS, layers)
    print(
        f"Optimizing {len(content)} image(s) of {size[1]}x{size[0]} with {options.optimizer} "
        f"for {options.num_steps} steps (the first chunk includes compilation)."
    )
    images = gatys.synthesize(
        module,
        params,
        styles=styles,
        content=content,
        blend_weights=common.parse_floats(_FLAGS["blend_weights"].value, "blend_weights"),
        region_masks=masks,
        init_image=init_image,
        options=options,
        callback=gatys_flags.progress_callback(out, _FLAGS["snapshot_every"].value),
    )
    gatys_flags.save_outputs(out, images)


if __name__ == "__main__":
    common.run(run)

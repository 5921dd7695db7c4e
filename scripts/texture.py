r"""Texture synthesis by image optimization (Gatys et al. 2015).

  python -m scripts.texture --texture t.png --size 512x512 --out out.png
  python -m scripts.texture --texture a.png --texture b.png --blend_weights 0.5,0.5
  python -m scripts.texture --size 1024x1024 --num_scales 3 --num_textures 2

Starts from noise and matches the texture's Gram statistics at --style_layers.
Several --num_textures (different seeds) are made at once as one batch, written
as OUT_0.png, OUT_1.png, ... Without --vgg the features come from a random-weight
VGG, which the script says. See neural_synth/optimize/gatys.py.
"""

from absl import flags

from neural_synth import io
from neural_synth.optimize import gatys
from neural_synth.optimize import options as options_lib
from scripts import common, gatys_flags

_TEXTURE = flags.DEFINE_multi_string(
    "texture",
    ["skimage:brick"],
    "Texture image(s) (repeat the flag to blend several): a file path or skimage:NAME.",
)
_SIZE = flags.DEFINE_string(
    "size",
    None,
    f"Output size {common.SIZE_HELP}; default: the first texture's size.",
)
_OUT = flags.DEFINE_string("out", "texture.png", "Output image (.png/.jpg).")
_NUM = flags.DEFINE_integer(
    "num_textures", 1, "How many textures (seeds) to make at once.", lower_bound=1
)
_FLAGS = gatys_flags.define_flags(steps=100, init="noise", style_weight=1.0)
flags.adopt_module_key_flags(gatys_flags)  # --help lists the shared optimization flags too.
flags.FLAGS.set_default("style_max_side", 256)


def run() -> None:
    """Loads the texture(s) and weights, synthesizes, writes the result(s)."""
    out = gatys_flags.check_out(_OUT.value)
    size = common.parse_size(_SIZE.value) if _SIZE.value else None
    options = gatys_flags.options_from_flags(_FLAGS)
    arch = "vgg19" if _FLAGS["vgg"].value else _FLAGS["arch"].value
    layers = options_lib.check_options(options, arch, has_content=False)  # Early, before slow work.
    textures = gatys_flags.load_styles(_TEXTURE.value, _FLAGS["style_max_side"].value)
    size = size or textures[0].shape[:2]
    options_lib.check_output_size(size, arch, layers)
    init = _FLAGS["init_image"].value
    init_image = io.load_image_or_sample(init) if init else None
    masks = gatys_flags.region_masks(_FLAGS["masks"].value, len(textures), *size)
    module, params = gatys_flags.load_model(_FLAGS, layers)
    print(
        f"Synthesizing {_NUM.value} texture(s) of {size[1]}x{size[0]} with {options.optimizer} "
        f"for {options.num_steps} steps (the first chunk includes compilation)."
    )
    images = gatys.synthesize(
        module,
        params,
        styles=textures,
        size=size,
        batch_size=_NUM.value,
        blend_weights=common.parse_floats(_FLAGS["blend_weights"].value, "blend_weights"),
        region_masks=masks,
        init_image=init_image,
        options=options,
        callback=gatys_flags.progress_callback(out, _FLAGS["snapshot_every"].value),
    )
    gatys_flags.save_outputs(out, images)


if __name__ == "__main__":
    common.run(run)

r"""Texture synthesis by image optimization (Gatys et al. 2015).

  python -m scripts.texture --texture t.png --size 512x512 --out out.png
  python -m scripts.texture --texture a.png --texture b.png --style_weights 0.5,0.5
  python -m scripts.texture --size 1024x1024 --num_scales 3 --num_textures 2

Starts from noise and matches the texture's Gram statistics at --style_layers.
Several --num_textures (different seeds) are made at once as one batch, written
as OUT_0.png, OUT_1.png, ... Without --vgg the features come from a random-weight
VGG, which the script says. See neural_synth/optimize/gatys.py.
"""

from absl import app, flags

from neural_synth import io
from neural_synth.optimize import gatys, gatys_cli

_TEXTURE = flags.DEFINE_multi_string(
    "texture",
    ["skimage:brick"],
    "Texture image(s) (repeat the flag to blend several): a file path or skimage:NAME.",
)
_SIZE = flags.DEFINE_string(
    "size",
    None,
    "Output size WIDTHxHEIGHT (e.g. 512x512); default: the first texture's size.",
)
_OUT = flags.DEFINE_string("out", "texture.png", "Output image (.png/.jpg).")
_NUM = flags.DEFINE_integer(
    "num_textures", 1, "How many textures (seeds) to make at once.", lower_bound=1
)
_FLAGS = gatys_cli.define_flags(steps=100, init="noise", style_weight=1.0)
flags.adopt_module_key_flags(gatys_cli)  # --help lists the shared optimization flags too.
flags.FLAGS.set_default("style_max_side", 256)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'WIDTHxHEIGHT' -> (height, width)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--size must look like 512x512 (WIDTHxHEIGHT), got {text!r}")
    return int(parts[1]), int(parts[0])


def run() -> None:
    """Loads the texture(s) and weights, synthesizes, writes the result(s)."""
    out = gatys_cli.check_out(_OUT.value)
    size = parse_size(_SIZE.value)
    options = gatys_cli.options_from_flags(_FLAGS)
    arch = "vgg19" if _FLAGS["vgg"].value else _FLAGS["arch"].value
    layers = gatys.check_options(options, arch, has_content=False)  # Early, before slow work.
    textures = gatys_cli.load_styles(_TEXTURE.value, _FLAGS["style_max_side"].value)
    size = size or textures[0].shape[:2]
    gatys.check_size(size, arch, layers)
    init = _FLAGS["init_image"].value
    init_image = io.load_image_or_sample(init) if init else None
    masks = gatys_cli.region_masks(_FLAGS["masks"].value, len(textures), *size)
    module, params = gatys_cli.load_model(_FLAGS, layers)
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
        blend_weights=gatys_cli.floats(_FLAGS["style_weights"].value, "style_weights"),
        region_masks=masks,
        init_image=init_image,
        options=options,
        callback=gatys_cli.progress_callback(out, _FLAGS["snapshot_every"].value),
    )
    gatys_cli.save_outputs(out, images)


def main(argv: list[str]) -> int:
    return gatys_cli.run_main(argv, run)


if __name__ == "__main__":
    app.run(main)

"""Upsample images of any size with a trained super-resolution network (x4, or x8).

  python -m scripts.superres --workdir=runs/superres --input=small.png --out=big.png
  python -m scripts.superres --workdir=W --input=skimage:coffee --out=c.png --max_side=200
  python -m scripts.superres --workdir=W --input=photo.png --out=big.png --tile=1024

The output is `scale` times the input's size (any size of at least 5 px per
side). Outputs above --auto_tile_pixels (or any with --tile) are computed in
overlapping tiles: the network has no image-wide statistics and the tiles'
halos cover its receptive field, so the result equals an untiled run while
memory stays that of one tile. --bicubic_out also writes the bicubic
upsampling of the same input, to compare.
"""

import jax.numpy as jnp
from absl import flags

from neural_synth import experiments, io
from neural_synth.models import superres
from neural_synth.ops import resize
from scripts import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a trained superres run.")
_INPUT = flags.DEFINE_string("input", None, "Low-resolution image: a path or skimage:NAME.")
_OUT = flags.DEFINE_string("out", None, "Output image path (PNG or JPEG).")
_BICUBIC = flags.DEFINE_string("bicubic_out", None, "Also write the bicubic upsampling here.")
_MAX_SIDE = flags.DEFINE_integer("max_side", 0, "Shrink the input to this longest side (0: keep).")
_TILE = flags.DEFINE_integer("tile", 0, "Tile size in output pixels; 0 = automatic.")
_AUTO = flags.DEFINE_integer(
    "auto_tile_pixels", 2048 * 2048, "Without --tile, outputs above this many pixels are tiled."
)
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels", io.DEFAULT_MAX_PIXELS, "Refuse inputs with more pixels than this."
)
flags.mark_flags_as_required(["workdir", "input", "out"])


def upscale() -> None:
    for path in filter(None, (_OUT.value, _BICUBIC.value)):
        io.check_save_path(path)
    image = io.load_image_or_sample(
        _INPUT.value, max_side=_MAX_SIDE.value or None, max_pixels=_MAX_PIXELS.value
    )
    io.check_min_side(image, superres.MIN_SIDE, name=_INPUT.value)
    exp, params = experiments.load_trained(_WORKDIR.value, "superres")
    h, w = (exp.scale * n for n in image.shape[:2])
    tile = common.auto_tile(h, w, _TILE.value, _AUTO.value)
    io.save_image(_OUT.value, exp.upscale(params, image, tile=tile, progress=tile > 0))
    if _BICUBIC.value:
        bicubic = resize.bicubic_resize(jnp.asarray(image)[None], height=h, width=w)[0]
        io.save_image(_BICUBIC.value, jnp.clip(bicubic, 0.0, 1.0))
    how = f"in {tile}px tiles" if tile else "untiled"
    print(f"Wrote {_OUT.value}: {image.shape[1]}x{image.shape[0]} -> {w}x{h} ({how}).")


if __name__ == "__main__":
    common.run(upscale)

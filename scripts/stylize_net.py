"""Stylize images of any size with a trained stylization network.

  python -m scripts.stylize_net --workdir=runs/stylize_net --input=in.jpg --out=out.png
  python -m scripts.stylize_net --workdir=W --input=skimage:astronaut --out=a.png --max_side=1024
  python -m scripts.stylize_net --workdir=W --input=in.jpg --out=o.png --blend_weights=0.3,0.7
  python -m scripts.stylize_net --workdir=W --input=huge.png --out=o.png --tile=1024

Images above --auto_tile_pixels (or any with --tile) run in overlapping tiles in
bounded memory and without seams: the instance-norm statistics come from one
pass over the image shrunk to at most --stats_pixels pixels (exact when the
image has fewer), and every tile uses them. --blend_weights blends the styles
of a multi-style network (one weight per style, normalised to sum 1).
"""

from absl import flags

from neural_synth import experiments, io
from neural_synth.experiments import stylize_net
from scripts import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a trained stylize_net run.")
_INPUT = flags.DEFINE_string("input", None, "Content image: a path or skimage:NAME.")
_OUT = flags.DEFINE_string("out", None, "Output image path (PNG or JPEG).")
_MAX_SIDE = flags.DEFINE_integer("max_side", 0, "Resize the input to this longest side (0: keep).")
_BLEND_WEIGHTS = flags.DEFINE_list(
    "blend_weights", None, "Blend of a multi-style network's styles, e.g. 0.3,0.7."
)
_TILE = flags.DEFINE_integer("tile", 0, "Tile size for tiled inference; 0 = automatic.")
_AUTO = flags.DEFINE_integer(
    "auto_tile_pixels", 2048 * 2048, "Without --tile, images above this many pixels are tiled."
)
_STATS = flags.DEFINE_integer(
    "stats_pixels", 2048 * 2048, "Tiled runs: instance-norm statistics from at most this area."
)
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels",
    io.DEFAULT_MAX_PIXELS,
    "Refuse inputs with more pixels than this (decompression bombs); loading costs 22-27 "
    "bytes per pixel, so raise it only for real photos that fit in memory.",
)
flags.mark_flags_as_required(["workdir", "input", "out"])


def stylize() -> None:
    io.check_save_path(_OUT.value)
    image = io.load_image_or_sample(
        _INPUT.value, max_side=_MAX_SIDE.value or None, max_pixels=_MAX_PIXELS.value
    )
    io.check_min_side(image, stylize_net.MIN_SIDE, name=_INPUT.value)
    exp, params = experiments.load_trained(_WORKDIR.value, "stylize_net")
    weights = exp.blend_weights(common.parse_floats(_BLEND_WEIGHTS.value, "blend_weights"))
    h, w = image.shape[:2]
    tile = common.auto_tile(h, w, _TILE.value, _AUTO.value)
    out = exp.stylize(
        params, image, blend_weights=weights, tile=tile, stats_pixels=_STATS.value,
        progress=tile > 0,
    )  # fmt: skip
    io.save_image(_OUT.value, out)
    how = f"in {tile}px tiles" if tile else "untiled"
    print(f"Wrote {_OUT.value}: {h}x{w} ({how}).")


if __name__ == "__main__":
    common.run(stylize)
